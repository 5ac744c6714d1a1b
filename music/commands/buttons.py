"""The live "Now playing" message and its buttons: posting it (replacing the guild's previous
one), keeping it current (ui/live.py decides when), and answering clicks through the same
control-layer intents as the commands (ui/controls.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord

from ..engine.track import Track
from ..formatting import track_line
from ..i18n import _, deferred
from ..player import PlayerState
from ..ui.controls import ALREADY_ENDING, ENDS_TRACK, TRACK_ENDED, Action, Answer, press
from ..ui.live import Decision, LiveMessages, NowPlayingFacts, Step, render
from ..ui.views import (
    NO_MENTIONS,
    NowPlayingControls,
    QueuePager,
    answer_privately,
    display_controls,
)
from .base import MusicMixin
from .menus import QUEUE_PAGES_TIMEOUT, queue_pages

if TYPE_CHECKING:
    from ..player import GuildPlayer

log = logging.getLogger("red.music")

LIVE_CHECK_INTERVAL = 1.0  # how often the live messages are looked at (edits: ui/live.py's interval)
UNLOAD_RETIRE_TIMEOUT = 3.0  # an unload waits this long at most for the live messages to go
STALE_MESSAGE = deferred._("This \"Now playing\" message is old; use the latest one (or the commands).")


class NowPlayingButtons(MusicMixin):
    """Needs `live` (LiveMessages) and `np_controls` from the cog's __init__."""

    live: LiveMessages
    np_controls: NowPlayingControls | None
    _use_guild_locale: Callable[[int], Awaitable[None]]  # the cog's: the server's language

    def start_buttons(self) -> None:
        """At cog load: one registered view answers the buttons of every message, old ones too."""
        self.np_controls = NowPlayingControls(self.np_button_pressed)
        self.bot.add_view(self.np_controls)

    async def stop_buttons(self) -> None:
        """At cog unload: the buttons stop answering, and the live messages go (a resumed player
        announces its track again, and two messages with buttons would compete)."""
        if self.np_controls is not None:
            self.np_controls.stop()  # removes it from discord.py's store: the next load adds its own
            self.np_controls = None
        retiring = []
        for guild_id in self.live.guilds():
            live = self.live.forget(guild_id)
            if live is not None:
                retiring.append(asyncio.ensure_future(self._retire(live.channel_id, live.message_id, delete=True)))
        if retiring:
            await asyncio.wait(retiring, timeout=UNLOAD_RETIRE_TIMEOUT)

    # -- the message ---------------------------------------------------------------------------

    def now_playing_facts(self, guild_id: int) -> NowPlayingFacts | None:
        player = self.manager.players.get(guild_id) if self.manager is not None else None
        track = player.queue.current if player is not None else None
        if player is None or track is None:
            return None
        return NowPlayingFacts(
            track_id=track.id, title_line=track_line(track), position=player.position, duration=track.duration,
            requester_id=track.requester_id, autoplay=track.autoplay, paused=player.state is PlayerState.PAUSED,
            is_live=track.is_live, repeat=player.queue.repeat.value, shuffle=player.queue.shuffle)

    def _controls_for(self, guild_id: int, facts: NowPlayingFacts) -> discord.ui.View:
        return display_controls(paused=facts.paused, shuffle=facts.shuffle, repeat=facts.repeat)

    async def _announce_now_playing(self, player: GuildPlayer, track: Track) -> None:
        """Post "Now playing" with its buttons, replacing the previous one so the channel holds
        one at a time."""
        settings = self.store.guild(player.guild_id)
        channel = self._text_channel(settings.np_channel or player.text_channel_id)
        if channel is None:
            return
        previous = self.live.replace(player.guild_id)
        if previous is not None:
            await self._retire(previous.channel_id, previous.message_id, delete=True)
        facts = self.now_playing_facts(player.guild_id)
        if facts is None or facts.track_id != track.id:  # (a track just announced is current)
            facts = NowPlayingFacts(track.id, track_line(track), 0.0, track.duration, track.requester_id,
                                    track.autoplay, is_live=track.is_live)
        text = render(facts)
        try:
            message = await channel.send(text, view=self._controls_for(player.guild_id, facts),
                                         allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            log.debug("Could not announce in guild %s", player.guild_id, exc_info=True)
            return
        self.live.posted(player.guild_id, channel.id, message.id, track.id, text, time.monotonic())

    async def _retire(self, channel_id: int, message_id: int, *, delete: bool, text: str | None = None) -> None:
        """An old live message goes (deleted), or stays without its buttons when it can't be
        deleted or should stay (the queue ended). Never raises."""
        channel = self._text_channel(channel_id)
        if channel is None:
            return
        message = channel.get_partial_message(message_id)
        if delete:
            try:
                await message.delete()
                return
            except discord.NotFound:
                return
            except discord.HTTPException:
                pass  # no right to delete, or rate limited: at least its buttons must go
        with contextlib.suppress(discord.HTTPException):
            if text is None:
                await message.edit(view=None)
            else:
                await message.edit(content=text, view=None, allowed_mentions=NO_MENTIONS)

    async def live_refresh_loop(self) -> None:
        """Keep each guild's live message current; ui/live.py coalesces and spaces the edits."""
        while True:
            await asyncio.sleep(LIVE_CHECK_INTERVAL)
            for guild_id in self.live.guilds():
                await self._use_guild_locale(guild_id)  # the edit is rendered in its language
                facts = self.now_playing_facts(guild_id)
                decision = self.live.decide(guild_id, facts, time.monotonic())
                if decision.step is Step.WAIT:
                    continue
                live = self.live.get(guild_id)
                if live is None:
                    continue
                view = self._controls_for(guild_id, facts) if facts is not None and decision.step is Step.EDIT else None
                assert self.manager is not None
                self.manager.spawn(self._apply(guild_id, live.channel_id, live.message_id, decision, view))

    async def _apply(self, guild_id: int, channel_id: int, message_id: int, decision: Decision,
                     view: discord.ui.View | None) -> None:
        ok = False
        try:
            if decision.step is Step.RETIRE:
                await self._retire(channel_id, message_id, delete=False, text=decision.text)
                ok = True
                return
            channel = self._text_channel(channel_id)
            if channel is not None:
                await channel.get_partial_message(message_id).edit(
                    content=decision.text, view=view, allowed_mentions=NO_MENTIONS)
                ok = True
        except discord.NotFound:
            self.live.forget(guild_id)  # deleted by someone: the next announcement posts anew
        except discord.HTTPException:
            log.debug("Could not refresh the now-playing message of guild %s", guild_id, exc_info=True)
        finally:
            self.live.done(guild_id, decision, ok=ok)

    # -- clicks --------------------------------------------------------------------------------

    async def np_button_pressed(self, interaction: discord.Interaction, action: Action) -> None:
        try:
            await self._np_press(interaction, action)
        except Exception:
            log.exception("A now-playing button failed (%s)", action.value)
            await answer_privately(interaction, _("That didn't work; the command does the same."))

    async def _np_press(self, interaction: discord.Interaction, action: Action) -> None:
        guild, member, message = interaction.guild, interaction.user, interaction.message
        if guild is None or message is None or not isinstance(member, discord.Member):
            return  # our buttons are only on guild messages
        if self.control is None or self.manager is None or not self.ready.is_set():
            await answer_privately(interaction, _("The music player is starting; try again in a moment."))
            return
        if action is Action.QUEUE:
            await self._show_queue(interaction, guild.id)
            return
        actor = await self.member_actor(guild, member)
        listeners = frozenset(m.id for m in self.guild_listeners(guild))
        # from here to `press` nothing awaits: a second click waits for this one's verdict
        live = self.live.get(guild.id)
        facts = self.now_playing_facts(guild.id)
        if live is None and facts is not None and self.bot.user is not None and message.author.id == self.bot.user.id:
            live = self.live.adopt(guild.id, message.channel.id, message.id, message.content, time.monotonic())
        if live is None or live.message_id != message.id:
            await answer_privately(interaction, _(STALE_MESSAGE))
            await self._retire(message.channel.id, message.id, delete=False)  # its buttons go
            return
        if action in ENDS_TRACK:
            if live.ending:
                await answer_privately(interaction, _(ALREADY_ENDING))
                return
            if live.track_id is not None and (facts is None or facts.track_id != live.track_id):
                await answer_privately(interaction, _(TRACK_ENDED))
                return
        answer = press(self.control, guild.id, actor, action, listeners=listeners, mention=member.mention)
        if answer.ending:
            live.ending = True
        await self._answer(interaction, guild.id, answer)

    async def _answer(self, interaction: discord.Interaction, guild_id: int, answer: Answer) -> None:
        try:
            if answer.private:
                await interaction.response.send_message(answer.text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            elif answer.retire:
                self.live.forget(guild_id)
                await interaction.response.edit_message(content=answer.text, view=None, allowed_mentions=NO_MENTIONS)
            elif answer.update:
                facts = self.now_playing_facts(guild_id)
                if facts is None:
                    await interaction.response.defer()
                    return
                if answer.paused is not None:  # the player applies it a moment later; show it now
                    facts = dataclasses.replace(facts, paused=answer.paused)
                text = render(facts)
                await interaction.response.edit_message(content=text, view=self._controls_for(guild_id, facts),
                                                        allowed_mentions=NO_MENTIONS)
                self.live.shown(guild_id, text, time.monotonic())
            else:
                await interaction.response.send_message(answer.text, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            log.debug("Could not answer a now-playing button", exc_info=True)

    async def _show_queue(self, interaction: discord.Interaction, guild_id: int) -> None:
        assert self.manager is not None
        pages = queue_pages(self.manager.get(guild_id))
        if not pages:
            await answer_privately(interaction, _("The queue is empty."))
            return
        pager = QueuePager(interaction.user.id, pages, timeout=QUEUE_PAGES_TIMEOUT)
        try:
            if len(pages) == 1:
                await interaction.response.send_message(**pager.content(), ephemeral=True, allowed_mentions=NO_MENTIONS)
                return
            await interaction.response.send_message(**pager.content(), view=pager, ephemeral=True,
                                                    allowed_mentions=NO_MENTIONS)
            pager.on_expire = lambda: interaction.edit_original_response(view=None)
        except discord.HTTPException:
            log.debug("Could not show the queue to a clicker", exc_info=True)

    def _text_channel(self, channel_id: int | None) -> discord.TextChannel | None:
        """A channel the cog can post in (text, voice-text or thread), or None."""
        channel = self.bot.get_channel(channel_id) if channel_id else None
        if channel is None or not hasattr(channel, "send") or not hasattr(channel, "get_partial_message"):
            return None
        return channel  # type: ignore[return-value]

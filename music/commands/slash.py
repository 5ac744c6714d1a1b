"""The slash-command side of the member commands (they are hybrid: prefix and slash alike).

What only interactions need lives here: autocomplete for `play`'s query and for playlist names,
the "Play this" message context menu, deferring a command that may take longer than Discord's
3-second answer window, private refusals, and a reply that still arrives when the interaction
token is gone. The owner turns the commands on the Red way: `[p]slash enablecog music` (or
`[p]slash enable <command>`), then `[p]slash sync`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, cast

import discord
from discord import app_commands
from redbot.core import commands

from ..control import ControlError, wait_until_ready
from ..engine.suggest import (
    MAX_CHOICE_TEXT,
    MAX_CHOICES,
    SEARCH_MIN_CHARS,
    SEARCH_RESULTS,
    Suggester,
    matches,
)
from ..i18n import _
from .base import NO_MENTIONS, CommandError
from .playback import PlaybackCommands
from .playlists import PlaylistCommands

log = logging.getLogger("red.music.slash")

PLAY_THIS = "Play this"
MAX_LINKS_PER_MESSAGE = 5
RECENT_TRACKS = 50  # of the server's history, newest first, offered before anything cached
CACHED_TITLES = 200  # of the lookup cache, newest first
# Commands that join voice or look something up: as slash commands they defer at once (the
# member sees "thinking..."), then the first reply replaces it. The others answer directly.
SLOW_COMMANDS = frozenset({"play", "playnext", "search", "summon", "prev", "playlist start",
                           "playlist append", "playlist save"})
# Discord's answers once the token is gone (15 minutes) or the 3 seconds have passed
UNKNOWN_WEBHOOK, UNKNOWN_INTERACTION = 10015, 10062
_LINK = re.compile(r"https?://[^\s<>\"'|]+")


def links_in(message: discord.Message) -> list[str]:
    """The http(s) links a message shows (its text, then its attachments), in order, once each."""
    found = [m.rstrip(".,;:!?)]*_~`") for m in _LINK.findall(message.content or "")]
    found += [a.url for a in message.attachments]
    return list(dict.fromkeys(link for link in found if link))[:MAX_LINKS_PER_MESSAGE]


async def answer_choices(interaction: discord.Interaction,
                         choices: list[app_commands.Choice[str]]) -> list[app_commands.Choice[str]]:
    """Answer an autocomplete ourselves: when the member typed on and Discord already dropped
    this one (3 seconds), the refusal is expected, not an error for Red's log (discord.py would
    log it). Returns the choices (discord.py sends nothing more once answered)."""
    try:
        await interaction.response.autocomplete(choices)
    except discord.HTTPException as exc:
        log.debug("an autocomplete answer came too late (%s)", exc)
    return choices


@dataclass
class _Asker:
    """Just what `MusicMixin.actor` reads from a context, for an interaction without one
    (autocomplete)."""

    guild: discord.Guild
    author: discord.Member
    bot: Any


class SlashCommands(PlaybackCommands, PlaylistCommands):
    # -- autocomplete ---------------------------------------------------------------------------

    @property
    def suggester(self) -> Suggester:
        found = self.__dict__.get("_suggester")
        if found is None:
            found = self.__dict__["_suggester"] = Suggester()
        return cast(Suggester, found)

    @PlaybackCommands.play.autocomplete("query")
    @PlaybackCommands.playnext.autocomplete("query")
    async def query_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The server's recent tracks and cached titles that match, then search results."""
        guild = interaction.guild
        if self.control is None or not self.ready.is_set() or guild is None:
            return []
        actor = await self.actor(cast(commands.GuildContext, _Asker(guild, cast(discord.Member, interaction.user), self.bot)))

        async def search(text: str) -> list[tuple[str, str | None]]:
            assert self.control is not None
            tracks = await self.control.search(guild.id, actor, text, SEARCH_RESULTS)
            return [(t.title or "", t.webpage_url) for t in tracks]

        found = await self.suggester.suggest(interaction.user.id, current, self._known_tracks(guild.id, current), search)
        return await answer_choices(interaction, [app_commands.Choice(name=s.name, value=s.value) for s in found])

    def _known_tracks(self, guild_id: int, typed: str) -> list[tuple[str, str | None]]:
        """(title, link) of what this server played and queued, newest first, then the lookup
        cache's titles, newest first. The cache is the bot's, not the server's: its titles are
        offered only for typed words (like a search), never as a list of what others played."""
        assert self.control is not None
        queue = self.control.player(guild_id).queue
        recent = [*queue.history[-RECENT_TRACKS:][::-1]]
        if queue.current is not None:
            recent.insert(0, queue.current)
        recent += queue.upcoming[:RECENT_TRACKS]
        known = [(t.title or "", t.webpage_url) for t in recent if t.title]
        if self.service is not None and len(typed.strip()) >= SEARCH_MIN_CHARS:
            for key, meta in self.service.cache.meta.newest(CACHED_TITLES):
                title = meta.get("title")
                if isinstance(title, str) and isinstance(key, str):
                    known.append((title, meta.get("webpage_url") or (key[4:] if key.startswith("url:") else None)))
        return known

    @PlaylistCommands.playlist_start.autocomplete("name")
    async def playlist_name_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The playlists this member can start here: the server's, their own and global ones."""
        guild = interaction.guild
        if self.control is None or not self.ready.is_set() or guild is None:
            return []
        actor = await self.actor(cast(commands.GuildContext, _Asker(guild, cast(discord.Member, interaction.user), self.bot)))
        try:
            scopes = await self.control.playlists.summaries(guild.id, actor, None)
        except ControlError:
            return []
        names = dict.fromkeys(s.name for _, found in scopes for s in found if matches(current[:MAX_CHOICE_TEXT], s.name))
        return await answer_choices(interaction, [app_commands.Choice(name=n[:MAX_CHOICE_TEXT], value=n[:MAX_CHOICE_TEXT])
                                                  for n in list(names)[:MAX_CHOICES]])

    # -- the "Play this" message context menu ---------------------------------------------------

    def play_this_menu(self) -> app_commands.ContextMenu:
        """Made per cog instance (discord.py cogs cannot declare context menus as methods); the
        cog adds it to Red's tree at load and removes it at unload."""
        menu = app_commands.ContextMenu(name=PLAY_THIS, callback=self.play_this)
        menu.guild_only = True
        return menu

    async def play_this(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Queue the links in `message`, each as `play <link>` would (same limits, same guard)."""
        links = links_in(message)
        if interaction.guild is None or not links:
            await interaction.response.send_message(
                _("That message has no link I could play.") if links == [] else _("This works in a server."),
                ephemeral=True)
            return
        ctx = cast(commands.GuildContext, await self.bot.get_context(interaction))
        try:
            await ctx.defer()  # the lookups may take longer than 3 seconds
            await wait_until_ready(self.ready)
        except ControlError as exc:
            await self.say(ctx, exc.sentence)
            return
        except discord.HTTPException:
            log.debug("Play this: the deferral failed (late); answering in the channel")
        for link in links:
            try:
                await self._play(ctx, link, front=False)
            except CommandError as exc:
                await self.say(ctx, exc.message)

    # -- how slash invocations answer -----------------------------------------------------------

    async def defer_slow_slash(self, ctx: commands.Context) -> None:
        """Defer a slash invocation of a command that may need more than 3 seconds, before
        anything else (even the ready gate)."""
        interaction = ctx.interaction
        if interaction is None or interaction.response.is_done() or ctx.command is None:
            return
        if ctx.command.qualified_name in SLOW_COMMANDS:
            try:
                await interaction.response.defer()
            except discord.HTTPException:  # too late already: `say` answers in the channel
                log.debug("could not defer /%s", ctx.command.qualified_name)

    async def refuse_privately(self, ctx: commands.Context, sentence: str) -> bool:
        """A refusal to a slash invocation not yet answered goes to the invoker alone."""
        interaction = ctx.interaction
        if interaction is None or interaction.response.is_done():
            return False
        try:
            await interaction.response.send_message(sentence, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            return False
        return True

    async def say(self, ctx: commands.GuildContext, text: str, *, view: discord.ui.View | None = None) -> discord.Message:
        """Send our sentence; for a slash invocation whose token Discord has forgotten (15
        minutes, or an answer that came too late), in the channel instead."""
        try:
            return await super().say(ctx, text, view=view)
        except discord.NotFound as exc:
            if ctx.interaction is None or exc.code not in (UNKNOWN_WEBHOOK, UNKNOWN_INTERACTION):
                raise
        if view is not None:
            return await ctx.channel.send(text, view=view, allowed_mentions=NO_MENTIONS)
        return await ctx.channel.send(text, allowed_mentions=NO_MENTIONS)

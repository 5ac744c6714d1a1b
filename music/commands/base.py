"""What every command mixin shares: sending safely, finding the player, joining voice."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable, cast

import discord
from redbot.core import commands
from redbot.core.utils.predicates import MessagePredicate

from ..control import Actor, ControlError, MusicControl
from ..engine.track import Track
from ..formatting import safe, track_line
from ..i18n import _
from ..permissions import is_privileged
from ..voiceclient import connected_voice, voice_channel

if TYPE_CHECKING:
    from redbot.core.bot import Red

    from ..player import GuildPlayer, PlayerManager
    from ..resolve.resolver import Resolver
    from ..resolve.service import ResolveService
    from ..store import MusicStore

NO_MENTIONS = discord.AllowedMentions.none()


def discord_has_dave() -> bool:
    """Whether discord.py found `davey` when it was imported (it decides once, at import)."""
    from discord import voice_state

    return bool(getattr(voice_state, "has_dave", True))


class CommandError(commands.UserFeedbackCheckFailure):
    """A sentence for the user; raising it ends the command and changes nothing."""


def listen_for_reply(ctx: commands.GuildContext, timeout: float) -> asyncio.Future[discord.Message]:
    """Start listening for the author's next message in this channel (asyncio.TimeoutError after
    `timeout` s). Call it before the prompt goes out: an answer typed the moment the prompt shows
    can reach the gateway before our send returns, and would be missed."""
    same_author_and_channel = MessagePredicate.same_context(ctx)
    return asyncio.ensure_future(ctx.bot.wait_for("message", check=same_author_and_channel, timeout=timeout))


class _ChatControl:
    """The control layer as chat commands see it: a ControlError becomes a CommandError."""

    def __init__(self, control: object) -> None:  # MusicControl, or one it composes (playlists)
        self._control = control

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._control, name)
        if not callable(attr):
            return attr
        return _refusals_as_command_errors(attr)


def _refusals_as_command_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except ControlError as exc:
                raise CommandError(exc.sentence) from None

        return call_async

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ControlError as exc:
            raise CommandError(exc.sentence) from None

    return call


class MusicMixin:
    """Attributes the Music cog provides to its command mixins."""

    bot: Red
    store: MusicStore
    manager: PlayerManager | None
    control: MusicControl | None
    resolver: Resolver | None
    service: ResolveService | None
    ready: asyncio.Event

    async def say(self, ctx: commands.GuildContext, text: str, *, view: discord.ui.View | None = None) -> discord.Message:
        """Send our own sentence (any remote text in it must already be `safe`)."""
        if view is not None:
            return await ctx.send(text, view=view, allowed_mentions=NO_MENTIONS)
        return await ctx.send(text, allowed_mentions=NO_MENTIONS)

    async def say_and_await_reply(self, ctx: commands.GuildContext, text: str, timeout: float) -> discord.Message:
        """Send `text`, then the author's next message in this channel (see listen_for_reply)."""
        reply = listen_for_reply(ctx, timeout)
        try:
            await self.say(ctx, text)
            return await reply
        finally:
            reply.cancel()  # a no-op once it is done; frees the listener when the send failed

    def player(self, ctx: commands.GuildContext) -> GuildPlayer:
        """The guild's player, to read; changes go through `self.ctl`."""
        return self.ctl.player(ctx.guild.id)  # type: ignore[union-attr]

    @property
    def ctl(self) -> MusicControl:
        """The control layer, with its refusals raised as CommandError (Red shows the sentence)."""
        assert self.control is not None
        return cast(MusicControl, _ChatControl(self.control))

    def current_or_fail(self, ctx: commands.GuildContext) -> Track:
        track = self.player(ctx).queue.current
        if track is None:
            raise CommandError(_("Nothing is playing."))
        return track

    async def actor(self, ctx: commands.GuildContext) -> Actor:
        """Who is asking, as the control layer judges it."""
        return await self.member_actor(ctx.guild, ctx.author)

    async def member_actor(self, guild: discord.Guild, member: discord.Member | discord.User) -> Actor:
        """`member` of `guild` as the control layer judges them (a command's author, a clicker)."""
        bot = self.bot
        is_owner = await bot.is_owner(member)
        moderator = is_owner or await bot.is_mod(member)  # type: ignore[arg-type]
        admin = is_owner or await bot.is_admin(member)  # type: ignore[arg-type]
        if not admin:
            perms = getattr(member, "guild_permissions", None)
            admin = bool(perms is not None and perms.manage_guild)
        vc = connected_voice(guild)
        listening, channel = True, _("the voice channel")
        if vc is not None:
            voice = getattr(member, "voice", None)  # only guild members have a voice state
            listening = voice is not None and voice.channel == vc.channel
            channel = voice_channel(vc).mention
        return Actor(
            user_id=member.id,
            privileged=await is_privileged(bot, self.store.guild(guild.id).dj_role, member),
            moderator=moderator,
            admin=admin,
            listening=listening,
            voice_channel=channel,
            owner=is_owner,
        )

    async def is_privileged(self, ctx: commands.GuildContext) -> bool:
        """Holders of the DJ role (when set), moderators, admins and the owner."""
        return await is_privileged(ctx.bot, self.store.guild(ctx.guild.id).dj_role, ctx.author)

    def human_listeners(self, ctx: commands.GuildContext) -> list[discord.Member]:
        return self.guild_listeners(ctx.guild)

    def guild_listeners(self, guild: discord.Guild) -> list[discord.Member]:
        """The humans in the bot's voice channel of `guild` (who count in a skip vote)."""
        vc = connected_voice(guild)
        if vc is None:
            return []
        return [m for m in voice_channel(vc).members if not m.bot]

    async def join_author(self, ctx: commands.GuildContext) -> discord.VoiceProtocol:
        """Connect to (or move to) the author's voice channel, with clear refusals."""
        guild = ctx.guild
        author = ctx.author
        assert guild is not None
        voice = getattr(author, "voice", None)  # only guild members have a voice state
        if voice is None or voice.channel is None:
            raise CommandError(_("Join a voice channel first."))
        channel = voice.channel
        if not discord_has_dave():
            # Discord closes voice without DAVE (close code 4017) since 2026-03-02
            raise CommandError(
                _("I can't join voice: DAVE encryption support is missing. The bot owner should run "
                "`{clean_prefix}pipinstall davey` (or `{clean_prefix}cog reinstallreqs`) and restart the bot.").format(clean_prefix=ctx.clean_prefix)
            )
        perms = channel.permissions_for(guild.me)
        if not (perms.connect and perms.speak):
            raise CommandError(_("I need the Connect and Speak permissions in {mention}.").format(mention=channel.mention))
        self.ctl.bind(guild.id, None, ctx.channel.id)
        vc = connected_voice(guild)
        if vc is not None:
            if vc.channel == channel:
                self.ctl.bind(guild.id, channel.id, None)
                return vc
            others = [m for m in voice_channel(vc).members if not m.bot]
            if (vc.is_playing() or vc.is_paused()) and others and not await ctx.bot.is_mod(author):
                raise CommandError(_("I'm already playing in {mention}; join that channel.").format(mention=voice_channel(vc).mention))
            await vc.move_to(channel)
            self.ctl.bind(guild.id, channel.id, None)
            return vc
        if perms.connect and channel.user_limit and len(channel.members) >= channel.user_limit and not perms.move_members:
            raise CommandError(_("{mention} is full.").format(mention=channel.mention))
        try:
            vc = await channel.connect(timeout=15.0, self_deaf=True)
        except asyncio.TimeoutError:
            raise CommandError(_("I couldn't connect to {mention} in time; try again.").format(mention=channel.mention)) from None
        except discord.ClientException:
            # another command is connecting meanwhile: use its voice client
            vc = cast("discord.VoiceClient | None", guild.voice_client)
            if vc is None:
                raise CommandError(_("I couldn't connect to {mention}.").format(mention=channel.mention)) from None
        self.ctl.bind(guild.id, channel.id, None)
        return vc

    def queued_reply(self, tracks: list[Track], position: int, title: str | None) -> str:
        if len(tracks) == 1:
            where = _("next") if position == 1 else _("at position {position}").format(position=position)
            return _("Queued {track} {where}.").format(track=track_line(tracks[0]), where=where)
        name = _(" from **{title}**").format(title=safe(title)) if title else ""
        return _("Queued {tracks_count} tracks{name}, starting at position {position}.").format(tracks_count=len(tracks), name=name, position=position)

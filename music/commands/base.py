"""What every command mixin shares: sending safely, finding the player, joining voice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from redbot.core import commands

from ..engine.events import AdvanceKind
from ..engine.track import Track
from ..formatting import safe, track_line
from ..permissions import is_privileged

if TYPE_CHECKING:
    import asyncio

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


class MusicMixin:
    """Attributes the Music cog provides to its command mixins."""

    bot: Red
    store: MusicStore
    manager: PlayerManager | None
    resolver: Resolver | None
    service: ResolveService | None
    ready: asyncio.Event

    async def say(self, ctx: commands.Context, text: str) -> discord.Message:
        """Send our own sentence (any remote text in it must already be `safe`)."""
        return await ctx.send(text, allowed_mentions=NO_MENTIONS)

    def player(self, ctx: commands.Context) -> GuildPlayer:
        assert self.manager is not None and ctx.guild is not None
        return self.manager.get(ctx.guild.id)

    def post(self, ctx: commands.Context, kind: AdvanceKind, **fields: object) -> None:
        assert self.manager is not None and ctx.guild is not None
        self.manager.post(ctx.guild.id, kind, **fields)

    def current_or_fail(self, ctx: commands.Context) -> Track:
        track = self.player(ctx).queue.current
        if track is None:
            raise CommandError("Nothing is playing.")
        return track

    async def require_listener(self, ctx: commands.Context) -> None:
        """Control commands: the author must be in the bot's voice channel (mods are exempt)."""
        guild = ctx.guild
        assert guild is not None
        vc = guild.voice_client
        if vc is None or not vc.is_connected():
            return
        author = ctx.author
        voice = getattr(author, "voice", None)  # only guild members have a voice state
        in_channel = voice is not None and voice.channel == vc.channel
        if in_channel or await ctx.bot.is_mod(author) or await ctx.bot.is_owner(author):
            return
        raise CommandError(f"Join {vc.channel.mention} to control the music.")

    async def is_dj(self, ctx: commands.Context) -> bool:
        """DJs, moderators, admins and the owner; everyone when no DJ role is set."""
        if self.store.guild(ctx.guild.id).dj_role is None:
            return True
        return await self.is_privileged(ctx)

    async def is_privileged(self, ctx: commands.Context) -> bool:
        """Holders of the DJ role (when set), moderators, admins and the owner."""
        return await is_privileged(ctx.bot, self.store.guild(ctx.guild.id).dj_role, ctx.author)

    async def require_dj(self, ctx: commands.Context, action: str, *, requester_may: bool = False) -> None:
        """With a DJ role set, only DJs (and mods) may `action`; the current track's requester
        too when `requester_may`. Everyone must also be listening (see require_listener)."""
        await self.require_listener(ctx)
        if await self.is_dj(ctx):
            return
        current = self.player(ctx).queue.current
        if requester_may and current is not None and current.requester_id == ctx.author.id:
            return
        raise CommandError(f"Only DJs can {action} here.")

    def human_listeners(self, ctx: commands.Context) -> list[discord.Member]:
        vc = ctx.guild.voice_client
        if vc is None or not vc.is_connected():
            return []
        return [m for m in vc.channel.members if not m.bot]

    async def join_author(self, ctx: commands.Context) -> discord.VoiceProtocol:
        """Connect to (or move to) the author's voice channel, with clear refusals."""
        guild = ctx.guild
        author = ctx.author
        assert guild is not None
        voice = getattr(author, "voice", None)  # only guild members have a voice state
        if voice is None or voice.channel is None:
            raise CommandError("Join a voice channel first.")
        channel = voice.channel
        if not discord_has_dave():
            # Discord closes voice without DAVE (close code 4017) since 2026-03-02
            raise CommandError(
                "I can't join voice: DAVE encryption support is missing. The bot owner should run "
                f"`{ctx.clean_prefix}pipinstall davey` (or `{ctx.clean_prefix}cog reinstallreqs`) and restart the bot."
            )
        perms = channel.permissions_for(guild.me)
        if not (perms.connect and perms.speak):
            raise CommandError(f"I need the Connect and Speak permissions in {channel.mention}.")
        player = self.player(ctx)
        player.text_channel_id = ctx.channel.id
        vc = guild.voice_client
        if vc is not None and vc.is_connected():
            if vc.channel == channel:
                player.channel_id = channel.id
                return vc
            others = [m for m in vc.channel.members if not m.bot]
            if (vc.is_playing() or vc.is_paused()) and others and not await ctx.bot.is_mod(author):
                raise CommandError(f"I'm already playing in {vc.channel.mention}; join that channel.")
            await vc.move_to(channel)
            player.channel_id = channel.id
            return vc
        if perms.connect and channel.user_limit and len(channel.members) >= channel.user_limit and not perms.move_members:
            raise CommandError(f"{channel.mention} is full.")
        try:
            vc = await channel.connect(timeout=15.0, self_deaf=True)
        except TimeoutError:
            raise CommandError(f"I couldn't connect to {channel.mention} in time; try again.") from None
        except discord.ClientException:
            vc = guild.voice_client
            if vc is None:
                raise CommandError(f"I couldn't connect to {channel.mention}.") from None
        player.channel_id = channel.id
        return vc

    def queued_reply(self, tracks: list[Track], position: int, title: str | None) -> str:
        if len(tracks) == 1:
            where = "next" if position == 1 else f"at position {position}"
            return f"Queued {track_line(tracks[0])} {where}."
        name = f" from **{safe(title)}**" if title else ""
        return f"Queued {len(tracks)} tracks{name}, starting at position {position}."

"""Queue commands (`queue`, `queue remove|move|clear|shuffle`) and `music reschedule`."""

from __future__ import annotations

import discord
from redbot.core import commands
from redbot.core.utils.menus import menu

from ..engine.events import AdvanceKind
from ..engine.queue import QueueError
from ..engine.timefmt import format_duration
from ..formatting import track_line
from .base import CommandError, MusicMixin

PAGE_SIZE = 10


class QueueCommands(MusicMixin):
    @commands.group(invoke_without_command=True)
    @commands.guild_only()
    async def queue(self, ctx: commands.Context) -> None:
        """Show the queue. Subcommands change it."""
        player = self.player(ctx)
        current = player.queue.current
        upcoming = player.queue.upcoming
        if current is None and not upcoming:
            await self.say(ctx, "The queue is empty.")
            return
        head = f"Now: {track_line(current)}" if current else "Nothing playing."
        total = sum(t.duration or 0 for t in upcoming)
        footer = f"{len(upcoming)} track(s) queued, {format_duration(total)} in all. Repeat {player.queue.repeat.value}, shuffle {'on' if player.queue.shuffle else 'off'}."
        pages: list[str] = []
        for start in range(0, max(len(upcoming), 1), PAGE_SIZE):
            lines = [head, ""]
            lines += [f"`{i}.` {track_line(t)}" for i, t in enumerate(upcoming[start : start + PAGE_SIZE], start + 1)]
            pages_total = max(1, -(-len(upcoming) // PAGE_SIZE))
            lines += ["", f"{footer} Page {start // PAGE_SIZE + 1}/{pages_total}."]
            pages.append("\n".join(lines))
        if await ctx.embed_requested():
            embeds = [discord.Embed(title="Queue", description=p) for p in pages]
            if len(embeds) == 1:
                await ctx.send(embed=embeds[0], allowed_mentions=discord.AllowedMentions.none())
            else:
                await menu(ctx, embeds)
        elif len(pages) == 1:
            await self.say(ctx, pages[0])
        else:
            await menu(ctx, pages)

    @queue.command(name="remove")
    async def queue_remove(self, ctx: commands.Context, position: int) -> None:
        """Remove the track at a position of the queue."""
        await self.require_listener(ctx)
        player = self.player(ctx)
        try:
            track = player.queue.remove(position)
        except QueueError as exc:
            raise CommandError(str(exc)) from None
        self._changed(ctx)
        await self.say(ctx, f"Removed {track_line(track)}.")

    @queue.command(name="move")
    async def queue_move(self, ctx: commands.Context, from_position: int, to_position: int) -> None:
        """Move a track to another position of the queue."""
        await self.require_listener(ctx)
        player = self.player(ctx)
        try:
            track = player.queue.move(from_position, to_position)
        except QueueError as exc:
            raise CommandError(str(exc)) from None
        self._changed(ctx)
        await self.say(ctx, f"Moved {track_line(track)} to position {to_position}.")

    @queue.command(name="clear")
    async def queue_clear(self, ctx: commands.Context) -> None:
        """Remove every queued track (the current one keeps playing)."""
        await self.require_listener(ctx)
        removed = self.player(ctx).queue.clear()
        self._changed(ctx)
        await self.say(ctx, f"Cleared {removed} track(s) from the queue.")

    @queue.command(name="shuffle")
    async def queue_shuffle(self, ctx: commands.Context) -> None:
        """Shuffle the queued tracks once."""
        await self.require_listener(ctx)
        player = self.player(ctx)
        if len(player.queue) < 2:
            raise CommandError("There is nothing to shuffle.")
        player.queue.shuffle_upcoming()
        self._changed(ctx)
        await self.say(ctx, f"Shuffled {len(player.queue)} tracks.")

    def _changed(self, ctx: commands.Context) -> None:
        assert self.manager is not None
        self.manager.save(self.player(ctx))
        self.post(ctx, AdvanceKind.QUEUE_CHANGED)

    @commands.group(name="music")
    @commands.guild_only()
    async def music_group(self, ctx: commands.Context) -> None:
        """Music player tools."""

    @music_group.command(name="reschedule")
    @commands.admin_or_permissions(manage_guild=True)
    async def music_reschedule(self, ctx: commands.Context) -> None:
        """Make the player look at this server's queue again (for when it seems stuck)."""
        player = self.player(ctx)
        self.post(ctx, AdvanceKind.RESCHEDULE)
        await self.say(ctx, f"Rescheduled: the player was {player.state.value}; it will pick up the queue again.")

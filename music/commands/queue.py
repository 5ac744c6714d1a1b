"""Queue commands (`queue`, `queue remove|move|clear|shuffle`) and `music reschedule`."""

from __future__ import annotations

from redbot.core import commands
from redbot.core.utils.chat_formatting import box, pagify

from ..formatting import safe, track_line
from ..i18n import _
from . import hybrid
from .base import MusicMixin
from .menus import queue_pages, send_pages


class QueueCommands(MusicMixin):
    @hybrid.group(fallback="show")  # `/queue show`: Discord cannot run a group itself
    @commands.guild_only()
    async def queue(self, ctx: commands.GuildContext) -> None:
        """Show the queue. Subcommands change it."""
        pages = queue_pages(self.player(ctx))
        if not pages:
            await self.say(ctx, _("The queue is empty."))
            return
        await send_pages(self, ctx, pages, as_embeds=await ctx.embed_requested())

    @queue.command(name="remove")
    async def queue_remove(self, ctx: commands.GuildContext, *, target: str) -> None:
        """Remove from the queue: a position (`3`), a range (`3-7`) or a member's tracks
        (`@member`). DJs remove any track; others their own."""
        from .queue_tools import remove_target  # the queue tools hang on this module's group

        await remove_target(self, ctx, target)

    @queue.command(name="move")
    async def queue_move(self, ctx: commands.GuildContext, from_position: int, to_position: int) -> None:
        """Move a track to another position of the queue."""
        track = self.ctl.move(ctx.guild.id, await self.actor(ctx), from_position, to_position)
        await self.say(ctx, _("Moved {track} to position {to_position}.").format(track=track_line(track), to_position=to_position))

    @queue.command(name="clear")
    async def queue_clear(self, ctx: commands.GuildContext) -> None:
        """Remove every queued track (the current one keeps playing)."""
        removed = self.ctl.clear(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, _("Cleared {removed} track(s) from the queue.").format(removed=removed))

    @queue.command(name="shuffle")
    async def queue_shuffle(self, ctx: commands.GuildContext) -> None:
        """Shuffle the queued tracks once."""
        count = self.ctl.shuffle_once(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, _("Shuffled {count} tracks.").format(count=count))

    @commands.group(name="music")
    @commands.guild_only()
    async def music_group(self, ctx: commands.GuildContext) -> None:
        """Music player tools."""

    @music_group.command(name="reschedule")
    @commands.admin_or_permissions(manage_guild=True)
    async def music_reschedule(self, ctx: commands.GuildContext) -> None:
        """Make the player look at this server's queue again (for when it seems stuck)."""
        state = self.ctl.reschedule(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, _("Rescheduled: the player was {state}; it will pick up the queue again.").format(state=state.value))

    @music_group.command(name="status")
    async def music_status(self, ctx: commands.GuildContext) -> None:
        """Show the track-lookup workers: jobs waiting and running, failures, cache, breakers."""
        # a server sees its own lookups; the bot owner sees every server's
        status = self.ctl.lookup_status(ctx.guild.id, await self.actor(ctx))
        order = ("urgent", "high", "normal", "low")
        workers = status["workers"]
        lines = [
            _("Workers: {busy}/{workers} busy").format(busy=workers['busy'], workers=workers['size'])
            + (_(", {workers} stuck in a cancelled lookup").format(workers=workers['abandoned']) if workers.get("abandoned") else ""),
            _("Waiting: ") + ", ".join(f"{p} {status['pending'].get(p, 0)}" for p in order),
            _("Running: ") + ", ".join(f"{p} {status['running'].get(p, 0)}" for p in order),
        ]
        for job in status["running_jobs"][:10]:
            progress = f"{job['done']}/{job['total']}" if job.get("total") else f"{job.get('percent') or 0:.0f}%"
            lines.append(_("  job {id}: {stage} {progress} {description}").format(id=job['id'], stage=job['stage'], progress=progress, description=safe(job['description'], limit=60)))
        hit_rate = status["cache"].get("hit_rate")
        lines.append(_("Cache hit rate: ") + (f"{hit_rate:.0%}" if hit_rate is not None else _("no lookups yet")))
        breakers = [f"{name} {b['state']}" + (_(" (retry in {seconds:.0f}s)").format(seconds=b['retry_in']) if b["state"] == "open" else "")
                    for name, b in status["breakers"].items()]
        lines.append(_("Sites: ") + (", ".join(breakers) if breakers else _("none used yet")))
        failures = status["recent_failures"][-5:]
        if failures:
            lines.append(_("Recent failures:"))
            lines += [f"  {safe(f['description'], limit=50)}: {safe(f['reason'], limit=150)}" for f in failures]
        await self.say(ctx, box("\n".join(lines)))

    @music_group.command(name="cancel")
    async def music_cancel(self, ctx: commands.GuildContext, job: int) -> None:
        """Cancel a track lookup of this server (yours, or anyone's if you are an admin)."""
        self.ctl.cancel_lookup(ctx.guild.id, await self.actor(ctx), job)
        await self.say(ctx, _("Cancelled job {job_id}.").format(job_id=job))

    @music_group.command(name="stats")
    @commands.is_owner()
    async def music_stats(self, ctx: commands.GuildContext) -> None:
        """Per-player audio figures: frames sent, silence sent (nulled), underruns (deficit),
        gapless track changes, how the audio is made (copied in process, copied by ffmpeg or
        transcoded), prebuffer depth and the pid of the process making it (its ffmpeg, or the shared
        transcoder that many streams use)."""
        assert self.manager is not None
        rows = []
        for guild_id, player in sorted(self.manager.players.items()):
            source = player.source
            if source is None:
                rows.append(_("{guild_id}  {state:<10}  no audio source").format(guild_id=guild_id, state=player.state.value))
                continue
            stats = source.stats
            stream = source.current_stream
            mode = stream.mode if stream is not None else "-"
            depth = stream.buffered if stream is not None else 0
            pid = stream.pid if stream is not None else None
            rows.append(
                _("{guild_id}  {state:<10}  sent {frames_sent}  nulled {frames_silence}"
                "  deficit {underruns}  gapless {gapless_switches}  {mode}"
                "  buffer {depth}  process {pid}").format(guild_id=guild_id, state=player.state.value, frames_sent=stats.frames_sent, frames_silence=stats.frames_silence, underruns=stats.underruns, gapless_switches=stats.gapless_switches, mode=mode, depth=depth, pid=pid or '-')
            )
        if not rows:
            await self.say(ctx, _("No players."))
            return
        for page in pagify("\n".join(rows), page_length=1900):
            await self.say(ctx, box(page))

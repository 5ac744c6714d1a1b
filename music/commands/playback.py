"""Playback commands: play, playnext, search, local, now, pause, skip, seek, volume, ..."""

from __future__ import annotations

import asyncio
import contextlib
import math

import discord
from redbot.core import commands
from redbot.core.utils.chat_formatting import box, pagify
from redbot.core.utils.predicates import MessagePredicate

from ..engine.admission import AdmissionError, admit
from ..engine.events import AdvanceKind
from ..engine.queue import RepeatMode
from ..engine.timefmt import format_duration, parse_seek, progress_bar
from ..engine.track import Track
from ..formatting import safe, track_line
from ..player import PlayerState
from ..policy import PolicyError, resolve_local_path
from ..resolve.jobs import Priority
from ..resolve.local import list_local_files, resolve_local
from ..resolve.resolver import ResolveError
from ..resolve.service import PlaylistExpansion
from .base import CommandError, MusicMixin

MAX_QUERY_LENGTH = 500
SEARCH_RESULTS = 5
SEARCH_TIMEOUT = 30.0
PROGRESS_EDIT_INTERVAL = 1.0  # seconds between edits of a playlist's progress line


class PlaybackCommands(MusicMixin):
    # -- adding music -----------------------------------------------------------------------------

    @commands.command()
    @commands.guild_only()
    @commands.bot_has_permissions(send_messages=True)
    async def play(self, ctx: commands.Context, *, query: str) -> None:
        """Play a URL or the first search result for some text.

        A playlist URL queues its entries (up to the server's playlist limit).
        """
        await self._play(ctx, query, front=False)

    @commands.command()
    @commands.guild_only()
    async def playnext(self, ctx: commands.Context, *, query: str) -> None:
        """Like `play`, but puts the track at the front of the queue."""
        await self._play(ctx, query, front=True)

    async def _play(self, ctx: commands.Context, query: str, *, front: bool) -> None:
        query = query.strip().strip("<>")  # <url> suppresses Discord's embed; accept it
        if len(query) > MAX_QUERY_LENGTH:
            raise CommandError(f"That is too long: keep it under {MAX_QUERY_LENGTH} characters.")
        settings = self.store.guild(ctx.guild.id)
        player = self.player(ctx)
        # the track that will play at once goes ahead of everyone's background work
        idle = player.queue.current is None and player.state is PlayerState.IDLE
        assert self.service is not None
        # Joining voice (round trips to Discord) and the lookup (yt-dlp) don't depend on each
        # other: overlap them, so a first play waits for the slower one, not for both. A failed
        # join still ends the command with its sentence, and the lookup is dropped.
        join = asyncio.ensure_future(self.join_author(ctx))
        lookup = asyncio.ensure_future(
            self.service.resolve(
                query,
                guild_id=ctx.guild.id,
                requester_id=ctx.author.id,
                limit=max(1, settings.max_playlist),
                priority=Priority.URGENT if idle else Priority.NORMAL,
            )
        )
        # a lookup dropped after it failed must not log "exception was never retrieved"
        lookup.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            async with ctx.typing():
                await join
                try:
                    result = await lookup
                except (ResolveError, PolicyError) as exc:
                    raise CommandError(str(exc)) from None
        finally:
            for task in (join, lookup):
                if not task.done():
                    task.cancel()
            joined = join.done() and not join.cancelled() and join.exception() is None
            if not joined and lookup.done() and not lookup.cancelled() and lookup.exception() is None:
                # a playlist found for a play that failed to join: stop listing its entries
                rest = lookup.result().rest
                if rest is not None:
                    self.service.cancel(rest.job_id or 0, by_user_id=ctx.author.id, is_admin=True)
        if result.rest is None:
            await self._enqueue(ctx, result.tracks, front=front, title=result.title, errors=result.errors)
            return
        # a playlist: its first entry is queued (and plays) now; the rest arrive in batches
        try:
            position, reply = await self._enqueue(ctx, result.tracks, front=front, title=result.title)
        except CommandError:
            self.service.cancel(result.rest.job_id or 0, by_user_id=ctx.author.id, is_admin=True)
            raise
        insert_at = position + len(result.tracks) if front else None
        assert self.manager is not None
        self.manager.spawn(self._expand_playlist(ctx, result.rest, reply, insert_at))

    async def _expand_playlist(
        self,
        ctx: commands.Context,
        rest: PlaylistExpansion,
        reply: discord.Message,
        insert_at: int | None,
    ) -> None:
        """Queue a playlist's remaining batches and keep the reply's progress line current
        (at most one edit a second, within Discord's rate limits)."""
        player = self.player(ctx)
        settings = self.store.guild(ctx.guild.id)
        last_edit = 0.0
        title = safe(rest.title) or "the playlist"
        counts = [0, 0]  # added, left out: kept here so a cancelled load still reports them

        async def show_progress(added: int, left_out: int) -> None:
            nonlocal last_edit
            counts[:] = [added, left_out]
            now = asyncio.get_running_loop().time()
            if now - last_edit < PROGRESS_EDIT_INTERVAL:
                return
            last_edit = now
            expected = rest.expected or max(rest.received, 1)
            bar = progress_bar(rest.received, expected, width=20)
            await edit(
                f"Loading **{title}**: `{bar}` {rest.received}/{expected} "
                f"(`music cancel {rest.job_id}` stops it)"
            )

        async def edit(text: str) -> None:
            with contextlib.suppress(discord.HTTPException):
                await reply.edit(content=text, allowed_mentions=discord.AllowedMentions.none())

        assert self.manager is not None
        try:
            counts[:] = await self.manager.queue_playlist_rest(player, rest, insert_at, show_progress)
        finally:
            added, left_out = counts
            total = added + 1  # the first entry was queued with the reply
            parts = [f"Queued {total} track{'s' if total != 1 else ''} from **{title}**."]
            if left_out:
                parts.append(f"{left_out} left out by this server's queue or length limits.")
            if rest.truncated:
                parts.append(f"The playlist is longer than this server's limit of {settings.max_playlist}.")
            parts += [safe(e, limit=300) for e in rest.errors]
            await edit(" ".join(parts))

    async def _enqueue(
        self,
        ctx: commands.Context,
        tracks: list[Track],
        *,
        front: bool,
        title: str | None = None,
        errors: list[str] | None = None,
    ) -> tuple[int, discord.Message]:
        """Queue `tracks` within the server's limits and reply; returns (position, reply)."""
        player = self.player(ctx)
        try:
            admission = admit(
                player.queue,
                tracks,
                self.store.guild(ctx.guild.id),
                requester_id=ctx.author.id,
                privileged=await self.is_privileged(ctx),
                front=front,
                describe=track_line,
            )
        except AdmissionError as exc:
            raise CommandError(exc.sentence) from None
        tracks, notes = admission.tracks, admission.notes
        if errors:
            notes.append(f"{len(errors)} entr{'y' if len(errors) == 1 else 'ies'} could not be read.")
        starting = player.queue.current is None and player.state is PlayerState.IDLE
        position = player.queue.add(tracks, front=front, at=admission.at)
        assert self.manager is not None
        self.manager.queue_changed(player)
        if starting and len(tracks) == 1:
            reply = f"Playing {track_line(tracks[0])}."
        else:
            reply = self.queued_reply(tracks, position, title)
        message = await self.say(ctx, " ".join([reply, *notes]))
        return position, message

    @commands.command()
    @commands.guild_only()
    async def search(self, ctx: commands.Context, *, query: str) -> None:
        """Search and pick a result to queue by typing its number."""
        if len(query) > MAX_QUERY_LENGTH:
            raise CommandError(f"That is too long: keep it under {MAX_QUERY_LENGTH} characters.")
        assert self.service is not None
        async with ctx.typing():
            try:
                results = await self.service.search(
                    query, n=SEARCH_RESULTS, guild_id=ctx.guild.id, requester_id=ctx.author.id
                )
            except (ResolveError, PolicyError) as exc:
                raise CommandError(str(exc)) from None
        if not results:
            raise CommandError("No results.")
        lines = [
            f"`{i}.` {track_line(t)}" + (f" by {safe(t.uploader, limit=40)}" if t.uploader else "")
            for i, t in enumerate(results, 1)
        ]
        await self.say(ctx, "\n".join(lines) + f"\nType a number from 1 to {len(results)} to queue it, or `cancel`.")
        predicate = MessagePredicate.same_context(ctx)
        try:
            reply = await ctx.bot.wait_for("message", check=predicate, timeout=SEARCH_TIMEOUT)
        except TimeoutError:
            await self.say(ctx, "Search timed out; nothing was queued.")
            return
        choice = reply.content.strip()
        if not choice.isdigit() or not 1 <= int(choice) <= len(results):
            await self.say(ctx, "Search cancelled; nothing was queued.")
            return
        picked = results[int(choice) - 1]
        await self.join_author(ctx)
        await self._enqueue(ctx, [picked], front=False)  # resolved when its turn comes

    @commands.command()
    @commands.guild_only()
    async def local(self, ctx: commands.Context, *, path: str | None = None) -> None:
        """Play a file from the bot owner's local folder; with no path, list the folder."""
        if path is None:
            await self._list_local(ctx)
            return
        await self._play_local(ctx, path, front=False)

    @commands.command()
    @commands.guild_only()
    async def localnext(self, ctx: commands.Context, *, path: str) -> None:
        """Like `local`, but puts the file at the front of the queue."""
        await self._play_local(ctx, path, front=True)

    def _local_folder(self):
        from pathlib import Path

        folder = self.store.globals.local_folder
        if not folder:
            raise CommandError("Local files are turned off: the bot owner has not set a local folder (`musicset localfolder`).")
        return Path(folder)

    async def _list_local(self, ctx: commands.Context) -> None:
        folder = self._local_folder()
        files = await asyncio.to_thread(list_local_files, folder, 1000)
        if not files:
            await self.say(ctx, "The local folder has no audio files.")
            return
        text = "\n".join(str(f) for f in files)
        for page in pagify(text, page_length=1900):
            await ctx.send(box(page), allowed_mentions=discord.AllowedMentions.none())

    async def _play_local(self, ctx: commands.Context, path: str, *, front: bool) -> None:
        folder = self._local_folder()
        try:
            await asyncio.to_thread(resolve_local_path, folder, path)
        except PolicyError as exc:
            raise CommandError(str(exc)) from None
        await self.join_author(ctx)
        try:
            track = await resolve_local(folder, path, ctx.author.id)
        except (PolicyError, ResolveError) as exc:
            raise CommandError(str(exc)) from None
        await self._enqueue(ctx, [track], front=front)

    # -- the current track ------------------------------------------------------------------------

    @commands.command()
    @commands.guild_only()
    async def now(self, ctx: commands.Context) -> None:
        """Show the current track and where it is."""
        player = self.player(ctx)
        track = self.current_or_fail(ctx)
        position = player.position
        bar = progress_bar(position, track.duration) if track.duration else ""
        state = {PlayerState.PAUSED: "Paused", PlayerState.LOADING: "Loading"}.get(player.state, "Playing")
        timing = f"{format_duration(position)} / {format_duration(track.duration) if track.duration else 'live' if track.is_live else '?'}"
        requester = f"<@{track.requester_id}>" if track.requester_id else "someone"
        if await ctx.embed_requested():
            embed = discord.Embed(title=safe(track.title) or "Unknown title", url=track.webpage_url or None)
            embed.description = f"{bar}\n{timing}" if bar else timing
            embed.set_author(name=state)
            embed.add_field(name="Requested by", value=requester)
            embed.add_field(name="Volume", value=f"{player.volume}%")
            embed.add_field(name="Repeat", value=player.queue.repeat.value)
            await ctx.send(embed=embed, allowed_mentions=discord.AllowedMentions.none())
        else:
            lines = [f"{state}: {track_line(track)}, requested by {requester}"]
            if bar:
                lines.append(f"`{bar}` {timing}")
            else:
                lines.append(timing)
            await self.say(ctx, "\n".join(lines))

    @commands.command()
    @commands.guild_only()
    async def pause(self, ctx: commands.Context) -> None:
        """Pause the music."""
        await self.require_listener(ctx)
        player = self.player(ctx)
        self.current_or_fail(ctx)
        if player.state is PlayerState.PAUSED:
            raise CommandError("Already paused; use `resume`.")
        self.post(ctx, AdvanceKind.PAUSE)
        await self.say(ctx, "Paused.")

    @commands.command()
    @commands.guild_only()
    async def resume(self, ctx: commands.Context) -> None:
        """Resume paused music."""
        await self.require_listener(ctx)
        player = self.player(ctx)
        self.current_or_fail(ctx)
        if player.state is not PlayerState.PAUSED:
            raise CommandError("The music isn't paused.")
        self.post(ctx, AdvanceKind.UNPAUSE)
        await self.say(ctx, "Resumed.")

    @commands.command()
    @commands.guild_only()
    async def skip(self, ctx: commands.Context) -> None:
        """Skip the current track (with a DJ role set, others vote to skip)."""
        await self.require_listener(ctx)
        track = self.current_or_fail(ctx)
        player = self.player(ctx)
        if not await self.is_dj(ctx) and track.requester_id != ctx.author.id:
            voters = player.skip_votes.setdefault(track.id, set())
            voters.add(ctx.author.id)
            listeners = {m.id for m in self.human_listeners(ctx)}
            percent = self.store.guild(ctx.guild.id).vote_percent
            needed = max(1, math.ceil(len(listeners) * percent / 100))
            votes = len(voters & listeners)
            if votes < needed:
                await self.say(ctx, f"Vote to skip counted: {votes}/{needed}.")
                return
            await self.say(ctx, f"Vote passed ({votes}/{needed}).")
        self.post(ctx, AdvanceKind.SKIP)
        await self.say(ctx, f"Skipped {track_line(track)}.")

    @commands.command()
    @commands.guild_only()
    async def skipto(self, ctx: commands.Context, position: int) -> None:
        """Skip to a track in the queue; the ones before it are dropped."""
        await self.require_dj(ctx, "skip ahead")
        player = self.player(ctx)
        if not 1 <= position <= len(player.queue):
            raise CommandError(f"Pick a position from 1 to {len(player.queue)}." if len(player.queue) else "The queue is empty.")
        track = player.queue.upcoming[position - 1]
        self.post(ctx, AdvanceKind.SKIP_TO, position=position)
        await self.say(ctx, f"Skipping to {track_line(track)}.")

    @commands.command()
    @commands.guild_only()
    async def prev(self, ctx: commands.Context) -> None:
        """Play the previous track again."""
        await self.require_listener(ctx)
        player = self.player(ctx)
        if not player.queue.history:
            raise CommandError("There is no previous track.")
        track = player.queue.history[-1]
        await self.join_author(ctx)
        self.post(ctx, AdvanceKind.PREVIOUS)
        await self.say(ctx, f"Going back to {track_line(track)}.")

    @commands.command()
    @commands.guild_only()
    async def stop(self, ctx: commands.Context) -> None:
        """Stop the music and clear the queue."""
        await self.require_dj(ctx, "stop the music")
        player = self.player(ctx)
        if player.queue.current is None and not len(player.queue) and player.state is not PlayerState.BACKGROUND:
            raise CommandError("Nothing is playing and the queue is empty.")
        self.post(ctx, AdvanceKind.STOP)
        await self.say(ctx, "Stopped, and cleared the queue.")

    @commands.command()
    @commands.guild_only()
    async def disconnect(self, ctx: commands.Context) -> None:
        """Leave the voice channel. The queue is kept."""
        await self.require_dj(ctx, "disconnect me")
        vc = ctx.guild.voice_client
        if vc is None:
            raise CommandError("I'm not in a voice channel.")
        self.post(ctx, AdvanceKind.DISCONNECT)
        await self.say(ctx, "Disconnected. The queue is kept; `play` or `summon` brings me back.")

    @commands.command()
    @commands.guild_only()
    async def summon(self, ctx: commands.Context) -> None:
        """Bring the bot to your voice channel (and resume the queue there)."""
        vc = await self.join_author(ctx)
        player = self.player(ctx)
        if player.queue.current is not None or len(player.queue):
            self.post(ctx, AdvanceKind.RESCHEDULE)
        await self.say(ctx, f"Joined {vc.channel.mention}.")

    @commands.command()
    @commands.guild_only()
    async def seek(self, ctx: commands.Context, position: str) -> None:
        """Jump within the track: `90`, `1:30`, `+10` or `-10`."""
        await self.require_dj(ctx, "seek", requester_may=True)
        player = self.player(ctx)
        track = self.current_or_fail(ctx)
        if track.is_live:
            raise CommandError("Live streams can't be sought.")
        try:
            target = parse_seek(position, position=player.position, duration=track.duration)
        except ValueError as exc:
            raise CommandError(safe(str(exc), limit=300)) from None
        self.post(ctx, AdvanceKind.SEEK, position=target)
        await self.say(ctx, f"Seeking to {format_duration(target)}.")

    @commands.command()
    @commands.guild_only()
    async def volume(self, ctx: commands.Context, percent: int | None = None) -> None:
        """Show or set the volume, from 0 to 150 percent."""
        player = self.player(ctx)
        if percent is None:
            await self.say(ctx, f"Volume: {player.volume}%.")
            return
        await self.require_dj(ctx, "change the volume")
        if not 0 <= percent <= 150:
            raise CommandError("Pick a volume from 0 to 150.")
        if player.queue.current is None or player.state is PlayerState.IDLE:
            player.volume = percent
            assert self.manager is not None
            self.manager.save(player)
        else:
            self.post(ctx, AdvanceKind.VOLUME, position=percent)
        await self.say(ctx, f"Volume set to {percent}%.")

    @commands.command()
    @commands.guild_only()
    async def repeat(self, ctx: commands.Context, mode: str | None = None) -> None:
        """Show or set repeat: `off`, `track` or `queue`."""
        player = self.player(ctx)
        if mode is None:
            await self.say(ctx, f"Repeat is {player.queue.repeat.value}.")
            return
        await self.require_listener(ctx)
        try:
            player.queue.repeat = RepeatMode(mode.lower())
        except ValueError:
            raise CommandError("Repeat can be `off`, `track` or `queue`.") from None
        assert self.manager is not None
        self.manager.save(player)
        self.post(ctx, AdvanceKind.QUEUE_CHANGED)
        await self.say(ctx, f"Repeat is now {player.queue.repeat.value}.")

    @commands.command()
    @commands.guild_only()
    async def shuffle(self, ctx: commands.Context) -> None:
        """Turn shuffle play on or off (`queue shuffle` shuffles the queue once)."""
        await self.require_listener(ctx)
        player = self.player(ctx)
        player.queue.shuffle = not player.queue.shuffle
        assert self.manager is not None
        self.manager.save(player)
        self.post(ctx, AdvanceKind.QUEUE_CHANGED)
        await self.say(ctx, f"Shuffle is {'on' if player.queue.shuffle else 'off'}.")


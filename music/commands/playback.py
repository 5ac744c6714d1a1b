"""Playback commands: play, playnext, search, local, now, pause, skip, seek, volume, ..."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Optional

import discord
from discord import app_commands
from redbot.core import commands
from redbot.core.utils.chat_formatting import box, pagify

from ..control import Actor, ControlError, Intent, clean_query
from ..control.content import MAX_VOLUME_CEILING
from ..engine.admission import summarise_refusals
from ..engine.timefmt import format_duration, progress_bar
from ..engine.track import Track
from ..formatting import safe, track_line
from ..i18n import _
from ..player import PlayerState
from ..policy import PolicyError, resolve_local_path
from ..resolve.local import list_local_files, resolve_local
from ..resolve.resolver import ResolveError
from ..resolve.service import PlaylistExpansion
from . import hybrid
from .base import CommandError, MusicMixin
from .filters import sound_line
from .menus import pick_result

SEARCH_RESULTS = 5
SEARCH_TIMEOUT = 30.0
PROGRESS_EDIT_INTERVAL = 1.0  # seconds between edits of a playlist's progress line


class PlaybackCommands(MusicMixin):
    # -- adding music -----------------------------------------------------------------------------

    @hybrid.command()
    @commands.guild_only()
    @commands.bot_has_permissions(send_messages=True)
    @app_commands.describe(query="A link, or words to search for")
    async def play(self, ctx: commands.GuildContext, *, query: str) -> None:
        """Play a URL or the first search result for some text.

        A playlist URL queues its entries (up to the server's playlist limit).
        """
        await self._play(ctx, query, front=False)

    @hybrid.command()
    @commands.guild_only()
    @app_commands.describe(query="A link, or words to search for")
    async def playnext(self, ctx: commands.GuildContext, *, query: str) -> None:
        """Like `play`, but puts the track at the front of the queue."""
        await self._play(ctx, query, front=True)

    async def _play(self, ctx: commands.GuildContext, query: str, *, front: bool) -> None:
        actor = await self.actor(ctx)
        guild_id = ctx.guild.id
        try:
            clean_query(query)  # a bad query is refused before anything starts
        except ControlError as exc:
            raise CommandError(exc.sentence) from None
        # Joining voice (round trips to Discord) and the lookup (yt-dlp) don't depend on each
        # other: overlap them, so a first play waits for the slower one, not for both. A failed
        # join still ends the command with its sentence, and the lookup is dropped.
        join = asyncio.ensure_future(self.join_author(ctx))
        lookup = asyncio.ensure_future(self.ctl.lookup(guild_id, actor, query))
        # a lookup dropped after it failed must not log "exception was never retrieved"
        lookup.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            async with ctx.typing():
                await join
                result = await lookup
        finally:
            for task in (join, lookup):
                if not task.done():
                    task.cancel()
            joined = join.done() and not join.cancelled() and join.exception() is None
            if not joined and lookup.done() and not lookup.cancelled() and lookup.exception() is None:
                # a playlist found for a play that failed to join: stop listing its entries
                self.ctl.drop_playlist(lookup.result().rest)
        if result.rest is None:
            await self._enqueue(ctx, actor, result.tracks, front=front, title=result.title, errors=result.errors)
            return
        # a playlist: its first entry is queued (and plays) now; the rest arrive in batches
        try:
            position, reply, first = await self._enqueue(
                ctx, actor, result.tracks, front=front, title=result.title, more_to_come=True)
        except Exception:
            self.ctl.drop_playlist(result.rest)
            raise
        insert_at = position + first if front else None
        assert self.manager is not None
        self.manager.spawn(self._expand_playlist(ctx, actor, result.rest, reply, insert_at, first))

    async def _expand_playlist(
        self,
        ctx: commands.GuildContext,
        actor: Actor,
        rest: PlaylistExpansion,
        reply: discord.Message,
        insert_at: int | None,
        first: int = 1,
    ) -> None:
        """Queue a playlist's remaining batches and keep the reply's progress line current
        (at most one edit a second, within Discord's rate limits). `first`: how many entries
        were queued with the reply (0 when the block and allow lists skipped the first)."""
        settings = self.store.guild(ctx.guild.id)
        last_edit = 0.0
        title = safe(rest.title) or _("the playlist")
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
                _("Loading **{title}**: `{bar}` {received}/{expected} "
                "(`music cancel {job_id}` stops it)").format(title=title, bar=bar, received=rest.received, expected=expected, job_id=rest.job_id)
            )

        async def edit(text: str) -> None:
            with contextlib.suppress(discord.HTTPException):
                await reply.edit(content=text, allowed_mentions=discord.AllowedMentions.none())

        refusals: list[str] = []  # entries the block and allow lists skipped, each with its rule
        try:
            counts[:] = await self.ctl.enqueue_rest(ctx.guild.id, actor, rest, insert_at, show_progress,
                                                    refusals=refusals)
        finally:
            added, left_out = counts
            total = added + first  # queued with the reply
            parts = [(_("Queued {total} tracks from **{title}**.") if total != 1 else _("Queued {total} track from **{title}**.")).format(total=total, title=title)]
            if left_out:
                parts.append(_("{left_out} left out by this server's queue, length or per-member limits.").format(left_out=left_out))
            parts += summarise_refusals(refusals)
            if rest.truncated:
                parts.append(_("The playlist is longer than this server's limit of {max_playlist}.").format(max_playlist=settings.max_playlist))
            parts += [safe(e, limit=300) for e in rest.errors]
            await edit(" ".join(parts))

    async def _enqueue(
        self,
        ctx: commands.GuildContext,
        actor: Actor,
        tracks: list[Track],
        *,
        front: bool,
        title: str | None = None,
        errors: list[str] | None = None,
        more_to_come: bool = False,
    ) -> tuple[int, discord.Message, int]:
        """Queue `tracks` within the server's limits and reply; returns (position, reply, how
        many were queued). `more_to_come`: a playlist's first batch (see MusicControl.enqueue)."""
        queued = self.ctl.enqueue(ctx.guild.id, actor, tracks, front=front, more_to_come=more_to_come)
        notes = queued.notes
        if errors:
            notes.append((_("{errors_count} entry could not be read.") if len(errors) == 1 else _("{errors_count} entries could not be read.")).format(errors_count=len(errors)))
        if not queued.tracks:
            reply = _("Loading the rest of **{title}**.").format(title=safe(title) or _('the playlist'))
        elif queued.starting and len(queued.tracks) == 1:
            reply = _("Playing {track}.").format(track=track_line(queued.tracks[0]))
        else:
            reply = self.queued_reply(queued.tracks, queued.place, title)
        message = await self.say(ctx, " ".join([*notes, reply] if not queued.tracks else [reply, *notes]))
        return queued.position, message, len(queued.tracks)

    @hybrid.command()
    @commands.guild_only()
    async def search(self, ctx: commands.GuildContext, *, query: str) -> None:
        """Search and pick a result to queue from the menu, or by typing its number."""
        actor = await self.actor(ctx)
        async with ctx.typing():
            results = await self.ctl.search(ctx.guild.id, actor, query, SEARCH_RESULTS)
        if not results:
            raise CommandError(_("No results."))
        lines = [
            f"`{i}.` {track_line(t)}" + (_(" by {uploader}").format(uploader=safe(t.uploader, limit=40)) if t.uploader else "")
            for i, t in enumerate(results, 1)
        ]
        prompt = "\n".join(lines) + _("\nType a number from 1 to {results_count} to queue it, or `cancel`.").format(results_count=len(results))
        labels = [_("{number}. {title}").format(number=i, title=t.title or _('Unknown title')) for i, t in enumerate(results, 1)]
        pick = await pick_result(self, ctx, prompt, labels, SEARCH_TIMEOUT)  # the menu, or a typed number
        if pick.timed_out:
            await self.say(ctx, _("Search timed out; nothing was queued."))
            return
        if pick.index is None:
            await self.say(ctx, _("Search cancelled; nothing was queued."))
            return
        picked = results[pick.index]
        await self.join_author(ctx)
        await self._enqueue(ctx, actor, [picked], front=False)  # resolved when its turn comes

    @commands.command()
    @commands.guild_only()
    async def local(self, ctx: commands.GuildContext, *, path: str | None = None) -> None:
        """Play a file from the bot owner's local folder; with no path, list the folder."""
        if path is None:
            await self._list_local(ctx)
            return
        await self._play_local(ctx, path, front=False)

    @commands.command()
    @commands.guild_only()
    async def localnext(self, ctx: commands.GuildContext, *, path: str) -> None:
        """Like `local`, but puts the file at the front of the queue."""
        await self._play_local(ctx, path, front=True)

    def _local_folder(self) -> Path:
        folder = self.store.globals.local_folder
        if not folder:
            raise CommandError(_("Local files are turned off: the bot owner has not set a local folder (`musicset localfolder`)."))
        return Path(folder)

    async def _list_local(self, ctx: commands.GuildContext) -> None:
        folder = self._local_folder()
        files = await asyncio.to_thread(list_local_files, folder, 1000)
        if not files:
            await self.say(ctx, _("The local folder has no audio files."))
            return
        text = "\n".join(str(f) for f in files)
        for page in pagify(text, page_length=1900):
            await ctx.send(box(page), allowed_mentions=discord.AllowedMentions.none())

    async def _play_local(self, ctx: commands.GuildContext, path: str, *, front: bool) -> None:
        folder = self._local_folder()
        try:
            await asyncio.to_thread(resolve_local_path, folder, path)
        except PolicyError as exc:
            raise CommandError(str(exc)) from None
        actor = await self.actor(ctx)
        await self.join_author(ctx)
        try:
            track = await resolve_local(folder, path, ctx.author.id)
        except (PolicyError, ResolveError) as exc:
            raise CommandError(str(exc)) from None
        await self._enqueue(ctx, actor, [track], front=front)

    # -- the current track ------------------------------------------------------------------------

    @hybrid.command()
    @commands.guild_only()
    async def now(self, ctx: commands.GuildContext) -> None:
        """Show the current track and where it is."""
        player = self.player(ctx)
        track = self.current_or_fail(ctx)
        position = player.position
        bar = progress_bar(position, track.duration) if track.duration else ""
        state = {PlayerState.PAUSED: "Paused", PlayerState.LOADING: "Loading"}.get(player.state, "Playing")
        timing = _("{position} / {length}").format(position=format_duration(position), length=format_duration(track.duration) if track.duration else 'live' if track.is_live else '?')
        requester = f"<@{track.requester_id}>" if track.requester_id else "someone"
        sound = sound_line(player.filters)
        if track.autoplay:  # picked by autoplay: a member's `play` takes over at the next change
            state, requester = _("{state} (autoplay)").format(state=state), "autoplay"
        if await ctx.embed_requested():
            embed = discord.Embed(title=safe(track.title) or _("Unknown title"), url=track.webpage_url or None)
            embed.description = f"{bar}\n{timing}" if bar else timing
            embed.set_author(name=state)
            embed.add_field(name=_("Requested by"), value=requester)
            embed.add_field(name=_("Volume"), value=f"{player.volume}%")
            embed.add_field(name=_("Repeat"), value=player.queue.repeat.value)
            if sound:
                embed.add_field(name=_("Sound"), value=sound)
            await ctx.send(embed=embed, allowed_mentions=discord.AllowedMentions.none())
        else:
            lines = [f"{state}: {track_line(track)}" + ("" if track.autoplay else _(", requested by {requester}").format(requester=requester))]
            if bar:
                lines.append(f"`{bar}` {timing}")
            else:
                lines.append(timing)
            if sound:
                lines.append(sound)
            await self.say(ctx, "\n".join(lines))

    @hybrid.command()
    @commands.guild_only()
    async def pause(self, ctx: commands.GuildContext) -> None:
        """Pause the music."""
        self.ctl.pause(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, _("Paused."))

    @hybrid.command()
    @commands.guild_only()
    async def resume(self, ctx: commands.GuildContext) -> None:
        """Resume paused music."""
        self.ctl.resume(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, _("Resumed."))

    @hybrid.command()
    @commands.guild_only()
    async def skip(self, ctx: commands.GuildContext) -> None:
        """Skip the current track (with a DJ role set, others vote to skip)."""
        listeners = frozenset(m.id for m in self.human_listeners(ctx))
        outcome = self.ctl.skip(ctx.guild.id, await self.actor(ctx), listeners=listeners)
        if not outcome.skipped:
            await self.say(ctx, _("Vote to skip counted: {votes}/{needed}.").format(votes=outcome.votes, needed=outcome.needed))
            return
        if outcome.needed:
            await self.say(ctx, _("Vote passed ({votes}/{needed}).").format(votes=outcome.votes, needed=outcome.needed))
        await self.say(ctx, _("Skipped {track}.").format(track=track_line(outcome.track)))

    @hybrid.command()
    @commands.guild_only()
    async def skipto(self, ctx: commands.GuildContext, position: int) -> None:
        """Skip to a track in the queue; the ones before it are dropped."""
        track = self.ctl.skip_to(ctx.guild.id, await self.actor(ctx), position)
        await self.say(ctx, _("Skipping to {track}.").format(track=track_line(track)))

    @hybrid.command()
    @commands.guild_only()
    async def prev(self, ctx: commands.GuildContext) -> None:
        """Play the previous track again."""
        actor = await self.actor(ctx)
        self.ctl.authorize(Intent.PREVIOUS, ctx.guild.id, actor)
        if not self.player(ctx).queue.history:
            raise CommandError(_("There is no previous track."))
        await self.join_author(ctx)
        track = self.ctl.previous(ctx.guild.id, actor)
        await self.say(ctx, _("Going back to {track}.").format(track=track_line(track)))

    @hybrid.command()
    @commands.guild_only()
    async def stop(self, ctx: commands.GuildContext) -> None:
        """Stop the music and clear the queue."""
        self.ctl.stop(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, _("Stopped, and cleared the queue."))

    @hybrid.command()
    @commands.guild_only()
    async def disconnect(self, ctx: commands.GuildContext) -> None:
        """Leave the voice channel. The queue is kept."""
        self.ctl.disconnect(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, _("Disconnected. The queue is kept; `play` or `summon` brings me back."))

    @hybrid.command()
    @commands.guild_only()
    async def summon(self, ctx: commands.GuildContext) -> None:
        """Bring the bot to your voice channel (and resume the queue there)."""
        self.ctl.authorize(Intent.SUMMON, ctx.guild.id, await self.actor(ctx))
        vc = await self.join_author(ctx)
        self.ctl.summoned(ctx.guild.id)
        await self.say(ctx, _("Joined {mention}.").format(mention=vc.channel.mention))  # type: ignore[attr-defined]

    @hybrid.command()
    @commands.guild_only()
    @app_commands.describe(position="90, 1:30, +10 or -10")
    async def seek(self, ctx: commands.GuildContext, position: str) -> None:
        """Jump within the track: `90`, `1:30`, `+10` or `-10`."""
        target = self.ctl.seek(ctx.guild.id, await self.actor(ctx), position)
        await self.say(ctx, _("Seeking to {target}.").format(target=format_duration(target)))

    @hybrid.command()
    @commands.guild_only()
    @app_commands.describe(percent="From 0 to 150; leave it out to see the volume")
    async def volume(self, ctx: commands.GuildContext,
                     # bare Range (not Optional[...]): only then does the slash option get the
                     # bounds; the default still makes it optional, both ways
                     percent: commands.Range[int, 0, MAX_VOLUME_CEILING] = None,  # type: ignore[assignment]
                     ) -> None:
        """Show or set the volume, from 0 to 150 percent."""
        if percent is None:
            await self.say(ctx, _("Volume: {volume}%.").format(volume=self.player(ctx).volume))
            return
        volume = self.ctl.set_volume(ctx.guild.id, await self.actor(ctx), percent)
        capped = _(" (this server's maximum, `musicset maxvolume`)") if volume < percent else ""
        await self.say(ctx, _("Volume set to {volume}%{capped}.").format(volume=volume, capped=capped))

    @hybrid.command()
    @commands.guild_only()
    @app_commands.describe(mode="Leave it out to see the setting")
    @app_commands.choices(mode=[app_commands.Choice(name=m, value=m) for m in ("off", "track", "queue")])
    async def repeat(self, ctx: commands.GuildContext, mode: Optional[str] = None) -> None:
        """Show or set repeat: `off`, `track` or `queue`."""
        if mode is None:
            await self.say(ctx, _("Repeat is {repeat}.").format(repeat=self.player(ctx).queue.repeat.value))
            return
        repeat = self.ctl.set_repeat(ctx.guild.id, await self.actor(ctx), mode)
        await self.say(ctx, _("Repeat is now {repeat}.").format(repeat=repeat.value))

    @hybrid.command()
    @commands.guild_only()
    async def shuffle(self, ctx: commands.GuildContext) -> None:
        """Turn shuffle play on or off (`queue shuffle` shuffles the queue once)."""
        on = self.ctl.set_shuffle(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, (_("Shuffle is on.") if on else _("Shuffle is off.")))

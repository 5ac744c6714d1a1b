"""Per-guild players and the advancer that drives them.

Every change of a player's state happens in ``PlayerManager.handle`` (run by the advancer task,
one event at a time), so there are no flag races between commands, the audio thread and the
monitor. Slow work (yt-dlp, opening ffmpeg, joining voice) runs in load tasks that post an event
back when done; an event that arrives for a track that is no longer current is dropped.

The audio thread (music.audio.sender) never touches asyncio objects: the ChainSource callback
and the player's ``after`` callback go through ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .audio.ffmpeg import find_ffmpeg
from .audio.sender import SharedSender
from .audio.source import ChainSource, TrackStream
from .engine.admission import admit_batch
from .engine.events import AdvanceEvent, AdvanceKind
from .engine.queue import QueueModel
from .engine.track import Track
from .formatting import safe, track_line
from .policy import PolicyError, resolve_local_path
from .resolve.jobs import Priority
from .resolve.resolver import ResolveError
from .store_chunks import PlayerCapture

if TYPE_CHECKING:
    import discord
    from redbot.core.bot import Red

    from .resolve.service import PlaylistExpansion, ResolveService
    from .store import MusicStore

log = logging.getLogger("red.music.player")

# A remote stream URL this close to its expiry is re-extracted before ffmpeg opens it.
STREAM_EXPIRY_MARGIN = 120.0
# How long a loading track may take to give its first packet.
OPEN_TIMEOUT = 15.0
# The next track is resolved and opened this many seconds before the current one ends.
PREFETCH_WINDOW = 30.0
# A stream that fails mid-track is reopened at its position this many times in a row.
MAX_RECOVERIES = 3
OPUS_CONTAINERS = {"webm", "ogg", "opus", "weba"}


class PlayerState(str, Enum):
    IDLE = "idle"  # nothing playing (the queue may still hold tracks)
    LOADING = "loading"  # the current track is being resolved or opened
    PLAYING = "playing"
    PAUSED = "paused"
    BACKGROUND = "background"  # the queue is empty; the server's background stream plays


@dataclass
class GuildPlayer:
    """What the cog knows about one guild's playback. Mutated only by PlayerManager.handle."""

    guild_id: int
    queue: QueueModel = field(default_factory=QueueModel)
    volume: int = 100
    state: PlayerState = PlayerState.IDLE
    channel_id: int | None = None  # the voice channel to be in
    text_channel_id: int | None = None  # where now-playing and errors go
    source: ChainSource | None = None
    start_position: float = 0.0  # where the current track starts when (re)loaded
    generation: int = 0  # bumps on every load; stale load results are dropped
    load_task: asyncio.Task[None] | None = None
    prefetch_task: asyncio.Task[None] | None = None
    prefetched_id: str | None = None
    recoveries: int = 0
    paused_on_load: bool = False  # restored paused: load the track, then pause it
    auto_paused: bool = False  # paused by the monitor because everyone left
    skip_votes: dict[str, set[int]] = field(default_factory=dict)  # track id -> member ids
    np_message: tuple[int, int] | None = None  # (channel id, message id) of the last now-playing
    background: Track | None = None  # the resolved background, while it plays
    # monitor bookkeeping
    idle_since: float = field(default_factory=time.monotonic)
    alone_since: float | None = None
    last_position: float = 0.0
    last_progress_at: float = field(default_factory=time.monotonic)

    @property
    def position(self) -> float:
        """Seconds into the current track."""
        source = self.source
        if self.state in (PlayerState.PLAYING, PlayerState.PAUSED) and source is not None:
            if self.queue.current is not None and source.current_track_id == self.queue.current.id:
                position = source.position
                if position is not None:
                    return position
        return self.start_position

    def head(self) -> dict[str, Any]:
        """The small persisted values (everything but the queue)."""
        return {
            "position": round(self.position, 2),
            "paused": self.state is PlayerState.PAUSED,
            "channel_id": self.channel_id,
            "text_channel_id": self.text_channel_id,
            "volume": self.volume,
        }

    def capture(self) -> PlayerCapture:
        """What store.MusicStore.mark_dirty writes: the head and list copies of the queue, cheap
        enough for the event loop (the tracks are serialized in a thread)."""
        return PlayerCapture.of(self.head(), self.queue)

    def snapshot(self) -> dict[str, Any]:
        """The whole persisted form as one dict (serializes every track: not for hot paths)."""
        return {"queue": self.queue.to_dict(), **self.head()}

    @classmethod
    def from_snapshot(cls, guild_id: int, data: dict[str, Any]) -> GuildPlayer:
        player = cls(guild_id=guild_id)
        if data.get("queue"):
            player.queue = QueueModel.from_dict(data["queue"])
        player.start_position = float(data.get("position") or 0.0)
        player.channel_id = data.get("channel_id")
        player.text_channel_id = data.get("text_channel_id")
        player.volume = int(data.get("volume", 100))
        player.paused_on_load = bool(data.get("paused"))
        return player


Notifier = Callable[[GuildPlayer, str], Awaitable[None]]
Announcer = Callable[[GuildPlayer, Track], Awaitable[None]]


class PlayerManager:
    """Owns the players, the advance-event queue and the load/prefetch tasks."""

    def __init__(
        self,
        bot: Red,
        store: MusicStore,
        service: ResolveService,
        notify: Notifier,
        announce: Announcer | None = None,
    ) -> None:
        self.bot = bot
        self.store = store
        self.service = service
        self.notify = notify
        self.announce = announce
        self.players: dict[int, GuildPlayer] = {}
        self.events: asyncio.Queue[AdvanceEvent] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self._side_tasks: set[asyncio.Task[Any]] = set()
        # One thread paces every guild's audio (discord.py's vc.play runs a thread per guild).
        # It installs itself as each voice client's player, so vc.pause/resume/stop and
        # vc.is_playing/is_paused below, and discord.py's own stop on disconnect, reach it.
        self.sender = SharedSender()
        self.handled = 0

    # -- players ---------------------------------------------------------------------------

    def get(self, guild_id: int) -> GuildPlayer:
        player = self.players.get(guild_id)
        if player is None:
            player = self.players[guild_id] = GuildPlayer(
                guild_id=guild_id, volume=self.store.guild(guild_id).volume
            )
        return player

    def save(self, player: GuildPlayer) -> None:
        self.store.mark_dirty(player.guild_id, player.capture)

    def queue_changed(self, player: GuildPlayer) -> None:
        """After any edit of a guild's queue: save it (coalesced) and let the advancer react."""
        self.save(player)
        self.post(player.guild_id, AdvanceKind.QUEUE_CHANGED)

    async def queue_playlist_rest(
        self,
        player: GuildPlayer,
        rest: PlaylistExpansion,
        insert_at: int | None,
        on_batch: Callable[[int, int], Awaitable[None]] | None = None,
    ) -> tuple[int, int]:
        """Queue a loading playlist's later batches as they arrive, within the server's
        limits, in playlist order (at the end, or from `insert_at` on). Returns (added,
        left out); `on_batch(added, left_out)` runs after every batch."""
        settings = self.store.guild(player.guild_id)
        added = left_out = 0
        async for batch in rest:
            usable, dropped = admit_batch(player.queue, batch, settings)
            left_out += dropped
            if usable:
                position = player.queue.add(usable, at=insert_at)
                if insert_at is not None:
                    insert_at = position + len(usable)
                added += len(usable)
                self.queue_changed(player)
            if on_batch is not None:
                await on_batch(added, left_out)
        return added, left_out

    def ffmpeg(self) -> str:
        return find_ffmpeg(self.store.globals.ffmpeg_path)

    # -- events ----------------------------------------------------------------------------

    def post(self, guild_id: int, kind: AdvanceKind, **fields: Any) -> None:
        """Queue an event for the advancer (event-loop side)."""
        self.events.put_nowait(AdvanceEvent(guild_id, kind, **fields))

    def post_threadsafe(self, guild_id: int, kind: AdvanceKind, **fields: Any) -> None:
        """Queue an event from discord.py's audio thread."""
        event = AdvanceEvent(guild_id, kind, **fields)
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop is closed: the cog is gone, nothing to drive
            pass

    async def run_advancer(self) -> None:
        """Consume advance events forever. One bad event is logged, never fatal."""
        while True:
            event = await self.events.get()
            try:
                await self.handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("The advancer could not handle %s", event)
            finally:
                self.handled += 1

    # -- the state machine -------------------------------------------------------------------

    async def handle(self, ev: AdvanceEvent) -> None:
        player = self.players.get(ev.guild_id)
        if player is None:
            if ev.payload is not None and hasattr(ev.payload, "close"):
                self._close_stream_later(ev.payload)
            return
        kind = ev.kind
        current = player.queue.current
        if kind in (AdvanceKind.RESCHEDULE, AdvanceKind.QUEUE_CHANGED):
            if player.state in (PlayerState.IDLE, PlayerState.BACKGROUND):
                if current is None:
                    current = player.queue.advance()
                    player.start_position = 0.0
                if current is not None:
                    # anything queued takes over from the background at once
                    self._start_load(player, current, player.start_position)
                elif player.state is PlayerState.IDLE and kind is AdvanceKind.RESCHEDULE:
                    self._start_background(player)
            elif kind is AdvanceKind.RESCHEDULE and player.state is PlayerState.LOADING:
                # `music reschedule` on a stuck load: start the load over
                if current is not None:
                    self._start_load(player, current, player.start_position)
            elif kind is AdvanceKind.RESCHEDULE and current is not None and not self._voice_playing(player):
                self._start_load(player, current, player.position)
            else:
                self._refresh_prefetch(player)
        elif kind is AdvanceKind.LOADED:
            await self._on_loaded(player, ev)
        elif kind is AdvanceKind.LOAD_FAILED:
            if ev.generation != player.generation or current is None or current.id != ev.track_id:
                return
            await self.notify(player, f"I couldn't play {track_line(current)}: {safe(ev.error, limit=300)}")
            player.recoveries = 0
            self._advance_and_load(player, skipped=True)
        elif kind is AdvanceKind.TRACK_END:
            if player.state is PlayerState.BACKGROUND and player.background is not None:
                if ev.track_id == player.background.id:
                    self._start_background(player)  # it loops until something is queued
                return
            if current is None or current.id != ev.track_id:
                return
            player.recoveries = 0
            nxt = player.queue.advance()
            player.start_position = 0.0
            if nxt is None:
                # the queue ran out: stop sending now rather than after the source's grace
                self._stop_audio(player)
                self._go_idle(player)
                self._start_background(player)
            elif player.source is not None and player.source.current_track_id == nxt.id:
                # the chain source already switched to the prefetched track: no gap
                player.prefetched_id = None
                player.state = PlayerState.PLAYING
                player.last_progress_at = time.monotonic()
                await self._announce(player, nxt)
                self._refresh_prefetch(player)
            else:
                self._start_load(player, nxt, 0.0)
        elif kind is AdvanceKind.TRACK_ERROR or kind is AdvanceKind.STREAM_STALLED:
            if current is None or (ev.track_id is not None and current.id != ev.track_id):
                return
            if player.state not in (PlayerState.PLAYING, PlayerState.PAUSED):
                return
            # TRACK_ERROR carries where the failed stream stopped: the source has dropped it,
            # so `player.position` no longer knows (it would restart the track from the top)
            await self._recover(player, ev.error or "the stream stalled", position=ev.position)
        elif kind is AdvanceKind.PLAYER_ERROR:
            # discord.py's player stopped (its `after` callback). Expected after stop/disconnect,
            # and for a source that was already replaced: only the live source matters.
            if ev.payload is not player.source:
                return
            player.source = None
            if player.state in (PlayerState.PLAYING, PlayerState.PAUSED) and current is not None:
                # the after callback saw where the track was before the source was cleaned up
                position = ev.position if ev.track_id == current.id else None
                await self._recover(player, ev.error or "the voice player stopped", position=position)
        elif kind is AdvanceKind.EXHAUSTED:
            if player.state is PlayerState.PLAYING and current is not None and current.id == ev.track_id:
                # the source ran dry before TRACK_END was handled: treat as the end
                self.post(player.guild_id, AdvanceKind.TRACK_END, track_id=ev.track_id)
        elif kind is AdvanceKind.SKIP:
            if current is None:
                return
            player.recoveries = 0
            self._advance_and_load(player, skipped=True)
        elif kind is AdvanceKind.SKIP_TO:
            player.recoveries = 0
            track = player.queue.skip_to(int(ev.position or 1))
            self._start_load(player, track, 0.0)
        elif kind is AdvanceKind.PREVIOUS:
            track = player.queue.previous()
            if track is not None:
                self._start_load(player, track, 0.0)
        elif kind is AdvanceKind.STOP:
            player.queue.clear()
            player.queue.current = None
            self._stop_audio(player)
            self._go_idle(player)
        elif kind is AdvanceKind.SEEK:
            if current is not None and player.state is not PlayerState.IDLE:
                self._start_load(player, current, float(ev.position or 0.0))
        elif kind is AdvanceKind.VOLUME:
            player.volume = int(ev.position or 100)
            if current is not None and player.state in (PlayerState.PLAYING, PlayerState.PAUSED):
                self._start_load(player, current, player.position)
        elif kind is AdvanceKind.PAUSE:
            vc = self._voice(player)
            if player.state is PlayerState.PLAYING and vc is not None:
                vc.pause()
                player.state = PlayerState.PAUSED
        elif kind is AdvanceKind.UNPAUSE:
            vc = self._voice(player)
            if player.state is PlayerState.PAUSED and vc is not None:
                vc.resume()
                player.state = PlayerState.PLAYING
                player.last_progress_at = time.monotonic()
        elif kind is AdvanceKind.DISCONNECT:
            # keep the queue and the position; forget the channel so nothing auto-rejoins
            player.start_position = player.position
            self._stop_audio(player)
            player.state = PlayerState.IDLE
            player.channel_id = None
            vc = self._voice(player)
            if vc is not None:
                self.spawn(vc.disconnect(force=True))
        current = player.queue.current
        if player.skip_votes and (current is None or set(player.skip_votes) != {current.id}):
            # votes count for one track only
            player.skip_votes = {k: v for k, v in player.skip_votes.items() if current and k == current.id}
        self.save(player)

    # -- transitions ---------------------------------------------------------------------------

    def _advance_and_load(self, player: GuildPlayer, *, skipped: bool) -> None:
        nxt = player.queue.advance(skipped=skipped)
        player.start_position = 0.0
        if nxt is None:
            self._stop_audio(player)
            self._go_idle(player)
            self._start_background(player)
        else:
            self._start_load(player, nxt, 0.0)

    def _go_idle(self, player: GuildPlayer) -> None:
        self._cancel(player.load_task)
        self._cancel(player.prefetch_task)
        player.prefetched_id = None
        player.state = PlayerState.IDLE
        player.idle_since = time.monotonic()
        player.generation += 1

    def _start_background(self, player: GuildPlayer) -> None:
        """Play the server's background (Musicazoo's `bg`) while the queue is empty and we are
        in a voice channel. It yields the moment something is queued (QUEUE_CHANGED)."""
        url = self.store.guild(player.guild_id).background
        if not url or self._voice(player) is None or player.queue.current is not None:
            return
        self._cancel(player.load_task)
        player.generation += 1
        player.state = PlayerState.BACKGROUND
        player.load_task = self.spawn(self._load_background(player, url, player.generation))

    async def _load_background(self, player: GuildPlayer, url: str, generation: int) -> None:
        stream: TrackStream | None = None
        try:
            track = player.background
            if track is None or track.query != url:
                result = await self.service.resolve(
                    url, guild_id=player.guild_id, requester_id=0, limit=1, priority=Priority.LOW
                )
                track = result.tracks[0]
            track = await self._playable(player, track, Priority.LOW)
            player.background = track
            stream = await self._open_stream(player, track, 0.0)
        except asyncio.CancelledError:
            if stream is not None:
                self._close_stream_later(stream)
            raise
        except Exception as exc:
            log.info("Guild %s: the background could not play: %s", player.guild_id, exc)
            if player.generation == generation and player.state is PlayerState.BACKGROUND:
                player.state = PlayerState.IDLE
                await self.notify(player, f"The background couldn't play: {safe(_plain_error(exc), limit=200)}")
            return
        self.post(player.guild_id, AdvanceKind.LOADED, track_id=track.id, payload=stream, generation=generation)

    async def _recover(self, player: GuildPlayer, reason: str, *, position: float | None = None) -> None:
        """Reopen the current track at `position` (default: where it is now) with a fresh stream
        URL, or skip it after MAX_RECOVERIES failures in a row."""
        current = player.queue.current
        assert current is not None
        if player.recoveries >= MAX_RECOVERIES:
            await self.notify(player, f"{track_line(current)} keeps failing ({safe(reason, limit=200)}); skipping it.")
            player.recoveries = 0
            self._advance_and_load(player, skipped=True)
            return
        player.recoveries += 1
        if position is None:
            position = player.position
        log.info("Guild %s: reopening %s at %.1fs (%s)", player.guild_id, current.id, position, reason)
        # force a fresh stream URL: an expired or dropped URL is the usual cause
        if current.kind == "remote":
            current.stream_expires = 0.0
            # or `service.refresh` would hand back the URL that just failed
            self.service.forget_stream(current)
        self._start_load(player, current, position)

    def _start_load(self, player: GuildPlayer, track: Track, start: float) -> None:
        """Resolve and open `track` at `start` in a task; LOADED or LOAD_FAILED comes back."""
        self._cancel(player.load_task)
        player.generation += 1
        player.start_position = start
        player.state = PlayerState.LOADING
        player.load_task = self.spawn(self._load(player, track, start, player.generation))

    async def _load(self, player: GuildPlayer, track: Track, start: float, generation: int) -> None:
        stream: TrackStream | None = None
        try:
            track = await self._playable(player, track, Priority.URGENT)
            await self._ensure_voice(player)
            stream = await self._open_stream(player, track, start)
        except asyncio.CancelledError:
            if stream is not None:
                self._close_stream_later(stream)
            raise
        except (ResolveError, PolicyError, VoiceError, StreamOpenError) as exc:
            self.post(player.guild_id, AdvanceKind.LOAD_FAILED, track_id=track.id, error=str(exc), generation=generation)
            return
        except Exception as exc:  # ffmpeg could not open it, or anything unexpected
            log.warning("Guild %s: could not open %s", player.guild_id, track.id, exc_info=True)
            self.post(player.guild_id, AdvanceKind.LOAD_FAILED, track_id=track.id, error=_plain_error(exc), generation=generation)
            return
        self.post(player.guild_id, AdvanceKind.LOADED, track_id=track.id, payload=stream, generation=generation)

    async def _on_loaded(self, player: GuildPlayer, ev: AdvanceEvent) -> None:
        stream: TrackStream = ev.payload
        current = player.queue.current
        if player.state is PlayerState.BACKGROUND and player.background is not None:
            current = player.background  # the background plays outside the queue
        if ev.generation != player.generation or current is None or current.id != ev.track_id:
            self._close_stream_later(stream)
            return
        vc = self._voice(player)
        if vc is None:
            self._close_stream_later(stream)
            player.state = PlayerState.IDLE
            await self.notify(player, "I'm not connected to a voice channel any more; use `play` or `summon` to bring me back.")
            return
        restarted = player.source is not None and player.source.current_track_id == current.id
        source = player.source
        if source is None or source.exhausted or source.closed or not (vc.is_playing() or vc.is_paused()):
            # a new chain: the old one (if any) has stopped or is about to
            if vc.is_playing() or vc.is_paused():
                vc.stop()
            player.source = source = self._new_source(player)
            source.play_now(stream, current.id)
            try:
                self.sender.play(vc, source, after=self._after_callback(player.guild_id, source))
            except Exception as exc:  # the connection dropped between the check and now
                source.cleanup()
                player.source = None
                player.state = PlayerState.IDLE
                await self.notify(player, f"I couldn't start playing: {safe(_plain_error(exc), limit=200)}")
                return
        else:
            source.play_now(stream, current.id)
        if player.state is PlayerState.BACKGROUND:
            if vc.is_paused():
                vc.resume()
            return  # no announcement and no prefetch for the background
        if player.paused_on_load:
            player.paused_on_load = False
            vc.pause()
            player.state = PlayerState.PAUSED
        elif vc.is_paused() and player.state is not PlayerState.PAUSED:
            vc.resume()
            player.state = PlayerState.PLAYING
        else:
            player.state = PlayerState.PAUSED if vc.is_paused() else PlayerState.PLAYING
        player.last_progress_at = time.monotonic()
        player.prefetched_id = None
        if not restarted and player.recoveries == 0:
            await self._announce(player, current)
        self._refresh_prefetch(player)

    def _new_source(self, player: GuildPlayer) -> ChainSource:
        guild_id = player.guild_id
        kinds = {
            "track_end": AdvanceKind.TRACK_END,
            "track_error": AdvanceKind.TRACK_ERROR,
            "exhausted": AdvanceKind.EXHAUSTED,
        }

        def on_event(kind: str, track_id: str | None, error: str | None) -> None:
            # called from the audio thread, right after the read() that ended the stream, so
            # `last_end` is that stream's: where it stopped, for a recovery at the position
            mapped = kinds.get(kind)
            if mapped is not None:
                end = source.last_end
                position = end[1] if end is not None and end[0] == track_id else None
                self.post_threadsafe(guild_id, mapped, track_id=track_id, error=error, position=position)

        source = ChainSource(on_event)
        return source

    def _after_callback(self, guild_id: int, source: ChainSource) -> Callable[[Exception | None], None]:
        def after(error: Exception | None) -> None:
            # called from the sender's helper thread when the playback ends (an error, or the voice
            # connection went away); note the position before cleanup() drops the streams
            track_id, position = source.current_track_id, source.position
            source.cleanup()
            self.post_threadsafe(
                guild_id, AdvanceKind.PLAYER_ERROR, error=_plain_error(error) if error else None, payload=source,
                track_id=track_id, position=position,
            )

        return after

    # -- prefetch: the next track opened ahead, so the change is gapless ---------------------

    def _refresh_prefetch(self, player: GuildPlayer) -> None:
        if player.source is None or player.state not in (PlayerState.PLAYING, PlayerState.PAUSED):
            return
        nxt = player.queue.peek_next()
        wanted = nxt.id if nxt is not None and self.in_prefetch_window(player) else None
        if wanted == player.prefetched_id:
            return
        self._cancel(player.prefetch_task)
        player.source.clear_next()
        player.prefetched_id = wanted
        if nxt is not None:
            player.prefetch_task = self.spawn(self._prefetch(player, nxt, player.generation))

    @staticmethod
    def in_prefetch_window(player: GuildPlayer) -> bool:
        """Open the next track only near the end of this one: an ffmpeg opened an hour early
        holds an idle connection that the server may drop, and its URL may expire."""
        current = player.queue.current
        if current is None or not current.duration:
            return True
        return current.duration - player.position <= PREFETCH_WINDOW

    async def _prefetch(self, player: GuildPlayer, track: Track, generation: int) -> None:
        stream: TrackStream | None = None
        try:
            track = await self._playable(player, track, Priority.HIGH)
            stream = await self._open_stream(player, track, 0.0)
        except asyncio.CancelledError:
            if stream is not None:
                self._close_stream_later(stream)
            raise
        except Exception:
            # not fatal: the track is loaded the usual way when its turn comes
            log.debug("Prefetch of %s failed", track.id, exc_info=True)
            player.prefetched_id = None
            return
        source = player.source
        if (
            player.generation != generation
            or source is None
            or source.exhausted
            or source.closed
            or player.prefetched_id != track.id
        ):
            self._close_stream_later(stream)
            return
        source.set_next(stream, track.id)

    # -- helpers ----------------------------------------------------------------------------------

    async def _playable(self, player: GuildPlayer, track: Track, priority: Priority) -> Track:
        """Make sure the track has a fresh stream URL (or a valid local path)."""
        if track.kind == "local":
            folder = self.store.globals.local_folder
            if not folder:
                raise PolicyError("Local files are turned off: the bot owner has not set a local folder.")
            path = await asyncio.to_thread(resolve_local_path, Path(folder), track.query)
            track.stream_url = str(path)
            return track
        if not track.is_expired(time.time(), STREAM_EXPIRY_MARGIN):
            return track
        fresh = await self.service.refresh(track, guild_id=player.guild_id, priority=priority)
        # keep the queue entry itself up to date (same id)
        for name in ("stream_url", "stream_expires", "http_headers", "acodec", "container", "duration", "title"):
            setattr(track, name, getattr(fresh, name))
        return track

    async def _open_stream(self, player: GuildPlayer, track: Track, start: float) -> TrackStream:
        assert track.stream_url
        stream = TrackStream(
            self.ffmpeg(),
            track.stream_url,
            start=start,
            volume=player.volume,
            headers=track.http_headers or None,
            local=track.kind == "local",
            passthrough=wants_passthrough(track, player.volume),
            # lets the stream tell a cut-short end (ffmpeg exits 0 when its reconnect fails)
            # from the real one; live streams have no end to compare with
            expected_end=None if track.is_live else track.duration,
            # the network guard: ffmpeg connects only to addresses the policy allows
            proxy=self.service.resolver.proxy,
            # a copy from the start demuxes WebM/Ogg in this process: no ffmpeg child
            in_process=True,
        )
        try:
            await asyncio.to_thread(_start_and_wait, stream, OPEN_TIMEOUT)
        except BaseException:
            self._close_stream_later(stream)
            raise
        return stream

    async def _ensure_voice(self, player: GuildPlayer) -> None:
        if self._voice(player) is not None:
            return
        import discord
        import discord.voice_state

        guild = self.bot.get_guild(player.guild_id)
        channel = guild.get_channel(player.channel_id) if guild and player.channel_id else None
        if not callable(getattr(channel, "connect", None)):  # gone, or not a voice channel
            raise VoiceError("I don't know which voice channel to join; use `summon` or `play` from a voice channel.")
        if not getattr(discord.voice_state, "has_dave", True):
            # Discord closes voice without DAVE (close code 4017) since 2026-03-02
            raise VoiceError("I can't join voice: DAVE encryption support is missing; the bot owner should install `davey` and restart.")
        stale = guild.voice_client if guild is not None else None
        if stale is not None:
            # discord.py gave up on this connection (a 4015 whose resume timed out, a 4014 with
            # no move, a 4006 reconnect stuck in IP discovery) but left its voice client in
            # place, and connect() refuses while one exists: end it and connect afresh
            log.info("Guild %s: replacing a voice connection that is not connected", player.guild_id)
            try:
                await asyncio.wait_for(stale.disconnect(force=True), 10.0)
            except Exception:
                log.debug("Ending the stale voice client of guild %s failed", player.guild_id, exc_info=True)
        try:
            await channel.connect(timeout=15.0, self_deaf=True)
        except TimeoutError:
            raise VoiceError(f"I couldn't connect to {channel.mention} in time.") from None
        except discord.ClientException:
            if self._voice(player) is None:
                raise VoiceError(f"I couldn't connect to {channel.mention}.") from None

    def _voice(self, player: GuildPlayer) -> discord.VoiceClient | None:
        guild = self.bot.get_guild(player.guild_id)
        vc = guild.voice_client if guild is not None else None
        if vc is None or not vc.is_connected():
            return None
        return vc  # type: ignore[return-value]

    def _voice_playing(self, player: GuildPlayer) -> bool:
        vc = self._voice(player)
        return vc is not None and (vc.is_playing() or vc.is_paused())

    def _stop_audio(self, player: GuildPlayer) -> None:
        self._cancel(player.load_task)
        self._cancel(player.prefetch_task)
        player.prefetched_id = None
        vc = self._voice(player)
        source = player.source
        player.source = None
        if vc is not None and (vc.is_playing() or vc.is_paused()):
            vc.stop()  # the player thread calls source.cleanup() as it ends
        elif source is not None:
            self.spawn(asyncio.to_thread(source.cleanup))

    async def _announce(self, player: GuildPlayer, track: Track) -> None:
        if not self.store.guild(player.guild_id).notify:
            return
        if self.announce is not None:
            await self.announce(player, track)
        else:
            await self.notify(player, f"Now playing: {track_line(track)}")

    def _close_stream_later(self, stream: Any) -> None:
        # closing waits for ffmpeg to exit: never on the event loop
        self.spawn(asyncio.to_thread(stream.close))

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
        return task

    @staticmethod
    def _cancel(task: asyncio.Task[Any] | None) -> None:
        if task is not None and not task.done():
            task.cancel()

    # -- shutdown ---------------------------------------------------------------------------------

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every player, end every ffmpeg child, leave voice. Bounded by `timeout`."""
        for player in self.players.values():
            self._cancel(player.load_task)
            self._cancel(player.prefetch_task)
        sources = [p.source for p in self.players.values() if p.source is not None]
        for player in self.players.values():
            vc = self._voice(player)
            player.source = None
            if vc is not None:
                vc.stop()
        for source in sources:
            source.cleanup()  # hands its streams to its closer thread; never blocks
        for source in sources:
            # ffmpeg children end there (terminate, then kill): wait for them, bounded
            await asyncio.to_thread(source.wait_closed, timeout)
        pending = [t for t in self._side_tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for task in list(self._side_tasks):
            task.cancel()
        for player in self.players.values():
            guild = self.bot.get_guild(player.guild_id)
            if guild is not None and guild.voice_client is not None:
                try:
                    await asyncio.wait_for(guild.voice_client.disconnect(force=True), 5.0)
                except Exception:
                    log.debug("Disconnect of guild %s failed during unload", player.guild_id, exc_info=True)
        # every playback was stopped above: this ends the sending thread and its helper
        await asyncio.to_thread(self.sender.close, timeout)


class VoiceError(Exception):
    """A voice connection problem, in a sentence for the user."""


class StreamOpenError(Exception):
    """ffmpeg could not open a track, in a sentence for the user."""


def wants_passthrough(track: Track, volume: int) -> bool:
    """Copy the Opus packets as they are (about 1 ms of ffmpeg CPU per second instead of ~43)
    when nothing needs decoding: an Opus source in a container ffmpeg copies into Ogg, at 100%.
    TrackStream still checks every packet is 20 ms and falls back to transcoding if not."""
    return (
        volume == 100
        and (track.acodec or "").lower() == "opus"
        and (track.container or "").lower() in OPUS_CONTAINERS
    )


def _start_and_wait(stream: TrackStream, timeout: float) -> None:
    stream.start()
    if not stream.wait_ready(timeout):
        raise StreamOpenError(stream.error or "the stream gave no audio in time")


def _plain_error(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip() or type(exc).__name__
    return text[:300]


"""The one AudioSource a guild's voice client plays for the whole session: ``ChainSource``.

It hands out packets of the current track's stream (music.audio.stream), switches to the prepared
next stream inside the same ``read()`` call when the current one ends (gapless), and sends the
Opus silence frame instead of blocking when a stream falls behind. A blocking ``read()`` would
make discord.py's player fall behind and then send the missed frames back to back (the "audio
speeds up" bug, discord.py #9120).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Optional

import discord
from discord.opus import OPUS_SILENCE

from ..i18n import _
from .prebuffer import FRAME_SECONDS
from .stream import TrackStream

log = logging.getLogger("red.music.audio.source")

#: The 3-byte Opus frame Discord clients decode as 20 ms of silence (discord.opus.OPUS_SILENCE).
SILENCE_FRAME: bytes = OPUS_SILENCE


# a runtime alias: Optional, since `str | None` is evaluated here and fails on Python 3.9
EventCallback = Callable[[str, Optional[str], Optional[str]], None]  # noqa: UP045


@dataclass
class FrameStats:
    """Frame counters in the spirit of Lavalink's frameStats."""

    frames_sent: int = 0  # audio packets handed to discord.py
    frames_silence: int = 0  # silence frames handed out ("nulled"), for any reason
    underruns: int = 0  # silence frames because a playing track had nothing buffered
    gapless_switches: int = 0  # track changes whose first packet went out in the ending tick
    splices: int = 0  # streams of the playing track swapped in at its position (filters, volume)
    splice_dropped: int = 0  # packets of spliced streams dropped to reach the position


class ChainClosed(RuntimeError):
    """The chain has stopped (exhausted or cleaned up): play a new ChainSource instead."""


class ChainSource(discord.AudioSource):
    """The one AudioSource a guild's voice client plays; tracks are chained inside ``read()``.

    Events go to ``on_event(kind, track_id, error)``, called on the audio thread after the lock is
    released (wrap it with ``loop.call_soon_threadsafe``):

    * ``track_start`` when a stream's first audio packet is handed out;
    * ``track_end`` when a stream ended normally and was drained; ``track_error`` (with ffmpeg's
      message) when it ended with an error, including one that never produced audio. After an
      error mid-track (the stream had played) the prepared next stream is *not* spliced in: the
      chain sends silence until :meth:`play_now` (the player reopening the track at
      ``last_end``'s position) or :meth:`skip`;
    * ``exhausted`` when nothing was left to play for ``idle_grace`` seconds; ``read()`` then
      returns b"" and discord.py stops the player (and calls :meth:`cleanup`).

    A stream replaced by :meth:`play_now`, :meth:`set_next`, :meth:`skip` or dropped by
    :meth:`cleanup` gets no event: the caller asked for it.

    :meth:`splice` swaps in another stream of the playing track (new filters, a new volume)
    where the playing one has got to, inside ``read()``: no gap, no silence, no repeated audio.

    Between tracks (the current one ended, no next yet) ``read()`` sends silence for up to
    ``idle_grace`` seconds (default 2 s) so the advancer can resolve and open the next track
    without the player stopping; a slower next track then needs a new ChainSource.
    """

    def __init__(self, on_event: EventCallback, *, idle_grace: float = 2.0) -> None:
        self._on_event = on_event
        self._grace_frames = max(0, round(idle_grace / FRAME_SECONDS))
        self._lock = threading.Lock()
        self._current: TrackStream | None = None
        self._current_id: str | None = None
        self._current_started = False
        self._next: TrackStream | None = None
        self._next_id: str | None = None
        # a stream of the current track waiting to take over at the current one's position
        self._incoming: TrackStream | None = None
        self._idle_frames = 0
        self._exhausted = False
        self._closed = False
        # After a stream fails mid-track the next one is not spliced in: the player reopens the
        # failed track at its position, and splicing would first play a snippet of the next
        # track. Cleared by play_now() and skip().
        self._holding = False
        #: (track id, position in seconds) of the last stream that ended, error or not; read by
        #: the event callback so the player knows where a failed track stopped
        self.last_end: tuple[str | None, float] | None = None
        self._stats = FrameStats()
        # Retired streams are closed here: TrackStream.close() blocks (it reaps ffmpeg), which
        # neither the audio thread nor the event loop may do. Started now so read() never pays
        # for starting a thread.
        self._closer_queue: queue.SimpleQueue[TrackStream | None] = queue.SimpleQueue()
        self._closer = threading.Thread(target=self._close_retired, name="music-stream-closer",
                                        daemon=True)
        self._closer.start()

    # -- control (any thread) --------------------------------------------------------------------

    def play_now(self, stream: TrackStream, track_id: str) -> None:
        """Replace the current stream (the old one is closed in the background). The prepared
        next stream is kept. Starts ``stream`` if needed; spawning ffmpeg takes milliseconds, so
        from the event loop call ``stream.start()`` in a worker thread first."""
        with self._lock:
            self._check_open()
            self._play_now_locked(stream, track_id)
        stream.start()

    def _play_now_locked(self, stream: TrackStream, track_id: str) -> None:
        """play_now's work, with the lock held (the new stream is started after)."""
        old = self._current
        self._current, self._current_id, self._current_started = stream, track_id, False
        self._idle_frames = 0
        self._holding = False
        self._retire(old)
        self._retire(self._incoming)
        self._incoming = None
        if self._next is not None and self._next_id == track_id:
            # the prepared next is this very track (opened ahead, then loaded again by a
            # skip or a recovery): keeping it would play the track a second time
            self._retire(self._next)
            self._next = self._next_id = None

    def splice(self, stream: TrackStream, track_id: str) -> None:
        """Swap ``stream`` (the playing track, opened again: other filters, another volume) in
        for the current stream at the position the current one has reached when ``stream``
        has audio there. Until then the current stream plays on; ``stream``'s packets before
        that position are dropped (it was opened where the track was when the change was asked
        for, and the old stream played on while it opened). Like :meth:`play_now` when the
        current stream is not this track or has not started."""
        with self._lock:
            self._check_open()
            current = self._current
            if (current is None or self._current_id != track_id or not self._current_started
                    or current.finished):
                self._play_now_locked(stream, track_id)
            else:
                self._retire(self._incoming)
                self._incoming = stream
        stream.start()

    def set_next(self, stream: TrackStream, track_id: str) -> None:
        """Prepare the stream that follows the current one without a gap (replacing an earlier
        prepared one). Start and ``wait_ready`` it before the current one ends for no gap."""
        with self._lock:
            self._check_open()
            old = self._next
            self._next, self._next_id = stream, track_id
            self._idle_frames = 0
            self._retire(old)
        stream.start()

    def clear_next(self) -> TrackStream | None:
        """Drop the prepared next stream (closed in the background)."""
        with self._lock:
            old, self._next, self._next_id = self._next, None, None
            self._retire(old)
        return old

    def skip(self) -> str | None:
        """Drop the current stream now; the next read() continues with the prepared next stream
        (or idles). Returns the track id that will play next, if any."""
        with self._lock:
            old = self._current
            self._current, self._current_id, self._current_started = None, None, False
            self._idle_frames = 0
            self._holding = False
            next_id = self._next_id
            self._retire(old)
            self._retire(self._incoming)
            self._incoming = None
        return next_id

    def _check_open(self) -> None:
        if self._closed or self._exhausted:
            raise ChainClosed(_("This audio source has stopped; play a new one."))

    # -- discord.AudioSource ---------------------------------------------------------------------

    def is_opus(self) -> bool:
        return True

    def read(self) -> bytes:
        """One 20 ms Opus packet; never blocks (see the class docstring)."""
        events: list[tuple[str, str | None, str | None]] = []
        retired: list[TrackStream] = []
        with self._lock:
            packet = self._read_locked(events, retired)
            # queued under the lock so a concurrent cleanup() cannot put its end marker first
            for stream in retired:
                self._closer_queue.put(stream)
        for kind, track_id, error in events:
            self._emit(kind, track_id, error)
        return packet

    def _read_locked(
        self, events: list[tuple[str, str | None, str | None]], retired: list[TrackStream]
    ) -> bytes:
        if self._exhausted or self._closed:
            return b""
        switched = False
        # At most two rounds: the current stream ends, then the next one is tried.
        while True:
            stream = self._current
            if stream is None:
                if self._next is not None and not self._holding:
                    self._current, self._current_id = self._next, self._next_id
                    self._current_started = False
                    self._next = self._next_id = None
                    continue
                self._idle_frames += 1
                if self._idle_frames > self._grace_frames:
                    self._exhausted = True
                    events.append(("exhausted", None, None))
                    return b""
                self._stats.frames_silence += 1
                return SILENCE_FRAME

            if self._incoming is not None:
                spliced = self._splice_packet(stream)
                if spliced is not None:
                    self._stats.frames_sent += 1
                    return spliced
            packet = stream.read_packet()
            if packet is not None:
                self._stats.frames_sent += 1
                if not self._current_started:
                    self._current_started = True
                    events.append(("track_start", self._current_id, None))
                    if switched:
                        self._stats.gapless_switches += 1
                return packet
            if not stream.finished:
                self._stats.frames_silence += 1
                if self._current_started:
                    self._stats.underruns += 1
                return SILENCE_FRAME

            error = stream.error
            if self._incoming is not None:
                # a change asked for as the track ended: the next track (or its end) wins
                self._retire(self._incoming)
                self._incoming = None
            self.last_end = (self._current_id, stream.position)
            events.append(("track_error" if error else "track_end", self._current_id, error))
            retired.append(stream)
            if error and self._current_started:
                self._holding = True  # see __init__: the player reopens it at its position
            self._current = self._current_id = None
            self._current_started = False
            self._idle_frames = 0
            switched = True

    def _splice_packet(self, current: TrackStream) -> bytes | None:
        """The incoming stream's packet when it has reached the current stream's position
        (call with the lock held): its packets before that position are dropped, and the current
        stream retires. None while it is not there yet: the current stream plays this tick."""
        incoming = self._incoming
        assert incoming is not None
        target = current.position  # where the current stream's next packet starts
        # within half a packet either way is the same position (positions are 20 ms steps
        # times the timescale's rate, from starts that need not line up)
        while incoming.position < target - incoming.packet_seconds / 2:
            if incoming.read_packet() is None:
                break
            self._stats.splice_dropped += 1
        behind = incoming.position < target - incoming.packet_seconds / 2
        ahead = incoming.position > target + incoming.packet_seconds / 2
        if behind or ahead:
            if incoming.finished:  # it ended or failed before it got there: keep the old one
                log.warning("a stream opened to replace the playing one ended early: %s",
                            incoming.error or "no audio")
                self._retire(incoming)
                self._incoming = None
            return None
        packet = incoming.read_packet()
        if packet is None:
            return None
        self._retire(current)
        self._current, self._incoming = incoming, None
        self._current_started = True  # the same track: no new track_start
        self._stats.splices += 1
        return packet

    def cleanup(self) -> None:
        """Called by discord.py when the player stops: close every stream (in the background)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for stream in (self._current, self._next, self._incoming):
                self._retire(stream)
            self._current = self._next = self._incoming = None
            self._current_id = self._next_id = None
            self._closer_queue.put(None)  # ends the closer thread after the streams

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until cleanup() finished closing every stream (for unload and tests)."""
        self._closer.join(timeout)
        return not self._closer.is_alive()

    # -- helpers ---------------------------------------------------------------------------------

    def _retire(self, stream: TrackStream | None) -> None:
        """Queue a stream for closing (call with the lock held; never blocks)."""
        if stream is not None:
            self._closer_queue.put(stream)

    def _close_retired(self) -> None:
        while True:
            stream = self._closer_queue.get()
            if stream is None:
                return
            try:
                stream.close()
            except Exception:
                log.exception("closing %r failed", stream)

    def _emit(self, kind: str, track_id: str | None, error: str | None) -> None:
        try:
            self._on_event(kind, track_id, error)
        except Exception:
            # an exception here would end discord.py's player thread
            log.exception("music event callback failed for %s", kind)

    # -- state -----------------------------------------------------------------------------------

    @property
    def stats(self) -> FrameStats:
        """A snapshot of the frame counters."""
        with self._lock:
            return replace(self._stats)

    @property
    def position(self) -> float | None:
        stream = self._current
        return stream.position if stream is not None else None

    @property
    def current_track_id(self) -> str | None:
        return self._current_id

    @property
    def splicing(self) -> bool:
        """A stream waits to take over at the current one's position."""
        return self._incoming is not None

    @property
    def next_track_id(self) -> str | None:
        return self._next_id

    @property
    def current_stream(self) -> TrackStream | None:
        return self._current

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    @property
    def closed(self) -> bool:
        return self._closed

"""Opus sources for discord.py: one ffmpeg per track, one chaining source per guild.

``TrackStream`` runs ffmpeg and a reader thread that keeps a bounded prebuffer of Opus packets, so
taking a packet never waits on ffmpeg or the network. ``ChainSource`` is the ``AudioSource`` the
voice client plays for the whole session: it hands out packets of the current stream, switches to
the prepared next stream inside the same ``read()`` call when the current one ends (gapless), and
sends the Opus silence frame instead of blocking when a stream falls behind. A blocking ``read()``
would make discord.py's player fall behind and then send the missed frames back to back (the
"audio speeds up" bug, discord.py #9120).
"""

from __future__ import annotations

import collections
import logging
import queue
import random
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import BinaryIO

import discord
from discord.opus import OPUS_SILENCE

from ..netguard import ffmpeg_env
from .fetch import HttpMediaReader, MediaFetchError
from .ffmpeg import build_args, end_process
from .ogg import CAPTURE_PATTERN, OggOpusReader, opus_frame_duration_ms
from .webm import EBML_MAGIC, NotOpusAudio, WebmError, WebmOpusReader

log = logging.getLogger("red.music.audio.source")

#: Duration of one packet as Discord plays it.
FRAME_SECONDS = 0.02
FRAME_MS = 20.0
#: The 3-byte Opus frame Discord clients decode as 20 ms of silence (discord.opus.OPUS_SILENCE).
SILENCE_FRAME: bytes = OPUS_SILENCE
#: Prebuffer capacity in packets: 1 s of audio rides out network hiccups without using memory
#: worth mentioning (~16 KB at 128 kbps).
DEFAULT_PREBUFFER_PACKETS = 50
#: How many stderr lines of ffmpeg are kept for error messages.
STDERR_TAIL_LINES = 20
#: How long the reader waits for ffmpeg's exit code after its output ended.
_EXIT_WAIT_SECONDS = 5.0
#: A remote stream whose audio ends more than this many seconds before the track's duration was
#: cut short. ffmpeg exits with code 0 when its HTTP connection drops and its reconnect fails
#: (an expired URL answering 403, a server that went away): without this check such a track
#: would count as finished and the player would move on. Durations from sites are whole seconds.
SHORT_END_TOLERANCE = 3.0


class TrackStream:
    """One track: an ffmpeg process writing Ogg/Opus and a thread filling a packet prebuffer.

    Create, then :meth:`start` (it never raises for ffmpeg problems: they end the stream with
    :attr:`error` set). :meth:`read_packet` never blocks. :meth:`close` is blocking (up to a few
    seconds for an ffmpeg that ignores SIGTERM), so call it off the audio thread and off the event
    loop. If a passthrough input turns out not to be 20 ms Opus, ffmpeg is restarted transcoding
    at the same position (:attr:`fell_back_to_transcode`).

    With ``in_process``, a passthrough runs no ffmpeg at all: the reader thread fetches the
    input itself (music.audio.fetch, through the network guard) and demuxes WebM (from any
    position: it jumps with the file's Cues) or Ogg (from the start) in Python. An ffmpeg
    child costs ~7.6 MB of private memory per stream (its static binary's relocated data alone
    is 4 MB), the demuxing about a microsecond per packet. Any other container goes to an ffmpeg that copies, as without ``in_process``; a
    first audio track that is not Opus, or packets other than 20 ms, to an ffmpeg that
    transcodes (:attr:`ffmpeg_fallback` says why).
    """

    def __init__(
        self,
        ffmpeg: str,
        source: str,
        *,
        start: float = 0.0,
        volume: int = 100,
        headers: Mapping[str, str] | None = None,
        local: bool = False,
        passthrough: bool,
        prebuffer_packets: int = DEFAULT_PREBUFFER_PACKETS,
        expected_end: float | None = None,
        proxy: str | None = None,
        in_process: bool = False,
    ) -> None:
        if prebuffer_packets < 1:
            raise ValueError("The prebuffer must hold at least one packet.")
        self.ffmpeg = ffmpeg
        self.source = source
        self.start_position = max(0.0, float(start))
        self.volume = volume
        self.headers = dict(headers) if headers else None
        self.local = local
        #: the network guard's URL (music.netguard) that carries a remote input's connections
        self.proxy = None if local else proxy
        #: where the track's audio should end (its duration), for a remote, non-live track: a
        #: stream that ends well before it was cut short (see SHORT_END_TOLERANCE)
        self.expected_end = expected_end if expected_end and not local else None
        # Copying cannot change the volume: a volume other than 100 forces transcoding.
        self.passthrough = passthrough and volume == 100
        self.fell_back_to_transcode = False
        self.in_process = in_process and self.passthrough
        #: why an in-process stream handed over to ffmpeg (None while it needs no ffmpeg)
        self.ffmpeg_fallback: str | None = None
        #: the container demuxed in process ("webm" or "ogg"), None when ffmpeg reads the input
        self.demuxed: str | None = None
        self.capacity = prebuffer_packets
        # See _pump: refill in batches, not per packet. The point is spread per stream: streams
        # started together (a restart resumes every guild at once) would otherwise wake their
        # readers in the same 20 ms tick and hold up the audio sender while they all parse
        # (measured at 150 guilds: p99 inter-arrival 28 ms with one shared point).
        self._refill_at = random.randint(prebuffer_packets // 4, (3 * prebuffer_packets) // 4)
        #: the command line of the current ffmpeg (set by start())
        self.args: list[str] = []
        #: seconds from start() to the first buffered packet (None until then)
        self.ready_latency: float | None = None

        self._buffer: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._ready = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._input: HttpMediaReader | BinaryIO | None = None  # the in-process input
        self._reader: threading.Thread | None = None
        self._stderr_readers: list[threading.Thread] = []
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._started = False
        self._closed = False
        self._eof = False
        self._frames_read = 0
        self._packets_buffered = 0
        self._error: str | None = None
        self._returncode: int | None = None
        self._started_at = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> TrackStream:
        """Launch ffmpeg and the reader thread (once; later calls do nothing)."""
        with self._cond:
            if self._started or self._closed:
                return self
            self._started = True
            self._started_at = time.perf_counter()
        if self.in_process:
            # the reader thread opens the input itself: start() returns at once
            self._reader = threading.Thread(
                target=self._read_loop, name="music-reader:in-process", daemon=True
            )
            self._reader.start()
            return self
        # Spawning takes milliseconds: never under the lock read_packet() takes.
        try:
            proc = self._spawn(self.passthrough, self.start_position)
        except OSError as exc:
            with self._cond:
                self._error = f"ffmpeg could not be started: {exc}"
                self._eof = True
            self._ready.set()
            return self
        with self._cond:
            self._proc = proc
            closed_meanwhile = self._closed
        if closed_meanwhile:  # close() ran while we spawned and could not see the process
            end_process(proc)
            self._close_stdout(proc)
            return self
        self._reader = threading.Thread(
            target=self._read_loop, name=f"music-ffmpeg-reader:{proc.pid}", daemon=True
        )
        self._reader.start()
        return self

    def _spawn(self, passthrough: bool, start: float) -> subprocess.Popen[bytes]:
        args = build_args(
            self.ffmpeg,
            self.source,
            start=start,
            volume=self.volume,
            passthrough=passthrough,
            headers=self.headers,
            local=self.local,
            proxy=self.proxy,
        )
        self.args = args
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,  # unbuffered: the Ogg reader gets pages as soon as ffmpeg writes them
            env=ffmpeg_env(self.proxy),
        )
        # stderr must be drained or ffmpeg blocks once the pipe is full; keep only the tail.
        drain = threading.Thread(
            target=self._drain_stderr, args=(proc,), name=f"music-ffmpeg-stderr:{proc.pid}",
            daemon=True,
        )
        drain.start()
        self._stderr_readers.append(drain)
        return proc

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        try:
            for raw in iter(proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    self._stderr_tail.append(line)
        except (OSError, ValueError):
            pass
        finally:
            proc.stderr.close()

    def _read_loop(self) -> None:
        proc = self._proc
        passthrough = self.passthrough
        try:
            if proc is None:  # in process: ffmpeg only if the input needs it
                handover = self._pump_in_process()
                if handover is None:
                    return
                passthrough, position = handover
                proc = self._hand_to_ffmpeg(passthrough, position)
                if proc is None or self._closed:
                    return  # closed meanwhile: _finish ends the new process
            while True:
                restart_at = self._pump(OggOpusReader(proc.stdout), passthrough)
                if restart_at is None:
                    break
                # A copied input with packets other than 20 ms would play at the wrong speed on
                # Discord: restart transcoding from where the buffered audio ends.
                log.info("%s: Opus packets are not 20 ms; transcoding from %.2f s",
                         self.source, restart_at)
                self._end_while_draining(proc)
                self._close_stdout(proc)
                if self._closed:
                    return
                new_proc = self._hand_to_ffmpeg(False, restart_at)
                if new_proc is None:
                    return
                proc, passthrough = new_proc, False
                if self._closed:
                    return  # close() saw the old process; _finish ends this one
        except Exception as exc:  # never let the reader die silently
            log.exception("reader of %s failed", self.source)
            self._error = f"Reading the track failed: {exc}"
        finally:
            if proc is not None:
                self._finish(proc)
            else:
                self._conclude(None)

    def _hand_to_ffmpeg(self, passthrough: bool, position: float) -> subprocess.Popen[bytes] | None:
        """Start the ffmpeg that goes on with this track from ``position`` (copying or
        transcoding); None, with the error set, when it cannot start. close() sees the new
        process as soon as this returns (it is set under the lock close() reads it with)."""
        try:
            new_proc = self._spawn(passthrough, position)
        except OSError as exc:
            self._error = f"ffmpeg could not be started: {exc}"
            return None
        with self._cond:
            self._proc = new_proc
            if not passthrough:
                self.passthrough = False
                self.fell_back_to_transcode = True
        return new_proc

    def _pump_in_process(self) -> tuple[bool, float] | None:
        """Copy the input's Opus packets without ffmpeg. Returns None when done (the end, an
        error, or closed), or ``(passthrough, position)`` for the ffmpeg that takes over."""
        try:
            raw = self._open_input()
        except (MediaFetchError, OSError) as exc:
            self._error = _input_error_text(exc)
            return None
        with self._cond:
            if self._closed:
                _close_quietly(raw)
                return None
            self._input = raw
        try:
            head = _read_head(raw, 4)
            packets: Iterable[bytes]
            if head == EBML_MAGIC:
                # a later start jumps to the Cluster the file's Cues name (a Range request)
                container = "webm"
                packets = WebmOpusReader(_Prefixed(head, raw),
                                         start_ns=round(self.start_position * 1e9))
            elif head == CAPTURE_PATTERN and self.start_position == 0:
                container, packets = "ogg", OggOpusReader(_Prefixed(head, raw))
            else:
                # other containers, and Ogg from a position (it has no index: ffmpeg bisects)
                self.ffmpeg_fallback = ("Ogg from a position" if head == CAPTURE_PATTERN
                                        else "not WebM or Ogg")
                return (True, self.start_position) if not self._closed else None
            self.demuxed = container
            restart_at = self._pump(packets, True)
            if restart_at is not None and not self._closed:
                self.ffmpeg_fallback = "packets other than 20 ms"
                self.demuxed = None
                return False, restart_at
        except NotOpusAudio:
            self.ffmpeg_fallback = "not Opus"
            self.demuxed = None
            return (False, self.start_position) if not self._closed else None
        except WebmError as exc:
            if self._packets_buffered == 0 and not self._closed:
                # ffmpeg reads more of Matroska than we do: let it try
                self.ffmpeg_fallback = f"unreadable WebM ({exc})"
                self.demuxed = None
                return True, self.start_position
            if not self._closed:
                self._error = f"the stream's data is damaged ({exc})"
        except (MediaFetchError, OSError) as exc:
            if not self._closed:
                self._error = _input_error_text(exc)
        finally:
            with self._cond:
                self._input = None
            _close_quietly(raw)
        return None

    def _open_input(self) -> HttpMediaReader | BinaryIO:
        if self.local:
            return open(self.source, "rb")  # noqa: SIM115 -- closed by _pump_in_process
        return HttpMediaReader(self.source, headers=self.headers, proxy=self.proxy)

    def _pump(self, packets: Iterable[bytes], passthrough: bool) -> float | None:
        """Move packets into the prebuffer until the input ends (None) or until a copied packet
        is not 20 ms (the position to restart transcoding at)."""
        for packet in packets:
            if passthrough and _duration_or_zero(packet) != FRAME_MS:
                return self.start_position + self._packets_buffered * FRAME_SECONDS
            with self._cond:
                # Only the reader waits (never the audio thread): 1 s of audio ahead is enough.
                # Once full, it waits until half is played and refills in one go: waking it
                # for every packet cost a thread switch, a pipe read and a page parse 50 times
                # a second per stream (measured: 3.9 -> 1.4 ms of bot CPU per stream-second).
                if len(self._buffer) >= self.capacity:
                    while len(self._buffer) > self._refill_at and not self._closed:
                        self._cond.wait()
                if self._closed:
                    return None
                self._buffer.append(packet)
                self._packets_buffered += 1
            if not self._ready.is_set():
                self.ready_latency = time.perf_counter() - self._started_at
                self._ready.set()
        return None

    def _finish(self, proc: subprocess.Popen[bytes]) -> None:
        if self._closed:
            # Being closed: ffmpeg may be blocked writing into the full pipe, where it only
            # notices SIGTERM once that write returns, so end it while draining the pipe.
            self._end_while_draining(proc)
        try:
            returncode = proc.wait(_EXIT_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            # stdout closed but the process lingers: do not leave it running
            returncode = end_process(proc)
        self._close_stdout(proc)
        for drain in self._stderr_readers:
            drain.join(1.0)  # so the error message has ffmpeg's last words
        self._conclude(returncode)

    def _conclude(self, returncode: int | None) -> None:
        """Record how the stream ended (``returncode`` is ffmpeg's; None when none ran)."""
        ran_ffmpeg = self._proc is not None
        with self._cond:
            self._returncode = returncode
            if not self._closed and self._error is None:
                if returncode:
                    self._error = _error_text(self._stderr_tail, self.source) or (
                        f"ffmpeg exited with code {returncode}.")
                elif self._packets_buffered == 0:
                    self._error = ("ffmpeg produced no audio for this track." if ran_ffmpeg
                                   else "The track holds no audio I can play.")
                elif (self.expected_end is not None
                      and self._end_position() < self.expected_end - SHORT_END_TOLERANCE):
                    cause = _error_text(self._stderr_tail, self.source)
                    self._error = (
                        f"the stream ended at {self._end_position():.1f} s of "
                        f"{self.expected_end:.1f} s (the connection was lost)"
                        + (f": {cause}" if cause else ".")
                    )
            self._eof = True
            self._cond.notify_all()
        self._ready.set()

    def _end_position(self) -> float:
        """Where in the track the audio ffmpeg produced ends."""
        return self.start_position + self._packets_buffered * FRAME_SECONDS

    def _end_while_draining(self, proc: subprocess.Popen[bytes], timeout: float = 2.0) -> None:
        """End ffmpeg from the reader thread. ffmpeg may be blocked writing into the full pipe,
        where SIGTERM does not get it out, so read (and discard) until it exits; a timer kills it
        if it ignores SIGTERM."""
        killer = threading.Timer(timeout, _kill_quietly, args=(proc,))
        killer.daemon = True
        killer.start()
        try:
            proc.terminate()
            self._discard_output(proc)
            end_process(proc, timeout)
        except ProcessLookupError:
            pass
        finally:
            killer.cancel()

    @staticmethod
    def _discard_output(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdout is None:
            return
        try:
            while proc.stdout.read(65536):
                pass
        except (OSError, ValueError):
            pass

    @staticmethod
    def _close_stdout(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdout is not None:
            try:
                proc.stdout.close()
            except OSError:
                pass

    def close(self, timeout: float = 2.0) -> None:
        """End ffmpeg (terminate, then kill) and join the reader. Blocking; safe to call twice."""
        with self._cond:
            self._closed = True
            self._buffer.clear()
            self._cond.notify_all()
            proc = self._proc
            in_process_input = self._input
        if in_process_input is not None:
            _close_quietly(in_process_input)  # wakes a reader blocked on the network
        if proc is not None:
            end_process(proc, timeout)
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
        with self._cond:
            # a fallback may have started a new process while we were ending the old one
            latest = self._proc
        if latest is not None and latest is not proc:
            end_process(latest, timeout)

    def __enter__(self) -> TrackStream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the audio side --------------------------------------------------------------------------

    def read_packet(self) -> bytes | None:
        """The next Opus packet, or None when none is buffered (never blocks).

        None with :attr:`finished` False is an underrun; with it True the track is over."""
        with self._cond:
            if not self._buffer:
                return None
            packet = self._buffer.popleft()
            self._frames_read += 1
            if len(self._buffer) == self._refill_at:
                self._cond.notify()  # a reader waiting on a full buffer may refill now
            return packet

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first packet is buffered (True) or the stream ended without audio /
        the timeout passed (False). Lets the cog open the next track ahead of time."""
        self._ready.wait(timeout)
        return self._packets_buffered > 0

    # -- state -----------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """ffmpeg's output has ended and every buffered packet was handed out (or it was closed)."""
        return (self._eof or self._closed) and not self._buffer

    @property
    def frames_read(self) -> int:
        return self._frames_read

    @property
    def position(self) -> float:
        """Seconds into the track of the audio handed out so far."""
        return self.start_position + self._frames_read * FRAME_SECONDS

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def error(self) -> str | None:
        """Why the stream failed (ffmpeg's last stderr lines), or None."""
        return self._error

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._proc

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def mode(self) -> str:
        """How the audio is made: "copy (in process, webm)", "copy (ffmpeg)", "transcode"."""
        if not self.passthrough:
            return "transcode"
        if self._proc is None and self.in_process:
            return f"copy (in process, {self.demuxed or 'opening'})"
        return "copy (ffmpeg)"

    def __repr__(self) -> str:
        mode = self.mode
        return (f"<TrackStream {mode} pid={self.pid} pos={self.position:.2f}s "
                f"buffered={len(self._buffer)} finished={self.finished}>")


class _Prefixed:
    """A reader that first returns the bytes already read to recognise the container; seeks go
    to the input (WebM's Cues are used when it can seek: files, HttpMediaReader)."""

    def __init__(self, head: bytes, raw: HttpMediaReader | BinaryIO) -> None:
        self._head = head
        self._raw = raw
        self._raw_read = getattr(raw, "read1", raw.read)

    def read1(self, size: int = 65536) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._raw_read(size)

    read = read1

    def seekable(self) -> bool:
        seekable = getattr(self._raw, "seekable", None)
        return bool(seekable and seekable())

    def tell(self) -> int:
        return self._raw.tell() - len(self._head)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._head = b""
        return self._raw.seek(offset, whence)


def _read_head(raw: HttpMediaReader | BinaryIO, size: int) -> bytes:
    read = getattr(raw, "read1", raw.read)
    head = b""
    while len(head) < size:
        chunk = read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _close_quietly(raw: HttpMediaReader | BinaryIO) -> None:
    try:
        raw.close()
    except Exception:
        log.debug("closing an input failed", exc_info=True)


def _input_error_text(exc: BaseException) -> str:
    if isinstance(exc, MediaFetchError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return "The file does not exist."
    return f"Reading the track failed: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)


def _kill_quietly(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.kill()
    except (ProcessLookupError, OSError):
        pass


_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_URL_PATH = re.compile(r"(https?://[^/\s?#]+)[^\s]*")


def _error_text(lines: collections.deque[str], source: str, limit: int = 400) -> str:
    """ffmpeg's last stderr lines as one sentence-ish text, without log prefixes and without
    URL paths and queries (stream URLs carry tokens and the bot's IP address)."""
    cleaned = []
    for line in list(lines)[-4:]:
        line = _LOG_PREFIX.sub("", line).replace(source, "the input")
        cleaned.append(_URL_PATH.sub(r"\1/...", line))
    return " | ".join(cleaned)[:limit]


def _duration_or_zero(packet: bytes) -> float:
    try:
        return opus_frame_duration_ms(packet)
    except ValueError:
        return 0.0


EventCallback = Callable[[str, str | None, str | None], None]


@dataclass
class FrameStats:
    """Frame counters in the spirit of Lavalink's frameStats."""

    frames_sent: int = 0  # audio packets handed to discord.py
    frames_silence: int = 0  # silence frames handed out ("nulled"), for any reason
    underruns: int = 0  # silence frames because a playing track had nothing buffered
    gapless_switches: int = 0  # track changes whose first packet went out in the ending tick


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
            old = self._current
            self._current, self._current_id, self._current_started = stream, track_id, False
            self._idle_frames = 0
            self._holding = False
            self._retire(old)
            if self._next is not None and self._next_id == track_id:
                # the prepared next is this very track (opened ahead, then loaded again by a
                # skip or a recovery): keeping it would play the track a second time
                self._retire(self._next)
                self._next = self._next_id = None
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
        return next_id

    def _check_open(self) -> None:
        if self._closed or self._exhausted:
            raise ChainClosed("This audio source has stopped; play a new one.")

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
            self.last_end = (self._current_id, stream.position)
            events.append(("track_error" if error else "track_end", self._current_id, error))
            retired.append(stream)
            if error and self._current_started:
                self._holding = True  # see __init__: the player reopens it at its position
            self._current = self._current_id = None
            self._current_started = False
            self._idle_frames = 0
            switched = True

    def cleanup(self) -> None:
        """Called by discord.py when the player stops: close every stream (in the background)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for stream in (self._current, self._next):
                self._retire(stream)
            self._current = self._next = None
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

"""One track's audio: ``TrackStream`` reads Opus packets into a prebuffer on its own thread, from
ffmpeg or (a passthrough with ``in_process``) from the input itself, and hands them to the audio
thread without ever waiting.

The parts it composes: music.audio.prebuffer (the bounded buffer), music.audio.ffmpeg_process
(one ffmpeg child), music.audio.in_process (opening and demuxing an input without ffmpeg) and
music.audio.pipe_input (a remote input fed into ffmpeg's stdin: ffmpeg never opens a URL).
What stays here is the choice between them and the hand-overs: an in-process input that turns
out to need ffmpeg, and a copied input whose packets are not 20 ms (restarted transcoding at the
same position). Nothing here imports discord.py.
"""

from __future__ import annotations

import collections
import functools
import logging
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping

from ..engine.filters import FilterChain
from ..i18n import _
from ..netguard import ffmpeg_env
from .fetch import HttpMediaReader, MediaFetchError
from .ffmpeg import build_args
from .ffmpeg_process import STDERR_TAIL_LINES, FfmpegProcess, stderr_error_text
from .filters import filter_graph
from .in_process import (
    MediaInput,
    close_demuxer,
    close_quietly,
    input_error_text,
    open_demuxer,
    open_input,
)
from .limits import MediaLimitError
from .ogg import OggOpusReader, opus_frame_duration_ms
from .pipe_input import SNIFF_BYTES, FfmpegInput, Readable, ffmpeg_input, read_head
from .prebuffer import DEFAULT_PREBUFFER_PACKETS, FRAME_MS, FRAME_SECONDS, Prebuffer
from .transcoder import SharedTranscoder, TranscodeJob
from .webm import NotOpusAudio, WebmError

log = logging.getLogger("red.music.audio.source")

#: A remote stream whose audio ends more than this many seconds before the track's duration was
#: cut short, unless its input was read to the end its server announced: a stream whose length
#: was unknown can end early without an error anywhere (a server that closes, a live segment
#: list that stops). Durations from sites are whole seconds.
SHORT_END_TOLERANCE = 3.0

#: an input already opened and sniffed (the reader, its first bytes), handed to the next ffmpeg
Opened = tuple[HttpMediaReader, bytes]


class TrackStream:
    """One track: an ffmpeg process writing Ogg/Opus and a thread filling a packet prebuffer.

    Create, then :meth:`start` (it never raises for ffmpeg problems: they end the stream with
    :attr:`error` set). :meth:`read_packet` never blocks. :meth:`close` is blocking (up to a few
    seconds for an ffmpeg that ignores SIGTERM), so call it off the audio thread and off the event
    loop. If a passthrough input turns out not to be 20 ms Opus, ffmpeg is restarted transcoding
    at the same position (:attr:`fell_back_to_transcode`).

    With ``in_process``, a passthrough runs no ffmpeg at all: the reader thread fetches the
    input itself (music.audio.fetch, through the network guard) and demuxes WebM (from any
    position: it jumps with the file's Cues) or Ogg (from the start) in Python (see
    music.audio.in_process). Any other container goes to an ffmpeg that copies, as without
    ``in_process``; a first audio track that is not Opus, or packets other than 20 ms, to an
    ffmpeg that transcodes (:attr:`ffmpeg_fallback` says why).

    With ``transcoder`` (music.audio.transcoder's process-wide one), transcoding runs as a job
    in that shared worker instead of an ffmpeg child (~0.75 MB instead of ~8 MB a stream), fed
    the same way (a PipeFeeder: the worker opens nothing); a copy still runs ffmpeg, and so does
    a local file from a position (ffmpeg seeks in it; the worker only reads a pipe from its
    start). When the worker cannot be used, the stream runs ffmpeg as without it.
    """

    def __init__(
        self,
        ffmpeg: str,
        source: str,
        *,
        start: float = 0.0,
        volume: int = 100,
        filters: FilterChain | None = None,
        headers: Mapping[str, str] | None = None,
        local: bool = False,
        passthrough: bool,
        prebuffer_packets: int = DEFAULT_PREBUFFER_PACKETS,
        expected_end: float | None = None,
        proxy: str | None = None,
        in_process: bool = False,
        transcoder: SharedTranscoder | None = None,
    ) -> None:
        self._prebuffer = Prebuffer(prebuffer_packets)
        self.capacity = prebuffer_packets
        self.ffmpeg = ffmpeg
        self.source = source
        self.start_position = max(0.0, float(start))
        self.volume = volume
        #: what the audio goes through (music.audio.filters makes ffmpeg's graph of it)
        self.filters = filters if filters is not None and not filters.is_flat else None
        #: seconds of the track each packet carries: 20 ms times the timescale's rate, so the
        #: position moves by the audio played (nightcore: 25 ms of the track per packet)
        self.packet_seconds = FRAME_SECONDS * (self.filters.media_rate if self.filters else 1.0)
        self.headers = dict(headers) if headers else None
        self.local = local
        #: the network guard's URL (music.netguard) that carries a remote input's connections
        self.proxy = None if local else proxy
        #: where the track's audio should end (its duration), for a remote, non-live track: a
        #: stream that ends well before it was cut short (see SHORT_END_TOLERANCE)
        self.expected_end = expected_end if expected_end and not local else None
        # Copying cannot change the sound: a volume other than 100 or a filter forces transcoding.
        self.passthrough = passthrough and volume == 100 and self.filters is None
        self.fell_back_to_transcode = False
        self.in_process = in_process and self.passthrough
        #: why an in-process stream handed over to ffmpeg (None while it needs no ffmpeg)
        self.ffmpeg_fallback: str | None = None
        #: the container demuxed in process ("webm" or "ogg"), None when ffmpeg reads the input
        self.demuxed: str | None = None
        #: the command line of the current ffmpeg (set by start())
        self.args: list[str] = []
        #: what the remote input fed to ffmpeg was recognised as ("hls", "mp4", ...; see
        #: pipe_input.sniff), None until one is
        self.fed_container: str | None = None
        #: seconds from start() to the first buffered packet (None until then)
        self.ready_latency: float | None = None
        #: the shared transcoder transcoding runs in (None: ffmpeg children)
        self.transcoder = transcoder

        # guards the hand-overs that close() must see: the process, the in-process input, closed
        self._lock = threading.Lock()
        self._proc: FfmpegProcess | TranscodeJob | None = None
        self._input: MediaInput | None = None
        self._fed: FfmpegInput | None = None  # what the current ffmpeg reads on its stdin
        self._reader: threading.Thread | None = None
        # one tail for every ffmpeg of the track: the error message reads like one process's
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._started = False
        self._closed = False
        self._error: str | None = None
        self._returncode: int | None = None
        self._started_at = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> TrackStream:
        """Launch ffmpeg and the reader thread (once; later calls do nothing)."""
        with self._lock:
            if self._started or self._closed:
                return self
            self._started = True
            self._started_at = time.perf_counter()
        if self.in_process or not self.local:
            # the reader thread opens the input itself (a remote one always: ffmpeg only reads
            # what the cog feeds it): start() returns at once
            reader = threading.Thread(target=self._read_loop, name="music-reader:input", daemon=True)
            reader.start()
            # published once started: close() in another thread joins only a started thread
            # (joining one between its creation and start() raises RuntimeError)
            self._reader = reader
            return self
        # Spawning takes milliseconds: never under the lock close() takes.
        try:
            proc = self._spawn(self.passthrough, self.start_position)
        except OSError as exc:
            self._error = _("ffmpeg could not be started: {exc}").format(exc=exc)
            self._prebuffer.end()
            return self
        with self._lock:
            self._proc = proc
            closed_meanwhile = self._closed
        if closed_meanwhile:  # close() ran while we spawned and could not see the process
            proc.end()
            proc.close_stdout()
            return self
        reader = threading.Thread(target=self._read_loop, name=f"music-ffmpeg-reader:{proc.pid}", daemon=True)
        reader.start()
        self._reader = reader  # published once started (see above)
        return self

    def _spawn(self, passthrough: bool, start: float, fed: FfmpegInput | None = None
               ) -> FfmpegProcess | TranscodeJob:
        """An ffmpeg reading the local file, or (``fed``) its stdin fed with a remote input; or,
        transcoding with a shared transcoder, a job of it."""
        if not passthrough and self.transcoder is not None:
            job = self._start_job(self.transcoder, start, fed)
            if job is not None:
                return job
        args = build_args(
            self.ffmpeg,
            None if fed is not None else self.source,
            start=fed.start if fed is not None else start,
            volume=self.volume,
            filters=self.filters,
            passthrough=passthrough,
            input_format=fed.input_format if fed is not None else None,
        )
        self.args = args
        return FfmpegProcess(args, ffmpeg_env(), self._stderr_tail,
                             feed=fed.reader if fed is not None else None)

    def _start_job(self, transcoder: SharedTranscoder, start: float, fed: FfmpegInput | None
                   ) -> TranscodeJob | None:
        """A job of the shared transcoder fed with the input, or None when this input stays
        with ffmpeg (a local file from a position) or the transcoder cannot take it (logged)."""
        if fed is None:
            if start > 0:
                return None  # ffmpeg seeks in the file; the worker would decode up to there
            try:
                feed: Readable = open(self.source, "rb")  # noqa: SIM115 -- the feeder closes it
            except OSError:
                return None  # ffmpeg says why, in the words users already get
            position, input_format = 0.0, None
        else:
            feed, position, input_format = fed.reader, fed.start, fed.input_format
        try:
            job = transcoder.start_job(feed, start=position,
                                       filters=filter_graph(self.filters, self.volume),
                                       input_format=input_format, stderr_tail=self._stderr_tail)
        except OSError as exc:
            if fed is None:
                close_quietly(feed)  # type: ignore[arg-type]
            _log_transcoder_fallback(str(exc))
            return None
        self.args = []  # no command line: see :attr:`in_shared_transcoder`
        return job

    def _read_loop(self) -> None:
        proc = self._proc
        passthrough = self.passthrough
        try:
            if proc is None:  # in process: ffmpeg only if the input needs it
                handover = (self._pump_in_process() if self.in_process
                            else (passthrough, self.start_position, None))
                if handover is None:
                    return
                passthrough, position, opened = handover
                proc = self._hand_to_ffmpeg(passthrough, position, opened)
                if proc is None or self._closed:
                    return  # closed meanwhile: _finish ends the new process
            while True:
                restart_at = self._pump(OggOpusReader(proc.stdout), passthrough)  # type: ignore[arg-type]
                if restart_at is None:
                    break
                # A copied input with packets other than 20 ms would play at the wrong speed on
                # Discord: restart transcoding from where the buffered audio ends.
                log.info("%s: Opus packets are not 20 ms; transcoding from %.2f s",
                         self.source, restart_at)
                proc.end_while_draining()
                proc.close_stdout()
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
            self._error = _("Reading the track failed: {exc}").format(exc=exc)
        finally:
            if proc is not None:
                self._conclude(proc.wait_exit(closing=self._closed))
            else:
                self._conclude(None)

    def _hand_to_ffmpeg(self, passthrough: bool, position: float, opened: Opened | None = None
                        ) -> FfmpegProcess | TranscodeJob | None:
        """Start the ffmpeg that goes on with this track from ``position`` (copying or
        transcoding), fed with the remote input (``opened`` if the caller has it open, else
        opened again from its start); None, with the error set, when it cannot start. close()
        sees the new process as soon as this returns (it is set under the lock close() reads
        it with)."""
        fed: FfmpegInput | None = None
        if not self.local:
            fed = self._remote_input(position, opened)
            if fed is None:
                return None
            if passthrough and fed.container == "ogg" and fed.start > 0:
                # ffmpeg's copy of Ogg from a position on a pipe gives no packets: transcode
                passthrough = False
        self._fed = fed
        try:
            new_proc = self._spawn(passthrough, position, fed)
        except OSError as exc:
            if fed is not None:
                close_quietly(fed.reader)  # type: ignore[arg-type]
            self._error = _("ffmpeg could not be started: {exc}").format(exc=exc)
            return None
        with self._lock:
            self._proc = new_proc
            if not passthrough:
                self.passthrough = False
                self.fell_back_to_transcode = True
        return new_proc

    def _remote_input(self, position: float, opened: Opened | None) -> FfmpegInput | None:
        """What ffmpeg reads from ``position``: the remote input (opened now unless given)
        through the guard, an HLS stream's segments, an MP4 sent index first; None, with the
        error set, when it cannot be read (a refusal by the guard keeps its text)."""
        raw: HttpMediaReader | None = opened[0] if opened is not None else None
        try:
            if raw is None:
                raw = HttpMediaReader(self.source, headers=self.headers, proxy=self.proxy)
            with self._lock:
                if self._closed:
                    close_quietly(raw)
                    return None
                self._input = raw  # close() wakes a connection or a playlist read
            head = opened[1] if opened is not None else read_head(raw, SNIFF_BYTES)
            fed = ffmpeg_input(raw, head, start=position, headers=self.headers,
                               proxy=self.proxy)
        except (MediaFetchError, OSError) as exc:
            if raw is not None:
                close_quietly(raw)
            if not self._closed:
                self._error = input_error_text(exc)
            return None
        finally:
            with self._lock:
                self._input = None
        self.fed_container = fed.container
        if self._closed:
            close_quietly(fed.reader)  # type: ignore[arg-type]
            return None
        return fed

    def _pump_in_process(self) -> tuple[bool, float, Opened | None] | None:
        """Copy the input's Opus packets without ffmpeg. Returns None when done (the end, an
        error, or closed), or ``(passthrough, position, opened)`` for the ffmpeg that takes
        over (``opened``: the remote input still open at its first bytes, when ffmpeg can go
        on from there)."""
        try:
            raw = open_input(self.source, local=self.local, headers=self.headers, proxy=self.proxy)
        except (MediaFetchError, OSError) as exc:
            self._error = input_error_text(exc)
            return None
        with self._lock:
            if self._closed:
                close_quietly(raw)
                return None
            self._input = raw
        keep_open = False
        packets: Iterable[bytes] | None = None
        try:
            head = read_head(raw, SNIFF_BYTES)
            opened = open_demuxer(raw, head, self.start_position)
            if isinstance(opened, str):
                self.ffmpeg_fallback = opened
                if self._closed:
                    return None
                if isinstance(raw, HttpMediaReader):
                    keep_open = True  # ffmpeg reads on from these first bytes
                    return True, self.start_position, (raw, head)
                return True, self.start_position, None
            container, packets = opened
            self.demuxed = container
            restart_at = self._pump(packets, True)
            if restart_at is not None and not self._closed:
                self.ffmpeg_fallback = "packets other than 20 ms"
                self.demuxed = None
                return False, restart_at, None
        except MediaLimitError as exc:  # hostile or broken past any real file: refused
            if not self._closed:
                self._error = str(exc)
        except NotOpusAudio:
            self.ffmpeg_fallback = "not Opus"
            self.demuxed = None
            return (False, self.start_position, None) if not self._closed else None
        except WebmError as exc:
            if self._prebuffer.packets_put == 0 and not self._closed:
                # ffmpeg reads more of Matroska than we do: let it try
                self.ffmpeg_fallback = f"unreadable WebM ({exc})"
                self.demuxed = None
                return True, self.start_position, None
            if not self._closed:
                self._error = _("the stream's data is damaged ({exc})").format(exc=exc)
        except (MediaFetchError, OSError) as exc:
            if not self._closed:
                self._error = input_error_text(exc)
        finally:
            with self._lock:
                self._input = None
            close_demuxer(packets)
            if not keep_open:
                close_quietly(raw)
        return None

    def _pump(self, packets: Iterable[bytes], passthrough: bool) -> float | None:
        """Move packets into the prebuffer until the input ends (None) or until a copied packet
        is not 20 ms (the position to restart transcoding at)."""
        prebuffer = self._prebuffer
        for packet in packets:
            if passthrough and _duration_or_zero(packet) != FRAME_MS:
                return self._end_position()
            if not prebuffer.put(packet):
                return None  # closed
            if not prebuffer.is_ready:
                self.ready_latency = time.perf_counter() - self._started_at
                prebuffer.mark_ready()
        return None

    def _conclude(self, returncode: int | None) -> None:
        """Record how the stream ended (``returncode`` is ffmpeg's; None when none ran)."""
        ran_ffmpeg = self._proc is not None
        with self._lock:
            self._returncode = returncode
            if not self._closed and self._error is None:
                self._error = self._ending_error(returncode, ran_ffmpeg)
        self._prebuffer.end()

    def _ending_error(self, returncode: int | None, ran_ffmpeg: bool) -> str | None:
        """Why a stream that ended by itself failed, or None when it played to its end."""
        feeder = self._proc.feeder if self._proc is not None else None
        if feeder is not None and feeder.error:
            return feeder.error  # the input failed (a refusal, a lost connection, a sentence)
        if returncode and isinstance(self._proc, TranscodeJob) and self._proc.error:
            return self._proc.error  # the transcoder's sentence ("The transcoder stopped.")
        if returncode:
            return stderr_error_text(self._stderr_tail, self.source) or (
                _("ffmpeg exited with code {returncode}.").format(returncode=returncode))
        if self._prebuffer.packets_put == 0:
            return (_("ffmpeg produced no audio for this track.") if ran_ffmpeg
                    else _("The track holds no audio I can play."))
        read_to_its_end = (feeder is not None and feeder.complete
                           and self._fed is not None and self._fed.known_end)
        if (self.expected_end is not None and not read_to_its_end
                and self._end_position() < self.expected_end - SHORT_END_TOLERANCE):
            cause = stderr_error_text(self._stderr_tail, self.source)
            return (
                _("the stream ended at {end_position:.1f} s of "
                "{expected_end:.1f} s (the connection was lost)").format(end_position=self._end_position(), expected_end=self.expected_end)
                + (f": {cause}" if cause else ".")
            )
        return None

    def _end_position(self) -> float:
        """Where in the track the audio produced so far ends."""
        return self.start_position + self._prebuffer.packets_put * self.packet_seconds

    def close(self, timeout: float = 2.0) -> None:
        """End ffmpeg (terminate, then kill) and join the reader. Blocking; safe to call twice."""
        with self._lock:
            self._closed = True
            proc = self._proc
            in_process_input = self._input
        self._prebuffer.close()  # drops the packets, wakes a reader waiting on a full buffer
        if in_process_input is not None:
            close_quietly(in_process_input)  # wakes a reader blocked on the network
        if proc is not None:
            proc.end(timeout)
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
        with self._lock:
            # a fallback may have started a new process while we were ending the old one
            latest = self._proc
        if latest is not None and latest is not proc:
            latest.end(timeout)

    def __enter__(self) -> TrackStream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the audio side --------------------------------------------------------------------------

    def read_packet(self) -> bytes | None:
        """The next Opus packet, or None when none is buffered (never blocks).

        None with :attr:`finished` False is an underrun; with it True the track is over."""
        return self._prebuffer.take()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first packet is buffered (True) or the stream ended without audio /
        the timeout passed (False). Lets the cog open the next track ahead of time."""
        return self._prebuffer.wait_ready(timeout)

    # -- state -----------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """The input has ended and every buffered packet was handed out (or it was closed)."""
        return self._prebuffer.finished

    @property
    def frames_read(self) -> int:
        return self._prebuffer.packets_taken

    @property
    def position(self) -> float:
        """Seconds into the track of the audio handed out so far (track time: with a timescale
        filter it moves faster or slower than the clock)."""
        return self.start_position + self._prebuffer.packets_taken * self.packet_seconds

    @property
    def buffered(self) -> int:
        return len(self._prebuffer)

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
        """The ffmpeg child (None for a job of the shared transcoder: its worker is shared)."""
        return self._proc.proc if isinstance(self._proc, FfmpegProcess) else None

    @property
    def in_shared_transcoder(self) -> bool:
        """Whether the shared transcoder (not an ffmpeg child) makes the audio now."""
        return isinstance(self._proc, TranscodeJob)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def mode(self) -> str:
        """How the audio is made: "copy (in process, webm)", "copy (ffmpeg)", "transcode",
        "transcode (shared)" (music.audio.transcoder)."""
        if not self.passthrough:
            return "transcode (shared)" if self.in_shared_transcoder else "transcode"
        if self._proc is None and self.in_process:
            return f"copy (in process, {self.demuxed or 'opening'})"
        return "copy (ffmpeg)"

    def __repr__(self) -> str:
        return (f"<TrackStream {self.mode} pid={self.pid} pos={self.position:.2f}s "
                f"buffered={self.buffered} finished={self.finished}>")


@functools.cache
def _log_transcoder_fallback(reason: str) -> None:
    log.warning("The shared transcoder could not take a stream (%s): it runs an ffmpeg child.",
                reason)


def _duration_or_zero(packet: bytes) -> float:
    try:
        return opus_frame_duration_ms(packet)
    except ValueError:
        return 0.0

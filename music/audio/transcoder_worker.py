"""The shared transcoder's worker process: many streams decoded and encoded to Ogg/Opus in ONE
process (PyAV: libavcodec and libopus), instead of one ffmpeg child (~8 MB) per stream.

Run by path (``python transcoder_worker.py CONTROL_FD``): a Red cog package is not importable
from a fresh interpreter, so this file imports only the standard library and ``av``.
music.audio.transcoder (the bot side) starts it and talks to it over a Unix socket:

- bot -> worker, one JSON object per line: ``{"op": "job", "id", "start", "filters",
  "bitrate", "format", "format_whitelist"}`` carrying two file descriptors (SCM_RIGHTS): the
  read end of the input pipe (the bot's PipeFeeder writes the media into it) and the write end
  of the output pipe (Ogg/Opus with one 20 ms packet per page, as ``ffmpeg -f ogg
  -page_duration 20000`` writes); ``{"op": "cancel", "id"}``.
- worker -> bot: ``{"event": "ready"}`` once PyAV is loaded (before any job is sent);
  ``{"id", "event": "end", "error": null | {"kind", "detail"}}`` once per job,
  after its output was closed; ``{"event": "unavailable", "reason"}`` instead of any work when
  this PyAV has no libopus encoder (the bot imports no PyAV itself: ~10 MB it need not map).

The worker decodes hostile input, so it is a process of its own: a crafted file that crashes
libavcodec ends this process (the bot sees the socket close and every open job fails), never
the bot. It exits when the bot closes the socket. Every job is a thread that holds one decoded
frame at a time; writing into a pipe nobody reads blocks that thread, so nothing grows.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import threading
from collections import deque
from fractions import Fraction
from typing import Any

import av

SAMPLE_RATE = 48000
#: 20 ms at 48 kHz: Discord plays 20 ms frames, any other size would play at the wrong speed
FRAME_SAMPLES = 960
#: the encoder's time base, made once: a Fraction per frame was ~2 % of a job's CPU (cProfile)
TIME_BASE = Fraction(1, SAMPLE_RATE)
#: one Ogg page per packet (microseconds), as the ffmpeg children write it
OGG_PAGE_DURATION_US = "20000"
#: the encoder's settings, as music.audio.ffmpeg.build_args gives ffmpeg (FEC pinned off)
OPUS_OPTIONS = {"frame_duration": "20", "application": "audio", "fec": "0", "packet_loss": "0"}
#: the muxer's output buffer: one page (~350 bytes at 128 kb/s) is flushed as soon as it is
#: written (flush_packets), so this only bounds a burst
OUTPUT_BUFFER_BYTES = 4096
#: the input is the pipe PyAV reads for the demuxer: any URL a demuxer would open besides it
#: (a playlist's entries, a reference file) is refused, as is every demuxer that does so
#: outside the bot's allowlist (``format_whitelist``)
NO_PROTOCOLS = "none"
#: How many jobs decode and encode at once (one per core, at most 4). Each job is a thread;
#: the others wait on this semaphore (once per input packet) instead of queueing for the GIL
#: at every libav call PyAV makes without it. Measured, 60 MP3 -> Opus jobs unpaced on 2 busy
#: cores: 25 ms CPU per stream-second without it (half of it system time: GIL hand-offs),
#: 14 ms with it (60 ffmpeg children there: 13 ms; 2 jobs alone: 10 ms).
CPU_SLOTS = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))
#: the filters music.audio.filters.filter_graph makes; anything else is refused
ALLOWED_FILTERS = frozenset({
    "aformat", "loudnorm", "aresample", "asetrate", "atempo", "equalizer", "stereotools",
    "lowpass", "tremolo", "vibrato", "apulsator", "volume",
})
#: what a filter's options may hold: numbers, option names and the separators (no paths)
_OPTION_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=:._-")
#: bytes read per recvmsg on the control socket, and file descriptors at most with them
CONTROL_READ_BYTES = 65536
MAX_FDS_PER_READ = 64


class Cancelled(Exception):
    """The bot cancelled the job."""


class JobError(Exception):
    """The job failed: ``kind`` for the bot's sentence, ``detail`` libav's words."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def parse_filters(graph: str | None) -> list[tuple[str, str]]:
    """``filter_graph``'s string as (name, options) pairs, refusing any filter or character it
    never makes (the worker opens nothing a filter option could name)."""
    if not graph:
        return []
    parsed = []
    for part in graph.split(","):
        name, _, options = part.partition("=")
        if name not in ALLOWED_FILTERS or not set(options) <= _OPTION_CHARACTERS:
            raise JobError("filters", f"filter {part[:40]!r} is not one the cog makes")
        parsed.append((name, options))
    return parsed


class Job:
    """One stream: the input pipe decoded, filtered, resampled, encoded and muxed into the
    output pipe, on its own thread."""

    def __init__(self, spec: dict[str, Any], input_fd: int, output_fd: int,
                 report: Any) -> None:
        self.id = int(spec["id"])
        self.start = max(0.0, float(spec.get("start") or 0.0))
        self.filters = parse_filters(spec.get("filters"))
        self.bitrate = int(spec.get("bitrate") or 128000)
        self.opus_options = dict(OPUS_OPTIONS, fec="1" if spec.get("fec") is True else "0",
                                 packet_loss=str(min(100, max(0, int(spec.get("packet_loss") or 0)))))
        self.input_format = spec.get("format") or None
        self.format_whitelist = str(spec.get("format_whitelist") or "")
        self._input = os.fdopen(input_fd, "rb", buffering=0)
        self._output = os.fdopen(output_fd, "wb", buffering=0)
        self._report = report
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"transcode:{self.id}", daemon=True)

    def cancel(self) -> None:
        # the bot closes its pipe ends too, which wakes a read or a write blocked on them
        self.cancelled.set()

    def _run(self) -> None:
        error: dict[str, str] | None = None
        try:
            self._transcode()
        except Cancelled:
            pass
        except JobError as exc:
            error = {"kind": exc.kind, "detail": exc.detail}
        except (BrokenPipeError, ConnectionError):
            pass  # the bot stopped reading: it closed the stream
        except av.FFmpegError as exc:
            if not self.cancelled.is_set():
                error = {"kind": "input", "detail": _ffmpeg_words(exc)}
        except Exception as exc:  # never let a job die silently: the bot waits for its end
            if not self.cancelled.is_set():
                error = {"kind": "internal", "detail": f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            if self.cancelled.is_set():
                error = None  # whatever broke after a cancel was the cancel's doing
            for pipe in (self._input, self._output):
                try:
                    pipe.close()
                except OSError:
                    pass
            self._report({"id": self.id, "event": "end", "error": error})

    def _transcode(self) -> None:
        options = {"protocol_whitelist": NO_PROTOCOLS}
        if self.format_whitelist:
            options["format_whitelist"] = self.format_whitelist
        try:
            source = av.open(self._input, "r", format=self.input_format, options=options)
        except av.FFmpegError as exc:
            if exc.errno == errno.EINVAL:
                # what libav answers for a demuxer outside format_whitelist (a playlist, as a
                # rule): its words ("Invalid argument") would tell the user nothing
                raise JobError("not_media", _ffmpeg_words(exc)) from exc
            raise JobError("open", _ffmpeg_words(exc)) from exc
        try:
            if not source.streams.audio:
                raise JobError("no_audio", "no audio stream")
            stream = source.streams.audio[0]
            stream.codec_context.thread_count = 1  # no decoder threads: one thread per job
            pages = PageBuffer()
            sink = av.open(pages, "w", format="ogg", buffer_size=OUTPUT_BUFFER_BYTES,
                           container_options={"page_duration": OGG_PAGE_DURATION_US,
                                              "flush_packets": "1"})
            try:
                self._encode_into(sink, source, stream, pages)
            finally:
                with CPU_SLOTS:
                    try:
                        sink.close()  # the trailer: the last page
                    except (OSError, av.FFmpegError, ValueError):
                        pass
                pages.write_into(self._output)
        finally:
            source.close()

    def _encode_into(self, sink: Any, source: Any, stream: Any, pages: PageBuffer) -> None:
        out = sink.add_stream("libopus", rate=SAMPLE_RATE)
        codec = out.codec_context
        codec.bit_rate = self.bitrate
        codec.layout = "stereo"
        codec.format = "flt"
        codec.options = dict(self.opus_options)
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=SAMPLE_RATE,
                                      frame_size=FRAME_SAMPLES)
        graph = None
        pts = 0

        def encode(frames: Any) -> None:
            nonlocal pts
            for frame in frames:
                frame.pts = pts
                frame.time_base = TIME_BASE
                pts += frame.samples
                sink.mux(out.encode(frame))

        def process(frame: Any) -> None:
            nonlocal graph
            if self.filters:
                if graph is None:
                    graph = _filter_graph(self.filters, stream)
                graph.push(frame)
                for filtered in _pull_all(graph):
                    encode(resampler.resample(filtered))
            else:
                encode(resampler.resample(frame))

        decoded = 0.0  # seconds of input decoded (a pipe has no index to seek with)
        # Reading the input (demux) may wait on the pipe: outside the CPU slot. Decoding and
        # encoding one packet hold a slot; its pages go to the pipe after, outside it too.
        for packet in source.demux(stream):
            if self.cancelled.is_set():
                raise Cancelled
            with CPU_SLOTS:
                for frame in packet.decode():
                    decoded += frame.samples / (frame.sample_rate or SAMPLE_RATE)
                    if decoded > self.start:  # before it: dropped, as ffmpeg's -ss on a pipe
                        process(frame)
            pages.write_into(self._output)
        with CPU_SLOTS:
            if graph is not None:
                graph.push(None)
                for filtered in _pull_all(graph):
                    encode(resampler.resample(filtered))
            encode(resampler.resample(None))
            sink.mux(out.encode(None))
        pages.write_into(self._output)


class PageBuffer:
    """Where the muxer writes: the pages of one input packet, written into the output pipe
    after the CPU slot is released (a write that blocks on a full pipe must not hold a slot)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def write_into(self, output: Any) -> None:
        if not self._chunks:
            return
        view = memoryview(b"".join(self._chunks))
        self._chunks.clear()
        while view:
            view = view[output.write(view):]


def _filter_graph(filters: list[tuple[str, str]], stream: Any) -> Any:
    graph = av.filter.Graph()
    previous = graph.add_abuffer(template=stream)
    try:
        for name, options in filters:
            node = graph.add(name, options)
            previous.link_to(node)
            previous = node
        sink = graph.add("abuffersink")
        previous.link_to(sink)
        graph.configure()
    except (av.FFmpegError, ValueError) as exc:
        raise JobError("filters", _ffmpeg_words(exc)) from exc
    return graph


def _pull_all(graph: Any) -> list[Any]:
    frames = []
    while True:
        try:
            frames.append(graph.pull())
        except (av.error.BlockingIOError, av.error.EOFError):
            return frames


def _ffmpeg_words(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    return str(strerror or exc)[:300]


class Worker:
    """The control loop: jobs in, their ends out; exits when the bot closes the socket."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.jobs: dict[int, Job] = {}
        self._send_lock = threading.Lock()
        self._jobs_lock = threading.Lock()

    def report(self, message: dict[str, Any]) -> None:
        with self._jobs_lock:
            self.jobs.pop(int(message["id"]), None)
        line = (json.dumps(message) + "\n").encode()
        try:
            with self._send_lock:
                self.control.sendall(line)
        except OSError:
            pass  # the bot has gone: this process is about to exit

    def run(self) -> None:
        buffered = b""
        fds: deque[int] = deque()
        while True:
            try:
                data, received, _flags, _addr = socket.recv_fds(
                    self.control, CONTROL_READ_BYTES, MAX_FDS_PER_READ)
            except OSError:
                data, received = b"", []
            fds.extend(received)  # each job's two arrive with its first byte: in order
            if not data:
                return
            buffered += data
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                self._handle(json.loads(line), fds)

    def _handle(self, message: dict[str, Any], fds: deque[int]) -> None:
        if message.get("op") == "cancel":
            with self._jobs_lock:
                job = self.jobs.get(int(message["id"]))
            if job is not None:
                job.cancel()
            return
        input_fd, output_fd = fds.popleft(), fds.popleft()
        try:
            job = Job(message, input_fd, output_fd, self.report)
        except JobError as exc:
            for fd in (input_fd, output_fd):
                os.close(fd)
            self.report({"id": message["id"], "event": "end",
                         "error": {"kind": exc.kind, "detail": exc.detail}})
            return
        with self._jobs_lock:
            self.jobs[job.id] = job
        job.thread.start()


def unavailable_reason() -> str | None:
    """Why this PyAV cannot do the work (None when it can)."""
    try:
        av.codec.Codec("libopus", "w")
    except Exception:
        return "PyAV has no libopus encoder"
    return None


def quiet_libav() -> None:
    """libav's own log lines (a warning per odd MP3 header) would reach the bot's log, one
    warning each: a job's failure reaches the bot in its report instead."""
    try:
        av.logging.set_level(None)  # PyAV 14+: libav logs nothing (its default there)
    except TypeError:  # older PyAV routes libav's log through Python's logging
        logging.getLogger("libav").setLevel(logging.CRITICAL)


def main(argv: list[str]) -> int:
    control = socket.socket(fileno=int(argv[1]))
    quiet_libav()
    try:
        reason = unavailable_reason()
        if reason is not None:
            # the bot stops using the shared transcoder (its streams use ffmpeg children)
            control.sendall((json.dumps({"event": "unavailable", "reason": reason}) + "\n").encode())
            return 1
        control.sendall(b'{"event": "ready"}\n')  # the bot waits for it before its first job
        Worker(control).run()
    finally:
        control.close()
    # The bot has gone (cog unload, or it crashed): jobs still running would only write into
    # pipes nobody reads. Exiting closes every pipe.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

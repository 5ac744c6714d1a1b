"""The shared transcoder, bot side: many transcoding streams in ONE worker process
(music/audio/transcoder_worker.py, PyAV) instead of one ffmpeg child each.

Measured (60 MP3 -> Opus streams): an ffmpeg child costs ~7.9 MB of private memory whatever its
flags (4 MB of it the static binary's relocated data); a stream in the shared worker ~0.6 MB,
for the same CPU (~10 ms per stream-second). The decoding stays out of the bot's process: a
crafted file that crashes libavcodec ends the worker, whose open streams fail with "the
transcoder stopped", and the next stream starts a new worker.

Per job the bot makes two pipes and hands the worker (SCM_RIGHTS over a Unix socketpair) the
input's read end and the output's write end. The input side is the same PipeFeeder as for an
ffmpeg child (the network guard stays the only way out: the worker opens nothing), and the
output is the same Ogg/Opus with 20 ms pages, so TrackStream's OggOpusReader reads it
unchanged. A :class:`TranscodeJob` offers what TrackStream uses of an FfmpegProcess.

Not available (then callers keep using ffmpeg children): without PyAV, without its libopus
encoder (the worker says so: the bot process never imports PyAV, ~10 MB it need not map), or on
a platform without ``socket.send_fds`` (Windows).
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import itertools
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ..i18n import _, deferred
from ..netguard import ffmpeg_env
from .ffmpeg import FORMAT_WHITELIST, end_process
from .ffmpeg_process import (
    EXIT_WAIT_SECONDS,
    NOT_MEDIA_SENTENCE,
    drain_stderr_lines,
    lower_priority,
)
from .pipe_input import FedByPipe, PipeFeeder, Readable

log = logging.getLogger("red.music.audio.transcoder")

WORKER_SCRIPT = Path(__file__).with_name("transcoder_worker.py")
#: Opus bitrate in bits per second (music.audio.ffmpeg.TRANSCODE_BITRATE for the children)
TRANSCODE_BITRATE_BPS = 128_000
#: Seconds close() waits for the worker to exit by itself once the socket is closed, before
#: SIGTERM (and as long again before SIGKILL).
CLOSE_WAIT_SECONDS = 2.0
#: Seconds a job waits for a new worker to say it is ready (it loads PyAV: ~0.15 s, more on a
#: busy machine) before that stream uses an ffmpeg child instead
READY_WAIT_SECONDS = 10.0

STOPPED_SENTENCE = deferred._("The transcoder stopped.")
_ERROR_SENTENCES = {
    "open": deferred._("The transcoder could not open this input: {detail}."),
    "not_media": NOT_MEDIA_SENTENCE,
    "no_audio": deferred._("The input holds no audio stream."),
    "input": deferred._("The transcoder could not decode this input: {detail}."),
    "filters": deferred._("The transcoder refused the filters: {detail}."),
    "internal": deferred._("The transcoder failed: {detail}."),
}


#: set once a worker said its PyAV cannot encode Opus: no worker is started after that
_refusal: str | None = None


def unavailable_reason() -> str | None:
    """Why the shared transcoder cannot run here (None when it can, as far as the bot can tell
    without importing PyAV: the worker checks its libopus encoder and says so)."""
    if _refusal is not None:
        return _refusal
    return _static_reason()


@functools.lru_cache(maxsize=1)
def _static_reason() -> str | None:
    if not hasattr(socket, "send_fds") or not hasattr(socket, "recv_fds"):
        return "this platform cannot pass pipes to another process (no socket.send_fds)"
    if _av_path() is None:
        return "PyAV (the av package) is not installed"
    return None


@functools.lru_cache(maxsize=1)
def _av_path() -> str | None:
    """The directory PyAV would be imported from, for the worker's PYTHONPATH (Red installs a
    cog's requirements into a folder it adds to sys.path at run time, which a fresh interpreter
    would not search). Found without importing it: the bot never maps PyAV's libraries."""
    try:
        spec = importlib.util.find_spec("av")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))).resolve().parent)


def _refuse(reason: str) -> None:
    global _refusal
    _refusal = reason
    _log_unavailable(reason)


class TranscodeJob(FedByPipe):
    """One stream in the shared worker: :attr:`stdout` is its Ogg/Opus output, :attr:`feeder`
    writes its input. Mirrors what TrackStream uses of music.audio.ffmpeg_process.FfmpegProcess:
    ``stdout``, ``pid``, ``feeder``, ``feed_error``, ``stop_feeding``, ``end``,
    ``end_while_draining``, ``wait_exit`` (0 when it played to its end, 1 when it failed: see
    :attr:`error`) and ``close_stdout``."""

    def __init__(self, job_id: int, worker: _Worker, stdout: IO[bytes], feeder: PipeFeeder,
                 stderr_tail: collections.deque[str] | None) -> None:
        self.id = job_id
        self._worker = worker
        self.stdout: IO[bytes] | None = stdout
        self.feeder: PipeFeeder | None = feeder
        self.stderr_tail = stderr_tail
        #: why the job failed, a sentence (None while it runs, or when it played to its end)
        self.error: str | None = None
        self.returncode: int | None = None
        self.cancelled = False
        self._ended = threading.Event()

    @property
    def pid(self) -> int:
        """The worker's pid (shared by its jobs)."""
        return self._worker.proc.pid

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def _finish(self, error: str | None) -> None:
        """Called once by the worker's reader thread: the job's output is closed."""
        if self._ended.is_set():
            return
        if self.cancelled:
            error = None  # whatever broke after the cancel (the input's end) was its doing
        self.error = error
        self.returncode = 0 if error is None else 1
        if error is not None and self.stderr_tail is not None:
            self.stderr_tail.append(error)
        self._ended.set()

    def cancel(self) -> None:
        """Ask the worker to end the job (it closes the output) and stop feeding it."""
        self.cancelled = True
        if not self._ended.is_set():
            try:
                self._worker.send({"op": "cancel", "id": self.id})
            except OSError:
                pass  # the worker has gone: the job ends with it
        self.stop_feeding()

    def end(self, timeout: float = 2.0) -> int | None:
        """Cancel and wait up to ``timeout`` for the worker to close the output. For any
        thread but the one reading :attr:`stdout` (see :meth:`end_while_draining`): the job may
        be blocked writing into the full pipe until someone reads it."""
        self.cancel()
        self._ended.wait(timeout)
        if self.feeder is not None:
            self.feeder.join(timeout)
        return self.returncode

    def end_while_draining(self, timeout: float = 2.0) -> None:
        """End the job from the thread reading its output: cancel, then read (and discard)
        until the worker closes the output, for at most ``timeout`` seconds."""
        self.cancel()
        stdout = self.stdout
        if stdout is None:
            return
        deadline = time.monotonic() + timeout
        try:
            # poll(), not select(): select() refuses a descriptor numbered 1,024 or more, which
            # a bot with hundreds of voice connections has (music.voiceclient.lift_select_limit)
            poller = select.poll()
            poller.register(stdout, select.POLLIN)
            while (left := deadline - time.monotonic()) > 0:
                if poller.poll(left * 1000) and not stdout.read(65536):
                    break
        except (OSError, ValueError):
            pass

    def wait_exit(self, closing: bool) -> int | None:
        """After its output ended (or, with ``closing``, while the stream is being closed):
        0 or 1 (see :attr:`error`); stdout is closed and the feeder stopped."""
        if closing:
            self.end_while_draining()
        if not self._ended.wait(EXIT_WAIT_SECONDS):
            self.cancel()  # its output ended but the worker did not say so: do not leave it
        self.close_stdout()
        if self.feeder is not None:
            if self.feeder.running:  # the job ended early: its input is not needed
                self.feeder.stop()
            self.feeder.join()
        return self.returncode

    def close_stdout(self) -> None:
        if self.stdout is not None:
            try:
                self.stdout.close()
            except OSError:
                pass


class _Worker:
    """One running worker process: its control socket, the thread reading it, its open jobs."""

    def __init__(self, python: str, script: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = ffmpeg_env()
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_av_path() or "", env.get("PYTHONPATH", "")) if p)
        try:
            self.proc = subprocess.Popen(
                [python, str(script), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        # before its first job, so before its job threads start: they inherit the niceness
        lower_priority(self.proc.pid)
        self.control = ours
        self.jobs: dict[int, TranscodeJob] = {}
        self.alive = True
        #: the worker said it is ready (it imported PyAV and has libopus)
        self.ready = False
        #: set once it is ready or has stopped
        self.settled = threading.Event()
        self.closing = False
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_reports,
                                        name=f"music-transcoder:{self.proc.pid}", daemon=True)
        self._reader.start()
        assert self.proc.stderr is not None
        self._stderr = threading.Thread(target=drain_stderr_lines,
                                        args=(self.proc.stderr, self._log_stderr_line),
                                        name=f"music-transcoder-stderr:{self.proc.pid}",
                                        daemon=True)
        self._stderr.start()

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        """Raises OSError when the worker has gone."""
        data = (json.dumps(message) + "\n").encode()
        with self._send_lock:
            if fds:
                sent = socket.send_fds(self.control, [data], fds)
                if sent < len(data):
                    self.control.sendall(data[sent:])
            else:
                self.control.sendall(data)

    def wait_ready(self, timeout: float) -> None:
        """Return once the worker is ready; raise OSError when it stopped before (or is not
        ready within ``timeout``): the caller uses an ffmpeg child."""
        if not self.settled.wait(timeout):
            raise OSError(f"the transcoder worker was not ready within {timeout:g} s")
        if not self.ready:
            raise OSError("the transcoder worker stopped before it was ready")

    def submit(self, job: TranscodeJob, message: dict[str, Any], fds: list[int]) -> None:
        with self._lock:
            if not self.alive:
                raise BrokenPipeError("the transcoder has stopped")
            self.jobs[job.id] = job
        try:
            self.send(message, fds)
        except OSError:
            with self._lock:
                self.jobs.pop(job.id, None)
            raise

    def _read_reports(self) -> None:
        buffered = b""
        try:
            while True:
                data = self.control.recv(65536)
                if not data:
                    break
                buffered += data
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    self._on_report(json.loads(line))
        except (OSError, ValueError) as exc:
            log.debug("transcoder %s: control socket: %s", self.proc.pid, exc)
        finally:
            self._stopped()

    def _on_report(self, report: dict[str, Any]) -> None:
        if report.get("event") == "unavailable":
            _refuse(str(report.get("reason"))[:200])
            return  # the worker exits: its jobs fail with "stopped", the next ones use ffmpeg
        if report.get("event") == "ready":
            self.ready = True
            self.settled.set()
            return
        if "id" not in report:
            return
        with self._lock:
            job = self.jobs.pop(int(report["id"]), None)
        if job is not None:
            job._finish(_error_sentence(report.get("error")))

    def _stopped(self) -> None:
        """The socket closed: the worker exited (or is about to). Every open job fails."""
        with self._lock:
            self.alive = False
            orphans = list(self.jobs.values())
            self.jobs.clear()
        if orphans:
            log.warning("transcoder %s stopped with %d streams open", self.proc.pid, len(orphans))
        for job in orphans:
            job._finish(None if job.cancelled else _(STOPPED_SENTENCE))
        returncode = end_process(self.proc, CLOSE_WAIT_SECONDS)  # reap it (and end one that lingers)
        if not self.ready and not self.closing and _refusal is None:
            # it could not even start (a PyAV that fails to import, a broken interpreter):
            # starting another for every stream would fail the same way
            _refuse(f"the transcoder worker exited with code {returncode} before it was ready")
        self.settled.set()

    def _log_stderr_line(self, line: str) -> None:
        log.warning("transcoder %s: %s", self.proc.pid, line[:500])

    def shutdown(self, timeout: float) -> None:
        """Close the socket (the worker exits when it reads its end), then SIGTERM, then
        SIGKILL, as music.audio.ffmpeg.end_process does; wait for the reader."""
        self.closing = True
        try:
            self.control.shutdown(socket.SHUT_RDWR)  # wakes our reader too
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            end_process(self.proc, timeout)
        self._reader.join(timeout)
        self._stderr.join(timeout)
        self.control.close()


class SharedTranscoder:
    """Starts the worker on the first job (at a lower CPU priority, as the ffmpeg children),
    and a new one after the worker stopped. Thread-safe; :meth:`close` at cog unload."""

    def __init__(self, *, python: str = sys.executable, script: Path = WORKER_SCRIPT) -> None:
        self.python = python
        self.script = script
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False

    @staticmethod
    def available() -> bool:
        """Whether the shared transcoder can run here (the reason is logged once if not)."""
        reason = unavailable_reason()
        if reason is not None:
            _log_unavailable(reason)
        return reason is None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def worker_pid(self) -> int | None:
        worker = self._worker
        return worker.proc.pid if worker is not None and worker.alive else None

    def warm_up(self) -> None:
        """Start the worker now (cog load), so the first transcoding stream does not wait for
        the interpreter and PyAV to load (~145 ms to its first packet cold, ~3 ms warm).
        Blocking (up to READY_WAIT_SECONDS): call it in a thread. Raises OSError like
        :meth:`start_job`."""
        self._running_worker().wait_ready(READY_WAIT_SECONDS)

    def start_job(self, feed: Readable, *, start: float = 0.0, filters: str | None = None,
                  bitrate: int = TRANSCODE_BITRATE_BPS, input_format: str | None = None,
                  stderr_tail: collections.deque[str] | None = None, fec: bool = False,
                  packet_loss: int = 0) -> TranscodeJob:
        """Transcode ``feed`` (read by a PipeFeeder on its own thread) from ``start`` seconds,
        through ``filters`` (music.audio.filters.filter_graph's string). ``fec`` and
        ``packet_loss`` (percent): libopus's loss settings, off and 0 as for the ffmpeg
        children (music.audio.ffmpeg.build_args). Raises OSError when the worker cannot be
        started (then use an ffmpeg child)."""
        job_id = next(self._ids)
        message = {"op": "job", "id": job_id, "start": max(0.0, float(start)),
                   "filters": filters, "bitrate": int(bitrate), "format": input_format,
                   "format_whitelist": FORMAT_WHITELIST, "fec": bool(fec),
                   "packet_loss": min(100, max(0, int(packet_loss)))}
        for attempt in (1, 2):
            worker = self._running_worker()
            worker.wait_ready(READY_WAIT_SECONDS)
            input_read, input_write = os.pipe()
            output_read, output_write = os.pipe()
            stdout = os.fdopen(output_read, "rb", buffering=0)
            stdin = os.fdopen(input_write, "wb", buffering=0)
            feeder = PipeFeeder(feed, stdin, name=f"music-transcode-feed:{job_id}")
            job = TranscodeJob(job_id, worker, stdout, feeder, stderr_tail)
            try:
                worker.submit(job, message, [input_read, output_write])
            except OSError:
                stdout.close()
                stdin.close()
                if attempt == 2:
                    raise
                continue  # it stopped since the last job: the next call starts a new one
            finally:
                os.close(input_read)  # the worker has its own copies now
                os.close(output_write)
            feeder.start()
            return job
        raise AssertionError("unreachable")

    def _running_worker(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise OSError("the shared transcoder is closed")
            reason = unavailable_reason()
            if reason is not None:
                raise OSError(f"the shared transcoder is off: {reason}")
            if self._worker is None or not self._worker.alive:
                self._worker = _Worker(self.python, self.script)
                log.info("transcoder worker started (pid %s)", self._worker.proc.pid)
            return self._worker

    def close(self, timeout: float = CLOSE_WAIT_SECONDS) -> None:
        """End the worker (blocking up to ~3 x ``timeout``): its open jobs fail. No job starts
        after this."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(timeout)


_shared: SharedTranscoder | None = None
_shared_lock = threading.Lock()


def shared_transcoder() -> SharedTranscoder | None:
    """The process's one shared transcoder (started on first use), or None when it cannot run
    here (the reason is logged once): then transcoding runs one ffmpeg child per stream."""
    global _shared
    if not SharedTranscoder.available():
        return None
    with _shared_lock:
        if _shared is None or _shared.closed:
            _shared = SharedTranscoder()
        return _shared


def warm_up_transcoder(transcoder: SharedTranscoder) -> None:
    """Start ``transcoder``'s worker now (cog load, in a thread: it blocks until the worker has
    loaded PyAV), so the first transcoding stream does not wait for it. A worker that cannot
    start is logged: streams then run ffmpeg children. Closed meanwhile (the cog unloaded
    first): nothing."""
    try:
        transcoder.warm_up()
    except OSError as exc:
        if transcoder.closed:
            log.debug("the shared transcoder was closed before its warm-up ended: %s", exc)
            return
        log.warning("The shared transcoder did not start (%s): transcoding runs one ffmpeg "
                    "per stream until it does.", exc)


def warm_up_shared_transcoder() -> None:
    """:func:`warm_up_transcoder` of the process's shared transcoder, if it can run here."""
    transcoder = shared_transcoder()
    if transcoder is not None:
        warm_up_transcoder(transcoder)


def close_shared_transcoder(timeout: float = CLOSE_WAIT_SECONDS) -> None:
    """End the process's shared transcoder (cog unload; blocking, call it in a thread): socket
    closed, then SIGTERM, then SIGKILL. A later :func:`shared_transcoder` starts a new one."""
    global _shared
    with _shared_lock:
        shared, _shared = _shared, None
    if shared is not None:
        shared.close(timeout)


def _error_sentence(error: dict[str, str] | None) -> str | None:
    if error is None:
        return None
    template = _ERROR_SENTENCES.get(error.get("kind", ""), _ERROR_SENTENCES["internal"])
    detail = str(error.get("detail", "")).rstrip(".")[:300]
    return _(template).format(detail=detail)


@functools.cache
def _log_unavailable(reason: str) -> None:
    log.info("The shared transcoder is off (%s): transcoding runs one ffmpeg per stream.", reason)

"""One running ffmpeg that writes Ogg/Opus into a pipe: starting it, feeding a remote input into
its stdin (music.audio.pipe_input: ffmpeg opens no URL), draining its stderr, and ending it from
the thread that reads its output (where SIGTERM alone may not get it out)."""

from __future__ import annotations

import collections
import logging
import os
import re
import subprocess
import sys
import threading
from typing import IO, Callable

from ..i18n import _, deferred
from .ffmpeg import end_process
from .pipe_input import FedByPipe, PipeFeeder, Readable

#: How many stderr lines of ffmpeg are kept for error messages.
STDERR_TAIL_LINES = 20
#: How long the reader waits for ffmpeg's exit code after its output ended.
EXIT_WAIT_SECONDS = 5.0
#: How much lower than the bot's own a playback ffmpeg's CPU priority is. An ffmpeg runs seconds
#: ahead of the packet it is asked for (its pipe and our buffer), while the sender has to make a
#: 20 ms deadline for every guild: on a busy machine the sender should win. Measured at 60
#: transcoding guilds on 2 cores: inter-arrival p99 24-27 ms with it, 32-44 ms without.
FFMPEG_NICENESS_INCREMENT = 10
#: Windows has priority classes instead of niceness
_WINDOWS_PRIORITY_FLAGS = getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0)

log = logging.getLogger("red.music.audio.ffmpeg_process")


def drain_stderr_lines(stderr: IO[bytes], handle_line: Callable[[str], object]) -> None:
    """Read a child's stderr to its end (a child whose stderr pipe is full blocks), passing each
    non-blank line to ``handle_line`` without its line end (indentation kept: a traceback's lines
    need it); close it. For a thread of its own."""
    try:
        for raw in iter(stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                handle_line(line)
    except (OSError, ValueError):
        pass  # closed under us: the child is being ended
    finally:
        stderr.close()


def lower_priority(pid: int) -> None:
    """Give the just-started process ``pid`` a niceness FFMPEG_NICENESS_INCREMENT above ours
    (POSIX; on Windows :data:`_WINDOWS_PRIORITY_FLAGS` at start does it). Called before ffmpeg has
    read its input, so before it starts its threads: they inherit it. A process that is gone
    already, or a platform without setpriority, keeps its priority."""
    if not hasattr(os, "setpriority"):
        return
    try:
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, ours + FFMPEG_NICENESS_INCREMENT))
    except OSError as exc:  # exited already, or a sandbox that forbids it: nothing to lower
        log.debug("could not lower ffmpeg %s's priority: %s", pid, exc)


class FfmpegProcess(FedByPipe):
    """An ffmpeg child with stdout piped (unbuffered) and stderr drained into ``stderr_tail``;
    with ``feed``, a PipeFeeder writes that input into its stdin (``feeder``).

    Starting raises OSError when ffmpeg cannot run. Several processes of one track may share one
    ``stderr_tail``, so the error message reads like one process's."""

    def __init__(self, args: list[str], env: dict[str, str],
                 stderr_tail: collections.deque[str], feed: Readable | None = None) -> None:
        self.args = args
        self.stderr_tail = stderr_tail
        self.feeder: PipeFeeder | None = None
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL if feed is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,  # unbuffered: the Ogg reader gets pages as soon as ffmpeg writes them
            env=env,
            creationflags=_WINDOWS_PRIORITY_FLAGS if sys.platform == "win32" else 0,
        )
        lower_priority(self.proc.pid)
        if feed is not None:
            # the feeder owns stdin (and closes it at the input's end: ffmpeg sees EOF)
            stdin, self.proc.stdin = self.proc.stdin, None
            assert stdin is not None
            self.feeder = PipeFeeder(feed, stdin, name=f"music-ffmpeg-feed:{self.proc.pid}")
            self.feeder.start()
        # stderr must be drained or ffmpeg blocks once the pipe is full; keep only the tail.
        assert self.proc.stderr is not None
        self._drain = threading.Thread(
            target=drain_stderr_lines, args=(self.proc.stderr, self._keep_stderr_line),
            name=f"music-ffmpeg-stderr:{self.proc.pid}", daemon=True,
        )
        self._drain.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> IO[bytes] | None:
        return self.proc.stdout

    def _keep_stderr_line(self, line: str) -> None:
        # unindented: the tail ends up in error sentences, where ffmpeg's indentation is noise
        self.stderr_tail.append(line.lstrip())

    # -- ending -----------------------------------------------------------------------------------

    def end(self, timeout: float = 2.0) -> int | None:
        """Terminate, then kill; reap. For any thread but the one reading stdout (see
        :meth:`end_while_draining`)."""
        self.stop_feeding()
        returncode = end_process(self.proc, timeout)
        if self.feeder is not None:
            self.feeder.join(timeout)
        return returncode

    def end_while_draining(self, timeout: float = 2.0) -> None:
        """End ffmpeg from the thread reading its output. ffmpeg may be blocked writing into the
        full pipe, where SIGTERM does not get it out, so read (and discard) until it exits; a
        timer kills it if it ignores SIGTERM."""
        killer = threading.Timer(timeout, _kill_quietly, args=(self.proc,))
        killer.daemon = True
        killer.start()
        self.stop_feeding()
        try:
            self.proc.terminate()
            self._discard_output()
            end_process(self.proc, timeout)
        except ProcessLookupError:
            pass
        finally:
            killer.cancel()

    def wait_exit(self, closing: bool) -> int | None:
        """After its output ended (or, with ``closing``, while the stream is being closed): its
        exit code, ending it if it lingers; stdout is closed and stderr read to the end."""
        if closing:
            # Being closed: ffmpeg may be blocked writing into the full pipe, where it only
            # notices SIGTERM once that write returns, so end it while draining the pipe.
            self.end_while_draining()
        returncode: int | None
        try:
            returncode = self.proc.wait(EXIT_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            # stdout closed but the process lingers: do not leave it running
            returncode = end_process(self.proc)
        self.close_stdout()
        self.join_stderr(1.0)  # so the error message has ffmpeg's last words
        if self.feeder is not None:
            # ffmpeg has ended: a feeder still reading (ffmpeg stopped early) is not needed
            if self.feeder.running:
                self.feeder.stop()
            self.feeder.join()
        return returncode

    def join_stderr(self, timeout: float) -> None:
        self._drain.join(timeout)

    def _discard_output(self) -> None:
        if self.proc.stdout is None:
            return
        try:
            while self.proc.stdout.read(65536):
                pass
        except (OSError, ValueError):
            pass

    def close_stdout(self) -> None:
        if self.proc.stdout is not None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass


def _kill_quietly(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.kill()
    except (ProcessLookupError, OSError):
        pass


_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")
_URL_PATH = re.compile(r"(https?://[^/\s?#]+)[^\s]*")


#: What the user reads when ffmpeg found a kind of file its demuxer allowlist leaves out
#: (music.audio.ffmpeg.FORMAT_WHITELIST): a playlist or a list of other files, as a rule.
NOT_MEDIA_SENTENCE = deferred._("That isn't an audio or video file I can play: it looks like a playlist "
                      "or a list of other files, which I don't open.")


def stderr_error_text(lines: collections.deque[str], source: str, limit: int = 400) -> str:
    """ffmpeg's last stderr lines as one sentence-ish text, without log prefixes and without
    URL paths and queries (stream URLs carry tokens and the bot's IP address)."""
    if any("not on whitelist" in line for line in lines):
        return _(NOT_MEDIA_SENTENCE)
    cleaned = []
    for line in list(lines)[-4:]:
        line = _LOG_PREFIX.sub("", line).replace(source, "the input")
        cleaned.append(_URL_PATH.sub(r"\1/...", line))
    return " | ".join(cleaned)[:limit]

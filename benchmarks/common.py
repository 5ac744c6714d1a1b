"""Shared pieces of the benchmarks: test media, the out-of-process stand-in, statistics, /proc
readings and table printing.

The benchmark process plays the bot (discord.py voice clients, our sources, ffmpeg children); the
Discord voice server and the media HTTP server run in a child process (``standin_proc.py``) so
that receiving, decrypting and decoding packets costs the bot nothing and cannot delay it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from standin.run_red import install_trust_bundle

REPO_ROOT = Path(__file__).resolve().parents[1]
FRAME_SECONDS = 0.020


# -- media --------------------------------------------------------------------------------------

# container/codec arguments per suffix (the same encodings as tests/support/media.py)
_FORMATS: dict[str, list[str]] = {
    "webm": ["-c:a", "libopus", "-b:a", "96k", "-frame_duration", "20", "-f", "webm"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"],
}


def generate_tone(ffmpeg: str, path: Path, freq: float, seconds: float, amplitude: float = 0.5) -> Path:
    """A sine tone file whose format follows the suffix of ``path`` (kept if it already exists)."""
    if path.exists():
        return path
    src = f"sine=frequency={freq}:sample_rate=48000:duration={seconds}"
    args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src,
            "-af", f"volume={amplitude},aformat=channel_layouts=stereo"]
    args += _FORMATS[path.suffix.lstrip(".")] + [str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(args, check=True, timeout=120)
    return path


# -- statistics ---------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def p99(values: Sequence[float]) -> float:
    """The 99th percentile (with fewer than 100 values this is close to the maximum)."""
    return float(np.percentile(values, 99)) if len(values) else float("nan")


def ratio(baseline: float, ours: float) -> str:
    """How many times the baseline's figure is ours ("x2.5" = the baseline is 2.5 times ours)."""
    if not np.isfinite(baseline) or not np.isfinite(ours):
        return "-"
    if ours == 0:
        return "inf" if baseline > 0 else "x1.0"
    return f"x{baseline / ours:.1f}"


def fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


# -- /proc ------------------------------------------------------------------------------------


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """CPU nanoseconds used by each live thread of a process ({} if it is gone).

    From /proc/<pid>/task/*/schedstat: /proc/<pid>/stat's utime + stime count 10 ms clock ticks,
    too coarse for an ffmpeg that copies Opus (~1 ms per second of audio)."""
    used: dict[int, int] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return used
    for task in tasks:
        try:
            used[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return used


def pss_bytes(pid: int) -> int | None:
    """Proportional set size: private pages plus a fair share of shared ones (libraries)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def private_bytes(pid: int) -> int | None:
    """Pages only this process maps (Private_Clean + Private_Dirty): what ending it frees."""
    try:
        total = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
        return total
    except OSError:
        return None


class CpuWindow:
    """CPU seconds used by a set of processes between ``start()`` and ``stop()``.

    Counted per thread alive at both ends (ffmpeg's demuxer threads, for one, end when the input
    is read), so a thread that ends inside the window is missed rather than making the sum
    negative; take windows while the streams play steadily. ``counted`` is how many processes
    were alive at both ends."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.begin: dict[int, dict[int, int]] = {}
        self.end: dict[int, dict[int, int]] = {}
        self.started_at = self.stopped_at = 0.0

    def start(self) -> CpuWindow:
        self.started_at = time.monotonic()
        self.begin = {pid: t for pid in self.pids if (t := thread_cpu_ns(pid))}
        return self

    def stop(self) -> CpuWindow:
        self.end = {pid: t for pid in self.pids if (t := thread_cpu_ns(pid))}
        self.stopped_at = time.monotonic()
        return self

    @property
    def seconds(self) -> float:
        return self.stopped_at - self.started_at

    @property
    def counted(self) -> int:
        return len(self.begin.keys() & self.end.keys())

    @property
    def used(self) -> float:
        total = 0
        for pid in self.begin.keys() & self.end.keys():
            before, after = self.begin[pid], self.end[pid]
            total += sum(after[tid] - before[tid] for tid in before.keys() & after.keys())
        return total / 1e9

    def by_thread_name(self, pid: int, names: dict[int, str]) -> dict[str, float]:
        """CPU seconds per thread kind (the name's prefix before ':'; ``names``: native thread
        id -> name, e.g. from threading.enumerate()), for one process of the window: where the
        bot's time goes (the audio sender, the readers, the event loop)."""
        kinds: dict[str, float] = {}
        before, after = self.begin.get(pid, {}), self.end.get(pid, {})
        for tid in before.keys() & after.keys():
            kind = names.get(tid, "other").split(":")[0]
            kinds[kind] = kinds.get(kind, 0.0) + (after[tid] - before[tid]) / 1e9
        return kinds

    def ms_per_stream_second(self, streams: int | None = None) -> float:
        streams = self.counted if streams is None else streams
        if streams == 0 or self.seconds <= 0:
            return float("nan")
        return 1000.0 * self.used / (streams * self.seconds)


def machine_idle_share(seconds: float) -> float:
    """The share of all cores' time spent idle (idle + iowait) over the next ``seconds``
    (/proc/stat)."""
    def totals() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])
    idle_before, all_before = totals()
    time.sleep(seconds)
    idle_after, all_after = totals()
    return (idle_after - idle_before) / max(1, all_after - all_before)


async def wait_for_quiet_machine(min_idle: float = 0.85, window: float = 0.5,
                                 timeout: float = 30.0) -> dict[str, float]:
    """Wait until the cores were at least ``min_idle`` idle over one ``window``, at most
    ``timeout`` seconds: a point must not start while the previous one's processes (a
    baseline's 150 ffmpeg children, say) still wind down. Returns how long it waited and the
    idle share it ended on, for the row to report."""
    started = time.monotonic()
    idle = 0.0
    while time.monotonic() - started < timeout:
        idle = await asyncio.to_thread(machine_idle_share, window)
        if idle >= min_idle:
            break
    return {"waited_s": time.monotonic() - started, "idle_share": idle}


# -- the out-of-process stand-in ----------------------------------------------------------------


class StandinProcess:
    """The voice server and the media server in a child process, driven by JSON lines.

    ``await call(op, **args)`` sends one request and returns its answer (see standin_proc.py)."""

    def __init__(self, media_dir: Path) -> None:
        self.media_dir = media_dir
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> StandinProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.standin_proc", "--media", str(self.media_dir),
            cwd=str(REPO_ROOT), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,  # packet lists can be large lines
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the stand-in process exited before it was ready")
        self.info = json.loads(line)
        self._reader = asyncio.create_task(self._read_answers())
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ca_file(self) -> str:
        return self.info["ca_file"]

    @property
    def endpoint(self) -> str:
        return self.info["endpoint"]

    def media_url(self, name: str, *, https: bool = False) -> str:
        """``name`` on the stand-in's media server; ``https``: over TLS with the stand-in's own
        certificate, which a client verifies against :attr:`ca_file` (see :func:`trust_standin_ca`)."""
        base = self.info["media_base_https" if https else "media_base"]
        return f"{base}/media/{name}"

    def stall_url(self, name: str, *, lead: float, stall_at: float, stall: float) -> str:
        """A route that serves ``name`` at real-time rate after ``lead`` seconds of audio, and
        pauses ``stall`` seconds once ``stall_at`` seconds of audio were sent."""
        return (f"{self.info['media_base']}/paced/{name}?lead={lead}&stall_at={stall_at}"
                f"&stall={stall}")

    async def _read_answers(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            answer = json.loads(line)
            future = self._pending.pop(answer["id"], None)
            if future is None or future.done():
                continue
            if "error" in answer:
                future.set_exception(RuntimeError(f"stand-in: {answer['error']}"))
            else:
                future.set_result(answer.get("result"))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RuntimeError("the stand-in process exited"))

    async def call(self, op: str, timeout: float = 60.0, **args: Any) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        self._next_id += 1
        request_id = self._next_id
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        async with self._lock:
            self.proc.stdin.write((json.dumps({"id": request_id, "op": op, **args}) + "\n").encode())
            await self.proc.stdin.drain()
        return await asyncio.wait_for(future, timeout)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                await asyncio.wait_for(self.proc.wait(), 10)
            except (TimeoutError, OSError, BrokenPipeError):
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


def trust_standin_ca(ca_file: str) -> str:
    """Make this process (and the processes it starts) trust the stand-in's certificate beside
    the system CAs, the way a bot owner trusts a private CA: SSL_CERT_FILE, which
    ``ssl.create_default_context()`` (the cog's media fetcher, music.audio.fetch) honours. Call
    before the first https fetch: the fetcher builds its context once. Returns the bundle."""
    return install_trust_bundle(ca_file)


class RemoteVoiceServer:
    """What ``VoiceHarness`` needs of a ``VoiceServer`` (ca_file, endpoint, open_session,
    close_session), for the server in the stand-in process.

    The harness opens sessions synchronously, so :meth:`prepare` opens them remotely beforehand
    and :meth:`open_session` hands out the token it got."""

    def __init__(self, standin: StandinProcess) -> None:
        self.standin = standin
        self.ca_file = standin.ca_file
        self.endpoint = standin.endpoint
        self._tokens: dict[int, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def prepare(self, guild_id: int, user_id: int, session_id: str) -> None:
        self._tokens[guild_id] = await self.standin.call(
            "open_session", guild_id=guild_id, user_id=user_id, session_id=session_id)

    def open_session(self, guild_id: int, user_id: int, session_id: str) -> str:
        return self._tokens[guild_id]

    def close_session(self, guild_id: int) -> None:
        self._tokens.pop(guild_id, None)
        task = asyncio.get_running_loop().create_task(
            self.standin.call("close_session", guild_id=guild_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# -- tables ---------------------------------------------------------------------------------


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]],
                notes: Sequence[str] = ()) -> str:
    """Print (and return) a Markdown table with a title and notes."""
    lines = [f"### {title}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    lines.append("")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def verdict(value: float, limit: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return "met" if value <= limit else "MISSED"


def wins_line(what: str, figures: dict[str, float], ours: str, *, lower_is_better: bool = True) -> str:
    """One plain sentence for the summary: which baselines beat ours on `what` in this run
    (lower is better unless told), or that none did."""
    mine = figures.get(ours, float("nan"))
    if not np.isfinite(mine):
        return f"{what}: ours has no figure in this run"
    beaten_by = [
        f"{name} ({fmt(value, 2)} against ours {fmt(mine, 2)})"
        for name, value in figures.items()
        if name != ours and np.isfinite(value) and (value < mine if lower_is_better else value > mine)
    ]
    if not beaten_by:
        return f"{what}: no baseline beats ours in this run"
    return f"{what}: the baseline wins: " + "; ".join(beaten_by)

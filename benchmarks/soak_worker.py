"""The soak's bot: N guilds playing ours for many minutes, a new track every 10 s, in a fresh
process (so its memory, threads and descriptors are the engine's and nothing else's).

Each guild plays one ``ChainSource`` for the whole run, as the cog's player does; tracks are
WebM/Opus files of ``track_seconds`` copied in process through the network guard. When a track
starts, the next one is opened and made ready (``set_next``), as the cog's prefetch does for a
track shorter than its 30-s window, so every change happens inside ``read()`` without a gap.
Guilds start ``track_seconds / N`` apart, so their changes are spread over the 10 s instead of
all falling in the same tick (a real bot's guilds do not change tracks in step).

Reads one JSON object on stdin (see ``benchmarks.soak``); writes one JSON line per sample
(``{"sample": ...}``) every ``sample_seconds`` while playing, then ``{"done": ...}``.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import json
import os
import re
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

from music.audio.source import ChainClosed, ChainSource
from music.gc_policy import FullCollectionGuard
from music.netguard import NetworkGuard
from music.policy import NetworkPolicy

from .botside import (
    TokenVoiceServer,
    close_harnesses,
    connect_harnesses,
    open_stream,
    ours_sender,
    play_ours,
)
from .common import pss_bytes
from .load_worker import DroppedPackets, GcPauses, set_up_like_the_cog

#: the lines of code whose allocations grew most between the first minute's end and the run's
TRACEMALLOC_TOP = 12


@dataclass
class Counters:
    """What every guild's playback did, summed (read by the sampler)."""

    track_starts: int = 0
    track_errors: int = 0
    exhausted: int = 0
    open_failures: int = 0
    restarts: int = 0  # a new ChainSource after one stopped
    errors: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=5))


class GuildEvents:
    """A ChainSource's event callback: hands (kind, track id, error) to the guild's task.

    Unlike botside.ChainEvents it keeps no history: a list of every event would itself grow
    for the whole soak."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, str | None, str | None]] = asyncio.Queue()

    def __call__(self, kind: str, track_id: str | None, error: str | None) -> None:
        # discord.py's audio thread: only call_soon_threadsafe touches the loop
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, track_id, error))


class Guild:
    """One guild's playback for the whole run: a chain, the next track opened as one starts."""

    def __init__(self, harness: Any, config: dict[str, Any], proxy: str | None,
                 counters: Counters) -> None:
        self.vc = harness.voice_client
        self.urls: list[str] = config["urls"]
        self.ffmpeg: str = config["ffmpeg"]
        self.proxy = proxy
        self.counters = counters
        self.chain: ChainSource | None = None
        # frame counters of the chains that stopped (a restart), so stats() covers the run
        self.retired: collections.Counter[str] = collections.Counter()
        self.track = 0

    def url(self, track: int) -> str:
        return self.urls[track % len(self.urls)]

    async def open(self, track: int) -> Any:
        return await open_stream(self.ffmpeg, self.url(track), passthrough=True, timeout=30,
                                 proxy=self.proxy)

    async def start_chain(self) -> GuildEvents:
        events = GuildEvents()
        chain = ChainSource(events)
        chain.play_now(await self.open(self.track), str(self.track))
        play_ours(self.vc, chain)
        if self.chain is not None:
            self.retired.update(chain_stats(self.chain))
        self.chain = chain
        return events

    async def run(self, start_delay: float, until: float) -> None:
        await asyncio.sleep(start_delay)
        events = await self.start_chain()
        while time.monotonic() < until:
            try:
                kind, track_id, error = await asyncio.wait_for(events.queue.get(),
                                                               until - time.monotonic())
            except asyncio.TimeoutError:
                return
            if kind == "track_start":
                self.counters.track_starts += 1
                await self.prepare_next(int(track_id or 0))
            elif kind == "track_error":
                self.counters.track_errors += 1
                self.counters.errors.append(f"track_error: {error}")
            elif kind == "exhausted":
                # nothing was ready in time: start again on a new chain, as the player would
                self.counters.exhausted += 1
                self.counters.restarts += 1
                self.track += 1
                events = await self.start_chain()

    async def prepare_next(self, playing: int) -> None:
        self.track = playing + 1
        try:
            stream = await self.open(self.track)
        except Exception as exc:  # counted; the chain idles, then a restart
            self.counters.open_failures += 1
            self.counters.errors.append(f"open: {type(exc).__name__}: {exc}")
            return
        try:
            assert self.chain is not None
            self.chain.set_next(stream, str(self.track))
        except ChainClosed:
            await asyncio.to_thread(stream.close)

    def stats(self) -> collections.Counter[str]:
        if self.chain is None:
            return self.retired.copy()
        return self.retired + chain_stats(self.chain)


def chain_stats(chain: ChainSource) -> collections.Counter[str]:
    stats = chain.stats
    return collections.Counter(underruns=stats.underruns, silence=stats.frames_silence,
                               gapless=stats.gapless_switches, sent=stats.frames_sent)


def resident_bytes() -> dict[str, int]:
    """RSS, and its parts: anonymous (heaps, stacks, Python's arenas) and file-backed (code and
    data of the interpreter and libraries, paged in as paths run the first time)."""
    fields = {"VmRSS:": "rss", "RssAnon:": "rss_anon", "RssFile:": "rss_file"}
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = fields.get(line.split(maxsplit=1)[0] if line else "")
        if key is not None:
            found[key] = int(line.split()[1]) * 1024
    return {key: found.get(key, 0) for key in fields.values()}


class MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (2.33+): every field a size_t."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2() -> Callable[[], MallInfo2] | None:
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None  # not glibc, or older than 2.33
    function.restype = MallInfo2
    function.argtypes = []
    return cast("Callable[[], MallInfo2]", function)


MALLINFO2 = _mallinfo2()


def native_heap() -> dict[str, int | None]:
    """The C heap (malloc: native code, Python's objects over 512 bytes, buffers), apart from
    Python's small-object arenas: bytes in use, and bytes free but kept inside malloc's arenas.
    RSS rising with "in use" flat and "free" rising is the allocator's fragmentation across
    threads' arenas, not memory anything holds; "in use" rising is something holding more."""
    if MALLINFO2 is None:
        return {"malloc_in_use": None, "malloc_free": None}
    info = MALLINFO2()
    return {"malloc_in_use": info.uordblks + info.hblkhd, "malloc_free": info.fordblks}


def child_processes() -> int:
    """Processes whose parent is this one (ffmpeg children: none expected for passthrough)."""
    me = os.getpid()
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the fields follow the last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            count += 1
    return count


def sample(started: float, guilds: list[Guild], counters: Counters, dropped: DroppedPackets,
           gc_pauses: GcPauses) -> dict[str, Any]:
    totals = collections.Counter[str]()
    for guild in guilds:
        totals.update(guild.stats())
    sender = ours_sender().stats
    return {
        "t": time.monotonic(),
        "elapsed": time.monotonic() - started,
        **resident_bytes(),
        "pss": pss_bytes(os.getpid()) or 0,
        "threads": len(os.listdir("/proc/self/task")),
        "thread_kinds": thread_kinds(),
        **default_executor_threads(),
        "fds": len(os.listdir("/proc/self/fd")),
        "children": child_processes(),
        "cpu": time.process_time(),  # every thread's, ended ones included
        "traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        **native_heap(),
        "track_starts": counters.track_starts,
        "track_errors": counters.track_errors,
        "exhausted": counters.exhausted,
        "open_failures": counters.open_failures,
        "sender_drops": dropped.count,
        "sender_late_ticks": sender.late_ticks,
        "sender_skipped_slots": sender.skipped_slots,
        # garbage-collection passes since the run began, and the longest of each generation
        # since the previous sample (a pass holds the GIL: the sender waits)
        "gc_counts": list(gc_pauses.counts),
        "gc_max_ms": gc_pauses.take_max(),
        **{key: totals.get(key, 0) for key in ("underruns", "silence", "gapless", "sent")},
    }


def thread_kinds() -> dict[str, int]:
    """Python's threads by name without numbers ("music-reader:input", "asyncio_", ...), to
    tell a pool that grows to its size from threads that pile up."""
    names = (re.sub(r"0x[0-9a-f]+|[0-9]+", "", t.name).rstrip("-_ (:)") for t in threading.enumerate())
    return dict(collections.Counter(names))


def default_executor_threads() -> dict[str, int]:
    """The event loop's default executor (asyncio.to_thread, run_in_executor): its worker
    threads now and the most it may start. It starts a worker whenever a job finds none idle and
    keeps it for good, so its count rises in steps to max_workers at the busiest moment so far:
    bounded growth, not a leak. Private attributes, read with fallbacks: 0 threads (none yet)
    and the documented default size, min(32, cores + 4)."""
    executor = getattr(asyncio.get_running_loop(), "_default_executor", None)
    return {"executor_threads": len(getattr(executor, "_threads", ())),
            "executor_max_workers": getattr(executor, "_max_workers", None)
            or min(32, (os.cpu_count() or 1) + 4)}


def emit(kind: str, payload: Any) -> None:
    sys.stdout.write(json.dumps({kind: payload}) + "\n")
    sys.stdout.flush()


def top_growth(first: tracemalloc.Snapshot, last: tracemalloc.Snapshot) -> list[str]:
    stats = last.compare_to(first, "lineno")
    return [f"{s.size_diff / 1024:+.0f} KiB ({s.count_diff:+d} blocks) {s.traceback[0].filename}:"
            f"{s.traceback[0].lineno}" for s in stats[:TRACEMALLOC_TOP]]


def live_objects() -> collections.Counter[str]:
    """The objects the collector tracks (containers: instances, dicts, lists...), by type.
    Tuples are left out: the collector stops tracking a tuple of atoms only when a pass looks
    at it, so their count follows the passes, not what lives."""
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects()
                               if type(o) is not tuple)


#: how many types (and modules of types) a census lists
CENSUS_TOP = 10


def anonymous_memory() -> dict[str, int]:
    """Where the anonymous RSS is, from /proc/self/smaps: thread stacks (a writable mapping
    just above a one-page guard: glibc's pthread stacks, kept in its cache after a thread ends),
    the brk heap (malloc's main arena), and the rest (other threads' malloc arenas, malloc's
    large blocks, Python's 1 MiB object arenas: mmap'd side by side, the kernel merges them);
    and Python's own count of its object arenas (sys._debugmallocstats)."""
    parts = {"stacks": 0, "stack_count": 0, "brk_heap": 0, "other_anon": 0}
    previous_guard = False
    size = 0
    kind = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5:  # a mapping's first line
            start, end = (int(x, 16) for x in head[0].split("-"))
            perms, path = head[1], head[5] if len(head) > 5 else ""
            size = end - start
            if path == "[heap]":
                kind = "brk_heap"
            elif path or not perms.startswith("rw"):
                kind = ""
            elif previous_guard:
                kind = "stacks"
            else:
                kind = "other_anon"
            previous_guard = perms == "---p" and not path and size == 4096
            if kind == "stacks":
                parts["stack_count"] += 1
        elif head[0] == "Rss:" and kind:
            parts[kind] += int(head[1]) * 1024
    parts["pymalloc_arenas"] = pymalloc_arenas() * 2**20
    return parts


def pymalloc_arenas() -> int:
    """Python's small-object arenas allocated now (1 MiB each in 3.10+): its debug statistics,
    which go to the C stderr, read back from a temporary file."""
    import tempfile
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    found = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else 0


def census() -> dict[str, Any]:
    """What a full (generation-2) collection walks now: every object the collector tracks and
    has not frozen (generations 0-2), by type and by the module that defines the type, and how
    long one full collection takes (it runs first, timed: it holds the GIL that long, and the
    garbage it frees is not counted). The caller keeps the bot's gc callbacks quiet meanwhile."""
    started = time.perf_counter()
    gc.collect(2)
    collect_ms = 1000 * (time.perf_counter() - started)
    by_type: collections.Counter[str] = collections.Counter()
    by_module: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        module = getattr(kind, "__module__", None) or "?"
        by_type[f"{module}.{kind.__qualname__}"] += 1
        by_module[module.split(".", 1)[0]] += 1
    return {"walked": sum(by_type.values()), "frozen": gc.get_freeze_count(),
            "collect_ms": collect_ms, "by_type": dict(by_type), "by_module": dict(by_module),
            "memory": {**anonymous_memory(), **resident_bytes()}}


def census_summary(first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    """The two censuses, cut to their top types and modules and what grew most between them."""
    def top(counts: dict[str, int]) -> list[tuple[str, int]]:
        return collections.Counter(counts).most_common(CENSUS_TOP)

    def grew(key: str) -> list[tuple[str, int]]:
        change = collections.Counter(last[key])
        change.subtract(first[key])
        return [(name, n) for name, n in change.most_common(CENSUS_TOP) if n > 0]

    return {
        moment: {"walked": c["walked"], "frozen": c["frozen"], "collect_ms": c["collect_ms"],
                 "memory": c["memory"],
                 "types": top(c["by_type"]), "modules": top(c["by_module"])}
        for moment, c in (("minute_1", first), ("end", last))
    } | {"types_grew": grew("by_type"), "modules_grew": grew("by_module")}


def cyclic_garbage() -> dict[str, Any]:
    """What a full collection finds now: objects only reference cycles kept (freed only by the
    collector, so they pile up between its rare full passes), by type, the most common first."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect()
        kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return {"objects": found, "most": kinds.most_common(8)}


def trimmed_anon() -> int | None:
    """RSS anon after glibc's malloc_trim(0) (free pages of every malloc arena given back): how
    much of the anonymous memory was malloc's free-but-kept. None if not glibc. Run last."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return resident_bytes()["rss_anon"]


def frozen_garbage() -> dict[str, Any]:
    """Cyclic garbage among the frozen objects (never freed while frozen): everything unfrozen
    and collected, what it found by type. The load's own freeze holds a few hundred; the rest is
    what the full-collection guard's freezes kept (music/gc_policy.py's price). Run last."""
    gc.unfreeze()
    found = cyclic_garbage()
    gc.freeze()
    return found


async def soak(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("tracemalloc"):
        tracemalloc.start()
    dropped = set_up_like_the_cog()
    frozen = gc.get_freeze_count()  # objects the set-up froze, as the cog's load does
    if config.get("gc_threshold2"):
        gc.set_threshold(*gc.get_threshold()[:2], config["gc_threshold2"])
    stop_guard = asyncio.Event()
    gc_guard = FullCollectionGuard(lambda: ours_sender().active > 0)
    guard_task = (asyncio.create_task(gc_guard.run(stop_guard))  # as the cog's load starts it
                  if config.get("gc_guard", True) else None)
    server = TokenVoiceServer(config["endpoint"], config["ca_file"],
                              {g["guild_id"]: g["token"] for g in config["guilds"]})
    harnesses = await connect_harnesses(server, [(g["guild_id"], g["session_id"])
                                                 for g in config["guilds"]])
    guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]))
    proxy = await guard.start()
    counters = Counters()
    guilds = [Guild(h, config, proxy, counters) for h in harnesses]
    track_seconds = config["track_seconds"]
    started = time.monotonic()
    until = started + config["seconds"]
    emit("started", {"t": started})
    tasks = [asyncio.create_task(guild.run(index * track_seconds / len(guilds), until))
             for index, guild in enumerate(guilds)]
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    gc_pauses.active = True
    first_snapshot: tracemalloc.Snapshot | None = None
    first_objects: collections.Counter[str] = collections.Counter()
    first_census: dict[str, Any] | None = None
    tick = 0
    while True:
        tick += 1
        due = started + tick * config["sample_seconds"]
        if due > until + 0.001:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        emit("sample", sample(started, guilds, counters, dropped, gc_pauses))
        if first_census is None and due - started >= 60:
            gc_pauses.active = False  # this pass is the measurement's, not the bot's
            # its collection also means: from here on, what a collection finds was made while
            # soaking
            first_census = census()
            if tracemalloc.is_tracing():
                first_objects = live_objects()
                first_snapshot = tracemalloc.take_snapshot()
            gc_pauses.active = True
    growth = (top_growth(first_snapshot, tracemalloc.take_snapshot())
              if first_snapshot is not None else [])
    cycles = cyclic_garbage() if first_snapshot is not None else None
    object_growth = ((live_objects() - first_objects).most_common(8)
                     if first_snapshot is not None else [])
    stop_guard.set()
    if guard_task is not None:
        await guard_task
    gc_pauses.active = False
    gc_census = census_summary(first_census, census()) if first_census is not None else None
    if gc_census is not None:
        gc_census["frozen_garbage"] = frozen_garbage()
        gc_census["end"]["memory"]["rss_anon_trimmed"] = trimmed_anon()
    await asyncio.gather(*tasks, return_exceptions=True)
    failures = [repr(t.exception()) for t in tasks if not t.cancelled() and t.exception()]
    for harness in harnesses:
        harness.voice_client.stop()
    await asyncio.sleep(0.3)
    sender_closed = await asyncio.to_thread(ours_sender().close, 5.0)
    await close_harnesses(harnesses)
    await guard.close()
    return {"gc_frozen": frozen, "tracemalloc_top_growth": growth, "cyclic_garbage": cycles,
            "object_growth": object_growth, "gc_census": gc_census,
            "gc_thresholds": list(gc.get_threshold()),
            "gc_guard": (None if guard_task is None else
                         {"freezes": gc_guard.freezes, "cleanups": gc_guard.cleanups,
                          "over_budget": gc_guard.over_budget,
                          "frozen_by_guard": gc_guard.frozen_by_guard}),
            "task_failures": failures[:3],
            "errors": list(counters.errors), "sender_closed": sender_closed}


def main() -> None:
    config = json.loads(sys.stdin.read())
    emit("done", asyncio.run(soak(config)))


if __name__ == "__main__":
    main()

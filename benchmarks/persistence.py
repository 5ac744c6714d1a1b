"""What a queue change costs to persist, on Red's JSON backend and on PostgreSQL, in the adopted
chunked layout (music/store_chunks.py) beside the previous whole-document layout (the baseline).

    python -m benchmarks.persistence [--quick] [--guilds 1 10 50] [--tracks 5000] [--writes 7]

For each backend, layout and size (N guilds with T tracks queued each, all stored in the cog's
Config in that layout), one guild's queue changes and is written: `mark_dirty(guild, capture)`
then `flush()`, the path the flush loop takes. The baseline is the previous MusicStore.flush:
`GuildPlayer.snapshot()` set as one Config value. Reported per configuration:

- write: median wall time of one guild's state write, over --writes writes;
- on the loop per write: what the store itself computes on the event loop (baseline: snapshot(),
  every track serialized; chunked: GuildPlayer.capture(), list copies; the splitting,
  fingerprints and serialization run in a thread);
- loop stall: the longest time the event loop was blocked during a write, i.e. the longest a
  command arriving mid-write waits (includes Red's JSON driver encoding the whole file);
- chunks written per change (chunked only; the change moves the last track to the front);
- mark_dirty: what a command itself spends to record a change (median of 1,000 calls);
- writes per burst: 100 changes, one command each (the loop runs between them), arriving while
  the flush loop sleeps after a write; the coalescer should make that one write.

PostgreSQL is a throwaway local server (tests/support/postgres.py) with its defaults (fsync on),
one fresh database per configuration; JSON files live in a temp dir on the same disk.
Targets (issue #6): a command never waits for a write; on PostgreSQL one guild's change costs at
most 20 ms at 50 x 5,000.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import statistics
import sys
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redbot.core import Config, data_manager
from redbot.core import config as config_module
from redbot.core._drivers import PostgresDriver
from redbot.core._drivers import json as json_driver

from music.engine.track import Track
from music.player import GuildPlayer
from music.store import CONFIG_IDENTIFIER, FLUSH_INTERVAL, MusicStore
from music.store_chunks import CHUNK_GROUP, plan_write

TARGET_POSTGRES_WRITE_MS = 20.0
BASELINE = "whole document"
LAYOUTS = (BASELINE, "chunked")
_databases = itertools.count(1)


class Music:
    """Stands in for the cog: Config names a cog's storage after its class name."""


def playlist_track(guild_id: int, i: int) -> Track:
    """A queued playlist entry as the cog stores it: resolved lazily, so no stream URL yet."""
    video = f"{guild_id % 100000:05d}{i:06d}"
    return Track(
        query=f"https://www.youtube.com/watch?v={video}",
        title=f"Artist {i % 97} - A song title of usual length, part {i}",
        duration=180.0 + i % 120,
        requester_id=100000000000000000 + i % 13,
        uploader=f"Artist {i % 97}",
        webpage_url=f"https://www.youtube.com/watch?v={video}",
        extractor="youtube",
    )


def make_player(guild_id: int, tracks: int) -> GuildPlayer:
    player = GuildPlayer(guild_id=guild_id)
    player.queue.add([playlist_track(guild_id, i) for i in range(tracks)])
    player.queue.advance()
    player.channel_id = 1
    return player


# -- backends -----------------------------------------------------------------------------------


@dataclass
class BackendRun:
    name: str
    storage_type: str
    details: dict[str, Any]


def use_backend(run: BackendRun, data_dir: Path) -> None:
    """What Red does at start for an instance: basic_config, then the driver's initialize."""
    data_manager.basic_config = {
        "DATA_PATH": str(data_dir), "COG_PATH_APPEND": "cogs", "CORE_PATH_APPEND": "core",
        "STORAGE_TYPE": run.storage_type, "STORAGE_DETAILS": run.details,
    }
    config_module._config_cache = weakref.WeakValueDictionary()
    json_driver._shared_datastore.clear()


async def seed(store: WholeDocumentStore, players: list[GuildPlayer]) -> None:
    """All guilds' state in one Config write (per-guild writes would take minutes on JSON)."""
    guilds = {str(p.guild_id): {"state": p.snapshot()} for p in players}
    await store.config._get_base_group(Config.GUILD).set(guilds)


class LoopStallProbe:
    """Measures the longest the event loop went without running a 1 ms ticker."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last - 0.001)
            last = now

    async def __aenter__(self) -> LoopStallProbe:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0.005)
        self.worst = 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


@dataclass
class Result:
    backend: str
    layout: str  # "whole document" (the baseline) or "chunked"
    guilds: int
    tracks: int
    write_ms: float
    on_loop_ms: float
    stall_ms: float
    mark_dirty_us: float
    burst_writes: int | None
    chunks_written: float  # median per change (nan: whole document)
    state_mb: float


class WholeDocumentStore:
    """The baseline: the previous MusicStore.flush, one Config value per guild holding
    GuildPlayer.snapshot() (every track serialized on the loop, the whole document rewritten)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        config.register_guild(state={})
        self._dirty: dict[int, Callable[[], dict[str, Any]]] = {}
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self.writes = 0

    def mark_dirty(self, guild_id: int, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._dirty[guild_id] = snapshot
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._dirty)

    async def flush(self) -> None:
        async with self._flush_lock:
            while self._dirty:
                guild_id, snapshot = self._dirty.popitem()
                await self.config.guild_from_id(guild_id).state.set(snapshot())
                self.writes += 1

    flush_loop = MusicStore.flush_loop


async def seed_chunked(config: Config, players: list[GuildPlayer]) -> None:
    """All guilds in the chunked layout, in one Config write per category (as plan_write lays
    them out; per-guild writes would take minutes on JSON)."""
    guilds: dict[str, Any] = {}
    chunks: dict[str, Any] = {}
    for player in players:
        plan = plan_write(player.capture(), {}, (), as_json=False)
        guilds[str(player.guild_id)] = {"queue_head": plan.head}
        chunks[str(player.guild_id)] = plan.new_chunks
    await config._get_base_group(Config.GUILD).set(guilds)
    await config.custom(CHUNK_GROUP).set(chunks)


async def measure(run: BackendRun, layout: str, guilds: int, tracks: int, writes: int, burst: bool) -> Result:
    config = Config.get_conf(Music(), identifier=CONFIG_IDENTIFIER, force_registration=True)
    players = [make_player(900000 + g, tracks) for g in range(guilds)]
    target = players[0]
    state_mb = len(json.dumps(target.snapshot())) / 1e6
    store: MusicStore | WholeDocumentStore
    if layout == "chunked":
        store = MusicStore(config)
        await seed_chunked(config, players)
        await store.load()  # learns what is stored, as the cog does at start
        capture: Callable[[], Any] = target.capture
    else:
        store = WholeDocumentStore(config)
        await seed(store, players)
        capture = target.snapshot

    on_loop_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        capture()
        on_loop_s.append(time.perf_counter() - t0)

    write_s, stalls, written = [], [], []
    for _ in range(writes):
        target.queue.move(len(target.queue), 1)  # a queue change: last track to the front
        gc.collect()
        async with LoopStallProbe() as probe:
            t0 = time.perf_counter()
            store.mark_dirty(target.guild_id, capture)
            await store.flush()
            write_s.append(time.perf_counter() - t0)
        stalls.append(probe.worst)
        if isinstance(store, MusicStore):
            written.append(store.last_write.chunks_written)
    assert store.writes == writes, store.writes

    mark_s = []
    for _ in range(1000):
        t0 = time.perf_counter_ns()
        store.mark_dirty(target.guild_id, capture)
        mark_s.append((time.perf_counter_ns() - t0) / 1e9)
    await store.flush()

    burst_writes = await measure_burst(store, target, capture) if burst else None

    # what was written is what is in memory: read it back through a fresh Config, as a new process
    config_module._config_cache = weakref.WeakValueDictionary()
    json_driver._shared_datastore.clear()
    fresh = Config.get_conf(Music(), identifier=CONFIG_IDENTIFIER, force_registration=True)
    if layout == "chunked":
        reread = (await MusicStore(fresh).load())[target.guild_id]
    else:
        fresh.register_guild(state={})
        reread = await fresh.guild_from_id(target.guild_id).state()
    if reread["queue"] != target.queue.to_dict():
        raise AssertionError(f"{run.name} {layout}: the stored queue differs from the one in memory")

    return Result(run.name, layout, guilds, tracks, statistics.median(write_s) * 1e3,
                  statistics.median(on_loop_s) * 1e3, max(stalls) * 1e3,
                  statistics.median(mark_s) * 1e6, burst_writes,
                  statistics.median(written) if written else float("nan"), state_mb)


async def measure_burst(store: MusicStore | WholeDocumentStore, player: GuildPlayer,
                        capture: Callable[[], Any]) -> int:
    """100 changes arriving while the flush loop waits out FLUSH_INTERVAL after a write."""
    shutdown = asyncio.Event()
    loop_task = asyncio.create_task(store.flush_loop(shutdown))  # type: ignore[arg-type]
    player.queue.move(len(player.queue), 1)
    store.mark_dirty(player.guild_id, capture)
    await until(lambda: store.pending == 0 and not store._flush_lock.locked())
    before = store.writes
    for _ in range(100):
        player.queue.move(len(player.queue), 1)
        store.mark_dirty(player.guild_id, capture)
        await asyncio.sleep(0)  # one command per loop iteration, as Discord messages arrive
    await asyncio.sleep(FLUSH_INTERVAL + 0.5)
    await until(lambda: store.pending == 0 and not store._flush_lock.locked())
    shutdown.set()
    store._wake.set()
    await asyncio.wait_for(loop_task, 30)
    return store.writes - before


async def until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


# -- driving ------------------------------------------------------------------------------------


async def run_one(run: BackendRun, layout: str, guilds: int, tracks: int, writes: int, burst: bool,
                  open_driver: Callable[[], Awaitable[None]], close_driver: Callable[[], Awaitable[None]]) -> Result:
    with tempfile.TemporaryDirectory(prefix="music-bench-") as data_dir:
        use_backend(run, Path(data_dir))
        await open_driver()
        try:
            return await measure(run, layout, guilds, tracks, writes, burst)
        finally:
            await close_driver()


async def main_async(args: argparse.Namespace) -> list[Result]:
    from tests.support.postgres import PostgresServer, PostgresUnavailable

    results: list[Result] = []

    async def nothing() -> None:
        return None

    def report(r: Result) -> None:
        print(f"  {r.backend:<9} {r.layout:<15} {r.guilds:>3} x {r.tracks}: {r.write_ms:.1f} ms",
              file=sys.stderr, flush=True)

    for guilds in args.guilds if "json" in args.backends else []:
        # JSON at 50 x 5,000 costs seconds per write: fewer repetitions there
        n = max(3, args.writes // 2) if guilds >= 50 else args.writes
        for layout in LAYOUTS:
            results.append(await run_one(BackendRun("json", "JSON", {}), layout, guilds, args.tracks, n,
                                         guilds == max(args.guilds), nothing, nothing))
            report(results[-1])

    if "postgres" not in args.backends:
        return results
    try:
        server = PostgresServer.start(durable=True)
    except PostgresUnavailable as exc:
        print(f"PostgreSQL rows skipped: {exc}", file=sys.stderr)
        return results

    async def close_pg() -> None:
        await PostgresDriver.teardown()
        PostgresDriver._pool = None

    try:
        for guilds in args.guilds:
            for layout in LAYOUTS:
                details = server.create_database(f"music_bench_{next(_databases)}")
                run = BackendRun("postgres", "Postgres", details)

                async def open_pg(details: dict[str, Any] = details) -> None:
                    await PostgresDriver.initialize(**details)

                results.append(await run_one(run, layout, guilds, args.tracks, args.writes,
                                             guilds == max(args.guilds), open_pg, close_pg))
                report(results[-1])
    finally:
        server.stop()
    return results


def table(results: list[Result]) -> str:
    baseline = {(r.backend, r.guilds, r.tracks): r.write_ms for r in results if r.layout == BASELINE}
    lines = [
        "| backend | layout | guilds x tracks | one guild's state (MB JSON) | write, median ms | "
        "vs whole document | on the loop per write, ms | longest loop stall during a write, ms | "
        "chunks written per change | mark_dirty, us | writes for a burst of 100 changes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt_nan = lambda v, d=1: "-" if v != v else f"{v:.{d}f}"  # noqa: E731  (nan: not measured)
    for r in results:
        base = baseline.get((r.backend, r.guilds, r.tracks))
        vs = "baseline" if r.layout == BASELINE else (f"x{base / r.write_ms:.1f} faster" if base else "-")
        lines.append(
            f"| {r.backend} | {r.layout} | {r.guilds} x {r.tracks:,} | {r.state_mb:.2f} | {r.write_ms:.1f} | {vs} | "
            f"{r.on_loop_ms:.2f} | {r.stall_ms:.1f} | {fmt_nan(r.chunks_written, 0)} | {r.mark_dirty_us:.1f} | "
            f"{r.burst_writes if r.burst_writes is not None else '-'} |"
        )
    return "\n".join(lines)


def verdict(results: list[Result]) -> list[str]:
    out = []
    for layout in LAYOUTS:
        pg = [r for r in results if r.backend == "postgres" and r.layout == layout]
        if not pg:
            continue
        worst = max(pg, key=lambda r: (r.guilds, r.write_ms))
        ok = worst.write_ms <= TARGET_POSTGRES_WRITE_MS
        out.append(f"- postgres, {layout}{' (adopted)' if layout != BASELINE else ' (the previous layout)'}: "
                   f"one guild's change at {worst.guilds} x {worst.tracks:,}: {worst.write_ms:.1f} ms "
                   f"(target <= {TARGET_POSTGRES_WRITE_MS:.0f} ms): {'met' if ok else 'MISSED'}")
    for layout in LAYOUTS:
        rows = [r for r in results if r.layout == layout]
        if not rows:
            continue
        worst_stall = max(rows, key=lambda r: r.stall_ms)
        worst_loop = max(rows, key=lambda r: r.on_loop_ms)
        worst_mark = max(r.mark_dirty_us for r in rows)
        bursts = {r.burst_writes for r in rows if r.burst_writes is not None}
        out.append(
            f"- {layout}: a command records a change in at most {worst_mark:.1f} us and never awaits a write; "
            f"the store's own work on the loop per write is at most {worst_loop.on_loop_ms:.2f} ms "
            f"({worst_loop.backend}, {worst_loop.guilds} guilds); the longest loop stall during a write was "
            f"{worst_stall.stall_ms:.1f} ms ({worst_stall.backend}, {worst_stall.guilds} guilds)"
            + (f"; a burst of 100 changes made {', '.join(map(str, sorted(bursts)))} write(s)" if bursts else ""))
    json_chunked = [r for r in results if r.backend == "json" and r.layout != BASELINE]
    if json_chunked:
        worst = max(json_chunked, key=lambda r: r.stall_ms)
        slowest = max(json_chunked, key=lambda r: r.write_ms)
        out.append(f"- JSON backend: Red's JsonDriver rewrites the cog's whole file on every save (one save per "
                   f"write here), {slowest.write_ms:.0f} ms at {slowest.guilds} guilds: proportional to all guilds' "
                   f"data, not to the change. Nothing of the store runs on the loop, but the loop still stalls up "
                   f"to {worst.stall_ms:.0f} ms ({worst.guilds} guilds) while the driver's json.dump runs in its "
                   f"executor thread (pure-Python iterencode sharing the GIL; likely also garbage collections over "
                   f"the driver's in-memory copy of every guild, not verified). In the whole-document layout the "
                   f"stall is snapshot() and the driver's json.loads(json.dumps(value)) copy, both on the loop.")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guilds", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--tracks", type=int, default=5000)
    parser.add_argument("--writes", type=int, default=7, help="writes per configuration (median)")
    parser.add_argument("--backends", nargs="+", choices=["json", "postgres"], default=["json", "postgres"])
    parser.add_argument("--quick", action="store_true", help="1 and 10 guilds, 3 writes")
    args = parser.parse_args(argv)
    if args.quick:
        args.guilds, args.writes = [1, 10], 3
    results = asyncio.run(main_async(args))
    print(f"## Persistence: one queue change, {args.tracks:,} tracks per guild "
          f"(Python {sys.version.split()[0]}, FLUSH_INTERVAL {FLUSH_INTERVAL} s)\n")
    print(table(results))
    print()
    print("\n".join(verdict(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

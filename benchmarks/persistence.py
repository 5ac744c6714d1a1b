"""What a queue change costs to persist, on Red's JSON backend (the baseline) and on PostgreSQL.

    python -m benchmarks.persistence [--quick] [--guilds 1 10 50] [--tracks 5000] [--writes 7]

For each backend and each size (N guilds with T tracks queued each, all stored in the cog's Config),
one guild's queue changes and the cog's MusicStore writes it: `mark_dirty(guild, snapshot)` then
`flush()`, the path the flush loop takes. Reported per configuration:

- write: median wall time of one guild's state write (snapshot + Config set), over --writes writes;
- of which snapshot: GuildPlayer.snapshot() alone (pure Python, the same on both backends);
- loop stall: the longest time the event loop was blocked during a write, i.e. the longest a
  command arriving mid-write waits (a write that runs in a thread or on the server does not
  block; json.dumps and snapshot() on the loop do);
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
from music.player import GuildPlayer, PlayerState
from music.store import CONFIG_IDENTIFIER, FLUSH_INTERVAL, MusicStore

TARGET_POSTGRES_WRITE_MS = 20.0
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


async def new_store() -> MusicStore:
    config = Config.get_conf(Music(), identifier=CONFIG_IDENTIFIER, force_registration=True)
    return MusicStore(config)


async def seed(store: MusicStore, players: list[GuildPlayer]) -> None:
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
    guilds: int
    tracks: int
    write_ms: float
    snapshot_ms: float
    stall_ms: float
    mark_dirty_us: float
    burst_writes: int | None
    state_mb: float


async def measure(run: BackendRun, guilds: int, tracks: int, writes: int, burst: bool) -> Result:
    store = await new_store()
    players = [make_player(900000 + g, tracks) for g in range(guilds)]
    await seed(store, players)
    await store.load()
    target = players[0]
    state_mb = len(__import__("json").dumps(target.snapshot())) / 1e6

    snapshot_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        target.snapshot()
        snapshot_s.append(time.perf_counter() - t0)

    write_s, stalls = [], []
    for _ in range(writes):
        target.queue.move(len(target.queue), 1)  # a queue change: last track to the front
        gc.collect()
        async with LoopStallProbe() as probe:
            t0 = time.perf_counter()
            store.mark_dirty(target.guild_id, target.snapshot)
            await store.flush()
            write_s.append(time.perf_counter() - t0)
        stalls.append(probe.worst)
    assert store.writes == writes, store.writes

    mark_s = []
    for _ in range(1000):
        t0 = time.perf_counter_ns()
        store.mark_dirty(target.guild_id, target.snapshot)
        mark_s.append((time.perf_counter_ns() - t0) / 1e9)
    await store.flush()

    burst_writes = await measure_burst(store, target) if burst else None

    # what was written is what is in memory: read it back through a fresh Config
    config_module._config_cache = weakref.WeakValueDictionary()
    json_driver._shared_datastore.clear()
    reread = await (await new_store()).config.guild_from_id(target.guild_id).state()
    if reread["queue"] != target.queue.to_dict():
        raise AssertionError(f"{run.name}: the stored queue differs from the one in memory")

    return Result(run.name, guilds, tracks, statistics.median(write_s) * 1e3,
                  statistics.median(snapshot_s) * 1e3, max(stalls) * 1e3,
                  statistics.median(mark_s) * 1e6, burst_writes, state_mb)


async def measure_chunked(run: BackendRun, guilds: int, tracks: int, writes: int) -> Result:
    """The same change through the prototype layout (music/store_chunks.py): only the chunks
    around the change are written."""
    from music.store_chunks import ChunkedQueueWriter

    store = await new_store()
    writer = ChunkedQueueWriter(store.config)
    players = [make_player(900000 + g, tracks) for g in range(guilds)]
    await seed(store, players[1:])  # the other guilds as they are stored today
    target = players[0]

    def head() -> dict[str, Any]:
        # GuildPlayer.snapshot() without the queue (snapshot() would serialize all of it)
        return {"position": round(target.position, 2), "paused": target.state is PlayerState.PAUSED,
                "channel_id": target.channel_id, "text_channel_id": target.text_channel_id,
                "volume": target.volume}

    await writer.write(target.guild_id, head(), target.queue)
    write_s, stalls, written = [], [], []
    for _ in range(writes):
        target.queue.move(len(target.queue), 1)
        gc.collect()
        async with LoopStallProbe() as probe:
            t0 = time.perf_counter()
            stats = await writer.write(target.guild_id, head(), target.queue)
            write_s.append(time.perf_counter() - t0)
        stalls.append(probe.worst)
        written.append(stats.chunks_written)
    config_module._config_cache = weakref.WeakValueDictionary()
    json_driver._shared_datastore.clear()
    loaded = await ChunkedQueueWriter((await new_store()).config).load(target.guild_id)
    if loaded is None or loaded[1].to_dict() != target.queue.to_dict():
        raise AssertionError(f"{run.name}: the chunked queue read back differs from the one in memory")
    snapshot_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        head()
        snapshot_s.append(time.perf_counter() - t0)
    return Result(f"{run.name}, chunked prototype", guilds, tracks, statistics.median(write_s) * 1e3,
                  statistics.median(snapshot_s) * 1e3, max(stalls) * 1e3, float("nan"), None,
                  float("nan"))


async def measure_burst(store: MusicStore, player: GuildPlayer) -> int:
    """100 changes arriving while the flush loop waits out FLUSH_INTERVAL after a write."""
    shutdown = asyncio.Event()
    loop_task = asyncio.create_task(store.flush_loop(shutdown))
    player.queue.move(len(player.queue), 1)
    store.mark_dirty(player.guild_id, player.snapshot)
    await until(lambda: store.pending == 0 and not store._flush_lock.locked())
    before = store.writes
    for _ in range(100):
        player.queue.move(len(player.queue), 1)
        store.mark_dirty(player.guild_id, player.snapshot)
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


async def run_one(run: BackendRun, guilds: int, tracks: int, writes: int, burst: bool,
                  open_driver: Callable[[], Awaitable[None]], close_driver: Callable[[], Awaitable[None]],
                  chunked: bool = False) -> Result:
    with tempfile.TemporaryDirectory(prefix="music-bench-") as data_dir:
        use_backend(run, Path(data_dir))
        await open_driver()
        try:
            if chunked:
                return await measure_chunked(run, guilds, tracks, writes)
            return await measure(run, guilds, tracks, writes, burst)
        finally:
            await close_driver()


async def main_async(args: argparse.Namespace) -> list[Result]:
    from tests.support.postgres import PostgresServer, PostgresUnavailable

    results: list[Result] = []

    async def nothing() -> None:
        return None

    for guilds in args.guilds if "json" in args.backends else []:
        # JSON at 50 x 5,000 costs seconds per write: fewer repetitions there
        n = max(3, args.writes // 2) if guilds >= 50 else args.writes
        results.append(await run_one(BackendRun("json", "JSON", {}), guilds, args.tracks, n,
                                     guilds == max(args.guilds), nothing, nothing))
        print(f"  json       {guilds:>3} x {args.tracks}: {results[-1].write_ms:.1f} ms", file=sys.stderr, flush=True)

    if "postgres" not in args.backends and "chunked" not in args.backends:
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
        for guilds in args.guilds if "postgres" in args.backends else []:
            details = server.create_database(f"music_bench_{next(_databases)}")
            run = BackendRun("postgres", "Postgres", details)

            async def open_pg(details: dict[str, Any] = details) -> None:
                await PostgresDriver.initialize(**details)

            results.append(await run_one(run, guilds, args.tracks, args.writes, guilds == max(args.guilds),
                                         open_pg, close_pg))
            print(f"  postgres   {guilds:>3} x {args.tracks}: {results[-1].write_ms:.1f} ms", file=sys.stderr, flush=True)
        for guilds in args.guilds if "chunked" in args.backends else []:
            details = server.create_database(f"music_bench_{next(_databases)}")
            run = BackendRun("postgres", "Postgres", details)

            async def open_pg(details: dict[str, Any] = details) -> None:
                await PostgresDriver.initialize(**details)

            results.append(await run_one(run, guilds, args.tracks, args.writes, False, open_pg, close_pg,
                                         chunked=True))
            print(f"  chunked    {guilds:>3} x {args.tracks}: {results[-1].write_ms:.1f} ms", file=sys.stderr, flush=True)
    finally:
        server.stop()
    return results


def table(results: list[Result]) -> str:
    baseline = {(r.guilds, r.tracks): r.write_ms for r in results if r.backend == "json"}
    lines = [
        "| backend | guilds x tracks | one guild's state (MB JSON) | write, median ms | vs JSON | "
        "of which snapshot ms | longest loop stall during a write, ms | mark_dirty, us | "
        "writes for a burst of 100 changes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = baseline.get((r.guilds, r.tracks))
        vs = f"x{base / r.write_ms:.1f} faster" if base and r.backend != "json" else (
            "baseline" if r.backend == "json" else "-")
        fmt_nan = lambda v, d=1: "-" if v != v else f"{v:.{d}f}"  # noqa: E731  (nan: not measured)
        lines.append(
            f"| {r.backend} | {r.guilds} x {r.tracks:,} | {fmt_nan(r.state_mb, 2)} | {r.write_ms:.1f} | {vs} | "
            f"{r.snapshot_ms:.1f} | {r.stall_ms:.1f} | {fmt_nan(r.mark_dirty_us)} | "
            f"{r.burst_writes if r.burst_writes is not None else '-'} |"
        )
    return "\n".join(lines)


def verdict(results: list[Result]) -> list[str]:
    out = []
    for name in ("postgres", "postgres, chunked prototype"):
        pg = [r for r in results if r.backend == name]
        if not pg:
            continue
        worst = max(pg, key=lambda r: r.guilds)
        ok = worst.write_ms <= TARGET_POSTGRES_WRITE_MS
        out.append(f"- {name}, one guild's change at {worst.guilds} x {worst.tracks:,}: "
                   f"{worst.write_ms:.1f} ms (target <= {TARGET_POSTGRES_WRITE_MS:.0f} ms): "
                   f"{'met' if ok else 'MISSED'}")
    marks = [r.mark_dirty_us for r in results if r.mark_dirty_us == r.mark_dirty_us]  # nan: not measured
    worst_mark = max(marks, default=float("nan"))
    worst_stall = max(results, key=lambda r: r.stall_ms)
    out.append(f"- A command records a change in at most {worst_mark:.1f} us (median per configuration) "
               f"and never awaits a write; but a command that arrives during a write waits up to "
               f"{worst_stall.stall_ms:.1f} ms ({worst_stall.backend}, {worst_stall.guilds} guilds): the "
               f"snapshot and serialization run on the event loop.")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guilds", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--tracks", type=int, default=5000)
    parser.add_argument("--writes", type=int, default=7, help="writes per configuration (median)")
    parser.add_argument("--backends", nargs="+", choices=["json", "postgres", "chunked"],
                        default=["json", "postgres", "chunked"],
                        help="chunked: the prototype layout of music/store_chunks.py on PostgreSQL")
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

"""One fresh process of row 2c's pacing table: how late the event loop wakes up while yt-dlp's
one-time costs are paid, and how long the next lookup takes.

    python -m benchmarks.warmup_pacing MODE URL

MODE: ``warm-up`` (the cog's warm-up, ResolveService.warm_up with the cog's gc freeze, then a
lookup of URL), ``cold`` (no warm-up: the first lookup of URL pays everything, as before the
warm-up existed), ``idle`` (nothing runs: the machine's own noise). A task sleeps 1 ms again and again and records how late
each wake-up is. Prints one JSON line.

Beside each wake-up's lateness, the same minus the loop thread's wait for a CPU in that time (its
run-queue wait, Linux /proc schedstat): what the GIL and our code cost, with most of a busy
machine's noise (other processes on the cores) taken out.

Full collections are counted from gc.get_stats(), and timed (a gc callback) in the ``cold`` mode
only: a callback is Python code run inside every collection, so inside any C call that allocates
(unmarshalling a module's bytecode), which gives the worker a bytecode boundary where the loop
gets the GIL; it would hide such holds from the other modes (the warm-up adds its own on purpose,
music.resolve.warmup.collection_breaks, and that is what must be measured)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable

from music.policy import NetworkPolicy
from music.resolve.resolver import Resolver
from music.resolve.service import ResolveService

TICK = 0.001
IDLE_SECONDS = 0.5


def run_queue_clock() -> Callable[[], float] | None:
    """This thread's time so far waiting for a CPU while runnable (ms), or None off Linux."""
    try:
        fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
    except OSError:
        return None
    return lambda: int(os.pread(fd, 100, 0).split()[1]) / 1e6


def percentiles(values: list[float], prefix: str) -> dict[str, float]:
    values = sorted(values)
    if not values:
        return {}
    return {f"{prefix}_p90": values[len(values) * 9 // 10],
            f"{prefix}_p99": values[min(len(values) - 1, len(values) * 99 // 100)],
            f"{prefix}_max": values[-1]}


async def measure(mode: str, url: str) -> dict[str, object]:
    resolver = Resolver(lambda: NetworkPolicy(allow=["127.0.0.0/8"]))
    service = ResolveService(resolver)
    late: list[float] = []
    late_but_run_queue: list[float] = []  # each lateness minus the run-queue wait in it
    running = True
    run_queue = run_queue_clock()

    async def ticker() -> None:
        while running:
            queued_before = run_queue() if run_queue else 0.0
            asked = time.perf_counter()
            await asyncio.sleep(TICK)
            lateness = (time.perf_counter() - asked - TICK) * 1000
            late.append(lateness)
            if run_queue:
                late_but_run_queue.append(lateness - (run_queue() - queued_before))

    full_collections: list[float] = []  # ms each full (generation 2) garbage collection took
    collection_started = [0.0]

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                collection_started[0] = time.perf_counter()
            else:
                full_collections.append((time.perf_counter() - collection_started[0]) * 1000)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    late.clear()
    late_but_run_queue.clear()
    timed = mode == "cold"
    if timed:
        gc.callbacks.append(on_collection)
    full_before = gc.get_stats()[2]["collections"]
    started = time.perf_counter()
    figures: dict[str, object] = {"mode": mode}
    if mode == "warm-up":
        report = await service.warm_up(freeze=True)  # as the cog does
        assert report is not None
        figures["state"] = report.state
        figures["steps_ms"] = {k: round(v * 1000, 1) for k, v in report.steps.items()}
    elif mode == "cold":
        await service.resolve(url, guild_id=1, requester_id=1)
    else:
        await asyncio.sleep(IDLE_SECONDS)
    figures["busy_ms"] = (time.perf_counter() - started) * 1000
    full_collections_run = gc.get_stats()[2]["collections"] - full_before
    if timed:
        gc.callbacks.remove(on_collection)
    running = False
    await task
    if mode == "warm-up":
        asked = time.perf_counter()
        await service.resolve(url, guild_id=1, requester_id=1)
        figures["lookup_after_ms"] = (time.perf_counter() - asked) * 1000
    await service.close()
    resolver.close()
    late.sort()
    figures.update(
        wakeups=len(late),
        late_median=statistics.median(late),
        late_p90=late[len(late) * 9 // 10],
        late_p99=late[min(len(late) - 1, len(late) * 99 // 100)],
        late_max=late[-1],
        over_2ms=sum(1 for x in late if x > 2.0),
        full_collections=full_collections_run,
        longest_full_collection_ms=max(full_collections, default=0.0) if timed else None,
        **percentiles(late_but_run_queue, "late_but_run_queue"),
    )
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(sys.argv[1], sys.argv[2]))))

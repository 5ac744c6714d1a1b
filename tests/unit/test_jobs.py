"""JobScheduler with plain Python work functions: order, fairness, timeouts, cancellation,
retries, progress on the loop, status numbers, shutdown."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from music.resolve.jobs import (
    Job,
    JobCancelled,
    JobContext,
    JobNotAllowed,
    JobScheduler,
    JobTimedOut,
    Priority,
    Progress,
    SchedulerClosed,
    Stage,
)


class Transient(Exception):
    transient = True


class Permanent(Exception):
    transient = False


@pytest.fixture
async def scheduler() -> AsyncIterator[JobScheduler]:
    sched = JobScheduler(workers=1, timeout=10.0, backoff_base=0.05, rng=random.Random(1))
    yield sched
    sched.close()
    assert sched.join(5)


def recorder(log: list[Any], tag: Any) -> Callable[[JobContext], Any]:
    def work(ctx: JobContext) -> Any:
        log.append(tag)
        return tag

    return work


def blocker(
    gate: threading.Event, started: threading.Event | None = None
) -> Callable[[JobContext], str]:
    """Work that holds its worker until the test opens the gate."""

    def work(ctx: JobContext) -> str:
        if started is not None:
            started.set()
        assert gate.wait(10), "the test never opened the gate"
        return "released"

    return work


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_urgent_job_submitted_after_20_low_jobs_runs_first(scheduler: JobScheduler) -> None:
    gate = threading.Event()
    order: list[str] = []
    first = scheduler.submit(blocker(gate), guild_id=1, requester_id=1, priority=Priority.LOW)
    lows = [
        scheduler.submit(
            recorder(order, f"low{i}"), guild_id=1, requester_id=1, priority=Priority.LOW
        )
        for i in range(20)
    ]
    urgent = scheduler.submit(
        recorder(order, "urgent"), guild_id=1, requester_id=1, priority=Priority.URGENT
    )
    high = scheduler.submit(
        recorder(order, "high"), guild_id=1, requester_id=1, priority=Priority.HIGH
    )
    gate.set()
    await asyncio.gather(first.future, urgent.future, high.future, *(j.future for j in lows))
    assert order == ["urgent", "high"] + [f"low{i}" for i in range(20)]


async def test_another_guild_is_not_stuck_behind_a_1000_entry_playlist(
    scheduler: JobScheduler,
) -> None:
    gate = threading.Event()
    order: list[tuple[str, int]] = []
    holder = scheduler.submit(blocker(gate), guild_id=1, requester_id=1, priority=Priority.LOW)
    guild_a = [
        scheduler.submit(
            recorder(order, ("A", i)), guild_id=100, requester_id=7, priority=Priority.LOW
        )
        for i in range(1000)
    ]
    b_low = scheduler.submit(
        recorder(order, ("B-low", 0)), guild_id=200, requester_id=8, priority=Priority.LOW
    )
    b_normal = scheduler.submit(
        recorder(order, ("B-normal", 0)), guild_id=200, requester_id=8, priority=Priority.NORMAL
    )
    gate.set()
    await asyncio.gather(holder.future, b_low.future, b_normal.future, *(j.future for j in guild_a))
    # NORMAL beats LOW outright; at the same priority the guilds alternate
    assert order[0] == ("B-normal", 0)
    assert order.index(("B-low", 0)) <= 2
    assert [tag for tag in order if tag[0] == "A"] == [("A", i) for i in range(1000)]


async def test_members_of_one_guild_take_turns(scheduler: JobScheduler) -> None:
    gate = threading.Event()
    order: list[str] = []
    holder = scheduler.submit(blocker(gate), guild_id=1, requester_id=1)
    jobs = [
        scheduler.submit(recorder(order, f"m1-{i}"), guild_id=5, requester_id=1) for i in range(5)
    ]
    jobs += [
        scheduler.submit(recorder(order, f"m2-{i}"), guild_id=5, requester_id=2) for i in range(2)
    ]
    gate.set()
    await asyncio.gather(holder.future, *(j.future for j in jobs))
    assert order == ["m1-0", "m2-0", "m1-1", "m2-1", "m1-2", "m1-3", "m1-4"]


async def test_timeout_answers_with_a_sentence_and_drops_the_late_result() -> None:
    sched = JobScheduler(workers=1, timeout=0.2, max_attempts=1)
    gate, started = threading.Event(), threading.Event()
    try:
        job = sched.submit(blocker(gate, started), guild_id=1, requester_id=1)
        began = time.monotonic()
        with pytest.raises(JobTimedOut) as info:
            await job.future
        assert 0.15 <= time.monotonic() - began < 2.0
        assert info.value.sentence == "Looking that up timed out after 0.2 s."
        # the thread is still inside the work: it keeps its slot and shows as abandoned
        status = sched.status()
        assert status["workers"]["busy"] == 1 and status["workers"]["abandoned"] == 1
        assert status["recent_failures"][0]["reason"] == info.value.sentence
        gate.set()
        await wait_until(lambda: sched.status()["workers"]["busy"] == 0)
        assert sched.status()["workers"]["abandoned"] == 0
        assert sched.status()["counts"]["completed"] == 0  # the late result was dropped
    finally:
        gate.set()
        sched.close()
        assert sched.join(5)


async def test_progress_restarts_the_inactivity_timeout() -> None:
    sched = JobScheduler(workers=1, timeout=0.3, max_attempts=1)

    def slow_but_busy(ctx: JobContext) -> int:
        for i in range(10):  # 1 s in all, reporting every 0.1 s
            time.sleep(0.1)
            ctx.report(Stage.EXPANDING, i * 10, done=i, total=10)
        return 10

    try:
        job = sched.submit(slow_but_busy, guild_id=1, requester_id=1)
        assert await job.future == 10
    finally:
        sched.close()
        assert sched.join(5)


async def test_cancel_a_pending_job_never_runs_it(scheduler: JobScheduler) -> None:
    gate = threading.Event()
    ran: list[str] = []
    holder = scheduler.submit(blocker(gate), guild_id=1, requester_id=1)
    job = scheduler.submit(recorder(ran, "x"), guild_id=1, requester_id=42)
    assert scheduler.cancel(job.id, by_user_id=42, is_admin=False) is True
    with pytest.raises(JobCancelled, match=r"^That lookup was cancelled\.$"):
        await job.future
    gate.set()
    await holder.future
    await asyncio.sleep(0.05)
    assert ran == []
    assert scheduler.cancel(job.id, by_user_id=42, is_admin=False) is False  # already gone


async def test_cancel_a_running_job_answers_at_once_and_frees_the_worker_later(
    scheduler: JobScheduler,
) -> None:
    gate, started = threading.Event(), threading.Event()
    stages: list[Stage] = []
    job = scheduler.submit(
        blocker(gate, started),
        guild_id=1,
        requester_id=5,
        on_progress=lambda p: stages.append(p.stage),
    )
    await asyncio.to_thread(started.wait, 5)
    after: list[str] = []
    queued = scheduler.submit(recorder(after, "next"), guild_id=1, requester_id=5)
    assert scheduler.cancel(job.id, by_user_id=5, is_admin=False)
    with pytest.raises(
        JobCancelled, match="can't be interrupted, so its result will be thrown away"
    ):
        await job.future
    assert stages[-1] is Stage.CANCELLED
    # the cancelled call still holds its thread, but a replacement worker runs the next job
    assert await asyncio.wait_for(queued.future, 5) == "next"
    assert not gate.is_set()
    gate.set()


async def test_stuck_attempts_are_replaced_but_only_up_to_the_pool_size() -> None:
    """An extraction stuck outside any socket must not stall every later lookup, nor make a
    hostile site grow threads without bound: at most `workers` stuck threads are replaced."""
    sched = JobScheduler(workers=1, timeout=0.2, max_attempts=1, thread_name_prefix="stuck-test")
    gate = threading.Event()
    try:
        for _ in range(2):  # two stuck lookups: the first gets a replacement, the second not
            stuck = sched.submit(blocker(gate, threading.Event()), guild_id=1, requester_id=1)
            with pytest.raises(JobTimedOut):
                await stuck.future
        assert sched.status()["workers"]["abandoned"] == 2
        after: list[str] = []
        waiting = sched.submit(recorder(after, "next"), guild_id=2, requester_id=2)
        await asyncio.sleep(0.3)
        assert after == [] and sched.status()["workers"]["busy"] == 2  # the cap holds
        gate.set()
        assert await asyncio.wait_for(waiting.future, 5) == "next"
        await wait_until(lambda: sched.status()["workers"]["busy"] == 0)
        # the replacement's extra thread ends once the stuck ones are back: one worker again
        await wait_until(lambda: len([t for t in threading.enumerate() if t.name.startswith("stuck-test")]) <= 1)
    finally:
        gate.set()
        sched.close()
        assert sched.join(5)


async def test_only_the_requester_or_an_admin_may_cancel(scheduler: JobScheduler) -> None:
    gate = threading.Event()
    holder = scheduler.submit(blocker(gate), guild_id=1, requester_id=1)
    job = scheduler.submit(recorder([], "x"), guild_id=1, requester_id=42)
    with pytest.raises(JobNotAllowed, match="or an admin"):
        scheduler.cancel(job.id, by_user_id=43, is_admin=False)
    assert scheduler.get(job.id) is job  # still queued
    assert scheduler.cancel(job.id, by_user_id=43, is_admin=True)
    assert scheduler.cancel(99999, by_user_id=1, is_admin=True) is False
    gate.set()
    await holder.future


async def test_another_guilds_job_is_not_found_by_cancel(scheduler: JobScheduler) -> None:
    """An admin of one server can't cancel another server's lookup, nor tell it exists: the
    answer is the one for a number that isn't there. The owner (guild None) can."""
    gate = threading.Event()
    holder = scheduler.submit(blocker(gate), guild_id=1, requester_id=1)
    theirs = scheduler.submit(recorder([], "theirs"), guild_id=2, requester_id=42)
    for by_user_id in (7, 42):  # an admin, and even the same user id, from server 1
        assert scheduler.cancel(theirs.id, by_user_id=by_user_id, is_admin=True, guild_id=1) is False
        assert scheduler.cancel(99999, by_user_id=by_user_id, is_admin=True, guild_id=1) is False
    assert scheduler.get(theirs.id) is theirs  # untouched
    assert scheduler.cancel(theirs.id, by_user_id=42, is_admin=False, guild_id=2) is True
    mine = scheduler.submit(recorder([], "mine"), guild_id=1, requester_id=5)
    assert scheduler.cancel(mine.id, by_user_id=9, is_admin=True) is True  # the owner: any guild
    gate.set()
    await holder.future


async def test_status_of_one_guild_shows_only_its_jobs_and_failures(
    scheduler: JobScheduler,
) -> None:
    def fail(ctx: JobContext) -> None:
        raise Permanent("that failed")

    for guild_id in (1, 2):
        failing = scheduler.submit(
            fail, guild_id=guild_id, requester_id=guild_id, description=f"failed in {guild_id}"
        )
        with pytest.raises(Permanent):
            await failing.future
    gate, started = threading.Event(), threading.Event()
    running = scheduler.submit(
        blocker(gate, started), guild_id=2, requester_id=2, description="running in 2"
    )
    pending = scheduler.submit(
        recorder([], "p"), guild_id=2, requester_id=2, priority=Priority.LOW
    )
    await asyncio.to_thread(started.wait, 5)
    await wait_until(lambda: scheduler.get(running.id).state == "running")  # type: ignore[union-attr]

    one = scheduler.status(guild_id=1)
    assert one["running_jobs"] == [] and sum(one["pending"].values()) == 0
    assert [f["description"] for f in one["recent_failures"]] == ["failed in 1"]
    two = scheduler.status(guild_id=2)
    assert [j["description"] for j in two["running_jobs"]] == ["running in 2"]
    assert two["pending"]["low"] == 1
    assert [f["description"] for f in two["recent_failures"]] == ["failed in 2"]
    everyone = scheduler.status()
    assert [f["description"] for f in everyone["recent_failures"]] == ["failed in 1", "failed in 2"]
    assert everyone["running_jobs"] == two["running_jobs"]
    # the pool is shared: every guild sees how busy it is
    assert one["workers"] == two["workers"] == everyone["workers"]
    gate.set()
    await asyncio.gather(running.future, pending.future)


async def test_transient_failures_retry_with_growing_backoff() -> None:
    sched = JobScheduler(workers=1, max_attempts=3, backoff_base=0.1, rng=random.Random(3))
    calls: list[float] = []
    progress: list[Progress] = []

    def flaky(ctx: JobContext) -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise Transient("503")
        return "ok"

    try:
        job = sched.submit(flaky, guild_id=1, requester_id=1, on_progress=progress.append)
        assert await job.future == "ok"
        assert job.attempt == 3
        gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
        # attempt 1 waits 0.05-0.1 s, attempt 2 waits 0.1-0.2 s
        # (upper bounds leave room for a loaded machine; the lower ones are the real check)
        assert 0.05 <= gaps[0] < 0.1 + 0.3
        assert 0.1 <= gaps[1] < 0.2 + 0.3
        assert [p.stage for p in progress].count(Stage.RETRYING) == 2
        assert progress[-1].stage is Stage.READY and progress[-1].attempt == 3
        assert sched.status()["counts"]["retried"] == 2
    finally:
        sched.close()
        assert sched.join(5)


async def test_permanent_failure_is_not_retried(scheduler: JobScheduler) -> None:
    calls: list[int] = []

    def private(ctx: JobContext) -> None:
        calls.append(1)
        raise Permanent("private")

    job = scheduler.submit(private, guild_id=1, requester_id=1)
    with pytest.raises(Permanent):
        await job.future
    assert len(calls) == 1


async def test_retries_stop_at_max_attempts(scheduler: JobScheduler) -> None:
    calls: list[int] = []

    def always_down(ctx: JobContext) -> None:
        calls.append(1)
        raise Transient("503")

    job = scheduler.submit(always_down, guild_id=1, requester_id=1)
    with pytest.raises(Transient):
        await job.future
    assert len(calls) == scheduler.max_attempts == 3


async def test_progress_is_reported_on_the_event_loop_thread(scheduler: JobScheduler) -> None:
    seen: list[tuple[Stage, int, str]] = []

    def work(ctx: JobContext) -> None:
        ctx.report(Stage.VALIDATING, 0)
        ctx.report(Stage.EXTRACTING, 10)
        for i in range(1, 4):
            time.sleep(0.11)  # past the thinning interval
            ctx.report(Stage.EXPANDING, 10 + 30 * i, done=i, total=3)

    job = scheduler.submit(
        work,
        guild_id=1,
        requester_id=1,
        on_progress=lambda p: seen.append((p.stage, p.percent, threading.current_thread().name)),
    )
    await job.future
    assert {name for *_, name in seen} == {threading.current_thread().name}
    assert [(s, pct) for s, pct, _ in seen] == [
        (Stage.QUEUED, 0),
        (Stage.VALIDATING, 0),
        (Stage.EXTRACTING, 10),
        (Stage.EXPANDING, 40),
        (Stage.EXPANDING, 70),
        (Stage.EXPANDING, 100),
        (Stage.READY, 100),
    ]


def test_progress_describes_itself() -> None:
    assert Progress(1, Stage.EXPANDING, 12, done=120, total=1000).describe() == (
        "expanding 120/1000 (12%)"
    )
    assert Progress(1, Stage.READY, 100).describe() == "ready"


async def test_status_counts_pending_and_running_per_priority() -> None:
    sched = JobScheduler(workers=2)
    gate, started = threading.Event(), threading.Event()
    try:
        running = [
            sched.submit(
                blocker(gate, started), guild_id=1, requester_id=1, priority=Priority.URGENT
            ),
            sched.submit(blocker(gate), guild_id=2, requester_id=2, priority=Priority.LOW),
        ]
        pending = [
            sched.submit(blocker(gate), guild_id=1, requester_id=1, priority=Priority.LOW)
            for _ in range(3)
        ]
        pending.append(
            sched.submit(blocker(gate), guild_id=3, requester_id=3, priority=Priority.HIGH)
        )
        status = sched.status()
        assert status["workers"] == {"size": 2, "busy": 2, "abandoned": 0}
        assert status["running"] == {"urgent": 1, "high": 0, "normal": 0, "low": 1}
        assert status["pending"] == {"urgent": 0, "high": 1, "normal": 0, "low": 3}
        assert {j["id"] for j in status["running_jobs"]} == {j.id for j in running}
        gate.set()
        await asyncio.gather(*(j.future for j in running + pending))
        status = sched.status()
        assert status["workers"]["busy"] == 0
        assert status["pending"] == {"urgent": 0, "high": 0, "normal": 0, "low": 0}
        assert status["counts"]["completed"] == 6
    finally:
        gate.set()
        sched.close()
        assert sched.join(5)


async def test_promote_moves_a_pending_job_ahead(scheduler: JobScheduler) -> None:
    gate = threading.Event()
    order: list[str] = []
    holder = scheduler.submit(blocker(gate), guild_id=1, requester_id=1)
    normal = scheduler.submit(recorder(order, "normal"), guild_id=1, requester_id=1)
    prefetch: Job[Any] = scheduler.submit(
        recorder(order, "prefetch"), guild_id=1, requester_id=1, priority=Priority.LOW
    )
    scheduler.promote(prefetch, Priority.URGENT)
    gate.set()
    await asyncio.gather(holder.future, normal.future, prefetch.future)
    assert order == ["prefetch", "normal"]


async def test_threads_are_named_bounded_and_gone_after_close() -> None:
    sched = JobScheduler(workers=3)
    names: set[str] = set()

    def work(ctx: JobContext) -> None:
        names.add(threading.current_thread().name)
        time.sleep(0.05)

    jobs = [sched.submit(work, guild_id=i, requester_id=i) for i in range(12)]
    assert sched.status()["workers"]["busy"] == 3
    await asyncio.gather(*(j.future for j in jobs))
    assert 1 <= len(names) <= 3 and all(n.startswith("music-resolve-") for n in names)
    gate = threading.Event()
    pending = [sched.submit(blocker(gate), guild_id=1, requester_id=1) for _ in range(5)]
    sched.close()
    for job in pending:
        with pytest.raises(SchedulerClosed, match="shutting down"):
            await job.future
    gate.set()
    assert sched.join(5)
    assert not [t for t in threading.enumerate() if t.name.startswith("music-resolve-")]
    with pytest.raises(SchedulerClosed):
        sched.submit(work, guild_id=1, requester_id=1)


async def test_resize_shrinks_and_grows_the_pool() -> None:
    sched = JobScheduler(workers=3)
    lock = threading.Lock()
    running = peak = 0

    def work(ctx: JobContext) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.03)
        with lock:
            running -= 1

    try:
        sched.resize(1)
        await asyncio.gather(
            *(sched.submit(work, guild_id=i, requester_id=i).future for i in range(6))
        )
        assert peak == 1
        sched.resize(3)
        peak = 0
        await asyncio.gather(
            *(sched.submit(work, guild_id=i, requester_id=i).future for i in range(9))
        )
        assert peak == 3
    finally:
        sched.close()
        assert sched.join(5)

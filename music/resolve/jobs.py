"""The resolve job scheduler: a bounded pool of worker threads fed in priority order, fairly.

Order is decided on the event loop; threads only run work. Within a priority level, guilds take
turns (round robin), and within a guild, members take turns, so one guild's 1,000-entry playlist
or one member's flood never delays someone else by more than one job per other queue.

Every job has a timeout (an inactivity timeout: any progress report restarts it, so a long
playlist expansion that keeps producing entries is not killed), can be cancelled, retries
transient failures with exponential backoff and jitter, and reports its stage and percentage
through a callback called on the event loop.

Cancellation and timeouts cannot interrupt a thread that is inside yt-dlp: the job is marked
finished at once (its waiter is told), the attempt is abandoned, and whatever the thread returns
later is dropped. The thread keeps its worker slot until it returns, which yt-dlp's socket timeout
bounds; work that loops over entries checks `JobContext.cancelled` and stops early. Threads are
daemons so a stuck one never holds up interpreter exit; `close()` stops the idle ones at once.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from music.resolve.fairqueue import FairQueue

# The job's own types live in music.resolve.job; imported from here too.
from music.resolve.job import (
    FINAL_STAGES,
    REPORT_INTERVAL,
    Job,
    JobCancelled,
    JobContext,
    JobError,
    JobNotAllowed,
    JobTimedOut,
    Priority,
    Progress,
    ProgressCallback,
    SchedulerClosed,
    Stage,
    is_transient,
)

from ..i18n import _

__all__ = [
    "FINAL_STAGES",
    "REPORT_INTERVAL",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobError",
    "JobNotAllowed",
    "JobScheduler",
    "JobTimedOut",
    "Priority",
    "Progress",
    "ProgressCallback",
    "SchedulerClosed",
    "Stage",
    "is_transient",
]

log = logging.getLogger("red.music.resolve.jobs")

T = TypeVar("T")

RECENT_FAILURES = 20


class JobScheduler:
    """Runs jobs on `workers` threads named `music-resolve-N`, highest priority first, fairly.

    Create it anywhere; it binds to the running event loop on the first `submit`."""

    def __init__(
        self,
        *,
        workers: int = 3,
        timeout: float = 30.0,
        max_attempts: int = 3,
        backoff_base: float = 1.0,
        backoff_max: float = 15.0,
        transient: Callable[[BaseException], bool] = is_transient,
        rng: random.Random | None = None,
        thread_name_prefix: str = "music-resolve",
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._transient = transient
        self._rng = rng or random.Random()
        self._thread_name_prefix = thread_name_prefix
        self._size = workers
        self._threads: list[threading.Thread] = []  # every thread started, for join()
        self._thread_numbers = itertools.count(1)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()  # running an attempt (abandoned ones included)
        self._abandoned_running = 0  # of those, threads whose result will be dropped
        self._queues = {p: FairQueue() for p in Priority}
        self._jobs: dict[int, Job[Any]] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.recent_failures: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=RECENT_FAILURES
        )
        self.counts = {"completed": 0, "failed": 0, "cancelled": 0, "retried": 0}

    # ---- public API (event loop only) -------------------------------------------------

    @property
    def workers(self) -> int:
        return self._size

    def submit(
        self,
        work: Callable[[JobContext], T],
        *,
        guild_id: int,
        requester_id: int,
        priority: Priority = Priority.NORMAL,
        description: str = "",
        on_progress: ProgressCallback | None = None,
    ) -> Job[T]:
        """Queue `work(context)` to run in a worker thread; await `job.future` for its result."""
        if self._closed:
            raise SchedulerClosed(_("The music player is shutting down."))
        loop = self._bind()
        future: asyncio.Future[T] = loop.create_future()
        # A result nobody awaits (a cancelled command) must not log "exception never retrieved".
        future.add_done_callback(_consume)
        job = Job(
            next(self._ids),
            work,
            guild_id=guild_id,
            requester_id=requester_id,
            priority=Priority(priority),
            description=description,
            on_progress=on_progress,
            future=future,
        )
        self._jobs[job.id] = job
        self._queues[job.priority].push(job)
        self._notify(job)
        self._pump()
        return job

    def run_ahead(self, work: Callable[[Callable[[], bool]], None]) -> bool:
        """Run `work(should_stop)` in the worker thread the next job will get, before that job
        (a warm-up: the thread's yt-dlp instance is the one its lookups reuse). The worker
        stays idle meanwhile: a job handed to it waits until `work` returns, and should_stop()
        is true from then on (and once the scheduler closes). False if no worker is free."""
        if self._closed:
            return False
        self._bind()
        if not self._idle:
            if self._live_busy() >= self._size:
                return False
            self._idle.append(self._new_worker())
        worker = self._idle[-1]  # _start pops from the end
        worker.inbox.put(_Ahead(lambda: self._closed or not worker.inbox.empty(), work))
        return True

    def get(self, job_id: int) -> Job[Any] | None:
        """An unfinished job by id."""
        return self._jobs.get(job_id)

    def cancel(
        self, job_id: int, *, by_user_id: int, is_admin: bool, guild_id: int | None = None
    ) -> bool:
        """Cancel an unfinished job for its requester or an admin. False if there is no such
        unfinished job, or it is another guild's than `guild_id` (the same answer, so job
        numbers can't be probed across servers; None = any guild's, for the bot owner);
        JobNotAllowed (with a sentence) if the user may not cancel it."""
        job = self._jobs.get(job_id)
        if job is None or (guild_id is not None and job.guild_id != guild_id):
            return False
        if not is_admin and by_user_id != job.requester_id:
            raise JobNotAllowed(
                _("Only the member who asked for that lookup, or an admin, can cancel it.")
            )
        self.cancel_job(job)
        return True

    def cancel_job(self, job: Job[Any], sentence: str | None = None) -> bool:
        """Cancel without a permission check (the bot itself: a command was abandoned)."""
        if job.state == "done":
            return False
        if sentence is None:
            sentence = (
                _("That lookup was cancelled; yt-dlp was already fetching it and can't be "
                "interrupted, so its result will be thrown away.")
                if job.state == "running"
                else _("That lookup was cancelled.")
            )
        self._withdraw(job)
        self._finish(job, Stage.CANCELLED, error=JobCancelled(sentence))
        self.counts["cancelled"] += 1
        self._pump()
        return True

    def promote(self, job: Job[Any], priority: Priority) -> None:
        """Raise a job's priority (a prefetch that became the track about to play)."""
        priority = Priority(priority)
        if job.state == "done" or priority >= job.priority:
            return
        if job.state == "pending" and self._queues[job.priority].remove(job):
            job.priority = priority
            self._queues[priority].push(job, front=True)
            self._pump()
        else:
            job.priority = priority

    def resize(self, workers: int) -> None:
        """Change the pool size (owner setting). Extra threads stop when they are idle."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._size = workers
        self._pump()

    def status(self, guild_id: int | None = None) -> dict[str, Any]:
        """The pool (shared by every guild) and the jobs and recent failures of `guild_id`
        (None: of every guild, for the bot owner)."""
        jobs = [j for j in self._jobs.values() if guild_id is None or j.guild_id == guild_id]
        pending = {p.label: 0 for p in Priority}
        running = {p.label: 0 for p in Priority}
        retrying = {p.label: 0 for p in Priority}
        for job in jobs:
            table = {"pending": pending, "running": running, "waiting": retrying}[job.state]
            table[job.priority.label] += 1
        return {
            "workers": {
                "size": self._size,
                "busy": len(self._busy),
                # threads still inside yt-dlp for a job that timed out or was cancelled
                "abandoned": self._abandoned_running,
            },
            "pending": pending,
            "running": running,
            "retrying": retrying,
            "running_jobs": [j.summary() for j in jobs if j.state == "running"],
            "recent_failures": [
                f for f in self.recent_failures if guild_id is None or f["guild_id"] == guild_id
            ],
            "counts": dict(self.counts),
        }

    def jobs(self) -> list[Job[Any]]:
        """Unfinished jobs, oldest first."""
        return list(self._jobs.values())

    def close(self) -> None:
        """Fail every unfinished job with a sentence and stop the threads (idle ones at once;
        one inside yt-dlp when its call returns)."""
        if self._closed:
            return
        self._closed = True
        for job in list(self._jobs.values()):
            self._withdraw(job)
            self._finish(
                job, Stage.CANCELLED, error=SchedulerClosed(_("The music player is shutting down."))
            )
        for worker in self._idle:
            worker.inbox.put(None)
        self._idle.clear()
        # busy workers get their stop when their attempt returns (_attempt_finished)

    def join(self, timeout: float) -> bool:
        """Wait (blocking) for the threads to end after close(); True if all did. For tests and
        shutdown code that runs off the loop."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # ---- scheduling (event loop) ------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("JobScheduler is bound to another event loop")
        return loop

    def _pump(self) -> None:
        """Hand one job to each free worker, most urgent first."""
        if self._closed or self._loop is None:
            return
        # after a shrink, stop surplus idle threads
        while self._idle and len(self._idle) + len(self._busy) > self._size:
            self._idle.pop().inbox.put(None)
        while self._live_busy() < self._size:
            job = self._pop_next()
            if job is None:
                return
            self._start(job)

    def _live_busy(self) -> int:
        """Busy workers that still count against the pool size.

        A thread stuck inside yt-dlp after its job timed out or was cancelled would otherwise
        hold its slot until yt-dlp returns, so one stuck site could stall every lookup. Up to
        `size` such threads are replaced by new ones (at most twice the pool in threads);
        beyond that they count again, so a hostile site can't make threads grow without bound."""
        return len(self._busy) - min(self._abandoned_running, self._size)

    def _pop_next(self) -> Job[Any] | None:
        for priority in Priority:
            job = self._queues[priority].pop()
            if job is not None:
                return job
        return None

    def _start(self, job: Job[Any]) -> None:
        assert self._loop is not None
        worker = self._idle.pop() if self._idle else self._new_worker()
        self._busy.add(worker)
        job.attempt += 1
        job.state = "running"
        job.started = time.monotonic()
        job.last_activity = self._loop.time()
        context = JobContext(self, job, job.attempt)
        job.context = context
        job.timer = self._loop.call_later(self.timeout, self._check_timeout, job, context)
        worker.inbox.put((job, context))

    def _new_worker(self) -> _Worker:
        worker = _Worker()
        thread = threading.Thread(
            target=self._worker_main,
            args=(worker,),
            name=f"{self._thread_name_prefix}-{next(self._thread_numbers)}",
            daemon=True,
        )
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()
        return worker

    def _check_timeout(self, job: Job[Any], context: JobContext) -> None:
        if job.context is not context or job.state != "running" or self._loop is None:
            return
        idle = self._loop.time() - job.last_activity
        if idle < self.timeout:  # it reported progress: wait for the rest of the window
            job.timer = self._loop.call_later(
                self.timeout - idle, self._check_timeout, job, context
            )
            return
        self._abandon_attempt(job)
        self._failed(job, JobTimedOut(_("Looking that up timed out after {timeout:g} s.").format(timeout=self.timeout)))
        self._pump()

    def _abandon_attempt(self, job: Job[Any]) -> None:
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        if job.state == "running" and job.context is not None:
            job.context.abandon()
            self._abandoned_running += 1
        job.context = None

    def _withdraw(self, job: Job[Any]) -> None:
        """Take a job out of wherever it is (queue, retry wait, running attempt)."""
        if job.state == "pending":
            self._queues[job.priority].remove(job)
        elif job.state == "waiting" and job.retry_handle is not None:
            job.retry_handle.cancel()
            job.retry_handle = None
        elif job.state == "running":
            self._abandon_attempt(job)

    def _attempt_finished(
        self, worker: _Worker, job: Job[Any], context: JobContext, ok: bool, value: Any
    ) -> None:
        self._busy.discard(worker)
        late = job.context is not context  # timed out or cancelled meanwhile
        if late:
            self._abandoned_running -= 1
        if self._closed or len(self._idle) + self._live_busy() >= self._size:
            worker.inbox.put(None)
        else:
            self._idle.append(worker)
        if late:
            # the caller was already answered
            log.debug("Dropped the late result of job %s (attempt %s)", job.id, context.attempt)
        else:
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
            job.context = None
            if ok:
                self.counts["completed"] += 1
                self._finish(job, Stage.READY, value=value)
            else:
                self._failed(job, value)
        self._pump()

    def _failed(self, job: Job[Any], error: BaseException) -> None:
        if (
            not self._closed
            and job.retry_allowed
            and job.attempt < self.max_attempts
            and self._transient(error)
        ):
            assert self._loop is not None
            delay = self.backoff_delay(job.attempt)
            job.state = "waiting"
            job.stage = Stage.RETRYING
            job.note = _("{error} Trying again in {delay:.1f} s.").format(error=getattr(error, 'sentence', error), delay=delay)
            self.counts["retried"] += 1
            job.retry_handle = self._loop.call_later(delay, self._requeue, job)
            self._notify(job)
            return
        self.counts["failed"] += 1
        self.recent_failures.append(
            {
                "job_id": job.id,
                "when": time.time(),
                "guild_id": job.guild_id,
                "extractor": job.extractor,
                "description": job.description,
                "attempts": job.attempt,
                "reason": str(getattr(error, "sentence", None) or error),
            }
        )
        self._finish(job, Stage.FAILED, error=error)

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half the step fixed, half random, so
        retries from many jobs don't arrive at the site together."""
        step = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return step / 2 + self._rng.uniform(0, step / 2)

    def _requeue(self, job: Job[Any]) -> None:
        job.retry_handle = None
        if job.state != "waiting" or self._closed:
            return
        job.state = "pending"
        job.stage = Stage.QUEUED
        # It already waited its turn once: back to the front of its member's line.
        self._queues[job.priority].push(job, front=True)
        self._notify(job)
        self._pump()

    def _finish(
        self, job: Job[Any], stage: Stage, *, value: Any = None, error: BaseException | None = None
    ) -> None:
        job.state = "done"
        job.stage = stage
        job.note = getattr(error, "sentence", None) if error is not None else None
        if stage is Stage.READY:
            job.percent = 100
        self._jobs.pop(job.id, None)
        if not job.future.done():
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(value)
        self._notify(job)

    def _notify(self, job: Job[Any]) -> None:
        if job.on_progress is None:
            return
        progress = Progress(
            job.id, job.stage, job.percent, job.done, job.total, max(1, job.attempt), job.note
        )
        try:
            job.on_progress(progress)
        except Exception:
            log.exception("A progress callback failed")

    def _on_report(
        self,
        job: Job[Any],
        stage: Stage,
        percent: int | None,
        done: int | None,
        total: int | None,
        note: str | None,
    ) -> None:
        assert self._loop is not None
        job.last_activity = self._loop.time()
        job.stage = stage
        if percent is not None:
            job.percent = max(0, min(100, int(percent)))
        job.done, job.total, job.note = done, total, note
        self._notify(job)

    def _post(self, context: JobContext, func: Callable[..., Any], *args: Any) -> None:
        def run() -> None:
            job = context._job
            if job.context is context and job.state == "running":
                func(*args)

        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    # ---- worker threads ---------------------------------------------------------------

    def _worker_main(self, worker: _Worker) -> None:
        while True:
            item = worker.inbox.get()
            if item is None:
                return
            if isinstance(item, _Ahead):
                try:
                    item.work(item.should_stop)
                except Exception:
                    log.exception("Work run ahead in %s failed", threading.current_thread().name)
                continue
            job, context = item
            try:
                value: Any = job.work(context)
                ok = True
            except BaseException as exc:  # handed to the loop, which decides what it means
                value, ok = exc, False
            loop = self._loop
            if loop is None:
                return
            try:
                loop.call_soon_threadsafe(self._attempt_finished, worker, job, context, ok, value)
            except RuntimeError:  # loop closed: the bot is gone
                return
            if self._closed:  # set on the loop by close(); a stale read only costs one more get()
                return


class _Worker:
    """One thread's inbox: an attempt to run, work run ahead of jobs, or None to stop."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[tuple[Job[Any], JobContext] | _Ahead | None] = (
            queue.SimpleQueue()
        )


class _Ahead:
    """Work a worker runs before its next job (JobScheduler.run_ahead)."""

    def __init__(self, should_stop: Callable[[], bool], work: Callable[[Callable[[], bool]], None]):
        self.should_stop = should_stop
        self.work = work


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()

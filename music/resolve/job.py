"""One lookup job: its priority, stage and progress, the errors a job can end with, and the
context its work function gets in its worker thread. The scheduler that runs jobs is
music.resolve.jobs."""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from music.resolve.jobs import JobScheduler

T = TypeVar("T")

# A progress report is posted from a worker at most this often unless its stage changes:
# call_soon_threadsafe per playlist entry would flood the loop for nothing.
REPORT_INTERVAL = 0.1


class Priority(enum.IntEnum):
    """Lower runs first."""

    URGENT = 0  # the track about to play; play into an empty queue
    HIGH = 1  # prefetch of the next track
    NORMAL = 2  # members adding tracks
    LOW = 3  # playlist expansion, metadata refresh

    @property
    def label(self) -> str:
        return self.name.lower()


class Stage(str, enum.Enum):
    QUEUED = "queued"
    VALIDATING = "validating"
    EXTRACTING = "extracting"
    EXPANDING = "expanding"
    RETRYING = "waiting to retry"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STAGES = frozenset({Stage.READY, Stage.FAILED, Stage.CANCELLED})


@dataclass(frozen=True)
class Progress:
    """One progress report. `done`/`total` are entries for playlist expansion."""

    job_id: int
    stage: Stage
    percent: int
    done: int | None = None
    total: int | None = None
    attempt: int = 1
    note: str | None = None

    def describe(self) -> str:
        """`expanding 120/1000 (12%)`, `extracting (10%)`, `waiting to retry: <why>`."""
        text = self.stage.value
        if self.done is not None:
            text += f" {self.done}/{self.total}" if self.total else f" {self.done}"
        if self.stage not in FINAL_STAGES:
            text += f" ({self.percent}%)"
        if self.note:
            text += f": {self.note}"
        return text


class JobError(Exception):
    """A scheduler-level failure; `sentence` is what to tell the user."""

    transient = False

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


class JobTimedOut(JobError):
    transient = True


class JobCancelled(JobError):
    pass


class JobNotAllowed(JobError):
    pass


class SchedulerClosed(JobError):
    pass


def is_transient(exc: BaseException) -> bool:
    """Default retry rule: the exception says so with a true `transient` attribute."""
    return bool(getattr(exc, "transient", False))


ProgressCallback = Callable[[Progress], None]


class Job(Generic[T]):
    """One unit of work and its live state. Read it from the event loop only."""

    def __init__(
        self,
        job_id: int,
        work: Callable[[JobContext], T],
        *,
        guild_id: int,
        requester_id: int,
        priority: Priority,
        description: str,
        on_progress: ProgressCallback | None,
        future: asyncio.Future[T],
    ) -> None:
        self.id = job_id
        self.work = work
        self.guild_id = guild_id
        self.requester_id = requester_id
        self.priority = priority
        self.description = description
        self.on_progress = on_progress
        self.future = future
        self.stage = Stage.QUEUED
        self.percent = 0
        self.done: int | None = None
        self.total: int | None = None
        self.note: str | None = None
        self.attempt = 0
        # Work that has already handed out partial results (playlist batches) must not be run
        # again from the start: it would hand them out twice.
        self.retry_allowed = True
        self.extractor: str | None = None
        self.created = time.monotonic()
        self.started: float | None = None
        self.state = "pending"  # pending | running | waiting (for a retry) | done
        self.context: JobContext | None = None
        self.last_activity = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.retry_handle: asyncio.TimerHandle | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "priority": self.priority.label,
            "state": self.state,
            "stage": self.stage.value,
            "percent": self.percent,
            "done": self.done,
            "total": self.total,
            "attempt": self.attempt,
            "guild_id": self.guild_id,
            "requester_id": self.requester_id,
            "description": self.description,
            "extractor": self.extractor,
            "age": round(time.monotonic() - self.created, 1),
        }


class JobContext:
    """Handed to the work function in its worker thread: report progress, check cancellation,
    and run small callbacks on the event loop. Everything here is safe to call from a thread."""

    def __init__(self, scheduler: JobScheduler, job: Job[Any], attempt: int) -> None:
        self._scheduler = scheduler
        self._job = job
        self.job_id = job.id
        self.attempt = attempt
        self._cancelled = threading.Event()
        self._last_post = 0.0
        self._last_stage: Stage | None = None

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled or this attempt timed out: stop early if you can."""
        return self._cancelled.is_set()

    def abandon(self) -> None:
        self._cancelled.set()

    def report(
        self,
        stage: Stage,
        percent: int | None = None,
        *,
        done: int | None = None,
        total: int | None = None,
        note: str | None = None,
    ) -> None:
        """Report progress; repeated reports of one stage are thinned to one per 0.1 s."""
        now = time.monotonic()
        if stage == self._last_stage and now - self._last_post < REPORT_INTERVAL:
            return
        self._last_stage, self._last_post = stage, now
        self.post(self._scheduler._on_report, self._job, stage, percent, done, total, note)

    def set_extractor(self, name: str) -> None:
        self.post(setattr, self._job, "extractor", name)

    def post(self, func: Callable[..., Any], *args: Any) -> None:
        """Run func(*args) on the event loop, unless this attempt was abandoned by then."""
        self._scheduler._post(self, func, *args)

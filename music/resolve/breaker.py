"""Circuit breakers, one per extractor family (youtube, soundcloud, generic, ...).

When a site keeps failing (it changed and yt-dlp needs an update, or it blocks the bot), every
lookup would otherwise wait for its own timeout and retries. After `threshold` consecutive
failures the breaker opens for `open_for` seconds: lookups on that site fail at once with a
sentence. Then it half-opens: exactly one lookup (the probe) goes through; its success closes
the breaker, its failure opens it again.

Breakers are used from worker threads (acquire before extracting, record the outcome after), so
every method takes a lock. The clock is injectable for tests (monotonic seconds).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import Any

from ..i18n import _, deferred

# Names users recognise; anything else is shown as yt-dlp names it.
DISPLAY_NAMES = {
    "youtube": "YouTube",
    "soundcloud": "SoundCloud",
    "bandcamp": "Bandcamp",
    "vimeo": "Vimeo",
    "twitch": "Twitch",
    "generic": deferred._("direct links and other sites"),
}


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class BreakerOpenError(Exception):
    """Lookups on this site are paused; `sentence` says so and when to try again."""

    transient = False  # retrying within the pause is pointless

    def __init__(self, name: str, retry_in: float, failures: int) -> None:
        self.name = name
        self.retry_in = retry_in
        self.sentence = breaker_sentence(name, retry_in, failures)
        super().__init__(self.sentence)


def display_name(name: str) -> str:
    return _(DISPLAY_NAMES[name]) if name in DISPLAY_NAMES else name


def breaker_sentence(name: str, retry_in: float, failures: int) -> str:
    wait = max(1, round(retry_in))
    return (
        _("Lookups on {name} failed {failures} times in a row, so I've paused them "
        "for a moment; try again in {wait} s.").format(name=display_name(name), failures=failures, wait=wait)
    )


class CircuitBreaker:
    """Closed -> (threshold consecutive failures) -> open -> (open_for s) -> half-open ->
    one probe: success closes, failure reopens."""

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        open_for: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = max(1, threshold)
        self.open_for = open_for
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0  # consecutive
        self._opened_at: float | None = None
        self._last_failures = 0  # what opened it, for the sentence
        # When the probe was let through; a probe whose outcome never comes back (its thread
        # is stuck) is given up after open_for so the breaker can't stay half-open forever.
        self._probe_started: float | None = None
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state_locked(self._clock())

    def _state_locked(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at < self.open_for:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def acquire(self) -> None:
        """Call before a lookup. Raises BreakerOpenError while open, and in half-open state
        for everyone but the single probe."""
        with self._lock:
            now = self._clock()
            state = self._state_locked(now)
            if state is BreakerState.CLOSED:
                return
            if state is BreakerState.HALF_OPEN:
                probe_stale = (
                    self._probe_started is not None and now - self._probe_started >= self.open_for
                )
                if self._probe_started is None or probe_stale:
                    self._probe_started = now
                    return
                retry_in = self.open_for - (now - self._probe_started)
            else:
                assert self._opened_at is not None
                retry_in = self.open_for - (now - self._opened_at)
            raise BreakerOpenError(self.name, retry_in, self._last_failures)

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probe_started = None

    def record_failure(self) -> None:
        with self._lock:
            now = self._clock()
            self._failures += 1
            half_open = self._state_locked(now) is BreakerState.HALF_OPEN
            if half_open or self._failures >= self.threshold:
                if self._opened_at is None or half_open:
                    self.times_opened += 1
                self._opened_at = now
                self._probe_started = None
                self._last_failures = self._failures

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            state = self._state_locked(now)
            retry_in = (
                max(0.0, self.open_for - (now - self._opened_at))
                if state is BreakerState.OPEN and self._opened_at is not None
                else 0.0
            )
            return {
                "state": state.value,
                "consecutive_failures": self._failures,
                "retry_in": round(retry_in, 1),
                "times_opened": self.times_opened,
            }


class BreakerBoard:
    """The breakers by extractor family, created on first use."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        open_for: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.open_for = open_for
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(
                    name, threshold=self.threshold, open_for=self.open_for, clock=self._clock
                )
                self._breakers[name] = breaker
            return breaker

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            breakers = dict(self._breakers)
        return {name: b.snapshot() for name, b in sorted(breakers.items())}

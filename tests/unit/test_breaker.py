"""CircuitBreaker with a fake clock: opens after N consecutive failures, half-opens after T,
lets one probe through, closes on success."""

from __future__ import annotations

import threading

import pytest

from music.resolve.breaker import (
    BreakerBoard,
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
    breaker_sentence,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker("youtube", threshold=3, open_for=30.0, clock=clock)
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.acquire()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    with pytest.raises(BreakerOpenError) as info:
        breaker.acquire()
    assert info.value.sentence == (
        "Lookups on YouTube failed 3 times in a row, so I've paused them for a moment; "
        "try again in 20 s."
    )
    assert info.value.retry_in == pytest.approx(20.0)
    assert breaker.snapshot() == {
        "state": "open",
        "consecutive_failures": 3,
        "retry_in": 20.0,
        "times_opened": 1,
    }


def test_a_success_resets_the_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker("soundcloud", threshold=3, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_exactly_one_probe_through_and_success_closes(clock: FakeClock) -> None:
    breaker = CircuitBreaker("generic", threshold=2, open_for=30.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.acquire()  # the probe
    with pytest.raises(BreakerOpenError, match="direct links and other sites"):
        breaker.acquire()  # everyone else waits for the probe's outcome
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.acquire()
    breaker.acquire()
    assert breaker.snapshot()["consecutive_failures"] == 0


def test_failed_probe_reopens_for_another_period(clock: FakeClock) -> None:
    breaker = CircuitBreaker("youtube", threshold=2, open_for=30.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 31
    breaker.acquire()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.times_opened == 2
    clock.now += 29
    with pytest.raises(BreakerOpenError):
        breaker.acquire()
    clock.now += 1
    breaker.acquire()  # the next probe


def test_a_probe_that_never_reports_is_given_up_after_the_period(clock: FakeClock) -> None:
    breaker = CircuitBreaker("youtube", threshold=1, open_for=30.0, clock=clock)
    breaker.record_failure()
    clock.now += 30
    breaker.acquire()  # this probe's thread hangs and never records anything
    clock.now += 29
    with pytest.raises(BreakerOpenError):
        breaker.acquire()
    clock.now += 1
    breaker.acquire()  # a new probe


def test_concurrent_acquires_in_half_open_admit_one(clock: FakeClock) -> None:
    breaker = CircuitBreaker("youtube", threshold=1, open_for=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5
    admitted: list[int] = []
    barrier = threading.Barrier(8)

    def try_acquire(i: int) -> None:
        barrier.wait()
        try:
            breaker.acquire()
            admitted.append(i)
        except BreakerOpenError:
            pass

    threads = [threading.Thread(target=try_acquire, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1


def test_board_keeps_one_breaker_per_family(clock: FakeClock) -> None:
    board = BreakerBoard(threshold=1, open_for=10.0, clock=clock)
    assert board.get("youtube") is board.get("youtube")
    board.get("youtube").record_failure()
    board.get("soundcloud").record_success()
    snap = board.snapshot()
    assert snap["youtube"]["state"] == "open"
    assert snap["soundcloud"]["state"] == "closed"


def test_sentence_rounds_up_to_at_least_one_second() -> None:
    assert breaker_sentence("x", 0.2, 4).endswith("try again in 1 s.")
    assert "Lookups on x failed 4 times" in breaker_sentence("x", 0.2, 4)

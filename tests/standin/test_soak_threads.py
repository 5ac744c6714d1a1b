"""The soak's thread verdict (benchmarks/soak.py): the loop's default executor starts workers on
demand and keeps them, up to its max_workers: that is not growth; a thread of any other kind
that stays (the floor rises) is."""

from __future__ import annotations

from typing import Any

from benchmarks.soak import growth_after_first_minute, thread_verdict


def samples(threads: list[int], executor: list[int], max_workers: int = 6) -> list[dict[str, Any]]:
    return [{"elapsed": 10.0 * (i + 1), "threads": t, "executor_threads": e,
             "executor_max_workers": max_workers}
            for i, (t, e) in enumerate(zip(threads, executor, strict=True))]


def verdict(chosen: list[dict[str, Any]]) -> str:
    return thread_verdict(chosen, growth_after_first_minute(chosen, "threads"))


def test_the_executor_growing_to_its_max_workers_is_no_growth():
    executor = [1] * 8 + [3] * 4 + [6] * 8
    others = [100, 101, 100, 102] * 5  # readers come and go around track changes
    chosen = samples([o + e for o, e in zip(others, executor, strict=True)], executor)
    assert verdict(chosen).startswith("threads: met")


def test_a_thread_that_stays_is_growth_even_with_the_executor_below_its_size():
    executor = [1] * 20
    others = [100] * 10 + [101] * 10  # one more thread for good
    assert verdict(samples([o + e for o, e in zip(others, executor, strict=True)], executor)
                   ).startswith("threads: MISSED")


def test_more_executor_workers_than_its_max_workers_is_growth():
    executor = [1] * 10 + [7] * 10
    assert verdict(samples([100 + e for e in executor], executor)).startswith("threads: MISSED")

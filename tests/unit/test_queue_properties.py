"""Property tests: no sequence of queue operations loses, duplicates or invents a track."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from music.engine.queue import QueueError, QueueModel, RepeatMode
from music.engine.track import Track

HISTORY_LIMIT = 8

index = st.integers(min_value=-1, max_value=12)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 4), st.booleans()),
        st.tuples(st.just("readd_history"), index),
        st.tuples(st.just("remove"), index),
        st.tuples(st.just("move"), index, index),
        st.tuples(st.just("clear")),
        st.tuples(st.just("shuffle_upcoming")),
        st.tuples(st.just("advance"), st.booleans()),
        st.tuples(st.just("skip_to"), index),
        st.tuples(st.just("previous")),
        st.tuples(st.just("repeat"), st.sampled_from(list(RepeatMode))),
        st.tuples(st.just("shuffle"), st.booleans()),
    ),
    max_size=60,
)


def live_songs(queue: QueueModel) -> Counter[str]:
    """Songs (by query) in current + upcoming: what is still going to play."""
    items = ([queue.current] if queue.current else []) + queue.upcoming
    return Counter(t.query for t in items)


def check_invariants(queue: QueueModel, expected: Counter[str]) -> None:
    ids = [
        t.id for t in ([queue.current] if queue.current else []) + queue.upcoming + queue.history
    ]
    assert len(ids) == len(set(ids)), "a track id is duplicated"
    assert live_songs(queue) == expected, "a track appeared or vanished"
    assert len(queue.history) <= HISTORY_LIMIT
    again = QueueModel.from_dict(queue.to_dict(), history_limit=HISTORY_LIMIT)
    assert again.to_dict() == queue.to_dict()


def apply(
    queue: QueueModel, op: tuple[Any, ...], expected: Counter[str], counter: list[int]
) -> None:
    """Apply one operation and update `expected` by the rule for that operation alone."""
    name = op[0]
    repeat_queue = queue.repeat is RepeatMode.QUEUE
    if name == "add":
        new = []
        for _ in range(op[1]):
            counter[0] += 1
            new.append(Track(query=f"song-{counter[0]}", title=str(counter[0])))
        before = len(queue.upcoming)
        position = queue.add(new, front=op[2])
        assert position == (1 if op[2] else before + 1)
        expected.update(t.query for t in new)
    elif name == "readd_history":
        if queue.history:
            track = queue.history[op[1] % len(queue.history)]
            queue.add(track)  # same id as a history entry: must come back as a new entry
            expected[track.query] += 1
    elif name == "remove":
        try:
            at = queue.upcoming[op[1] - 1] if 1 <= op[1] <= len(queue) else None
            removed = queue.remove(op[1])
            assert removed is at
            expected[removed.query] -= 1
        except QueueError:
            assert not 1 <= op[1] <= len(queue)
    elif name == "move":
        try:
            queue.move(op[1], op[2])
        except QueueError:
            assert not (1 <= op[1] <= len(queue) and 1 <= op[2] <= len(queue))
    elif name == "clear":
        for track in queue.upcoming:
            expected[track.query] -= 1
        assert queue.clear() >= 0 and queue.upcoming == []
    elif name == "shuffle_upcoming":
        queue.shuffle_upcoming()
    elif name == "advance":
        skipped = op[1]
        old = queue.current
        peeked = queue.peek_next()
        new = queue.advance(skipped=skipped)
        if not skipped:
            assert (new.id if new else None) == (peeked.id if peeked else None)
        replays = old is not None and queue.repeat is RepeatMode.TRACK and not skipped
        if old is not None and not replays:
            assert queue.history[-1].query == old.query
            if not repeat_queue:
                expected[old.query] -= 1  # consumed: played to history
    elif name == "skip_to":
        n = op[1]
        if 1 <= n <= len(queue):
            gone = ([queue.current] if queue.current else []) + queue.upcoming[: n - 1]
            target = queue.upcoming[n - 1]
            assert queue.skip_to(n) is target
            if not repeat_queue:
                for track in gone:
                    expected[track.query] -= 1
        else:
            try:
                queue.skip_to(n)
                raise AssertionError("skip_to accepted a bad position")
            except QueueError:
                pass
    elif name == "previous":
        last = queue.history[-1] if queue.history else None
        got = queue.previous()
        if last is None:
            assert got is None
        else:
            assert got is not None and got.query == last.query
            expected[last.query] += 1
    elif name == "repeat":
        queue.repeat = op[1]
    elif name == "shuffle":
        queue.shuffle = op[1]
    assert all(count >= 0 for count in expected.values()), "expected a track that was never queued"
    for song in [song for song, count in expected.items() if count == 0]:
        del expected[song]


@settings(max_examples=300, deadline=None)
@given(ops=operations, seed=st.integers(0, 2**32 - 1))
def test_operations_never_lose_or_duplicate_tracks(ops: list[tuple[Any, ...]], seed: int) -> None:
    queue = QueueModel(rng=random.Random(seed), history_limit=HISTORY_LIMIT)
    expected: Counter[str] = Counter()
    counter = [0]
    for op in ops:
        apply(queue, op, expected, counter)
        check_invariants(queue, expected)


@settings(max_examples=200, deadline=None)
@given(ops=operations, seed=st.integers(0, 2**32 - 1))
def test_restored_queue_behaves_like_the_original(ops: list[tuple[Any, ...]], seed: int) -> None:
    """After a save/restore (a bot restart) the queue plays on identically."""
    queue = QueueModel(rng=random.Random(seed), history_limit=HISTORY_LIMIT)
    expected: Counter[str] = Counter()
    counter = [0]
    for op in ops:
        apply(queue, op, expected, counter)
    restored = QueueModel.from_dict(
        queue.to_dict(), rng=random.Random(seed), history_limit=HISTORY_LIMIT
    )
    queue._rng = random.Random(seed)  # same future draws for both
    for _ in range(10):
        a, b = queue.advance(), restored.advance()
        assert (a.to_dict() if a else None) == (b.to_dict() if b else None)

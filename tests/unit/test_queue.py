"""QueueModel behaviour as users see it: positions, repeat, shuffle, history, persistence."""

from __future__ import annotations

import random

import pytest

from music.engine.queue import QueueError, QueueModel, RepeatMode
from music.engine.track import Track


def tracks(*names: str) -> list[Track]:
    return [Track(query=f"q-{n}", title=n) for n in names]


def titles(items: list[Track]) -> list[str]:
    return [t.title for t in items]


def queue_of(*names: str, rng: random.Random | None = None) -> QueueModel:
    queue = QueueModel(rng=rng or random.Random(0))
    queue.add(tracks(*names))
    return queue


def test_add_returns_position_of_first_added() -> None:
    queue = QueueModel()
    assert queue.add(tracks("a", "b")) == 1
    assert queue.add(tracks("c")) == 3
    assert queue.add(tracks("z"), front=True) == 1
    assert titles(queue.upcoming) == ["z", "a", "b", "c"]
    assert len(queue) == 4


def test_add_accepts_a_single_track() -> None:
    queue = QueueModel()
    assert queue.add(Track(query="q", title="only")) == 1
    assert titles(queue.upcoming) == ["only"]


def test_adding_the_same_entry_twice_gives_a_second_id() -> None:
    queue = QueueModel()
    [song] = tracks("a")
    queue.add(song)
    queue.add(song)
    assert titles(queue.upcoming) == ["a", "a"]
    assert queue.upcoming[0].id == song.id
    assert queue.upcoming[1].id != song.id


def test_advance_plays_in_order_and_fills_history() -> None:
    queue = queue_of("a", "b")
    assert queue.advance().title == "a"
    assert queue.advance().title == "b"
    assert queue.advance() is None
    assert queue.current is None
    assert titles(queue.history) == ["a", "b"]


def test_remove_and_move_use_one_based_positions() -> None:
    queue = queue_of("a", "b", "c", "d")
    assert queue.remove(2).title == "b"
    assert titles(queue.upcoming) == ["a", "c", "d"]
    assert queue.move(3, 1).title == "d"
    assert titles(queue.upcoming) == ["d", "a", "c"]
    assert queue.move(1, 3).title == "d"
    assert titles(queue.upcoming) == ["a", "c", "d"]


@pytest.mark.parametrize("bad", [0, -1, 4, 100])
def test_bad_positions_raise_queue_error_with_a_sentence(bad: int) -> None:
    queue = queue_of("a", "b", "c")
    with pytest.raises(QueueError, match="pick a number from 1 to 3"):
        queue.remove(bad)
    with pytest.raises(QueueError):
        queue.move(bad, 1)
    with pytest.raises(QueueError):
        queue.move(1, bad)
    with pytest.raises(QueueError):
        queue.skip_to(bad)
    assert titles(queue.upcoming) == ["a", "b", "c"]


def test_empty_queue_says_so() -> None:
    with pytest.raises(QueueError) as info:
        QueueModel().remove(1)
    assert info.value.sentence == "The queue is empty."


def test_clear_keeps_current_and_counts_removed() -> None:
    queue = queue_of("a", "b", "c")
    queue.advance()
    assert queue.clear() == 2
    assert queue.current is not None and queue.current.title == "a"
    assert queue.upcoming == []


def test_repeat_track_replays_same_entry_unless_skipped() -> None:
    queue = queue_of("a", "b")
    first = queue.advance()
    queue.repeat = RepeatMode.TRACK
    assert queue.peek_next() is first
    assert queue.advance() is first
    assert queue.advance() is first
    assert queue.history == []
    assert queue.advance(skipped=True).title == "b"
    assert titles(queue.history) == ["a"]


def test_repeat_queue_reappends_finished_track_with_same_id() -> None:
    queue = queue_of("a", "b")
    queue.repeat = RepeatMode.QUEUE
    a = queue.advance()
    assert queue.advance().title == "b"
    assert queue.upcoming == [a]  # same entry, so a prefetch made for it stays valid
    assert queue.advance() is a
    assert titles(queue.history) == ["a", "b"]
    assert queue.history[0].id != a.id  # history holds a copy; ids stay unique


def test_repeat_queue_with_a_single_track_loops_it() -> None:
    queue = queue_of("a")
    queue.repeat = RepeatMode.QUEUE
    a = queue.advance()
    assert queue.peek_next() is a
    assert queue.advance() is a
    assert queue.advance(skipped=True) is a


def test_shuffle_picks_a_random_upcoming_track_and_peek_agrees() -> None:
    names = [str(i) for i in range(20)]
    queue = queue_of(*names, rng=random.Random(1))
    queue.shuffle = True
    played = []
    while True:
        expected = queue.peek_next()
        got = queue.advance()
        assert got is expected
        if got is None:
            break
        played.append(got.title)
    assert sorted(played) == sorted(names)  # every track once
    assert played != names  # and not in queue order (seeded, so deterministic)


def test_shuffle_pick_is_redrawn_when_peeked_track_is_removed() -> None:
    queue = queue_of("a", "b", "c", rng=random.Random(3))
    queue.shuffle = True
    peeked = queue.peek_next()
    assert peeked is not None
    queue.remove(queue.upcoming.index(peeked) + 1)
    nxt = queue.advance()
    assert nxt is not None and nxt.id != peeked.id


def test_shuffle_upcoming_permutes_in_place() -> None:
    names = [str(i) for i in range(30)]
    queue = queue_of(*names)
    queue.shuffle_upcoming(random.Random(5))
    assert sorted(titles(queue.upcoming)) == sorted(names)
    assert titles(queue.upcoming) != names


def test_skip_to_sends_skipped_tracks_to_history() -> None:
    queue = queue_of("a", "b", "c", "d")
    queue.advance()
    assert queue.skip_to(3).title == "d"
    assert queue.current.title == "d"
    assert titles(queue.history) == ["a", "b", "c"]
    assert queue.upcoming == []


def test_skip_to_with_repeat_queue_keeps_skipped_tracks_in_rotation() -> None:
    queue = queue_of("a", "b", "c")
    queue.repeat = RepeatMode.QUEUE
    queue.advance()
    queue.skip_to(2)
    assert queue.current.title == "c"
    assert titles(queue.upcoming) == ["a", "b"]


def test_previous_goes_back_and_returns_current_to_front() -> None:
    queue = queue_of("a", "b", "c")
    a = queue.advance()
    queue.advance()
    assert queue.previous() is a
    assert queue.current is a
    assert titles(queue.upcoming) == ["b", "c"]
    assert queue.history == []
    assert queue.previous() is None  # nothing before: nothing changes
    assert queue.current is a


def test_history_is_capped_keeping_newest() -> None:
    queue = QueueModel(history_limit=5)
    queue.add(tracks(*[str(i) for i in range(12)]))
    for _ in range(12):
        queue.advance()
    queue.advance()
    assert titles(queue.history) == ["7", "8", "9", "10", "11"]


def test_find_and_replace_by_id() -> None:
    queue = queue_of("a", "b")
    queue.advance()
    b = queue.upcoming[0]
    fresh = b.copy(stream_url="https://cdn/new")
    assert queue.find(b.id) is b
    assert queue.replace(fresh)
    assert queue.upcoming[0].stream_url == "https://cdn/new"
    assert not queue.replace(Track(query="x", title="x"))
    assert queue.find("missing") is None


def test_upcoming_duration_is_unknown_with_a_live_track() -> None:
    queue = QueueModel()
    queue.add([Track(query="a", title="a", duration=60), Track(query="b", title="b", duration=30)])
    assert queue.upcoming_duration() == 90
    queue.add(Track(query="c", title="c", is_live=True))
    assert queue.upcoming_duration() is None


def test_to_dict_from_dict_round_trip_with_all_state() -> None:
    queue = queue_of("a", "b", "c", "d")
    queue.advance()
    queue.advance()
    queue.repeat = RepeatMode.QUEUE
    queue.shuffle = True
    queue.peek_next()  # a pending shuffle pick is part of the state
    data = queue.to_dict()
    again = QueueModel.from_dict(data)
    assert again.to_dict() == data
    assert again.repeat is RepeatMode.QUEUE and again.shuffle
    assert again.peek_next().id == queue.peek_next().id


def test_from_dict_tolerates_missing_and_bad_values() -> None:
    queue = QueueModel.from_dict({"repeat": "sideways"})
    assert queue.repeat is RepeatMode.OFF
    assert queue.current is None and queue.upcoming == [] and not queue.shuffle


def test_add_at_a_position_keeps_order_and_clamps() -> None:
    from music.engine.queue import QueueModel
    from music.engine.track import Track

    queue = QueueModel()
    queue.add([Track(query=str(i), title=str(i)) for i in range(3)])
    assert queue.add([Track(query="x", title="x"), Track(query="y", title="y")], at=2) == 2
    assert [t.title for t in queue.upcoming] == ["0", "x", "y", "1", "2"]
    assert queue.add(Track(query="z", title="z"), at=99) == 6
    assert queue.add(Track(query="w", title="w"), at=0) == 1
    assert [t.title for t in queue.upcoming] == ["w", "0", "x", "y", "1", "2", "z"]


def test_fair_position_interleaves_requesters_round_robin() -> None:
    from music.engine.queue import QueueModel
    from music.engine.track import Track

    queue = QueueModel()

    def add_fair(who: int, title: str) -> None:
        queue.add(Track(query=title, title=title, requester_id=who), at=queue.fair_position(who))

    for i in range(4):
        add_fair(1, f"a{i}")
    add_fair(2, "b0")
    add_fair(2, "b1")
    add_fair(3, "c0")
    add_fair(1, "a4")
    assert [t.title for t in queue.upcoming] == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]
    assert queue.count_by(1) == 5 and queue.count_by(2) == 2 and queue.count_by(4) == 0

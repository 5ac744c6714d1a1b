"""QueueModel: what plays now, what comes next, what played before. Pure data, no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Any

from music.engine.track import Track

from ..i18n import _

HISTORY_LIMIT = 50


class RepeatMode(str, Enum):
    OFF = "off"
    TRACK = "track"
    QUEUE = "queue"


class QueueError(Exception):
    """A queue operation the user asked for that can't be done; `sentence` is the reply."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


class QueueModel:
    """A guild's queue. Positions are 1-based into `upcoming`, as users type them.

    Invariant: track ids are unique across current, upcoming and history, so any id names
    exactly one entry (events from the audio thread refer to tracks by id)."""

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        history_limit: int = HISTORY_LIMIT,
    ) -> None:
        self.current: Track | None = None
        self.upcoming: list[Track] = []
        self.history: list[Track] = []
        self.repeat: RepeatMode = RepeatMode.OFF
        self.shuffle: bool = False
        self.history_limit = history_limit
        self._rng = rng or random.Random()
        # With shuffle on, the next pick is drawn once and remembered so that peek_next()
        # (used to prefetch) and advance() agree.
        self._shuffle_next_id: str | None = None

    # ---- inspection -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.upcoming)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.upcoming)

    def find(self, track_id: str) -> Track | None:
        """The entry with this id in current or upcoming, else None."""
        if self.current is not None and self.current.id == track_id:
            return self.current
        return next((t for t in self.upcoming if t.id == track_id), None)

    def upcoming_duration(self) -> float | None:
        """Total seconds of upcoming tracks, None if any is live or unknown."""
        total = 0.0
        for track in self.upcoming:
            if track.duration is None or track.is_live:
                return None
            total += track.duration
        return total

    # ---- editing ----------------------------------------------------------------------

    def _ids(self) -> set[str]:
        ids = {t.id for t in self.upcoming} | {t.id for t in self.history}
        if self.current is not None:
            ids.add(self.current.id)
        return ids

    def add(
        self, tracks: Track | Iterable[Track], *, front: bool = False, at: int | None = None
    ) -> int:
        """Queue tracks at the end, the front, or before 1-based position `at` (clamped);
        returns the 1-based position of the first.

        A track whose id is already in the queue or history is added as a copy with a new id."""
        batch = [tracks] if isinstance(tracks, Track) else list(tracks)
        seen = self._ids()
        fresh: list[Track] = []
        for track in batch:
            if track.id in seen:
                track = track.with_new_id()
            seen.add(track.id)
            fresh.append(track)
        if front:
            at = 1
        if at is not None:
            index = min(max(at, 1), len(self.upcoming) + 1) - 1
            self.upcoming[index:index] = fresh
            return index + 1
        position = len(self.upcoming) + 1
        self.upcoming.extend(fresh)
        return position

    def _check_index(self, n: int, what: str = "track") -> int:
        if not self.upcoming:
            raise QueueError(_("The queue is empty."))
        if not 1 <= n <= len(self.upcoming):
            count = len(self.upcoming)
            raise QueueError(
                (_("There's no {what} {n} in the queue: pick a number from 1 to {count} "
                "({count} track queued).") if count == 1 else _("There's no {what} {n} in the queue: pick a number from 1 to {count} "
                "({count} tracks queued).")).format(what=what, n=n, count=count)
            )
        return n - 1

    def fair_position(self, requester_id: int, *, head_is_starting: bool = False) -> int:
        """The 1-based position that keeps the queue round-robin between requesters.

        A requester's k-th upcoming track belongs to round k; a new track joins the end of the
        round after the requester's last one, so one member's twenty tracks never hold back
        another member's first. `head_is_starting`: the first upcoming track is about to
        become the current one (an idle player's start is on its way), so it takes no turn."""
        first = 1 if head_is_starting and self.upcoming else 0
        taking_turns = self.upcoming[first:]
        rounds: dict[int, int] = {}
        new_round = sum(1 for t in taking_turns if t.requester_id == requester_id)
        position = first
        for index, track in enumerate(taking_turns, start=first):
            track_round = rounds.get(track.requester_id, 0)
            rounds[track.requester_id] = track_round + 1
            if track_round <= new_round:
                position = index + 1
        return position + 1

    def count_by(self, requester_id: int, *, head_is_starting: bool = False) -> int:
        """How many upcoming tracks this member queued (`head_is_starting`: not counting the
        first, about to become the current one; see fair_position)."""
        waiting = self.upcoming[1:] if head_is_starting else self.upcoming
        return sum(1 for t in waiting if t.requester_id == requester_id)

    def remove(self, n: int) -> Track:
        """Remove and return the track at position n."""
        return self.upcoming.pop(self._check_index(n))

    def remove_range(self, first: int, last: int) -> list[Track]:
        """Remove and return positions `first` to `last` (both included, in either order)."""
        first, last = sorted((first, last))
        start = self._check_index(first)
        end = self._check_index(last)
        removed = self.upcoming[start : end + 1]
        del self.upcoming[start : end + 1]
        return removed

    def remove_where(self, drop: Callable[[Track], bool]) -> list[Track]:
        """Remove every upcoming track `drop` says yes to (one pass); returns them in order."""
        kept: list[Track] = []
        removed: list[Track] = []
        for track in self.upcoming:
            (removed if drop(track) else kept).append(track)
        if removed:
            self.upcoming[:] = kept
        return removed

    def move(self, src: int, dst: int) -> Track:
        """Move the track at position src so that it ends up at position dst."""
        i = self._check_index(src)
        j = self._check_index(dst, "position")
        track = self.upcoming.pop(i)
        self.upcoming.insert(j, track)
        return track

    def clear(self) -> int:
        """Empty the upcoming list (the current track keeps playing); returns how many went."""
        count = len(self.upcoming)
        self.upcoming.clear()
        self._shuffle_next_id = None
        return count

    def shuffle_upcoming(self, rng: random.Random | None = None) -> None:
        """Shuffle the upcoming list once, in place."""
        (rng or self._rng).shuffle(self.upcoming)
        self._shuffle_next_id = None

    def replace(self, track: Track) -> bool:
        """Swap in `track` for the entry with the same id (e.g. after a stream refresh)."""
        if self.current is not None and self.current.id == track.id:
            self.current = track
            return True
        for i, existing in enumerate(self.upcoming):
            if existing.id == track.id:
                self.upcoming[i] = track
                return True
        return False

    # ---- moving forward and back ------------------------------------------------------

    def _push_history(self, track: Track) -> None:
        self.history.append(track)
        del self.history[: max(0, len(self.history) - self.history_limit)]

    def _retire(self, track: Track) -> None:
        """A track that stopped being current: into history, and with repeat QUEUE back to
        the end of upcoming. The re-queued entry keeps its id (so a prefetch of it stays
        valid); history gets a copy with a new id to keep ids unique."""
        if self.repeat is RepeatMode.QUEUE:
            self.upcoming.append(track)
            self._push_history(track.with_new_id())
        else:
            self._push_history(track)

    def _next_index(self) -> int | None:
        """Index in upcoming of the track that would play next (draws the shuffle pick)."""
        if not self.upcoming:
            return None
        if not self.shuffle:
            return 0
        ids = [t.id for t in self.upcoming]
        if self._shuffle_next_id not in ids:
            self._shuffle_next_id = ids[self._rng.randrange(len(ids))]
        return ids.index(self._shuffle_next_id)

    def peek_next(self) -> Track | None:
        """What advance() would return (without skipping), without changing the queue."""
        if self.current is not None:
            if self.repeat is RepeatMode.TRACK:
                return self.current
            if self.repeat is RepeatMode.QUEUE and not self.upcoming:
                return self.current
        index = self._next_index()
        return None if index is None else self.upcoming[index]

    def advance(self, *, skipped: bool = False) -> Track | None:
        """Finish the current track and return the new current one (None: queue ended).

        Repeat TRACK keeps the same entry unless the user skipped."""
        if self.current is not None:
            if self.repeat is RepeatMode.TRACK and not skipped:
                return self.current
            self._retire(self.current)
            self.current = None
        index = self._next_index()
        if index is not None:
            self.current = self.upcoming.pop(index)
        self._shuffle_next_id = None
        return self.current

    def skip_to(self, n: int) -> Track:
        """Make the track at position n current; the ones before it count as played."""
        index = self._check_index(n)
        skipped = self.upcoming[:index]
        target = self.upcoming[index]
        del self.upcoming[: index + 1]
        for track in ([self.current] if self.current is not None else []) + skipped:
            self._retire(track)
        self.current = target
        self._shuffle_next_id = None
        return target

    def previous(self) -> Track | None:
        """Go back to the last played track; the current one goes to the front of upcoming.

        Returns None (and changes nothing) when there is no history."""
        if not self.history:
            return None
        track = self.history.pop()
        if self.current is not None:
            self.upcoming.insert(0, self.current)
        if track.id in self._ids():  # only possible with hand-edited saved data
            track = track.with_new_id()
        self.current = track
        self._shuffle_next_id = None
        return track

    # ---- persistence ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state for Config."""
        return {
            "current": self.current.to_dict() if self.current is not None else None,
            "upcoming": [t.to_dict() for t in self.upcoming],
            "history": [t.to_dict() for t in self.history],
            "repeat": self.repeat.value,
            "shuffle": self.shuffle,
            "shuffle_next": self._shuffle_next_id,
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        *,
        rng: random.Random | None = None,
        history_limit: int = HISTORY_LIMIT,
    ) -> QueueModel:
        """Rebuild from to_dict() output; missing keys get defaults, a bad repeat value is OFF."""
        queue = cls(rng=rng, history_limit=history_limit)
        current = data.get("current")
        queue.current = Track.from_dict(current) if current else None
        queue.upcoming = [Track.from_dict(t) for t in data.get("upcoming") or []]
        queue.history = [Track.from_dict(t) for t in data.get("history") or []][-history_limit:]
        try:
            queue.repeat = RepeatMode(data.get("repeat", "off"))
        except ValueError:
            queue.repeat = RepeatMode.OFF
        queue.shuffle = bool(data.get("shuffle", False))
        queue._shuffle_next_id = data.get("shuffle_next")
        return queue

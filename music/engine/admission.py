"""The server's queue limits, applied the same way for chat commands and the RPC API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .queue import QueueModel
from .timefmt import format_duration
from .track import Track


class QueueLimits(Protocol):
    """What admission reads from a guild's settings (store.GuildSettings has these)."""

    max_length: int  # seconds; 0 = no limit
    max_queue: int
    max_per_member: int  # 0 = no limit
    fair_queue: bool


class AdmissionError(Exception):
    """Nothing can be queued; `sentence` says why."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


@dataclass
class Admission:
    tracks: list[Track]  # what may be queued, in order
    at: int | None  # the 1-based position to insert at (None: the end, or the front)
    notes: list[str] = field(default_factory=list)  # what was left out, in sentences


def admit(
    queue: QueueModel,
    tracks: list[Track],
    limits: QueueLimits,
    *,
    requester_id: int,
    privileged: bool,
    front: bool,
    describe: Callable[[Track], str] = lambda t: t.title,
    requester_is_you: bool = True,
) -> Admission:
    """Apply the length, queue and per-member limits and the fair-queue position.

    Raises AdmissionError when nothing at all may be queued; otherwise the tracks that fit,
    with a note for each kind of track left out. `privileged` (DJs, mods) skips the
    per-member limit."""
    notes: list[str] = []
    if limits.max_length:
        too_long = [t for t in tracks if t.duration and t.duration > limits.max_length]
        if too_long:
            tracks = [t for t in tracks if t not in too_long]
            limit = format_duration(limits.max_length)
            if not tracks:
                raise AdmissionError(f"{describe(too_long[0])} is longer than this server's limit of {limit}.")
            notes.append(f"{len(too_long)} track(s) were longer than {limit} and were left out.")
    room = limits.max_queue - len(queue)
    if room <= 0:
        raise AdmissionError(f"The queue is full ({limits.max_queue} tracks).")
    if limits.max_per_member and not privileged:
        mine = queue.count_by(requester_id)
        member_room = limits.max_per_member - mine
        if member_room <= 0:
            who = "You already have" if requester_is_you else "That member already has"
            raise AdmissionError(f"{who} {mine} track(s) queued, this server's limit per member.")
        if len(tracks) > member_room:
            notes.append(
                f"{len(tracks) - member_room} track(s) were left out by the per-member limit of {limits.max_per_member}."
            )
            tracks = tracks[:member_room]
    if len(tracks) > room:
        notes.append(f"The queue is full: {len(tracks) - room} track(s) were left out.")
        tracks = tracks[:room]
    if not tracks:
        raise AdmissionError("I found nothing to play there.")
    at = queue.fair_position(requester_id) if limits.fair_queue and not front else None
    return Admission(tracks, at, notes)


def admit_batch(
    queue: QueueModel,
    batch: list[Track],
    limits: QueueLimits,
    *,
    requester_id: int,
    privileged: bool,
) -> tuple[list[Track], int]:
    """A later batch of a playlist that is still loading: the length, queue and per-member
    limits, quietly (the first batch was admitted with `admit`, which said why).
    Returns (the tracks that fit, how many were left out)."""
    usable = [t for t in batch if not (limits.max_length and t.duration and t.duration > limits.max_length)]
    room = limits.max_queue - len(queue)
    if limits.max_per_member and not privileged:
        room = min(room, limits.max_per_member - queue.count_by(requester_id))
    usable = usable[: max(0, room)]
    return usable, len(batch) - len(usable)

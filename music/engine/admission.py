"""The server's queue limits and its block and allow lists, applied the same way to every
entry of every path: chat commands, playlists as they expand, saved playlists, autoplay and the
RPC API (the control layer admits everything it queues here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..i18n import _
from .content_rules import ContentRules
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


class AllRefused(AdmissionError):
    """The block and allow lists refused every entry (`sentence` names the rules): the rest of
    a playlist may still play, unlike a full queue or a member at their limit."""


@dataclass
class Admission:
    tracks: list[Track]  # what may be queued, in order
    at: int | None  # the 1-based position to insert at (None: the end, or the front)
    notes: list[str] = field(default_factory=list)  # what was left out, in sentences


# A request's refused entries are named one sentence each up to this many; the rest are counted.
BLOCKED_SENTENCES = 3


def screen(
    tracks: list[Track], rules: ContentRules | None, describe: Callable[[Track], str]
) -> tuple[list[Track], list[str]]:
    """The entries the block and allow lists let through, in order, and for each one they
    refused a sentence saying which rule decided."""
    if rules is None or rules.empty:
        return tracks, []
    allowed: list[Track] = []
    refusals: list[str] = []
    for track in tracks:
        reason = rules.refusal(track)
        if reason is None:
            allowed.append(track)
        else:
            refusals.append(_("{track} was skipped: {reason}.").format(track=describe(track), reason=reason))
    return allowed, refusals


def summarise_refusals(refusals: list[str]) -> list[str]:
    """The first BLOCKED_SENTENCES refusals, and how many more there were."""
    if len(refusals) <= BLOCKED_SENTENCES:
        return list(refusals)
    more = len(refusals) - BLOCKED_SENTENCES
    return refusals[:BLOCKED_SENTENCES] + [
        (_("{more} more entry was skipped by the block and allow lists.") if more == 1 else _("{more} more entries were skipped by the block and allow lists.")).format(more=more)
    ]


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
    rules: ContentRules | None = None,
    head_is_starting: bool = False,
) -> Admission:
    """Apply the block and allow lists, the length, queue and per-member limits and the
    fair-queue position (`head_is_starting`: see QueueModel.fair_position).

    Raises AdmissionError when nothing at all may be queued; otherwise the tracks that fit,
    with a note for each kind of track left out. `privileged` (DJs, mods) skips the
    per-member limit; nobody skips the block and allow lists."""
    tracks, refusals = screen(tracks, rules, describe)
    notes = summarise_refusals(refusals)
    if not tracks and notes:
        raise AllRefused(" ".join(notes))
    if limits.max_length:
        too_long = [t for t in tracks if t.duration and t.duration > limits.max_length]
        if too_long:
            tracks = [t for t in tracks if t not in too_long]
            limit = format_duration(limits.max_length)
            if not tracks:
                raise AdmissionError(_("{too_long} is longer than this server's limit of {limit}.").format(too_long=describe(too_long[0]), limit=limit))
            notes.append(_("{too_long_count} track(s) were longer than {limit} and were left out.").format(too_long_count=len(too_long), limit=limit))
    room = limits.max_queue - len(queue)
    if room <= 0:
        raise AdmissionError(_("The queue is full ({max_queue} tracks).").format(max_queue=limits.max_queue))
    if limits.max_per_member and not privileged:
        mine = queue.count_by(requester_id, head_is_starting=head_is_starting)
        member_room = limits.max_per_member - mine
        if member_room <= 0:
            who = _("You already have") if requester_is_you else _("That member already has")
            raise AdmissionError(_("{who} {mine} track(s) queued, this server's limit per member.").format(who=who, mine=mine))
        if len(tracks) > member_room:
            notes.append(
                _("{left_out} track(s) were left out by the per-member limit of {max_per_member}.").format(left_out=len(tracks) - member_room, max_per_member=limits.max_per_member)
            )
            tracks = tracks[:member_room]
    if len(tracks) > room:
        notes.append(_("The queue is full: {left_out} track(s) were left out.").format(left_out=len(tracks) - room))
        tracks = tracks[:room]
    if not tracks:
        raise AdmissionError(_("I found nothing to play there."))
    at = queue.fair_position(requester_id, head_is_starting=head_is_starting) if limits.fair_queue and not front else None
    return Admission(tracks, at, notes)


def admit_batch(
    queue: QueueModel,
    batch: list[Track],
    limits: QueueLimits,
    *,
    requester_id: int,
    privileged: bool,
    rules: ContentRules | None = None,
    describe: Callable[[Track], str] = lambda t: t.title,
    head_is_starting: bool = False,
) -> tuple[list[Track], int, list[str]]:
    """A later batch of a playlist that is still loading: the block and allow lists (a sentence
    for each entry they refuse: `summarise_refusals` them), then the length, queue and per-member limits, quietly (the
    first batch was admitted with `admit`, which said why).
    Returns (the tracks that fit, how many the limits left out, the block and allow sentences)."""
    screened, blocked = screen(batch, rules, describe)
    usable = [t for t in screened if not (limits.max_length and t.duration and t.duration > limits.max_length)]
    room = limits.max_queue - len(queue)
    if limits.max_per_member and not privileged:
        room = min(room, limits.max_per_member - queue.count_by(requester_id, head_is_starting=head_is_starting))
    usable = usable[: max(0, room)]
    return usable, len(screened) - len(usable), blocked

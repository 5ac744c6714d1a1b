"""Lateness of received packets against each guild's own 20 ms schedule.

Inter-arrival intervals pooled over guilds hide two things: a packet that is late and the next one
that makes up for it look like one long and one short interval, and a sender that catches up by
sending packets early looks like short intervals only. Here each guild's packets are placed on
the schedule they were sent for: packet k of the window (counted by RTP sequence number, which
counts packets sent) belongs at ``anchor + k * 20 ms``. The anchor is the median of
``arrival_k - k * 20 ms``, so the typical packet is on time, a late one has a positive lateness
and an early one (sent ahead of its slot: catch-up sending) a negative one.

A sender that drops a frame instead of bursting after a late tick (ours does, discord.py's
AudioPlayer does not) shifts its whole schedule by 20 ms: RTP timestamps count packets, so every
later packet is 20 ms behind the first ones for good, and against one fixed anchor half the window
would look late (or early). A listener's jitter buffer re-syncs after such a step, so each guild is
also measured against a re-anchored schedule: the anchor is a running median over
``REANCHOR_PACKETS`` packets, which follows a lasting step at once but not a burst of a few late or
early packets. ``shift_frames`` says how far the anchor moved (frames dropped, or made up).

Pure functions over arrays, so the tests can feed synthetic arrivals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FRAME_SECONDS = 0.020
#: a packet this late or more is what the 'late' target counts (two frames: a jitter buffer of
#: one frame would have run dry)
LATE_SECONDS = 0.040
#: A packet more than half a frame ahead of its slot was sent for a later slot: no sender sends
#: a frame that early on schedule (ours starts ticks at least half a frame apart; discord.py's
#: AudioPlayer waits for the slot), only one that catches up after a late tick does. Smaller
#: offsets are the normal spread of a guild's send time within a tick (the anchor is the median,
#: so half the packets are a little early).
EARLY_SECONDS = 0.010
SEQUENCE_MODULO = 1 << 16
#: the running median's width for the re-anchored schedule: 0.5 s, so a step lasting longer than
#: a quarter second moves the anchor and a burst of up to 12 packets does not
REANCHOR_PACKETS = 25


def unwrap_sequences(sequences: Sequence[int] | np.ndarray) -> np.ndarray:
    """16-bit RTP sequence numbers as a running count (65535 then 0 gives 65535, 65536).

    Each step is taken mod 2**16 into [-32768, 32767], so a reordered packet steps back."""
    seq = np.asarray(sequences, dtype=np.int64)
    if len(seq) == 0:
        return seq
    steps = (np.diff(seq) + SEQUENCE_MODULO // 2) % SEQUENCE_MODULO - SEQUENCE_MODULO // 2
    return np.concatenate(([seq[0]], seq[0] + np.cumsum(steps)))


def running_median(values: np.ndarray, width: int = REANCHOR_PACKETS) -> np.ndarray:
    """The median of the ``width`` values centred on each one (the ends repeat the edge value)."""
    if len(values) == 0:
        return values
    half = width // 2
    padded = np.pad(values, half, mode="edge")
    return np.median(sliding_window_view(padded, 2 * half + 1), axis=1)


@dataclass(frozen=True)
class GuildSchedule:
    """One guild's packets in a window against its own schedule."""

    packets: int  # received in the window
    slots: int  # slots of its own schedule inside the window
    lateness: np.ndarray  # seconds, per packet (negative: early), against one fixed anchor
    #: seconds, per packet, against the re-anchored schedule (running median, see module docs)
    local_lateness: np.ndarray
    #: whole frames the re-anchored schedule moved later in the window (frames the sender
    #: dropped, or a stall it never made up) and earlier (frames it sent ahead: catch-up)
    frames_later: int
    frames_earlier: int
    #: packets whose slot is in the window but that arrived outside it (late past its end, or
    #: early before its start), and packets whose slot is outside but that arrived inside
    crossed_out: int = 0
    crossed_in: int = 0

    @property
    def shift_frames(self) -> int:
        """How far the re-anchored schedule moved in the window, either way, in whole frames."""
        return self.frames_later + self.frames_earlier

    @property
    def missing(self) -> int:
        """The window's slots no packet was sent for (or received at all): losses, dropped frames."""
        return self.slots - (self.packets - self.crossed_in + self.crossed_out)

    @property
    def extra(self) -> int:
        """Packets received beyond its own schedule's slots in the window (negative: fewer)."""
        return self.packets - self.slots

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.lateness, 99) * 1000) if len(self.lateness) else float("nan")

    @property
    def max_ms(self) -> float:
        return float(self.lateness.max() * 1000) if len(self.lateness) else float("nan")

    @property
    def earliest_ms(self) -> float:
        return float(self.lateness.min() * 1000) if len(self.lateness) else float("nan")

    @property
    def late(self) -> int:
        return int(np.count_nonzero(self.lateness > LATE_SECONDS))

    @property
    def early(self) -> int:
        return int(np.count_nonzero(self.lateness < -EARLY_SECONDS))

    @property
    def local_early(self) -> int:
        return int(np.count_nonzero(self.local_lateness < -EARLY_SECONDS))


def guild_schedule(arrivals: Sequence[float] | np.ndarray, sequences: Sequence[int] | np.ndarray,
                   since: float, until: float, frame: float = FRAME_SECONDS) -> GuildSchedule:
    """Place one guild's packets that arrived in [since, until] on its own schedule.

    ``arrivals`` and ``sequences`` are every packet the guild received, in arrival order; the
    schedule is fitted to the ones inside the window, and the ones outside only tell which
    crossed its edges. ``slots`` counts the integers k with ``since <= anchor + k * frame <=
    until``: what a sender exactly on this schedule would have delivered in the window. Packets
    received minus slots = ``crossed_in - crossed_out - missing``: a packet due just before the
    window that came a little late counts inside it, one due just before its end that came a
    little late does not."""
    all_arrivals = np.asarray(arrivals, dtype=np.float64)
    all_k = unwrap_sequences(np.asarray(sequences, dtype=np.int64))
    inside = (all_arrivals >= since) & (all_arrivals <= until)
    arrival, k = all_arrivals[inside], all_k[inside]
    if len(arrival) == 0:
        return GuildSchedule(0, 0, np.zeros(0), np.zeros(0), 0, 0)
    all_k = all_k - k[0]
    k = k - k[0]
    offsets = arrival - k * frame
    anchor = float(np.median(offsets))
    local_anchor = running_median(offsets)
    first_slot = int(np.ceil((since - anchor) / frame - 1e-9))
    last_slot = int(np.floor((until - anchor) / frame + 1e-9))
    slot_inside = (all_k >= first_slot) & (all_k <= last_slot)
    steps = np.diff(np.round((local_anchor - local_anchor[0]) / frame))
    return GuildSchedule(len(arrival), max(0, last_slot - first_slot + 1), offsets - anchor,
                         offsets - local_anchor,
                         frames_later=int(steps[steps > 0].sum()),
                         frames_earlier=int(-steps[steps < 0].sum()),
                         crossed_out=int(np.count_nonzero(slot_inside & ~inside)),
                         crossed_in=int(np.count_nonzero(~slot_inside & inside)))


def pooled_schedule(guilds: Sequence[GuildSchedule]) -> dict[str, Any]:
    """The window's figures over every guild: pooled lateness (p99, max, share more than 40 ms
    late), the per-guild p99 (median and worst), packets early by more than 10 ms, and packets
    received against the guilds' own schedule slots."""
    played = [g for g in guilds if g.packets]
    if not played:
        return {"guilds": 0}
    lateness = np.concatenate([g.lateness for g in played])
    local = np.concatenate([g.local_lateness for g in played])
    guild_p99 = np.array([g.p99_ms for g in played])
    extras = np.array([g.extra for g in played])
    return {
        "guilds": len(played),
        "packets": int(len(lateness)),
        "p99_ms": float(np.percentile(lateness, 99) * 1000),
        "max_ms": float(lateness.max() * 1000),
        "late_40_share": float(np.mean(lateness > LATE_SECONDS)),
        "late_40": int(np.count_nonzero(lateness > LATE_SECONDS)),
        "early_10": int(np.count_nonzero(lateness < -EARLY_SECONDS)),
        "earliest_ms": float(lateness.min() * 1000),
        "guild_p99_median_ms": float(np.median(guild_p99)),
        "guild_p99_worst_ms": float(guild_p99.max()),
        "guilds_with_early": int(sum(1 for g in played if g.early)),
        # against the re-anchored schedule: a sender that dropped frames is not counted late
        # for the rest of the window, only around the step
        "reanchored_p99_ms": float(np.percentile(local, 99) * 1000),
        "reanchored_max_ms": float(local.max() * 1000),
        "reanchored_late_40": int(np.count_nonzero(local > LATE_SECONDS)),
        "reanchored_early_10": int(np.count_nonzero(local < -EARLY_SECONDS)),
        "shift_frames_total": int(sum(g.shift_frames for g in played)),
        "shift_frames_max": int(max(g.shift_frames for g in played)),
        # later: frames dropped (or a stall never made up); earlier: frames sent ahead
        "frames_later": int(sum(g.frames_later for g in played)),
        "frames_earlier": int(sum(g.frames_earlier for g in played)),
        # received vs the guilds' own schedule slots in the window: catch-up or early sending
        # shows as extra packets here, a boundary effect does not
        "own_schedule_slots": int(sum(g.slots for g in played)),
        "extra_vs_own_slots": int(extras.sum()),
        "guilds_extra_max": int(extras.max()),
        "guilds_extra_min": int(extras.min()),
        # received - own slots = crossed_in - crossed_out - missing (see guild_schedule)
        "crossed_in": int(sum(g.crossed_in for g in played)),
        "crossed_out": int(sum(g.crossed_out for g in played)),
        "missing": int(sum(g.missing for g in played)),
    }


__all__ = [
    "EARLY_SECONDS",
    "FRAME_SECONDS",
    "LATE_SECONDS",
    "GuildSchedule",
    "guild_schedule",
    "pooled_schedule",
    "running_median",
    "unwrap_sequences",
]

"""The soak's figures at the receiver, one window (a minute) at a time: computed in the stand-in
process (``standin_proc``'s ``soak_window`` op) from arrival times and RTP sequence numbers only.

A packet is "late" when it came more than 40 ms after the guild's previous one (the same test as
row 4's). A **late moment** gathers the late packets of all guilds within 50 ms of each other:
many guilds hit in one moment is a stall of the sending thread (or of the whole machine), one
guild is one stream's hiccup. A **catch-up** is an interval under 10 ms: frames sent back to back
to make up for lost time, what the shared sender must never do (discord.py #9120).

Each guild's lateness against its own 20 ms schedule (``standin.schedule``, re-anchored after a
dropped frame) is given too. Nothing here imports discord.py or the cog: the stand-in process
loads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from standin.schedule import guild_schedule, pooled_schedule

LATE_SECONDS = 0.040
CATCH_UP_SECONDS = 0.010
MOMENT_SECONDS = 0.050
PACKETS_PER_SECOND = 50


class Arrival(Protocol):
    arrival: float
    sequence: int


def sequence_steps(sequences: np.ndarray) -> np.ndarray:
    """Steps between consecutive RTP sequence numbers (mod 2**16); 1 = nothing lost."""
    return np.diff(sequences.astype(np.int64)) % 65536


def late_moments(late: Sequence[tuple[float, int]]) -> list[tuple[float, int]]:
    """(start, guilds hit) of each moment: late packets (arrival, guild) within MOMENT_SECONDS of
    the moment's previous one belong to it."""
    moments: list[tuple[float, int]] = []
    guilds: set[int] = set()
    start = last = float("-inf")
    for arrival, guild in sorted(late):
        if arrival - last >= MOMENT_SECONDS:
            if guilds:
                moments.append((start, len(guilds)))
            start, guilds = arrival, set()
        guilds.add(guild)
        last = arrival
    if guilds:
        moments.append((start, len(guilds)))
    return moments


def window_summary(packets: Mapping[int, Sequence[Arrival]], since: float, until: float
                   ) -> dict[str, Any]:
    """Figures for the packets of each guild that arrived in [since, until)."""
    intervals: list[np.ndarray] = []
    schedules = []
    guild_p99: list[float] = []
    late: list[tuple[float, int]] = []
    received = lost = 0
    for guild, chosen in packets.items():
        received += len(chosen)
        if len(chosen) < 2:
            continue
        arrivals = np.fromiter((p.arrival for p in chosen), dtype=np.float64, count=len(chosen))
        sequences = np.fromiter((p.sequence for p in chosen), dtype=np.int64, count=len(chosen))
        schedules.append(guild_schedule(arrivals, sequences, since, until))
        steps = sequence_steps(sequences)
        lost += int(np.sum(np.where((steps > 1) & (steps < 32768), steps - 1, 0)))
        gaps = np.diff(arrivals)
        intervals.append(gaps)
        guild_p99.append(float(np.percentile(gaps, 99)))
        late += [(float(t), guild) for t in arrivals[1:][gaps > LATE_SECONDS]]
    pooled = np.concatenate(intervals) if intervals else np.zeros(0)
    moments = late_moments(late)
    # against each guild's own 20 ms schedule, re-anchored after a dropped frame (see
    # standin/schedule.py): late and early packets that intervals alone would pair up
    schedule = pooled_schedule(schedules)
    return {
        "seconds": until - since,
        "guilds": len(packets),
        "packets": received,
        "expected": int(round((until - since) * PACKETS_PER_SECOND * len(packets))),
        "sequence_gaps": lost,
        "p50_ms": float(np.median(pooled) * 1000) if len(pooled) else None,
        "p99_ms": float(np.percentile(pooled, 99) * 1000) if len(pooled) else None,
        "max_ms": float(pooled.max() * 1000) if len(pooled) else None,
        "worst_guild_p99_ms": max(guild_p99) * 1000 if guild_p99 else None,
        "late_packets": len(late),
        "catch_up_intervals": int(np.sum(pooled < CATCH_UP_SECONDS)),
        "late_moments": len(moments),
        "schedule_p99_ms": schedule.get("reanchored_p99_ms"),
        "schedule_max_ms": schedule.get("reanchored_max_ms"),
        "schedule_late_40": schedule.get("reanchored_late_40", 0),
        "schedule_early_10": schedule.get("reanchored_early_10", 0),
        "frames_later": schedule.get("frames_later", 0),
        "most_guilds_hit": max((hit for _, hit in moments), default=0),
        # when they came (seconds into the window) and how many guilds each hit, the first 60
        "moments": [[round(t - since, 2), hit] for t, hit in moments[:60]],
    }

"""The soak's per-minute figures at the receiver (benchmarks/soak_receiver.py): late packets,
late moments across guilds, catch-up intervals and RTP losses, on hand-made arrivals."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.soak_receiver import late_moments, window_summary


@dataclass
class Packet:
    arrival: float
    sequence: int


def steady(start: float, count: int, first_sequence: int = 0) -> list[Packet]:
    return [Packet(start + 0.020 * i, (first_sequence + i) % 65536) for i in range(count)]


def test_steady_guilds_have_nothing_late():
    summary = window_summary({1: steady(0.0, 500), 2: steady(0.005, 500, 65500)}, 0.0, 10.0)
    assert summary["packets"] == 1000
    assert summary["expected"] == 1000
    assert summary["sequence_gaps"] == 0  # the second guild's sequence wraps around 65535
    assert summary["late_packets"] == summary["late_moments"] == summary["catch_up_intervals"] == 0
    assert abs(summary["p99_ms"] - 20.0) < 0.01
    assert summary["schedule_max_ms"] < 0.01


def test_a_stall_of_every_guild_is_one_moment_hitting_all():
    guilds = {}
    for guild in range(3):
        packets = steady(0.001 * guild, 100)
        # 100 ms without packets after the 50th, then the rest on time (slots skipped)
        guilds[guild] = packets[:50] + packets[55:]
    summary = window_summary(guilds, 0.0, 2.0)
    assert summary["late_packets"] == 3
    assert summary["late_moments"] == 1
    assert summary["most_guilds_hit"] == 3
    assert summary["sequence_gaps"] == 15  # 5 slots per guild never sent
    assert summary["moments"] == [[1.1, 3]]


def test_catch_up_is_counted():
    packets = steady(0.0, 50)
    packets[30:] = [Packet(p.arrival + (0.05 if i < 3 else 0.0), p.sequence)
                    for i, p in enumerate(packets[30:])]
    summary = window_summary({7: packets}, 0.0, 1.0)
    assert summary["late_packets"] == 1
    assert summary["catch_up_intervals"] == 1  # the 4th packet after the stall came 0 ms after
    # against the guild's own schedule: the three packets 50 ms late, none early
    assert summary["schedule_late_40"] == 3
    assert summary["schedule_early_10"] == 0


def test_moments_split_when_late_packets_are_apart():
    moments = late_moments([(1.0, 1), (1.03, 2), (1.2, 1), (5.0, 3), (5.0, 3)])
    assert moments == [(1.0, 2), (1.2, 1), (5.0, 1)]

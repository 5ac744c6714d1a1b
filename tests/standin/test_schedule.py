"""The schedule analysis (standin/schedule.py) on synthetic arrivals."""

from __future__ import annotations

import numpy as np
import pytest

from standin.schedule import guild_schedule, pooled_schedule, unwrap_sequences

FRAME = 0.020


def on_time(n: int, *, start: float = 100.0, first_seq: int = 1000, jitter: float = 0.0,
            seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrivals = start + np.arange(n) * FRAME + rng.uniform(0, jitter, n)
    sequences = (first_seq + np.arange(n)) % 65536
    return arrivals, sequences


def test_on_time_packets_are_neither_late_nor_early_and_fill_their_slots():
    arrivals, seqs = on_time(400, jitter=0.001)
    g = guild_schedule(arrivals, seqs, since=99.995, until=100.0 + 399 * FRAME + 0.005)
    assert g.packets == 400
    assert g.slots == 400
    assert g.extra == 0
    assert g.late == 0 and g.early == 0
    assert abs(g.p99_ms) < 1.0 and g.max_ms < 1.0


def test_a_late_burst_is_late_then_on_time_again():
    arrivals, seqs = on_time(400)
    # a 65 ms stall: packets 100-102 come late, 5 ms after packet 103's slot
    arrivals[100:103] = arrivals[103] + 0.005
    g = guild_schedule(arrivals, seqs, 99.99, 108.5)
    lateness_ms = g.lateness * 1000
    assert lateness_ms[100:103] == pytest.approx([65.0, 45.0, 25.0])
    assert g.late == 2  # packets 100 and 101 are more than 40 ms late
    assert g.max_ms == pytest.approx(65.0)
    assert g.early == 0
    assert np.allclose(lateness_ms[103:], 0.0, atol=1e-6)


def test_catch_up_sending_shows_as_early_packets_and_extra_packets():
    # a sender running 3 frames ahead after packet 200 (it sent packets for later slots at once)
    arrivals, seqs = on_time(400)
    arrivals[200:203] = arrivals[200]
    arrivals[203:] -= 3 * FRAME
    since, until = 99.99, 100.0 + 396 * FRAME + 0.005
    g = guild_schedule(arrivals, seqs, since, until)
    assert g.early >= 199  # everything after the jump is 40-60 ms ahead of its slot
    assert (g.frames_later, g.frames_earlier) == (0, 3)
    assert g.lateness.min() * 1000 == pytest.approx(-60.0)
    # the window holds 397 slots of its own schedule but every one of the 400 packets came in it
    assert g.slots == 397
    assert g.packets == 400
    assert g.extra == 3


def test_sequence_numbers_wrap_at_16_bits():
    assert unwrap_sequences([65534, 65535, 0, 1]).tolist() == [65534, 65535, 65536, 65537]
    assert unwrap_sequences([5, 4, 6]).tolist() == [5, 4, 6]  # reordered, not a wrap
    arrivals, seqs = on_time(50, first_seq=65530)
    g = guild_schedule(arrivals, seqs, 99.99, 101.0)
    assert g.late == 0 and g.early == 0
    assert np.allclose(g.lateness, 0.0, atol=1e-9)


def test_a_lost_packet_keeps_the_schedule_and_counts_as_missing():
    arrivals, seqs = on_time(100)
    keep = np.ones(100, dtype=bool)
    keep[50] = False
    g = guild_schedule(arrivals[keep], seqs[keep], 99.99, 101.995)
    assert np.allclose(g.lateness, 0.0, atol=1e-9)
    assert g.packets == 99 and g.slots == 100 and g.extra == -1


def test_packets_outside_the_window_are_ignored():
    arrivals, seqs = on_time(100)
    g = guild_schedule(arrivals, seqs, 100.5, 101.0)
    assert g.packets == len([a for a in arrivals if 100.5 <= a <= 101.0])
    assert g.extra == 0


def test_guilds_sharing_a_phase_gain_the_boundary_packet_together():
    # Four guilds sending at the same moment: a window 8.005 s long holds 401 slots of each
    # guild's schedule, not the 400.25 a per-window "expected" counts; the own-schedule slot
    # count explains the difference and shows no extra packet.
    guilds = []
    for seed in range(4):
        arrivals, seqs = on_time(420, start=100.0, seed=seed)
        guilds.append(guild_schedule(arrivals, seqs, 100.0, 108.005))
    pooled = pooled_schedule(guilds)
    assert pooled["guilds"] == 4
    assert pooled["packets"] == 4 * 401
    assert round(8.005 * 50 * 4) == 1601  # what the old "expected" said
    assert pooled["own_schedule_slots"] == 4 * 401
    assert pooled["extra_vs_own_slots"] == 0
    assert pooled["early_10"] == 0
    for key in ("p99_ms", "max_ms", "late_40_share", "guild_p99_median_ms", "guild_p99_worst_ms"):
        assert key in pooled


def test_pooled_figures_over_guilds():
    late_guild = on_time(400, seed=1)
    late_guild[0][100] += 0.050
    good = guild_schedule(*on_time(400, seed=2), 99.99, 108.0)
    bad = guild_schedule(*late_guild, 99.99, 108.0)
    pooled = pooled_schedule([good, bad, guild_schedule([], [], 0.0, 1.0)])
    assert pooled["guilds"] == 2
    assert pooled["max_ms"] == pytest.approx(50.0)
    assert pooled["late_40_share"] == pytest.approx(1 / 800)
    assert pooled["guild_p99_worst_ms"] == pytest.approx(bad.p99_ms)
    assert pooled_schedule([]) == {"guilds": 0}


def test_a_dropped_frame_shifts_the_schedule_and_the_reanchored_one_follows():
    # a sender that skips a slot after a late tick instead of bursting: from packet 300 on every
    # packet is 20 ms behind the fixed schedule, but only the step itself is late for a listener
    arrivals, seqs = on_time(400)
    arrivals[300:] += FRAME
    g = guild_schedule(arrivals, seqs, 99.99, 108.1)
    assert np.count_nonzero(g.lateness > 0.015) == 100  # fixed anchor: late for good
    assert g.shift_frames == 1
    assert (g.frames_later, g.frames_earlier) == (1, 0)
    assert np.allclose(g.local_lateness, 0.0, atol=1e-9)
    assert g.local_early == 0


def test_a_catch_up_burst_is_early_against_the_reanchored_schedule_too():
    # three packets sent at once, two of them ahead of their slots, then on time again
    arrivals, seqs = on_time(400)
    arrivals[201:203] = arrivals[200]
    g = guild_schedule(arrivals, seqs, 99.99, 108.1)
    assert g.local_early == 2  # packets 201 and 202, 20 and 40 ms ahead of their slots
    assert g.local_lateness.min() * 1000 == pytest.approx(-40.0)
    assert g.shift_frames == 0


def test_packets_crossing_the_window_edges_explain_received_minus_slots():
    # the window's edges 1 ms after a slot; the packets due just before each edge come 3 ms
    # late: the first comes inside (crossed in), the last one after the end (crossed out)
    arrivals, seqs = on_time(300)
    arrivals[[49, 249]] += 0.003
    since, until = 100.0 + 49 * FRAME + 0.001, 100.0 + 249 * FRAME + 0.001
    g = guild_schedule(arrivals, seqs, since, until)
    assert g.slots == 200
    assert g.crossed_in == 1 and g.crossed_out == 1
    assert g.packets == 200 and g.missing == 0
    lost = np.ones(300, dtype=bool)
    lost[[100, 101]] = False
    g = guild_schedule(arrivals[lost], seqs[lost], since, until)
    assert g.missing == 2
    assert g.extra == g.crossed_in - g.crossed_out - g.missing == -2

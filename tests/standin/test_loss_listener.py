"""The stand-in's loss patterns (standin.loss) and its listener model (standin.listener), on Opus
packets from discord.py's own encoder with in-band FEC on and off."""

from __future__ import annotations

import math

import discord.opus
import numpy as np
import pytest

from standin.listener import (
    Heard,
    aligned_snr_db,
    decode_all,
    has_lbrr,
    listen,
    listen_under_loss,
    opus_mode,
)
from standin.loss import BURSTS, RANDOM, LossModel, burst_lengths

LENGTH = 40_000


# -- loss patterns ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [RANDOM, BURSTS])
@pytest.mark.parametrize("rate", [0.05, 0.15])
def test_pattern_loses_the_stated_share(kind: str, rate: float) -> None:
    pattern = LossModel(kind, rate).pattern(LENGTH, seed=1)
    assert len(pattern) == LENGTH
    assert sum(pattern) / LENGTH == pytest.approx(rate, abs=0.012)


def test_bursts_last_the_stated_mean_and_random_losses_mostly_come_alone() -> None:
    bursts = burst_lengths(LossModel(BURSTS, 0.15, mean_burst=3.0).pattern(LENGTH, seed=2))
    assert float(np.mean(bursts)) == pytest.approx(3.0, abs=0.25)
    assert max(bursts) >= 8  # geometric lengths: long runs happen
    singles = burst_lengths(LossModel(RANDOM, 0.15).pattern(LENGTH, seed=2))
    # independent losses: runs average 1 / (1 - rate) = 1.18 packets
    assert float(np.mean(singles)) == pytest.approx(1 / 0.85, abs=0.05)


def test_patterns_are_reproducible_per_seed_and_model() -> None:
    model = LossModel(BURSTS, 0.05)
    assert model.pattern(500, seed=7) == LossModel(BURSTS, 0.05).pattern(500, seed=7)
    assert model.pattern(500, seed=7) != model.pattern(500, seed=8)
    assert model.pattern(500, seed=7) != LossModel(RANDOM, 0.05).pattern(500, seed=7)
    # a longer pattern starts like the shorter one (same packets, same fate)
    assert model.pattern(800, seed=7)[:500] == model.pattern(500, seed=7)


def test_no_loss_and_bad_settings() -> None:
    assert not any(LossModel(BURSTS, 0.0).pattern(100, seed=1))
    for bad in (dict(kind="sometimes", rate=0.1), dict(kind=RANDOM, rate=1.0),
                dict(kind=BURSTS, rate=0.1, mean_burst=0.5), dict(kind=BURSTS, rate=0.9, mean_burst=1.0)):
        with pytest.raises(ValueError):
            LossModel(**bad)  # type: ignore[arg-type]


def test_burst_lengths() -> None:
    assert burst_lengths([True, True, False, True, False, False, True, True, True]) == [2, 1, 3]
    assert burst_lengths([]) == []


# -- the listener -------------------------------------------------------------------------------


def _voice_like(seconds: float) -> np.ndarray:
    """Harmonics of a gliding 110-170 Hz pitch, 4 syllables a second (as benchmarks.fec_loss)."""
    t = np.arange(int(48000 * seconds)) / 48000
    phase = 2 * np.pi * (140 * t - 10 / np.pi * np.cos(2 * np.pi * 3 * t))
    envelope = np.maximum(0.0, np.sin(2 * np.pi * 2 * t)) ** 2
    mono = 0.35 * envelope * (np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.3 * np.sin(3 * phase))
    return np.repeat(mono, 2)  # interleaved stereo


def _encode(signal: np.ndarray, *, fec: bool) -> list[bytes]:
    """20 ms Opus packets from discord.py's encoder (its defaults: 128 kb/s, FEC 15 %)."""
    encoder = discord.opus.Encoder(fec=fec)
    pcm = (np.clip(signal, -1, 1) * 32767).astype(np.int16)
    step = 960 * 2
    return [encoder.encode(pcm[i : i + step].tobytes(), 960)
            for i in range(0, len(pcm) - step + 1, step)]


@pytest.fixture(scope="module")
def voice_with_fec() -> list[bytes]:
    return _encode(_voice_like(3.0), fec=True)


@pytest.fixture(scope="module")
def voice_without_fec() -> list[bytes]:
    return _encode(_voice_like(3.0), fec=False)


def test_what_the_encoders_put_in_the_packets(voice_with_fec: list[bytes],
                                               voice_without_fec: list[bytes]) -> None:
    assert {opus_mode(p) for p in voice_without_fec} == {"celt"}
    assert not any(has_lbrr(p) for p in voice_without_fec)
    # FEC on with 15 % expected loss moves libopus to the SILK layer, which carries the LBRR copy
    assert {opus_mode(p) for p in voice_with_fec} <= {"silk", "hybrid"}
    assert sum(has_lbrr(p) for p in voice_with_fec) > len(voice_with_fec) // 3


def test_opus_mode_reads_the_toc_byte() -> None:
    assert opus_mode(bytes([0 << 3, 0])) == "silk"
    assert opus_mode(bytes([13 << 3, 0])) == "hybrid"
    assert opus_mode(bytes([31 << 3, 0])) == "celt"
    assert not has_lbrr(bytes([31 << 3, 0xFF, 0xFF]))


def test_without_loss_the_listener_hears_the_lossless_decode(voice_with_fec: list[bytes]) -> None:
    heard = listen(voice_with_fec, [False] * len(voice_with_fec))
    assert (heard.lost, heard.damaged, heard.fec_decoded) == (0, 0, 0)
    assert math.isinf(heard.snr_db)


def test_fec_recovers_lost_voice_frames_when_the_encoder_had_it_on(
        voice_with_fec: list[bytes], voice_without_fec: list[bytes]) -> None:
    model, seeds = LossModel(RANDOM, 0.15), range(4)
    with_fec = listen_under_loss(voice_with_fec, model, seeds)
    without = listen_under_loss(voice_without_fec, model, seeds)
    assert with_fec.lost == without.lost > 0  # the same patterns over the same number of packets
    # half the signal is the silence between syllables, which carries no LBRR
    assert with_fec.fec_decoded > with_fec.lost // 4
    assert with_fec.recovered > with_fec.fec_decoded // 2
    assert with_fec.recovered + with_fec.concealed == with_fec.lost
    assert without.fec_decoded == without.recovered == 0
    assert without.concealed == without.lost
    assert with_fec.damaged < without.damaged
    assert with_fec.snr_db > without.snr_db + 3


def test_a_lost_frame_whose_next_packet_is_lost_too_is_concealed(voice_with_fec: list[bytes]) -> None:
    start = next(i for i in range(10, len(voice_with_fec) - 3) if has_lbrr(voice_with_fec[i + 2]))
    lost = [False] * len(voice_with_fec)
    lost[start] = lost[start + 1] = True
    heard = listen(voice_with_fec, lost)
    # the first of the two has no next packet to take FEC from; the second is rebuilt from the third
    assert (heard.lost, heard.fec_decoded) == (2, 1)
    assert heard.concealed >= 1


def test_heard_adds_up() -> None:
    total = Heard(frames=10, lost=2, recovered=1, concealed=1, signal_energy=4.0, error_energy=0.4)
    total += Heard(frames=10, lost=1, concealed=1, signal_energy=6.0, error_energy=0.6)
    assert (total.frames, total.lost, total.recovered, total.concealed) == (20, 3, 1, 2)
    assert total.snr_db == pytest.approx(10.0)
    assert len(decode_all([])) == 0


def test_aligned_snr_finds_the_codec_delay(voice_without_fec: list[bytes]) -> None:
    source = _voice_like(3.0)
    decoded = np.concatenate(decode_all(voice_without_fec))
    assert aligned_snr_db(source, decoded) > 10  # Opus' 312-sample look-ahead, found
    assert aligned_snr_db(source, decoded, max_lag=0) < 3  # unaligned: far off
    delayed = np.concatenate([np.zeros(2 * 100), source])
    assert math.isinf(aligned_snr_db(source, delayed))

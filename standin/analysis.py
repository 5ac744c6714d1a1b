"""Measure what the stand-in heard: frequency, level, silence, track segments, gaps, timing.

Works on mono float32 PCM at 48 kHz (`GuildAudio.pcm()`) or per received packet
(`GuildAudio.packet_pcm()`), so a gap between two tones can be counted in packets (20 ms frames)
and timed with the packets' arrival times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from standin.voice import GuildAudio, ReceivedPacket

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz, what discord.py sends per packet
# Below this RMS a 20 ms frame counts as silence: -60 dBFS, far under any test tone (0.5 peak
# = -9 dBFS RMS) and above Opus' decoded digital silence (exact zeros).
SILENCE_RMS = 1e-3


def rms(pcm: np.ndarray) -> float:
    """Root-mean-square level (0.0 for no samples)."""
    return float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if len(pcm) else 0.0


def is_silent(pcm: np.ndarray, threshold: float = SILENCE_RMS) -> bool:
    return rms(pcm) < threshold


def dominant_frequency(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Frequency of the strongest spectral peak, in Hz (0.0 for silence or no samples).

    Zero-padding to at least 8192 points and a parabolic fit on the log magnitude give a few Hz of
    precision even on one 20 ms frame, where the raw FFT bin spacing would be 50 Hz."""
    if len(pcm) == 0 or rms(pcm) == 0.0:
        return 0.0
    windowed = pcm.astype(np.float64) * np.hanning(len(pcm))
    size = max(8192, 1 << int(np.ceil(np.log2(len(pcm)))))
    spectrum = np.abs(np.fft.rfft(windowed, n=size))
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    offset = 0.0
    if 0 < peak < len(spectrum) - 1:
        left, centre, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
        denominator = left - 2 * centre + right
        if denominator != 0:
            offset = 0.5 * (left - right) / denominator
    return float((peak + offset) * sample_rate / size)


def silent_spans(
    pcm: np.ndarray, *, window: int = FRAME_SAMPLES, threshold: float = SILENCE_RMS,
    sample_rate: int = SAMPLE_RATE,
) -> list[tuple[float, float]]:
    """(start, end) seconds of every run of silent windows in `pcm`."""
    spans: list[tuple[float, float]] = []
    start: int | None = None
    for offset in range(0, len(pcm), window):
        quiet = is_silent(pcm[offset : offset + window], threshold)
        if quiet and start is None:
            start = offset
        elif not quiet and start is not None:
            spans.append((start / sample_rate, offset / sample_rate))
            start = None
    if start is not None:
        spans.append((start / sample_rate, len(pcm) / sample_rate))
    return spans


@dataclass(frozen=True)
class PacketInfo:
    """One received packet, classified."""

    index: int  # position in GuildAudio.packets
    arrival: float  # time.monotonic()
    sequence: int
    kind: str  # "undecodable" | "silence" | "sound"
    frequency: float  # dominant frequency of its samples (0.0 unless kind == "sound")
    level: float  # RMS of its samples


def classify_packets(audio: GuildAudio, *, threshold: float = SILENCE_RMS) -> list[PacketInfo]:
    """Every received packet with its kind, dominant frequency and level."""
    infos = []
    decoded = audio.packet_pcm()
    packets = audio.packets[: len(decoded)]  # more may arrive meanwhile when called from a thread
    for index, (packet, samples) in enumerate(zip(packets, decoded, strict=True)):
        if samples is None:
            infos.append(PacketInfo(index, packet.arrival, packet.sequence, "undecodable", 0.0, 0.0))
            continue
        level = rms(samples)
        if level < threshold:
            infos.append(PacketInfo(index, packet.arrival, packet.sequence, "silence", 0.0, level))
        else:
            infos.append(
                PacketInfo(index, packet.arrival, packet.sequence, "sound", dominant_frequency(samples), level)
            )
    return infos


@dataclass(frozen=True)
class Segment:
    """A run of consecutive packets that carry the same tone (a track, for tone test media)."""

    frequency: float  # median of the packets' dominant frequencies
    first_packet: int  # index in GuildAudio.packets
    last_packet: int
    start: float  # arrival time of the first packet
    end: float  # arrival time of the last packet

    @property
    def packets(self) -> int:
        return self.last_packet - self.first_packet + 1

    @property
    def duration(self) -> float:
        """Seconds of audio carried (20 ms per packet), independent of arrival jitter."""
        return self.packets * FRAME_SAMPLES / SAMPLE_RATE


def segment_by_frequency(
    audio: GuildAudio, *, tolerance_hz: float = 15.0, min_packets: int = 5,
    threshold: float = SILENCE_RMS,
) -> list[Segment]:
    """Split the received audio into tone segments.

    A segment is a run of "sound" packets whose frequencies stay within `tolerance_hz` of the run's
    first packet; runs shorter than `min_packets` (the one or two mixed frames at a tone change,
    Opus' transients) are dropped. Silence and undecodable packets end a run."""
    infos = classify_packets(audio, threshold=threshold)
    segments: list[Segment] = []
    run: list[PacketInfo] = []

    def flush() -> None:
        if len(run) >= min_packets:
            segments.append(
                Segment(
                    float(np.median([p.frequency for p in run])),
                    run[0].index, run[-1].index, run[0].arrival, run[-1].arrival,
                )
            )
        run.clear()

    for info in infos:
        if info.kind != "sound":
            flush()
        elif run and abs(info.frequency - run[0].frequency) > tolerance_hz:
            flush()
            run.append(info)
        else:
            run.append(info)
    flush()
    return segments


def _tone_change(
    infos: list[PacketInfo], first_hz: float, second_hz: float, tolerance_hz: float
) -> tuple[int, int]:
    """(index of the last `first_hz` packet, index of the first `second_hz` packet after it)."""

    def matches(info: PacketInfo, hz: float) -> bool:
        return info.kind == "sound" and abs(info.frequency - hz) <= tolerance_hz

    first_indexes = [i for i, info in enumerate(infos) if matches(info, first_hz)]
    if not first_indexes:
        raise ValueError(f"no packet carries {first_hz} Hz")
    second_start = next(
        (i for i in range(first_indexes[0], len(infos)) if matches(infos[i], second_hz)), None
    )
    if second_start is None:
        raise ValueError(f"no {second_hz} Hz packet follows {first_hz} Hz")
    last_first = max(i for i in first_indexes if i < second_start)
    return last_first, second_start


def packets_between_tones(
    audio: GuildAudio, first_hz: float, second_hz: float, *, tolerance_hz: float = 15.0,
    threshold: float = SILENCE_RMS,
) -> list[PacketInfo]:
    """The packets after the last packet of the `first_hz` tone and before the first packet of the
    following `second_hz` tone: silence, undecodable headers and mixed frames of a track change.
    Empty for a seamless change. Raises ValueError if a tone is missing or out of order."""
    infos = classify_packets(audio, threshold=threshold)
    last_first, second_start = _tone_change(infos, first_hz, second_hz, tolerance_hz)
    return infos[last_first + 1 : second_start]


def gap_between_tones(
    audio: GuildAudio, first_hz: float, second_hz: float, *, tolerance_hz: float = 15.0,
    threshold: float = SILENCE_RMS,
) -> float:
    """Seconds between the arrival of the last `first_hz` packet and the first `second_hz` one.
    A seamless change measures one packet interval (~0.020 s)."""
    infos = classify_packets(audio, threshold=threshold)
    last_first, second_start = _tone_change(infos, first_hz, second_hz, tolerance_hz)
    return infos[second_start].arrival - infos[last_first].arrival


def inter_arrival_times(packets: Sequence[ReceivedPacket]) -> np.ndarray:
    """Seconds between consecutive packets' arrivals (length n-1)."""
    if len(packets) < 2:
        return np.zeros(0)
    return np.diff(np.array([p.arrival for p in packets], dtype=np.float64))


def sequence_gaps(packets: Sequence[ReceivedPacket]) -> int:
    """Packets missing according to RTP sequence numbers (mod 2**16), as a receiver counts loss."""
    missing = 0
    for before, after in pairwise(packets):
        step = (after.sequence - before.sequence) % 65536
        if 1 < step < 32768:
            missing += step - 1
    return missing


__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "SILENCE_RMS",
    "PacketInfo",
    "Segment",
    "classify_packets",
    "dominant_frequency",
    "gap_between_tones",
    "inter_arrival_times",
    "is_silent",
    "packets_between_tones",
    "rms",
    "segment_by_frequency",
    "sequence_gaps",
    "silent_spans",
]

"""Decode Opus packets or audio files to PCM and measure them (dominant frequency, level)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

import av
import imageio_ffmpeg
import numpy as np

SAMPLE_RATE = 48000


def decode_opus_packets(packets: Iterable[bytes]) -> tuple[np.ndarray, int]:
    """Decode raw Opus packets (as sent to Discord) to mono float32 PCM at 48 kHz.
    Returns (pcm, undecodable_count)."""
    ctx = av.CodecContext.create("opus", "r")
    ctx.sample_rate = SAMPLE_RATE
    ctx.layout = "stereo"
    chunks: list[np.ndarray] = []
    bad = 0
    for data in packets:
        try:
            frames = ctx.decode(av.Packet(data))
        except av.error.FFmpegError:
            bad += 1
            continue
        for frame in frames:
            arr = frame.to_ndarray()
            if arr.dtype != np.float32:
                arr = arr.astype(np.float32) / 32768.0
            if frame.format.is_planar:
                chunks.append(arr.mean(axis=0))
            else:
                chunks.append(arr.reshape(-1, frame.layout.nb_channels).mean(axis=1))
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return pcm.astype(np.float32), bad


def decode_file(path: str) -> np.ndarray:
    """Decode any audio file to mono float32 PCM at 48 kHz with ffmpeg."""
    out = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", path,
         "-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1"],
        check=True, capture_output=True, timeout=60,
    ).stdout
    return np.frombuffer(out, dtype=np.float32)


def dominant_frequency(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    if len(pcm) == 0:
        return 0.0
    window = pcm * np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(window))
    spectrum[0] = 0
    peak = int(np.argmax(spectrum))
    return peak * sample_rate / len(pcm)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm)))) if len(pcm) else 0.0

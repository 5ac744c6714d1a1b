"""ffmpeg processes and Opus sources. Imports discord (AudioSource) but nothing from the cog."""

from .ffmpeg import (
    FFmpegNotFound,
    ProbeError,
    ProbeResult,
    build_args,
    end_process,
    find_ffmpeg,
    probe_audio,
)
from .ogg import OggOpusReader, opus_frame_duration_ms
from .source import (
    SILENCE_FRAME,
    ChainClosed,
    ChainSource,
    FrameStats,
    TrackStream,
)

__all__ = [
    "SILENCE_FRAME",
    "ChainClosed",
    "ChainSource",
    "FFmpegNotFound",
    "FrameStats",
    "OggOpusReader",
    "ProbeError",
    "ProbeResult",
    "TrackStream",
    "build_args",
    "end_process",
    "find_ffmpeg",
    "opus_frame_duration_ms",
    "probe_audio",
]

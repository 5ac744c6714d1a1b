"""The names the player and the benchmarks import, from where they live now.

``TrackStream`` (one track: ffmpeg or the in-process demuxer filling a prebuffer) is in
music.audio.stream; ``ChainSource`` (the AudioSource a guild plays, chaining tracks) in
music.audio.chain. Importing this module imports discord.py (through the chain).
"""

from __future__ import annotations

from .chain import SILENCE_FRAME, ChainClosed, ChainSource, EventCallback, FrameStats
from .ffmpeg_process import STDERR_TAIL_LINES
from .prebuffer import DEFAULT_PREBUFFER_PACKETS, FRAME_MS, FRAME_SECONDS
from .stream import SHORT_END_TOLERANCE, TrackStream

__all__ = [
    "DEFAULT_PREBUFFER_PACKETS",
    "FRAME_MS",
    "FRAME_SECONDS",
    "SHORT_END_TOLERANCE",
    "SILENCE_FRAME",
    "STDERR_TAIL_LINES",
    "ChainClosed",
    "ChainSource",
    "EventCallback",
    "FrameStats",
    "TrackStream",
]

"""Events posted to the advancer (the one consumer that moves a guild's player forward)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class AdvanceKind(str, Enum):
    """Why the advancer is asked to act."""

    # from the audio thread (through loop.call_soon_threadsafe)
    TRACK_END = "track_end"  # a track finished normally
    TRACK_ERROR = "track_error"  # a track's stream failed mid-way (ffmpeg error, dropped)
    EXHAUSTED = "exhausted"  # the audio source ran out of tracks
    PLAYER_ERROR = "player_error"  # discord.py's player stopped (its `after` callback)
    # from load tasks
    LOADED = "loaded"  # a track's stream is open and buffered (payload: the stream)
    LOAD_FAILED = "load_failed"  # it could not be resolved or opened (error: a sentence)
    # from commands
    SKIP = "skip"
    SKIP_TO = "skip_to"  # position: the 1-based queue index
    PREVIOUS = "previous"
    STOP = "stop"  # stop and clear the queue
    PAUSE = "pause"
    UNPAUSE = "unpause"
    SEEK = "seek"  # position: seconds
    VOLUME = "volume"  # position: percent
    DISCONNECT = "disconnect"  # leave voice, keep the queue
    QUEUE_CHANGED = "queue_changed"  # start if idle, re-plan the prefetch otherwise
    RESCHEDULE = "reschedule"  # re-examine the player (restore, `music reschedule`)
    # from the monitor
    STREAM_STALLED = "stream_stalled"  # no progress for a while: reopen at the position


@dataclass(frozen=True)
class AdvanceEvent:
    """One request to the advancer for one guild."""

    guild_id: int
    kind: AdvanceKind
    track_id: str | None = None
    error: str | None = None
    position: float | None = None
    generation: int | None = None  # the load generation a LOADED/LOAD_FAILED belongs to
    payload: Any = None  # LOADED: the open stream

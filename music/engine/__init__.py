"""Discord-free playback logic: tracks, the queue model, admission limits and time parsing."""

from music.engine.queue import QueueError, QueueModel, RepeatMode
from music.engine.track import Track

__all__ = ["QueueError", "QueueModel", "RepeatMode", "Track"]

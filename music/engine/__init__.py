"""Discord-free playback logic: tracks, the queue model, time parsing and advance events."""

from music.engine.events import AdvanceEvent, AdvanceKind
from music.engine.queue import QueueError, QueueModel, RepeatMode
from music.engine.track import Track

__all__ = ["AdvanceEvent", "AdvanceKind", "QueueError", "QueueModel", "RepeatMode", "Track"]

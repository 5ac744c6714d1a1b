"""What the advancer is asked to act on: one small frozen dataclass per kind of event.

Each event names the guild it is for; its other fields mean one thing only (a seek carries
seconds, a volume change a percentage, a skip-to a queue index). Events come from the control
layer (what members asked for), from the load and prefetch tasks (what they found), from the
audio thread (through ``loop.call_soon_threadsafe``) and from the monitor (what it saw).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine.filters import FilterChain
from ..engine.track import Track


@dataclass(frozen=True)
class PlayerEvent:
    guild_id: int


# -- from the audio thread -------------------------------------------------------------------


@dataclass(frozen=True)
class TrackEnded(PlayerEvent):
    """A track finished normally (the chain source may already play the next one)."""

    track_id: str | None


@dataclass(frozen=True)
class TrackFailed(PlayerEvent):
    """A track's stream failed mid-way; `position` is where it stopped, when known."""

    track_id: str | None
    error: str | None = None
    position: float | None = None


@dataclass(frozen=True)
class SourceExhausted(PlayerEvent):
    """The audio source ran out of tracks before the end was handled."""

    track_id: str | None


@dataclass(frozen=True)
class PlaybackStopped(PlayerEvent):
    """discord.py's playback ended (the sender's `after`): `source` is the one that stopped."""

    source: Any
    error: str | None = None
    track_id: str | None = None
    position: float | None = None


# -- from load, prefetch and background tasks ------------------------------------------------


@dataclass(frozen=True)
class Loaded(PlayerEvent):
    """`track` (a playable copy of the queue entry: fresh stream URL) is open as `stream`."""

    track: Track
    generation: int
    stream: Any


@dataclass(frozen=True)
class LoadFailed(PlayerEvent):
    track_id: str
    generation: int
    error: str


@dataclass(frozen=True)
class Prefetched(PlayerEvent):
    """The next track is open ahead of its turn, for a gapless change."""

    track: Track
    generation: int
    stream: Any


@dataclass(frozen=True)
class PrefetchFailed(PlayerEvent):
    track_id: str


@dataclass(frozen=True)
class BackgroundFailed(PlayerEvent):
    generation: int
    error: str


@dataclass(frozen=True)
class AutoplayResult(PlayerEvent):
    """Autoplay's top-up for `seed` (the track it followed, "-" for none) is done: `queued`
    says whether it queued a pick (the queue's own QueueChanged follows); `notes` are
    sentences for the channel (entries it skipped, or why it stopped)."""

    seed: str
    queued: bool
    notes: tuple[str, ...] = ()


# -- from the control layer ------------------------------------------------------------------


@dataclass(frozen=True)
class Skip(PlayerEvent):
    pass


@dataclass(frozen=True)
class SkipTo(PlayerEvent):
    index: int  # 1-based position in the queue


@dataclass(frozen=True)
class Previous(PlayerEvent):
    pass


@dataclass(frozen=True)
class Stop(PlayerEvent):
    """Stop, and clear the queue."""


@dataclass(frozen=True)
class StopBackground(PlayerEvent):
    """The background was turned off: stop it if it plays."""


@dataclass(frozen=True)
class Pause(PlayerEvent):
    pass


@dataclass(frozen=True)
class Unpause(PlayerEvent):
    pass


@dataclass(frozen=True)
class Seek(PlayerEvent):
    seconds: float


@dataclass(frozen=True)
class SetVolume(PlayerEvent):
    percent: int


@dataclass(frozen=True)
class SetFilters(PlayerEvent):
    """The server's filters, equalizer or normalisation changed: play on through `chain`."""

    chain: FilterChain


@dataclass(frozen=True)
class Disconnect(PlayerEvent):
    """Leave voice and keep the queue and the position."""


@dataclass(frozen=True)
class QueueChanged(PlayerEvent):
    """Start if idle; re-plan the prefetch otherwise."""


@dataclass(frozen=True)
class Reschedule(PlayerEvent):
    """Look at the player again (a restore, `music reschedule`, a lost voice connection)."""


# -- from the monitor ------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick(PlayerEvent):
    """What the monitor saw of this guild's voice channel, once a second."""

    now: float
    connected: bool
    listeners: int  # humans in the bot's voice channel (0 when not connected)
    save_position: bool = False

"""One guild's player state. Written only by the player's handlers and the control layer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..engine.filters import FilterChain
from ..engine.queue import QueueModel
from ..engine.track import Track
from ..store_chunks import PlayerCapture


class PlayerState(str, Enum):
    IDLE = "idle"  # nothing playing (the queue may still hold tracks)
    LOADING = "loading"  # the current track is being resolved or opened
    PLAYING = "playing"
    PAUSED = "paused"
    BACKGROUND = "background"  # the queue is empty; the server's background stream plays


@dataclass
class GuildPlayer:
    """What the cog knows about one guild's playback."""

    guild_id: int
    queue: QueueModel = field(default_factory=QueueModel)
    volume: int = 100
    filters: FilterChain = field(default_factory=FilterChain)  # the server's (music.store)
    state: PlayerState = PlayerState.IDLE
    channel_id: int | None = None  # the voice channel to be in
    text_channel_id: int | None = None  # where now-playing and errors go
    source: Any = None  # the ChainSource playing into voice
    start_position: float = 0.0  # where the current track starts when (re)loaded
    generation: int = 0  # bumps on every load; stale load results are dropped
    # the load in flight reopens the playing track for a new sound (volume, filters): its
    # stream takes over where the playing one has got to (ChainSource.splice), not from the
    # position asked for, which the playing stream has left behind while it opened
    splice_load: bool = False
    load_task: asyncio.Task[None] | None = None
    prefetch_task: asyncio.Task[None] | None = None
    prefetched_id: str | None = None
    recoveries: int = 0
    paused_on_load: bool = False  # restored paused: load the track, then pause it
    auto_paused: bool = False  # paused by the monitor because everyone left
    skip_votes: dict[str, set[int]] = field(default_factory=dict)  # track id -> member ids
    background: Track | None = None  # the resolved background, while it plays
    autoplay_task: asyncio.Task[None] | None = None  # a top-up asked of autoplay, in flight
    # the track autoplay last found nothing for (its id, "-" for none): not asked again for it
    autoplay_refused_for: str | None = None
    # ids of queue entries restored from saved data whose stored stream URL is not trusted:
    # each is looked up again (the checks of a new `play`) before it is opened
    unverified: set[str] = field(default_factory=set)
    # monitor bookkeeping
    idle_since: float = field(default_factory=time.monotonic)
    alone_since: float | None = None
    last_position: float = 0.0
    last_progress_at: float = field(default_factory=time.monotonic)

    @property
    def position(self) -> float:
        """Seconds into the current track."""
        source = self.source
        # a splice load reopens the track while it plays on: its position still moves
        on_air = self.state in (PlayerState.PLAYING, PlayerState.PAUSED) or (
            self.splice_load and self.state is PlayerState.LOADING)
        if on_air and source is not None:
            if self.queue.current is not None and source.current_track_id == self.queue.current.id:
                position = source.position
                if position is not None:
                    return float(position)
        return self.start_position

    @property
    def active(self) -> bool:
        """Playing or paused: a track is in the voice player."""
        return self.state in (PlayerState.PLAYING, PlayerState.PAUSED)

    def head(self) -> dict[str, Any]:
        """The small persisted values (everything but the queue)."""
        return {
            "position": round(self.position, 2),
            "paused": self.state is PlayerState.PAUSED,
            "channel_id": self.channel_id,
            "text_channel_id": self.text_channel_id,
            "volume": self.volume,
        }

    def capture(self) -> PlayerCapture:
        """What store.MusicStore.mark_dirty writes: the head and list copies of the queue, cheap
        enough for the event loop (the tracks are serialized in a thread)."""
        return PlayerCapture.of(self.head(), self.queue)

    def snapshot(self) -> dict[str, Any]:
        """The whole persisted form as one dict (serializes every track: not for hot paths)."""
        return {"queue": self.queue.to_dict(), **self.head()}

    @classmethod
    def from_snapshot(cls, guild_id: int, data: dict[str, Any]) -> GuildPlayer:
        player = cls(guild_id=guild_id)
        if data.get("queue"):
            player.queue = QueueModel.from_dict(data["queue"])
        player.start_position = float(data.get("position") or 0.0)
        player.channel_id = data.get("channel_id")
        player.text_channel_id = data.get("text_channel_id")
        player.volume = int(data.get("volume", 100))
        player.paused_on_load = bool(data.get("paused"))
        return player

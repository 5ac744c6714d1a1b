"""What the player needs from the outside world, as small interfaces.

The player decides; these ports do. The cog plugs in the real ones (discord.py voice, the
audio pipeline, the lookup service: ``player.adapters``); the transition tests plug in fakes,
so every decision can be tested without Red, sockets or ffmpeg.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..engine.filters import FilterChain
from ..engine.track import Track
from ..resolve.jobs import Priority


class VoiceHandle(Protocol):
    """A connected voice client (discord.VoiceClient has these)."""

    def is_playing(self) -> bool: ...
    def is_paused(self) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> None: ...


class VoicePort(Protocol):
    def connected(self, guild_id: int) -> VoiceHandle | None:
        """The guild's voice client when it is connected, else None."""

    async def ensure(self, guild_id: int, channel_id: int | None) -> None:
        """Be connected in `channel_id` (no-op when connected); raises VoiceError."""

    async def disconnect(self, guild_id: int) -> None: ...


SourceCallback = Callable[[str, str | None, str | None], None]
AfterCallback = Callable[[BaseException | None], None]


class AudioPort(Protocol):
    """Opening streams and playing a chain of them into a voice client."""

    async def open(self, track: Track, start: float, volume: int, filters: FilterChain | None = None) -> Any:
        """A started stream (buffered) of `track` from `start` (seconds of the track), at
        `volume` percent through `filters`; raises StreamOpenError."""

    def new_source(self, on_event: SourceCallback) -> Any:
        """A chain source; `on_event(kind, track_id, error)` is called from the audio thread."""

    def play(self, voice: VoiceHandle, source: Any, after: AfterCallback) -> None: ...

    async def close(self, timeout: float) -> None:
        """Stop the audio threads (every playback was stopped before)."""


class TrackPort(Protocol):
    """Making queued tracks playable: fresh stream URLs, local paths, the background."""

    async def playable(self, guild_id: int, track: Track, priority: Priority, *, stored: bool = False) -> Track:
        """A copy of `track` that can be opened now (raises ResolveError/PolicyError);
        `stored`: its stream URL came from saved data, so it is looked up again."""

    async def background(self, guild_id: int, url: str, known: Track | None) -> Track: ...

    def forget_stream(self, track: Track) -> None:
        """Drop a cached stream URL that just failed, so the next lookup fetches a new one."""


class AutoplayPort(Protocol):
    """What plays when the queue runs dry (the control layer's autoplay: it queues through the
    control layer, so every rule of the server applies)."""

    async def top_up(self, guild_id: int, seed: Track | None) -> tuple[bool, list[str]]:
        """Queue the next autoplay track after `seed` if the queue is still dry; returns
        (queued, sentences for the channel)."""


Notifier = Callable[[Any, str], Awaitable[None]]  # (the GuildPlayer, a sentence); never raises
Announcer = Callable[[Any, Track], Awaitable[None]]  # (the GuildPlayer, the track now playing)


class PlayerSettings(Protocol):
    """The per-guild settings the player reads (store.GuildSettings has these)."""

    notify: bool
    background: str | None
    empty_disconnect: int
    idle_disconnect: int
    pause_when_alone: bool
    autoplay_mode: str  # "off", or what autoplay plays when the queue runs dry

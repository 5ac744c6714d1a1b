"""Fakes for the player's ports (voice, audio, lookups): the state machine without Red,
sockets or ffmpeg. Each fake records what the player asked of it, so a test can assert it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

from music.engine.filters import FilterChain
from music.engine.track import Track
from music.player import PlayerManager
from music.player.errors import StreamOpenError, VoiceError
from music.resolve.resolver import ResolveError


class FakeVC:
    def __init__(self) -> None:
        self.playing = False
        self.paused = False
        self.calls: list[str] = []

    def is_playing(self) -> bool:
        return self.playing and not self.paused

    def is_paused(self) -> bool:
        return self.playing and self.paused

    def pause(self) -> None:
        self.calls.append("pause")
        self.paused = True

    def resume(self) -> None:
        self.calls.append("resume")
        self.paused = False

    def stop(self) -> None:
        self.calls.append("stop")
        self.playing = self.paused = False


class FakeVoice:
    def __init__(self) -> None:
        self.vcs: dict[int, FakeVC] = {}
        self.join_error: str | None = None
        self.joins: list[tuple[int, int | None]] = []
        self.disconnects: list[int] = []

    def connected(self, guild_id: int) -> FakeVC | None:
        return self.vcs.get(guild_id)

    async def ensure(self, guild_id: int, channel_id: int | None) -> None:
        if guild_id in self.vcs:
            return
        self.joins.append((guild_id, channel_id))
        if self.join_error:
            raise VoiceError(self.join_error)
        self.vcs[guild_id] = FakeVC()

    async def disconnect(self, guild_id: int) -> None:
        self.disconnects.append(guild_id)
        self.vcs.pop(guild_id, None)


@dataclass
class FakeStream:
    track_id: str
    start: float
    volume: int
    closed: bool = False
    filters: FilterChain | None = None

    def close(self) -> None:
        self.closed = True


class FakeSource:
    """What the player uses of ChainSource; `position` is set by the test."""

    def __init__(self, on_event: Callable[[str, str | None, str | None], None]) -> None:
        self.on_event = on_event
        self.stream: FakeStream | None = None
        self.next: FakeStream | None = None
        self.current_track_id: str | None = None
        self.position: float | None = 0.0
        self.exhausted = False
        self.closed = False
        self.last_end: tuple[str, float] | None = None
        self.cleaned = False
        self.splices: list[FakeStream] = []  # streams spliced in at the playing position

    def play_now(self, stream: FakeStream, track_id: str) -> None:
        self.stream, self.current_track_id = stream, track_id
        self.position = stream.start

    def splice(self, stream: FakeStream, track_id: str) -> None:
        """As ChainSource.splice: the stream takes over where the playing one has got to."""
        self.splices.append(stream)
        self.stream, self.current_track_id = stream, track_id

    def set_next(self, stream: FakeStream, track_id: str) -> None:
        self.next = stream

    def clear_next(self) -> None:
        self.next = None

    def switch_to_next(self) -> None:
        """As the chain source does inside read() when the current stream ends."""
        assert self.next is not None
        self.stream, self.next = self.next, None
        self.current_track_id = self.stream.track_id
        self.position = 0.0

    def cleanup(self) -> None:
        self.cleaned = True
        self.closed = True

    def wait_closed(self, timeout: float) -> bool:
        return True


class FakeAudio:
    def __init__(self) -> None:
        self.opened: list[FakeStream] = []
        self.sources: list[FakeSource] = []
        self.fail: dict[str, str] = {}  # track id -> error sentence
        self.gate: asyncio.Event | None = None  # when set, opens wait for it
        self.afters: list[Callable[[BaseException | None], None]] = []
        self.closed = False

    async def open(self, track: Track, start: float, volume: int,
                   filters: FilterChain | None = None) -> FakeStream:
        if self.gate is not None:
            await self.gate.wait()
        if track.id in self.fail:
            raise StreamOpenError(self.fail[track.id])
        stream = FakeStream(track.id, start, volume, filters=filters)
        self.opened.append(stream)
        return stream

    def new_source(self, on_event: Callable[[str, str | None, str | None], None]) -> FakeSource:
        source = FakeSource(on_event)
        self.sources.append(source)
        return source

    def play(self, voice: FakeVC, source: FakeSource, after: Callable[[BaseException | None], None]) -> None:
        voice.playing, voice.paused = True, False
        self.afters.append(after)

    async def close(self, timeout: float) -> None:
        self.closed = True


class FakeTracks:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []  # (track id, stored)
        self.fail: dict[str, str] = {}
        self.forgotten: list[str] = []
        self.backgrounds = 0

    async def playable(self, guild_id: int, track: Track, priority: Any, *, stored: bool = False) -> Track:
        self.calls.append((track.id, stored))
        if track.id in self.fail:
            raise ResolveError(self.fail[track.id])
        return track.copy(stream_url=f"http://media.example/{track.id}", stream_expires=None)

    async def background(self, guild_id: int, url: str, known: Track | None) -> Track:
        self.backgrounds += 1
        return known if known is not None and known.query == url else Track(query=url, title="background", stream_url=url)

    def forget_stream(self, track: Track) -> None:
        self.forgotten.append(track.id)


@dataclass
class Rig:
    """A PlayerManager on fakes, with what it told the guild."""

    manager: PlayerManager
    voice: FakeVoice
    audio: FakeAudio
    tracks: FakeTracks
    settings: SimpleNamespace
    notices: list[str] = field(default_factory=list)
    announced: list[str] = field(default_factory=list)
    saves: int = 0

    async def settle(self) -> None:
        await self.manager.idle()


GUILD = 1


def make_rig(**settings: Any) -> Rig:
    voice, audio, tracks = FakeVoice(), FakeAudio(), FakeTracks()
    values = dict(notify=True, background=None, empty_disconnect=60, idle_disconnect=300, pause_when_alone=False,
                  autoplay_mode="off")
    values.update(settings)
    guild_settings = SimpleNamespace(**values)
    rig: Rig

    async def notify(player: Any, text: str) -> None:
        rig.notices.append(text)

    async def announce(player: Any, track: Track) -> None:
        rig.announced.append(track.title)

    def save(player: Any) -> None:
        rig.saves += 1

    manager = PlayerManager(
        voice=voice, audio=audio, tracks=tracks, settings=lambda gid: guild_settings,
        save=save, notify=notify, announce=announce,
    )
    rig = Rig(manager, voice, audio, tracks, guild_settings)
    return rig


def tracks(*titles: str, duration: float = 180.0) -> list[Track]:
    return [Track(query=f"http://site.example/{t}", title=t, duration=duration) for t in titles]

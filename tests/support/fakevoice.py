"""Just enough of a Discord guild, member and context to run the cog's commands inside a real
(unconnected) Red bot, with voice played by discord.py's REAL AudioPlayer thread into a packet
recorder. The end-to-end tests use the stand-in instead; these keep Red-level tests fast."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import discord
from discord.player import AudioPlayer

_ids = itertools.count(10_000_000_000_000_000)


class FakeVoiceClient:
    """Records what discord.py's AudioPlayer would send to Discord."""

    def __init__(self, loop: asyncio.AbstractEventLoop, channel: FakeVoiceChannel) -> None:
        self.loop = loop
        self.client = SimpleNamespace(loop=loop)  # AudioPlayer._speak reads client.client.loop
        self.ws = SimpleNamespace(speak=self._speak)
        self.channel = channel
        self.timeout = 5.0
        self.connected = True
        self.packets: list[tuple[float, bytes]] = []
        self._player: AudioPlayer | None = None

    async def _speak(self, state: Any) -> None:
        return None

    # what AudioPlayer calls, from its thread
    def send_audio_packet(self, data: bytes, encode: bool = True) -> None:
        assert not encode, "the cog must hand discord.py Opus, never PCM"
        self.packets.append((time.monotonic(), bytes(data)))

    def is_connected(self) -> bool:
        return self.connected

    def wait_until_connected(self, timeout: float) -> bool:
        return self.connected

    # what the cog calls
    def play(self, source: discord.AudioSource, *, after=None) -> None:
        if self._player is not None and self._player.is_alive() and not self._player._end.is_set():
            raise discord.ClientException("Already playing audio.")
        self._player = AudioPlayer(source, self, after=after)  # type: ignore[arg-type]
        self._player.start()

    def is_playing(self) -> bool:
        return self._player is not None and self._player.is_playing()

    def is_paused(self) -> bool:
        return self._player is not None and self._player.is_paused()

    def pause(self) -> None:
        if self._player:
            self._player.pause()

    def resume(self) -> None:
        if self._player:
            self._player.resume()

    def stop(self) -> None:
        if self._player:
            self._player.stop()
            self._player = None

    async def move_to(self, channel: FakeVoiceChannel) -> None:
        self.channel = channel

    async def disconnect(self, *, force: bool = False) -> None:
        player = self._player
        self.stop()
        if player is not None:
            await asyncio.to_thread(player.join, 5)
        self.connected = False
        if self.channel.guild.voice_client is self:
            self.channel.guild.voice_client = None

    def opus_packets(self, since: float = 0.0) -> list[bytes]:
        return [p for t, p in self.packets if t >= since]


@dataclass(eq=False)
class FakeVoiceChannel:
    guild: FakeGuild
    name: str = "Music"
    id: int = field(default_factory=lambda: next(_ids))
    members: list[Any] = field(default_factory=list)
    user_limit: int = 0
    connects: int = 0

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def permissions_for(self, member: Any) -> discord.Permissions:
        return discord.Permissions.all()

    async def connect(self, *, timeout: float = 60.0, self_deaf: bool = False, **_: Any) -> FakeVoiceClient:
        self.connects += 1
        vc = FakeVoiceClient(asyncio.get_running_loop(), self)
        self.guild.voice_client = vc
        self.members.append(self.guild.me)
        return vc


@dataclass(eq=False)
class FakeGuild:
    id: int = field(default_factory=lambda: next(_ids))
    voice_client: FakeVoiceClient | None = None
    channels: dict[int, Any] = field(default_factory=dict)
    me: Any = None

    def __post_init__(self) -> None:
        self.me = SimpleNamespace(id=next(_ids), bot=True, display_name="bot")

    def get_channel(self, channel_id: int) -> Any:
        return self.channels.get(channel_id)

    def add_voice_channel(self, name: str = "Music") -> FakeVoiceChannel:
        channel = FakeVoiceChannel(guild=self, name=name)
        self.channels[channel.id] = channel
        return channel


class FakeMessage:
    """A sent message; `edits` records every later content."""

    def __init__(self, content: str | None) -> None:
        self.id = next(_ids)
        self.content = content
        self.edits: list[str | None] = []

    async def edit(self, *, content: str | None = None, **_: Any) -> FakeMessage:
        self.content = content
        self.edits.append(content)
        return self


class FakeContext:
    """A command context: replies are collected in `sent`."""

    def __init__(self, bot: Any, guild: FakeGuild, author: Any, *, embeds: bool = False) -> None:
        self.bot = bot
        self.guild = guild
        self.author = author
        self.channel = SimpleNamespace(id=next(_ids))
        self.sent: list[dict[str, Any]] = []
        self.messages: list[FakeMessage] = []
        self.clean_prefix = "!"
        self._embeds = embeds

    async def send(self, content: str | None = None, **kwargs: Any) -> FakeMessage:
        self.sent.append({"content": content, **kwargs})
        message = FakeMessage(content)
        self.messages.append(message)
        return message

    async def embed_requested(self) -> bool:
        return self._embeds

    def typing(self) -> Any:
        class _Typing:
            async def __aenter__(self) -> None:
                return None

            async def __aexit__(self, *exc: Any) -> None:
                return None

        return _Typing()

    @property
    def last(self) -> str:
        return self.sent[-1]["content"] or ""


def member_in(channel: FakeVoiceChannel | None, name: str = "member") -> Any:
    """A human member, in `channel` if given."""
    member = SimpleNamespace(id=next(_ids), bot=False, display_name=name, name=name)
    member.voice = SimpleNamespace(channel=channel) if channel is not None else None
    if channel is not None:
        channel.members.append(member)
    return member

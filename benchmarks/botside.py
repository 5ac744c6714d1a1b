"""The bot's side of the benchmarks: discord.py voice clients (``VoiceHarness``, no main gateway)
connected to the stand-in process, and the two ways of playing that are compared.

* ours: one ``ChainSource`` per guild playing ``TrackStream``s, opened and made ready in a worker
  thread first, sent by the one ``SharedSender`` thread of the process (``play_ours``), the way
  the cog's player does (``music/player.py``);
* the baseline: ``discord.FFmpegOpusAudio`` per track, the next track started from ``after``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

import aiohttp
import discord

from music.audio.sender import AfterCallback, SharedSender
from music.audio.source import ChainSource, TrackStream
from standin.voice import client_ssl_context
from standin.voice_harness import VoiceHarness

CONNECT_TIMEOUT = 20.0
#: voice connections opened at once: 150 simultaneous TLS handshakes would only measure a queue
CONNECT_BATCH = 10


class TokenVoiceServer:
    """What ``VoiceHarness`` asks of a ``VoiceServer``, with the sessions already opened in the
    stand-in process (by the parent, which passed their tokens here)."""

    def __init__(self, endpoint: str, ca_file: str, tokens: dict[int, str]) -> None:
        self.endpoint = endpoint
        self.ca_file = ca_file
        self.tokens = tokens

    def open_session(self, guild_id: int, user_id: int, session_id: str) -> str:
        return self.tokens[guild_id]

    def close_session(self, guild_id: int) -> None:
        """The parent closes the remote sessions when the run ends."""


def new_session_id() -> str:
    return secrets.token_hex(16)


async def connect_harnesses(server: Any, guilds: Sequence[tuple[int, str]]) -> list[VoiceHarness]:
    """Connect one voice client per (guild_id, gateway session id), sharing one discord.Client."""
    harnesses: list[VoiceHarness] = []
    client: discord.Client | None = None
    for guild_id, session_id in guilds:
        harness = VoiceHarness(server, guild_id=guild_id, channel_id=guild_id + 1, client=client)
        harness.gateway_session_id = session_id
        if client is None:
            client = harness.client = await harness._make_client()
            await _unlimited_connections(client, server.ca_file)
        harnesses.append(harness)
    for begin in range(0, len(harnesses), CONNECT_BATCH):
        batch = harnesses[begin : begin + CONNECT_BATCH]
        await asyncio.gather(*(h.connect(timeout=CONNECT_TIMEOUT) for h in batch))
    return harnesses


async def _unlimited_connections(client: discord.Client, ca_file: str) -> None:
    """Give the shared client an HTTP session without aiohttp's default cap of 100 connections.

    Each voice websocket holds one connection of the session for as long as it is open, so the
    harness's default session (limit 100) stalls the 101st voice client forever; discord.py's own
    session uses ``TCPConnector(limit=0)``."""
    old = client.http._HTTPClient__session  # type: ignore[attr-defined]
    connector = aiohttp.TCPConnector(limit=0, ssl=client_ssl_context(ca_file))
    client.http._HTTPClient__session = aiohttp.ClientSession(connector=connector)  # type: ignore[attr-defined]
    await old.close()


async def close_harnesses(harnesses: Sequence[VoiceHarness]) -> None:
    # the client's owner (the first harness, which made it) last, so the others still have its
    # HTTP session while they leave
    for harness in sorted(harnesses, key=lambda h: h._own_client):
        try:
            await asyncio.wait_for(harness.close(), 10)
        except Exception:
            pass


class ChainEvents:
    """A ChainSource event callback that hands (kind, track_id) to the loop thread-safely."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        self.seen: list[tuple[str, str | None]] = []  # (kind, error) of every event, for reports

    def __call__(self, kind: str, track_id: str | None, error: str | None) -> None:
        # called on discord.py's audio thread: never touch the queue from there directly
        self.seen.append((kind, error))  # list.append is atomic under the GIL
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, track_id))

    async def wait_for(self, kind: str, track_id: str | None, timeout: float) -> None:
        async def find() -> None:
            while True:
                got_kind, got_id = await self.queue.get()
                if got_kind in ("track_error", "exhausted"):
                    raise RuntimeError(f"{got_kind} while waiting for {kind} of {track_id}")
                if got_kind == kind and got_id == track_id:
                    return

        await asyncio.wait_for(find(), timeout)


def _start_and_wait(stream: TrackStream, timeout: float) -> None:
    stream.start()
    if not stream.wait_ready(timeout):
        raise RuntimeError(stream.error or "the stream gave no audio in time")


async def open_stream(ffmpeg: str, url: str, *, passthrough: bool, timeout: float = 10.0,
                      in_process: bool = True) -> TrackStream:
    """A started TrackStream with its first packet buffered, as the cog's ``_open_stream``
    (which copies WebM/Ogg Opus in process)."""
    stream = TrackStream(ffmpeg, url, passthrough=passthrough, in_process=in_process)
    await asyncio.to_thread(_start_and_wait, stream, timeout)
    return stream


_ours_sender: SharedSender | None = None


def ours_sender(phases: int | None = None) -> SharedSender:
    """The process's one audio sender, as the cog has one (``PlayerManager.sender``);
    ``phases`` (first call only) overrides its default, for comparing settings."""
    global _ours_sender
    if _ours_sender is None:
        _ours_sender = SharedSender() if phases is None else SharedSender(phases=phases)
    return _ours_sender


def play_ours(vc: Any, chain: ChainSource, after: AfterCallback | None = None) -> None:
    """Play a chain the way the cog does: on the shared sender, not ``vc.play`` (a thread per
    guild). ``vc.stop()``, ``vc.is_playing()`` and the rest keep working (see music.audio.sender)."""
    ours_sender().play(vc, chain, after=after)


def baseline_source(ffmpeg: str, url: str, *, copy: bool) -> discord.FFmpegOpusAudio:
    """What most bots play: FFmpegOpusAudio, copying Opus input or transcoding with its defaults."""
    return discord.FFmpegOpusAudio(url, executable=ffmpeg, codec="copy" if copy else None)


def baseline_pid(source: discord.FFmpegOpusAudio) -> int | None:
    process = getattr(source, "_process", None)
    return process.pid if process is not None else None

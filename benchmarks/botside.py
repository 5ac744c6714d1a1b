"""The bot's side of the benchmarks: discord.py voice clients (``VoiceHarness``, no main gateway)
connected to the stand-in process, and the two ways of playing that are compared.

* ours: one ``ChainSource`` per guild playing ``TrackStream``s, opened and made ready in a worker
  thread first, sent by the one ``SharedSender`` thread of the process (``play_ours``), the way
  the cog's player does (``music/player.py``);
* the baseline: ``discord.FFmpegOpusAudio`` per track, the next track started from ``after``;
  discord.py's example pattern (``FFmpegPCMAudio`` + ``PCMVolumeTransformer``) beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp
import discord

from music.audio.sender import AfterCallback, SharedSender
from music.audio.source import ChainSource, TrackStream
from music.audio.transcoder import shared_transcoder, warm_up_shared_transcoder
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
                      in_process: bool = True, proxy: str | None = None) -> TrackStream:
    """A started TrackStream with its first packet buffered, as the cog's ``_open_stream``
    (which copies WebM/Ogg Opus in process); ``proxy``: the network guard's, as the cog's."""
    transcoder = shared_transcoder()  # transcoding in the shared worker, as the cog's streams
    if transcoder is not None and transcoder.worker_pid is None:
        # started before any stream, as the cog does at load (not on the first play)
        await asyncio.to_thread(warm_up_shared_transcoder)
    stream = TrackStream(ffmpeg, url, passthrough=passthrough, in_process=in_process, proxy=proxy,
                         transcoder=transcoder)
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


#: libopus's loss settings, by name: discord.py's (FFmpegOpusAudio's ffmpeg arguments and its
#: Encoder) and the cog's (music.audio.ffmpeg.build_args). None = each side its own.
ENCODER_SETTINGS = {
    "discord": {"fec": True, "packet_loss": 15},  # FEC on, 15 % expected loss
    "ours": {"fec": False, "packet_loss": 0},  # FEC off
}


def encoder_label(encoder: str | None) -> str:
    if encoder is None:
        return "each its own (ours FEC off; baselines FEC on, 15 % loss)"
    settings = ENCODER_SETTINGS[encoder]
    return f"all FEC on, {settings['packet_loss']} % loss" if settings["fec"] else "all FEC off"


def tls_input_options(url: str, ca_file: str | None) -> str | None:
    """ffmpeg input options that make it verify an https source's certificate against the
    stand-in's CA (the baselines open the URL themselves; ours verifies through SSL_CERT_FILE,
    see common.trust_standin_ca). tls_verify is on by default from ffmpeg 8, off before."""
    if ca_file is None or not url.lower().startswith("https:"):
        return None
    return f"-tls_verify 1 -ca_file {shlex.quote(ca_file)}"


def baseline_source(ffmpeg: str, url: str, *, copy: bool, encoder: str | None = None,
                    ca_file: str | None = None) -> discord.FFmpegOpusAudio:
    """What most bots play: FFmpegOpusAudio, copying Opus input or transcoding with its defaults
    (or with `encoder`'s loss settings: ffmpeg takes the last of a repeated option); ``ca_file``:
    the CA an https source's certificate is verified against."""
    options = None
    if encoder is not None and not copy:
        settings = ENCODER_SETTINGS[encoder]
        options = f"-fec {str(settings['fec']).lower()} -packet_loss {settings['packet_loss']}"
    return discord.FFmpegOpusAudio(url, executable=ffmpeg, codec="copy" if copy else None,
                                   before_options=tls_input_options(url, ca_file), options=options)


def pcm_play_options(encoder: str | None) -> dict[str, Any]:
    """vc.play's encoder arguments for the PCM baseline (discord.py encodes its frames)."""
    if encoder is None:
        return {}
    settings = ENCODER_SETTINGS[encoder]
    # discord.py refuses 0 % even with FEC off (it only applies the figure with FEC on)
    return {"fec": settings["fec"], "expected_packet_loss": max(settings["packet_loss"], 1) / 100}


def use_encoder_for_ours(encoder: str | None) -> None:
    """Make the cog's transcodes use `encoder`'s loss settings in this process (benchmark only:
    music.audio.stream calls build_args for every ffmpeg it starts, and the shared transcoder's
    start_job for every job of its worker)."""
    if encoder is None:
        return
    import music.audio.stream as stream_module
    from music.audio.transcoder import SharedTranscoder

    settings = ENCODER_SETTINGS[encoder]
    build = stream_module.build_args
    start_job = SharedTranscoder.start_job

    def start_job_with_settings(self: SharedTranscoder, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("fec", settings["fec"])
        kwargs.setdefault("packet_loss", settings["packet_loss"])
        return start_job(self, *args, **kwargs)

    SharedTranscoder.start_job = start_job_with_settings  # type: ignore[method-assign]

    def build_args(*args: Any, **kwargs: Any) -> list[str]:
        built = build(*args, **kwargs)
        for option, value in (("-fec", str(settings["fec"]).lower()),
                              ("-packet_loss", str(settings["packet_loss"]))):
            if option in built:
                built[built.index(option) + 1] = value
        return built

    stream_module.build_args = build_args  # type: ignore[assignment]


@contextlib.contextmanager
def encoder_for_ours(encoder: str) -> Iterator[None]:
    """``use_encoder_for_ours`` for the transcodes started inside the block only, for a row that
    compares the settings in one process (the rows after it get the cog's own again)."""
    import music.audio.stream as stream_module
    from music.audio.transcoder import SharedTranscoder

    original, original_start_job = stream_module.build_args, SharedTranscoder.start_job
    use_encoder_for_ours(encoder)
    try:
        yield
    finally:
        stream_module.build_args = original  # type: ignore[assignment]
        SharedTranscoder.start_job = original_start_job  # type: ignore[method-assign]


def pcm_baseline_source(ffmpeg: str, url: str, *,
                        ca_file: str | None = None) -> discord.PCMVolumeTransformer:
    """discord.py's own example pattern (examples/basic_voice.py): FFmpegPCMAudio under a
    PCMVolumeTransformer; discord.py encodes every 20 ms frame with its Encoder (libopus,
    128 kb/s, FEC on, 15 % expected loss). No Ogg headers, no 1-second Ogg pages. ``ca_file``:
    as for :func:`baseline_source`."""
    source = discord.FFmpegPCMAudio(url, executable=ffmpeg,
                                    before_options=tls_input_options(url, ca_file))
    return discord.PCMVolumeTransformer(source, volume=1.0)


def baseline_pid(source: Any) -> int | None:
    source = getattr(source, "original", source)  # under a PCMVolumeTransformer
    process = getattr(source, "_process", None)
    return process.pid if process is not None else None

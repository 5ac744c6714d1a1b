"""discord.py's real VoiceClient in a call with the stand-in's voice server (DAVE on): the
fixtures and helpers the voice tests share (tests/standin/test_dave.py,
tests/standin/test_voice_discordpy.py, tests/audio/test_voice_packets.py).

A test module takes the fixtures by importing them:
``from tests.support.voice_call import harness_fixture, server_fixture  # noqa: F401``
(the fixtures are named ``server``, ``harness`` and ``tone_2s``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import imageio_ffmpeg
import pytest

from standin.voice import VoiceServer
from standin.voice_harness import VoiceHarness
from tests.support.media import generate_tone

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# discord.py's connect timeout; also how long it waits for a VOICE_SERVER_UPDATE after a 4014
CONNECT_TIMEOUT = 4.0


@pytest.fixture(name="server")
async def server_fixture() -> AsyncIterator[VoiceServer]:
    # DAVE on even under STANDIN_DAVE=0: these tests assert that discord.py joins the group
    voice = VoiceServer(dave=True)
    await voice.start()
    yield voice
    await voice.stop()


@pytest.fixture(name="harness")
async def harness_fixture(server: VoiceServer) -> AsyncIterator[VoiceHarness]:
    h = VoiceHarness(server)
    yield h
    await h.close()


@pytest.fixture(name="tone_2s", scope="module")
def tone_2s_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_tone(tmp_path_factory.mktemp("tone") / "a440.ogg", 440.0, 2.0)


def start_playing(vc: discord.VoiceClient, path: Path) -> asyncio.Future[Exception | None]:
    """Play `path` with discord.py's own FFmpegOpusAudio; the future gets `after`'s error."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[Exception | None] = loop.create_future()
    # `after` runs in the player thread: hand the result to the loop thread-safely
    vc.play(discord.FFmpegOpusAudio(str(path), executable=FFMPEG),
            after=lambda error: loop.call_soon_threadsafe(finished.set_result, error))
    return finished


async def play_to_end(vc: discord.VoiceClient, path: Path) -> None:
    assert await asyncio.wait_for(start_playing(vc, path), 15) is None

"""A plain, unmodified discord.py Client (not Red) logs in to the whole stand-in (REST, main gateway,
voice server), joins the voice channel and plays a tone; the stand-in hears it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import discord
import imageio_ffmpeg
import pytest
import yarl

from standin import Standin, analysis
from standin.voice import client_ssl_context
from tests.support.media import generate_tone

pytestmark = pytest.mark.e2e


@pytest.fixture
async def standin() -> AsyncIterator[Standin]:
    s = Standin()
    await s.start()
    s.default_world()
    yield s
    await s.stop()


@pytest.fixture
async def client(standin: Standin, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[discord.Client]:
    monkeypatch.setattr(discord.http.Route, "BASE", standin.api_url)
    # unlike Red's AutoShardedClient, a plain Client skips GET /gateway/bot and dials this URL
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(standin.gateway_url))
    # the voice websocket is wss:// and verified: trust the stand-in's throwaway certificate
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(standin.voice.ca_file))
    # guild_ready_timeout: the stand-in sends every GUILD_CREATE at once; do not wait 2 s for more
    bot = discord.Client(intents=discord.Intents.default(), connector=connector, guild_ready_timeout=0.2)
    await bot.login(standin.token)
    runner = asyncio.create_task(bot.connect(reconnect=False))
    await asyncio.wait_for(bot.wait_until_ready(), 15)
    yield bot
    await bot.close()
    await asyncio.wait_for(runner, 10)


async def test_plain_discord_py_client_plays_a_tone_the_stand_in_hears(
    standin: Standin, client: discord.Client, tmp_path: Path
) -> None:
    world = standin.default_world()
    channel = client.get_channel(world.music.id)
    assert isinstance(channel, discord.VoiceChannel)

    vc = await channel.connect(timeout=10)
    assert standin.bot_voice_channel(world.guild) is world.music
    await standin.voice.wait_connected(world.guild.id, timeout=5)

    tone = generate_tone(tmp_path / "a440.ogg", 440.0, 2.0)
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[Exception | None] = loop.create_future()
    vc.play(discord.FFmpegOpusAudio(str(tone), executable=imageio_ffmpeg.get_ffmpeg_exe()),
            after=lambda error: loop.call_soon_threadsafe(finished.set_result, error))
    assert await asyncio.wait_for(finished, 15) is None

    audio = standin.voice.audio(world.guild.id)
    await audio.wait_for_quiet(0.2, timeout=5)
    [segment] = analysis.segment_by_frequency(audio)
    assert abs(segment.frequency - 440.0) < 3.0
    assert abs(segment.duration - 2.0) < 0.1
    assert abs(analysis.dominant_frequency(audio.pcm()) - 440.0) < 2.0
    assert audio.decrypt_failures == 0 and standin.voice.protocol_errors == []

    await vc.disconnect()
    await standin.wait_for_bot_voice(world.guild, None)
    assert not standin.voice.has_session(world.guild.id)


async def test_moderator_disconnect_ends_discord_py_voice_at_once(
    standin: Standin, client: discord.Client
) -> None:
    world = standin.default_world()
    channel = client.get_channel(world.music.id)
    vc = await channel.connect(timeout=10)
    await standin.voice.wait_connected(world.guild.id, timeout=5)

    await standin.leave_voice(world.bot)  # the gateway closes the session: voice ws gets 4014
    for _ in range(40):
        if not vc.is_connected():
            break
        await asyncio.sleep(0.05)
    assert not vc.is_connected()
    closed = standin.voice.events(world.guild.id, "ws_closed")
    assert closed[-1].detail == {"by": "server", "code": 4014}

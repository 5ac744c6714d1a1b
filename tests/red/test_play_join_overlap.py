"""`play` joins voice and looks the query up at the same time (row 2b of the benchmarks: a first
play from outside the channel waits for the slower of the two, not for both), and a failed join
still ends the command with its sentence and queues nothing."""

from __future__ import annotations

import asyncio
import time

import pytest
from redbot.core.bot import Red

from music.cog import Music
from music.commands.base import CommandError
from tests.support.fakevoice import FakeContext, FakeGuild, member_in
from tests.support.redlevel import World, load_cog

#: how long the fake voice channel takes to connect: long enough to see the lookup run inside it
CONNECT_SECONDS = 0.4


async def allow_loopback(cog: Music) -> None:
    await cog.musicset_network.get_command("allow")(FakeContext(cog.bot, FakeGuild(), None), "127.0.0.0/8")


async def test_the_lookup_runs_while_the_bot_joins_voice(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    stamps: dict[str, float] = {}
    connect = world.voice.connect

    async def slow_connect(**kwargs):  # type: ignore[no-untyped-def]
        stamps["connect started"] = time.monotonic()
        await asyncio.sleep(CONNECT_SECONDS)  # Discord's voice handshake takes round trips
        client = await connect(**kwargs)
        stamps["connected"] = time.monotonic()
        return client

    world.voice.connect = slow_connect  # type: ignore[method-assign]
    resolve = cog.service.resolve

    async def timed_resolve(*args, **kwargs):  # type: ignore[no-untyped-def]
        stamps["lookup started"] = time.monotonic()
        result = await resolve(*args, **kwargs)
        stamps["lookup done"] = time.monotonic()
        return result

    cog.service.resolve = timed_resolve  # type: ignore[method-assign]
    ctx = world.ctx()
    await cog.play(ctx, query=media_server.url("a440.webm"))
    assert "Playing" in ctx.last
    # the lookup did not wait for the join (serialised, it would start after "connected")
    assert stamps["lookup started"] < stamps["connected"] - CONNECT_SECONDS / 2, stamps
    assert world.guild.voice_client is not None
    await red.remove_cog("Music")


async def test_a_member_outside_voice_gets_a_sentence_and_nothing_is_queued(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    outsider = member_in(None, "outsider")
    ctx = FakeContext(red, world.guild, outsider)
    with pytest.raises(CommandError, match="Join a voice channel first"):
        await cog.play(ctx, query=media_server.url("a440.webm"))
    await asyncio.sleep(0.5)  # a lookup left running would queue nothing either way; give it time
    player = cog.manager.get(world.guild.id)
    assert player.queue.current is None and len(player.queue) == 0
    assert world.guild.voice_client is None
    await red.remove_cog("Music")

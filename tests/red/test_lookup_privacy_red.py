"""`music status` and `music cancel` in a real Red stay within the server they are used in; the
bot owner sees and cancels every server's lookups (issue 13, point 7). The naming of lookups by
site and title is tested in tests/unit/test_lookup_privacy.py."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from redbot.core.bot import Red

from music.commands.base import CommandError
from music.resolve.jobs import JobContext
from tests.support.fakevoice import FakeGuild
from tests.support.redlevel import World, load_cog


async def test_status_and_cancel_see_only_this_servers_lookups(
    red: Red, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(red)
    cog = await load_cog(red)
    assert cog.service is not None
    scheduler = cog.service.scheduler
    gate = threading.Event()

    def hold(ctx: JobContext) -> None:
        assert gate.wait(10)

    def fail(ctx: JobContext) -> None:
        raise ValueError("Their lookup failed.")

    other = FakeGuild()
    theirs = scheduler.submit(hold, guild_id=other.id, requester_id=5,
                              description="www.example.com: Their song")
    failed = scheduler.submit(fail, guild_id=other.id, requester_id=5,
                              description="www.example.com: Their other song")
    with pytest.raises(ValueError):
        await failed.future
    deadline = time.monotonic() + 5
    while scheduler.get(theirs.id).state != "running":  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    try:
        ctx = world.ctx()
        status, cancel = (cog.music_group.get_command(name) for name in ("status", "cancel"))
        await status(ctx)
        assert "Cache hit rate" in ctx.last
        assert "Their" not in ctx.last and f"job {theirs.id}" not in ctx.last
        # an admin of this server gets the answer for a number that doesn't exist
        monkeypatch.setattr(red, "is_admin", lambda member: asyncio.sleep(0, True))
        with pytest.raises(CommandError) as refused:
            await cancel(ctx, theirs.id)
        assert str(refused.value) == f"There is no unfinished lookup with job number {theirs.id}."
        assert scheduler.get(theirs.id) is theirs

        red.owner_ids.add(world.member.id)  # the owner sees and cancels every server's
        await status(ctx)
        assert f"job {theirs.id}" in ctx.last and "Their song" in ctx.last
        assert "Their other song" in ctx.last and "Their lookup failed." in ctx.last
        await cancel(ctx, theirs.id)
        assert ctx.last == f"Cancelled job {theirs.id}."
    finally:
        gate.set()
        red.owner_ids.discard(world.member.id)
        await red.remove_cog("Music")

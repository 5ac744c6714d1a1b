"""Owner tools under `musicset` inside a real Red with real Config: registration as subcommands
of the settings group, persistence and live application of the lookup settings, the doctor."""

from __future__ import annotations

import pytest
from redbot.core.bot import Red

from music.commands.base import CommandError
from tests.support.redlevel import World, load_cog, new_red


async def test_owner_commands_are_subcommands_of_musicset_bound_to_the_cog(red: Red) -> None:
    World(red)
    cog = await load_cog(red)
    for name in ("doctor", "resolvers", "resolvetimeout"):
        command = red.get_command(f"musicset {name}")
        assert command is not None, name
        assert command.cog is cog and command.parent is red.get_command("musicset")
        assert command.help
    await red.remove_cog("Music")


async def test_resolvers_and_timeout_apply_live_and_survive_a_restart(red: Red) -> None:
    world = World(red)
    cog = await load_cog(red)
    ctx = world.ctx()
    musicset = red.get_command("musicset")
    assert cog.service.status()["workers"]["size"] == 3
    await musicset.get_command("resolvers")(ctx, 5)
    await musicset.get_command("resolvetimeout")(ctx, 12)
    assert "Up to 5 lookups" in ctx.sent[-2]["content"]
    assert cog.service.status()["workers"]["size"] == 5
    assert cog.service.scheduler.timeout == 12.0 and cog.resolver.timeout == 12.0
    with pytest.raises(CommandError, match="from 1 to 8"):
        await musicset.get_command("resolvers")(ctx, 9)
    with pytest.raises(CommandError, match="from 5 to 300"):
        await musicset.get_command("resolvetimeout")(ctx, 1)
    await red.remove_cog("Music")

    again = new_red()
    World(again)
    cog2 = await load_cog(again)
    assert cog2.service.status()["workers"]["size"] == 5
    assert cog2.service.scheduler.timeout == 12.0
    await again.remove_cog("Music")


async def test_doctor_reports_every_check_in_a_box_with_the_prefix_filled_in(red: Red) -> None:
    world = World(red)
    await load_cog(red)
    ctx = world.ctx()
    ctx.clean_prefix = "?"
    await red.get_command("musicset doctor")(ctx)
    text = "\n".join(m["content"] for m in ctx.sent)
    assert text.startswith("```")
    for name in ("ffmpeg", "yt-dlp", "JavaScript runtime", "yt-dlp-ejs", "PyNaCl", "davey",
                 "Config backend: JSON", "Data folder"):
        assert name in text, name
    assert "[p]" not in text
    if "PROBLEM" in text:
        assert "-> " in text and "?" in text  # each problem says what to do, with our prefix
    await red.remove_cog("Music")

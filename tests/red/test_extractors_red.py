"""`musicset extractors` in a real Red with real Config: owner only, list/allow/deny/reset,
the resolver reads the setting live, and it survives a restart."""

from __future__ import annotations

import pytest
from redbot.core.bot import Red
from redbot.core.commands.requires import PrivilegeLevel

from music.commands.base import CommandError
from music.policy import DEFAULT_EXTRACTORS
from tests.support.redlevel import World, load_cog, new_red


async def test_extractor_list_edits_apply_live_and_survive_a_restart(red: Red) -> None:
    world = World(red)
    cog = await load_cog(red)
    ctx = world.ctx()
    group = red.get_command("musicset extractors")
    assert group is not None and group.help and group.parent is red.get_command("musicset")
    assert await cog.store.config.extractors() is None  # the defaults, not a copy of them

    await group.get_command("list")(ctx)
    assert "(the default list)" in ctx.sent[-1]["content"]
    assert "generic (direct media links only)" in ctx.sent[-1]["content"]

    await group.get_command("allow")(ctx, "Dailymotion:playlist")
    assert ctx.sent[-1]["content"] == "Links from `dailymotion` are allowed now."
    await group.get_command("allow")(ctx, "generic:all")
    await group.get_command("deny")(ctx, "youtube")
    with pytest.raises(CommandError, match="no extractor called `nosuchsite`"):
        await group.get_command("allow")(ctx, "nosuchsite")
    with pytest.raises(CommandError, match="isn't on the list"):
        await group.get_command("deny")(ctx, "youtube")
    stored = await cog.store.config.extractors()
    assert "dailymotion" in stored and "generic:all" in stored and "youtube" not in stored
    live = cog.resolver._extractor_policy_getter()
    assert live.allows("dailymotion") and not live.allows("youtube") and live.generic_pages
    await red.remove_cog("Music")

    again = new_red()
    World(again)
    cog2 = await load_cog(again)
    assert cog2.store.globals.extractors == stored
    assert not cog2.resolver._extractor_policy_getter().allows("youtube")
    ctx2 = World(again).ctx()
    await again.get_command("musicset extractors reset")(ctx2)
    assert await cog2.store.config.extractors() is None
    assert cog2.resolver._extractor_policy_getter().allowed == set(DEFAULT_EXTRACTORS)
    await again.remove_cog("Music")


async def test_extractor_commands_are_owner_only(red: Red) -> None:
    World(red)
    await load_cog(red)
    group = red.get_command("musicset extractors")
    # Red's is_owner() is a privilege level on the command (Requires), inherited by subcommands
    assert group.requires.privilege_level is PrivilegeLevel.BOT_OWNER
    for sub in ("list", "allow", "deny", "reset"):
        assert group.get_command(sub).parent is group
    await red.remove_cog("Music")

"""Queue tools, the volume cap, autoplay and the block and allow lists inside a real Red with
real Config: each command hangs on its group (declared in another mixin) bound to the cog, with
help text; settings persist across a restart; the commands reply with the control's sentences."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from redbot.core.bot import Red

from music.commands.base import CommandError
from music.engine.track import Track
from tests.support.redlevel import World, load_cog, new_red

NEW_COMMANDS = [
    "queue clean", "queue cleanself", "queue search", "queue dedupe", "queue remove",
    "musicset maxvolume", "musicset autoplay",
    *(f"musicset {kind}list{scope}{verb}" for kind in ("block", "allow") for scope in ("", " global")
      for verb in ("", " add", " remove", " list", " clear")),
]


def as_admin(world: World) -> None:
    world.member.guild_permissions = SimpleNamespace(manage_guild=True)


async def test_the_new_commands_hang_on_their_groups_bound_to_the_cog_with_help(red: Red) -> None:
    World(red)
    cog = await load_cog(red)
    for name in NEW_COMMANDS:
        command = red.get_command(name)
        assert command is not None, name
        assert command.cog is cog, name
        assert command.parent is red.get_command(name.rsplit(" ", 1)[0]), name
        assert command.help, f"{name} has no help text"
    await red.remove_cog("Music")


async def test_lists_cap_and_autoplay_persist_across_a_restart(red: Red) -> None:
    world = World(red)
    as_admin(world)
    red.owner_ids.add(world.member.id)
    await load_cog(red)
    ctx = world.ctx()
    await red.get_command("musicset blocklist add")(ctx, rule="https://www.Bad.example/watch")
    assert ctx.last == "Added `bad.example` to this server's block list."
    await red.get_command("musicset allowlist global add")(ctx, rule="Song")
    assert ctx.last == "Added `song` to the bot's allow list. From now on only what matches the allow list plays anywhere."
    await red.get_command("musicset maxvolume")(ctx, 80)
    assert ctx.last == "The volume can be set up to 80% here."
    await red.get_command("musicset autoplay")(ctx, choice="related")
    assert ctx.last.startswith("Autoplay is on: when the queue runs dry, tracks related to the last one play")
    with pytest.raises(CommandError, match="saved playlists can't be read|no saved playlist"):
        await red.get_command("musicset autoplay")(ctx, choice="my mix")
    await red.remove_cog("Music")

    again = new_red()
    world.attach(again)
    cog2 = await load_cog(again)
    settings = cog2.store.guild(world.guild.id)
    assert settings.blocklist == ["bad.example"] and cog2.store.globals.allowlist == ["song"]
    assert (settings.max_volume, settings.autoplay_mode) == (80, "related")
    rules = cog2.store.content_rules(world.guild.id)
    assert rules.refusal(Track(query="https://cdn.bad.example/a", title="Song")) is not None
    assert rules.refusal(Track(query="https://ok.example/a", title="Tune")) == "it matches nothing on the bot's allow list"
    assert rules.refusal(Track(query="https://ok.example/a", title="A song")) is None
    await again.remove_cog("Music")


async def test_queue_tools_through_the_commands(red: Red) -> None:
    world = World(red)
    cog = await load_cog(red)
    ctx = world.ctx()
    me = world.member.id
    player = cog.manager.get(world.guild.id)
    player.queue.add([Track(query=f"https://example.com/{t}", title=t, duration=60.0, requester_id=me)
                      for t in ("one", "two", "three", "two", "four")])
    await red.get_command("queue search")(ctx, text="TWO")
    assert ctx.last == "2 queued tracks match:\n`2.` **two** (1:00)\n`4.` **two** (1:00)"
    await red.get_command("queue dedupe")(ctx)
    assert ctx.last == "Removed 1 track queued more than once: **two** (1:00)."
    await red.get_command("queue remove")(ctx, target="2 - 3")
    assert ctx.last == "Removed 2 tracks (positions 2 to 3): **two** (1:00), **three** (1:00)."
    await red.get_command("queue remove")(ctx, target="1")
    assert ctx.last == "Removed **one** (1:00)."
    await red.get_command("queue cleanself")(ctx)
    assert ctx.last == "Removed 1 track you queued: **four** (1:00)."
    with pytest.raises(CommandError, match="You have no tracks in the queue"):
        await red.get_command("queue cleanself")(ctx)
    await red.remove_cog("Music")

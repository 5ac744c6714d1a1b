"""The cog's persistence on both of Red's Config backends: JSON (the default, one file per cog) and
PostgreSQL (a real throwaway server, see tests/support/postgres.py).

Red picks a cog's Config driver from `data_manager.basic_config["STORAGE_TYPE"]` when the cog calls
`Config.get_conf`, and the Postgres driver keeps one class-level asyncpg pool that
`PostgresDriver.initialize(**STORAGE_DETAILS)` opens, as `redbot/__main__.py` does at start.
redbot.pytest's autouse `override_data_path` resets basic_config to the JSON default before each
test; the `backend` fixture below switches it to Postgres (on a copy, so the default stays JSON)
and opens the pool on the test's event loop. Red's own core Config stays on the `red` fixture's
JSON driver: only the cog's data is under test.

What is checked is the stored data itself (settings.json on disk, the row in Postgres), read
beside Config, not just what Config hands back.
"""

from __future__ import annotations

import asyncio

from redbot.core.bot import Red

from music.cog import Music
from music.engine.queue import RepeatMode
from music.engine.track import Track
from music.store import FLUSH_INTERVAL
from tests.support import redlevel
from tests.support.postgres import Backend, backend_fixture  # noqa: F401  (the `backend` fixture)
from tests.support.redlevel import World

# -- the cog in a Red bot (as in test_cog_red.py) ---------------------------------------------------


def new_red() -> Red:
    """A fresh, unconnected Red, as a new process on the same data would build it (the
    backend fixture manages the drivers' state itself)."""
    return redlevel.new_red(forget_json_cache=False)


async def load_cog(red: Red, backend: Backend) -> Music:
    cog = await redlevel.load_cog(red)
    assert isinstance(cog.store.config._driver, backend.driver_class), "the cog is not on the backend under test"
    return cog


def tracks(n: int, prefix: str = "song") -> list[Track]:
    return [Track(query=f"https://example.com/{prefix}/{i}", title=f"{prefix} {i}", duration=60.0 + i,
                  requester_id=1000 + i % 7) for i in range(n)]


# -- the tests ------------------------------------------------------------------------------------


async def test_settings_are_stored_and_come_back_in_a_new_red(red: Red, backend: Backend) -> None:
    world = World(red)
    cog = await load_cog(red, backend)
    ctx = world.ctx()
    gid = world.guild.id
    await cog.musicset.get_command("volume")(ctx, 70)
    await cog.musicset.get_command("maxqueue")(ctx, 250)
    await cog.musicset.get_command("autoresume")(ctx, False)
    stored = await backend.stored_guild(cog.store.config, gid)
    assert (stored["volume"], stored["max_queue"], stored["auto_resume"]) == (70, 250, False)
    await red.remove_cog("Music")

    await backend.new_process()
    red2 = new_red()
    world.attach(red2)
    cog2 = await load_cog(red2, backend)
    settings = cog2.store.guild(gid)
    assert (settings.volume, settings.max_queue, settings.auto_resume) == (70, 250, False)
    assert cog2.manager.get(gid).volume == 70  # a fresh player starts at the saved volume
    await red2.remove_cog("Music")


async def test_a_queue_with_repeat_and_shuffle_survives_a_reload_and_a_new_red(red: Red, backend: Backend) -> None:
    world = World(red)
    cog = await load_cog(red, backend)
    gid = world.guild.id
    await cog.musicset.get_command("autoresume")(world.ctx(), False)  # restore the queue, don't play it
    player = cog.manager.get(gid)
    player.queue.add(tracks(6))
    player.queue.advance()  # one current, five upcoming
    player.queue.advance()  # and one in history
    player.queue.repeat = RepeatMode.QUEUE
    player.queue.shuffle = True
    player.queue.peek_next()  # draws the shuffle pick, which must be remembered too
    player.start_position = 42.5
    cog.manager.save(player)
    expected = player.queue.to_dict()
    assert expected["shuffle_next"] is not None

    await red.remove_cog("Music")  # unload flushes
    stored = (await backend.stored_guild(cog.store.config, gid))["state"]
    assert stored["queue"] == expected and stored["position"] == 42.5

    cog_reloaded = await load_cog(red, backend)  # the same bot: `[p]reload music`
    restored = cog_reloaded.manager.players[gid]
    assert restored.queue.to_dict() == expected
    assert restored.queue.repeat is RepeatMode.QUEUE and restored.queue.shuffle is True
    assert restored.start_position == 42.5
    await red.remove_cog("Music")

    await backend.new_process()
    red2 = new_red()
    world.attach(red2)
    cog2 = await load_cog(red2, backend)
    restored = cog2.manager.players[gid]
    assert restored.queue.to_dict() == expected
    assert [t.title for t in restored.queue.upcoming] == [f"song {i}" for i in range(2, 6)]
    assert restored.queue.peek_next().id == expected["shuffle_next"]
    await red2.remove_cog("Music")


async def test_a_burst_of_100_queue_changes_costs_one_write_of_what_is_in_memory(red: Red, backend: Backend) -> None:
    world = World(red)
    cog = await load_cog(red, backend)
    gid = world.guild.id
    player = cog.manager.get(gid)
    # A busy guild: a change was just written and the flusher now waits out FLUSH_INTERVAL.
    player.queue.add(tracks(1, prefix="first"))
    cog.manager.save(player)
    await wait_for(lambda: cog.store.writes == 1 and cog.store.pending == 0)
    writes_before = cog.store.writes

    burst = tracks(100, prefix="burst")
    for i, track in enumerate(burst):
        player.queue.add([track])
        if i % 10 == 9:
            player.queue.move(len(player.queue), 1)  # moves as well as adds, all in the same burst
        cog.manager.save(player)
        await asyncio.sleep(0)  # each change is its own command: the loop runs in between
    assert cog.store.writes == writes_before, "a change was written at once instead of coalesced"

    await asyncio.sleep(FLUSH_INTERVAL + 0.5)  # past the interval: the write, and nothing after it
    assert cog.store.pending == 0
    assert cog.store.writes - writes_before == 1
    stored = (await backend.stored_guild(cog.store.config, gid))["state"]
    assert stored["queue"] == player.queue.to_dict()
    assert len(stored["queue"]["upcoming"]) == 101
    assert [t["title"] for t in stored["queue"]["upcoming"][:3]] == ["burst 99", "burst 89", "burst 79"]
    await red.remove_cog("Music")


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)

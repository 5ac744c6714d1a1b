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
from unittest import mock

from redbot.core.bot import Red

from music.cog import Music
from music.engine.queue import RepeatMode
from music.engine.track import Track
from music.store import FLUSH_INTERVAL
from tests.support import redlevel
from tests.support.postgres import Backend, backend_fixture  # noqa: F401  (the `backend` fixture)
from tests.support.redlevel import World
from tests.support.stored_state import stored_chunks, stored_state

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
    stored = await stored_state(backend, cog.store.config, gid)
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
    stored = await stored_state(backend, cog.store.config, gid)
    assert stored["queue"] == player.queue.to_dict()
    assert len(stored["queue"]["upcoming"]) == 101
    assert [t["title"] for t in stored["queue"]["upcoming"][:3]] == ["burst 99", "burst 89", "burst 79"]
    await red.remove_cog("Music")


async def test_a_queue_saved_in_the_old_layout_loads_and_is_migrated_on_the_first_write(
        red: Red, backend: Backend) -> None:
    world = World(red)
    gid = world.guild.id
    legacy = {"queue": {"current": tracks(1, prefix="now")[0].to_dict(),
                        "upcoming": [t.to_dict() for t in tracks(300)],
                        "history": [], "repeat": "queue", "shuffle": False, "shuffle_next": None},
              "position": 12.0, "paused": False, "channel_id": None, "text_channel_id": 5, "volume": 90}
    # what an older version of the cog left: the whole snapshot in one `state` value
    cog = await load_cog(red, backend)
    await cog.store.config.guild_from_id(gid).state.set(legacy)
    await red.remove_cog("Music")

    cog = await load_cog(red, backend)
    player = cog.manager.players[gid]
    assert player.queue.to_dict() == legacy["queue"] and player.start_position == 12.0
    assert player.volume == 90 and player.text_channel_id == 5
    player.queue.remove(1)
    cog.manager.save(player)
    await cog.store.flush()
    stored = await backend.stored_guild(cog.store.config, gid)
    assert "state" not in stored, "the old value was not cleared by the migration"
    assert len(stored["queue_head"]["chunks"]) > 1
    assert (await stored_state(backend, cog.store.config, gid))["queue"] == player.queue.to_dict()
    await red.remove_cog("Music")

    await backend.new_process()
    red2 = new_red()
    world.attach(red2)
    cog2 = await load_cog(red2, backend)
    assert cog2.manager.players[gid].queue.to_dict() == player.queue.to_dict()
    await red2.remove_cog("Music")


class Crash(Exception):
    """The process dies here."""


async def test_a_crash_between_the_chunk_writes_and_the_head_leaves_the_previous_queue(
        red: Red, backend: Backend) -> None:
    world = World(red)
    gid = world.guild.id
    cog = await load_cog(red, backend)
    await cog.musicset.get_command("autoresume")(world.ctx(), False)
    player = cog.manager.get(gid)
    player.queue.add(tracks(1000))
    cog.manager.save(player)
    await cog.store.flush()
    before = player.queue.to_dict()

    player.queue.move(len(player.queue), 1)
    player.queue.remove(500)
    player.queue.add(tracks(3, prefix="late"))
    writer = cog.store.chunks

    async def crash() -> None:  # the new chunks are written (or about to be), the head is not
        raise Crash

    # JSON: one atomic save carries the whole change, so the crash is that save never completing;
    # PostgreSQL: inside the transaction, after the chunk upserts
    crashed_save = mock.patch("redbot.core._drivers.json._save_json", side_effect=Crash)
    if backend.name == "json":
        crashed_save.start()
    else:
        writer.before_head = crash
    cog.manager.save(player)
    await cog.store.flush()  # logs the failure: a command never sees it
    assert cog.store.writes == 1 and cog.store.pending == 0
    await red.remove_cog("Music")  # its last flush crashes the same way: the process is gone
    if backend.name == "json":
        crashed_save.stop()

    await backend.new_process()
    red2 = new_red()
    world.attach(red2)
    cog2 = await load_cog(red2, backend)
    assert cog2.manager.players[gid].queue.to_dict() == before
    assert len(await stored_chunks(backend, cog2.store.config, gid)) == len(
        (await backend.stored_guild(cog2.store.config, gid))["queue_head"]["chunks"]), "orphan chunks stored"
    await red2.remove_cog("Music")


async def test_separate_config_calls_crashing_before_the_head_leave_the_previous_queue(
        red: Red, backend: Backend) -> None:
    """The path for drivers other than JSON and PostgreSQL: chunks, then head, then deletes."""
    world = World(red)
    gid = world.guild.id
    cog = await load_cog(red, backend)
    await cog.musicset.get_command("autoresume")(world.ctx(), False)
    cog.store.chunks.path_override = "config calls"
    player = cog.manager.get(gid)
    player.queue.add(tracks(600))
    cog.manager.save(player)
    await cog.store.flush()
    before = player.queue.to_dict()

    async def crash() -> None:
        raise Crash

    cog.store.chunks.before_head = crash
    player.queue.move(len(player.queue), 1)
    player.queue.add(tracks(2, prefix="late"), front=True)
    cog.manager.save(player)
    await cog.store.flush()
    head = (await backend.stored_guild(cog.store.config, gid))["queue_head"]
    stored_names = set(await stored_chunks(backend, cog.store.config, gid))
    assert stored_names > set(head["chunks"]), "the crash should have left the new chunks behind"
    await red.remove_cog("Music")

    await backend.new_process()
    red2 = new_red()
    world.attach(red2)
    cog2 = await load_cog(red2, backend)
    assert cog2.manager.players[gid].queue.to_dict() == before
    # the orphans were deleted at load
    head = (await backend.stored_guild(cog2.store.config, gid))["queue_head"]
    assert set(await stored_chunks(backend, cog2.store.config, gid)) == set(head["chunks"])
    await red2.remove_cog("Music")


async def test_deleting_a_members_data_erases_them_from_live_chunked_and_old_saved_queues(
        red: Red, backend: Backend) -> None:
    world = World(red)
    live_gid, chunked_gid, legacy_gid = world.guild.id, 5551, 5552
    member, other = 111111111111111111, 222222222222222222
    cog = await load_cog(red, backend)

    def mixed(n: int) -> list[Track]:
        return [Track(query=f"https://example.com/{i}", title=f"t{i}", requester_id=member if i % 3 else other)
                for i in range(n)]

    # a guild saved in chunks whose player is not live (it was saved by an earlier process)
    saved_player = cog.manager.get(chunked_gid)
    saved_player.queue.add(mixed(400))
    saved_player.queue.advance()
    saved_player.queue.advance()  # current and history hold the member too
    cog.manager.save(saved_player)
    await cog.store.config.guild_from_id(legacy_gid).state.set(
        {"queue": {"upcoming": [t.to_dict() for t in mixed(5)]}, "position": 0.0})
    await red.remove_cog("Music")

    cog = await load_cog(red, backend)
    # saved, but not live (as after a restart of a bot that is no longer in those guilds)
    assert cog.manager.players.pop(chunked_gid) and cog.manager.players.pop(legacy_gid)
    live = cog.manager.get(live_gid)
    live.queue.add(mixed(10))
    cog.manager.save(live)
    await cog.red_delete_data_for_user(requester="user", user_id=member)
    assert {t.requester_id for t in live.queue.upcoming} == {0, other}
    for gid in (live_gid, chunked_gid, legacy_gid):
        state = await stored_state(backend, cog.store.config, gid)
        queue = state["queue"]
        entries = [queue.get("current"), *queue["upcoming"], *(queue.get("history") or [])]
        ids = {t["requester_id"] for t in entries if t}
        assert member not in ids and other in ids, (gid, ids)
    assert len((await stored_state(backend, cog.store.config, chunked_gid))["queue"]["upcoming"]) == 398
    await red.remove_cog("Music")


async def test_an_insert_a_move_and_a_removal_write_a_few_chunks_of_a_long_queue(red: Red, backend: Backend) -> None:
    world = World(red)
    gid = world.guild.id
    cog = await load_cog(red, backend)
    player = cog.manager.get(gid)
    player.queue.add(tracks(5000))
    cog.manager.save(player)
    await cog.store.flush()
    first = cog.store.last_write
    assert first.chunks_written == first.chunks_total > 40

    # (change, most chunks it may write or delete): a change rewrites the chunk at each place it
    # touches, and one neighbour more where the track it adds or removes is a chunk boundary
    # (a split or a merge); a move touches two places. The whole queue is 79 chunks or so.
    changes = {
        "insert": (lambda: player.queue.add(tracks(1, prefix="new"), front=True), 2),
        "move": (lambda: player.queue.move(len(player.queue), 2500), 4),
        "remove": (lambda: player.queue.remove(1234), 2),
    }
    for name, (change, most) in changes.items():
        change()
        cog.manager.save(player)
        writes = cog.store.writes
        await cog.store.flush()
        last = cog.store.last_write
        assert cog.store.writes == writes + 1
        assert 1 <= last.chunks_written <= most and last.chunks_deleted <= most, (name, last)
        stored = await stored_state(backend, cog.store.config, gid)
        assert stored["queue"] == player.queue.to_dict(), name
        assert len(await stored_chunks(backend, cog.store.config, gid)) == last.chunks_total, name
    await red.remove_cog("Music")


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)

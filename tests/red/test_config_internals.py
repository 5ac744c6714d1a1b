"""music/config_internals.py: the chunked store's private path into Red's Config drivers is checked
when the writer is built, and anything unexpected (another Red series, a renamed attribute, a
changed identifier layout) makes it log why and save through Config's public API instead, which
must still store and restore the queue exactly (issue 14)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
import redbot

from music.config_internals import (
    CONFIG_CALLS,
    JSON_SINGLE_SAVE,
    POSTGRES_TRANSACTION,
    ConfigInternals,
    Unusable,
    _check_json_driver,
)
from music.store_chunks import CHUNK_GROUP, ChunkedQueueWriter, PlayerCapture
from tests.red.test_store_chunks import GUILD, HEAD, new_config, queue_of, reloaded
from tests.support.postgres import Backend, backend_fixture  # noqa: F401  (the `backend` fixture)

PRIVATE_PATH = {"json": JSON_SINGLE_SAVE, "postgres": POSTGRES_TRANSACTION}


async def test_red_35_drivers_pass_the_check_and_take_the_batched_path(backend: Backend) -> None:
    writer = ChunkedQueueWriter(new_config())
    assert writer.internals.path == PRIVATE_PATH[backend.name] and writer.internals.reason == ""
    stats = await writer.write(GUILD, PlayerCapture.of(HEAD, queue_of(300)))
    assert stats.path == PRIVATE_PATH[backend.name]


async def test_another_red_series_falls_back_to_the_public_api_and_the_queue_survives(
        backend: Backend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(redbot, "__version__", "3.6.0")
    with caplog.at_level(logging.WARNING, logger="red.music.store"):
        writer = ChunkedQueueWriter(new_config())
    assert writer.internals.path == CONFIG_CALLS
    assert "Red 3.6 is not the checked series 3.5" in caplog.text
    assert "public API" in caplog.text

    queue = queue_of(1500)
    first = await writer.write(GUILD, PlayerCapture.of(HEAD, queue))
    assert first.path == CONFIG_CALLS and first.chunks_written == first.chunks_total > 10
    queue.move(len(queue), 1)
    queue.remove(700)
    moved = await writer.write(GUILD, PlayerCapture.of(HEAD, queue))
    assert moved.path == CONFIG_CALLS and 1 <= moved.chunks_written <= 4

    # every chunk is its own stored document, and nothing else is left behind
    head = await backend.stored_guild(writer.config, GUILD)
    names = head["queue_head"]["chunks"]
    rows = [await backend.stored_document(writer.config, CHUNK_GROUP, GUILD, name) for name in names]
    assert [t["id"] for row in rows for t in row["tracks"]] == [t.id for t in queue.upcoming]
    assert set(await writer.config.custom(CHUNK_GROUP, str(GUILD)).all()) == set(names)

    writer2, head_back, queue_back = await reloaded(backend)  # a new process, still on "Red 3.6"
    assert writer2.internals.path == CONFIG_CALLS
    assert head_back == HEAD and queue_back.to_dict() == queue.to_dict()
    await writer2.clear(GUILD)
    assert await writer2.load(GUILD) is None


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_postgres_pool_not_open_yet_writes_through_config_calls(backend: Backend) -> None:
    from redbot.core._drivers import PostgresDriver

    writer = ChunkedQueueWriter(new_config())
    pool, PostgresDriver._pool = PostgresDriver._pool, None
    try:
        assert writer.internals.current_path() == CONFIG_CALLS
    finally:
        PostgresDriver._pool = pool
    assert writer.internals.current_path() == POSTGRES_TRANSACTION


def test_each_private_part_of_the_json_driver_is_checked() -> None:
    good = SimpleNamespace(data={}, _lock=asyncio.Lock(), _save=_async_noop)
    _check_json_driver(good)
    for missing in ("data", "_lock", "_save"):
        broken = SimpleNamespace(**{k: v for k, v in vars(good).items() if k != missing})
        with pytest.raises(Unusable, match=f"JsonDriver has no {missing}"):
            _check_json_driver(broken)
    with pytest.raises(Unusable, match="not a coroutine function"):
        _check_json_driver(SimpleNamespace(data={}, _lock=asyncio.Lock(), _save=lambda: None))
    with pytest.raises(Unusable, match="not an asyncio lock"):
        _check_json_driver(SimpleNamespace(data={}, _lock=object(), _save=_async_noop))
    with pytest.raises(Unusable, match="not a dict"):
        _check_json_driver(SimpleNamespace(data=None, _lock=asyncio.Lock(), _save=_async_noop))


def test_a_changed_identifier_layout_or_an_unknown_driver_takes_the_public_path(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    config = new_config()
    config.register_guild(queue_head={})
    original = type(config.guild_from_id(1).get_attr("queue_head").identifier_data).to_tuple
    monkeypatch.setattr(type(config.guild_from_id(1).get_attr("queue_head").identifier_data), "to_tuple",
                        lambda self: ("layout", *original(self)))
    with caplog.at_level(logging.WARNING, logger="red.music.store"):
        assert ConfigInternals.probe(config).path == CONFIG_CALLS
    assert "identifier_data.to_tuple() gives" in caplog.text
    monkeypatch.undo()

    class OtherDriver:  # a backend Red may add, or a third-party one
        pass

    config._driver = OtherDriver()
    internals = ConfigInternals.probe(config)
    assert internals.path == CONFIG_CALLS and "OtherDriver backend" in internals.reason


async def _async_noop() -> None:
    return None

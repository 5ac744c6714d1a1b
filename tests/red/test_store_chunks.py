"""The chunked queue layout (music/store_chunks.py, the storage MusicStore writes through) on both
Config backends: a change writes only the chunks around it, and what is stored always reads back
as the queue in memory. The cog-level tests are in test_persistence_backends.py."""

from __future__ import annotations

import json
import random
import uuid
import zlib

from redbot.core import Config

from music.engine.queue import QueueModel, RepeatMode
from music.engine.track import Track
from music.store_chunks import (
    CHUNK_AVERAGE,
    CHUNK_GROUP,
    CHUNK_MAX,
    ChunkedQueueWriter,
    PlayerCapture,
    plan_write,
    split_into_chunks,
)
from tests.support.postgres import Backend, backend_fixture  # noqa: F401  (the `backend` fixture)

GUILD = 424242
HEAD = {"position": 12.5, "paused": False, "channel_id": 7, "text_channel_id": 8, "volume": 80}


def new_config() -> Config:
    return Config.get_conf(None, identifier=0x6368756E6B73, cog_name="MusicChunks", force_registration=True)


def fixed_ids(seed: int = 6):  # type: ignore[no-untyped-def]
    """Reproducible track ids: chunk boundaries depend on them, so every run sees the same chunks."""
    rng = random.Random(seed)
    while True:
        yield uuid.UUID(int=rng.getrandbits(128)).hex


def queue_of(n: int) -> QueueModel:
    ids = fixed_ids()
    queue = QueueModel()
    queue.add([Track(id=next(ids), query=f"https://example.com/{i}", title=f"song {i}", duration=100.0 + i,
                     requester_id=10 + i % 5) for i in range(n + 1)])
    queue.advance()
    queue.repeat = RepeatMode.QUEUE
    queue.shuffle = True
    return queue


async def reloaded(backend: Backend) -> tuple[ChunkedQueueWriter, dict, QueueModel]:
    await backend.new_process()
    writer = ChunkedQueueWriter(new_config())
    loaded = await writer.load(GUILD)
    assert loaded is not None
    return writer, loaded[0], loaded[1]


def test_chunks_are_content_defined_so_an_insert_keeps_the_other_chunks() -> None:
    tracks = queue_of(2000).upcoming
    before = split_into_chunks(tracks)
    assert 10 < len(before) < 2000 // 8  # neither one blob nor one row per track
    assert all(len(chunk) <= CHUNK_MAX for _, chunk in before)
    new_id = next(i for i in fixed_ids(seed=7) if zlib.crc32(i.encode()) % CHUNK_AVERAGE)  # not a boundary
    tracks.insert(0, Track(id=new_id, query="https://example.com/new", title="new"))
    after = split_into_chunks(tracks)
    # the new track joins the first chunk; every later chunk is the same as before
    assert [k for k, _ in after][1:] == [k for k, _ in before][1:]
    assert after[0][0] != before[0][0] and after[0][1][0].id == new_id


async def test_a_move_writes_a_few_chunks_and_the_stored_queue_equals_memory(backend: Backend) -> None:
    writer = ChunkedQueueWriter(new_config())
    queue = queue_of(3000)
    first = await writer.write(GUILD, PlayerCapture.of(HEAD, queue))
    assert first.chunks_written == first.chunks_total > 10

    queue.move(len(queue), 1)  # the last track to the front
    moved = await writer.write(GUILD, PlayerCapture.of(HEAD, queue))
    assert 1 <= moved.chunks_written <= 3 and moved.chunks_deleted <= 3
    # each chunk is its own document (its own row on PostgreSQL)
    head = await backend.stored_guild(writer.config, GUILD)
    rows = [await backend.stored_document(writer.config, CHUNK_GROUP, GUILD, name) for name in head["queue_head"]["chunks"]]
    assert [t["id"] for row in rows for t in row["tracks"]] == [t.id for t in queue.upcoming]

    _, head_back, queue_back = await reloaded(backend)
    assert head_back == HEAD
    assert queue_back.to_dict() == queue.to_dict()


async def test_an_edit_inside_a_track_is_seen_and_a_reload_rewrites_nothing(backend: Backend) -> None:
    writer = ChunkedQueueWriter(new_config())
    queue = queue_of(1000)
    await writer.write(GUILD, PlayerCapture.of(HEAD, queue))
    queue.upcoming[500].requester_id = 0  # in place, as red_delete_data_for_user does
    edited = await writer.write(GUILD, PlayerCapture.of(HEAD, queue))
    assert edited.chunks_written == 1 and edited.chunks_deleted == 1

    writer2, _, queue_back = await reloaded(backend)
    assert queue_back.upcoming[500].requester_id == 0
    assert queue_back.to_dict() == queue.to_dict()
    again = await writer2.write(GUILD, PlayerCapture.of(HEAD, queue_back))  # a new process knows what is stored
    assert again.chunks_written == 0 and again.chunks_deleted == 0

    queue_back.clear()
    emptied = await writer2.write(GUILD, PlayerCapture.of(HEAD, queue_back))
    assert emptied.chunks_written == 0 and emptied.chunks_deleted == edited.chunks_total
    _, _, queue_empty = await reloaded(backend)
    assert queue_empty.upcoming == [] and queue_empty.current is not None


def test_what_is_stored_is_built_from_what_was_hashed_even_if_a_track_changes_after() -> None:
    """plan_write runs in a thread while the loop may edit a track: the stored content and the
    chunk key both come from one fingerprint, so a stored chunk never disagrees with its key."""
    queue = queue_of(300)
    capture = PlayerCapture.of(HEAD, queue)
    plan = plan_write(capture, {}, (), as_json=False)
    stored_tracks = [t for name in plan.head["chunks"] for t in plan.new_chunks[name]["tracks"]]
    assert stored_tracks == [t.to_dict() for t in queue.upcoming]
    assert plan.head["queue"]["current"] == queue.current.to_dict()

    queue.upcoming[10].requester_id = 0  # an edit after the capture: the next plan sees it
    again = plan_write(PlayerCapture.of(HEAD, queue), plan.stored, (), as_json=True)
    assert len(again.new_chunks) == 1 and len(again.deletes) == 1
    (text,) = again.new_chunks.values()
    assert queue.upcoming[10].to_dict() in json.loads(text)["tracks"]


def test_chunks_are_cut_at_chunk_max_without_a_content_boundary() -> None:
    tracks = [t for t in queue_of(3000).upcoming if zlib.crc32(t.id.encode()) % CHUNK_AVERAGE]
    chunks = split_into_chunks(tracks)
    assert [len(c) for _, c in chunks[:-1]] == [CHUNK_MAX] * (len(tracks) // CHUNK_MAX)
    assert [t for _, c in chunks for t in c] == tracks

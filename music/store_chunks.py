"""Prototype (issue #6): persist a guild's queue in chunks so one change writes only what changed.

Today `MusicStore.flush` writes `GuildPlayer.snapshot()` as one Config value: every queue change
re-serializes every track (dataclasses.asdict, ~20 us a track) and rewrites the guild's whole
document (the whole file on JSON, the guild's whole jsonb row on PostgreSQL). At 5,000 tracks that
is far over the 20 ms target whatever the backend (see benchmarks/persistence.py).

Layout written here, beside the current `state` value (nothing of store.py changes):

- guild `queue_head`: everything small (position, paused, channels, volume, repeat, shuffle, the
  current track, history) and `chunks`, the ordered list of chunk names of the upcoming tracks;
- custom group `QUEUE_CHUNK` keyed (guild id, chunk name): `{"tracks": [...]}`. On Red's
  PostgreSQL backend every chunk is its own row, so writing one chunk touches one small row.

Chunk boundaries are content-defined (after a track whose id's CRC32 is 0 mod CHUNK_AVERAGE, and
at CHUNK_MAX), so an insert, move or removal changes the one or two chunks around it and the
boundaries after it fall in the same places again. Whether a chunk changed is found without
serializing it: a chunk's key is the hash of its tracks' field values (C-level attrgetter + tuple
hash), so in-place edits of a track (requester erased, stream refreshed) are seen too. Only new
chunks are serialized and written; then the head; then chunks no longer referenced are deleted
(a crash in between leaves the previous head and all its chunks intact).

Keys use Python's per-process string hash, so after a restart the writer re-learns the stored
chunks from `load()` instead of trusting stored keys.
"""

from __future__ import annotations

import dataclasses
import operator
import uuid
import zlib
from typing import Any

from redbot.core import Config

from .engine.queue import QueueModel
from .engine.track import Track

CHUNK_GROUP = "QUEUE_CHUNK"
CHUNK_AVERAGE = 64  # tracks per chunk on average
CHUNK_MAX = 256  # a chunk is cut here even without a content boundary

_TRACK_FIELDS = tuple(f.name for f in dataclasses.fields(Track) if f.name != "http_headers")
_track_values = operator.attrgetter(*_TRACK_FIELDS)


def _fingerprint(track: Track) -> tuple[Any, ...]:
    headers = track.http_headers
    return (_track_values(track), frozenset(headers.items()) if headers else None)


def _is_boundary(track: Track) -> bool:
    return zlib.crc32(track.id.encode()) % CHUNK_AVERAGE == 0


def split_into_chunks(tracks: list[Track]) -> list[tuple[int, list[Track]]]:
    """[(key, tracks)] in queue order; equal content gives equal keys within this process."""
    chunks: list[tuple[int, list[Track]]] = []
    current: list[Track] = []
    prints: list[tuple[Any, ...]] = []
    for track in tracks:
        current.append(track)
        prints.append(_fingerprint(track))
        if _is_boundary(track) or len(current) >= CHUNK_MAX:
            chunks.append((hash(tuple(prints)), current))
            current, prints = [], []
    if current:
        chunks.append((hash(tuple(prints)), current))
    return chunks


@dataclasses.dataclass
class ChunkWriteStats:
    chunks_written: int = 0
    chunks_deleted: int = 0
    chunks_total: int = 0


class ChunkedQueueWriter:
    """Writes and reads a guild's player state as a small head plus queue chunks."""

    def __init__(self, config: Config) -> None:
        self.config = config
        config.init_custom(CHUNK_GROUP, 2)
        config.register_guild(queue_head={})
        # guild id -> {chunk key -> stored chunk name}: what is known to be on storage
        self._stored: dict[int, dict[int, str]] = {}
        self.last = ChunkWriteStats()

    async def write(self, guild_id: int, head: dict[str, Any], queue: QueueModel) -> ChunkWriteStats:
        """Persist `head` (the snapshot without the queue) and `queue`, writing only what changed."""
        stored = self._stored.setdefault(guild_id, {})
        chunks = split_into_chunks(queue.upcoming)
        stats = ChunkWriteStats(chunks_total=len(chunks))
        names: list[str] = []
        new_stored: dict[int, str] = {}
        for key, tracks in chunks:
            name = stored.get(key) or new_stored.get(key)
            if name is None:
                name = uuid.uuid4().hex[:16]
                await self.config.custom(CHUNK_GROUP, str(guild_id), name).set(
                    {"tracks": [t.to_dict() for t in tracks]}
                )
                stats.chunks_written += 1
            new_stored[key] = name
            names.append(name)
        queue_meta = {
            "current": queue.current.to_dict() if queue.current is not None else None,
            "history": [t.to_dict() for t in queue.history],
            "repeat": queue.repeat.value,
            "shuffle": queue.shuffle,
            "shuffle_next": queue._shuffle_next_id,
        }
        await self.config.guild_from_id(guild_id).queue_head.set({**head, "queue": queue_meta, "chunks": names})
        for key, name in stored.items():
            if key not in new_stored:
                await self.config.custom(CHUNK_GROUP, str(guild_id), name).clear()
                stats.chunks_deleted += 1
        self._stored[guild_id] = new_stored
        self.last = stats
        return stats

    async def load(self, guild_id: int) -> tuple[dict[str, Any], QueueModel] | None:
        """The head and the queue as stored; also re-learns which chunks are on storage."""
        head = await self.config.guild_from_id(guild_id).queue_head()
        if not head:
            return None
        rows = await self.config.custom(CHUNK_GROUP, str(guild_id)).all()
        upcoming: list[dict[str, Any]] = []
        for name in head["chunks"]:
            upcoming.extend(rows[name]["tracks"])
        queue = QueueModel.from_dict({**head["queue"], "upcoming": upcoming})
        # learn the keys of what is stored, by this process's hash, so unchanged chunks are kept
        by_name = {name: [Track.from_dict(t) for t in rows[name]["tracks"]] for name in head["chunks"]}
        self._stored[guild_id] = {hash(tuple(_fingerprint(t) for t in tracks)): name
                                  for name, tracks in by_name.items()}
        stale = set(rows) - set(head["chunks"])  # left by a crash between head and cleanup
        for name in stale:
            await self.config.custom(CHUNK_GROUP, str(guild_id), name).clear()
        body = {k: v for k, v in head.items() if k not in ("queue", "chunks")}
        return body, queue

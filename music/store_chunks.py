"""The storage layout of the player state (issue #6): a small head plus content-defined queue chunks.

Writing a guild's whole queue as one Config value re-serializes every track on every change and
rewrites the guild's whole document (242 ms per change at 50 guilds x 5,000 tracks on PostgreSQL,
plus 200-500 ms of event-loop stall for snapshot + JSON). Here a change writes only what changed:

- guild `queue_head`: everything small (position, paused, channels, volume, repeat, shuffle, the
  current track, history) and `chunks`, the ordered list of chunk names of the upcoming tracks;
- custom group `QUEUE_CHUNK` keyed (guild id, chunk name): `{"tracks": [...]}`. On Red's
  PostgreSQL backend every chunk is its own row, so writing one chunk touches one small row.

Chunk boundaries are content-defined (after a track whose id's CRC32 is 0 mod CHUNK_AVERAGE, and
at CHUNK_MAX), so an insert, move or removal changes the one or two chunks around it and the
boundaries after it fall in the same places again (also across restarts: CRC32 is stable). Whether
a chunk changed is found without serializing it: a chunk's key is the hash of its tracks' field
values (C-level attrgetter + tuple hash), so in-place edits of a track (requester erased, stream
refreshed) are seen too. Chunk names are random and never reused for other content.

Where the work runs: on the event loop only `PlayerCapture.of` (list copies of the queue, O(1) per
track); fingerprints, boundaries, hashing and the serialization of new chunks run in a thread
(`plan_write`). A track's fingerprint is read by one C call, so it is consistent even if the loop
edits the track meanwhile, and what is stored is built from that fingerprint, never re-read from
the track: the stored content always matches its key. An edit that lands after the capture marks
the guild dirty again, so the next flush writes it.

How a plan is applied, per Config driver (crash safety: the previous head and its chunks stay
loadable until the new head is durable). The first two use private parts of Red's drivers, all
reached through config_internals.ConfigInternals, which checks them when the writer is built and
otherwise picks the third path:

- PostgreSQL: chunk upserts, the head, the legacy `state` clear and the chunk deletes in ONE
  transaction on one connection of Red's asyncpg pool, through the same server functions Red's
  driver calls (`red_config.set` / `red_config.clear`), so Config reads see exactly this data:
  one commit (one fsync) per flush instead of one per statement;
- JSON: Red's driver keeps the cog's file in memory and rewrites all of it on every set, so the
  whole plan is applied to that in-memory document under the driver's lock and saved ONCE (the
  file is replaced atomically: a crash leaves the previous file);
- any other driver: separate Config calls in a safe order: new chunks, then the head, then the
  deletes; chunks orphaned by a crash in between are deleted at the next load or write.

Keys use Python's per-process hash, so after a restart the writer re-learns the stored chunks when
the state is loaded (`read_all`) instead of trusting stored keys.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import operator
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from .config_internals import JSON_SINGLE_SAVE, POSTGRES_TRANSACTION, ConfigInternals
from .engine.queue import QueueModel
from .engine.track import Track

if TYPE_CHECKING:
    from redbot.core import Config

log = logging.getLogger("red.music.store")

CHUNK_GROUP = "QUEUE_CHUNK"
HEAD = "queue_head"  # guild value: the head of the chunked layout
LEGACY_STATE = "state"  # guild value: the old whole-snapshot layout, migrated on first write
CHUNK_AVERAGE = 64  # tracks per chunk on average
CHUNK_MAX = 256  # a chunk is cut here even without a content boundary

_FIELDS = tuple(f.name for f in dataclasses.fields(Track))  # to_dict() key order
_TRACK_FIELDS = tuple(name for name in _FIELDS if name != "http_headers")
_track_values = operator.attrgetter(*_TRACK_FIELDS)
_HEAD_BODY_EXCLUDED = ("queue", "chunks")

Fingerprint = tuple[tuple[Any, ...], frozenset[tuple[str, str]] | None]


def _fingerprint(track: Track) -> Fingerprint:
    headers = track.http_headers
    return (_track_values(track), frozenset(headers.items()) if headers else None)


_track_headers = operator.attrgetter("http_headers")
_ID_INDEX = _TRACK_FIELDS.index("id")
_first_value = operator.itemgetter(_ID_INDEX)


def _fingerprints(tracks: list[Track]) -> list[Fingerprint]:
    """_fingerprint of every track, the common case (no headers) at C speed (map/zip): this and
    the hashing are what a write costs per queued track."""
    values = list(map(_track_values, tracks))
    headers = list(map(_track_headers, tracks))
    if not any(headers):
        return list(zip(values, itertools.repeat(None)))
    return [(v, frozenset(h.items()) if h else None) for v, h in zip(values, headers, strict=True)]


def _track_dict(fingerprint: Fingerprint) -> dict[str, Any]:
    """`Track.to_dict()` rebuilt from a fingerprint, so what is stored is what was hashed."""
    values, headers = fingerprint
    data = dict(zip(_TRACK_FIELDS, values, strict=True))
    data["http_headers"] = dict(headers) if headers else {}
    return {name: data[name] for name in _FIELDS}


def _split(prints: list[Fingerprint]) -> list[tuple[int, list[Fingerprint]]]:
    """Cut after each content boundary (and at CHUNK_MAX); key each chunk by its content."""
    crcs = map(zlib.crc32, map(str.encode, map(_first_value, map(operator.itemgetter(0), prints))))
    boundaries = [i + 1 for i, crc in enumerate(crcs) if crc % CHUNK_AVERAGE == 0]
    if not boundaries or boundaries[-1] != len(prints):
        boundaries.append(len(prints))
    chunks: list[tuple[int, list[Fingerprint]]] = []
    start = 0
    for end in boundaries:
        while end - start > CHUNK_MAX:
            chunk = prints[start:start + CHUNK_MAX]
            chunks.append((hash(tuple(chunk)), chunk))
            start += CHUNK_MAX
        if end > start:
            chunk = prints[start:end]
            chunks.append((hash(tuple(chunk)), chunk))
            start = end
    return chunks


def split_into_chunks(tracks: list[Track]) -> list[tuple[int, list[Track]]]:
    """[(key, tracks)] in queue order; equal content gives equal keys within this process."""
    chunks: list[tuple[int, list[Track]]] = []
    start = 0
    for key, prints in _split(_fingerprints(tracks)):
        chunks.append((key, tracks[start:start + len(prints)]))
        start += len(prints)
    return chunks


# -- what a flush persists ------------------------------------------------------------------


@dataclasses.dataclass
class PlayerCapture:
    """A player's persisted state as captured on the event loop: the small head values and list
    copies of the queue (cheap: no track is serialized here)."""

    head: dict[str, Any]  # position, paused, channel_id, text_channel_id, volume
    current: Track | None
    upcoming: list[Track]
    history: list[Track]
    repeat: str = "off"
    shuffle: bool = False
    shuffle_next: str | None = None

    @classmethod
    def of(cls, head: dict[str, Any], queue: QueueModel) -> PlayerCapture:
        return cls(dict(head), queue.current, list(queue.upcoming), list(queue.history),
                   queue.repeat.value, queue.shuffle, queue._shuffle_next_id)


@dataclasses.dataclass
class WritePlan:
    """What one write stores, computed in a thread from a PlayerCapture."""

    head: Any  # the head document (a dict, or its JSON text for PostgreSQL)
    new_chunks: dict[str, Any]  # name -> chunk document (dict or JSON text)
    deletes: list[str]  # chunk names no longer referenced
    stored: dict[int, str]  # key -> name once this plan is applied
    chunks_total: int


def plan_write(capture: PlayerCapture, stored: dict[int, str], orphans: Iterable[str],
               as_json: bool) -> WritePlan:
    """Split, fingerprint and serialize (only the new chunks). Pure: run it in a thread."""
    encode: Callable[[Any], Any] = json.dumps if as_json else (lambda document: document)
    chunks = _split(_fingerprints(capture.upcoming))
    names: list[str] = []
    new_stored: dict[int, str] = {}
    new_chunks: dict[str, Any] = {}
    for key, prints in chunks:
        name = new_stored.get(key) or stored.get(key)
        if name is None:
            name = uuid.uuid4().hex[:16]
            new_chunks[name] = encode({"tracks": [_track_dict(p) for p in prints]})
        new_stored[key] = name
        names.append(name)
    current = capture.current
    head = {
        **capture.head,
        "queue": {
            "current": _track_dict(_fingerprint(current)) if current is not None else None,
            "history": [_track_dict(_fingerprint(t)) for t in capture.history],
            "repeat": capture.repeat,
            "shuffle": capture.shuffle,
            "shuffle_next": capture.shuffle_next,
        },
        "chunks": names,
    }
    kept = set(new_stored.values())
    deletes = sorted({name for name in stored.values() if name not in kept} | (set(orphans) - kept))
    return WritePlan(encode(head), new_chunks, deletes, new_stored, len(chunks))


def state_from_stored(head: dict[str, Any], chunks: dict[str, Any]) -> dict[str, Any]:
    """The GuildPlayer.snapshot() form of a stored head and its guild's chunk documents
    (a missing chunk is logged and skipped: the rest of the queue still loads)."""
    upcoming: list[dict[str, Any]] = []
    for name in head.get("chunks") or []:
        chunk = chunks.get(name)
        if chunk is None:
            log.error("A saved queue chunk is missing (%s); its tracks are lost", name)
            continue
        upcoming.extend(chunk.get("tracks") or [])
    body = {k: v for k, v in head.items() if k not in _HEAD_BODY_EXCLUDED}
    return {**body, "queue": {**(head.get("queue") or {}), "upcoming": upcoming}}


def _learn(head: dict[str, Any], chunks: dict[str, Any]) -> dict[int, str]:
    """key -> name of the stored chunks, keyed as this process's plan_write would key them."""
    learned: dict[int, str] = {}
    for name in head.get("chunks") or []:
        chunk = chunks.get(name)
        if chunk is not None:
            prints = tuple(_fingerprint(Track.from_dict(t)) for t in chunk.get("tracks") or [])
            learned[hash(prints)] = name
    return learned


@dataclasses.dataclass
class ChunkWriteStats:
    chunks_written: int = 0
    chunks_deleted: int = 0
    chunks_total: int = 0
    path: str = ""  # "postgres transaction", "json single save", "config calls"


@dataclasses.dataclass
class SavedGuild:
    state: dict[str, Any]  # GuildPlayer.snapshot() form
    legacy: bool  # read from the old `state` value


class ChunkedQueueWriter:
    """Writes and reads every guild's player state as a small head plus queue chunks."""

    def __init__(self, config: Config) -> None:
        self.config = config
        config.init_custom(CHUNK_GROUP, 2)
        config.register_guild(**{HEAD: {}, LEGACY_STATE: {}})
        # guild id -> {chunk key -> stored chunk name}: what is known to be on storage
        self._stored: dict[int, dict[int, str]] = {}
        self._orphans: dict[int, set[str]] = {}  # chunk names to delete at the guild's next write
        self._legacy: set[int] = set()  # guilds whose old `state` value is still stored
        self.last = ChunkWriteStats()
        self._chunk_table_ready = False  # PostgreSQL: the chunk table is known to exist
        self.internals = ConfigInternals.probe(config)
        self.path_override: str | None = None  # tests: force "config calls" on any driver
        # tests: awaited after the chunks are written and before the head is (a crash point)
        self.before_head: Callable[[], Awaitable[None]] | None = None

    # -- reading ------------------------------------------------------------------------------

    async def read_all(self) -> dict[int, SavedGuild]:
        """Every guild's saved state (chunked or legacy); re-learns what is on storage and
        deletes chunks no head references (left by a crash on the separate-calls path)."""
        guilds = await self.config.all_guilds()
        # one read per guild: reading the whole group at once makes Red's PostgreSQL driver
        # nest every row with its jsonb_object_agg2 aggregate, quadratic in the rows (minutes
        # at 50 guilds x 5,000 tracks); one guild's rows use the linear jsonb_object_agg
        chunk_rows: dict[str, dict[str, Any]] = {}
        for guild_id in guilds:
            rows = await self.config.custom(CHUNK_GROUP, str(guild_id)).all()
            if rows:
                chunk_rows[str(guild_id)] = rows

        def assemble() -> tuple[dict[int, SavedGuild], dict[int, dict[int, str]], dict[int, set[str]]]:
            saved: dict[int, SavedGuild] = {}
            learned: dict[int, dict[int, str]] = {}
            orphans: dict[int, set[str]] = {}
            for guild_id in set(guilds) | {int(g) for g in chunk_rows}:
                data = guilds.get(guild_id) or {}
                rows = chunk_rows.get(str(guild_id)) or {}
                head = data.get(HEAD) or {}
                if head:
                    saved[guild_id] = SavedGuild(state_from_stored(head, rows), legacy=False)
                    learned[guild_id] = _learn(head, rows)
                elif data.get(LEGACY_STATE):
                    saved[guild_id] = SavedGuild(data[LEGACY_STATE], legacy=True)
                stale = set(rows) - set(head.get("chunks") or [])
                if stale:
                    orphans[guild_id] = stale
            return saved, learned, orphans

        saved, learned, orphans = await asyncio.to_thread(assemble)
        self._stored.update(learned)
        self._legacy.update(g for g, s in saved.items() if s.legacy)
        for guild_id in learned:
            self._stored.setdefault(guild_id, {})
        for guild_id in (g for g in guilds if g not in self._stored):
            self._stored[guild_id] = {}  # no chunks stored: nothing to learn
        for guild_id, names in orphans.items():
            self._orphans.setdefault(guild_id, set()).update(names)
            self._stored.setdefault(guild_id, {})
            await self._delete_chunks(guild_id, names)
        return saved

    async def load(self, guild_id: int) -> tuple[dict[str, Any], QueueModel] | None:
        """One guild's head values and queue as stored (reads every guild: for tests)."""
        saved = (await self.read_all()).get(guild_id)
        if saved is None:
            return None
        body = {k: v for k, v in saved.state.items() if k != "queue"}
        return body, QueueModel.from_dict(saved.state.get("queue") or {})

    # -- writing ------------------------------------------------------------------------------

    async def write(self, guild_id: int, capture: PlayerCapture) -> ChunkWriteStats:
        """Persist a capture, writing only the chunks that changed. Not reentrant per guild:
        MusicStore serializes writes."""
        if guild_id not in self._stored:
            await self._learn_unknown(guild_id)
        stored = dict(self._stored[guild_id])
        orphans = set(self._orphans.get(guild_id, ()))
        path = self._path()
        plan = await asyncio.to_thread(plan_write, capture, stored, orphans, path == POSTGRES_TRANSACTION)
        clear_legacy = guild_id in self._legacy
        if path == POSTGRES_TRANSACTION:
            await self._apply_postgres(guild_id, plan, clear_legacy)
        elif path == JSON_SINGLE_SAVE:
            await self._apply_json(guild_id, plan, clear_legacy)
        else:
            await self._apply_config_calls(guild_id, plan, clear_legacy)
        self._stored[guild_id] = plan.stored
        self._orphans.pop(guild_id, None)
        self._legacy.discard(guild_id)
        self.last = ChunkWriteStats(len(plan.new_chunks), len(plan.deletes), plan.chunks_total, path)
        return self.last

    async def clear(self, guild_id: int) -> None:
        """Forget the guild's saved player: head, chunks and any legacy state. The head goes
        first, so a crash in between leaves only orphan chunks (deleted at the next load)."""
        path = self._path()
        group = self.config.guild_from_id(guild_id)
        if path == POSTGRES_TRANSACTION:
            encode = self.internals.encode
            async with self.internals.postgres_transaction() as connection:
                await connection.executemany("SELECT red_config.clear($1)", [
                    (encode(group.get_attr(HEAD)),),
                    (encode(group.get_attr(LEGACY_STATE)),),
                    (encode(self.config.custom(CHUNK_GROUP, str(guild_id))),),
                ])
        else:
            await group.get_attr(HEAD).clear()
            await group.get_attr(LEGACY_STATE).clear()
            await self.config.custom(CHUNK_GROUP, str(guild_id)).clear()
        self._stored[guild_id] = {}
        self._orphans.pop(guild_id, None)
        self._legacy.discard(guild_id)

    def _path(self) -> str:
        if self.path_override is not None:
            return self.path_override
        return self.internals.current_path()

    async def _learn_unknown(self, guild_id: int) -> None:
        """A guild never read in this process (written before load, or by someone else): its
        stored chunks are unknown, so all of them are deleted once the new head is written, and
        a legacy state is cleared."""
        try:
            rows = await self.config.custom(CHUNK_GROUP, str(guild_id)).all()
        except KeyError:
            rows = {}
        self._stored[guild_id] = {}
        if rows:
            self._orphans.setdefault(guild_id, set()).update(rows)
        self._legacy.add(guild_id)  # clearing an absent value is harmless

    async def _apply_postgres(self, guild_id: int, plan: WritePlan, clear_legacy: bool) -> None:
        """One transaction: a crash or error anywhere leaves the previous head and chunks."""
        try:
            await self._postgres_transaction(guild_id, plan, clear_legacy)
        except Exception as exc:
            if type(exc).__name__ not in ("UndefinedTableError", "InvalidSchemaNameError"):
                raise
            self._chunk_table_ready = False  # dropped meanwhile (Config.clear_all...): recreate
            await self._postgres_transaction(guild_id, plan, clear_legacy)

    async def _postgres_transaction(self, guild_id: int, plan: WritePlan, clear_legacy: bool) -> None:
        """The head and the legacy clear go through Red's own server functions (red_config.set /
        clear, which handle paths inside the guild's document). Chunk rows are whole documents in
        the table Red's create_table made for the custom group, so they are upserted and deleted
        with one plain statement each: red_config.set per row costs ~1.5 ms of catalog lookups
        (information_schema) every call, most of a write's time. Config reads the same rows."""
        guild = self.config.guild_from_id(guild_id)
        encode = self.internals.encode
        table = self.internals.table(CHUNK_GROUP)
        async with self.internals.postgres_transaction() as connection:
            if not self._chunk_table_ready and (plan.new_chunks or plan.deletes):
                await connection.execute("SELECT red_config.maybe_create_table($1)",
                                         self._chunk_id(guild_id, "-"))
                self._chunk_table_ready = True
            if plan.new_chunks:
                await connection.execute(
                    f"INSERT INTO {table} AS t (primary_key_1, primary_key_2, json_data) "
                    "SELECT $1, name, document FROM unnest($2::text[], $3::jsonb[]) AS u(name, document) "
                    "ON CONFLICT (primary_key_1, primary_key_2) DO UPDATE SET json_data = excluded.json_data",
                    str(guild_id), list(plan.new_chunks), list(plan.new_chunks.values()))
            if self.before_head is not None:
                await self.before_head()
            await connection.execute("SELECT red_config.set($1, $2::jsonb)",
                                     encode(guild.get_attr(HEAD)), plan.head)
            if plan.deletes:
                await connection.execute(
                    f"DELETE FROM {table} WHERE primary_key_1 = $1 AND primary_key_2 = ANY($2::text[])",
                    str(guild_id), plan.deletes)
            if clear_legacy:
                await connection.execute("SELECT red_config.clear($1)",
                                         encode(guild.get_attr(LEGACY_STATE)))

    async def _apply_json(self, guild_id: int, plan: WritePlan, clear_legacy: bool) -> None:
        """Red's JSON driver rewrites the whole file per set: apply the whole plan to its
        in-memory document and save once (what JsonDriver.set does, for several values)."""
        guild = self.config.guild_from_id(guild_id)
        if self.before_head is not None:
            await self.before_head()
        async with self.internals.json_document() as document:  # saved once, at the end
            for name, chunk in plan.new_chunks.items():
                document.set(self.config.custom(CHUNK_GROUP, str(guild_id), name), chunk)
            document.set(guild.get_attr(HEAD), plan.head)
            for name in plan.deletes:
                document.clear(self.config.custom(CHUNK_GROUP, str(guild_id), name))
            if clear_legacy:
                document.clear(guild.get_attr(LEGACY_STATE))
            # memory holds the new state now: whatever is saved next (this or any later write)
            # is consistent, so the writer's bookkeeping follows memory even if this save fails
            self._stored[guild_id] = plan.stored
            self._orphans.pop(guild_id, None)
            self._legacy.discard(guild_id)

    async def _apply_config_calls(self, guild_id: int, plan: WritePlan, clear_legacy: bool) -> None:
        guild = self.config.guild_from_id(guild_id)
        orphans = self._orphans.setdefault(guild_id, set())
        for name, document in plan.new_chunks.items():
            orphans.add(name)  # until the head that references it is written
            await self.config.custom(CHUNK_GROUP, str(guild_id), name).set(document)
        if self.before_head is not None:
            await self.before_head()
        await guild.get_attr(HEAD).set(plan.head)
        orphans.difference_update(plan.new_chunks)
        orphans.update(plan.deletes)  # no longer referenced: safe to delete from here on
        self._stored[guild_id] = plan.stored
        if clear_legacy:
            await guild.get_attr(LEGACY_STATE).clear()
            self._legacy.discard(guild_id)
        await self._delete_chunks(guild_id, plan.deletes)

    async def _delete_chunks(self, guild_id: int, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        path = self._path()
        if path == POSTGRES_TRANSACTION:
            async with self.internals.postgres_transaction() as connection:
                await connection.executemany("SELECT red_config.clear($1)",
                                             [(self._chunk_id(guild_id, n),) for n in names])
        else:
            for name in names:
                await self.config.custom(CHUNK_GROUP, str(guild_id), name).clear()
        orphans = self._orphans.get(guild_id)
        if orphans is not None:
            orphans.difference_update(names)

    def _chunk_id(self, guild_id: int, name: str) -> tuple[Any, ...]:
        return self.internals.encode(self.config.custom(CHUNK_GROUP, str(guild_id), name))


"""Saved playlists in Red Config, in the queue's chunked layout (see store_chunks.py).

- custom group `PLAYLIST` keyed (scope, scope id, name key): the small head: name, author,
  created/updated, source link, entry count and duration, its storage id (`uid`) and the ordered
  names of the chunks holding its entries;
- custom group `PLAYLIST_CHUNK` keyed (scope, scope id, uid, chunk name): `{"tracks": [...]}`.

Chunk boundaries are content-defined exactly as for queues (store_chunks._split: after an entry
whose id's CRC32 is 0 mod 64, and at 256), so appending, removing or deduplicating rewrites the
chunks around the change and the head, not the playlist: one chunk write for a change in a big
playlist. Renaming moves the head only (the chunks are keyed by `uid`). A write is applied the
way store_chunks applies a queue's (config_internals.ConfigInternals): one in-memory edit and one
file save on JSON, one transaction on PostgreSQL, else separate Config calls in a crash-safe
order (chunks, head, then deletes; unreferenced chunks are deleted at the playlist's next write).

Every read and write runs under `lock`; read-modify-write sequences (the control layer's
edits) hold it throughout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..config_internals import JSON_SINGLE_SAVE, POSTGRES_TRANSACTION, ConfigInternals
from ..engine.track import Track
from ..store_chunks import ChunkWriteStats, _fingerprints, _split, _track_dict
from .model import Playlist, PlaylistSummary, Scope, Where, name_key

if TYPE_CHECKING:
    from redbot.core import Config

PLAYLIST_GROUP = "PLAYLIST"
PLAYLIST_CHUNK_GROUP = "PLAYLIST_CHUNK"

# the limits (`musicset playlistlimits`): (default, lowest, highest)
LIMITS: dict[str, tuple[int, int, int]] = {
    "server": (100, 1, 1000),  # playlists one server may keep (the server's admins)
    "user": (25, 1, 1000),  # playlists one member may keep in their own scope (the owner)
    "global": (100, 1, 1000),  # global playlists (the owner)
    "entries": (1000, 1, 10_000),  # entries one playlist may hold (the owner)
}
_LIMIT_SETTINGS = {"server": "max_playlists", "user": "max_user_playlists",
                   "global": "max_global_playlists", "entries": "max_playlist_entries"}
GLOBAL_DEFAULTS: dict[str, Any] = {
    **{_LIMIT_SETTINGS[name]: LIMITS[name][0] for name in ("user", "global", "entries")},
    # what `musicset import audio` imported: {"playlists": {Audio key: where it went}, "settings": [guild ids]}
    "audio_import": {},
}
GUILD_DEFAULTS: dict[str, Any] = {_LIMIT_SETTINGS["server"]: LIMITS["server"][0]}


@dataclasses.dataclass(frozen=True)
class PlaylistLimits:
    server: int
    user: int
    global_: int
    entries: int

    def playlists_in(self, scope: Scope) -> int:
        return {Scope.SERVER: self.server, Scope.USER: self.user, Scope.GLOBAL: self.global_}[scope]


@dataclasses.dataclass
class StoredPlaylist:
    """A playlist as read, with what is on storage for it (so a write stores only changes)."""

    playlist: Playlist
    key: str  # the head's key on storage (the name key when it was read)
    stored: dict[int, str]  # chunk content key -> chunk name, as stored now
    orphans: set[str]  # chunk rows of this playlist that no head references


@dataclasses.dataclass
class _Plan:
    head: dict[str, Any]
    new_chunks: dict[str, dict[str, Any]]
    deletes: list[str]
    stored: dict[int, str]
    total: int


def _plan(playlist: Playlist, stored: dict[int, str], orphans: Iterable[str]) -> _Plan:
    """Split into chunks, name them (reusing stored names for unchanged content), serialize the
    new ones. Pure: runs in a thread."""
    names: list[str] = []
    new_stored: dict[int, str] = {}
    new_chunks: dict[str, dict[str, Any]] = {}
    for key, prints in _split(_fingerprints(playlist.entries)):
        name = new_stored.get(key) or stored.get(key)
        if name is None:
            name = uuid.uuid4().hex[:16]
            new_chunks[name] = {"tracks": [_track_dict(p) for p in prints]}
        new_stored[key] = name
        names.append(name)
    kept = set(new_stored.values())
    deletes = sorted({n for n in stored.values() if n not in kept} | (set(orphans) - kept))
    head = {
        "name": playlist.name,
        "author_id": playlist.author_id,
        "uid": playlist.uid,
        "source_url": playlist.source_url,
        "created": playlist.created,
        "updated": playlist.updated,
        "count": len(playlist.entries),
        "duration": playlist.duration,
        "chunks": names,
    }
    return _Plan(head, new_chunks, deletes, new_stored, len(names))


def _assemble(where: Where, head: dict[str, Any], rows: dict[str, Any]) -> tuple[Playlist, dict[int, str], set[str]]:
    """The playlist from its head and chunk rows (a missing chunk loses only its entries), the
    stored chunks keyed as _plan keys them, and the rows no head references. Runs in a thread."""
    entries: list[Track] = []
    stored: dict[int, str] = {}
    for name in head.get("chunks") or []:
        chunk = rows.get(name)
        if not isinstance(chunk, dict):
            continue
        tracks = [Track.from_dict(t) for t in chunk.get("tracks") or [] if isinstance(t, dict)]
        stored[hash(tuple(_fingerprints(tracks)))] = name
        entries.extend(tracks)
    playlist = Playlist(
        name=str(head.get("name") or "?"),
        where=where,
        author_id=int(head.get("author_id") or 0),
        entries=entries,
        source_url=head.get("source_url"),
        created=float(head.get("created") or 0.0),
        updated=float(head.get("updated") or 0.0),
        uid=str(head.get("uid") or uuid.uuid4().hex[:16]),
    )
    orphans = set(rows) - set(head.get("chunks") or [])
    return playlist, stored, orphans


def _summary(where: Where, head: dict[str, Any]) -> PlaylistSummary:
    return PlaylistSummary(
        name=str(head.get("name") or "?"),
        where=where,
        author_id=int(head.get("author_id") or 0),
        count=int(head.get("count") or 0),
        duration=float(head.get("duration") or 0.0),
        updated=float(head.get("updated") or 0.0),
    )


class PlaylistStore:
    """Reads and writes saved playlists; the control layer holds `lock` around an edit."""

    def __init__(self, config: Config, internals: ConfigInternals) -> None:
        self.config = config
        self.internals = internals
        config.init_custom(PLAYLIST_GROUP, 3)
        config.init_custom(PLAYLIST_CHUNK_GROUP, 4)
        config.register_global(**GLOBAL_DEFAULTS)
        config.register_guild(**GUILD_DEFAULTS)
        self.lock = asyncio.Lock()
        self.last = ChunkWriteStats()
        self.path_override: str | None = None  # tests: force "config calls" on any driver

    # -- limits and the import record -----------------------------------------------------------

    def _global(self, name: str) -> Any:
        """A global value (Red types Config's attribute access loosely)."""
        return getattr(self.config, name)

    async def limits(self, guild_id: int) -> PlaylistLimits:
        return PlaylistLimits(
            server=int(await self.config.guild_from_id(guild_id).get_attr(_LIMIT_SETTINGS["server"])()),
            user=int(await self._global(_LIMIT_SETTINGS["user"])()),
            global_=int(await self._global(_LIMIT_SETTINGS["global"])()),
            entries=int(await self._global(_LIMIT_SETTINGS["entries"])()),
        )

    async def set_limit(self, name: str, value: int, guild_id: int) -> None:
        """One of LIMITS (already checked against its range)."""
        setting = _LIMIT_SETTINGS[name]
        if name == "server":
            await self.config.guild_from_id(guild_id).get_attr(setting).set(value)
        else:
            await self._global(setting).set(value)

    async def import_record(self) -> dict[str, Any]:
        record = await self._global("audio_import")()
        return {"playlists": dict(record.get("playlists") or {}), "settings": list(record.get("settings") or [])}

    async def save_import_record(self, record: dict[str, Any]) -> None:
        await self._global("audio_import").set(record)

    # -- reading (hold `lock`) -------------------------------------------------------------------

    def _head(self, where: Where, key: str) -> Any:
        return self.config.custom(PLAYLIST_GROUP, where.scope.value, str(where.scope_id), key)

    def _chunks(self, where: Where, uid: str, *name: str) -> Any:
        return self.config.custom(PLAYLIST_CHUNK_GROUP, where.scope.value, str(where.scope_id), uid, *name)

    async def summaries(self, where: Where) -> list[PlaylistSummary]:
        heads = await self.config.custom(PLAYLIST_GROUP, where.scope.value, str(where.scope_id)).all()
        found = [_summary(where, head) for head in heads.values() if isinstance(head, dict) and head.get("uid")]
        return sorted(found, key=lambda s: name_key(s.name))

    async def count(self, where: Where) -> int:
        return len(await self.summaries(where))

    async def scopes(self, scope: Scope) -> list[int]:
        """The ids that have playlists in `scope` (for data deletion and the Audio import)."""
        stored = await self.config.custom(PLAYLIST_GROUP, scope.value).all()
        return [int(scope_id) for scope_id, heads in stored.items() if heads]

    async def exists(self, where: Where, name: str) -> bool:
        head = await self._head(where, name_key(name)).all()
        return bool(head and head.get("uid"))

    async def load(self, where: Where, name: str) -> StoredPlaylist | None:
        key = name_key(name)
        head = await self._head(where, key).all()
        if not head or not head.get("uid"):
            return None
        rows = await self._chunks(where, str(head["uid"])).all()
        playlist, stored, orphans = await asyncio.to_thread(_assemble, where, head, rows)
        return StoredPlaylist(playlist, key, stored, orphans)

    # -- writing (hold `lock`) -------------------------------------------------------------------

    async def write(self, playlist: Playlist, previous: StoredPlaylist | None = None) -> ChunkWriteStats:
        """Store `playlist` (new, or edited from `previous`), writing only the chunks that
        changed. A rename (its key differs from `previous.key`) moves the head."""
        stored = previous.stored if previous is not None else {}
        orphans = previous.orphans if previous is not None else set()
        plan = await asyncio.to_thread(_plan, playlist, stored, orphans)
        key = playlist.key
        moved_from = previous.key if previous is not None and previous.key != key else None
        path = self._path()
        where, uid = playlist.where, playlist.uid
        if path == JSON_SINGLE_SAVE:
            async with self.internals.json_document() as document:
                for name, chunk in plan.new_chunks.items():
                    document.set(self._chunks(where, uid, name), chunk)
                document.set(self._head(where, key), plan.head)
                if moved_from is not None:
                    document.clear(self._head(where, moved_from))
                for name in plan.deletes:
                    document.clear(self._chunks(where, uid, name))
        elif path == POSTGRES_TRANSACTION:
            encode = self.internals.encode
            async with self.internals.postgres_transaction() as connection:
                for name, chunk in plan.new_chunks.items():
                    await connection.execute("SELECT red_config.set($1, $2::jsonb)",
                                             encode(self._chunks(where, uid, name)), json.dumps(chunk))
                await connection.execute("SELECT red_config.set($1, $2::jsonb)",
                                         encode(self._head(where, key)), json.dumps(plan.head))
                clears = [self._head(where, moved_from)] if moved_from is not None else []
                clears += [self._chunks(where, uid, name) for name in plan.deletes]
                if clears:
                    await connection.executemany("SELECT red_config.clear($1)", [(encode(v),) for v in clears])
        else:
            for name, chunk in plan.new_chunks.items():
                await self._chunks(where, uid, name).set(chunk)
            await self._head(where, key).set(plan.head)
            if moved_from is not None:
                await self._head(where, moved_from).clear()
            for name in plan.deletes:
                await self._chunks(where, uid, name).clear()
        if previous is not None:
            previous.stored, previous.orphans, previous.key = plan.stored, set(), key
        self.last = ChunkWriteStats(len(plan.new_chunks), len(plan.deletes), plan.total, path)
        return self.last

    async def delete(self, where: Where, name: str) -> bool:
        """Delete a playlist: its head first, so a crash in between leaves only chunk rows that
        nothing references. Returns False if there was none."""
        key = name_key(name)
        head = await self._head(where, key).all()
        if not head:
            return False
        uid = str(head.get("uid") or "")
        path = self._path()
        if path == JSON_SINGLE_SAVE:
            async with self.internals.json_document() as document:
                document.clear(self._head(where, key))
                if uid:
                    document.clear(self._chunks(where, uid))
        elif path == POSTGRES_TRANSACTION:
            encode = self.internals.encode
            clears = [self._head(where, key)] + ([self._chunks(where, uid)] if uid else [])
            async with self.internals.postgres_transaction() as connection:
                await connection.executemany("SELECT red_config.clear($1)", [(encode(v),) for v in clears])
        else:
            await self._head(where, key).clear()
            if uid:
                await self._chunks(where, uid).clear()
        return True

    async def forget_user(self, user_id: int) -> tuple[int, int]:
        """Delete `user_id`'s own playlists and clear them as author of any other. Hold `lock`."""
        own = Where.user(user_id)
        deleted = 0
        for summary in await self.summaries(own):
            deleted += await self.delete(own, summary.name)
        cleared = 0
        for scope_name, by_id in (await self.config.custom(PLAYLIST_GROUP).all()).items():
            for scope_id, heads in by_id.items():
                for key, head in heads.items():
                    if isinstance(head, dict) and head.get("author_id") == user_id:
                        where = Where(Scope(scope_name), int(scope_id))
                        await self._head(where, key).set({**head, "author_id": 0})
                        cleared += 1
        return deleted, cleared

    def _path(self) -> str:
        if self.path_override is not None:
            return self.path_override
        return self.internals.current_path()

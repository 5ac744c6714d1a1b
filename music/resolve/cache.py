"""LRU + TTL caches for what yt-dlp found, so a repeated play of the same link skips extraction.

Two namespaces with different lifetimes:
- metadata (title, duration, uploader, page URL...) keyed by the link or the search words: long
  (a day by default);
- stream URLs keyed by the page URL: short, and never past the URL's own expiry (`expire=`)
  minus a safety margin, so a cached stream is always still playable when handed out.

Times are wall-clock epoch seconds (stream expiries are epoch times, and entries must keep their
meaning across a restart). The cache is saved as JSON to a path the caller gives (the cog's data
folder): the snapshot is taken on the event loop (cheap: stored values are never mutated), then
serialised and written in a thread, atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("red.music.resolve.cache")

FORMAT_VERSION = 1
DEFAULT_META_TTL = 24 * 3600.0
DEFAULT_STREAM_TTL = 2 * 3600.0
# A stream URL is not handed out when it expires within this margin (it must last until ffmpeg
# has opened it; the player refreshes within 60 s of expiry anyway).
DEFAULT_STREAM_MARGIN = 120.0


class TTLCache:
    """A least-recently-used map whose entries also expire at a given time."""

    def __init__(self, *, max_entries: int, ttl: float, clock: Callable[[], float]) -> None:
        self.max_entries = max(1, max_entries)
        self.ttl = ttl
        self._clock = clock
        self._entries: collections.OrderedDict[str, tuple[float, dict[str, Any]]] = (
            collections.OrderedDict()
        )
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        """The value (do not mutate it) if present and unexpired; counts a hit or a miss."""
        item = self._entries.get(key)
        if item is not None and item[0] <= self._clock():
            del self._entries[key]
            item = None
        if item is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: str, value: dict[str, Any], *, expires_at: float | None = None) -> None:
        """Store `value` (copied) until `expires_at`, or for the default ttl."""
        now = self._clock()
        expires = now + self.ttl if expires_at is None else min(expires_at, now + self.ttl)
        if expires <= now:
            self._entries.pop(key, None)
            return
        self._entries[key] = (expires, dict(value))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def newest(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """Up to `limit` (key, value) pairs, most recently used first, expired ones included
        (do not mutate the values); for suggestions, without copying the whole cache."""
        return [(key, value) for key, (_expires, value) in itertools.islice(reversed(self._entries.items()), limit)]

    def snapshot(self) -> list[list[Any]]:
        """[[key, expires_at, value], ...] oldest use first, for saving."""
        return [[k, exp, v] for k, (exp, v) in self._entries.items()]

    def restore(self, rows: list[Any]) -> int:
        """Load rows from snapshot(), skipping expired and malformed ones; returns how many."""
        now = self._clock()
        loaded = 0
        for row in rows:
            try:
                key, expires, value = row
                expires = float(expires)
            except (TypeError, ValueError):
                continue
            if not isinstance(key, str) or not isinstance(value, dict) or expires <= now:
                continue
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
            loaded += 1
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return loaded

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {
            "entries": len(self._entries),
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / lookups, 3) if lookups else None,
        }


class ResolveCache:
    """Metadata and stream-URL caches with save/load."""

    def __init__(
        self,
        *,
        meta_ttl: float = DEFAULT_META_TTL,
        meta_entries: int = 5000,
        stream_ttl: float = DEFAULT_STREAM_TTL,
        stream_entries: int = 2000,
        stream_margin: float = DEFAULT_STREAM_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.meta = TTLCache(max_entries=meta_entries, ttl=meta_ttl, clock=clock)
        self.streams = TTLCache(max_entries=stream_entries, ttl=stream_ttl, clock=clock)
        self.stream_margin = stream_margin
        self._save_lock = asyncio.Lock()
        self.dirty = False

    def get_meta(self, key: str) -> dict[str, Any] | None:
        return self.meta.get(key)

    def put_meta(self, key: str, value: dict[str, Any]) -> None:
        self.meta.put(key, value)
        self.dirty = True

    def get_stream(self, key: str) -> dict[str, Any] | None:
        return self.streams.get(key)

    def put_stream(self, key: str, value: dict[str, Any], url_expires: float | None) -> None:
        """Store stream info until the default ttl, or earlier: its own expiry minus margin."""
        expires_at = None if url_expires is None else url_expires - self.stream_margin
        self.streams.put(key, value, expires_at=expires_at)
        self.dirty = True

    def stats(self) -> dict[str, Any]:
        meta, streams = self.meta.stats(), self.streams.stats()
        hits = meta["hits"] + streams["hits"]
        lookups = hits + meta["misses"] + streams["misses"]
        return {
            "meta": meta,
            "streams": streams,
            "hit_rate": round(hits / lookups, 3) if lookups else None,
        }

    # ---- persistence ------------------------------------------------------------------

    async def save(self, path: Path) -> None:
        """Write the cache to `path` atomically; serialisation and I/O run in a thread."""
        async with self._save_lock:
            document = {
                "version": FORMAT_VERSION,
                "saved_at": self.clock(),
                "meta": self.meta.snapshot(),
                "streams": self.streams.snapshot(),
            }
            self.dirty = False
            try:
                await asyncio.to_thread(write_json_atomically, Path(path), document)
            except BaseException:
                self.dirty = True
                raise

    async def load(self, path: Path) -> int:
        """Add the entries saved at `path` (expired ones dropped); a missing or damaged file
        only means an empty cache. Returns how many entries were loaded."""
        try:
            document = await asyncio.to_thread(_read_json, Path(path))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("Ignoring the resolve cache at %s: %s", path, exc)
            return 0
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            log.warning("Ignoring the resolve cache at %s: unknown format", path)
            return 0
        meta = document.get("meta")
        streams = document.get("streams")
        loaded = self.meta.restore(meta if isinstance(meta, list) else [])
        loaded += self.streams.restore(streams if isinstance(streams, list) else [])
        return loaded


def _read_json(path: Path) -> Any:
    with path.open("r", encoding="utf-8") as handle:
        return json.load(handle)


def write_json_atomically(path: Path, document: Any) -> None:
    """Blocking: temp file in the same folder, fsync, rename over the old file. A crash
    mid-write leaves the previous file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, separators=(",", ":"))
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise

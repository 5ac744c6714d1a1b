"""ResolveCache: LRU order, TTL, stream expiry, save/load in a thread, damaged files."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from music.resolve import cache as cache_module
from music.resolve.cache import ResolveCache, TTLCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_lru_evicts_the_least_recently_used(tmp_path: Path) -> None:
    clock = FakeClock()
    lru = TTLCache(max_entries=3, ttl=100.0, clock=clock)
    for key in "abc":
        lru.put(key, {"v": key})
    assert lru.get("a") == {"v": "a"}  # a is now the most recent
    lru.put("d", {"v": "d"})
    assert lru.get("b") is None
    assert [lru.get(k) is not None for k in "acd"] == [True, True, True]
    assert lru.stats() == {"entries": 3, "hits": 4, "misses": 1, "hit_rate": 0.8}


def test_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    lru = TTLCache(max_entries=10, ttl=60.0, clock=clock)
    lru.put("a", {"v": 1})
    clock.now += 59.9
    assert lru.get("a") == {"v": 1}
    clock.now += 0.1
    assert lru.get("a") is None
    assert len(lru) == 0


def test_stored_values_are_copies() -> None:
    lru = TTLCache(max_entries=10, ttl=60.0, clock=FakeClock())
    value = {"v": 1}
    lru.put("a", value)
    value["v"] = 2
    assert lru.get("a") == {"v": 1}


def test_stream_entries_never_outlive_the_urls_own_expiry() -> None:
    clock = FakeClock()
    cache = ResolveCache(stream_ttl=3600.0, stream_margin=60.0, clock=clock)
    # expires in 5 minutes: usable for 4
    cache.put_stream("soon", {"stream_url": "u"}, url_expires=clock.now + 300)
    # expires in 6 hours: capped by the 1 h ttl
    cache.put_stream("late", {"stream_url": "u"}, url_expires=clock.now + 6 * 3600)
    # already inside the margin: not stored at all
    cache.put_stream("dead", {"stream_url": "u"}, url_expires=clock.now + 30)
    assert cache.get_stream("dead") is None
    clock.now += 239
    assert cache.get_stream("soon") is not None
    clock.now += 1
    assert cache.get_stream("soon") is None
    assert cache.get_stream("late") is not None
    clock.now += 3600
    assert cache.get_stream("late") is None


def test_meta_lives_longer_than_streams() -> None:
    clock = FakeClock()
    cache = ResolveCache(meta_ttl=86400.0, stream_ttl=3600.0, clock=clock)
    cache.put_meta("k", {"title": "t"})
    cache.put_stream("k", {"stream_url": "u"}, url_expires=None)
    clock.now += 7200
    assert cache.get_stream("k") is None
    assert cache.get_meta("k") == {"title": "t"}
    assert cache.stats()["hit_rate"] == 0.5


async def test_save_and_load_round_trip_dropping_expired(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "data" / "resolve_cache.json"
    first = ResolveCache(meta_ttl=1000.0, stream_ttl=100.0, clock=clock)
    first.put_meta("url:a", {"title": "A", "http_headers": {"X": "1"}})
    first.put_meta("url:b", {"title": "B"})
    first.put_stream("stream:a", {"stream_url": "https://cdn/a"}, url_expires=None)
    assert first.dirty
    await first.save(path)
    assert not first.dirty
    assert [p.name for p in path.parent.iterdir()] == ["resolve_cache.json"]  # no temp file left
    assert json.loads(path.read_text())["version"] == 1

    clock.now += 500  # the stream (100 s) expired meanwhile, the metadata (1000 s) did not
    second = ResolveCache(meta_ttl=1000.0, stream_ttl=100.0, clock=clock)
    assert await second.load(path) == 2
    # LRU order survives (a was used least recently)
    assert [row[0] for row in second.meta.snapshot()] == ["url:a", "url:b"]
    assert second.get_meta("url:a") == {"title": "A", "http_headers": {"X": "1"}}
    assert second.get_stream("stream:a") is None


async def test_save_writes_in_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = cache_module.write_json_atomically

    def spy(path: Path, document: object) -> None:
        threads.append(threading.current_thread().name)
        real(path, document)

    monkeypatch.setattr(cache_module, "write_json_atomically", spy)
    cache = ResolveCache()
    cache.put_meta("k", {"title": "t"})
    await cache.save(tmp_path / "c.json")
    assert threads and threads[0] != threading.current_thread().name


async def test_concurrent_saves_do_not_interleave(tmp_path: Path) -> None:
    cache = ResolveCache()
    for i in range(2000):
        cache.put_meta(f"k{i}", {"title": str(i)})
    path = tmp_path / "c.json"
    await asyncio.gather(*(cache.save(path) for _ in range(5)))
    assert len(json.loads(path.read_text())["meta"]) == 2000


@pytest.mark.parametrize("content", ["{not json", '{"version": 99, "meta": []}', "[]"])
async def test_a_damaged_file_means_an_empty_cache(tmp_path: Path, content: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    cache = ResolveCache()
    assert await cache.load(path) == 0
    assert await cache.load(tmp_path / "missing.json") == 0
    assert len(cache.meta) == 0


async def test_malformed_rows_are_skipped(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "c.json"
    rows = [
        ["ok", clock.now + 10, {"title": "t"}],
        ["bad"],
        [1, clock.now + 10, {}],
        ["x", "soon", {}],
    ]
    path.write_text(json.dumps({"version": 1, "meta": rows, "streams": "nope"}))
    cache = ResolveCache(clock=clock)
    assert await cache.load(path) == 1
    assert cache.get_meta("ok") == {"title": "t"}

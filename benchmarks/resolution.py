"""Track lookup benchmarks: the cog's ResolveService beside a plain yt-dlp thread pool, same run.

    python -m benchmarks.resolution [--reps N] [--entries N]

A fake video site runs on a local aiohttp server (its own thread) with a site's latency: every
item page and every playlist page (50 entries, as YouTube pages them) answers after a delay.
Its yt-dlp extractors (below; benchmarks don't import tests/) fetch those pages over HTTP, so
real yt-dlp work and real HTTP requests are measured; only the internet is missing.

Rows (medians over --reps repetitions, baseline and ours interleaved in each repetition):
- a playlist of --entries entries: time until its first entry is playable (listed and its stream
  resolved) and until every entry is listed. Baseline: yt-dlp's extract_info of the whole
  playlist in a plain thread pool (what a bot without the service does; PlainPool), then the
  first entry's stream.
- the same link looked up twice: the service's cached answer vs an uncached lookup.
- one NORMAL lookup for guild B, idle vs while guild A expands playlists. Baseline: the plain
  first-come-first-served pool under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import OnDemandPagedList

from music.engine.track import Track
from music.policy import DEFAULT_EXTRACTORS, ExtractorPolicy, NetworkPolicy
from music.resolve.jobs import Priority
from music.resolve.resolver import Resolver
from music.resolve.service import ResolveService
from music.resolve.tracks import apply_fresh, entry_track, full_track
from music.resolve.ytdl import PER_LOOKUP_OPTIONS, PolicedYoutubeDL, lookup_options

from .common import fmt, median, print_table, ratio

ITEM_DELAY = 0.030  # seconds a site takes to answer an item page
PAGE_DELAY = 0.050  # ... and a playlist page
PAGE_SIZE = 50
LOOPBACK_OK = NetworkPolicy(allow=["127.0.0.0/8"])
# what an owner would do for this site: `musicset extractors allow benchsite`
BENCHSITE_ALLOWED = ExtractorPolicy([*DEFAULT_EXTRACTORS, "benchsite"])


# -- the fake site --------------------------------------------------------------------------------


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class BenchItemIE(InfoExtractor):
    IE_NAME = "benchsite"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/bench/item/(?P<id>\d+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        item_id = self._match_id(url)
        data = self._download_json(f"{_base(url)}/api/item/{item_id}", item_id, note=False)
        return {
            "id": item_id,
            "title": data["title"],
            "url": data["stream"],
            "ext": "webm",
            "acodec": "opus",
            "vcodec": "none",
            "duration": 180.0,
            "webpage_url": url,
        }


class BenchListIE(InfoExtractor):
    IE_NAME = "benchsite:list"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/bench/list/(?P<id>\d+)(?:/(?P<tag>\w+))?"

    def _real_extract(self, url: str) -> dict[str, Any]:
        count = int(self._match_id(url))
        base = _base(url)

        def page(number: int):
            data = self._download_json(f"{base}/api/list/{count}?page={number}", str(count), note=False)
            for entry in data["entries"]:
                yield self.url_result(f"{base}/bench/item/{entry['id']}", BenchItemIE, video_title=entry["title"])

        return self.playlist_result(OnDemandPagedList(page, PAGE_SIZE), f"list{count}", f"Bench list {count}",
                                    playlist_count=count)


EXTRACTORS = (BenchItemIE, BenchListIE)


class FakeSite:
    """The site's pages on 127.0.0.1 in a thread of its own (its latency can't be hidden by
    the benchmark's own event loop)."""

    def __init__(self) -> None:
        self.requests = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _item(self, request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(ITEM_DELAY)
        item_id = request.match_info["id"]
        return web.json_response({"title": f"Item {item_id}", "stream": f"{self.base}/media/{item_id}.webm"})

    async def _list(self, request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(PAGE_DELAY)
        count = int(request.match_info["count"])
        number = int(request.query.get("page", "0"))
        ids = range(number * PAGE_SIZE, min(count, (number + 1) * PAGE_SIZE))
        return web.json_response({"entries": [{"id": i, "title": f"Item {i}"} for i in ids]})

    def start(self) -> FakeSite:
        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            app.router.add_get("/api/item/{id}", self._item)
            app.router.add_get("/api/list/{count}", self._list)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="bench-site", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


# -- the measured operations ------------------------------------------------------------------------


def new_resolver() -> Resolver:
    return Resolver(lambda: LOOPBACK_OK, timeout=120, extra_extractors=EXTRACTORS,
                    probe_direct_media=False, extractor_policy_getter=lambda: BENCHSITE_ALLOWED)


class PlainPool:
    """The baseline: what a bot without the service does, and what the Resolver did before its
    own async API was dropped: yt-dlp's extract_info of the whole playlist (processed, flat, up
    to the limit) in one first-come-first-served pool of 3 threads, a yt-dlp instance reused
    per thread; no priorities, no cache, nothing returned before the whole list."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(3, thread_name_prefix="bench-plain")
        self._per_thread = threading.local()
        self._instances: list[PolicedYoutubeDL] = []

    async def resolve(self, url: str, limit: int = 100) -> list[Track]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._list, url, limit)

    async def refresh(self, track: Track) -> Track:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._refresh, track)

    def _extract(self, url: str, opts: dict[str, Any]) -> dict[str, Any]:
        ydl = getattr(self._per_thread, "ydl", None)
        if ydl is None:
            fixed = {k: v for k, v in opts.items() if k not in PER_LOOKUP_OPTIONS}
            ydl = self._per_thread.ydl = PolicedYoutubeDL(fixed, LOOPBACK_OK, EXTRACTORS, BENCHSITE_ALLOWED)
            self._instances.append(ydl)
        ydl.begin_lookup(LOOPBACK_OK, BENCHSITE_ALLOWED, opts)
        try:
            return ydl.extract_info(url, download=False)
        finally:
            ydl.end_lookup()

    def _list(self, url: str, limit: int) -> list[Track]:
        # one more than the limit tells whether the playlist was cut
        info = self._extract(url, lookup_options(timeout=120, proxy=None, flat=True, limit=limit + 1))
        if info.get("_type") not in ("playlist", "multi_video"):
            return [full_track(info, LOOPBACK_OK, 1, url, None)]
        entries = [entry for entry in info.get("entries") or [] if entry][:limit]
        return [track for entry in entries if (track := entry_track(entry, LOOPBACK_OK, 1, None))]

    def _refresh(self, track: Track) -> Track:
        url = track.webpage_url or track.query
        info = self._extract(url, lookup_options(timeout=120, proxy=None, flat=False, limit=1, single=True))
        return apply_fresh(track, full_track(info, LOOPBACK_OK, track.requester_id, url, None))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for ydl in self._instances:
            ydl.close()


@contextlib.asynccontextmanager
async def new_service():
    resolver = new_resolver()
    service = ResolveService(resolver, workers=3, timeout=120)  # no cache_path: nothing on disk
    try:
        yield service
    finally:
        await service.close()
        resolver.close()


async def playlist_service(site: FakeSite, entries: int, tag: str) -> tuple[float, float]:
    """(first entry playable, all entries listed) in seconds, through the service."""
    url = f"{site.base}/bench/list/{entries}/{tag}"
    async with new_service() as service:
        started = time.perf_counter()
        result = await service.resolve(url, guild_id=1, requester_id=1, limit=entries, priority=Priority.URGENT)
        await service.refresh(result.tracks[0], guild_id=1, priority=Priority.URGENT)
        first = time.perf_counter() - started
        listed = len(result.tracks)
        assert result.rest is not None
        async for batch in result.rest:
            listed += len(batch)
        everything = time.perf_counter() - started
    assert listed == entries, listed
    return first, everything


async def playlist_baseline(site: FakeSite, entries: int, tag: str) -> tuple[float, float]:
    """The same with the plain pool: the whole playlist, then the first entry's stream."""
    url = f"{site.base}/bench/list/{entries}/{tag}"
    plain = PlainPool()
    try:
        started = time.perf_counter()
        tracks = await plain.resolve(url, limit=entries)
        listed = time.perf_counter() - started
        await plain.refresh(tracks[0])
        first = time.perf_counter() - started
    finally:
        plain.close()
    assert len(tracks) == entries, len(tracks)
    return first, listed


async def repeat_lookup(site: FakeSite, item: int) -> tuple[float, float, bool]:
    """(uncached, cached) seconds for two service lookups of the same link, and whether the
    second came from the cache."""
    url = f"{site.base}/bench/item/{item}"
    async with new_service() as service:
        started = time.perf_counter()
        await service.resolve(url, guild_id=1, requester_id=1)
        uncached = time.perf_counter() - started
        started = time.perf_counter()
        again = await service.resolve(url, guild_id=1, requester_id=1)
        cached = time.perf_counter() - started
    return uncached, cached, again.from_cache


async def lookup_under_load(site: FakeSite, *, busy_playlists: int, entries: int, item: int,
                            use_service: bool) -> float:
    """Seconds for guild B's single lookup while guild A expands `busy_playlists` playlists
    (started just before)."""
    url = f"{site.base}/bench/item/{item}"
    if use_service:
        async with new_service() as service:
            loads = [
                asyncio.create_task(_expand_all(service, f"{site.base}/bench/list/{entries}/load{item}x{n}", entries))
                for n in range(busy_playlists)
            ]
            await asyncio.sleep(0.2 if busy_playlists else 0)  # guild A's expansions are under way
            started = time.perf_counter()
            await service.resolve(url, guild_id=2, requester_id=2, priority=Priority.NORMAL)
            took = time.perf_counter() - started
            for task in loads:
                task.cancel()
            await asyncio.gather(*loads, return_exceptions=True)
        return took
    plain = PlainPool()
    try:
        loads = [
            asyncio.create_task(plain.resolve(f"{site.base}/bench/list/{entries}/load{item}x{n}", limit=entries))
            for n in range(busy_playlists)
        ]
        await asyncio.sleep(0.2 if busy_playlists else 0)
        started = time.perf_counter()
        await plain.resolve(url)
        took = time.perf_counter() - started
        await asyncio.gather(*loads, return_exceptions=True)
    finally:
        plain.close()
    return took


async def _expand_all(service: ResolveService, url: str, entries: int) -> None:
    result = await service.resolve(url, guild_id=1, requester_id=1, limit=entries, priority=Priority.NORMAL)
    if result.rest is not None:
        try:
            async for _ in result.rest:
                pass
        finally:
            if result.rest.job_id is not None and not result.rest.finished:
                service.cancel(result.rest.job_id, by_user_id=1, is_admin=True)


# -- the table ------------------------------------------------------------------------------------------


async def run(reps: int = 5, entries: int = 1000) -> str:
    site = FakeSite().start()
    try:
        # warm-up: yt-dlp compiles its extractor patterns on first use (~0.5 s)
        await playlist_baseline(site, 10, "warm")
        await playlist_service(site, 10, "warm")

        first_ours, all_ours, first_base, all_base = [], [], [], []
        uncached, cached, from_cache = [], [], []
        idle_ours, idle_base, one_ours, one_base, four_ours, four_base = [], [], [], [], [], []
        for rep in range(reps):
            f, a = await playlist_baseline(site, entries, f"b{rep}")
            first_base.append(f)
            all_base.append(a)
            f, a = await playlist_service(site, entries, f"s{rep}")
            first_ours.append(f)
            all_ours.append(a)
            u, c, hit = await repeat_lookup(site, 100_000 + rep)
            uncached.append(u)
            cached.append(c)
            from_cache.append(hit)
            item = 200_000 + rep * 10
            idle_base.append(await lookup_under_load(site, busy_playlists=0, entries=entries, item=item, use_service=False))
            idle_ours.append(await lookup_under_load(site, busy_playlists=0, entries=entries, item=item + 1, use_service=True))
            one_base.append(await lookup_under_load(site, busy_playlists=1, entries=entries, item=item + 2, use_service=False))
            one_ours.append(await lookup_under_load(site, busy_playlists=1, entries=entries, item=item + 3, use_service=True))
            four_base.append(await lookup_under_load(site, busy_playlists=4, entries=entries, item=item + 4, use_service=False))
            four_ours.append(await lookup_under_load(site, busy_playlists=4, entries=entries, item=item + 5, use_service=True))

        def ms(values: list[float]) -> str:
            value = median(values) * 1000
            return fmt(value, 2 if value < 10 else 0)

        rows = [
            [f"{entries}-entry playlist: first entry playable", ms(first_base), ms(first_ours),
             ratio(median(first_base), median(first_ours))],
            [f"{entries}-entry playlist: all entries listed", ms(all_base), ms(all_ours),
             ratio(median(all_base), median(all_ours))],
            ["same link again (uncached -> cached)", ms(uncached), ms(cached),
             ratio(median(uncached), median(cached))],
            ["guild B's lookup, idle", ms(idle_base), ms(idle_ours), ratio(median(idle_base), median(idle_ours))],
            [f"guild B's lookup while guild A expands 1 x {entries}", ms(one_base), ms(one_ours),
             ratio(median(one_base), median(one_ours))],
            [f"guild B's lookup while guild A expands 4 x {entries}", ms(four_base), ms(four_ours),
             ratio(median(four_base), median(four_ours))],
        ]
        notes = [
            f"median of {reps} repetitions; baseline and ours alternate within each repetition; "
            f"{os.cpu_count()} cores",
            f"fake site on 127.0.0.1: {ITEM_DELAY * 1000:.0f} ms per item page, {PAGE_DELAY * 1000:.0f} ms per "
            f"{PAGE_SIZE}-entry playlist page; real yt-dlp and HTTP, no internet",
            "baseline = yt-dlp's extract_info in a plain pool (one first-come-first-served pool of 3 "
            "threads, whole playlist listed before anything returns); ours = ResolveService (3 workers, "
            "priorities, per-guild fairness, first entry handed out at once, cache)",
            "the 'same link again' row: baseline column = first (uncached) lookup, ours = the repeat; "
            f"repeats answered from the cache: {sum(from_cache)}/{len(from_cache)}",
            f"site requests served in all: {site.requests}",
        ]
        return print_table("Track lookup (resolution)", ["what", "baseline ms", "ours ms", "baseline / ours"],
                           rows, notes)
    finally:
        site.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args(argv)
    asyncio.run(run(args.reps, args.entries))


if __name__ == "__main__":
    main()

"""ResolveService end to end in-process: the real Resolver and yt-dlp, fake extractors
(registered through `extra_extractors`) that fetch pages from a local aiohttp server, so failures,
slowness and request counts are under the test's control."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from yt_dlp.extractor.common import InfoExtractor, SearchInfoExtractor
from yt_dlp.utils import ExtractorError

from music.engine.track import Track
from music.policy import DEFAULT_EXTRACTORS, ExtractorPolicy, NetworkPolicy
from music.resolve.cache import ResolveCache
from music.resolve.jobs import Priority, Progress, Stage
from music.resolve.resolver import ResolveError, Resolver, extractor_family
from music.resolve.service import ResolveService
from tests.support.media import MediaServer

LOOPBACK_OK = NetworkPolicy(allow=["127.0.0.0/8"])

# Server-side knobs, keyed by page id (ids are unique per test).
FAIL_WITH_503: dict[str, int] = {}  # how many more requests answer 503
DELAY: dict[str, float] = {}
# Extractor-side state.
GATES: dict[str, threading.Event] = {}
EXTRACTED: list[str] = []  # page ids in the order extraction started
EXTRACTOR_THREADS: list[str] = []


def new_id(prefix: str = "s") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class FakeItemIE(InfoExtractor):
    """`.../item/<id>[?expire=N]`: fetches `/page/<id>` (JSON) and returns a webm stream whose
    URL carries the same `expire=` hint."""

    IE_NAME = "svcsite:item"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/item/(?P<id>[\w-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        page_id = self._match_id(url)
        EXTRACTED.append(page_id)
        EXTRACTOR_THREADS.append(threading.current_thread().name)
        gate = GATES.get(page_id)
        if gate is not None:
            assert gate.wait(10), "the test never opened the gate"
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        page = self._download_json(f"{base}/page/{page_id}", page_id)
        expire = parse_qs(parts.query).get("expire")
        stream = f"{base}/media/a440.webm" + (f"?expire={expire[0]}" if expire else "")
        return {
            "id": page_id,
            "title": page["title"],
            "url": stream,
            "ext": "webm",
            "acodec": "opus",
            "vcodec": "none",
            "duration": 3.0,
            "uploader": "Tester",
            "webpage_url": url,
        }


class FakeGoneIE(InfoExtractor):
    """`.../gone/<reason>/<id>`: the site answers, then says the video is private/unavailable."""

    IE_NAME = "svcsite:gone"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/gone/(?P<reason>private|unavailable)/(?P<id>[\w-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        reason, page_id = self._match_valid_url(url).group("reason", "id")
        base = url.split("/gone/")[0]
        self._download_json(f"{base}/page/{page_id}", page_id)
        if reason == "private":
            raise ExtractorError(
                "Private video. Sign in if you've been granted access", expected=True
            )
        raise ExtractorError("Video unavailable", expected=True)


class FakeBigListIE(InfoExtractor):
    """`.../biglist/<n>/<id>`: a playlist of n items listed lazily, 100 per "page"."""

    IE_NAME = "svclist"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/biglist/(?P<n>\d+)/(?P<id>[\w-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        count_text, list_id = self._match_valid_url(url).group("n", "id")
        count = int(count_text)
        base = url.split("/biglist/")[0]

        def entries() -> Iterator[dict[str, Any]]:
            for index in range(count):
                if index % 100 == 0:
                    time.sleep(0.02)  # fetching the next page
                yield self.url_result(
                    f"{base}/item/{list_id}-e{index}", video_title=f"Entry {index}"
                )

        return self.playlist_result(entries(), list_id, "Big list", playlist_count=count)


class FakeSvcSearchIE(SearchInfoExtractor):
    """`svcsearchN:words`: items named after the words."""

    IE_NAME = "svcsite:search"
    _SEARCH_KEY = "svcsearch"
    _MAX_RESULTS = 10
    base_url = ""

    def _search_results(self, query: str) -> Iterator[dict[str, Any]]:
        slug = "-".join(query.split())
        for index in range(5):
            yield self.url_result(
                f"{self.base_url}/item/{slug}-r{index}", video_title=f"{query} #{index}"
            )


EXTRACTORS = [FakeItemIE, FakeGoneIE, FakeBigListIE, FakeSvcSearchIE]


@pytest.fixture(scope="module")
def site(media_dir: Path) -> Iterator[MediaServer]:
    server = MediaServer(media_dir)

    async def page(request: web.Request) -> web.Response:
        page_id = request.match_info["id"]
        if DELAY.get(page_id):
            await asyncio.sleep(DELAY[page_id])
        if FAIL_WITH_503.get(page_id, 0) > 0:
            FAIL_WITH_503[page_id] -= 1
            return web.Response(status=503, text="busy")
        return web.Response(
            text=json.dumps({"title": f"Song {page_id}"}), content_type="application/json"
        )

    server.app.router.add_get("/page/{id}", page)
    server.start()
    FakeSvcSearchIE.base_url = server.base_url
    yield server
    server.stop()


def page_hits(site: MediaServer, page_id: str) -> int:
    return site.requests.count(f"/page/{page_id}")


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_service(**kwargs: Any) -> ResolveService:
    policy = kwargs.pop("policy", None)
    resolver = Resolver(
        policy or (lambda: LOOPBACK_OK),
        search_prefix="svcsearch",
        timeout=10,
        extra_extractors=EXTRACTORS,
        probe_direct_media=False,
        # the owner's allow-list with the fake sites added, as `musicset extractors allow` would
        extractor_policy_getter=lambda: ExtractorPolicy(
            [*DEFAULT_EXTRACTORS, *(extractor_family(ie.IE_NAME) for ie in EXTRACTORS)]
        ),
    )
    kwargs.setdefault("backoff_base", 0.05)
    kwargs.setdefault("rng", random.Random(7))
    return ResolveService(resolver, **kwargs)


@pytest.fixture
async def service() -> AsyncIterator[ResolveService]:
    svc = make_service(workers=2)
    yield svc
    await close_and_join(svc)


async def close_and_join(svc: ResolveService) -> None:
    for gate in GATES.values():
        gate.set()
    await svc.close()
    svc.resolver.close()
    assert await asyncio.to_thread(svc.scheduler.join, 10)


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# ---- single links, progress, threads --------------------------------------------------


async def test_a_link_resolves_with_stages_reported_on_the_loop(
    service: ResolveService, site: MediaServer
) -> None:
    page_id = new_id()
    seen: list[tuple[Stage, str]] = []
    EXTRACTOR_THREADS.clear()
    result = await service.resolve(
        f"{site.base_url}/item/{page_id}",
        guild_id=1,
        requester_id=11,
        on_progress=lambda p: seen.append((p.stage, threading.current_thread().name)),
    )
    [track] = result.tracks
    assert track.title == f"Song {page_id}" and track.requester_id == 11
    assert track.stream_url == site.url("a440.webm") and track.acodec == "opus"
    assert result.rest is None and not result.from_cache and result.job_id is not None
    assert [stage for stage, _ in seen] == [
        Stage.QUEUED,
        Stage.VALIDATING,
        Stage.EXTRACTING,
        Stage.READY,
    ]
    assert {name for _, name in seen} == {threading.current_thread().name}
    assert EXTRACTOR_THREADS and all(n.startswith("music-resolve-") for n in EXTRACTOR_THREADS)
    assert service.status()["breakers"]["svcsite"]["state"] == "closed"


async def test_words_resolve_to_the_first_search_result(
    service: ResolveService, site: MediaServer
) -> None:
    result = await service.resolve("calm tones", guild_id=1, requester_id=3)
    assert result.tracks[0].title == "Song calm-tones-r0"
    assert result.tracks[0].stream_url is not None
    again = await service.resolve("  Calm   TONES ", guild_id=1, requester_id=4)
    assert again.from_cache and again.tracks[0].requester_id == 4
    assert page_hits(site, "calm-tones-r0") == 1


async def test_search_lists_unresolved_results(service: ResolveService, site: MediaServer) -> None:
    results = await service.search("soft tones", 3, guild_id=1, requester_id=1)
    assert [t.title for t in results] == ["soft tones #0", "soft tones #1", "soft tones #2"]
    assert all(t.stream_url is None for t in results)


# ---- cache ------------------------------------------------------------------------------


async def test_repeated_play_of_a_link_skips_extraction(
    service: ResolveService, site: MediaServer
) -> None:
    page_id = new_id()
    url = f"{site.base_url}/item/{page_id}"
    first = (await service.resolve(url, guild_id=1, requester_id=1)).tracks[0]
    assert page_hits(site, page_id) == 1
    result = await service.resolve(url, guild_id=2, requester_id=2)
    second = result.tracks[0]
    assert page_hits(site, page_id) == 1
    assert result.from_cache and result.job_id is None
    assert second.id != first.id and second.requester_id == 2
    assert (second.title, second.stream_url, second.duration) == (
        first.title,
        first.stream_url,
        first.duration,
    )
    assert service.status()["cache"]["meta"]["hits"] == 1


async def test_the_policy_is_checked_again_on_a_cache_hit(site: MediaServer) -> None:
    current = {"policy": LOOPBACK_OK}
    svc = make_service(policy=lambda: current["policy"])
    try:
        url = f"{site.base_url}/item/{new_id()}"
        await svc.resolve(url, guild_id=1, requester_id=1)
        current["policy"] = NetworkPolicy()  # the owner closed loopback meanwhile
        with pytest.raises(ResolveError, match="private or local network address"):
            await svc.resolve(url, guild_id=1, requester_id=1)
    finally:
        await close_and_join(svc)


async def test_stream_urls_expire_by_their_own_expire_hint(site: MediaServer) -> None:
    clock = FakeClock(time.time())
    svc = make_service(cache=ResolveCache(clock=clock, stream_margin=120.0))
    try:
        page_id = new_id()
        expire = int(clock.now) + 200  # usable for 80 s with the 120 s margin
        url = f"{site.base_url}/item/{page_id}?expire={expire}"
        track = (await svc.resolve(url, guild_id=1, requester_id=1)).tracks[0]
        assert track.stream_expires == expire
        refreshed = await svc.refresh(track, guild_id=1)
        assert page_hits(site, page_id) == 1 and refreshed.stream_url == track.stream_url
        assert refreshed.id == track.id

        clock.now += 81
        placeholder = (await svc.resolve(url, guild_id=1, requester_id=1)).tracks[0]
        # the metadata (a day) is still cached, the stream is not: a placeholder comes back
        assert placeholder.title == track.title and placeholder.stream_url is None
        assert page_hits(site, page_id) == 1
        fresh = await svc.refresh(placeholder, guild_id=1, priority=Priority.URGENT)
        assert page_hits(site, page_id) == 2
        assert fresh.stream_url == track.stream_url and fresh.id == placeholder.id
    finally:
        await close_and_join(svc)


async def test_the_cache_survives_a_restart(site: MediaServer, tmp_path: Path) -> None:
    path = tmp_path / "resolve_cache.json"
    page_id = new_id()
    url = f"{site.base_url}/item/{page_id}"
    first = make_service(cache_path=path)
    await first.start()
    try:
        await first.resolve(url, guild_id=1, requester_id=1)
    finally:
        await close_and_join(first)  # saves
    assert path.exists()

    second = make_service(cache_path=path)
    await second.start()
    try:
        result = await second.resolve(url, guild_id=1, requester_id=5)
        assert result.from_cache and result.tracks[0].stream_url == site.url("a440.webm")
        assert page_hits(site, page_id) == 1
    finally:
        await close_and_join(second)


async def test_concurrent_refreshes_of_one_page_share_one_extraction(
    service: ResolveService, site: MediaServer
) -> None:
    page_id = new_id()
    url = f"{site.base_url}/item/{page_id}"
    a = Track(query=url, title=url, webpage_url=url)
    b = Track(query=url, title=url, webpage_url=url)
    fresh_a, fresh_b = await asyncio.gather(
        service.refresh(a, guild_id=1), service.refresh(b, guild_id=2, priority=Priority.URGENT)
    )
    assert page_hits(site, page_id) == 1
    assert (fresh_a.id, fresh_b.id) == (a.id, b.id)
    assert fresh_a.stream_url == fresh_b.stream_url == site.url("a440.webm")
    assert fresh_a.title == f"Song {page_id}"  # a placeholder title is replaced


# ---- failures: retries, permanent errors, timeouts, breaker ------------------------------


async def test_transient_503s_are_retried_with_backoff(
    service: ResolveService, site: MediaServer
) -> None:
    page_id = new_id()
    FAIL_WITH_503[page_id] = 2
    progress: list[Progress] = []
    result = await service.resolve(
        f"{site.base_url}/item/{page_id}", guild_id=1, requester_id=1, on_progress=progress.append
    )
    assert result.tracks[0].title == f"Song {page_id}"
    assert page_hits(site, page_id) == 3
    retries = [p for p in progress if p.stage is Stage.RETRYING]
    assert len(retries) == 2
    assert retries[0].note is not None and "HTTP 503" in retries[0].note
    assert service.status()["counts"]["retried"] == 2


async def test_a_site_that_stays_down_fails_with_a_sentence_after_all_attempts(
    service: ResolveService, site: MediaServer
) -> None:
    page_id = new_id()
    FAIL_WITH_503[page_id] = 99
    with pytest.raises(ResolveError) as info:
        await service.resolve(f"{site.base_url}/item/{page_id}", guild_id=1, requester_id=1)
    assert info.value.sentence == (
        "The site is having trouble (it answered HTTP 503); try again later. (I tried 3 times.)"
    )
    assert page_hits(site, page_id) == 3


@pytest.mark.parametrize(
    ("reason", "sentence"),
    [("private", "That video is private."), ("unavailable", "That video is unavailable.")],
)
async def test_permanent_errors_are_not_retried(
    service: ResolveService, site: MediaServer, reason: str, sentence: str
) -> None:
    page_id = new_id()
    with pytest.raises(ResolveError) as info:
        await service.resolve(
            f"{site.base_url}/gone/{reason}/{page_id}", guild_id=1, requester_id=1
        )
    assert info.value.sentence == sentence and not info.value.transient
    assert page_hits(site, page_id) == 1
    failure = service.status()["recent_failures"][-1]
    assert failure["reason"] == sentence and failure["attempts"] == 1
    assert failure["extractor"] == "svcsite"
    # the site answered: that is not a strike against it
    assert service.status()["breakers"]["svcsite"]["consecutive_failures"] == 0


async def test_a_slow_site_times_out_with_a_sentence(site: MediaServer) -> None:
    svc = make_service(timeout=0.5, max_attempts=1)
    try:
        page_id = new_id()
        DELAY[page_id] = 2.0
        started = time.monotonic()
        with pytest.raises(ResolveError) as info:
            await svc.resolve(f"{site.base_url}/item/{page_id}", guild_id=1, requester_id=1)
        assert time.monotonic() - started < 1.5
        assert info.value.sentence == "Looking that up timed out after 0.5 s."
    finally:
        await close_and_join(svc)


async def test_breaker_opens_then_a_probe_closes_it(site: MediaServer) -> None:
    clock = FakeClock(0.0)
    svc = make_service(
        max_attempts=1, breaker_threshold=2, breaker_open_for=60.0, breaker_clock=clock
    )
    try:
        page_id = new_id()
        url = f"{site.base_url}/item/{page_id}"
        FAIL_WITH_503[page_id] = 99
        for _ in range(2):
            with pytest.raises(ResolveError, match="HTTP 503"):
                await svc.resolve(url, guild_id=1, requester_id=1)
        assert svc.status()["breakers"]["svcsite"]["state"] == "open"

        clock.now += 15
        with pytest.raises(ResolveError) as info:
            await svc.resolve(url, guild_id=1, requester_id=1)
        assert info.value.sentence == (
            "Lookups on svcsite failed 2 times in a row, so I've paused them for a moment; "
            "try again in 45 s."
        )
        assert page_hits(site, page_id) == 2  # refused without asking the site
        # other sites are not affected
        other = await svc.resolve(
            f"{site.base_url}/biglist/1/{new_id('L')}", guild_id=1, requester_id=1
        )
        assert other.tracks[0].title == "Entry 0"

        FAIL_WITH_503[page_id] = 0  # the site recovered
        clock.now += 45
        assert svc.status()["breakers"]["svcsite"]["state"] == "half-open"
        result = await svc.resolve(url, guild_id=1, requester_id=1)  # the probe
        assert result.tracks[0].title == f"Song {page_id}"
        assert svc.status()["breakers"]["svcsite"] == {
            "state": "closed",
            "consecutive_failures": 0,
            "retry_in": 0.0,
            "times_opened": 1,
        }
    finally:
        await close_and_join(svc)


# ---- playlists ----------------------------------------------------------------------------


async def test_a_1000_entry_playlist_gives_its_first_entry_at_once(
    service: ResolveService, site: MediaServer
) -> None:
    list_id = new_id("L")
    progress: list[Progress] = []
    started = time.monotonic()
    result = await service.resolve(
        f"{site.base_url}/biglist/1000/{list_id}",
        guild_id=1,
        requester_id=9,
        limit=600,
        on_progress=progress.append,
    )
    first_after = time.monotonic() - started
    assert [t.title for t in result.tracks] == ["Entry 0"]
    assert result.title == "Big list" and result.rest is not None
    batches = [batch async for batch in result.rest]
    all_after = time.monotonic() - started
    print(
        f"\nfirst entry after {first_after * 1000:.0f} ms, 600 entries after {all_after * 1000:.0f} ms"
    )
    tracks = result.tracks + list(itertools.chain.from_iterable(batches))
    assert [t.query for t in tracks] == [f"{site.base_url}/item/{list_id}-e{i}" for i in range(600)]
    assert len({t.id for t in tracks}) == 600
    assert all(t.stream_url is None and t.requester_id == 9 for t in tracks)
    assert result.rest.truncated and result.rest.received == 600
    assert result.rest.expected == 600 and result.rest.errors == []
    expanding = [p for p in progress if p.stage is Stage.EXPANDING]
    assert expanding and expanding[-1].total == 600
    assert [p.done for p in expanding] == sorted(p.done for p in expanding)  # type: ignore[misc]
    assert progress[-1].stage is Stage.READY
    # entries resolve as they near the head of the queue
    fresh = await service.refresh(tracks[1], guild_id=1, priority=Priority.URGENT)
    assert fresh.stream_url == site.url("a440.webm") and fresh.title == "Entry 1"


async def test_a_small_playlist_is_not_truncated(
    service: ResolveService, site: MediaServer
) -> None:
    result = await service.resolve(
        f"{site.base_url}/biglist/3/{new_id('L')}", guild_id=1, requester_id=1, limit=10
    )
    assert result.rest is not None
    rest = [t async for batch in result.rest for t in batch]
    assert [t.title for t in result.tracks + rest] == ["Entry 0", "Entry 1", "Entry 2"]
    assert not result.rest.truncated


# ---- scheduling through the service ------------------------------------------------------


async def test_urgent_play_overtakes_20_low_lookups(site: MediaServer) -> None:
    svc = make_service(workers=1)
    try:
        hold = new_id("hold")
        GATES[hold] = threading.Event()
        holder = asyncio.create_task(
            svc.resolve(f"{site.base_url}/item/{hold}", guild_id=1, requester_id=1)
        )
        await wait_until(lambda: hold in EXTRACTED)
        lows = [new_id("low") for _ in range(20)]
        low_tasks = [
            asyncio.create_task(
                svc.resolve(
                    f"{site.base_url}/item/{p}", guild_id=1, requester_id=1, priority=Priority.LOW
                )
            )
            for p in lows
        ]
        urgent = new_id("urgent")
        await asyncio.sleep(0.05)  # let the LOW lookups reach the queue first
        urgent_task = asyncio.create_task(
            svc.resolve(
                f"{site.base_url}/item/{urgent}",
                guild_id=2,
                requester_id=2,
                priority=Priority.URGENT,
            )
        )
        await wait_until(lambda: svc.status()["pending"]["urgent"] == 1)
        assert svc.status()["pending"]["low"] == 20
        GATES[hold].set()
        await asyncio.gather(holder, urgent_task, *low_tasks)
        order = [p for p in EXTRACTED if p in set(lows) | {urgent}]
        assert order[0] == urgent and sorted(order[1:]) == sorted(lows)
    finally:
        await close_and_join(svc)


async def test_cancel_pending_and_running_lookups(site: MediaServer) -> None:
    svc = make_service(workers=1)
    try:
        hold = new_id("hold")
        GATES[hold] = threading.Event()
        running_ids: list[int] = []
        running = asyncio.create_task(
            svc.resolve(
                f"{site.base_url}/item/{hold}",
                guild_id=1,
                requester_id=1,
                on_progress=lambda p: running_ids.append(p.job_id),
            )
        )
        await wait_until(lambda: hold in EXTRACTED)
        waiting_ids: list[int] = []
        queued_page = new_id()
        waiting = asyncio.create_task(
            svc.resolve(
                f"{site.base_url}/item/{queued_page}",
                guild_id=1,
                requester_id=2,
                on_progress=lambda p: waiting_ids.append(p.job_id),
            )
        )
        await wait_until(lambda: bool(waiting_ids))
        status = svc.status()
        assert status["pending"]["normal"] == 1 and status["running"]["normal"] == 1
        assert status["workers"]["busy"] == 1

        assert svc.cancel(waiting_ids[0], by_user_id=2, is_admin=False)
        with pytest.raises(ResolveError, match=r"^That lookup was cancelled\.$"):
            await waiting
        assert svc.cancel(running_ids[0], by_user_id=99, is_admin=True)
        with pytest.raises(ResolveError, match="its result will be thrown away"):
            await running
        assert svc.status()["workers"]["abandoned"] == 1
        GATES[hold].set()
        await wait_until(lambda: svc.status()["workers"]["busy"] == 0)
        assert queued_page not in EXTRACTED  # the cancelled pending lookup never ran
        assert svc.cancel(running_ids[0], by_user_id=1, is_admin=False) is False
    finally:
        await close_and_join(svc)


async def test_an_abandoned_command_cancels_its_lookup(site: MediaServer) -> None:
    svc = make_service(workers=1)
    try:
        hold = new_id("hold")
        GATES[hold] = threading.Event()
        task = asyncio.create_task(
            svc.resolve(f"{site.base_url}/item/{hold}", guild_id=1, requester_id=1)
        )
        await wait_until(lambda: hold in EXTRACTED)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert svc.status()["running"]["normal"] == 0
        assert svc.status()["counts"]["cancelled"] == 1
    finally:
        await close_and_join(svc)


async def test_status_reports_cache_and_breakers(
    service: ResolveService, site: MediaServer
) -> None:
    url = f"{site.base_url}/item/{new_id()}"
    await service.resolve(url, guild_id=1, requester_id=1)
    await service.resolve(url, guild_id=1, requester_id=1)
    status = service.status()
    assert status["workers"]["size"] == 2 and status["workers"]["busy"] == 0
    assert status["cache"]["meta"]["hits"] == 1 and status["cache"]["meta"]["misses"] == 1
    assert status["cache"]["hit_rate"] == pytest.approx(2 / 3, abs=0.001)  # + 1 stream hit
    assert status["breakers"]["svcsite"]["state"] == "closed"
    assert status["counts"]["completed"] == 1


async def test_closed_service_refuses_work_and_leaves_no_threads(site: MediaServer) -> None:
    svc = make_service(workers=3)
    await asyncio.gather(
        *(
            svc.resolve(f"{site.base_url}/item/{new_id()}", guild_id=i, requester_id=i)
            for i in range(6)
        )
    )
    await close_and_join(svc)
    assert not [t for t in threading.enumerate() if t.name.startswith("music-resolve-")]
    with pytest.raises(ResolveError, match="shutting down"):
        await svc.resolve(f"{site.base_url}/item/{new_id()}", guild_id=1, requester_id=1)

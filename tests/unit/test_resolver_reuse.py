"""yt-dlp instances reused across lookups (one per resolver thread): the extractor set is built
once, and nothing of one lookup leaks into the next (network policy, extractor allow-list,
cookies, per-lookup options); a thread's instance is never used by another thread. And the
early ffmpeg probe of a direct media link: it overlaps yt-dlp, and leaves no process behind."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yt_dlp
from aiohttp import web
from yt_dlp.extractor.common import InfoExtractor

from music.engine.track import Track
from music.policy import DEFAULT_EXTRACTORS, ExtractorPolicy, NetworkPolicy, PolicyError
from music.resolve.errors import ResolveError, to_resolve_error
from music.resolve.jobs import Priority
from music.resolve.resolver import Resolver
from music.resolve.service import ResolveService
from music.resolve.ytdl import PolicedYoutubeDL
from tests.support.lookups import Lookups, open_lookups
from tests.support.media import MediaServer
from tests.support.processes import ffmpeg_children

LOOPBACK_OK = NetworkPolicy(allow=["127.0.0.0/8"])
#: id() of the YoutubeDL each RecordIE run belonged to, with the thread it ran in
RUNS: list[tuple[int, str]] = []
GATE = threading.Event()


class RecordIE(InfoExtractor):
    """`.../record/<file>`: a video whose audio is `/media/<file>`; records which yt-dlp
    instance ran it. `.../record/gate-<file>` first waits for GATE (a lookup that hangs)."""

    IE_NAME = "recordsite"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/record/(?P<id>[\w.-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        name = self._match_id(url)
        RUNS.append((id(self._downloader), threading.current_thread().name))
        if name.startswith("gate-"):
            assert GATE.wait(20)
            name = name[len("gate-"):]
        base = url.split("/record/")[0]
        return {"id": name, "title": f"Record {name}", "url": f"{base}/media/{name}",
                "ext": "webm", "acodec": "opus", "vcodec": "none", "duration": 3.0}


class FetchIE(InfoExtractor):
    """`.../fetch/<host>/<port>`: fetches `http://<host>:<port>/media/a440.webm` itself (a request
    made by yt-dlp during the lookup, checked with the policy of that lookup)."""

    IE_NAME = "fetchsite"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/fetch/(?P<host>[\d.]+)/(?P<port>\d+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        host, port = self._match_valid_url(url).group("host", "port")
        self._request_webpage(f"http://{host}:{port}/media/a440.webm", "fetch").read()
        return {"id": "fetched", "title": "Fetched", "url": f"http://{host}:{port}/media/a440.webm",
                "ext": "webm", "acodec": "opus", "vcodec": "none", "duration": 3.0}


class CookieIE(InfoExtractor):
    """`.../cookie/set` takes the cookie the site sets, then asks `/echo`; `.../cookie/ask` only
    asks. The title is the Cookie header the site saw on `/echo`."""

    IE_NAME = "cookiesite"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/cookie/(?P<id>set|ask)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        base = url.split("/cookie/")[0]
        if self._match_id(url) == "set":
            self._request_webpage(f"{base}/setcookie", "set").read()
        seen = self._download_webpage(f"{base}/echo", "echo")
        return {"id": "cookie", "title": seen, "url": f"{base}/media/a440.webm", "ext": "webm",
                "acodec": "opus", "vcodec": "none", "duration": 3.0}


class NeverIE(InfoExtractor):
    """Matches nothing; counts how often yt-dlp (or the site naming) asked it."""

    IE_NAME = "neversite"
    _VALID_URL = r"never://"
    asked = 0

    @classmethod
    def suitable(cls, url: str) -> bool:
        cls.asked += 1
        return False


EXTRACTORS = [NeverIE, RecordIE, FetchIE, CookieIE]
WITH_FAKE_SITES = ExtractorPolicy([*DEFAULT_EXTRACTORS, "recordsite", "fetchsite", "cookiesite"])


@pytest_asyncio.fixture
async def site(media_dir: Path) -> AsyncIterator[MediaServer]:
    server = MediaServer(media_dir)
    arrivals: list[float] = []
    server.arrivals = arrivals  # type: ignore[attr-defined]

    async def set_cookie(request: web.Request) -> web.Response:
        response = web.Response(text="ok")
        response.set_cookie("session", "from-the-first-lookup")
        return response

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("Cookie", "no cookie"))

    async def slow_media(request: web.Request) -> web.StreamResponse:
        # every request waits: a probe that overlaps yt-dlp arrives while yt-dlp's waits
        arrivals.append(time.monotonic())
        await asyncio.sleep(1.0)
        return web.FileResponse(media_dir / "a440.webm")

    server.app.router.add_get("/setcookie", set_cookie)
    server.app.router.add_get("/echo", echo)
    server.app.router.add_get("/slow/{name}", slow_media)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every registration of yt-dlp's default extractor set, by thread name."""
    seen: list[str] = []
    original = PolicedYoutubeDL.add_default_info_extractors

    def counting(self: PolicedYoutubeDL) -> None:
        seen.append(threading.current_thread().name)
        original(self)

    monkeypatch.setattr(PolicedYoutubeDL, "add_default_info_extractors", counting)
    return seen


@pytest.fixture
def current() -> dict[str, Any]:
    """The policies in force, changed by the tests as the owner would."""
    return {"network": LOOPBACK_OK, "extractors": WITH_FAKE_SITES}


@pytest.fixture
def resolver(current: dict[str, Any]) -> Iterator[Resolver]:
    made = Resolver(
        lambda: current["network"], timeout=20, extra_extractors=EXTRACTORS,
        search_prefix="fakesearch", extractor_policy_getter=lambda: current["extractors"],
    )
    yield made
    made.close()


@pytest_asyncio.fixture
async def lookups(resolver: Resolver) -> AsyncIterator[Lookups]:
    """Lookups through the service on one worker thread (so one reusable yt-dlp instance)."""
    async with open_lookups(resolver, workers=1) as made:
        yield made


def open_sync(resolver: Resolver, url: str, policy: NetworkPolicy) -> Track:
    """A single-video link looked up in this thread (blocking), as a job thread does."""
    with resolver.open_link_sync(url, policy, 1, 5) as opened:
        assert isinstance(opened, Track)
        return opened


# ---- reuse --------------------------------------------------------------------------------


async def test_lookups_on_one_thread_build_the_extractor_set_once(
    resolver: Resolver, lookups: Lookups, site: MediaServer, builds: list[str]
) -> None:
    RUNS.clear()
    first = await lookups.resolve(f"{site.base_url}/record/a440.webm", limit=5)
    direct = await lookups.resolve(site.url("b880.webm"), limit=5)
    # a refresh asks yt-dlp with other per-lookup options (no playlist, not flat)
    fresh = await lookups.refresh(first.tracks[0])
    assert first.tracks[0].title == "Record a440.webm"
    assert direct.tracks[0].acodec == "opus" and direct.tracks[0].duration == pytest.approx(3, abs=0.1)
    assert fresh.stream_url == site.url("a440.webm")
    assert len(builds) == 1 and resolver.instances_built == 1
    assert len({ydl for ydl, _ in RUNS}) == 1  # the same instance ran both site lookups


async def test_lookups_on_one_scheduler_worker_build_the_extractor_set_once(
    resolver: Resolver, site: MediaServer, builds: list[str]
) -> None:
    service = ResolveService(resolver, workers=1)
    NeverIE.asked = 0
    try:
        for name in ("a440.webm", "b880.webm", "steps.webm"):
            result = await service.resolve(f"{site.base_url}/record/{name}", guild_id=1,
                                           requester_id=1, priority=Priority.URGENT)
            assert result.tracks[0].title == f"Record {name}"
    finally:
        await service.close()
        assert await asyncio.to_thread(service.scheduler.join, 10)
    assert len(builds) == 1 and builds[0].startswith("music-resolve-")
    # the extractors were asked once per lookup (naming the site for its breaker); yt-dlp
    # then went straight to the one found instead of asking them all again
    assert NeverIE.asked == 3


def test_a_reused_instance_refuses_an_address_the_new_policy_denies(
    resolver: Resolver, site: MediaServer
) -> None:
    url = f"{site.base_url}/fetch/127.0.0.1/{site.port}"
    allowed = open_sync(resolver, url, LOOPBACK_OK)
    assert allowed.title == "Fetched"
    fetched = site.requests.count("/media/a440.webm")
    # the owner blocks 127.0.0.1 (the page itself, 127.0.0.1 too, was checked before yt-dlp ran)
    with pytest.raises(PolicyError) as refused:
        open_sync(resolver, url, NetworkPolicy())
    assert to_resolve_error(refused.value, 20).sentence.startswith("I won't fetch `127.0.0.1`")
    assert site.requests.count("/media/a440.webm") == fetched  # never requested
    assert resolver.instances_built == 1  # it was the reused instance that refused
    again = open_sync(resolver, url, LOOPBACK_OK)
    assert again.title == "Fetched"


async def test_a_reused_instance_follows_the_extractor_allow_list(
    resolver: Resolver, lookups: Lookups, site: MediaServer, current: dict[str, Any]
) -> None:
    url = f"{site.base_url}/record/a440.webm"
    assert (await lookups.resolve(url)).tracks[0].title == "Record a440.webm"
    current["extractors"] = ExtractorPolicy(None)  # the defaults: the fake site isn't on it
    RUNS.clear()
    with pytest.raises(ResolveError, match="recordsite"):
        await lookups.resolve(url + "?again")
    assert RUNS == []  # refused before the extractor ran
    current["extractors"] = WITH_FAKE_SITES
    assert (await lookups.resolve(url + "?third")).tracks[0].title == "Record a440.webm"
    assert resolver.instances_built == 1


async def test_cookies_a_site_sets_do_not_reach_the_next_lookup(
    resolver: Resolver, lookups: Lookups, site: MediaServer
) -> None:
    within = await lookups.resolve(f"{site.base_url}/cookie/set")
    # inside one lookup the site's cookie is sent back, as yt-dlp does
    assert within.tracks[0].title == "session=from-the-first-lookup"
    after = await lookups.resolve(f"{site.base_url}/cookie/ask")
    assert after.tracks[0].title == "no cookie"
    assert resolver.instances_built == 1


async def test_per_lookup_options_do_not_stick(
    resolver: Resolver, lookups: Lookups, site: MediaServer
) -> None:
    """A playlist limit (playlistend) and a refresh's single-video options apply to their own
    lookup only."""
    small = await lookups.resolve(f"{site.base_url}/record/a440.webm", limit=1)
    assert len(small.tracks) == 1
    track = small.tracks[0]
    await lookups.refresh(track)  # noplaylist=True, extract_flat=False

    def params_of_the_next_lookup(_context: Any) -> dict[str, Any]:
        with resolver._lookup(resolver._options(flat=True), LOOPBACK_OK) as ydl:
            return dict(ydl.params)

    # on the scheduler's only thread, i.e. the instance the lookups above used
    job = lookups.service.scheduler.submit(params_of_the_next_lookup, guild_id=1, requester_id=1)
    params = await job.future
    assert params["extract_flat"] == "in_playlist"
    assert params["noplaylist"] is False
    assert "playlistend" not in params
    assert resolver.instances_built == 1


def test_a_lookup_inside_an_open_one_gets_its_own_instance(
    resolver: Resolver, site: MediaServer
) -> None:
    RUNS.clear()
    with resolver.open_link_sync(f"{site.base_url}/record/a440.webm", LOOPBACK_OK, 1, 5) as outer:
        inner = open_sync(resolver, f"{site.base_url}/record/b880.webm", LOOPBACK_OK)
    assert outer.title == "Record a440.webm" and inner.title == "Record b880.webm"
    assert RUNS[0][0] != RUNS[1][0]
    assert resolver.instances_built == 2
    open_sync(resolver, f"{site.base_url}/record/steps.webm", LOOPBACK_OK)
    assert RUNS[2][0] == RUNS[0][0]  # the thread's own instance again; the inner one is gone
    assert resolver.instances_built == 2


async def test_a_stuck_threads_instance_is_not_shared_with_its_replacement(
    site: MediaServer, current: dict[str, Any]
) -> None:
    resolver = Resolver(lambda: current["network"], timeout=20, extra_extractors=EXTRACTORS,
                        extractor_policy_getter=lambda: current["extractors"])
    service = ResolveService(resolver, workers=1, timeout=0.5, max_attempts=1)
    RUNS.clear()
    GATE.clear()
    try:
        with pytest.raises(ResolveError, match="timed out"):
            await service.resolve(f"{site.base_url}/record/gate-a440.webm", guild_id=1,
                                  requester_id=1)
        # the first worker is still inside yt-dlp; a replacement takes the next lookup
        result = await service.resolve(f"{site.base_url}/record/b880.webm", guild_id=1,
                                       requester_id=1)
        assert result.tracks[0].title == "Record b880.webm"
    finally:
        GATE.set()
        await service.close()
        assert await asyncio.to_thread(service.scheduler.join, 10)
        resolver.close()
    (stuck, stuck_thread), (replacement, replacement_thread) = RUNS
    assert stuck_thread != replacement_thread and stuck != replacement


def test_the_default_extractor_set_is_yt_dlps_own() -> None:
    ours = PolicedYoutubeDL({"quiet": True}, LOOPBACK_OK)
    theirs = yt_dlp.YoutubeDL({"quiet": True}, auto_init=False)
    theirs.add_default_info_extractors()

    def registered(ydl: yt_dlp.YoutubeDL) -> list[tuple[str, type]]:
        return [(key, ie if isinstance(ie, type) else type(ie)) for key, ie in ydl._ies.items()]

    # same extractors, same order (the first suitable one handles a link; Generic last)
    assert registered(ours) == registered(theirs)
    assert len(ours._ies) > 1000 and list(ours._ies)[-1] == "Generic"
    ours.close()
    theirs.close()


# ---- the early probe ----------------------------------------------------------------------


async def test_the_probe_of_a_direct_link_overlaps_yt_dlp(
    lookups: Lookups, site: MediaServer
) -> None:
    arrivals: list[float] = site.arrivals  # type: ignore[attr-defined]
    arrivals.clear()
    [track] = (await lookups.resolve(f"{site.base_url}/slow/a440.webm")).tracks
    assert track.acodec == "opus" and track.duration == pytest.approx(3.0, abs=0.1)
    # yt-dlp's request and ffmpeg's both waited 1 s; the probe's began while yt-dlp's waited
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] < 0.6


async def test_no_early_probe_without_the_generic_extractor(
    lookups: Lookups, site: MediaServer, current: dict[str, Any]
) -> None:
    """A .webm link a site extractor handles is not probed early (nor later: the site says
    what it is), and one the owner's list keeps from the generic extractor is never fetched."""
    before = len(site.requests)
    await lookups.resolve(f"{site.base_url}/record/a440.webm")
    assert site.requests[before:] == []
    current["extractors"] = ExtractorPolicy(["recordsite"])
    with pytest.raises(ResolveError, match="generic"):
        await lookups.resolve(site.url("a440.webm") + "?not-allowed")
    assert site.requests[before:] == []


async def test_a_failed_lookup_leaves_no_probe_running(
    lookups: Lookups, site: MediaServer
) -> None:
    with pytest.raises(ResolveError, match="404"):
        await lookups.resolve(site.url("missing.webm"))

    def ffmpeg_left() -> list[int]:
        deadline = time.monotonic() + 5
        while (found := ffmpeg_children()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    assert await asyncio.to_thread(ffmpeg_left) == []

"""Resolver against local HTTP media with yt-dlp's real generic extractor, plus small fake
extractors (registered through `extra_extractors`) for playlists and searches. Lookups go the
production way, through ResolveService (tests.support.lookups)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yt_dlp.extractor.common import InfoExtractor, SearchInfoExtractor

from music.engine.track import Track
from music.policy import DEFAULT_EXTRACTORS, ExtractorPolicy, NetworkPolicy
from music.resolve.resolver import (
    DEFAULT_STREAM_LIFETIME,
    ResolveError,
    Resolver,
    as_url,
    classify_error,
    extractor_family,
    stream_expiry,
)
from tests.support.lookups import Lookups, open_lookups, resolve_once
from tests.support.media import MediaServer

LOOPBACK_OK = NetworkPolicy(allow=["127.0.0.0/8"])
PLAYLIST = ["a440.webm", "a660.mp3", "a550.m4a", "b880.webm", "steps.webm"]
extractor_threads: list[str] = []


class FakePlaylistIE(InfoExtractor):
    """`http://127.0.0.1:PORT/fakelist/<id>`: a playlist of the media server's files."""

    _VALID_URL = r"https?://127\.0\.0\.1:\d+/fakelist/(?P<id>[\w-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        extractor_threads.append(threading.current_thread().name)
        base = url.split("/fakelist/")[0]
        entries = [
            self.url_result(f"{base}/media/{name}", video_title=f"Entry {name}")
            for name in PLAYLIST
        ]
        return self.playlist_result(entries, self._match_id(url), "Fake playlist")


class FakeLeakIE(InfoExtractor):
    """`.../leak`: an extractor whose stream URL points at a private address."""

    _VALID_URL = r"https?://127\.0\.0\.1:\d+/leak"

    def _real_extract(self, url: str) -> dict[str, Any]:
        return {
            "id": "leak",
            "title": "Leak",
            "url": "http://10.0.0.1/internal.webm",
            "ext": "webm",
        }


class FakeSneakyIE(InfoExtractor):
    """`.../sneaky`: an extractor that itself requests an address the policy refuses."""

    _VALID_URL = r"https?://127\.0\.0\.1:\d+/sneaky"

    def _real_extract(self, url: str) -> dict[str, Any]:
        self._download_webpage("http://192.168.0.1/admin", "sneaky")
        raise AssertionError("the request above must have been refused")


class FakeSearchIE(SearchInfoExtractor):
    """`fakesearchN:words`: results are the media server's files, titled after the words."""

    _SEARCH_KEY = "fakesearch"
    _MAX_RESULTS = 10
    base_url = ""

    def _search_results(self, query: str) -> Iterator[dict[str, Any]]:
        for name in PLAYLIST:
            yield self.url_result(f"{self.base_url}/media/{name}", video_title=f"{query} / {name}")


class FakeBrokenIE(InfoExtractor):
    """`.../broken`: an extractor with a bug."""

    _VALID_URL = r"https?://127\.0\.0\.1:\d+/broken"

    def _real_extract(self, url: str) -> dict[str, Any]:
        raise ZeroDivisionError("extractor bug")


EXTRACTORS = [FakePlaylistIE, FakeLeakIE, FakeSneakyIE, FakeBrokenIE, FakeSearchIE]
# the owner's allow-list with the fake sites added, as `musicset extractors allow` would
ALLOW_FAKE_SITES = ExtractorPolicy(
    [*DEFAULT_EXTRACTORS, *(extractor_family(ie.IE_NAME) for ie in EXTRACTORS)]
)


@pytest.fixture
async def lookups(media_server: MediaServer) -> Any:
    FakeSearchIE.base_url = media_server.base_url
    resolver = Resolver(
        lambda: LOOPBACK_OK, search_prefix="fakesearch", timeout=20, extra_extractors=EXTRACTORS,
        extractor_policy_getter=lambda: ALLOW_FAKE_SITES,
    )
    async with open_lookups(resolver) as lookups:
        yield lookups


async def test_direct_webm_is_fully_resolved(lookups: Lookups, media_server: MediaServer) -> None:
    url = media_server.url("a440.webm")
    before = time.time()
    result = await lookups.resolve(url, requester_id=11, limit=10)
    [track] = result.tracks
    assert result.title is None and not result.truncated and result.errors == []
    assert track.stream_url == url
    assert track.webpage_url == url and track.query == url
    assert track.title == "a440"
    assert track.duration == pytest.approx(3.0, abs=0.1)
    assert track.acodec == "opus"
    assert track.container == "webm"
    assert track.kind == "remote" and not track.is_live
    assert track.extractor == "Generic"
    assert track.requester_id == 11
    assert "User-Agent" in track.http_headers
    assert (
        before + DEFAULT_STREAM_LIFETIME
        <= track.stream_expires
        <= time.time() + DEFAULT_STREAM_LIFETIME
    )


@pytest.mark.parametrize(
    ("name", "codec"), [("a660.mp3", "mp3"), ("a550.m4a", "aac"), ("a440.ogg", "opus")]
)
async def test_direct_media_codecs(
    lookups: Lookups, media_server: MediaServer, name: str, codec: str
) -> None:
    [track] = (await lookups.resolve(media_server.url(name), requester_id=1, limit=1)).tracks
    assert track.acodec == codec
    assert track.duration == pytest.approx(3.0, abs=0.15)


async def test_default_policy_refuses_loopback_before_any_request(
    media_server: MediaServer,
) -> None:
    with pytest.raises(ResolveError) as info:
        await resolve_once(Resolver(NetworkPolicy), media_server.url("never-fetched.webm"))
    assert info.value.sentence == (
        "I won't fetch `127.0.0.1`: it points to a private or local network address."
    )
    assert "/media/never-fetched.webm" not in media_server.requests


async def test_policy_is_read_at_every_call(media_server: MediaServer) -> None:
    current = {"policy": NetworkPolicy()}
    async with open_lookups(Resolver(lambda: current["policy"])) as lookups:
        with pytest.raises(ResolveError, match="private or local"):
            await lookups.resolve(media_server.url("a440.webm"), requester_id=1, limit=1)
        current["policy"] = LOOPBACK_OK
        result = await lookups.resolve(media_server.url("a440.webm"), requester_id=1, limit=1)
        assert result.tracks[0].acodec == "opus"


@pytest.mark.parametrize(
    ("query", "scheme"),
    [
        ("file:///etc/passwd", "file"),
        ("data:audio/webm;base64,AAAA", "data"),
        ("concat:/a.mp3|/b.mp3", "concat"),
    ],
)
async def test_non_http_links_are_refused(lookups: Lookups, query: str, scheme: str) -> None:
    with pytest.raises(ResolveError) as info:
        await lookups.resolve(query, requester_id=1, limit=1)
    assert (
        info.value.sentence == f"I only play http and https links; `{scheme}:` links are refused."
    )


async def test_missing_page_gives_a_sentence(lookups: Lookups, media_server: MediaServer) -> None:
    with pytest.raises(ResolveError) as info:
        await lookups.resolve(media_server.url("missing.webm"), requester_id=1, limit=1)
    assert info.value.sentence == "There's nothing at that link (the site answered 404 Not Found)."


async def test_slow_site_times_out_with_a_sentence(tmp_path: Path) -> None:
    server = MediaServer(tmp_path)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=b"late", content_type="audio/webm")

    server.app.router.add_get("/slow.webm", slow)
    server.start()
    try:
        async with open_lookups(Resolver(lambda: LOOPBACK_OK, timeout=1.0)) as lookups:
            started = time.monotonic()
            with pytest.raises(ResolveError) as info:
                await lookups.resolve(f"{server.base_url}/slow.webm", requester_id=1, limit=1)
            assert time.monotonic() - started < 3.0
            assert info.value.sentence == "Looking that up timed out after 1 s."
    finally:
        server.stop()


async def test_playlist_expands_to_unresolved_entries_up_to_limit(
    lookups: Lookups, media_server: MediaServer
) -> None:
    extractor_threads.clear()
    result = await lookups.resolve(
        f"{media_server.base_url}/fakelist/mix", requester_id=5, limit=3
    )
    assert result.title == "Fake playlist"
    assert result.truncated
    assert [t.title for t in result.tracks] == [f"Entry {n}" for n in PLAYLIST[:3]]
    assert [t.query for t in result.tracks] == [media_server.url(n) for n in PLAYLIST[:3]]
    assert all(t.stream_url is None and t.requester_id == 5 for t in result.tracks)
    assert len({t.id for t in result.tracks}) == 3
    # yt-dlp ran in the scheduler's threads, not on the event loop's thread
    assert extractor_threads and all(n.startswith("music-resolve") for n in extractor_threads)


async def test_playlist_within_limit_is_not_truncated(
    lookups: Lookups, media_server: MediaServer
) -> None:
    result = await lookups.resolve(
        f"{media_server.base_url}/fakelist/all", requester_id=1, limit=10
    )
    assert not result.truncated
    assert len(result.tracks) == len(PLAYLIST)


async def test_refresh_resolves_a_playlist_entry_keeping_its_id(
    lookups: Lookups, media_server: MediaServer
) -> None:
    result = await lookups.resolve(
        f"{media_server.base_url}/fakelist/mix", requester_id=1, limit=2
    )
    entry = result.tracks[0]
    fresh = await lookups.refresh(entry)
    assert fresh.id == entry.id
    assert fresh.title == entry.title  # a real title isn't replaced
    assert fresh.stream_url == media_server.url("a440.webm")
    assert fresh.acodec == "opus" and fresh.container == "webm"
    assert fresh.duration == pytest.approx(3.0, abs=0.1)
    assert fresh.stream_expires is not None
    assert entry.stream_url is None  # the original is untouched


async def test_refresh_of_local_track_is_a_same_id_copy(lookups: Lookups) -> None:
    track = Track(query="a.mp3", title="a", kind="local", stream_url="/music/a.mp3")
    fresh = await lookups.refresh(track)
    assert fresh == track and fresh is not track


async def test_search_lists_unresolved_results(
    lookups: Lookups, media_server: MediaServer
) -> None:
    results = await lookups.search("tones", n=2)
    assert [t.title for t in results] == ["tones / a440.webm", "tones / a660.mp3"]
    assert all(t.stream_url is None for t in results)


async def test_words_resolve_to_the_first_result_fully(
    lookups: Lookups, media_server: MediaServer
) -> None:
    result = await lookups.resolve("some words", requester_id=9, limit=10)
    [track] = result.tracks
    assert track.stream_url == media_server.url("a440.webm")
    assert track.acodec == "opus"
    assert track.requester_id == 9


async def test_final_stream_url_is_policy_checked(
    lookups: Lookups, media_server: MediaServer
) -> None:
    with pytest.raises(ResolveError, match="I won't fetch `10.0.0.1`: it points to a private"):
        await lookups.resolve(f"{media_server.base_url}/leak", requester_id=1, limit=1)


async def test_requests_made_by_extractors_are_policy_checked(
    lookups: Lookups, media_server: MediaServer
) -> None:
    with pytest.raises(ResolveError, match="I won't fetch `192.168.0.1`"):
        await lookups.resolve(f"{media_server.base_url}/sneaky", requester_id=1, limit=1)


async def test_extractor_bug_becomes_a_resolve_error(
    lookups: Lookups, media_server: MediaServer
) -> None:
    with pytest.raises(ResolveError, match="yt-dlp failed unexpectedly"):
        await lookups.resolve(f"{media_server.base_url}/broken", requester_id=1, limit=1)


def _can_bind(host: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not _can_bind("127.0.0.2"), reason="127.0.0.2 is not usable here")
async def test_redirect_to_a_refused_address_is_caught(tmp_path: Path) -> None:
    """An allowed site that redirects into a refused network is refused. The target is an
    HTML page, so no final stream URL exists: the refusal must come from the request checks."""

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text="<html>secret</html>", content_type="text/html")

    async def jump(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{inner_port}/secret.webm")

    inner = web.Application()
    inner.router.add_get("/secret.webm", secret)
    inner_runner = web.AppRunner(inner)
    await inner_runner.setup()
    inner_site = web.TCPSite(inner_runner, "127.0.0.2", 0)
    await inner_site.start()
    inner_port = inner_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    outer = web.Application()
    outer.router.add_get("/jump.webm", jump)
    outer_runner = web.AppRunner(outer)
    await outer_runner.setup()
    outer_site = web.TCPSite(outer_runner, "127.0.0.1", 0)
    await outer_site.start()
    outer_port = outer_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    resolver = Resolver(lambda: NetworkPolicy(allow=["127.0.0.1/32"]), timeout=10)
    try:
        with pytest.raises(ResolveError, match="I won't fetch `127.0.0.2`"):
            await resolve_once(resolver, f"http://127.0.0.1:{outer_port}/jump.webm")
    finally:
        await outer_runner.cleanup()
        await inner_runner.cleanup()


async def test_closed_lookups_refuse_work_with_a_sentence(media_server: MediaServer) -> None:
    lookups = Lookups(Resolver(lambda: LOOPBACK_OK))
    await lookups.close()
    with pytest.raises(ResolveError, match="shutting down"):
        await lookups.resolve(media_server.url("a440.webm"), requester_id=1, limit=1)


async def test_empty_query_is_refused(lookups: Lookups) -> None:
    with pytest.raises(ResolveError, match="Tell me what to play"):
        await lookups.resolve("   ", requester_id=1, limit=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://youtu.be/abc", "https://youtu.be/abc"),
        ("<https://example.com/a b>", None),
        ("<https://example.com/a>", "https://example.com/a"),
        ("youtu.be/abc", "https://youtu.be/abc"),
        ("www.example.com/song.mp3", "https://www.example.com/song.mp3"),
        ("file:///etc/passwd", "file:///etc/passwd"),
        ("data:,x", "data:,x"),
        ("Queen: Bohemian Rhapsody", None),
        ("artist:song", None),
        ("never gonna give you up", None),
        ("song.mp3", None),
    ],
)
def test_as_url_tells_links_from_words(text: str, expected: str | None) -> None:
    assert as_url(text) == expected


def test_stream_expiry_reads_expire_hint() -> None:
    assert stream_expiry("https://cdn/x?expire=2000000000&sig=1", now=1000.0) == 2_000_000_000.0
    assert (
        stream_expiry("https://cdn/videoplayback/expire/2000000000/sig/x", now=1000.0)
        == 2_000_000_000.0
    )
    assert (
        stream_expiry("https://cdn/x?expire=garbage", now=1000.0)
        == 1000.0 + DEFAULT_STREAM_LIFETIME
    )
    assert stream_expiry("https://cdn/x?expire=500", now=1000.0) == 1000.0 + DEFAULT_STREAM_LIFETIME
    assert stream_expiry("https://cdn/x", now=1000.0) == 1000.0 + DEFAULT_STREAM_LIFETIME


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("ERROR: Unsupported URL: https://example.com/", "the site isn't supported"),
        (
            "ERROR: [youtube] abc: Private video. Sign in if you've been granted access",
            "That video is private.",
        ),
        ("ERROR: [youtube] abc: Video unavailable", "That video is unavailable."),
        ("ERROR: [youtube] abc: Sign in to confirm you’re not a bot.", "isn't a bot"),
        ("ERROR: [youtube] abc: Sign in to confirm your age.", "age-restricted"),
        ("ERROR: Unable to download webpage: HTTP Error 403: Forbidden", "403 Forbidden"),
        ("ERROR: Unable to download webpage: The read operation timed out", "timed out after 30 s"),
        ("ERROR: \x1b[0;31mweird\x1b[0m failure `x`", "I couldn't load that: weird failure 'x'"),
    ],
)
def test_classify_error_uses_plain_words(message: str, expected: str) -> None:
    assert expected in classify_error(message, 30.0)[1]

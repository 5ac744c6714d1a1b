"""The owner's extractor allow-list with real yt-dlp: sites not on the list are refused with a
sentence before their extractor fetches anything; the generic extractor plays direct media but
not media found inside a web page unless the owner widens it to `generic:all`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from yt_dlp.extractor.common import InfoExtractor

from music.policy import DEFAULT_EXTRACTORS, ExtractorPolicy, NetworkPolicy, normalise_extractor
from music.resolve.resolver import ResolveError, Resolver
from tests.audio.test_network_guard import CountingServer
from tests.support.lookups import resolve_once

LOOPBACK_OK = NetworkPolicy(allow=["127.0.0.0/8"])


class TuneHutIE(InfoExtractor):
    """A site with its own extractor that isn't on the default list: `/tunehut/<file>`."""

    IE_NAME = "tunehut"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/tunehut/(?P<id>[\w.-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        name = self._match_id(url)
        base = url.split("/tunehut/")[0]
        self._download_webpage(url, name)  # the page request the server counts
        return {"id": name, "title": f"Tune {name}", "url": f"{base}/media/{name}",
                "ext": "webm", "acodec": "opus", "vcodec": "none", "duration": 3.0}


@pytest_asyncio.fixture
async def site(media_dir: Path) -> AsyncIterator[CountingServer]:
    server = CountingServer(media_dir)

    async def page(request: web.Request) -> web.Response:
        # an HTML page with the media embedded: yt-dlp's generic extractor finds the <audio>
        return web.Response(
            text='<html><head><title>A blog</title></head><body>'
                 '<audio controls src="/media/a440.webm"></audio></body></html>',
            content_type="text/html",
        )

    server.app.router.add_get("/tunehut/{name}", page)
    server.app.router.add_get("/blog", page)
    await server.start()
    yield server
    await server.stop()


async def resolve(site: CountingServer, path: str, allowed: list[str] | None) -> Any:
    resolver = Resolver(
        lambda: LOOPBACK_OK, timeout=15, extra_extractors=[TuneHutIE], probe_direct_media=False,
        extractor_policy_getter=lambda: ExtractorPolicy(allowed),
    )
    return await resolve_once(resolver, f"http://127.0.0.1:{site.port}{path}", requester_id=1)


async def test_default_list_plays_a_direct_media_link(site: CountingServer) -> None:
    result = await resolve(site, "/media/a440.webm", None)
    assert result.tracks[0].stream_url.endswith("/media/a440.webm")


async def test_default_list_refuses_a_web_page_with_embedded_media(site: CountingServer) -> None:
    with pytest.raises(ResolveError) as caught:
        await resolve(site, "/blog", None)
    assert caught.value.sentence.startswith("I can't play that link: it's a web page")
    assert "`musicset extractors allow generic:all`" in caught.value.sentence
    assert "/media/a440.webm" not in site.hits  # the embedded media was never fetched


async def test_generic_all_plays_the_media_inside_a_web_page(site: CountingServer) -> None:
    result = await resolve(site, "/blog", [*DEFAULT_EXTRACTORS, "generic:all"])
    assert result.tracks[0].stream_url.endswith("/media/a440.webm")


async def test_a_site_not_on_the_list_is_refused_before_anything_is_fetched(
    site: CountingServer,
) -> None:
    with pytest.raises(ResolveError) as caught:
        await resolve(site, "/tunehut/a440.webm", None)
    assert caught.value.sentence == (
        "I can't play links from `tunehut`: the bot owner hasn't allowed that site (the owner "
        "can allow it with `musicset extractors allow tunehut`)."
    )
    assert site.hits == []
    result = await resolve(site, "/tunehut/a440.webm", [*DEFAULT_EXTRACTORS, "tunehut"])
    assert result.tracks[0].title == "Tune a440.webm" and site.hits


async def test_without_generic_only_listed_sites_play(site: CountingServer) -> None:
    with pytest.raises(ResolveError, match="isn't from a site I support"):
        await resolve(site, "/media/a440.webm", ["youtube"])
    assert site.hits == []


def test_names_are_normalised_and_garbage_refused() -> None:
    assert normalise_extractor(" SoundCloud:set ") == "soundcloud"
    assert normalise_extractor("Generic:ALL") == "generic:all"
    with pytest.raises(ValueError, match="isn't an extractor name"):
        normalise_extractor("you tube")
    assert ExtractorPolicy(None).allows("youtube") and not ExtractorPolicy([]).allows("youtube")
    assert ExtractorPolicy(["generic:all"]).allows("generic")

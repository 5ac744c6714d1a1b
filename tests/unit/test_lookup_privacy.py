"""Lookups don't leak across servers (issue 13, point 7): `music status` shows a server its own
lookups and failures (the owner sees all), `music cancel` can't reach another server's lookup
nor tell that it exists, and what status shows of a query is its site and title, never the URL
(no path, no query string, no token). Real yt-dlp through ResolveService, fake extractors on a
local server (tests/unit/test_resolve_service.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.utils import ExtractorError

from music.engine.track import Track
from music.policy import DEFAULT_EXTRACTORS, ExtractorPolicy
from music.resolve.resolver import ResolveError, Resolver, extractor_family
from music.resolve.service import ResolveService
from music.resolve.urls import site_of, without_links
from tests.support.media import MediaServer
from tests.unit.test_resolve_service import (  # noqa: F401  (site: a fixture)
    EXTRACTED,
    EXTRACTORS,
    GATES,
    LOOPBACK_OK,
    close_and_join,
    new_id,
    site,
    wait_until,
)

TOKEN = "tok3n-SECRET"


class LeakyErrorIE(InfoExtractor):
    """`.../leaky/<id>`: fails with a message that repeats the link it was given, token and all
    (as many yt-dlp messages do)."""

    IE_NAME = "svcsite:leaky"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/leaky/(?P<id>[\w-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        raise ExtractorError(f"Unable to read {url} for now", expected=True)


@pytest_asyncio.fixture
async def service() -> AsyncIterator[ResolveService]:
    extractors = [*EXTRACTORS, LeakyErrorIE]
    resolver = Resolver(
        lambda: LOOPBACK_OK, search_prefix="svcsearch", timeout=10, extra_extractors=extractors,
        probe_direct_media=False,
        extractor_policy_getter=lambda: ExtractorPolicy(
            [*DEFAULT_EXTRACTORS, *(extractor_family(ie.IE_NAME) for ie in extractors)]
        ),
    )
    svc = ResolveService(resolver, workers=2, max_attempts=1)
    yield svc
    await close_and_join(svc)


def held(page_id: str) -> str:
    """A page id whose extraction waits until the test opens its gate."""
    GATES[page_id] = threading.Event()
    return page_id


# ---- what a lookup is called ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://www.youtube.com/playlist?list=PLprivate&si={TOKEN}", "www.youtube.com"),
        (f"https://user:{TOKEN}@example.com:8443/a/b.mp3?x=1#frag", "example.com"),
        ("youtu.be/abc", "youtu.be"),
        ("http://[::1]:8000/stream", "::1"),
        ("file:///etc/passwd", "a file: link"),
    ],
)
def test_a_link_is_shown_as_its_site(url: str, expected: str) -> None:
    assert site_of(url) == expected


def test_links_inside_text_are_cut_to_their_site() -> None:
    text = f"see https://cdn.example.com/v/1?sig={TOKEN} or www.example.org/p/{TOKEN} then"
    assert without_links(text) == "see cdn.example.com or www.example.org then"
    # titles keep their slashes and numbers
    assert without_links("AC/DC - Live 4.5/5 (Remastered)") == "AC/DC - Live 4.5/5 (Remastered)"


async def test_status_shows_the_site_and_title_never_the_url(
    service: ResolveService, site: MediaServer  # noqa: F811
) -> None:
    link, refreshed = held(new_id("link")), held(new_id("refresh"))
    lookup = asyncio.create_task(service.resolve(
        f"{site.base_url}/item/{link}?token={TOKEN}", guild_id=1, requester_id=1
    ))
    page = f"{site.base_url}/item/{refreshed}?token={TOKEN}"
    queued = Track(query=page, title="Song (live)", webpage_url=page)
    refresh = asyncio.create_task(service.refresh(queued, guild_id=1))
    await wait_until(lambda: link in EXTRACTED and refreshed in EXTRACTED)
    running = service.status(guild_id=1)["running_jobs"]
    assert sorted(job["description"] for job in running) == ["127.0.0.1", "127.0.0.1: Song (live)"]
    GATES[link].set()
    GATES[refreshed].set()
    await asyncio.gather(lookup, refresh)

    with pytest.raises(ResolveError) as failed:
        await service.resolve(f"{site.base_url}/leaky/{new_id()}?token={TOKEN}",
                              guild_id=1, requester_id=1)
    assert TOKEN in failed.value.sentence  # the member who asked is told in full
    with pytest.raises(ResolveError, match="private"):
        await service.resolve(f"{site.base_url}/gone/private/{new_id()}?token={TOKEN}",
                              guild_id=1, requester_id=1)
    failures = service.status(guild_id=1)["recent_failures"]
    assert [f["description"] for f in failures] == ["127.0.0.1", "127.0.0.1"]
    assert failures[0]["reason"].startswith("I couldn't load that:")
    assert "127.0.0.1" in failures[0]["reason"]
    status = repr(service.status())
    assert TOKEN not in status and "/item/" not in status and "/leaky/" not in status


async def test_a_search_is_shown_by_its_words_with_links_cut(
    service: ResolveService, site: MediaServer  # noqa: F811
) -> None:
    words = f"{new_id('lofi')} beats https://www.example.com/list?k={TOKEN} mix"
    # the first result is `/item/<the words joined by dashes>-r0`; its id ends at the `:`
    first_result = held("-".join(words.split()[:3]).split(":")[0])
    lookup = asyncio.create_task(service.resolve(words, guild_id=1, requester_id=1))
    await wait_until(lambda: first_result in EXTRACTED)
    [job] = service.status(guild_id=1)["running_jobs"]
    assert job["description"] == f"{words.split()[0]} beats www.example.com mix"
    GATES[first_result].set()
    await lookup


# ---- one server's lookups, and the owner's view --------------------------------------------------


async def test_a_server_sees_and_cancels_only_its_own_lookups(
    service: ResolveService, site: MediaServer  # noqa: F811
) -> None:
    theirs = held(new_id("theirs"))
    their_lookup = asyncio.create_task(
        service.resolve(f"{site.base_url}/item/{theirs}", guild_id=2, requester_id=20)
    )
    with pytest.raises(ResolveError):
        await service.resolve(f"{site.base_url}/gone/private/{new_id()}", guild_id=2,
                              requester_id=20)
    await wait_until(lambda: theirs in EXTRACTED)
    [job] = service.status()["running_jobs"]  # the owner's view: every server's

    ours = service.status(guild_id=1)
    assert ours["running_jobs"] == [] and ours["recent_failures"] == []
    assert sum(ours["running"].values()) == 0
    # an admin of server 1 gets the answer for a number that doesn't exist
    assert service.cancel(job["id"], by_user_id=10, is_admin=True, guild_id=1) is False
    assert service.cancel(10**9, by_user_id=10, is_admin=True, guild_id=1) is False
    assert not their_lookup.done()

    mine = service.status(guild_id=2)
    assert [j["id"] for j in mine["running_jobs"]] == [job["id"]]
    assert len(mine["recent_failures"]) == 1
    assert service.cancel(job["id"], by_user_id=20, is_admin=False, guild_id=2) is True
    with pytest.raises(ResolveError, match="cancelled"):
        await their_lookup
    GATES[theirs].set()

"""The fallbacks of music.resolve.ytdl_compat: for each private yt-dlp name the resolver relies on,
the name is renamed (as a yt-dlp release could) and a real lookup of local media through the
service still gives the right track, with one log line saying what was lost. A control beside
each shows the fast path is what runs normally, so the fallback test can't pass by accident."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yt_dlp
import yt_dlp.networking._helper

from music.audio import fetch
from music.policy import NetworkPolicy
from music.resolve import ytdl_compat
from music.resolve.resolver import Resolver, ResolveResult
from music.resolve.ytdl import PolicedYoutubeDL
from tests.audio.test_network_guard import start_tls_server
from tests.support.lookups import Lookups, open_lookups
from tests.support.media import MediaServer

LOOPBACK_OK = NetworkPolicy(allow=["127.0.0.0/8", "::1/128"])
COMPAT_LOG = "red.music.resolve.ytdl_compat"


@pytest.fixture(autouse=True)
def fresh_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees its own one-line-per-feature reports."""
    monkeypatch.setattr(ytdl_compat, "_reported", set())


@pytest_asyncio.fixture
async def lookups() -> AsyncIterator[Lookups]:
    """One worker thread, so one reusable yt-dlp instance when reuse works."""
    async with open_lookups(Resolver(lambda: LOOPBACK_OK, timeout=20), workers=1) as made:
        yield made


def assert_a440(result: ResolveResult, url: str) -> None:
    [track] = result.tracks
    assert track.stream_url == url and track.title == "a440"
    assert track.acodec == "opus" and track.container == "webm"
    assert track.duration == pytest.approx(3.0, abs=0.1)


def fallback_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == COMPAT_LOG]


async def resolve_twice(lookups: Lookups, media_server: MediaServer) -> None:
    url = media_server.url("a440.webm")
    assert_a440(await lookups.resolve(url), url)
    assert_a440(await lookups.resolve(url + "?again"), url + "?again")


# ---- reusing an instance: the lookup state it clears, the connections it closes ------------------

REUSE_NAMES = [
    ytdl_compat.HEADER_COOKIES,
    *ytdl_compat.LOOKUP_INTS,
    *ytdl_compat.LOOKUP_SETS,
    ytdl_compat.REQUEST_DIRECTOR,
]


async def test_an_instance_is_reused_when_every_name_is_there(
    lookups: Lookups, media_server: MediaServer, caplog: pytest.LogCaptureFixture
) -> None:
    await resolve_twice(lookups, media_server)
    assert lookups.resolver.instances_built == 1
    assert fallback_lines(caplog) == []


@pytest.mark.parametrize("name", REUSE_NAMES)
async def test_without_a_name_for_lookup_state_every_lookup_gets_a_new_instance(
    lookups: Lookups,
    media_server: MediaServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    renamed = name + "_renamed"
    for constant in ("HEADER_COOKIES", "REQUEST_DIRECTOR"):
        if getattr(ytdl_compat, constant) == name:
            monkeypatch.setattr(ytdl_compat, constant, renamed)
    for constant in ("LOOKUP_INTS", "LOOKUP_SETS"):
        names = getattr(ytdl_compat, constant)
        if name in names:
            monkeypatch.setattr(
                ytdl_compat, constant, tuple(renamed if n == name else n for n in names)
            )
    await resolve_twice(lookups, media_server)
    # nothing of one lookup can reach the next: each had an instance of its own
    assert lookups.resolver.instances_built == 2
    [line] = fallback_lines(caplog)  # one line, not one per lookup
    assert renamed in line and "every lookup builds a new yt-dlp instance" in line


# ---- naming the site from the instance's own extractor list ---------------------------------------


async def test_without_the_extractor_dict_the_site_is_named_from_the_class_list(
    lookups: Lookups,
    media_server: MediaServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str | None] = []
    original = PolicedYoutubeDL.extract_info

    def recording(self: PolicedYoutubeDL, url: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("ie_key"))
        return original(self, url, *args, **kwargs)

    monkeypatch.setattr(PolicedYoutubeDL, "extract_info", recording)
    url = media_server.url("a440.webm")
    assert_a440(await lookups.resolve(url), url)
    assert asked == ["Generic"]  # control: the site's naming found the extractor for yt-dlp
    assert fallback_lines(caplog) == []

    monkeypatch.setattr(ytdl_compat, "IES", "_ies_renamed")
    asked.clear()
    assert_a440(await lookups.resolve(url + "?again"), url + "?again")
    assert asked == [None]  # yt-dlp asked its extractors itself
    assert "generic" in lookups.service.status()["breakers"]
    [line] = fallback_lines(caplog)
    assert "_ies_renamed" in line


@pytest.mark.parametrize("constant", ["PLUGINS_LOADED", "LOAD_PLUGINS"])
def test_without_yt_dlps_plugin_loader_the_sites_are_still_named(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, constant: str
) -> None:
    monkeypatch.setattr(ytdl_compat, constant, "renamed_in_a_later_yt_dlp")
    monkeypatch.setattr(ytdl_compat, "IES", "_ies_renamed")  # so naming uses the class list
    resolver = Resolver(lambda: LOOPBACK_OK)
    try:
        assert resolver.extractor_family_sync("https://www.youtube.com/watch?v=abc") == "youtube"
        assert resolver.extractor_family_sync("http://127.0.0.1:1/a440.webm") == "generic"
        assert "youtube" in resolver.known_extractor_families_sync()
    finally:
        resolver.close()
    assert any("renamed_in_a_later_yt_dlp" in line for line in fallback_lines(caplog))


# ---- the default extractor list, built once per process -----------------------------------------


def registered(ydl: yt_dlp.YoutubeDL) -> list[tuple[str, type]]:
    return [(key, ie if isinstance(ie, type) else type(ie)) for key, ie in ydl._ies.items()]


async def test_without_the_enabled_flag_yt_dlp_selects_the_extractors_itself(
    lookups: Lookups,
    media_server: MediaServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    copied = PolicedYoutubeDL({"quiet": True}, LOOPBACK_OK)
    monkeypatch.setattr(ytdl_compat, "ENABLED", "_ENABLED_renamed")
    selected_by_yt_dlp = PolicedYoutubeDL({"quiet": True}, LOOPBACK_OK)
    try:
        assert registered(selected_by_yt_dlp) == registered(copied)
    finally:
        copied.close()
        selected_by_yt_dlp.close()
    url = media_server.url("a440.webm")
    assert_a440(await lookups.resolve(url), url)
    [line] = fallback_lines(caplog)
    assert "_ENABLED_renamed" in line


# ---- one SSL context per process ----------------------------------------------------------------


@pytest_asyncio.fixture
async def tls_site(media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The media over https with a self-signed certificate that yt-dlp is made to trust (as the
    system's CA file), and the process's shared SSL contexts forgotten."""
    server, cert = await start_tls_server(media_dir, tmp_path)
    monkeypatch.setattr(yt_dlp.networking._helper, "certifi", None, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    monkeypatch.setattr(ytdl_compat, "_ssl_contexts", {})
    # the media probe reads through the cog's own reader, whose context is made once too
    monkeypatch.setattr(fetch, "_TLS_CONTEXT", None)
    yield server
    await server.stop()


@pytest.fixture
def shared_contexts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    original = ytdl_compat.shared_ssl_context

    def counting(**options: Any) -> Any:
        made.append(options)
        return original(**options)

    monkeypatch.setattr(ytdl_compat, "shared_ssl_context", counting)
    return made


async def test_https_lookups_share_one_ssl_context(
    lookups: Lookups,
    tls_site: Any,
    shared_contexts: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"https://localhost:{tls_site.port}/media/a440.webm"
    assert_a440(await lookups.resolve(url), url)
    assert shared_contexts and len(ytdl_compat._ssl_contexts) == 1
    assert fallback_lines(caplog) == []


@pytest.mark.parametrize(
    ("constant", "renamed"),
    [
        ("MAKE_SSLCONTEXT", "_make_sslcontext_renamed"),
        ("CLIENT_CERT", "_client_cert_renamed"),
        ("SSL_HELPER_MODULE", "yt_dlp.networking._helper_renamed"),
    ],
)
async def test_without_the_ssl_names_each_handler_makes_its_own_context(
    lookups: Lookups,
    tls_site: Any,
    shared_contexts: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    constant: str,
    renamed: str,
) -> None:
    monkeypatch.setattr(ytdl_compat, constant, renamed)
    url = f"https://localhost:{tls_site.port}/media/a440.webm"
    assert_a440(await lookups.resolve(url), url)
    assert shared_contexts == [] and ytdl_compat._ssl_contexts == {}
    [line] = fallback_lines(caplog)
    assert renamed in line


# ---- skipping the tables nobody prints ----------------------------------------------------------


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys yt-dlp's own _forceprint ran for (it renders the tables each time)."""
    keys: list[str] = []
    original = yt_dlp.YoutubeDL._forceprint

    def recording(self: yt_dlp.YoutubeDL, key: str, info_dict: Any) -> Any:
        keys.append(key)
        return original(self, key, info_dict)

    monkeypatch.setattr(yt_dlp.YoutubeDL, "_forceprint", recording)
    return keys


async def test_the_tables_are_skipped_for_the_steps_nobody_prints(
    lookups: Lookups, media_server: MediaServer, rendered: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = media_server.url("a440.webm")
    assert_a440(await lookups.resolve(url), url)
    assert rendered == []  # each processing step ('pre_process', ...) skipped its tables
    assert fallback_lines(caplog) == []


async def test_without_the_forceprint_name_yt_dlp_renders_every_step(
    lookups: Lookups,
    media_server: MediaServer,
    rendered: list[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ytdl_compat, "FORCEPRINT", "_forceprint_renamed")
    url = media_server.url("a440.webm")
    assert_a440(await lookups.resolve(url), url)
    assert set(rendered) - {"video"}  # 'pre_process', 'after_filter': rendered and discarded
    [line] = fallback_lines(caplog)
    assert "_forceprint_renamed" in line

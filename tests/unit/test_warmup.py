"""yt-dlp's first-use costs paid ahead (music.resolve.warmup): in the worker thread the first
lookup gets, paced so that the event loop stays on time, stopped by a lookup or an unload; and the
JavaScript runtime looked for only when a YouTube extractor runs, never for a direct link.

Real yt-dlp, real HTTP on 127.0.0.1. The pattern-compiling cost only shows in a fresh process
(this one compiled them long ago): the first test runs one."""

from __future__ import annotations

import asyncio
import gc
import json
import marshal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from yt_dlp.extractor.common import InfoExtractor

from music.policy import DEFAULT_EXTRACTORS, ExtractorPolicy, NetworkPolicy
from music.resolve import jsruntime, warmup
from music.resolve import resolver as resolver_module
from music.resolve.jsruntime import JsRuntime, JsRuntimeReport
from music.resolve.resolver import Resolver
from music.resolve.service import ResolveService
from music.resolve.warmup import Pacer
from tests.support.media import MediaServer

REPO = Path(__file__).resolve().parents[2]
LOOPBACK_OK = NetworkPolicy(allow=["127.0.0.0/8"])
#: what a YouTube-family extractor saw in params["js_runtimes"], run by run
SEEN_RUNTIMES: list[Any] = []


class FakeYoutubeIE(InfoExtractor):
    """A YouTube-family extractor (`youtube:musictest`) on the local server: records the
    JavaScript runtimes yt-dlp would use for it."""

    IE_NAME = "youtube:musictest"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/yt/(?P<id>[\w.-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        SEEN_RUNTIMES.append(self._downloader.params.get("js_runtimes"))
        name = self._match_id(url)
        base = url.split("/yt/")[0]
        return {"id": name, "title": name, "url": f"{base}/media/{name}", "ext": "webm",
                "acodec": "opus", "vcodec": "none", "duration": 3.0}


@pytest.fixture
def resolver() -> Iterator[Resolver]:
    made = Resolver(lambda: LOOPBACK_OK, timeout=20, extra_extractors=[FakeYoutubeIE],
                    extractor_policy_getter=lambda: ExtractorPolicy(DEFAULT_EXTRACTORS))
    yield made
    made.close()


@pytest_asyncio.fixture
async def service(resolver: Resolver) -> AsyncIterator[ResolveService]:
    made = ResolveService(resolver)  # 3 workers, as the cog
    yield made
    await made.close()
    assert await asyncio.to_thread(made.scheduler.join, 10)


@pytest.fixture
def slow_patterns(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The pattern step takes up to 10 s (pacing as the real one does); the event is set when
    it has begun."""
    begun = threading.Event()

    def compile_slowly(extractors: list[Any], pacer: Pacer) -> int:
        begun.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.001)
            pacer.tick()
        return 0

    monkeypatch.setattr(resolver_module, "compile_patterns", compile_slowly)
    return begun


@pytest.fixture
def runtime_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each time the machine is searched for a JavaScript runtime (nothing found yet); finds
    the deno package's binary."""
    calls: list[str] = []
    deno = JsRuntime("deno", "/opt/lib/bin/deno", "2.9.8", True, "the deno package")

    def detect() -> JsRuntimeReport:
        calls.append(threading.current_thread().name)
        return JsRuntimeReport(deno, (deno,), ("deno", "node"))

    monkeypatch.setattr(jsruntime, "_cached", None)
    monkeypatch.setattr(jsruntime, "detect_js_runtime", detect)
    return calls


# ---- a fresh process ------------------------------------------------------------------------

FRESH_PROCESS = textwrap.dedent('''
    import asyncio, json, statistics, sys, time
    from music.policy import NetworkPolicy
    from music.resolve.resolver import Resolver
    from music.resolve.service import ResolveService

    async def main():
        url = sys.argv[1]
        resolver = Resolver(lambda: NetworkPolicy(allow=["127.0.0.0/8"]))
        service = ResolveService(resolver)
        late, running = [], True

        async def ticker():  # sleeps 1 ms again and again; how late does it wake up?
            while running:
                asked = time.perf_counter()
                await asyncio.sleep(0.001)
                late.append((time.perf_counter() - asked - 0.001) * 1000)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        late.clear()
        report = await service.warm_up()
        running = False
        await task
        started = time.perf_counter()
        result = await service.resolve(url, guild_id=1, requester_id=1)
        lookup_ms = (time.perf_counter() - started) * 1000
        await service.close()
        late.sort()
        print(json.dumps({"state": report.state, "steps": report.steps, "lookup_ms": lookup_ms,
                          "title": result.tracks[0].title, "built": resolver.instances_built,
                          "late_median": statistics.median(late), "late_p90": late[len(late) * 9 // 10],
                          "wakeups": len(late)}))

    asyncio.run(main())
''')


def test_a_fresh_process_warms_up_with_the_loop_on_time_and_its_first_lookup_is_warm(
    media_server: MediaServer,
) -> None:
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, media_server.url("a440.webm")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["state"] == "done" and figures["title"] == "a440"
    assert set(figures["steps"]) == {"instance", "patterns", "first extract", "ffmpeg"}
    # the lookup reused the warm instance: no second one built, and no pattern compiled (cold,
    # ~0.4 s; warm, 20-50 ms on a busy 2-core machine)
    assert figures["built"] == 1
    assert figures["lookup_ms"] < 200, figures
    # unpaced, the loop's wake-ups are ~5 ms late (the GIL's switch interval) all along
    assert figures["wakeups"] > 50
    assert figures["late_median"] < 1.0, figures


FROZEN_PROCESS = textwrap.dedent('''
    import asyncio, gc, json, time
    from music.policy import NetworkPolicy
    from music.resolve.resolver import Resolver
    from music.resolve.service import ResolveService
    from music.resolve.warmup import freeze_long_lived

    def full_collection_ms():
        started = time.perf_counter()
        gc.collect()
        return (time.perf_counter() - started) * 1000

    async def main():
        resolver = Resolver(lambda: NetworkPolicy(allow=["127.0.0.0/8"]))
        service = ResolveService(resolver)
        garbage_before = gc.collect()  # nothing yet: what the freeze would keep forever
        full_before = gc.get_stats()[2]["collections"]
        report = await service.warm_up(freeze=True)  # as the cog does
        full_during = gc.get_stats()[2]["collections"] - full_before
        frozen, walked = gc.get_freeze_count(), len(gc.get_objects())
        instance = next(iter(resolver._instances._all))
        instance_walked = any(o is instance for o in gc.get_objects())
        again = freeze_long_lived()  # a reload's warm-up
        frozen_again = gc.get_freeze_count()
        await service.close()
        resolver.close()
        frozen_ms = min(full_collection_ms() for _ in range(3))
        gc.unfreeze()
        unfrozen_ms = min(full_collection_ms() for _ in range(3))
        print(json.dumps({"state": report.state, "frozen": frozen, "walked": walked,
                          "instance_walked": instance_walked, "again": again,
                          "frozen_again": frozen_again, "frozen_ms": frozen_ms,
                          "unfrozen_ms": unfrozen_ms, "garbage_before": garbage_before,
                          "full_during": full_during, "freezes": report.freezes}))

    asyncio.run(main())
''')


def test_the_cogs_warm_up_freezes_what_exists_so_full_collections_stay_short() -> None:
    """A full garbage collection in a process with yt-dlp loaded held the GIL 65-140 ms (in
    Red's) and fell in the first or second play; with the cog's freeze it walks only what was
    made after the warm-up."""
    done = subprocess.run([sys.executable, "-c", FROZEN_PROCESS], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["state"] == "done"
    # the imports and the warm-up's yt-dlp instance are frozen; a collection walks the rest
    assert figures["frozen"] > 20_000, figures
    assert figures["walked"] < figures["frozen"] // 10, figures
    assert not figures["instance_walked"]
    # once per process: a reload's warm-up freezes nothing more (the cog's previous modules,
    # garbage by then, would never be freed); frozen objects freed since only lower the count
    assert figures["again"] is False and figures["frozen_again"] <= figures["frozen"]
    assert figures["frozen_ms"] < figures["unfrozen_ms"] / 3, figures
    # the warm-up's own allocations started one full collection (~5 ms, walking all it had built,
    # holding the GIL): now it freezes just before, and none runs during the warm-up
    assert figures["freezes"] >= 1 and figures["full_during"] == 0, figures


# ---- in this process ------------------------------------------------------------------------


async def test_the_warm_up_leaves_the_garbage_collector_alone_unless_asked(
    service: ResolveService,
) -> None:
    # an earlier test in this process may have loaded the cog, which freezes: compare, not 0
    frozen_before = gc.get_freeze_count()
    gc.collect()  # so that nothing the collector still holds moves during the warm-up
    report = await service.warm_up()
    assert report is not None and report.done and report.freezes == 0
    assert gc.get_freeze_count() <= frozen_before  # frozen objects may still be freed


async def test_after_the_warm_up_the_resolver_is_warm_and_the_first_lookup_reuses_its_instance(
    resolver: Resolver, service: ResolveService, media_server: MediaServer
) -> None:
    assert not resolver.warmed
    report = await service.warm_up()
    assert report is not None and report.done and resolver.warmed
    assert resolver.instances_built == 1
    result = await service.resolve(media_server.url("a440.webm"), guild_id=1, requester_id=1)
    assert result.tracks[0].acodec == "opus"
    assert resolver.instances_built == 1  # the lookup ran in the warmed thread, on its instance
    assert sys.getswitchinterval() == pytest.approx(0.005)  # restored


async def test_a_lookup_during_the_warm_up_stops_it_and_just_works(
    resolver: Resolver, service: ResolveService, media_server: MediaServer,
    slow_patterns: threading.Event,
) -> None:
    warming = asyncio.create_task(service.warm_up())
    assert await asyncio.to_thread(slow_patterns.wait, 10)
    started = time.monotonic()
    result = await service.resolve(media_server.url("a440.webm"), guild_id=1, requester_id=1)
    assert time.monotonic() - started < 3  # not after the 10 s the warm-up would have taken
    assert result.tracks[0].title == "a440"
    report = await asyncio.wait_for(warming, 5)
    assert report is not None and report.state == "stopped" and not resolver.warmed
    assert resolver.instances_built == 1  # the instance the warm-up built, in the same thread


async def test_closing_during_the_warm_up_is_clean(
    resolver: Resolver, slow_patterns: threading.Event
) -> None:
    service = ResolveService(resolver)
    warming = asyncio.create_task(service.warm_up())
    assert await asyncio.to_thread(slow_patterns.wait, 10)
    # what cog_unload does: cancel its tasks, close the service
    warming.cancel()
    started = time.monotonic()
    await asyncio.wait({warming}, timeout=1)
    assert warming.cancelled()
    await service.close()
    assert time.monotonic() - started < 0.5
    assert await asyncio.to_thread(service.scheduler.join, 5)
    assert resolver.warm_up_report is not None and resolver.warm_up_report.state == "stopped"
    assert sys.getswitchinterval() == pytest.approx(0.005)
    assert await service.warm_up() is None  # closed: no new warm-up


async def test_the_warm_up_gives_up_after_its_time_limit(
    resolver: Resolver, service: ResolveService, slow_patterns: threading.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(warmup, "TIME_LIMIT", 0.3)
    started = time.monotonic()
    report = await service.warm_up()
    assert report is not None and report.state == "stopped"
    assert time.monotonic() - started < 3


async def test_a_failing_warm_up_is_logged_and_lookups_still_work(
    resolver: Resolver, service: ResolveService, media_server: MediaServer,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(extractors: list[Any], pacer: Pacer) -> int:
        raise RuntimeError("yt-dlp changed")

    monkeypatch.setattr(resolver_module, "compile_patterns", broken)
    report = await service.warm_up()
    assert report is not None and report.state == "failed"
    assert "Warming up yt-dlp failed" in caplog.text
    result = await service.resolve(media_server.url("a440.webm"), guild_id=1, requester_id=1)
    assert result.tracks[0].title == "a440"


# ---- pacing the GIL -------------------------------------------------------------------------


def test_the_whole_warm_up_runs_with_a_short_switch_interval_and_a_collection_break() -> None:
    """A waiting thread reads the switch interval when it starts waiting: a short one around
    a few steps only left the loop ~5 ms late whenever it began waiting just before one."""
    seen: list[tuple[float, bool]] = []

    def step(pacer: Pacer) -> None:
        seen.append((sys.getswitchinterval(), warmup._a_bytecode_boundary in gc.callbacks))

    def failing(pacer: Pacer) -> None:
        step(pacer)
        raise RuntimeError("yt-dlp changed")

    before = sys.getswitchinterval()
    report = warmup.warm_up_sync([("a", step), ("b", step), ("c", failing)], lambda: False)
    assert report.state == "failed"
    assert seen == [(warmup.SHORT_SWITCH_INTERVAL, True)] * 3
    assert sys.getswitchinterval() == before
    assert warmup._a_bytecode_boundary not in gc.callbacks


def test_collection_breaks_put_bytecode_boundaries_inside_a_long_c_call() -> None:
    """Unmarshalling a module's bytecode is one C call (yt-dlp's extractor list: 1 MB, ~3-4 ms
    holding the GIL); inside collection_breaks its allocations' young collections run Python
    code, where a waiting thread gets the GIL."""
    assert gc.isenabled()
    source = "\n".join(f"def f{i}(a, b=({i}, 'x')):\n    return (a, b, [{i}])" for i in range(3000))
    blob = marshal.dumps(compile(source, "<many functions>", "exec"))
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is warmup._a_bytecode_boundary.__code__:
            calls.append(event)

    sys.setprofile(profile)
    try:
        marshal.loads(blob)
        without = len(calls)
        with warmup.collection_breaks():
            marshal.loads(blob)
    finally:
        sys.setprofile(None)
    assert without == 0 and len(calls) >= 5, calls


def test_the_pacer_freezes_just_before_a_full_collection_only_when_asked() -> None:
    # an earlier test may have loaded the cog (which freezes): compare, never assume a fresh gc
    threshold = gc.get_threshold()[2]
    gc.collect()  # the counts start at 0
    asked = Pacer(lambda: False, freeze_as_it_goes=True)
    not_asked = Pacer(lambda: False)
    asked.pause()
    assert asked.freezes == 0  # far from a full collection: nothing frozen
    for _ in range(threshold - warmup.FULL_COLLECTION_MARGIN):
        gc.collect(1)  # each young collection brings the full one nearer, as allocations do
    frozen_before = gc.get_freeze_count()
    not_asked.pause()
    assert not_asked.freezes == 0 and gc.get_freeze_count() <= frozen_before
    asked.pause()
    assert asked.freezes == 1 and gc.get_freeze_count() > frozen_before
    assert gc.get_count()[2] == 0  # the full collection is as far away as it can be


def test_nothing_is_frozen_while_the_collector_is_disabled() -> None:
    for _ in range(gc.get_threshold()[2]):
        gc.collect(1)
    gc.disable()
    try:
        assert not warmup.freeze_before_a_full_collection()
    finally:
        gc.enable()


# ---- the JavaScript runtime -----------------------------------------------------------------


async def test_a_direct_link_and_the_warm_up_never_look_for_a_javascript_runtime(
    resolver: Resolver, service: ResolveService, media_server: MediaServer,
    runtime_lookups: list[str],
) -> None:
    report = await service.warm_up()
    assert report is not None and report.done
    await service.resolve(media_server.url("a440.webm"), guild_id=1, requester_id=1)
    await service.resolve(media_server.url("b880.webm"), guild_id=1, requester_id=1)
    assert runtime_lookups == []
    assert "js_runtimes" not in resolver._options(flat=True)


async def test_a_youtube_extractor_gets_the_runtime_found_once_and_later_changes(
    service: ResolveService, media_server: MediaServer, runtime_lookups: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    SEEN_RUNTIMES.clear()
    base = media_server.base_url
    for name in ("a440.webm", "b880.webm"):
        result = await service.resolve(f"{base}/yt/{name}", guild_id=1, requester_id=1)
        assert result.tracks[0].title == name
    assert len(runtime_lookups) == 1 and runtime_lookups[0].startswith("music-resolve-")
    assert SEEN_RUNTIMES == [{"deno": {"path": "/opt/lib/bin/deno"}}] * 2
    # `[p]music doctor` looked again and found node instead; the reused instance follows
    node = JsRuntime("node", "/usr/bin/node", "22.1.0", True, "PATH")
    monkeypatch.setattr(jsruntime, "_cached", JsRuntimeReport(node, (node,), ("deno", "node")))
    await service.resolve(f"{base}/yt/steps.webm", guild_id=1, requester_id=1)
    # and found none: yt-dlp's own default again
    monkeypatch.setattr(jsruntime, "_cached", JsRuntimeReport(None, (), ("deno", "node")))
    await service.resolve(f"{base}/yt/a440.ogg", guild_id=1, requester_id=1)
    assert SEEN_RUNTIMES[2:] == [{"node": {"path": "/usr/bin/node"}}, {"deno": {}}]
    assert len(runtime_lookups) == 1


async def test_extractors_added_after_the_warm_up_are_used(media_server: MediaServer) -> None:
    resolver = Resolver(lambda: LOOPBACK_OK, timeout=20,
                        extractor_policy_getter=lambda: ExtractorPolicy(DEFAULT_EXTRACTORS))
    service = ResolveService(resolver)
    try:
        report = await service.warm_up()
        assert report is not None and report.done
        resolver.extra_extractors = (FakeYoutubeIE,)  # as a test or a plugin loader may do
        result = await service.resolve(f"{media_server.base_url}/yt/a440.webm", guild_id=1, requester_id=1)
        assert result.tracks[0].title == "a440.webm"  # FakeYoutubeIE's, not the generic 404
        assert resolver.instances_built == 2
    finally:
        await service.close()
        resolver.close()

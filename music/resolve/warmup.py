"""Paying yt-dlp's one-time costs ahead, in the background, without stalling the event loop.

A process's first lookup costs ~0.4 s more than the next ones: asking ~1,750 extractors whether
they take the link compiles their URL patterns (~310 ms; PeerTube's list of hosts alone is a
65,000-character pattern, ~60 ms), building the first yt-dlp instance (~26 ms), and in the first
extract the generic extractor's module (~50 ms of imports), the first request handler's SSL
context (~45 ms: the CA bundle) and date formats (~40 ms); then the direct link's ffmpeg probe
finds ffmpeg (imageio-ffmpeg's import and its `ffmpeg -version` check, ~40-100 ms). `warm_up_sync` does all of that in the
resolver's worker thread at cog load, so the first play doesn't: it also processes a made-up
direct-link result once (nothing is fetched), so the regexes of yt-dlp's processing are in
Python's cache again after the ~1,900 pattern compiles pushed them out of it. After a reload the patterns are
still compiled (they live on yt-dlp's classes, which a reload keeps); the rest is paid again.

It must not stall the loop: Python code in another thread keeps the GIL until the loop asks for
it and then for up to the switch interval (5 ms) more, so every wake-up of the loop (the voice
join's handshake, a command) would be ~5 ms late. The work is therefore cut in slices of at most
SLICE seconds with `time.sleep(0)` between them, and the whole warm-up runs with a switch interval
of SHORT_SWITCH_INTERVAL (process-wide, for the warm-up only, restored after). Both are needed:
`sleep(0)` only offers the GIL (the worker often takes it back before the waiting loop thread
runs), and a waiting thread reads the interval when it starts waiting, so a short interval around
a few steps only still left the loop ~5 ms late whenever it began waiting just before one (the
steps that can't be sliced, one huge pattern, ~2 ms patterns, imports, are not the only ones).
A switch needs a bytecode boundary, and one C call can hold the GIL for milliseconds: importing
yt-dlp's list of extractors unmarshals its 1 MB of bytecode in one call (~3-4 ms). Such calls
allocate, so the collector's young collections run inside them: while the warm-up runs, a no-op
collection callback (collection_breaks) gives them a bytecode boundary every ~700 allocations.

It changes nothing a lookup sees: it only builds what a lookup would build the same way (the
thread's instance, with the same options) and compiles what a lookup would compile. It stops as
soon as `should_stop()` says so (a lookup is waiting for the thread, the cog unloads): a lookup
then does whatever is left itself, as it would have without a warm-up. The JavaScript runtime is
not looked for here: only YouTube needs it (see PolicedYoutubeDL).

The garbage collector: in a bot process with Red, discord.py and yt-dlp loaded, a full
(generation-2) collection walks ~100,000 long-lived objects and holds the GIL 65-140 ms; the
warm-up's allocations trigger one, and the next falls in the first or second play (its lookup
was ~100 ms slower), or stalls the audio thread. With `freeze=True` (the cog's), what exists at
the first load goes into the collector's permanent generation before the warm-up, and what the
warm-up built after it (freeze_long_lived). During the warm-up, just before the collector would
start a full collection (it would walk all the warm-up built so far: ~5 ms, no pacing can cut a
collection), the pacer collects the young generations (<1 ms) and freezes what survived them
(freeze_before_a_full_collection): no full collection runs during the warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("red.music.resolve.warmup")

#: the longest the warm-up holds the GIL between two chances for the loop to take it
SLICE = 0.0005
#: the switch interval while the warm-up runs (Python's default is 0.005): the longest the loop
#: waits for the GIL once it asks for it (plus the time to the worker's next bytecode boundary);
#: a `sleep(0)` whose offer the loop misses restarts that wait. Measured side by side (1 ms
#: ticker, 6 fresh processes each, busy 2-core machine): 0.5 ms gave p99 1.86 ms late, 0.25 ms
#: 1.32 ms, 0.15 ms 1.06 ms with no lower max; the warm-up took no longer.
SHORT_SWITCH_INTERVAL = 0.00025
#: the pacer freezes when the collector has done this many fewer generation-1 collections than
#: its threshold for a full one (a slice makes at most one: a few thousand allocations)
FULL_COLLECTION_MARGIN = 1
#: the warm-up gives up after this long (a machine so busy that it can't finish in time)
TIME_LIMIT = 30.0
#: what the patterns are asked about, and the made-up result is for: a direct media link, the
#: commonest first play. Never fetched; an address every policy of the warm-up refuses at once
#: (a documentation network, no DNS) in case some yt-dlp ever tried.
WARM_URL = "https://192.0.2.1/music-cog-warm-up.webm"
#: a Last-Modified header: the generic extractor parses one for every direct link
HTTP_DATE = "Wed, 02 Dec 2026 10:00:00 GMT"

ShouldStop = Callable[[], bool]


def direct_link_result(url: str, timestamp: int | None) -> dict[str, Any]:
    """What yt-dlp's generic extractor returns for a direct media link (its shape in yt-dlp
    2025-2026), for processing once without fetching anything: format sorting and URL sanitizing
    compile their regexes then, into Python's cache, where the first real lookup finds them."""
    name = url.rsplit("/", 1)[-1]
    return {
        "id": name.rsplit(".", 1)[0],
        "title": name.rsplit(".", 1)[0],
        "timestamp": timestamp,
        "direct": True,
        "formats": [{"format_id": "webm", "url": url, "ext": "webm", "vcodec": None}],
        "subtitles": {},
        "webpage_url": url,
        "original_url": url,
        "webpage_url_basename": name,
        "webpage_url_domain": url.split("/")[2],
        "extractor": "generic",
        "extractor_key": "Generic",
    }


class WarmUpStopped(Exception):
    """should_stop() said so, or the time limit passed."""


@dataclass
class WarmUpReport:
    """How the warm-up went: `state` is "done", "stopped" (a lookup or the unload came first)
    or "failed" (logged; lookups then pay the costs themselves, as without a warm-up)."""

    state: str
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)  # step name -> seconds
    started_at: float = 0.0  # time.monotonic()
    freezes: int = 0  # how often it froze before a full collection (freeze_before_a_full_collection)

    @property
    def done(self) -> bool:
        return self.state == "done"


class Pacer:
    """Hands the GIL to the event loop between slices of work and checks should_stop().
    `freeze_as_it_goes`: keep full collections out of the warm-up (see the module docstring)."""

    def __init__(
        self,
        should_stop: ShouldStop,
        *,
        time_limit: float | None = None,
        freeze_as_it_goes: bool = False,
    ) -> None:
        self._should_stop = should_stop
        self._deadline = time.monotonic() + (TIME_LIMIT if time_limit is None else time_limit)
        self._since = time.perf_counter()
        self._freeze_as_it_goes = freeze_as_it_goes
        #: how many times freeze_before_a_full_collection froze
        self.freezes = 0

    def tick(self) -> None:
        """Call between small pieces of work; raises WarmUpStopped when it must stop."""
        if time.perf_counter() - self._since >= SLICE:
            self.pause()

    def pause(self) -> None:
        time.sleep(0)  # releases the GIL: the loop takes it if it is waiting
        if self._freeze_as_it_goes and freeze_before_a_full_collection():
            self.freezes += 1
            time.sleep(0)  # the young collection held the GIL: the loop's turn again
        self._since = time.perf_counter()
        if self._should_stop() or time.monotonic() > self._deadline:
            raise WarmUpStopped


def freeze_before_a_full_collection() -> bool:
    """When the collector is at most FULL_COLLECTION_MARGIN generation-1 collections away from
    a full one: collect the young generations (what a young collection would free is freed)
    and freeze the rest, which resets the collector's counts, so that no full collection walks
    what the warm-up built. Returns whether it did. Nothing if the collector is disabled."""
    if not gc.isenabled():
        return False
    if gc.get_count()[2] < gc.get_threshold()[2] - FULL_COLLECTION_MARGIN:
        return False
    gc.collect(1)
    gc.freeze()
    return True


_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved = 0.0


@contextlib.contextmanager
def short_switch_interval() -> Iterator[None]:
    """SHORT_SWITCH_INTERVAL while the block runs: the loop then waits at most ~0.25 ms for the
    GIL instead of 5 ms. Restored after (unless someone else changed it meanwhile: theirs
    stays); nested and concurrent uses share one change."""
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
            if _switch_saved > SHORT_SWITCH_INTERVAL:
                sys.setswitchinterval(SHORT_SWITCH_INTERVAL)
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0 and _switch_saved > SHORT_SWITCH_INTERVAL:
                if abs(sys.getswitchinterval() - SHORT_SWITCH_INTERVAL) < 1e-9:
                    sys.setswitchinterval(_switch_saved)


def _a_bytecode_boundary(phase: str, info: dict[str, int]) -> None:
    """A gc callback that does nothing: running it is the point (see collection_breaks)."""


@contextlib.contextmanager
def collection_breaks() -> Iterator[None]:
    """While the block runs, every garbage collection (the young ones come every ~700
    allocations, also inside a C call such as unmarshalling a module's bytecode) runs a
    Python callback: a bytecode boundary, where a thread waiting for the GIL gets it."""
    gc.callbacks.append(_a_bytecode_boundary)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # someone cleared the list meanwhile
            gc.callbacks.remove(_a_bytecode_boundary)


def compile_patterns(extractors: list[Any], pacer: Pacer) -> int:
    """Ask every extractor about WARM_URL, as naming a link's site does: each compiles its URL
    pattern once (cached on its class for the process). Returns how many were asked."""
    for ie in extractors:
        try:
            ie.suitable(WARM_URL)
        except Exception:  # a broken pattern: the lookup skips it the same way
            pass
        pacer.tick()
    return len(extractors)


def warm_up_sync(
    steps: list[tuple[str, Callable[[Pacer], Any]]],
    should_stop: ShouldStop,
    *,
    freeze_as_it_goes: bool = False,
) -> WarmUpReport:
    """Run each (name, step(pacer)) in order in this thread, pacing the GIL, with a short switch
    interval throughout; never raises. `freeze_as_it_goes`: see Pacer."""
    started_at, started = time.monotonic(), time.perf_counter()
    timings: dict[str, float] = {}
    pacer = Pacer(should_stop, freeze_as_it_goes=freeze_as_it_goes)
    state = "done"
    try:
        with short_switch_interval(), collection_breaks():
            pacer.pause()  # stopped before it began?
            for name, step in steps:
                step_started = time.perf_counter()
                step(pacer)
                timings[name] = time.perf_counter() - step_started
                pacer.pause()
    except WarmUpStopped:
        state = "stopped"
    except Exception:
        log.warning("Warming up yt-dlp failed; the first lookup will be slower", exc_info=True)
        state = "failed"
    report = WarmUpReport(state, time.perf_counter() - started, timings, started_at, pacer.freezes)
    log.debug(
        "yt-dlp warm-up %s in %.0f ms (%s; froze %d times)",
        state,
        report.seconds * 1000,
        ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()),
        pacer.freezes,
    )
    return report


def freeze_long_lived() -> bool:
    """gc.freeze() now, once per process: False (nothing done) if anything froze before, this
    cog's earlier copy included. Freezing costs nothing (a list splice) and changes no object;
    the price is that cyclic garbage existing at this moment is never freed: a few hundred
    objects at the first load, and after a `[p]reload` the cog's first copy of its modules
    (once: the reload doesn't freeze again, so later copies are collected as usual)."""
    if gc.get_freeze_count() > 0:
        return False
    gc.freeze()
    return True


async def warm_up_in(
    run_ahead: Callable[[Callable[[ShouldStop], None]], bool],
    warm_up: Callable[[ShouldStop, bool], WarmUpReport],
    *,
    freeze: bool = False,
) -> WarmUpReport | None:
    """Run `warm_up(should_stop, freeze_as_it_goes)` through `run_ahead` (JobScheduler.run_ahead:
    in the worker thread the next lookup gets, before it) and wait for its report; None if
    run_ahead had no worker. Cancelling this stops the warm-up without waiting for the thread. `freeze`: see
    freeze_long_lived (before the warm-up, then as it goes and after it if that one froze)."""
    froze = freeze and freeze_long_lived()
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[WarmUpReport] = loop.create_future()
    cancelled = threading.Event()

    def work(should_stop: ShouldStop) -> None:
        report = warm_up(lambda: cancelled.is_set() or should_stop(), froze)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(_set_result, finished, report)

    if not run_ahead(work):
        return None
    try:
        report = await finished
    except asyncio.CancelledError:
        cancelled.set()
        raise
    if froze:
        gc.freeze()  # the warm-up's own long-lived objects: the instance, the patterns
    return report


def _set_result(future: asyncio.Future[WarmUpReport], report: WarmUpReport) -> None:
    if not future.done():
        future.set_result(report)

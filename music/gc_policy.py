"""No full garbage collection while audio plays: the young survivors are frozen instead.

A full (generation-2) collection walks every object the collector tracks and has not frozen,
holding the GIL all along, so the audio sender (one Python thread for every guild) sends nothing
meanwhile: every guild's packets are late at once. The cog freezes what exists at load
(music.resolve.warmup.freeze_long_lived); what comes after is walked: each voice connection's
discord.py objects (its websocket, TLS, keep-alive and socket-reader threads), each playing
track's stream, buffers and reader thread, Red's and discord.py's caches. In the soak, ~480
objects per playing guild (threading's locks, conditions and events, deques, bound methods:
about half the voice connection's, half the tracks' in flight): a full collection took ~5 ms
at 40 guilds and up to 39 ms at 100, and one came every ~10 minutes (the young collections'
survivors add up to a quarter of the oldest generation). At 600 guilds it would be ~150 ms.

While anything plays, `FullCollectionGuard.check` (called four times a second) watches the
collector's counts: when the next generation-1 collection would become a full one, it collects
the young generations (a few ms at most: only what was made recently) and freezes what survived,
as the warm-up does (warmup.freeze_before_a_full_collection), which resets the counts: no full
collection runs. The price: a frozen object that later becomes cyclic garbage (a reference cycle
nothing else points to) is never freed by the collector (plain garbage still goes, by reference
counting). Two things bound that:

* when nothing has played for IDLE_SECONDS, a clean-up: unfreeze everything, one full collection
  (~65-140 ms with Red loaded, harmless with no audio playing; commands wait that long once),
  and freeze what is left, all of it live. So a bot that goes quiet now and then loses nothing;
* a bot that never goes quiet freezes until the objects frozen since the last clean-up reach
  FREEZE_BUDGET, then lets full collections run again as without this guard (over what is not
  frozen): at most FREEZE_BUDGET objects can be kept that the collector would have freed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("red.music.gc_policy")

#: how often the guard looks at the collector's counts. It must look between the generation-1
#: collection that makes a full one near and the one that would start it: ten young ones,
#: ~7,000 allocations, apart. In the soak's 100 guilds that is ~30 s; a big bot's gateway
#: traffic allocates far faster, and a look costs microseconds.
CHECK_INTERVAL = 0.25
#: nothing played for this long: the clean-up may run (a pause between two plays is shorter)
IDLE_SECONDS = 30.0
#: the most objects the guard's freezes may hold (the frozen count since just before its first
#: freeze after the last clean-up) before it stops freezing. The soak froze ~240 live objects
#: per guild (its voice connection's, mostly; they stay live): 300,000 leaves room for 600
#: guilds' and more. What it bounds is the worst case, all of it cyclic garbage, ~100-300 bytes
#: an object: 30-90 MB; the soak's freezes kept 10 garbage objects in 3 freezes.
FREEZE_BUDGET = 300_000


def full_collection_near() -> bool:
    """The next generation-1 collection may be a full one: as many generation-1 collections
    since the last full one (or freeze) as the collector's third threshold allows, minus one,
    and at least one (with a threshold of 1, not every check)."""
    return gc.get_count()[2] >= max(1, gc.get_threshold()[2] - 1)


class FullCollectionGuard:
    """`playing()`: whether any audio is on the clock now (the sender's playbacks)."""

    def __init__(self, playing: Callable[[], bool], *, idle_seconds: float = IDLE_SECONDS,
                 budget: int = FREEZE_BUDGET) -> None:
        self._playing = playing
        self._idle_seconds = idle_seconds
        self._budget = budget
        self._last_played = time.monotonic()
        # whether the load froze (the cog's set-up): remembered once seen, because asking costs a
        # walk of every frozen object (gc.get_freeze_count() counts a linked list: ~5 ms for the
        # ~70,000 a Red process freezes at load, 12 ms for 200,000, holding the GIL; asked four
        # times a second it made the soak's sender late by that much, again and again)
        self._load_froze = False
        # objects this guard froze since the last clean-up (counted as it freezes them)
        self.frozen_by_guard = 0
        self.freezes = 0  # since the process (or this guard) began
        self.cleanups = 0
        # froze since the last clean-up. True at first: after a `[p]reload` the cog's earlier
        # copy may have frozen objects that are cyclic garbage now, and only a clean-up frees
        # them (one full collection at the first quiet moment, also after a fresh start)
        self.dirty = True
        self.over_budget = False

    def check(self) -> str | None:
        """One look: "froze", "cleaned", "over budget" (the first time only) or None."""
        if not gc.isenabled() or not self._set_up():
            return None  # the collector is off, or nothing froze at load: not the cog's set-up
        now = time.monotonic()
        if self._playing():
            self._last_played = now
            return self._freeze_if_due()
        if self.dirty and now - self._last_played >= self._idle_seconds:
            self._clean_up()
            return "cleaned"
        return None

    def _set_up(self) -> bool:
        if not self._load_froze:
            self._load_froze = gc.get_freeze_count() > 0  # cheap while nothing is frozen
        return self._load_froze

    def _freeze_if_due(self) -> str | None:
        if self.over_budget:
            return None
        if self.frozen_by_guard >= self._budget:
            self.over_budget = True
            log.info("Full garbage collections run again while audio plays: %d objects frozen "
                     "since the last quiet moment", self._budget)
            return "over budget"
        if not full_collection_near():
            return None
        gc.collect(1)  # the young generations: what they hold that is garbage is freed
        # what survived is all in the oldest generation now, and all of it is about to be
        # frozen: count it there (a walk of those objects only, not of the frozen ones)
        self.frozen_by_guard += len(gc.get_objects(generation=2))
        gc.freeze()  # the rest, frozen; this also resets the counts
        self.freezes += 1
        self.dirty = True
        return "froze"

    def _clean_up(self) -> None:
        """Nothing plays: what the freezes kept that is garbage now is freed, the rest frozen."""
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self.frozen_by_guard = 0
        self.cleanups += 1
        self.dirty = self.over_budget = False
        log.debug("Garbage clean-up while nothing plays: %d objects freed in %.0f ms",
                  freed, 1000 * (time.perf_counter() - started))

    async def run(self, stopped: asyncio.Event) -> None:
        """Check every CHECK_INTERVAL until `stopped` is set."""
        while not stopped.is_set():
            self.check()
            try:
                await asyncio.wait_for(stopped.wait(), CHECK_INTERVAL)
            except asyncio.TimeoutError:
                pass

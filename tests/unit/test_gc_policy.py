"""music.gc_policy: no full garbage collection while audio plays, freed again once it is quiet.

The collector is process-wide (and pytest's own process may have frozen objects), so each case
runs in a fresh interpreter and prints its figures as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

COMMON = textwrap.dedent('''
    import gc, json, weakref
    from music.gc_policy import FullCollectionGuard

    class Node:  # a cycle of these is garbage only the collector frees
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return a

    gc.collect()
    gc.freeze()  # the cog's load (music.resolve.warmup.freeze_long_lived)
    full = []  # the full collections from here on
    gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2
                        and full.append(1))
    playing = [True]
''')


def run_case(body: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", COMMON + textwrap.dedent(body)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_while_audio_plays_no_full_collection_runs_and_what_lives_is_not_walked() -> None:
    figures = run_case('''
        guard = FullCollectionGuard(lambda: playing[0], budget=10**7)  # this test's 400,000 fit
        kept = []  # long-lived state made after the load: voice clients, streams...
        for step in range(400):
            kept.append([Node() for i in range(1000)])  # 1,001 tracked objects a step
            guard.check()  # the cog checks about once a second; here after every step
        walked = len(gc.get_objects())
        print(json.dumps({"full": len(full), "freezes": guard.freezes, "walked": walked,
                          "made": 400 * 1001}))
    ''')
    # 400,000 objects kept: without the guard the collector would have run full collections
    assert figures["freezes"] >= 1, figures
    assert figures["full"] == 0, figures
    # what a full collection would walk now: only what came since the last freeze
    assert figures["walked"] < 50_000, figures


def test_without_the_guard_full_collections_walk_everything_made_after_the_load() -> None:
    # the control: the same allocations, nobody checking
    figures = run_case('''
        kept = [[Node() for i in range(1000)] for step in range(400)]
        print(json.dumps({"full": len(full), "walked": len(gc.get_objects())}))
    ''')
    assert figures["full"] >= 1 and figures["walked"] > 350_000, figures


def test_cyclic_garbage_the_freezes_kept_is_freed_once_nothing_plays() -> None:
    figures = run_case('''
        guard = FullCollectionGuard(lambda: playing[0], idle_seconds=0.0)
        doomed = cycle()
        alive = weakref.ref(doomed)
        while guard.check() != "froze":  # allocate until the guard freezes (the cycle too)
            junk = [[] for _ in range(1000)]
        del doomed
        gc.collect()
        kept_while_playing = alive() is not None
        playing[0] = False
        outcome = guard.check()
        print(json.dumps({"kept_while_playing": kept_while_playing, "outcome": outcome,
                          "freed": alive() is None, "frozen": gc.get_freeze_count(),
                          "dirty": guard.dirty, "again": guard.check()}))
    ''')
    # the price, while playing: a frozen cycle is out of the collector's reach
    assert figures["kept_while_playing"] is True
    # quiet: one clean-up frees it and freezes the rest again (the load's freeze is kept)
    assert figures["outcome"] == "cleaned" and figures["freed"] is True, figures
    assert figures["frozen"] > 1_000 and figures["dirty"] is False, figures
    assert figures["again"] is None  # nothing frozen since: no second clean-up


def test_a_new_guard_frees_what_the_previous_copy_froze_at_its_first_quiet_moment() -> None:
    # a `[p]reload`: the old copy's guard froze a cycle that dies with that copy; the new
    # copy's guard has frozen nothing itself, and must still free it once quiet
    figures = run_case('''
        old_guard = FullCollectionGuard(lambda: playing[0])
        doomed = cycle()
        alive = weakref.ref(doomed)
        while old_guard.check() != "froze":
            junk = [[] for _ in range(1000)]
        del doomed, old_guard  # the unload
        playing[0] = False
        new_guard = FullCollectionGuard(lambda: playing[0], idle_seconds=0.0)
        still_there = alive() is not None
        outcome = new_guard.check()
        print(json.dumps({"still_there": still_there, "outcome": outcome,
                          "freed": alive() is None, "again": new_guard.check()}))
    ''')
    assert figures["still_there"] is True  # frozen: no collection had freed it
    assert figures["outcome"] == "cleaned" and figures["freed"] is True, figures
    assert figures["again"] is None  # one clean-up, not one at every look


def test_a_short_pause_between_plays_is_not_quiet_enough_for_the_clean_up() -> None:
    figures = run_case('''
        guard = FullCollectionGuard(lambda: playing[0])  # the default idle time
        while guard.check() != "froze":
            junk = [[] for _ in range(1000)]
        playing[0] = False
        print(json.dumps({"outcome": guard.check(), "dirty": guard.dirty}))
    ''')
    assert figures == {"outcome": None, "dirty": True}


def test_past_its_budget_the_guard_lets_full_collections_run_again() -> None:
    figures = run_case('''
        guard = FullCollectionGuard(lambda: playing[0], budget=100_000)
        kept, outcomes = [], []
        for step in range(400):
            kept.append([Node() for i in range(1000)])
            outcomes.append(guard.check())
        print(json.dumps({"full": len(full), "over": guard.over_budget,
                          "said": outcomes.count("over budget")}))
    ''')
    # what the freezes may keep from the collector is bounded: past the budget, full
    # collections run as without the guard (said once, not every check)
    assert figures["over"] is True and figures["said"] == 1 and figures["full"] >= 1, figures


def test_nothing_happens_unless_the_load_froze() -> None:
    figures = run_case('''
        gc.unfreeze()  # not the cog's set-up (or the collector's freeze was undone)
        guard = FullCollectionGuard(lambda: playing[0])
        outcomes = set()
        kept = []
        for step in range(200):
            kept.append([Node() for i in range(1000)])
            outcomes.add(guard.check())
        print(json.dumps({"outcomes": sorted(map(str, outcomes)), "frozen": gc.get_freeze_count()}))
    ''')
    assert figures == {"outcomes": ["None"], "frozen": 0}


def test_the_budget_counts_only_the_guards_own_freezes() -> None:
    # the cog starts the guard before its warm-up freezes what the load made (Red, yt-dlp):
    # that freeze is not the guard's and must not use up its budget
    figures = run_case('''
        guard = FullCollectionGuard(lambda: playing[0], budget=200_000)
        loaded = [[Node() for i in range(1000)] for step in range(150)]
        gc.collect()
        gc.freeze()  # 150,000 objects frozen after the guard started
        kept, outcomes = [], []
        for step in range(150):  # 150,000 more: with the load's, over the budget
            kept.append([Node() for i in range(1000)])
            outcomes.append(guard.check())
        print(json.dumps({"over": guard.over_budget, "froze": outcomes.count("froze")}))
    ''')
    assert figures["over"] is False and figures["froze"] >= 1, figures


def test_a_look_does_not_count_the_frozen_objects() -> None:
    # gc.get_freeze_count() walks every frozen object with the GIL held (~5 ms for what a Red
    # process freezes at load); asked at every look, four times a second, it delayed the soak's
    # sender again and again. The guard asks once, and counts what it freezes as it freezes it.
    figures = run_case('''
        calls = [0]
        count_frozen = gc.get_freeze_count

        def counted() -> int:
            calls[0] += 1
            return count_frozen()

        gc.get_freeze_count = counted
        guard = FullCollectionGuard(lambda: playing[0], budget=10**7)
        kept = []
        for step in range(300):
            kept.append([Node() for i in range(1000)])
            guard.check()
        gc.get_freeze_count = count_frozen
        print(json.dumps({"calls": calls[0], "freezes": guard.freezes,
                          "counted": guard.frozen_by_guard, "made": 300 * 1001,
                          "not_frozen_yet": len(gc.get_objects())}))
    ''')
    assert figures["freezes"] >= 2, figures  # it froze, more than once
    assert figures["calls"] <= 1, figures
    # what it froze plus what it has not frozen yet is what was made since the load (the
    # Nodes, their lists), give or take the interpreter's own few
    total = figures["counted"] + figures["not_frozen_yet"]
    assert figures["made"] <= total <= figures["made"] + 2_000, figures

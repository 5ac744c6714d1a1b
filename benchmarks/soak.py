"""Row 10, the soak: N guilds playing ours in one bot process for many minutes, a track change
every 10 s per guild; is anything growing (memory, threads, descriptors, CPU) and do packets
come late?

    python -m benchmarks.run --only soak [--quick]
    MUSIC_SOAK_GUILDS=100 MUSIC_SOAK_MINUTES=30 python -m benchmarks.run --only soak
    python -m benchmarks.soak --guilds 100 --minutes 30     # the same, on its own

The bot is ``benchmarks/soak_worker.py`` in a fresh process; every 10 s it reports its RSS, PSS,
threads, open descriptors, child processes, CPU and the playbacks' counters. Each minute the
stand-in process summarises that minute's packets (``benchmarks/soak_receiver.py``) and drops
them, so the receiver does not grow either. Defaults: 100 guilds for 30 minutes; ``--quick``:
20 guilds for 2 minutes, with tracemalloc on in the bot (where the Python heap grew between the
end of minute 1 and the end, by line); MUSIC_SOAK_TRACEMALLOC=1/0 forces it on or off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import numpy as np

from .botside import new_session_id
from .common import REPO_ROOT, fmt, generate_tone, print_table
from .load import FIRST_LOAD_GUILD_ID

TRACK_SECONDS = 10.0
SAMPLE_SECONDS = 10.0
TRACK_TONES = (("soak_a.webm", 440.0), ("soak_b.webm", 660.0))
RSS_GROWTH_LIMIT_MB = 10.0
#: descriptors the floor may rise by without calling it growth (sockets of connections that
#: happen to be open at the sample). Threads get none: the one pool that grows on demand, the
#: loop's default executor, is counted apart and checked against its own max_workers.
COUNT_TOLERANCE = 2
#: guild ids apart from the load workers' (benchmarks.load counts up from FIRST_LOAD_GUILD_ID)
FIRST_SOAK_GUILD_ID = FIRST_LOAD_GUILD_ID + 5_000_000
MB = 2**20


def census_notes(census: dict[str, Any]) -> list[str]:
    """The bot's gc census (soak_worker.census) at minute 1 and at the end, as report lines."""
    def listed(pairs: list[list[Any]], sign: str = "") -> str:
        return ", ".join(f"{name} {sign}{count:,}" for name, count in pairs) or "none"

    lines = []
    for moment, label in (("minute_1", "minute 1"), ("end", "the end")):
        c = census[moment]
        lines.append(
            f"gc census at {label}: a full collection walks {c['walked']:,} objects "
            f"({c['frozen']:,} frozen, not walked) and took {c['collect_ms']:.1f} ms; by module: "
            f"{listed(c['modules'])}; by type: {listed(c['types'])}")
    lines.append(f"gc census, grew from minute 1 to the end: by module: "
                 f"{listed(census['modules_grew'], '+')}; by type: {listed(census['types_grew'], '+')}")
    first, last = census["minute_1"]["memory"], census["end"]["memory"]
    lines.append("anonymous memory at minute 1 -> the end (MB; /proc/self/smaps): " + ", ".join(
        f"{name.replace('_', ' ')} {first[name] / MB:.2f} -> {last[name] / MB:.2f} "
        f"({(last[name] - first[name]) / MB:+.2f})"
        for name in ("rss_anon", "stacks", "brk_heap", "other_anon", "pymalloc_arenas"))
        + f"; thread stacks mapped {first['stack_count']} -> {last['stack_count']} (glibc keeps "
        "some of ended threads'); Python's object arenas are part of 'other anon'"
        + (f"; rss anon after malloc_trim(0) at the end: {last['rss_anon_trimmed'] / MB:.2f} "
           f"({(last['rss_anon_trimmed'] - first['rss_anon']) / MB:+.2f} from minute 1; by then "
           "the guilds had stopped opening tracks, so fewer streams were live: not like for like)"
           if last.get("rss_anon_trimmed") else ""))
    if census.get("frozen_garbage"):
        kept = census["frozen_garbage"]
        lines.append(f"gc census, cyclic garbage among the frozen objects at the end (kept by the "
                     f"freezes, freed only by unfreezing): {kept['objects']:,} objects; most: "
                     f"{listed(kept['most'])}")
    return lines


def settings(quick: bool) -> dict[str, Any]:
    env = os.environ.get
    tracemalloc = env("MUSIC_SOAK_TRACEMALLOC")
    return {
        "guilds": int(env("MUSIC_SOAK_GUILDS") or (20 if quick else 100)),
        "minutes": float(env("MUSIC_SOAK_MINUTES") or (2 if quick else 30)),
        "tracemalloc": quick if tracemalloc is None else tracemalloc == "1",
        # the cog's music.gc_policy.FullCollectionGuard; MUSIC_SOAK_GC_GUARD=0 runs without it
        "gc_guard": env("MUSIC_SOAK_GC_GUARD", "1") != "0",
        # the collector's third threshold in the bot (Python's default 10): 1 brings the full
        # collections of a 30-minute run (one per ~10 minutes at 100 guilds) into a short one
        "gc_threshold2": int(env("MUSIC_SOAK_GC_THRESHOLD2") or 0) or None,
    }


async def run(bench: Any, quick: bool) -> None:
    chosen = settings(quick)
    urls = []
    for name, hz in TRACK_TONES:
        await asyncio.to_thread(generate_tone, bench.ffmpeg, bench.media_dir / name, hz, TRACK_SECONDS)
        urls.append(bench.url(name))
    ids = [FIRST_SOAK_GUILD_ID + 10 * i for i in range(chosen["guilds"])]
    sessions = []
    for guild_id in ids:
        session_id = new_session_id()
        token = await bench.standin.call("open_session", guild_id=guild_id, user_id=3003,
                                         session_id=session_id, timing_only=True)
        sessions.append({"guild_id": guild_id, "session_id": session_id, "token": token})
    config = {"urls": urls, "ffmpeg": bench.ffmpeg, "endpoint": bench.standin.endpoint,
              "ca_file": bench.standin.ca_file, "guilds": sessions,
              "seconds": chosen["minutes"] * 60, "track_seconds": TRACK_SECONDS,
              "sample_seconds": SAMPLE_SECONDS, "tracemalloc": chosen["tracemalloc"],
              "gc_guard": chosen["gc_guard"], "gc_threshold2": chosen["gc_threshold2"]}
    began = time.monotonic()
    try:
        samples, windows, done = await drive_worker(bench, config, ids)
    finally:
        for guild_id in ids:
            await bench.standin.call("close_session", guild_id=guild_id)
    report(chosen, samples, windows, done, time.monotonic() - began)


async def drive_worker(bench: Any, config: dict[str, Any], ids: list[int]
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Run the worker; summarise (and drop) the receiver's packets at every minute's end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.soak_worker", cwd=str(REPO_ROOT),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=16 * MB)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stderr_task = asyncio.create_task(proc.stderr.read())
    proc.stdin.write(json.dumps(config).encode())
    await proc.stdin.drain()
    proc.stdin.close()
    samples: list[dict[str, Any]] = []
    windows: list[dict[str, Any]] = []
    done: dict[str, Any] | None = None
    window_start: float | None = None
    per_window = round(60 / SAMPLE_SECONDS)
    # connecting N voice clients comes before the first line
    timeout = 120 + len(ids)
    try:
        while done is None:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
            if not line:
                break
            timeout = SAMPLE_SECONDS + 90
            message = json.loads(line)
            if "started" in message:
                window_start = message["started"]["t"]
            elif "sample" in message:
                samples.append(message["sample"])
                if len(samples) % per_window == 0 and window_start is not None:
                    until = samples[-1]["t"]
                    windows.append(await bench.standin.call(
                        "soak_window", timeout=120, guild_ids=ids, since=window_start, until=until))
                    window_start = until
                    progress(samples[-1], windows[-1])
            elif "done" in message:
                done = message["done"]
    except asyncio.TimeoutError:
        proc.kill()
        raise RuntimeError("the soak worker stopped reporting") from None
    finally:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
    if window_start is not None and samples and samples[-1]["t"] > window_start:
        windows.append(await bench.standin.call("soak_window", timeout=120, guild_ids=ids,
                                                since=window_start, until=samples[-1]["t"]))
    if done is None or proc.returncode != 0:
        tail = (await stderr_task).decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"soak worker failed ({proc.returncode}): {' | '.join(tail)}")
    stderr_task.cancel()
    return samples, windows, done


def progress(last: dict[str, Any], window: dict[str, Any]) -> None:
    """One line per minute on stderr, so a 30-minute run shows it is alive."""
    print(f"[soak] {last['elapsed'] / 60:.1f} min: RSS {last['rss'] / MB:.1f} MB, "
          f"{last['threads']} threads, {last['fds']} fds, p99 {fmt(window['p99_ms'], 2)} ms, "
          f"{window['late_packets']} late", file=sys.stderr, flush=True)


# -- the report ---------------------------------------------------------------------------------


def counter_delta(before: dict[str, Any] | None, after: dict[str, Any], key: str) -> int:
    return after.get(key, 0) - (before.get(key, 0) if before else 0)


def period_rows(samples: list[dict[str, Any]], windows: list[dict[str, Any]], guilds: int,
                period_minutes: int) -> list[list[str]]:
    per_window = round(60 / SAMPLE_SECONDS)
    rows = []
    for first_window in range(0, len(windows), period_minutes):
        chosen = windows[first_window : first_window + period_minutes]
        begin = first_window * per_window
        end = min(len(samples), (first_window + len(chosen)) * per_window)
        before = samples[begin - 1] if begin > 0 else None
        these = samples[begin:end]
        last = these[-1]
        seconds = last["elapsed"] - (before["elapsed"] if before else 0.0)
        cpu = last["cpu"] - (before["cpu"] if before else these[0]["cpu"])
        starts = counter_delta(before, last, "track_starts")
        changes = starts - (guilds if before is None else 0)  # each guild's first track
        not_gapless = changes - counter_delta(before, last, "gapless")
        silent = counter_delta(before, last, "silence") - counter_delta(before, last, "underruns")
        errors = sum(counter_delta(before, last, k)
                     for k in ("track_errors", "exhausted", "open_failures", "sender_drops"))
        received = sum(w["packets"] for w in chosen)
        expected = sum(w["expected"] for w in chosen)
        moments = sum(w["late_moments"] for w in chosen)
        rows.append([
            f"{minutes(before['elapsed'] if before else 0.0)}-{minutes(last['elapsed'])}",
            fmt(last["rss"] / MB), fmt(last["pss"] / MB),
            fmt(last["traced"] / MB) if last.get("traced") is not None else "-",
            f"{last['threads']} ({max(s['threads'] for s in these)})",
            f"{last['fds']} ({max(s['fds'] for s in these)})",
            str(max(s["children"] for s in these)),
            fmt(cpu / seconds, 2), fmt(1000 * cpu / (guilds * seconds), 2),
            str(changes), str(not_gapless), str(max(0, silent)),
            str(counter_delta(before, last, "underruns")), str(errors),
            f"{received}/{expected}",
            f"{sum(w['sequence_gaps'] for w in chosen)} ({receiver_drops(chosen)})",
            fmt(max(w["p99_ms"] or 0 for w in chosen), 2),
            fmt(max(w["worst_guild_p99_ms"] or 0 for w in chosen), 2),
            fmt(max(w["max_ms"] or 0 for w in chosen)),
            str(sum(w["late_packets"] for w in chosen)),
            f"{fmt(max(w['schedule_p99_ms'] or 0 for w in chosen), 2)} / "
            f"{fmt(max(w['schedule_max_ms'] or 0 for w in chosen))}",
            f"{sum(w['schedule_late_40'] for w in chosen)} / "
            f"{sum(w['schedule_early_10'] for w in chosen)}",
            f"{moments} ({max(w['most_guilds_hit'] for w in chosen)})",
            str(sum(w["catch_up_intervals"] for w in chosen)),
            str(counter_delta(before, last, "sender_skipped_slots")),
        ])
    return rows


def receiver_drops(windows: list[dict[str, Any]]) -> str:
    """Datagrams the stand-in's kernel dropped (its socket's receive buffer was full), over the
    windows: lost at the receiver, not by the bot; "-" when not counted."""
    counts = [w.get("receiver_drops") for w in windows]
    return "-" if any(c is None for c in counts) else str(sum(counts))


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}".removesuffix(".0")


HEADER = ["minutes", "RSS MB", "PSS MB", "traced MB", "threads (max)", "fds (max)",
          "child processes (max)", "bot CPU cores", "CPU ms per stream-second", "track changes",
          "changes not gapless", "silence frames at changes", "underrun frames", "errors",
          "packets recv/expected", "RTP seq gaps (receiver drops)", "interval p99 ms", "worst guild p99 ms",
          "max interval ms", "packets > 40 ms late", "own schedule p99 / max ms",
          "own schedule > 40 ms late / > 10 ms early", "late moments (most guilds hit)",
          "catch-up intervals < 10 ms", "sender skipped slots"]


def late_moment_notes(windows: list[dict[str, Any]], guilds: int) -> list[str]:
    moments = [m for w in windows for m in w["moments"]]
    if not moments:
        return []
    # windows begin at a sample: a moment just after a multiple of 10 s would be the sampling's
    near_sample = sum(1 for offset, _ in moments if offset % SAMPLE_SECONDS < 0.5)
    everyone = sum(1 for _, hit in moments if hit >= guilds)
    return [f"late moments hitting every guild at once (the sending thread or the machine "
            f"stalled): {everyone} of {len(moments)}; the most guilds one moment hit: "
            f"{max(hit for _, hit in moments)}; moments within 0.5 s after one of the bot's "
            f"samples: {near_sample} (by chance about {len(moments) * 0.5 / SAMPLE_SECONDS:.1f})"]


def per_thousand(growth_mb: float, changes: int) -> str:
    return fmt(1000 * growth_mb / changes, 2) if changes > 0 else "-"


def thread_kind_changes(samples: list[dict[str, Any]]) -> str:
    after = [s for s in samples if s["elapsed"] >= 60 - SAMPLE_SECONDS / 2] or samples
    first, last = after[0]["thread_kinds"], after[-1]["thread_kinds"]
    kinds = sorted(first.keys() | last.keys(), key=lambda k: -last.get(k, 0))
    return ", ".join(f"{kind or '?'} {first.get(kind, 0)}" +
                     (f" -> {last.get(kind, 0)}" if first.get(kind, 0) != last.get(kind, 0) else "")
                     for kind in kinds)


def growth_after_first_minute(samples: list[dict[str, Any]], key: str) -> dict[str, float]:
    """first (the end of minute 1), last, max after it, and the growth between the halves of
    what follows: the least value over the second half minus the least over the first half
    (a thread or descriptor that stays raises the floor; one in use during a change does not)."""
    after = [s for s in samples if s["elapsed"] >= 60 - SAMPLE_SECONDS / 2]
    if len(after) < 2:
        after = samples[-2:]
    half = len(after) // 2
    values = [s[key] for s in after]
    return {"first": values[0], "last": values[-1], "max": max(values),
            "halves": min(values[half:]) - min(values[:half] or values[:1])}


def memory_split_note(after: list[dict[str, Any]]) -> str:
    """Where RSS growth after minute 1 sits: the C heap in use, the C heap kept free in
    malloc's arenas (fragmentation: nothing holds it), and the Python heap when traced."""
    first, last = after[0], after[-1]

    def change(key: str) -> str:
        if first.get(key) is None or last.get(key) is None:
            return f"{key.replace('_', ' ')}: not measured"
        return (f"{key.replace('_', ' ')} {first[key] / MB:.1f} -> {last[key] / MB:.1f} MB "
                f"({(last[key] - first[key]) / MB:+.2f})")

    return ("memory from minute 1 to the end: RSS "
            f"{first['rss'] / MB:.1f} -> {last['rss'] / MB:.1f} MB ({(last['rss'] - first['rss']) / MB:+.2f}); "
            + "; ".join(change(k) for k in ("rss_anon", "rss_file", "malloc_in_use", "malloc_free",
                                           "traced"))
            + " (RSS anon / file from /proc/self/status; the C heap from glibc's mallinfo2, where 'free' is "
              "kept in its arenas, held by nothing)")


def thread_verdict(samples: list[dict[str, Any]], threads: dict[str, float]) -> str:
    """No thread growth: the threads outside the loop's default executor keep their floor (the
    least count over the second half after minute 1 is not above the first half's), and the
    executor, which starts workers on demand and keeps them, stays within its max_workers."""
    outside = growth_after_first_minute(
        [{**s, "outside": s["threads"] - s.get("executor_threads", 0)} for s in samples], "outside")
    workers = [s.get("executor_threads", 0) for s in samples]
    limit = samples[-1].get("executor_max_workers") or 0
    met = outside["halves"] <= 0 and max(workers) <= limit
    return (f"threads: {'met' if met else 'MISSED'} (no growth): {threads['first']} at minute 1, "
            f"{threads['last']} at the end, max {threads['max']}; outside the loop's default "
            f"executor {outside['first']} -> {outside['last']}, floor growth "
            f"{outside['halves']:+d} (none allowed); the executor's workers (started on demand, "
            f"kept) {workers[0]} at the start, {max(workers)} at most, its max_workers {limit}")


def report(chosen: dict[str, Any], samples: list[dict[str, Any]], windows: list[dict[str, Any]],
           done: dict[str, Any], took: float) -> None:
    guilds = chosen["guilds"]
    last = samples[-1]
    period = 1 if chosen["minutes"] <= 10 else 5
    rows = period_rows(samples, windows, guilds, period)
    rss = growth_after_first_minute(samples, "rss")
    rss_growth = (rss["last"] - rss["first"]) / MB
    after = [s for s in samples if s["elapsed"] >= 60 - SAMPLE_SECONDS / 2]
    slope = (float(np.polyfit([s["elapsed"] / 60 for s in after], [s["rss"] / MB for s in after], 1)[0])
             if len(after) >= 3 else float("nan"))
    changes_after = last["track_starts"] - (after[0]["track_starts"] if after else 0)
    threads = growth_after_first_minute(samples, "threads")
    fds = growth_after_first_minute(samples, "fds")
    changes = last.get("track_starts", 0) - guilds
    not_gapless = changes - last.get("gapless", 0)
    moments = sum(w["late_moments"] for w in windows)
    catch_ups = sum(w["catch_up_intervals"] for w in windows)
    cpu = (after[-1]["cpu"] - after[0]["cpu"]) / (after[-1]["elapsed"] - after[0]["elapsed"]) \
        if len(after) >= 2 else float("nan")
    notes = [
        f"targets: RSS growth after minute 1 <= {RSS_GROWTH_LIMIT_MB:.0f} MB: "
        f"{'met' if rss_growth <= RSS_GROWTH_LIMIT_MB else 'MISSED'} ({rss_growth:+.1f} MB: "
        f"{rss['first'] / MB:.1f} at minute 1, {rss['last'] / MB:.1f} at the end, max "
        f"{rss['max'] / MB:.1f}; trend {slope:+.2f} MB per minute, "
        f"{per_thousand(rss_growth, changes_after)} MB per 1,000 track changes"
        + ("; tracemalloc was on: its own tables are in RSS" if chosen["tracemalloc"] else "")
        + ")",
        thread_verdict(samples, threads)
        + f"; file descriptors: {'met' if fds['halves'] <= COUNT_TOLERANCE else 'MISSED'}: "
        f"{fds['first']}, {fds['last']}, max {fds['max']} (growth = the least count over the "
        f"second half of the run after minute 1 minus the least over its first half: "
        f"{fds['halves']:+d} descriptors, up to {COUNT_TOLERANCE} allowed); Python threads by "
        f"kind at minute 1 -> the end: {thread_kind_changes(samples)}",
        f"late-packet bursts: {'met' if moments == 0 and catch_ups == 0 else 'MISSED'}: "
        f"{moments} late moment(s), {catch_ups} catch-up interval(s) "
        f"({sum(w['late_packets'] for w in windows)} packets > 40 ms late in all)",
        f"track changes: {changes}, {not_gapless} not gapless (the next track's first packet "
        f"not in the tick the last one ended), "
        f"{max(0, last.get('silence', 0) - last.get('underruns', 0))} silence frames between "
        f"tracks, {last.get('underruns', 0)} underrun frames mid-track",
        f"bot CPU after minute 1: {fmt(cpu, 3)} cores, "
        f"{fmt(1000 * cpu / guilds, 2)} ms per stream-second; ffmpeg children at most "
        f"{max(s['children'] for s in samples)} (passthrough needs none)",
    ]
    notes += late_moment_notes(windows, guilds)
    notes.append(memory_split_note(after or samples))
    gaps, dropped_here = sum(w["sequence_gaps"] for w in windows), receiver_drops(windows)
    notes.append(
        f"RTP sequence gaps: {gaps}; datagrams the receiver's kernel dropped (the stand-in's socket "
        f"buffer was full, SO_RXQ_OVFL): {dropped_here}"
        + (f"; so {max(0, gaps - int(dropped_here))} gap(s) left the bot's side (not sent)"
           if dropped_here != "-" else ""))
    gc_max = [max(s["gc_max_ms"][g] for s in samples) for g in range(3)]
    notes.append(f"garbage collection in the bot: {', '.join(map(str, last['gc_counts']))} passes "
                 f"(generations 0, 1, 2), the longest {', '.join(fmt(m) for m in gc_max)} ms; "
                 f"{done.get('gc_frozen', 0):,} objects frozen at set-up as the cog's load does "
                 "(gc.freeze(), music/resolve/warmup.py freeze_long_lived); "
                 + (f"the cog's full-collection guard (music/gc_policy.py) froze "
                    f"{done['gc_guard']['freezes']} time(s) instead of a full collection "
                    f"({done['gc_guard'].get('frozen_by_guard', 0):,} objects), "
                    f"{done['gc_guard']['cleanups']} clean-up(s), over its budget: "
                    f"{'yes' if done['gc_guard']['over_budget'] else 'no'}"
                    if done.get("gc_guard") else "without the cog's full-collection guard "
                    "(MUSIC_SOAK_GC_GUARD=0)")
                 + (f"; the collector's thresholds set to {done['gc_thresholds']} "
                    "(MUSIC_SOAK_GC_THRESHOLD2: more full collections than Python's default)"
                    if chosen["gc_threshold2"] else ""))
    if done.get("errors") or done.get("task_failures"):
        notes.append(f"errors: {'; '.join(done['errors'] + done['task_failures'])}")
    if done.get("cyclic_garbage") is not None:
        cycles = done["cyclic_garbage"]
        notes.append(
            f"left for the garbage collector (only reference cycles kept them) from minute 1 to "
            f"the end: {cycles['objects']} objects, {per_thousand(cycles['objects'], changes_after)} "
            f"per 1,000 track changes; most: "
            + (", ".join(f"{kind} {count}" for kind, count in cycles["most"]) or "none"))
    if done.get("object_growth"):
        notes.append("live objects that grew most in number from minute 1 to the end (types the "
                     "collector tracks): " + ", ".join(f"{kind} +{count}" for kind, count
                                                       in done["object_growth"]))
    if done.get("gc_census"):
        notes += census_notes(done["gc_census"])
    if done.get("tracemalloc_top_growth"):
        notes.append("tracemalloc, where the Python heap grew from minute 1 to the end (by line): "
                     + "; ".join(done["tracemalloc_top_growth"]))
    notes.append(
        f"{guilds} guilds, {chosen['minutes']:g} minutes, a {TRACK_SECONDS:.0f}-s WebM/Opus track "
        "per change, copied in process through the network guard, the next opened as one starts; "
        f"guilds start {TRACK_SECONDS / guilds * 1000:.0f} ms apart so their changes are spread "
        "(minute 0-1 has fewer packets than expected: the guilds were still starting); "
        f"samples every {SAMPLE_SECONDS:.0f} s (the row's last sample; '(max)' over the row); "
        f"a late packet came > 40 ms after its guild's previous one, a late moment gathers those "
        f"within 50 ms; 'own schedule': each packet against its guild's 20 ms schedule, "
        f"re-anchored after a dropped frame (standin/schedule.py); the soak took {took:.0f} s")
    print_table(f"10. Soak: {guilds} guilds, a track change every {TRACK_SECONDS:.0f} s, "
                f"{chosen['minutes']:g} minutes", HEADER, rows, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description="the soak alone (benchmarks.run --only soak)")
    parser.add_argument("--guilds", type=int)
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tracemalloc", choices=["0", "1"])
    args = parser.parse_args()
    for name, value in (("GUILDS", args.guilds), ("MINUTES", args.minutes),
                        ("TRACEMALLOC", args.tracemalloc)):
        if value is not None:
            os.environ[f"MUSIC_SOAK_{name}"] = str(value)
    from . import run as run_module

    return asyncio.run(run_module.main(["--only", "soak"] + (["--quick"] if args.quick else [])))


if __name__ == "__main__":
    sys.exit(main())

"""Row 2c: the first play after a start and after ``[p]reload``, cold and warm, through a real Red.

Row 2b measures steady state: it begins with an unmeasured warm-up play, so yt-dlp's one-time
costs in a process (compiling every extractor's URL pattern, ~0.3-0.45 s; the first instance;
the first extract's imports, SSL context and date formats) never show there. Here every
measured play is the first of its kind, in Red processes started for it:

* **start, cold**: a fresh Red process (the cogs load at its start, as after a restart); the
  first play once Red answers ``ping``. Nothing has used yt-dlp in that process before.
* **start, warm**: the next play in that process (another URL never looked up).
* **reload, warm**: ``[p]reload <cog>`` in that process, then the next play at once.
* **reload, cold**: another fresh process: ``[p]reload <cog>`` at once, then the first play.

Every play is ``[p]play <url>`` (ours) or ``[p]bplay <url>`` (the usual pattern,
``benchmarks/baseline_cog``: yt-dlp ``extract_info`` in an executor, ``channel.connect()``,
``vc.play(FFmpegOpusAudio(url))``), or ``[p]bplaypcm <url>`` (discord.py's own example
pattern in the same cog: ``FFmpegPCMAudio`` in a ``PCMVolumeTransformer``) of an uncached WebM/Opus URL (a fresh query string on the
local media server), with the bot not in voice: it must join. Clock: from the stand-in writing
the MESSAGE_CREATE to the bot's websocket to the first packet that decodes to sound at the
stand-in's receiver (as row 2b). Each process loads only the cog measured (``--no-cogs
--load-cogs``), so one cog's yt-dlp use never warms the other's; the music cog's processes load
the baseline cog too, for its probes only (no yt-dlp instance: ``MUSIC_BENCH_PROBES_ONLY``).
The methods' order rotates from round to round; medians over the rounds' fresh processes.

A second table runs ``benchmarks/warmup_pacing.py`` in fresh processes: how late the event
loop's 1 ms sleeps wake up during the warm-up, during a cold first lookup without one (what the
warm-up replaces), and with nothing running (the machine's noise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from standin.demo import PREFIX, RedBot
from standin.server import Standin

from .common import REPO_ROOT, fmt, median, print_table, verdict
from .first_packet_red import PHASES, RedWorld, TrialError

TARGET_RATIO = 0.3  # ours / the usual pattern, cold first play with a join
MEDIA = "tone_a.webm"
METHODS = ["ours", "baseline", "pcm"]
#: the baselines, each compared with ours; "baseline" (FFmpegOpusAudio) is the issue's yardstick
BASELINES = ["baseline", "pcm"]
COG = {"ours": "music", "baseline": "baseline_cog", "pcm": "baseline_cog"}
LABEL = {"ours": "ours (music cog)", "baseline": "baseline FFmpegOpusAudio cog",
         "pcm": "baseline FFmpegPCMAudio + PCMVolumeTransformer cog"}
CASES = [("start", "cold"), ("start", "warm"), ("reload", "cold"), ("reload", "warm")]
EXTRA_PHASES = ["warm-up started", "warm-up ended"]
PACING_MODES = ["idle", "warm-up", "cold"]
PROCESS_TIMEOUT = 120.0


class FreshRed(RedBot):
    """The same Red instance (data dir) started as a new process that loads only `cogs`."""

    def __init__(self, standin: Standin, root: Path, cogs: list[str], env: dict[str, str]) -> None:
        super().__init__(standin, root)
        self.cogs = cogs
        self.extra_env = env

    async def start(self, channel: Any, timeout: float = 90.0) -> None:
        self._write_instance()
        identified = self.standin.gateway.identify_count
        env = {
            **os.environ, **self.standin.red_env(), **self.extra_env,
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "xdg-data"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1", "COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb",
        }
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "standin.run_red", self.name, "--token", self.standin.token,
                "--prefix", PREFIX, "--no-prompt", "--no-cogs", "--load-cogs", *self.cogs,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                env=env, cwd=str(REPO_ROOT),
            )
        owner = self.standin.guilds[channel.guild_id].members[self.standin.owner.id]
        await self.standin.wait_until(lambda: self.standin.gateway.identify_count > identified
                                      or self.proc.returncode is not None, timeout, "Red to IDENTIFY")
        if self.proc.returncode is not None:
            raise RuntimeError(f"Red exited with code {self.proc.returncode}; see {self.log_path}")
        # Red queues commands until it is ready: the answer to one ping means it is up
        probe = await self.standin.say(owner, channel, f"{PREFIX}ping")
        await self.standin.wait_for_message(channel, lambda m: m.content == "Pong.", after=probe,
                                            timeout=timeout)


class FirstPlayWorld(RedWorld):
    """Row 2b's world (stand-in, Red instance with both cogs installed, trials), whose Red is
    replaced by a fresh process for each round."""

    def __init__(self, standin: Standin, workdir: Path, bench: Any) -> None:
        super().__init__(standin, workdir)
        self.bench = bench

    async def fresh_process(self, method: str) -> float:
        """Stop the running Red, start a new one with only `method`'s cog (and the probes);
        returns how long the start took."""
        await self.red.stop()
        cogs = ["music", "baseline_cog"] if method == "ours" else ["baseline_cog"]
        env = {"MUSIC_BENCH_PROBES_ONLY": "1"} if method == "ours" else {}
        self.red = FreshRed(self.standin, self.workdir / "red", cogs, env)
        self.voice_owner = None
        started = time.monotonic()
        await self.red.start(self.world.general)
        return time.monotonic() - started

    async def reload(self, method: str) -> None:
        await self.ask(self.world.owner, f"{PREFIX}reload {COG[method]}",
                       lambda m: "Reloaded" in m.content or "fail" in m.content.lower(), timeout=60)

    async def measured(self, method: str, tag: str) -> dict[str, float]:
        """One play of a URL never looked up, the bot out of voice; phases plus the music cog's
        warm-up start and end (ms after the message; negative = before it)."""
        url = self.bench.url(MEDIA) + f"?first-play={tag}"
        phases = await self.trial(method, url, joined=False)
        warm = self.last_probe.get("warm_up")
        if warm is not None:
            delivered = self.last_delivered
            phases["warm-up started"] = (warm["started"] - delivered) * 1000
            phases["warm-up ended"] = (warm["ended"] - delivered) * 1000
            phases["warm-up state"] = warm["state"]  # type: ignore[assignment]
        return phases


async def run(bench: Any, quick: bool) -> str:
    rounds = 2 if quick else 5
    workdir = Path(tempfile.mkdtemp(prefix="music-bench-first-play-"))
    results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    starts: dict[str, list[float]] = {m: [] for m in METHODS}
    failures: list[str] = []
    started = time.monotonic()
    try:
        async with Standin() as standin:
            world = FirstPlayWorld(standin, workdir, bench)
            try:
                await world.start()  # installs the music cog through Downloader, adds the baseline's path
                for round_no in range(rounds):
                    # each method goes first in some round: the order rotates
                    order = METHODS[round_no % len(METHODS):] + METHODS[:round_no % len(METHODS)]
                    for method in order:
                        try:
                            await _one_round(world, method, round_no, results, starts)
                        except (TrialError, TimeoutError, RuntimeError) as exc:
                            failures.append(f"round {round_no + 1} {method}: {exc}")
                            with contextlib.suppress(Exception):
                                await world.leave()
            finally:
                await world.red.stop()
        pacing = await _pacing(bench, rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _report(results, starts, pacing, failures, rounds, time.monotonic() - started)


async def _one_round(world: FirstPlayWorld, method: str, round_no: int,
                     results: dict[tuple[str, str, str], list[dict[str, float]]],
                     starts: dict[str, list[float]]) -> None:
    """Two fresh processes: start (cold, then warm), reload (warm); and reload (cold)."""
    tag = f"{method}-{round_no}"
    starts[method].append(await world.fresh_process(method))
    results.setdefault(("start", "cold", method), []).append(await world.measured(method, f"{tag}-sc"))
    results.setdefault(("start", "warm", method), []).append(await world.measured(method, f"{tag}-sw"))
    await world.reload(method)
    results.setdefault(("reload", "warm", method), []).append(await world.measured(method, f"{tag}-rw"))
    starts[method].append(await world.fresh_process(method))
    await world.reload(method)
    results.setdefault(("reload", "cold", method), []).append(await world.measured(method, f"{tag}-rc"))


async def _pacing(bench: Any, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """benchmarks.warmup_pacing in fresh processes, the modes interleaved."""
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in PACING_MODES}
    url = bench.url(MEDIA)
    for round_no in range(rounds):
        for mode in PACING_MODES:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.warmup_pacing", mode, f"{url}?pacing={mode}-{round_no}",
                cwd=str(REPO_ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            stdout, stderr = await asyncio.wait_for(proc.communicate(), PROCESS_TIMEOUT)
            if proc.returncode == 0:
                out[mode].append(json.loads(stdout.decode().strip().splitlines()[-1]))
            else:
                print(f"warmup_pacing {mode} failed: {stderr.decode()[-500:]}", flush=True)
    return out


def _report(results: dict[tuple[str, str, str], list[dict[str, float]]], starts: dict[str, list[float]],
            pacing: dict[str, list[dict[str, Any]]], failures: list[str], rounds: int,
            total_seconds: float) -> str:
    def sound(situation: str, warmth: str, method: str) -> list[float]:
        return [p["first sound received"] for p in results.get((situation, warmth, method), [])]

    # the yardstick: the usual pattern's first play in a fresh process
    yardstick = median(sound("start", "cold", "baseline"))
    rows, phase_rows, notes, case_verdicts = [], [], [], []
    for situation, warmth in CASES:
        same_case = {b: median(sound(situation, warmth, b)) for b in BASELINES}
        ours = median(sound(situation, warmth, "ours"))
        winners = [f"{LABEL[b]} ({same_case[b]:.1f} against ours {ours:.1f})"
                   for b in BASELINES if same_case[b] < ours]
        case_verdicts.append(f"first play after {situation}, {warmth}: "
                             + ("the baseline wins: " + ", ".join(winners) if winners
                                else "no baseline beats ours in this run"))
        for method in METHODS:
            got = results.get((situation, warmth, method), [])
            values = sound(situation, warmth, method)
            ratios = ["", "", ""]
            if method == "ours":
                ratios = [_share(ours, same_case["baseline"]), _share(ours, same_case["pcm"]),
                          _share(ours, yardstick)]
            rows.append([f"first play after {situation}", warmth, LABEL[method], str(len(got)),
                         fmt(median(values)), fmt(min(values, default=float("nan"))),
                         fmt(max(values, default=float("nan"))), *ratios])
            states = sorted({str(p.get("warm-up state")) for p in got if "warm-up state" in p})
            phase_rows.append([situation, warmth, method]
                              + [fmt(median([p.get(ph, float("nan")) for p in got])) for ph in PHASES + EXTRA_PHASES]
                              + [", ".join(states) or "-"])
    for situation in ("start", "reload"):
        share = median(sound(situation, "cold", "ours")) / yardstick if yardstick else float("nan")
        notes.append(f"target: cold first play after a {situation}, with a join, ours <= {TARGET_RATIO} x the "
                     f"usual pattern's cold first play after a start: {verdict(share, TARGET_RATIO)} ({share:.2f})")
    pcm_cold = median(sound("start", "cold", "pcm"))
    for situation in ("start", "reload"):
        share = median(sound(situation, "cold", "ours")) / pcm_cold if pcm_cold else float("nan")
        notes.append(f"the same against discord.py's example pattern (FFmpegPCMAudio + PCMVolumeTransformer) "
                     f"cold after a start, {situation}: ours {share:.2f} x")
    notes += case_verdicts
    notes.append(f"{rounds} rounds; per round and method two fresh Red processes (start: cold then warm "
                 "play, then reload and a warm play; and reload at once, then the cold play), the methods' "
                 "order rotating from round to round; every play a WebM/Opus URL never looked up, the bot out of voice (must join).")
    notes.append("Red start to 'Pong.' (s, median): " + ", ".join(
        f"{m} {fmt(median(v))}" for m, v in starts.items()) + "; the first play is said right after.")
    notes += [f"failure: {f}" for f in failures]
    notes.append(f"the benchmark took {total_seconds:.0f} s")
    text = print_table(
        "2c. First play after a start or a reload, cold and warm, through a real Red (ms to first sound)",
        ["situation", "process", "method", "n", "median", "min", "max",
         "ours / FFmpegOpusAudio, same case", "ours / PCM example, same case",
         "ours / FFmpegOpusAudio's cold first play after a start"], rows, notes)
    text += print_table(
        "2c (phases). Median ms after the play message was delivered",
        ["situation", "process", "method", *PHASES, *EXTRA_PHASES, "warm-up state"], phase_rows,
        ["warm-up started / ended: the music cog's yt-dlp warm-up in its worker thread (negative = "
         "before the message); state 'stopped' = the play's lookup came first and did the rest itself."])
    text += _pacing_table(pacing)
    return text


def _share(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}" if baseline and baseline == baseline and ours == ours else "-"


def _without_run_queue(pacing: dict[str, list[dict[str, Any]]]) -> str:
    """The note on lateness minus the loop thread's run-queue wait (the machine's noise out)."""
    parts = []
    for mode in ("warm-up", "idle"):
        runs = [r for r in pacing.get(mode, []) if "late_but_run_queue_p99" in r]
        if runs:
            parts.append(f"{mode}: p90 {fmt(median([r['late_but_run_queue_p90'] for r in runs]), 2)}, "
                         f"p99 {fmt(median([r['late_but_run_queue_p99'] for r in runs]), 2)}, "
                         f"max {fmt(median([r['late_but_run_queue_max'] for r in runs]), 2)}")
    if not parts:
        return "lateness minus the loop thread's run-queue wait: not measured (Linux only)."
    return ("lateness minus the loop thread's wait for a CPU in it (/proc schedstat: the GIL's and "
            "our code's share, most of a busy machine's noise out), medians, ms: " + "; ".join(parts) + ".")


def _pacing_table(pacing: dict[str, list[dict[str, Any]]]) -> str:
    label = {"idle": "nothing running (noise floor)", "warm-up": "ours: the warm-up (paced)",
             "cold": "a cold first lookup, no warm-up (unpaced)"}
    rows = []
    for mode in PACING_MODES:
        runs = pacing.get(mode, [])

        def pick(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return median([float(r[key]) for r in runs if r.get(key) is not None])

        rows.append([label[mode], str(len(runs)), fmt(pick("busy_ms"), 0), fmt(pick("wakeups"), 0),
                     fmt(pick("late_median"), 2), fmt(pick("late_p90"), 2), fmt(pick("late_p99"), 2),
                     fmt(pick("late_max"), 2), fmt(pick("over_2ms"), 0),
                     f"{fmt(pick('full_collections'), 0)} ({fmt(pick('longest_full_collection_ms'))})",
                     fmt(pick("lookup_after_ms"))])
    warm = pacing.get("warm-up", [])
    late = {k: median([float(r[f"late_{k}"]) for r in warm]) for k in ("p90", "p99", "max")}
    steps = {k: median([r["steps_ms"][k] for r in warm if k in r.get("steps_ms", {})])
             for k in ("instance", "patterns", "first extract", "ffmpeg")}
    return print_table(
        "2c (pacing). Event-loop wake-ups while yt-dlp's one-time costs are paid, fresh processes (ms late)",
        ["what runs", "n", "busy ms", "wake-ups", "late median", "p90", "p99", "max", "> 2 ms late",
         "full GCs (longest ms)", "next lookup ms"], rows,
        ["target: wake-ups under 2 ms late during the warm-up: " + "; ".join(
            f"{k} {verdict(v, 2.0)} ({fmt(v, 2)} ms)" for k, v in late.items())
         + " (the noise floor's row is what the machine alone gives; on a busy machine the loop "
         "also waits for a core while the warm-up's thread holds one)",
         "a task sleeps 1 ms again and again and records how late it wakes; medians over the fresh "
         "processes of each one's figures; the modes interleaved (benchmarks/warmup_pacing.py).",
         _without_run_queue(pacing),
         "full GCs: Python's generation-2 collections in that time (the allocations of compiling "
         "~1,900 patterns trigger about one); a collection holds the GIL throughout, so no pacing "
         "can cut it. The warm-up row freezes what exists first, as the cog does (gc.freeze, "
         "music.resolve.warmup), and again just before a full collection would start, so none runs "
         "in it; the cold row's walks everything. Timed (longest ms) in the cold row only: a gc "
         "callback gives C calls that allocate a bytecode boundary, which would flatter the others.",
         "warm-up steps (median ms): " + ", ".join(f"{k} {fmt(v, 0)}" for k, v in steps.items()),
         "next lookup = the same direct-link lookup after the warm-up, through the service (cold, it "
         "is the busy time of the 'cold' row)."])

"""Row 5: a 2-second network stall in the middle of a track.

The stand-in's media server sends the WebM/Opus file at real-time rate (half a second ahead, as a
streaming site does) and pauses 2 s once 3 s of audio went out, so the prebuffers run dry. A
source that never blocks sends silence frames through the stall and keeps the 20 ms pace; one
that blocks in ``read()`` makes discord.py's player fall behind and then send the frames it
missed back to back (the "audio speeds up" bug, discord.py #9120). Both baselines block:
FFmpegOpusAudio (Ogg pages) and discord.py's example pattern (FFmpegPCMAudio, PCM frames).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from music.audio.source import ChainSource

from .botside import ChainEvents, baseline_source, open_stream, pcm_baseline_source, play_ours
from .common import fmt, print_table, wins_line

MEDIA_NAME = "stall_tone.webm"
TONE_HZ = 500.0
TONE_SECONDS = 8.0
LEAD_SECONDS = 0.5
STALL_AT_SECONDS = 3.0
STALL_SECONDS = 2.0
#: an interval this short between two packets is a burst (the pace is 20 ms)
BURST_MS = 10.0


async def _play_ours(bench: Any, url: str) -> dict[str, Any]:
    events = ChainEvents()
    chain = ChainSource(events)
    chain.play_now(await open_stream(bench.ffmpeg, url, passthrough=True, proxy=bench.proxy), "stalled")
    play_ours(bench.vc, chain)
    try:
        await events.wait_for("track_end", "stalled", TONE_SECONDS + STALL_SECONDS + 15)
    finally:
        bench.vc.stop()
    return {"underruns": chain.stats.underruns}


async def _play_baseline(bench: Any, url: str) -> dict[str, Any]:
    return await _play_source(bench, baseline_source(bench.ffmpeg, url, copy=True))


async def _play_pcm(bench: Any, url: str) -> dict[str, Any]:
    return await _play_source(bench, pcm_baseline_source(bench.ffmpeg, url))


async def _play_source(bench: Any, source: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    bench.vc.play(source,
                  after=lambda error: loop.call_soon_threadsafe(
                      lambda: finished.done() or finished.set_result(None)))
    try:
        await asyncio.wait_for(finished, TONE_SECONDS + STALL_SECONDS + 15)
    finally:
        bench.vc.stop()
    return {"underruns": None}


def _analyse(rows: list[list[Any]]) -> dict[str, Any]:
    sound_indexes = [i for i, r in enumerate(rows) if r[2] == "sound"]
    if not sound_indexes:
        return {}
    first, last = sound_indexes[0], sound_indexes[-1]
    playing = rows[first : last + 1]  # from the first to the last audible packet
    arrivals = np.array([r[0] for r in playing])
    intervals = np.diff(arrivals) * 1000
    return {
        "silence": sum(1 for r in playing if r[4]),
        "sound_seconds": sum(1 for r in playing if r[2] == "sound") * 0.02,
        "bursts": int(np.sum(intervals < BURST_MS)),
        "min": float(intervals.min()) if len(intervals) else float("nan"),
        "max": float(intervals.max()) if len(intervals) else float("nan"),
        "p99": float(np.percentile(intervals, 99)) if len(intervals) else float("nan"),
        "span": float(arrivals[-1] - arrivals[0]) if len(arrivals) else float("nan"),
    }


async def run(bench: Any, quick: bool) -> str:
    trials = 1 if quick else 2
    url = bench.standin.stall_url(MEDIA_NAME, lead=LEAD_SECONDS, stall_at=STALL_AT_SECONDS,
                                  stall=STALL_SECONDS) + f"&seconds={TONE_SECONDS}"
    methods = [("ours: ChainSource", _play_ours), ("baseline FFmpegOpusAudio", _play_baseline),
               ("baseline FFmpegPCMAudio + PCMVolumeTransformer", _play_pcm)]
    rows_out = []
    failures = []
    per_method: dict[str, list[dict[str, Any]]] = {}
    for trial in range(trials):
        shift = trial % len(methods)  # rotating who goes first
        for method, play in methods[shift:] + methods[:shift]:
            await bench.clear()
            try:
                extra = await play(bench, url)
            except Exception as exc:
                failures.append(f"{method}: {type(exc).__name__}: {exc}")
                extra = {"underruns": None}
            await asyncio.sleep(0.3)
            figures = _analyse((await bench.packets())["packets"])
            if not figures:
                failures.append(f"{method}: nothing audible was received")
                continue
            per_method.setdefault(method, []).append(figures)
            rows_out.append([
                method, str(trial + 1), str(figures["silence"]),
                "-" if extra["underruns"] is None else str(extra["underruns"]),
                str(figures["bursts"]), fmt(figures["min"]), fmt(figures["max"]),
                fmt(figures["p99"]), fmt(figures["sound_seconds"], 2), fmt(figures["span"], 2),
            ])
    notes = [
        f"{TONE_SECONDS:g} s WebM/Opus tone served at real-time rate ({LEAD_SECONDS:g} s ahead), "
        f"paused {STALL_SECONDS:g} s after {STALL_AT_SECONDS:g} s of audio.",
        f"burst = an inter-arrival under {BURST_MS:g} ms between the first and the last audible "
        "packet; expected for ours: no burst, silence frames about the stall minus the buffered "
        "lead, all audio heard, and the track takes its length plus the silence (real time).",
    ]
    for what, key in (("bursts", "bursts"), ("longest interval (ms)", "max")):
        notes.append(wins_line(what, {m: float(np.median([f[key] for f in got]))
                                      for m, got in per_method.items()}, methods[0][0]))
    notes += [f"failure: {f}" for f in failures]
    return print_table(
        "5. A 2-second network stall mid-track",
        ["method", "trial", "silence frames sent", "underrun frames (stats)",
         "bursts (< 10 ms)", "min interval ms", "max interval ms", "interval p99 ms",
         "audio heard s", "first to last audible s"],
        rows_out, notes)

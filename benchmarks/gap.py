"""Row 1: the gap between two tracks as the receiver hears it.

Each trial plays alternating 2-second tones (A, B, A, B, ...) from the local HTTP server into one
voice client and records what the stand-in received. At every tone change we take the last
packet of the old tone and the first packet of the new one: their arrival interval (20 ms when
seamless), the packets between them (silence frames, undecodable Ogg headers, frames whose pitch
is neither tone) and the RTP sequence numbers missing between them.

ours: one ChainSource; the next TrackStream is opened and made ready as soon as the current
track starts (what the cog's prefetch does near a track's end) and spliced in inside ``read()``.
baseline: ``vc.play(FFmpegOpusAudio(next), after=...)`` from the after-callback, via
``loop.call_soon_threadsafe`` as discord.py's docs recommend; and discord.py's own example
pattern the same way, ``PCMVolumeTransformer(FFmpegPCMAudio(next))`` (no Ogg header packets,
discord.py encodes), so that the comparison is with the pattern, not with the Ogg container.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import discord

from music.audio.source import ChainSource

from .botside import ChainEvents, baseline_source, open_stream, pcm_baseline_source, play_ours
from .common import fmt, median, p99, print_table, ratio, verdict, wins_line

TONE_A_HZ = 440.0
TONE_B_HZ = 660.0
TONE_SECONDS = 2.0
TOLERANCE_HZ = 15.0
TARGET_MEDIAN_MS = 21.0
TARGET_P99_MS = 25.0


@dataclass
class Transition:
    interval_ms: float  # arrival of the first new-tone packet minus the last old-tone packet
    silence: int  # silence packets between them
    undecodable: int  # e.g. FFmpegOpusAudio's OpusHead/OpusTags sent as audio
    other: int  # decodable sound that is neither tone (a mixed frame at the splice)
    sequence_gaps: int


@dataclass
class Method:
    name: str
    transitions: list[Transition] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    underruns: int = 0  # ours only: silence frames mid-track (ChainSource.stats)


def transitions_in(packets: list[list[Any]]) -> list[Transition]:
    """Tone changes in a recording of [arrival, seq, kind, frequency, is_silence] rows."""

    def tone(row: list[Any]) -> str | None:
        if row[2] != "sound":
            return None
        for name, hz in (("A", TONE_A_HZ), ("B", TONE_B_HZ)):
            if abs(row[3] - hz) <= TOLERANCE_HZ:
                return name
        return None

    found: list[Transition] = []
    last_index: int | None = None
    last_tone: str | None = None
    for index, row in enumerate(packets):
        current = tone(row)
        if current is None:
            continue
        if last_tone is not None and current != last_tone:
            between = packets[last_index + 1 : index]
            steps = [(b[1] - a[1]) % 65536 for a, b in zip(
                packets[last_index:index], packets[last_index + 1 : index + 1], strict=True)]
            found.append(Transition(
                interval_ms=(row[0] - packets[last_index][0]) * 1000,
                silence=sum(1 for b in between if b[2] == "silence"),
                undecodable=sum(1 for b in between if b[2] == "undecodable"),
                other=sum(1 for b in between if b[2] == "sound"),
                sequence_gaps=sum(s - 1 for s in steps if 1 < s < 32768),
            ))
        last_index, last_tone = index, current
    return found


async def _trial_ours(bench: Any, urls: list[str], method: Method) -> None:
    vc = bench.vc
    events = ChainEvents()
    chain = ChainSource(events)
    first = await open_stream(bench.ffmpeg, urls[0], passthrough=True, proxy=bench.proxy)
    chain.play_now(first, "0")
    play_ours(vc, chain)
    try:
        for index in range(1, len(urls)):
            await events.wait_for("track_start", str(index - 1), 10)
            chain.set_next(await open_stream(bench.ffmpeg, urls[index], passthrough=True, proxy=bench.proxy), str(index))
        await events.wait_for("track_end", str(len(urls) - 1), TONE_SECONDS * 2 + 10)
    finally:
        method.underruns += chain.stats.underruns
        vc.stop()


async def _trial_baseline(bench: Any, urls: list[str], method: Method) -> None:
    await _trial_after_callback(bench, urls, lambda url: baseline_source(bench.ffmpeg, url, copy=True))


async def _trial_pcm(bench: Any, urls: list[str], method: Method) -> None:
    await _trial_after_callback(bench, urls, lambda url: pcm_baseline_source(bench.ffmpeg, url))


async def _trial_after_callback(bench: Any, urls: list[str], source: Any) -> None:
    """The usual pattern: one source per track, the next played from `after`."""
    vc = bench.vc
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def play(index: int) -> None:
        def after(error: Exception | None) -> None:
            # discord.py's player thread: hop to the loop before touching anything
            loop.call_soon_threadsafe(advance, index, error)

        vc.play(source(urls[index]), after=after)

    def advance(index: int, error: Exception | None) -> None:
        if finished.done():
            return
        if error is not None:
            finished.set_exception(error)
        elif index + 1 < len(urls):
            try:
                play(index + 1)
            except discord.ClientException as exc:
                finished.set_exception(exc)
        else:
            finished.set_result(None)

    play(0)
    try:
        await asyncio.wait_for(finished, TONE_SECONDS * len(urls) + 10)
    finally:
        vc.stop()


async def run(bench: Any, quick: bool) -> str:
    transitions_per_trial = 3
    trials = 1 if quick else 4
    urls = [bench.url("tone_a.webm") if i % 2 == 0 else bench.url("tone_b.webm")
            for i in range(transitions_per_trial + 1)]
    ours, baseline = Method("ours: ChainSource, next prefetched"), Method(
        "baseline: FFmpegOpusAudio + after")
    pcm = Method("baseline: FFmpegPCMAudio + PCMVolumeTransformer + after")
    for trial in range(trials):
        order = [(ours, _trial_ours), (baseline, _trial_baseline), (pcm, _trial_pcm)]
        order = order[trial % 3:] + order[:trial % 3]  # interleaved, rotating who goes first
        for method, play in order:
            await bench.clear()
            try:
                await play(bench, urls, method)
            except Exception as exc:
                method.failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.3)  # the player's closing silence frames arrive
            recording = await bench.packets()
            found = transitions_in(recording["packets"])
            if len(found) != transitions_per_trial:
                method.failures.append(f"trial {trial}: {len(found)} of {transitions_per_trial} tone changes heard")
            method.transitions.extend(found)

    rows = []
    summary: dict[str, dict[str, float]] = {}
    for method in (ours, baseline, pcm):
        intervals = [t.interval_ms for t in method.transitions]
        n = max(1, len(method.transitions))
        figures = {
            "median": median(intervals), "p99": p99(intervals),
            "gap_median": median([i - 20.0 for i in intervals]),
            "silence": sum(t.silence for t in method.transitions) / n,
            "undecodable": sum(t.undecodable for t in method.transitions) / n,
            "other": sum(t.other for t in method.transitions) / n,
            "seq": sum(t.sequence_gaps for t in method.transitions),
        }
        summary[method.name] = figures
        rows.append([
            method.name, str(len(method.transitions)), fmt(figures["median"]), fmt(figures["p99"]),
            fmt(figures["gap_median"]), fmt(figures["silence"]), fmt(figures["undecodable"]),
            fmt(figures["other"]), str(figures["seq"]),
        ])
    o, b, c = summary[ours.name], summary[baseline.name], summary[pcm.name]
    rows.append(["ratio FFmpegOpusAudio / ours", "", ratio(b["median"], o["median"]),
                 ratio(b["p99"], o["p99"]), "",
                 "", "", "", ""])
    rows.append(["ratio FFmpegPCMAudio / ours", "", ratio(c["median"], o["median"]),
                 ratio(c["p99"], o["p99"]), "",
                 "", "", "", ""])
    notes = [
        f"targets (ours): median interval <= {TARGET_MEDIAN_MS:g} ms: "
        f"{verdict(o['median'], TARGET_MEDIAN_MS)} ({fmt(o['median'])}); p99 <= {TARGET_P99_MS:g} ms: "
        f"{verdict(o['p99'], TARGET_P99_MS)} ({fmt(o['p99'])})",
        f"{trials} interleaved trial(s) per method, {transitions_per_trial} tone changes each "
        f"({TONE_A_HZ:g}/{TONE_B_HZ:g} Hz, {TONE_SECONDS:g} s WebM/Opus over local HTTP); "
        "'gap' = interval - 20 ms (one packet period).",
        f"ours: mid-track underrun frames over all trials: {ours.underruns}",
    ]
    notes.append(wins_line("gap interval median", {n: f["median"] for n, f in summary.items()}, ours.name))
    for method in (ours, baseline, pcm):
        notes += [f"{method.name}: failure: {f}" for f in method.failures]
    return print_table(
        "1. Gap between tracks at the receiver (ms)",
        ["method", "changes", "interval median", "interval p99", "gap median",
         "silence pkts/change", "undecodable pkts/change", "other-pitch pkts/change",
         "RTP seq gaps (total)"],
        rows, notes)

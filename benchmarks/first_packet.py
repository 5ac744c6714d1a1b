"""Row 2a: time from ``play`` to the first audible packet at the receiver, at the engine level.

The voice client is already connected. The clock starts before anything is created and stops at
the arrival (in the stand-in process; CLOCK_MONOTONIC is system-wide) of the first packet that
decodes to sound, so silence sent while a stream warms up and FFmpegOpusAudio's Ogg header
packets do not count as audio.

ours: ``TrackStream`` started and made ready in a worker thread (the cog's ``_open_stream``),
then ``ChainSource.play_now`` and ``vc.play``; Opus input is copied, MP3 transcoded.
baseline: ``vc.play(FFmpegOpusAudio(url))``, codec "copy" for Opus input, its defaults for MP3;
and discord.py's example pattern, ``vc.play(PCMVolumeTransformer(FFmpegPCMAudio(url)))``
(ffmpeg decodes to PCM, discord.py encodes each frame: no Ogg header packets or pages).
Each case over http and over https (the stand-in's own CA; every method verifies it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from music.audio.source import ChainSource

from .botside import ChainEvents, baseline_source, open_stream, pcm_baseline_source, play_ours
from .common import fmt, median, p99, print_table, ratio, verdict, wins_line

TARGET_MEDIAN_MS = 60.0
#: how long each trial lets audio flow before stopping (the first packet comes far sooner)
LISTEN_SECONDS = 0.6


async def _play_ours(bench: Any, url: str, copy: bool) -> None:
    stream = await open_stream(bench.ffmpeg, url, passthrough=copy, proxy=bench.proxy)
    chain = ChainSource(ChainEvents())
    chain.play_now(stream, "first")
    play_ours(bench.vc, chain)


async def _play_baseline(bench: Any, url: str, copy: bool) -> None:
    bench.vc.play(baseline_source(bench.ffmpeg, url, copy=copy, ca_file=bench.standin.ca_file))


async def _play_pcm(bench: Any, url: str, copy: bool) -> None:
    bench.vc.play(pcm_baseline_source(bench.ffmpeg, url, ca_file=bench.standin.ca_file))


async def _measure(bench: Any, play: Any, url: str, copy: bool) -> tuple[float, float]:
    """(ms to the first packet of any kind, ms to the first sound packet)."""
    await bench.clear()
    started = time.monotonic()
    try:
        await play(bench, url, copy)
        await asyncio.sleep(LISTEN_SECONDS)
    finally:
        bench.vc.stop()
    await asyncio.sleep(0.2)  # the player's closing silence frames, before the next clear
    rows = (await bench.packets())["packets"]
    first_any = (rows[0][0] - started) * 1000 if rows else float("nan")
    sound = [r for r in rows if r[2] == "sound"]
    first_sound = (sound[0][0] - started) * 1000 if sound else float("nan")
    return first_any, first_sound


async def run(bench: Any, quick: bool) -> str:
    trials = 4 if quick else 12
    cases = [(f"{kind}{', https' if https else ''}", name, copy, https)
             for https in (False, True)
             for kind, name, copy in (("WebM/Opus (copy)", "tone_a.webm", True),
                                      ("MP3 (transcode)", "tone_a.mp3", False))]
    methods = [("ours", _play_ours), ("baseline FFmpegOpusAudio", _play_baseline),
               ("baseline FFmpegPCMAudio + PCMVolumeTransformer", _play_pcm)]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    failures: list[str] = []
    for trial in range(trials):
        for label, name, copy, https in cases:
            shift = trial % len(methods)  # interleaved, rotating who goes first
            order = methods[shift:] + methods[:shift]
            for method, play in order:
                try:
                    measured = await _measure(bench, play, bench.url(name, https=https), copy)
                except Exception as exc:
                    failures.append(f"{method} {label}: {type(exc).__name__}: {exc}")
                    continue
                results.setdefault((label, method), []).append(measured)

    rows = []
    notes = []
    for label, _name, _copy, _https in cases:
        figures = {}
        for method, _play in methods:
            got = results.get((label, method), [])
            sound = [s for _a, s in got]
            anything = [a for a, _s in got]
            figures[method] = (median(sound), p99(sound), median(anything))
            rows.append([label, method, str(len(got)), fmt(median(sound)), fmt(p99(sound)),
                         fmt(median(anything))])
        ours = figures["ours"]
        for method, _play in methods[1:]:
            base = figures[method]
            rows.append([label, f"ratio {method.removeprefix('baseline ')} / ours", "",
                         ratio(base[0], ours[0]), ratio(base[1], ours[1]), ""])
        notes.append(wins_line(f"{label}, first sound median (ms)",
                               {m: f[0] for m, f in figures.items()}, "ours"))
        notes.append(f"target (ours, already in channel) median <= {TARGET_MEDIAN_MS:g} ms for "
                     f"{label}: {verdict(ours[0], TARGET_MEDIAN_MS)} ({fmt(ours[0])} ms)")
    notes.append(f"{trials} interleaved trials per case; first packet of any kind includes ours' "
                 "warm-up silence (none: ours waits for the first packet before playing) and the "
                 "baseline's Ogg header packets.")
    notes.append("https: the same media over TLS from the stand-in (its own CA), every method "
                 "verifying the certificate: ours through the network guard (CONNECT tunnel, the "
                 "CA trusted through SSL_CERT_FILE), the baselines' ffmpeg with -tls_verify 1 "
                 "-ca_file; a fresh TLS handshake for each play.")
    notes.append("2b (below, `first_packet_red`) measures the same through a real Red bot, from the chat message.")
    notes += [f"failure: {f}" for f in failures]
    return print_table(
        "2a. Play to first audible packet at the receiver, engine level, voice already connected (ms)",
        ["input", "method", "n", "first sound median", "first sound p99", "first packet median"],
        rows, notes)

"""What filters cost: CPU per second heard for passthrough, a plain transcode and every filter,
in the same run (issue 17).

    python -m benchmarks.filter_cost [--quick]

Each mode plays the same 30 s WebM/Opus file (a tone sweep with some noise, 96 kb/s; 10 s with
--quick) from a local file through the cog's own ``TrackStream`` (music/audio/stream.py), read
out as fast as it comes: what the bot process spends (its reader thread, and the demuxer when it
copies in process) plus what its ffmpeg child spends (reaped: ``RUSAGE_CHILDREN``), divided by
the seconds of audio handed out (packets x 20 ms: a nightcore stream gives fewer of them for the
same file). The consumer loop's own CPU is not counted (its thread's time is taken out).
Passthrough is what the cog does for Opus at 100 % with no filter (no ffmpeg at all); every
other row transcodes (libopus 128 kb/s, as the cog does). The least of 3 runs per mode (1 with
--quick), interleaved mode by mode. The transcodes run in ffmpeg children (no shared transcoder
is given): the cog's path where that worker can't run; capacity.py measures the worker.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from music.audio.ffmpeg import find_ffmpeg
from music.audio.filters import filter_graph
from music.audio.source import TrackStream
from music.engine.filters import EQ_PRESETS, FilterChain

from .common import fmt, print_table

FRAME_SECONDS = 0.02


@dataclass(frozen=True)
class Mode:
    name: str
    chain: FilterChain | None = None
    passthrough: bool = False
    volume: int = 100


def modes() -> list[Mode]:
    flat = FilterChain()
    return [
        Mode("passthrough (copy in process, no ffmpeg)", passthrough=True),
        Mode("plain transcode (volume 100 %, no filter)"),
        Mode("volume 80 %", volume=80),
        *(Mode(f"filter {name}", flat.with_filter(name)) for name in
          ("nightcore", "vaporwave", "speed", "pitch", "karaoke", "tremolo", "vibrato", "8d",
           "lowpass")),
        Mode("eq bassboost", flat.with_eq(EQ_PRESETS["bassboost"])),
        Mode("eq rock (all 15 bands)", flat.with_eq(EQ_PRESETS["rock"])),
        Mode("normalize", FilterChain(normalize=True)),
        Mode("nightcore + 8d + eq bassboost + normalize",
             FilterChain(normalize=True).with_eq(EQ_PRESETS["bassboost"])
             .with_filter("nightcore").with_filter("8d")),
    ]


@dataclass
class Cost:
    bot_ms: float  # CPU of the bot process (reader thread, demuxer)
    ffmpeg_ms: float  # CPU of the ffmpeg child
    heard: float  # seconds of audio handed out

    @property
    def per_second(self) -> float:
        return (self.bot_ms + self.ffmpeg_ms) / self.heard


def children_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def measure(ffmpeg: str, path: Path, mode: Mode) -> Cost:
    stream = TrackStream(ffmpeg, str(path), local=True, volume=mode.volume, filters=mode.chain,
                         passthrough=mode.passthrough, in_process=mode.passthrough)
    children_before = children_cpu_ms()
    process_before, thread_before = time.process_time(), time.thread_time()
    stream.start()
    packets = 0
    try:
        while not stream.finished:
            if stream.read_packet() is None:
                time.sleep(0.002)
            else:
                packets += 1
    finally:
        stream.close()
    consumer_ms = (time.thread_time() - thread_before) * 1000
    bot_ms = (time.process_time() - process_before) * 1000 - consumer_ms
    if stream.error:
        raise RuntimeError(f"{mode.name}: {stream.error}")
    return Cost(max(0.0, bot_ms), children_cpu_ms() - children_before, packets * FRAME_SECONDS)


def make_media(ffmpeg: str, path: Path, seconds: float) -> None:
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc='0.3*sin(2*PI*(200+30*t)*t)+0.05*(random(0)-0.5)|"
                    f"0.3*sin(2*PI*(300+20*t)*t)+0.05*(random(1)-0.5)':s=48000:d={seconds}",
                    "-c:a", "libopus", "-b:a", "96k", "-frame_duration", "20", "-f", "webm",
                    str(path)], check=True, timeout=120)


def run(quick: bool) -> None:
    ffmpeg = find_ffmpeg()
    runs, seconds = (1, 10.0) if quick else (3, 30.0)
    results: dict[str, list[Cost]] = {}
    all_modes = modes()
    with tempfile.TemporaryDirectory(prefix="music-filter-cost-") as folder:
        media = Path(folder) / "sweep.webm"
        make_media(ffmpeg, media, seconds)
        for _ in range(runs):
            for mode in all_modes:
                results.setdefault(mode.name, []).append(measure(ffmpeg, media, mode))
    best = {name: min(costs, key=lambda c: c.per_second) for name, costs in results.items()}
    plain = best[all_modes[1].name].per_second
    passthrough = best[all_modes[0].name].per_second
    rows = []
    for mode in all_modes:
        cost = best[mode.name]
        rows.append([
            mode.name, fmt(cost.per_second, 2), fmt(cost.bot_ms / cost.heard, 2),
            fmt(cost.ffmpeg_ms / cost.heard, 2), fmt(cost.per_second / plain, 2),
            fmt(cost.per_second / passthrough, 0),
            f"`{filter_graph(mode.chain, mode.volume) or '-'}`"[:90],
        ])
    filtered = [best[m.name].per_second for m in all_modes if m.name.startswith("filter ")]
    eq_cost = {m.name: best[m.name].per_second for m in all_modes if m.name.startswith("eq ")}
    print_table(
        "Filters: CPU per second heard, beside passthrough and a plain transcode (same run)",
        ["mode", "CPU ms per second heard", "bot process", "ffmpeg", "x plain transcode",
         "x passthrough", "ffmpeg filter graph"],
        rows,
        [
            f"{seconds:.0f} s WebM/Opus 96 kb/s (a sweep with noise) from a local file; the least "
            f"of {runs} run(s) per mode; seconds heard = packets x 20 ms",
            f"the `filter`s cost {min(filtered) / plain:.2f}-{max(filtered) / plain:.2f} x a "
            f"plain transcode ({min(filtered):.1f}-{max(filtered):.1f} ms per second heard against "
            f"{plain:.1f}); the equalizer "
            + ", ".join(f"{v / plain:.2f} x ({n})" for n, v in eq_cost.items())
            + f"; normalisation (loudnorm, which works at 192 kHz) "
            f"{best['normalize'].per_second / plain:.1f} x; passthrough {passthrough:.2f} ms",
            "a remote input adds the feeder thread (~1 ms per second, docs/ARCHITECTURE.md) to "
            "every ffmpeg row alike",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    run(parser.parse_args(argv).quick)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "filter-cost"
    sys.exit(main())

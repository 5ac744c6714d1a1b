"""What hostile media cost the in-process readers, beside normal files (issue 13, point 5).

    python -m benchmarks.media_cost [--quick]

Every adversarial shape of tests/support/hostile_media.py (resync storms, endless
continuation, every lacing, huge declared sizes, header stripping, deep nesting, unknown-size
elements, Cue storms...) is read to its end or its refusal by ``OggOpusReader`` or
``WebmOpusReader`` from memory (no network: the reader's own cost), as are normal 60 s files
that ffmpeg wrote (WebM and Ogg, 96 kb/s Opus; the WebM also from 30 s, through its Cues).

Per input: CPU (``time.process_time``, the least of 3 reads; 1 with --quick), peak memory
(tracemalloc, one more read), bytes the reader consumed, packets it yielded and how it ended.
The bound (music/audio/limits.py, docs/FAULTS.md): CPU <= 25 ms + 50 ms per MiB read + 10 us
per packet yielded (packets are played at 50 a second: that term is per second of audio), peak
memory <= 16 MiB, no packet over Opus's limit for its frames.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from music.audio.ffmpeg import find_ffmpeg
from tests.support import hostile_media as hostile

from .common import fmt, print_table, verdict

FLOOR_MS, PER_MIB_MS, PER_PACKET_MS = 25.0, 50.0, 0.010
MEMORY_BOUND_MIB = 16.0
HOSTILE_MIB = 4
# shapes whose cost is per packet (a packet per 2-4 bytes): a smaller input says the same
PACKET_DENSE = {"ogg one-byte packets", "webm all lacings"}
SEEK_NS = 10**9


def normal_files(ffmpeg: str, folder: Path) -> dict[str, tuple[str, bytes, int]]:
    """name -> (container, data, start ns) of the normal inputs."""
    webm = folder / "normal.webm"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "aevalsrc='0.3*sin(2*PI*(200+20*t)*t)':s=48000:c=stereo:d=60",
                    "-c:a", "libopus", "-b:a", "96k", "-frame_duration", "20", str(webm)],
                   check=True, timeout=120)
    ogg = folder / "normal.ogg"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(webm),
                    "-c", "copy", str(ogg)], check=True, timeout=60)
    return {
        "normal WebM, 60 s, 96 kb/s": ("webm", webm.read_bytes(), 0),
        "normal WebM, from 30 s (Cues)": ("webm", webm.read_bytes(), 30 * 10**9),
        "normal Ogg, 60 s, 96 kb/s": ("ogg", ogg.read_bytes(), 0),
    }


def measure(container: str, data: bytes, start_ns: int, runs: int) -> hostile.Outcome:
    outcome = hostile.measure(container, data, start_ns=start_ns)
    for _ in range(runs - 1):
        outcome.cpu = min(outcome.cpu, hostile.measure(container, data, start_ns=start_ns,
                                                       memory=False).cpu)
    return outcome


def bound_ms(outcome: hostile.Outcome) -> float:
    return FLOOR_MS + PER_MIB_MS * outcome.bytes_read / 2**20 + PER_PACKET_MS * outcome.packets


def ending(outcome: hostile.Outcome) -> str:
    if outcome.error is None:
        return "end of input"
    text = str(outcome.error).removeprefix("the audio is damaged or hostile: ")
    return "refused: " + re.split(r", more th| that hold no audio", text)[0]


def run(quick: bool) -> None:
    runs = 1 if quick else 3
    inputs: dict[str, tuple[str, bytes, int]] = {}
    with tempfile.TemporaryDirectory(prefix="music-media-cost-") as folder:
        inputs.update(normal_files(find_ffmpeg(), Path(folder)))
    for name, generator in {**hostile.OGG_GENERATORS, **hostile.WEBM_GENERATORS}.items():
        size = (1 if name in PACKET_DENSE else HOSTILE_MIB) * 2**20
        inputs[name] = ("ogg" if name.startswith("ogg") else "webm", generator(size),
                        SEEK_NS if "seek" in name else 0)

    rows, results = [], {}
    for name, (container, data, start_ns) in inputs.items():
        outcome = results[name] = measure(container, data, start_ns, runs)
        cpu_ms = outcome.cpu * 1000
        rows.append([
            name, fmt(len(data) / 2**20, 2), fmt(outcome.bytes_read / 2**20, 3),
            f"{outcome.packets:,}", fmt(cpu_ms, 1), fmt(cpu_ms / (len(data) / 2**20), 1),
            fmt(cpu_ms * 1000 / outcome.packets, 2) if outcome.packets else "-",
            fmt(outcome.peak / 2**20, 2), fmt(cpu_ms / bound_ms(outcome), 2),
            f"{outcome.largest_packet:,}", ending(outcome),
        ])

    normal = {n: o for n, o in results.items() if n.startswith("normal")}
    adversarial = {n: o for n, o in results.items() if not n.startswith("normal")}
    per_mib = {n: o.cpu * 1000 / (o.size / 2**20) for n, o in adversarial.items()}
    quiet = {n: v for n, v in per_mib.items() if adversarial[n].packets < 100}
    worst_quiet = max(quiet, key=quiet.get)  # type: ignore[arg-type]
    worst_absolute = max(quiet, key=lambda n: adversarial[n].cpu)
    worst_packet = max((n for n in adversarial if adversarial[n].packets >= 1000),
                       key=lambda n: adversarial[n].cpu / adversarial[n].packets)
    worst_peak = max(adversarial, key=lambda n: adversarial[n].peak)
    worst_use = max(results, key=lambda n: results[n].cpu * 1000 / bound_ms(results[n]))
    oversized = [n for n, o in results.items() if o.oversized]
    normal_per_mib = {n: o.cpu * 1000 / (o.size / 2**20) for n, o in normal.items()}
    peak_mib = adversarial[worst_peak].peak / 2**20
    use = results[worst_use].cpu * 1000 / bound_ms(results[worst_use])
    print_table(
        "Hostile media: what the in-process readers spend on them, beside normal files",
        ["input", "MiB", "MiB read", "packets", "CPU ms", "CPU ms/MiB of input", "CPU us/packet",
         "peak MiB", "CPU / bound", "largest packet B", "how it ended"],
        rows,
        [
            f"worst CPU per MiB of input among the adversarial inputs that yield (almost) no "
            f"audio: {quiet[worst_quiet]:.1f} ms ({worst_quiet}); normal files: "
            + ", ".join(f"{v:.1f} ms ({n})" for n, v in normal_per_mib.items()),
            f"most CPU one of those took, whatever its size (the allowance every stream has "
            f"before it is refused): {adversarial[worst_absolute].cpu * 1000:.1f} ms "
            f"({worst_absolute}); the most per packet yielded: "
            f"{adversarial[worst_packet].cpu * 1e6 / adversarial[worst_packet].packets:.2f} us "
            f"({worst_packet}; packets are played at 50 a second)",
            f"peak memory: worst {peak_mib:.2f} MiB ({worst_peak}); normal files "
            + ", ".join(f"{o.peak / 2**20:.2f} MiB" for o in normal.values()),
            f"bound CPU <= {FLOOR_MS:.0f} ms + {PER_MIB_MS:.0f} ms/MiB read + "
            f"{PER_PACKET_MS * 1000:.0f} us/packet: {verdict(use, 1.0)} (at most {use:.2f} of it, "
            f"{worst_use}); peak <= {MEMORY_BOUND_MIB:.0f} MiB: "
            f"{verdict(peak_mib, MEMORY_BOUND_MIB)}; packets over Opus's limit: "
            f"{len(oversized)}",
            f"hostile inputs of {HOSTILE_MIB} MiB ({', '.join(sorted(PACKET_DENSE))}: 1 MiB); "
            f"CPU the least of {runs} read(s); 'seek' inputs start at 1 s, the normal WebM "
            "from 30 s reads its Cues",
            "before issue 13 (measured once on the old readers, same machine): the Ogg resync "
            "storm cost 27.2 s of CPU for 160 KiB, an endless packet held 64.6 MiB for 64 MiB "
            "of input, 70 KB of WebM header stripping yielded 256 MiB of packets",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one read per input for CPU")
    run(parser.parse_args(argv).quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Row 9: the capacity curve, 1 to 600 guilds copying WebM/Opus in one bot process (issue 18 part 3).

Each point is a fresh bot process (``load_worker``) whose guilds all play the same WebM/Opus tone
over HTTP through the network guard, DAVE encrypting every frame, into the stand-in (its own
process, timing each datagram by the kernel's receive time). Per point:

- lateness against each guild's own 20 ms schedule (the stand-in's ``schedule`` analysis: slot k
  of a guild is its anchor + k x 20 ms, by RTP sequence), pooled p99 and max, the share more than
  40 ms late, the worst guild's p99, and packets early by more than 10 ms;
- packets received against the window's slots (a shortfall is audio the sender did not send:
  skipped slots when a tick came more than a frame late);
- the bot's CPU per stream-second (whole process, and by thread: the one sender, the readers, the
  event loop with the guard's relay and the voice websockets), the sender's CPU per packet sent;
- memory per stream (PSS while playing minus PSS connected and idle), threads and open files.

The baselines (FFmpegOpusAudio, and discord.py's example FFmpegPCMAudio + PCMVolumeTransformer)
run up to 150 guilds: a thread and an ffmpeg per guild (for the PCM pattern also an Opus encode
per frame in the bot) fall far behind there already on 2 cores, and at 300 FFmpegOpusAudio's
guilds did not start at all (a trial run: 0 of 300 playing, load average 30). Then one point twice more at 150 guilds: ours with every packet through
discord.py's ``send_audio_packet`` instead of the sender's own packet step (same run, like for
like), and the per-packet steps profiled (read, build, send: the wrapping costs ~1 us a call,
so that row's totals are higher than the plain row's). Last, 60 guilds transcoding MP3, all three
methods: the baselines run an ffmpeg per guild, ours one shared transcoder worker for all of them
(music.audio.transcoder, as the cog does); inter-arrival p99 and memory per stream (the bot's share
plus the PSS of its ffmpeg children or of its shared worker, divided by the guilds), against the
targets 25 ms and 4 MB, and the helper processes' CPU per stream-second. Ours starts its worker
(and any ffmpeg child) at a lower CPU priority (music.audio.ffmpeg_process.lower_priority); the
baselines' run at the bot's, as discord.py starts them.

``MUSIC_BENCH_CAPACITY_TRANSCODE_ONLY=1`` runs only the transcoding points (a check that they
work, e.g. with --quick: 10 guilds).
"""

from __future__ import annotations

import math
import os
from typing import Any

from .common import fmt, print_table, verdict, wait_for_quiet_machine, wins_line
from .load import run_worker
from .resources import MEDIA_MP3, MEDIA_WEBM

COUNTS = [1, 50, 150, 300, 450, 600]
COUNTS_QUICK = [1, 50, 150]
#: the baselines stop here (see the module docstring)
BASELINE_MAX = 150
BASELINE_MAX_QUICK = 50
METHODS = {
    "ours": "ours (through the network guard)",
    "baseline": "baseline FFmpegOpusAudio",
    "pcm": "baseline FFmpegPCMAudio + PCMVolumeTransformer",
}
PROFILE_GUILDS = 150
TARGET_GUILDS = 600
TARGET_P99_LATENESS_MS = 5.0
TARGET_LATE_40 = 0.0
TARGET_CPU_MS = 1.0
TARGET_MB = 1.0
#: transcoding (ffmpeg decodes MP3 and encodes Opus for each guild, each side its own settings)
TRANSCODE_GUILDS = 60
TRANSCODE_GUILDS_QUICK = 10
TARGET_TRANSCODE_P99_MS = 25.0
TARGET_TRANSCODE_MB = 4.0
#: a point starts once the cores were this idle (benchmarks.common.wait_for_quiet_machine)
QUIET_IDLE_SHARE = 0.85


def _per_packet_us(result: dict[str, Any], kind: str) -> float:
    """CPU microseconds of one thread kind per packet received in the window."""
    share = result.get("bot_cpu_by_thread", {}).get(kind)
    timing = result["timing"]
    seconds = result["window"][1] - result["window"][0]
    if share is None or not timing.get("packets"):
        return float("nan")
    return 1e6 * share * seconds / timing["packets"]


def _threads_ms(result: dict[str, Any], streams: int) -> str:
    """The bot's CPU by thread kind, in ms per stream-second: sender / readers / event loop /
    the rest (discord.py's keep-alive threads, closers...)."""
    by = result.get("bot_cpu_by_thread", {})
    sender = by.get("music-sender", 0.0)
    readers = by.get("music-reader", 0.0) + by.get("music-ffmpeg-reader", 0.0)
    loop = by.get("MainThread", 0.0)
    rest = sum(by.values()) - sender - readers - loop
    return " / ".join(fmt(1000 * v / streams, 2) for v in (sender, readers, loop, rest))


def _kept_up(result: dict[str, Any]) -> bool:
    """Every guild still playing and at least 90 % of the window's packets received."""
    timing = result["timing"]
    slots = timing.get("schedule", {}).get("own_schedule_slots") or timing.get("expected") or 0
    return (result["still_playing"] == result["guilds"]
            and timing.get("packets", 0) >= 0.9 * slots)


def _memory_per_stream(result: dict[str, Any]) -> float:
    return result["bot_pss_delta_mb_per_stream"] + (result.get("ffmpeg_pss_mb_per_stream") or 0.0)


def _row(label: str, guilds: int, result: dict[str, Any]) -> list[str]:
    timing = result["timing"]
    schedule = timing.get("schedule", {})
    slots = schedule.get("own_schedule_slots") or timing.get("expected", "-")
    return [
        str(guilds), label,
        fmt(schedule.get("p99_ms"), 2), fmt(schedule.get("max_ms"), 1),
        fmt(100 * schedule["late_40_share"], 3) if "late_40_share" in schedule else "-",
        fmt(schedule.get("guild_p99_worst_ms"), 1), str(schedule.get("early_10", "-")),
        fmt(timing.get("p99_ms"), 2),
        f"{timing.get('packets', 0)}/{slots}",
        fmt(result["bot_cpu_share"], 2), fmt(result["bot_cpu_ms_per_stream_second"], 2),
        fmt(result["bot_cpu_marginal_ms_per_stream_second"], 2),
        _threads_ms(result, guilds),
        fmt(_per_packet_us(result, "music-sender"), 1),
        fmt(_memory_per_stream(result), 2),
        f"{result.get('threads', '-')} / {result.get('open_files', '-')}",
        f"{result['still_playing']}/{result['guilds']}",
    ]


def _steps_line(result: dict[str, Any]) -> str:
    steps = result.get("step_profile", {})

    def per_call(step: str) -> float:
        total, calls = steps.get(step, [0, 0])
        return total / calls / 1000 if calls else float("nan")

    build, send = per_call("writer_build"), per_call("writer_send")
    sender_us = _per_packet_us(result, "music-sender")
    read = per_call("read")
    rest = sender_us - read - send if math.isfinite(send) else float("nan")
    return (f"per-packet steps, ours at {result['guilds']} guilds (profiled run), CPU us per packet: "
            f"read {fmt(read, 1)}, build (DAVE + RTP header + AEAD) {fmt(build, 1)}, socket send "
            f"{fmt(send - build, 1)}, the rest of the sender's tick (pacing, checks, wake-ups) "
            f"{fmt(rest, 1)}; the sender thread in all {fmt(sender_us, 1)}")


async def run(bench: Any, quick: bool) -> str:
    transcode_only = os.environ.get("MUSIC_BENCH_CAPACITY_TRANSCODE_ONLY") == "1"
    counts = [] if transcode_only else COUNTS_QUICK if quick else COUNTS
    baseline_max = BASELINE_MAX_QUICK if quick else BASELINE_MAX
    warmup, seconds = (1.5, 4.0) if quick else (2.0, 8.0)
    rows: list[list[str]] = []
    failures: list[str] = []
    at_target: dict[str, Any] | None = None
    by_path: dict[str, dict[str, Any]] = {}
    profiled: dict[str, Any] | None = None
    #: guild count -> method label -> result, for the "where a baseline wins" lines
    compared: dict[int, dict[str, dict[str, Any]]] = {}
    #: before each point: how long it waited for the cores to be idle, and how idle they were
    quiet: list[dict[str, float]] = []

    async def point(method: str, guilds: int, mode: str = "copy", **options: Any) -> dict[str, Any] | None:
        media = MEDIA_WEBM if mode == "copy" else MEDIA_MP3
        quiet.append(await wait_for_quiet_machine(QUIET_IDLE_SHARE))
        try:
            return await run_worker(bench, method=method, mode=mode, url=bench.url(media),
                                    guilds=guilds, warmup=warmup, seconds=seconds,
                                    measure_memory=True, timing_only=True, **options)
        except Exception as exc:
            failures.append(f"{METHODS[method]} {mode} x{guilds}: {type(exc).__name__}: {exc}")
            return None

    for guilds in counts:
        for method in METHODS:
            if method != "ours" and guilds > baseline_max:
                continue
            result = await point(method, guilds)
            if result is None:
                continue
            rows.append(_row(METHODS[method], guilds, result))
            if _kept_up(result):  # a method whose guilds did not all play has no figure to win with
                compared.setdefault(guilds, {})[METHODS[method]] = result
            else:
                failures.append(f"{METHODS[method]} x{guilds} did not keep up: "
                                f"{result['still_playing']}/{guilds} playing at the end, "
                                f"{result['timing'].get('packets', 0)} packets received")
            if method == "ours" and guilds == TARGET_GUILDS:
                at_target = result
            if method == "ours" and guilds == PROFILE_GUILDS:
                by_path["writer"] = result
    profile_guilds = min(PROFILE_GUILDS, counts[-1]) if counts else 0
    if profile_guilds:
        discord_path = await point("ours", profile_guilds, packet_path="discord")
        if discord_path is not None:
            by_path["discord"] = discord_path
            rows.append(_row("ours, packets through discord.py's send_audio_packet",
                             profile_guilds, discord_path))
        profiled = await point("ours", profile_guilds, step_profile=True)
        if profiled is not None:
            rows.append(_row("ours, per-packet steps profiled", profile_guilds, profiled))

    transcode_guilds = TRANSCODE_GUILDS_QUICK if quick else TRANSCODE_GUILDS
    transcoding: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        result = await point(method, transcode_guilds, mode="transcode")
        if result is not None:
            transcoding[method] = result
            rows.append(_row(f"{METHODS[method]}, MP3 transcoded", transcode_guilds, result))

    notes = [
        f"{seconds:g} s window after {warmup:g} s warm-up; each row a fresh bot process; WebM/Opus "
        "copied in process (no ffmpeg for ours), through the network guard, DAVE on; the stand-in "
        "times packets only (no decryption) in its own process on the same 2 cores.",
        "lateness: against each guild's own schedule (anchor = the median of arrival - k x 20 ms "
        "over its packets in the window); early: packets more than 10 ms before their slot.",
        "CPU by thread, ms per stream-second: the sender / the track readers / the event loop "
        "(guard relay, voice websockets) / the rest.",
        "memory: (bot PSS while playing - PSS connected and idle) / guilds, plus the PSS of the "
        "bot's helper processes per stream: the baselines' ffmpeg children, ours' shared "
        "transcoder worker (all of it, its fixed part included); threads / open files of the bot "
        "process while playing.",
    ]
    for guilds, results in compared.items():
        if len(results) < 2:
            continue
        figures = {
            "lateness p99": {m: r["timing"].get("schedule", {}).get("p99_ms", r["timing"].get("p99_ms", float("nan")))
                             for m, r in results.items()},
            "bot CPU per stream-second": {m: r["bot_cpu_ms_per_stream_second"] for m, r in results.items()},
            "memory per stream": {m: _memory_per_stream(r) for m, r in results.items()},
        }
        for what, by_method in figures.items():
            notes.append(wins_line(f"{what}, {guilds} guilds", by_method, METHODS["ours"]))
    if "writer" in by_path and "discord" in by_path:
        ours_us = _per_packet_us(by_path["writer"], "music-sender")
        theirs_us = _per_packet_us(by_path["discord"], "music-sender")
        notes.append(f"the sender's own packet step against discord.py's send_audio_packet, "
                     f"{profile_guilds} guilds, sender CPU per packet: {fmt(ours_us, 1)} us "
                     f"against {fmt(theirs_us, 1)} us; bot CPU per stream-second "
                     f"{fmt(by_path['writer']['bot_cpu_ms_per_stream_second'], 2)} against "
                     f"{fmt(by_path['discord']['bot_cpu_ms_per_stream_second'], 2)} ms")
    if profiled is not None:
        notes.append(_steps_line(profiled))
    if at_target is not None:
        schedule = at_target["timing"].get("schedule", {})
        p99 = schedule.get("p99_ms", float("nan"))
        late = schedule.get("late_40_share", float("nan"))
        cpu = at_target["bot_cpu_ms_per_stream_second"]
        memory = at_target["bot_pss_delta_mb_per_stream"]
        notes.append(
            f"targets at {TARGET_GUILDS} guilds (ours): p99 lateness <= {TARGET_P99_LATENESS_MS:g} ms: "
            f"{verdict(p99, TARGET_P99_LATENESS_MS)} ({fmt(p99, 2)} ms); no packet more than 40 ms "
            f"late: {verdict(late, TARGET_LATE_40)} ({fmt(100 * late, 3)} %); CPU <= "
            f"{TARGET_CPU_MS:g} ms per stream-second: {verdict(cpu, TARGET_CPU_MS)} ({fmt(cpu, 2)} ms); "
            f"memory <= {TARGET_MB:g} MB per stream: {verdict(memory, TARGET_MB)} ({fmt(memory, 2)} MB)")
    if "ours" in transcoding:
        ours = transcoding["ours"]
        p99 = ours["timing"].get("p99_ms", float("nan"))
        memory = _memory_per_stream(ours)
        others = "; ".join(
            f"{METHODS[m]}: {fmt(r['timing'].get('p99_ms'), 2)} ms, {fmt(_memory_per_stream(r), 2)} MB, "
            f"ffmpeg children {fmt(r.get('ffmpeg_cpu_ms_per_stream_second'), 2)} ms CPU per stream-second"
            for m, r in transcoding.items() if m != "ours")
        notes.append(
            f"targets, {transcode_guilds} guilds transcoding MP3 (ours, each side its own encoder "
            f"settings): inter-arrival p99 <= {TARGET_TRANSCODE_P99_MS:g} ms: "
            f"{verdict(p99, TARGET_TRANSCODE_P99_MS)} ({fmt(p99, 2)} ms); memory <= "
            f"{TARGET_TRANSCODE_MB:g} MB per stream (bot + its shared transcoder worker or "
            f"ffmpeg children): {verdict(memory, TARGET_TRANSCODE_MB)} ({fmt(memory, 2)} MB, of "
            f"which the worker/ffmpeg {fmt(ours.get('ffmpeg_pss_mb_per_stream') or 0.0, 2)} MB PSS; "
            f"{ours.get('shared_transcoder_streams', 0)}/{transcode_guilds} streams in the shared "
            f"worker, its CPU {fmt(ours.get('ffmpeg_cpu_ms_per_stream_second'), 2)} ms per "
            f"stream-second); baselines: {others}")
    if quiet:
        loud = sum(1 for q in quiet if q["idle_share"] < QUIET_IDLE_SHARE)
        notes.append(
            f"each point started once the cores were at least {100 * QUIET_IDLE_SHARE:.0f} % idle "
            f"over 0.5 s (the previous point's processes wound down): waited "
            f"{fmt(min(q['waited_s'] for q in quiet), 1)}-{fmt(max(q['waited_s'] for q in quiet), 1)} s; "
            + (f"{loud} point(s) started after 30 s without it" if loud else "every point got it"))
    notes += [f"failure: {f}" for f in failures]
    return print_table(
        "9. Capacity: guilds copying WebM/Opus in one bot process (and transcoding MP3)",
        ["guilds", "method", "lateness p99 ms", "max ms", "% > 40 ms late", "worst guild p99 ms",
         "early > 10 ms", "inter-arrival p99 ms", "packets recv/slots", "bot CPU cores",
         "ms per stream-s", "marginal ms per stream-s", "sender / readers / loop / rest ms per stream-s",
         "sender us per packet", "MB per stream", "threads / files", "playing at end"],
        rows, notes)

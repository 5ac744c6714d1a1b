"""Row 3: CPU per stream-second and memory per stream, ffmpeg children and the bot separately.

N guilds play the same long tone at once in a fresh bot process (``load_worker``); after a
warm-up, CPU is read from /proc/<pid>/stat (utime + stime) at both ends of a measuring window for
the bot process and every ffmpeg child, and PSS from /proc/<pid>/smaps_rollup in its middle.
Bot memory per stream is (PSS while playing - PSS with the voice clients connected but idle) / N.
Four configurations: ours and FFmpegOpusAudio, each copying WebM/Opus and transcoding MP3.
"""

from __future__ import annotations

from typing import Any

from .common import fmt, print_table, ratio, verdict
from .load import run_worker

MEDIA_WEBM = "load_tone.webm"
MEDIA_MP3 = "load_tone.mp3"
#: far longer than the warm-up + window: with the GIL saturated the worker's sleeps overrun, and
#: the streams must still be playing when the window ends
MEDIA_SECONDS = 40.0
TARGET_FFMPEG_MS = 1.5
TARGET_BOT_MS = 6.0
TARGET_PSS_MB = 12.0


async def run(bench: Any, quick: bool) -> str:
    guilds = 3 if quick else 10
    warmup, seconds = (1.5, 4.0) if quick else (2.0, 10.0)
    configs = [
        ("copy", "ours", MEDIA_WEBM), ("copy", "baseline", MEDIA_WEBM),
        ("transcode", "ours", MEDIA_MP3), ("transcode", "baseline", MEDIA_MP3),
    ]
    results: dict[tuple[str, str], dict[str, Any]] = {}
    failures = []
    for mode, method, media in configs:
        try:
            results[(mode, method)] = await run_worker(
                bench, method=method, mode=mode, url=bench.url(media), guilds=guilds,
                warmup=warmup, seconds=seconds, idle_seconds=warmup)
        except Exception as exc:
            failures.append(f"{method} {mode}: {type(exc).__name__}: {exc}")

    def total_pss(r: dict[str, Any]) -> float:
        return r["ffmpeg_pss_mb_per_stream"] + r["bot_pss_delta_mb_per_stream"]

    rows = []
    for mode in ("copy", "transcode"):
        for method in ("ours", "baseline"):
            r = results.get((mode, method))
            if r is None:
                rows.append([mode, method] + ["-"] * 10)
                continue
            rows.append([
                mode, "ours" if method == "ours" else "baseline FFmpegOpusAudio",
                f"{r['ffmpeg_counted']}/{r['guilds']}",
                fmt(r["ffmpeg_cpu_ms_per_stream_second"], 2), fmt(r["bot_cpu_ms_per_stream_second"], 2),
                fmt(r["bot_cpu_marginal_ms_per_stream_second"], 2),
                fmt(r["ffmpeg_pss_mb_mean"]), fmt(r["ffmpeg_private_mb_mean"]),
                fmt(r["bot_pss_delta_mb_per_stream"], 2),
                fmt(total_pss(r)), str(r["timing"].get("sequence_gaps", "-")),
                "-" if r["underruns"] is None else str(r["underruns"]),
            ])
        o, b = results.get((mode, "ours")), results.get((mode, "baseline"))
        if o and b:
            rows.append([mode, "ratio baseline / ours", "",
                         ratio(b["ffmpeg_cpu_ms_per_stream_second"], o["ffmpeg_cpu_ms_per_stream_second"]),
                         ratio(b["bot_cpu_ms_per_stream_second"], o["bot_cpu_ms_per_stream_second"]),
                         ratio(b["bot_cpu_marginal_ms_per_stream_second"],
                               o["bot_cpu_marginal_ms_per_stream_second"]),
                         ratio(b["ffmpeg_pss_mb_mean"] or float("nan"), o["ffmpeg_pss_mb_mean"] or float("nan")),
                         "", "", ratio(total_pss(b), total_pss(o)), "", ""])
    notes = [f"{guilds} guilds at once per configuration, {seconds:g} s window after {warmup:g} s "
             "warm-up, each configuration in a fresh bot process; the stand-in runs in another.",
             "bot CPU minus idle: the process's CPU with the same voice clients connected and "
             "nothing playing is subtracted (heartbeats, the event loop).",
             "PSS splits shared pages (the static ffmpeg's code) between the processes mapping "
             "them, so it falls as streams are added; private = what one more ffmpeg really adds. "
             "total PSS = ffmpeg PSS of all children / streams + bot PSS per stream.",
             "ours copies WebM/Opus in the bot process (no ffmpeg child: 'ffmpeg measured' 0/N); "
             "ffmpeg CPU is per stream-second over all streams."]
    o = results.get(("copy", "ours"))
    if o:
        notes.append(
            f"targets (ours, passthrough): ffmpeg <= {TARGET_FFMPEG_MS:g} ms/stream-s: "
            f"{verdict(o['ffmpeg_cpu_ms_per_stream_second'], TARGET_FFMPEG_MS)} "
            f"({fmt(o['ffmpeg_cpu_ms_per_stream_second'], 2)}); bot <= {TARGET_BOT_MS:g} ms/stream-s: "
            f"{verdict(o['bot_cpu_ms_per_stream_second'], TARGET_BOT_MS)} "
            f"({fmt(o['bot_cpu_ms_per_stream_second'], 2)}); PSS <= {TARGET_PSS_MB:g} MB/stream: "
            f"{verdict(total_pss(o), TARGET_PSS_MB)} ({fmt(total_pss(o))})")
    notes.append("bot idle (voice clients connected, nothing playing): " + ", ".join(
        f"{m} {mode} {fmt(r['bot_pss_idle_mb'])} MB PSS, {fmt(100 * r['bot_cpu_idle_share'])}% of a core"
        for (mode, m), r in results.items()))
    notes += [f"failure: {f}" for f in failures]
    return print_table(
        "3. CPU per stream-second and memory per stream",
        ["mode", "method", "ffmpeg measured", "ffmpeg CPU ms/stream-s", "bot CPU ms/stream-s",
         "bot CPU ms/stream-s minus idle", "ffmpeg PSS MB", "ffmpeg private MB",
         "bot PSS MB/stream", "total PSS MB/stream", "RTP seq gaps", "underrun frames"],
        rows, notes)

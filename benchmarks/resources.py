"""Row 3: CPU per stream-second and memory per stream, ffmpeg children and the bot separately.

N guilds play the same long tone at once in a fresh bot process (``load_worker``); after a
warm-up, CPU is read from /proc/<pid>/stat (utime + stime) at both ends of a measuring window for
the bot process and every ffmpeg child, and PSS from /proc/<pid>/smaps_rollup in its middle.
Bot memory per stream is (PSS while playing - PSS with the voice clients connected but idle) / N.
Methods: ours (its streams through the network guard, as the cog's always are), FFmpegOpusAudio
and discord.py's example pattern (FFmpegPCMAudio + PCMVolumeTransformer: ffmpeg decodes, discord.py
encodes in the bot), each copying WebM/Opus (the PCM pattern cannot: it decodes and re-encodes)
and transcoding MP3; the transcodes three times: each side with its own libopus loss settings
(ours FEC off, discord.py's FEC on with 15 % expected loss: the choice), then all with
discord.py's, then all with ours (like for like).
"""

from __future__ import annotations

from typing import Any

from .botside import encoder_label
from .common import fmt, print_table, ratio, verdict, wins_line
from .load import run_worker

MEDIA_WEBM = "load_tone.webm"
MEDIA_MP3 = "load_tone.mp3"
#: far longer than the warm-up + window: with the GIL saturated the worker's sleeps overrun, and
#: the streams must still be playing when the window ends
MEDIA_SECONDS = 40.0
TARGET_FFMPEG_MS = 1.5
TARGET_BOT_MS = 6.0
TARGET_PSS_MB = 12.0
#: worker method -> label
METHODS = {
    "ours": "ours (through the network guard)",
    "baseline": "baseline FFmpegOpusAudio",
    "pcm": "baseline FFmpegPCMAudio + PCMVolumeTransformer",
}


async def run(bench: Any, quick: bool) -> str:
    guilds = 3 if quick else 10
    warmup, seconds = (1.5, 4.0) if quick else (2.0, 10.0)
    setups: list[tuple[str, str | None, str]] = [("copy", None, MEDIA_WEBM)] + [
        ("transcode", encoder, MEDIA_MP3) for encoder in (None, "discord", "ours")]
    results: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    failures = []
    for mode, encoder, media in setups:
        for method in METHODS:
            try:
                results[(mode, encoder, method)] = await run_worker(
                    bench, method=method, mode=mode, url=bench.url(media), guilds=guilds,
                    warmup=warmup, seconds=seconds, idle_seconds=warmup, encoder=encoder)
            except Exception as exc:
                failures.append(f"{method} {mode} {encoder_label(encoder)}: {type(exc).__name__}: {exc}")

    def total_pss(r: dict[str, Any]) -> float:
        return r["ffmpeg_pss_mb_per_stream"] + r["bot_pss_delta_mb_per_stream"]

    rows = []
    notes_wins = []
    for mode, encoder, _media in setups:
        label = mode if mode == "copy" else f"transcode, {encoder_label(encoder)}"
        for method in METHODS:
            r = results.get((mode, encoder, method))
            if r is None:
                rows.append([label, METHODS[method]] + ["-"] * 10)
                continue
            rows.append([
                label, METHODS[method],
                f"{r['ffmpeg_counted']}/{r['guilds']}",
                fmt(r["ffmpeg_cpu_ms_per_stream_second"], 2), fmt(r["bot_cpu_ms_per_stream_second"], 2),
                fmt(r["bot_cpu_marginal_ms_per_stream_second"], 2),
                fmt(r["ffmpeg_pss_mb_mean"]), fmt(r["ffmpeg_private_mb_mean"]),
                fmt(r["bot_pss_delta_mb_per_stream"], 2),
                fmt(total_pss(r)), str(r["timing"].get("sequence_gaps", "-")),
                "-" if r["underruns"] is None else str(r["underruns"]),
            ])
        o = results.get((mode, encoder, "ours"))
        for method in ("baseline", "pcm"):
            b = results.get((mode, encoder, method))
            if not (o and b):
                continue
            rows.append([label, f"ratio {METHODS[method].removeprefix('baseline ')} / ours", "",
                         ratio(b["ffmpeg_cpu_ms_per_stream_second"], o["ffmpeg_cpu_ms_per_stream_second"]),
                         ratio(b["bot_cpu_ms_per_stream_second"], o["bot_cpu_ms_per_stream_second"]),
                         ratio(b["bot_cpu_marginal_ms_per_stream_second"],
                               o["bot_cpu_marginal_ms_per_stream_second"]),
                         ratio(b["ffmpeg_pss_mb_mean"] or float("nan"), o["ffmpeg_pss_mb_mean"] or float("nan")),
                         "", "", ratio(total_pss(b), total_pss(o)), "", ""])
        done = {METHODS[m]: results[(mode, encoder, m)] for m in METHODS if (mode, encoder, m) in results}
        notes_wins.append(wins_line(
            f"CPU per stream-second (bot + ffmpeg), {label}",
            {m: r["bot_cpu_ms_per_stream_second"] + r["ffmpeg_cpu_ms_per_stream_second"] for m, r in done.items()},
            METHODS["ours"]))
        notes_wins.append(wins_line(f"PSS per stream, {label}",
                                    {m: total_pss(r) for m, r in done.items()}, METHODS["ours"]))
    notes = [f"{guilds} guilds at once per configuration, {seconds:g} s window after {warmup:g} s "
             "warm-up, each configuration in a fresh bot process; the stand-in runs in another.",
             "bot CPU minus idle: the process's CPU with the same voice clients connected and "
             "nothing playing is subtracted (heartbeats, the event loop).",
             "PSS splits shared pages (the static ffmpeg's code) between the processes mapping "
             "them, so it falls as streams are added; private = what one more ffmpeg really adds. "
             "total PSS = ffmpeg PSS of all children / streams + bot PSS per stream.",
             "ours copies WebM/Opus in the bot process (no ffmpeg child: 'ffmpeg measured' 0/N); "
             "ffmpeg CPU is per stream-second over all streams."]
    notes += notes_wins
    o = results.get(("copy", None, "ours"))
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
        for (mode, encoder, m), r in results.items() if encoder in (None, "discord")))
    notes += [f"failure: {f}" for f in failures]
    return print_table(
        "3. CPU per stream-second and memory per stream",
        ["mode", "method", "ffmpeg measured", "ffmpeg CPU ms/stream-s", "bot CPU ms/stream-s",
         "bot CPU ms/stream-s minus idle", "ffmpeg PSS MB", "ffmpeg private MB",
         "bot PSS MB/stream", "total PSS MB/stream", "RTP seq gaps", "underrun frames"],
        rows, notes)

"""Row 4: many guilds playing at once in one bot process.

For each guild count a fresh bot process (``load_worker``) plays the same WebM/Opus tone (copied)
into every guild; the stand-in, in its own process so that receiving does not compete with the
bot for the GIL, records arrival times. Over the measuring window: inter-arrival p50/p99 over all
guilds' packets, the share of intervals above 40 ms (late), lateness against each guild's own
20 ms schedule (standin/schedule.py: p99, max, per-guild p99, packets early), packets received vs
expected and vs the guilds' own schedule slots in the window, and the CPU the bot process and the ffmpeg children used (in cores: 1.0 = one core busy).

The 50-guild copy again over https (the stand-in's own CA; ours fetches through the network
guard's CONNECT tunnel and verifies the certificate, the baselines' ffmpeg verifies it with
-tls_verify 1 -ca_file): TLS decryption then costs ours CPU in the bot process.

One transcoding configuration too: 30 guilds playing an MP3 tone (ffmpeg decodes and encodes
Opus for each), with the target "p99 inter-arrival <= 25 ms" for ours, three times: each side
with its own libopus loss settings (ours FEC off; discord.py FEC on, 15 % expected loss: the
choice), then every side with discord.py's, then every side with ours (like for like).

Three methods each time: ours (through the network guard, as the cog always plays), the usual
FFmpegOpusAudio pattern, and discord.py's example pattern (FFmpegPCMAudio +
PCMVolumeTransformer: ffmpeg decodes to PCM, discord.py encodes every frame in the bot).
"""

from __future__ import annotations

from typing import Any

from .botside import encoder_label
from .common import fmt, median, print_table, verdict, wins_line
from .load import run_worker
from .resources import MEDIA_MP3, MEDIA_WEBM

TRANSCODE_GUILDS = 30
TRANSCODE_GUILDS_QUICK = 10
#: worker method -> label: ours through the guard, and the two baselines
METHODS = {
    "ours": "ours (through the network guard)",
    "baseline": "baseline FFmpegOpusAudio",
    "pcm": "baseline FFmpegPCMAudio + PCMVolumeTransformer",
}
TARGET_TRANSCODE_P99_MS = 25.0
TARGET_GUILDS = 150
TARGET_P99_MS = 25.0
TARGET_LATE_PERCENT = 0.1
TARGET_TRIALS = 3
#: guilds of the https copy configuration (the stand-in's own CA, every method verifying it)
HTTPS_GUILDS = 50


async def run(bench: Any, quick: bool) -> str:
    counts = [1, 25, 50] if quick else [1, 25, 50, 100, 150]
    warmup, seconds = (1.5, 4.0) if quick else (2.0, 8.0)
    # (mode, media, guilds, encoder settings, over https)
    configurations: list[tuple[str, str, int, str | None, bool]] = [
        ("copy", MEDIA_WEBM, guilds, None, False) for guilds in counts]
    if not quick:
        # the target row: the machine's noise moves one 8 s window a lot (p99 26 ms in one run,
        # 53 ms in the next), so the target is judged on the median of three trials, ours and
        # the baseline alternating in each
        configurations += [("copy", MEDIA_WEBM, TARGET_GUILDS, None, False)] * (TARGET_TRIALS - 1)
    # the same copy over https: ours decrypts TLS in the bot process (through the guard's
    # tunnel), the baselines' ffmpeg children do it for them
    configurations.append(("copy", MEDIA_WEBM, HTTPS_GUILDS, None, True))
    transcode_guilds = TRANSCODE_GUILDS_QUICK if quick else TRANSCODE_GUILDS
    configurations += [("transcode", MEDIA_MP3, transcode_guilds, encoder, False)
                       for encoder in (None, "discord", "ours")]
    rows = []
    failures = []
    sender_notes: list[str] = []  # how ours' sender kept time, per configuration
    transcode_p99: dict[str, float] = {}
    at_target: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}  # 150-guild copy trials
    p99_by_config: dict[tuple[str, int, str | None, bool], dict[str, float]] = {}
    for mode, media, guilds, encoder, https in configurations:
        for method in METHODS:
            try:
                r = await run_worker(bench, method=method, mode=mode,
                                     url=bench.url(media, https=https),
                                     guilds=guilds, warmup=warmup, seconds=seconds,
                                     measure_memory=False, timing_only=True, encoder=encoder)
            except Exception as exc:
                failures.append(f"{method} {mode}{' https' if https else ''} x{guilds}: "
                                f"{type(exc).__name__}: {exc}")
                continue
            t = r["timing"]
            p99_by_config.setdefault((mode, guilds, encoder, https), {})[METHODS[method]] = t.get(
                "p99_ms", float("nan"))
            if mode == "transcode" and encoder is None:
                transcode_p99[method] = t.get("p99_ms", float("nan"))
            elif mode == "copy" and guilds == TARGET_GUILDS and not https:
                at_target[method].append(t)
            moments = t.get("late_moments", [])
            if method == "ours":
                sender_notes.append(
                    f"{mode}{' https' if https else ''} x{guilds}"
                    f"{f' ({encoder_label(encoder)})' if mode == 'transcode' else ''}: "
                    f"{r.get('sender_held_back', '-')} held back, "
                    f"{r.get('sender_skipped_slots', '-')} slots skipped")
            sched = t.get("schedule", {})
            rows.append([
                ("WebM/Opus copy" if mode == "copy" else "MP3 transcode")
                + (", https" if https else ""),
                encoder_label(encoder) if mode == "transcode" else "-",
                str(guilds), METHODS[method],
                fmt(t.get("p50_ms"), 2), fmt(t.get("p99_ms"), 2), fmt(t.get("max_ms"), 1),
                fmt(100 * t["late_share"], 3) if "late_share" in t else "-",
                f"{t['packets']}/{t.get('expected', '-')}",
                fmt(sched.get("p99_ms"), 2), fmt(sched.get("max_ms"), 1),
                f"{fmt(sched.get('guild_p99_median_ms'), 2)} / {fmt(sched.get('guild_p99_worst_ms'), 2)}",
                f"{sched.get('early_10', '-')} / {sched.get('reanchored_early_10', '-')}",
                f"{sched.get('frames_later', '-')} / {sched.get('frames_earlier', '-')} ({sched.get('shift_frames_max', '-')})",
                f"{sched.get('packets', '-')}/{sched.get('own_schedule_slots', '-')}",
                str(t.get("sequence_gaps", "-")),
                str(r["sender_drops"]),
                fmt(r["bot_cpu_share"], 2), fmt(r["ffmpeg_cpu_share"], 2),
                "-" if r["underruns"] is None else str(r["underruns"]),
                f"{r['still_playing']}/{r['guilds']}", fmt(r["warmup_seconds"], 1),
                str(r["unexpected_events"]),
                f"{len(moments)} ({max((m[1] for m in moments), default=0)})",
            ])
    notes = [f"{seconds:g} s window after {warmup:g} s warm-up (a longer 'warm-up took' means the "
             "bot's event loop could not get the GIL); each row a fresh bot process; the stand-in "
             "(receiver) runs in a separate process on the same 2 cores and only times these "
             "packets (no decryption), with a large UDP receive buffer: RTP gaps there are losses.",
             "dropped by sender: discord.py's 'A packet has been dropped' (socket refused it)."]
    if "ours" in transcode_p99:
        notes.append(f"target (ours, {transcode_guilds} guilds transcoding MP3, each side its own "
                     f"encoder settings) inter-arrival p99 <= "
                     f"{TARGET_TRANSCODE_P99_MS:g} ms: {verdict(transcode_p99['ours'], TARGET_TRANSCODE_P99_MS)} "
                     f"({fmt(transcode_p99['ours'], 2)} ms; FFmpegOpusAudio "
                     f"{fmt(transcode_p99.get('baseline', float('nan')), 2)} ms, FFmpegPCMAudio "
                     f"{fmt(transcode_p99.get('pcm', float('nan')), 2)} ms)")
    for (mode, guilds, encoder, https), figures in p99_by_config.items():
        what = (f"{mode}{' https' if https else ''} x{guilds}"
                + (f" ({encoder_label(encoder)})" if mode == "transcode" else ""))
        notes.append(wins_line(f"p99 inter-arrival, {what}", figures, METHODS["ours"]))
    if at_target["ours"]:
        def med(method: str, key: str, scale: float = 1.0) -> float:
            values = [scale * t[key] for t in at_target[method] if key in t]
            return median(values) if values else float("nan")

        p99, late = med("ours", "p99_ms"), med("ours", "late_share", 100)
        notes.append(
            f"targets (ours, {TARGET_GUILDS} guilds, copy; median of {len(at_target['ours'])} "
            f"trial(s)): p99 <= {TARGET_P99_MS:g} ms: {verdict(p99, TARGET_P99_MS)} ({fmt(p99, 2)} ms; "
            f"baseline {fmt(med('baseline', 'p99_ms'), 2)} ms); under {TARGET_LATE_PERCENT:g}% late by "
            f"more than 40 ms: {verdict(late, TARGET_LATE_PERCENT)} ({fmt(late, 3)}%; baseline "
            f"{fmt(med('baseline', 'late_share', 100), 3)}%)")
    notes.append(f"https: WebM/Opus copy x{HTTPS_GUILDS} served over TLS by the stand-in (its own "
                 "CA), every method verifying the certificate: ours through the network guard "
                 "(CONNECT tunnel; TLS is decrypted in the bot process, so it counts in 'bot CPU'), "
                 "the baselines' ffmpeg children with -tls_verify 1 -ca_file (their TLS counts in "
                 "'ffmpeg CPU').")
    notes.append("late moments: the distinct moments (50 ms apart or more) in the window at which "
                 "some guild's packet came more than 40 ms late, and in brackets the most guilds one "
                 "moment hit; a moment hitting every guild at once is a stall of the whole machine "
                 "(both processes share 2 cores), not of one stream.")
    notes.append("schedule: each packet's lateness against its own guild's 20 ms schedule (slot k "
                 "= anchor + k x 20 ms, k counted by RTP sequence number, anchor the median of "
                 "arrival - k x 20 ms, so a late packet is not excused by the next one's short "
                 "interval); early > 10 ms: packets more than half a frame ahead of their slot "
                 "(catch-up sending) against the fixed anchor / the re-anchored schedule: with frames "
                 "shifted later, packets before the shift count early against the fixed anchor "
                 "without having been sent ahead; the re-anchored count is the catch-up. Schedule shifts: whole frames each guild's schedule moved in "
                 "the window, later (a frame the sender dropped, as ours does after a tick more "
                 "than a frame late instead of bursting: against the fixed anchor the rest of the "
                 "window then counts 20 ms late) or earlier (frames sent ahead); the stand-in's "
                 "schedule figures also include the same figures against a re-anchored schedule "
                 "(reanchored_*). recv/expected counts window x 50/s per guild; "
                 "recv/own-schedule slots counts each guild's own slots inside the window, which "
                 "is what a sender exactly on time delivers: guilds sending in the same (sub-)tick "
                 "all gain or lose the window's boundary packet together, so the first can be off "
                 "by up to a quarter (phased) or all of the guilds, the second only by late, "
                 "early or lost packets.")
    if sender_notes:
        notes.append("ours' sender over the whole run (warm-up included): packets a guild held "
                     "back a frame because its previous one went out under 10 ms before (a tick "
                     "ran late past it; that guild's schedule moves a frame later), and slots "
                     "skipped by every guild after a tick more than a frame late: "
                     + "; ".join(sender_notes))
    notes += [f"failure: {f}" for f in failures]
    return print_table(
        "4. Guilds playing at once in one bot process",
        ["input", "encoder (libopus loss settings)", "guilds", "method", "inter-arrival p50 ms", "p99 ms", "max ms", "% > 40 ms",
         "packets recv/expected", "schedule lateness p99 ms", "schedule max ms",
         "per-guild p99 median / worst ms", "early > 10 ms (fixed / re-anchored)",
         "schedule shifts later / earlier, frames (most in a guild)", "recv/own-schedule slots", "RTP seq gaps", "dropped by sender", "bot CPU cores", "ffmpeg CPU cores",
         "underrun frames", "playing at window end", "warm-up took s",
         "track ends/errors early", "late moments (most guilds hit)"],
        rows, notes)

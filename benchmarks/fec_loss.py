"""Row: in-band FEC under packet loss, what the listener loses with and without it.

The cog transcodes with libopus' in-band FEC off; discord.py's encoder (and FFmpegOpusAudio's
ffmpeg arguments) turn it on with 15 % expected loss. The bot plays the same MP3 through ours with
each setting (``botside.encoder_for_ours``) into the stand-in, over real UDP; the stand-in then
drops received packets after the fact with seeded patterns (``standin.loss``: random and in
bursts, 5 % and 15 %, the same patterns for both settings) and decodes as a Discord client would,
rebuilding a lost frame from the next packet's FEC data where there is some (``standin.listener``).

Two sources: a steady tone (music-like: libopus keeps it out of the SILK layer's voice activity, so
FEC has little to carry) and a voice-like buzz (harmonics of a 110-170 Hz gliding pitch, 4
syllables a second), the content in-band FEC is made for.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
from pathlib import Path
from typing import Any

from music.audio.source import ChainSource
from standin.listener import CLOSE_SNR_DB
from standin.loss import BURSTS, DEFAULT_MEAN_BURST, RANDOM, LossModel

from .botside import ChainEvents, encoder_for_ours, open_stream, play_ours
from .common import fmt, generate_tone, print_table

SECONDS = 4.0
TONE_HZ = 440.0
#: (label, file name) of the sources
SOURCES = (("tone 440 Hz", "fec_tone.mp3"), ("voice-like", "fec_voice.mp3"))
#: the encoder settings compared, by botside.ENCODER_SETTINGS name
ENCODERS = (("FEC on, 15 % (discord.py's)", "discord"), ("FEC off (ours)", "ours"))
MODELS = [LossModel(kind, rate) for rate in (0.05, 0.15) for kind in (RANDOM, BURSTS)]
#: a voice-like signal: three harmonics of a pitch gliding 110-170 Hz three times a second, with
#: a 4 Hz syllable envelope that falls to silence between syllables
VOICE_EXPRESSION = (
    "0.35*pow(max(0,sin(2*PI*2*t)),2)*("
    "sin(2*PI*(140*t-10/PI*cos(2*PI*3*t)))"
    "+0.5*sin(4*PI*(140*t-10/PI*cos(2*PI*3*t)))"
    "+0.3*sin(6*PI*(140*t-10/PI*cos(2*PI*3*t))))"
)


def make_voice_like(ffmpeg: str, path: Path, seconds: float) -> Path:
    if path.exists():
        return path
    source = f"aevalsrc='{VOICE_EXPRESSION}':s=48000:c=stereo:d={seconds}"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
                    "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3", str(path)],
                   check=True, timeout=120)
    return path


def _make_media(ffmpeg: str, media_dir: Path) -> None:
    generate_tone(ffmpeg, media_dir / SOURCES[0][1], TONE_HZ, SECONDS)
    make_voice_like(ffmpeg, media_dir / SOURCES[1][1], SECONDS)


async def _play_transcoded(bench: Any, url: str, encoder: str) -> None:
    events = ChainEvents()
    chain = ChainSource(events)
    with encoder_for_ours(encoder):
        stream = await open_stream(bench.ffmpeg, url, passthrough=False, proxy=bench.proxy)
    chain.play_now(stream, "fec")
    play_ours(bench.vc, chain)
    try:
        await events.wait_for("track_end", "fec", SECONDS + 15)
    finally:
        bench.vc.stop()


def _figure(value: float) -> str:
    return "lossless" if math.isinf(value) else fmt(value)


def _verdicts(source: str, by_case: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Which setting leaves the listener fewer damaged frames, case by case, for one source."""
    on, off = ENCODERS[0][0], ENCODERS[1][0]
    parts = []
    for case, heard in by_case.items():
        a, b = heard[on], heard[off]
        if a["damaged"] == b["damaged"]:
            winner = "level"
        else:
            winner = "FEC on" if a["damaged"] < b["damaged"] else "FEC off"
        parts.append(f"{case}: {winner} ({a['damaged']} vs {b['damaged']} damaged, "
                     f"{_figure(a['snr_db'])} vs {_figure(b['snr_db'])} dB)")
    return f"{source}, FEC on vs off: " + "; ".join(parts)


async def run(bench: Any, quick: bool) -> str:
    seeds = 10 if quick else 20
    await asyncio.to_thread(_make_media, bench.ffmpeg, bench.media_dir)
    encoder_rows: list[list[str]] = []
    loss_rows: list[list[str]] = []
    notes: list[str] = []
    failures: list[str] = []
    models = [[m.kind, m.rate, m.mean_burst] for m in MODELS]
    for source, name in SOURCES:
        by_case: dict[str, dict[str, dict[str, Any]]] = {}
        for label, encoder in ENCODERS:
            await bench.clear()
            try:
                await _play_transcoded(bench, bench.url(name), encoder)
                await asyncio.sleep(0.3)  # the last datagrams
                got = await bench.standin.call(
                    "listen_under_loss", guild_id=bench.guild_id, models=models, seeds=seeds,
                    source=str(bench.media_dir / name), ffmpeg=bench.ffmpeg, timeout=300)
            except Exception as exc:
                failures.append(f"{source}, {label}: {type(exc).__name__}: {exc}")
                continue
            modes = ", ".join(f"{mode} {count}" for mode, count in sorted(got["modes"].items()))
            encoder_rows.append([source, label, str(got["packets"]), fmt(got["bytes_per_packet"]),
                                 modes, str(got["with_lbrr"]), str(got["sequence_gaps"]),
                                 _figure(got["lossless_vs_source_db"])])
            for case, heard in got["heard"].items():
                by_case.setdefault(case, {})[label] = heard
                loss_rows.append([
                    source, case, label, str(heard["lost"]), str(heard["fec_decoded"]),
                    str(heard["recovered"]), str(heard["concealed"]),
                    f"{heard['damaged']} / {heard['frames']}", _figure(heard["snr_db"]),
                ])
        if by_case and all(len(v) == len(ENCODERS) for v in by_case.values()):
            notes.append(_verdicts(source, by_case))
    encoder_notes = [
        f"ours transcoding a {SECONDS:g} s MP3 to Opus (128 kb/s VBR stereo, 20 ms frames) with "
        "each setting, sent over UDP to the stand-in; modes from each packet's TOC byte (RFC 6716 "
        "3.1); with LBRR = the packet carries in-band FEC data for the frame before (the SILK "
        "header flag WebRTC reads).",
        "CELT-only packets carry no FEC at all: with FEC on and 15 % expected loss libopus leaves "
        "CELT for hybrid (SILK + CELT) even at 128 kb/s, so the setting changes how everything is "
        "coded, not only what is added; its bitrate cost is in bytes per packet (VBR, same target).",
        "no loss: the lossless decode against the MP3 decoded by ffmpeg, aligned by "
        "cross-correlation: a waveform SNR, rough for a perceptual codec, but the same yardstick "
        "for both settings (what FEC costs a listener who loses nothing).",
    ]
    print_table("FEC under packet loss: what the encoder sent", [
        "source", "encoder", "packets", "bytes per packet", "packets by mode", "with LBRR",
        "lost on the wire", "no loss: SNR vs the MP3 dB"], encoder_rows, encoder_notes + [f"failure: {f}" for f in failures])
    loss_notes = [
        f"each loss case: {seeds} seeded patterns over the received packets (the same patterns "
        f"for both settings; bursts: Gilbert model, mean {DEFAULT_MEAN_BURST:g} packets), summed; "
        "the listener decodes with libopus as a Discord client does, rebuilding a lost frame "
        "from the next packet's FEC data when that packet arrived and has some, else concealing.",
        f"recovered = FEC-decoded frames within {CLOSE_SNR_DB:g} dB SNR of the lossless frame; "
        f"damaged = frames of the whole decode (lost or after a loss) further than "
        f"{CLOSE_SNR_DB:g} dB from it; SNR = whole decode against the lossless decode.",
    ]
    return print_table("FEC under packet loss: what the listener loses", [
        "source", "loss", "encoder", "frames lost", "FEC decoded", "recovered by FEC",
        "concealed", "frames damaged", "SNR vs lossless dB"], loss_rows, loss_notes + notes)

"""The offline demo: a real Red bot plays a short playlist into a voice channel of the stand-in.

    scripts/demo                      (creates ./.venv on first use, then runs this module)
    python -m standin.demo [--tracks 2..4] [--output demo-output]

What it does, with no Discord token and no internet (Downloader's pip needs the package index or
pip's cache, see the report it prints):

1. generates 2-4 tone tracks of different frequencies (WebM/Opus and MP3 mixed) and serves them
   over HTTP on 127.0.0.1;
2. starts the Discord stand-in and an unmodified Red bot (JSON backend, temporary data dir);
3. installs the cog the way an owner does, through Downloader, from a git snapshot of this
   checkout (standin.install), and allows loopback media (`musicset network allow 127.0.0.0/8`);
4. a member joins the voice channel and `!play`s each track; the demo waits until the queue has
   played;
5. prints the chat transcript, a table of what the voice channel heard per track, and writes the
   received audio to `<output>/received.wav` (48 kHz mono 16-bit).

Exit code 0 when every track was heard at its frequency, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiohttp import web

from .analysis import (
    SAMPLE_RATE,
    SILENCE_RMS,
    Segment,
    dominant_frequency,
    rms,
    segment_by_frequency,
)
from .install import REPO_ROOT, InstallError, snapshot_and_install
from .process import stop_red
from .server import Standin
from .state import Channel

# name, frequency (Hz): different notes, WebM/Opus (copied to Discord) and MP3 (transcoded) mixed
PLAYLIST: list[tuple[str, float]] = [
    ("a4-440hz.webm", 440.0),
    ("e5-660hz.mp3", 660.0),
    ("c5-523hz.webm", 523.25),
    ("a5-880hz.mp3", 880.0),
]
TRACK_SECONDS = 2.5
FREQUENCY_TOLERANCE_HZ = 15.0
# a track counts as heard when at least this share of it reached the channel at its frequency
MIN_HEARD_SHARE = 0.6
PREFIX = "!"

_CODECS = {
    ".webm": ["-c:a", "libopus", "-b:a", "96k", "-frame_duration", "20", "-f", "webm"],
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"],
}


def generate_tone(path: Path, hz: float, seconds: float, title: str) -> Path:
    """A sine tone at half amplitude, encoded by the suffix of `path` (bundled static ffmpeg)."""
    import imageio_ffmpeg

    # peak 0.5: -9 dBFS RMS, loud and clear of clipping after Opus
    source = f"aevalsrc='0.5*sin(2*PI*{hz}*t)':s=48000:c=stereo:d={seconds}"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", source, "-metadata", f"title={title}",
         *_CODECS[path.suffix], str(path)],
        check=True, timeout=60,
    )
    return path


@contextlib.asynccontextmanager
async def serve_directory(root: Path):
    """Serve `root` at http://127.0.0.1:<port>/media/ on this event loop; yields the base URL."""
    app = web.Application()
    app.router.add_static("/media/", str(root))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/media"
    finally:
        await runner.cleanup()


class RedBot:
    """One unmodified Red bot subprocess (`python -m standin.run_red`) on a fresh JSON instance.

    A trimmed copy of tests/support/redbot.RedProcess: the stand-in must not import from tests/."""

    def __init__(self, standin: Standin, root: Path, name: str = "demo_red") -> None:
        self.standin = standin
        self.root = root
        self.name = name
        self.log_path = root / "red.log"
        self.proc: asyncio.subprocess.Process | None = None

    def _write_instance(self) -> None:
        # what `redbot-setup --no-prompt --backend json` writes, under our own XDG_CONFIG_HOME
        config = self.root / "config" / "Red-DiscordBot" / "config.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({self.name: {
            "DATA_PATH": str(self.root / "data"), "COG_PATH_APPEND": "cogs",
            "CORE_PATH_APPEND": "core", "STORAGE_TYPE": "JSON", "STORAGE_DETAILS": {},
        }}, indent=4))

    async def start(self, channel: Channel, timeout: float = 90.0) -> None:
        self._write_instance()
        env = {
            **os.environ, **self.standin.red_env(),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "xdg-data"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1", "COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb",
        }
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "standin.run_red", self.name, "--token", self.standin.token,
                "--prefix", PREFIX, "--no-prompt",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                env=env, cwd=str(REPO_ROOT),
            )
        owner = self.standin.guilds[channel.guild_id].members[self.standin.owner.id]
        deadline = time.monotonic() + timeout
        # a message said before Red is connected would never reach it: wait for IDENTIFY, then
        # one ping is enough, because Red queues commands until it is ready
        while not self.standin.gateway.identify_count:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Red did not connect (exit code {self.proc.returncode}); see {self.log_path}")
            with contextlib.suppress(TimeoutError):
                await self.standin.wait_for_session(timeout=1.0)
        probe = await self.standin.say(owner, channel, f"{PREFIX}ping")
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(f"Red exited with code {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(TimeoutError):
                await self.standin.wait_for_message(channel, lambda m: m.content == "Pong.",
                                                    after=probe, timeout=1.0)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Red was not ready after {timeout:.0f} s; see {self.log_path}")

    async def stop(self) -> int | None:
        """SIGINT (Red's graceful shutdown), then SIGTERM, then SIGKILL."""
        return await stop_red(self.proc)


@dataclass
class TrackReport:
    name: str
    expected_hz: float
    heard_seconds: float
    frequency: float  # dominant frequency of what was heard for it (0.0 if nothing)
    level_dbfs: float  # RMS level (-inf if nothing)
    frames_before: int | None  # packets between the previous track's tone and this one's

    @property
    def ok(self) -> bool:
        return (abs(self.frequency - self.expected_hz) <= FREQUENCY_TOLERANCE_HZ
                and self.heard_seconds >= MIN_HEARD_SHARE * TRACK_SECONDS)


def match_tracks(segments: list[Segment], expected: Sequence[tuple[str, float]],
                 packet_pcm: list[np.ndarray | None]) -> list[TrackReport]:
    """Pair each expected track, in order, with the tone segments heard at its frequency after the
    previous track's."""
    reports: list[TrackReport] = []
    cursor = 0
    previous_last: int | None = None
    for name, hz in expected:
        mine: list[Segment] = []
        index = cursor
        # skip stray segments (a transient) until this track's tone, then take its run
        while index < len(segments) and abs(segments[index].frequency - hz) > FREQUENCY_TOLERANCE_HZ:
            index += 1
        while index < len(segments) and abs(segments[index].frequency - hz) <= FREQUENCY_TOLERANCE_HZ:
            mine.append(segments[index])
            index += 1
        if not mine:
            reports.append(TrackReport(name, hz, 0.0, 0.0, -math.inf, None))
            continue
        cursor = index
        samples = np.concatenate([
            s for seg in mine for s in packet_pcm[seg.first_packet: seg.last_packet + 1] if s is not None
        ])
        level = rms(samples)
        frames_before = None if previous_last is None else mine[0].first_packet - previous_last - 1
        previous_last = mine[-1].last_packet
        reports.append(TrackReport(
            name, hz, sum(seg.duration for seg in mine), dominant_frequency(samples),
            20 * math.log10(level) if level > 0 else -math.inf, frames_before,
        ))
    return reports


def _silent_tail(packet_pcm: list[np.ndarray | None]) -> int:
    """Frames of silence (or undecodable) at the end of the recording."""
    count = 0
    for samples in reversed(packet_pcm):
        if samples is not None and rms(samples) >= SILENCE_RMS:
            break
        count += 1
    return count


def _keep_log(log: Path, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    if log.exists():
        shutil.copy(log, output / "red.log")


def write_wav(path: Path, pcm: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm16 = (np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm16.tobytes())


def transcript(standin: Standin, channel: Channel, since_id: int = 0) -> list[str]:
    lines = []
    for message in standin.channel_messages(channel):
        if message.id <= since_id:
            continue
        text = message.text or "(no text)"
        first, *rest = text.splitlines() or [""]
        lines.append(f"  {message.author.name:>10}: {first}")
        lines += [f"  {'':>10}  {line}" for line in rest]
    return lines


def table(reports: list[TrackReport]) -> list[str]:
    header = f"  {'track':<16} {'expected':>9} {'heard':>7} {'dominant':>10} {'level':>10} {'frames before':>14}"
    rows = [header, "  " + "-" * (len(header) - 2)]
    for r in reports:
        level = f"{r.level_dbfs:.1f} dBFS" if math.isfinite(r.level_dbfs) else "-"
        frames = "-" if r.frames_before is None else str(r.frames_before)
        rows.append(f"  {r.name:<16} {r.expected_hz:>6.0f} Hz {r.heard_seconds:>6.2f}s "
                    f"{r.frequency:>7.1f} Hz {level:>10} {frames:>14}  {'ok' if r.ok else 'NOT HEARD'}")
    return rows


async def run_demo(tracks: int, output: Path, workdir: Path) -> int:
    playlist = PLAYLIST[:tracks]
    media = workdir / "media"
    media.mkdir(parents=True)
    print(f"Generating {len(playlist)} tracks of {TRACK_SECONDS} s ...", flush=True)
    for name, hz in playlist:
        generate_tone(media / name, hz, TRACK_SECONDS, title=Path(name).stem)

    async with serve_directory(media) as media_url, Standin() as standin:
        world = standin.default_world()
        red = RedBot(standin, workdir / "red")
        audio = standin.voice.audio(world.guild.id)
        return_code = 0
        print("Starting the Discord stand-in and a Red bot ...", flush=True)
        started = time.monotonic()
        try:
            await red.start(world.general)
            print(f"Red is up ({time.monotonic() - started:.1f} s). Installing the cog through "
                  "Downloader from a snapshot of this checkout ...", flush=True)
            install = await snapshot_and_install(standin, world.owner, world.general, workdir)
            print(f"Installed: {install.summary()}", flush=True)

            await standin.join_voice(world.member, world.music)
            audio.clear()  # Red's startup sent nothing, but be sure: only the playlist counts
            for name, _ in playlist:
                said = await standin.say(world.member, world.general, f"{PREFIX}play {media_url}/{name}")
                await standin.wait_for_message(
                    world.general, lambda m: m.content.startswith(("Playing", "Queued", "I ")),
                    after=said, timeout=30)
            print("Playing ...", flush=True)
            expected_packets = int(len(playlist) * TRACK_SECONDS * 50 * MIN_HEARD_SHARE)
            with contextlib.suppress(TimeoutError):
                await audio.wait_for_packets(expected_packets, timeout=len(playlist) * TRACK_SECONDS + 20)
            with contextlib.suppress(TimeoutError):
                await audio.wait_for_quiet(1.5, timeout=len(playlist) * TRACK_SECONDS + 10)
            said = await standin.say(world.member, world.general, f"{PREFIX}queue")
            await standin.wait_for_message(world.general, after=said, timeout=15)
            await standin.leave_voice(world.member)
        except (InstallError, RuntimeError, TimeoutError) as exc:
            print(f"\nThe demo could not finish: {exc}", file=sys.stderr)
            return_code = 1
        finally:
            code = await red.stop()
            await asyncio.to_thread(_keep_log, red.log_path, output)

        print(f"\nChat transcript (#{world.general.name}):")
        print("\n".join(transcript(standin, world.general)))

        pcm = await audio.pcm_async()
        segments = segment_by_frequency(audio)
        reports = match_tracks(segments, playlist, audio.packet_pcm())
        print(f"\nWhat #{world.music.name} heard ({len(audio.packets)} packets, "
              f"{len(pcm) / SAMPLE_RATE:.2f} s of audio, {audio.undecodable} undecodable):")
        print("\n".join(table(reports)))
        tail = _silent_tail(audio.packet_pcm())
        print(f"  then {tail} silence frames ({tail * 0.02:.2f} s) before the bot stopped sending")
        wav = output / "received.wav"
        write_wav(wav, pcm)
        print(f"\nThe received audio is in {wav.resolve()} (48 kHz mono 16-bit); Red's log in "
              f"{(output / 'red.log').resolve()}. Red exited with code {code}.")

    every_track_heard = bool(reports) and all(r.ok for r in reports)
    print("\nEvery track was heard at its frequency." if every_track_heard
          else "\nSome tracks were NOT heard at their frequency.")
    return 0 if return_code == 0 and every_track_heard else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=len(PLAYLIST), choices=range(2, len(PLAYLIST) + 1),
                        help=f"how many tracks to play (default {len(PLAYLIST)})")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "demo-output",
                        help="where received.wav and red.log go (default ./demo-output)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (media, snapshot, Red's data)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="music-demo-"))
    try:
        return asyncio.run(run_demo(args.tracks, args.output, workdir))
    finally:
        if args.keep:
            print(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the music cog's benchmarks; each table puts the usual discord.py way beside ours, measured
in the same run.

    python -m benchmarks.run [--quick] [--only NAME ...]

NAME is one of: gap, first_packet, first_packet_red, first_play, resources, stall, concurrency, capacity,
resolution, persistence, media_cost, filter_cost, dave, fec_loss, soak. Without --only every one runs
but the soak (30 minutes: `--only soak`).
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import discord

from music.audio.ffmpeg import find_ffmpeg
from music.netguard import NetworkGuard
from music.policy import NetworkPolicy

from . import (
    capacity,
    concurrency,
    fec_loss,
    first_packet,
    first_packet_red,
    first_play,
    gap,
    resources,
    soak,
    stall,
)
from . import dave as dave_cost
from .botside import close_harnesses, connect_harnesses, new_session_id
from .common import RemoteVoiceServer, StandinProcess, generate_tone, trust_standin_ca


async def in_own_process(module: str, *args: str) -> None:
    """Run a benchmark module that sets up its own world (a fake video site, a PostgreSQL
    cluster) in a separate process, so it neither loads nor is loaded by this one."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", module, *args)
    if await proc.wait() != 0:
        raise RuntimeError(f"{module} exited with {proc.returncode}")


async def resolution_rows(bench: Bench, quick: bool) -> None:
    await in_own_process("benchmarks.resolution", "--reps", "2" if quick else "5")


async def persistence_rows(bench: Bench, quick: bool) -> None:
    await in_own_process("benchmarks.persistence", *(["--quick"] if quick else []))


async def media_cost_rows(bench: Bench, quick: bool) -> None:
    await in_own_process("benchmarks.media_cost", *(["--quick"] if quick else []))


async def filter_cost_rows(bench: Bench, quick: bool) -> None:
    await in_own_process("benchmarks.filter_cost", *(["--quick"] if quick else []))


BENCHMARKS = {
    "gap": gap.run,
    "first_packet": first_packet.run,
    "first_packet_red": first_packet_red.run,
    "first_play": first_play.run,
    "resources": resources.run,
    "stall": stall.run,
    "concurrency": concurrency.run,
    "capacity": capacity.run,
    "resolution": resolution_rows,
    "persistence": persistence_rows,
    "media_cost": media_cost_rows,
    "filter_cost": filter_cost_rows,
    "dave": dave_cost.run,
    "fec_loss": fec_loss.run,
    "soak": soak.run,
}
#: benchmarks a plain run leaves out (too long to run every time)
ON_REQUEST = {"soak"}
ENGINE_GUILD_ID = 1001


class Bench:
    """What the benchmarks share: ffmpeg, the media, the stand-in process and one connected
    voice client for the single-guild rows."""

    def __init__(self, media_dir: Path, quick: bool) -> None:
        self.media_dir = media_dir
        self.quick = quick
        self.ffmpeg = find_ffmpeg()
        self.standin = StandinProcess(media_dir)
        self.remote: RemoteVoiceServer | None = None
        self.harnesses: list[Any] = []
        self.vc: discord.VoiceClient | None = None
        self.guild_id = ENGINE_GUILD_ID
        #: ours' streams go through the network guard, as the cog's always do (its relay's
        #: CPU and GIL time count); ``proxy`` is what the cog hands TrackStream
        self.guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]))
        self.proxy: str | None = None

    def make_media(self) -> None:
        tone = lambda name, hz, seconds: generate_tone(self.ffmpeg, self.media_dir / name, hz, seconds)  # noqa: E731
        tone("tone_a.webm", gap.TONE_A_HZ, gap.TONE_SECONDS)
        tone("tone_b.webm", gap.TONE_B_HZ, gap.TONE_SECONDS)
        tone("tone_a.mp3", gap.TONE_A_HZ, gap.TONE_SECONDS)
        tone(stall.MEDIA_NAME, stall.TONE_HZ, stall.TONE_SECONDS)
        # long enough for the load rows' warm-up plus measuring window in the full run
        tone(resources.MEDIA_WEBM, 550.0, resources.MEDIA_SECONDS)
        tone(resources.MEDIA_MP3, 550.0, resources.MEDIA_SECONDS)

    def url(self, name: str, *, https: bool = False) -> str:
        return self.standin.media_url(name, https=https)

    async def start(self) -> None:
        await asyncio.to_thread(self.make_media)
        await self.standin.start()
        # ours verifies https media against the stand-in's CA as a bot owner's private CA would
        # be trusted; the load workers inherit it; the baselines get ffmpeg's -ca_file
        trust_standin_ca(self.standin.ca_file)
        self.proxy = await self.guard.start()
        self.remote = RemoteVoiceServer(self.standin)
        session_id = new_session_id()
        await self.remote.prepare(self.guild_id, 3003, session_id)
        self.harnesses = await connect_harnesses(self.remote, [(self.guild_id, session_id)])
        self.vc = self.harnesses[0].voice_client

    async def clear(self) -> None:
        await self.standin.call("clear", guild_ids=[self.guild_id])

    async def packets(self) -> dict[str, Any]:
        return await self.standin.call("packets", guild_id=self.guild_id)

    async def stop(self) -> None:
        await close_harnesses(self.harnesses)
        await self.guard.close()
        await self.standin.stop()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials, fewer guilds, short windows")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    # the soak runs for 30 minutes: only when named (--only soak)
    chosen = args.only or [name for name in BENCHMARKS if name not in ON_REQUEST]

    print(f"# Music cog benchmarks, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
          f"{' (--quick)' if args.quick else ''}\n")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} cores, load average at start "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {platform.python_version()}, "
          f"discord.py {discord.__version__}")
    media_dir = Path(tempfile.mkdtemp(prefix="music-bench-"))
    bench = Bench(media_dir, args.quick)
    print(f"- ffmpeg: {bench.ffmpeg}")
    print("- the stand-in (voice server + media HTTP server) runs in its own process; this process "
          "is the bot\n", flush=True)
    started = time.monotonic()
    try:
        await bench.start()
        print(f"- stand-in UDP receive buffer: {bench.standin.info['udp_receive_buffer']} bytes; "
              f"packet arrival times: {bench.standin.info.get('arrival_clock', 'when read')}\n",
              flush=True)
        for name in chosen:
            try:
                await BENCHMARKS[name](bench, args.quick)
            except Exception as exc:  # one broken row must not hide the others
                print(f"### {name}: FAILED: {type(exc).__name__}: {exc}\n", flush=True)
    finally:
        await bench.stop()
        shutil.rmtree(media_dir, ignore_errors=True)
    print(f"(all benchmarks took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

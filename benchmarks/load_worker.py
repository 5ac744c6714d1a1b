"""One measured "bot": N guilds playing at once in a fresh process, for rows 3 and 4.

A fresh process per configuration keeps the figures apart: its memory before the streams start
is the baseline for "memory per stream", and no earlier configuration's threads or heap linger.
Reads one JSON object on stdin (see ``benchmarks.load``), prints one JSON object with the results.
The voice sessions were opened in the stand-in process by the parent, which passes their tokens.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import threading
import time
from typing import Any

from music.audio.source import ChainSource
from music.netguard import NetworkGuard
from music.policy import NetworkPolicy
from music.resolve.warmup import freeze_long_lived
from music.voiceclient import lift_select_limit

from .botside import (
    ChainEvents,
    TokenVoiceServer,
    baseline_pid,
    baseline_source,
    close_harnesses,
    connect_harnesses,
    open_stream,
    ours_sender,
    pcm_baseline_source,
    pcm_play_options,
    play_ours,
    use_encoder_for_ours,
)
from .common import CpuWindow, private_bytes, pss_bytes


class GcPauses:
    """Garbage-collection passes during the window, by generation, and the longest one: a pass
    holds the GIL, so a long one stalls the audio thread like any other GIL holder."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.max_ms = [0.0, 0.0, 0.0]
        self._started = 0.0
        self.active = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if not self.active:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.counts[generation] += 1
        self.max_ms[generation] = max(self.max_ms[generation],
                                      1000 * (time.perf_counter() - self._started))

    def take_max(self) -> list[float]:
        """The longest pass of each generation since the previous call."""
        longest, self.max_ms = self.max_ms, [0.0, 0.0, 0.0]
        return longest


def count_open_files() -> int | None:
    """File descriptors the process holds (Linux), read once after the window."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


class StepProfile:
    """CPU time of the sender's per-packet steps (read, build, send), from the thread that runs
    them, by wrapping the functions: each call pays for two thread-clock reads (about 1 us), so
    a profiled run is labelled as such and its totals are not the plain run's."""

    def __init__(self) -> None:
        self.steps: dict[str, list[int]] = {}

    def wrap(self, owner: Any, name: str, step: str) -> None:
        original = getattr(owner, name)
        totals = self.steps.setdefault(step, [0, 0])
        clock = time.thread_time_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return original(*args, **kwargs)
            finally:
                totals[0] += clock() - started
                totals[1] += 1

        setattr(owner, name, timed)

    def install(self) -> None:
        import discord
        from discord.voice_state import VoiceConnectionState

        from music.audio.chain import ChainSource
        from music.audio.voice_packets import PacketWriter

        self.wrap(ChainSource, "read", "read")
        self.wrap(PacketWriter, "build", "writer_build")  # DAVE, RTP header, AEAD
        self.wrap(PacketWriter, "send", "writer_send")  # build + the socket send
        self.wrap(discord.VoiceClient, "send_audio_packet", "discord_send_audio_packet")
        self.wrap(VoiceConnectionState, "send_packet", "discord_socket_send")

    def result(self) -> dict[str, list[int]]:
        return {step: list(totals) for step, totals in self.steps.items()}


def use_packet_path(path: str) -> None:
    """"writer": the sender's own packet step (the cog's default); "discord": every packet
    through discord.py's send_audio_packet, to compare the two in the same run."""
    if path == "discord":
        from music.audio import sender

        sender.packet_writer = lambda: None  # type: ignore[assignment]


class DroppedPackets(logging.Handler):
    """Counts discord.py's "A packet has been dropped" (the UDP socket refused a packet; logged
    at debug level only)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("A packet has been dropped"):
            self.count += 1


def set_up_like_the_cog(*, freeze: bool = True) -> DroppedPackets:
    """What the cog does to the process at load, with the cog's own functions, before any voice
    client connects (rows 4, 9 and the soak): discord.py's voice readers past descriptor 1,024
    (~500 guilds; the baselines get it too, so that they can connect as many), and with
    `freeze` what exists now frozen out of the garbage collector's full passes (without it a
    full pass over the imports held the GIL up to ~90 ms in the soak: every guild late at once;
    the baselines run without it, as a bot without this cog does). Returns the counter of
    discord.py's dropped packets, installed on its voice logger."""
    lift_select_limit()
    if freeze:
        freeze_long_lived()
    dropped = DroppedPackets()
    voice_log = logging.getLogger("discord.voice_client")
    voice_log.setLevel(logging.DEBUG)
    voice_log.propagate = False
    voice_log.addHandler(dropped)
    return dropped


async def measure(config: dict[str, Any]) -> dict[str, Any]:
    use_packet_path(config.get("packet_path", "writer"))
    profile = StepProfile()
    if config.get("step_profile"):
        profile.install()
    dropped = set_up_like_the_cog(freeze=config["method"] == "ours")
    guilds = [(g["guild_id"], g["session_id"]) for g in config["guilds"]]
    server = TokenVoiceServer(config["endpoint"], config["ca_file"],
                              {g["guild_id"]: g["token"] for g in config["guilds"]})
    connect_started = time.monotonic()
    harnesses = await connect_harnesses(server, guilds)
    connect_seconds = time.monotonic() - connect_started
    await asyncio.sleep(0.5)  # let the connections settle (speaking state, first heartbeats)
    idle_pss = pss_bytes(os.getpid()) or 0
    # what the process costs with the voice clients connected and nothing playing, so the
    # per-stream figure can be given without this fixed part as well
    idle_cpu = CpuWindow([os.getpid()]).start()
    await asyncio.sleep(config["idle_seconds"])
    idle_cpu.stop()
    idle_share = idle_cpu.used / idle_cpu.seconds

    # "ours", "baseline" (FFmpegOpusAudio) or "pcm" (discord.py's example pattern)
    method = config["method"]
    ours = method == "ours"
    copy = config["mode"] == "copy"
    url, ffmpeg = config["url"], config["ffmpeg"]
    encoder = config.get("encoder")  # None: each side's own libopus loss settings
    guard: NetworkGuard | None = None
    proxy = None
    if ours and config.get("guard", True):
        # as the cog always does: every stream through the network guard's relay (its CPU and
        # GIL time are the bot process's)
        guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]))
        proxy = await guard.start()
    if ours:
        use_encoder_for_ours(encoder)
    chains: list[ChainSource] = []
    chain_events: list[ChainEvents] = []
    opened_at = time.monotonic()
    ffmpeg_pids: list[int] = []
    shared_streams = 0
    if ours:
        ours_sender(config.get("sender_phases"))  # created here, with the setting compared
        streams = await asyncio.gather(*(open_stream(ffmpeg, url, passthrough=copy, timeout=30,
                                                     proxy=proxy)
                                         for _ in harnesses))
        for harness, stream in zip(harnesses, streams, strict=True):
            events = ChainEvents()
            chain_events.append(events)
            chain = ChainSource(events)
            chain.play_now(stream, "load")
            play_ours(harness.voice_client, chain)
            chains.append(chain)
            # None: copied in process, no ffmpeg. A transcoding stream's pid is the shared
            # transcoder's worker, counted once (CPU and PSS) and shared out over the streams
            # like the ffmpeg children it replaces
            if stream.pid is not None and stream.pid not in ffmpeg_pids:
                ffmpeg_pids.append(stream.pid)
            shared_streams += stream.in_shared_transcoder
    elif method == "pcm":
        for harness in harnesses:
            source = pcm_baseline_source(ffmpeg, url, ca_file=config["ca_file"])
            harness.voice_client.play(source, **pcm_play_options(encoder))
            if (pid := baseline_pid(source)) is not None:
                ffmpeg_pids.append(pid)
    else:
        for harness in harnesses:
            source = baseline_source(ffmpeg, url, copy=copy, encoder=encoder,
                                     ca_file=config["ca_file"])
            harness.voice_client.play(source)
            if (pid := baseline_pid(source)) is not None:
                ffmpeg_pids.append(pid)

    open_seconds = time.monotonic() - opened_at
    warmup_started = time.monotonic()
    await asyncio.sleep(config["warmup"])
    # longer than asked when the event loop cannot get the GIL (too many busy audio threads)
    warmup_seconds = time.monotonic() - warmup_started
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    gc_pauses.active = True
    bot_cpu = CpuWindow([os.getpid()]).start()
    ffmpeg_cpu = CpuWindow(ffmpeg_pids).start()
    window_start = time.monotonic()
    await asyncio.sleep(config["seconds"])
    window_end = time.monotonic()
    bot_cpu.stop()
    ffmpeg_cpu.stop()
    cpu_by_thread = bot_cpu.by_thread_name(
        os.getpid(), {t.native_id: t.name for t in threading.enumerate() if t.native_id})
    gc_pauses.active = False
    # Memory after the window, the streams still playing: reading smaps_rollup of many processes
    # holds the GIL long enough to delay the audio threads, so never inside the timed window.
    playing_pss = pss_bytes(os.getpid()) or 0
    ffmpeg_pss: list[int] = []
    ffmpeg_private: list[int] = []
    if config.get("measure_memory", True):
        ffmpeg_pss = [p for pid in ffmpeg_pids if (p := pss_bytes(pid)) is not None]
        ffmpeg_private = [p for pid in ffmpeg_pids if (p := private_bytes(pid)) is not None]
    still_playing = sum(1 for h in harnesses if h.voice_client.is_playing())
    threads = threading.active_count()
    open_files = count_open_files()
    underruns = sum(c.stats.underruns for c in chains)
    unexpected = [f"{kind}: {error}" for e in chain_events for kind, error in e.seen
                  if kind != "track_start"]

    for harness in harnesses:
        harness.voice_client.stop()
    await asyncio.sleep(0.3)
    if ours:
        sender_stats = ours_sender().stats
        await asyncio.to_thread(ours_sender().close, 5.0)
    await close_harnesses(harnesses)
    if guard is not None:
        await guard.close()
    streams_n = len(harnesses)
    return {
        "guilds": streams_n,
        "guard": guard is not None,
        "connect_seconds": connect_seconds,
        "sender_drops": dropped.count,
        "open_seconds": open_seconds,
        "warmup_seconds": warmup_seconds,
        "unexpected_events": len(unexpected),
        "unexpected_examples": unexpected[:3],
        "window": [window_start, window_end],
        "still_playing": still_playing,
        "underruns": underruns if ours else None,
        # how the shared sender kept time (ticks more than half a frame late, slots skipped)
        "sender_late_ticks": sender_stats.late_ticks if ours else None,
        "sender_skipped_slots": sender_stats.skipped_slots if ours else None,
        "sender_max_tick_ms": sender_stats.max_tick_ms if ours else None,
        # packets a guild held back a frame (its previous packet went out < 10 ms before)
        "sender_held_back": sender_stats.held_back if ours else None,
        "gc_counts": gc_pauses.counts,
        "gc_frozen": gc.get_freeze_count(),  # objects frozen at set-up (ours only)
        "threads": threads,
        "open_files": open_files,
        "step_profile": profile.result(),
        "packet_path": config.get("packet_path", "writer"),
        "gc_max_ms": gc_pauses.max_ms,
        "bot_cpu_ms_per_stream_second": bot_cpu.ms_per_stream_second(streams_n),
        "bot_cpu_share": bot_cpu.used / bot_cpu.seconds if bot_cpu.seconds else None,
        # the bot's CPU by thread kind, in cores (sender, readers, the event loop...)
        "bot_cpu_by_thread": {k: v / bot_cpu.seconds for k, v in cpu_by_thread.items()},
        "bot_cpu_idle_share": idle_share,
        "bot_cpu_marginal_ms_per_stream_second":
            1000 * (bot_cpu.used - idle_share * bot_cpu.seconds) / (streams_n * bot_cpu.seconds),
        # over every stream, not every ffmpeg: a stream copied in process has none
        "ffmpeg_cpu_ms_per_stream_second": ffmpeg_cpu.ms_per_stream_second(streams_n),
        "ffmpeg_counted": ffmpeg_cpu.counted,
        # streams transcoded by the shared transcoder's worker (it is among the "ffmpeg" pids)
        "shared_transcoder_streams": shared_streams,
        "ffmpeg_cpu_share": ffmpeg_cpu.used / ffmpeg_cpu.seconds if ffmpeg_cpu.seconds else None,
        "bot_pss_idle_mb": idle_pss / 2**20,
        "bot_pss_delta_mb_per_stream": (playing_pss - idle_pss) / 2**20 / streams_n,
        "ffmpeg_pss_mb_mean": (sum(ffmpeg_pss) / len(ffmpeg_pss) / 2**20) if ffmpeg_pss else None,
        "ffmpeg_pss_mb_per_stream": sum(ffmpeg_pss) / 2**20 / streams_n,
        "ffmpeg_private_mb_mean":
            (sum(ffmpeg_private) / len(ffmpeg_private) / 2**20) if ffmpeg_private else None,
    }


def main() -> None:
    config = json.loads(sys.stdin.read())
    result = asyncio.run(measure(config))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

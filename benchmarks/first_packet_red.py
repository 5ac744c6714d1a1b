"""Row 2b: from ``play`` in chat to the first audible packet at the receiver, through a real Red.

A real, unmodified Red bot (``standin.run_red``, its own process) runs against the Discord
stand-in, which runs in this process (gateway, REST, voice server with decryption and Opus
decoding). The music cog is installed the way an owner does it (Downloader, from a git snapshot
of this checkout, ``standin.install``) and loaded; the baseline is a tiny second cog,
``benchmarks/baseline_cog`` (``addpath`` + ``load``, only for this benchmark), with the usual
pattern: ``bplay <url>`` = yt-dlp ``extract_info`` in an executor, ``channel.connect()`` if not
connected, ``vc.play(FFmpegOpusAudio(url))`` (codec copy for Opus input).

A member in the voice channel says ``!play <url>`` (ours) or ``!bplay <url>`` (baseline). The clock
starts when the stand-in writes that MESSAGE_CREATE to the bot's gateway websocket
(``Gateway.message_delivered_at``, monotonic) and stops at the arrival of the first packet that
decodes to sound at the stand-in's voice receiver (same process, same clock).

Cases: {WebM/Opus, MP3} x {bot already in the channel, bot must join} x {first resolution (a URL
never seen: a fresh query string), cached resolution (the same URL again)}; trials interleaved
(every case and both methods in each round, the methods' order alternating). Between trials the
bot leaves the channel (each method with its own command, waiting until the stand-in's voice
session is gone), so "must join" is a real join; for "already in the channel" the method joins
first and the clock starts with the next message.

Phases, from the probes the baseline cog installs in the Red process (CLOCK_MONOTONIC is
system-wide, so they compare with the stand-in's clock): message parsed by discord.py, command
invoked, lookup done, voice connected, ``VoiceClient.play`` called, the first packet sent, and
the first packet with sound sent (matched to the receiver's first sound packet by RTP sequence).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from standin.analysis import SILENCE_RMS, rms
from standin.demo import RedBot
from standin.install import snapshot_and_install
from standin.server import Standin
from standin.state import Message

from .common import REPO_ROOT, fmt, median, p99, print_table, ratio, verdict, wins_line

TARGET_IN_CHANNEL_MS = 60.0
TARGET_JOIN_MS = 150.0
PREFIX = "!"  # standin.demo.RedBot's
ANSWER_TIMEOUT = 20.0
SOUND_TIMEOUT = 20.0
#: audio let through after the first sound before the trial ends (packets keep arriving anyway)
LISTEN_AFTER_SOUND = 0.2

INPUTS = [("WebM/Opus", "tone_a.webm"), ("MP3", "tone_a.mp3")]
SITUATIONS = [("in channel", True), ("must join", False)]
LOOKUPS = [("first", False), ("cached", True)]
METHODS = ["ours", "baseline", "pcm"]
METHOD_LABEL = {"ours": "ours (music cog)", "baseline": "baseline FFmpegOpusAudio cog",
                "pcm": "baseline FFmpegPCMAudio + PCMVolumeTransformer cog"}
#: the chat command each method plays with (the second and third are the baseline cog's)
PLAY_COMMAND = {"ours": "play", "baseline": "bplay", "pcm": "bplaypcm"}
PHASES = ["message parsed", "command invoked", "lookup done", "voice connected", "play called",
          "first packet sent", "first sound sent", "first sound received"]


class TrialError(RuntimeError):
    pass


class RedWorld:
    """The stand-in, the Red bot with both cogs, and the chat/voice steps of one trial."""

    def __init__(self, standin: Standin, workdir: Path) -> None:
        self.standin = standin
        self.world = standin.default_world()
        self.red = RedBot(standin, workdir / "red")
        self.workdir = workdir
        self.voice_owner: str | None = None  # which cog's connection the bot is in voice with
        self.install_summary = ""
        self.last_delivered = 0.0  # the last trial's play message delivery (monotonic)
        self.last_probe: dict[str, Any] = {}  # and its probes' answer

    @property
    def guild_id(self) -> int:
        return self.world.guild.id

    async def start(self) -> None:
        await self.red.start(self.world.general)
        report = await snapshot_and_install(self.standin, self.world.owner, self.world.general, self.workdir)
        self.install_summary = report.summary()
        await self.ask(self.world.owner, f"{PREFIX}addpath {REPO_ROOT / 'benchmarks'}",
                       lambda m: "path" in m.content.lower())
        loaded = await self.ask(self.world.owner, f"{PREFIX}load baseline_cog",
                                lambda m: "baseline_cog" in m.content)
        if "Loaded" not in loaded.content:
            raise RuntimeError(f"the baseline cog did not load: {loaded.content}")
        await self.standin.join_voice(self.world.member, self.world.music)

    async def stop(self) -> None:
        await self.red.stop()

    async def ask(self, member: Any, content: str, expect: Callable[[Message], bool],
                  timeout: float = ANSWER_TIMEOUT) -> Message:
        said = await self.standin.say(member, self.world.general, content)
        try:
            return await self.standin.wait_for_message(self.world.general, expect, after=said, timeout=timeout)
        except TimeoutError:
            last = self.standin.bot_messages(self.world.general)[-3:]
            raise TrialError(f"no answer to {content!r}; the bot last said: "
                             f"{[m.content[:120] for m in last]}") from None

    def in_voice(self) -> bool:
        return (self.standin.bot_voice_channel(self.world.guild) is not None
                or self.standin.voice.is_connected(self.guild_id))

    async def leave(self) -> None:
        """The bot leaves voice through the cog that connected it; waits until the stand-in's
        voice session is gone."""
        member = self.world.member
        if self.voice_owner == "ours":
            await self.ask(member, f"{PREFIX}stop", lambda m: "topped" in m.content or "othing" in m.content)
            if self.in_voice():
                await self.ask(member, f"{PREFIX}disconnect", lambda m: "isconnected" in m.content
                               or "not in a voice" in m.content)
        elif self.voice_owner in ("baseline", "pcm"):
            await self.ask(member, f"{PREFIX}bleave", lambda m: m.content == "Left.")
        self.voice_owner = None
        await self.standin.wait_until(lambda: not self.in_voice(), 15, "the bot to leave voice")
        await asyncio.sleep(0.1)  # discord.py finishes its own cleanup after the close

    async def join(self, method: str) -> None:
        member = self.world.member
        if method == "ours":
            await self.ask(member, f"{PREFIX}summon", lambda m: m.content.startswith("Joined"))
        else:
            await self.ask(member, f"{PREFIX}bjoin", lambda m: m.content == "Joined.")
        self.voice_owner = method
        await self.standin.wait_until(lambda: self.standin.voice.is_connected(self.guild_id), 15,
                                      "the bot's voice connection")
        await asyncio.sleep(0.2)  # settled: the next message is the measured one

    async def first_sound(self, timeout: float) -> tuple[float, float, int]:
        """(arrival of the first packet of any kind, arrival and RTP sequence of the first
        packet that decodes to sound) since the last clear."""
        audio = self.standin.voice.audio(self.guild_id)
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            decoded = audio.packet_pcm()
            packets = audio.packets
            for index in range(checked, min(len(decoded), len(packets))):
                samples = decoded[index]
                if samples is not None and rms(samples) >= SILENCE_RMS:
                    return packets[0].arrival, packets[index].arrival, packets[index].sequence
            checked = min(len(decoded), len(packets))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TrialError(f"no sound within {timeout:g} s ({len(packets)} packets heard)")
            with contextlib.suppress(TimeoutError):
                await audio.wait_for_packets(len(packets) + 1, remaining)

    async def stamps(self) -> dict[str, Any]:
        answer = await self.ask(self.world.member, f"{PREFIX}bstamps", lambda m: m.content.startswith("stamps "))
        return json.loads(answer.content.removeprefix("stamps "))

    async def trial(self, method: str, url: str, joined: bool) -> dict[str, float]:
        """One measured play; returns each phase's time in ms after the message was delivered."""
        if self.in_voice():
            await self.leave()
        if joined:
            await self.join(method)
        self.standin.voice.audio(self.guild_id).clear()
        command = PLAY_COMMAND[method]
        said = await self.standin.say(self.world.member, self.world.general, f"{PREFIX}{command} {url}")
        self.voice_owner = method
        try:
            first_any, first_sound, sound_sequence = await self.first_sound(SOUND_TIMEOUT)
        except TrialError as exc:
            said_after = [m.content[:120] for m in self.standin.bot_messages(self.world.general)
                          if m.id > said.id]
            raise TrialError(f"{exc}; the bot said {said_after}") from None
        await asyncio.sleep(LISTEN_AFTER_SOUND)
        delivered = self.standin.gateway.message_delivered_at.get(said.id)
        if delivered is None:
            raise TrialError("the stand-in has no delivery time for the play message")
        probe = await self.stamps()
        self.last_delivered, self.last_probe = delivered, probe  # for row 2c's extra phases
        await self.leave()

        def ms(at: float | None) -> float:
            return float("nan") if at is None else (at - delivered) * 1000

        phases = {name: ms(at) for name, at in probe["stamps"].items()}
        sent = probe["sent"]
        phases["first packet sent"] = ms(sent[0][1]) if sent else float("nan")
        phases["first sound sent"] = ms(next((t for seq, t in sent if seq == sound_sequence), None))
        phases["first packet received"] = ms(first_any)
        phases["first sound received"] = ms(first_sound)
        return phases


def _cases() -> list[tuple[str, str, str, bool, str, bool]]:
    return [(label, name, situation, joined, lookup, cached)
            for label, name in INPUTS for situation, joined in SITUATIONS for lookup, cached in LOOKUPS]


async def run(bench: Any, quick: bool) -> str:
    trials = 3 if quick else 8
    workdir = Path(tempfile.mkdtemp(prefix="music-bench-red-"))
    results: dict[tuple[str, str, str, str], list[dict[str, float]]] = {}
    failures: list[str] = []
    started = time.monotonic()
    install_summary = ""
    setup_seconds: float | None = None
    try:
        async with Standin() as standin:
            red = RedWorld(standin, workdir)
            try:
                await red.start()
                install_summary = red.install_summary
                setup_seconds = time.monotonic() - started
                # warm-up, not measured: yt-dlp's extractor patterns, ffmpeg's first start, and
                # the URL every "cached" trial uses looked up once by each method
                for _label, name in INPUTS:
                    for method in METHODS:
                        try:
                            await red.trial(method, bench.url(name) + "?bench=cached", joined=False)
                        except TrialError as exc:
                            failures.append(f"warm-up {method} {name}: {exc}")
                for trial in range(trials):
                    for label, name, situation, joined, lookup, cached in _cases():
                        shift = trial % len(METHODS)  # rotating who goes first
                        order = METHODS[shift:] + METHODS[:shift]
                        for method in order:
                            # a URL no case has looked up before: every first lookup is a real one
                            slug = situation.replace(" ", "-")
                            query = "cached" if cached else f"first-{method}-{trial}-{slug}"
                            url = bench.url(name) + f"?bench={query}"
                            try:
                                phases = await red.trial(method, url, joined)
                            except (TrialError, TimeoutError) as exc:
                                failures.append(f"{method} {label} {situation} {lookup}: {exc}")
                                with contextlib.suppress(Exception):
                                    await red.leave()
                                continue
                            results.setdefault((label, situation, lookup, method), []).append(phases)
            finally:
                await red.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _report(results, failures, trials, setup_seconds=setup_seconds,
                   install_summary=install_summary, total_seconds=time.monotonic() - started)


def _report(results: dict[tuple[str, str, str, str], list[dict[str, float]]], failures: list[str],
            trials: int, *, setup_seconds: float | None, install_summary: str, total_seconds: float) -> str:
    rows = []
    notes = []
    breakdown = []
    for label, _name, situation, _joined, lookup, _cached in _cases():
        figures = {}
        for method in METHODS:
            got = results.get((label, situation, lookup, method), [])
            sound = [p["first sound received"] for p in got]
            figures[method] = (median(sound), p99(sound))
            rows.append([label, situation, lookup, METHOD_LABEL[method], str(len(got)),
                         fmt(median(sound)), fmt(p99(sound)),
                         fmt(median([p["first packet received"] for p in got]))])
            breakdown.append([label, situation, lookup, method]
                             + [fmt(median([p.get(phase, float("nan")) for p in got])) for phase in PHASES])
        ours, base = figures["ours"], figures["baseline"]
        for method in METHODS[1:]:
            other = figures[method]
            rows.append([label, situation, lookup, f"ratio {method} / ours", "",
                         ratio(other[0], ours[0]), ratio(other[1], ours[1]), ""])
        notes.append(wins_line(f"{label}, {situation}, {lookup} lookup: first sound median (ms)",
                               {METHOD_LABEL[m]: f[0] for m, f in figures.items()}, METHOD_LABEL["ours"]))
        if label == "WebM/Opus":
            target = TARGET_IN_CHANNEL_MS if situation == "in channel" else TARGET_JOIN_MS
            notes.append(f"target (ours, WebM/Opus, {situation}, {lookup} lookup) median <= {target:g} ms: "
                         f"{verdict(ours[0], target)} ({fmt(ours[0])} ms; baseline {fmt(base[0])} ms)")
    notes.append(f"{trials} interleaved rounds: every case and every method in each, the methods' order "
                 "rotating; clock from the stand-in writing the MESSAGE_CREATE to the bot's "
                 "websocket to the arrival of the first packet that decodes to sound.")
    notes.append("first = a URL never looked up before (fresh query string on the local media server); "
                 "cached = the same URL again (looked up once in a warm-up). The baseline has no cache: "
                 "it runs yt-dlp every time.")
    notes.append("the bot leaves the voice channel after every trial (the stand-in's voice session closed), "
                 "so 'must join' includes the whole voice handshake (gateway op 4 answered after the "
                 "stand-in's 30 ms, voice websocket, TLS, UDP IP discovery).")
    if setup_seconds is not None:
        notes.append(f"Red start + install through Downloader + loading the baseline cog took "
                     f"{setup_seconds:.0f} s ({install_summary}); the benchmark {total_seconds:.0f} s in all.")
    notes += [f"failure: {f}" for f in failures]
    text = print_table(
        "2b. Chat `play` to first audible packet, through a real Red bot (ms)",
        ["input", "bot", "lookup", "method", "n", "first sound median", "first sound p99",
         "first packet median"],
        rows, notes)
    text += print_table(
        "2b (phases). Median ms after the message was delivered to the bot, per phase",
        ["input", "bot", "lookup", "method", *PHASES],
        breakdown,
        ["phases stamped inside Red by benchmarks/baseline_cog's probes (discord.py's MESSAGE_CREATE "
         "parse, on_command, the music cog's lookup returning / the baseline's yt-dlp returning, "
         "Connectable.connect returning, VoiceClient.play or the music cog's SharedSender.play, "
         "VoiceClient.send_audio_packet); '-' = the phase did not happen (no join when already in "
         "the channel).",
         "first sound sent = the send time of the packet whose RTP sequence the receiver decoded "
         "first as sound; ours may send the lookup and the join in either order or overlapped."])
    return text

"""Benchmark-only Red cog for row 2b (``benchmarks/first_packet_red.py``); never installed.

Two things, loaded next to the music cog in the same Red:

* the baseline: the usual discord.py music pattern as most bots write it. ``bplay <url>``:
  yt-dlp ``extract_info`` in an executor, ``await channel.connect()`` if not connected, then
  ``vc.play(discord.FFmpegOpusAudio(url))`` (codec copy for Opus input). ``bjoin`` / ``bleave``
  set up the "already in the channel" and "must join" cases.
* probes: monotonic time stamps (CLOCK_MONOTONIC is system-wide on Linux, so they compare with
  the stand-in's clock in the benchmark process) of the phases of the last play, for whichever
  cog handled it: message parsed by discord.py, command invoked, lookup done, voice connected,
  ``VoiceClient.play`` called, and the RTP sequence and send time of the first packets.
  ``bstamps`` answers them as JSON. The probes wrap discord.py and the music cog's lookup from
  outside; neither is changed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
from typing import Any

import discord
from redbot.core import commands

__red_end_user_data_statement__ = "This cog stores no data."

YTDL_OPTIONS = {"format": "bestaudio/best", "quiet": True, "no_warnings": True, "noplaylist": True}
# what most bots pass so a dropped HTTP connection is retried
BEFORE_OPTIONS = "-reconnect 1 -reconnect_streamed 1 -reconnect_delay_max 5"
OPUS_EXTENSIONS = {"webm", "opus", "ogg"}
#: send times kept per play (the first sound packet comes within a few; the answer must stay
#: under Discord's 2,000 characters)
SENT_PACKETS_KEPT = 50
PLAY_COMMANDS = ("play ", "bplay ", "bplaypcm ")
#: set (to anything) in the environment: load the probes only, no baseline yt-dlp (row 2c)
PROBES_ONLY_ENV = "MUSIC_BENCH_PROBES_ONLY"


def _ffmpeg() -> str:
    """The same static ffmpeg the music cog and the other benchmarks use."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return "ffmpeg"


class Probes:
    """Phase stamps of the last play command (reset when a new one is parsed)."""

    def __init__(self) -> None:
        self.stamps: dict[str, float] = {}
        self.sent: list[tuple[int, float]] = []  # (RTP sequence, monotonic time after sendto)
        self.recording = False
        self._undo: list[tuple[Any, str, Any]] = []

    def stamp(self, phase: str) -> None:
        if self.recording:
            self.stamps.setdefault(phase, time.monotonic())

    def start(self) -> None:
        self.stamps = {}
        self.sent = []
        self.recording = True

    def patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._undo.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, replacement)

    def unpatch(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


class BenchBaseline(commands.Cog):
    """Benchmark-only: the usual FFmpegOpusAudio music pattern and timing probes."""

    def __init__(self, bot: Any) -> None:
        super().__init__()
        self.bot = bot
        import yt_dlp

        # one YoutubeDL for the bot's life, as the usual examples keep it at module level; none
        # when only the probes are wanted (row 2c's music-cog processes: building it at load
        # would slow that Red's start, not the baseline's)
        self.ytdl = None if os.environ.get(PROBES_ONLY_ENV) else yt_dlp.YoutubeDL(YTDL_OPTIONS)
        self.ffmpeg = _ffmpeg()
        self.probes = Probes()
        self._wrapped_service: Any = None

    async def cog_load(self) -> None:
        probes = self.probes
        prefixes = await self.bot.get_valid_prefixes()
        parsers = self.bot._connection.parsers
        parse_message_create = parsers["MESSAGE_CREATE"]

        def timed_parse(data: dict[str, Any]) -> None:
            # discord.py's own parse of the frame: the earliest the bot knows of the message
            content = data.get("content") or ""
            if any(content.startswith(p + c) for p in prefixes for c in PLAY_COMMANDS):
                probes.start()
                probes.stamp("message parsed")
                self._wrap_music_lookup()
            parse_message_create(data)

        parsers["MESSAGE_CREATE"] = timed_parse
        self._restore_parser = lambda: parsers.__setitem__("MESSAGE_CREATE", parse_message_create)

        connect = discord.abc.Connectable.connect

        async def timed_connect(channel: Any, *args: Any, **kwargs: Any) -> Any:
            probes.stamp("connect called")
            client = await connect(channel, *args, **kwargs)
            probes.stamp("voice connected")
            return client

        play = discord.VoiceClient.play

        def timed_play(vc: Any, *args: Any, **kwargs: Any) -> Any:
            probes.stamp("play called")
            return play(vc, *args, **kwargs)

        send = discord.VoiceClient.send_audio_packet

        def timed_send(vc: Any, data: bytes, *, encode: bool = True) -> None:
            send(vc, data, encode=encode)
            # runs on the audio thread; list.append is atomic under the GIL
            if probes.recording and len(probes.sent) < SENT_PACKETS_KEPT:
                probes.sent.append((vc.sequence, time.monotonic()))

        probes.patch(discord.abc.Connectable, "connect", timed_connect)
        probes.patch(discord.VoiceClient, "play", timed_play)
        probes.patch(discord.VoiceClient, "send_audio_packet", timed_send)

    async def cog_unload(self) -> None:
        self.probes.unpatch()
        self._restore_parser()
        if self._wrapped_service is not None:
            service, original = self._wrapped_service
            service.resolve = original

    def _wrap_music_lookup(self) -> None:
        """Stamp when the music cog's lookup returns (its service exists once the cog is ready),
        and when it starts playing: through its own sender (music.audio.sender.SharedSender,
        one audio thread for every guild) where it has one, else through VoiceClient.play."""
        sender = getattr(sys.modules.get("music.audio.sender"), "SharedSender", None)
        if sender is not None and not getattr(sender.play, "_bench_probe", False):
            play = sender.play
            probes = self.probes

            def timed_play(owner: Any, *args: Any, **kwargs: Any) -> Any:
                probes.stamp("play called")
                return play(owner, *args, **kwargs)

            timed_play._bench_probe = True  # type: ignore[attr-defined]
            self.probes.patch(sender, "play", timed_play)
        music = self.bot.get_cog("Music")
        service = getattr(music, "service", None)
        if service is None or (self._wrapped_service is not None and self._wrapped_service[0] is service):
            return
        original = service.resolve
        probes = self.probes

        async def timed_resolve(*args: Any, **kwargs: Any) -> Any:
            probes.stamp("lookup started")
            result = await original(*args, **kwargs)
            probes.stamp("lookup done")
            return result

        service.resolve = timed_resolve
        self._wrapped_service = (service, original)

    @commands.Cog.listener()
    async def on_command(self, ctx: commands.Context) -> None:
        if ctx.command is not None and ctx.command.name in ("play", "bplay", "bplaypcm"):
            self.probes.stamp("command invoked")

    # -- the baseline ---------------------------------------------------------------------------

    @commands.command()
    @commands.guild_only()
    async def bplay(self, ctx: commands.Context, *, url: str) -> None:
        """Baseline: yt-dlp, connect if needed, FFmpegOpusAudio."""
        await self._play(ctx, url, pcm=False)

    @commands.command()
    @commands.guild_only()
    async def bplaypcm(self, ctx: commands.Context, *, url: str) -> None:
        """discord.py's example pattern: yt-dlp, connect if needed,
        PCMVolumeTransformer(FFmpegPCMAudio) (discord.py encodes every frame)."""
        await self._play(ctx, url, pcm=True)

    async def _play(self, ctx: commands.Context, url: str, *, pcm: bool) -> None:
        voice = getattr(ctx.author, "voice", None)
        if voice is None or voice.channel is None:
            await ctx.send("Join a voice channel first.")
            return
        if self.ytdl is None:
            await ctx.send(f"Probes only ({PROBES_ONLY_ENV}).")
            return
        loop = asyncio.get_running_loop()
        extract = functools.partial(self.ytdl.extract_info, url.strip("<>"), download=False)
        try:
            info = await loop.run_in_executor(None, extract)
        except Exception as exc:
            await ctx.send(f"Lookup failed: {type(exc).__name__}")
            return
        self.probes.stamp("lookup done")
        vc = ctx.voice_client
        if vc is None:
            vc = await voice.channel.connect()
        if vc.is_playing():
            vc.stop()
        copy = info.get("acodec") == "opus" or (
            info.get("acodec") in (None, "none") and info.get("ext") in OPUS_EXTENSIONS)
        source: discord.AudioSource
        if pcm:
            source = discord.PCMVolumeTransformer(discord.FFmpegPCMAudio(
                info["url"], executable=self.ffmpeg, before_options=BEFORE_OPTIONS), volume=1.0)
            copy = False
        else:
            source = discord.FFmpegOpusAudio(info["url"], executable=self.ffmpeg,
                                             codec="copy" if copy else None,
                                             before_options=BEFORE_OPTIONS)
        vc.play(source)
        await ctx.send(f"Now playing ({'copy' if copy else 'transcode'}).")

    @commands.command()
    @commands.guild_only()
    async def bjoin(self, ctx: commands.Context) -> None:
        voice = getattr(ctx.author, "voice", None)
        if voice is None or voice.channel is None:
            await ctx.send("Join a voice channel first.")
            return
        if ctx.voice_client is None:
            await voice.channel.connect()
        await ctx.send("Joined.")

    @commands.command()
    @commands.guild_only()
    async def bleave(self, ctx: commands.Context) -> None:
        vc = ctx.voice_client
        if vc is not None:
            vc.stop()
            await vc.disconnect()
        await ctx.send("Left.")

    @commands.command()
    async def bstamps(self, ctx: commands.Context) -> None:
        """The last play's phase stamps, as JSON."""
        self.probes.recording = False
        payload = {"stamps": {k: round(v, 6) for k, v in self.probes.stamps.items()},
                   "sent": [(seq, round(t, 6)) for seq, t in self.probes.sent]}
        warm_up = getattr(getattr(self.bot.get_cog("Music"), "resolver", None), "warm_up_report", None)
        if warm_up is not None:  # the music cog's yt-dlp warm-up (music.resolve.warmup)
            payload["warm_up"] = {"state": warm_up.state, "started": round(warm_up.started_at, 6),
                                  "ended": round(warm_up.started_at + warm_up.seconds, 6)}
        await ctx.send("stamps " + json.dumps(payload, separators=(",", ":")))


async def setup(bot: Any) -> None:
    await bot.add_cog(BenchBaseline(bot))

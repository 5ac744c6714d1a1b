"""The real ports: discord.py voice, the audio pipeline (streams, chain source, shared sender)
and the lookup service. Plugged into PlayerManager by the cog; the tests use fakes instead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audio.ffmpeg import find_ffmpeg
from ..audio.sender import SharedSender
from ..audio.source import ChainSource, TrackStream
from ..audio.transcoder import shared_transcoder
from ..engine.filters import FilterChain
from ..engine.track import Track
from ..i18n import _
from ..policy import PolicyError, resolve_local_path
from ..resolve.jobs import Priority
from .errors import StreamOpenError, VoiceError
from .ports import AfterCallback, SourceCallback, VoiceHandle

if TYPE_CHECKING:
    import discord
    from redbot.core.bot import Red

    from ..resolve.service import ResolveService
    from ..store import MusicStore

log = logging.getLogger("red.music.player")

# A remote stream URL this close to its expiry is re-extracted before it is opened.
STREAM_EXPIRY_MARGIN = 120.0
# How long a loading track may take to give its first packet.
OPEN_TIMEOUT = 15.0
OPUS_CONTAINERS = {"webm", "ogg", "opus", "weba"}
# The only schemes a remote track's stream may have when it is opened (stored data included).
REMOTE_SCHEMES = ("http://", "https://")


class DiscordVoice:
    """Voice connections through discord.py."""

    def __init__(self, bot: Red) -> None:
        self.bot = bot

    def connected(self, guild_id: int) -> VoiceHandle | None:
        guild = self.bot.get_guild(guild_id)
        vc = guild.voice_client if guild is not None else None
        if vc is None or not vc.is_connected():  # type: ignore[attr-defined]
            return None
        return vc  # type: ignore[return-value]

    async def ensure(self, guild_id: int, channel_id: int | None) -> None:
        if self.connected(guild_id) is not None:
            return
        import discord
        import discord.voice_state

        guild = self.bot.get_guild(guild_id)
        channel = guild.get_channel(channel_id) if guild and channel_id else None
        if guild is None or channel is None or not callable(getattr(channel, "connect", None)):
            raise VoiceError(_("I don't know which voice channel to join; use `summon` or `play` from a voice channel."))
        if not getattr(discord.voice_state, "has_dave", True):
            # Discord closes voice without DAVE (close code 4017) since 2026-03-02
            raise VoiceError(_("I can't join voice: DAVE encryption support is missing; the bot owner should install `davey` and restart."))
        await self._end_stale(guild)
        try:
            await channel.connect(timeout=15.0, self_deaf=True)  # type: ignore[union-attr]
        except asyncio.TimeoutError:
            raise VoiceError(_("I couldn't connect to {mention} in time.").format(mention=channel.mention)) from None
        except discord.ClientException:
            if self.connected(guild_id) is None:
                raise VoiceError(_("I couldn't connect to {mention}.").format(mention=channel.mention)) from None

    @staticmethod
    async def _end_stale(guild: discord.Guild) -> None:
        # discord.py gave up on this connection (a 4015 whose resume timed out, a 4014 with no
        # move, a 4006 reconnect stuck in IP discovery) but left its voice client in place,
        # and connect() refuses while one exists: end it and connect afresh
        stale = guild.voice_client
        if stale is None:
            return
        log.info("Guild %s: replacing a voice connection that is not connected", guild.id)
        from ..voiceclient import stop_reconnecting

        # first: its own reconnect, finishing later, would kick out the connection made now
        stop_reconnecting(stale)
        try:
            await asyncio.wait_for(stale.disconnect(force=True), 10.0)
        except Exception:
            log.debug("Ending the stale voice client of guild %s failed", guild.id, exc_info=True)

    async def disconnect(self, guild_id: int) -> None:
        guild = self.bot.get_guild(guild_id)
        if guild is not None and guild.voice_client is not None:
            await guild.voice_client.disconnect(force=True)


class PipelineAudio:
    """Streams (in process or through ffmpeg, via the network guard) and the shared sender."""

    def __init__(self, ffmpeg_path: Callable[[], str | None], proxy: Callable[[], str | None]) -> None:
        self._ffmpeg_path = ffmpeg_path
        self._proxy = proxy
        # One thread paces every guild's audio (discord.py's vc.play runs a thread per guild).
        # It installs itself as each voice client's player (audio.voice_slot checks that this
        # still works, else it falls back to vc.play), so vc.pause/resume/stop, is_playing and
        # discord.py's own stop on disconnect reach it.
        self.sender = SharedSender()

    async def open(self, track: Track, start: float, volume: int,
                   filters: FilterChain | None = None) -> TrackStream:
        assert track.stream_url
        stream = TrackStream(
            find_ffmpeg(self._ffmpeg_path()),
            track.stream_url,
            start=start,
            volume=volume,
            filters=filters,
            headers=track.http_headers or None,
            local=track.kind == "local",
            passthrough=wants_passthrough(track, volume, filters),
            # lets the stream tell a cut-short end (ffmpeg exits 0 when its reconnect fails)
            # from the real one; live streams have no end to compare with
            expected_end=None if track.is_live else track.duration,
            # the network guard: every connection goes to addresses the policy allows
            proxy=self._proxy(),
            # a copy from the start demuxes WebM/Ogg in this process: no ffmpeg child
            in_process=True,
            # transcoding runs in the one shared worker, not an ffmpeg child per stream (None
            # where it cannot run: then ffmpeg children)
            transcoder=shared_transcoder(),
        )
        try:
            await _in_own_thread(_start_and_wait, stream, OPEN_TIMEOUT)
        except BaseException:
            asyncio.ensure_future(asyncio.to_thread(stream.close))
            raise
        return stream

    def new_source(self, on_event: SourceCallback) -> ChainSource:
        return ChainSource(on_event)

    def play(self, voice: VoiceHandle, source: Any, after: AfterCallback) -> None:
        self.sender.play(voice, source, after=after)

    async def close(self, timeout: float) -> None:
        await asyncio.to_thread(self.sender.close, timeout)


class ServiceTracks:
    """Fresh stream URLs from the lookup service; local paths checked against the folder."""

    def __init__(self, service: ResolveService, store: MusicStore) -> None:
        self.service = service
        self.store = store

    async def playable(self, guild_id: int, track: Track, priority: Priority, *, stored: bool = False) -> Track:
        if track.kind == "local":
            folder = self.store.globals.local_folder
            if not folder:
                raise PolicyError(_("Local files are turned off: the bot owner has not set a local folder."))
            path = await asyncio.to_thread(resolve_local_path, Path(folder), track.query)
            self._check_rules(guild_id, track)
            return track.copy(stream_url=str(path))
        if track.kind != "remote":
            raise PolicyError(_("That queue entry is not a track I can play."))
        if stored:
            # saved data is not trusted: the same lookup and checks as a new `play` (the
            # lookup's own cache holds only what this cog extracted, checked again on use)
            track = await self.service.refresh(track.copy(stream_url=None), guild_id=guild_id, priority=priority)
        elif track.is_expired(time.time(), STREAM_EXPIRY_MARGIN):
            track = await self.service.refresh(track, guild_id=guild_id, priority=priority)
        if not (track.stream_url or "").lower().startswith(REMOTE_SCHEMES):
            # whatever stored data or a site says: only http(s), and only through the guard
            raise PolicyError(_("That track's stream is not an http(s) link, so I won't open it."))
        self._check_rules(guild_id, track)
        return track

    def _check_rules(self, guild_id: int, track: Track) -> None:
        """The block and allow lists once more on what the lookup found now (admission checked
        what was known when it was queued): a rule added since, or an uploader a playlist's
        listing did not give, still stops it."""
        refusal = self.store.content_rules(guild_id).refusal(track)
        if refusal is not None:
            raise PolicyError(f"{refusal}.")

    async def background(self, guild_id: int, url: str, known: Track | None) -> Track:
        track = known
        if track is None or track.query != url:
            result = await self.service.resolve(url, guild_id=guild_id, requester_id=0, limit=1, priority=Priority.LOW)
            track = result.tracks[0]
        return await self.playable(guild_id, track, Priority.LOW)

    def forget_stream(self, track: Track) -> None:
        self.service.forget_stream(track)


def wants_passthrough(track: Track, volume: int, filters: FilterChain | None = None) -> bool:
    """Copy the Opus packets as they are (about 1 ms of ffmpeg CPU per second instead of ~43)
    when nothing needs decoding: an Opus source in a container ffmpeg copies into Ogg, at 100%,
    with no filter. TrackStream still checks every packet is 20 ms and falls back to
    transcoding if not."""
    return (
        volume == 100
        and (filters is None or filters.is_flat)
        and (track.acodec or "").lower() == "opus"
        and (track.container or "").lower() in OPUS_CONTAINERS
    )


async def _in_own_thread(work: Callable[..., None], *args: Any) -> None:
    """Run `work` (which waits, up to OPEN_TIMEOUT) on a thread of its own, not the loop's
    default executor: the network guard resolves host names there (loop.getaddrinfo), and
    a few opens waiting on the executor's few workers (6 on 2 cores) would wait for their
    own connections' lookups, queued behind them, until they all time out (measured: 8 opens
    at once, 6 failed after 15 s). The thread ends when the wait does."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            work(*args)
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (unload, shutdown)
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="music-open", daemon=True).start()
    await done


def _start_and_wait(stream: TrackStream, timeout: float) -> None:
    stream.start()
    if not stream.wait_ready(timeout):
        raise StreamOpenError(stream.error or _("the stream gave no audio in time"))

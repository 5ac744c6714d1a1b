"""The Music cog: lifecycle, the ready gate, the supervised advancer and the stream monitor."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from redbot.core import commands
from redbot.core.bot import Red
from redbot.core.data_manager import cog_data_path
from redbot.core.i18n import cog_i18n, set_contextual_locales_from_guild

from .audio.transcoder import close_shared_transcoder, shared_transcoder, warm_up_transcoder
from .commands import (
    ContentCommands,
    FilterCommands,
    NowPlayingButtons,
    OwnerCommands,
    PlaybackCommands,
    PlaylistFileCommands,
    QueueCommands,
    QueueToolCommands,
    SettingsCommands,
    SlashCommands,
)
from .commands.base import CommandError
from .commands.slash import PLAY_THIS
from .control import ControlError, MusicControl, forget_requester, wait_until_ready
from .control.filters import server_chain
from .engine.queue import QueueModel
from .gc_policy import FullCollectionGuard
from .i18n import _
from .netguard import NetworkGuard
from .player import GuildPlayer, PlayerManager
from .player.adapters import DiscordVoice, PipelineAudio, ServiceTracks
from .player.events import Tick
from .policy import ExtractorPolicy
from .resolve.resolver import Resolver
from .resolve.service import ResolveService
from .rpc import MusicRPC
from .store import POSITION_SAVE_INTERVAL, MusicStore
from .store_chunks import PlayerCapture
from .ui.live import LiveMessages
from .ui.views import NowPlayingControls
from .voiceclient import connected_voice, lift_select_limit, restore_select_limit, voice_channel

log = logging.getLogger("red.music")

MONITOR_INTERVAL = 1.0
SUPERVISOR_MAX_BACKOFF = 30.0


@cog_i18n(_.red_translator())  # command help in the server's language
class Music(SlashCommands, PlaybackCommands, QueueCommands, QueueToolCommands, SettingsCommands, ContentCommands,
            OwnerCommands, PlaylistFileCommands, FilterCommands, NowPlayingButtons, commands.Cog):
    """Play music from the web or the owner's local folder in voice channels.

    Queues and positions survive reloads and restarts; track changes are gapless."""

    def __init__(self, bot: Red) -> None:
        super().__init__()
        self.bot = bot
        self.store = MusicStore.for_cog(self)
        self.ready = asyncio.Event()
        self.shutdown_event = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.resolver: Resolver | None = None
        self.guard: NetworkGuard | None = None
        self.service: ResolveService | None = None
        self.manager: PlayerManager | None = None
        self.control: MusicControl | None = None
        # the live "Now playing" message of each guild, and the view answering its buttons
        self.live = LiveMessages()
        self.np_controls: NowPlayingControls | None = None
        self.supervisor_restarts: dict[str, int] = {}
        self.rpc: MusicRPC | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def cog_load(self) -> None:
        # Never wait for Red's readiness here: at startup cogs load before the bot connects.
        # Every connection yt-dlp and ffmpeg make for users goes through the guard, which
        # checks the address it connects to (DNS rebinding, redirects, HLS segments).
        self.guard = NetworkGuard(lambda: self.store.network_policy)
        proxy = await self.guard.start()
        if not lift_select_limit():  # past ~500 voice connections discord.py's reader needs it
            log.info("discord.py's voice socket reader keeps select()'s 1,024-descriptor limit")
        self.resolver = Resolver(
            lambda: self.store.network_policy,
            proxy=proxy,
            extractor_policy_getter=lambda: ExtractorPolicy(self.store.globals.extractors),
        )
        self.service = ResolveService(
            self.resolver, cache_path=cog_data_path(self) / "resolve_cache.json"
        )
        await self.service.start()  # loads the cache (in a thread)
        # yt-dlp's first-use costs (~0.4 s), paid now in the background instead of by the first
        # play; and what exists now frozen out of the garbage collector's full collections,
        # which would hold the GIL ~100 ms during a play (music.resolve.warmup)
        self.tasks["warm-up"] = asyncio.create_task(
            self.service.warm_up(freeze=True), name="music-warm-up"
        )
        # the shared transcoder's worker loads PyAV now (a process spawn: in a thread), not
        # during the first transcoding play. The instance is taken before the load goes on
        # (finding PyAV reads the disk: in a thread): a warm-up thread that runs late, after
        # cog_unload closed it, then finds it closed instead of starting a worker that nothing
        # would end.
        transcoder = await asyncio.to_thread(shared_transcoder)
        if transcoder is not None:
            self.tasks["transcoder-warm-up"] = asyncio.create_task(
                asyncio.to_thread(warm_up_transcoder, transcoder), name="music-transcoder-warm-up")
        audio = PipelineAudio(lambda: self.store.globals.ffmpeg_path, lambda: proxy)
        self.manager = PlayerManager(
            voice=DiscordVoice(self.bot),
            audio=audio,
            tracks=ServiceTracks(self.service, self.store),
            settings=self.store.guild,
            save=lambda player: self.store.mark_dirty(player.guild_id, player.capture),
            notify=self._notify,
            announce=self._announce_now_playing,
            default_volume=self._start_volume,
            default_filters=lambda guild_id: server_chain(self.store.guild(guild_id)),
            enter_guild=self._use_guild_locale,
        )
        self.control = MusicControl(self.manager, self.store, self.service)
        self.manager.autoplay = self.control.autoplay  # autoplay queues through the control layer
        self._start("advancer", self.manager.run_advancer)
        self._start("monitor", self._monitor_loop)
        self._start("flusher", lambda: self.store.flush_loop(self.shutdown_event))
        self._start("nowplaying", self.live_refresh_loop)  # the live "Now playing" messages
        # no full garbage collection (a GIL pause for every guild's audio) while audio plays
        gc_guard = FullCollectionGuard(lambda: audio.sender.active > 0)
        self._start("gc-guard", lambda: gc_guard.run(self.shutdown_event))
        self.start_buttons()
        self.tasks["init"] = asyncio.create_task(self._initialize(), name="music-init")
        self.rpc = MusicRPC(self)
        self.rpc.register()  # only with `redbot --rpc`; the handlers wait for `ready`
        # Red keeps it disabled until `[p]slash enable "Play this" message` (or enablecog)
        self.bot.tree.add_command(self.play_this_menu(), override=True)

    async def cog_unload(self) -> None:
        if self.rpc is not None:
            self.rpc.unregister()  # first: no RPC call may reach a cog that is shutting down
        self.bot.tree.remove_command(PLAY_THIS, type=discord.AppCommandType.message)
        self.shutdown_event.set()
        restore_select_limit()
        manager = self.manager
        if manager is not None:
            # save where every player is before anything stops, so a reload resumes there
            assert self.control is not None
            self.control.save_all()
            # captures, not snapshot(): list copies, no serialization of every queue on the loop
            snapshots = {gid: p.capture() for gid, p in manager.players.items()}
        else:
            snapshots = {}
        await self.stop_buttons()  # after the snapshots: the positions are the ones at unload
        for task in self.tasks.values():
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=5.0)
        self.tasks.clear()
        if manager is not None:
            # the snapshots above hold the positions; stopping must not overwrite them
            for gid, snap in snapshots.items():
                self.store.mark_dirty(gid, functools.partial(_same, snap))
            await manager.shutdown()
        # after the players (their streams end first): socket closed, SIGTERM, SIGKILL
        await asyncio.to_thread(close_shared_transcoder)
        if self.service is not None:
            await self.service.close()  # fails pending jobs with a sentence, saves the cache
        if self.resolver is not None:
            self.resolver.close()
        if self.guard is not None:
            await self.guard.close()  # after the players: it cuts the streams it relays
        await self.store.flush()

    def _start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self.tasks[name] = asyncio.create_task(self._supervise(name, factory), name=f"music-{name}")

    async def _supervise(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run `factory()` and restart it with backoff if it crashes.

        The advancer's events live in the manager's queue, outside the task, so a restart loses
        none of them."""
        backoff = 0.5
        while not self.shutdown_event.is_set():
            started = time.monotonic()
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.supervisor_restarts[name] = self.supervisor_restarts.get(name, 0) + 1
                log.exception("The music %s crashed; restarting it in %.1fs", name, backoff)
            if time.monotonic() - started > 60:
                backoff = 0.5  # it ran fine for a while: start over from a short wait
            await asyncio.sleep(backoff + random.uniform(0, backoff / 4))
            backoff = min(backoff * 2, SUPERVISOR_MAX_BACKOFF)

    async def _initialize(self) -> None:
        try:
            await self.bot.wait_until_red_ready()
            states = await self.store.load()
            self.apply_resolve_settings()  # the owner's lookup workers and timeout
            assert self.control is not None
            restored = self.control.restore(states, present=lambda guild_id: self.bot.get_guild(guild_id) is not None)
            log.info("Music is ready: %d saved queue(s) restored", restored)
        except Exception:
            log.exception("Music could not restore its saved state; starting empty")
        finally:
            self.ready.set()

    async def cog_before_invoke(self, ctx: commands.Context) -> None:  # type: ignore[override]
        await self.defer_slow_slash(ctx)  # first: the ready gate may wait longer than 3 s
        try:
            await wait_until_ready(self.ready)
        except ControlError as exc:
            raise commands.UserFeedbackCheckFailure(exc.sentence) from None

    async def cog_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:  # type: ignore[override]
        """A refusal from the control layer is a sentence in chat; anything else goes to Red."""
        original = getattr(error, "original", None)
        sentence = original.sentence if isinstance(original, ControlError) else None
        if isinstance(error, CommandError):
            sentence = error.message
        if sentence is not None and await self.refuse_privately(ctx, sentence):
            return  # a slash command's refusal: only its invoker sees it
        if isinstance(original, ControlError):
            with contextlib.suppress(discord.HTTPException):
                await ctx.send(original.sentence, allowed_mentions=discord.AllowedMentions.none())
            return
        # Red's handler takes `unhandled_by_cog` (discord.py's does not)
        await self.bot.on_command_error(ctx, error, unhandled_by_cog=True)  # type: ignore[call-arg]

    # -- the stream monitor ----------------------------------------------------------------------

    async def _monitor_loop(self) -> None:
        last_save = time.monotonic()
        while not self.shutdown_event.is_set():
            await asyncio.sleep(MONITOR_INTERVAL)
            now = time.monotonic()
            save_positions = now - last_save >= POSITION_SAVE_INTERVAL
            if save_positions:
                last_save = now
            assert self.manager is not None
            for player in list(self.manager.players.values()):
                await self._check_player(player, now, save_positions)

    async def _check_player(self, player: GuildPlayer, now: float, save_positions: bool) -> None:
        """Tell the player what the monitor sees of its voice channel; its handler decides."""
        manager = self.manager
        assert manager is not None
        vc = connected_voice(self.bot.get_guild(player.guild_id))
        listeners = 0 if vc is None else sum(1 for m in voice_channel(vc).members if not m.bot)
        manager.post(Tick(player.guild_id, now, vc is not None, listeners, save_positions))

    def _start_volume(self, guild_id: int) -> int:
        settings = self.store.guild(guild_id)
        return min(settings.volume, settings.max_volume)

    # -- messages ---------------------------------------------------------------------------------

    async def _use_guild_locale(self, guild_id: int) -> None:
        """Speak the server's language (`[p]set locale`) in what the player says from here on."""
        try:
            await set_contextual_locales_from_guild(self.bot, self.bot.get_guild(guild_id))
        except Exception:  # a language is never worth an unhandled event: keep the current one
            log.debug("Could not read the locale of guild %s", guild_id, exc_info=True)

    async def _notify(self, player: GuildPlayer, text: str) -> None:
        """Tell the guild's music text channel something. Never raises."""
        if player.text_channel_id is None:
            return
        channel = self._text_channel(player.text_channel_id)
        if channel is None:
            return
        try:
            # `text` is our sentence with any remote text already made `safe`
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException:
            log.debug("Could not notify guild %s", player.guild_id, exc_info=True)

    async def red_delete_data_for_user(self, *, requester: str, user_id: int) -> None:
        """Forget who requested queued tracks: the only user data this cog keeps."""
        await self.ready.wait()
        assert self.control is not None and self.manager is not None
        self.control.forget_requester(user_id)
        await self.store.flush()

        # queues saved for guilds that have no live player (chunked or old layout)
        def forget(state: dict[str, Any]) -> PlayerCapture | None:
            queue = QueueModel.from_dict(state.get("queue") or {})
            if not forget_requester(queue, user_id):
                return None
            return PlayerCapture.of({k: v for k, v in state.items() if k != "queue"}, queue)

        await self.store.rewrite_saved(forget, skip=set(self.manager.players))
        await self.control.playlists.forget_user(user_id)  # their own playlists, and as author


def _same(capture: PlayerCapture) -> PlayerCapture:
    return capture

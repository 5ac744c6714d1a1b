"""The players of every guild and the advancer that drives them.

Every change of a player's state happens in a handler run by the advancer (one event at a time:
``handlers.HANDLERS``) or in the control layer (``music.control``), both on the event loop, so
there are no flag races between commands, the audio thread and the monitor. Slow work (yt-dlp,
opening a stream, joining voice) runs in tasks (``loading``) that post an event back when done;
an event for a track that is no longer current, or from an older load generation, is dropped.

The audio thread never touches asyncio objects: the chain source's callback and the sender's
``after`` go through ``loop.call_soon_threadsafe`` (``post_threadsafe``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..engine.filters import FilterChain
from .events import PlayerEvent, Tick
from .ports import Announcer, AudioPort, AutoplayPort, Notifier, TrackPort, VoicePort
from .state import GuildPlayer

if TYPE_CHECKING:
    from .ports import PlayerSettings

log = logging.getLogger("red.music.player")


class PlayerManager:
    """Owns the players, the event queue, and the load and prefetch tasks."""

    def __init__(
        self,
        *,
        voice: VoicePort,
        audio: AudioPort,
        tracks: TrackPort,
        settings: Callable[[int], PlayerSettings],
        save: Callable[[GuildPlayer], None],
        notify: Notifier,
        announce: Announcer | None = None,
        default_volume: Callable[[int], int] = lambda guild_id: 100,
        default_filters: Callable[[int], FilterChain] = lambda guild_id: FilterChain(),
        autoplay: AutoplayPort | None = None,
        enter_guild: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.voice = voice
        self.audio = audio
        self.tracks = tracks
        self.settings = settings
        self._save = save
        self.notify = notify
        self.announce = announce
        self._default_volume = default_volume
        #: the server's filters, equalizer and normalisation (kept in its settings)
        self.default_filters = default_filters
        # plugged in by the cog once the control layer exists (it is built on this manager)
        self.autoplay = autoplay
        # the cog sets the server's language here before its events are handled: the advancer
        # is one task for every server, and what a handler says is translated when it is said
        self._enter_guild = enter_guild
        self.players: dict[int, GuildPlayer] = {}
        self.events: asyncio.Queue[PlayerEvent] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self.handled = 0

    # -- players ---------------------------------------------------------------------------

    def get(self, guild_id: int) -> GuildPlayer:
        player = self.players.get(guild_id)
        if player is None:
            player = self.players[guild_id] = GuildPlayer(
                guild_id=guild_id, volume=self._default_volume(guild_id),
                filters=self.default_filters(guild_id),
            )
        return player

    def save(self, player: GuildPlayer) -> None:
        """Persist the player (coalesced by the store)."""
        self._save(player)

    # -- events ----------------------------------------------------------------------------

    def post(self, event: PlayerEvent) -> None:
        """Queue an event for the advancer (event-loop side)."""
        self.events.put_nowait(event)

    def post_threadsafe(self, event: PlayerEvent) -> None:
        """Queue an event from an audio thread."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop is closed: the cog is gone, nothing to drive
            pass

    async def run_advancer(self) -> None:
        """Consume events forever. One bad event is logged, never fatal."""
        while True:
            event = await self.events.get()
            try:
                await self.handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("The advancer could not handle %s", event)
            finally:
                self.handled += 1

    async def handle(self, event: PlayerEvent) -> None:
        """Run the handler for the event's kind, then drop stale votes and save."""
        from .handlers import HANDLERS

        player = self.players.get(event.guild_id)
        if player is None:
            for stream in _streams_of(event):
                self.close_stream_later(stream)
            return
        if self._enter_guild is not None:
            await self._enter_guild(event.guild_id)
        await HANDLERS[type(event)](self, player, event)
        if isinstance(event, Tick):
            return  # the monitor's handler saves only when something changed
        current = player.queue.current
        if player.skip_votes and (current is None or set(player.skip_votes) != {current.id}):
            # votes count for one track only
            player.skip_votes = {k: v for k, v in player.skip_votes.items() if current and k == current.id}
        self.save(player)

    # -- tasks -----------------------------------------------------------------------------

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
        return task

    def close_stream_later(self, stream: Any) -> None:
        # closing waits for ffmpeg to exit: never on the event loop
        self.spawn(asyncio.to_thread(stream.close))

    @staticmethod
    def cancel(task: asyncio.Task[Any] | None) -> None:
        if task is not None and not task.done():
            task.cancel()

    async def idle(self) -> None:
        """Wait until no event is queued and no task runs (for tests and shutdown)."""
        while not self.events.empty() or any(not t.done() for t in self._side_tasks):
            pending = [t for t in self._side_tasks if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=0.05)
            while not self.events.empty():
                event = self.events.get_nowait()
                await self.handle(event)
                self.handled += 1

    # -- shutdown --------------------------------------------------------------------------

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every player, end every stream, leave voice. Bounded by `timeout`."""
        for player in self.players.values():
            self.cancel(player.load_task)
            self.cancel(player.prefetch_task)
            self.cancel(player.autoplay_task)
        sources = [p.source for p in self.players.values() if p.source is not None]
        for player in self.players.values():
            vc = self.voice.connected(player.guild_id)
            player.source = None
            if vc is not None:
                vc.stop()
        for source in sources:
            source.cleanup()  # hands its streams to its closer thread; never blocks
        for source in sources:
            # ffmpeg children end there (terminate, then kill): wait for them, bounded
            await asyncio.to_thread(source.wait_closed, timeout)
        pending = [t for t in self._side_tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for task in list(self._side_tasks):
            task.cancel()
        for guild_id in list(self.players):
            try:
                await asyncio.wait_for(self.voice.disconnect(guild_id), 5.0)
            except Exception:
                log.debug("Disconnect of guild %s failed during unload", guild_id, exc_info=True)
        # every playback was stopped above: this ends the audio threads
        await self.audio.close(timeout)


def _streams_of(event: PlayerEvent) -> list[Any]:
    stream = getattr(event, "stream", None)
    return [stream] if stream is not None and hasattr(stream, "close") else []

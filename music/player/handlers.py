"""The player's state machine as a table: one handler per event kind (``HANDLERS``).

A handler reads the event and the player, changes the player and its queue, and starts the
work that follows (a load, a prefetch, a stop). Results of that work come back as events; an
event from an older load generation, or for a track that is no longer current, is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..engine.queue import QueueError
from ..formatting import safe, track_line
from ..i18n import _
from . import events as ev
from .autoplay import cancel_autoplay, request_autoplay
from .errors import plain_error
from .playback import begin_playback
from .state import GuildPlayer, PlayerState
from .transitions import (
    advance_and_load,
    announce,
    end_of_queue,
    go_idle,
    in_prefetch_window,
    recover,
    refresh_prefetch,
    start_background,
    start_load,
    stop_audio,
    voice_playing,
)

if TYPE_CHECKING:
    from .manager import PlayerManager

# Playing, yet the position has not moved for this long: reopen the stream at the position.
STALL_SECONDS = 6.0
# Voice went away under a playing player: rejoin after this long without progress.
REJOIN_AFTER = 5.0

Handler = Callable[["PlayerManager", GuildPlayer, Any], Awaitable[None]]


# -- the queue and the player's plan ------------------------------------------------------------


async def on_queue_changed(m: PlayerManager, player: GuildPlayer, event: ev.QueueChanged) -> None:
    if player.state in (PlayerState.IDLE, PlayerState.BACKGROUND):
        _start_queue(m, player, background_if_empty=False)
    else:
        refresh_prefetch(m, player)
        request_autoplay(m, player)  # the edit left nothing after the current track


async def on_reschedule(m: PlayerManager, player: GuildPlayer, event: ev.Reschedule) -> None:
    current = player.queue.current
    if player.state in (PlayerState.IDLE, PlayerState.BACKGROUND):
        _start_queue(m, player, background_if_empty=player.state is PlayerState.IDLE)
    elif player.state is PlayerState.LOADING and current is not None:
        start_load(m, player, current, player.start_position)  # a stuck load: start it over
    elif current is not None and not voice_playing(m, player):
        start_load(m, player, current, player.position)
    else:
        refresh_prefetch(m, player)
        request_autoplay(m, player)


def _start_queue(m: PlayerManager, player: GuildPlayer, *, background_if_empty: bool) -> None:
    """Idle or background: play the queue (it takes over from the background at once); with
    an empty queue, autoplay if it is on, else the background."""
    current = player.queue.current
    if current is None:
        current = player.queue.advance()
        player.start_position = 0.0
    if current is not None:
        start_load(m, player, current, player.start_position)
    elif background_if_empty:
        if not request_autoplay(m, player):
            start_background(m, player)
    elif player.state is PlayerState.BACKGROUND:
        request_autoplay(m, player)  # its pick takes over from the background when queued


# -- results of the load tasks ------------------------------------------------------------------


async def on_loaded(m: PlayerManager, player: GuildPlayer, event: ev.Loaded) -> None:
    if event.generation != player.generation:
        m.close_stream_later(event.stream)
        return
    if player.state is PlayerState.BACKGROUND:
        player.background = event.track  # resolved once; it loops from here
    elif player.queue.current is None or player.queue.current.id != event.track.id:
        m.close_stream_later(event.stream)
        return
    else:
        player.queue.replace(event.track)  # the entry keeps its fresh stream URL
        player.unverified.discard(event.track.id)
    await begin_playback(m, player, event.track, event.stream)


async def on_load_failed(m: PlayerManager, player: GuildPlayer, event: ev.LoadFailed) -> None:
    current = player.queue.current
    if event.generation != player.generation or current is None or current.id != event.track_id:
        return
    await m.notify(player, _("I couldn't play {current}: {error}").format(current=track_line(current), error=safe(event.error, limit=300)))
    advance_and_load(m, player, skipped=True)


async def on_prefetched(m: PlayerManager, player: GuildPlayer, event: ev.Prefetched) -> None:
    source = player.source
    if (
        player.generation != event.generation
        or source is None
        or source.exhausted
        or source.closed
        or player.prefetched_id != event.track.id
    ):
        m.close_stream_later(event.stream)
        return
    player.queue.replace(event.track)
    player.unverified.discard(event.track.id)
    source.set_next(event.stream, event.track.id)


async def on_prefetch_failed(m: PlayerManager, player: GuildPlayer, event: ev.PrefetchFailed) -> None:
    if player.prefetched_id == event.track_id:
        player.prefetched_id = None  # loaded the usual way when its turn comes


async def on_autoplay_result(m: PlayerManager, player: GuildPlayer, event: ev.AutoplayResult) -> None:
    for note in event.notes:
        await m.notify(player, note)
    if event.queued or not event.notes:
        return  # queued (its QueueChanged plays it), or a member's track came first
    player.autoplay_refused_for = event.seed  # not asked again until another track plays
    if player.state is PlayerState.IDLE and player.queue.current is None and not len(player.queue):
        start_background(m, player)


async def on_background_failed(m: PlayerManager, player: GuildPlayer, event: ev.BackgroundFailed) -> None:
    if player.generation == event.generation and player.state is PlayerState.BACKGROUND:
        player.state = PlayerState.IDLE
        await m.notify(player, _("The background couldn't play: {error}").format(error=safe(event.error, limit=200)))


# -- from the audio thread ----------------------------------------------------------------------


async def on_track_ended(m: PlayerManager, player: GuildPlayer, event: ev.TrackEnded) -> None:
    background = player.background
    if player.state is PlayerState.BACKGROUND and background is not None:
        if event.track_id == background.id:
            start_background(m, player)  # it loops until something is queued
        return
    current = player.queue.current
    if current is None or current.id != event.track_id:
        return
    player.recoveries = 0
    nxt = player.queue.advance()
    player.start_position = 0.0
    if nxt is None:
        end_of_queue(m, player)
    elif player.source is not None and player.source.current_track_id == nxt.id:
        # the chain source already switched to the prefetched track: no gap
        player.prefetched_id = None
        player.state = PlayerState.PLAYING
        player.last_progress_at = time.monotonic()
        await announce(m, player, nxt)
        refresh_prefetch(m, player)
        request_autoplay(m, player)
    else:
        start_load(m, player, nxt, 0.0)


async def on_track_failed(m: PlayerManager, player: GuildPlayer, event: ev.TrackFailed) -> None:
    current = player.queue.current
    if current is None or (event.track_id is not None and current.id != event.track_id):
        return
    if not player.active:
        return
    # the event carries where the failed stream stopped: the source has dropped it, so
    # `player.position` no longer knows (it would restart the track from the top)
    await recover(m, player, event.error or _("the stream stalled"), position=event.position)


async def on_source_exhausted(m: PlayerManager, player: GuildPlayer, event: ev.SourceExhausted) -> None:
    current = player.queue.current
    if player.state is PlayerState.PLAYING and current is not None and current.id == event.track_id:
        # the source ran dry before TrackEnded was handled: treat it as the end
        m.post(ev.TrackEnded(player.guild_id, event.track_id))


async def on_playback_stopped(m: PlayerManager, player: GuildPlayer, event: ev.PlaybackStopped) -> None:
    # Expected after stop/disconnect, and for a source that was already replaced: only the
    # live source matters.
    if event.source is not player.source:
        return
    player.source = None
    current = player.queue.current
    if player.active and current is not None:
        # the sender saw where the track was before the source was cleaned up
        position = event.position if event.track_id == current.id else None
        await recover(m, player, event.error or _("the voice player stopped"), position=position)


# -- what members asked for (through the control layer) ---------------------------------------


async def on_skip(m: PlayerManager, player: GuildPlayer, event: ev.Skip) -> None:
    if player.queue.current is not None:
        advance_and_load(m, player, skipped=True)


async def on_skip_to(m: PlayerManager, player: GuildPlayer, event: ev.SkipTo) -> None:
    try:
        track = player.queue.skip_to(event.index)
    except QueueError:
        return  # the queue changed since the member asked; the control layer said so then
    player.recoveries = 0
    start_load(m, player, track, 0.0)


async def on_previous(m: PlayerManager, player: GuildPlayer, event: ev.Previous) -> None:
    track = player.queue.previous()
    if track is not None:
        start_load(m, player, track, 0.0)


async def on_stop(m: PlayerManager, player: GuildPlayer, event: ev.Stop) -> None:
    cancel_autoplay(m, player)
    player.queue.clear()
    player.queue.current = None
    stop_audio(m, player)
    go_idle(player, m)


async def on_stop_background(m: PlayerManager, player: GuildPlayer, event: ev.StopBackground) -> None:
    if player.state is PlayerState.BACKGROUND:
        stop_audio(m, player)
        go_idle(player, m)


async def on_seek(m: PlayerManager, player: GuildPlayer, event: ev.Seek) -> None:
    current = player.queue.current
    if current is not None and player.state is not PlayerState.IDLE:
        start_load(m, player, current, event.seconds)


async def on_set_volume(m: PlayerManager, player: GuildPlayer, event: ev.SetVolume) -> None:
    player.volume = event.percent
    _play_on_with_the_new_sound(m, player)


async def on_set_filters(m: PlayerManager, player: GuildPlayer, event: ev.SetFilters) -> None:
    if event.chain == player.filters:
        return
    player.filters = event.chain
    _play_on_with_the_new_sound(m, player)


def _play_on_with_the_new_sound(m: PlayerManager, player: GuildPlayer) -> None:
    """The volume or the filters changed: the playing track is opened again with them and
    spliced in where it has got to (no gap); a paused one stays paused."""
    current = player.queue.current
    if current is not None and player.active:
        player.paused_on_load = player.state is PlayerState.PAUSED
        start_load(m, player, current, player.position, splice=True)
    elif current is not None and player.state is PlayerState.LOADING:
        # the load in flight may have opened with the old sound: open it again
        start_load(m, player, current, player.position, splice=player.splice_load)
    elif player.state is PlayerState.BACKGROUND:
        start_background(m, player)


async def on_pause(m: PlayerManager, player: GuildPlayer, event: ev.Pause) -> None:
    vc = m.voice.connected(player.guild_id)
    if player.state is PlayerState.PLAYING and vc is not None:
        vc.pause()
        player.state = PlayerState.PAUSED


async def on_unpause(m: PlayerManager, player: GuildPlayer, event: ev.Unpause) -> None:
    vc = m.voice.connected(player.guild_id)
    if player.state is PlayerState.PAUSED and vc is not None:
        vc.resume()
        player.state = PlayerState.PLAYING
        player.last_progress_at = time.monotonic()


async def on_disconnect(m: PlayerManager, player: GuildPlayer, event: ev.Disconnect) -> None:
    # keep the queue and the position; forget the channel so nothing auto-rejoins
    cancel_autoplay(m, player)
    player.start_position = player.position
    stop_audio(m, player)
    player.state = PlayerState.IDLE
    player.channel_id = None
    if m.voice.connected(player.guild_id) is not None:
        m.spawn(m.voice.disconnect(player.guild_id))


# -- the monitor ------------------------------------------------------------------------------


async def on_tick(m: PlayerManager, player: GuildPlayer, event: ev.Tick) -> None:
    """Once a second per player: stalls, prefetch timing, lost voice, empty channels, idling."""
    if player.state is PlayerState.PLAYING:
        await _watch_progress(m, player, event.now)
    if event.save_position and player.state is PlayerState.PLAYING:
        m.save(player)
    if player.active and not event.connected:
        # the voice connection went away under us (kicked, moved, or dropped)
        if event.now - player.last_progress_at > REJOIN_AFTER and player.channel_id:
            player.last_progress_at = event.now
            await on_reschedule(m, player, ev.Reschedule(player.guild_id))
            m.save(player)
        return
    if event.connected:
        await _watch_listeners(m, player, event)


async def _watch_progress(m: PlayerManager, player: GuildPlayer, now: float) -> None:
    position = player.position
    if position != player.last_position:
        player.last_position = position
        player.last_progress_at = now
    elif now - player.last_progress_at > STALL_SECONDS:
        player.last_progress_at = now
        await on_track_failed(m, player, ev.TrackFailed(player.guild_id, None, _("no audio for a while")))
        m.save(player)
        return
    if player.prefetched_id is None and in_prefetch_window(player) and player.queue.peek_next() is not None:
        refresh_prefetch(m, player)  # opens the next one


async def _watch_listeners(m: PlayerManager, player: GuildPlayer, event: ev.Tick) -> None:
    settings = m.settings(player.guild_id)
    before = (player.state, player.channel_id)
    if event.listeners and player.auto_paused:
        player.auto_paused = False
        await on_unpause(m, player, ev.Unpause(player.guild_id))
    if not event.listeners and settings.pause_when_alone and player.state is PlayerState.PLAYING:
        player.auto_paused = True
        await on_pause(m, player, ev.Pause(player.guild_id))
    if event.listeners:
        player.alone_since = None
    elif player.alone_since is None:
        player.alone_since = event.now
    elif settings.empty_disconnect and event.now - player.alone_since >= settings.empty_disconnect:
        player.alone_since = None
        await m.notify(player, _("Everyone left the voice channel, so I left too. The queue is kept."))
        await on_disconnect(m, player, ev.Disconnect(player.guild_id))
    idle_for = event.now - player.idle_since
    if player.state is PlayerState.IDLE and player.channel_id and settings.idle_disconnect and idle_for >= settings.idle_disconnect:
        player.idle_since = event.now
        await on_disconnect(m, player, ev.Disconnect(player.guild_id))
    if (player.state, player.channel_id) != before:
        m.save(player)


HANDLERS: dict[type[ev.PlayerEvent], Handler] = {
    ev.QueueChanged: on_queue_changed,
    ev.Reschedule: on_reschedule,
    ev.Loaded: on_loaded,
    ev.LoadFailed: on_load_failed,
    ev.Prefetched: on_prefetched,
    ev.PrefetchFailed: on_prefetch_failed,
    ev.BackgroundFailed: on_background_failed,
    ev.AutoplayResult: on_autoplay_result,
    ev.TrackEnded: on_track_ended,
    ev.TrackFailed: on_track_failed,
    ev.SourceExhausted: on_source_exhausted,
    ev.PlaybackStopped: on_playback_stopped,
    ev.Skip: on_skip,
    ev.SkipTo: on_skip_to,
    ev.Previous: on_previous,
    ev.Stop: on_stop,
    ev.StopBackground: on_stop_background,
    ev.Seek: on_seek,
    ev.SetVolume: on_set_volume,
    ev.SetFilters: on_set_filters,
    ev.Pause: on_pause,
    ev.Unpause: on_unpause,
    ev.Disconnect: on_disconnect,
    ev.Tick: on_tick,
}

__all__ = ["HANDLERS", "plain_error"]

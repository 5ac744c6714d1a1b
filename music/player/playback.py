"""Putting an opened stream on the air: a new chain source, or a splice into the running one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine.track import Track
from ..formatting import safe
from ..i18n import _, deferred
from . import events as ev
from .autoplay import request_autoplay
from .errors import plain_error
from .state import GuildPlayer, PlayerState
from .transitions import announce, refresh_prefetch

if TYPE_CHECKING:
    from .manager import PlayerManager
    from .ports import VoiceHandle

NOT_IN_VOICE = deferred._("I'm not connected to a voice channel any more; use `play` or `summon` to bring me back.")


async def begin_playback(m: PlayerManager, player: GuildPlayer, track: Track, stream: Any) -> None:
    """Play `stream` (of `track`, the current track or the background) into voice."""
    vc = m.voice.connected(player.guild_id)
    if vc is None:
        m.close_stream_later(stream)
        player.state = PlayerState.IDLE
        await m.notify(player, _(NOT_IN_VOICE))
        return
    restarted = player.source is not None and player.source.current_track_id == track.id
    if not await _put_on_air(m, player, vc, track, stream):
        return
    if player.state is PlayerState.BACKGROUND:
        if vc.is_paused():
            vc.resume()
        return  # no announcement and no prefetch for the background
    _settle_pause_state(player, vc)
    player.last_progress_at = time.monotonic()
    player.prefetched_id = None
    if not restarted and player.recoveries == 0:
        await announce(m, player, track)
    refresh_prefetch(m, player)
    request_autoplay(m, player)  # nothing after this track: autoplay's pick, prefetched in time


async def _put_on_air(m: PlayerManager, player: GuildPlayer, vc: VoiceHandle, track: Track, stream: Any) -> bool:
    """Splice the stream into the running chain, or start a new chain; False if voice failed."""
    source = player.source
    splice, player.splice_load = player.splice_load, False
    if source is not None and not source.exhausted and not source.closed and (vc.is_playing() or vc.is_paused()):
        if splice and source.current_track_id == track.id:
            source.splice(stream, track.id)  # where the playing stream has got to: no gap
        else:
            source.play_now(stream, track.id)
        return True
    # a new chain: the old one (if any) has stopped or is about to
    if vc.is_playing() or vc.is_paused():
        vc.stop()
    player.source = source = new_source(m, player.guild_id)
    source.play_now(stream, track.id)
    try:
        m.audio.play(vc, source, after_callback(m, player.guild_id, source))
    except Exception as exc:  # the connection dropped between the check and now
        source.cleanup()
        player.source = None
        player.state = PlayerState.IDLE
        await m.notify(player, _("I couldn't start playing: {exc}").format(exc=safe(plain_error(exc), limit=200)))
        return False
    return True


def _settle_pause_state(player: GuildPlayer, vc: VoiceHandle) -> None:
    if player.paused_on_load:
        player.paused_on_load = False
        vc.pause()
        player.state = PlayerState.PAUSED
    elif vc.is_paused() and player.state is not PlayerState.PAUSED:
        vc.resume()
        player.state = PlayerState.PLAYING
    else:
        player.state = PlayerState.PAUSED if vc.is_paused() else PlayerState.PLAYING


def new_source(m: PlayerManager, guild_id: int) -> Any:
    """A chain source whose track boundaries come back to the advancer as events."""
    source: Any = None

    def on_event(kind: str, track_id: str | None, error: str | None) -> None:
        # called from the audio thread, right after the read() that ended the stream, so
        # `last_end` is that stream's: where it stopped, for a recovery at the position
        end = source.last_end
        position = end[1] if end is not None and end[0] == track_id else None
        if kind == "track_end":
            m.post_threadsafe(ev.TrackEnded(guild_id, track_id))
        elif kind == "track_error":
            m.post_threadsafe(ev.TrackFailed(guild_id, track_id, error, position))
        elif kind == "exhausted":
            m.post_threadsafe(ev.SourceExhausted(guild_id, track_id))

    source = m.audio.new_source(on_event)
    return source


def after_callback(m: PlayerManager, guild_id: int, source: Any) -> Callable[[BaseException | None], None]:
    def after(error: BaseException | None) -> None:
        # called from the sender's helper thread when the playback ends (an error, or the voice
        # connection went away); note the position before cleanup() drops the streams
        track_id, position = source.current_track_id, source.position
        source.cleanup()
        m.post_threadsafe(
            ev.PlaybackStopped(guild_id, source, plain_error(error) if error else None, track_id, position)
        )

    return after

"""The moves the handlers share: start a load, advance the queue, go idle, recover a stream,
re-plan the prefetch. Called only from handlers (on the advancer), never from outside."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..engine.track import Track
from ..formatting import safe, track_line
from ..i18n import _
from . import loading
from .autoplay import request_autoplay
from .state import GuildPlayer, PlayerState

if TYPE_CHECKING:
    from .manager import PlayerManager

log = logging.getLogger("red.music.player")

# The next track is resolved and opened this many seconds before the current one ends.
PREFETCH_WINDOW = 30.0
# A stream that fails mid-track is reopened at its position this many times in a row.
MAX_RECOVERIES = 3


def start_load(m: PlayerManager, player: GuildPlayer, track: Track, start: float, *,
               splice: bool = False) -> None:
    """Resolve and open `track` at `start` in a task; LOADED or LOAD_FAILED comes back.
    `splice`: the track plays on meanwhile, and its new stream takes over where it got to."""
    m.cancel(player.load_task)
    player.generation += 1
    player.start_position = start
    player.splice_load = splice
    player.state = PlayerState.LOADING
    player.load_task = m.spawn(loading.load(m, player, track, start, player.generation))


def advance_and_load(m: PlayerManager, player: GuildPlayer, *, skipped: bool) -> None:
    """Move to the next track and load it; at the end of the queue go idle (and background)."""
    player.recoveries = 0
    nxt = player.queue.advance(skipped=skipped)
    player.start_position = 0.0
    if nxt is None:
        end_of_queue(m, player)
    else:
        start_load(m, player, nxt, 0.0)


def end_of_queue(m: PlayerManager, player: GuildPlayer) -> None:
    # stop sending now rather than after the source's grace
    stop_audio(m, player)
    go_idle(player, m)
    # autoplay's pick, when it comes, starts like any queued track; else the background
    if not request_autoplay(m, player):
        start_background(m, player)


def go_idle(player: GuildPlayer, m: PlayerManager) -> None:
    m.cancel(player.load_task)
    m.cancel(player.prefetch_task)
    player.prefetched_id = None
    player.state = PlayerState.IDLE
    player.idle_since = time.monotonic()
    player.generation += 1


def stop_audio(m: PlayerManager, player: GuildPlayer) -> None:
    """End the voice playback and every pending load of this player."""
    m.cancel(player.load_task)
    m.cancel(player.prefetch_task)
    player.prefetched_id = None
    vc = m.voice.connected(player.guild_id)
    source, player.source = player.source, None
    if vc is not None and (vc.is_playing() or vc.is_paused()):
        vc.stop()  # the sender calls source.cleanup() as it ends
    elif source is not None:
        m.spawn(_cleanup_in_thread(source))


async def _cleanup_in_thread(source: object) -> None:
    import asyncio

    await asyncio.to_thread(source.cleanup)  # type: ignore[attr-defined]


def start_background(m: PlayerManager, player: GuildPlayer) -> None:
    """Play the server's background (Musicazoo's `bg`) while the queue is empty and we are in a
    voice channel. It yields the moment something is queued (QueueChanged)."""
    url = m.settings(player.guild_id).background
    if not url or m.voice.connected(player.guild_id) is None or player.queue.current is not None:
        return
    m.cancel(player.load_task)
    player.generation += 1
    player.state = PlayerState.BACKGROUND
    player.load_task = m.spawn(loading.load_background(m, player, url, player.generation))


async def recover(m: PlayerManager, player: GuildPlayer, reason: str, *, position: float | None = None) -> None:
    """Reopen the current track at `position` (default: where it is now) with a fresh stream
    URL, or skip it after MAX_RECOVERIES failures in a row."""
    current = player.queue.current
    assert current is not None
    if player.recoveries >= MAX_RECOVERIES:
        await m.notify(player, _("{current} keeps failing ({reason}); skipping it.").format(current=track_line(current), reason=safe(reason, limit=200)))
        advance_and_load(m, player, skipped=True)
        return
    player.recoveries += 1
    if position is None:
        position = player.position
    log.info("Guild %s: reopening %s at %.1fs (%s)", player.guild_id, current.id, position, reason)
    # force a fresh stream URL: an expired or dropped URL is the usual cause
    if current.kind == "remote":
        current.stream_expires = 0.0
        # or the lookup would hand back the URL that just failed
        m.tracks.forget_stream(current)
    start_load(m, player, current, position)


def in_prefetch_window(player: GuildPlayer) -> bool:
    """Open the next track only near the end of this one: a stream opened an hour early holds
    an idle connection that the server may drop, and its URL may expire."""
    current = player.queue.current
    if current is None or not current.duration:
        return True
    return current.duration - player.position <= PREFETCH_WINDOW


def refresh_prefetch(m: PlayerManager, player: GuildPlayer) -> None:
    """Open the track that plays next, if it is time and it is not open yet."""
    if player.source is None or not player.active:
        return
    nxt = player.queue.peek_next()
    wanted = nxt.id if nxt is not None and in_prefetch_window(player) else None
    if wanted == player.prefetched_id:
        return
    m.cancel(player.prefetch_task)
    player.source.clear_next()
    player.prefetched_id = wanted
    if nxt is not None:
        player.prefetch_task = m.spawn(loading.prefetch(m, player, nxt, player.generation))


def voice_playing(m: PlayerManager, player: GuildPlayer) -> bool:
    vc = m.voice.connected(player.guild_id)
    return vc is not None and (vc.is_playing() or vc.is_paused())


async def announce(m: PlayerManager, player: GuildPlayer, track: Track) -> None:
    if not m.settings(player.guild_id).notify:
        return
    if m.announce is not None:
        await m.announce(player, track)
    else:
        await m.notify(player, _("Now playing: {track}").format(track=track_line(track)))

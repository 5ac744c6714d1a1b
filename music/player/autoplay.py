"""When the player asks autoplay for a track: the queue is about to run dry (nothing would play
after the current track), the bot is in voice, and the server turned autoplay on.

It asks early, as soon as a track starts with nothing after it, so the pick is queued while
that track plays and is prefetched like any next track: the change is gapless. Called only
from handlers (on the advancer); the top-up runs in a task and reports AUTOPLAY_RESULT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.track import Track
from . import loading
from .state import GuildPlayer

if TYPE_CHECKING:
    from .manager import PlayerManager

NO_SEED = "-"


def _seed(player: GuildPlayer) -> tuple[Track | None, str]:
    """The track autoplay follows (the current one, else the last played) and its key."""
    queue = player.queue
    seed = queue.current if queue.current is not None else (queue.history[-1] if queue.history else None)
    return seed, seed.id if seed is not None else NO_SEED


def autoplay_wanted(m: PlayerManager, player: GuildPlayer) -> bool:
    return (
        m.autoplay is not None
        and m.settings(player.guild_id).autoplay_mode != "off"
        and m.voice.connected(player.guild_id) is not None
        and player.queue.peek_next() is None
    )


def request_autoplay(m: PlayerManager, player: GuildPlayer) -> bool:
    """Ask autoplay for the next track if the queue is running dry; True if a request is in
    flight now (so the caller does not start the background meanwhile)."""
    if not autoplay_wanted(m, player):
        return False
    task = player.autoplay_task
    if task is not None and not task.done():
        return True
    seed, key = _seed(player)
    if key == player.autoplay_refused_for:
        return False  # it found nothing after this track already; a new track asks again
    player.autoplay_task = m.spawn(loading.autoplay(m, player, seed, key))
    return True


def cancel_autoplay(m: PlayerManager, player: GuildPlayer) -> None:
    """Stop a top-up in flight (stop, disconnect): nothing is queued after the member's stop."""
    m.cancel(player.autoplay_task)
    player.autoplay_task = None

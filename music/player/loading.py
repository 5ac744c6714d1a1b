"""The slow work of the player, in tasks: making a track playable, joining voice, opening its
stream. Each task reports what it found as an event and never writes player or queue state:
the advancer decides what to do with the result (and drops it if the player moved on)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..engine.track import Track
from ..i18n import _
from ..policy import PolicyError
from ..resolve.jobs import Priority
from ..resolve.resolver import ResolveError
from .errors import StreamOpenError, VoiceError, plain_error
from .events import AutoplayResult, BackgroundFailed, Loaded, LoadFailed, Prefetched, PrefetchFailed

if TYPE_CHECKING:
    from .manager import PlayerManager
    from .state import GuildPlayer

log = logging.getLogger("red.music.player")

# what a load can fail with, each already a sentence for the user
EXPECTED_LOAD_ERRORS = (ResolveError, PolicyError, VoiceError, StreamOpenError)


async def load(m: PlayerManager, player: GuildPlayer, track: Track, start: float, generation: int) -> None:
    """Make `track` playable, be in voice, open its stream at `start`: LOADED or LOAD_FAILED."""
    guild_id = player.guild_id
    stream: Any | None = None
    try:
        playable = await m.tracks.playable(
            guild_id, track, Priority.URGENT, stored=track.id in player.unverified
        )
        await m.voice.ensure(guild_id, player.channel_id)
        stream = await m.audio.open(playable, start, player.volume, player.filters)
    except asyncio.CancelledError:
        if stream is not None:
            m.close_stream_later(stream)
        raise
    except EXPECTED_LOAD_ERRORS as exc:
        m.post(LoadFailed(guild_id, track.id, generation, str(exc)))
        return
    except Exception as exc:  # the stream could not be opened, or anything unexpected
        log.warning("Guild %s: could not open %s", guild_id, track.id, exc_info=True)
        m.post(LoadFailed(guild_id, track.id, generation, plain_error(exc)))
        return
    m.post(Loaded(guild_id, playable, generation, stream))


async def prefetch(m: PlayerManager, player: GuildPlayer, track: Track, generation: int) -> None:
    """Open the next track ahead of its turn; PREFETCHED or PREFETCH_FAILED."""
    stream: Any | None = None
    try:
        playable = await m.tracks.playable(
            player.guild_id, track, Priority.HIGH, stored=track.id in player.unverified
        )
        stream = await m.audio.open(playable, 0.0, player.volume, player.filters)
    except asyncio.CancelledError:
        if stream is not None:
            m.close_stream_later(stream)
        raise
    except Exception:
        # not fatal: the track is loaded the usual way when its turn comes
        log.debug("Prefetch of %s failed", track.id, exc_info=True)
        m.post(PrefetchFailed(player.guild_id, track.id))
        return
    m.post(Prefetched(player.guild_id, playable, generation, stream))


async def load_background(m: PlayerManager, player: GuildPlayer, url: str, generation: int) -> None:
    """Resolve (once) and open the server's background; LOADED or BACKGROUND_FAILED."""
    stream: Any | None = None
    try:
        track = await m.tracks.background(player.guild_id, url, player.background)
        stream = await m.audio.open(track, 0.0, player.volume, player.filters)
    except asyncio.CancelledError:
        if stream is not None:
            m.close_stream_later(stream)
        raise
    except Exception as exc:
        log.info("Guild %s: the background could not play: %s", player.guild_id, exc)
        m.post(BackgroundFailed(player.guild_id, generation, plain_error(exc)))
        return
    m.post(Loaded(player.guild_id, track, generation, stream))


async def autoplay(m: PlayerManager, player: GuildPlayer, seed: Track | None, seed_key: str) -> None:
    """Ask autoplay to queue what follows `seed` (it queues through the control layer, whose
    QueueChanged starts or prefetches it); AUTOPLAY_RESULT says how it went."""
    assert m.autoplay is not None
    try:
        queued, notes = await m.autoplay.top_up(player.guild_id, seed)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("Guild %s: autoplay failed", player.guild_id, exc_info=True)
        queued, notes = False, [_("Autoplay stopped: {exc}.").format(exc=plain_error(exc))]
    m.post(AutoplayResult(player.guild_id, seed_key, queued, tuple(notes)))

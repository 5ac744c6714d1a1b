"""A queue API over Red's RPC server (`redbot --rpc`), after Musicazoo's JSON commands.

Red serves JSON-RPC 2.0 over a websocket on 127.0.0.1 only (`--rpc-port`, default 6133), without
authentication: whoever can reach that port of the bot's host can call these methods, so they
are as trusted as the bot owner's shell. They still go through everything a command goes
through, because they call the same control layer (``music.control``): the network policy, the
server's queue, length and per-member limits (for every entry of a playlist too), the fair
queue, and the advancer.

Methods (Red names them `MUSIC__<NAME>`; params by name or position):

    MUSIC__STATUS(guild_id)
    MUSIC__QUEUE(guild_id, fields=None)
    MUSIC__ADD(guild_id, query, channel_id=None, text_channel_id=None, requester_id=0, front=False)
    MUSIC__REMOVE(guild_id, position=None, track_id=None)
    MUSIC__MOVE(guild_id, position=None, to_position=None, track_id=None)
    MUSIC__SKIP(guild_id, track_id=None)
    MUSIC__BACKGROUND(guild_id, url=None)

Every method answers a JSON object: `{"ok": true, ...}` or `{"ok": false, "error": sentence}`
for input that can't be acted on (unknown server, bad position, a refused URL...). Discord ids
are accepted as integers or digit strings and returned as strings (JavaScript clients lose
precision on integers above 2**53).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .control import Actor, ControlError, MusicControl, wait_until_ready
from .engine.track import Track
from .i18n import _
from .permissions import is_privileged
from .player import GuildPlayer, PlayerState
from .voiceclient import connected_voice

if TYPE_CHECKING:
    import discord

    from .cog import Music

log = logging.getLogger("red.music.rpc")

RPC_PREFIX = "music"  # Red names the methods MUSIC__<NAME>

# Track fields a client may ask for. Stream URLs and their headers are left out: they are
# signed, expire, and can reveal the bot's address.
TRACK_FIELDS = (
    "id", "title", "duration", "query", "kind", "requester_id", "uploader", "webpage_url", "is_live",
    "extractor",
)
DEFAULT_FIELDS = ("id", "title", "duration", "requester_id", "webpage_url")


class RPCError(Exception):
    """Bad input, as a sentence for the RPC client."""


def _handler(method: Callable[..., Awaitable[dict[str, Any]]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Turn RPCError into `{"ok": false, "error": ...}` and add `"ok": true` to results.

    aiohttp-json-rpc maps params by the argument names that `inspect.getfullargspec` finds;
    that ignores `__wrapped__` but honours `__signature__`, so the wrapper carries the method's."""

    @functools.wraps(method)
    async def wrapper(self: MusicRPC, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            if not self.registered:
                # Red swaps in a new method table on unregister, but a websocket opened
                # before keeps the old one: its calls still reach this unloaded cog's handlers
                raise RPCError(_("Music was unloaded or reloaded; reconnect to the RPC server."))
            await wait_until_ready(self.cog.ready)
            result = await method(self, *args, **kwargs)
        except RPCError as exc:
            return {"ok": False, "error": str(exc)}
        except ControlError as exc:
            return {"ok": False, "error": exc.sentence}
        return {"ok": True, **result}

    wrapper.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return wrapper


class MusicRPC:
    """The RPC handlers of one Music cog. `register()` at the end of cog_load, `unregister()`
    at the start of cog_unload."""

    def __init__(self, cog: Music) -> None:
        self.cog = cog
        self.bot = cog.bot
        self.registered = False

    # -- registration -----------------------------------------------------------------------

    def handlers(self) -> list[Callable[..., Awaitable[dict[str, Any]]]]:
        return [self.status, self.queue, self.add, self.remove, self.move, self.skip, self.background]

    def register(self) -> None:
        """Add the handlers to Red's RPC server when it runs (`--rpc`).

        `bot.register_rpc_handler` would name them after this class (MUSICRPC__...); the RPC
        server's `add_method` with a prefix gives the cog's name, as a method of the cog would."""
        if not getattr(self.bot, "rpc_enabled", False):
            return  # no server: nothing to register (and an unconnected bot has no RPC app)
        for method in self.handlers():
            self.bot.rpc.add_method(method, prefix=RPC_PREFIX)
        self.registered = True

    def unregister(self) -> None:
        if self.registered:
            self.bot.rpc.remove_methods(RPC_PREFIX.upper())
            self.registered = False

    # -- the methods -------------------------------------------------------------------------

    @_handler
    async def status(self, guild_id: int | str) -> dict[str, Any]:
        """The player of a server: state, current track and position, queue length, settings."""
        guild = self._guild(guild_id)
        player = self._player(guild.id)
        settings = self.cog.store.guild(guild.id)
        vc = connected_voice(guild)
        connected = vc is not None
        current = player.queue.current
        return {
            "guild_id": str(guild.id),
            "state": player.state.value,
            "connected": connected,
            "voice_channel_id": str(vc.channel.id) if connected and vc is not None else None,
            "current": _track_json(current, DEFAULT_FIELDS) if current else None,
            "position": round(player.position, 2) if current else None,
            "paused": player.state is PlayerState.PAUSED,
            "volume": player.volume,
            "queue_length": len(player.queue),
            "queue_duration": player.queue.upcoming_duration(),
            "repeat": player.queue.repeat.value,
            "shuffle": player.queue.shuffle,
            "background": settings.background,
            "background_playing": player.state is PlayerState.BACKGROUND,
        }

    @_handler
    async def queue(self, guild_id: int | str, fields: list[str] | None = None) -> dict[str, Any]:
        """The current track and the queue, each track with the chosen `fields`
        (default: id, title, duration, requester_id, webpage_url)."""
        guild = self._guild(guild_id)
        chosen = _fields(fields)
        player = self._player(guild.id)
        current = player.queue.current
        return {
            "current": _track_json(current, chosen) if current else None,
            "queue": [
                {"position": n, **_track_json(t, chosen)} for n, t in enumerate(player.queue.upcoming, 1)
            ],
        }

    @_handler
    async def add(
        self,
        guild_id: int | str,
        query: str,
        channel_id: int | str | None = None,
        text_channel_id: int | str | None = None,
        requester_id: int | str = 0,
        front: bool = False,
    ) -> dict[str, Any]:
        """Queue a URL (a playlist adds its entries) or the first search result for text.

        `channel_id`: the voice channel to play in when the bot is in none. `text_channel_id`:
        where "Now playing" and errors go. `requester_id`: the member it is queued for (their
        per-member limit and fair-queue turn apply); 0 for the RPC client itself."""
        guild = self._guild(guild_id)
        requester = _snowflake(requester_id, "requester_id", allow_zero=True)
        player = self._player(guild.id)
        voice_id, text_id = self._place(guild, player, channel_id, text_channel_id)
        actor = await self._actor_for(guild, requester)
        control = self._control()
        result = await control.lookup(guild.id, actor, query)
        try:
            queued = control.enqueue(guild.id, actor, result.tracks, front=bool(front), describe=_plain_title,
                                     more_to_come=result.rest is not None)
        except ControlError:
            control.drop_playlist(result.rest)
            raise
        control.bind(guild.id, voice_id, text_id)
        answer: dict[str, Any] = {
            "position": queued.position,
            "added": [_track_json(t, DEFAULT_FIELDS) for t in queued.tracks],
            "notes": queued.notes + [str(e) for e in result.errors or ()],
        }
        if result.rest is not None:
            # a playlist: its first entry is queued now, the rest as it is listed
            insert_at = queued.position + len(queued.tracks) if front else None
            assert self.cog.manager is not None
            self.cog.manager.spawn(control.enqueue_rest(guild.id, actor, result.rest, insert_at,
                                                        describe=_plain_title))
            answer["playlist_job"] = result.rest.job_id
        return answer

    @_handler
    async def remove(
        self, guild_id: int | str, position: int | None = None, track_id: str | None = None
    ) -> dict[str, Any]:
        """Remove a queued track by its 1-based `position` or by its `track_id`."""
        guild = self._guild(guild_id)
        index = self._position(guild.id, position, track_id)
        track = self._control().remove(guild.id, Actor.system_for(), index)
        return {"removed": _track_json(track, DEFAULT_FIELDS)}

    @_handler
    async def move(
        self,
        guild_id: int | str,
        position: int | None = None,
        to_position: int | None = None,
        track_id: str | None = None,
    ) -> dict[str, Any]:
        """Move a queued track (by `position` or `track_id`) so it ends up at `to_position`."""
        guild = self._guild(guild_id)
        index = self._position(guild.id, position, track_id)
        if to_position is None:
            raise RPCError(_("Give `to_position`: where the track should end up."))
        target = _int(to_position, "to_position")
        track = self._control().move(guild.id, Actor.system_for(), index, target)
        return {"moved": _track_json(track, DEFAULT_FIELDS), "position": target}

    @_handler
    async def skip(self, guild_id: int | str, track_id: str | None = None) -> dict[str, Any]:
        """Skip the current track. With `track_id`, only if that track is still the current one
        (so a late request never skips the next song)."""
        guild = self._guild(guild_id)
        outcome = self._control().skip(guild.id, Actor.system_for(), track_id=track_id)
        return {"skipped": _track_json(outcome.track, DEFAULT_FIELDS)}

    @_handler
    async def background(self, guild_id: int | str, url: str | None = None) -> dict[str, Any]:
        """Show (no `url`), set (an http(s) link) or turn off (`"off"`) the server's background:
        a stream that plays while the queue is empty."""
        guild = self._guild(guild_id)
        if url is None:
            return {"background": self.cog.store.guild(guild.id).background}
        if not isinstance(url, str):
            raise RPCError(_("`url` must be a link, or \"off\"."))
        return {"background": await self._control().set_background(guild.id, Actor.system_for(), url)}

    # -- helpers ----------------------------------------------------------------------------

    def _guild(self, guild_id: Any) -> discord.Guild:
        gid = _snowflake(guild_id, "guild_id")
        guild = self.bot.get_guild(gid)
        if guild is None:
            raise RPCError(_("I'm not in a server with id {gid}.").format(gid=gid))
        return guild

    def _control(self) -> MusicControl:
        assert self.cog.control is not None
        return self.cog.control

    def _player(self, guild_id: int) -> GuildPlayer:
        return self._control().player(guild_id)

    async def _actor_for(self, guild: discord.Guild, requester: int) -> Actor:
        """The owner's tools acting for `requester`: their per-member limit and fair-queue turn
        apply unless they hold the DJ role (or are a moderator)."""
        member = guild.get_member(requester) if requester else None
        dj_role = self.cog.store.guild(guild.id).dj_role
        return Actor.system_for(requester, privileged=await is_privileged(self.bot, dj_role, member))

    def _position(self, guild_id: int, position: Any, track_id: Any) -> int:
        if (position is None) == (track_id is None):
            raise RPCError(_("Give either `position` (1-based) or `track_id`."))
        if track_id is not None:
            return self._control().index_of(guild_id, str(track_id))
        return _int(position, "position")  # the control layer checks the range, with a sentence

    def _place(
        self, guild: discord.Guild, player: GuildPlayer, channel_id: Any, text_channel_id: Any
    ) -> tuple[int, int | None]:
        """(voice channel, text channel) the music will play and talk in; the load path joins
        `player.channel_id`. Checked before the lookup, applied only when tracks are queued."""
        text_id = player.text_channel_id
        if text_channel_id is not None:
            text = guild.get_channel(_snowflake(text_channel_id, "text_channel_id"))
            if text is None or not hasattr(text, "send"):
                raise RPCError(_("There's no text channel {text_channel_id} in that server.").format(text_channel_id=text_channel_id))
            text_id = text.id
        vc = connected_voice(guild)
        connected = vc is not None
        if channel_id is not None:
            channel = guild.get_channel(_snowflake(channel_id, "channel_id"))
            if channel is None or not callable(getattr(channel, "connect", None)):
                raise RPCError(_("There's no voice channel {channel_id} in that server.").format(channel_id=channel_id))
            if connected and vc is not None and vc.channel.id != channel.id:
                raise RPCError(_("I'm already in voice channel {id}; add without `channel_id` to play there.").format(id=vc.channel.id))
            perms = channel.permissions_for(guild.me)
            if not (perms.connect and perms.speak):
                raise RPCError(_("I need the Connect and Speak permissions in voice channel {id}.").format(id=channel.id))
            return channel.id, text_id
        if connected and vc is not None:
            return vc.channel.id, text_id
        if player.channel_id is None or guild.get_channel(player.channel_id) is None:
            raise RPCError(_("I'm not in a voice channel: give `channel_id`, the voice channel to play in."))
        return player.channel_id, text_id


def _plain_title(track: Track) -> str:
    return track.title  # JSON clients get plain text, not Discord markdown


# -- JSON shapes ---------------------------------------------------------------------------------


def _track_json(track: Track, fields: tuple[str, ...] | list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(track, name)
        out[name] = str(value) if name == "requester_id" else value
    return out


def _fields(fields: Any) -> tuple[str, ...]:
    if fields is None:
        return DEFAULT_FIELDS
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise RPCError(_("`fields` must be a list of field names."))
    unknown = [f for f in fields if f not in TRACK_FIELDS]
    if unknown:
        raise RPCError(_("Unknown field(s) {unknown}; choose from {track_fields}.").format(unknown=', '.join(unknown), track_fields=', '.join(TRACK_FIELDS)))
    return tuple(fields)


def _snowflake(value: Any, name: str, *, allow_zero: bool = False) -> int:
    """A Discord id from an int or a digit string."""
    if isinstance(value, bool):
        raise RPCError(_("`{name}` must be a Discord id (a number or a string of digits).").format(name=name))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero) or value >= 1 << 64:
        raise RPCError(_("`{name}` must be a Discord id (a number or a string of digits).").format(name=name))
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise RPCError(_("`{name}` must be a whole number.").format(name=name))
    return value

"""Red Config schema and a coalescing writer for the per-guild player state.

Queue changes are never written from a command: the command marks the guild dirty (O(1)) and a
flush task writes every dirty guild at most every ``FLUSH_INTERVAL`` seconds (one write per guild
per interval, whatever the burst). A crash therefore loses at most ``FLUSH_INTERVAL`` seconds of
queue changes; the playback position is refreshed every ``POSITION_SAVE_INTERVAL`` seconds by the
monitor.

The player state is stored as a small head plus content-defined queue chunks (store_chunks.py):
a write stores only the chunks that changed, in one transaction on PostgreSQL and one file save
on JSON, with the splitting and serialization in a thread. A guild saved in the old layout (one
`state` value holding the whole snapshot) still loads, and its first write migrates it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redbot.core import Config

from .engine.content_rules import ContentRules
from .policy import NetworkPolicy
from .store_chunks import ChunkedQueueWriter, ChunkWriteStats, PlayerCapture

log = logging.getLogger("red.music.store")

CONFIG_IDENTIFIER = 0x6D757369632D636F67  # "music-cog"
SCHEMA_VERSION = 1
FLUSH_INTERVAL = 2.0
POSITION_SAVE_INTERVAL = 5.0

GLOBAL_DEFAULTS: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION,
    "local_folder": None,
    "ffmpeg_path": None,
    "network_allow": [],
    "network_deny": [],
    "resolve_workers": 3,  # yt-dlp lookups at once (`musicset resolvers`)
    "resolve_timeout": 30,  # seconds one lookup may take (`musicset resolvetimeout`)
    # yt-dlp extractor families links may use (`musicset extractors`); None = the defaults
    # (policy.DEFAULT_EXTRACTORS), so a newer default list reaches owners who never changed it
    "extractors": None,
    # servers whose music may go through filters, an equalizer or normalisation at once
    # (`musicset filterlimit`); 0 = no limit
    "filter_limit": 0,
    # the bot's block and allow lists (`musicset blocklist global ...`): keywords and domains
    "blocklist": [],
    "allowlist": [],
}

GUILD_DEFAULTS: dict[str, Any] = {
    "volume": 100,  # the volume a fresh player starts at
    "max_length": 0,  # seconds; 0 = no limit
    "max_queue": 1000,
    "max_playlist": 500,
    "notify": True,
    "empty_disconnect": 60,  # seconds alone in the channel before leaving; 0 = never
    "idle_disconnect": 300,  # seconds with nothing playing before leaving; 0 = never
    "auto_resume": True,  # rejoin and resume after a restart
    "dj_role": None,  # role id; with it set, only DJs (and mods) skip/stop/seek/move/clear
    "vote_percent": 50,  # share of human listeners whose skip votes skip a track
    "max_per_member": 0,  # upcoming tracks one member may have queued; 0 = no limit
    "fair_queue": False,  # round-robin between requesters
    "pause_when_alone": False,
    "np_channel": None,  # channel id for now-playing messages; None = where music was asked for
    "background": None,  # a URL that plays while the queue is empty
    # the server's `filter`s and `eq` (engine.filters.FilterChain.to_dict()), its loudness
    # normalisation (`musicset normalize`) and its saved equalizer presets (name -> gains)
    "filters": {},
    "normalize": False,
    "eq_presets": {},
    "max_volume": 150,  # the highest volume anyone may set (`musicset maxvolume`)
    "autoplay_mode": "off",  # "off", "playlist" or "related": what plays when the queue runs dry
    "autoplay_playlist": None,  # the saved playlist autoplay draws from (and `related` falls back to)
    "blocklist": [],  # keywords and domains that never play here (`musicset blocklist`)
    "allowlist": [],  # when not empty, only entries matching one of these play here
    "queue_head": {},  # the persisted player, small part + chunk names: see store_chunks.py
    "state": {},  # the old layout (the whole GuildPlayer.snapshot()), read and migrated
}

# what mark_dirty takes: a callable returning the state to write at flush time
StateSource = Callable[[], PlayerCapture]


@dataclass
class GuildSettings:
    """The settings the player and monitor read on hot paths, cached so no tick reads Config."""

    volume: int = 100
    max_length: int = 0
    max_queue: int = 1000
    max_playlist: int = 500
    notify: bool = True
    empty_disconnect: int = 60
    idle_disconnect: int = 300
    auto_resume: bool = True
    dj_role: int | None = None
    vote_percent: int = 50
    max_per_member: int = 0
    fair_queue: bool = False
    pause_when_alone: bool = False
    np_channel: int | None = None
    background: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    normalize: bool = False
    eq_presets: dict[str, list[float]] = field(default_factory=dict)
    max_volume: int = 150
    autoplay_mode: str = "off"
    autoplay_playlist: str | None = None
    blocklist: list[str] = field(default_factory=list)
    allowlist: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> GuildSettings:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: data[k] for k in names if k in data})


@dataclass
class GlobalSettings:
    local_folder: str | None = None
    ffmpeg_path: str | None = None
    network_allow: list[str] = field(default_factory=list)
    network_deny: list[str] = field(default_factory=list)
    resolve_workers: int = 3
    resolve_timeout: int = 30
    extractors: list[str] | None = None
    filter_limit: int = 0
    blocklist: list[str] = field(default_factory=list)
    allowlist: list[str] = field(default_factory=list)


# the settings the block and allow lists are built from
RULE_SETTINGS = ("blocklist", "allowlist")


class MusicStore:
    """Config access for the cog: cached settings, coalesced state writes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        config.register_global(**GLOBAL_DEFAULTS)
        config.register_guild(**GUILD_DEFAULTS)
        self._guild_settings: dict[int, GuildSettings] = {}
        self.globals = GlobalSettings()
        self.network_policy = NetworkPolicy()
        self.chunks = ChunkedQueueWriter(config)
        self._dirty: dict[int, StateSource] = {}
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._rules: dict[int, ContentRules] = {}  # per guild, built when a list changes
        self.writes = 0  # state writes done, for tests and benchmarks
        self.last_write = ChunkWriteStats()

    @classmethod
    def for_cog(cls, cog: object) -> MusicStore:
        return cls(Config.get_conf(cog, identifier=CONFIG_IDENTIFIER, force_registration=True))

    async def load(self) -> dict[int, dict[str, Any]]:
        """Fill the caches; returns the saved player state of every guild that has one."""
        g = await self.config.all()
        self.globals = GlobalSettings(
            local_folder=g["local_folder"],
            ffmpeg_path=g["ffmpeg_path"],
            network_allow=list(g["network_allow"]),
            network_deny=list(g["network_deny"]),
            resolve_workers=int(g["resolve_workers"]),
            resolve_timeout=int(g["resolve_timeout"]),
            extractors=None if g["extractors"] is None else list(g["extractors"]),
            filter_limit=int(g.get("filter_limit") or 0),
            blocklist=list(g["blocklist"]),
            allowlist=list(g["allowlist"]),
        )
        self._rules.clear()
        self._rebuild_policy()
        for guild_id, data in (await self.config.all_guilds()).items():
            self._guild_settings[guild_id] = GuildSettings.from_config(data)
        async with self._flush_lock:
            saved = await self.chunks.read_all()
        return {guild_id: guild.state for guild_id, guild in saved.items()}

    def _rebuild_policy(self) -> None:
        self.network_policy = NetworkPolicy(
            allow=self.globals.network_allow, deny=self.globals.network_deny
        )

    # -- settings ---------------------------------------------------------------------------

    def guild(self, guild_id: int) -> GuildSettings:
        settings = self._guild_settings.get(guild_id)
        if settings is None:
            settings = self._guild_settings[guild_id] = GuildSettings()
        return settings

    async def set_guild(self, guild_id: int, name: str, value: Any) -> None:
        """Write one guild setting (rare, small) and update the cache."""
        await self.config.guild_from_id(guild_id).get_attr(name).set(value)
        setattr(self.guild(guild_id), name, value)
        if name in RULE_SETTINGS:
            self._rules.pop(guild_id, None)

    async def set_global(self, name: str, value: Any) -> None:
        await self.config.get_attr(name).set(value)  # type: ignore[attr-defined]  # Red types Config.get_attr loosely
        setattr(self.globals, name, value)
        if name in ("network_allow", "network_deny"):
            self._rebuild_policy()
        if name in RULE_SETTINGS:
            self._rules.clear()

    def content_rules(self, guild_id: int) -> ContentRules:
        """The bot's and this server's block and allow lists, as admission checks them (built
        once per change of a list, not per entry)."""
        rules = self._rules.get(guild_id)
        if rules is None:
            settings, g = self.guild(guild_id), self.globals
            rules = self._rules[guild_id] = ContentRules(
                server_block=settings.blocklist, server_allow=settings.allowlist,
                global_block=g.blocklist, global_allow=g.allowlist,
            )
        return rules

    async def network_policy_check(self, url: str) -> None:
        """Raise PolicyError if the network policy refuses `url` (DNS lookup in a thread)."""
        await self.network_policy.acheck_url(url)

    # -- player state ------------------------------------------------------------------------

    def mark_dirty(self, guild_id: int, capture: StateSource) -> None:
        """Schedule a write of ``capture()`` for the guild; bursts collapse into one write.

        `capture` is called at flush time, so the newest state is what gets written
        (GuildPlayer.capture: list copies, no serialization on the loop)."""
        self._dirty[guild_id] = capture
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._dirty)

    async def flush(self) -> None:
        """Write every dirty guild now (used on unload and by the flush loop).

        Serialized: a caller that finds nothing dirty still waits for a write in flight, so
        after `await flush()` everything marked before it is on disk."""
        async with self._flush_lock:
            while self._dirty:
                guild_id, source = self._dirty.popitem()
                try:
                    self.last_write = await self.chunks.write(guild_id, source())
                    self.writes += 1
                except Exception:
                    log.exception("Could not save the player state of guild %s", guild_id)

    async def clear_state(self, guild_id: int) -> None:
        """Forget the guild's saved player (head, chunks, legacy state)."""
        self._dirty.pop(guild_id, None)
        async with self._flush_lock:
            self._dirty.pop(guild_id, None)
            await self.chunks.clear(guild_id)

    async def saved_states(self) -> dict[int, dict[str, Any]]:
        """Every guild's saved player state as stored now (GuildPlayer.snapshot() form), after
        writing what is pending."""
        await self.flush()
        async with self._flush_lock:
            saved = await self.chunks.read_all()
        return {guild_id: guild.state for guild_id, guild in saved.items()}

    async def rewrite_saved(self, edit: Callable[[dict[str, Any]], PlayerCapture | None],
                            skip: set[int]) -> int:
        """Apply `edit` to every saved state except the `skip` guilds' (those with a live
        player, saved through mark_dirty); `edit` returns what to write, or None to keep it.
        Returns how many guilds were rewritten."""
        await self.flush()
        rewritten = 0
        async with self._flush_lock:
            for guild_id, guild in (await self.chunks.read_all()).items():
                if guild_id in skip:
                    continue
                capture = edit(guild.state)
                if capture is not None:
                    self.last_write = await self.chunks.write(guild_id, capture)
                    self.writes += 1
                    rewritten += 1
        return rewritten

    async def flush_loop(self, shutdown: asyncio.Event) -> None:
        """Write dirty state at most every FLUSH_INTERVAL seconds until shutdown."""
        while not shutdown.is_set():
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            try:
                await asyncio.wait_for(shutdown.wait(), FLUSH_INTERVAL)
            except asyncio.TimeoutError:  # not the builtin one before Python 3.11
                pass

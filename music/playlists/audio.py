"""What Red's core Audio cog left in a bot's data, read without Audio or Lavalink (no Discord).

Where Audio 3.5 keeps things (read in redbot/cogs/audio):
- playlists: the SQLite file `<data>/cogs/Audio/Audio.db`, table `playlists` (scope_type 1 =
  global, 2 = guild, 3 = user; scope_id = the bot's, guild's or user's id; soft-deleted rows
  have `deleted` true; `tracks` is JSON: Lavalink track dicts). Bots that never ran Audio's
  schema-3 migration still have them in its Config: custom groups GLOBALPLAYLIST (playlist id),
  GUILDPLAYLIST and USERPLAYLIST (guild or user id, playlist id), or, before schema 2, a guild
  value `playlists` keyed by name;
- server settings: its Config (cog name "Audio", identifier 2711759130), guild scope.

Only settings that differ from Audio's own defaults are imported: a value Audio never had
changed leaves this cog's default in place.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.track import Track
from ..i18n import _
from .formats import audio_track_entry, http_link, link_entry
from .model import ENTRY_CEILING, Scope

AUDIO_COG_NAME = "Audio"
AUDIO_IDENTIFIER = 2711759130
AUDIO_DB_NAME = "Audio.db"
AUDIO_SCOPE_TYPES = {1: Scope.GLOBAL, 2: Scope.SERVER, 3: Scope.USER}
# Audio's Config custom groups (schema 2) and how many identifiers each has
AUDIO_CONFIG_GROUPS = {"GLOBALPLAYLIST": (Scope.GLOBAL, 1), "GUILDPLAYLIST": (Scope.SERVER, 2),
                       "USERPLAYLIST": (Scope.USER, 2)}

# Audio's defaults (redbot/cogs/audio/core/__init__.py) for the settings read here
AUDIO_GUILD_DEFAULTS: dict[str, Any] = {
    "dj_enabled": False, "dj_role": None, "vote_enabled": False, "vote_percent": 0,
    "maxlength": 0, "volume": 100, "emptydc_enabled": False, "emptydc_timer": 0,
    "emptypause_enabled": False, "emptypause_timer": 0, "notify": False,
}
# Audio settings with no equivalent here (reported when changed from Audio's default)
AUDIO_UNMAPPED_DEFAULTS: dict[str, Any] = {
    "auto_play": False, "auto_deafen": True, "persist_queue": True, "disconnect": False,
    "daily_playlists": False, "jukebox": False, "jukebox_price": 0, "max_volume": 150,
    "prefer_lyrics": False, "repeat": False, "shuffle": False, "shuffle_bumped": True,
    "thumbnail": False, "room_lock": None, "url_keyword_blacklist": [], "url_keyword_whitelist": [],
    "country_code": "US",
}


@dataclass
class AudioPlaylist:
    """One of Audio's playlists, as stored."""

    scope: Scope
    scope_id: int
    playlist_id: int
    name: str
    author_id: int
    url: str | None
    tracks: list[Any]
    origin: str  # "Audio.db" or "Audio's Config"

    @property
    def source_key(self) -> str:
        """Identifies it across runs (what makes a second import skip it)."""
        return f"{self.scope.value}:{self.scope_id}:{self.playlist_id}"


def read_audio_db(path: Path) -> list[AudioPlaylist]:
    """Every playlist in Audio's SQLite file that is not deleted (blocking: run in a thread).
    Opened read-only: Audio's file is never changed. Raises sqlite3.Error if unreadable."""
    # Audio keeps the file in WAL mode. Closed cleanly, it has no -wal file: open it immutable
    # (no locks, no -shm or -wal files made next to it). A -wal file with data means Audio did
    # not close cleanly; then read-only, so SQLite reads what the -wal holds too.
    wal = path.with_name(path.name + "-wal")
    pending = wal.is_file() and wal.stat().st_size > 0
    uri = f"{path.resolve().as_uri()}?{'mode=ro' if pending else 'immutable=1'}"
    connection = sqlite3.connect(uri, uri=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "playlists" not in tables:
            return []
        rows = connection.execute(
            "SELECT scope_type, playlist_id, playlist_name, scope_id, author_id, playlist_url, tracks "
            "FROM playlists WHERE deleted = 0 OR deleted = 'false' OR deleted IS NULL "
            "ORDER BY scope_type, scope_id, playlist_id"
        )
        found: list[AudioPlaylist] = []
        for scope_type, playlist_id, name, scope_id, author_id, url, tracks in rows:
            scope = AUDIO_SCOPE_TYPES.get(_int(scope_type))
            if scope is None:
                continue
            found.append(AudioPlaylist(scope, _int(scope_id), _int(playlist_id), str(name or ""),
                                       _int(author_id), url if isinstance(url, str) else None,
                                       _tracks(tracks), "Audio.db"))
        return found
    finally:
        connection.close()


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def _tracks(value: object) -> list[Any]:
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return []
    return value if isinstance(value, list) else []


def config_playlists(groups: dict[str, dict[str, Any]], guild_values: dict[int, dict[str, Any]]) -> list[AudioPlaylist]:
    """Audio playlists still in its Config: `groups` = {group name: the group's stored data}
    (schema 2), `guild_values` = every guild's stored values (schema 1 `playlists`)."""
    found: list[AudioPlaylist] = []
    for group, (scope, depth) in AUDIO_CONFIG_GROUPS.items():
        data = groups.get(group) or {}
        nested = {"0": data} if depth == 1 else data  # global playlists are keyed by id alone
        for scope_id, playlists in nested.items():
            if not isinstance(playlists, dict):
                continue
            for playlist_id, raw in playlists.items():
                if not isinstance(raw, dict):
                    continue
                found.append(AudioPlaylist(
                    scope, _int(scope_id), _int(raw.get("id") or playlist_id), str(raw.get("name") or playlist_id),
                    _int(raw.get("author") or 0), raw.get("playlist_url"), _tracks(raw.get("tracks")),
                    _("Audio's Config"),
                ))
    for guild_id, values in guild_values.items():
        old = values.get("playlists")
        if not isinstance(old, dict):
            continue
        for number, (name, raw) in enumerate(sorted(old.items()), start=1000):
            if isinstance(raw, dict):
                found.append(AudioPlaylist(Scope.SERVER, int(guild_id), number, str(name),
                                           _int(raw.get("author") or 0), raw.get("playlist_url"),
                                           _tracks(raw.get("tracks")), _("Audio's Config")))
    return found


def audio_entries(playlist: AudioPlaylist) -> tuple[list[Track], int, int]:
    """(entries, left out as local files or unreadable, cut at the entry ceiling)."""
    entries: list[Track] = []
    unusable = 0
    for raw in playlist.tracks:
        entry = audio_track_entry(raw)
        if entry is None and isinstance(raw, str):  # very old Config playlists kept bare links
            url = http_link(raw)
            entry = link_entry(url) if url is not None else None
        if entry is None:
            unusable += 1
            continue
        entries.append(entry)
    cut = max(0, len(entries) - ENTRY_CEILING)
    return entries[:ENTRY_CEILING], unusable, cut


@dataclass
class SettingsPlan:
    """One server's Audio settings as this cog's: what to set, and sentences for the rest."""

    values: dict[str, Any]
    notes: list[str]
    unmapped: list[str]  # Audio settings changed from their default that have no equivalent


def _changed(raw: dict[str, Any], name: str) -> bool:
    return name in raw and raw[name] != AUDIO_GUILD_DEFAULTS.get(name, AUDIO_UNMAPPED_DEFAULTS.get(name))


def _bounded(value: object, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(min(high, max(low, value)))


def settings_plan(raw: dict[str, Any]) -> SettingsPlan:
    """Map one guild's stored Audio values to this cog's settings."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    get = raw.get
    if get("dj_enabled") is True:
        if isinstance(get("dj_role"), int) and not isinstance(get("dj_role"), bool):
            values["dj_role"] = get("dj_role")
        else:
            notes.append(_("DJ mode was on without a DJ role, so no DJ role was set."))
    elif _changed(raw, "dj_role"):
        notes.append(_("A DJ role was set but DJ mode was off, so no DJ role was set."))
    if get("vote_enabled") is True:
        percent = _bounded(get("vote_percent"), 1, 100)
        if percent is not None:
            values["vote_percent"] = percent
            if "dj_role" not in values:
                notes.append(_("Vote skipping was on; here votes apply while a DJ role is set (`musicset dj`)."))
    if _changed(raw, "maxlength"):
        seconds = _bounded(get("maxlength"), 0, 366 * 86400)
        if seconds is not None:
            values["max_length"] = seconds
    if _changed(raw, "volume"):
        volume = _bounded(get("volume"), 0, 150)
        if volume is not None:
            values["volume"] = volume
    if _changed(raw, "emptydc_enabled") or _changed(raw, "emptydc_timer"):
        enabled = get("emptydc_enabled", False) is True
        timer = _bounded(get("emptydc_timer", 0), 0, 86400) or 0
        values["empty_disconnect"] = max(timer, 1) if enabled else 0
    if _changed(raw, "emptypause_enabled"):
        values["pause_when_alone"] = get("emptypause_enabled") is True
        timer = _bounded(get("emptypause_timer", 0), 0, 86400) or 0
        if values["pause_when_alone"] and timer:
            notes.append(_("Audio paused after {timer} s alone; this cog pauses at once.").format(timer=timer))
    if _changed(raw, "notify") and isinstance(get("notify"), bool):
        values["notify"] = get("notify")
    unmapped = sorted(name for name in AUDIO_UNMAPPED_DEFAULTS if _changed(raw, name))
    return SettingsPlan(values, notes, unmapped)

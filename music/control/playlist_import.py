"""`musicset import audio`: bring over what Red's core Audio cog left in this bot's data.

Audio need not be loaded, nor Lavalink: its playlists are read from its SQLite file (read-only)
and from its Config (older bots), its server settings from its Config, all through Red's public
APIs (music/playlists/audio.py says where Audio keeps what). Each Audio playlist goes to the same
scope here (server, member, global) under its name, or "<name> (audio)" when the name is taken.
What was imported is recorded in this cog's Config, so a second run adds nothing; the report
says what was imported, what was skipped, and why.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..i18n import _
from ..playlists.audio import (
    AUDIO_COG_NAME,
    AUDIO_CONFIG_GROUPS,
    AUDIO_DB_NAME,
    AUDIO_IDENTIFIER,
    AudioPlaylist,
    audio_entries,
    config_playlists,
    read_audio_db,
    settings_plan,
)
from ..playlists.model import MAX_NAME_LENGTH, Playlist, PlaylistError, Scope, Where, check_name
from .permissions import Actor, Intent, require

if TYPE_CHECKING:
    from .playlists import PlaylistControl

log = logging.getLogger("red.music.import")


@dataclass
class AudioLeftovers:
    """What Audio left: its playlists, every guild's stored settings, and what could not be read."""

    playlists: list[AudioPlaylist] = field(default_factory=list)
    guild_settings: dict[int, dict[str, Any]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # what was read, for the report
    problems: list[str] = field(default_factory=list)


@dataclass
class ImportedPlaylist:
    where: Where
    name: str
    entries: int
    original_name: str
    left_out: int  # Audio's local files and unreadable entries
    cut: int  # over the entry ceiling


@dataclass
class SkippedPlaylist:
    where: Where
    name: str
    reason: str


@dataclass
class ImportedSettings:
    guild_id: int
    values: dict[str, Any]
    notes: list[str]


@dataclass
class AudioImportReport:
    sources: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    imported: list[ImportedPlaylist] = field(default_factory=list)
    skipped: list[SkippedPlaylist] = field(default_factory=list)
    already: int = 0  # playlists imported by an earlier run
    settings: list[ImportedSettings] = field(default_factory=list)
    settings_already: int = 0  # servers whose settings an earlier run imported
    settings_unchanged: int = 0  # servers with nothing changed from Audio's defaults
    unmapped: dict[str, int] = field(default_factory=dict)  # Audio setting -> servers that changed it


async def read_audio_leftovers(cogs_path: Path) -> AudioLeftovers:
    """Read Audio's data under Red's cog data folder `cogs_path` (and its Config) without
    changing anything and without creating Audio's files."""
    from redbot.core import Config, data_manager

    found = AudioLeftovers()
    database = cogs_path / AUDIO_COG_NAME / AUDIO_DB_NAME
    if database.is_file():
        try:
            found.playlists += await asyncio.to_thread(read_audio_db, database)
            found.sources.append(_("Audio's playlist database ({audio_db_name})").format(audio_db_name=AUDIO_DB_NAME))
        except (sqlite3.Error, OSError) as exc:
            found.problems.append(_("Audio's playlist database could not be read: {exc}.").format(exc=exc))
    # on JSON, Config would create Audio's settings file: only read one that exists
    try:
        on_json = str(data_manager.storage_type()).lower() == "json"
    except RuntimeError:  # no basic config loaded: Red's drivers default to JSON then too
        on_json = True
    if on_json and not (cogs_path / AUDIO_COG_NAME / "settings.json").is_file():
        return found
    config = Config.get_conf(None, identifier=AUDIO_IDENTIFIER, cog_name=AUDIO_COG_NAME)
    groups: dict[str, dict[str, Any]] = {}
    for group, (_scope, depth) in AUDIO_CONFIG_GROUPS.items():
        try:
            config.init_custom(group, depth)
            groups[group] = await config.custom(group).all()
        except Exception as exc:  # another registration, or unreadable stored data
            found.problems.append(_("Audio's {group} settings could not be read ({error}).").format(group=group, error=type(exc).__name__))
    try:
        guilds = await config.all_guilds()
    except Exception as exc:
        found.problems.append(_("Audio's server settings could not be read ({error}).").format(error=type(exc).__name__))
        guilds = {}
    found.guild_settings = {int(gid): dict(values) for gid, values in guilds.items()}
    found.playlists += config_playlists(groups, found.guild_settings)
    found.sources.append(_("Audio's settings (Config)"))
    return found


def _importable_name(name: str, playlist_id: int) -> str:
    """Audio allowed any name; ours can't start with `-` or hold ` @ or control characters."""
    cleaned = "".join(ch for ch in " ".join(str(name).split()) if ch.isprintable() and ch not in "`@")
    cleaned = cleaned.lstrip("-").strip()[:MAX_NAME_LENGTH]
    try:
        return check_name(cleaned)
    except PlaylistError:
        return f"audio {playlist_id}"[:MAX_NAME_LENGTH]


def _target(playlist: AudioPlaylist) -> Where:
    if playlist.scope is Scope.GLOBAL:
        return Where.global_()
    return Where(playlist.scope, playlist.scope_id)


async def import_audio(control: PlaylistControl, actor: Actor, leftovers: AudioLeftovers) -> AudioImportReport:
    """Import `leftovers` (see read_audio_leftovers) once; a second run adds nothing."""
    require(Intent.IMPORT_AUDIO, actor, dj_mode=False)
    store = control.store
    report = AudioImportReport(sources=list(leftovers.sources), problems=list(leftovers.problems))
    record = await store.import_record()
    done: dict[str, str] = record["playlists"]
    for audio in leftovers.playlists:
        if audio.source_key in done:
            report.already += 1
            continue
        imported = await _import_playlist(control, audio, report)
        if imported is not None:
            done[audio.source_key] = f"{imported.where.scope.value}:{imported.where.scope_id}:{imported.name}"
            record["playlists"] = done
            await store.save_import_record(record)
    await _import_settings(control, leftovers, record, report)
    return report


async def _import_playlist(control: PlaylistControl, audio: AudioPlaylist,
                           report: AudioImportReport) -> ImportedPlaylist | None:
    store = control.store
    where = _target(audio)
    entries, left_out, cut = await asyncio.to_thread(audio_entries, audio)
    if audio.tracks and not entries:
        report.skipped.append(SkippedPlaylist(where, audio.name, _("all {tracks_count} entries are local "
                                              "files or unreadable (only links can be imported)").format(tracks_count=len(audio.tracks))))
        return None
    base = _importable_name(audio.name, audio.playlist_id)
    async with store.lock:
        name = base
        for attempt in range(1, 100):
            if not await store.exists(where, name):
                break
            suffix = " (audio)" if attempt == 1 else _(" (audio {attempt})").format(attempt=attempt)
            name = base[:MAX_NAME_LENGTH - len(suffix)] + suffix
        else:
            report.skipped.append(SkippedPlaylist(where, audio.name, _("too many playlists share its name")))
            return None
        playlist = Playlist(name=name, where=where, author_id=audio.author_id, entries=entries,
                            source_url=audio.url)
        await store.write(playlist)
    imported = ImportedPlaylist(where, name, len(entries), audio.name, left_out, cut)
    report.imported.append(imported)
    return imported


async def _import_settings(control: PlaylistControl, leftovers: AudioLeftovers, record: dict[str, Any],
                           report: AudioImportReport) -> None:
    music_store = control.control.store
    imported_guilds: list[int] = [int(g) for g in record["settings"]]
    for guild_id, raw in sorted(leftovers.guild_settings.items()):
        plan = settings_plan(raw)
        if guild_id in imported_guilds:
            report.settings_already += 1
            continue
        for name in plan.unmapped:
            report.unmapped[name] = report.unmapped.get(name, 0) + 1
        if not plan.values and not plan.notes:
            report.settings_unchanged += 1
            continue
        for name, value in plan.values.items():
            await music_store.set_guild(guild_id, name, value)
        report.settings.append(ImportedSettings(guild_id, plan.values, plan.notes))
        imported_guilds.append(guild_id)
        record["settings"] = imported_guilds
        await control.store.save_import_record(record)

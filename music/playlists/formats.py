"""Playlist files: this cog's own format, Red Audio's v2 and v3 exports, and plain lists of links.

`parse_file(data, filename)` turns any bytes into a `ParsedFile` or raises PlaylistError with a
sentence; its cost is bounded by MAX_FILE_BYTES (one decode, one JSON parse, one pass over at
most ENTRY_CEILING entries). Entries keep only what a later `play` needs; remote entries must
be http(s) links, and are looked up again through every check when they play.

Red Audio's exports (`[p]playlist download`, read in redbot/cogs/audio 3.5):
- v3: `{"schema": 2, "version": "v3", "name", "playlist_url", "tracks": [Lavalink track dicts
  {"track": base64, "info": {"title", "author", "length" (ms), "uri", "isStream", ...}}],
  "playlist": [uris], "link", "id", "author", "guild"}`;
- v2: `{"schema": 2, "version": "v2", "name", "link", "playlist": [uris], "author"}`, and the
  older Red v2 files with no schema (`{"author", "playlist": [uris], "link"}`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ..engine.track import Track
from ..i18n import _
from .model import (
    ENTRY_CEILING,
    MAX_QUERY,
    MAX_TITLE,
    Playlist,
    PlaylistError,
    check_name,
    entry_of,
)

FORMAT_NAME = "red-music-playlist"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 8 * 1024 * 1024
FILE_SUFFIX = ".json"


@dataclass
class ParsedFile:
    kind: str  # "music", "audio v3", "audio v2", "text"
    name: str | None  # the playlist's name in the file, when it has a usable one
    entries: list[Track]
    source_url: str | None = None
    skipped: int = 0  # entries that were not usable links
    notes: list[str] = field(default_factory=list)


def http_link(value: object) -> str | None:
    """`value` if it is an http(s) link a lookup may take, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip().strip("<>")
    if not text or len(text) > MAX_QUERY or any(ch.isspace() for ch in text) or not text.isprintable():
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return text


def _text(value: object, limit: int = MAX_TITLE) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text[:limit] if text else None


def _seconds(value: object, scale: float = 1.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = value / scale
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 366 * 86400:
        return None
    return float(seconds)


def link_entry(url: str, *, title: str | None = None, duration: float | None = None,
               uploader: str | None = None, is_live: bool = False) -> Track:
    """A remote entry for a checked link (titled by the link until it is looked up)."""
    return entry_of(Track(query=url, title=title or url, duration=None if is_live else duration,
                          uploader=uploader, webpage_url=url, is_live=is_live))


def audio_track_entry(data: object) -> Track | None:
    """A Red Audio (Lavalink) track dict as an entry, or None when it is not an http(s) link
    (Audio's local files, or something unreadable)."""
    if not isinstance(data, dict):
        return None
    info = data.get("info")
    if not isinstance(info, dict):
        return None
    url = http_link(info.get("uri"))
    if url is None:
        return None
    live = info.get("isStream") is True
    return link_entry(url, title=_text(info.get("title")), duration=_seconds(info.get("length"), 1000.0),
                      uploader=_text(info.get("author")), is_live=live)


def _music_entry(data: object) -> Track | None:
    if not isinstance(data, dict):
        return None
    kind = data.get("kind", "remote")
    title = _text(data.get("title"))
    duration = _seconds(data.get("duration"))
    uploader = _text(data.get("uploader"))
    live = data.get("is_live") is True
    if kind == "local":
        path = data.get("query")
        if not isinstance(path, str) or not path.strip() or len(path) > MAX_QUERY or not path.isprintable():
            return None
        # the local folder's containment is checked when it plays, as for `local`
        return entry_of(Track(query=path.strip(), title=title or path.strip(), duration=duration,
                              kind="local", uploader=uploader))
    if kind != "remote":
        return None
    url = http_link(data.get("query"))
    if url is None:
        return None
    entry = link_entry(url, title=title, duration=duration, uploader=uploader, is_live=live)
    entry.webpage_url = http_link(data.get("webpage_url"))
    return entry


def _entries(items: object, convert: Any) -> tuple[list[Track], int]:
    if not isinstance(items, list):
        raise PlaylistError(_("That file has no list of tracks."))
    if len(items) > ENTRY_CEILING:
        raise PlaylistError(_("That file has {items_count} entries; a playlist holds at most {entry_ceiling}.").format(items_count=len(items), entry_ceiling=ENTRY_CEILING))
    entries = [e for e in map(convert, items) if e is not None]
    return entries, len(items) - len(entries)


def _from_json(document: Any) -> ParsedFile:
    if not isinstance(document, dict):
        raise PlaylistError(_("That JSON file is not a playlist (it is not an object)."))
    name = _usable_name(document.get("name"))
    if document.get("format") == FORMAT_NAME:
        if document.get("version") != FORMAT_VERSION:
            raise PlaylistError(_("That playlist file is from a newer version of this cog."))
        entries, skipped = _entries(document.get("entries"), _music_entry)
        return ParsedFile("music", name, entries, http_link(document.get("source_url")), skipped)
    schema = document.get("schema", 1)
    version = document.get("version", "v2")
    if isinstance(schema, int) and not isinstance(schema, bool) and schema >= 2 and version == "v3":
        entries, skipped = _entries(document.get("tracks"), audio_track_entry)
        return ParsedFile("audio v3", name, entries, http_link(document.get("playlist_url")), skipped)
    if "playlist" in document:
        entries, skipped = _entries(document.get("playlist"), lambda u: _link_or_none(u))
        return ParsedFile("audio v2", name, entries, http_link(document.get("link")), skipped)
    raise PlaylistError(_("That JSON file is not a playlist I know (this cog's, or Red Audio's v2 or v3 export)."))


def _link_or_none(value: object) -> Track | None:
    url = http_link(value)
    return link_entry(url) if url is not None else None


def _from_text(text: str) -> ParsedFile:
    entries: list[Track] = []
    skipped = 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        url = http_link(line)
        if url is None:
            skipped += 1
            continue
        if len(entries) >= ENTRY_CEILING:
            raise PlaylistError(_("That file has more than {entry_ceiling} links; a playlist holds at most {entry_ceiling}.").format(entry_ceiling=ENTRY_CEILING))
        entries.append(link_entry(url))
    return ParsedFile("text", None, entries, None, skipped)


def _usable_name(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return check_name(value)
    except PlaylistError:
        return None


def parse_file(data: bytes, filename: str = "") -> ParsedFile:
    """Any bytes: a ParsedFile with at least one entry, or PlaylistError saying why not."""
    if len(data) > MAX_FILE_BYTES:
        raise PlaylistError(_("That file is too big: a playlist file may be at most {value} MB.").format(value=MAX_FILE_BYTES // (1024 * 1024)))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PlaylistError(_("That file is not text (UTF-8): upload a playlist file or a list of links.")) from None
    if "\x00" in text:
        raise PlaylistError(_("That file is not text: upload a playlist file or a list of links."))
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            raise PlaylistError(_("That file looks like JSON but can't be read (it is cut off or malformed).")) from None
        parsed = _from_json(document)
    else:
        parsed = _from_text(text)
    if parsed.name is None:
        parsed.name = _usable_name(PurePosixPath(filename.replace("\\", "/")).stem) if filename else None
    if not parsed.entries:
        raise PlaylistError(_("I found no playable links in that file."))
    if parsed.skipped:
        parsed.notes.append(_("1 entry was not an http(s) link and was left out.") if parsed.skipped == 1 else
                            _("{skipped} entries were not http(s) links and were left out.").format(skipped=parsed.skipped))
    return parsed


def _entry_document(entry: Track) -> dict[str, Any]:
    return {
        "query": entry.query,
        "title": entry.title,
        "duration": entry.duration,
        "kind": entry.kind,
        "uploader": entry.uploader,
        "webpage_url": entry.webpage_url,
        "is_live": entry.is_live,
    }


def dump_file(playlist: Playlist) -> bytes:
    """The playlist in this cog's file format (what `playlist upload` reads back)."""
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": playlist.name,
        "source_url": playlist.source_url,
        "entries": [_entry_document(e) for e in playlist.entries],
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")


def file_name(playlist: Playlist) -> str:
    """A safe file name for the download: the name's letters, digits, - and _."""
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in playlist.name).strip("_")
    return f"{stem[:60] or 'playlist'}{FILE_SUFFIX}"

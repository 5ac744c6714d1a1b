"""Saved playlists, without Discord: scopes, names, entries and the edits on them.

A playlist lives in one scope: a server's (the default), one member's own, or the bot's global
one (the owner's). Inside a scope its name is unique, compared without case. Its entries are
Tracks stripped of everything that belongs to one play (stream URL, headers, requester), so a
saved entry is looked up again through the same checks as a new `play` when its turn comes.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum

from ..engine.track import Track, new_track_id
from ..i18n import _

MAX_NAME_LENGTH = 64
# the most entries a playlist may ever hold, whatever the setting (Red's Audio used the same)
ENTRY_CEILING = 10_000
MAX_QUERY = 500  # the longest query an entry may keep (control.errors.MAX_QUERY_LENGTH)
MAX_TITLE = 300


class PlaylistError(Exception):
    """A playlist edit or file that can't be used; `sentence` says why. Nothing changed."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


class Scope(str, Enum):
    SERVER = "server"
    USER = "user"
    GLOBAL = "global"


# every word Red's Audio accepts for `--scope`, and its own stored names, to ours
SCOPE_WORDS: dict[str, Scope] = {
    "server": Scope.SERVER, "guild": Scope.SERVER, "guildplaylist": Scope.SERVER,
    "user": Scope.USER, "member": Scope.USER, "author": Scope.USER, "userplaylist": Scope.USER,
    "global": Scope.GLOBAL, "bot": Scope.GLOBAL, "globalplaylist": Scope.GLOBAL,
}


def parse_scope(word: str) -> Scope:
    scope = SCOPE_WORDS.get(word.strip().lower())
    if scope is None:
        raise PlaylistError(_("A scope is `server`, `user` or `global`."))
    return scope


@dataclass(frozen=True)
class Where:
    """A scope and whose it is: the server's id, the member's id, or 0 for global."""

    scope: Scope
    scope_id: int

    @classmethod
    def server(cls, guild_id: int) -> Where:
        return cls(Scope.SERVER, guild_id)

    @classmethod
    def user(cls, user_id: int) -> Where:
        return cls(Scope.USER, user_id)

    @classmethod
    def global_(cls) -> Where:
        return cls(Scope.GLOBAL, 0)

    def describe(self) -> str:
        """How a reply names the scope: "server", "user" or "global"."""
        return {"server": _("server"), "user": _("user"), "global": _("global")}[self.scope.value]


def check_name(text: str) -> str:
    """A playlist name as typed, tidied (spaces collapsed), or PlaylistError."""
    name = " ".join(str(text).split())
    if not name:
        raise PlaylistError(_("Give the playlist a name."))
    if len(name) > MAX_NAME_LENGTH:
        raise PlaylistError(_("Keep playlist names under {limit} characters.").format(limit=MAX_NAME_LENGTH + 1))
    if name.startswith("-"):
        raise PlaylistError(_("A playlist name can't start with `-` (options like `--scope` do)."))
    if any(ch in name for ch in "`@") or not name.isprintable():
        raise PlaylistError(_("A playlist name can't contain `, @ or control characters."))
    return name


def name_key(name: str) -> str:
    """What names are compared by: no case, spaces collapsed."""
    return " ".join(name.split()).casefold()


def entry_of(track: Track) -> Track:
    """A playlist entry made from a queued or looked-up track: a new entry id, and nothing
    that belongs to one play (stream URL and its expiry, headers, codec, requester)."""
    return Track(
        id=new_track_id(),
        query=track.query[:MAX_QUERY],
        title=(track.title or track.query)[:MAX_TITLE],
        duration=track.duration,
        kind=track.kind,
        uploader=track.uploader[:MAX_TITLE] if track.uploader else None,
        webpage_url=track.webpage_url,
        is_live=track.is_live,
        extractor=track.extractor,
    )


def queued_from(entry: Track, requester_id: int) -> Track:
    """The queue entry for a playlist entry played by `requester_id` (a fresh queue id)."""
    return dataclasses.replace(entry, id=new_track_id(), requester_id=requester_id, http_headers={})


def dedupe_key(entry: Track) -> tuple[str, str]:
    """Two entries are the same song when they point at the same page (or local file)."""
    target = (entry.webpage_url or entry.query).strip()
    if entry.kind == "remote":
        target = target.rstrip("/")
    return entry.kind, target


@dataclass
class Playlist:
    name: str
    where: Where
    author_id: int
    entries: list[Track] = field(default_factory=list)
    source_url: str | None = None  # the link it was made from, if any
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])  # names its stored chunks

    @property
    def key(self) -> str:
        return name_key(self.name)

    @property
    def duration(self) -> float:
        return sum(e.duration or 0.0 for e in self.entries)

    def append(self, tracks: list[Track], limit: int) -> tuple[int, int]:
        """Add entries made from `tracks` at the end, up to `limit` entries in all.
        Returns (added, left out)."""
        room = max(0, min(limit, ENTRY_CEILING) - len(self.entries))
        taken = [entry_of(t) for t in tracks[:room]]
        self.entries.extend(taken)
        return len(taken), len(tracks) - len(taken)

    def remove_at(self, position: int) -> Track:
        """Remove the entry at a 1-based position."""
        if not self.entries:
            raise PlaylistError(_("**{name}** has no entries.").format(name=self.name))
        if not 1 <= position <= len(self.entries):
            raise PlaylistError(_("Pick an entry from 1 to {entries_count}.").format(entries_count=len(self.entries)))
        return self.entries.pop(position - 1)

    def remove_link(self, link: str) -> int:
        """Remove every entry that points at `link` (how Red's Audio removes); returns how many."""
        target = link.strip().strip("<>").rstrip("/")
        kept = [e for e in self.entries if dedupe_key(e)[1] != target and e.query != target]
        removed = len(self.entries) - len(kept)
        self.entries = kept
        return removed

    def dedupe(self) -> int:
        """Drop later copies of the same song; returns how many were dropped."""
        seen: set[tuple[str, str]] = set()
        kept: list[Track] = []
        for entry in self.entries:
            key = dedupe_key(entry)
            if key not in seen:
                seen.add(key)
                kept.append(entry)
        removed = len(self.entries) - len(kept)
        self.entries = kept
        return removed

    def copy_to(self, where: Where, name: str, author_id: int) -> Playlist:
        """A new playlist with the same entries (new entry ids, its own storage)."""
        entries = [dataclasses.replace(e, id=new_track_id(), http_headers={}) for e in self.entries]
        return Playlist(name=name, where=where, author_id=author_id, entries=entries,
                        source_url=self.source_url)


@dataclass(frozen=True)
class PlaylistSummary:
    """What `playlist list` shows, read from the small stored head alone."""

    name: str
    where: Where
    author_id: int
    count: int
    duration: float
    updated: float

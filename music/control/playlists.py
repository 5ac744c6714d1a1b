"""Saved playlists: the intents behind `playlist ...` (composed by MusicControl as `.playlists`).

Each intent checks the permission matrix for the playlist's scope (control/permissions.py), the
limits (`musicset playlistlimits`), and returns a plain result or raises ControlError having
changed nothing. Edits are read-modify-write under the store's lock; lookups (a link to append,
which can take a while) run before the lock is taken. `start` queues through MusicControl's own
`enqueue` and `enqueue_rest`, so a saved playlist meets every limit `play` does.

`entries(where, name)` is the seam for other front doors (autoplay): a playlist's entries,
read without a permission check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.track import Track
from ..formatting import safe
from ..i18n import _
from ..playlists.formats import ParsedFile, dump_file, file_name, http_link, parse_file
from ..playlists.model import (
    ENTRY_CEILING,
    Playlist,
    PlaylistError,
    PlaylistSummary,
    Scope,
    Where,
    check_name,
    dedupe_key,
    name_key,
    queued_from,
)
from ..playlists.store import LIMITS, PlaylistLimits, PlaylistStore, StoredPlaylist
from ..policy import PolicyError
from ..resolve.jobs import Priority
from ..resolve.resolver import ResolveError
from .errors import ControlError, clean_query
from .permissions import Actor, Intent, require
from .playlist_import import AudioImportReport, import_audio, read_audio_leftovers

if TYPE_CHECKING:
    from .controller import Enqueued, MusicControl

# (entries found so far, entries the link says it has, when known)
LookupProgress = Callable[[int, "int | None"], Awaitable[None]]
STORED_BATCH = 100  # entries per batch when a saved playlist is queued


@dataclass
class Changed:
    """What an edit did, for the reply."""

    playlist: Playlist
    added: int = 0
    left_out: int = 0  # over the entry limit
    skipped: int = 0  # already in the playlist (append), or not playable (upload)
    notes: list[str] = field(default_factory=list)


@dataclass
class Started:
    playlist: Playlist
    enqueued: Enqueued  # the first entry
    rest: StoredEntries | None  # the others, for MusicControl.enqueue_rest


class StoredEntries:
    """A saved playlist's remaining entries in batches: what `enqueue_rest` takes (the same
    shape as a link's PlaylistExpansion, already complete)."""

    def __init__(self, tracks: list[Track], title: str) -> None:
        self.tracks = tracks
        self.title = title
        self.expected = len(tracks)
        self.received = len(tracks)
        self.truncated = False
        self.errors: list[str] = []

    def __aiter__(self) -> AsyncIterator[list[Track]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[Track]]:
        for start in range(0, len(self.tracks), STORED_BATCH):
            yield self.tracks[start:start + STORED_BATCH]
            await asyncio.sleep(0)  # other commands run between batches of a big playlist


def _sentence(exc: PlaylistError) -> ControlError:
    return ControlError(exc.sentence)


def _named(name: str) -> str:
    return f"**{safe(name, limit=80)}**"


class PlaylistControl:
    """The saved-playlist intents of one cog."""

    def __init__(self, control: MusicControl) -> None:
        self.control = control
        self._store: PlaylistStore | None = None

    @property
    def store(self) -> PlaylistStore:
        """Built on first use, on the cog's Config and its checked internals."""
        if self._store is None:
            self._store = PlaylistStore(self.control.store.config, self.control.store.chunks.internals)
        return self._store

    async def forget_user(self, user_id: int) -> tuple[int, int]:
        """Red's data deletion: the member's own playlists go; where they authored a server or
        global playlist, the author becomes 0. Returns (deleted, authors cleared)."""
        async with self.store.lock:
            return await self.store.forget_user(user_id)

    # -- permissions, limits, finding ---------------------------------------------------------

    def _require(self, intent: Intent, guild_id: int, actor: Actor, where: Where | None = None,
                 author_id: int | None = None) -> None:
        require(intent, actor, dj_mode=self.control.store.guild(guild_id).dj_role is not None,
                requester_id=author_id, where=where)

    async def limits(self, guild_id: int) -> PlaylistLimits:
        return await self.store.limits(guild_id)

    async def set_limit(self, guild_id: int, actor: Actor, which: str, value: int) -> int:
        """`server` (admins): playlists this server keeps; `user`, `global`, `entries` (owner)."""
        self._require(Intent.PLAYLIST_LIMITS, guild_id, actor)
        if which not in LIMITS:
            raise ControlError(_("The limits are `server`, `user`, `global` and `entries`."))
        if which != "server" and not (actor.owner or actor.system):
            raise ControlError(_("Only the bot owner can change that limit."))
        _default, low, high = LIMITS[which]
        if not low <= value <= high:
            raise ControlError(_("Pick a number from {low} to {high}.").format(low=low, high=high))
        await self.store.set_limit(which, value, guild_id)
        return value

    def defaults(self, guild_id: int, actor: Actor) -> list[Where]:
        """Where a name is looked for when no `--scope` is given, in order."""
        return [Where.server(guild_id), Where.user(actor.user_id), Where.global_()]

    async def locate(self, guild_id: int, actor: Actor, name: str, where: Where | None) -> Where:
        """The scope holding playlist `name`: `where`, or the first of this server's, the
        actor's own and the global ones that has it."""
        candidates = [where] if where is not None else self.defaults(guild_id, actor)
        async with self.store.lock:
            for candidate in candidates:
                if await self.store.exists(candidate, name):
                    return candidate
        if where is not None:
            raise ControlError(_("There's no {describe} playlist named {name}.").format(describe=where.describe(), name=_named(name)))
        raise ControlError(_("There's no playlist named {name} here, among yours or the global ones.").format(name=_named(name)))

    async def _load(self, where: Where, name: str) -> StoredPlaylist:
        """Hold the lock."""
        loaded = await self.store.load(where, name)
        if loaded is None:
            raise ControlError(_("There's no {describe} playlist named {name}.").format(describe=where.describe(), name=_named(name)))
        return loaded

    # -- reading --------------------------------------------------------------------------------

    async def summaries(self, guild_id: int, actor: Actor, where: Where | None) -> list[tuple[Where, list[PlaylistSummary]]]:
        """The playlists of one scope, or (no scope) of this server, the actor's and global."""
        self._require(Intent.PLAYLIST_LIST, guild_id, actor)
        scopes = [where] if where is not None else self.defaults(guild_id, actor)
        async with self.store.lock:
            return [(w, await self.store.summaries(w)) for w in scopes]

    async def get(self, guild_id: int, actor: Actor, name: str, where: Where | None,
                  intent: Intent = Intent.PLAYLIST_INFO) -> Playlist:
        self._require(intent, guild_id, actor)
        found = await self.locate(guild_id, actor, name, where)
        async with self.store.lock:
            return (await self._load(found, name)).playlist

    async def entries(self, where: Where, name: str) -> list[Track] | None:
        """A saved playlist's entries (to queue: `model.queued_from(entry, requester)`), or None
        when it does not exist. No permission check: for the cog's own front doors (autoplay)."""
        async with self.store.lock:
            loaded = await self.store.load(where, name)
        return None if loaded is None else loaded.playlist.entries

    async def export(self, guild_id: int, actor: Actor, name: str, where: Where | None) -> tuple[str, bytes]:
        """(file name, contents) of `playlist download`."""
        playlist = await self.get(guild_id, actor, name, where, Intent.PLAYLIST_DOWNLOAD)
        return file_name(playlist), await asyncio.to_thread(dump_file, playlist)

    # -- making playlists -----------------------------------------------------------------------

    async def _check_new(self, guild_id: int, where: Where, name: str) -> None:
        """Hold the lock: the name is free and the scope has room."""
        if await self.store.exists(where, name):
            raise ControlError(_("There's already a {describe} playlist named {name}.").format(describe=where.describe(), name=_named(name)))
        limit = (await self.store.limits(guild_id)).playlists_in(where.scope)
        if await self.store.count(where) >= limit:
            whose = {Scope.SERVER: _("This server has"), Scope.USER: _("That member has"),
                     Scope.GLOBAL: _("There are")}[where.scope]
            raise ControlError(_("{whose} {limit} {describe} playlists, the limit; delete one first.").format(whose=whose, limit=limit, describe=where.describe()))

    async def create(self, guild_id: int, actor: Actor, where: Where, name: str, tracks: list[Track] | None = None,
                     *, source_url: str | None = None, intent: Intent = Intent.PLAYLIST_CREATE) -> Changed:
        """A new playlist in `where`, with `tracks` (up to the entry limit)."""
        self._require(intent, guild_id, actor, where)
        try:
            name = check_name(name)
        except PlaylistError as exc:
            raise _sentence(exc) from None
        entry_limit = (await self.store.limits(guild_id)).entries
        async with self.store.lock:
            await self._check_new(guild_id, where, name)
            playlist = Playlist(name=name, where=where, author_id=actor.user_id, source_url=source_url)
            # up to 10,000 new entries: made in a thread, not on the event loop
            added, left_out = await asyncio.to_thread(playlist.append, list(tracks or []), entry_limit)
            await self.store.write(playlist)
        return Changed(playlist, added, left_out)

    async def save_queue(self, guild_id: int, actor: Actor, where: Where, name: str) -> Changed:
        """The current track and the queue, in order, as a new playlist."""
        queue = self.control.player(guild_id).queue
        tracks = ([queue.current] if queue.current is not None else []) + list(queue.upcoming)
        if not tracks:
            raise ControlError(_("Nothing is playing and the queue is empty: there is nothing to save."))
        return await self.create(guild_id, actor, where, name, tracks, intent=Intent.PLAYLIST_SAVE)

    async def save_history(self, guild_id: int, actor: Actor, where: Where, name: str) -> Changed:
        """What played recently (oldest first, ending with the current track) as a new playlist."""
        tracks = self.control.queue_tools.recent_history(guild_id)
        if not tracks:
            raise ControlError(_("Nothing has played here yet: there is no history to save."))
        return await self.create(guild_id, actor, where, name, tracks, intent=Intent.PLAYLIST_SAVE)

    async def save_link(self, guild_id: int, actor: Actor, where: Where, name: str, query: str,
                        progress: LookupProgress | None = None) -> Changed:
        """A new playlist from a link (a playlist link brings all its entries) or a search."""
        self._require(Intent.PLAYLIST_SAVE, guild_id, actor, where)
        try:
            name = check_name(name)
        except PlaylistError as exc:
            raise _sentence(exc) from None
        async with self.store.lock:
            await self._check_new(guild_id, where, name)  # before the lookup: fail fast
        limit = (await self.store.limits(guild_id)).entries
        tracks, notes, _title = await self._look_up(guild_id, actor, query, limit, progress)
        changed = await self.create(guild_id, actor, where, name, tracks, source_url=http_link(query),
                                    intent=Intent.PLAYLIST_SAVE)
        changed.notes += notes
        return changed

    async def upload(self, guild_id: int, actor: Actor, where: Where, data: bytes, filename: str,
                     name: str | None = None) -> tuple[Changed, ParsedFile]:
        """A new playlist from a file; a bad file raises its sentence and changes nothing."""
        self._require(Intent.PLAYLIST_UPLOAD, guild_id, actor, where)
        try:
            parsed = await asyncio.to_thread(parse_file, data, filename)
        except PlaylistError as exc:
            raise _sentence(exc) from None
        chosen = name or parsed.name
        if not chosen:
            raise ControlError(_("That file has no usable playlist name: give one, `playlist upload <name>`."))
        changed = await self.create(guild_id, actor, where, chosen, parsed.entries,
                                    source_url=parsed.source_url, intent=Intent.PLAYLIST_UPLOAD)
        changed.skipped = parsed.skipped
        changed.notes += parsed.notes
        return changed, parsed

    async def copy(self, guild_id: int, actor: Actor, name: str, source: Where | None, target: Where,
                   new_name: str | None = None) -> tuple[Where, Changed]:
        """A copy of a playlist (anyone may read one) into `target` (which the actor may make
        playlists in), under `new_name` or the same name. Returns (where it came from, result)."""
        self._require(Intent.PLAYLIST_COPY, guild_id, actor, target)
        found = await self.locate(guild_id, actor, name, source)
        async with self.store.lock:
            original = (await self._load(found, name)).playlist
        if found == target and not new_name:
            raise ControlError(_("Copying a playlist into its own scope needs a new name."))
        changed = await self.create(guild_id, actor, target, new_name or original.name, original.entries,
                                    source_url=original.source_url, intent=Intent.PLAYLIST_COPY)
        return found, changed

    # -- changing playlists ---------------------------------------------------------------------

    async def _edit(self, intent: Intent, guild_id: int, actor: Actor, name: str, where: Where | None,
                    change: Callable[[Playlist], None]) -> Playlist:
        """Locate, check who may, apply `change` (which may raise PlaylistError), write."""
        found = await self.locate(guild_id, actor, name, where)
        async with self.store.lock:
            loaded = await self._load(found, name)
            playlist = loaded.playlist
            self._require(intent, guild_id, actor, found, playlist.author_id)
            try:
                change(playlist)
            except PlaylistError as exc:
                raise _sentence(exc) from None
            playlist.updated = time.time()
            await self.store.write(playlist, loaded)
        return playlist

    async def append(self, guild_id: int, actor: Actor, name: str, where: Where | None, query: str,
                     progress: LookupProgress | None = None) -> Changed:
        """Add a track, a playlist link's entries, or a search's first result at the end.
        Entries already in the playlist are skipped (as Red's Audio does)."""
        found = await self.locate(guild_id, actor, name, where)
        async with self.store.lock:
            current = (await self._load(found, name)).playlist
        self._require(Intent.PLAYLIST_APPEND, guild_id, actor, found, current.author_id)
        limit = (await self.store.limits(guild_id)).entries
        room = min(limit, ENTRY_CEILING) - len(current.entries)
        if room <= 0:
            raise ControlError(_("{name} is full ({entries_count} entries, the limit).").format(name=_named(current.name), entries_count=len(current.entries)))
        tracks, notes, _title = await self._look_up(guild_id, actor, query, room, progress)
        outcome = Changed(current)

        def add(playlist: Playlist) -> None:
            known = {dedupe_key(e) for e in playlist.entries}
            fresh = [t for t in tracks if dedupe_key(t) not in known]
            outcome.skipped = len(tracks) - len(fresh)
            outcome.added, outcome.left_out = playlist.append(fresh, limit)
            if fresh and not outcome.added:
                raise PlaylistError(_("{name} is full ({entries_count} entries, the limit).").format(name=_named(playlist.name), entries_count=len(playlist.entries)))

        outcome.playlist = await self._edit(Intent.PLAYLIST_APPEND, guild_id, actor, name, found, add)
        outcome.notes += notes
        return outcome

    async def remove(self, guild_id: int, actor: Actor, name: str, where: Where | None, target: str) -> tuple[Playlist, list[Track] | int]:
        """Remove the entry at a position (`3`), or every entry of a link (Red Audio's way).
        Returns the playlist and the removed entry (a list of one) or how many went."""
        removed: list[Track | int] = []
        text = target.strip()

        def change(playlist: Playlist) -> None:
            if text.isdigit():
                removed.append(playlist.remove_at(int(text)))
                return
            count = playlist.remove_link(text)
            if not count:
                raise PlaylistError(_("No entry of {name} is that link; give its number from `playlist info`.").format(name=_named(playlist.name)))
            removed.append(count)

        playlist = await self._edit(Intent.PLAYLIST_REMOVE, guild_id, actor, name, where, change)
        first = removed[0]
        return playlist, ([first] if isinstance(first, Track) else first)

    async def rename(self, guild_id: int, actor: Actor, name: str, where: Where | None, new_name: str) -> tuple[str, Playlist]:
        try:
            new_name = check_name(new_name)
        except PlaylistError as exc:
            raise _sentence(exc) from None
        found = await self.locate(guild_id, actor, name, where)
        old: list[str] = []

        def change(playlist: Playlist) -> None:
            old.append(playlist.name)
            playlist.name = new_name

        async with self.store.lock:
            target_taken = await self.store.exists(found, new_name)
        if target_taken and name_key(new_name) != name_key(name):
            raise ControlError(_("There's already a {describe} playlist named {new_name}.").format(describe=found.describe(), new_name=_named(new_name)))
        playlist = await self._edit(Intent.PLAYLIST_RENAME, guild_id, actor, name, found, change)
        return old[0], playlist

    async def dedupe(self, guild_id: int, actor: Actor, name: str, where: Where | None) -> tuple[Playlist, int]:
        removed: list[int] = []
        playlist = await self._edit(Intent.PLAYLIST_DEDUPE, guild_id, actor, name, where,
                                    lambda p: removed.append(p.dedupe()))
        return playlist, removed[0]

    async def delete(self, guild_id: int, actor: Actor, name: str, where: Where | None) -> Playlist:
        found = await self.locate(guild_id, actor, name, where)
        async with self.store.lock:
            playlist = (await self._load(found, name)).playlist
            self._require(Intent.PLAYLIST_DELETE, guild_id, actor, found, playlist.author_id)
            await self.store.delete(found, name)
        return playlist

    # -- playing --------------------------------------------------------------------------------

    async def start(self, guild_id: int, actor: Actor, name: str, where: Where | None) -> Started:
        """Queue a saved playlist: its first entry now (it plays at once when idle), the rest
        for `MusicControl.enqueue_rest`, both within the server's limits as for `play`."""
        self._require(Intent.PLAYLIST_START, guild_id, actor)
        found = await self.locate(guild_id, actor, name, where)
        async with self.store.lock:
            playlist = (await self._load(found, name)).playlist
        if not playlist.entries:
            raise ControlError(_("{name} has no entries yet; `playlist append` adds some.").format(name=_named(playlist.name)))
        tracks = await asyncio.to_thread(lambda: [queued_from(e, actor.user_id) for e in playlist.entries])
        # a first entry the block or allow list skips leaves the rest to play
        enqueued = self.control.enqueue(guild_id, actor, tracks[:1], more_to_come=len(tracks) > 1)
        rest = StoredEntries(tracks[1:], playlist.name) if len(tracks) > 1 else None
        return Started(playlist, enqueued, rest)

    # -- moving over from Red's Audio ------------------------------------------------------------

    async def import_audio(self, actor: Actor, cogs_path: Path) -> AudioImportReport:
        """Import Red Audio's playlists and server settings found under `cogs_path` (Red's cog
        data folder); a second run adds nothing. The owner only."""
        require(Intent.IMPORT_AUDIO, actor, dj_mode=False)
        leftovers = await read_audio_leftovers(cogs_path)
        return await import_audio(self, actor, leftovers)

    # -- lookups --------------------------------------------------------------------------------

    async def _look_up(self, guild_id: int, actor: Actor, query: str, room: int,
                       progress: LookupProgress | None) -> tuple[list[Track], list[str], str | None]:
        """The tracks a query gives (a playlist link: its entries, up to `room`), and notes."""
        text = clean_query(query)
        service = self.control.service
        try:
            result = await service.resolve(text, guild_id=guild_id, requester_id=actor.user_id,
                                           limit=max(1, room), priority=Priority.NORMAL)
        except (ResolveError, PolicyError) as exc:
            raise ControlError(str(exc)) from None
        tracks = list(result.tracks)
        notes = [(_("{errors_count} entry could not be read.") if len(result.errors) == 1 else _("{errors_count} entries could not be read.")).format(errors_count=len(result.errors))] if result.errors else []
        rest = result.rest
        if rest is not None:
            try:
                async for batch in rest:
                    tracks.extend(batch)
                    if progress is not None:
                        await progress(len(tracks), rest.expected)
            except BaseException:
                self.control.drop_playlist(rest)
                raise
            if rest.truncated:
                notes.append(_("The link has more entries than fit; the first {tracks_count} were taken.").format(tracks_count=len(tracks)))
            notes += rest.errors
        return tracks[:max(1, room)], notes, result.title


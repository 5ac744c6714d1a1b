"""Autoplay (composed by MusicControl as `.autoplay`): what plays when the queue runs dry.

The player decides *when* (player/autoplay.py: the queue is about to run dry, in voice, the
setting on) and asks `top_up`; this decides *what* (engine/autoplay.py picks) and queues it
through MusicControl.enqueue as the owner's tools acting for nobody (`Actor.system_for(0)`), so
the server's block and allow lists, length and queue limits apply to autoplay as to a member.
The pick is queued while the current track still plays, so it is prefetched and the change is
the usual gapless one; a member's track queued meanwhile takes its place (enqueue drops it).

Where the entries come from is a seam: `AutoplaySource` (a saved playlist's entries: the
cog's saved playlists, `SavedPlaylists`) and `RelatedSource` (what a site lists as related:
`ServiceRelated`), so the tests plug in fakes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..engine.autoplay import (
    autoplay_entry,
    playlist_order,
    recent_keys,
    related_order,
    related_url,
)
from ..engine.track import Track
from ..formatting import safe, track_line
from ..i18n import _
from ..player import events as ev
from ..playlists.model import PlaylistError, Where
from ..policy import PolicyError
from ..resolve.jobs import Priority
from ..resolve.resolver import ResolveError
from .errors import ControlError
from .permissions import Actor, Intent

if TYPE_CHECKING:
    from .controller import MusicControl

OFF, PLAYLIST, RELATED = "off", "playlist", "related"
RELATED_LIMIT = 15  # related entries listed per pick
MAX_ATTEMPTS = 5  # picks tried per top-up when the queue refuses one (too long, say)
MAX_NAME_LENGTH = 100


class AutoplaySource(Protocol):
    """Saved playlists, as autoplay reads them."""

    async def entries(self, guild_id: int, name: str) -> list[Track] | None:
        """The entries of the playlist `name` this server may play (its own, else a global
        one), or None when there is none. Raises ControlError when playlists can't be read."""


class RelatedSource(Protocol):
    async def related(self, guild_id: int, seed: Track) -> list[Track]:
        """What the site lists as related to `seed`; raises ControlError(sentence) when it has
        nothing to offer or the lookup failed."""


class SavedPlaylists:
    """The cog's saved playlists (control/playlists.py): this server's playlist of that name,
    else a global one. Not a member's own: autoplay plays for nobody in particular."""

    def __init__(self, control: MusicControl) -> None:
        self.control = control

    async def entries(self, guild_id: int, name: str) -> list[Track] | None:
        playlists = self.control.playlists
        for where in (Where.server(guild_id), Where.global_()):
            try:
                found = await playlists.entries(where, name)
            except PlaylistError as exc:
                raise ControlError(exc.sentence) from None
            if found is not None:
                return found
        return None


class ServiceRelated:
    """Related entries through the lookup service: the same network policy, extractor list,
    guard and workers as `play` (a YouTube mix, SoundCloud's recommendations)."""

    def __init__(self, control: MusicControl) -> None:
        self.control = control

    async def related(self, guild_id: int, seed: Track) -> list[Track]:
        url = related_url(seed)
        if url is None:
            raise ControlError(_("the site of {seed} offers no related tracks I can read").format(seed=track_line(seed)))
        try:
            result = await self.control.service.resolve(
                url, guild_id=guild_id, requester_id=0, limit=RELATED_LIMIT, priority=Priority.NORMAL,
            )
        except (ResolveError, PolicyError) as exc:
            raise ControlError(_("I couldn't list tracks related to {seed} ({exc})").format(seed=track_line(seed), exc=safe(str(exc), limit=200))) from None
        found = list(result.tracks)
        if result.rest is not None:
            async for batch in result.rest:  # ends at RELATED_LIMIT entries
                found += batch
        return found


@dataclass
class Outcome:
    """What a top-up did: the entry queued (None: nothing) and what to tell the channel."""

    queued: Track | None = None
    notes: list[str] = field(default_factory=list)


class AutoplayControl:
    """The autoplay intent and the player's top-up of one cog."""

    def __init__(self, control: MusicControl, *, source: AutoplaySource | None = None,
                 related: RelatedSource | None = None, rng: random.Random | None = None) -> None:
        self.control = control
        self.source: AutoplaySource = source or SavedPlaylists(control)
        self.related: RelatedSource = related or ServiceRelated(control)
        self.rng = rng or random.Random()
        # per guild: songs already reported as refused by the block and allow lists, so a
        # blocked entry of the playlist is named once, not at every pick
        self._reported: dict[int, set[tuple[str, str]]] = {}

    # -- the setting ---------------------------------------------------------------------------

    async def set_mode(self, guild_id: int, actor: Actor, text: str) -> tuple[str, str | None]:
        """`off`, `related`, or a saved playlist's name. Returns (mode, playlist): related
        falls back to the playlist set before, if any."""
        self.control._require(Intent.AUTOPLAY, guild_id, actor)
        store = self.control.store
        word = " ".join(text.split())
        if not word:
            raise ControlError(_("Give a saved playlist's name, `related` or `off`."))
        if len(word) > MAX_NAME_LENGTH:
            raise ControlError(_("A playlist name is at most {max_name_length} characters.").format(max_name_length=MAX_NAME_LENGTH))
        mode = {"off": OFF, "none": OFF, "related": RELATED}.get(word.lower(), PLAYLIST)
        if mode == PLAYLIST:
            entries = await self.source.entries(guild_id, word)
            if entries is None:
                raise ControlError(_("There's no saved playlist named **{word}** here.").format(word=safe(word, limit=80)))
            if not entries:
                raise ControlError(_("The playlist **{word}** is empty.").format(word=safe(word, limit=80)))
            await store.set_guild(guild_id, "autoplay_playlist", word)
        await store.set_guild(guild_id, "autoplay_mode", mode)
        self._reported.pop(guild_id, None)
        player = self.control.player(guild_id)
        player.autoplay_refused_for = None  # a new setting gets a new try
        if mode == OFF:
            if player.queue.remove_where(lambda t: t.autoplay):
                self.control._changed(player)
        else:
            self.control.manager.post(ev.Reschedule(guild_id))  # starts it if idle in voice
        return mode, store.guild(guild_id).autoplay_playlist

    # -- the player's request ------------------------------------------------------------------

    async def top_up(self, guild_id: int, seed: Track | None) -> tuple[bool, list[str]]:
        """The player's AutoplayPort: queue the next autoplay track while the queue is dry.
        Returns (queued, sentences for the channel)."""
        outcome = await self._top_up(guild_id, seed)
        return outcome.queued is not None, outcome.notes

    async def _top_up(self, guild_id: int, seed: Track | None) -> Outcome:
        settings = self.control.store.guild(guild_id)
        mode, name = settings.autoplay_mode, settings.autoplay_playlist
        if mode not in (PLAYLIST, RELATED):
            return Outcome()
        queue = self.control.player(guild_id).queue
        recent = recent_keys(queue.history, queue.current, queue.upcoming)
        notes: list[str] = []
        candidates: list[Track] = []
        reason = ""
        if mode == RELATED:
            if seed is None:
                reason = _("there is no last track to find related ones for")
            else:
                try:
                    found = await self.related.related(guild_id, seed)
                except ControlError as exc:
                    reason = exc.sentence
                else:
                    candidates = related_order(self._allowed(guild_id, found, notes), recent)
                    if not candidates:
                        reason = _("nothing related to {seed} may play that did not play recently").format(seed=track_line(seed))
        if not candidates and name:
            try:
                entries = await self.source.entries(guild_id, name)
            except ControlError as exc:
                return Outcome(notes=[*notes, _stopped(reason or exc.sentence)])
            if entries is None:
                return Outcome(notes=[*notes, _stopped(_("there's no saved playlist named **{name}** any more").format(name=safe(name, limit=80)))])
            # the songs that may play here, so "recently" counts among them
            candidates = playlist_order(self._allowed(guild_id, entries, notes), recent, self.rng)
            reason = _("nothing in **{name}** may play here").format(name=safe(name, limit=80))
        if not candidates:
            return Outcome(notes=[*notes, _stopped(reason or _("there is nothing to play"))])
        if queue.peek_next() is not None:
            return Outcome(notes=notes)  # a member queued something meanwhile: theirs plays
        return self._queue_one(guild_id, candidates, notes)

    def _allowed(self, guild_id: int, entries: list[Track], notes: list[str]) -> list[Track]:
        """The entries the block and allow lists let play here; a refused one is named once
        (per setting of autoplay), not at every pick."""
        rules = self.control.store.content_rules(guild_id)
        if rules.empty:
            return entries
        reported = self._reported.setdefault(guild_id, set())
        allowed: list[Track] = []
        for entry in entries:
            refusal = rules.refusal(entry)
            if refusal is None:
                allowed.append(entry)
            elif entry.song_key() not in reported:
                reported.add(entry.song_key())
                notes.append(_("Autoplay skipped {entry}: {refusal}.").format(entry=track_line(entry), refusal=refusal))
        return allowed

    def _queue_one(self, guild_id: int, candidates: list[Track], notes: list[str]) -> Outcome:
        """Queue the first candidate the queue takes (its limits may refuse one: too long)."""
        for candidate in candidates[:MAX_ATTEMPTS]:
            try:
                queued = self.control.enqueue(guild_id, Actor.system_for(0), [autoplay_entry(candidate)])
            except ControlError as exc:
                notes.append(_("Autoplay skipped one: {sentence}").format(sentence=exc.sentence))
                continue
            return Outcome(queued.tracks[0], notes + queued.notes)
        return Outcome(notes=[*notes, _stopped(_("none of the tracks it tried may play here"))])


def _stopped(reason: str) -> str:
    return _("Autoplay stopped: {reason}.").format(reason=reason)

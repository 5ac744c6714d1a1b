"""Queue tools (composed by MusicControl as `.queue_tools`): tidy-ups that touch many entries at
once (`queue clean`, `cleanself`, `dedupe`, `remove` by range or member), `queue search`, and the
recent history other front doors read (`playlist save --history`).

Each intent checks the permission matrix (control/permissions.py), edits the queue in one pass,
saves and wakes the player once, and returns what it removed; a refusal changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.content_rules import normalise_text
from ..engine.queue import HISTORY_LIMIT
from ..engine.track import Track
from ..i18n import _
from .errors import ControlError
from .permissions import Actor, Intent

if TYPE_CHECKING:
    from .controller import MusicControl

MAX_SEARCH_LENGTH = 100  # characters of a `queue search`


class QueueTools:
    """The queue-tool intents of one cog."""

    def __init__(self, control: MusicControl) -> None:
        self.control = control

    def _removed(self, guild_id: int, removed: list[Track]) -> list[Track]:
        if removed:
            self.control._changed(self.control.player(guild_id))
        return removed

    def clean(self, guild_id: int, actor: Actor, listeners: frozenset[int]) -> list[Track]:
        """Drop the tracks of members who are not in the bot's voice channel (`listeners`: the
        members who are). Tracks queued by nobody in particular (autoplay, the RPC API) stay."""
        self.control._require(Intent.QUEUE_CLEAN, guild_id, actor)
        if self.control.manager.voice.connected(guild_id) is None:
            raise ControlError(_("I'm not in a voice channel, so nobody has left it."))
        queue = self.control.player(guild_id).queue
        return self._removed(guild_id, queue.remove_where(
            lambda t: t.requester_id != 0 and t.requester_id not in listeners
        ))

    def clean_self(self, guild_id: int, actor: Actor) -> list[Track]:
        """Drop every track the actor queued."""
        self.control._require(Intent.QUEUE_CLEANSELF, guild_id, actor)
        queue = self.control.player(guild_id).queue
        removed = queue.remove_where(lambda t: t.requester_id == actor.user_id)
        if not removed:
            raise ControlError(_("You have no tracks in the queue."))
        return self._removed(guild_id, removed)

    def remove_range(self, guild_id: int, actor: Actor, first: int, last: int) -> list[Track]:
        """Drop positions `first` to `last`: DJs any, others only a range of their own tracks."""
        queue = self.control.player(guild_id).queue
        first, last = sorted((first, last))
        for n in (first, last):
            if not 1 <= n <= len(queue):
                raise ControlError(_bad_position(queue.upcoming, n))
        for track in queue.upcoming[first - 1 : last]:
            self.control._require(Intent.REMOVE, guild_id, actor, track)
        return self._removed(guild_id, queue.remove_range(first, last))

    def remove_member(self, guild_id: int, actor: Actor, member_id: int) -> list[Track]:
        """Drop every track `member_id` queued: DJs for anyone, others for themselves."""
        queue = self.control.player(guild_id).queue
        mine = [t for t in queue.upcoming if t.requester_id == member_id]
        if not mine:
            raise ControlError(_("That member has no tracks in the queue."))
        self.control._require(Intent.REMOVE, guild_id, actor, mine[0])
        return self._removed(guild_id, queue.remove_where(lambda t: t.requester_id == member_id))

    def dedupe(self, guild_id: int, actor: Actor) -> list[Track]:
        """Drop every queued track that repeats an earlier one (or the current track): the same
        page or local file. The first of each stays where it is."""
        self.control._require(Intent.QUEUE_DEDUPE, guild_id, actor)
        queue = self.control.player(guild_id).queue
        seen = {queue.current.song_key()} if queue.current is not None else set()

        def repeated(track: Track) -> bool:
            key = track.song_key()
            if key in seen:
                return True
            seen.add(key)
            return False

        return self._removed(guild_id, queue.remove_where(repeated))

    def search(self, guild_id: int, actor: Actor, text: str) -> list[tuple[int, Track]]:
        """The queued tracks whose title or uploader contains `text`, with their positions."""
        self.control._require(Intent.QUEUE_SEARCH, guild_id, actor)
        words = normalise_text(text)
        if not words:
            raise ControlError(_("Tell me what to look for in the queue."))
        if len(words) > MAX_SEARCH_LENGTH:
            raise ControlError(_("Search for at most {max_search_length} characters.").format(max_search_length=MAX_SEARCH_LENGTH))
        return [
            (n, t) for n, t in enumerate(self.control.player(guild_id).queue.upcoming, 1)
            if words in normalise_text(t.title) or (t.uploader and words in normalise_text(t.uploader))
        ]

    def recent_history(self, guild_id: int, limit: int = HISTORY_LIMIT) -> list[Track]:
        """What played recently, oldest first, ending with the current track: copies (new ids),
        for `playlist save --history`. No permission check: the caller's intent has one."""
        queue = self.control.player(guild_id).queue
        played = [*queue.history, *([queue.current] if queue.current is not None else [])]
        return [t.with_new_id() for t in played[-max(0, limit):]] if limit > 0 else []


def _bad_position(upcoming: list[Track], n: int) -> str:
    """The queue model's sentence for a position that isn't there."""
    count = len(upcoming)
    if not count:
        return _("The queue is empty.")
    return (_("There's no track {n} in the queue: pick a number from 1 to {count} ({count} track queued).") if count == 1 else _("There's no track {n} in the queue: pick a number from 1 to {count} ({count} tracks queued).")).format(n=n, count=count)

"""The control layer: the one writer of every guild's player and queue outside the player.

Front doors (chat commands, the RPC API, and later slash commands, buttons and autoplay) parse
their input, say who is asking (an ``Actor``), call one intent here and render what it returns.
An intent checks the permission matrix and the server's limits, changes the queue or asks the
player (an event for the advancer), and returns a plain result, or raises ``ControlError`` with
the sentence to show, having changed nothing.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..engine.admission import AdmissionError, AllRefused, admit, admit_batch
from ..engine.queue import QueueError, QueueModel, RepeatMode
from ..engine.timefmt import parse_seek
from ..engine.track import Track
from ..formatting import safe, track_line
from ..i18n import _
from ..player import events as ev
from ..player.state import GuildPlayer, PlayerState
from ..policy import PolicyError
from ..resolve.jobs import JobNotAllowed, Priority
from ..resolve.resolver import ResolveError
from .autoplay import AutoplayControl
from .content import ContentControl
from .errors import MAX_QUERY_LENGTH, ControlError, clean_query
from .filters import FilterControl
from .permissions import Actor, Intent, Verdict, require
from .playlists import PlaylistControl
from .queue_tools import QueueTools

if TYPE_CHECKING:
    from ..player.manager import PlayerManager
    from ..resolve.service import PlaylistExpansion, ResolveService, ServiceResult
    from ..store import MusicStore

BatchCallback = Callable[[int, int], Awaitable[None]]


@dataclass
class Enqueued:
    tracks: list[Track]  # what was queued, in order
    position: int  # the 1-based queue position of the first (where more may be inserted)
    starting: bool  # the player was idle: the first track plays at once
    notes: list[str] = field(default_factory=list)  # what was left out, in sentences
    place: int = 1  # the first's place in line as members will see it (1 when it is starting)


@dataclass
class SkipOutcome:
    track: Track  # the current track, skipped or voted on
    skipped: bool
    votes: int = 0  # for a vote: counted votes and votes needed
    needed: int = 0


class MusicControl:
    """Per guild, the only writer of the player and its queue (besides the player's handlers)."""

    def __init__(self, manager: PlayerManager, store: MusicStore, service: ResolveService) -> None:
        self.manager = manager
        self.store = store
        self.service = service
        self.playlists = PlaylistControl(self)  # saved playlists: control/playlists.py
        self.filters = FilterControl(self)  # filters, equalizer, normalisation: control/filters.py
        self.queue_tools = QueueTools(self)  # clean, dedupe, search, remove many: control/queue_tools.py
        self.content = ContentControl(self)  # max volume, block and allow lists: control/content.py
        self.autoplay = AutoplayControl(self)  # what plays when the queue runs dry: control/autoplay.py

    # -- reading ----------------------------------------------------------------------------

    def player(self, guild_id: int) -> GuildPlayer:
        """The guild's player, to read (never assign to it outside this package and the player)."""
        return self.manager.get(guild_id)

    def _require(self, intent: Intent, guild_id: int, actor: Actor, track: Track | None = None) -> Verdict:
        if track is None:
            track = self.player(guild_id).queue.current
        return require(
            intent,
            actor,
            dj_mode=self.store.guild(guild_id).dj_role is not None,
            requester_id=track.requester_id if track is not None else None,
        )

    def authorize(self, intent: Intent, guild_id: int, actor: Actor) -> None:
        """Check the permission alone, before the front door's own work (joining voice)."""
        self._require(intent, guild_id, actor)

    def _current(self, guild_id: int) -> Track:
        track = self.player(guild_id).queue.current
        if track is None:
            raise ControlError(_("Nothing is playing."))
        return track

    def _changed(self, player: GuildPlayer) -> None:
        """After any edit of a guild's queue: save it (coalesced) and let the advancer react."""
        self.manager.save(player)
        self.manager.post(ev.QueueChanged(player.guild_id))

    # -- where the music plays ----------------------------------------------------------------

    def bind(self, guild_id: int, voice_channel_id: int | None, text_channel_id: int | None) -> None:
        """The voice channel to be in and the text channel to talk in (None: keep)."""
        player = self.player(guild_id)
        if voice_channel_id is not None:
            player.channel_id = voice_channel_id
        if text_channel_id is not None:
            player.text_channel_id = text_channel_id

    def summoned(self, guild_id: int) -> None:
        """The bot joined a member's channel: play the queue there."""
        player = self.player(guild_id)
        autoplay = self.store.guild(guild_id).autoplay_mode != "off"
        if player.queue.current is not None or len(player.queue) or autoplay:
            self.manager.post(ev.Reschedule(guild_id))

    # -- adding music -----------------------------------------------------------------------

    async def lookup(self, guild_id: int, actor: Actor, query: object) -> ServiceResult:
        """Resolve a member's query (a link, a playlist, or words: the first search result)."""
        text = clean_query(query)
        refusal = self.store.content_rules(guild_id).site_refusal(text) if "://" in text else None
        if refusal is not None:  # nothing is fetched from a blocked site
            raise ControlError(_("I won't play that link: {refusal}.").format(refusal=refusal))
        player = self.player(guild_id)
        # the track that will play at once goes ahead of everyone's background work
        idle = player.queue.current is None and player.state in (PlayerState.IDLE, PlayerState.BACKGROUND)
        try:
            return await self.service.resolve(
                text,
                guild_id=guild_id,
                requester_id=actor.user_id,
                limit=max(1, self.store.guild(guild_id).max_playlist),
                priority=Priority.URGENT if idle else Priority.NORMAL,
            )
        except (ResolveError, PolicyError) as exc:
            raise ControlError(str(exc)) from None

    async def search(self, guild_id: int, actor: Actor, query: object, n: int) -> list[Track]:
        text = clean_query(query)
        try:
            return await self.service.search(text, n=n, guild_id=guild_id, requester_id=actor.user_id)
        except (ResolveError, PolicyError) as exc:
            raise ControlError(str(exc)) from None

    def enqueue(
        self,
        guild_id: int,
        actor: Actor,
        tracks: list[Track],
        *,
        front: bool = False,
        describe: Callable[[Track], str] = track_line,
        more_to_come: bool = False,
    ) -> Enqueued:
        """Queue `tracks` within the server's block/allow lists and limits (length, queue size,
        per member, fair queue), in place of a pending autoplay pick. `describe` names a track in
        a refusal (chat: markdown; RPC: plain). `more_to_come` (a playlist's first batch): if
        the lists refuse all of it, return no tracks and their sentences instead of refusing."""
        player = self.player(guild_id)
        before = list(player.queue.upcoming)
        _displace_autoplay(player.queue, tracks)
        idle = _head_is_starting(player)
        try:
            admission = admit(
                player.queue,
                tracks,
                self.store.guild(guild_id),
                requester_id=actor.user_id,
                privileged=actor.privileged,
                front=front,
                describe=describe,
                requester_is_you=not actor.system,
                rules=self.store.content_rules(guild_id),
                head_is_starting=idle,
            )
        except AdmissionError as exc:
            player.queue.upcoming[:] = before  # a refusal changes nothing
            if more_to_come and isinstance(exc, AllRefused):
                return Enqueued([], len(player.queue) + 1, False, [exc.sentence], max(len(player.queue) + (0 if idle else 1), 1))
            raise ControlError(exc.sentence) from None
        position = player.queue.add(admission.tracks, front=front, at=admission.at)
        self._changed(player)
        starting = idle and position == 1
        place = max(position - 1, 1) if idle else position
        return Enqueued(admission.tracks, position, starting, list(admission.notes), place)

    async def enqueue_rest(
        self,
        guild_id: int,
        actor: Actor,
        rest: AsyncIterable[list[Track]],  # a link's PlaylistExpansion, or a saved playlist's entries
        insert_at: int | None,
        on_batch: BatchCallback | None = None,
        refusals: list[str] | None = None,
        describe: Callable[[Track], str] = track_line,
    ) -> tuple[int, int]:
        """Queue a loading playlist's later batches as they arrive, within the same block and
        allow lists and limits as its first entry (per member too), in playlist order (at the
        end, or from `insert_at`). Returns (added, left out by the limits); `on_batch(added,
        left_out)` runs after every batch; `refusals` (if given) collects a sentence for each
        entry the block and allow lists skipped (see `summarise_refusals`)."""
        player = self.player(guild_id)
        settings = self.store.guild(guild_id)
        added = left_out = 0
        async for batch in rest:
            usable, dropped, blocked = admit_batch(
                player.queue, batch, settings, requester_id=actor.user_id, privileged=actor.privileged,
                rules=self.store.content_rules(guild_id), describe=describe,
                head_is_starting=_head_is_starting(player),
            )
            left_out += dropped
            if refusals is not None:
                refusals += blocked
            if usable:
                _displace_autoplay(player.queue, usable)
                position = player.queue.add(usable, at=insert_at)
                if insert_at is not None:
                    insert_at = position + len(usable)
                added += len(usable)
                self._changed(player)
            if on_batch is not None:
                await on_batch(added, left_out)
        return added, left_out

    def lookup_status(self, guild_id: int, actor: Actor) -> dict[str, Any]:
        """The lookups of this server (the bot owner sees every server's)."""
        return self.service.status(guild_id=None if actor.owner else guild_id)

    def cancel_lookup(self, guild_id: int, actor: Actor, job_id: int) -> None:
        """Cancel a lookup of this server: one's own, or anyone's for admins. Another server's
        job gets the same answer as one that does not exist, so ids can't be probed."""
        try:
            cancelled = self.service.cancel(
                job_id, by_user_id=actor.user_id, is_admin=actor.admin,
                guild_id=None if actor.owner else guild_id,
            )
        except JobNotAllowed as exc:
            raise ControlError(exc.sentence) from None
        if not cancelled:
            raise ControlError(_("There is no unfinished lookup with job number {job_id}.").format(job_id=job_id))

    def drop_playlist(self, rest: PlaylistExpansion | None) -> None:
        """Stop listing a playlist whose first entry could not be queued."""
        if rest is not None:
            self.service.cancel(rest.job_id or 0, by_user_id=0, is_admin=True)

    # -- the queue ----------------------------------------------------------------------------

    def index_of(self, guild_id: int, track_id: str) -> int:
        for n, track in enumerate(self.player(guild_id).queue.upcoming, 1):
            if track.id == track_id:
                return n
        raise ControlError(_("There's no queued track with id {track_id}.").format(track_id=safe(track_id, limit=40)))

    def remove(self, guild_id: int, actor: Actor, index: int) -> Track:
        player = self.player(guild_id)
        queue = player.queue
        target = queue.upcoming[index - 1] if 1 <= index <= len(queue) else None
        self._require(Intent.REMOVE, guild_id, actor, target)
        track = _queue_edit(lambda: queue.remove(index))
        self._changed(player)
        return track

    def move(self, guild_id: int, actor: Actor, src: int, dst: int) -> Track:
        self._require(Intent.MOVE, guild_id, actor)
        player = self.player(guild_id)
        track = _queue_edit(lambda: player.queue.move(src, dst))
        self._changed(player)
        return track

    def clear(self, guild_id: int, actor: Actor) -> int:
        self._require(Intent.CLEAR, guild_id, actor)
        player = self.player(guild_id)
        removed = player.queue.clear()
        self._changed(player)
        return removed

    def shuffle_once(self, guild_id: int, actor: Actor) -> int:
        self._require(Intent.SHUFFLE_ONCE, guild_id, actor)
        player = self.player(guild_id)
        if len(player.queue) < 2:
            raise ControlError(_("There is nothing to shuffle."))
        player.queue.shuffle_upcoming()
        self._changed(player)
        return len(player.queue)

    def set_shuffle(self, guild_id: int, actor: Actor, on: bool | None = None) -> bool:
        """Shuffle play on or off (None: the other way round)."""
        self._require(Intent.SHUFFLE, guild_id, actor)
        player = self.player(guild_id)
        player.queue.shuffle = (not player.queue.shuffle) if on is None else on
        self._changed(player)
        return player.queue.shuffle

    def set_repeat(self, guild_id: int, actor: Actor, mode: str) -> RepeatMode:
        self._require(Intent.REPEAT, guild_id, actor)
        try:
            repeat = RepeatMode(mode.lower())
        except ValueError:
            raise ControlError(_("Repeat can be `off`, `track` or `queue`.")) from None
        player = self.player(guild_id)
        player.queue.repeat = repeat
        self._changed(player)
        return repeat

    # -- playback -----------------------------------------------------------------------------

    def skip(self, guild_id: int, actor: Actor, *, listeners: frozenset = frozenset(), track_id: str | None = None) -> SkipOutcome:
        """Skip the current track, or count the actor's vote (a non-DJ with a DJ role set).
        `listeners`: the humans in the bot's voice channel; `track_id`: skip only that track."""
        track = self._current(guild_id)
        if track_id is not None and track.id != track_id:
            raise ControlError(_("Track {track_id} is not the current track any more; nothing was skipped.").format(track_id=safe(track_id, limit=40)))
        verdict = self._require(Intent.SKIP, guild_id, actor)
        player = self.player(guild_id)
        if verdict.vote:
            voters = player.skip_votes.setdefault(track.id, set())
            voters.add(actor.user_id)
            percent = self.store.guild(guild_id).vote_percent
            needed = max(1, math.ceil(len(listeners) * percent / 100))
            votes = len(voters & listeners)
            if votes < needed:
                return SkipOutcome(track, skipped=False, votes=votes, needed=needed)
            self.manager.post(ev.Skip(guild_id))
            return SkipOutcome(track, skipped=True, votes=votes, needed=needed)
        self.manager.post(ev.Skip(guild_id))
        return SkipOutcome(track, skipped=True)

    def skip_to(self, guild_id: int, actor: Actor, index: int) -> Track:
        self._require(Intent.SKIP_TO, guild_id, actor)
        queue = self.player(guild_id).queue
        if not 1 <= index <= len(queue):
            raise ControlError(_("Pick a position from 1 to {queue_count}.").format(queue_count=len(queue)) if len(queue) else _("The queue is empty."))
        self.manager.post(ev.SkipTo(guild_id, index))
        return queue.upcoming[index - 1]

    def previous(self, guild_id: int, actor: Actor) -> Track:
        self._require(Intent.PREVIOUS, guild_id, actor)
        history = self.player(guild_id).queue.history
        if not history:
            raise ControlError(_("There is no previous track."))
        self.manager.post(ev.Previous(guild_id))
        return history[-1]

    def stop(self, guild_id: int, actor: Actor) -> None:
        self._require(Intent.STOP, guild_id, actor)
        player = self.player(guild_id)
        if player.queue.current is None and not len(player.queue) and player.state is not PlayerState.BACKGROUND:
            raise ControlError(_("Nothing is playing and the queue is empty."))
        self.manager.post(ev.Stop(guild_id))

    def pause(self, guild_id: int, actor: Actor) -> None:
        self._require(Intent.PAUSE, guild_id, actor, self._current(guild_id))
        if self.player(guild_id).state is PlayerState.PAUSED:
            raise ControlError(_("Already paused; use `resume`."))
        self.manager.post(ev.Pause(guild_id))

    def resume(self, guild_id: int, actor: Actor) -> None:
        self._require(Intent.RESUME, guild_id, actor, self._current(guild_id))
        if self.player(guild_id).state is not PlayerState.PAUSED:
            raise ControlError(_("The music isn't paused."))
        self.manager.post(ev.Unpause(guild_id))

    def seek(self, guild_id: int, actor: Actor, text: str) -> float:
        """Jump within the current track (`90`, `1:30`, `+10`, `-10`); returns the target."""
        self._require(Intent.SEEK, guild_id, actor)
        track = self._current(guild_id)
        if track.is_live:
            raise ControlError(_("Live streams can't be sought."))
        try:
            target = parse_seek(text, position=self.player(guild_id).position, duration=track.duration)
        except ValueError as exc:
            raise ControlError(safe(str(exc), limit=300)) from None
        self.manager.post(ev.Seek(guild_id, target))
        return target

    def set_volume(self, guild_id: int, actor: Actor, percent: int) -> int:
        """Set the volume; above the server's maximum (`musicset maxvolume`, admins included)
        it is set to the maximum. Returns the volume set."""
        self._require(Intent.VOLUME, guild_id, actor)
        if not 0 <= percent <= 150:
            raise ControlError(_("Pick a volume from 0 to 150."))
        percent = min(percent, self.store.guild(guild_id).max_volume)
        player = self.player(guild_id)
        if player.queue.current is None or player.state is PlayerState.IDLE:
            player.volume = percent  # nothing to reopen: the next track starts at it
            self.manager.save(player)
        else:
            self.manager.post(ev.SetVolume(guild_id, percent))
        return percent

    def disconnect(self, guild_id: int, actor: Actor) -> None:
        self._require(Intent.DISCONNECT, guild_id, actor)
        if self.manager.voice.connected(guild_id) is None:
            raise ControlError(_("I'm not in a voice channel."))
        self.manager.post(ev.Disconnect(guild_id))

    def reschedule(self, guild_id: int, actor: Actor) -> PlayerState:
        """Make the player look at the queue again; returns the state it was in."""
        self._require(Intent.RESCHEDULE, guild_id, actor)
        self.manager.post(ev.Reschedule(guild_id))
        return self.player(guild_id).state

    async def set_background(self, guild_id: int, actor: Actor, url: str | None) -> str | None:
        """Set (an http(s) link) or turn off (None, `off`) what plays while the queue is empty."""
        self._require(Intent.BACKGROUND, guild_id, actor)
        text = (url or "").strip().strip("<>")
        if text.lower() in ("off", "none", ""):
            await self.store.set_guild(guild_id, "background", None)
            self.manager.post(ev.StopBackground(guild_id))
            return None
        if len(text) > MAX_QUERY_LENGTH or not text.lower().startswith(("http://", "https://")):
            raise ControlError(_("The background must be an http(s) link."))
        try:
            await self.store.network_policy_check(text)
        except PolicyError as exc:
            raise ControlError(str(exc)) from None
        await self.store.set_guild(guild_id, "background", text)
        self.manager.post(ev.Reschedule(guild_id))  # starts it if idle in voice
        return text

    # -- the cog's lifecycle ------------------------------------------------------------------

    def restore(self, states: dict[int, dict[str, Any]], present: Callable[[int], bool]) -> int:
        """Players from saved state (a restart, a reload, an update); the ones that were playing
        in a present guild with auto-resume on are rescheduled. Returns how many were restored."""
        for guild_id, state in states.items():
            player = GuildPlayer.from_snapshot(guild_id, state)
            if player.queue.current is None and not len(player.queue):
                continue
            player.unverified = _stored_streams(player.queue)
            player.filters = self.manager.default_filters(guild_id)  # the server's settings
            self.manager.players[guild_id] = player
            if player.queue.current is not None and player.channel_id and self.store.guild(guild_id).auto_resume:
                if present(guild_id):
                    self.manager.post(ev.Reschedule(guild_id))
        return len(self.manager.players)

    def save_all(self) -> None:
        for player in self.manager.players.values():
            self.manager.save(player)

    def forget_requester(self, user_id: int) -> int:
        """Replace `user_id` as requester with 0 in every live queue; returns queues changed."""
        changed = 0
        for player in self.manager.players.values():
            if forget_requester(player.queue, user_id):
                self.manager.save(player)
                changed += 1
        return changed


def forget_requester(queue: QueueModel, user_id: int) -> bool:
    """Replace `user_id` as requester with 0 everywhere in the queue; True if anything changed."""
    changed = False
    for track in [queue.current, *queue.upcoming, *queue.history]:
        if track is not None and track.requester_id == user_id:
            track.requester_id = 0
            changed = True
    return changed


def _stored_streams(queue: QueueModel) -> set[str]:
    """A stored stream URL is never opened as stored: it is looked up again through the same
    checks as a new `play` (network policy, extractor list), whatever the saved data says."""
    return {t.id for t in [queue.current, *queue.upcoming] if t is not None and t.stream_url}


def _head_is_starting(player: GuildPlayer) -> bool:
    """An idle player's start is posted, not done: until the advancer takes the head of the
    queue, that head is the track about to play, and a second `play` right behind the first
    (two members, or a busy advancer) must not claim it plays, nor give the head a turn."""
    return player.queue.current is None and player.state in (PlayerState.IDLE, PlayerState.BACKGROUND)


def _displace_autoplay(queue: QueueModel, tracks: list[Track]) -> None:
    """A member's tracks (anything not autoplay's own) take the place of pending autoplay picks:
    they play at the next track change, prefetched like any next track."""
    if any(not t.autoplay for t in tracks):
        queue.remove_where(lambda t: t.autoplay)


def _queue_edit(edit: Callable[[], Track]) -> Track:
    try:
        return edit()
    except QueueError as exc:
        raise ControlError(exc.sentence) from None

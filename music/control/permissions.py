"""Who may do what: the permission matrix of every intent, in one table.

The front door says who is asking (an ``Actor``, built from the Discord member); the control
layer checks the intent's rule before it changes anything. With no DJ role set, every listener
counts as a DJ. The README's permission table is generated from ``MATRIX`` and tested row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..i18n import _, deferred
from ..playlists.model import Scope, Where
from .errors import ControlError


@dataclass(frozen=True)
class Actor:
    """Who is asking. Built by the front door (chat: the author; RPC: the owner's tools)."""

    user_id: int
    privileged: bool = False  # holds the DJ role, or is a moderator, admin or the owner
    moderator: bool = False  # a moderator, admin or the owner: need not be in the voice channel
    admin: bool = False  # an admin (or Manage Server) or the owner
    listening: bool = True  # in the bot's voice channel, or the bot is in none
    system: bool = False  # the RPC API or autoplay: the owner's own tools, no checks
    owner: bool = False  # the bot owner: sees and cancels every server's lookups
    # how the bot's voice channel is named to this actor in a refusal (a channel mention)
    voice_channel: str = "the voice channel"

    @classmethod
    def system_for(cls, user_id: int = 0, *, privileged: bool = False) -> Actor:
        """The owner's tools acting for `user_id` (their queue limits still apply)."""
        return cls(user_id=user_id, privileged=privileged, moderator=True, admin=True, system=True, owner=True)


class Rule(str, Enum):
    ANYONE = "anyone"
    LISTENER = "listener"  # in the bot's voice channel (moderators exempt)
    OWN_OR_DJ = "own track, or DJ"  # the target track's requester, or a DJ
    DJ_OR_REQUESTER = "DJ, or the current track's requester"
    VOTE = "DJ or requester at once; other listeners vote"
    DJ = "DJ"
    ADMIN = "admin"
    OWNER = "owner"
    # saved playlists: who may make one in a scope, and who may change one
    PLAYLIST_CREATE = "server: anyone, or DJs when a DJ role is set; user: yourself; global: owner"
    PLAYLIST_EDIT = "server: its author, DJ role holders, mods, admins; user: its member; global: owner"


class Intent(str, Enum):
    ENQUEUE = "play"
    SKIP = "skip"
    SKIP_TO = "skipto"
    PREVIOUS = "prev"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    SEEK = "seek"
    VOLUME = "volume"
    REPEAT = "repeat"
    SHUFFLE = "shuffle"
    SHUFFLE_ONCE = "queue shuffle"
    REMOVE = "queue remove"
    MOVE = "queue move"
    CLEAR = "queue clear"
    DISCONNECT = "disconnect"
    SUMMON = "summon"
    RESCHEDULE = "music reschedule"
    BACKGROUND = "musicset background"
    PLAYLIST_START = "playlist start"
    PLAYLIST_LIST = "playlist list"
    PLAYLIST_INFO = "playlist info"
    PLAYLIST_DOWNLOAD = "playlist download"
    PLAYLIST_SAVE = "playlist save"
    PLAYLIST_CREATE = "playlist create"
    PLAYLIST_UPLOAD = "playlist upload"
    PLAYLIST_COPY = "playlist copy"
    PLAYLIST_APPEND = "playlist append"
    PLAYLIST_REMOVE = "playlist remove"
    PLAYLIST_RENAME = "playlist rename"
    PLAYLIST_DEDUPE = "playlist dedupe"
    PLAYLIST_DELETE = "playlist delete"
    PLAYLIST_LIMITS = "musicset playlistlimits"
    IMPORT_AUDIO = "musicset import audio"
    # filters, the equalizer and loudness normalisation (control/filters.py)
    FILTER = "filter"
    EQ = "eq"
    EQ_SAVE = "eq save"
    EQ_DELETE = "eq delete"
    NORMALIZE = "musicset normalize"
    QUEUE_CLEAN = "queue clean"
    QUEUE_CLEANSELF = "queue cleanself"
    QUEUE_SEARCH = "queue search"
    QUEUE_DEDUPE = "queue dedupe"
    MAX_VOLUME = "musicset maxvolume"
    AUTOPLAY = "musicset autoplay"
    BLOCKLIST = "musicset blocklist"
    ALLOWLIST = "musicset allowlist"
    BLOCKLIST_GLOBAL = "musicset blocklist global"
    ALLOWLIST_GLOBAL = "musicset allowlist global"


MATRIX: dict[Intent, Rule] = {
    Intent.ENQUEUE: Rule.ANYONE,  # the server's queue limits apply (DJs skip the per-member one)
    Intent.SUMMON: Rule.ANYONE,  # moving the bot away from other listeners: moderators only
    Intent.SKIP: Rule.VOTE,
    Intent.REMOVE: Rule.OWN_OR_DJ,
    Intent.PAUSE: Rule.DJ_OR_REQUESTER,
    Intent.RESUME: Rule.DJ_OR_REQUESTER,
    Intent.SEEK: Rule.DJ_OR_REQUESTER,
    Intent.PREVIOUS: Rule.DJ_OR_REQUESTER,  # it ends the current track
    Intent.SKIP_TO: Rule.DJ,
    Intent.STOP: Rule.DJ,
    Intent.VOLUME: Rule.DJ,
    Intent.REPEAT: Rule.DJ,
    Intent.SHUFFLE: Rule.DJ,
    Intent.SHUFFLE_ONCE: Rule.DJ,
    Intent.MOVE: Rule.DJ,
    Intent.CLEAR: Rule.DJ,
    Intent.DISCONNECT: Rule.DJ,
    Intent.RESCHEDULE: Rule.ADMIN,
    Intent.BACKGROUND: Rule.ADMIN,
    Intent.PLAYLIST_START: Rule.ANYONE,  # as `play`: the server's queue limits apply to every entry
    Intent.PLAYLIST_LIST: Rule.ANYONE,
    Intent.PLAYLIST_INFO: Rule.ANYONE,
    Intent.PLAYLIST_DOWNLOAD: Rule.ANYONE,
    Intent.PLAYLIST_SAVE: Rule.PLAYLIST_CREATE,
    Intent.PLAYLIST_CREATE: Rule.PLAYLIST_CREATE,
    Intent.PLAYLIST_UPLOAD: Rule.PLAYLIST_CREATE,
    Intent.PLAYLIST_COPY: Rule.PLAYLIST_CREATE,  # into the target scope; anyone may read the source
    Intent.PLAYLIST_APPEND: Rule.PLAYLIST_EDIT,
    Intent.PLAYLIST_REMOVE: Rule.PLAYLIST_EDIT,
    Intent.PLAYLIST_RENAME: Rule.PLAYLIST_EDIT,
    Intent.PLAYLIST_DEDUPE: Rule.PLAYLIST_EDIT,
    Intent.PLAYLIST_DELETE: Rule.PLAYLIST_EDIT,
    Intent.PLAYLIST_LIMITS: Rule.ADMIN,  # the server's limit; the per-playlist, user and global ones: owner
    Intent.IMPORT_AUDIO: Rule.OWNER,
    Intent.FILTER: Rule.DJ,  # like the volume: everyone in the channel hears it
    Intent.EQ: Rule.DJ,
    Intent.EQ_SAVE: Rule.DJ,
    Intent.EQ_DELETE: Rule.DJ,
    Intent.NORMALIZE: Rule.ADMIN,
    Intent.QUEUE_SEARCH: Rule.ANYONE,
    Intent.QUEUE_CLEANSELF: Rule.ANYONE,  # only one's own tracks, even after leaving the channel
    Intent.QUEUE_CLEAN: Rule.DJ,
    Intent.QUEUE_DEDUPE: Rule.DJ,
    Intent.MAX_VOLUME: Rule.ADMIN,
    Intent.AUTOPLAY: Rule.ADMIN,
    Intent.BLOCKLIST: Rule.ADMIN,
    Intent.ALLOWLIST: Rule.ADMIN,
    Intent.BLOCKLIST_GLOBAL: Rule.OWNER,
    Intent.ALLOWLIST_GLOBAL: Rule.OWNER,
}

# What a refused member is told: "Only DJs can <action> here."
ACTIONS: dict[Intent, str] = {
    Intent.SKIP_TO: deferred._("skip ahead"),
    Intent.PREVIOUS: deferred._("go back a track"),
    Intent.PAUSE: deferred._("pause the music"),
    Intent.RESUME: deferred._("resume the music"),
    Intent.STOP: deferred._("stop the music"),
    Intent.SEEK: deferred._("seek"),
    Intent.VOLUME: deferred._("change the volume"),
    Intent.REPEAT: deferred._("change repeat"),
    Intent.SHUFFLE: deferred._("turn shuffle on or off"),
    Intent.SHUFFLE_ONCE: deferred._("shuffle the queue"),
    Intent.REMOVE: deferred._("remove other members' tracks"),
    Intent.MOVE: deferred._("move tracks"),
    Intent.CLEAR: deferred._("clear the queue"),
    Intent.DISCONNECT: deferred._("disconnect me"),
    Intent.FILTER: deferred._("change the filters"),
    Intent.EQ: deferred._("change the equalizer"),
    Intent.EQ_SAVE: deferred._("save equalizer presets"),
    Intent.EQ_DELETE: deferred._("delete equalizer presets"),
    Intent.QUEUE_CLEAN: deferred._("clean the queue"),
    Intent.QUEUE_DEDUPE: deferred._("remove duplicates from the queue"),
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    vote: bool = False  # VOTE: the actor may only vote
    sentence: str = ""


def judge(
    intent: Intent,
    actor: Actor,
    *,
    dj_mode: bool,
    requester_id: int | None = None,
    where: Where | None = None,
) -> Verdict:
    """Whether `actor` may carry out `intent`. `requester_id`: who queued the track concerned
    (the current one, or the target of `queue remove`), or a saved playlist's author; `where`:
    a saved playlist's scope (None: this server's); `dj_mode`: a DJ role is set."""
    rule = MATRIX[intent]
    if actor.system or rule is Rule.ANYONE:
        return Verdict(True)
    if rule is Rule.ADMIN:
        return Verdict(actor.admin, sentence=_("Only admins can do that here."))
    if rule is Rule.OWNER:
        return Verdict(actor.owner, sentence=_("Only the bot owner can do that."))
    if rule in (Rule.PLAYLIST_CREATE, Rule.PLAYLIST_EDIT):
        return _judge_playlist(rule, actor, dj_mode=dj_mode, author_id=requester_id, where=where)
    if not (actor.listening or actor.moderator):
        return Verdict(False, sentence=_("Join {voice_channel} to control the music.").format(voice_channel=actor.voice_channel))
    is_dj = actor.privileged or not dj_mode
    own = requester_id is not None and requester_id == actor.user_id
    if rule is Rule.LISTENER or is_dj:
        return Verdict(True)
    if rule in (Rule.OWN_OR_DJ, Rule.DJ_OR_REQUESTER) and own:
        return Verdict(True)
    if rule is Rule.VOTE:
        return Verdict(True, vote=not own)
    return Verdict(False, sentence=_("Only DJs can {intent} here.").format(intent=_(ACTIONS[intent]) if intent in ACTIONS else _("do that")))


def _judge_playlist(rule: Rule, actor: Actor, *, dj_mode: bool, author_id: int | None,
                    where: Where | None) -> Verdict:
    """Saved playlists need no voice channel: the scope decides. The owner may do anything."""
    scope = where.scope if where is not None else Scope.SERVER
    if actor.owner:
        return Verdict(True)
    if scope is Scope.GLOBAL:
        return Verdict(False, sentence=_("Only the bot owner can change global playlists."))
    if scope is Scope.USER:
        assert where is not None
        return Verdict(actor.user_id == where.scope_id,
                       sentence=_("That is another member's own playlist scope: only they can change it."))
    if rule is Rule.PLAYLIST_CREATE:
        return Verdict(actor.privileged or not dj_mode,
                       sentence=_("Only DJs can make server playlists here; `--scope user` makes your own."))
    return Verdict(actor.privileged or (author_id is not None and author_id == actor.user_id),
                   sentence=_("Only its author, DJs, mods and admins can change that playlist."))


def require(intent: Intent, actor: Actor, *, dj_mode: bool, requester_id: int | None = None,
            where: Where | None = None) -> Verdict:
    """`judge`, raising ControlError when refused."""
    verdict = judge(intent, actor, dj_mode=dj_mode, requester_id=requester_id, where=where)
    if not verdict.allowed:
        raise ControlError(verdict.sentence)
    return verdict

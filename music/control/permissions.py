"""Who may do what: the permission matrix of every intent, in one table.

The front door says who is asking (an ``Actor``, built from the Discord member); the control
layer checks the intent's rule before it changes anything. With no DJ role set, every listener
counts as a DJ. The README's permission table is generated from ``MATRIX`` and tested row by row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

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
}

# What a refused member is told: "Only DJs can <action> here."
ACTIONS: dict[Intent, str] = {
    Intent.SKIP_TO: "skip ahead",
    Intent.PREVIOUS: "go back a track",
    Intent.PAUSE: "pause the music",
    Intent.RESUME: "resume the music",
    Intent.STOP: "stop the music",
    Intent.SEEK: "seek",
    Intent.VOLUME: "change the volume",
    Intent.REPEAT: "change repeat",
    Intent.SHUFFLE: "turn shuffle on or off",
    Intent.SHUFFLE_ONCE: "shuffle the queue",
    Intent.REMOVE: "remove other members' tracks",
    Intent.MOVE: "move tracks",
    Intent.CLEAR: "clear the queue",
    Intent.DISCONNECT: "disconnect me",
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
) -> Verdict:
    """Whether `actor` may carry out `intent`. `requester_id`: who queued the track concerned
    (the current one, or the target of `queue remove`); `dj_mode`: a DJ role is set."""
    rule = MATRIX[intent]
    if actor.system or rule is Rule.ANYONE:
        return Verdict(True)
    if rule is Rule.ADMIN:
        return Verdict(actor.admin, sentence="Only admins can do that here.")
    if not (actor.listening or actor.moderator):
        return Verdict(False, sentence=f"Join {actor.voice_channel} to control the music.")
    is_dj = actor.privileged or not dj_mode
    own = requester_id is not None and requester_id == actor.user_id
    if rule is Rule.LISTENER or is_dj:
        return Verdict(True)
    if rule in (Rule.OWN_OR_DJ, Rule.DJ_OR_REQUESTER) and own:
        return Verdict(True)
    if rule is Rule.VOTE:
        return Verdict(True, vote=not own)
    return Verdict(False, sentence=f"Only DJs can {ACTIONS.get(intent, 'do that')} here.")


def require(intent: Intent, actor: Actor, *, dj_mode: bool, requester_id: int | None = None) -> Verdict:
    """`judge`, raising ControlError when refused."""
    verdict = judge(intent, actor, dj_mode=dj_mode, requester_id=requester_id)
    if not verdict.allowed:
        raise ControlError(verdict.sentence)
    return verdict

"""What each "Now playing" button does: ONE control-layer intent, the same one its command calls,
so a click obeys the same permission and vote rules. No discord.py here: the cog builds the
Actor from the clicking member and turns the Answer into an interaction response."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from ..control import ControlError, Intent
from ..formatting import track_line
from ..i18n import _, deferred

if TYPE_CHECKING:
    from ..control import Actor, MusicControl

CUSTOM_ID_PREFIX = "music:np:"  # fixed ids: a click on a message posted before a reload still reaches us


class Action(str, Enum):
    PREVIOUS = "previous"
    PAUSE = "pause"
    RESUME = "resume"
    SKIP = "skip"
    STOP = "stop"
    SHUFFLE = "shuffle"
    REPEAT = "repeat"
    QUEUE = "queue"


# The intent each button calls (None: only reads). tests/unit/test_ui_controls.py checks that
# pressing a button is judged exactly like the command of that intent.
INTENTS: dict[Action, Intent | None] = {
    Action.PREVIOUS: Intent.PREVIOUS,
    Action.PAUSE: Intent.PAUSE,
    Action.RESUME: Intent.RESUME,
    Action.SKIP: Intent.SKIP,
    Action.STOP: Intent.STOP,
    Action.SHUFFLE: Intent.SHUFFLE,
    Action.REPEAT: Intent.REPEAT,
    Action.QUEUE: None,  # the queue, shown to the clicker alone: anyone may look
}
ENDS_TRACK = frozenset({Action.PREVIOUS, Action.SKIP, Action.STOP})
REPEAT_CYCLE = {"off": "track", "track": "queue", "queue": "off"}
ALREADY_ENDING = deferred._("That track is already ending; nothing more was done.")
TRACK_ENDED = deferred._("That track already ended; use the latest \"Now playing\" message.")


def custom_id(action: Action) -> str:
    return CUSTOM_ID_PREFIX + action.value


def action_of(custom_id: str | None) -> Action | None:
    if not custom_id or not custom_id.startswith(CUSTOM_ID_PREFIX):
        return None
    try:
        return Action(custom_id[len(CUSTOM_ID_PREFIX):])
    except ValueError:
        return None


@dataclass(frozen=True)
class Answer:
    """How a click is answered."""

    text: str = ""
    private: bool = False  # only the clicker sees it: refusals, vote counts
    update: bool = False  # the live message shows the change: the answer edits it
    paused: bool | None = None  # what the message should show (the player pauses a moment later)
    retire: bool = False  # stop: the message says so and loses its buttons
    ending: bool = False  # it ended the shown track: a second click must not end the next one


def press(control: MusicControl, guild_id: int, actor: Actor, action: Action, *,
          listeners: frozenset[int], mention: str) -> Answer:
    """Carry out `action` for `actor` through the control layer; a refusal is the control
    layer's own sentence, for the clicker alone."""
    try:
        return _press(control, guild_id, actor, action, listeners, mention)
    except ControlError as exc:
        return Answer(exc.sentence, private=True)


def _press(control: MusicControl, guild_id: int, actor: Actor, action: Action,
           listeners: frozenset[int], mention: str) -> Answer:
    if action is Action.PAUSE:
        control.pause(guild_id, actor)
        return Answer(update=True, paused=True)
    if action is Action.RESUME:
        control.resume(guild_id, actor)
        return Answer(update=True, paused=False)
    if action is Action.SHUFFLE:
        control.set_shuffle(guild_id, actor)
        return Answer(update=True)
    if action is Action.REPEAT:
        current = control.player(guild_id).queue.repeat.value
        control.set_repeat(guild_id, actor, REPEAT_CYCLE.get(current, "off"))
        return Answer(update=True)
    if action is Action.SKIP:
        outcome = control.skip(guild_id, actor, listeners=listeners)
        if not outcome.skipped:
            return Answer(_("Vote to skip counted: {votes}/{needed}.").format(votes=outcome.votes, needed=outcome.needed), private=True)
        if outcome.needed:
            return Answer(_("Vote passed ({votes}/{needed}): skipped {track}.").format(votes=outcome.votes, needed=outcome.needed, track=track_line(outcome.track)),
                          ending=True)
        return Answer(_("{mention} skipped {track}.").format(mention=mention, track=track_line(outcome.track)), ending=True)
    if action is Action.PREVIOUS:
        track = control.previous(guild_id, actor)
        return Answer(_("{mention} went back to {track}.").format(mention=mention, track=track_line(track)), ending=True)
    if action is Action.STOP:
        control.stop(guild_id, actor)
        return Answer(_("{mention} stopped the music and cleared the queue.").format(mention=mention), retire=True, ending=True)
    raise ControlError(_("That button does nothing here."))  # QUEUE is shown by the cog

"""The live "Now playing" message of each guild, without Discord: what it shows and when the
next edit may go out. The cog posts, edits and retires the messages; this module decides.

One live message per guild. Edits are coalesced: whatever changed since the last edit (the
position bar moves every second) goes out in ONE edit, at most one per LIVE_EDIT_INTERVAL."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..engine.timefmt import format_duration, progress_bar
from ..i18n import _

# Discord allows about 5 message edits per 5 s in a channel, shared with every reply the bot
# sends there, and answers 429 beyond it (discord.py then sleeps, delaying those replies). One
# edit every 5 s uses at most a fifth of that bucket per guild, and a position bar that moves
# every 5 s still reads as live. Changes made by a click skip the wait: the click's own answer
# edits the message (an interaction callback, outside the channel's bucket).
LIVE_EDIT_INTERVAL = 5.0
# A live message whose track ended while no new announcement came (notify turned off, the bot
# left voice) loses its buttons after this long, so nobody clicks controls of a finished track.
RETIRE_AFTER = 10.0
BAR_WIDTH = 16


@dataclass(frozen=True)
class NowPlayingFacts:
    """What the message shows, read from the player by the cog. Text fields are already safe."""

    track_id: str
    title_line: str  # `**Title** (3:07)`, escaped
    position: float
    duration: float | None
    requester_id: int | None
    autoplay: bool = False
    paused: bool = False
    is_live: bool = False
    repeat: str = "off"
    shuffle: bool = False


def render(facts: NowPlayingFacts) -> str:
    """The message's text. The first line starts with "Now playing:" as the plain announcement
    always did (members and tests know it); the second line is the part that moves."""
    if facts.autoplay:
        who = _(" (autoplay)")
    elif facts.requester_id:
        who = _(" (asked for by <@{requester_id}>)").format(requester_id=facts.requester_id)
    else:
        who = ""
    head = _("Now playing: {title_line}{who}").format(title_line=facts.title_line, who=who)
    if facts.duration and not facts.is_live:
        timing = f"`{progress_bar(facts.position, facts.duration, width=BAR_WIDTH)}` " \
                 f"{format_duration(facts.position)} / {format_duration(facts.duration)}"
    else:
        timing = (_("{position} / live") if facts.is_live else _("{position} / ?")).format(position=format_duration(facts.position))
    state = [_("paused")] if facts.paused else []
    state += [_("repeat {repeat}").format(repeat=facts.repeat), (_("shuffle on") if facts.shuffle else _("shuffle off"))]
    return f"{head}\n{timing} · {' · '.join(state)}"


@dataclass
class LiveMessage:
    channel_id: int
    message_id: int
    track_id: str | None  # the track it announced (None: adopted after a reload, unknown)
    shown: str  # the text Discord has now
    shown_at: float  # when that text was sent (monotonic seconds)
    ending: bool = False  # a click skipped, went back or stopped: further ones would end the next track
    in_flight: bool = False  # an edit is on its way; the next waits for it
    mismatch_since: float | None = None  # since when the player plays another track, or none


class Step(Enum):
    WAIT = "wait"
    EDIT = "edit"
    RETIRE = "retire"  # edit once more without buttons, then forget it


@dataclass(frozen=True)
class Decision:
    step: Step
    text: str = ""


class LiveMessages:
    """Per guild, the live message and the rules for editing it."""

    def __init__(self, interval: float = LIVE_EDIT_INTERVAL, retire_after: float = RETIRE_AFTER) -> None:
        self.interval = interval
        self.retire_after = retire_after
        self._live: dict[int, LiveMessage] = {}

    def get(self, guild_id: int) -> LiveMessage | None:
        return self._live.get(guild_id)

    def guilds(self) -> list[int]:
        return list(self._live)

    def is_live(self, guild_id: int, message_id: int) -> bool:
        live = self._live.get(guild_id)
        return live is not None and live.message_id == message_id

    def posted(self, guild_id: int, channel_id: int, message_id: int, track_id: str | None,
               text: str, now: float) -> None:
        """A new live message went out; it replaces the guild's previous one (see `replace`)."""
        self._live[guild_id] = LiveMessage(channel_id, message_id, track_id, text, now)

    def replace(self, guild_id: int) -> LiveMessage | None:
        """Forget the guild's live message before a new one is posted; the caller retires it."""
        return self._live.pop(guild_id, None)

    def adopt(self, guild_id: int, channel_id: int, message_id: int, text: str, now: float) -> LiveMessage:
        """After a reload the cog knows no live message; the first clicked one with our buttons
        becomes it (it can only be the latest: an announcement deletes the one before)."""
        live = self._live.get(guild_id)
        if live is None:
            live = self._live[guild_id] = LiveMessage(channel_id, message_id, None, text, now)
        return live

    def shown(self, guild_id: int, text: str, now: float) -> None:
        """A click's answer edited the live message: that counts as the latest edit."""
        live = self._live.get(guild_id)
        if live is not None:
            live.shown, live.shown_at = text, now

    def decide(self, guild_id: int, facts: NowPlayingFacts | None, now: float) -> Decision:
        """What to do with the guild's live message now, given what the player plays (None:
        nothing). Marks an edit as in flight: call `done` when it finished (or failed)."""
        live = self._live.get(guild_id)
        if live is None or live.in_flight:
            return Decision(Step.WAIT)
        if facts is None or (live.track_id is not None and facts.track_id != live.track_id):
            # the track ended; its successor's announcement normally replaces this message soon
            if live.mismatch_since is None:
                live.mismatch_since = now
            if now - live.mismatch_since < self.retire_after:
                return Decision(Step.WAIT)
            live.in_flight = True
            return Decision(Step.RETIRE, live.shown)
        live.mismatch_since = None
        if live.track_id is None:
            live.track_id = facts.track_id
        text = render(facts)
        if text == live.shown or now - live.shown_at < self.interval:
            return Decision(Step.WAIT)
        live.in_flight = True
        live.shown, live.shown_at = text, now
        return Decision(Step.EDIT, text)

    def done(self, guild_id: int, decision: Decision, *, ok: bool) -> None:
        """The edit `decide` asked for finished. A retired message is forgotten either way (a
        deleted message cannot be edited again); a failed edit is tried again next time."""
        live = self._live.get(guild_id)
        if live is None:
            return
        live.in_flight = False
        if decision.step is Step.RETIRE:
            self._live.pop(guild_id, None)
        elif not ok:
            live.shown = ""  # differs from any text: the next decide edits again

    def mark_ending(self, guild_id: int) -> bool:
        """A click ends the shown track; False when one already did (a double click)."""
        live = self._live.get(guild_id)
        if live is None:
            return True
        if live.ending:
            return False
        live.ending = True
        return True

    def forget(self, guild_id: int) -> LiveMessage | None:
        return self._live.pop(guild_id, None)

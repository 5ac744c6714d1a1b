"""The "Now playing" buttons (music/ui/controls.py) on the real control layer over fake ports:
each button is judged exactly like its command (every role, with and without a DJ role), a
refusal is the control layer's own sentence for the clicker alone, a non-DJ's skip is a vote
counted once per member, and the custom ids survive a reload (fixed strings)."""

from __future__ import annotations

import pytest

from music.control import Actor, Intent, judge
from music.engine.queue import RepeatMode
from music.player import PlayerState
from music.player import events as ev
from music.ui.controls import (
    ENDS_TRACK,
    INTENTS,
    REPEAT_CYCLE,
    Action,
    action_of,
    custom_id,
    press,
)
from tests.support.fakeplayer import GUILD
from tests.unit.test_control import REQUESTER, ROLES, control_for, tracks

DJ_ROLE = 99
LISTENERS = frozenset({2, 3, 4, 5, 6, 8, REQUESTER})


def playing_rig(**settings):
    """A player with a current track queued by REQUESTER, one before it and two after it."""
    rig, control, store = control_for(**settings)
    player = control.player(GUILD)
    player.queue.add(tracks("earlier", requester=REQUESTER))
    player.queue.advance()
    player.queue.add(tracks("current", "next", "later", requester=REQUESTER))
    player.queue.advance()
    player.state = PlayerState.PLAYING
    return rig, control


def press_as(control, actor: Actor, action: Action):
    return press(control, GUILD, actor, action, listeners=LISTENERS, mention=f"<@{actor.user_id}>")


def test_every_action_has_a_fixed_custom_id_and_an_intent_entry():
    assert set(INTENTS) == set(Action)
    for action in Action:
        assert action_of(custom_id(action)) is action
        assert custom_id(action).startswith("music:np:")
    assert action_of("music:np:nonsense") is None and action_of("other:skip") is None and action_of(None) is None
    assert ENDS_TRACK == {Action.SKIP, Action.PREVIOUS, Action.STOP}


@pytest.mark.parametrize("dj_mode", [True, False], ids=["dj role", "no dj role"])
@pytest.mark.parametrize("action", [a for a in Action if INTENTS[a] is not None], ids=lambda a: a.value)
@pytest.mark.parametrize("role", list(ROLES), ids=str)
async def test_a_button_is_judged_like_its_command(action: Action, role: str, dj_mode: bool):
    rig, control = playing_rig(**({"dj_role": DJ_ROLE} if dj_mode else {}))
    if action is Action.RESUME:
        control.player(GUILD).state = PlayerState.PAUSED
    actor = ROLES[role]
    intent = INTENTS[action]
    assert isinstance(intent, Intent)
    verdict = judge(intent, actor, dj_mode=dj_mode, requester_id=REQUESTER)
    answer = press_as(control, actor, action)
    if not verdict.allowed:
        assert answer.private and answer.text == verdict.sentence  # the control layer's sentence
        assert rig.manager.events.empty()  # and nothing changed
    elif verdict.vote:
        assert answer.private and answer.text.startswith("Vote to skip counted: 1/")
        assert rig.manager.events.empty()
    else:
        assert not answer.private, answer.text
        assert answer.update or answer.ending


async def test_pause_resume_shuffle_and_repeat_update_the_message_with_what_it_should_show():
    rig, control = playing_rig()
    dj = ROLES["dj"]
    paused = press_as(control, dj, Action.PAUSE)
    assert paused.update and paused.paused is True
    assert isinstance(rig.manager.events.get_nowait(), ev.Pause)
    control.player(GUILD).state = PlayerState.PAUSED  # what the advancer does with the event
    assert press_as(control, dj, Action.PAUSE).text == "Already paused; use `resume`."
    assert press_as(control, dj, Action.RESUME).paused is False
    assert press_as(control, dj, Action.SHUFFLE).update and control.player(GUILD).queue.shuffle
    seen = []
    for _ in range(3):
        assert press_as(control, dj, Action.REPEAT).update
        seen.append(control.player(GUILD).queue.repeat.value)
    assert seen == ["track", "queue", "off"] and set(REPEAT_CYCLE) == {m.value for m in RepeatMode}


async def test_a_dj_skip_ends_the_track_and_says_who():
    rig, control = playing_rig(dj_role=DJ_ROLE)
    answer = press_as(control, ROLES["dj"], Action.SKIP)
    assert answer.ending and not answer.private
    assert answer.text == "<@4> skipped **current** (3:00)."
    assert isinstance(rig.manager.events.get_nowait(), ev.Skip)


async def test_listeners_skip_by_vote_once_each_and_the_share_passes_it():
    rig, control = playing_rig(dj_role=DJ_ROLE, vote_percent=50)
    listeners = frozenset({11, 12, 13, 14})  # 4 listeners at 50%: 2 votes
    first = press(control, GUILD, Actor(user_id=11), Action.SKIP, listeners=listeners, mention="<@11>")
    twice = press(control, GUILD, Actor(user_id=11), Action.SKIP, listeners=listeners, mention="<@11>")
    assert (first.text, twice.text) == ("Vote to skip counted: 1/2.", "Vote to skip counted: 1/2.")
    assert first.private and not first.ending and rig.manager.events.empty()
    passed = press(control, GUILD, Actor(user_id=12), Action.SKIP, listeners=listeners, mention="<@12>")
    assert passed.text == "Vote passed (2/2): skipped **current** (3:00)." and passed.ending
    assert isinstance(rig.manager.events.get_nowait(), ev.Skip)


async def test_stop_retires_the_message_and_back_goes_back():
    rig, control = playing_rig()
    back = press_as(control, ROLES["dj"], Action.PREVIOUS)
    assert back.text == "<@4> went back to **earlier** (3:00)." and back.ending
    assert isinstance(rig.manager.events.get_nowait(), ev.Previous)
    stop = press_as(control, ROLES["dj"], Action.STOP)
    assert stop.retire and stop.text == "<@4> stopped the music and cleared the queue."


async def test_nothing_playing_is_a_sentence_not_an_error():
    rig, control = playing_rig()
    control.player(GUILD).queue.current = None
    for action in (Action.PAUSE, Action.SKIP):
        answer = press_as(control, ROLES["dj"], action)
        assert answer.private and answer.text == "Nothing is playing."


async def test_the_registered_view_answers_every_button_and_a_shown_one_is_not_kept():
    from music.ui.views import NowPlayingControls, display_controls

    async def pressed(interaction, action):
        return None

    registered = NowPlayingControls(pressed)
    assert registered.is_persistent() and registered.timeout is None  # what bot.add_view needs
    assert sorted(i.custom_id for i in registered.children) == sorted(custom_id(a) for a in Action)
    playing = display_controls(paused=False, shuffle=True, repeat="track")
    paused = display_controls(paused=True, shuffle=False, repeat="off")
    ids = [i.custom_id for i in playing.children]
    assert custom_id(Action.PAUSE) in ids and custom_id(Action.RESUME) not in ids
    assert custom_id(Action.RESUME) in [i.custom_id for i in paused.children]
    labels = {i.custom_id: i.label for i in playing.children}
    assert labels[custom_id(Action.SHUFFLE)] == "Shuffle: on" and labels[custom_id(Action.REPEAT)] == "Repeat: track"
    # stopped before sending: discord.py stores no view per message (the registered one answers)
    assert playing.is_finished() and paused.is_finished()

"""The live "Now playing" scheduler (music/ui/live.py): what the message shows, and that edits
are coalesced to at most one per interval per guild, retire a finished track's message, and
never overlap. No Discord: the clock is a number."""

from __future__ import annotations

import dataclasses

from music.ui.live import LIVE_EDIT_INTERVAL, LiveMessages, NowPlayingFacts, Step, render
from tests.unit.test_imports_without_discord import run_blocked

GUILD, OTHER = 1, 2


def facts(position: float = 0.0, **changes) -> NowPlayingFacts:
    base = NowPlayingFacts(track_id="t1", title_line="**a440** (0:30)", position=position, duration=30.0,
                           requester_id=42)
    return dataclasses.replace(base, **changes)


def posted(live: LiveMessages, guild: int = GUILD, at: float = 0.0) -> None:
    live.posted(guild, channel_id=10, message_id=100 + guild, track_id="t1", text=render(facts()), now=at)


def test_the_text_starts_like_the_old_announcement_and_shows_where_and_who():
    text = render(facts(position=15.0))
    head, line = text.split("\n")
    assert head == "Now playing: **a440** (0:30) (asked for by <@42>)"
    assert "0:15 / 0:30" in line and "repeat off" in line and "shuffle off" in line
    assert "paused" in render(facts(paused=True)).split("\n")[1]
    assert render(facts(autoplay=True)).startswith("Now playing: **a440** (0:30) (autoplay)")
    assert "0:03 / live" in render(facts(position=3, duration=None, is_live=True))


def test_edits_are_coalesced_to_one_per_interval_per_guild():
    live = LiveMessages()
    posted(live, GUILD, at=0.0)
    posted(live, OTHER, at=0.0)
    edits: list[tuple[float, int]] = []
    # the monitor looks every second for a minute; the position changes every time
    for second in range(1, 61):
        for guild in (GUILD, OTHER):
            decision = live.decide(guild, facts(position=float(second)), float(second))
            if decision.step is Step.EDIT:
                edits.append((float(second), guild))
                live.done(guild, decision, ok=True)
    for guild in (GUILD, OTHER):
        times = [t for t, g in edits if g == guild]
        gaps = [b - a for a, b in zip([0.0, *times], times)]
        assert min(gaps) >= LIVE_EDIT_INTERVAL
        assert len(times) == 60 // int(LIVE_EDIT_INTERVAL)  # and it does keep the bar moving


def test_nothing_changed_means_no_edit():
    live = LiveMessages()
    posted(live)
    paused = facts(position=3.0, paused=True)
    first = live.decide(GUILD, paused, 10.0)
    assert first.step is Step.EDIT
    live.done(GUILD, first, ok=True)
    assert live.decide(GUILD, paused, 30.0).step is Step.WAIT  # paused: the same text


def test_an_edit_in_flight_holds_the_next_and_a_failed_one_is_retried():
    live = LiveMessages()
    posted(live)
    first = live.decide(GUILD, facts(position=6.0), 6.0)
    assert first.step is Step.EDIT
    assert live.decide(GUILD, facts(position=20.0), 20.0).step is Step.WAIT  # still in flight
    live.done(GUILD, first, ok=False)
    again = live.decide(GUILD, facts(position=21.0), 21.0)
    assert again.step is Step.EDIT and "0:21" in again.text


def test_a_click_s_own_edit_counts_as_the_latest():
    live = LiveMessages()
    posted(live)
    live.shown(GUILD, render(facts(position=9.0, shuffle=True)), 9.0)
    assert live.decide(GUILD, facts(position=12.0, shuffle=True), 12.0).step is Step.WAIT
    assert live.decide(GUILD, facts(position=14.0, shuffle=True), 14.0).step is Step.EDIT


def test_a_finished_track_s_message_is_retired_unless_the_next_announcement_comes_first():
    live = LiveMessages(retire_after=10.0)
    posted(live)
    other_track = facts(track_id="t2")
    assert live.decide(GUILD, other_track, 5.0).step is Step.WAIT  # the next one is loading
    assert live.decide(GUILD, other_track, 14.0).step is Step.WAIT
    retire = live.decide(GUILD, other_track, 15.0)
    assert retire.step is Step.RETIRE and retire.text.startswith("Now playing: **a440**")
    live.done(GUILD, retire, ok=True)
    assert live.get(GUILD) is None
    # the queue ended: retired as well; an announcement in time replaces it instead
    posted(live, at=20.0)
    assert live.decide(GUILD, None, 21.0).step is Step.WAIT
    assert live.replace(GUILD) is not None and live.get(GUILD) is None


def test_one_live_message_per_guild_and_only_it_is_live():
    live = LiveMessages()
    posted(live)
    assert live.is_live(GUILD, 101) and not live.is_live(GUILD, 999) and not live.is_live(OTHER, 101)
    previous = live.replace(GUILD)
    assert previous is not None and previous.message_id == 101
    live.posted(GUILD, 10, 555, "t2", "x", 1.0)
    assert live.is_live(GUILD, 555) and not live.is_live(GUILD, 101)
    # adopting (after a reload) never displaces a known live message
    assert live.adopt(GUILD, 10, 101, "old", 2.0).message_id == 555


def test_a_second_ending_click_is_caught():
    live = LiveMessages()
    posted(live)
    assert live.mark_ending(GUILD) is True
    assert live.mark_ending(GUILD) is False
    live.posted(GUILD, 10, 200, "t2", "x", 1.0)  # the next track's message starts fresh
    assert live.mark_ending(GUILD) is True


def test_the_scheduler_imports_without_discord():
    result = run_blocked("music.ui.live")
    assert result.returncode == 0, result.stderr

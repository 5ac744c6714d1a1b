"""Autoplay through the player's transitions and the control layer, on fake ports: when the
player asks, what the control layer picks and queues (with every rule), the gapless change to
the pick, a member's track taking over at the next change, stop, failures and sentences."""

from __future__ import annotations

import random

import pytest

from music.control import Actor, ControlError
from music.engine.autoplay import (
    RECENT_LIMIT,
    playlist_order,
    recent_keys,
    related_order,
    related_url,
)
from music.engine.track import Track
from music.player import PlayerState
from music.player import events as ev
from tests.support.fakeplayer import GUILD, FakeVC
from tests.support.fakeplayer import tracks as _tracks
from tests.unit.test_control import ROLES, control_for

ADMIN = ROLES["admin"]
MEMBER = Actor(user_id=9)
FIVE = ("c1", "c2", "c3", "c4", "c5")


def tracks(*titles: str) -> list[Track]:
    return _tracks(*titles, duration=20.0)  # inside the prefetch window: the next opens at once


class FakeSource:
    """Saved playlists by name (AutoplaySource)."""

    def __init__(self, **playlists: list[Track]) -> None:
        self.playlists = playlists

    async def entries(self, guild_id: int, name: str) -> list[Track] | None:
        found = self.playlists.get(name)
        return None if found is None else [t.copy() for t in found]


class FakeRelated:
    def __init__(self, found: list[Track] | None = None, error: str | None = None) -> None:
        self.found, self.error = found or [], error
        self.asked: list[str] = []

    async def related(self, guild_id: int, seed: Track) -> list[Track]:
        self.asked.append(seed.title)
        if self.error:
            raise ControlError(self.error)
        return list(self.found)


def rig_with_autoplay(*, related: FakeRelated | None = None, **settings):
    rig, control, store = control_for(**settings)
    for name, value in vars(rig.settings).items():  # the player's own settings (notify, ...)
        vars(store.settings).setdefault(name, value)
    control.autoplay.source = FakeSource(five=tracks(*FIVE), one=tracks("solo"))
    control.autoplay.related = related or FakeRelated()
    control.autoplay.rng = random.Random(7)
    rig.manager.autoplay = control.autoplay
    rig.voice.vcs[GUILD] = FakeVC()
    control.player(GUILD).channel_id = 10
    return rig, control, store


def now_and_next(control) -> tuple[str | None, list[str]]:
    queue = control.player(GUILD).queue
    return (queue.current.title if queue.current else None), [t.title for t in queue.upcoming]


async def track_change(rig, control) -> None:
    """The current stream ends as the chain source plays it: a gapless switch if prefetched."""
    player = control.player(GUILD)
    source = rig.audio.sources[-1]
    if source.next is not None:
        source.switch_to_next()
    rig.manager.post(ev.TrackEnded(GUILD, player.queue.current.id))
    await rig.settle()


# -- the picks (engine) ------------------------------------------------------------------------


def test_a_short_playlist_plays_every_song_before_one_comes_back():
    entries = tracks(*FIVE)
    rng, heard = random.Random(3), []
    for _ in range(15):
        heard.append(playlist_order(entries, [t.song_key() for t in heard], rng)[0])
    titles = [t.title for t in heard]
    for start in range(0, 15, 5):
        assert sorted(titles[start : start + 5]) == sorted(FIVE), titles


def test_a_long_playlist_repeats_none_of_the_last_ten():
    entries = tracks(*(f"s{n}" for n in range(30)))
    rng, heard = random.Random(5), []
    for _ in range(200):
        pick = playlist_order(entries, [t.song_key() for t in heard], rng)[0]
        assert pick.title not in {t.title for t in heard[-RECENT_LIMIT:]}
        heard.append(pick)
    assert len({t.title for t in heard}) == 30


def test_one_song_and_duplicate_entries_still_give_a_pick():
    solo = tracks("solo")
    assert [t.title for t in playlist_order(solo, [solo[0].song_key()] * 3, random.Random())] == ["solo"]
    doubled = tracks("a", "a", "b")
    assert sorted(t.title for t in playlist_order(doubled, [], random.Random())) == ["a", "b"]


def test_related_keeps_the_site_order_without_recent_songs():
    found = tracks("seed", "r1", "r2")
    recent = recent_keys(tracks("x"), found[0], [])
    assert [t.title for t in related_order(found, recent)] == ["r1", "r2"]


@pytest.mark.parametrize("page, url", [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=10", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=RDdQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=RDdQw4w9WgXcQ"),
    ("https://music.youtube.com/watch?v=abc_-1", "https://www.youtube.com/watch?v=abc_-1&list=RDabc_-1"),
    ("https://soundcloud.com/artist/a-track", "https://soundcloud.com/artist/a-track/recommended"),
    ("https://soundcloud.com/artist/sets", None),
    ("https://www.youtube.com/watch?v=bad%20id", None),
    ("http://127.0.0.1:8000/media/a440.webm", None),
    ("local/file.mp3", None),
])
def test_the_related_link_of_a_track(page: str, url: str | None):
    assert related_url(Track(query=page, title="t", webpage_url=page)) == url


# -- the player asks, the control layer queues -------------------------------------------------


async def test_autoplay_on_an_idle_player_in_voice_plays_the_playlist_gaplessly():
    rig, control, _ = rig_with_autoplay()
    mode, playlist = await control.autoplay.set_mode(GUILD, ADMIN, "five")
    assert (mode, playlist) == ("playlist", "five")
    await rig.settle()
    player = control.player(GUILD)
    current, upcoming = now_and_next(control)
    assert player.state is PlayerState.PLAYING and current in FIVE and len(upcoming) == 1
    assert player.queue.current.autoplay and player.queue.current.requester_id == 0
    source = rig.audio.sources[-1]
    assert source.next is not None and source.next.track_id == player.queue.upcoming[0].id  # prefetched
    played = [current]
    for _ in range(4):
        await track_change(rig, control)
        played.append(now_and_next(control)[0])
    assert sorted(played) == sorted(FIVE)  # no repeat within a five-song playlist
    assert len(rig.audio.sources) == 1  # every change was a switch inside the same chain source
    assert rig.announced == played


async def test_a_member_s_track_takes_over_at_the_next_change_then_autoplay_resumes():
    rig, control, _ = rig_with_autoplay()
    await control.autoplay.set_mode(GUILD, ADMIN, "five")
    await rig.settle()
    player = control.player(GUILD)
    autoplaying = player.queue.current.title
    mine = control.enqueue(GUILD, MEMBER, tracks("mine")).tracks[0]
    await rig.settle()
    assert now_and_next(control) == (autoplaying, ["mine"])  # the pending pick made way
    assert rig.audio.sources[-1].next.track_id == mine.id  # and the prefetch follows
    await track_change(rig, control)
    assert now_and_next(control)[0] == "mine" and not player.queue.current.autoplay
    _, upcoming = now_and_next(control)
    assert len(upcoming) == 1 and upcoming[0] in FIVE and upcoming[0] != autoplaying
    assert len(rig.audio.sources) == 1


async def test_a_pick_that_a_member_beat_is_not_queued():
    rig, control, _ = rig_with_autoplay()
    await control.autoplay.set_mode(GUILD, ADMIN, "five")
    control.player(GUILD).queue.add(tracks("member first"))
    assert await control.autoplay.top_up(GUILD, None) == (False, [])


async def test_stop_ends_autoplay_until_something_plays_again():
    rig, control, _ = rig_with_autoplay()
    await control.autoplay.set_mode(GUILD, ADMIN, "five")
    await rig.settle()
    control.stop(GUILD, Actor(user_id=1, privileged=True))
    await rig.settle()
    player = control.player(GUILD)
    assert player.state is PlayerState.IDLE and now_and_next(control) == (None, [])


async def test_turning_autoplay_off_drops_its_pending_pick_and_the_queue_then_ends():
    rig, control, _ = rig_with_autoplay()
    await control.autoplay.set_mode(GUILD, ADMIN, "five")
    await rig.settle()
    assert await control.autoplay.set_mode(GUILD, ADMIN, "off") == ("off", "five")
    await rig.settle()
    assert now_and_next(control)[1] == []
    await track_change(rig, control)
    assert control.player(GUILD).state is PlayerState.IDLE


async def test_an_unknown_or_empty_playlist_is_refused_and_changes_nothing():
    rig, control, store = rig_with_autoplay()
    control.autoplay.source.playlists["empty"] = []
    with pytest.raises(ControlError, match="no saved playlist named \\*\\*nope\\*\\*"):
        await control.autoplay.set_mode(GUILD, ADMIN, "nope")
    with pytest.raises(ControlError, match="is empty"):
        await control.autoplay.set_mode(GUILD, ADMIN, "empty")
    with pytest.raises(ControlError, match="Only admins"):
        await control.autoplay.set_mode(GUILD, MEMBER, "five")
    assert store.settings.autoplay_mode == "off" and rig.manager.events.empty()


async def test_a_blocked_entry_is_named_once_and_never_queued():
    rig, control, store = rig_with_autoplay()
    store.settings.blocklist = ["c3"]
    await control.autoplay.set_mode(GUILD, ADMIN, "five")
    await rig.settle()
    played = [now_and_next(control)[0]]
    for _ in range(7):
        await track_change(rig, control)
        played.append(now_and_next(control)[0])
    assert "c3" not in played and set(played) == {"c1", "c2", "c4", "c5"}
    named = [n for n in rig.notices if "c3" in n]
    assert named == ["Autoplay skipped **c3** (0:20): it matches `c3` on this server's block list."]


async def test_related_plays_the_site_s_first_fresh_entry_after_the_last_track():
    related = FakeRelated(found=tracks("seed", "r1", "r2"))
    rig, control, _ = rig_with_autoplay(related=related)
    control.enqueue(GUILD, MEMBER, tracks("seed"))
    await rig.settle()
    await control.autoplay.set_mode(GUILD, ADMIN, "related")
    await rig.settle()
    assert related.asked == ["seed"] and now_and_next(control) == ("seed", ["r1"])


async def test_related_falls_back_to_the_playlist_or_stops_with_a_sentence():
    related = FakeRelated(error="the site of **seed** (0:20) offers no related tracks I can read")
    rig, control, store = rig_with_autoplay(related=related, background="http://radio.example/live")
    control.enqueue(GUILD, MEMBER, tracks("seed"))
    await rig.settle()
    await control.autoplay.set_mode(GUILD, ADMIN, "related")  # no playlist set before
    await rig.settle()
    assert rig.notices == ["Autoplay stopped: the site of **seed** (0:20) offers no related tracks I can read."]
    await track_change(rig, control)  # the end of the queue: not asked again, the background plays
    assert rig.notices == ["Autoplay stopped: the site of **seed** (0:20) offers no related tracks I can read."]
    player = control.player(GUILD)
    assert player.state is PlayerState.BACKGROUND

    store.settings.autoplay_playlist = "one"  # a playlist to fall back on
    await control.autoplay.set_mode(GUILD, ADMIN, "related")
    await rig.settle()
    assert now_and_next(control)[0] == "solo" and player.queue.current.autoplay


async def test_autoplay_waits_for_voice_and_for_the_setting():
    rig, control, store = rig_with_autoplay()
    rig.voice.vcs.clear()
    await control.autoplay.set_mode(GUILD, ADMIN, "five")
    await rig.settle()
    assert now_and_next(control) == (None, []) and control.player(GUILD).autoplay_task is None

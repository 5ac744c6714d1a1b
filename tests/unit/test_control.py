"""The control layer on a player with fake ports: permissions (every row of the matrix),
admission for every entry (playlists too), votes, refusals that change nothing."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from music.control import MATRIX, Actor, ControlError, Intent, MusicControl, judge
from music.engine.content_rules import ContentRules
from music.engine.queue import RepeatMode
from music.player import PlayerState
from music.player import events as ev
from tests.support.fakeplayer import GUILD, FakeVC, make_rig
from tests.support.fakeplayer import tracks as _tracks

README = Path(__file__).resolve().parents[2] / "README.md"

# Who asks. With a DJ role set (dj_mode), for a track queued by REQUESTER.
REQUESTER = 7
ROLES = {
    "outsider": Actor(user_id=2, listening=False),  # not in the bot's voice channel
    "listener": Actor(user_id=3),
    "requester": Actor(user_id=REQUESTER),
    "dj": Actor(user_id=4, privileged=True),
    "mod elsewhere": Actor(user_id=5, privileged=True, moderator=True, listening=False),
    "admin": Actor(user_id=6, privileged=True, moderator=True, admin=True),
}
# The expected verdicts, written out (not derived from MATRIX): y = allowed, v = vote, n = refused.
#                      outsider listener requester dj mod admin
EXPECTED = {
    Intent.ENQUEUE:      "y y y y y y",
    Intent.SUMMON:       "y y y y y y",
    Intent.SKIP:         "n v y y y y",
    Intent.REMOVE:       "n n y y y y",
    Intent.PAUSE:        "n n y y y y",
    Intent.RESUME:       "n n y y y y",
    Intent.SEEK:         "n n y y y y",
    Intent.PREVIOUS:     "n n y y y y",
    Intent.SKIP_TO:      "n n n y y y",
    Intent.STOP:         "n n n y y y",
    Intent.VOLUME:       "n n n y y y",
    Intent.REPEAT:       "n n n y y y",
    Intent.SHUFFLE:      "n n n y y y",
    Intent.SHUFFLE_ONCE: "n n n y y y",
    Intent.MOVE:         "n n n y y y",
    Intent.CLEAR:        "n n n y y y",
    Intent.DISCONNECT:   "n n n y y y",
    Intent.RESCHEDULE:   "n n n n n y",
    Intent.BACKGROUND:   "n n n n n y",
    # saved playlists of this server (no scope given), the requester being the playlist's author;
    # no voice channel needed. The user and global scopes: test_playlist_permissions.py
    Intent.PLAYLIST_START:    "y y y y y y",
    Intent.PLAYLIST_LIST:     "y y y y y y",
    Intent.PLAYLIST_INFO:     "y y y y y y",
    Intent.PLAYLIST_DOWNLOAD: "y y y y y y",
    Intent.PLAYLIST_SAVE:     "n n n y y y",
    Intent.PLAYLIST_CREATE:   "n n n y y y",
    Intent.PLAYLIST_UPLOAD:   "n n n y y y",
    Intent.PLAYLIST_COPY:     "n n n y y y",
    Intent.PLAYLIST_APPEND:   "n n y y y y",
    Intent.PLAYLIST_REMOVE:   "n n y y y y",
    Intent.PLAYLIST_RENAME:   "n n y y y y",
    Intent.PLAYLIST_DEDUPE:   "n n y y y y",
    Intent.PLAYLIST_DELETE:   "n n y y y y",
    Intent.PLAYLIST_LIMITS:   "n n n n n y",
    Intent.IMPORT_AUDIO:      "n n n n n n",  # the owner only (see ROLES: nobody here is the owner)
    Intent.FILTER:       "n n n y y y",
    Intent.EQ:           "n n n y y y",
    Intent.EQ_SAVE:      "n n n y y y",
    Intent.EQ_DELETE:    "n n n y y y",
    Intent.NORMALIZE:    "n n n n n y",
    Intent.QUEUE_SEARCH: "y y y y y y",
    Intent.QUEUE_CLEANSELF: "y y y y y y",
    Intent.QUEUE_CLEAN:  "n n n y y y",
    Intent.QUEUE_DEDUPE: "n n n y y y",
    Intent.MAX_VOLUME:   "n n n n n y",
    Intent.AUTOPLAY:     "n n n n n y",
    Intent.BLOCKLIST:    "n n n n n y",
    Intent.ALLOWLIST:    "n n n n n y",
    Intent.BLOCKLIST_GLOBAL: "n n n n n n",  # the bot owner only (not among these roles)
    Intent.ALLOWLIST_GLOBAL: "n n n n n n",
}
# Without a DJ role every listener counts as a DJ; outsiders still may not control the music,
# and admin-only intents stay admin-only. Making a server playlist is then open to anyone;
# changing one stays with its author, DJ role holders, mods and admins.
PLAYLIST_MAKING = {Intent.PLAYLIST_SAVE, Intent.PLAYLIST_CREATE, Intent.PLAYLIST_UPLOAD, Intent.PLAYLIST_COPY}
EXPECTED_NO_DJ_ROLE = {
    intent: "y y y y y y" if intent in PLAYLIST_MAKING
    else row if MATRIX[intent].value in ("anyone", "admin", "owner") or intent.value.startswith("playlist")
    else "n y y y y y"
    for intent, row in EXPECTED.items()
}

def verdict_letter(intent: Intent, actor: Actor, *, dj_mode: bool) -> str:
    verdict = judge(intent, actor, dj_mode=dj_mode, requester_id=REQUESTER)
    return "v" if verdict.allowed and verdict.vote else "y" if verdict.allowed else "n"


def test_the_matrix_covers_every_intent():
    assert set(EXPECTED) == set(Intent) == set(MATRIX)


@pytest.mark.parametrize("intent", list(Intent), ids=lambda i: i.value)
def test_permission_row_with_a_dj_role(intent: Intent):
    got = " ".join(verdict_letter(intent, actor, dj_mode=True) for actor in ROLES.values())
    assert got == EXPECTED[intent]


@pytest.mark.parametrize("intent", list(Intent), ids=lambda i: i.value)
def test_permission_row_without_a_dj_role(intent: Intent):
    got = " ".join(verdict_letter(intent, actor, dj_mode=False) for actor in ROLES.values())
    assert got == EXPECTED_NO_DJ_ROLE[intent]


def test_the_owner_s_tools_pass_every_check():
    system = Actor.system_for(0)
    assert all(judge(i, system, dj_mode=True).allowed for i in Intent)


def test_the_readme_permission_table_is_the_matrix():
    text = README.read_text()
    section = text[text.index("### Who may do what"):]
    table = section[section.index("\n|"):]
    section = table[: table.index("\n\n")]  # the first table of the section
    rows = dict(re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", section, flags=re.M))
    assert rows == {i.value: MATRIX[i].value for i in Intent}


# -- the intents ---------------------------------------------------------------------------------


def tracks(*titles: str, requester: int = 9):
    queued = _tracks(*titles)
    for track in queued:
        track.requester_id = requester
    return queued


class FakeStore:
    def __init__(self, **settings: Any) -> None:
        values = dict(max_length=0, max_queue=1000, max_per_member=0, fair_queue=False, dj_role=None,
                      vote_percent=50, max_playlist=500, background=None, auto_resume=True, volume=100,
                      max_volume=150, autoplay_mode="off", autoplay_playlist=None, blocklist=[], allowlist=[])
        values.update(settings)
        self.settings = SimpleNamespace(**values)
        self.saved: dict[str, Any] = {}

        self.globals = SimpleNamespace(blocklist=[], allowlist=[])

    def guild(self, guild_id: int) -> SimpleNamespace:
        return self.settings

    def content_rules(self, guild_id: int) -> ContentRules:
        s, g = self.settings, self.globals
        return ContentRules(server_block=s.blocklist, server_allow=s.allowlist,
                            global_block=g.blocklist, global_allow=g.allowlist)

    async def set_global(self, name: str, value: Any) -> None:
        setattr(self.globals, name, value)

    async def set_guild(self, guild_id: int, name: str, value: Any) -> None:
        setattr(self.settings, name, value)

    async def network_policy_check(self, url: str) -> None:
        if "10.0.0." in url:
            from music.policy import PolicyError

            raise PolicyError("I won't fetch `10.0.0.1`: it points to a private or local network address.")


class Batches:
    """A playlist still loading: its later batches, as ResolveService's expansion yields them."""

    def __init__(self, *batches: list) -> None:
        self.batches = list(batches)
        self.job_id = 1

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.batches:
            raise StopAsyncIteration
        return self.batches.pop(0)


def control_for(**settings: Any):
    rig = make_rig()
    store = FakeStore(**settings)
    rig.settings.__dict__.update(store.settings.__dict__)
    rig.manager.settings = lambda gid: store.settings
    return rig, MusicControl(rig.manager, store, SimpleNamespace(cancel=lambda *a, **k: True)), store


async def test_every_playlist_batch_is_held_to_the_per_member_limit():
    rig, control, _ = control_for(max_per_member=3)
    member = Actor(user_id=9)
    control.enqueue(GUILD, member, tracks("first"))  # about to play: the limit is on what waits
    added, left_out = await control.enqueue_rest(GUILD, member, Batches(tracks("b1", "b2"), tracks("b3", "b4")), None)
    player = control.player(GUILD)
    assert player.queue.count_by(9, head_is_starting=True) == 3 and (added, left_out) == (3, 1)
    dj = Actor(user_id=10, privileged=True)
    added, left_out = await control.enqueue_rest(GUILD, dj, Batches(tracks("d1", "d2", "d3", "d4", requester=10)), None)
    assert (added, left_out) == (4, 0)


async def test_a_refused_enqueue_changes_nothing():
    rig, control, _ = control_for(max_per_member=1)
    member = Actor(user_id=9)
    control.enqueue(GUILD, member, tracks("a"))  # about to play: it counts as the current track
    control.enqueue(GUILD, member, tracks("b"))
    before = [t.id for t in control.player(GUILD).queue.upcoming]
    with pytest.raises(ControlError, match="You already have 1 track"):
        control.enqueue(GUILD, member, tracks("c"))
    assert [t.id for t in control.player(GUILD).queue.upcoming] == before


async def test_a_play_right_behind_an_idle_player_s_start_is_queued_next_and_takes_its_turn():
    """The start an idle player's first `play` posts is done by the advancer, later: until
    then the head of the queue is the track about to play (the reply of a second `play` said
    "Playing" and the fair queue gave the head a turn: CI's fair-queue failure)."""
    rig, control, _ = control_for(fair_queue=True)
    rig.manager.settings = lambda gid: rig.settings  # the store's values and the player's own
    member, member2 = Actor(user_id=9), Actor(user_id=10)
    first = control.enqueue(GUILD, member, tracks("long"))
    assert first.starting
    second = control.enqueue(GUILD, member, tracks("a440"))
    third = control.enqueue(GUILD, member, tracks("b880"))
    assert (second.starting, second.place, third.place) == (False, 1, 2)
    others = control.enqueue(GUILD, member2, tracks("a660", requester=10))
    assert others.place == 2  # after member's a440 (round 1), not after the starting "long"
    assert [t.title for t in control.player(GUILD).queue.upcoming] == ["long", "a440", "a660", "b880"]
    await rig.settle()  # the advancer takes "long": what the replies said is now the queue
    player = control.player(GUILD)
    assert player.queue.current.title == "long"
    assert [t.title for t in player.queue.upcoming] == ["a440", "a660", "b880"]


async def test_the_owner_s_tools_speak_of_the_member_they_act_for():
    rig, control, _ = control_for(max_per_member=1)
    control.enqueue(GUILD, Actor.system_for(9), tracks("now"))  # about to play: not counted
    control.enqueue(GUILD, Actor.system_for(9), tracks("a"))
    with pytest.raises(ControlError, match="That member already has 1 track"):
        control.enqueue(GUILD, Actor.system_for(9), tracks("b"))


async def test_a_vote_counts_once_per_member_and_passes_at_the_percentage():
    rig, control, _ = control_for(dj_role=99, vote_percent=50)
    player = control.player(GUILD)
    player.queue.add(tracks("a", "b"))
    player.queue.advance()
    listeners = frozenset({1, 2, 3, 4})
    first = control.skip(GUILD, Actor(user_id=1), listeners=listeners)
    again = control.skip(GUILD, Actor(user_id=1), listeners=listeners)
    assert (first.skipped, first.votes, first.needed) == (False, 1, 2)
    assert (again.skipped, again.votes) == (False, 1)
    assert rig.manager.events.empty()
    passed = control.skip(GUILD, Actor(user_id=2), listeners=listeners)
    assert passed.skipped and (passed.votes, passed.needed) == (2, 2)
    assert isinstance(rig.manager.events.get_nowait(), ev.Skip)


async def test_skip_of_a_track_that_already_changed_is_refused():
    rig, control, _ = control_for()
    player = control.player(GUILD)
    player.queue.add(tracks("a"))
    player.queue.advance()
    with pytest.raises(ControlError, match="not the current track any more"):
        control.skip(GUILD, Actor.system_for(), track_id="other")
    assert rig.manager.events.empty()


@pytest.mark.parametrize("call, sentence", [
    (lambda c, a: c.pause(GUILD, a), "Nothing is playing."),
    (lambda c, a: c.skip(GUILD, a), "Nothing is playing."),
    (lambda c, a: c.skip_to(GUILD, a, 1), "The queue is empty."),
    (lambda c, a: c.previous(GUILD, a), "There is no previous track."),
    (lambda c, a: c.stop(GUILD, a), "Nothing is playing and the queue is empty."),
    (lambda c, a: c.remove(GUILD, a, 1), "The queue is empty."),
    (lambda c, a: c.move(GUILD, a, 1, 2), "The queue is empty."),
    (lambda c, a: c.shuffle_once(GUILD, a), "There is nothing to shuffle."),
    (lambda c, a: c.set_repeat(GUILD, a, "sometimes"), "Repeat can be `off`, `track` or `queue`."),
    (lambda c, a: c.set_volume(GUILD, a, 151), "Pick a volume from 0 to 150."),
    (lambda c, a: c.disconnect(GUILD, a), "I'm not in a voice channel."),
])
async def test_bad_requests_get_a_sentence_and_post_nothing(call, sentence):
    rig, control, _ = control_for()
    with pytest.raises(ControlError) as refused:
        call(control, Actor(user_id=1))
    assert refused.value.sentence.startswith(sentence)
    assert rig.manager.events.empty()


async def test_queue_edits_save_and_wake_the_player():
    rig, control, _ = control_for()
    dj = Actor(user_id=1, privileged=True)
    control.enqueue(GUILD, dj, tracks("a", "b", "c"))
    assert control.move(GUILD, dj, 3, 1).title == "c"
    assert control.remove(GUILD, dj, 1).title == "c"
    assert control.set_repeat(GUILD, dj, "QUEUE") is RepeatMode.QUEUE
    assert control.set_shuffle(GUILD, dj) is True
    assert control.clear(GUILD, dj) == 2
    posted = []
    while not rig.manager.events.empty():
        posted.append(type(rig.manager.events.get_nowait()))
    assert posted == [ev.QueueChanged] * 6 and rig.saves >= 6


async def test_seek_parses_the_position_and_refuses_live_streams():
    rig, control, _ = control_for()
    player = control.player(GUILD)
    live = tracks("radio")[0]
    live.is_live = True
    player.queue.add(tracks("a") + [live])
    player.queue.advance()
    assert control.seek(GUILD, Actor(user_id=1), "1:30") == 90.0
    assert isinstance(rig.manager.events.get_nowait(), ev.Seek)
    player.queue.advance()
    with pytest.raises(ControlError, match="Live streams can't be sought"):
        control.seek(GUILD, Actor(user_id=1), "10")


async def test_the_volume_of_an_idle_player_is_set_at_once_and_of_a_playing_one_through_the_player():
    rig, control, _ = control_for()
    control.set_volume(GUILD, Actor(user_id=1), 40)
    assert control.player(GUILD).volume == 40 and rig.manager.events.empty()
    player = control.player(GUILD)
    player.queue.add(tracks("a"))
    player.queue.advance()
    player.state = PlayerState.PLAYING
    control.set_volume(GUILD, Actor(user_id=1), 70)
    assert player.volume == 40 and rig.manager.events.get_nowait() == ev.SetVolume(GUILD, 70)


async def test_the_background_must_be_an_allowed_http_link():
    rig, control, store = control_for()
    admin = ROLES["admin"]
    with pytest.raises(ControlError, match="http"):
        await control.set_background(GUILD, admin, "file:///etc/passwd")
    with pytest.raises(ControlError, match="private or local"):
        await control.set_background(GUILD, admin, "http://10.0.0.1/radio")
    assert store.settings.background is None
    assert await control.set_background(GUILD, admin, "<http://radio.example/live>") == "http://radio.example/live"
    assert await control.set_background(GUILD, admin, "off") is None
    assert store.settings.background is None


async def test_restore_distrusts_stored_stream_urls_and_reschedules_playing_guilds():
    rig, control, _ = control_for()
    a, b = tracks("a", "b")
    a.stream_url = "file:///etc/passwd"
    state = {"queue": {"current": a.to_dict(), "upcoming": [b.to_dict()]}, "channel_id": 10, "position": 12.0}
    assert control.restore({GUILD: state}, present=lambda gid: True) == 1
    player = control.player(GUILD)
    assert player.unverified == {a.id} and player.start_position == 12.0
    assert isinstance(rig.manager.events.get_nowait(), ev.Reschedule)


async def test_a_restored_guild_the_bot_left_is_not_rescheduled():
    rig, control, _ = control_for()
    a = tracks("a")[0]
    state = {"queue": {"current": a.to_dict()}, "channel_id": 10}
    control.restore({GUILD: state}, present=lambda gid: False)
    assert rig.manager.events.empty() and GUILD in rig.manager.players


async def test_disconnect_while_connected_asks_the_player():
    rig, control, _ = control_for()
    rig.voice.vcs[GUILD] = FakeVC()
    control.disconnect(GUILD, Actor(user_id=1))
    assert rig.manager.events.get_nowait() == ev.Disconnect(GUILD)

"""The queue tools, the volume cap and the block and allow lists in the control layer, on a
player with fake ports: what each intent removes, who may, and that refusals change nothing."""

from __future__ import annotations

import pytest

from music.control import Actor, ControlError
from music.control.content import RuleList
from music.player import PlayerState
from music.player import events as ev
from tests.support.fakeplayer import GUILD, FakeVC
from tests.unit.test_control import ROLES, Batches, control_for, tracks

DJ = Actor(user_id=1, privileged=True)
MEMBER = Actor(user_id=9)  # tracks() queues as 9 by default


def titles(queue) -> list[str]:
    return [t.title for t in queue.upcoming]


def drain(rig) -> list[object]:
    events = []
    while not rig.manager.events.empty():
        events.append(rig.manager.events.get_nowait())
    return events


def queued(control, *groups: tuple[int, tuple[str, ...]]):
    """Queue titles as requesters, straight into the model (the intents under test come after)."""
    queue = control.player(GUILD).queue
    for requester, names in groups:
        queue.add(tracks(*names, requester=requester))
    return queue


# -- queue clean, cleanself, remove ranges and members, dedupe, search ----------------------------


async def test_clean_drops_the_tracks_of_members_who_left_and_keeps_nobody_s():
    rig, control, _ = control_for()
    rig.voice.vcs[GUILD] = FakeVC()
    queue = queued(control, (9, ("stays",)), (5, ("gone1", "gone2")), (0, ("autoplay or rpc",)))
    removed = control.queue_tools.clean(GUILD, DJ, frozenset({9, 1}))
    assert [t.title for t in removed] == ["gone1", "gone2"]
    assert titles(queue) == ["stays", "autoplay or rpc"]
    assert [type(e) for e in drain(rig)] == [ev.QueueChanged]
    assert control.queue_tools.clean(GUILD, DJ, frozenset({9})) == [] and drain(rig) == []


async def test_clean_is_for_djs_and_needs_the_bot_in_voice():
    rig, control, _ = control_for(dj_role=99)
    queued(control, (5, ("a",)))
    with pytest.raises(ControlError, match="Only DJs can clean the queue here"):
        control.queue_tools.clean(GUILD, ROLES["listener"], frozenset())
    with pytest.raises(ControlError, match="I'm not in a voice channel"):
        control.queue_tools.clean(GUILD, DJ, frozenset())


async def test_cleanself_drops_only_one_s_own_tracks_even_from_outside_the_channel():
    rig, control, _ = control_for(dj_role=99)
    queue = queued(control, (9, ("mine1",)), (5, ("theirs",)), (9, ("mine2",)))
    outsider = Actor(user_id=9, listening=False)
    assert [t.title for t in control.queue_tools.clean_self(GUILD, outsider)] == ["mine1", "mine2"]
    assert titles(queue) == ["theirs"]
    with pytest.raises(ControlError, match="You have no tracks in the queue"):
        control.queue_tools.clean_self(GUILD, outsider)


async def test_a_range_is_removed_by_a_dj_or_by_a_member_whose_tracks_they_all_are():
    rig, control, _ = control_for(dj_role=99)
    queue = queued(control, (9, ("a", "b")), (5, ("c",)), (9, ("d", "e")))
    with pytest.raises(ControlError, match="Only DJs can remove other members' tracks"):
        control.queue_tools.remove_range(GUILD, MEMBER, 2, 4)
    assert titles(queue) == ["a", "b", "c", "d", "e"]  # refused: nothing changed
    assert [t.title for t in control.queue_tools.remove_range(GUILD, MEMBER, 2, 1)] == ["a", "b"]
    assert [t.title for t in control.queue_tools.remove_range(GUILD, DJ, 1, 2)] == ["c", "d"]
    with pytest.raises(ControlError, match="There's no track 7 in the queue: pick a number from 1 to 1"):
        control.queue_tools.remove_range(GUILD, DJ, 1, 7)


async def test_a_member_s_tracks_are_removed_by_a_dj_or_by_themselves():
    rig, control, _ = control_for(dj_role=99)
    queue = queued(control, (9, ("a",)), (5, ("b", "c")))
    with pytest.raises(ControlError, match="Only DJs"):
        control.queue_tools.remove_member(GUILD, MEMBER, 5)
    assert [t.title for t in control.queue_tools.remove_member(GUILD, Actor(user_id=5), 5)] == ["b", "c"]
    with pytest.raises(ControlError, match="That member has no tracks"):
        control.queue_tools.remove_member(GUILD, DJ, 5)
    assert titles(queue) == ["a"]


async def test_dedupe_keeps_the_first_of_each_song_and_drops_repeats_of_the_current_one():
    rig, control, _ = control_for()
    queue = queued(control, (9, ("now", "a", "b", "a", "now", "b", "c")))
    queue.advance()
    removed = control.queue_tools.dedupe(GUILD, DJ)
    assert [t.title for t in removed] == ["a", "now", "b"]
    assert titles(queue) == ["a", "b", "c"]
    assert control.queue_tools.dedupe(GUILD, DJ) == []


async def test_search_finds_titles_and_uploaders_with_their_positions():
    rig, control, _ = control_for()
    queue = queued(control, (9, ("Intro", "Big  Remix", "Outro")))
    queue.upcoming[2].uploader = "The Remix Band"
    found = control.queue_tools.search(GUILD, ROLES["outsider"], "  big remix ")
    assert [(n, t.title) for n, t in found] == [(2, "Big  Remix")]
    assert [n for n, _ in control.queue_tools.search(GUILD, MEMBER, "REMIX")] == [2, 3]
    with pytest.raises(ControlError, match="at most 100"):
        control.queue_tools.search(GUILD, MEMBER, "x" * 101)


async def test_recent_history_is_copies_of_what_played_ending_with_the_current_track():
    rig, control, _ = control_for()
    queue = queued(control, (9, ("a", "b", "c", "d")))
    for _ in range(3):
        queue.advance()
    recent = control.queue_tools.recent_history(GUILD)
    assert [t.title for t in recent] == ["a", "b", "c"]
    assert not {t.id for t in recent} & {t.id for t in [*queue.history, queue.current]}
    assert [t.title for t in control.queue_tools.recent_history(GUILD, 2)] == ["b", "c"]


# -- the volume cap --------------------------------------------------------------------------------


async def test_the_volume_cap_holds_for_everyone_and_turns_a_louder_player_down():
    rig, control, store = control_for()
    admin = ROLES["admin"]
    with pytest.raises(ControlError, match="Only admins"):
        await control.content.set_max_volume(GUILD, DJ, 80)
    player = control.player(GUILD)
    player.queue.add(tracks("a"))
    player.queue.advance()
    player.state, player.volume = PlayerState.PLAYING, 120
    store.settings.volume = 130
    assert await control.content.set_max_volume(GUILD, admin, 80) == 80
    assert store.settings.volume == 80 and drain(rig) == [ev.SetVolume(GUILD, 80)]
    assert control.set_volume(GUILD, admin, 150) == 80  # admins too
    assert control.set_volume(GUILD, DJ, 50) == 50
    with pytest.raises(ControlError, match="from 1 to 150"):
        await control.content.set_max_volume(GUILD, admin, 0)


# -- the lists as settings, and admission on every path -------------------------------------------


async def test_rules_are_edited_within_their_limits_by_admins_and_the_owner():
    rig, control, store = control_for()
    admin, owner = ROLES["admin"], Actor.system_for(0)
    block = RuleList("block")
    assert await control.content.add_rule(GUILD, admin, block, "https://www.Bad.example/x") == "bad.example"
    with pytest.raises(ControlError, match="already on this server's block list"):
        await control.content.add_rule(GUILD, admin, block, "bad.example")
    with pytest.raises(ControlError, match="Only the bot owner"):
        await control.content.add_rule(GUILD, admin, RuleList("block", bot_wide=True), "x1")
    await control.content.add_rule(GUILD, owner, RuleList("allow", bot_wide=True), "song")
    assert store.globals.allowlist == ["song"] and store.settings.allowlist == []
    for n in range(99):
        await control.content.add_rule(GUILD, admin, block, f"word{n}")
    with pytest.raises(ControlError, match="full \\(100 rules\\)"):
        await control.content.add_rule(GUILD, admin, block, "one more")
    assert await control.content.remove_rule(GUILD, admin, block, "BAD.example") == "bad.example"
    assert await control.content.clear_rules(GUILD, admin, block) == 99
    assert control.content.rules(GUILD, admin, block) == []


async def test_play_skips_a_blocked_entry_with_its_rule_and_queues_the_others():
    rig, control, store = control_for()
    store.settings.blocklist = ["remix"]
    queued_ = control.enqueue(GUILD, MEMBER, tracks("one", "two remix", "three"))
    assert [t.title for t in queued_.tracks] == ["one", "three"]
    assert queued_.notes == ["**two remix** (3:00) was skipped: it matches `remix` on this server's block list."]
    with pytest.raises(ControlError, match="it matches `remix`"):
        control.enqueue(GUILD, MEMBER, tracks("only remix"))
    with pytest.raises(ControlError, match="matches `remix`"):  # the owner's tools too (RPC)
        control.enqueue(GUILD, Actor.system_for(0), tracks("rpc remix"))


async def test_a_loading_playlist_skips_blocked_entries_and_says_which_rule():
    rig, control, store = control_for()
    store.globals.blocklist = ["bad.example"]
    first = tracks("first")
    control.enqueue(GUILD, MEMBER, first)
    blocked = tracks("b2")[0]
    blocked.webpage_url = "https://cdn.bad.example/b2"
    refusals: list[str] = []
    added, left_out = await control.enqueue_rest(
        GUILD, MEMBER, Batches(tracks("b1") + [blocked], tracks("b3")), None, refusals=refusals)
    assert (added, left_out) == (2, 0)
    assert titles(control.player(GUILD).queue) == ["first", "b1", "b3"]
    assert refusals == ["**b2** (3:00) was skipped: it matches `bad.example` on the bot's block list."]


async def test_an_allow_list_admits_only_its_matches():
    rig, control, store = control_for()
    store.settings.allowlist = ["site.example"]  # tracks() link to http://site.example/<title>
    other = tracks("elsewhere")[0]
    other.query = other.webpage_url = "https://other.test/x"
    queued_ = control.enqueue(GUILD, MEMBER, tracks("here") + [other])
    assert [t.title for t in queued_.tracks] == ["here"]
    assert queued_.notes == ["**elsewhere** (3:00) was skipped: it matches nothing on this server's allow list."]


async def test_a_playlist_whose_first_entry_is_blocked_still_loads_the_rest():
    rig, control, store = control_for()
    store.settings.blocklist = ["remix"]
    first = control.enqueue(GUILD, MEMBER, tracks("a remix"), more_to_come=True)
    assert first.tracks == [] and first.notes == [
        "**a remix** (3:00) was skipped: it matches `remix` on this server's block list."]
    assert drain(rig) == [] and titles(control.player(GUILD).queue) == []
    added, _ = await control.enqueue_rest(GUILD, MEMBER, Batches(tracks("b", "c")), None)
    assert added == 2 and titles(control.player(GUILD).queue) == ["b", "c"]
    store.settings.max_queue = 2  # a full queue still refuses the whole request
    with pytest.raises(ControlError, match="The queue is full"):
        control.enqueue(GUILD, MEMBER, tracks("d"), more_to_come=True)


async def test_a_link_to_a_blocked_site_is_refused_before_anything_is_fetched():
    rig, control, store = control_for()
    store.settings.blocklist = ["bad.example"]
    asked = []

    async def resolve(*args, **kwargs):
        asked.append(args)
        raise AssertionError("looked up")

    control.service.resolve = resolve
    with pytest.raises(ControlError, match="I won't play that link: it matches `bad.example`"):
        await control.lookup(GUILD, MEMBER, "<https://www.bad.example/watch?v=1>")
    assert asked == []

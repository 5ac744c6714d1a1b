"""The player's state machine, event by event, on fakes of its ports: no Red, no sockets,
no ffmpeg. Each test drives events into PlayerManager.handle (and the load tasks they start)
and asserts the state, the queue and what the ports were asked to do."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from music.engine.filters import FilterChain
from music.engine.queue import RepeatMode
from music.player import PlayerState
from music.player import events as ev
from music.player.handlers import HANDLERS, STALL_SECONDS
from music.player.transitions import MAX_RECOVERIES, PREFETCH_WINDOW
from tests.support.fakeplayer import GUILD, FakeStream, FakeVC, Rig, make_rig, tracks


async def playing(rig: Rig, *titles: str, duration: float = 180.0):
    """A player in voice playing the first of `titles`, the rest queued."""
    player = rig.manager.get(GUILD)
    player.channel_id = 10
    player.queue.add(tracks(*titles, duration=duration))
    rig.manager.post(ev.QueueChanged(GUILD))
    await rig.settle()
    assert player.state is PlayerState.PLAYING
    return player


# -- coverage of the table --------------------------------------------------------------------


def test_every_event_kind_has_exactly_one_handler():
    kinds = {c for _, c in inspect.getmembers(ev, inspect.isclass) if issubclass(c, ev.PlayerEvent) and c is not ev.PlayerEvent}
    assert kinds == set(HANDLERS)


async def test_an_event_for_an_unknown_guild_closes_the_stream_it_carries():
    rig = make_rig()
    stream = FakeStream("x", 0.0, 100)
    await rig.manager.handle(ev.Loaded(99, tracks("a")[0], 1, stream))
    await rig.settle()
    assert stream.closed and 99 not in rig.manager.players


# -- starting ----------------------------------------------------------------------------------


async def test_queue_changed_when_idle_joins_loads_and_plays_the_first_track():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    assert player.queue.current.title == "a" and [t.title for t in player.queue.upcoming] == ["b"]
    assert rig.voice.joins == [(GUILD, 10)]
    assert rig.audio.sources[0].current_track_id == player.queue.current.id
    assert rig.announced == ["a"]
    assert player.queue.current.stream_url.startswith("http://media.example/")  # the refreshed copy is kept


async def test_queue_changed_with_an_empty_queue_stays_idle_without_background():
    rig = make_rig(background="http://radio.example/live")
    rig.voice.vcs[GUILD] = FakeVC()
    player = rig.manager.get(GUILD)
    rig.manager.post(ev.QueueChanged(GUILD))
    await rig.settle()
    assert player.state is PlayerState.IDLE and rig.tracks.backgrounds == 0


async def test_reschedule_when_idle_in_voice_plays_the_background_and_the_queue_takes_over():
    rig = make_rig(background="http://radio.example/live")
    rig.voice.vcs[GUILD] = FakeVC()
    player = rig.manager.get(GUILD)
    rig.manager.post(ev.Reschedule(GUILD))
    await rig.settle()
    assert player.state is PlayerState.BACKGROUND and player.background is not None
    assert rig.audio.sources[-1].current_track_id == player.background.id
    assert rig.announced == []  # the background is not announced
    player.queue.add(tracks("song"))
    rig.manager.post(ev.QueueChanged(GUILD))
    await rig.settle()
    assert player.state is PlayerState.PLAYING and rig.audio.sources[-1].current_track_id == player.queue.current.id


async def test_the_background_loops_when_it_ends_and_stops_on_stop_background():
    rig = make_rig(background="http://radio.example/live")
    rig.voice.vcs[GUILD] = FakeVC()
    player = rig.manager.get(GUILD)
    rig.manager.post(ev.Reschedule(GUILD))
    await rig.settle()
    opened = len(rig.audio.opened)
    rig.manager.post(ev.TrackEnded(GUILD, player.background.id))
    await rig.settle()
    assert len(rig.audio.opened) == opened + 1 and player.state is PlayerState.BACKGROUND
    rig.manager.post(ev.StopBackground(GUILD))
    await rig.settle()
    assert player.state is PlayerState.IDLE and "stop" in rig.voice.vcs[GUILD].calls


async def test_a_background_that_fails_goes_idle_with_a_sentence():
    rig = make_rig(background="http://radio.example/live")
    rig.voice.vcs[GUILD] = FakeVC()
    rig.audio.gate = asyncio.Event()
    player = rig.manager.get(GUILD)
    await rig.manager.handle(ev.Reschedule(GUILD))
    assert player.state is PlayerState.BACKGROUND
    await rig.manager.handle(ev.BackgroundFailed(GUILD, player.generation, "the radio is down"))
    assert player.state is PlayerState.IDLE
    assert rig.notices == ["The background couldn't play: the radio is down"]
    rig.audio.gate.set()
    await rig.settle()


async def test_stop_background_while_playing_the_queue_changes_nothing():
    rig = make_rig()
    player = await playing(rig, "a")
    rig.manager.post(ev.StopBackground(GUILD))
    await rig.settle()
    assert player.state is PlayerState.PLAYING and player.queue.current.title == "a"


# -- load results ------------------------------------------------------------------------------


async def test_a_load_result_from_an_older_generation_is_dropped_and_its_stream_closed():
    rig = make_rig()
    player = await playing(rig, "a")
    stale = FakeStream(player.queue.current.id, 0.0, 100)
    await rig.manager.handle(ev.Loaded(GUILD, player.queue.current, player.generation - 1, stale))
    await rig.settle()
    assert stale.closed and rig.audio.sources[-1].stream is not stale


async def test_a_load_result_for_a_track_no_longer_current_is_dropped():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    old = player.queue.upcoming[0]
    stream = FakeStream(old.id, 0.0, 100)
    await rig.manager.handle(ev.Loaded(GUILD, old, player.generation, stream))
    await rig.settle()
    assert stream.closed and player.queue.current.title == "a"


async def test_a_seek_during_a_load_makes_the_first_load_stale():
    rig = make_rig()
    player = await playing(rig, "a")
    rig.audio.gate = asyncio.Event()
    await rig.manager.handle(ev.Seek(GUILD, 30.0))
    await asyncio.sleep(0.01)  # the first load waits in open()
    await rig.manager.handle(ev.Seek(GUILD, 60.0))
    rig.audio.gate.set()
    await rig.settle()
    assert rig.audio.sources[-1].stream.start == 60.0
    assert player.start_position == 60.0


async def test_a_failed_load_says_why_and_plays_the_next_track():
    rig = make_rig()
    player = rig.manager.get(GUILD)
    player.channel_id = 10
    a, b = tracks("a", "b")
    rig.tracks.fail[a.id] = "That video is private."
    player.queue.add([a, b])
    rig.manager.post(ev.QueueChanged(GUILD))
    await rig.settle()
    assert len(rig.notices) == 1 and rig.notices[0].endswith(": That video is private.")
    assert rig.notices[0].startswith("I couldn't play ")
    assert player.queue.current.title == "b" and player.state is PlayerState.PLAYING
    assert [t.title for t in player.queue.history] == ["a"]


async def test_a_failed_join_says_why_and_the_queue_moves_on_without_playing():
    rig = make_rig()
    rig.voice.join_error = "I couldn't connect to #music in time."
    player = rig.manager.get(GUILD)
    player.channel_id = 10
    player.queue.add(tracks("a"))
    rig.manager.post(ev.QueueChanged(GUILD))
    await rig.settle()
    assert any("couldn't connect" in n for n in rig.notices)
    assert player.state is PlayerState.IDLE and player.queue.current is None


async def test_a_stale_load_failure_is_ignored():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    await rig.manager.handle(ev.LoadFailed(GUILD, player.queue.current.id, player.generation - 1, "old news"))
    assert rig.notices == [] and player.queue.current.title == "a"


async def test_loaded_when_voice_is_gone_goes_idle_and_says_so():
    rig = make_rig()
    player = rig.manager.get(GUILD)
    player.channel_id = 10
    player.queue.add(tracks("a"))
    rig.audio.gate = asyncio.Event()
    await rig.manager.handle(ev.QueueChanged(GUILD))
    await asyncio.sleep(0.01)  # joined; the stream waits in open()
    rig.voice.vcs.clear()  # kicked while the stream opened
    rig.audio.gate.set()
    await rig.settle()
    assert player.state is PlayerState.IDLE and "not connected" in rig.notices[-1]
    assert rig.audio.opened[-1].closed


async def test_a_player_restored_paused_loads_then_pauses():
    rig = make_rig()
    player = rig.manager.get(GUILD)
    player.channel_id = 10
    player.paused_on_load = True
    player.queue.add(tracks("a"))
    rig.manager.post(ev.QueueChanged(GUILD))
    await rig.settle()
    assert player.state is PlayerState.PAUSED and rig.voice.vcs[GUILD].calls == ["pause"]
    assert not player.paused_on_load


async def test_restored_entries_are_looked_up_again_once():
    rig = make_rig()
    player = rig.manager.get(GUILD)
    player.channel_id = 10
    a, b = tracks("a", "b")
    player.queue.add([a, b])
    player.unverified = {a.id, b.id}
    rig.manager.post(ev.QueueChanged(GUILD))
    await rig.settle()
    assert (a.id, True) in rig.tracks.calls
    assert a.id not in player.unverified and b.id in player.unverified


# -- track boundaries --------------------------------------------------------------------------


async def test_a_prefetched_next_track_is_spliced_in_without_a_load():
    rig = make_rig()
    player = await playing(rig, "a", "b", duration=20.0)  # inside the prefetch window at once
    source = rig.audio.sources[-1]
    assert source.next is not None and player.prefetched_id == player.queue.upcoming[0].id
    generation, opened = player.generation, len(rig.audio.opened)
    source.switch_to_next()
    rig.manager.post(ev.TrackEnded(GUILD, player.queue.current.id))
    await rig.settle()
    assert player.queue.current.title == "b" and player.state is PlayerState.PLAYING
    assert player.generation == generation and len(rig.audio.opened) == opened  # no new load
    assert rig.announced == ["a", "b"]


async def test_the_next_track_is_not_opened_long_before_its_turn():
    rig = make_rig()
    player = await playing(rig, "a", "b", duration=PREFETCH_WINDOW + 100)
    assert rig.audio.sources[-1].next is None and player.prefetched_id is None


async def test_a_track_end_without_a_prefetch_loads_the_next():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    rig.manager.post(ev.TrackEnded(GUILD, player.queue.current.id))
    await rig.settle()
    assert player.queue.current.title == "b" and rig.audio.sources[-1].current_track_id == player.queue.current.id


async def test_the_end_of_the_queue_stops_the_audio_and_goes_idle():
    rig = make_rig()
    player = await playing(rig, "a")
    rig.manager.post(ev.TrackEnded(GUILD, player.queue.current.id))
    await rig.settle()
    assert player.state is PlayerState.IDLE and player.queue.current is None and player.source is None
    assert "stop" in rig.voice.vcs[GUILD].calls


async def test_a_track_end_for_another_track_is_ignored():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    rig.manager.post(ev.TrackEnded(GUILD, "someone-else"))
    await rig.settle()
    assert player.queue.current.title == "a"


async def test_repeat_track_replays_the_same_entry():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    player.queue.repeat = RepeatMode.TRACK
    first = player.queue.current.id
    rig.manager.post(ev.TrackEnded(GUILD, first))
    await rig.settle()
    assert player.queue.current.id == first


async def test_an_exhausted_source_counts_as_the_end_of_the_track():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    rig.manager.post(ev.SourceExhausted(GUILD, player.queue.current.id))
    await rig.settle()
    assert player.queue.current.title == "b"


# -- failures while playing --------------------------------------------------------------------


async def test_a_failed_stream_is_reopened_at_the_position_it_reached_with_a_fresh_url():
    rig = make_rig()
    player = await playing(rig, "a")
    current = player.queue.current
    rig.manager.post(ev.TrackFailed(GUILD, current.id, "connection reset", 42.5))
    await rig.settle()
    assert rig.audio.sources[-1].stream.start == 42.5 and player.recoveries == 1
    assert rig.tracks.forgotten == [current.id] and player.state is PlayerState.PLAYING
    assert rig.announced == ["a"]  # a recovery is not announced again


async def test_a_track_that_keeps_failing_is_skipped_with_a_sentence():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    for _ in range(MAX_RECOVERIES + 1):
        rig.manager.post(ev.TrackFailed(GUILD, player.queue.current.id, "403", 10.0))
        await rig.settle()
    assert player.queue.current.title == "b" and "keeps failing" in rig.notices[-1]
    assert player.recoveries == 0


async def test_a_failure_while_idle_is_ignored():
    rig = make_rig()
    player = rig.manager.get(GUILD)
    player.queue.add(tracks("a"))
    player.queue.advance()
    await rig.manager.handle(ev.TrackFailed(GUILD, player.queue.current.id, "x", 1.0))
    assert player.state is PlayerState.IDLE and player.load_task is None


async def test_playback_stopped_for_an_old_source_is_ignored_and_for_the_live_one_recovers():
    rig = make_rig()
    player = await playing(rig, "a")
    live = player.source
    await rig.manager.handle(ev.PlaybackStopped(GUILD, object(), "old", None, None))
    assert player.source is live
    rig.manager.post(ev.PlaybackStopped(GUILD, live, "voice closed", player.queue.current.id, 12.0))
    await rig.settle()
    assert player.source is not live and rig.audio.sources[-1].stream.start == 12.0


# -- member requests ---------------------------------------------------------------------------


async def test_skip_moves_on_and_skip_with_nothing_playing_does_nothing():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    rig.manager.post(ev.Skip(GUILD))
    await rig.settle()
    assert player.queue.current.title == "b"
    idle = make_rig()
    p2 = idle.manager.get(GUILD)
    await idle.manager.handle(ev.Skip(GUILD))
    assert p2.state is PlayerState.IDLE


async def test_skip_votes_are_dropped_when_the_track_changes():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    player.skip_votes[player.queue.current.id] = {5}
    rig.manager.post(ev.Skip(GUILD))
    await rig.settle()
    assert player.skip_votes == {}


async def test_skip_to_plays_that_entry_and_an_index_gone_stale_changes_nothing():
    rig = make_rig()
    player = await playing(rig, "a", "b", "c")
    await rig.manager.handle(ev.SkipTo(GUILD, 9))
    assert player.queue.current.title == "a"
    rig.manager.post(ev.SkipTo(GUILD, 2))
    await rig.settle()
    assert player.queue.current.title == "c" and [t.title for t in player.queue.history] == ["a", "b"]


async def test_previous_replays_the_last_track_and_does_nothing_without_history():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    await rig.manager.handle(ev.Previous(GUILD))
    assert player.queue.current.title == "a"
    rig.manager.post(ev.Skip(GUILD))
    await rig.settle()
    rig.manager.post(ev.Previous(GUILD))
    await rig.settle()
    assert player.queue.current.title == "a" and [t.title for t in player.queue.upcoming] == ["b"]


async def test_stop_clears_the_queue_stops_the_audio_and_makes_pending_loads_stale():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    generation = player.generation
    rig.manager.post(ev.Stop(GUILD))
    await rig.settle()
    assert player.state is PlayerState.IDLE and player.queue.current is None and len(player.queue) == 0
    assert player.generation > generation and "stop" in rig.voice.vcs[GUILD].calls


async def test_seek_reopens_at_the_target_and_is_ignored_when_idle():
    rig = make_rig()
    await playing(rig, "a")
    rig.manager.post(ev.Seek(GUILD, 75.0))
    await rig.settle()
    assert rig.audio.sources[-1].stream.start == 75.0
    idle = make_rig()
    p2 = idle.manager.get(GUILD)
    await idle.manager.handle(ev.Seek(GUILD, 10.0))
    assert p2.load_task is None


async def test_a_volume_change_reopens_at_the_position_with_the_new_volume():
    rig = make_rig()
    player = await playing(rig, "a")
    rig.audio.sources[-1].position = 33.0
    rig.manager.post(ev.SetVolume(GUILD, 40))
    await rig.settle()
    stream = rig.audio.sources[-1].stream
    assert player.volume == 40 and stream.volume == 40 and stream.start == 33.0
    assert rig.audio.sources[-1].splices == [stream]  # in where it has got to, not from 33.0
    assert len(rig.audio.sources) == 1 and rig.announced == ["a"]


# -- filters --------------------------------------------------------------------------------------

NIGHTCORE_CHAIN = FilterChain().with_filter("nightcore")


async def test_new_filters_reopen_the_playing_track_at_its_position_and_splice_it_in():
    rig = make_rig()
    player = await playing(rig, "a")
    source = rig.audio.sources[-1]
    source.position = 42.5
    rig.manager.post(ev.SetFilters(GUILD, NIGHTCORE_CHAIN))
    await rig.settle()
    stream = source.stream
    assert player.filters == NIGHTCORE_CHAIN and stream.filters == NIGHTCORE_CHAIN
    assert stream.start == 42.5 and source.splices == [stream]
    assert player.state is PlayerState.PLAYING and not player.splice_load
    assert rig.announced == ["a"]  # the same track goes on: no second "Now playing"


async def test_the_same_filters_again_open_nothing():
    rig = make_rig()
    player = await playing(rig, "a")
    rig.manager.post(ev.SetFilters(GUILD, player.filters))
    await rig.settle()
    assert len(rig.audio.opened) == 1


async def test_filters_set_while_idle_are_what_the_next_track_opens_with():
    rig = make_rig()
    player = rig.manager.get(GUILD)
    await rig.manager.handle(ev.SetFilters(GUILD, NIGHTCORE_CHAIN))
    assert player.filters == NIGHTCORE_CHAIN and rig.audio.opened == []
    await playing(rig, "a")
    assert rig.audio.opened[-1].filters == NIGHTCORE_CHAIN


async def test_a_new_player_starts_with_the_server_s_filters():
    rig = make_rig()
    rig.manager.default_filters = lambda guild_id: NIGHTCORE_CHAIN
    await playing(rig, "a")
    assert rig.audio.opened[-1].filters == NIGHTCORE_CHAIN


async def test_a_paused_track_stays_paused_with_new_filters():
    rig = make_rig()
    player = await playing(rig, "a")
    await rig.manager.handle(ev.Pause(GUILD))
    rig.manager.post(ev.SetFilters(GUILD, NIGHTCORE_CHAIN))
    await rig.settle()
    assert player.state is PlayerState.PAUSED and rig.voice.vcs[GUILD].is_paused()
    assert rig.audio.sources[-1].stream.filters == NIGHTCORE_CHAIN


async def test_the_next_track_opened_ahead_is_opened_again_with_new_filters():
    rig = make_rig()
    await playing(rig, "a", "b", duration=20.0)  # inside the prefetch window from the start
    source = rig.audio.sources[-1]
    assert source.next is not None and source.next.filters == FilterChain()
    rig.manager.post(ev.SetFilters(GUILD, NIGHTCORE_CHAIN))
    await rig.settle()
    assert source.next is not None and source.next.filters == NIGHTCORE_CHAIN


async def test_a_load_in_flight_is_opened_again_with_new_filters():
    rig = make_rig()
    player = rig.manager.get(GUILD)
    player.channel_id = 10
    player.queue.add(tracks("a"))
    rig.audio.gate = asyncio.Event()
    await rig.manager.handle(ev.QueueChanged(GUILD))
    assert player.state is PlayerState.LOADING
    await rig.manager.handle(ev.SetFilters(GUILD, NIGHTCORE_CHAIN))
    rig.audio.gate.set()
    await rig.settle()
    assert player.state is PlayerState.PLAYING
    assert rig.audio.sources[-1].stream.filters == NIGHTCORE_CHAIN


async def test_the_position_moves_on_during_a_splice_load():
    rig = make_rig()
    player = await playing(rig, "a")
    rig.audio.gate = asyncio.Event()
    rig.audio.sources[-1].position = 10.0
    await rig.manager.handle(ev.SetFilters(GUILD, NIGHTCORE_CHAIN))
    assert player.state is PlayerState.LOADING and player.splice_load
    rig.audio.sources[-1].position = 10.4  # the track plays on while the new stream opens
    assert player.position == 10.4
    rig.audio.gate.set()
    await rig.settle()


async def test_pause_and_unpause_follow_the_voice_client():
    rig = make_rig()
    player = await playing(rig, "a")
    await rig.manager.handle(ev.Unpause(GUILD))  # not paused: nothing
    assert rig.voice.vcs[GUILD].calls == []
    await rig.manager.handle(ev.Pause(GUILD))
    assert player.state is PlayerState.PAUSED and rig.voice.vcs[GUILD].is_paused()
    await rig.manager.handle(ev.Pause(GUILD))
    assert rig.voice.vcs[GUILD].calls == ["pause"]
    await rig.manager.handle(ev.Unpause(GUILD))
    assert player.state is PlayerState.PLAYING and rig.voice.vcs[GUILD].calls == ["pause", "resume"]


async def test_disconnect_keeps_the_queue_and_the_position_and_forgets_the_channel():
    rig = make_rig()
    player = await playing(rig, "a", "b")
    rig.audio.sources[-1].position = 61.0
    rig.manager.post(ev.Disconnect(GUILD))
    await rig.settle()
    assert player.state is PlayerState.IDLE and player.channel_id is None
    assert player.start_position == 61.0 and player.queue.current.title == "a" and len(player.queue) == 1
    assert rig.voice.disconnects == [GUILD]


# -- the monitor's ticks -----------------------------------------------------------------------


def tick(now: float, *, connected: bool = True, listeners: int = 1, save: bool = False) -> ev.Tick:
    return ev.Tick(GUILD, now, connected, listeners, save)


async def test_a_playing_stream_that_stops_moving_is_reopened_at_its_position():
    rig = make_rig()
    player = await playing(rig, "a")
    rig.audio.sources[-1].position = 20.0
    start = player.last_progress_at
    await rig.manager.handle(tick(start + 1))
    await rig.manager.handle(tick(start + 2 + STALL_SECONDS))
    await rig.settle()
    assert rig.audio.sources[-1].stream.start == 20.0 and player.recoveries == 1


async def test_a_lost_voice_connection_while_playing_is_rejoined():
    rig = make_rig()
    player = await playing(rig, "a")
    rig.voice.vcs.clear()
    await rig.manager.handle(tick(player.last_progress_at + 6, connected=False, listeners=0))
    await rig.settle()
    assert rig.voice.joins[-1] == (GUILD, 10) and player.state is PlayerState.PLAYING


async def test_pause_when_alone_pauses_and_a_returning_listener_resumes():
    rig = make_rig(pause_when_alone=True)
    player = await playing(rig, "a")
    await rig.manager.handle(tick(1000.0, listeners=0))
    assert player.state is PlayerState.PAUSED and player.auto_paused
    await rig.manager.handle(tick(1001.0, listeners=1))
    assert player.state is PlayerState.PLAYING and not player.auto_paused


async def test_an_empty_channel_is_left_after_the_setting_with_a_sentence():
    rig = make_rig(empty_disconnect=60)
    player = await playing(rig, "a")
    await rig.manager.handle(tick(1000.0, listeners=0))
    await rig.manager.handle(tick(1030.0, listeners=0))
    assert rig.voice.disconnects == []
    await rig.manager.handle(tick(1061.0, listeners=0))
    await rig.settle()
    assert rig.voice.disconnects == [GUILD] and "Everyone left" in rig.notices[-1]
    assert player.queue.current is not None  # the queue is kept


async def test_an_idle_player_leaves_after_the_idle_setting():
    rig = make_rig(idle_disconnect=300)
    player = await playing(rig, "a")
    rig.manager.post(ev.Stop(GUILD))
    await rig.settle()
    await rig.manager.handle(tick(player.idle_since + 100))
    assert rig.voice.disconnects == []
    await rig.manager.handle(tick(player.idle_since + 301))
    await rig.settle()
    assert rig.voice.disconnects == [GUILD]


async def test_the_monitor_opens_the_next_track_when_the_window_arrives():
    rig = make_rig()
    player = await playing(rig, "a", "b", duration=PREFETCH_WINDOW + 60)
    assert player.prefetched_id is None
    rig.audio.sources[-1].position = 61.0
    await rig.manager.handle(tick(player.last_progress_at + 1))
    await rig.settle()
    assert player.prefetched_id == player.queue.upcoming[0].id and rig.audio.sources[-1].next is not None


async def test_a_prefetch_result_no_longer_wanted_is_closed_and_a_failed_one_forgotten():
    rig = make_rig()
    player = await playing(rig, "a", "b", duration=20.0)
    nxt = player.queue.upcoming[0]
    stale = FakeStream(nxt.id, 0.0, 100)
    await rig.manager.handle(ev.Prefetched(GUILD, nxt, player.generation - 1, stale))
    await rig.settle()
    assert stale.closed
    await rig.manager.handle(ev.PrefetchFailed(GUILD, nxt.id))
    assert player.prefetched_id is None


async def test_ticks_save_only_when_asked_or_when_something_changed():
    rig = make_rig()
    player = await playing(rig, "a")
    saves = rig.saves
    await rig.manager.handle(tick(player.last_progress_at + 0.5))
    assert rig.saves == saves
    await rig.manager.handle(tick(player.last_progress_at + 0.6, save=True))
    assert rig.saves == saves + 1


@pytest.mark.parametrize("kind", [ev.Skip, ev.Previous, ev.Stop, ev.Pause, ev.Unpause, ev.Disconnect, ev.QueueChanged, ev.Reschedule])
async def test_requests_to_a_fresh_idle_player_leave_it_idle_or_loading_without_errors(kind):
    rig = make_rig()
    player = rig.manager.get(GUILD)
    await rig.manager.handle(kind(GUILD))
    await rig.settle()
    assert player.state is PlayerState.IDLE and player.queue.current is None

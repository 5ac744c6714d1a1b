"""The cog inside a real Red bot object with real Config (JSON backend on disk), real yt-dlp on
local URLs, real ffmpeg and discord.py's real AudioPlayer thread (the voice connection itself is
a recorder: see tests/support/fakevoice.py)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
from redbot.core.bot import Red

from music.cog import Music
from music.commands.base import CommandError
from music.player import PlayerState
from music.player.events import Reschedule
from tests.support.audio_analysis import decode_opus_packets, dominant_frequency
from tests.support.fakevoice import FakeContext, FakeGuild, member_in
from tests.support.processes import described, ffmpeg_children, transcoder_workers
from tests.support.redlevel import World, load_cog, new_red

SECOND = 48000


async def allow_loopback(cog: Music) -> None:
    await cog.musicset_network.get_command("allow")(FakeContext(cog.bot, FakeGuild(), None), "127.0.0.0/8")


def music_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("music-", "audio-player"))]


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def test_load_registers_commands_and_opens_the_gate(red: Red) -> None:
    World(red)
    cog = await load_cog(red)
    for name in ("play", "playnext", "search", "local", "localnext", "now", "pause", "resume", "skip",
                 "skipto", "prev", "stop", "disconnect", "summon", "seek", "volume", "repeat",
                 "shuffle", "queue", "musicset", "music"):
        command = red.get_command(name)
        assert command is not None, name
        assert command.help, f"{name} has no help text"
    assert {"advancer", "monitor", "flusher", "warm-up", "gc-guard"} <= set(cog.tasks)
    assert all(not t.done() for name, t in cog.tasks.items() if name not in ("init", "warm-up"))
    await red.remove_cog("Music")


async def test_after_load_the_resolver_warms_up_and_an_unload_meanwhile_is_clean(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    # yt-dlp's first-use costs are paid in the background, in a resolver worker thread
    await wait_for(lambda: cog.resolver.warmed, timeout=20)
    assert [t.name for t in threading.enumerate() if t.name.startswith("music-resolve-")] == ["music-resolve-1"]
    await allow_loopback(cog)
    await cog.play(world.ctx(), query=media_server.url("a440.webm"))
    assert cog.resolver.instances_built == 1  # the first lookup used the warmed instance
    await red.remove_cog("Music")
    # unloading at once after a load, while the warm-up runs: nothing waits, nothing is left
    cog2 = await load_cog(red)
    started = asyncio.get_running_loop().time()
    await red.remove_cog("Music")
    assert asyncio.get_running_loop().time() - started < 3
    assert cog2.tasks == {}
    await wait_for(lambda: not music_threads(), timeout=5)


async def test_loading_next_to_core_audio_fails_with_a_sentence(red: Red) -> None:
    from redbot.core import commands
    from redbot.core.errors import CogLoadError

    import music

    class Audio(commands.Cog):
        pass

    await red.add_cog(Audio())
    with pytest.raises(CogLoadError, match="unload audio"):
        await music.setup(red)
    assert red.get_cog("Music") is None


async def test_settings_commands_write_config_and_refuse_bad_values(red: Red) -> None:
    world = World(red)
    cog = await load_cog(red)
    ctx = world.ctx()
    gid = world.guild.id
    await cog.musicset.get_command("volume")(ctx, 70)
    await cog.musicset.get_command("maxlength")(ctx, "10:00")
    await cog.musicset.get_command("emptydisconnect")(ctx, "0")
    await cog.musicset.get_command("notify")(ctx, False)
    conf = cog.store.config.guild_from_id(gid)
    assert await conf.volume() == 70
    assert await conf.max_length() == 600
    assert await conf.empty_disconnect() == 0
    assert await conf.notify() is False
    for command, bad in (("volume", 151), ("maxlength", "soon"), ("maxqueue", 0)):
        with pytest.raises(CommandError):
            await cog.musicset.get_command(command)(ctx, bad)
    assert await conf.volume() == 70 and await conf.max_length() == 600
    assert await conf.max_queue() == 1000
    with pytest.raises(CommandError, match="CIDR|network"):
        await cog.musicset_network.get_command("allow")(ctx, "not-a-network")
    assert await cog.store.config.network_allow() == []
    await cog.musicset.get_command("settings")(ctx)
    shown = ctx.last
    assert "70%" in shown and "10:00" in shown
    await red.remove_cog("Music")


async def test_play_two_tracks_in_order_through_the_real_audio_player(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    ctx = world.ctx()
    await cog.play(ctx, query=media_server.url("a440.webm"))
    assert "Playing" in ctx.last
    await cog.play(ctx, query=media_server.url("b880.webm"))
    assert "position 1" in ctx.last or "next" in ctx.last
    vc = world.guild.voice_client
    assert vc is not None
    player = cog.manager.players[world.guild.id]
    # both 3 s tracks, back to back
    await wait_for(lambda: player.state is PlayerState.IDLE and len(vc.packets) > 250, timeout=15)
    pcm, bad = decode_opus_packets(vc.opus_packets())
    assert bad == 0, "header or broken packets reached the voice connection"
    first = pcm[int(0.5 * SECOND) : int(2.5 * SECOND)]
    second = pcm[int(3.5 * SECOND) : int(5.5 * SECOND)]
    assert abs(dominant_frequency(first) - 440) < 5
    assert abs(dominant_frequency(second) - 880) < 5
    assert 5.7 < len(pcm) / SECOND < 7.5
    assert player.queue.current is None and [t.title for t in player.queue.history][-2:] == ["a440", "b880"]
    await red.remove_cog("Music")


async def test_bad_input_gets_a_sentence_and_leaves_the_queue_alone(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    ctx = world.ctx()
    # loopback is denied by default
    with pytest.raises(CommandError, match="private|local|loopback"):
        await cog.play(ctx, query=media_server.url("a440.webm"))
    for bad in ("file:///etc/passwd", "concat:/etc/passwd|/etc/hosts", "data:audio/mp3;base64,AAAA"):
        with pytest.raises(CommandError):
            await cog.play(ctx, query=bad)
    with pytest.raises(CommandError, match="local folder"):
        await cog.local(ctx, path="../../etc/passwd")
    player = cog.manager.get(world.guild.id)
    assert player.queue.current is None and len(player.queue) == 0
    await red.remove_cog("Music")


async def test_unload_leaves_nothing_running_and_reload_resumes_near_the_position(red: Red, media_server, tmp_path) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    ctx = world.ctx()
    await cog.play(ctx, query=media_server.url("steps.webm"))  # 300,500,700,900,1100 Hz, 1 s each
    await cog.play(ctx, query=media_server.url("long.mp3"))
    player = cog.manager.players[world.guild.id]
    await wait_for(lambda: player.state is PlayerState.PLAYING and player.position > 2.2, timeout=10)
    # the next track is opened ahead (gapless): its 30 s MP3 is transcoded by the shared
    # worker (still running), with no ffmpeg child (the WebM is copied in process)
    assert player.source.next_track_id == player.queue.upcoming[0].id
    assert len(transcoder_workers(zombies=False)) == 1
    running = ffmpeg_children(zombies=False)
    assert running == [], described(running)
    queued_ids = [player.queue.current.id] + [t.id for t in player.queue.upcoming]
    old_vc = world.guild.voice_client

    await red.remove_cog("Music")
    assert not old_vc.connected and world.guild.voice_client is None
    assert all(t.done() for t in cog.tasks.values())
    await wait_for(lambda: not ffmpeg_children(zombies=False), timeout=5)
    await wait_for(lambda: not transcoder_workers(), timeout=5)  # ended and reaped: no orphan
    await wait_for(lambda: not music_threads(), timeout=5)
    saved = (await cog.store.saved_states())[world.guild.id]
    assert 2.0 < saved["position"] < 4.0

    cog2 = await load_cog(red)
    player2 = cog2.manager.players[world.guild.id]
    assert [player2.queue.current.id] + [t.id for t in player2.queue.upcoming] == queued_ids
    await wait_for(lambda: player2.state is PlayerState.PLAYING, timeout=10)
    vc = world.guild.voice_client
    assert vc is not old_vc and world.voice.connects == 2
    await wait_for(lambda: len(vc.packets) > 25, timeout=5)
    pcm, _ = decode_opus_packets(vc.opus_packets())
    # resumed inside the 700 Hz second (2-3 s) or at most one second later
    assert abs(dominant_frequency(pcm[: int(0.4 * SECOND)]) - 700) < 10 or abs(dominant_frequency(pcm[: int(0.4 * SECOND)]) - 900) < 10
    await red.remove_cog("Music")
    await wait_for(lambda: not ffmpeg_children(zombies=False), timeout=5)
    await wait_for(lambda: not transcoder_workers(), timeout=5)


async def test_the_queue_comes_back_in_a_new_red_on_the_same_data_dir(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    await cog.musicset.get_command("autoresume")(world.ctx(), False)  # keep the queue, don't play
    player = cog.manager.get(world.guild.id)
    from music.engine.track import Track

    tracks = [Track(query=f"https://example.com/{i}", title=f"song {i}", duration=60.0 + i) for i in range(5)]
    player.queue.add(tracks)
    player.queue.advance()
    player.queue.repeat = player.queue.repeat.__class__("queue")
    cog.manager.save(player)
    await red.remove_cog("Music")

    red2 = new_red()
    world.attach(red2)
    cog2 = await load_cog(red2)
    restored = cog2.manager.players[world.guild.id]
    assert restored.queue.to_dict() == player.queue.to_dict()
    assert restored.state is PlayerState.IDLE  # autoresume off: nothing starts by itself
    assert await cog2.store.config.guild_from_id(world.guild.id).auto_resume() is False
    await red2.remove_cog("Music")


async def test_a_burst_of_queue_changes_costs_one_write(red: Red) -> None:
    world = World(red)
    cog = await load_cog(red)
    from music.engine.track import Track

    player = cog.manager.get(world.guild.id)
    await cog.store.flush()
    before = cog.store.writes
    for i in range(100):
        player.queue.add([Track(query=f"https://example.com/{i}", title=str(i))])
        cog.manager.save(player)
    await wait_for(lambda: cog.store.pending == 0 and cog.store.writes > before, timeout=5)
    await asyncio.sleep(0.2)
    assert cog.store.writes - before == 1
    saved = (await cog.store.saved_states())[world.guild.id]
    assert len(saved["queue"]["upcoming"]) == 100
    await red.remove_cog("Music")


async def test_a_crashed_advancer_is_restarted_and_loses_no_queued_event(red: Red, caplog) -> None:
    world = World(red)
    cog = await load_cog(red)
    manager = cog.manager
    events = manager.events

    class CrashOnce(asyncio.Queue):
        crashed = False

        async def get(self):
            if not CrashOnce.crashed:
                CrashOnce.crashed = True
                raise RuntimeError("simulated advancer crash")
            return await super().get()

    crashing: asyncio.Queue = CrashOnce()
    while not events.empty():
        crashing.put_nowait(events.get_nowait())
    manager.events = crashing
    # wake the running advancer (it waits on the old queue) so its next get() is the crashing one
    events.put_nowait(Reschedule(world.guild.id))
    for _ in range(3):
        manager.post(Reschedule(world.guild.id))
    handled_before = manager.handled
    await wait_for(lambda: cog.supervisor_restarts.get("advancer") == 1, timeout=5)
    await wait_for(lambda: manager.handled - handled_before >= 3, timeout=5)
    assert crashing.empty()
    assert not cog.tasks["advancer"].done()
    assert sum("advancer crashed" in r.getMessage() for r in caplog.records) == 1
    await red.remove_cog("Music")



async def test_deleting_a_users_data_removes_their_id_from_every_queue(red: Red) -> None:
    from music.engine.track import Track

    world = World(red)
    cog = await load_cog(red)
    user, other = 111111111111111111, 222222222222222222
    player = cog.manager.get(world.guild.id)
    player.queue.add([Track(query="https://example.com/a", title="a", requester_id=user),
                      Track(query="https://example.com/b", title="b", requester_id=other)])
    cog.manager.save(player)
    # a second guild whose queue is only in Config (no live player)
    await cog.store.config.guild_from_id(42).state.set(
        {"queue": {"upcoming": [Track(query="https://example.com/c", title="c", requester_id=user).to_dict()]}}
    )
    await cog.red_delete_data_for_user(requester="user", user_id=user)
    assert [t.requester_id for t in player.queue.upcoming] == [0, other]
    saved = await cog.store.saved_states()
    assert [t["requester_id"] for t in saved[world.guild.id]["queue"]["upcoming"]] == [0, other]
    assert saved[42]["queue"]["upcoming"][0]["requester_id"] == 0
    await red.remove_cog("Music")


async def use_fake_site(cog: Music, media_server, world: World) -> None:
    """Teach the cog's yt-dlp the tests' fake video site (see tests/support/fakesite.py) and
    allow it the way an owner would (`musicset extractors allow fakesite`)."""
    from tests.support import fakesite

    fakesite.FakeSiteSearchIE.base_url = media_server.base_url
    cog.resolver.extra_extractors = fakesite.EXTRACTORS
    cog.resolver.search_prefix = "fakesearch"
    await cog.bot.get_command("musicset extractors allow")(world.ctx(), "fakesite")


async def test_a_playlist_starts_at_once_and_its_reply_ends_with_what_was_added(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    await use_fake_site(cog, media_server, world)
    ctx = world.ctx()
    await cog.musicset.get_command("maxplaylist")(ctx, 120)
    await cog.play(ctx, query=f"{media_server.base_url}/site/list/1000")
    reply = ctx.messages[-1]
    player = cog.manager.players[world.guild.id]
    await wait_for(lambda: any(e and e.startswith("Queued 120 tracks") for e in reply.edits), timeout=20)
    final = reply.edits[-1]
    assert "Fake list" in final and "limit of 120" in final
    assert len(player.queue) + (player.queue.current is not None) == 120
    # entries stay in playlist order
    titles = [t.title for t in player.queue.upcoming[:3]]
    assert titles == ["Entry 1", "Entry 2", "Entry 3"], titles
    await wait_for(lambda: player.state is PlayerState.PLAYING, timeout=10)
    assert player.queue.current.stream_url.endswith("/media/a440.webm")  # resolved when its turn came
    await cog.music_group.get_command("status")(ctx)
    assert "Cache hit rate" in ctx.last and "fakesite" in ctx.last
    await red.remove_cog("Music")


async def test_search_lists_results_and_queues_the_pick(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    await use_fake_site(cog, media_server, world)
    ctx = world.ctx()
    author_reply = asyncio.get_running_loop().create_future()

    async def fake_wait_for(event, *, check, timeout):
        return await author_reply

    red.wait_for = fake_wait_for  # type: ignore[method-assign]
    task = asyncio.create_task(cog.search(ctx, query="@everyone tones"))
    await wait_for(lambda: len(ctx.sent) >= 1)
    listing = ctx.last
    assert "1." in listing and "b880.webm" in listing
    assert "@everyone" not in listing  # the echoed query is defused
    author_reply.set_result(type("Msg", (), {"content": "2"})())
    await task
    player = cog.manager.players[world.guild.id]
    await wait_for(lambda: player.queue.current is not None and player.state is PlayerState.PLAYING)
    assert player.queue.current.title.endswith("b880.webm")
    await red.remove_cog("Music")


async def test_with_a_dj_role_others_vote_to_skip_and_cannot_stop(red: Red, media_server) -> None:
    from types import SimpleNamespace

    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    dj_role = 555
    await cog.store.set_guild(world.guild.id, "dj_role", dj_role)
    requester = world.member
    bea, cal = member_in(world.voice, "bea"), member_in(world.voice, "cal")
    dee = member_in(world.voice, "dee")
    dee.roles = [SimpleNamespace(id=dj_role)]

    def ctx_of(member):
        return FakeContext(red, world.guild, member)

    await cog.play(ctx_of(requester), query=media_server.url("long.mp3"))
    await cog.play(ctx_of(bea), query=media_server.url("a440.webm"))
    player = cog.manager.players[world.guild.id]
    await wait_for(lambda: player.state is PlayerState.PLAYING)
    first = player.queue.current.id

    ctx = ctx_of(bea)
    await cog.skip(ctx)
    assert ctx.last == "Vote to skip counted: 1/2."  # 4 listeners at 50%
    await cog.skip(ctx)  # voting twice counts once
    assert ctx.last == "Vote to skip counted: 1/2."
    with pytest.raises(CommandError, match="Only DJs"):
        await cog.stop(ctx_of(cal))
    with pytest.raises(CommandError, match="Only DJs"):
        await cog.queue.get_command("clear")(ctx_of(cal))
    assert player.queue.current.id == first and len(player.queue) == 1

    ctx = ctx_of(cal)
    await cog.skip(ctx)
    assert "Vote passed (2/2)" in ctx.sent[-2]["content"] and ctx.last.startswith("Skipped")
    await wait_for(lambda: player.queue.current is not None and player.queue.current.id != first)
    await cog.stop(ctx_of(dee))  # the DJ may
    await wait_for(lambda: player.queue.current is None and len(player.queue) == 0)
    await red.remove_cog("Music")


async def test_the_per_member_limit_refuses_with_a_sentence_and_keeps_the_queue(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    await cog.store.set_guild(world.guild.id, "max_per_member", 1)
    ctx = world.ctx()
    await cog.play(ctx, query=media_server.url("long.mp3"))  # playing, not upcoming
    await cog.play(ctx, query=media_server.url("a440.webm"))
    player = cog.manager.players[world.guild.id]
    before = [t.id for t in player.queue.upcoming]
    with pytest.raises(CommandError, match="limit per member"):
        await cog.play(ctx, query=media_server.url("b880.webm"))
    assert [t.id for t in player.queue.upcoming] == before
    await red.remove_cog("Music")


async def test_the_background_plays_when_idle_yields_to_the_queue_and_comes_back(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    ctx = world.ctx()
    # `musicset background` is for admins (Manage Server); the callback is called directly here
    world.member.guild_permissions = SimpleNamespace(manage_guild=True)
    await cog.summon(ctx)
    await cog.musicset.get_command("background")(ctx, url=media_server.url("a660.mp3"))
    player = cog.manager.players[world.guild.id]
    vc = world.guild.voice_client
    await wait_for(lambda: player.state is PlayerState.BACKGROUND and len(vc.packets) > 30)

    def recent_frequency(seconds: float = 0.4) -> float:
        pcm, _ = decode_opus_packets(vc.opus_packets()[-int(seconds / 0.02):])
        return dominant_frequency(pcm[int(0.06 * SECOND):])  # skip the decoder's warm-up

    assert abs(recent_frequency() - 660) < 10
    await cog.play(ctx, query=media_server.url("b880.webm"))
    await wait_for(lambda: player.state is PlayerState.PLAYING)
    await wait_for(lambda: player.position > 0.6)
    assert abs(recent_frequency() - 880) < 10, "the queued track took over from the background"
    assert player.queue.current is not None and player.background is not None
    # after the 3 s track the background returns
    await wait_for(lambda: player.state is PlayerState.BACKGROUND and player.queue.current is None, timeout=10)
    await asyncio.sleep(0.8)
    assert abs(recent_frequency() - 660) < 10
    await cog.stop(ctx)  # stop silences the background too
    await wait_for(lambda: player.state is PlayerState.IDLE)
    await red.remove_cog("Music")


async def test_music_stats_shows_frames_mode_and_ffmpeg_of_a_playing_guild(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    ctx = world.ctx()
    await cog.play(ctx, query=media_server.url("long.mp3"))
    player = cog.manager.players[world.guild.id]
    await wait_for(lambda: player.state is PlayerState.PLAYING and player.position > 0.5)
    await cog.music_group.get_command("stats")(ctx)
    line = ctx.last
    sent = int(line.split("sent ")[1].split()[0])
    assert sent >= 20 and "transcode (shared)" in line  # MP3 can't be copied: the shared worker
    pid = int(line.split("process ")[1].split()[0])
    assert pid == player.source.current_stream.pid == transcoder_workers(zombies=False)[0]
    await red.remove_cog("Music")


async def test_music_stats_shows_a_webm_copied_in_process_with_no_ffmpeg(red: Red, media_server) -> None:
    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    ctx = world.ctx()
    await cog.play(ctx, query=media_server.url("a440.webm"))
    player = cog.manager.players[world.guild.id]
    await wait_for(lambda: player.state is PlayerState.PLAYING and player.position > 0.3)
    running = ffmpeg_children(zombies=False)
    assert running == [], described(running)  # the copy runs in the bot's reader thread
    await cog.music_group.get_command("stats")(ctx)
    line = ctx.last
    assert "copy (in process, webm)" in line and line.rstrip("`\n ").endswith("process -")
    await red.remove_cog("Music")


async def test_without_dave_support_joining_is_refused_with_what_to_install(red: Red, media_server, monkeypatch) -> None:
    from discord import voice_state

    world = World(red)
    cog = await load_cog(red)
    await allow_loopback(cog)
    monkeypatch.setattr(voice_state, "has_dave", False)  # as if davey were not installed
    with pytest.raises(CommandError, match="pipinstall davey"):
        await cog.play(world.ctx(), query=media_server.url("a440.webm"))
    assert world.voice.connects == 0  # Discord would close with 4017: don't even try
    assert cog.manager.get(world.guild.id).queue.current is None
    await red.remove_cog("Music")

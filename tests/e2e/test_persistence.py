"""The queue and the position survive `[p]reload music` and a new Red process on the same data dir.

The track is a "ladder": one second each of 300, 400, ... 1800 Hz, so the tone heard tells the
position in the track to the second. The two tests run in order on one Red: the restart test
picks up the playback the reload test left running.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

import pytest

from music.store_chunks import CHUNK_GROUP, HEAD
from tests.e2e.conftest import MusicBot, near, queue_lines
from tests.support.media import generate_tone

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

LADDER = [300.0 + 100.0 * step for step in range(16)]  # Hz, one second each


@pytest.fixture(scope="module")
def ladder(media_dir: Path) -> str:
    generate_tone(media_dir / "ladder.webm", LADDER, 1.0, title="ladder")
    return "ladder.webm"


def ladder_second(hz: float) -> float:
    """Where in the ladder a tone is (seconds from the start of its step)."""
    return round((hz - LADDER[0]) / 100.0)


async def test_reload_during_playback_resumes_near_the_position_with_the_same_queue(
    music_bot: MusicBot, media_server, ladder: str
) -> None:
    w = music_bot.world
    ears = music_bot.ears
    await music_bot.standin.join_voice(w.member, w.music)
    assert (await music_bot.ask(w.member, f"!play {media_server.url(ladder)}")).content.startswith("Playing")
    assert (await music_bot.ask(w.member, f"!play {media_server.url('b880.webm')}")).content.startswith("Queued")
    queue_before = queue_lines(await music_bot.ask(w.member, "!queue"))
    assert len(queue_before) == 1 and "b880" in queue_before[0]
    await ears.wait_for_tone(700, packets=10, timeout=15)  # 4 s into the ladder

    said_at = time.monotonic()
    heard_before = ears.sound_after(0)
    reloaded = await music_bot.ask(w.owner, "!reload music", expect=lambda m: "music" in m.content)
    assert reloaded.content == "Reloaded `music`."
    # the unloaded cog flushed its state; the new one has not saved a position yet (every 5 s)
    saved = music_bot.saved_state()
    heard_seconds = len(heard_before) * 0.020
    print(f"\nheard {heard_seconds:.2f} s before the reload; saved position {saved['position']:.2f} s")
    assert abs(saved["position"] - heard_seconds) <= 3.0

    resumed = await ears.wait_for(lambda: ears.sound_after(said_at)[5:] or None, 15,
                                  "audio after the reload")
    last_before = [p for p in heard_before if p.arrival < said_at][-1].frequency
    first_after = resumed[0].frequency
    print(f"last tone before the reload {last_before:.0f} Hz, first after {first_after:.0f} Hz")
    # it goes on from where it was (the same second or up to 2 s later), not from the start
    assert 0 <= ladder_second(first_after) - ladder_second(last_before) <= 2
    assert queue_lines(await music_bot.ask(w.member, "!queue")) == queue_before


async def test_a_new_red_process_on_the_same_data_dir_has_the_queue_back_and_resumes(
    music_bot: MusicBot, media_server, ladder: str
) -> None:
    w = music_bot.world
    ears = music_bot.ears
    queue_before = queue_lines(await music_bot.ask(w.member, "!queue"))
    assert len(queue_before) == 1 and "b880" in queue_before[0]
    # let it play on a little so the position to come back to is well inside the track
    playing = await ears.wait_for(lambda: ears.sound_after(time.monotonic() - 0.1) or None, 5,
                                  "the ladder still playing")
    await ears.wait_for_tone(playing[-1].frequency + 100, after=time.monotonic(), packets=5, timeout=3)
    last_before = ears.sound_after(0)[-1].frequency

    code = await music_bot.red.stop()  # SIGINT: Red's graceful shutdown unloads the cog
    assert code == 0, music_bot.red.log_tail()
    saved = music_bot.saved_state()
    print(f"\nlast tone before the restart {last_before:.0f} Hz; saved position {saved['position']:.2f} s")
    assert abs(saved["position"] - (ladder_second(last_before) + 0.5)) <= 3.0

    music_bot.audio.clear()
    await music_bot.red.start()  # same data dir; the installed cog loads at startup
    started_at = time.monotonic()
    assert queue_lines(await music_bot.ask(w.member, "!queue")) == queue_before
    resumed = await ears.wait_for(lambda: ears.sound_after(0)[5:] or None, 20,
                                  "audio after the restart")
    print(f"first tone after the restart {resumed[0].frequency:.0f} Hz, "
          f"{resumed[0].arrival - started_at:.1f} s after Red answered")
    assert music_bot.standin.bot_voice_channel(w.guild) is w.music  # it rejoined by itself
    assert 0 <= ladder_second(resumed[0].frequency) - ladder_second(last_before) <= 2

    stopped = await music_bot.ask(w.member, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."


def _edit_saved_tracks(music_bot: MusicBot, edit) -> None:
    """Rewrite the saved tracks (current and upcoming) in Red's JSON Config file, as a hand edit,
    another cog or a restored backup could (Red is stopped)."""
    path = music_bot.red.instance.data_dir / "cogs" / "Music" / "settings.json"
    data = json.loads(path.read_text())
    (per_identifier,) = data.values()
    gid = str(music_bot.world.guild.id)
    head = per_identifier["GUILD"][gid][HEAD]
    edit(head["queue"]["current"])
    for chunk in per_identifier.get(CHUNK_GROUP, {}).get(gid, {}).values():
        for track in chunk["tracks"]:
            edit(track)
    path.write_text(json.dumps(data))


async def test_stored_stream_urls_are_looked_up_again_after_a_restart(music_bot: MusicBot, media_server,
                                                                      media_dir: Path) -> None:
    """A saved track whose stream URL has not expired is not played as stored: after a restart it
    goes through the same lookup and checks as a new `play`. Before, a stored `file:` URL made
    ffmpeg read a local file, and a stored `tcp:` URL opened a socket around the network guard."""
    w = music_bot.world
    ears = music_bot.ears
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        await music_bot.standin.join_voice(w.member, w.music)
        assert (await music_bot.ask(w.member, f"!play {media_server.url('long.mp3')}")).content.startswith("Playing")
        assert (await music_bot.ask(w.member, f"!play {media_server.url('b880.webm')}")).content.startswith("Queued")
        await ears.wait_for_tone(330, packets=10, timeout=15)
        assert await music_bot.red.stop() == 0, music_bot.red.log_tail()

        def poison(track: dict) -> None:
            target = f"file://{media_dir / 'a660.mp3'}" if "long" in track["query"] else f"tcp://127.0.0.1:{port}"
            track.update(stream_url=target, stream_expires=time.time() + 6 * 3600, container="mp3", acodec="mp3")

        _edit_saved_tracks(music_bot, poison)
        music_bot.audio.clear()
        await music_bot.red.start()
        resumed = await ears.wait_for(lambda: ears.sound_after(0)[10:] or None, 20, "audio after the restart")
        heard = {round(p.frequency) for p in resumed if p.frequency}
        assert any(near(f, 330) for f in heard) and not any(near(f, 660) for f in heard), heard
        skipped = await music_bot.ask(w.member, "!skip")
        assert skipped.content.startswith("Skipped"), skipped.content
        await ears.wait_for_tone(880, after=time.monotonic(), packets=5, timeout=15)
        with contextlib.suppress(BlockingIOError):
            connection, _ = listener.accept()
            connection.close()
            raise AssertionError("a stored tcp: URL reached the listener")
    finally:
        listener.close()
    stopped = await music_bot.ask(w.member, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."

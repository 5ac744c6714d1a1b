"""A member in the voice channel types commands to a real Red bot running the music cog (installed
through Downloader); the stand-in's voice server decodes what the bot sends and we check it.

Tests run in file order on one Red; each leaves the player idle. The empty-channel test is last
because it makes the bot leave voice.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from standin.analysis import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    packets_between_tones,
    segment_by_frequency,
)
from tests.e2e.conftest import MusicBot, near, queue_lines, since

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE


@pytest.fixture(autouse=True)
def clean_recording(music_bot: MusicBot):
    """Each test hears only its own audio; faults never outlive a test."""
    music_bot.audio.clear()
    yield
    music_bot.standin.clear_faults()


async def join(music_bot: MusicBot) -> None:
    w = music_bot.world
    if music_bot.standin.voice_channel_of(w.member) is not w.music:
        await music_bot.standin.join_voice(w.member, w.music)


async def play(music_bot: MusicBot, name: str, media_server) -> str:
    reply = await music_bot.ask(music_bot.world.member, f"!play {media_server.url(name)}")
    assert reply.content.startswith(("Playing", "Queued")), reply.content
    return reply.content


async def stop_and_wait_quiet(music_bot: MusicBot) -> None:
    reply = await music_bot.ask(music_bot.world.member, "!stop")
    assert reply.content == "Stopped, and cleared the queue."
    await music_bot.audio.wait_for_quiet(1.0, timeout=10)


async def test_two_queued_tracks_play_in_order_at_their_frequencies(music_bot: MusicBot, media_server) -> None:
    await join(music_bot)
    first = await play(music_bot, "a440.webm", media_server)
    second = await play(music_bot, "b880.webm", media_server)
    assert first.startswith("Playing **a440**")
    assert second.startswith("Queued **b880**")
    assert music_bot.standin.bot_voice_channel(music_bot.world.guild) is music_bot.world.music

    audio = music_bot.audio
    ears = music_bot.ears
    await ears.wait_for_tone(880, packets=100, timeout=20)
    await audio.wait_for_quiet(1.0, timeout=10)  # the queue ran out: the bot stops sending

    segments = segment_by_frequency(audio)
    assert [round(s.frequency / 10) * 10 for s in segments] == [440, 880], segments
    for segment in segments:
        assert 2.6 <= segment.duration <= 3.2, segment  # each file is 3.0 s
    between = packets_between_tones(audio, 440, 880)
    print(f"\nframes between a440 and b880: {len(between)} ({[p.kind for p in between]})")
    # the cog splices the next track in inside the audio source: a handful of frames at most
    assert len(between) <= 5, between
    assert audio.ogg_header_packets == 0  # no OpusHead/OpusTags sent as audio
    queue = await music_bot.ask(music_bot.world.member, "!queue")
    assert queue.text == "The queue is empty."


async def test_pause_silences_the_channel_and_resume_continues_where_it_was(music_bot: MusicBot, media_server) -> None:
    # steps.webm is 300, 500, 700, 900, 1100 Hz, one second each: the tone says where we are
    await join(music_bot)
    audio = music_bot.audio
    ears = music_bot.ears
    await play(music_bot, "steps.webm", media_server)
    await ears.wait_for_tone(500, packets=5)

    paused = await music_bot.ask(music_bot.world.member, "!pause")
    assert paused.content == "Paused."
    paused_at = time.monotonic()
    last_before = ears.sound_after(0)[-1].frequency
    # Observing an absence needs a stretch of time: 1.5 s, of which the first 0.3 s may still
    # carry the frames already on their way and discord.py's five trailing silence frames.
    await asyncio.sleep(1.5)
    during = [p for p in ears.infos() if p.arrival > paused_at + 0.3]
    assert all(p.kind == "silence" for p in during), [(p.kind, round(p.frequency)) for p in during]

    resumed = await music_bot.ask(music_bot.world.member, "!resume")
    assert resumed.content == "Resumed."
    resumed_at = time.monotonic()
    after = await ears.wait_for_tone(900, after=resumed_at, packets=5, timeout=10)
    first_after = ears.sound_after(resumed_at)[0]
    # the same step as before the pause, or the next one; never the start of the track again
    assert near(first_after.frequency, last_before) or near(first_after.frequency, last_before + 200), (
        last_before, first_after)
    assert not any(near(p.frequency, 300) for p in ears.sound_after(resumed_at))
    assert after
    await audio.wait_for_quiet(1.0, timeout=10)


async def test_skip_moves_to_the_next_track(music_bot: MusicBot, media_server) -> None:
    await join(music_bot)
    audio = music_bot.audio
    ears = music_bot.ears
    await play(music_bot, "long.mp3", media_server)  # 330 Hz for 30 s
    await play(music_bot, "b880.webm", media_server)
    await ears.wait_for_tone(330, packets=25)

    skipped = await music_bot.ask(music_bot.world.member, "!skip")
    assert skipped.content == "Skipped **long** (0:30)."
    skipped_at = time.monotonic()
    await ears.wait_for_tone(880, after=skipped_at, packets=5, timeout=5)
    first_880 = next(p for p in ears.sound_after(skipped_at) if near(p.frequency, 880))
    assert first_880.arrival - skipped_at < 2.0
    await audio.wait_for_quiet(1.0, timeout=10)
    # long.mp3 was cut after a second or two, not played out
    heard_330 = [s for s in segment_by_frequency(audio) if near(s.frequency, 330)]
    assert sum(s.duration for s in heard_330) < 5.0


async def test_seek_lands_at_the_asked_offset(music_bot: MusicBot, media_server) -> None:
    await join(music_bot)
    audio = music_bot.audio
    ears = music_bot.ears
    await play(music_bot, "steps.webm", media_server)
    await ears.wait_for_tone(300, packets=10)

    sought = await music_bot.ask(music_bot.world.member, "!seek 3")
    assert sought.content == "Seeking to 0:03."
    sought_at = time.monotonic()
    await ears.wait_for_tone(900, after=sought_at, packets=10, timeout=5)
    await audio.wait_for_quiet(1.0, timeout=10)
    after = [s for s in segment_by_frequency(audio, min_packets=3) if s.start > sought_at]
    # 3 s into steps.webm is the 900 Hz step; 500 and 700 Hz are jumped over
    assert [round(s.frequency / 100) * 100 for s in after][:2] == [900, 1100], after
    assert 0.7 <= after[0].duration <= 1.1


async def test_volume_50_halves_the_level(music_bot: MusicBot, media_server) -> None:
    await join(music_bot)
    ears = music_bot.ears
    await play(music_bot, "long.mp3", media_server)
    full = await ears.wait_for_tone(330, packets=60)
    level_100 = ears.level(full[10:60])  # past the first frames (encoder ramp-up)

    changed = await music_bot.ask(music_bot.world.member, "!volume 50")
    assert changed.content == "Volume set to 50%."
    changed_at = time.monotonic()
    half = await ears.wait_for_tone(330, after=changed_at, packets=90, timeout=10)
    # skip the frames already buffered at the old volume and the restart's ramp-up
    level_50 = ears.level(half[40:90])
    ratio = level_50 / level_100
    print(f"\nRMS at 100%: {level_100:.4f}, at 50%: {level_50:.4f}, ratio {ratio:.3f}")
    assert 0.4 <= ratio <= 0.6

    shown = await music_bot.ask(music_bot.world.member, "!volume")
    assert shown.content == "Volume: 50%."
    restore = await music_bot.ask(music_bot.world.member, "!volume 100")
    assert restore.content == "Volume set to 100%."
    await stop_and_wait_quiet(music_bot)


async def test_stop_ends_the_audio_and_empties_the_queue(music_bot: MusicBot, media_server) -> None:
    await join(music_bot)
    audio = music_bot.audio
    ears = music_bot.ears
    await play(music_bot, "long.mp3", media_server)
    await play(music_bot, "b880.webm", media_server)
    await play(music_bot, "a440.webm", media_server)
    await ears.wait_for_tone(330, packets=10)
    before = await music_bot.ask(music_bot.world.member, "!queue")
    assert len(queue_lines(before)) == 2, before.text

    stopped = await music_bot.ask(music_bot.world.member, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."
    stopped_at = time.monotonic()
    await audio.wait_for_quiet(1.0, timeout=5)
    assert audio.packets[-1].arrival - stopped_at < 1.0  # it stopped promptly
    assert not any(near(p.frequency, 880) or near(p.frequency, 440) for p in ears.sound_after(0))
    after = await music_bot.ask(music_bot.world.member, "!queue")
    assert after.text == "The queue is empty."


async def test_the_bot_leaves_when_the_channel_empties(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    setting = await music_bot.ask(w.owner, "!musicset emptydisconnect 2")
    assert setting.content == "I'll leave an empty channel after 0:02."
    await join(music_bot)
    await play(music_bot, "long.mp3", media_server)
    await music_bot.ears.wait_for_tone(330, packets=10)
    assert music_bot.standin.bot_voice_channel(w.guild) is w.music

    await music_bot.standin.leave_voice(w.member)
    left_at = time.monotonic()
    await music_bot.standin.wait_for_bot_voice(w.guild, None, timeout=10)
    took = since(left_at)
    print(f"\nthe bot left the empty channel {took:.1f} s after the last member")
    # 2 s setting, checked by the cog's monitor every few seconds
    assert 2.0 <= took <= 6.0
    notice = await music_bot.standin.wait_for_message(
        w.general, lambda m: "Everyone left" in m.content, after=0, timeout=5)
    assert "The queue is kept" in notice.content
    await music_bot.audio.wait_for_quiet(1.0, timeout=5)

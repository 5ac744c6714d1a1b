"""Server controls through the stand-in with a real Red bot: the DJ role and skip votes, the fair
queue, now-playing messages that replace each other, pausing while nobody listens, the
background stream, and leaving when idle. (Leaving an empty channel is in test_playback.py.)

Tests run in file order on one Red, each turning its setting off again; the idle-disconnect test
is last because it makes the bot leave voice.
"""

from __future__ import annotations

import re
import statistics
import time

import pytest

from standin import Member
from standin.server import DefaultWorld
from tests.e2e.conftest import MusicBot, near, queue_lines, since

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def member2(music_bot: MusicBot) -> Member:
    """A second listener with no role, for votes and the fair queue."""
    return music_bot.standin.add_member(music_bot.world.guild, "member2")


@pytest.fixture(autouse=True)
def clean_recording(music_bot: MusicBot):
    music_bot.audio.clear()


async def in_voice(music_bot: MusicBot, *members: Member) -> None:
    """Exactly `members` (besides the bot) are in the Music channel."""
    s, w = music_bot.standin, music_bot.world
    wanted = {m.id for m in members}
    for m in w.guild.members.values():
        if m.id == w.bot.id:
            continue
        here = s.voice_channel_of(m) is w.music
        if m.id in wanted and not here:
            await s.join_voice(m, w.music)
        elif m.id not in wanted and s.voice_channel_of(m) is not None:
            await s.leave_voice(m)


async def play(music_bot: MusicBot, member: Member, name: str, media_server) -> str:
    reply = await music_bot.ask(member, f"!play {media_server.url(name)}")
    assert reply.content.startswith(("Playing", "Queued")), reply.content
    return reply.content


async def setting(music_bot: MusicBot, command: str, answer: str) -> None:
    reply = await music_bot.ask(music_bot.world.owner, command)
    assert reply.content == answer, reply.content


def queued_titles(text_lines: list[str]) -> list[str]:
    return [re.search(r"\*\*(.+?)\*\*", line).group(1) for line in text_lines]  # type: ignore[union-attr]


async def test_members_vote_to_skip_and_a_dj_skips_at_once(music_bot: MusicBot, member2: Member,
                                                           media_server) -> None:
    w: DefaultWorld = music_bot.world
    ears = music_bot.ears
    await setting(music_bot, "!musicset dj DJ", f"DJ role set to <@&{w.dj_role.id}>. Other listeners now vote to skip.")
    await setting(music_bot, "!musicset vote 50", "A track skips when 50% of the listeners vote.")
    await in_voice(music_bot, w.member, member2, w.dj)  # 3 listeners at 50%: 2 votes skip
    # the DJ queues, so neither voter is the requester (a requester skips their own at once)
    await play(music_bot, w.dj, "long.mp3", media_server)
    await play(music_bot, w.dj, "b880.webm", media_server)
    await ears.wait_for_tone(330, packets=10)

    first = await music_bot.ask(w.member, "!skip")
    assert first.content == "Vote to skip counted: 1/2."
    again = await music_bot.ask(w.member, "!skip")
    assert again.content == "Vote to skip counted: 1/2."  # one member, one vote
    voted_at = time.monotonic()
    await ears.wait_for_tone(330, after=voted_at, packets=25)  # still the same track
    assert not any(near(p.frequency, 880) for p in ears.sound_after(voted_at))

    passed = await music_bot.ask(member2, "!skip")
    assert passed.content == "Vote passed (2/2)."
    passed_at = time.monotonic()
    await music_bot.standin.wait_for_message(w.general, lambda m: m.content == "Skipped **long** (0:30).",
                                             after=passed, timeout=5)
    heard = await ears.wait_for_tone(880, after=passed_at, packets=5, timeout=5)
    assert heard[0].arrival - passed_at < 2.0
    await music_bot.audio.wait_for_quiet(1.0, timeout=10)

    # member2 queues this time: the DJ's skip needs no vote
    await play(music_bot, member2, "long.mp3", media_server)
    await play(music_bot, member2, "a440.webm", media_server)
    await ears.wait_for_tone(330, after=passed_at + 3, packets=10)
    dj_skip = await music_bot.ask(w.dj, "!skip")
    assert dj_skip.content == "Skipped **long** (0:30)."
    skipped_at = time.monotonic()
    heard = await ears.wait_for_tone(440, after=skipped_at, packets=5, timeout=5)
    assert heard[0].arrival - skipped_at < 2.0
    await music_bot.audio.wait_for_quiet(1.0, timeout=10)


async def test_only_djs_stop_the_music(music_bot: MusicBot, member2: Member, media_server) -> None:
    w = music_bot.world
    ears = music_bot.ears
    await play(music_bot, w.member, "long.mp3", media_server)
    await ears.wait_for_tone(330, packets=10)

    # refused even for the track's own requester: stop clears everyone's queue
    refused = await music_bot.ask(w.member, "!stop")
    assert refused.content == "Only DJs can stop the music here."
    refused_at = time.monotonic()
    await ears.wait_for_tone(330, after=refused_at, packets=25)  # it plays on

    stopped = await music_bot.ask(w.dj, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."
    await music_bot.audio.wait_for_quiet(1.0, timeout=5)
    await setting(music_bot, "!musicset dj off", "The DJ role is off: every listener controls the music.")


async def test_with_a_dj_role_listeners_cannot_go_back_repeat_or_reorder(music_bot: MusicBot, member2: Member,
                                                                          media_server) -> None:
    """The holes of the old DJ mode: any listener could `prev` (ending the current track with no
    vote), set `repeat`, turn `shuffle` on and `queue shuffle` everyone's tracks."""
    w = music_bot.world
    ears = music_bot.ears
    await setting(music_bot, "!musicset dj DJ", f"DJ role set to <@&{w.dj_role.id}>. Other listeners now vote to skip.")
    await in_voice(music_bot, w.member, member2, w.dj)
    await play(music_bot, w.dj, "a440.webm", media_server)
    await ears.wait_for_tone(440, packets=5)
    await music_bot.ask(w.dj, "!skip")  # a440 goes to the history: `prev` has something to go back to
    await play(music_bot, w.dj, "long.mp3", media_server)
    for name in ("b880.webm", "a660.mp3", "a440.webm"):
        await play(music_bot, w.dj, name, media_server)
    await ears.wait_for_tone(330, packets=10)
    queue_before = queue_lines(await music_bot.ask(w.member, "!queue"))

    refusals = {
        "!prev": "Only DJs can go back a track here.",
        "!repeat track": "Only DJs can change repeat here.",
        "!shuffle": "Only DJs can turn shuffle on or off here.",
        "!queue shuffle": "Only DJs can shuffle the queue here.",
        "!pause": "Only DJs can pause the music here.",
    }
    asked = time.monotonic()
    for command, sentence in refusals.items():
        reply = await music_bot.ask(member2, command)
        assert reply.content == sentence, (command, reply.content)
    await ears.wait_for_tone(330, after=asked, packets=25)  # the same track plays on
    assert queue_lines(await music_bot.ask(w.member, "!queue")) == queue_before
    assert (await music_bot.ask(w.member, "!repeat")).content == "Repeat is off."

    # the DJ may: the previous track comes back at once
    back = await music_bot.ask(w.dj, "!prev")
    assert back.content.startswith("Going back to **"), back.content
    await ears.wait_for_tone(440, after=time.monotonic(), packets=5)
    stopped = await music_bot.ask(w.dj, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."
    await music_bot.audio.wait_for_quiet(1.0, timeout=5)
    await setting(music_bot, "!musicset dj off", "The DJ role is off: every listener controls the music.")


async def test_fair_queue_lets_requesters_take_turns(music_bot: MusicBot, member2: Member, media_server) -> None:
    w = music_bot.world
    await setting(music_bot, "!musicset fairqueue on", "Fair queue is on: requesters take turns.")
    await in_voice(music_bot, w.member, member2)
    await play(music_bot, w.member, "long.mp3", media_server)  # plays: the rest stays queued
    assert (await play(music_bot, w.member, "a440.webm", media_server)) == "Queued **a440** (0:03) next."
    assert (await play(music_bot, w.member, "b880.webm", media_server)) == "Queued **b880** (0:03) at position 2."
    # member2's first track goes ahead of member's second; their second after it
    assert (await play(music_bot, member2, "a660.mp3", media_server)) == "Queued **a660** (0:03) at position 2."
    assert (await play(music_bot, member2, "steps.webm", media_server)) == "Queued **steps** (0:05) at position 4."

    listing = await music_bot.ask(w.member, "!queue")
    assert queued_titles(queue_lines(listing)) == ["a440", "a660", "b880", "steps"], listing.text

    assert (await music_bot.ask(w.member, "!stop")).content == "Stopped, and cleared the queue."
    # (the stop may come before long.mp3's first packet: nothing at all is quiet too)
    await music_bot.audio.wait_for_quiet(1.0, timeout=5, sound_expected=False)
    await setting(music_bot, "!musicset fairqueue off", "Fair queue is off.")


async def test_now_playing_message_is_replaced_by_the_next_one(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    s = music_bot.standin
    await setting(music_bot, "!musicset notify on", "Now-playing messages are on.")
    await in_voice(music_bot, w.member)
    start = s.marker()
    await play(music_bot, w.member, "a440.webm", media_server)
    await play(music_bot, w.member, "b880.webm", media_server)

    first = await s.wait_for_message(w.general, lambda m: m.content.startswith("Now playing: **a440**"),
                                     after=start, timeout=10)
    assert not first.deleted
    second = await s.wait_for_message(w.general, lambda m: m.content.startswith("Now playing: **b880**"),
                                      after=first, timeout=10)
    await s.wait_until(lambda: first.deleted, 5, "the first now-playing message to be deleted")
    assert not second.deleted
    live = [m for m in s.bot_messages(w.general)
            if m.id > start and m.content.startswith("Now playing:") and not m.deleted]
    assert live == [second]
    await music_bot.audio.wait_for_quiet(1.0, timeout=10)


async def test_pause_when_alone_pauses_and_resumes_where_it_was(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    s = music_bot.standin
    ears = music_bot.ears
    await setting(music_bot, "!musicset pausealone on", "Pause when alone is on.")
    await in_voice(music_bot, w.member)
    # steps.webm is 300, 500, 700, 900, 1100 Hz, one second each: the tone says where we are
    await play(music_bot, w.member, "steps.webm", media_server)
    await ears.wait_for_tone(500, packets=5)

    await s.leave_voice(w.member)
    left_at = time.monotonic()
    await music_bot.audio.wait_for_quiet(1.0, timeout=6)
    paused_after = music_bot.audio.packets[-1].arrival - left_at
    print(f"\nlast packet {paused_after:.2f} s after the last listener left")
    assert paused_after < 3.0  # the monitor looks every second
    # each side's tone from the median of five packets: a packet at a step boundary decodes to
    # a blend of two steps (a 500 -> 700 Hz boundary read as 677 Hz)
    last_tone = statistics.median(p.frequency for p in ears.sound_after(0)[-5:])
    assert s.bot_voice_channel(w.guild) is w.music  # paused, not gone (emptydisconnect is 60 s)

    await s.join_voice(w.member, w.music)
    back_at = time.monotonic()
    await ears.wait_for_tone(1100, after=back_at, packets=5, timeout=6)
    first_back = ears.sound_after(back_at)[0]
    back_tone = statistics.median(p.frequency for p in ears.sound_after(back_at)[:5])
    print(f"resumed {first_back.arrival - back_at:.2f} s after the listener came back")
    # the step it paused in, or the next: the track went on rather than starting over
    assert near(back_tone, last_tone) or near(back_tone, last_tone + 200), (last_tone, back_tone)
    assert not any(near(p.frequency, 300) for p in ears.sound_after(back_at))
    await music_bot.audio.wait_for_quiet(1.0, timeout=10)
    await setting(music_bot, "!musicset pausealone off", "Pause when alone is off.")


async def test_background_plays_while_idle_yields_to_the_queue_and_returns(music_bot: MusicBot,
                                                                          media_server) -> None:
    w = music_bot.world
    ears = music_bot.ears
    await in_voice(music_bot, w.member)
    assert music_bot.standin.bot_voice_channel(w.guild) is w.music  # idle there since the last test
    set_at = time.monotonic()
    await setting(music_bot, f"!musicset background {media_server.url('a660.mp3')}",
                  "Background set: it plays whenever the queue is empty.")
    await ears.wait_for_tone(660, after=set_at, packets=10, timeout=10)

    await play(music_bot, w.member, "b880.webm", media_server)
    queued_at = time.monotonic()
    heard_880 = await ears.wait_for_tone(880, after=queued_at, packets=5, timeout=5)
    assert heard_880[0].arrival - queued_at < 2.0  # the background gave way at once
    # b880 lasts 3 s; then the background comes back by itself
    await ears.wait_for_tone(660, after=heard_880[-1].arrival, packets=10, timeout=10)

    await setting(music_bot, "!musicset background off", "The background is off.")
    await music_bot.audio.wait_for_quiet(1.0, timeout=5)


async def test_idle_disconnect_leaves_soon_after_the_queue_ends(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    await in_voice(music_bot, w.member)
    await play(music_bot, w.member, "a440.webm", media_server)
    await music_bot.ears.wait_for_tone(440, packets=5)
    # set while playing: the bot has been idle before, and that idle time must not count
    await setting(music_bot, "!musicset idledisconnect 2", "I'll leave after 0:02 with nothing playing.")
    await music_bot.audio.wait_for_quiet(0.5, timeout=10)
    ended_at = music_bot.audio.packets[-1].arrival
    assert music_bot.standin.bot_voice_channel(w.guild) is w.music

    await music_bot.standin.wait_for_bot_voice(w.guild, None, timeout=10)
    took = since(ended_at)
    print(f"\nthe bot left {took:.1f} s after the music stopped")
    assert 1.8 <= took <= 4.5  # 2 s setting, checked by the monitor every second

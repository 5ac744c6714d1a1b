"""Buttons and menus through the stand-in with a real Red bot (issue 16): the "Now playing"
message's buttons obey the same rules as the commands (a DJ's skip is heard at once, other
listeners vote, once each; refusals are private sentences), the message is kept current without
more than one edit per interval, `search` offers a select menu, and `queue` pages with buttons.

One Red for the module (with the fake site's yt-dlp plugin, for `search`); tests run in file
order, each leaving the queue empty. Tracks are this module's own 8-second tones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from music.ui.live import LIVE_EDIT_INTERVAL
from standin import Member, Message, Standin
from standin.server import DefaultWorld
from tests.e2e.conftest import MusicBot, near, stop_music
from tests.e2e.test_resolution import running_fakesite_bot
from tests.support.media import MediaServer, generate_tone

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SECONDS = 8.0
TONES = {"t330.webm": 330.0, "t550.webm": 550.0, "t770.webm": 770.0, "t990.webm": 990.0}
SKIP = "music:np:skip"


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    root = tmp_path_factory.mktemp("component-media")
    for name, hz in TONES.items():
        generate_tone(root / name, hz, SECONDS, title=f"Tone {int(hz)}")
    server = MediaServer(root).start()
    yield server
    server.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def music_bot(standin: Standin, world: DefaultWorld, cog_snapshot: Path,
                    allowed_networks: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory,
                    media_server):
    async with running_fakesite_bot(standin, world, cog_snapshot, allowed_networks, tmp_path_factory,
                                    media_server.base_url) as bot:
        yield bot


@pytest.fixture(scope="module")
def member2(music_bot: MusicBot) -> Member:
    return music_bot.standin.add_member(music_bot.world.guild, "member2")


@pytest.fixture(scope="module")
def outsider(music_bot: MusicBot) -> Member:
    """A member with no role who stays out of the voice channel."""
    return music_bot.standin.add_member(music_bot.world.guild, "outsider")


@pytest.fixture(autouse=True)
def clean_recording(music_bot: MusicBot):
    music_bot.audio.clear()


async def owner_says(music_bot: MusicBot, command: str, answer: str) -> None:
    reply = await music_bot.ask(music_bot.world.owner, command)
    assert reply.content == answer, reply.content


async def queue_tones(music_bot: MusicBot, member: Member, tones: MediaServer, *names: str) -> None:
    for name in names:
        reply = await music_bot.ask(member, f"!play {tones.url(name)}")
        assert reply.content.startswith(("Playing", "Queued")), reply.content


async def live_message(music_bot: MusicBot, title: str, *, after: int) -> Message:
    """The "Now playing" message of `title` posted after `after`, with its buttons."""
    s, w = music_bot.standin, music_bot.world
    return await s.wait_for_message(
        w.general, lambda m: m.content.startswith(f"Now playing: **{title}**") and bool(m.components) and not m.deleted,
        after=after, timeout=20)


def button_ids(message: Message) -> list[str]:
    return [c.get("custom_id") for row in message.components for c in row.get("components", [])]


def no_errors_in_log(music_bot: MusicBot) -> None:
    log = music_bot.red.log_text()
    assert "Traceback" not in log and "Ignoring exception" not in log, music_bot.red.log_tail(60)


async def test_the_skip_button_is_a_heard_skip_for_a_dj(music_bot: MusicBot, member2: Member, tones) -> None:
    s, w = music_bot.standin, music_bot.world
    ears = music_bot.ears
    await owner_says(music_bot, "!musicset dj DJ",
                     f"DJ role set to <@&{w.dj_role.id}>. Other listeners now vote to skip.")
    await owner_says(music_bot, "!musicset vote 50", "A track skips when 50% of the listeners vote.")
    for member in (w.member, member2, w.dj):  # 3 listeners at 50%: 2 votes skip
        await s.join_voice(member, w.music)
    start = s.marker()
    await queue_tones(music_bot, w.dj, tones, "t330.webm", "t550.webm", "t770.webm", "t990.webm")
    first = await live_message(music_bot, "Tone 330", after=start)
    assert button_ids(first) == ["music:np:previous", "music:np:pause", SKIP, "music:np:stop",
                                 "music:np:shuffle", "music:np:repeat", "music:np:queue"]
    assert f"(asked for by <@{w.dj.id}>)" in first.content
    await ears.wait_for_tone(330, packets=10)

    clicked_at = time.monotonic()
    click = await s.click(w.dj, first, SKIP)
    answer = await s.wait_for_answer(click)
    assert answer.content == f"<@{w.dj.id}> skipped **Tone 330** (0:08)." and s.seen_by(answer) is None
    heard = await ears.wait_for_tone(550, after=clicked_at, packets=5, timeout=5)
    print(f"\nDJ's Skip click to the next track heard: {heard[0].arrival - clicked_at:.2f} s")
    assert heard[0].arrival - clicked_at < 2.0
    assert not any(near(p.frequency, 330) for p in ears.sound_after(heard[0].arrival))
    # one live message: the old one went, the next track's has the buttons
    second = await live_message(music_bot, "Tone 550", after=first.id)
    await s.wait_until(lambda: first.deleted, 5, "the first now-playing message to go")
    assert not second.deleted


async def test_listeners_vote_with_the_skip_button_once_each(music_bot: MusicBot, member2: Member) -> None:
    s, w = music_bot.standin, music_bot.world
    ears = music_bot.ears
    live = await live_message(music_bot, "Tone 550", after=0)
    await ears.wait_for_tone(550, packets=5)
    mark = s.marker()
    # a double click: the second arrives before the first is answered
    one = await s.click(w.member, live, SKIP)
    two = await s.click(w.member, live, SKIP)
    for click in (one, two):
        answer = await s.wait_for_answer(click)
        assert answer.content == "Vote to skip counted: 1/2.", answer.content
        assert answer.ephemeral and s.seen_by(answer) is w.member
    assert [m.content for m in s.private_answers(member2, after=mark)] == []
    voted_at = time.monotonic()
    await ears.wait_for_tone(550, after=voted_at, packets=25)  # the same track plays on
    assert not any(near(p.frequency, 770) for p in ears.sound_after(voted_at))

    passed_at = time.monotonic()
    passed = await s.wait_for_answer(await s.click(member2, live, SKIP))
    assert passed.content == "Vote passed (2/2): skipped **Tone 550** (0:08)." and not passed.ephemeral
    heard = await ears.wait_for_tone(770, after=passed_at, packets=5, timeout=5)
    print(f"\nthe passing vote's click to the next track heard: {heard[0].arrival - passed_at:.2f} s")
    assert heard[0].arrival - passed_at < 2.0


async def test_a_dj_s_double_click_skips_one_track(music_bot: MusicBot) -> None:
    s, w = music_bot.standin, music_bot.world
    ears = music_bot.ears
    live = await live_message(music_bot, "Tone 770", after=0)
    await ears.wait_for_tone(770, packets=5)
    clicked_at = time.monotonic()
    one = await s.click(w.dj, live, SKIP)
    two = await s.click(w.dj, live, SKIP)
    answers = [await s.wait_for_answer(one), await s.wait_for_answer(two)]
    assert answers[0].content == f"<@{w.dj.id}> skipped **Tone 770** (0:08)."
    assert answers[1].content == "That track is already ending; nothing more was done."
    assert s.seen_by(answers[1]) is w.dj
    await ears.wait_for_tone(990, after=clicked_at, packets=40, timeout=6)  # 990 plays on: not skipped too
    reply = await music_bot.ask(w.dj, "!queue")
    assert "Now: **Tone 990**" in reply.text and "0 track(s) queued" in reply.text, reply.text


async def test_refusals_are_private_sentences_and_change_nothing(music_bot: MusicBot, outsider: Member) -> None:
    s, w = music_bot.standin, music_bot.world
    ears = music_bot.ears
    live = await live_message(music_bot, "Tone 990", after=0)
    mark = s.marker()
    away = await s.wait_for_answer(await s.click(outsider, live, "music:np:pause"))
    assert away.content == f"Join {w.music.mention} to control the music." and s.seen_by(away) is outsider
    not_dj = await s.wait_for_answer(await s.click(w.member, live, "music:np:stop"))
    assert not_dj.content == "Only DJs can stop the music here." and s.seen_by(not_dj) is w.member
    # the Queue button only reads: anyone may look, privately
    listing = await s.wait_for_answer(await s.click(outsider, live, "music:np:queue"))
    assert listing.ephemeral and s.seen_by(listing) is outsider and "Now: **Tone 990**" in listing.text
    public = [m for m in s.bot_messages(w.general) if m.id > mark and not m.ephemeral]
    assert public == []  # nothing in the channel for anyone else
    await ears.wait_for_tone(990, after=time.monotonic(), packets=10, timeout=5)  # it plays on
    await stop_music(music_bot, by=music_bot.world.dj)
    no_errors_in_log(music_bot)


async def test_the_message_is_kept_current_in_spaced_edits(music_bot: MusicBot, tones) -> None:
    s, w = music_bot.standin, music_bot.world
    start = s.marker()
    requests_from = len(s.requests)
    await queue_tones(music_bot, w.dj, tones, "t330.webm", "t550.webm")
    first = await live_message(music_bot, "Tone 330", after=start)
    posted_at = time.monotonic()
    await live_message(music_bot, "Tone 550", after=first.id)  # the 8-second track played through
    patches = [r.started for r in s.requests[requests_from:]
               if r.method == "PATCH" and r.path.endswith(f"/messages/{first.id}")]
    assert patches, "the position bar never moved"
    gaps = [b - a for a, b in zip([posted_at, *patches], patches)]  # the first from the post
    print(f"\nlive message edits during an {SECONDS:.0f} s track: {len(patches)}, "
          f"gaps (the first from the post) {[round(g, 2) for g in gaps]} s")
    assert all(gap >= LIVE_EDIT_INTERVAL - 0.5 for gap in gaps), gaps
    assert len(patches) <= SECONDS / LIVE_EDIT_INTERVAL + 1
    shown = [e["content"] for e in first.edits[1:]] + [first.content]
    assert any(" 0:0" in text.splitlines()[1] and "0:00 /" not in text for text in shown), shown


async def test_pause_and_resume_buttons(music_bot: MusicBot) -> None:
    s, w = music_bot.standin, music_bot.world
    ears = music_bot.ears
    live = await live_message(music_bot, "Tone 550", after=0)
    await ears.wait_for_tone(550, packets=5)
    paused = await s.wait_for_answer(await s.click(w.dj, live, "music:np:pause"))
    assert paused is live and "paused" in live.content.splitlines()[1]
    assert "music:np:resume" in button_ids(live) and "music:np:pause" not in button_ids(live)
    await music_bot.audio.wait_for_quiet(1.0, timeout=5)
    resumed_at = time.monotonic()
    await s.click(w.dj, live, "music:np:resume")
    await ears.wait_for_tone(550, after=resumed_at, packets=10, timeout=5)
    assert "music:np:pause" in button_ids(live) and "paused" not in live.content
    await stop_music(music_bot, by=music_bot.world.dj)


async def test_a_search_pick_from_the_menu_plays_it(music_bot: MusicBot, member2: Member) -> None:
    s, w = music_bot.standin, music_bot.world
    listing = await music_bot.ask(w.member, "!search tones")
    (select,) = [c for row in listing.components for c in row.get("components", []) if c.get("type") == 3]
    assert [o["label"] for o in select["options"]][:2] == ["1. tones a440.webm", "2. tones b880.webm"]
    not_theirs = await s.wait_for_answer(await s.click(member2, listing, select["custom_id"], values=["0"]))
    assert not_theirs.ephemeral and s.seen_by(not_theirs) is member2
    picked_at = time.monotonic()
    await s.click(w.member, listing, select["custom_id"], values=["1"])
    reply = await s.wait_for_message(w.general, lambda m: m.content.startswith(("Playing", "Queued", "Search")),
                                     after=listing, timeout=20)
    assert reply.content.startswith("Playing **tones b880.webm**"), reply.content
    await s.wait_until(lambda: not listing.components, 5, "the menu to go")
    await music_bot.ears.wait_for_tone(880, after=picked_at, packets=10, timeout=20)
    await stop_music(music_bot, by=music_bot.world.dj)


async def test_queue_pages_turn_for_whoever_asked(music_bot: MusicBot, member2: Member, tones) -> None:
    s, w = music_bot.standin, music_bot.world
    await owner_says(music_bot, "!musicset dj off", "The DJ role is off: every listener controls the music.")
    await s.join_voice(w.dj, w.music)
    await queue_tones(music_bot, w.dj, tones, *(["t330.webm"] * 12))
    listing = await music_bot.ask(w.member, "!queue")
    assert "Page 1/2" in listing.text and "`11.`" not in listing.text
    refused = await s.wait_for_answer(await s.click(member2, listing, label="Next page"))
    assert refused.ephemeral and s.seen_by(refused) is member2 and "Page 1/2" in listing.text
    await s.click(w.member, listing, label="Next page")
    await s.wait_until(lambda: "Page 2/2" in listing.text, 5, "page 2")
    assert "`11.` **Tone 330**" in listing.text
    await stop_music(music_bot, by=music_bot.world.dj)
    no_errors_in_log(music_bot)


async def test_after_a_reload_the_buttons_work_and_an_old_message_is_refused(music_bot: MusicBot, tones) -> None:
    s, w = music_bot.standin, music_bot.world
    ears = music_bot.ears
    start = s.marker()
    await queue_tones(music_bot, w.member, tones, "t330.webm", "t550.webm", "t770.webm", "t990.webm")
    before = await live_message(music_bot, "Tone 330", after=start)
    reloaded = await music_bot.ask(w.owner, "!reload music", expect=lambda m: "Reloaded" in m.content)
    assert reloaded.content == "Reloaded `music`.", reloaded.content
    await s.wait_until(lambda: before.deleted, 5, "the live message to go at unload")
    # the restored player announces its track again, with buttons the new cog answers
    after = await s.wait_for_message(w.general, lambda m: m.content.startswith("Now playing:") and bool(m.components)
                                     and not m.deleted, after=reloaded, timeout=20)
    title = after.content.split("**")[1]
    hz = {f"Tone {int(v)}": v for v in TONES.values()}[title]
    next_hz = {330.0: 550.0, 550.0: 770.0, 770.0: 990.0}[hz]
    await ears.wait_for_tone(hz, after=time.monotonic(), packets=5, timeout=10)
    clicked_at = time.monotonic()
    skipped = await s.wait_for_answer(await s.click(w.member, after, SKIP))
    assert skipped.content == f"<@{w.member.id}> skipped **{title}** (0:08).", skipped.content
    await ears.wait_for_tone(next_hz, after=clicked_at, packets=5, timeout=5)
    # a message from before the reload (it could only be clicked in the moment it went)
    stale = await s.wait_for_answer(await s.click(w.member, before, SKIP))
    assert stale.content == "This \"Now playing\" message is old; use the latest one (or the commands)."
    assert stale.ephemeral and s.seen_by(stale) is w.member
    await stop_music(music_bot, by=music_bot.world.dj)
    no_errors_in_log(music_bot)

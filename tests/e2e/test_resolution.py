"""Track lookup end to end: a real Red bot (a subprocess, the cog installed through Downloader)
resolves links on the tests' fake video site, loaded into its yt-dlp as a plugin
(tests/support/ytdlp_plugins), and plays into the stand-in's voice channel.

The bot's yt-dlp runs in the bot's process, so how a lookup went is read from what users see:
the edited reply, `music status` (cache hit rate, per-site breakers, running jobs) and the audio.
Tests run in file order on one Red; each leaves the queue empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from standin import Message, Standin
from standin.server import DefaultWorld
from tests.e2e.conftest import MusicBot, running_music_bot, since, stop_music
from tests.support.redbot import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PLUGIN_PATH = REPO_ROOT / "tests" / "support" / "ytdlp_plugins"
SLOW_ENTRY_SECONDS = 0.2


def plugin_env(media_base: str) -> dict[str, str]:
    """Environment for a process whose yt-dlp should know the fake site."""
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGIN_PATH), str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "FAKESITE_BASE": media_base,
        "FAKESITE_TAKES_YTSEARCH": "1",  # the cog's `search` (ytsearch) lands on the fake site
        "FAKESITE_SLOW_ENTRY_SECONDS": str(SLOW_ENTRY_SECONDS),
    }


async def test_the_plugin_teaches_a_separate_python_process_the_fake_site(media_server) -> None:
    code = """
import json, sys, yt_dlp
base = sys.argv[1]
out = {}
with yt_dlp.YoutubeDL({"quiet": True, "extract_flat": "in_playlist"}) as ydl:
    item = ydl.extract_info(base + "/site/item/a440.webm", download=False)
    out["item"] = [item["extractor_key"], item["url"], item["title"]]
    listing = ydl.extract_info(base + "/site/list/7", download=False)
    out["list"] = [listing["title"], len(list(listing["entries"]))]
    for key in ("fakesearch2:tones", "ytsearch2:tones"):
        found = ydl.extract_info(key, download=False)
        out[key] = [e["url"] for e in found["entries"]]
print(json.dumps(out))
"""
    env = {**os.environ, **plugin_env(media_server.base_url)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, media_server.base_url, env=env, cwd="/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    out = json.loads(stdout)
    base = media_server.base_url
    assert out["item"] == ["FakeSiteItem", f"{base}/media/a440.webm", "Fake a440.webm"]
    assert out["list"] == ["Fake list", 7]
    expected = [f"{base}/site/item/a440.webm", f"{base}/site/item/b880.webm"]
    assert out["fakesearch2:tones"] == expected
    assert out["ytsearch2:tones"] == expected  # YouTube search answered by the fake site


@contextlib.asynccontextmanager
async def running_fakesite_bot(standin: Standin, world: DefaultWorld, cog_snapshot: Path,
                               allowed_networks: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory,
                               media_base: str) -> AsyncIterator[MusicBot]:
    """conftest's running_music_bot, with the fake-site plugin on the Red process's PYTHONPATH,
    the site allowed, and the member in the music channel (shared by the modules that need it)."""
    async with running_music_bot(standin, world, cog_snapshot, allowed_networks, tmp_path_factory,
                                 env=plugin_env(media_base)) as bot:
        # the owner allows the plugin's site like any site off the default list
        reply = await bot.ask(world.owner, "!musicset extractors allow fakesite")
        assert reply.content == "Links from `fakesite` are allowed now.", reply.content
        await standin.join_voice(world.member, world.music)
        yield bot


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def music_bot(standin: Standin, world: DefaultWorld, cog_snapshot: Path,
                    allowed_networks: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory,
                    media_server):
    async with running_fakesite_bot(standin, world, cog_snapshot, allowed_networks, tmp_path_factory,
                                    media_server.base_url) as bot:
        yield bot


@pytest.fixture(autouse=True)
def clean_recording(request: pytest.FixtureRequest):
    """Each test hears only its own audio (tests without a bot start none)."""
    if "music_bot" in request.fixturenames:
        request.getfixturevalue("music_bot").audio.clear()


async def status(music_bot: MusicBot) -> str:
    reply = await music_bot.ask(music_bot.world.member, "!music status")
    assert "Cache hit rate" in reply.content, reply.content
    return reply.content


def hit_rate(status_text: str) -> float:
    match = re.search(r"Cache hit rate: (\d+)%", status_text)
    return int(match[1]) / 100 if match else 0.0


async def final_edit(music_bot: MusicBot, reply: Message, starts: str, timeout: float) -> str:
    return await music_bot.standin.wait_until(
        lambda: reply.content if reply.content.startswith(starts) else None, timeout,
        f"the reply to be edited to {starts!r}; it says {reply.content!r}")


async def test_a_big_playlist_starts_at_once_and_its_reply_is_edited_into_a_summary(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    limit = await music_bot.ask(w.owner, "!musicset maxplaylist 100")
    assert "100" in limit.content, limit.content

    started = time.monotonic()
    reply = await music_bot.ask(w.member, f"!play {media_server.base_url}/site/list/300")
    replied_after = since(started)
    assert reply.content.startswith(("Playing **Entry 0**", "Queued")), reply.content
    await music_bot.ears.wait_for_tone(440, after=started, packets=5, timeout=20)  # Entry 0 is a440
    heard_after = since(started)
    final = await final_edit(music_bot, reply, "Queued 100 tracks", timeout=30)
    print(f"\n300-entry playlist, limit 100: reply after {replied_after:.2f} s, first tone heard after "
          f"{heard_after:.2f} s; {len(reply.edits)} edit(s); final: {final}")
    # the same message was edited in place: a progress line first, then the summary
    assert any(e["content"].startswith("Loading **Fake list**: `") and "/100" in e["content"]
               for e in reply.edits), reply.edits
    assert "Fake list" in final and "limit of 100" in final
    assert heard_after < 10.0  # playing never waited for the other 99 entries to be listed

    text = await status(music_bot)
    assert re.search(r"Sites: .*fakesite closed", text), text
    await stop_music(music_bot)


async def test_a_second_play_of_the_same_link_is_answered_from_the_cache(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    url = f"{media_server.base_url}/site/item/steps.webm"  # a page no earlier test looked up
    first = await music_bot.ask(w.member, f"!play {url}")
    assert first.content.startswith("Playing **Fake steps.webm**"), first.content
    await music_bot.ears.wait_for_tone(300, packets=5, timeout=20)  # steps.webm starts at 300 Hz
    before = hit_rate(await status(music_bot))
    second = await music_bot.ask(w.member, f"!play {url}")
    assert second.content.startswith("Queued **Fake steps.webm**"), second.content
    after = hit_rate(await status(music_bot))
    print(f"\ncache hit rate: {before:.0%} before the repeat, {after:.0%} after")
    assert after > before
    await stop_music(music_bot)


async def test_search_then_a_number_queues_that_result(music_bot: MusicBot) -> None:
    w = music_bot.world
    listing = await music_bot.ask(w.member, "!search tones")
    lines = listing.content.splitlines()
    assert lines[0].startswith("`1.` **tones a440.webm**") and lines[1].startswith("`2.` **tones b880.webm**"), lines
    assert lines[-1] == "Type a number from 1 to 3 to queue it, or `cancel`."
    asked = time.monotonic()
    picked = await music_bot.ask(w.member, "2")
    assert picked.content.startswith("Playing **tones b880.webm**"), picked.content
    await music_bot.ears.wait_for_tone(880, after=asked, packets=10, timeout=20)
    await stop_music(music_bot)


async def test_music_cancel_stops_a_slow_playlist_with_a_sentence(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    count = 100  # 100 x 0.2 s: 20 s to list in full
    reply = await music_bot.ask(w.member, f"!play {media_server.base_url}/site/slowlist/{count}")
    assert reply.content.startswith(("Playing **Slow entry 0**", "Queued")), reply.content
    progress = await music_bot.standin.wait_until(
        lambda: re.search(r"`music cancel (\d+)` stops it", reply.content), 15, "a progress line")
    job = progress[1]
    running = await status(music_bot)
    assert f"job {job}: expanding" in running, running

    cancelled = await music_bot.ask(w.member, f"!music cancel {job}")
    assert cancelled.content == f"Cancelled job {job}.", cancelled.content
    final = await final_edit(music_bot, reply, "Queued", timeout=10)
    match = re.match(r"Queued (\d+) tracks? from \*\*Slow list\*\*\.", final)
    assert match is not None, final
    queued = int(match[1])
    assert 1 <= queued < count
    assert "I stopped loading the playlist after" in final and "cancelled" in final, final

    # nothing more arrives after the cancel: 2 s would have listed 10 more entries
    queue_before = await music_bot.ask(w.member, "!queue")
    await asyncio.sleep(2.0)
    later = await music_bot.ask(w.member, "!queue")
    assert _queued_count(later) == _queued_count(queue_before), (queue_before.text, later.text)
    assert f"job {job}:" not in await status(music_bot)
    await stop_music(music_bot)


def _queued_count(message: Message) -> int:
    match = re.search(r"(\d+) track\(s\) queued", message.text)
    return int(match[1]) if match else 0


async def test_the_member_limit_holds_for_every_entry_of_a_playlist(music_bot: MusicBot, media_server) -> None:
    """Every entry that enters the queue passes the same admission: a playlist's later batches
    too (before, only its first entry was held to `memberlimit`)."""
    w = music_bot.world
    limit = await music_bot.ask(w.owner, "!musicset memberlimit 3")
    assert limit.content == "Each member may queue 3 tracks.", limit.content
    try:
        reply = await music_bot.ask(w.member, f"!play {media_server.base_url}/site/list/40")
        assert reply.content.startswith(("Playing **Entry 0**", "Queued")), reply.content
        final = await final_edit(music_bot, reply, "Queued", timeout=30)
        print(f"\n40-entry playlist, member limit 3: {final}")
        assert "left out by this server's queue, length or per-member limits" in final, final
        queued = await music_bot.ask(w.member, "!queue")
        mine = _queued_count(queued)
        assert 1 <= mine <= 3, queued.text
    finally:
        await music_bot.ask(w.owner, "!musicset memberlimit 0")
        await stop_music(music_bot)


async def test_a_server_sees_and_cancels_only_its_own_lookups(music_bot: MusicBot, media_server) -> None:
    """`music status` and `music cancel` stay within the server (issue 13 point 7): another
    server's admin neither sees this server's lookup (nor its link) nor cancels it by id."""
    s, w = music_bot.standin, music_bot.world
    other = s.add_guild("Other server")
    other_text = s.add_text_channel(other, "chat")
    manage_server = 1 << 5
    admin_role = s.add_role(other, "Admins", manage_server)
    other_admin = s.add_member(other, "other-admin", roles=[admin_role])
    await s.wait_until(lambda: True, 1, "the new server")  # let the bot see the server first
    secret = "token=s3cr3t-Value"
    reply = await music_bot.ask(w.member, f"!play {media_server.base_url}/site/slowlist/100?{secret}")
    progress = await s.wait_until(lambda: re.search(r"`music cancel (\d+)` stops it", reply.content), 15,
                                  "a progress line")
    job = progress[1]
    try:
        theirs = await music_bot.ask(other_admin, "!music status", channel=other_text)
        assert f"job {job}" not in theirs.content and "slowlist" not in theirs.content, theirs.content
        refused = await music_bot.ask(other_admin, f"!music cancel {job}", channel=other_text)
        assert refused.content == f"There is no unfinished lookup with job number {job}.", refused.content
        mine = await status(music_bot)
        assert f"job {job}: expanding" in mine, mine
        assert secret not in mine and "/site/slowlist" not in mine, mine  # the site, never the link
    finally:
        cancelled = await music_bot.ask(w.member, f"!music cancel {job}")
        assert cancelled.content == f"Cancelled job {job}.", cancelled.content
        await final_edit(music_bot, reply, "Queued", timeout=10)
        await stop_music(music_bot)

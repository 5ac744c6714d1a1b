"""`[p]cog update` while a track plays (issue 14): the cog's repository is installed through
Downloader at one commit, a newer commit lands, the owner runs `!cog update` and answers Red's
"reload the updated cog?" with the check mark, as owners do. The new code is loaded, the queue is
the same, and the track goes on from where it was.

The track is a "ladder" of one-second tones (300, 400, ... Hz), so the tone heard tells the
position in the track to the second; it is long enough to outlast Downloader's pip step.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import pytest_asyncio

from standin import Standin
from standin.install import _git, snapshot_working_tree
from standin.server import DefaultWorld
from tests.e2e.conftest import MusicBot, queue_lines, running_music_bot
from tests.support.media import generate_tone

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

LADDER = [300.0 + 100.0 * step for step in range(60)]  # Hz, one second each
MARKER = "cog update e2e: the newer commit"
YES = "\N{WHITE HEAVY CHECK MARK}"


@pytest.fixture(scope="module")
def cog_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This working tree as a repository with one commit: the older version Downloader installs."""
    return snapshot_working_tree(tmp_path_factory.mktemp("cog-repo") / "music-cog")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def music_bot(standin: Standin, world: DefaultWorld, cog_repo: Path,
                    allowed_networks: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory):
    # --dev: `!debug` reads which code is loaded
    async with running_music_bot(standin, world, cog_repo, allowed_networks, tmp_path_factory,
                                 extra_args=["--dev"]) as bot:
        yield bot


@pytest.fixture(scope="module")
def ladder(media_dir: Path) -> str:
    generate_tone(media_dir / "long-ladder.webm", LADDER, 1.0, title="long ladder")
    return "long-ladder.webm"


def ladder_second(hz: float) -> float:
    return round((hz - LADDER[0]) / 100.0)


def commit_newer_version(repo: Path) -> str:
    """A newer commit that changes the cog's code (a module constant), as a release would."""
    init = repo / "music" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8") + f"\nUPDATE_MARKER = {MARKER!r}\n", encoding="utf-8")
    _git(["commit", "-q", "--no-gpg-sign", "--no-verify", "-am", "a newer version"], repo)
    return _git(["rev-parse", "HEAD"], repo).strip()


async def loaded_marker(bot: MusicBot) -> str:
    answer = await bot.ask(bot.world.owner, '!debug getattr(__import__("music"), "UPDATE_MARKER", "none")',
                           expect=lambda m: "```" in m.content)
    return answer.content.removeprefix("```py\n").removesuffix("\n```")


async def test_cog_update_while_playing_keeps_the_queue_and_resumes_at_the_position(
    music_bot: MusicBot, media_server, ladder: str, cog_repo: Path
) -> None:
    w = music_bot.world
    ears = music_bot.ears
    assert await loaded_marker(music_bot) == "none"
    await music_bot.standin.join_voice(w.member, w.music)
    assert (await music_bot.ask(w.member, f"!play {media_server.url(ladder)}")).content.startswith("Playing")
    assert (await music_bot.ask(w.member, f"!play {media_server.url('b880.webm')}")).content.startswith("Queued")
    queue_before = queue_lines(await music_bot.ask(w.member, "!queue"))
    assert len(queue_before) == 1 and "b880" in queue_before[0]
    await ears.wait_for_tone(600, packets=10, timeout=15)  # 3 s into the ladder

    commit_newer_version(cog_repo)
    started = time.monotonic()
    prompt = await music_bot.ask(w.owner, "!cog update", timeout=600,
                                 expect=lambda m: "reload the updated cog" in m.content
                                 or "up to date" in m.content)
    assert "Would you like to reload the updated cog?" in prompt.content, prompt.content
    updated_in = time.monotonic() - started
    summary = "\n".join(m.text for m in music_bot.standin.bot_messages(w.general)
                        if m.id < prompt.id)[-600:]
    assert "music" in summary, summary

    reacted_at = time.monotonic()
    last_before = ears.sound_after(0)[-1].frequency
    await music_bot.standin.react(w.owner, prompt, YES)
    reloaded = await music_bot.standin.wait_for_message(w.general, lambda m: "Reloaded" in m.content,
                                                        after=prompt, timeout=60)
    assert reloaded.content == "Reloaded `music`."
    reloaded_at = time.monotonic()
    assert await loaded_marker(music_bot) == MARKER  # the newer commit's code is what runs

    resumed = await ears.wait_for(lambda: ears.sound_after(reloaded_at)[5:] or None, 20,
                                  "audio after the update")
    first_after = resumed[0].frequency
    print(f"\n`cog update` took {updated_in:.1f} s to the reload prompt; last tone before the "
          f"reload {last_before:.0f} Hz, first after {first_after:.0f} Hz, "
          f"{resumed[0].arrival - reacted_at:.1f} s after the answer")
    # it goes on from where it was (the same second or up to 2 s later), not from the start
    assert 0 <= ladder_second(first_after) - ladder_second(last_before) <= 2
    assert queue_lines(await music_bot.ask(w.member, "!queue")) == queue_before

    stopped = await music_bot.ask(w.member, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."

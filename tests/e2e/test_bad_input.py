"""Bad input through chat gets a clear sentence and changes nothing; the clash with core Audio.

The owner allows no extra network in this module, so the test media server on 127.0.0.1 is
refused as the cog's default policy says. Music that does play comes from the owner's local
folder, so every refusal is checked against a queue that is not empty.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import MusicBot, queue_lines

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def allowed_networks() -> tuple[str, ...]:
    return ()  # the cog's defaults: loopback and private networks refused


@pytest.fixture(scope="module")
def local_folder(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("local-music").resolve()
    for name in ("long.mp3", "a440.webm"):
        shutil.copy(media_dir / name, folder / name)
    return folder


async def queue_text(music_bot: MusicBot) -> str:
    return (await music_bot.ask(music_bot.world.member, "!queue")).text


async def test_refusals_say_why_and_leave_the_queue_alone(
    music_bot: MusicBot, media_server, local_folder: Path
) -> None:
    w = music_bot.world
    ears = music_bot.ears
    assert (await music_bot.ask(w.owner, f"!musicset localfolder {local_folder}")).content == "Local folder set."
    await music_bot.standin.join_voice(w.member, w.music)
    assert (await music_bot.ask(w.member, "!local long.mp3")).content.startswith("Playing **long**")
    assert (await music_bot.ask(w.member, "!local a440.webm")).content.startswith("Queued **a440**")
    await ears.wait_for_tone(330, packets=10)
    before = await queue_text(music_bot)
    assert len(queue_lines(await music_bot.ask(w.member, "!queue"))) == 1
    fetched_before = len(media_server.requests)

    # up to the root from the local folder, then into /etc: a real file outside the folder
    escape = "../" * len(local_folder.parts) + "etc/passwd"
    refusals = {
        # the test media server listens on loopback, which the owner has not allowed
        f"!play {media_server.url('b880.webm')}":
            "I won't fetch `127.0.0.1`: it points to a private or local network address.",
        "!play file:///etc/passwd": "I only play http and https links; `file:` links are refused.",
        "!local ../../etc/passwd": "in the local folder",  # can't find / outside: never read
        f"!local {escape}": "is outside the local folder.",
        "!local /etc/passwd": "is an absolute path: name a file inside the local folder.",
    }
    for command, sentence in refusals.items():
        reply = await music_bot.ask(w.member, command)
        assert sentence in reply.content, (command, reply.content)
        assert "root:" not in reply.content  # no line of /etc/passwd came back
        assert await queue_text(music_bot) == before, command

    # the music was never interrupted
    assert await ears.wait_for_tone(330, after=ears.sound_after(0)[-1].arrival, packets=10, timeout=5)
    # the address was refused before anything was fetched from it
    assert media_server.requests[fetched_before:] == []


async def test_an_address_the_owner_denied_is_refused_even_inside_an_allowed_network(
    music_bot: MusicBot, media_server
) -> None:
    w = music_bot.world
    before = await queue_text(music_bot)
    assert (await music_bot.ask(w.owner, "!musicset network allow 127.0.0.0/8")).content == "Allowed `127.0.0.0/8`."
    assert (await music_bot.ask(w.owner, "!musicset network deny 127.0.0.1/32")).content == "Denied `127.0.0.1/32`."
    fetched_before = len(media_server.requests)
    reply = await music_bot.ask(w.member, f"!play {media_server.url('b880.webm')}")
    assert media_server.requests[fetched_before:] == []
    assert reply.content == "I won't fetch `127.0.0.1`: the bot owner has blocked the address it points to."
    assert await queue_text(music_bot) == before
    stopped = await music_bot.ask(w.member, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."


async def test_loading_next_to_core_audio_fails_with_a_sentence_saying_to_unload_it(music_bot: MusicBot) -> None:
    w = music_bot.world
    unloaded = await music_bot.ask(w.owner, "!unload music")
    assert unloaded.content == "The following package was unloaded: `music`."
    # core Audio needs Java only to play; loading it works offline
    loaded = await music_bot.ask(w.owner, "!load audio", timeout=60)
    assert loaded.content == "Loaded `audio`.", music_bot.red.log_tail()

    refused = await music_bot.ask(w.owner, "!load music", timeout=30)
    assert refused.content.startswith("This package could not be loaded")
    assert "The core Audio cog is loaded and uses the same commands" in refused.content
    assert "unload audio` first" in refused.content


async def test_the_refusal_names_the_commands_with_the_bots_prefix(music_bot: MusicBot) -> None:
    refused = await music_bot.ask(music_bot.world.owner, "!load music", timeout=30)
    assert "could not be loaded" in refused.content  # Audio is still loaded from the test above
    assert "run `!unload audio` first, then `!load music`" in refused.content, refused.content


async def test_after_unloading_audio_the_cog_loads_again(music_bot: MusicBot) -> None:
    w = music_bot.world
    unloaded = await music_bot.ask(w.owner, "!unload audio", timeout=30)
    assert unloaded.content == "The following package was unloaded: `audio`."
    assert (await music_bot.ask(w.owner, "!load music", timeout=30)).content == "Loaded `music`."
    assert await queue_text(music_bot) == "The queue is empty."

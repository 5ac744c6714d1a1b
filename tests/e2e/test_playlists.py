"""Saved playlists end to end: the stand-in, a real Red bot with the cog installed through
Downloader, short tone tracks from the local media server, and what the voice channel heard.

The tests run in order on one Red: a queue saved with `playlist save` is played back in the same
order after a restart; `playlist download` then `playlist upload` round-trips; a Red Audio v3
export (made by Audio's own classes) is uploaded and plays.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import MusicBot
from tests.support.red_audio import audio_v3_export, lavalink_track

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

TONES = [("a440.webm", 440.0), ("b880.webm", 880.0), ("a660.mp3", 660.0)]


async def heard_in_order(music_bot: MusicBot, tones: list[float], after: float, timeout: float = 20.0) -> list[float]:
    """Wait for each tone in turn, each after the previous one was heard; returns when each began."""
    ears = music_bot.ears
    starts = []
    for hz in tones:
        packets = await ears.wait_for_tone(hz, after=after, packets=25, timeout=timeout)
        starts.append(packets[0].arrival)
        after = packets[-1].arrival
    return starts


def info_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("`")]


async def test_a_saved_queue_plays_in_the_same_order_after_red_restarts(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    await music_bot.standin.join_voice(w.member, w.music)
    for name, _ in TONES:
        reply = await music_bot.ask(w.member, f"!play {media_server.url(name)}")
        assert reply.content.startswith(("Playing", "Queued")), reply.content
    saved = await music_bot.ask(w.member, "!playlist save tones")
    assert saved.content == "Saved 3 tracks as server playlist **tones**."
    stopped = await music_bot.ask(w.member, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."

    assert await music_bot.red.stop() == 0, music_bot.red.log_tail()
    music_bot.audio.clear()
    await music_bot.red.start()
    said = time.monotonic()
    started = await music_bot.ask(w.member, "!playlist start tones", expect=lambda m: "tones" in m.content)
    assert started.content == "Playing **a440** (0:03) from server playlist **tones**."
    starts = await heard_in_order(music_bot, [hz for _, hz in TONES], after=said)
    print(f"\nafter the restart: 440 Hz {starts[0] - said:.2f} s after `playlist start`, then 880 Hz "
          f"+{starts[1] - starts[0]:.2f} s, 660 Hz +{starts[2] - starts[1]:.2f} s")
    assert 2.5 < starts[1] - starts[0] < 4.0 and 2.5 < starts[2] - starts[1] < 4.0  # one 3 s track each
    stopped = await music_bot.ask(w.member, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."


async def test_download_then_upload_round_trips(music_bot: MusicBot) -> None:
    w = music_bot.world
    download = await music_bot.ask(w.member, "!playlist download tones", expect=lambda m: bool(m.attachments))
    (attachment,) = download.attachments
    assert attachment["filename"] == "tones.json"
    data = music_bot.standin.attachment_data[int(attachment["id"])]
    uploaded = await music_bot.ask(w.member, "!playlist upload again --scope user",
                                   files=[("tones.json", data, "application/json")])
    assert uploaded.content == (f"Made <@{w.member.id}>'s playlist **again** with 3 entries from this cog's file.")
    original = await music_bot.ask(w.member, "!playlist info tones")
    copy = await music_bot.ask(w.member, "!playlist info again --scope user")
    assert info_lines(copy.text) == info_lines(original.text)
    assert [line.split("** (")[0] for line in info_lines(copy.text)] == ["`1.` **a440", "`2.` **b880", "`3.` **a660"]

    broken = await music_bot.ask(w.member, "!playlist upload broken", files=[("x.json", data[:40], "application/json")])
    assert broken.content == "That file looks like JSON but can't be read (it is cut off or malformed)."
    listing = await music_bot.ask(w.member, "!playlist list")
    assert "broken" not in listing.text


async def test_a_red_audio_v3_export_imports_and_plays(music_bot: MusicBot, media_server) -> None:
    w = music_bot.world
    export = audio_v3_export("Audio tones", [
        lavalink_track(media_server.url("b880.webm"), "Audio b880", length_ms=3000),
        lavalink_track(media_server.url("a440.webm"), "Audio a440", length_ms=3000),
    ])
    uploaded = await music_bot.ask(w.member, "!playlist upload", files=[("987654321.txt", export, "text/plain")])
    assert uploaded.content == "Made server playlist **Audio tones** with 2 entries from Red Audio's v3 file."
    said = time.monotonic()
    started = await music_bot.ask(w.member, '!playlist start "audio tones"', expect=lambda m: "Audio" in m.content)
    assert started.content.startswith("Playing **Audio b880** (0:03) from server playlist **Audio tones**")
    starts = await heard_in_order(music_bot, [880.0, 440.0], after=said)
    assert 2.5 < starts[1] - starts[0] < 4.0
    stopped = await music_bot.ask(w.member, "!stop")
    assert stopped.content == "Stopped, and cleared the queue."

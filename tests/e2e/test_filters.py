"""Filters, the equalizer and loudness normalisation, heard at the stand-in from a real Red bot.

A change is heard at once and without a gap: `filter nightcore` on a 440 Hz track is heard at
550 Hz within 300 ms of the command, with no silence frame at the change, and `filter off`
brings 440 Hz back the same way; the position moves by the track time played (a ladder of
tones says where the track is). The bass boost preset raises 60 Hz and leaves 5 kHz; with
normalisation two tracks mastered 20 dB apart are heard at the same level. The server's filters
and equalizer are heard again after `[p]reload music` and after a new Red process.

Tests run in file order on one Red; each but the last leaves the player idle and the sound
settings as it found them.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pytest

from standin.analysis import SAMPLE_RATE, PacketInfo, packets_between_tones, segment_by_frequency
from tests.e2e.conftest import MusicBot, near
from tests.support.media import generate_tone

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

# Hz, one second each; no step is within 25 Hz of another step x 1.25 (nightcore's)
LADDER = [300.0, 500.0, 600.0, 700.0, 900.0, 1000.0, 1100.0, 1300.0, 1400.0, 1500.0, 1700.0, 1800.0]


@pytest.fixture(scope="module")
def filter_media(media_dir: Path) -> dict[str, str]:
    generate_tone(media_dir / "f440.webm", 440, 20.0, amplitude=0.3, title="f440")
    generate_tone(media_dir / "fladder.webm", LADDER, 1.0, title="fladder")
    mix(media_dir / "bass-and-treble.webm", [(60, 0.1), (5000, 0.1)], 12.0)
    # 550 Hz heard under nightcore, with a little 60 Hz (75 Hz heard) for the bass boost to lift
    mix(media_dir / "f440-bass.webm", [(440, 0.2), (60, 0.03)], 80.0)
    generate_tone(media_dir / "loud.webm", 440, 6.0, amplitude=0.5, title="loud")
    generate_tone(media_dir / "quiet.webm", 660, 6.0, amplitude=0.05, title="quiet")
    return {}


def mix(path: Path, tones: list[tuple[float, float]], seconds: float) -> None:
    """A file with several tones at once (frequency, amplitude)."""
    import subprocess

    from tests.support.media import FFMPEG

    expr = "+".join(f"{amp}*sin(2*PI*{hz}*t)" for hz, amp in tones)
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc='{expr}':s=48000:c=stereo:d={seconds}", "-metadata",
                    f"title={path.stem}", "-c:a", "libopus", "-b:a", "128k", "-frame_duration",
                    "20", "-f", "webm", str(path)], check=True, timeout=60)


@pytest.fixture(autouse=True)
def clean_recording(music_bot: MusicBot):
    music_bot.audio.clear()
    yield


async def join(music_bot: MusicBot) -> None:
    w = music_bot.world
    if music_bot.standin.voice_channel_of(w.member) is not w.music:
        await music_bot.standin.join_voice(w.member, w.music)


async def play(music_bot: MusicBot, media_server, name: str) -> None:
    reply = await music_bot.ask(music_bot.world.member, f"!play {media_server.url(name)}")
    assert reply.content.startswith(("Playing", "Queued")), reply.content


async def say(music_bot: MusicBot, text: str, answer: str, *, owner: bool = False) -> float:
    """Send `text`; check the answer; returns when it was sent (time.monotonic())."""
    w = music_bot.world
    sent_at = time.monotonic()
    reply = await music_bot.ask(w.owner if owner else w.member, text)
    assert reply.content == answer, reply.content
    return sent_at


async def stop(music_bot: MusicBot) -> None:
    reply = await music_bot.ask(music_bot.world.member, "!stop")
    assert reply.content == "Stopped, and cleared the queue."
    await music_bot.audio.wait_for_quiet(1.0, timeout=10)


def pcm_of(music_bot: MusicBot, packets: list[PacketInfo]) -> np.ndarray:
    decoded = music_bot.audio.packet_pcm()
    return np.concatenate([decoded[p.index] for p in packets])


def packets(heard: list[PacketInfo], skip: int, count: int) -> list[PacketInfo] | None:
    """`count` packets after the first `skip`, once that many arrived."""
    return heard[skip : skip + count] if len(heard) >= skip + count else None


def band_db(pcm: np.ndarray, hz: float) -> float:
    """Level (dB) of what is within 15 % of `hz` in `pcm`."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    freqs = np.fft.rfftfreq(len(pcm), 1 / SAMPLE_RATE)
    band = (freqs > hz * 0.85) & (freqs < hz * 1.15)
    return 10 * math.log10(float(np.sum(np.square(spectrum[band]))) + 1e-20)


def no_silence_between(music_bot: MusicBot, first_hz: float, second_hz: float) -> list[PacketInfo]:
    between = packets_between_tones(music_bot.audio, first_hz, second_hz)
    kinds = [p.kind for p in between]
    assert "silence" not in kinds and "undecodable" not in kinds, kinds
    return between


# -- 1. heard at once, without a gap ------------------------------------------------------------


async def test_nightcore_is_heard_at_once_without_a_gap_and_off_brings_440_back(
        music_bot: MusicBot, media_server, filter_media) -> None:
    await join(music_bot)
    ears = music_bot.ears
    await play(music_bot, media_server, "f440.webm")
    await ears.wait_for_tone(440, packets=50, timeout=15)

    asked = await say(music_bot, "!filter nightcore", "Filters: nightcore.")
    heard = await ears.wait_for_tone(550, after=asked, packets=10, timeout=5)
    nightcore_after = heard[0].arrival - asked
    between = no_silence_between(music_bot, 440, 550)

    await ears.wait_for_tone(550, after=heard[0].arrival, packets=50, timeout=5)
    asked_off = await say(music_bot, "!filter off", "Filters: off.")
    back = await ears.wait_for_tone(440, after=asked_off, packets=10, timeout=5)
    off_after = back[0].arrival - asked_off
    between_back = no_silence_between(music_bot, 550, 440)
    print(f"\nnightcore heard {nightcore_after * 1000:.0f} ms after the command "
          f"({len(between)} mixed frames, no silence); 440 Hz back {off_after * 1000:.0f} ms "
          f"after `filter off` ({len(between_back)} mixed frames)")
    assert nightcore_after <= 0.3 and off_after <= 0.3
    assert len(between) <= 2 and len(between_back) <= 2
    changes = [p for p in ears.infos() if asked - 0.5 < p.arrival < back[-1].arrival]
    assert all(p.kind == "sound" for p in changes), [p.kind for p in changes if p.kind != "sound"]
    await stop(music_bot)


async def test_the_position_moves_by_the_track_time_played(music_bot: MusicBot, media_server,
                                                           filter_media) -> None:
    """A ladder (one tone a second) under nightcore is heard 25 % higher and faster; `now`
    counts the track's seconds, and `filter off` goes on at the step reached."""
    await join(music_bot)
    ears = music_bot.ears
    await play(music_bot, media_server, "fladder.webm")
    await ears.wait_for_tone(LADDER[1], packets=10, timeout=15)
    asked = await say(music_bot, "!filter nightcore", "Filters: nightcore.")
    await ears.wait_for_tone(LADDER[4] * 1.25, after=asked, packets=20, timeout=10)
    step = step_of(ears.sound_after(0)[-1].frequency, 1.25)
    shown = await music_bot.ask(music_bot.world.member, "!now")
    position = seconds_shown(shown.text)
    print(f"\n`now` says {position} s while step {step} plays under nightcore")
    assert step is not None and 0 <= position - step <= 1

    asked_off = await say(music_bot, "!filter off", "Filters: off.")
    first_plain = (await ears.wait_for(
        lambda: [p for p in ears.sound_after(asked_off)
                 if step_of(p.frequency) is not None and step_of(p.frequency, 1.25) is None] or None,
        5, "a ladder step without nightcore"))[0]
    last_nightcore = [p for p in ears.sound_after(asked) if p.arrival < first_plain.arrival
                      and step_of(p.frequency, 1.25) is not None][-1]
    before, after = step_of(last_nightcore.frequency, 1.25), step_of(first_plain.frequency)
    print(f"last step under nightcore {before}, first without {after}, "
          f"{(first_plain.arrival - asked_off) * 1000:.0f} ms after `filter off`")
    assert before is not None and after is not None
    assert 0 <= after - before <= 1  # the same step or the next: none heard again or skipped
    await stop(music_bot)


def step_of(hz: float, rate: float = 1.0) -> int | None:
    """Which second of the ladder `hz` is, heard at `rate` (None: not a step)."""
    return next((n for n, step in enumerate(LADDER) if abs(hz - step * rate) <= 10), None)


def seconds_shown(text: str) -> int:
    found = re.search(r"(\d+):(\d\d) / ", text)
    assert found, text
    return int(found.group(1)) * 60 + int(found.group(2))


# -- 2. the equalizer --------------------------------------------------------------------------


async def test_bass_boost_raises_60_hz_by_6_db_and_leaves_5_khz(music_bot: MusicBot, media_server,
                                                                 filter_media) -> None:
    await join(music_bot)
    ears = music_bot.ears
    await play(music_bot, media_server, "bass-and-treble.webm")
    flat = (await ears.wait_for(lambda: packets(ears.sound_after(0), 100, 50), 15, "1 s of audio"))
    asked = await say(music_bot, "!eq load bassboost", "Equalizer: bassboost.")
    boosted = await ears.wait_for(lambda: packets(ears.sound_after(asked + 0.5), 0, 50), 10,
                                  "1 s of boosted audio")
    before, after = pcm_of(music_bot, flat), pcm_of(music_bot, boosted)
    low = band_db(after, 60) - band_db(before, 60)
    high = band_db(after, 5000) - band_db(before, 5000)
    print(f"\nbass boost heard: 60 Hz {low:+.1f} dB, 5 kHz {high:+.1f} dB")
    assert low >= 6.0 and abs(high) <= 1.0
    shown = await music_bot.ask(music_bot.world.member, "!eq")
    assert shown.text.startswith("Equalizer: bassboost")

    # the server's own presets, and a refusal is a sentence
    await say(music_bot, "!eq save MyBass", "Saved the equalizer as `mybass`.")
    await say(music_bot, "!eq set 16khz +6db", "The 16 kHz band is at +0.25 (+6.0 dB).")
    listed = await music_bot.ask(music_bot.world.member, "!eq list")
    assert "Saved here: `mybass`" in listed.content, listed.content
    await say(music_bot, "!eq load mybass", "Equalizer: mybass.")
    assert (await music_bot.ask(music_bot.world.member, "!eq")).text.startswith("Equalizer: bassboost")
    await say(music_bot, "!eq delete mybass", "Deleted the preset `mybass`.")
    await say(music_bot, "!filter speed 9", "Speed takes a number from 0.5 to 2, or `off`.")
    await say(music_bot, "!eq reset", "Equalizer: flat.")
    await stop(music_bot)


# -- 3. loudness normalisation -------------------------------------------------------------------


async def test_normalisation_plays_tracks_mastered_20_db_apart_at_one_level(
        music_bot: MusicBot, media_server, filter_media) -> None:
    await join(music_bot)
    levels = {}
    for normalize in ("off", "on"):
        await say(music_bot, f"!musicset normalize {normalize}",
                  f"Loudness normalisation is {normalize}.", owner=True)
        music_bot.audio.clear()
        await play(music_bot, media_server, "loud.webm")
        await play(music_bot, media_server, "quiet.webm")
        await music_bot.ears.wait_for_tone(660, packets=250, timeout=20)
        segments = {round(s.frequency / 10) * 10: s for s in segment_by_frequency(music_bot.audio)}
        level = {}
        for hz in (440, 660):
            steady = [p for p in music_bot.ears.infos()
                      if segments[hz].first_packet + 50 <= p.index <= segments[hz].last_packet - 25]
            level[hz] = 20 * math.log10(music_bot.ears.level(steady))
        levels[normalize] = level[440] - level[660]
        await stop(music_bot)
    print(f"\nloud minus quiet: {levels['off']:.1f} dB without normalisation, "
          f"{levels['on']:.1f} dB with")
    assert levels["off"] == pytest.approx(20, abs=1.5)
    assert abs(levels["on"]) <= 2
    await say(music_bot, "!musicset normalize off", "Loudness normalisation is off.", owner=True)


# -- 4. kept through a reload and a restart -----------------------------------------------------


def bass_lift(music_bot: MusicBot, packets: list[PacketInfo]) -> float:
    """dB of the 75 Hz tone (60 Hz under nightcore) over the 550 Hz one."""
    pcm = pcm_of(music_bot, packets)
    return band_db(pcm, 75) - band_db(pcm, 550)


async def test_filters_and_the_equalizer_are_heard_again_after_a_reload_and_a_restart(
        music_bot: MusicBot, media_server, filter_media) -> None:
    await join(music_bot)
    ears = music_bot.ears
    await play(music_bot, media_server, "f440-bass.webm")
    await say(music_bot, "!filter nightcore", "Filters: nightcore.")
    flat = await ears.wait_for_tone(550, packets=60, timeout=15)
    flat_lift = bass_lift(music_bot, flat[10:60])
    asked = await say(music_bot, "!eq load bassboost", "Equalizer: bassboost.")
    boosted = await ears.wait_for_tone(550, after=asked + 0.5, packets=50, timeout=10)
    lift = bass_lift(music_bot, boosted) - flat_lift
    print(f"\nthe bass boost lifts 75 Hz by {lift:+.1f} dB against 550 Hz")
    assert lift >= 5

    reloaded_at = time.monotonic()
    reloaded = await music_bot.ask(music_bot.world.owner, "!reload music",
                                   expect=lambda m: "music" in m.content)
    assert reloaded.content == "Reloaded `music`."
    after_reload = await ears.wait_for_tone(550, after=reloaded_at + 0.5, packets=60, timeout=20)
    reload_lift = bass_lift(music_bot, after_reload[10:]) - flat_lift
    assert reload_lift >= 5
    assert not any(near(p.frequency, 440) for p in ears.sound_after(reloaded_at))

    code = await music_bot.red.stop()
    assert code == 0, music_bot.red.log_tail()
    music_bot.audio.clear()
    await music_bot.red.start()
    shown = await music_bot.ask(music_bot.world.member, "!filter")
    assert shown.content.startswith("Filters: nightcore. Equalizer: bassboost."), shown.content
    after_restart = await ears.wait_for_tone(550, packets=60, timeout=30)
    restart_lift = bass_lift(music_bot, after_restart[10:]) - flat_lift
    print(f"after the reload: {reload_lift:+.1f} dB, after the restart: {restart_lift:+.1f} dB")
    assert restart_lift >= 5
    assert not any(near(p.frequency, 440) for p in ears.sound_after(0))
    await say(music_bot, "!filter off", "Filters: off.")
    await say(music_bot, "!eq reset", "Equalizer: flat.")
    await stop(music_bot)

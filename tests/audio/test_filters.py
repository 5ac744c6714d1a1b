"""Filters, the equalizer and normalisation through the real ffmpeg (TrackStream, a local file
and the session's media server): what each does to a tone, that the position moves by the
track time played, and that nothing but validated numbers reaches ffmpeg's filter graph."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import av
import numpy as np
import pytest

from music.audio.ffmpeg import build_args
from music.audio.filters import filter_graph, tempo_steps
from music.audio.source import TrackStream
from music.engine.filters import (
    EQ_PRESETS,
    FILTERS,
    NIGHTCORE,
    FilterChain,
    Timescale,
    db_to_gain,
    gain_to_db,
)
from tests.support.audio_analysis import SAMPLE_RATE, decode_opus_packets, dominant_frequency, rms
from tests.support.media import FFMPEG, generate_tone
from tests.support.processes import ffmpeg_children


@pytest.fixture(autouse=True)
def no_ffmpeg_left_behind():
    yield
    deadline = time.monotonic() + 3
    while ffmpeg_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ffmpeg_children() == []


def play(source: str, chain: FilterChain | None, *, start: float = 0.0, volume: int = 100,
         local: bool = True, left: bool = False) -> tuple[np.ndarray, TrackStream]:
    """Every packet of `source` through `chain`, decoded (mono float at 48 kHz, or the left
    channel alone)."""
    stream = TrackStream(FFMPEG, source, start=start, volume=volume, filters=chain, local=local,
                         passthrough=True).start()
    packets = []
    deadline = time.monotonic() + 30
    try:
        while not stream.finished:
            assert time.monotonic() < deadline, repr(stream)
            packet = stream.read_packet()
            if packet is None:
                time.sleep(0.002)
            else:
                packets.append(packet)
    finally:
        stream.close()
    assert stream.error is None, stream.error
    if left:
        return left_channel(packets), stream
    pcm, bad = decode_opus_packets(packets)
    assert bad == 0
    return pcm, stream


def left_channel(packets: list[bytes]) -> np.ndarray:
    context = av.CodecContext.create("opus", "r")
    context.sample_rate, context.layout = SAMPLE_RATE, "stereo"
    chunks = []
    for packet in packets:
        for frame in context.decode(av.Packet(packet)):
            samples = frame.to_ndarray()
            chunks.append(samples[0] if frame.format.is_planar else samples.reshape(-1, 2)[:, 0])
    return np.concatenate(chunks).astype(np.float32)


def steady(pcm: np.ndarray, seconds: float = 1.0) -> np.ndarray:
    """The middle `seconds` of the audio (past the encoder's start and any filter's ramp)."""
    middle = len(pcm) // 2
    half = int(seconds * SAMPLE_RATE / 2)
    return pcm[middle - half : middle + half]


def db(ratio: float) -> float:
    return 20 * math.log10(ratio)


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("filter-tones")
    generate_tone(root / "a440.webm", 440, 4.0)
    # quiet enough that a bass boost of ~10 dB does not clip
    generate_tone(root / "low60.webm", 60, 3.0, amplitude=0.1)
    generate_tone(root / "high5k.webm", 5000, 3.0, amplitude=0.1)
    # two tracks mastered 20 dB apart
    generate_tone(root / "loud.webm", 440, 6.0, amplitude=0.5)
    generate_tone(root / "quiet.webm", 440, 6.0, amplitude=0.05)
    return root


# -- what each filter does to a tone -------------------------------------------------------------


@pytest.mark.parametrize(("chain", "heard_hz", "seconds"), [
    (FilterChain(timescale=NIGHTCORE), 550, 4.0 / 1.25),
    (FilterChain().with_filter("vaporwave"), 352, 4.0 / 0.8),
    (FilterChain().with_filter("pitch", "1.25"), 550, 4.0),  # the pitch alone: same length
    (FilterChain().with_filter("speed", "1.25"), 440, 4.0 / 1.25),  # the tempo alone: same pitch
    (FilterChain().with_filter("rate", "0.5"), 220, 8.0),
    (FilterChain().with_filter("speed", "0.5").with_filter("pitch", "2"), 880, 8.0),
])
def test_the_timescale_changes_pitch_and_length_and_the_position_counts_track_time(
        tones: Path, chain: FilterChain, heard_hz: float, seconds: float):
    pcm, stream = play(str(tones / "a440.webm"), chain)
    assert dominant_frequency(steady(pcm)) == pytest.approx(heard_hz, abs=3)
    assert len(pcm) / SAMPLE_RATE == pytest.approx(seconds, abs=0.1)
    # the position is in the track's time whatever the tempo: it ends at the track's end
    assert stream.position == pytest.approx(4.0, abs=0.06)


def test_a_filtered_stream_from_a_position_counts_on_from_there(tones: Path):
    _, stream = play(str(tones / "a440.webm"), FilterChain(timescale=NIGHTCORE), start=1.0)
    assert stream.position == pytest.approx(4.0, abs=0.06)
    assert stream.frames_read == pytest.approx(3.0 / 1.25 / 0.02, abs=3)


def test_the_bass_boost_preset_raises_60_hz_by_6_db_and_leaves_5_khz(tones: Path):
    boost = FilterChain().with_eq(EQ_PRESETS["bassboost"])
    levels = {}
    for name in ("low60", "high5k"):
        flat_pcm, _ = play(str(tones / f"{name}.webm"), FilterChain())
        boosted_pcm, _ = play(str(tones / f"{name}.webm"), boost)
        levels[name] = db(rms(steady(boosted_pcm)) / rms(steady(flat_pcm)))
    print(f"\nbass boost: 60 Hz {levels['low60']:+.1f} dB, 5 kHz {levels['high5k']:+.1f} dB")
    assert levels["low60"] >= 6.0
    assert abs(levels["high5k"]) <= 1.0


def test_one_band_at_0_25_is_about_6_db_at_its_centre(tones: Path):
    chain = FilterChain().with_band(11, 0.25)  # 4 kHz band, measured at 5 kHz: a bit less
    flat_pcm, _ = play(str(tones / "high5k.webm"), FilterChain())
    pcm, _ = play(str(tones / "high5k.webm"), chain)
    gain = db(rms(steady(pcm)) / rms(steady(flat_pcm)))
    assert 2.5 <= gain <= 6.5


def test_normalisation_brings_tracks_20_db_apart_within_2_db(tones: Path):
    levels = {}
    for normalize in (False, True):
        chain = FilterChain(normalize=normalize)
        loud, _ = play(str(tones / "loud.webm"), chain)
        quiet, _ = play(str(tones / "quiet.webm"), chain)
        levels[normalize] = db(rms(steady(loud, 3.0)) / rms(steady(quiet, 3.0)))
    print(f"\nloud vs quiet: {levels[False]:.1f} dB without normalisation, {levels[True]:.1f} dB with")
    assert levels[False] == pytest.approx(20, abs=1)
    assert abs(levels[True]) <= 2


def test_the_volume_applies_on_top_of_normalisation(tones: Path):
    chain = FilterChain(normalize=True)
    full, _ = play(str(tones / "quiet.webm"), chain)
    half, _ = play(str(tones / "quiet.webm"), chain, volume=50)
    assert rms(steady(half, 3.0)) / rms(steady(full, 3.0)) == pytest.approx(0.5, abs=0.05)


def test_karaoke_removes_what_is_in_the_centre(tones: Path):
    plain, _ = play(str(tones / "a440.webm"), FilterChain())
    karaoke, _ = play(str(tones / "a440.webm"), FilterChain(karaoke=True))
    assert db(rms(steady(karaoke)) / rms(steady(plain))) <= -20


@pytest.mark.parametrize("name", ["tremolo", "8d"])
def test_tremolo_and_8d_make_the_level_waver(tones: Path, name: str):
    # 8d pans: one channel wavers (the two together stay even)
    pcm, _ = play(str(tones / "a440.webm"), FilterChain().with_filter(name, "4"), left=True)
    frames = steady(pcm, 2.0).reshape(-1, 960)  # 20 ms frames
    levels = np.sqrt(np.mean(np.square(frames), axis=1))
    assert levels.max() / max(levels.min(), 1e-6) > 2


def test_lowpass_cuts_a_tone_above_its_cut_off(tones: Path):
    plain, _ = play(str(tones / "high5k.webm"), FilterChain())
    cut, _ = play(str(tones / "high5k.webm"), FilterChain().with_filter("lowpass", "500"))
    assert db(rms(steady(cut)) / rms(steady(plain))) <= -20


def test_every_filter_and_preset_makes_a_graph_ffmpeg_runs(tones: Path):
    chains = [FilterChain().with_filter(name) for name in FILTERS]
    chains += [FilterChain().with_eq(gains) for gains in EQ_PRESETS.values()]
    everything = FilterChain(normalize=True).with_eq(EQ_PRESETS["rock"])
    for name in FILTERS:
        if name not in ("vaporwave",):  # one timescale: the latest wins
            everything = everything.with_filter(name)
    chains.append(everything)
    for chain in chains:
        pcm, _ = play(str(tones / "a440.webm"), chain, start=3.0)
        assert len(pcm) > 0, filter_graph(chain)


def test_a_remote_track_plays_through_filters_from_a_position(media_server):
    pcm, stream = play(media_server.url("steps.webm"), FilterChain(timescale=NIGHTCORE),
                       start=2.0, local=False)
    # steps: 300, 500, 700, 900, 1100 Hz one second each; 2.0 s is the start of 700 Hz
    assert dominant_frequency(pcm[: int(0.5 * SAMPLE_RATE)]) == pytest.approx(700 * 1.25, abs=8)
    assert stream.position == pytest.approx(5.0, abs=0.06)
    assert not stream.passthrough and "libopus" in stream.args


# -- the graph holds numbers only --------------------------------------------------------------


def test_a_flat_chain_copies_and_any_filter_transcodes(media_server):
    assert filter_graph(FilterChain()) is None and filter_graph(None, 100) is None
    assert filter_graph(FilterChain(), 50) == "volume=0.50"
    copied = TrackStream(FFMPEG, media_server.url("a440.webm"), filters=FilterChain(), passthrough=True)
    filtered = TrackStream(FFMPEG, media_server.url("a440.webm"), filters=FilterChain(karaoke=True),
                           passthrough=True)
    assert copied.passthrough and copied.in_process is False
    assert not filtered.passthrough
    with pytest.raises(ValueError, match="transcoding"):
        build_args(FFMPEG, None, filters=FilterChain(karaoke=True), passthrough=True)


def test_the_graph_is_made_of_filter_names_and_numbers():
    chain = FilterChain(normalize=True).with_eq(EQ_PRESETS["vocal"])
    for name in FILTERS:
        chain = chain.with_filter(name)
    graph = filter_graph(chain, 80)
    assert graph is not None
    for part in graph.split(","):
        name, _, options = part.partition("=")
        assert re.fullmatch(r"[a-z]+", name), part
        option = r"([A-Za-z_]+=)?[-0-9.a-z]+"
        assert re.fullmatch(rf"{option}(:{option})*", options), part


@pytest.mark.parametrize(("name", "value"), [
    ("speed", "3"), ("speed", "0.1"), ("pitch", "nan"), ("rate", "inf"), ("tremolo", "1e9"),
    ("lowpass", "50"), ("8d", "-1"), ("speed", "1.2,volume=9"), ("tremolo", "4:d=1"),
    ("lowpass", "1000[out]"), ("nightcore", "2"), ("karaoke", "maybe"), ("echo", None),
])
def test_member_text_outside_a_filter_s_range_is_refused_with_a_sentence(name, value):
    with pytest.raises(ValueError) as refused:
        FilterChain().with_filter(name, value)
    assert str(refused.value).endswith(".")


def test_a_chain_cannot_hold_a_value_outside_its_range():
    with pytest.raises(ValueError):
        Timescale(speed=float("nan"))
    with pytest.raises(ValueError):
        FilterChain(tremolo=1e6)
    with pytest.raises(ValueError):
        FilterChain(eq=(2.0,) * 15)
    with pytest.raises(ValueError):
        FilterChain(eq=(0.0,) * 3)


def test_tempo_steps_multiply_to_the_tempo_within_atempo_s_range():
    for tempo in (0.25, 0.4, 0.8, 1.0, 1.6, 3.0, 4.0):
        steps = tempo_steps(tempo)
        assert math.prod(steps) == pytest.approx(tempo)
        assert all(0.5 <= s <= 2.0 for s in steps)


def test_gains_on_lavalink_s_scale_and_in_db():
    assert gain_to_db(0.25) == pytest.approx(6.02, abs=0.01)
    assert gain_to_db(1.0) == pytest.approx(13.98, abs=0.01)
    assert gain_to_db(-0.25) == -24.0
    for gain in (-0.2, 0.0, 0.1, 0.5, 1.0):
        assert db_to_gain(gain_to_db(gain)) == pytest.approx(gain)

"""TrackStream and ChainSource against real ffmpeg and real HTTP (the session media server)."""

from __future__ import annotations

import asyncio
import collections
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from music.audio.ffmpeg import probe_audio
from music.audio.ogg import opus_frame_duration_ms
from music.audio.source import SILENCE_FRAME, ChainClosed, ChainSource, TrackStream
from tests.support.audio_analysis import SAMPLE_RATE, decode_opus_packets, dominant_frequency, rms
from tests.support.media import FFMPEG
from tests.support.processes import ffmpeg_children, process_is_gone

FRAMES_PER_SECOND = 50


def drain(stream: TrackStream, timeout: float = 20.0) -> list[bytes]:
    """Take every packet of a stream (a test-thread consumer, so it may sleep on underrun)."""
    packets: list[bytes] = []
    deadline = time.monotonic() + timeout
    while not stream.finished:
        assert time.monotonic() < deadline, f"stream did not finish: {stream!r}"
        packet = stream.read_packet()
        if packet is None:
            time.sleep(0.002)
            continue
        packets.append(packet)
    return packets


def frequency_of(packets: list[bytes], skip_seconds: float = 0.1, seconds: float = 0.5) -> float:
    pcm, bad = decode_opus_packets(packets)
    assert bad == 0
    begin = int(skip_seconds * SAMPLE_RATE)
    return dominant_frequency(pcm[begin : begin + int(seconds * SAMPLE_RATE)])


@pytest.fixture(autouse=True)
def no_ffmpeg_left_behind():
    """Every test must end (and reap) the ffmpeg processes it started."""
    yield
    deadline = time.monotonic() + 3
    while ffmpeg_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ffmpeg_children() == []


# -- TrackStream ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "frequency", "copy"),
    [("a440.webm", 440, True), ("a440.ogg", 440, True), ("a660.mp3", 660, False),
     ("a550.m4a", 550, False)],
)
def test_stream_yields_20ms_opus_of_the_served_track(media_server, name, frequency, copy):
    url = media_server.url(name)
    probe = probe_audio(FFMPEG, url)
    assert probe.is_opus is copy
    stream = TrackStream(FFMPEG, url, passthrough=probe.is_opus).start()
    try:
        assert stream.wait_ready(10)
        packets = drain(stream)
    finally:
        stream.close()
    assert stream.passthrough is copy
    assert ("copy" in stream.args) is copy
    assert ("libopus" in stream.args) is not copy
    assert stream.error is None and stream.returncode == 0
    assert abs(len(packets) - 3 * FRAMES_PER_SECOND) <= 3
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}
    assert not any(p.startswith((b"OpusHead", b"OpusTags")) for p in packets)
    pcm, bad = decode_opus_packets(packets)
    assert bad == 0  # no header or foreign packet got through
    assert abs(dominant_frequency(pcm[SAMPLE_RATE // 2 : 2 * SAMPLE_RATE]) - frequency) < 5
    assert stream.frames_read == len(packets)
    assert stream.position == pytest.approx(len(packets) * 0.02)


def test_start_position_seeks_into_the_track(media_server):
    stream = TrackStream(FFMPEG, media_server.url("steps.webm"), start=2.0,
                         passthrough=True).start()
    try:
        packets = drain(stream)
    finally:
        stream.close()
    # steps: 300, 500, 700, 900, 1100 Hz one second each; 2.0 s is the start of 700 Hz
    assert abs(frequency_of(packets[:40], skip_seconds=0.05, seconds=0.6) - 700) < 5
    assert abs(len(packets) - 3 * FRAMES_PER_SECOND) <= 3
    assert stream.position == pytest.approx(2.0 + len(packets) * 0.02)


def test_volume_50_halves_the_level(media_server):
    levels = {}
    for volume in (100, 50):
        # passthrough is asked for, but only volume 100 can be copied
        stream = TrackStream(FFMPEG, media_server.url("a440.webm"), volume=volume,
                             passthrough=volume == 100).start()
        try:
            packets = drain(stream)
        finally:
            stream.close()
        pcm, bad = decode_opus_packets(packets)
        assert bad == 0
        levels[volume] = rms(pcm[SAMPLE_RATE // 2 : 2 * SAMPLE_RATE])
    assert levels[50] / levels[100] == pytest.approx(0.5, abs=0.03)


def test_a_volume_forces_transcoding_even_when_copy_was_asked_for(media_server):
    stream = TrackStream(FFMPEG, media_server.url("a440.webm"), volume=50, passthrough=True)
    assert not stream.passthrough
    with stream:
        assert stream.wait_ready(10)
        assert "libopus" in stream.args and "volume=0.50" in stream.args


def test_local_file_plays_with_the_file_whitelist(media_dir: Path):
    stream = TrackStream(FFMPEG, str(media_dir / "a660.mp3"), local=True,
                         passthrough=False).start()
    try:
        packets = drain(stream)
    finally:
        stream.close()
    assert stream.args[stream.args.index("-protocol_whitelist") + 1] == "file"
    assert stream.error is None
    assert abs(frequency_of(packets) - 660) < 5


def test_a_url_given_as_a_local_file_is_only_ever_a_file_name(media_server):
    requests_before = len(media_server.requests)
    stream = TrackStream(FFMPEG, media_server.url("a440.webm"), local=True,
                         passthrough=True).start()
    try:
        assert stream.wait_ready(10) is False
        assert drain(stream) == []
    finally:
        stream.close()
    # "file:" + the absolute path: ffmpeg looks for a file named like the URL
    assert stream.error is not None and "No such file or directory" in stream.error
    assert requests_before == len(media_server.requests)  # nothing was fetched


def test_local_file_is_refused_under_the_remote_whitelist(media_dir: Path):
    stream = TrackStream(FFMPEG, f"file:{media_dir / 'a440.webm'}", passthrough=True).start()
    try:
        assert drain(stream) == []
    finally:
        stream.close()
    # the cog's reader fetches only http(s), and ffmpeg opens nothing itself
    assert stream.error == "Only http and https links can be streamed."


def test_missing_remote_track_reports_ffmpegs_error(media_server):
    stream = TrackStream(FFMPEG, media_server.url("nope.webm"), passthrough=True).start()
    try:
        assert stream.wait_ready(10) is False
        assert stream.finished
    finally:
        stream.close()
    assert stream.error and "404" in stream.error
    assert "/media/nope.webm" not in stream.error  # URL paths (tokens, IPs) stay out


def test_close_mid_track_ends_and_reaps_ffmpeg(media_server):
    stream = TrackStream(FFMPEG, media_server.url("b880.webm"), passthrough=False).start()
    assert stream.wait_ready(10)
    proc = stream.process
    assert proc is not None and proc.poll() is None  # still running: the buffer is full
    assert stream.read_packet() is not None
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 2.0
    assert proc.poll() is not None
    assert process_is_gone(proc.pid)
    assert stream.finished and stream.read_packet() is None
    assert stream.error is None  # being closed is not a failure
    assert not any(t.name.endswith(f":{proc.pid}") for t in threading.enumerate())
    stream.close()  # twice is harmless


def test_prebuffer_is_bounded(media_server):
    stream = TrackStream(FFMPEG, media_server.url("a440.webm"), passthrough=True,
                         prebuffer_packets=10).start()
    try:
        assert stream.wait_ready(10)
        time.sleep(0.3)  # copy mode would produce the whole track in this time
        assert stream.buffered == 10
        assert not stream.finished
    finally:
        stream.close()


@pytest.fixture(scope="module")
def opus_60ms(media_dir: Path) -> str:
    """Opus in WebM with 60 ms packets: copying it to Discord would play at the wrong speed."""
    path = media_dir / "a440_60ms.webm"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=48000:duration=3", "-ac", "2",
         "-c:a", "libopus", "-frame_duration", "60", "-f", "webm", str(path)],
        check=True, timeout=60,
    )
    return path.name


def test_fallback_is_quick_when_ffmpeg_already_filled_the_pipe(media_server, media_dir: Path):
    """A long 60 ms track: the copying ffmpeg is blocked on a full pipe when we switch, where
    SIGTERM alone would not end it (2 s until SIGKILL)."""
    path = media_dir / "long_60ms.webm"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=48000:duration=40", "-ac", "2", "-b:a", "128k",
         "-c:a", "libopus", "-frame_duration", "60", "-f", "webm", str(path)],
        check=True, timeout=60,
    )
    assert path.stat().st_size > 256 * 1024  # far more than a pipe buffer
    stream = TrackStream(FFMPEG, media_server.url(path.name), passthrough=True).start()
    with stream:
        assert stream.wait_ready(10)
        assert stream.fell_back_to_transcode
        assert stream.ready_latency is not None and stream.ready_latency < 1.0


def test_copy_of_non_20ms_opus_falls_back_to_transcoding(media_server, opus_60ms):
    url = media_server.url(opus_60ms)
    assert probe_audio(FFMPEG, url).is_opus
    stream = TrackStream(FFMPEG, url, passthrough=True).start()
    try:
        packets = drain(stream)
    finally:
        stream.close()
    assert stream.fell_back_to_transcode and not stream.passthrough
    assert "libopus" in stream.args
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}
    assert abs(len(packets) - 3 * FRAMES_PER_SECOND) <= 3
    assert abs(frequency_of(packets) - 440) < 5


# -- ChainSource with real streams ---------------------------------------------------------------


class EventLog:
    """Collects (read index, kind, track id, error) as the audio thread reports them."""

    def __init__(self) -> None:
        self.reads = 0
        self.events: list[tuple[int, str, str | None, str | None]] = []

    def __call__(self, kind: str, track_id: str | None, error: str | None) -> None:
        self.events.append((self.reads, kind, track_id, error))

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(kind, track_id) for _, kind, track_id, _ in self.events]


def run_chain(chain: ChainSource, log: EventLog, *, limit: int = 2000):
    """Call read() like the player would, as fast as possible; sleep only on silence.

    Returns (packets incl. silence, read() durations)."""
    packets: list[bytes] = []
    durations: list[float] = []
    while len(packets) < limit:
        log.reads = len(packets)
        began = time.perf_counter()
        packet = chain.read()
        durations.append(time.perf_counter() - began)
        if packet == b"":
            return packets, durations
        packets.append(packet)
        if packet == SILENCE_FRAME:
            time.sleep(0.005)  # the test consumer waits; the source itself never does
    raise AssertionError("the chain never ended")


def test_chain_switches_tracks_without_a_gap(media_server):
    log = EventLog()
    chain = ChainSource(log, idle_grace=0.1)
    first = TrackStream(FFMPEG, media_server.url("a440.webm"), passthrough=True)
    second = TrackStream(FFMPEG, media_server.url("b880.webm"), passthrough=True)
    chain.play_now(first, "A")
    assert first.wait_ready(10)
    chain.set_next(second, "B")
    assert second.wait_ready(10)  # opened ahead of time, as the cog's prefetch does

    packets, durations = run_chain(chain, log)

    assert log.kinds() == [("track_start", "A"), ("track_end", "A"), ("track_start", "B"),
                           ("track_end", "B"), ("exhausted", None)]
    switch_index = log.events[1][0]
    assert log.events[2][0] == switch_index  # B started in the very tick A ended
    assert packets[switch_index] != SILENCE_FRAME
    assert packets[switch_index - 1] != SILENCE_FRAME  # A's last packet right before it
    first_audio = packets[:switch_index]
    second_audio = packets[switch_index:]
    assert abs(len([p for p in first_audio if p != SILENCE_FRAME]) - 150) <= 3
    assert abs(frequency_of([p for p in first_audio if p != SILENCE_FRAME]) - 440) < 5
    second_real = [p for p in second_audio if p != SILENCE_FRAME]
    assert abs(frequency_of(second_real) - 880) < 5
    # the frame just before the switch is still 440 Hz and the one at it already 880 Hz
    tail_a = [p for p in first_audio if p != SILENCE_FRAME][-25:]
    assert abs(frequency_of(tail_a, skip_seconds=0.0, seconds=0.4) - 440) < 10
    assert abs(frequency_of(second_real[:25], skip_seconds=0.02, seconds=0.4) - 880) < 10

    stats = chain.stats
    assert stats.gapless_switches == 1
    assert stats.frames_sent == len([p for p in packets if p != SILENCE_FRAME])
    assert stats.frames_silence == len([p for p in packets if p == SILENCE_FRAME])
    # read() must never make the player late: no call (after the first) takes 5 ms
    assert max(durations[1:]) < 0.005, f"slowest read() {max(durations[1:]) * 1000:.2f} ms"
    assert chain.exhausted
    assert chain.read() == b""
    with pytest.raises(ChainClosed):
        chain.play_now(TrackStream(FFMPEG, media_server.url("a440.webm"), passthrough=True), "C")

    chain.cleanup()
    assert chain.wait_closed(10)
    for stream in (first, second):
        assert stream.process is not None and stream.process.poll() is not None
        assert process_is_gone(stream.pid)


def test_silence_while_the_first_packet_is_on_its_way_is_not_an_underrun(media_server):
    log = EventLog()
    chain = ChainSource(log, idle_grace=0.1)
    chain.play_now(TrackStream(FFMPEG, media_server.url("a440.webm"), passthrough=False), "A")
    first = chain.read()  # ffmpeg cannot have produced anything within microseconds
    assert first == SILENCE_FRAME
    stats = chain.stats
    assert stats.frames_silence == 1 and stats.underruns == 0 and stats.frames_sent == 0
    assert log.events == []  # track_start waits for real audio
    chain.cleanup()
    assert chain.wait_closed(10)


def test_failing_track_reports_an_error_and_the_next_one_plays(media_server):
    log = EventLog()
    chain = ChainSource(log, idle_grace=0.1)
    chain.play_now(TrackStream(FFMPEG, media_server.url("gone.webm"), passthrough=True), "bad")
    good = TrackStream(FFMPEG, media_server.url("b880.webm"), passthrough=True)
    chain.set_next(good, "good")
    packets, _ = run_chain(chain, log)
    kinds = log.kinds()
    assert kinds[0] == ("track_error", "bad")
    assert "404" in (log.events[0][3] or "")
    assert kinds[1:] == [("track_start", "good"), ("track_end", "good"), ("exhausted", None)]
    assert abs(frequency_of([p for p in packets if p != SILENCE_FRAME]) - 880) < 5
    chain.cleanup()
    assert chain.wait_closed(10)


def test_play_now_replaces_and_closes_the_old_stream(media_server):
    log = EventLog()
    chain = ChainSource(log, idle_grace=0.1)
    old = TrackStream(FFMPEG, media_server.url("a440.webm"), passthrough=True)
    chain.play_now(old, "old")
    assert old.wait_ready(10)
    assert chain.read() != SILENCE_FRAME
    new = TrackStream(FFMPEG, media_server.url("b880.webm"), passthrough=True)
    began = time.perf_counter()
    chain.play_now(new, "new")
    assert time.perf_counter() - began < 0.1  # closing happens elsewhere
    assert chain.current_track_id == "new"
    deadline = time.monotonic() + 5
    while not (old.closed and old.process is not None and old.process.poll() is not None):
        assert time.monotonic() < deadline, "the replaced stream was never closed"
        time.sleep(0.01)
    assert new.wait_ready(10)
    packets = [chain.read() for _ in range(30)]
    assert abs(frequency_of(packets, skip_seconds=0.02, seconds=0.5) - 880) < 5
    assert ("track_start", "new") in log.kinds()
    assert ("track_end", "old") not in log.kinds()  # replaced on request: no event
    chain.cleanup()
    assert chain.wait_closed(10)
    assert process_is_gone(new.pid)


# -- ChainSource logic with scripted streams ----------------------------------------------------


class ScriptedStream:
    """Stands in for TrackStream where the test must control when packets arrive."""

    def __init__(self, packets: list[bytes] | None = None, error: str | None = None) -> None:
        self.packets = collections.deque(packets or [])
        self.ended = False
        self.error = error
        self.closed = False
        self.frames_read = 0

    def start(self) -> ScriptedStream:
        return self

    def read_packet(self) -> bytes | None:
        if self.packets:
            self.frames_read += 1
            return self.packets.popleft()
        return None

    @property
    def finished(self) -> bool:
        return self.ended and not self.packets

    @property
    def position(self) -> float:
        return self.frames_read * 0.02

    def close(self) -> None:
        self.closed = True


def audio(n: int) -> bytes:
    return bytes([0xFC, n])


def test_underrun_sends_counted_silence_and_resumes():
    log = EventLog()
    chain = ChainSource(log)
    stream = ScriptedStream([audio(1), audio(2)])
    chain.play_now(stream, "A")  # type: ignore[arg-type]
    assert [chain.read(), chain.read()] == [audio(1), audio(2)]
    assert [chain.read() for _ in range(3)] == [SILENCE_FRAME] * 3  # the network stalls
    stream.packets.extend([audio(3)])
    assert chain.read() == audio(3)
    stats = chain.stats
    assert (stats.frames_sent, stats.frames_silence, stats.underruns) == (3, 3, 3)
    assert chain.position == pytest.approx(0.06)
    assert log.kinds() == [("track_start", "A")]
    chain.cleanup()
    assert chain.wait_closed(5) and stream.closed


def test_idle_grace_waits_for_a_late_next_track_then_exhausts():
    log = EventLog()
    chain = ChainSource(log, idle_grace=0.1)  # 5 frames
    ended = ScriptedStream([audio(1)])
    ended.ended = True
    chain.play_now(ended, "A")  # type: ignore[arg-type]
    assert chain.read() == audio(1)
    assert [chain.read() for _ in range(3)] == [SILENCE_FRAME] * 3
    late = ScriptedStream([audio(2)])
    late.ended = True
    chain.set_next(late, "B")  # type: ignore[arg-type]
    assert chain.read() == audio(2)
    silences = [chain.read() for _ in range(5)]
    assert silences == [SILENCE_FRAME] * 5
    assert chain.read() == b""
    assert log.kinds() == [("track_start", "A"), ("track_end", "A"), ("track_start", "B"),
                           ("track_end", "B"), ("exhausted", None)]
    assert chain.stats.underruns == 0  # waiting between tracks is not starvation
    assert chain.read() == b""
    assert log.kinds().count(("exhausted", None)) == 1
    chain.cleanup()
    assert chain.wait_closed(5)


def test_skip_moves_to_the_prepared_next_track():
    log = EventLog()
    chain = ChainSource(log)
    current, upcoming = ScriptedStream([audio(1)] * 10), ScriptedStream([audio(2)] * 10)
    chain.play_now(current, "A")  # type: ignore[arg-type]
    chain.set_next(upcoming, "B")  # type: ignore[arg-type]
    assert chain.read() == audio(1)
    assert chain.skip() == "B"
    assert chain.read() == audio(2)
    assert chain.current_track_id == "B" and chain.next_track_id is None
    chain.cleanup()
    assert chain.wait_closed(5)
    assert current.closed and upcoming.closed


def test_a_failing_callback_does_not_break_read():
    def explode(kind: str, track_id: str | None, error: str | None) -> None:
        raise RuntimeError("callback bug")

    chain = ChainSource(explode)
    chain.play_now(ScriptedStream([audio(1)]), "A")  # type: ignore[arg-type]
    assert chain.read() == audio(1)
    chain.cleanup()
    assert chain.wait_closed(5)


def test_callback_may_call_back_into_the_chain():
    """Events are emitted after the lock is released, so a callback that sets the next track
    (as a synchronous test double of the cog might) does not deadlock."""
    chain: ChainSource

    def on_event(kind: str, track_id: str | None, error: str | None) -> None:
        if kind == "track_end" and track_id == "A":
            nxt = ScriptedStream([audio(9)])
            nxt.ended = True
            chain.set_next(nxt, "B")  # type: ignore[arg-type]

    chain = ChainSource(on_event)
    first = ScriptedStream([audio(1)])
    first.ended = True
    chain.play_now(first, "A")  # type: ignore[arg-type]
    assert chain.read() == audio(1)
    assert chain.read() == SILENCE_FRAME  # A ends in this tick; B arrives from the callback
    assert chain.read() == audio(9)
    chain.cleanup()
    assert chain.wait_closed(5)


# -- a real discord.py AudioPlayer thread ------------------------------------------------------


class RecordingVoiceClient:
    """The parts of VoiceClient that discord.py's AudioPlayer touches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.client = SimpleNamespace(loop=loop)
        self.ws = SimpleNamespace(speak=self._speak)

    async def _speak(self, state: object) -> None:
        return None

    def is_connected(self) -> bool:
        return True

    def send_audio_packet(self, data: bytes, encode: bool = True) -> None:
        assert not encode  # ChainSource.is_opus() -> no Python-side encoding
        self.sent.append((time.perf_counter(), data))


class TimedChain(ChainSource):
    """Records how long each read() took inside the real player thread."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read_seconds: list[float] = []

    def read(self) -> bytes:
        began = time.perf_counter()
        try:
            return super().read()
        finally:
            self.read_seconds.append(time.perf_counter() - began)


async def test_discord_audio_player_plays_two_tracks_gaplessly(media_server):
    from discord.player import AudioPlayer

    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, str | None, str | None]] = asyncio.Queue()

    def on_event(kind: str, track_id: str | None, error: str | None) -> None:
        # what the cog does: hop from the audio thread to the event loop
        loop.call_soon_threadsafe(events.put_nowait, (kind, track_id, error))

    chain = TimedChain(on_event, idle_grace=0.2)
    first = TrackStream(FFMPEG, media_server.url("a440.webm"), passthrough=True)
    second = TrackStream(FFMPEG, media_server.url("b880.webm"), passthrough=True)
    chain.play_now(first, "A")
    await asyncio.to_thread(first.wait_ready, 10)

    client = RecordingVoiceClient(loop)
    done = loop.create_future()
    player = AudioPlayer(chain, client,  # type: ignore[arg-type]
                         after=lambda error: loop.call_soon_threadsafe(done.set_result, error))
    player.start()

    assert await asyncio.wait_for(events.get(), 5) == ("track_start", "A", None)
    # the advancer's prefetch: open the next track while A plays
    chain.set_next(second, "B")
    await asyncio.to_thread(second.wait_ready, 10)
    assert await asyncio.wait_for(events.get(), 10) == ("track_end", "A", None)
    assert await asyncio.wait_for(events.get(), 1) == ("track_start", "B", None)
    assert await asyncio.wait_for(done, 10) is None
    assert await asyncio.wait_for(events.get(), 1) == ("track_end", "B", None)
    assert await asyncio.wait_for(events.get(), 1) == ("exhausted", None, None)
    assert await asyncio.to_thread(chain.wait_closed, 10)  # discord.py called cleanup()

    payloads = [data for _, data in client.sent]
    audio_indexes = [i for i, data in enumerate(payloads) if data != SILENCE_FRAME]
    played = payloads[audio_indexes[0] : audio_indexes[-1] + 1]
    assert SILENCE_FRAME not in played  # no gap inside or between the tracks
    assert abs(len(played) - 300) <= 6
    times = np.array([t for t, _ in client.sent[audio_indexes[0] : audio_indexes[-1] + 1]])
    # The player keeps an absolute 20 ms clock; single late wake-ups (scheduler, GC on a busy
    # 2-core machine) happen and are caught up, so judge the pace, not the worst wake-up.
    gaps = np.diff(times)[1:]  # discord.py's first sleep is one frame too long
    assert (times[-1] - times[0]) / (len(times) - 1) == pytest.approx(0.020, abs=0.001)
    assert np.percentile(gaps, 95) < 0.025
    # what this source controls: read() is quick inside the real player thread
    assert max(chain.read_seconds) < 0.005
    switch = next(i for i, data in enumerate(played) if i >= 140
                  and abs(frequency_of([data], skip_seconds=0, seconds=0.02) - 880) < 60)
    assert 145 <= switch <= 156
    assert abs(frequency_of(played[:150]) - 440) < 5
    assert abs(frequency_of(played[-140:]) - 880) < 5
    assert process_is_gone(first.pid) and process_is_gone(second.pid)

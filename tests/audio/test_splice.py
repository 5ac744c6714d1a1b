"""ChainSource.splice: another stream of the playing track (new filters, a new volume) takes
over where the playing one has got to, inside read(): no silence frame, no audio played twice,
no jump ahead. Scripted streams pin the logic down packet by packet; real streams (ffmpeg, the
session's media server) show it on audio."""

from __future__ import annotations

import collections
import time

import pytest

from music.audio.source import SILENCE_FRAME, ChainSource, TrackStream
from music.engine.filters import NIGHTCORE, FilterChain
from tests.support.audio_analysis import decode_opus_packets, dominant_frequency
from tests.support.media import FFMPEG


class Timed:
    """A stream whose packets name their position in the track (b"<seconds>"): what a
    TrackStream of the track from `start` would hand out, `packet_seconds` of track each."""

    def __init__(self, start: float, packets: int, packet_seconds: float = 0.02, *,
                 buffered: int | None = None) -> None:
        self.start_position = start
        self.packet_seconds = packet_seconds
        self.pending = collections.deque(
            f"{start + n * packet_seconds:.3f}".encode() for n in range(packets))
        self.available = len(self.pending) if buffered is None else buffered
        self.taken = 0
        self.ended = False
        self.error: str | None = None
        self.closed = False

    def start(self) -> Timed:
        return self

    def arrive(self, n: int) -> None:
        """`n` more packets are buffered (as the reader thread would put them)."""
        self.available += n

    def read_packet(self) -> bytes | None:
        if not self.pending or self.available <= 0:
            return None
        self.available -= 1
        self.taken += 1
        return self.pending.popleft()

    @property
    def finished(self) -> bool:
        return (self.ended or self.closed) and (not self.pending or self.available <= 0)

    @property
    def position(self) -> float:
        return self.start_position + self.taken * self.packet_seconds

    def close(self) -> None:
        self.closed = True


def chain_playing(stream: Timed, packets: int) -> tuple[ChainSource, list[tuple[str, str | None]], list[bytes]]:
    events: list[tuple[str, str | None]] = []
    chain = ChainSource(lambda kind, track_id, error: events.append((kind, track_id)))
    chain.play_now(stream, "t")  # type: ignore[arg-type]
    heard = [chain.read() for _ in range(packets)]
    return chain, events, heard


def seconds(packet: bytes) -> float:
    return float(packet.decode())


def test_the_spliced_stream_takes_over_at_the_playing_position_dropping_what_came_before():
    old = Timed(0.0, 500)
    chain, _, heard = chain_playing(old, 50)  # 1.00 s played
    new = Timed(0.6, 500)  # opened where the track was when the change was asked for
    chain.splice(new, "t")  # type: ignore[arg-type]
    heard += [chain.read() for _ in range(10)]
    assert [seconds(p) for p in heard] == pytest.approx([n * 0.02 for n in range(60)])
    assert heard[50:] == [f"{1.0 + n * 0.02:.3f}".encode() for n in range(10)]  # the new stream's
    assert old.closed or chain.current_stream is new
    stats = chain.stats
    assert stats.splices == 1 and stats.splice_dropped == 20 and stats.frames_silence == 0
    assert chain.position == pytest.approx(1.2)
    chain.cleanup()
    assert chain.wait_closed(2) and old.closed


def test_the_playing_stream_plays_on_until_the_new_one_has_audio_at_its_position():
    old = Timed(0.0, 500)
    chain, _, heard = chain_playing(old, 50)
    new = Timed(0.6, 500, buffered=5)  # its reader has not got that far yet
    chain.splice(new, "t")  # type: ignore[arg-type]
    heard += [chain.read() for _ in range(3)]
    assert chain.current_stream is old and chain.splicing
    new.arrive(40)
    heard += [chain.read() for _ in range(5)]
    assert chain.current_stream is new and not chain.splicing
    assert [seconds(p) for p in heard] == pytest.approx([n * 0.02 for n in range(58)])
    assert SILENCE_FRAME not in heard
    chain.cleanup()


def test_a_stream_opened_ahead_waits_for_the_playing_one_to_get_there():
    old = Timed(0.0, 500)
    chain, _, heard = chain_playing(old, 10)
    chain.splice(Timed(0.3, 500), "t")  # type: ignore[arg-type]
    heard += [chain.read() for _ in range(20)]
    assert [seconds(p) for p in heard] == pytest.approx([n * 0.02 for n in range(30)])
    assert chain.stats.splices == 1 and chain.stats.splice_dropped == 0
    chain.cleanup()


def test_a_faster_stream_takes_over_within_half_a_packet_and_counts_its_own_time():
    old = Timed(0.0, 500)
    chain, _, heard = chain_playing(old, 51)  # 1.02 s
    new = Timed(0.5, 500, packet_seconds=0.025)  # nightcore: 25 ms of the track per packet
    chain.splice(new, "t")  # type: ignore[arg-type]
    first = seconds(chain.read())
    assert abs(first - 1.02) <= 0.0125
    assert seconds(chain.read()) == pytest.approx(first + 0.025)
    assert chain.position == pytest.approx(first + 0.05)
    chain.cleanup()


def test_a_new_stream_that_ends_before_the_position_is_dropped_and_the_old_plays_on():
    old = Timed(0.0, 500)
    chain, events, heard = chain_playing(old, 50)
    broken = Timed(0.6, 5)
    broken.ended, broken.error = True, "the input failed"
    chain.splice(broken, "t")  # type: ignore[arg-type]
    heard += [chain.read() for _ in range(5)]
    assert [seconds(p) for p in heard] == pytest.approx([n * 0.02 for n in range(55)])
    assert not chain.splicing and chain.current_stream is old
    assert ("track_error", "t") not in events
    chain.cleanup()
    assert chain.wait_closed(2) and broken.closed


def test_when_the_track_ends_first_the_new_stream_is_dropped_and_the_next_track_plays():
    old = Timed(0.0, 10)
    old.ended = True
    chain, events, _ = chain_playing(old, 5)
    chain.set_next(Timed(0.0, 100), "next")  # type: ignore[arg-type]
    late = Timed(5.0, 100)  # it is ahead, so it waits for a position the track never reaches
    chain.splice(late, "t")  # type: ignore[arg-type]
    heard = [chain.read() for _ in range(8)]
    assert ("track_end", "t") in events and chain.current_track_id == "next"
    assert SILENCE_FRAME not in heard
    chain.cleanup()
    assert chain.wait_closed(2) and late.closed


@pytest.mark.parametrize("replace", ["play_now", "skip", "cleanup"])
def test_a_pending_splice_is_closed_by_what_replaces_the_track(replace: str):
    chain, _, _ = chain_playing(Timed(0.0, 500), 5)
    pending = Timed(9.0, 10)
    chain.splice(pending, "t")  # type: ignore[arg-type]
    if replace == "play_now":
        chain.play_now(Timed(30.0, 10), "t")  # type: ignore[arg-type]  # a seek
    elif replace == "skip":
        chain.skip()
    chain.cleanup()
    assert chain.wait_closed(2) and pending.closed


def test_a_splice_for_another_track_or_before_the_first_packet_plays_at_once():
    chain, _, _ = chain_playing(Timed(0.0, 500), 5)
    other = Timed(7.0, 10)
    chain.splice(other, "other")  # type: ignore[arg-type]
    assert chain.current_stream is other and chain.current_track_id == "other"
    fresh = Timed(3.0, 10)
    chain.splice(fresh, "other")  # type: ignore[arg-type]  # `other` has handed out nothing
    assert chain.current_stream is fresh
    chain.cleanup()


# -- on real audio -------------------------------------------------------------------------------


def test_nightcore_spliced_into_a_playing_track_is_heard_at_the_same_place(media_server):
    """steps.webm: 300, 500, 700, 900, 1100 Hz one second each. 1.2 s in (500 Hz), nightcore
    opened at 0.8 s takes over at 1.2 s: 625 Hz, and the 700 Hz step comes 0.8 s of track
    (0.64 s heard) later, at 875 Hz."""
    url = media_server.url("steps.webm")
    chain = ChainSource(lambda *args: None)
    old = TrackStream(FFMPEG, url, passthrough=True, in_process=True)
    chain.play_now(old, "t")
    assert old.wait_ready(10)
    heard = take(chain, 60)
    new = TrackStream(FFMPEG, url, start=0.8, filters=FilterChain(timescale=NIGHTCORE),
                      passthrough=True, in_process=True)
    chain.splice(new, "t")
    assert new.wait_ready(10)
    deadline = time.monotonic() + 10
    while new.buffered < 40:  # the test reads faster than the clock: let it get there first
        assert time.monotonic() < deadline
        time.sleep(0.005)
    after = take(chain, 60)
    chain.cleanup()
    assert chain.wait_closed(5)
    assert chain.stats.splices == 1 and chain.stats.frames_silence == 0
    assert SILENCE_FRAME not in heard + after
    pcm, bad = decode_opus_packets(heard + after)
    assert bad == 0
    frame = 960

    def hz(index: int, frames: int = 10) -> float:
        return dominant_frequency(pcm[index * frame : (index + frames) * frame])

    assert hz(52, 8) == pytest.approx(500, abs=10)
    assert hz(62) == pytest.approx(625, abs=10)  # the first new packets: the same place, faster
    assert hz(60 + 32 + 3) == pytest.approx(875, abs=10)  # 0.8 s of track = 32 packets on
    assert new.position == pytest.approx(1.2 + 60 * 0.025, abs=0.03)


def take(chain: ChainSource, packets: int) -> list[bytes]:
    """`packets` audio packets from the chain, waiting out underruns (a test may sleep)."""
    out: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(out) < packets:
        assert time.monotonic() < deadline
        stream = chain.current_stream
        if stream is None or stream.buffered == 0:  # read() would send silence: not a splice's
            time.sleep(0.005)
            continue
        packet = chain.read()
        if packet == SILENCE_FRAME:
            raise AssertionError("a silence frame")
        out.append(packet)
    return out


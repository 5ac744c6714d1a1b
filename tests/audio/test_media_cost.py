"""What any byte string served as media may cost the in-process readers (issue 13, points 3-5).

The bound (music/audio/limits.py, docs/FAULTS.md): for any input, ``OggOpusReader`` and
``WebmOpusReader`` spend at most ``FLOOR_S + PER_MIB_S`` per MiB read ``+ PER_PACKET_S`` per
packet yielded (packets are played at 50 a second, so that term is per second of audio), hold at
most ``MEMORY_BOUND`` bytes, and yield no packet larger than Opus allows for its frames; or they
refuse with a sentence (``MediaLimitError``, or ``WebmError`` for input that is not WebM).

CPU is ``time.process_time`` (this process only); the assertions allow ``NOISE`` times the bound,
for a machine shared with other work: the benchmark (``python -m benchmarks.run --only
media_cost``) reports the figures measured. Memory is tracemalloc's peak while reading.
"""

from __future__ import annotations

import io
import random
import subprocess
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from music.audio.limits import (
    OPUS_MAX_20MS_PACKET_BYTES,
    OPUS_MAX_PACKET_BYTES,
    MediaLimitError,
    opus_packet_limit,
)
from music.audio.ogg import OggOpusReader, ogg_crc
from music.audio.source import TrackStream
from music.audio.webm import WebmError, WebmLimitError, WebmOpusReader
from tests.audio.test_source import drain
from tests.support import hostile_media as hostile
from tests.support.media import FFMPEG, MediaServer

FLOOR_S = 0.025
PER_MIB_S = 0.050
PER_PACKET_S = 10e-6
MEMORY_BOUND = 16 * 2**20
NOISE = 2.0
GENERATORS = {**hostile.OGG_GENERATORS, **hostile.WEBM_GENERATORS}
SEEK_NS = 10**9  # "seek" generators start at 1 s (a WebM start reads the Cues)


def container_of(name: str) -> str:
    return "ogg" if name.startswith("ogg") else "webm"


def bound_s(outcome: hostile.Outcome) -> float:
    return FLOOR_S + PER_MIB_S * outcome.bytes_read / 2**20 + PER_PACKET_S * outcome.packets


def assert_within_the_bound(outcome: hostile.Outcome, what: str) -> None:
    assert outcome.cpu <= NOISE * bound_s(outcome), (
        f"{what}: {outcome.cpu * 1000:.1f} ms of CPU for {outcome.bytes_read:,} bytes and "
        f"{outcome.packets:,} packets (bound {bound_s(outcome) * 1000:.1f} ms)")
    assert outcome.peak <= MEMORY_BOUND, f"{what}: {outcome.peak / 2**20:.1f} MiB"
    assert outcome.oversized == [], f"{what}: packets over Opus's limit: {outcome.oversized[:5]}"
    error = outcome.error
    if error is not None:
        allowed = (MediaLimitError,) if container_of(what) == "ogg" else (WebmError,)
        assert isinstance(error, allowed), f"{what}: {type(error).__name__}: {error}"
        assert str(error) and "\n" not in str(error) and "://" not in str(error)


def least_cpu(container: str, data: bytes, start_ns: int = 0, runs: int = 2) -> hostile.Outcome:
    """The outcome with the least CPU of ``runs`` reads (a busy machine only adds to CPU), its
    peak memory from one more read under tracemalloc."""
    best = hostile.measure(container, data, start_ns=start_ns)
    for _ in range(runs - 1):
        again = hostile.measure(container, data, start_ns=start_ns, memory=False)
        best.cpu = min(best.cpu, again.cpu)
    return best


# -- point 3: the Ogg reader --------------------------------------------------------------------


def reference_ogg_crc(data: bytes) -> int:
    """Ogg's CRC bit by bit (RFC 3533: polynomial 0x04C11DB7, initial 0, not reflected)."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


@given(st.binary(max_size=600))
def test_the_ogg_crc_is_ogg_s(data: bytes) -> None:
    assert ogg_crc(data) == reference_ogg_crc(data)
    assert ogg_crc(bytearray(data)) == ogg_crc(memoryview(data)) == reference_ogg_crc(data)


def test_a_resync_storm_costs_milliseconds_not_seconds() -> None:
    """160 KiB of capture patterns, each a page candidate claiming ~56 KB, cost ~27 s of CPU
    with a pure-Python CRC per candidate (measured before the fix); now a few ms."""
    data = hostile.ogg_resync_storm(160 * 1024)
    started = time.process_time()
    outcome = hostile.measure("ogg", data, memory=False, time_limit=5.0)
    assert time.process_time() - started < 0.5
    assert isinstance(outcome.error, MediaLimitError) and outcome.packets == 0
    assert "hostile" in str(outcome.error)


def test_a_packet_that_never_ends_is_refused_in_bounded_memory() -> None:
    """Pages marked "continued" forever: 32 MiB held 32 MiB before the fix."""
    data = hostile.ogg_endless_continuation(32 * 2**20)
    outcome = hostile.measure("ogg", data)
    assert isinstance(outcome.error, MediaLimitError)
    assert f"{OPUS_MAX_PACKET_BYTES:,}" in str(outcome.error)
    assert outcome.peak < 512 * 1024
    assert outcome.bytes_read < 256 * 1024  # refused as soon as the packet is past the bound


def test_endless_tags_are_skipped_without_being_held() -> None:
    """OpusTags may be long (cover art), so they are not refused: they are never buffered."""
    outcome = hostile.measure("ogg", hostile.ogg_endless_tags(8 * 2**20))
    assert outcome.error is None and outcome.packets == 0
    assert outcome.peak < 512 * 1024


# -- point 4: no packet larger than Opus allows ---------------------------------------------------


def test_header_stripping_cannot_multiply_the_input() -> None:
    """70 KB of WebM whose header-stripping prefix (64 KB) goes before each of 256 laced one-byte
    frames became 256 MiB of "Opus packets" before the fix; now the first packet is refused."""
    data = hostile.webm_header_stripping(70_000)
    outcome = hostile.measure("webm", data)
    assert isinstance(outcome.error, WebmLimitError) and outcome.packets == 0
    assert "65,537 bytes" in str(outcome.error)
    assert outcome.peak < 1024 * 1024


def test_a_short_prefix_stays_within_the_limit_and_is_undone() -> None:
    prefix = bytes([0xFC]) + b"\x55" * 99
    outcome = hostile.measure("webm", hostile.webm_header_stripping(20_000, prefix_size=100))
    assert outcome.error is None and outcome.packets > 0 and outcome.largest_packet == 101
    data = hostile.webm_header_stripping(2_000, prefix_size=100)
    assert set(WebmOpusReader(io.BytesIO(data))) == {prefix + b"\x55"}


def opus_packet(toc: int, size: int, count: int | None = None) -> bytes:
    head = bytes([toc]) if count is None else bytes([toc, count])
    return head + b"\x01" * (size - len(head))


# (packet, allowed): at the limit RFC 6716 gives for its frames, and one byte over
LIMIT_CASES = [
    (opus_packet(0xFC, 1277), True),  # one 20 ms frame (code 0): 1,275 + TOC, +1 for padding
    (opus_packet(0xFC, 1278), False),
    (opus_packet(0xFD, 2554), True),  # code 1: two 20 ms frames
    (opus_packet(0xE3, OPUS_MAX_20MS_PACKET_BYTES, 0x88), True),  # 8 x 2.5 ms, VBR: 20 ms
    (opus_packet(0xE3, OPUS_MAX_20MS_PACKET_BYTES + 1, 0x88), False),
    (opus_packet(0xE3, OPUS_MAX_PACKET_BYTES, 0xB0), True),  # 48 x 2.5 ms = 120 ms
    (opus_packet(0xE3, OPUS_MAX_PACKET_BYTES + 1, 0xB0), False),
    (opus_packet(0xFF, 20_000, 0x3F), False),  # 63 x 20 ms: over 120 ms, counted as 6 frames
]


def ogg_with(packet: bytes) -> bytes:
    """An Ogg Opus stream holding ``packet`` (on as many pages as its lacing needs)."""
    lacing = hostile.lacing_of(packet)
    pages, offset = [], 0
    for index in range(0, len(lacing), 255):
        segments = lacing[index : index + 255]
        size = sum(segments)
        pages.append(hostile.ogg_page(1, 2 + index // 255, segments, packet[offset : offset + size],
                                      flags=hostile.FLAG_CONTINUED if index else 0))
        offset += size
    return hostile.ogg_opus_headers(1) + b"".join(pages)


@pytest.mark.parametrize(("packet", "allowed"), LIMIT_CASES,
                         ids=[f"{p[0]:#x}-{len(p)}-{'ok' if a else 'over'}" for p, a in LIMIT_CASES])
def test_both_readers_let_through_exactly_what_opus_allows(packet: bytes, allowed: bool) -> None:
    assert (len(packet) <= opus_packet_limit(packet)) is allowed
    webm = (hostile.webm_head() + hostile.element(hostile.CLUSTER, size=hostile.UNKNOWN_SIZE)
            + hostile.element(hostile.SIMPLE_BLOCK, b"\x81\x00\x00\x80" + packet))
    for container, data in (("ogg", ogg_with(packet)), ("webm", webm)):
        outcome = hostile.measure(container, data, memory=False)
        if allowed:
            assert outcome.error is None and outcome.packets == 1, container
        else:
            assert isinstance(outcome.error, MediaLimitError) and outcome.packets == 0, container
            assert f"{len(packet):,} bytes" in str(outcome.error)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "stripping.webm").write_bytes(hostile.webm_header_stripping(70_000))
    (root / "endless.ogg").write_bytes(hostile.ogg_endless_continuation(4 * 2**20))
    (root / "oversized.ogg").write_bytes(hostile.ogg_oversized_packets(300_000))
    (root / "empty-pages.ogg").write_bytes(hostile.ogg_empty_pages(2**20))
    server = MediaServer(root).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("name", "cause"), [
    ("stripping.webm", "a packet of 65,537 bytes"),
    ("endless.ogg", "a packet that goes on past 61,296 bytes"),
    ("oversized.ogg", "a packet of 60,000 bytes"),
    ("empty-pages.ogg", "Ogg pages, resync attempts and empty packets"),
])
def test_the_user_is_told_why_and_nothing_reaches_the_sender(hostile_server, name: str,
                                                             cause: str) -> None:
    url = hostile_server.url(name)
    stream = TrackStream(FFMPEG, url, passthrough=True, in_process=True).start()
    with stream:
        packets = drain(stream)
    assert packets == []
    assert stream.pid is None  # refused, not handed to ffmpeg
    assert stream.error is not None and cause in stream.error
    assert stream.error.startswith("the audio is damaged or hostile: ")
    assert "127.0.0.1" not in stream.error and name not in stream.error


# -- point 5: the bound, on every generator and on whatever hypothesis makes ----------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(GENERATORS))
def test_every_hostile_shape_stays_within_the_bound(name: str) -> None:
    # packet-dense shapes cost per packet (played at 50 a second): a smaller input suffices
    size = 256 * 1024 if name in ("ogg one-byte packets", "webm all lacings") else 4 * 2**20
    data = GENERATORS[name](size)
    outcome = least_cpu(container_of(name), data, SEEK_NS if "seek" in name else 0)
    assert_within_the_bound(outcome, name)


@pytest.fixture(scope="module")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("real")
    made = {}
    for suffix in ("webm", "ogg"):
        path = root / f"tone.{suffix}"
        subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                        "aevalsrc='0.3*sin(2*PI*(200+50*t)*t)':s=48000:c=stereo:d=2",
                        "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20",
                        "-cluster_time_limit", "400", str(path)], check=True, timeout=60)
        made[suffix] = path.read_bytes()
    return made


def mutate(data: bytes, seed: int, edits: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(edits):
        where = rng.randrange(len(out) + 1)
        kind = rng.randrange(4)
        if kind == 0 and where < len(out):
            out[where] = rng.randrange(256)
        elif kind == 1:
            out[where:where] = rng.randbytes(rng.randrange(1, 16))
        elif kind == 2:
            del out[where : where + rng.randrange(1, 64)]
        else:
            # splice in a piece of a hostile shape
            shape = rng.choice(list(GENERATORS.values()))(4096)
            start = rng.randrange(len(shape))
            out[where:where] = shape[start : start + rng.randrange(16, 2048)]
    return bytes(out)


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    shape=st.sampled_from(sorted(GENERATORS)),
    size=st.integers(1024, 512 * 1024),
    seed=st.integers(0, 2**32),
    edits=st.integers(0, 8),
    start_ns=st.sampled_from([0, 0, 10**9, 3 * 10**9]),
)
def test_hostile_shapes_mutated_stay_within_the_bound(real_files, shape: str, size: int, seed: int,
                                                      edits: int, start_ns: int) -> None:
    data = mutate(GENERATORS[shape](size), seed, edits)
    outcome = least_cpu(container_of(shape), data, start_ns)
    assert_within_the_bound(outcome, shape)


@pytest.mark.timeout(600)
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    container=st.sampled_from(["webm", "ogg"]),
    kind=st.sampled_from(["random", "real mutated", "real with hostile tail"]),
    size=st.integers(0, 256 * 1024),
    seed=st.integers(0, 2**32),
    start_ns=st.sampled_from([0, 10**9]),
)
def test_random_and_mutated_real_files_stay_within_the_bound(
        real_files, container: str, kind: str, size: int, seed: int, start_ns: int) -> None:
    rng = random.Random(seed)
    real = real_files[container]
    if kind == "random":
        magic = b"OggS" if container == "ogg" else hostile.EBML.to_bytes(4, "big")
        data = magic + rng.randbytes(size)
    elif kind == "real mutated":
        data = mutate(real, seed, 1 + size % 12)
    else:
        names = [n for n in GENERATORS if container_of(n) == container]
        data = real + GENERATORS[rng.choice(names)](size)
    outcome = least_cpu(container, data, start_ns if container == "webm" else 0)
    assert_within_the_bound(outcome, f"{container} {kind}")


def test_a_normal_file_costs_a_fraction_of_the_bound(real_files) -> None:
    for container, data in real_files.items():
        outcome = least_cpu(container, data, runs=3)
        assert outcome.error is None and outcome.packets >= 99
        assert outcome.cpu <= bound_s(outcome)
        assert outcome.peak < 512 * 1024


def test_tracemalloc_sees_what_a_reader_holds() -> None:
    """The memory figures mean something: a reader holding a 1 MiB Block shows it."""
    block = hostile.element(hostile.SIMPLE_BLOCK, b"\x82\x00\x00\x80" + b"v" * 2**20)
    data = (hostile.webm_head(video=True) + hostile.element(hostile.CLUSTER, size=hostile.UNKNOWN_SIZE)
            + hostile.uint_element(hostile.TIMECODE, 0) + block)
    tracemalloc.start()
    try:
        list(WebmOpusReader(io.BytesIO(data)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024  # another track's block is skipped in bounded reads
    outcome = hostile.measure("ogg", hostile.ogg_endless_continuation(2**20))
    assert 60_000 < outcome.peak < 512 * 1024  # the packet in progress, up to the bound


def test_pages_of_other_streams_are_not_assembled() -> None:
    """A second Opus stream's packets never reach the caller, nor its memory."""
    first = [bytes([0xFC, i]) * 20 for i in range(4)]
    other = hostile.ogg_packets_page(7, 0, [hostile.OPUS_HEAD], flags=hostile.FLAG_BOS, granule=0)
    other += hostile.ogg_page(7, 1, [255] * 255, b"\x00" * 65025, granule=-1)
    data = (hostile.ogg_packets_page(1, 0, [hostile.OPUS_HEAD], flags=hostile.FLAG_BOS, granule=0)
            + other + hostile.ogg_packets_page(1, 1, [hostile.OPUS_TAGS], granule=0)
            + b"".join(hostile.ogg_packets_page(1, 2 + i, [p], granule=960 * (i + 1) + 312)
                       for i, p in enumerate(first)))
    reader = OggOpusReader(io.BytesIO(data))
    assert list(reader) == first and reader.serial == 1

"""WebmOpusReader on real ffmpeg output (compared packet for packet with ffmpeg's copy to Ogg read
by OggOpusReader), on hand-built Matroska (lacing, BlockGroups, unknown sizes, chained streams,
header stripping) and on hostile input (huge sizes, invalid integers, truncation, mutations)."""

from __future__ import annotations

import io
import itertools
import os
import random
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from music.audio.fetch import HttpMediaReader
from music.audio.ogg import OggOpusReader, opus_frame_duration_ms
from music.audio.webm import (
    EBML_MAGIC,
    MAX_BUFFERED_ELEMENT,
    MAX_CUES,
    NotOpusAudio,
    WebmError,
    WebmLimitError,
    WebmOpusReader,
)
from tests.support.media import FFMPEG, MediaServer, generate_tone

# -- a tiny EBML writer ----------------------------------------------------------------------------

EBML, DOC_TYPE, SEGMENT = 0x1A45DFA3, 0x4282, 0x18538067
SEEK_HEAD, INFO, TIMECODE_SCALE, TRACKS = 0x114D9B74, 0x1549A966, 0x2AD7B1, 0x1654AE6B
TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE, CODEC_ID = 0xAE, 0xD7, 0x83, 0x86
CODEC_PRIVATE, CODEC_DELAY = 0x63A2, 0x56AA
CONTENT_ENCODINGS, CONTENT_ENCODING, CONTENT_COMPRESSION = 0x6D80, 0x6240, 0x5034
CONTENT_COMP_ALGO, CONTENT_COMP_SETTINGS = 0x4254, 0x4255
CUES, TAGS, CLUSTER, TIMECODE = 0x1C53BB6B, 0x1254C367, 0x1F43B675, 0xE7
SIMPLE_BLOCK, BLOCK_GROUP, BLOCK, BLOCK_DURATION, VOID = 0xA3, 0xA0, 0xA1, 0x9B, 0xEC
DISCARD_PADDING = 0x75A2

UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"  # all ones: what live muxers write

OPUS_HEAD = b"OpusHead" + bytes([1, 2]) + struct.pack("<HIhB", 312, 48000, 0, 0)


def vint(value: int, length: int | None = None) -> bytes:
    """An EBML size: the length marker bit, then the value."""
    if length is None:
        length = 1
        while value >= (1 << (7 * length)) - 1:  # all ones is reserved (unknown size)
            length += 1
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def element(eid: int, payload: bytes = b"", *, size: bytes | None = None) -> bytes:
    id_bytes = eid.to_bytes((eid.bit_length() + 7) // 8, "big")
    return id_bytes + (vint(len(payload)) if size is None else size) + payload


def uint_element(eid: int, value: int) -> bytes:
    return element(eid, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def ebml_header(doc_type: str = "webm") -> bytes:
    return element(EBML, uint_element(0x4286, 1) + element(DOC_TYPE, doc_type.encode()))


def track_entry(number: int, codec: str = "A_OPUS", track_type: int = 2, *,
                private: bytes | None = OPUS_HEAD, delay: int = 6_500_000,
                extra: bytes = b"") -> bytes:
    body = (uint_element(TRACK_NUMBER, number) + uint_element(TRACK_TYPE, track_type)
            + element(CODEC_ID, codec.encode()))
    if private is not None:
        body += element(CODEC_PRIVATE, private)
    if delay:
        body += uint_element(CODEC_DELAY, delay)
    return element(TRACK_ENTRY, body + extra)


def tracks(*entries: bytes) -> bytes:
    return element(TRACKS, b"".join(entries))


def block_body(track: int, frames: list[bytes], lacing: str | None = None, flags: int = 0x80,
               timecode: int = 0) -> bytes:
    """A (Simple)Block's content: track number, timecode, flags, lacing header, frames."""
    head = vint(track) + struct.pack(">h", timecode)
    if lacing is None:
        assert len(frames) == 1
        return head + bytes([flags]) + frames[0]
    count = bytes([len(frames) - 1])
    if lacing == "xiph":
        sizes = b"".join(b"\xff" * (len(f) // 255) + bytes([len(f) % 255]) for f in frames[:-1])
        return head + bytes([flags | 0x02]) + count + sizes + b"".join(frames)
    if lacing == "fixed":
        assert len({len(f) for f in frames}) == 1
        return head + bytes([flags | 0x04]) + count + b"".join(frames)
    assert lacing == "ebml"
    sizes = vint(len(frames[0]))
    for previous, frame in zip(frames, frames[1:-1], strict=False):
        diff = len(frame) - len(previous)
        length = 1
        while abs(diff) > (1 << (7 * length - 1)) - 1:
            length += 1
        sizes += vint(diff + (1 << (7 * length - 1)) - 1, length)
    return head + bytes([flags | 0x06]) + count + sizes + b"".join(frames)


def simple_block(track: int, frames: list[bytes], lacing: str | None = None) -> bytes:
    return element(SIMPLE_BLOCK, block_body(track, frames, lacing))


def block_group(track: int, frames: list[bytes], lacing: str | None = None) -> bytes:
    return element(BLOCK_GROUP, element(BLOCK, block_body(track, frames, lacing, flags=0))
                   + uint_element(BLOCK_DURATION, 20) + uint_element(DISCARD_PADDING, 1000))


def cluster(*children: bytes, timecode: int = 0, unknown_size: bool = False) -> bytes:
    body = uint_element(TIMECODE, timecode) + b"".join(children)
    return element(CLUSTER, body, size=UNKNOWN_SIZE if unknown_size else None)


def segment(*children: bytes, unknown_size: bool = False) -> bytes:
    body = b"".join(children)
    return element(SEGMENT, body, size=UNKNOWN_SIZE if unknown_size else None)


def audio_packet(n: int, size: int = 40) -> bytes:
    # TOC 0xFC: CELT fullband 20 ms, one frame; the rest identifies the packet
    return bytes([0xFC]) + bytes([n % 256]) * (size - 1)


def simple_webm(packets: list[bytes], *, per_cluster: int = 5, unknown: bool = False,
                track: int = 1) -> bytes:
    """A WebM with one Opus track and the packets in SimpleBlocks."""
    clusters = [
        cluster(*(simple_block(track, [p]) for p in packets[i : i + per_cluster]),
                timecode=i * 20, unknown_size=unknown)
        for i in range(0, len(packets), per_cluster)
    ]
    return ebml_header() + segment(
        element(INFO, uint_element(TIMECODE_SCALE, 1_000_000)),
        tracks(track_entry(track)), *clusters, unknown_size=unknown)


def read_all(data: bytes) -> list[bytes]:
    return list(WebmOpusReader(io.BytesIO(data)))


def read_until_error(data: bytes) -> tuple[list[bytes], BaseException | None]:
    got: list[bytes] = []
    try:
        for packet in WebmOpusReader(io.BytesIO(data)):
            got.append(packet)
    except WebmError as exc:
        return got, exc
    return got, None


# -- real ffmpeg output ----------------------------------------------------------------------------


def ffmpeg(*args: str, stdout: Path | None = None) -> bytes:
    out = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args],
                         check=True, capture_output=True, timeout=60).stdout
    if stdout is not None:
        stdout.write_bytes(out)
    return out


def ffmpeg_copy_packets(path: Path) -> list[bytes]:
    """The existing path: ffmpeg copies the Opus packets into Ogg, OggOpusReader reads them."""
    ogg = ffmpeg("-i", str(path), "-map", "0:a:0", "-c:a", "copy", "-f", "ogg", "pipe:1")
    return list(OggOpusReader(io.BytesIO(ogg)))


def ogg_opus_head(path: Path) -> bytes:
    """The OpusHead packet that ffmpeg puts on the first page of its Ogg copy."""
    ogg = ffmpeg("-i", str(path), "-map", "0:a:0", "-c:a", "copy", "-f", "ogg", "pipe:1")
    nsegs = ogg[26]
    return ogg[27 + nsegs : 27 + nsegs + sum(ogg[27 : 27 + nsegs])]


LAVFI_TONE = "aevalsrc='0.5*sin(2*PI*440*t)':s=48000:c=stereo:d={}"
LAVFI_VIDEO = "testsrc=size=64x48:rate=10:d={}"
OPUS_ARGS = ["-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20"]
VP8_ARGS = ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "100k"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Media the shared fixtures do not have: video + audio, other codecs, a tiny file."""
    root = tmp_path_factory.mktemp("webm")
    both = ["-f", "lavfi", "-i", LAVFI_VIDEO.format(2), "-f", "lavfi", "-i", LAVFI_TONE.format(2)]
    ffmpeg(*both, "-map", "1:a", "-map", "0:v", *VP8_ARGS, *OPUS_ARGS, "-f", "webm",
           str(root / "audio_first.webm"))
    ffmpeg(*both, "-map", "0:v", "-map", "1:a", *VP8_ARGS, *OPUS_ARGS, "-f", "webm",
           str(root / "video_first.webm"))
    ffmpeg("-f", "lavfi", "-i", LAVFI_VIDEO.format(1), *VP8_ARGS, "-f", "webm",
           str(root / "video_only.webm"))
    tone = ["-f", "lavfi", "-i", LAVFI_TONE.format(1)]
    ffmpeg(*tone, "-c:a", "libvorbis", "-f", "webm", str(root / "vorbis.webm"))
    ffmpeg(*tone, "-c:a", "aac", "-f", "matroska", str(root / "aac.mkv"))
    ffmpeg(*tone, "-c:a", "libmp3lame", "-f", "matroska", str(root / "mp3.mkv"))
    ffmpeg("-f", "lavfi", "-i", LAVFI_TONE.format(0.2), *OPUS_ARGS, "-f", "webm",
           str(root / "tiny.webm"))
    return root


@pytest.mark.parametrize("name", ["a440.webm", "b880.webm", "steps.webm"])
def test_ffmpeg_webm_gives_the_packets_ffmpeg_copies_to_ogg(media_dir: Path, name: str) -> None:
    path = media_dir / name
    reader = WebmOpusReader(path.open("rb"))
    packets = list(reader)
    assert packets == ffmpeg_copy_packets(path)
    seconds = 5 if name == "steps.webm" else 3
    assert abs(len(packets) - seconds * 50) <= 2
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}
    assert reader.codec_private == ogg_opus_head(path)
    assert reader.codec_private is not None and reader.codec_private.startswith(b"OpusHead")
    pre_skip = struct.unpack_from("<H", reader.codec_private, 10)[0]
    assert reader.codec_delay_ns == pre_skip * 1_000_000_000 // 48000
    assert reader.timecode_scale == 1_000_000
    assert reader.track_number == 1
    assert reader.blocks_skipped == 0
    assert reader.bytes_read == path.stat().st_size


def test_what_ffmpeg_writes_to_a_pipe_reads_the_same(media_dir: Path) -> None:
    """A non-seekable output (as a live stream): unknown-size Segment, no Cues, sized Clusters."""
    path = media_dir / "a440.webm"
    piped = ffmpeg("-i", str(path), "-c:a", "copy", "-f", "webm", "-live", "1", "pipe:1")
    segment_at = piped.index(SEGMENT.to_bytes(4, "big"))
    assert piped[segment_at + 4 : segment_at + 12] == UNKNOWN_SIZE
    assert CUES.to_bytes(4, "big") not in piped
    assert read_all(piped) == ffmpeg_copy_packets(path)


@pytest.mark.parametrize(("name", "audio_track"),
                         [("audio_first.webm", 1), ("video_first.webm", 2)])
def test_video_blocks_are_skipped(made: Path, name: str, audio_track: int) -> None:
    path = made / name
    reader = WebmOpusReader(path.open("rb"))
    packets = list(reader)
    assert packets == ffmpeg_copy_packets(path)
    assert abs(len(packets) - 100) <= 2
    assert reader.track_number == audio_track
    assert reader.blocks_skipped >= 15  # 10 frames/s for 2 s


@pytest.mark.parametrize("name", ["vorbis.webm", "aac.mkv", "mp3.mkv", "video_only.webm"])
def test_other_codecs_raise_not_opus_before_any_packet(made: Path, name: str) -> None:
    packets = iter(WebmOpusReader((made / name).open("rb")))
    with pytest.raises(NotOpusAudio):
        next(packets)


def test_first_audio_track_decides_even_if_a_later_one_is_opus() -> None:
    data = ebml_header() + segment(
        tracks(track_entry(1, "A_VORBIS", private=b"\x02vorbis"), track_entry(2)),
        cluster(simple_block(2, [audio_packet(1)])))
    with pytest.raises(NotOpusAudio, match="A_VORBIS"):
        read_all(data)


def test_no_tracks_before_the_first_cluster_is_an_error() -> None:
    data = ebml_header() + segment(cluster(simple_block(1, [audio_packet(1)])),
                                   tracks(track_entry(1)))
    with pytest.raises(WebmError, match="before the Tracks") as info:
        read_all(data)
    assert not isinstance(info.value, NotOpusAudio)


def not_webm_inputs(media_dir: Path) -> list[bytes]:
    return [
        (media_dir / "a660.mp3").read_bytes(),
        (media_dir / "a440.ogg").read_bytes(),
        (media_dir / "a550.m4a").read_bytes(),
        random.Random(7).randbytes(5000),
        b"",
        EBML_MAGIC,  # a header that never finishes
        ebml_header("mp4") + segment(tracks(track_entry(1))),  # an EBML file of another kind
        ebml_header()[:-3],
        ebml_header() + tracks(track_entry(1)),  # no Segment
    ]


def test_not_webm_is_a_webm_error(media_dir: Path) -> None:
    for data in not_webm_inputs(media_dir):
        with pytest.raises(WebmError) as info:
            read_all(data)
        assert not isinstance(info.value, NotOpusAudio), data[:16]


def test_matroska_doc_type_and_info_are_read() -> None:
    packets = [audio_packet(i) for i in range(3)]
    data = ebml_header("matroska") + segment(
        element(SEEK_HEAD, b"\x00" * 30), element(VOID, b"\x00" * 10),
        element(INFO, uint_element(TIMECODE_SCALE, 500_000) + element(0x4D80, b"test")),
        tracks(track_entry(1, delay=3_000_000)),
        cluster(*(simple_block(1, [p]) for p in packets)),
        element(CUES, b"\x00" * 20))
    reader = WebmOpusReader(io.BytesIO(data))
    assert list(reader) == packets
    assert reader.timecode_scale == 500_000
    assert reader.codec_delay_ns == 3_000_000
    assert reader.codec_private == OPUS_HEAD


def test_packets_returns_one_iterator() -> None:
    packets = [audio_packet(i) for i in range(4)]
    reader = WebmOpusReader(io.BytesIO(simple_webm(packets)))
    first = reader.packets()
    assert next(first) == packets[0]
    assert list(reader) == packets[1:]  # continues, instead of parsing from mid-stream


# -- lacing and BlockGroups ------------------------------------------------------------------------

LACED_FRAMES = [audio_packet(1, 300), audio_packet(2, 40), audio_packet(3, 255),
                audio_packet(4, 600), audio_packet(5, 10)]


@pytest.mark.parametrize("lacing", ["xiph", "ebml"])
def test_laced_blocks_give_one_packet_per_frame(lacing: str) -> None:
    data = ebml_header() + segment(tracks(track_entry(1)), cluster(
        simple_block(1, [audio_packet(0)]),
        simple_block(1, LACED_FRAMES, lacing),
        simple_block(1, [audio_packet(9)])))
    assert read_all(data) == [audio_packet(0), *LACED_FRAMES, audio_packet(9)]


def test_fixed_size_lacing() -> None:
    frames = [audio_packet(i, 50) for i in range(4)]
    data = ebml_header() + segment(tracks(track_entry(1)),
                                   cluster(simple_block(1, frames, "fixed")))
    assert read_all(data) == frames


def test_ebml_lacing_with_shrinking_and_growing_frames() -> None:
    # differences of -290, +9000 (a 2- and a 3-byte signed size), then the last frame; the
    # 9,010-byte one is eight 2.5 ms frames (TOC 0xE3, count 8): Opus allows up to 10,216 bytes
    big = bytes([0xE3, 0x08]) + b"\x03" * 9008
    frames = [audio_packet(1, 300), audio_packet(2, 10), big, audio_packet(4, 7)]
    data = ebml_header() + segment(tracks(track_entry(1)),
                                   cluster(simple_block(1, frames, "ebml")))
    assert read_all(data) == frames


def test_block_groups_and_laced_blocks_in_groups() -> None:
    data = ebml_header() + segment(tracks(track_entry(1)), cluster(
        simple_block(1, [audio_packet(0)]),
        block_group(1, [audio_packet(1)]),
        block_group(2, [audio_packet(99)]),  # another track: skipped
        block_group(1, LACED_FRAMES[:3], "xiph"),
        simple_block(1, [audio_packet(2)])))
    reader = WebmOpusReader(io.BytesIO(data))
    assert list(reader) == [audio_packet(0), audio_packet(1), *LACED_FRAMES[:3], audio_packet(2)]
    assert reader.blocks_skipped == 1


def test_empty_frames_are_not_packets() -> None:
    data = ebml_header() + segment(tracks(track_entry(1)), cluster(
        simple_block(1, [b""]), simple_block(1, [audio_packet(1), b"", audio_packet(2)], "xiph")))
    assert read_all(data) == [audio_packet(1), audio_packet(2)]


def test_block_with_a_long_track_number() -> None:
    """Track 200 needs a 2-byte number in each block: the general path, not the fast one."""
    packets = [audio_packet(i) for i in range(3)]
    data = ebml_header() + segment(tracks(track_entry(200)), cluster(
        simple_block(72, [audio_packet(70)]), *(simple_block(200, [p]) for p in packets)))
    reader = WebmOpusReader(io.BytesIO(data))
    assert list(reader) == packets
    assert (reader.track_number, reader.blocks_skipped) == (200, 1)


def laced_raw(flags: int, rest: bytes) -> bytes:
    return element(SIMPLE_BLOCK, vint(1) + b"\x00\x00" + bytes([0x80 | flags]) + rest)


@pytest.mark.parametrize("block", [
    laced_raw(0x04, bytes([2]) + b"x" * 10),  # fixed: 10 bytes do not split in 3
    laced_raw(0x02, bytes([1]) + b"\xff\xff\xff"),  # Xiph: the size never ends
    laced_raw(0x02, bytes([1, 200]) + b"x" * 50),  # Xiph: first frame beyond the block
    laced_raw(0x06, bytes([2, 0x8A, 0x80]) + b"x" * 50),  # EBML: 10, then 10-63 < 0
    laced_raw(0x06, bytes([1, 0x00]) + b"x" * 5),  # EBML: invalid size
    laced_raw(0x06, b""),  # no frame count
    element(SIMPLE_BLOCK, vint(1) + b"\x00"),  # shorter than a block header
    element(SIMPLE_BLOCK, b""),
    element(SIMPLE_BLOCK, b"\x00\x00\x00\x80x"),  # track number: invalid integer
])
def test_malformed_blocks_are_errors(block: bytes) -> None:
    data = ebml_header() + segment(tracks(track_entry(1)),
                                   cluster(simple_block(1, [audio_packet(1)]), block))
    got, error = read_until_error(data)
    assert got == [audio_packet(1)]
    assert isinstance(error, WebmError)


def test_header_stripping_is_undone() -> None:
    compression = element(CONTENT_COMPRESSION, uint_element(CONTENT_COMP_ALGO, 3)
                          + element(CONTENT_COMP_SETTINGS, b"\xfc"))
    encodings = element(CONTENT_ENCODINGS, element(CONTENT_ENCODING, compression))
    packets = [audio_packet(i) for i in range(3)]
    data = ebml_header() + segment(tracks(track_entry(1, extra=encodings)), cluster(
        *(simple_block(1, [p[1:]]) for p in packets)))
    assert read_all(data) == packets


def test_zlib_compressed_frames_are_left_to_ffmpeg() -> None:
    compression = element(CONTENT_COMPRESSION, uint_element(CONTENT_COMP_ALGO, 0))
    encodings = element(CONTENT_ENCODINGS, element(CONTENT_ENCODING, compression))
    data = ebml_header() + segment(tracks(track_entry(1, extra=encodings)),
                                   cluster(simple_block(1, [audio_packet(1)])))
    with pytest.raises(NotOpusAudio, match="compressed"):
        read_all(data)


# -- unknown sizes and chained streams -------------------------------------------------------------


@pytest.fixture(scope="module")
def real_packets(media_dir: Path) -> list[bytes]:
    return list(WebmOpusReader((media_dir / "a440.webm").open("rb")))


def test_unknown_size_segment_and_clusters(real_packets: list[bytes]) -> None:
    data = simple_webm(real_packets, per_cluster=50, unknown=True)
    assert data.count(element(CLUSTER, size=UNKNOWN_SIZE)) == 4
    assert read_all(data) == real_packets


def test_unknown_size_cluster_ends_at_any_segment_element(real_packets: list[bytes]) -> None:
    packets = real_packets[:30]
    data = ebml_header() + segment(
        tracks(track_entry(1)),
        cluster(*(simple_block(1, [p]) for p in packets[:10]), unknown_size=True),
        element(CUES, b"\x00" * 40),
        cluster(*(simple_block(1, [p]) for p in packets[10:20]), unknown_size=True),
        element(TAGS, b"\x00" * 40), element(VOID, b"\x00" * 3),
        cluster(*(simple_block(1, [p]) for p in packets[20:]), unknown_size=True),
        unknown_size=True)
    reader = WebmOpusReader(io.BytesIO(data))
    assert list(reader) == packets
    assert reader.blocks_skipped == 0


def test_known_size_cluster_in_unknown_size_segment_and_back(real_packets: list[bytes]) -> None:
    data = ebml_header() + segment(
        tracks(track_entry(1)),
        cluster(*(simple_block(1, [p]) for p in real_packets[:5])),
        cluster(*(simple_block(1, [p]) for p in real_packets[5:10]), unknown_size=True),
        cluster(*(simple_block(1, [p]) for p in real_packets[10:15])),
        unknown_size=True)
    assert read_all(data) == real_packets[:15]


def test_chained_streams(media_dir: Path, real_packets: list[bytes]) -> None:
    """Two streams back to back (a live stream restarted): known-size Segment then a live one."""
    second = ffmpeg("-i", str(media_dir / "b880.webm"), "-c:a", "copy", "-f", "webm", "pipe:1")
    data = (media_dir / "a440.webm").read_bytes() + second
    assert read_all(data) == real_packets + ffmpeg_copy_packets(media_dir / "b880.webm")
    # an unknown-size Segment ends where the next EBML header starts
    first = simple_webm(real_packets[:12], unknown=True)
    assert read_all(first + simple_webm(real_packets[12:20], track=3)) == real_packets[:20]


# -- how the bytes arrive --------------------------------------------------------------------------


class Trickle:
    """A stream that returns 1..7 bytes per read, whatever was asked."""

    def __init__(self, data: bytes, seed: int = 0) -> None:
        self._data = io.BytesIO(data)
        self._rng = random.Random(seed)
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        return self._data.read(min(self._rng.randint(1, 7), size if size >= 0 else 7))


class TrickleRead1(Trickle):
    def __init__(self, data: bytes, seed: int = 0) -> None:
        super().__init__(data, seed)
        self.read1_calls = 0

    def read1(self, size: int = -1) -> bytes:
        self.read1_calls += 1
        return super().read(size)

    def read(self, size: int = -1) -> bytes:  # must not be used when read1 exists
        raise AssertionError("read() used although read1() exists")


def test_reads_of_a_few_bytes_give_the_same_packets(made: Path, media_dir: Path) -> None:
    for path in (media_dir / "a440.webm", made / "video_first.webm"):
        data = path.read_bytes()
        expected = read_all(data)
        stream = TrickleRead1(data, seed=len(data))
        reader = WebmOpusReader(stream)  # type: ignore[arg-type]
        assert list(reader) == expected
        assert stream.read1_calls > len(data) // 7
        assert reader.bytes_read == len(data)
        plain = Trickle(data, seed=1)
        assert list(WebmOpusReader(plain)) == expected  # type: ignore[arg-type]
        assert plain.calls > len(data) // 7


def test_hand_built_structures_survive_a_trickle(real_packets: list[bytes]) -> None:
    data = ebml_header() + segment(
        tracks(track_entry(2, "V_VP8", 1, private=None), track_entry(1)),
        cluster(simple_block(1, [audio_packet(0)]), block_group(1, LACED_FRAMES, "ebml"),
                simple_block(2, [b"video" * 500]), unknown_size=True),
        element(CUES, b"\x00" * 300),
        cluster(*(simple_block(1, [p]) for p in real_packets[:20])),
        unknown_size=True)
    expected = [audio_packet(0), *LACED_FRAMES, *real_packets[:20]]
    assert read_all(data) == expected
    for seed in range(5):
        assert list(WebmOpusReader(Trickle(data, seed))) == expected  # type: ignore[arg-type]


class Greedy(io.BytesIO):
    """A stream whose reads return 10 KB whatever was asked (more or less)."""

    def read1(self, size: int = -1) -> bytes:
        return super().read1(10_000)


def test_reads_longer_than_asked_keep_offsets_right(real_packets: list[bytes]) -> None:
    """Skipping a 100 KB video block takes reads of at most 16 KB; the excess a stream returns
    is kept, and the known Cluster and Segment ends still line up."""
    audio = [simple_block(1, [p]) for p in real_packets[:10]]
    data = ebml_header() + segment(
        tracks(track_entry(1), track_entry(2, "V_VP8", 1, private=None)),
        cluster(*audio[:5], simple_block(2, [b"v" * 100_003]), *audio[5:8]),
        cluster(*audio[8:]))
    reader = WebmOpusReader(Greedy(data))
    assert list(reader) == real_packets[:10]
    assert reader.blocks_skipped == 1
    assert reader.bytes_read == len(data)
    # the video block is dropped as it is read, not buffered whole first
    stream = Recording(data)
    assert list(WebmOpusReader(stream)) == real_packets[:10]
    assert stream.largest <= 16 * 1024


def test_packets_come_from_a_pipe_as_they_arrive(real_packets: list[bytes]) -> None:
    """read1 semantics: the first packet must not wait for a 16 KB read to fill up."""
    read_fd, write_fd = os.pipe()
    reader_file = os.fdopen(read_fd, "rb")
    got: list[bytes] = []
    first_arrived = threading.Event()

    def consume() -> None:
        for packet in WebmOpusReader(reader_file):
            got.append(packet)
            first_arrived.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    # a live stream's start: headers and one block, far less than a read's 16 KB
    start = simple_webm(real_packets[:1], unknown=True)
    os.write(write_fd, start)
    assert first_arrived.wait(2), "the packet was held back waiting for more bytes"
    os.write(write_fd, simple_block(1, [real_packets[1]]))
    os.close(write_fd)
    thread.join(2)
    assert got == real_packets[:2]


# -- hostile input ---------------------------------------------------------------------------------


class Recording(io.BytesIO):
    """Records the largest read asked for: no read may follow a hostile declared size."""

    largest = 0

    def read1(self, size: int = -1) -> bytes:
        self.largest = max(self.largest, size)
        return super().read1(size)


HUGE = vint(2**50, 8)


def test_huge_block_of_the_audio_track_is_refused_without_reading_it() -> None:
    head = simple_webm([audio_packet(0)], unknown=True)
    data = head + element(SIMPLE_BLOCK, block_body(1, [b"x" * 100]), size=HUGE)
    stream = Recording(data)
    got: list[bytes] = []
    with pytest.raises(WebmError, match="audio block"):
        for packet in WebmOpusReader(stream):
            got.append(packet)
    assert got == [audio_packet(0)]
    assert stream.largest <= 64 * 1024


def test_huge_block_of_another_track_is_skipped_in_bounded_reads() -> None:
    head = ebml_header() + segment(
        tracks(track_entry(1), track_entry(2, "V_VP8", 1, private=None)),
        cluster(simple_block(1, [audio_packet(0)]), unknown_size=True), unknown_size=True)
    data = head + element(SIMPLE_BLOCK, block_body(2, [b"v" * 200_000]), size=HUGE)
    stream = Recording(data)
    reader = WebmOpusReader(stream)
    assert list(reader) == [audio_packet(0)]  # the stream ends inside the block: a clean end
    assert reader.blocks_skipped == 1
    assert stream.largest <= 64 * 1024
    assert reader.bytes_read == len(data)


@pytest.mark.parametrize("data", [
    # a block claiming more than its known-size Cluster
    ebml_header() + segment(tracks(track_entry(1)), element(
        CLUSTER, simple_block(1, [audio_packet(0)]) + element(SIMPLE_BLOCK, b"x" * 8, size=HUGE))),
    # a Cluster claiming more than its known-size Segment
    ebml_header() + segment(tracks(track_entry(1)), element(CLUSTER, b"", size=HUGE)),
    # Tracks, Info, an EBML header and a CodecPrivate over their bounds
    ebml_header() + segment(element(TRACKS, b"", size=vint(MAX_BUFFERED_ELEMENT + 1, 8)),
                            unknown_size=True),
    ebml_header() + segment(element(INFO, b"", size=vint(2**40, 8)), unknown_size=True),
    element(EBML, b"", size=vint(2**30, 8)),
    ebml_header() + segment(tracks(track_entry(1, private=b"p" * (64 * 1024 + 1)))),
    # unknown sizes where the spec does not allow them
    ebml_header() + segment(tracks(track_entry(1)), element(TAGS, b"", size=UNKNOWN_SIZE)),
    ebml_header() + element(TRACKS, b"", size=UNKNOWN_SIZE),
    ebml_header() + segment(tracks(track_entry(1)), cluster(
        element(BLOCK_GROUP, b"", size=UNKNOWN_SIZE), unknown_size=True), unknown_size=True),
    ebml_header() + segment(tracks(track_entry(1)), cluster(
        element(SIMPLE_BLOCK, b"", size=b"\xff"), unknown_size=True), unknown_size=True),
    # invalid integers: an ID or size whose first byte has no length marker, a 5-byte ID
    ebml_header() + segment(tracks(track_entry(1)), b"\x00\x81\x00"),
    ebml_header() + segment(tracks(track_entry(1)), b"\xec\x00\x00"),
    ebml_header() + segment(tracks(track_entry(1)), b"\x08\x00\x00\x00\x01\x80"),
    ebml_header() + segment(tracks(track_entry(1)), cluster(b"\x00\x00\x00", unknown_size=True),
                            unknown_size=True),
    ebml_header() + segment(tracks(b"\x00\x00" + track_entry(1))),  # inside Tracks
    ebml_header() + segment(tracks(element(TRACK_ENTRY, uint_element(TRACK_NUMBER, 1)[:-1]))),
    ebml_header() + segment(tracks(element(TRACK_ENTRY, element(TRACK_NUMBER, b"\x01" * 9)
                                           + uint_element(TRACK_TYPE, 2)
                                           + element(CODEC_ID, b"A_OPUS")))),
    ebml_header() + segment(tracks(track_entry(0))),  # TrackNumber 0
    ebml_header() + segment(element(INFO, uint_element(TIMECODE_SCALE, 0))),
], ids=["block-over-cluster", "cluster-over-segment", "tracks-too-big", "info-too-big",
        "ebml-header-too-big", "codec-private-too-big", "unknown-size-tags",
        "unknown-size-tracks", "unknown-size-blockgroup", "unknown-size-block", "id-byte-0",
        "size-byte-0", "5-byte-id", "id-byte-0-in-cluster", "garbage-in-tracks",
        "overrun-in-track-entry", "9-byte-uint", "track-number-0", "timecode-scale-0"])
def test_hostile_structures_are_webm_errors(data: bytes) -> None:
    stream = Recording(data)
    with pytest.raises(WebmError) as info:
        list(WebmOpusReader(stream))
    assert not isinstance(info.value, NotOpusAudio)
    assert stream.largest <= 64 * 1024


@pytest.mark.parametrize("garbage", [
    b"\x00garbage",
    b"\x42\x42\x81\x00" * 4,  # a well-formed element the Segment cannot hold
    b"\x9b\x81\x14",  # a BlockGroup's child outside any BlockGroup
    b"garbage after the stream",
], ids=["invalid-id", "segment-cannot-hold", "group-child-outside", "text"])
def test_garbage_after_packets_ends_with_an_error(real_packets: list[bytes],
                                                  garbage: bytes) -> None:
    packets = real_packets[:12]
    for data in (simple_webm(packets), simple_webm(packets, unknown=True)):
        got, error = read_until_error(data + garbage)
        assert got == packets
        assert isinstance(error, WebmError)


def test_blocks_must_stay_inside_their_cluster() -> None:
    blocks = b"".join(simple_block(1, [audio_packet(i)]) for i in range(3))
    # a block after the (known-size) Cluster's end, at the Segment's level
    stray = ebml_header() + segment(tracks(track_entry(1)), element(CLUSTER, blocks),
                                    simple_block(1, [audio_packet(9)]), unknown_size=True)
    # a Cluster whose size ends in the middle of its last block
    short = ebml_header() + segment(
        tracks(track_entry(1)), element(CLUSTER, blocks, size=vint(len(blocks) - 5)),
        unknown_size=True)
    for data in (stray, short):
        got, error = read_until_error(data)
        assert len(got) >= 2 and got == [audio_packet(i) for i in range(len(got))]
        assert audio_packet(9) not in got
        assert isinstance(error, WebmError)


def tracks_end(data: bytes) -> int:
    """Offset of the end of the Tracks element (the last one before the first Cluster: the
    SeekHead before it holds the Tracks ID too)."""
    at = data.rindex(TRACKS.to_bytes(4, "big"), 0, data.index(CLUSTER.to_bytes(4, "big")))
    size_len = 9 - data[at + 4].bit_length()
    size = int.from_bytes(data[at + 4 : at + 4 + size_len], "big") & ((1 << (7 * size_len)) - 1)
    return at + 4 + size_len + size


@pytest.mark.timeout(60)
def test_every_truncation_gives_a_prefix_or_a_webm_error(made: Path) -> None:
    data = (made / "tiny.webm").read_bytes()
    full = read_all(data)
    assert 8 <= len(full) <= 12
    headers_end = tracks_end(data)
    previous = 0
    for cut in range(len(data) + 1):
        got, error = read_until_error(data[:cut])
        assert got == full[: len(got)], cut
        assert len(got) >= previous, cut  # more input never gives fewer packets
        previous = len(got)
        if cut < headers_end:
            assert error is not None, cut  # no Tracks: the caller must know it got nothing
        else:
            assert error is None, cut  # a partial element at the end is just dropped
    assert previous == len(full)


@pytest.mark.timeout(60)
def test_truncated_live_stream_ends_cleanly(real_packets: list[bytes]) -> None:
    data = simple_webm(real_packets[:6], per_cluster=2, unknown=True)
    for cut in range(tracks_end(data), len(data) + 1):
        got, error = read_until_error(data[:cut])
        assert error is None and got == real_packets[: len(got)], cut


def nested_block_groups(depth: int) -> bytes:
    inner = b""
    for _ in range(depth):
        inner = element(BLOCK_GROUP, inner)
    return inner


@pytest.mark.timeout(30)
@pytest.mark.parametrize("run", [
    element(CLUSTER, size=UNKNOWN_SIZE) * 100_000,  # Clusters "nested" in Clusters
    cluster(element(BLOCK_GROUP) * 200_000, unknown_size=True),
    element(VOID) * 200_000,
    (element(CLUSTER, size=UNKNOWN_SIZE) + element(BLOCK_GROUP) + element(TAGS)) * 50_000,
    cluster(nested_block_groups(20_000)),  # BlockGroups 20000 deep: skipped as one element
    element(CLUSTER, nested_block_groups(20_000), size=UNKNOWN_SIZE),
], ids=["clusters", "groups", "voids", "mixed", "deep-groups", "deep-groups-live"])
def test_long_structural_runs_finish_fast(run: bytes) -> None:
    data = (ebml_header() + segment(tracks(track_entry(1)), unknown_size=True) + run
            + cluster(simple_block(1, [audio_packet(1)])))
    started = time.process_time()
    got, error = read_until_error(data)
    # the packet after the run, or (runs of tiny elements, more work than their bytes warrant:
    # issue 13) a refusal before it
    assert (got, error) == ([audio_packet(1)], None) or (
        got == [] and isinstance(error, WebmLimitError))
    assert time.process_time() - started < 10


@pytest.mark.timeout(30)
def test_nested_segments_and_huge_skips_are_bounded() -> None:
    nested = ebml_header() + element(SEGMENT, size=UNKNOWN_SIZE) * 100_000
    got, error = read_until_error(nested)
    assert got == [] and isinstance(error, WebmError)
    # an unknown top-level element of 2**55 bytes: skipped by reading (bounded) to the end
    data = simple_webm([audio_packet(0)], unknown=True) + element(0x1A2B3C4D, size=vint(2**55))
    stream = Recording(data + b"\x00" * 100_000)
    assert list(WebmOpusReader(stream)) == [audio_packet(0)]
    assert stream.largest <= 64 * 1024


SMALL_WEBM = simple_webm([audio_packet(i, 20 + i) for i in range(6)], per_cluster=3)


def mutations(original: bytes = SMALL_WEBM) -> st.SearchStrategy[bytes]:
    def apply(data: bytes, edits: Iterable[tuple[int, int, int]]) -> bytes:
        out = bytearray(data)
        for kind, where, value in edits:
            where %= len(out) + 1
            if kind == 0 and where < len(out):
                out[where] = value
            elif kind == 1:
                out[where:where] = bytes([value])
            elif kind == 2:
                del out[where : where + value % 9]
            else:
                del out[where:]
            if not out:
                break
        return bytes(out)

    edit = st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 255))
    return st.lists(edit, min_size=1, max_size=6).map(lambda e: apply(original, e))


@pytest.mark.timeout(120)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_mutated_files_raise_only_webm_errors(data: bytes) -> None:
    stream = Recording(data)
    got: list[bytes] = []
    try:
        for packet in WebmOpusReader(stream):
            got.append(packet)
    except WebmError:
        pass
    assert sum(map(len, got)) <= len(data)
    assert stream.largest <= 64 * 1024


# -- starting at a position (start_ns) -------------------------------------------------------------
#
# ffmpeg writes Opus block timestamps of 0, 21, 41, ... ms (packet k >= 1 at 20k + 1 ms: the first
# packet's -6.5 ms is shifted to 0 and rounded), with 5 s Clusters and, in a file, Cues at the end
# that a SeekHead at the start points to. start_ns drops every packet that ends at or before it,
# CodecDelay (6.5 ms) subtracted as ffmpeg's -ss does: at 2.0 s packet 99 (1974.5-1994.5 ms) is
# dropped and packet 100 (1994.5-2014.5 ms) kept, also at 2.01 s.

SEEK, SEEK_ID, SEEK_POSITION = 0x4DBB, 0x53AB, 0x53AC
CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS = 0xBB, 0xB3, 0xB7
CUE_TRACK, CUE_CLUSTER_POSITION = 0xF7, 0xF1
SECOND = 1_000_000_000


def ebml_children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(id, element offset, data start, data end) of each element in data[start:end]; an
    unknown size (a live Segment) runs to ``end``."""
    pos = start
    while pos < end:
        id_len = 9 - data[pos].bit_length()
        eid = int.from_bytes(data[pos : pos + id_len], "big")
        size_len = 9 - data[pos + id_len].bit_length()
        raw = data[pos + id_len : pos + id_len + size_len]
        size = int.from_bytes(raw, "big") & ((1 << (7 * size_len)) - 1)
        body = pos + id_len + size_len
        body_end = end if size == (1 << (7 * size_len)) - 1 else body + size
        yield eid, pos, body, body_end
        pos = body_end


class Layout:
    """Where things are in a (well-formed, one-Segment) WebM: absolute offsets."""

    def __init__(self, data: bytes) -> None:
        (_, _, _, ebml_end), = itertools.islice(ebml_children(data, 0, len(data)), 1)
        seg_id, _, self.segment_start, seg_end = next(ebml_children(data, ebml_end, len(data)))
        assert seg_id == SEGMENT
        self.top: dict[int, list[int]] = {}
        self.clusters: list[tuple[int, int]] = []  # (offset, Timecode)
        self.block_starts_ms: list[int] = []  # of each audio packet (unlaced SimpleBlocks)
        for eid, at, body, end in ebml_children(data, self.segment_start, seg_end):
            self.top.setdefault(eid, []).append(at)
            if eid != CLUSTER:
                continue
            timecode = None
            for child, _, c_body, c_end in ebml_children(data, body, end):
                if child == TIMECODE:
                    timecode = int.from_bytes(data[c_body:c_end], "big")
                    self.clusters.append((at, timecode))
                elif child in (SIMPLE_BLOCK, BLOCK_GROUP):
                    assert timecode is not None
                    block = c_body
                    if child == BLOCK_GROUP:
                        block = next(b for e, _, b, _ in ebml_children(data, c_body, c_end)
                                     if e == BLOCK)
                    rel = struct.unpack(">h", data[block + 1 : block + 3])[0]  # after track 1
                    self.block_starts_ms.append(timecode + rel)

    def cluster_at(self, ms: int) -> int:
        """Offset of the last Cluster whose Timecode is at or before ``ms``."""
        return [at for at, timecode in self.clusters if timecode <= ms][-1]


def packets_from(stream: object, start_ns: int) -> tuple[list[bytes], WebmOpusReader]:
    reader = WebmOpusReader(stream, start_ns=start_ns)  # type: ignore[arg-type]
    return list(reader), reader


def frequency_at_start(packets: list[bytes], seconds: float = 0.2) -> float:
    from tests.support.audio_analysis import decode_opus_packets, dominant_frequency

    pcm, bad = decode_opus_packets(packets)
    assert bad == 0
    return dominant_frequency(pcm[: int(48_000 * seconds)])


class NoSeek:
    """A stream with reads only (a socket wrapper, a pipe reader object)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read1(self, size: int = -1) -> bytes:
        return self._data.read1(size)

    read = read1


class SaysUnseekable(io.BytesIO):
    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise AssertionError("seek called on a stream that is not seekable")


class FlakySeek(io.BytesIO):
    """Seekable, but its seek raises OSError on the calls numbered in ``failing`` (from 1)."""

    def __init__(self, data: bytes, failing: Iterable[int]) -> None:
        super().__init__(data)
        self.failing = set(failing)
        self.seeks: list[int] = []

    def seek(self, offset: int, whence: int = 0) -> int:
        self.seeks.append(offset)
        if len(self.seeks) in self.failing:
            raise OSError("seek failed")
        return super().seek(offset, whence)


def test_negative_start_is_refused() -> None:
    with pytest.raises(ValueError):
        WebmOpusReader(io.BytesIO(b""), start_ns=-1)


def test_start_zero_never_seeks(media_dir: Path) -> None:
    data = (media_dir / "steps.webm").read_bytes()
    reader = WebmOpusReader(SaysUnseekable(data))
    assert list(reader) == read_all(data)
    assert reader.seeked_to is None and reader.packets_skipped == 0


def test_start_in_steps_webm_from_a_file(media_dir: Path) -> None:
    path = media_dir / "steps.webm"
    data = path.read_bytes()
    full = read_all(data)
    layout = Layout(data)
    assert len(full) == 251 and layout.block_starts_ms[98:101] == [1961, 1981, 2001]
    # the Cues (at the end, found through the SeekHead) name Clusters at 0 and 4.981 s
    assert layout.top[CUES][0] > layout.clusters[-1][0]
    got, reader = packets_from(path.open("rb"), 2 * SECOND)
    assert got == full[100:]  # packet 99 ends at 1.9945 s: before the start, dropped
    assert reader.packets_skipped == 100
    assert reader.seeked_to == layout.clusters[0][0]
    assert frequency_at_start(got) == pytest.approx(700, abs=15)
    got, reader = packets_from(path.open("rb"), 2 * SECOND + 10_000_000)
    assert got == full[100:] and reader.packets_skipped == 100


def test_start_in_steps_webm_over_http(media_dir: Path, media_server) -> None:
    full = read_all((media_dir / "steps.webm").read_bytes())
    with HttpMediaReader(media_server.url("steps.webm")) as stream:
        got, reader = packets_from(stream, 2 * SECOND)
    assert got == full[100:]
    assert reader.seeked_to == Layout((media_dir / "steps.webm").read_bytes()).clusters[0][0]
    assert frequency_at_start(got) == pytest.approx(700, abs=15)


# 40 s in 5 s steps: at 23 s the tone is 700 Hz; ffmpeg makes 8 full Clusters and a short one
LONG_STEPS = [250.0, 350.0, 450.0, 550.0, 700.0, 850.0, 1000.0, 1150.0]
AT_23S = 23 * SECOND


class RangeLog:
    """A MediaServer on a folder that records (path, Range header) of each request."""

    def __init__(self, root: Path) -> None:
        self.server = MediaServer(root)
        self.requests: list[tuple[str, str | None]] = []

        @web.middleware
        async def record(request: web.Request, handler):
            self.requests.append((request.path, request.headers.get("Range")))
            return await handler(request)

        self.server.app.middlewares.append(record)
        self.server.start()

    def url(self, name: str) -> str:
        return self.server.url(name)


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("long")
    generate_tone(root / "long.webm", LONG_STEPS, 5.0)
    # the same packets with the Cues before the Clusters (ffmpeg moves them there at the end,
    # which needs a seekable output: a file)
    ffmpeg("-i", str(root / "long.webm"), "-c", "copy", "-cues_to_front", "1",
           str(root / "front.webm"))
    return root


@pytest.fixture(scope="module")
def long_server(long_dir: Path) -> Iterator[RangeLog]:
    log = RangeLog(long_dir)
    yield log
    log.server.stop()


@pytest.fixture(scope="module")
def long_full(long_dir: Path) -> list[bytes]:
    return read_all((long_dir / "long.webm").read_bytes())


def test_what_ffmpeg_writes_in_a_40s_file(long_dir: Path, long_full: list[bytes]) -> None:
    data = (long_dir / "long.webm").read_bytes()
    layout = Layout(data)
    assert len(long_full) == 2001 == len(layout.block_starts_ms)
    assert layout.block_starts_ms[-3:] == [39961, 39981, 40001]
    assert [tc for _, tc in layout.clusters] == [0] + [5000 * i - 19 for i in range(1, 9)]
    assert layout.top[CUES][0] > layout.clusters[-1][0]  # Cues at the end...
    assert layout.top[SEEK_HEAD][0] < layout.clusters[0][0]  # ...and a SeekHead at the start
    front = (long_dir / "front.webm").read_bytes()
    front_layout = Layout(front)
    assert front_layout.top[CUES][0] < front_layout.clusters[0][0]
    assert read_all(front) == long_full


def test_start_at_23s_in_a_40s_file(long_dir: Path, long_full: list[bytes]) -> None:
    data = (long_dir / "long.webm").read_bytes()
    layout = Layout(data)
    assert layout.block_starts_ms[1148:1150] == [22961, 22981]
    got, reader = packets_from((long_dir / "long.webm").open("rb"), AT_23S)
    assert got == long_full[1150:]
    cluster_at = layout.cluster_at(23_000)
    assert reader.seeked_to == cluster_at != layout.clusters[0][0]
    assert reader.packets_skipped == 1150 - 999  # from the Cluster at 19.981 s only
    # the first Cluster's start, the Cues, then the Clusters from 19.981 s on
    assert reader.bytes_read <= 16 * 1024 + (len(data) - layout.top[CUES][0]) + (
        len(data) - cluster_at)
    assert frequency_at_start(got) == pytest.approx(700, abs=15)


def test_start_at_23s_in_a_40s_file_over_http(long_dir: Path, long_server: RangeLog,
                                              long_full: list[bytes]) -> None:
    data = (long_dir / "long.webm").read_bytes()
    layout = Layout(data)
    cues_at, cluster_at = layout.top[CUES][0], layout.cluster_at(23_000)
    long_server.requests.clear()
    with HttpMediaReader(long_server.url("long.webm")) as stream:
        got, reader = packets_from(stream, AT_23S)
    assert got == long_full[1150:]
    assert reader.seeked_to == cluster_at
    path = "/media/long.webm"
    assert long_server.requests == [
        (path, None), (path, f"bytes={cues_at}-"), (path, f"bytes={cluster_at}-")]
    # bytes through the reader: one read of the start, the Cues, the Clusters from 19.981 s on
    assert reader.bytes_read <= 16 * 1024 + (len(data) - cues_at) + (len(data) - cluster_at)
    assert reader.bytes_read < 0.6 * len(data)
    assert frequency_at_start(got) == pytest.approx(700, abs=15)


def test_cues_before_the_clusters_need_no_request_for_them(
        long_dir: Path, long_server: RangeLog, long_full: list[bytes]) -> None:
    data = (long_dir / "front.webm").read_bytes()
    cluster_at = Layout(data).cluster_at(23_000)
    got, reader = packets_from((long_dir / "front.webm").open("rb"), AT_23S)
    assert got == long_full[1150:] and reader.seeked_to == cluster_at
    long_server.requests.clear()
    with HttpMediaReader(long_server.url("front.webm")) as stream:
        got, reader = packets_from(stream, AT_23S)
    assert got == long_full[1150:] and reader.seeked_to == cluster_at
    path = "/media/front.webm"
    assert long_server.requests == [(path, None), (path, f"bytes={cluster_at}-")]
    assert reader.bytes_read <= 16 * 1024 + len(data) - cluster_at


def test_unseekable_streams_read_through(long_dir: Path, long_full: list[bytes]) -> None:
    path = long_dir / "long.webm"
    data = path.read_bytes()
    cat = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
    try:
        assert cat.stdout is not None and not cat.stdout.seekable()
        streams: list[object] = [NoSeek(data), SaysUnseekable(data), cat.stdout]
        for stream in streams:
            got, reader = packets_from(stream, AT_23S)
            assert got == long_full[1150:], stream
            assert reader.seeked_to is None and reader.packets_skipped == 1150
            assert reader.bytes_read == len(data)
    finally:
        assert cat.stdout is not None
        cat.stdout.close()
        cat.wait(10)


@pytest.mark.parametrize("failing", [{1}, {2}, {1, 2, 3}], ids=["to-cues", "to-cluster", "all"])
def test_a_seek_that_raises_falls_back_to_reading_through(
        long_dir: Path, long_full: list[bytes], failing: set[int]) -> None:
    data = (long_dir / "long.webm").read_bytes()
    stream = FlakySeek(data, failing)
    got, reader = packets_from(stream, AT_23S)
    assert got == long_full[1150:]
    assert reader.seeked_to is None and reader.packets_skipped == 1150
    # after a failed jump to the Cluster, the reader went back to the first one
    assert stream.seeks == ([Layout(data).top[CUES][0]] if failing != {2} else
                            [Layout(data).top[CUES][0], Layout(data).cluster_at(23_000),
                             Layout(data).clusters[0][0]])


def test_a_failed_seek_back_from_the_cues_is_an_error(long_dir: Path) -> None:
    stream = FlakySeek((long_dir / "long.webm").read_bytes(), {2, 3})
    with pytest.raises(WebmError, match="seek back"):
        list(WebmOpusReader(stream, start_ns=AT_23S))


def test_a_start_past_the_end_gives_nothing(long_dir: Path, long_server: RangeLog) -> None:
    data = (long_dir / "long.webm").read_bytes()
    for stream in (io.BytesIO(data), NoSeek(data),
                   HttpMediaReader(long_server.url("long.webm"))):
        got, reader = packets_from(stream, 45 * SECOND)
        assert got == []
        assert reader.packets_skipped == (2001 if isinstance(stream, NoSeek) else 2)
        assert (reader.seeked_to is None) == isinstance(stream, NoSeek)


# hand-built: 150 packets of 20 ms (a440.webm's), 25 per Cluster (0.5 s), Cues at the end
PER_CLUSTER = 25
AT_1230MS = 1_230_000_000  # the Cluster at 1.0 s, packets 50-74; packet 61 ends at 1.24 s
FROM_1230MS = 61


def fixed_uint(eid: int, value: int) -> bytes:
    """An 8-byte unsigned integer: a cue's size does not depend on the position it holds."""
    return element(eid, value.to_bytes(8, "big"))


def cue_point(time_ms: int, position: int, track: int = 1) -> bytes:
    return element(CUE_POINT, fixed_uint(CUE_TIME, time_ms) + element(
        CUE_TRACK_POSITIONS, uint_element(CUE_TRACK, track)
        + fixed_uint(CUE_CLUSTER_POSITION, position)))


def seek_head(cues_position: int) -> bytes:
    return element(SEEK_HEAD, element(SEEK, element(SEEK_ID, CUES.to_bytes(4, "big"))
                                      + fixed_uint(SEEK_POSITION, cues_position)))


INFO_TRACKS = element(INFO, uint_element(TIMECODE_SCALE, 1_000_000)) + tracks(track_entry(1))
TRACKS_POSITION = len(seek_head(0)) + len(element(INFO, uint_element(TIMECODE_SCALE, 1_000_000)))


class Cued:
    """A WebM with timed Clusters, a SeekHead and Cues (positions Segment-relative)."""

    def __init__(self, packets: list[bytes], *, cues: str = "end", unknown: bool = False,
                 points: Callable[[list[int]], list[tuple[int, int, int]]] | None = None,
                 cues_element: bytes | None = None, seek_position: int | None = None,
                 before: tuple[int, bytes] | None = None) -> None:
        """``before``: (i, bytes) puts those bytes (an element) just before Cluster i."""
        clusters = [
            cluster(*(element(SIMPLE_BLOCK, block_body(1, [p], timecode=20 * j))
                      for j, p in enumerate(packets[i : i + PER_CLUSTER])), timecode=20 * i)
            for i in range(0, len(packets), PER_CLUSTER)]
        padding = [b""] * len(clusters)
        if before is not None:
            padding[before[0]] = before[1]

        def cues_for(rels: list[int]) -> bytes:
            if cues_element is not None:
                return cues_element
            chosen = points(rels) if points else [
                (i * PER_CLUSTER * 20, rel, 1) for i, rel in enumerate(rels)]
            return element(CUES, b"".join(cue_point(*p) for p in chosen))

        head = len(seek_head(0)) + len(INFO_TRACKS)
        first = head + (len(cues_for([0] * len(clusters))) if cues == "front" else 0)
        clusters = [pad + c for pad, c in zip(padding, clusters, strict=True)]
        #: Segment-relative position of each Cluster
        self.rels = [rel + len(pad) for rel, pad in zip(
            itertools.accumulate(map(len, clusters[:-1]), initial=first), padding, strict=True)]
        cues_bytes = cues_for(self.rels)
        cues_rel = head if cues == "front" else first + sum(map(len, clusters))
        parts = [seek_head(cues_rel if seek_position is None else seek_position), INFO_TRACKS]
        parts += [cues_bytes, *clusters] if cues == "front" else [*clusters, cues_bytes]
        body = b"".join(parts)
        self.data = ebml_header() + segment(body, unknown_size=unknown)
        self.segment_start = len(self.data) - len(body)
        assert len(cues_for(self.rels)) == len(cues_for([0] * len(clusters)))

    def cluster(self, index: int) -> int:
        return self.segment_start + self.rels[index]


@pytest.mark.parametrize("cues", ["end", "front"])
@pytest.mark.parametrize("unknown", [False, True], ids=["sized", "live-sized"])
def test_hand_built_cues_are_used(real_packets: list[bytes], cues: str, unknown: bool) -> None:
    made = Cued(real_packets, cues=cues, unknown=unknown)
    assert read_all(made.data) == real_packets
    got, reader = packets_from(io.BytesIO(made.data), AT_1230MS)
    assert got == real_packets[FROM_1230MS:]
    assert reader.seeked_to == made.cluster(2)
    assert reader.packets_skipped == FROM_1230MS - 50
    assert packets_from(NoSeek(made.data), AT_1230MS)[0] == got
    # exactly at a Cluster's start, and just after its first packet's end
    assert packets_from(io.BytesIO(made.data), SECOND)[0] == real_packets[50:]
    assert packets_from(io.BytesIO(made.data), SECOND + 20_000_000)[0] == real_packets[51:]


def test_cues_of_the_audio_track_are_preferred(real_packets: list[bytes]) -> None:
    # a later CuePoint of another track (video) loses to the audio track's
    made = Cued(real_packets, points=lambda rels: [(0, rels[0], 1), (1000, rels[2], 2)])
    got, reader = packets_from(io.BytesIO(made.data), AT_1230MS)
    assert got == real_packets[FROM_1230MS:] and reader.seeked_to == made.cluster(0)
    # none names the audio track: any track's will do
    made = Cued(real_packets, points=lambda rels: [(0, rels[0], 2), (1000, rels[2], 2)])
    got, reader = packets_from(io.BytesIO(made.data), AT_1230MS)
    assert got == real_packets[FROM_1230MS:] and reader.seeked_to == made.cluster(2)
    # the latest at or before the start, whatever the order
    made = Cued(real_packets, points=lambda rels: [(1500, rels[3], 1), (500, rels[1], 1),
                                                    (1000, rels[2], 1), (0, rels[0], 1)])
    got, reader = packets_from(io.BytesIO(made.data), AT_1230MS)
    assert got == real_packets[FROM_1230MS:] and reader.seeked_to == made.cluster(2)


class SeekLog(Recording):
    seeks: list[int]

    def seek(self, offset: int, whence: int = 0) -> int:
        self.seeks = [*getattr(self, "seeks", []), offset]
        return super().seek(offset, whence)


FAKE_CLUSTER = element(TAGS, uint_element(TIMECODE, 0) + b"\x00" * 8)

# case -> (the file, whether the reader jumps to the Cluster the Cues name before refusing it)
HOSTILE_CUES: dict[str, tuple[Callable[[list[bytes]], Cued], bool]] = {
    # a CueClusterPosition far past the end: in a sized Segment refused unread, in a live one
    # the jump finds the end of the stream
    "cluster-past-the-end": (lambda p: Cued(p, points=lambda r: [(1000, 10**9, 1)]), False),
    "cluster-past-the-end-live": (
        lambda p: Cued(p, points=lambda r: [(1000, 10**9, 1)], unknown=True), True),
    # past anything a file can hold: the jump is tried and the seek itself fails (BytesIO
    # raises OverflowError; found by the mutation test below)
    "cluster-past-any-file-live": (
        lambda p: Cued(p, points=lambda r: [(1000, 2**63, 1)], unknown=True), True),
    "into-a-block": (lambda p: Cued(p, points=lambda r: [(1000, r[2] + 40, 1)]), True),
    "at-the-tracks": (lambda p: Cued(p, points=lambda r: [(1000, TRACKS_POSITION, 1)]), True),
    # a CueTime that lies: the Cluster there starts at 2.5 s, after the start
    "cluster-too-late": (lambda p: Cued(p, points=lambda r: [(0, r[5], 1)]), True),
    "cue-time-huge": (lambda p: Cued(p, points=lambda r: [(2**64 - 1, r[2], 1)]), False),
    "garbage-cues": (lambda p: Cued(p, cues_element=element(CUES, b"\x00\x01garbage" * 5)),
                     False),
    "empty-cues": (lambda p: Cued(p, cues_element=element(CUES)), False),
    "absurd-cues-size": (lambda p: Cued(p, unknown=True, cues_element=element(
        CUES, cue_point(1000, 0), size=HUGE)), False),
    "seek-head-past-the-end": (lambda p: Cued(p, seek_position=10**9, unknown=True), False),
    "seek-head-at-a-cluster": (lambda p: Cued(p, seek_position=Cued(p).rels[1]), False),
    # Tags whose body begins as a Cluster's does (Timecode 0), before the Cluster at 1.5 s:
    # taken for a Cluster, it would start the audio at 1.5 s
    "not-a-cluster": (lambda p: Cued(p, before=(3, FAKE_CLUSTER), points=lambda r: [
        (1000, max(r[3] - len(FAKE_CLUSTER), 0), 1)]), True),  # (0: the sizing pass)
}


@pytest.mark.parametrize("case", list(HOSTILE_CUES), ids=list(HOSTILE_CUES))
def test_hostile_cues_fall_back_to_reading_through(real_packets: list[bytes], case: str) -> None:
    """Cues that lead nowhere valid never give other audio: the reader scans instead."""
    build, jumps_to_cluster = HOSTILE_CUES[case]
    made = build(real_packets)
    stream = SeekLog(made.data)
    got, reader = packets_from(stream, AT_1230MS)
    assert got == real_packets[FROM_1230MS:]
    assert reader.seeked_to is None and reader.packets_skipped == FROM_1230MS
    assert stream.largest <= 64 * 1024
    # it went for the Cues (and maybe the Cluster they name), then back to the first Cluster
    assert len(stream.seeks) == (3 if jumps_to_cluster else 2)
    assert stream.seeks[-1] == made.cluster(0)


def test_absurd_cues_in_a_sized_segment_are_the_error_they_always_were(
        real_packets: list[bytes]) -> None:
    made = Cued(real_packets, cues_element=element(CUES, cue_point(1000, 0), size=HUGE))
    assert read_until_error(made.data)[0] == real_packets  # and then the overrun
    got: list[bytes] = []
    reader = WebmOpusReader(io.BytesIO(made.data), start_ns=AT_1230MS)
    with pytest.raises(WebmError, match="overruns"):
        for packet in reader:
            got.append(packet)
    assert got == real_packets[FROM_1230MS:] and reader.seeked_to is None


def test_cues_over_the_bound_are_skipped_in_bounded_reads(real_packets: list[bytes]) -> None:
    big = element(CUES, b"\x00" * (MAX_CUES + 1))
    for cues in ("front", "end"):
        stream = Recording(Cued(real_packets, cues=cues, cues_element=big).data)
        got, reader = packets_from(stream, AT_1230MS)
        assert got == real_packets[FROM_1230MS:] and reader.seeked_to is None
        assert stream.largest <= 64 * 1024


def test_a_laced_block_spanning_the_start_keeps_its_later_frames() -> None:
    frames = [audio_packet(i) for i in range(4)]
    data = ebml_header() + segment(tracks(track_entry(1)), cluster(
        element(SIMPLE_BLOCK, block_body(1, frames[:3], "xiph")),
        element(SIMPLE_BLOCK, block_body(1, frames[3:], timecode=60))))
    for stream in (io.BytesIO(data), NoSeek(data)):
        got, reader = packets_from(stream, 30_000_000)
        assert got == frames[1:] and reader.packets_skipped == 1
    assert packets_from(io.BytesIO(data), 40_000_000)[0] == frames[2:]
    assert packets_from(io.BytesIO(data), 60_000_000)[0] == frames[3:]


def test_packets_of_unknown_duration_are_kept_only_from_the_start_on() -> None:
    bad = [b"\xff", b"\xfb"]  # code 3 without its frame count: no duration
    # no CodecDelay: the block times are the times start_ns is compared with
    data = ebml_header() + segment(tracks(track_entry(1, delay=0)), cluster(
        element(SIMPLE_BLOCK, block_body(1, bad[:1], timecode=0)),
        element(SIMPLE_BLOCK, block_body(1, bad[1:], timecode=20)),
        element(SIMPLE_BLOCK, block_body(1, [audio_packet(1)], timecode=40))))
    assert packets_from(io.BytesIO(data), 20_000_000)[0] == [b"\xfb", audio_packet(1)]
    assert packets_from(io.BytesIO(data), 25_000_000)[0] == [audio_packet(1)]


def test_dropping_ends_at_the_first_packet_kept(real_packets: list[bytes]) -> None:
    """Timestamps that go back after the start (a hostile or chained stream) drop nothing."""
    data = ebml_header() + segment(tracks(track_entry(1)),
                                   cluster(simple_block(1, [real_packets[0]]), timecode=1000),
                                   cluster(simple_block(1, [real_packets[1]]), timecode=0))
    assert packets_from(io.BytesIO(data), 500_000_000)[0] == real_packets[:2]


CUED_SMALL = Cued([audio_packet(i, 20 + i) for i in range(8)]).data


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations(CUED_SMALL), st.integers(1, 200_000_000))
def test_mutated_cued_files_raise_only_webm_errors(data: bytes, start_ns: int) -> None:
    stream = Recording(data)
    got: list[bytes] = []
    try:
        for packet in WebmOpusReader(stream, start_ns=start_ns):
            got.append(packet)
    except WebmError:
        pass
    assert sum(map(len, got)) <= len(data)
    assert stream.largest <= MAX_CUES + 64 * 1024

"""OggOpusReader on hand-built pages (lacing, spanning packets, garbage, chains) and real ffmpeg
output; opus_frame_duration_ms on TOC bytes."""

from __future__ import annotations

import io
import struct
import subprocess

import pytest

from music.audio.ogg import (
    FLAG_BOS,
    FLAG_CONTINUED,
    FLAG_EOS,
    OggOpusReader,
    ogg_crc,
    opus_frame_duration_ms,
    page_crc_ok,
)
from tests.support.media import FFMPEG

OPUS_HEAD = b"OpusHead" + bytes([1, 2]) + struct.pack("<HIhB", 312, 48000, 0, 0)
OPUS_TAGS = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)


# A granule position well after the stream's start: the packets on such a page are audio, not
# pre-roll (see test_preroll_*).
AUDIO_GRANULE = 48000


def make_page(serial: int, seqno: int, segments_data: bytes, lacing: list[int], flags: int = 0,
              granule: int = AUDIO_GRANULE) -> bytes:
    """One Ogg page with a correct CRC."""
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seqno, 0, len(lacing))
    page = bytearray(header + bytes(lacing) + segments_data)
    struct.pack_into("<I", page, 22, ogg_crc(page))
    return bytes(page)


def lacing_for(packet: bytes) -> list[int]:
    sizes = [255] * (len(packet) // 255)
    sizes.append(len(packet) % 255)
    return sizes


def page_of_packets(serial: int, seqno: int, packets: list[bytes], flags: int = 0,
                    granule: int = AUDIO_GRANULE) -> bytes:
    lacing: list[int] = []
    for packet in packets:
        lacing += lacing_for(packet)
    return make_page(serial, seqno, b"".join(packets), lacing, flags, granule)


def opus_stream(serial: int, audio: list[bytes], *, eos: bool = True) -> bytes:
    """A logical Opus stream: OpusHead page, OpusTags page, one page per audio packet."""
    pages = [page_of_packets(serial, 0, [OPUS_HEAD], FLAG_BOS),
             page_of_packets(serial, 1, [OPUS_TAGS])]
    for i, packet in enumerate(audio):
        last = eos and i == len(audio) - 1
        pages.append(page_of_packets(serial, 2 + i, [packet], FLAG_EOS if last else 0))
    return b"".join(pages)


def audio_packet(n: int, size: int = 40) -> bytes:
    # TOC 0xFC: CELT fullband 20 ms, one frame; the rest identifies the packet
    return bytes([0xFC]) + bytes([n % 256]) * (size - 1)


def read_all(data: bytes, **kwargs) -> list[bytes]:
    return list(OggOpusReader(io.BytesIO(data), **kwargs))


def test_header_packets_are_skipped_and_audio_kept_in_order():
    audio = [audio_packet(i) for i in range(5)]
    assert read_all(opus_stream(1, audio)) == audio


def test_packets_spanning_pages_are_joined():
    big = audio_packet(7, size=700)  # lacing 255, 255, 190
    first, second = big[:510], big[510:]
    page_a = make_page(3, 2, first, [255, 255])  # ends with a 255 segment: packet continues
    page_b = make_page(3, 3, second, [len(second)], FLAG_CONTINUED)
    data = (page_of_packets(3, 0, [OPUS_HEAD], FLAG_BOS) + page_of_packets(3, 1, [OPUS_TAGS])
            + page_a + page_b + page_of_packets(3, 4, [audio_packet(8)]))
    assert read_all(data) == [big, audio_packet(8)]


def test_packet_of_exactly_255_bytes_needs_a_zero_lacing_value():
    exact = audio_packet(1, size=255)
    assert lacing_for(exact) == [255, 0]
    assert read_all(opus_stream(4, [exact, audio_packet(2)])) == [exact, audio_packet(2)]


def test_several_packets_in_one_page():
    audio = [audio_packet(i, size=30 + i) for i in range(6)]
    data = (page_of_packets(5, 0, [OPUS_HEAD], FLAG_BOS) + page_of_packets(5, 1, [OPUS_TAGS])
            + page_of_packets(5, 2, audio, FLAG_EOS))
    assert read_all(data) == audio


def test_garbage_between_pages_is_skipped_by_resync():
    audio = [audio_packet(i) for i in range(4)]
    stream = opus_stream(9, audio)
    head_and_tags = len(page_of_packets(9, 0, [OPUS_HEAD], FLAG_BOS)) + len(
        page_of_packets(9, 1, [OPUS_TAGS]))
    # garbage that even contains a fake capture pattern with a broken page behind it
    garbage = b"\x00junk OggS\x00\x02not a page at all" + bytes(range(200))
    data = b"leading noise" + stream[:head_and_tags] + garbage + stream[head_and_tags:]
    reader = OggOpusReader(io.BytesIO(data))
    assert list(reader) == audio
    assert reader.bytes_skipped >= len(garbage)


def test_corrupted_page_after_resync_is_rejected_by_crc():
    audio = [audio_packet(i) for i in range(3)]
    pages = [page_of_packets(2, 0, [OPUS_HEAD], FLAG_BOS), page_of_packets(2, 1, [OPUS_TAGS])]
    pages += [page_of_packets(2, 2 + i, [p]) for i, p in enumerate(audio)]
    corrupt = bytearray(pages[3])
    corrupt[-5] ^= 0xFF  # payload damage: CRC no longer matches
    data = pages[0] + pages[1] + pages[2] + b"xx" + bytes(corrupt) + pages[4]
    # the corrupt page follows garbage, so it is CRC-checked and dropped
    assert read_all(data) == [audio[0], audio[2]]
    # with CRC checks on every page it is dropped even without garbage before it
    data = pages[0] + pages[1] + pages[2] + bytes(corrupt) + pages[4]
    assert read_all(data, verify_crc=True) == [audio[0], audio[2]]


def test_continuation_without_its_start_is_dropped():
    tail = b"\x11" * 50
    data = (page_of_packets(6, 0, [OPUS_HEAD], FLAG_BOS) + page_of_packets(6, 1, [OPUS_TAGS])
            + make_page(6, 2, tail + audio_packet(3), [50, 40], FLAG_CONTINUED))
    reader = OggOpusReader(io.BytesIO(data))
    assert list(reader) == [audio_packet(3)]
    assert reader.packets_dropped == 1


def test_missing_page_drops_the_unfinished_packet():
    big = audio_packet(1, size=600)
    data = (page_of_packets(8, 0, [OPUS_HEAD], FLAG_BOS) + page_of_packets(8, 1, [OPUS_TAGS])
            + make_page(8, 2, big[:510], [255, 255])
            # seqno 3 (the rest of `big`) is lost; seqno 4 starts fresh
            + page_of_packets(8, 4, [audio_packet(2)]))
    assert read_all(data) == [audio_packet(2)]


PRE_SKIP = 312  # as in OPUS_HEAD above


def test_preroll_packets_before_the_start_are_dropped():
    """What ffmpeg writes when it copies Opus after an input seek: packets before the requested
    position carry negative granule positions."""
    pages = [page_of_packets(30, 0, [OPUS_HEAD], FLAG_BOS, granule=0),
             page_of_packets(30, 1, [OPUS_TAGS], granule=0)]
    # one 20 ms packet (960 samples) per page, ends at -1896, -936, 24, 984, 1944 (+pre-skip)
    ends = [-1896, -936, 24, 984, 1944]
    audio = [audio_packet(i) for i in range(len(ends))]
    pages += [page_of_packets(30, 2 + i, [p], granule=end + PRE_SKIP)
              for i, (p, end) in enumerate(zip(audio, ends, strict=True))]
    reader = OggOpusReader(io.BytesIO(b"".join(pages)))
    assert list(reader) == audio[2:]  # the packet ending 0.5 ms after the start is kept
    assert reader.preroll_dropped == 2
    assert read_all(b"".join(pages), drop_preroll=False) == audio


def test_preroll_inside_a_page_of_several_packets_uses_each_packets_duration():
    audio = [audio_packet(i) for i in range(4)]  # 20 ms each
    # the page's last packet ends at +1000 samples: the others end at +40, -920, -1880
    data = (page_of_packets(31, 0, [OPUS_HEAD], FLAG_BOS, granule=0)
            + page_of_packets(31, 1, [OPUS_TAGS], granule=0)
            + page_of_packets(31, 2, audio, granule=1000 + PRE_SKIP))
    assert read_all(data) == audio[2:]


def test_chained_streams_skip_each_streams_headers():
    first = [audio_packet(i) for i in range(3)]
    second = [audio_packet(100 + i) for i in range(3)]
    assert read_all(opus_stream(10, first) + opus_stream(11, second)) == first + second


def test_non_opus_logical_stream_is_ignored():
    vorbis_head = b"\x01vorbis" + b"\0" * 23
    other = page_of_packets(20, 0, [vorbis_head], FLAG_BOS) + page_of_packets(20, 1, [b"\x05" * 40])
    audio = [audio_packet(i) for i in range(2)]
    assert read_all(other + opus_stream(21, audio)) == audio


def test_truncated_last_page_ends_cleanly():
    audio = [audio_packet(i) for i in range(3)]
    data = opus_stream(12, audio)
    assert read_all(data[:-10]) == audio[:2]


def test_reader_takes_pages_from_a_pipe_as_they_arrive():
    """read1 semantics: the first packet must not wait for a 4 KB chunk to fill."""
    import os
    import threading

    read_fd, write_fd = os.pipe()
    reader_file = os.fdopen(read_fd, "rb")  # buffered, as subprocess pipes usually are
    got: list[bytes] = []
    first_arrived = threading.Event()

    def consume() -> None:
        for packet in OggOpusReader(reader_file):
            got.append(packet)
            first_arrived.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    os.write(write_fd, opus_stream(13, [audio_packet(1)], eos=False))  # ~150 bytes, far < 4 KB
    assert first_arrived.wait(2), "the packet was held back waiting for more bytes"
    os.close(write_fd)
    thread.join(2)
    assert got == [audio_packet(1)]


def test_real_ffmpeg_ogg_output_has_valid_crcs_and_only_audio_packets(media_dir):
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(media_dir / "a440.ogg"),
         "-c:a", "copy", "-f", "ogg", "-page_duration", "20000", "pipe:1"],
        check=True, capture_output=True, timeout=30,
    ).stdout
    # our CRC agrees with ffmpeg's on every page
    offset, pages = 0, 0
    while offset < len(out):
        assert out.startswith(b"OggS", offset)
        nsegs = out[offset + 26]
        size = 27 + nsegs + sum(out[offset + 27 : offset + 27 + nsegs])
        assert page_crc_ok(out[offset : offset + size])
        offset += size
        pages += 1
    packets = read_all(out, verify_crc=True)
    assert pages >= len(packets) + 2  # header pages exist but produced no packets
    assert abs(len(packets) - 150) <= 3
    assert not any(p.startswith((b"OpusHead", b"OpusTags")) for p in packets)
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}


@pytest.mark.parametrize(
    ("packet", "expected_ms"),
    [
        (bytes([0xFC, 0]), 20.0),  # config 31 (CELT FB 20 ms), stereo, one frame
        (b"\xf8\xff\xfe", 20.0),  # discord's silence frame: config 31 mono, one frame
        (bytes([0x98, 0]), 20.0),  # config 19 (CELT NB 20 ms)
        (bytes([0xE0, 0]), 2.5),  # config 28 (CELT FB 2.5 ms)
        (bytes([0x08, 0]), 20.0),  # config 1 (SILK NB 20 ms)
        (bytes([0x18, 0]), 60.0),  # config 3 (SILK NB 60 ms)
        (bytes([0x68, 0]), 20.0),  # config 13 (hybrid SWB 20 ms)
        (bytes([0x70, 0]), 10.0),  # config 14 (hybrid FB 10 ms)
        (bytes([0xFD, 0, 0]), 40.0),  # code 1: two equal 20 ms frames
        (bytes([0xFE, 1, 0, 0]), 40.0),  # code 2: two 20 ms frames of different sizes
        (bytes([0xFF, 0x03, 0]), 60.0),  # code 3: frame count byte says 3 x 20 ms
        (bytes([0xF3, 0x83, 0]), 30.0),  # config 30 (CELT FB 10 ms), code 3, VBR flag set, 3 frames
    ],
)
def test_opus_frame_duration_from_toc(packet: bytes, expected_ms: float) -> None:
    assert opus_frame_duration_ms(packet) == expected_ms


@pytest.mark.parametrize("packet", [b"", b"\xff", bytes([0xFF, 0x00])])
def test_malformed_toc_is_rejected(packet: bytes) -> None:
    with pytest.raises(ValueError):
        opus_frame_duration_ms(packet)

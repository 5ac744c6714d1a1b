"""Files written by other muxers than the ffmpeg the rest of the tests use (issue 13, point 10).

The files are committed in tests/fixtures/muxers/ with the script that made them (make.sh:
mkvmerge, GStreamer, ffmpeg with other options), so CI needs none of those packages.

* WebM/Matroska with a video track: muxers write audio ahead of a video keyframe, into the
  Cluster before the keyframe's (mkvmerge up to 80 ms, GStreamer 20 ms): a start through the
  Cues must begin on the same packet as reading through, at every position.
* Ogg with two Opus logical streams: only the first one (by serial number) is played.
"""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import pytest

from music.audio.ogg import OggOpusReader, opus_frame_duration_ms
from music.audio.webm import WebmOpusReader
from tests.support.media import FFMPEG

MUXED = Path(__file__).resolve().parent.parent / "fixtures" / "muxers"
WITH_VIDEO = ["ffmpeg_av.webm", "ffmpeg_av_cues_front.webm", "mkvmerge_av.webm",
              "mkvmerge_av.mkv", "gst_av.webm", "gst_av.mkv"]
TWO_OPUS = ["ffmpeg_two_opus.ogg", "gst_two_opus.ogg"]
MS = 1_000_000


class NoSeek:
    """Reads only: the reader cannot use the Cues and reads through."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read1(self, size: int = -1) -> bytes:
        return self._data.read1(size)

    read = read1


def test_the_fixtures_are_what_make_sh_wrote() -> None:
    versions = (MUXED / "VERSIONS").read_text()
    assert "mkvmerge" in versions and "GStreamer" in versions
    total = sum(path.stat().st_size for path in MUXED.iterdir() if path.suffix != ".sh")
    assert total < 200_000
    for name in WITH_VIDEO:
        data = (MUXED / name).read_bytes()
        reader = WebmOpusReader(io.BytesIO(data))
        packets = list(reader)
        assert 145 <= len(packets) <= 152  # 3 s of 20 ms packets
        assert reader.blocks_skipped >= 30  # the video track's frames
        assert {opus_frame_duration_ms(p) for p in packets} == {20.0}


@pytest.mark.parametrize("name", WITH_VIDEO)
def test_a_start_through_the_cues_begins_on_the_packet_reading_through_begins_on(
        name: str) -> None:
    data = (MUXED / name).read_bytes()
    jumped = 0
    for ms in range(0, 3000, 10):
        seek = WebmOpusReader(io.BytesIO(data), start_ns=ms * MS)
        by_cues = list(seek)
        read_through = list(WebmOpusReader(NoSeek(data), start_ns=ms * MS))
        assert by_cues == read_through, (
            f"{name} at {ms} ms: the Cues path starts "
            f"{read_through.index(by_cues[0]) if by_cues and by_cues[0] in read_through else '?'}"
            " packets later")
        jumped += seek.seeked_to is not None and seek.seeked_to > 1000
    assert jumped >= 100  # the Cues were used (not only read through), in most positions


def cluster_offsets(data: bytes) -> dict[int, int]:
    """Timecode (ms) -> stream offset of each Cluster of a one-Segment file."""
    def header(pos: int) -> tuple[int, int, int]:
        id_len = 9 - data[pos].bit_length()
        size_len = 9 - data[pos + id_len].bit_length()
        size = int.from_bytes(data[pos + id_len : pos + id_len + size_len], "big")
        return (int.from_bytes(data[pos : pos + id_len], "big"),
                size & ((1 << (7 * size_len)) - 1), id_len + size_len)

    _, size, length = header(0)
    _, _, length_segment = header(length + size)  # the Segment
    pos, found = length + size + length_segment, {}
    while pos < len(data):
        eid, size, length = header(pos)
        if eid == 0x1F43B675:  # its first child is its Timecode
            _, tc_size, tc_length = header(pos + length)
            start = pos + length + tc_length
            found[int.from_bytes(data[start : start + tc_size], "big")] = pos
        pos += length + size
    return found


def test_landing_late_goes_back_one_cluster_and_no_further_than_needed() -> None:
    """mkvmerge laces eight packets (160 ms) a block and writes the block of 981-1141 ms before
    the keyframe at 1.0 s: the Cluster at 1.0 s starts its audio at 1081 ms (1074.5 ms less the
    6.5 ms CodecDelay). A start at 1.0 s lands there (the Cues' choice), finds its first audio
    too late and goes back to the Cluster at 0.5 s; from 1074.5 ms on it stays at 1.0 s."""
    data = (MUXED / "mkvmerge_av.webm").read_bytes()
    clusters = cluster_offsets(data)
    assert sorted(clusters)[:4] == [0, 500, 1000, 1500]
    for start_ms, expected in ((1000, 500), (1074, 500), (1075, 1000), (1500, 1000)):
        reader = WebmOpusReader(io.BytesIO(data), start_ns=start_ms * MS)
        list(reader)
        assert reader.seeked_to == clusters[expected], start_ms
    # from the first Cluster's Cue, going back means reading through
    reader = WebmOpusReader(io.BytesIO(data), start_ns=500 * MS)
    list(reader)
    assert reader.seeked_to is None


def ogg_packets_of_first_stream(path: Path) -> list[bytes]:
    """The reference: ffmpeg's copy of the file's first audio stream alone."""
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
         "-c", "copy", "-f", "ogg", "pipe:1"],
        check=True, capture_output=True, timeout=30).stdout
    return list(OggOpusReader(io.BytesIO(out)))


def first_bos_serial(data: bytes) -> int:
    assert data[:4] == b"OggS" and data[5] & 0x02
    return struct.unpack_from("<I", data, 14)[0]


@pytest.mark.parametrize("name", TWO_OPUS)
def test_only_the_first_opus_stream_of_an_ogg_is_played(name: str) -> None:
    data = (MUXED / name).read_bytes()
    reader = OggOpusReader(io.BytesIO(data))
    packets = list(reader)
    assert reader.serial == first_bos_serial(data)
    assert packets == ogg_packets_of_first_stream(MUXED / name)
    assert 145 <= len(packets) <= 152  # one 3 s stream, not two


def test_a_video_stream_beside_the_opus_one_is_skipped() -> None:
    data = (MUXED / "gst_theora_opus.ogg").read_bytes()
    reader = OggOpusReader(io.BytesIO(data))
    packets = list(reader)
    assert first_bos_serial(data) != reader.serial  # Theora's BOS page comes first
    assert packets == ogg_packets_of_first_stream(MUXED / "gst_theora_opus.ogg")
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}

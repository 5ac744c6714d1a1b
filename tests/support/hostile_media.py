"""Hostile media for the cost bound of the in-process readers (issue 13, points 3-5).

Each generator makes a byte string of about ``size`` bytes in one adversarial shape, the worst
of its kind that was found for the readers' per-byte and per-stream costs. The property tests
(tests/audio/test_media_cost.py) feed these, random bytes and mutated real files to
``OggOpusReader`` and ``WebmOpusReader``; ``benchmarks/media_cost.py`` reports the worst CPU per
MiB and peak memory they cost beside a normal file's.

The builders here are written from the specs (RFC 3533 for Ogg, RFC 8794 and Matroska for
EBML), not from the readers, so a reader bug cannot hide in a shared helper.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable

# -- Ogg (RFC 3533) ----------------------------------------------------------------------------

FLAG_CONTINUED, FLAG_BOS, FLAG_EOS = 0x01, 0x02, 0x04
OPUS_HEAD = b"OpusHead" + bytes([1, 2]) + struct.pack("<HIhB", 312, 48000, 0, 0)
OPUS_TAGS = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
TOC_20MS = 0xFC  # CELT fullband, 20 ms, one frame (code 0)

_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, initial value 0, no final xor): the
    reflected zlib CRC of the bit-reversed bytes, bit-reversed back."""
    reflected = zlib.crc32(data.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int.from_bytes(reflected.to_bytes(4, "little").translate(_BIT_REVERSED), "big")


def ogg_page(serial: int, seqno: int, lacing: Iterable[int], body: bytes, *, flags: int = 0,
             granule: int = 48_000, crc: bool = True) -> bytes:
    lacing = bytes(lacing)
    page = bytearray(struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial,
                                 seqno & 0xFFFFFFFF, 0, len(lacing)) + lacing + body)
    if crc:
        struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return bytes(page)


def lacing_of(packet: bytes) -> list[int]:
    return [255] * (len(packet) // 255) + [len(packet) % 255]


def ogg_packets_page(serial: int, seqno: int, packets: list[bytes], **kwargs: object) -> bytes:
    lacing: list[int] = []
    for packet in packets:
        lacing += lacing_of(packet)
    return ogg_page(serial, seqno, lacing, b"".join(packets), **kwargs)  # type: ignore[arg-type]


def ogg_opus_headers(serial: int = 1) -> bytes:
    return (ogg_packets_page(serial, 0, [OPUS_HEAD], flags=FLAG_BOS, granule=0)
            + ogg_packets_page(serial, 1, [OPUS_TAGS], granule=0))


def _repeat_pages(head: bytes, size: int, page: Callable[[int], bytes]) -> bytes:
    parts, total, n = [head], len(head), 0
    while total < size:
        part = page(n)
        parts.append(part)
        total += len(part)
        n += 1
    return b"".join(parts)


def ogg_resync_storm(size: int) -> bytes:
    """A capture pattern every 32 bytes, each the start of a page header that declares 255
    segments (a page of ~56 KB) and fails its CRC: after the first byte of garbage, every one
    of them is a resync candidate. 160 KiB of this cost ~20 s of CPU in a pure-Python CRC."""
    unit = b"OggS\x00\x00" + b"\xff" * 26
    return b"\x00" + unit * (size // len(unit))


def ogg_endless_continuation(size: int, *, page_segments: int = 255) -> bytes:
    """An Opus stream whose first audio packet never ends: every page is full of 255-byte
    segments and marked "continued"; sequence numbers in order, CRCs right."""
    body = bytes([TOC_20MS]) + b"\x55" * (255 * page_segments - 1)

    def page(n: int) -> bytes:
        return ogg_page(1, 2 + n, [255] * page_segments, body if n == 0 else body[:1] * len(body),
                        flags=FLAG_CONTINUED if n else 0, granule=-1)

    return _repeat_pages(ogg_opus_headers(1), size, page)


def ogg_empty_packets(size: int) -> bytes:
    """Pages of 255 zero-length packets (lacing values of 0): 282 bytes, 255 packets, no audio."""
    return _repeat_pages(ogg_opus_headers(1), size,
                         lambda n: ogg_page(1, 2 + n, [0] * 255, b""))


def ogg_tiny_packets(size: int) -> bytes:
    """Pages of 255 one-byte 20 ms packets (a TOC byte alone is a valid Opus packet): the most
    packets per input byte a valid stream can hold."""
    return _repeat_pages(ogg_opus_headers(1), size, lambda n: ogg_page(
        1, 2 + n, [1] * 255, bytes([TOC_20MS]) * 255, granule=312 + (n + 1) * 255 * 960))


def ogg_all_lacings(size: int) -> bytes:
    """Pages whose lacing tables run through every value 0-255 in turn (packets that span
    segments, pages, zero-length ones), bodies of 20 ms TOC bytes."""
    def page(n: int) -> bytes:
        lacing = [(n * 255 + i) % 256 for i in range(255)]
        return ogg_page(1, 2 + n, lacing, bytes([TOC_20MS]) * sum(lacing),
                        flags=FLAG_CONTINUED if n else 0, granule=312 + (n + 1) * 255 * 960)

    return _repeat_pages(ogg_opus_headers(1), size, page)


def ogg_empty_pages(size: int) -> bytes:
    """Pages with no segment at all (27 bytes each), in sequence: the most pages per byte."""
    return _repeat_pages(ogg_opus_headers(1), size, lambda n: ogg_page(1, 2 + n, b"", b""))


def ogg_foreign_pages(size: int) -> bytes:
    """The Opus stream's headers, then tiny pages of other logical streams, each a new serial."""
    return _repeat_pages(ogg_opus_headers(1), size,
                         lambda n: ogg_page(1000 + n, n, [1], b"x"))


def ogg_bos_storm(size: int) -> bytes:
    """Beginning-of-stream pages with an OpusHead, each a new serial (a new logical stream)."""
    return _repeat_pages(b"", size, lambda n: ogg_packets_page(
        n, 0, [OPUS_HEAD], flags=FLAG_BOS, granule=0))


def ogg_oversized_packets(size: int) -> bytes:
    """Complete packets whose TOC says 20 ms in one frame, 60,000 bytes each."""
    packet = bytes([TOC_20MS]) + b"\x55" * 59_999
    return _repeat_pages(ogg_opus_headers(1), size, lambda n: ogg_packets_page(1, 2 + n, [packet]))


def ogg_negative_granules(size: int) -> bytes:
    """One-byte 20 ms packets on pages whose granule position says they end before the start
    (pre-roll), forever."""
    return _repeat_pages(ogg_opus_headers(1), size, lambda n: ogg_page(
        1, 2 + n, [1] * 255, bytes([TOC_20MS]) * 255, granule=-(1 << 40)))


def ogg_endless_tags(size: int) -> bytes:
    """An OpusTags packet that never ends (as cover art in the tags can be long, but forever)."""
    head = ogg_packets_page(1, 0, [OPUS_HEAD], flags=FLAG_BOS, granule=0)
    body = b"OpusTags" + b"\x00" * (255 * 255 - 8)
    return _repeat_pages(head, size, lambda n: ogg_page(
        1, 1 + n, [255] * 255, body if n == 0 else b"\x00" * len(body),
        flags=FLAG_CONTINUED if n else 0, granule=0))


# -- EBML / Matroska (RFC 8794) ------------------------------------------------------------------

EBML, DOC_TYPE, SEGMENT, INFO, TRACKS = 0x1A45DFA3, 0x4282, 0x18538067, 0x1549A966, 0x1654AE6B
TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE, CODEC_ID, CODEC_PRIVATE = 0xAE, 0xD7, 0x83, 0x86, 0x63A2
CONTENT_ENCODINGS, CONTENT_ENCODING, CONTENT_COMPRESSION = 0x6D80, 0x6240, 0x5034
CONTENT_COMP_ALGO, CONTENT_COMP_SETTINGS = 0x4254, 0x4255
CLUSTER, TIMECODE, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK, VOID = (
    0x1F43B675, 0xE7, 0xA3, 0xA0, 0xA1, 0xEC)
CUES, CUE_POINT, CUE_TIME, CUE_TRACK_POSITIONS = 0x1C53BB6B, 0xBB, 0xB3, 0xB7
CUE_TRACK, CUE_CLUSTER_POSITION = 0xF7, 0xF1
TAGS = 0x1254C367
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def vint(value: int) -> bytes:
    length = 1
    while value >= (1 << (7 * length)) - 1:
        length += 1
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def element(eid: int, payload: bytes = b"", *, size: bytes | None = None) -> bytes:
    return (eid.to_bytes((eid.bit_length() + 7) // 8, "big")
            + (vint(len(payload)) if size is None else size) + payload)


def uint_element(eid: int, value: int) -> bytes:
    return element(eid, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def webm_head(*, stripped: bytes = b"", video: bool = False, live: bool = True) -> bytes:
    """EBML header, a Segment (unknown size when ``live``) and Tracks: an Opus track 1 (with
    header stripping of ``stripped`` when given) and, with ``video``, a VP8 track 2 first."""
    audio = (uint_element(TRACK_NUMBER, 1) + uint_element(TRACK_TYPE, 2)
             + element(CODEC_ID, b"A_OPUS") + element(CODEC_PRIVATE, OPUS_HEAD))
    if stripped:
        audio += element(CONTENT_ENCODINGS, element(CONTENT_ENCODING, element(
            CONTENT_COMPRESSION, uint_element(CONTENT_COMP_ALGO, 3)
            + element(CONTENT_COMP_SETTINGS, stripped))))
    entries = element(TRACK_ENTRY, audio)
    if video:
        entries = element(TRACK_ENTRY, uint_element(TRACK_NUMBER, 2) + uint_element(TRACK_TYPE, 1)
                          + element(CODEC_ID, b"V_VP8")) + entries
    header = element(EBML, uint_element(0x4286, 1) + element(DOC_TYPE, b"webm"))
    return header + element(SEGMENT, size=UNKNOWN_SIZE) + element(TRACKS, entries)


def _repeat(head: bytes, size: int, unit: bytes) -> bytes:
    return head + unit * max(1, (size - len(head)) // len(unit))


def laced_block(track: int, frames: list[bytes], lacing: str) -> bytes:
    head = vint(track) + b"\x00\x00"
    count = bytes([len(frames) - 1])
    if lacing == "xiph":
        sizes = b"".join(b"\xff" * (len(f) // 255) + bytes([len(f) % 255]) for f in frames[:-1])
        return head + b"\x82" + count + sizes + b"".join(frames)
    if lacing == "fixed":
        return head + b"\x84" + count + b"".join(frames)
    sizes = vint(len(frames[0])) + b"\xbf" * (len(frames) - 2)  # EBML lacing: differences of 0
    return head + b"\x86" + count + sizes + b"".join(frames)


def webm_header_stripping(size: int, *, prefix_size: int = 64 * 1024) -> bytes:
    """Header stripping (ContentCompAlgo 3) with a long prefix, and fixed-laced blocks of 256
    one-byte frames: each frame becomes prefix + 1 byte. 70 KB of this became 293 MiB of
    "Opus packets"."""
    prefix = bytes([TOC_20MS]) + b"\x55" * (prefix_size - 1)
    block = element(SIMPLE_BLOCK, laced_block(1, [b"\x55"] * 256, "fixed"))
    head = webm_head(stripped=prefix) + element(CLUSTER, size=UNKNOWN_SIZE) + uint_element(
        TIMECODE, 0)
    return _repeat(head, size, block)


def webm_lacings(size: int) -> bytes:
    """Blocks in each lacing (Xiph, fixed, EBML) of 256 one-byte 20 ms frames."""
    frames = [bytes([TOC_20MS])] * 256
    unit = b"".join(element(SIMPLE_BLOCK, laced_block(1, frames, kind))
                    for kind in ("xiph", "fixed", "ebml"))
    head = webm_head() + element(CLUSTER, size=UNKNOWN_SIZE) + uint_element(TIMECODE, 0)
    return _repeat(head, size, unit)


def webm_empty_frames(size: int) -> bytes:
    """Xiph-laced blocks of 256 empty frames (sizes 0): no packet, most frames per byte."""
    block = element(SIMPLE_BLOCK, laced_block(1, [b""] * 256, "xiph"))
    head = webm_head() + element(CLUSTER, size=UNKNOWN_SIZE) + uint_element(TIMECODE, 0)
    return _repeat(head, size, block)


def webm_tiny_elements(size: int) -> bytes:
    """Two-byte Void elements, as many as fit: the most elements per input byte."""
    return _repeat(webm_head(), size, element(VOID))


def webm_unknown_sizes(size: int) -> bytes:
    """Unknown-size Clusters, each holding nothing but the start of the next one."""
    return _repeat(webm_head(), size, element(CLUSTER, size=b"\xff"))


def webm_deep_nesting(size: int) -> bytes:
    """BlockGroups inside BlockGroups inside an unknown-size Cluster, as deep as the input goes
    (sizes known: each the rest of the input), then Segments inside Segments."""
    depth = size // 16
    inner = b""
    for _ in range(depth):
        inner = element(BLOCK_GROUP, inner)
    head = webm_head() + element(CLUSTER, size=UNKNOWN_SIZE) + uint_element(TIMECODE, 0)
    nested = (element(EBML, uint_element(0x4286, 1) + element(DOC_TYPE, b"webm"))
              + element(SEGMENT, size=UNKNOWN_SIZE) * (size // 32))
    return head + inner[: size // 2] + nested


def webm_huge_sizes(size: int) -> bytes:
    """Elements that declare sizes of 2**50 bytes (a video block, a Tag, an unknown top-level
    element) after a few audio packets: skipping them reads to the end of the input."""
    video = webm_head(video=True) + element(CLUSTER, size=UNKNOWN_SIZE) + uint_element(TIMECODE, 0)
    blocks = b"".join(element(SIMPLE_BLOCK, b"\x81\x00\x00\x80" + bytes([TOC_20MS, i]))
                      for i in range(10))
    huge = b"\x01\x04\x00\x00\x00\x00\x00\x00"  # 2**50
    body = element(SIMPLE_BLOCK, size=huge) + b"\x82\x00\x00\x80"
    return video + blocks + body + b"\x00" * max(0, size - len(video) - len(blocks) - len(body))


def webm_video_blocks(size: int) -> bytes:
    """Minimal blocks of the video track (7 bytes each), no audio: skipped one by one."""
    head = webm_head(video=True) + element(CLUSTER, size=UNKNOWN_SIZE) + uint_element(TIMECODE, 0)
    return _repeat(head, size, element(SIMPLE_BLOCK, b"\x82\x00\x00\x80\x00"))


def webm_cue_storm(size: int) -> bytes:
    """Cues before the Clusters with as many minimal CuePoints as fit (a seek reads them all)."""
    point = element(CUE_POINT, uint_element(CUE_TIME, 0) + element(
        CUE_TRACK_POSITIONS, uint_element(CUE_TRACK, 1) + uint_element(CUE_CLUSTER_POSITION, 0)))
    head = webm_head()
    count = max(1, (size - len(head) - 100) // len(point))
    cues = element(CUES, point * count)
    tail = element(CLUSTER, uint_element(TIMECODE, 0)
                   + element(SIMPLE_BLOCK, b"\x81\x00\x00\x80" + bytes([TOC_20MS, 1])))
    return head + cues + tail


def webm_oversized_packets(size: int) -> bytes:
    """Unlaced blocks of 60,000 bytes whose TOC says one 20 ms frame."""
    head = webm_head() + element(CLUSTER, size=UNKNOWN_SIZE) + uint_element(TIMECODE, 0)
    block = element(SIMPLE_BLOCK, b"\x81\x00\x00\x80" + bytes([TOC_20MS]) + b"\x55" * 59_999)
    return _repeat(head, size, block)


# name -> (container, generator); start = the start position to read from (a seek)
OGG_GENERATORS: dict[str, Callable[[int], bytes]] = {
    "ogg resync storm": ogg_resync_storm,
    "ogg endless continuation": ogg_endless_continuation,
    "ogg endless continuation, 1-segment pages": lambda n: ogg_endless_continuation(
        n, page_segments=1),
    "ogg empty packets": ogg_empty_packets,
    "ogg one-byte packets": ogg_tiny_packets,
    "ogg all lacing values": ogg_all_lacings,
    "ogg empty pages": ogg_empty_pages,
    "ogg other streams' pages": ogg_foreign_pages,
    "ogg new stream storm": ogg_bos_storm,
    "ogg oversized packets": ogg_oversized_packets,
    "ogg pre-roll forever": ogg_negative_granules,
    "ogg endless tags": ogg_endless_tags,
}
WEBM_GENERATORS: dict[str, Callable[[int], bytes]] = {
    "webm header stripping": webm_header_stripping,
    "webm all lacings": webm_lacings,
    "webm empty laced frames": webm_empty_frames,
    "webm two-byte elements": webm_tiny_elements,
    "webm unknown-size clusters": webm_unknown_sizes,
    "webm deep nesting": webm_deep_nesting,
    "webm huge declared sizes": webm_huge_sizes,
    "webm video blocks": webm_video_blocks,
    "webm cue storm (seek)": webm_cue_storm,
    "webm oversized packets": webm_oversized_packets,
}


# -- measuring a reader ----------------------------------------------------------------------------


class Outcome:
    """What reading one input cost: CPU seconds (time.process_time), peak traced memory (bytes,
    tracemalloc, a separate run), packets and bytes yielded, and the error that ended it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cpu = 0.0
        self.peak = 0
        self.packets = 0
        self.packet_bytes = 0
        self.largest_packet = 0
        self.oversized: list[int] = []  # sizes of packets over what their TOC allows
        self.bytes_read = 0  # what the reader consumed (its own count)
        self.error: BaseException | None = None

    @property
    def cpu_ms_per_mib(self) -> float:
        return self.cpu * 1000 / (max(self.bytes_read, 1) / 2**20)


def open_reader(container: str, data: bytes, start_ns: int = 0) -> Iterable[bytes]:
    import io

    from music.audio.ogg import OggOpusReader
    from music.audio.webm import WebmOpusReader

    stream = io.BytesIO(data)
    if container == "ogg":
        return OggOpusReader(stream)
    return WebmOpusReader(stream, start_ns=start_ns)


def _drain(reader: Iterable[bytes], outcome: Outcome, time_limit: float | None = None) -> None:
    import time

    from music.audio.limits import opus_packet_limit

    started = time.process_time()
    try:
        for packet in reader:
            outcome.packets += 1
            outcome.packet_bytes += len(packet)
            if len(packet) > outcome.largest_packet:
                outcome.largest_packet = len(packet)
            if len(packet) > 1277 and len(packet) > opus_packet_limit(packet):
                outcome.oversized.append(len(packet))
            if time_limit is not None and time.process_time() - started > time_limit:
                break
    except Exception as exc:  # the caller decides which errors are refusals
        outcome.error = exc
    outcome.bytes_read = getattr(reader, "bytes_read", outcome.size)


def measure(container: str, data: bytes, *, start_ns: int = 0, memory: bool = True,
            time_limit: float | None = None) -> Outcome:
    """Read ``data`` to its end (or error) with a fresh reader: once for CPU, once more under
    tracemalloc for the peak memory (when ``memory``). ``time_limit``: stop reading once that
    much CPU was spent (for the old code, which took minutes on some inputs)."""
    import time
    import tracemalloc

    outcome = Outcome(len(data))
    reader = open_reader(container, data, start_ns)
    started = time.process_time()
    _drain(reader, outcome, time_limit)
    outcome.cpu = time.process_time() - started
    if memory:
        scratch = Outcome(len(data))
        reader = open_reader(container, data, start_ns)
        tracemalloc.start()
        try:
            _drain(reader, scratch, time_limit)
            outcome.peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return outcome

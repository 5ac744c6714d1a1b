"""Ogg demuxing to raw Opus packets, the unit Discord's voice protocol carries.

``OggOpusReader`` turns the Ogg/Opus byte stream that ffmpeg writes into Opus packets and drops the
``OpusHead``/``OpusTags`` header packets (discord.py's FFmpegOpusAudio sends those as audio: two
undecodable frames and 40 ms of delay at every track start).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import BinaryIO

log = logging.getLogger("red.music.audio.ogg")

CAPTURE_PATTERN = b"OggS"
_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, seqno, crc, nsegs
HEADER_SIZE = _HEADER.size  # 27

FLAG_CONTINUED = 0x01
FLAG_BOS = 0x02
FLAG_EOS = 0x04

OPUS_HEAD = b"OpusHead"
OPUS_TAGS = b"OpusTags"

_READ_CHUNK = 4096


def _make_crc_table() -> list[int]:
    # Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0 (zlib.crc32 differs).
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE = _make_crc_table()


def ogg_crc(data: bytes | bytearray | memoryview) -> int:
    crc = 0
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) ^ byte) & 0xFF]
    return crc


def page_crc_ok(page: bytes | bytearray) -> bool:
    """True when the CRC stored in a whole page matches its content."""
    stored = struct.unpack_from("<I", page, 22)[0]
    zeroed = bytearray(page)
    zeroed[22:26] = b"\0\0\0\0"
    return ogg_crc(zeroed) == stored


class OggOpusReader:
    """Read Opus packets from an Ogg stream (a pipe or a file opened in binary mode).

    Iterating yields audio packets only; it ends at end of file. Robustness:

    * bytes that are not a page (garbage, a truncated page) are skipped by searching for the next
      capture pattern; a page found that way must pass its CRC before it is trusted (pages read
      in sequence are not CRC-checked: they come straight from our own ffmpeg, and a CRC in pure
      Python costs ~30 us per page);
    * a packet whose start was lost (resync, a page missing in the sequence) is dropped, never
      glued to unrelated data;
    * chained streams (a new BOS page with a new serial) work: each logical stream's header
      packets are skipped; logical streams that are not Opus are ignored;
    * packets that end before the stream's start (negative granule positions, left by an input
      seek in copy mode) are dropped, unless ``drop_preroll`` is False.
    """

    def __init__(
        self, stream: BinaryIO, *, verify_crc: bool = False, drop_preroll: bool = True
    ) -> None:
        self._stream = stream
        # read1 returns what is available instead of waiting for a full chunk: on a pipe a plain
        # buffered read(4096) would hold back ~250 ms of audio before the first packet.
        self._read = getattr(stream, "read1", stream.read)
        self._verify_all = verify_crc
        self._drop_preroll = drop_preroll
        self._pre_skip: dict[int, int] = {}
        self._buf = bytearray()
        self._eof = False
        # per serial: number of header packets still expected (2 for Opus), or -1 = not Opus
        self._headers_left: dict[int, int] = {}
        self._last_seqno: dict[int, int] = {}
        self._partial: dict[int, bytearray] = {}
        self.pages_read = 0
        self.bytes_skipped = 0
        self.packets_dropped = 0
        self.preroll_dropped = 0

    def __iter__(self) -> Iterator[bytes]:
        return self.packets()

    # -- byte handling ---------------------------------------------------------------------------

    def _fill(self, size: int) -> bool:
        """Make sure at least ``size`` bytes are buffered; False at end of stream."""
        while len(self._buf) < size and not self._eof:
            chunk = self._read(max(_READ_CHUNK, size - len(self._buf)))
            if not chunk:
                self._eof = True
                break
            self._buf += chunk
        return len(self._buf) >= size

    def _skip(self, count: int) -> None:
        del self._buf[:count]
        self.bytes_skipped += count

    def _next_page(self) -> tuple[int, int, int, int, list[int], bytes] | None:
        """Return (flags, granule, serial, seqno, lacing, body) of the next valid page, or None
        at EOF."""
        resynced = False
        while True:
            if not self._fill(HEADER_SIZE):
                if self._buf:
                    self.bytes_skipped += len(self._buf)
                    self._buf.clear()
                return None
            if not self._buf.startswith(CAPTURE_PATTERN):
                at = self._buf.find(CAPTURE_PATTERN, 1)
                # keep up to 3 trailing bytes: they may be the start of a split capture pattern
                self._skip(at if at > 0 else len(self._buf) - 3)
                resynced = True
                continue
            _, version, flags, granule, serial, seqno, _crc, nsegs = _HEADER.unpack_from(self._buf)
            if version != 0 or not self._fill(HEADER_SIZE + nsegs):
                self._skip(1)
                resynced = True
                continue
            lacing = list(self._buf[HEADER_SIZE : HEADER_SIZE + nsegs])
            page_size = HEADER_SIZE + nsegs + sum(lacing)
            if not self._fill(page_size):
                # truncated final page: nothing after it to resync to
                self._skip(1)
                resynced = True
                continue
            if (resynced or self._verify_all) and not page_crc_ok(self._buf[:page_size]):
                self._skip(1)
                resynced = True
                continue
            body = bytes(self._buf[HEADER_SIZE + nsegs : page_size])
            del self._buf[:page_size]
            self.pages_read += 1
            if resynced:
                # whatever packet was in progress lost its continuation
                self._drop_partials()
            return flags, granule, serial, seqno, lacing, body

    def _drop_partials(self) -> None:
        if self._partial:
            self.packets_dropped += len(self._partial)
            self._partial.clear()

    # -- packets ---------------------------------------------------------------------------------

    def packets(self) -> Iterator[bytes]:
        while True:
            page = self._next_page()
            if page is None:
                self._drop_partials()
                return
            flags, granule, serial, seqno, lacing, body = page
            if flags & FLAG_BOS:
                # a new logical stream (chained Ogg): its header packets come first
                self._headers_left[serial] = 2
                self._partial.pop(serial, None)
            elif serial not in self._headers_left:
                # joined mid-stream (after garbage): assume audio; _accept still drops headers
                self._headers_left[serial] = 0
            last = self._last_seqno.get(serial)
            if last is not None and seqno != (last + 1) & 0xFFFFFFFF and serial in self._partial:
                # a page went missing: the packet in progress is incomplete
                del self._partial[serial]
                self.packets_dropped += 1
            self._last_seqno[serial] = seqno

            partial = self._partial.pop(serial, None)
            skipping_continuation = False
            if flags & FLAG_CONTINUED and partial is None:
                # continuation of a packet whose start we never saw: drop up to its end
                skipping_continuation = True
            elif not flags & FLAG_CONTINUED and partial is not None:
                self.packets_dropped += 1  # the page says the old packet never finished
                partial = None

            current = partial if partial is not None else bytearray()
            completed: list[bytes] = []
            offset = 0
            for size in lacing:
                current += body[offset : offset + size]
                offset += size
                if size == 255:
                    continue  # the packet goes on in the next segment (maybe on the next page)
                if skipping_continuation:
                    skipping_continuation = False
                    self.packets_dropped += 1
                else:
                    packet = bytes(current)
                    if self._accept(serial, packet):
                        completed.append(packet)
                current = bytearray()
            if current and not skipping_continuation:
                self._partial[serial] = current
            if completed:
                yield from self._without_preroll(serial, granule, completed)
            if flags & FLAG_EOS:
                self._partial.pop(serial, None)
                self._last_seqno.pop(serial, None)
                self._headers_left.pop(serial, None)

    def _without_preroll(self, serial: int, granule: int, packets: list[bytes]) -> list[bytes]:
        """Drop packets that end before the stream's start.

        ffmpeg copying Opus after an input seek (``-ss`` before ``-i``) starts at the container's
        seek point (for WebM the start of a cluster, seconds early) and marks the packets before
        the requested position with negative timestamps: negative granule positions here. A
        decoder would discard that audio; Discord clients would play it, so it goes."""
        if not self._drop_preroll or granule == -1:
            return packets
        # The page's granule is the end (in 48 kHz samples, pre-skip included) of its last
        # packet; earlier packets end earlier by the durations of the packets after them.
        end: float = granule - self._pre_skip.get(serial, 0)
        ends: list[float] = []
        for packet in reversed(packets):
            ends.append(end)
            try:
                end -= opus_frame_duration_ms(packet) * 48
            except ValueError:
                # unknown duration: earlier packets end no later, so only a known pre-roll
                # (end <= 0) keeps being dropped; otherwise keep them all
                end = float("-inf") if end <= 0 else float("inf")
        ends.reverse()
        kept = [packet for packet, packet_end in zip(packets, ends, strict=True) if packet_end > 0]
        self.preroll_dropped += len(packets) - len(kept)
        return kept

    def _accept(self, serial: int, packet: bytes) -> bool:
        """Decide whether a complete packet is Opus audio (True) or a header / foreign data."""
        left = self._headers_left.get(serial, 0)
        if left == -1:
            return False  # a logical stream that is not Opus
        if left == 2:
            if packet.startswith(OPUS_HEAD):
                self._headers_left[serial] = 1
                if len(packet) >= 12:
                    self._pre_skip[serial] = struct.unpack_from("<H", packet, 10)[0]
            else:
                self._headers_left[serial] = -1
                log.debug("ignoring non-Opus logical stream %08x", serial)
            return False
        if left == 1:
            self._headers_left[serial] = 0
            if packet.startswith(OPUS_TAGS):
                return False
        # Belt and braces: header packets must never reach Discord, wherever they show up.
        if not packet or packet.startswith((OPUS_HEAD, OPUS_TAGS)):
            return False
        return True


# Frame size in ms for each TOC configuration number (RFC 6716, section 3.1).
_SILK_SIZES = (10.0, 20.0, 40.0, 60.0)  # configs 0-11 (NB, MB, WB)
_HYBRID_SIZES = (10.0, 20.0)  # configs 12-15 (SWB, FB)
_CELT_SIZES = (2.5, 5.0, 10.0, 20.0)  # configs 16-31 (NB, WB, SWB, FB)


def opus_frame_duration_ms(packet: bytes) -> float:
    """Duration of an Opus packet in milliseconds, from its TOC byte (and frame count byte).

    Raises ValueError for an empty or malformed packet."""
    if not packet:
        raise ValueError("An empty packet has no TOC byte.")
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        frame_ms = _SILK_SIZES[config % 4]
    elif config < 16:
        frame_ms = _HYBRID_SIZES[config % 2]
    else:
        frame_ms = _CELT_SIZES[config % 4]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            raise ValueError("An Opus code 3 packet needs a frame count byte.")
        frames = packet[1] & 0x3F
        if frames == 0:
            raise ValueError("An Opus code 3 packet with zero frames is invalid.")
    return frame_ms * frames

"""Ogg demuxing to raw Opus packets, the unit Discord's voice protocol carries.

``OggOpusReader`` turns an Ogg/Opus byte stream (what ffmpeg writes, or an .ogg/.opus file read
in process) into Opus packets and drops the ``OpusHead``/``OpusTags`` header packets (discord.py's
FFmpegOpusAudio sends those as audio: two undecodable frames and 40 ms of delay at every track
start). The input may be hostile: what it may cost is bounded as ``limits`` says.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from .limits import (
    OPUS_MAX_BYTES_PER_FRAME,
    OPUS_MAX_PACKET_BYTES,
    WorkMeter,
    check_opus_packet,
    packet_too_long,
    progress_of,
)

log = logging.getLogger("red.music.audio.ogg")

CAPTURE_PATTERN = b"OggS"
_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, seqno, crc, nsegs
HEADER_SIZE = _HEADER.size  # 27

FLAG_CONTINUED = 0x01
FLAG_BOS = 0x02
FLAG_EOS = 0x04

OPUS_HEAD = b"OpusHead"
OPUS_TAGS = b"OpusTags"
_HEADER_MAGICS = (OPUS_HEAD, OPUS_TAGS)

_READ_CHUNK = 4096
_SAMPLES_PER_PACKET_MAX = 120 * 48  # 120 ms at 48 kHz: no packet lasts longer (RFC 6716, R5)

_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes | bytearray | memoryview) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, initial value 0, no final xor).

    zlib computes the reflected CRC-32 of the same polynomial at C speed (~2 ns a byte; the
    pure-Python table loop took ~170 ns): Ogg's CRC is that of the bit-mirrored bytes, mirrored
    back, with zlib's initial and final inversions undone."""
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    reflected = zlib.crc32(data.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int.from_bytes(reflected.to_bytes(4, "little").translate(_BIT_REVERSED), "big")


def page_crc_ok(page: bytes | bytearray) -> bool:
    """True when the CRC stored in a whole page matches its content (the CRC field counts as
    zeros)."""
    stored = struct.unpack_from("<I", page, 22)[0]
    mirrored = memoryview(page.translate(_BIT_REVERSED))
    crc = zlib.crc32(mirrored[:22], 0xFFFFFFFF)
    crc = zlib.crc32(b"\0\0\0\0", crc)
    crc = zlib.crc32(mirrored[26:], crc) ^ 0xFFFFFFFF
    return int.from_bytes(crc.to_bytes(4, "little").translate(_BIT_REVERSED), "big") == stored


class OggOpusReader:
    """Read Opus packets from an Ogg stream (a pipe or a file opened in binary mode).

    Iterating yields audio packets only; it ends at end of file. What is played: the first
    logical stream whose beginning-of-stream page holds an OpusHead, by serial number: the pages
    of every other logical stream (a second Opus stream, video, Vorbis) are skipped without being
    assembled. A chained stream (a new beginning-of-stream page after the one played has had
    pages of its own) is the next link: its first Opus stream is played from then on. Without
    any beginning-of-stream page (joined mid-stream) the first serial seen is played.

    Robustness:

    * bytes that are not a page (garbage, a truncated page) are skipped by searching for the next
      capture pattern; a page found that way must pass its CRC before it is trusted (pages read
      in sequence are not CRC-checked: ffmpeg's own output mostly);
    * a packet whose start was lost (resync, a page missing in the sequence) is dropped, never
      glued to unrelated data;
    * the OpusTags packet (which cover art can make megabytes long) is skipped as it is read,
      never buffered;
    * packets that end before the stream's start (negative granule positions, left by an input
      seek in copy mode) are dropped, unless ``drop_preroll`` is False;
    * limits (see ``limits``): a packet larger than Opus allows, or more pages, resync attempts
      and empty packets than the input's size warrants, end the iteration with
      ``MediaLimitError``.
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
        self._buf = bytearray()
        self._eof = False
        self._meter = WorkMeter("Ogg pages, resync attempts and empty packets", progress_of(self))
        # The logical stream played (its serial number), None until one is picked.
        self._serial: int | None = None
        self._bos_seen = False  # from the first BOS page on, streams are picked at theirs only
        self._had_pages = False  # the stream played had pages after its BOS page
        self._expect_tags = False  # its next page starts with the OpusTags packet
        self._pre_skip = 0
        self._last_seqno: int | None = None
        self._partial: bytearray | None = None  # the packet in progress
        self._skipping = False  # the packet in progress is skipped (OpusTags, or a lost start)
        self.pages_read = 0
        self.bytes_read = 0
        self.bytes_skipped = 0
        self.packets_dropped = 0
        self.preroll_dropped = 0
        self.packets_out = 0

    @property
    def serial(self) -> int | None:
        """The serial number of the logical stream played (None until one is picked)."""
        return self._serial

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
            self.bytes_read += len(chunk)
            self._buf += chunk
        return len(self._buf) >= size

    def _skip(self, count: int) -> None:
        del self._buf[:count]
        self.bytes_skipped += count

    def _next_page(self) -> tuple[int, int, int, int, int, int, bool] | None:
        """(flags, granule, serial, seqno, nsegs, page size, resynced) of the next valid page,
        whose bytes start the buffer (not consumed); None at EOF."""
        resynced = False
        while True:
            if not self._fill(HEADER_SIZE):
                if self._buf:
                    self.bytes_skipped += len(self._buf)
                    self._buf.clear()
                return None
            buf = self._buf
            if not buf.startswith(CAPTURE_PATTERN):
                at = buf.find(CAPTURE_PATTERN, 1)
                # keep up to 3 trailing bytes: they may be the start of a split capture pattern
                self._skip(at if at > 0 else len(buf) - 3)
                resynced = True
                continue
            _, version, flags, granule, serial, seqno, _crc, nsegs = _HEADER.unpack_from(buf)
            if version == 0 and self._fill(HEADER_SIZE + nsegs):
                page_size = HEADER_SIZE + nsegs + sum(self._buf[HEADER_SIZE : HEADER_SIZE + nsegs])
                # (a truncated final page fails here: nothing after it to resync to)
                if self._fill(page_size):
                    if not (resynced or self._verify_all):
                        return flags, granule, serial, seqno, nsegs, page_size, resynced
                    # one step per KiB of CRC: a storm of candidates claiming 64 KB pages
                    # cannot make the checks cost more than the input warrants
                    self._meter.charge(1 + (page_size >> 10))
                    if page_crc_ok(self._buf[:page_size]):
                        return flags, granule, serial, seqno, nsegs, page_size, resynced
            self._meter.charge(1)
            self._skip(1)
            resynced = True

    # -- packets ---------------------------------------------------------------------------------

    def packets(self) -> Iterator[bytes]:
        while True:
            page = self._next_page()
            if page is None:
                self._drop_partial()
                return
            flags, granule, serial, seqno, nsegs, page_size, resynced = page
            self.pages_read += 1
            if resynced:
                self._drop_partial()  # whatever packet was in progress lost its continuation
            if flags & FLAG_BOS:
                self._begin_stream(serial, seqno, nsegs)
            elif serial == self._serial or self._serial is None and not self._bos_seen:
                if self._serial is None:
                    log.debug("joined logical stream %08x mid-stream", serial)
                    self._serial, self._had_pages = serial, True
                packets = self._read_page(flags, granule, seqno, nsegs, page_size)
                if packets:
                    self.packets_out += len(packets)
                    yield from packets
                continue
            # a BOS page, or a page of a logical stream that is not played: no packets
            del self._buf[:page_size]
            self._meter.charge(1)

    def _begin_stream(self, serial: int, seqno: int, nsegs: int) -> None:
        """A beginning-of-stream page (buffered): play its stream if it is Opus and either no
        stream is played yet or this one starts a new link of a chain."""
        self._bos_seen = True
        if self._serial is not None and not self._had_pages:
            return  # grouped with the stream played (a multiplexed file): not played
        # Its first packet must be an OpusHead that ends on this page (RFC 7845).
        size = 0
        for value in self._buf[HEADER_SIZE : HEADER_SIZE + nsegs]:
            size += value
            if value < 255:
                break
        else:
            return
        start = HEADER_SIZE + nsegs
        head = bytes(self._buf[start : start + size])
        if not head.startswith(OPUS_HEAD):
            log.debug("ignoring non-Opus logical stream %08x", serial)
            return
        self._drop_partial()
        self._serial, self._had_pages, self._expect_tags = serial, False, True
        self._pre_skip = struct.unpack_from("<H", head, 10)[0] if len(head) >= 12 else 0
        self._last_seqno = seqno

    def _drop_partial(self) -> None:
        if self._partial is not None:
            self.packets_dropped += 1
        self._partial, self._skipping = None, False

    def _read_page(self, flags: int, granule: int, seqno: int, nsegs: int,
                   page_size: int) -> list[bytes]:
        """Consume a page of the stream played; return the audio packets it completes."""
        buf = self._buf
        lacing = bytes(buf[HEADER_SIZE : HEADER_SIZE + nsegs])
        body = bytes(buf[HEADER_SIZE + nsegs : page_size])
        del buf[:page_size]
        self._had_pages = True
        last = self._last_seqno
        if last is not None and seqno != (last + 1) & 0xFFFFFFFF:
            self._drop_partial()  # a page went missing: the packet in progress is incomplete
        self._last_seqno = seqno
        completed = self._split(flags, lacing, body)
        packets = self._audio(completed, granule) if completed else completed
        if flags & FLAG_EOS:
            self._drop_partial()
        # per page one step, one more per 16 lacing values, one per packet that is not audio
        self._meter.charge(1 + (nsegs >> 4) + len(completed) - len(packets))
        return packets

    def _split(self, flags: int, lacing: bytes, body: bytes) -> list[bytes]:
        """The packets a page's segments complete; keeps the one in progress for the next."""
        partial, skipping = self._partial, self._skipping
        if flags & FLAG_CONTINUED:
            if partial is None and not skipping:
                skipping = True  # the rest of a packet whose start we never saw
                self.packets_dropped += 1
        elif partial is not None or skipping:
            if partial is not None:
                self.packets_dropped += 1  # the page says the old packet never finished
            partial, skipping = None, False
        if self._expect_tags:
            # the page after the OpusHead starts with the OpusTags packet: skip it unbuffered
            self._expect_tags = False
            if not flags & FLAG_CONTINUED and body.startswith(OPUS_TAGS):
                skipping = True
        completed: list[bytes] = []
        start = end = 0
        for value in lacing:
            end += value
            if value == 255:
                continue  # the packet goes on in the next segment (maybe on the next page)
            if skipping:
                skipping = False
            elif partial is not None:
                partial += body[start:end]
                completed.append(bytes(partial))
                partial = None
            else:
                completed.append(body[start:end])
            start = end
        if lacing and lacing[-1] == 255 and not skipping:
            if partial is None:
                partial = bytearray(body[start:])
            else:
                partial += body[start:]
            if len(partial) > OPUS_MAX_PACKET_BYTES:
                self._partial = None
                raise packet_too_long(OPUS_MAX_PACKET_BYTES)
        self._partial, self._skipping = partial, skipping
        return completed

    def _audio(self, packets: list[bytes], granule: int) -> list[bytes]:
        """The audio packets among a page's complete packets, pre-roll dropped."""
        kept = [p for p in packets if p and not p.startswith(_HEADER_MAGICS)]
        for packet in kept:
            if len(packet) > OPUS_MAX_BYTES_PER_FRAME:
                check_opus_packet(packet)
        if len(kept) != len(packets):
            self.packets_dropped += len(packets) - len(kept)
        if not self._drop_preroll or granule == -1 or not kept:
            return kept
        end = granule - self._pre_skip
        if end - len(kept) * _SAMPLES_PER_PACKET_MAX > 0:
            return kept  # even at 120 ms each, every packet ends after the start
        return self._without_preroll(end, kept)

    def _without_preroll(self, end: float, packets: list[bytes]) -> list[bytes]:
        """Drop packets that end before the stream's start.

        ffmpeg copying Opus after an input seek (``-ss`` before ``-i``) starts at the container's
        seek point (for WebM the start of a cluster, seconds early) and marks the packets before
        the requested position with negative timestamps: negative granule positions here. A
        decoder would discard that audio; Discord clients would play it, so it goes. ``end`` is
        where the page's last packet ends (48 kHz samples after the start); earlier packets end
        earlier by the durations of the packets after them."""
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
        # (no zip(strict=...): music/ runs on Python 3.9)
        kept = [packet for index, packet in enumerate(packets) if ends[index] > 0]
        self.preroll_dropped += len(packets) - len(kept)
        return kept


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

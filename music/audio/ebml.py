"""EBML (RFC 8794) and the Matroska pieces ``webm.WebmOpusReader`` reads: element IDs, variable
-length integers, buffered master elements, lacing, and the audio track of a Tracks element.

Every function takes hostile input: integers are validated, a child must fit in its parent, and
each child of a buffered element is a step on the reader's ``limits.WorkMeter``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from typing import BinaryIO, NamedTuple

from .limits import MediaLimitError, WorkMeter

log = logging.getLogger("red.music.audio.webm")

EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # the EBML header's ID: the first four bytes of every WebM file

# Element IDs, written as in the file (length marker included), as Matroska's spec lists them.
EBML = 0x1A45DFA3
DOC_TYPE = 0x4282
SEGMENT = 0x18538067
SEEK_HEAD = 0x114D9B74
INFO = 0x1549A966
TIMECODE_SCALE = 0x2AD7B1
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_TYPE = 0x83
CODEC_ID = 0x86
CODEC_PRIVATE = 0x63A2
CODEC_DELAY = 0x56AA
CONTENT_ENCODINGS = 0x6D80
CONTENT_ENCODING = 0x6240
CONTENT_ENCODING_SCOPE = 0x5032
CONTENT_COMPRESSION = 0x5034
CONTENT_COMP_ALGO = 0x4254
CONTENT_COMP_SETTINGS = 0x4255
CONTENT_ENCRYPTION = 0x5035
CUES = 0x1C53BB6B
SEEK = 0x4DBB
SEEK_ID = 0x53AB
SEEK_POSITION = 0x53AC
CUE_POINT = 0xBB
CUE_TIME = 0xB3
CUE_TRACK_POSITIONS = 0xB7
CUE_TRACK = 0xF7
CUE_CLUSTER_POSITION = 0xF1
TAGS = 0x1254C367
CHAPTERS = 0x1043A770
ATTACHMENTS = 0x1941A469
CLUSTER = 0x1F43B675
TIMECODE = 0xE7
SILENT_TRACKS = 0x5854
POSITION = 0xA7
PREV_SIZE = 0xAB
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
ENCRYPTED_BLOCK = 0xAF
VOID = 0xEC
CRC32 = 0xBF

TRACK_TYPE_AUDIO = 2
OPUS_CODEC_ID = "A_OPUS"
DEFAULT_TIMECODE_SCALE = 1_000_000  # ns per timecode unit: millisecond timecodes
MAX_CODEC_PRIVATE = 64 * 1024

LACING_MASK = 0x06
LACING_XIPH = 0x02
LACING_FIXED = 0x04
LACING_EBML = 0x06

# value of an all-ones size field (= "unknown size") for each length
SIZE_MASKS = tuple((1 << (7 * n)) - 1 for n in range(9))
UNKNOWN = -1
_XIPH_RUN = re.compile(rb"\xff*")  # the 255s of one Xiph-laced size
Frames = Sequence[bytes]  # the packets of one Block

# Read size: what one read1 may return. 16 KB is ~1.3 s of 96 kb/s Opus, so the Python-level read
# calls stay rare, while a reader's buffer stays in the tens of KB (150 of them run at once).
_READ_CHUNK = 16 * 1024
# Elements we skip are read and dropped in pieces of at most this size.
_SKIP_CHUNK = 16 * 1024


class WebmError(ValueError):
    """The input is not a WebM/Matroska file we can read (malformed / hostile)."""


class NotOpusAudio(WebmError):
    """Valid Matroska, but its first audio track is not Opus (or there is no audio track).

    Also raised when that track's frames are stored compressed or encrypted in a way this reader
    does not undo (ffmpeg may still decode them)."""


class WebmLimitError(WebmError, MediaLimitError):
    """The input asks more than any real file does (see ``limits``): refused, not handed to
    ffmpeg."""


class EndOfInput(Exception):
    """The input ended (cleanly between elements, or in the middle of one)."""


def read_vint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode an EBML variable-length size at ``data[pos:end]``: (value or UNKNOWN, length)."""
    if pos >= end:
        raise WebmError("truncated variable-length integer")
    first = data[pos]
    length = 9 - first.bit_length()
    if length > 8:
        raise WebmError("invalid variable-length integer (no length marker in its first byte)")
    if pos + length > end:
        raise WebmError("truncated variable-length integer")
    value = int.from_bytes(data[pos : pos + length], "big") & SIZE_MASKS[length]
    return (UNKNOWN if value == SIZE_MASKS[length] else value), length


def read_id(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode an element ID at ``data[pos:end]``: (ID with its marker, length)."""
    if pos >= end:
        raise WebmError("truncated element ID")
    length = 9 - data[pos].bit_length()
    if length > 4:
        # Matroska's EBMLMaxIDLength is 4: a longer ID (or a zero byte) is not an element
        raise WebmError(f"invalid element ID (first byte {data[pos]:#04x})")
    if pos + length > end:
        raise WebmError("truncated element ID")
    return int.from_bytes(data[pos : pos + length], "big"), length


def id_is_valid(eid: int) -> bool:
    """Whether an ID is well formed (RFC 8794 5.1): its value bits are neither all zeros nor all
    ones, and it uses the shortest length that can hold it. Garbage rarely passes all three."""
    length = (eid.bit_length() + 7) // 8
    value = eid & SIZE_MASKS[length]
    if value == 0 or value == SIZE_MASKS[length]:
        return False
    return length == 1 or value >= SIZE_MASKS[length - 1]


def children(data: bytes, start: int, end: int,
              meter: WorkMeter | None = None) -> Iterator[tuple[int, int, int]]:
    """(id, data start, data end) of each child in a buffered master element's body; each
    child is a step on ``meter``."""
    pos = start
    while pos < end:
        if meter is not None:
            meter.charge(1)
        eid, id_len = read_id(data, pos, end)
        size, size_len = read_vint(data, pos + id_len, end)
        pos += id_len + size_len
        if size == UNKNOWN or size > end - pos:
            raise WebmError(f"element {eid:#x} overruns its parent")
        yield eid, pos, pos + size
        pos += size


def uint(data: bytes, start: int, end: int) -> int:
    if end - start > 8:
        raise WebmError("an unsigned integer element longer than 8 bytes")
    return int.from_bytes(data[start:end], "big")


def ascii_string(data: bytes, start: int, end: int) -> str:
    # EBML strings may be padded with zero bytes
    return data[start:end].rstrip(b"\0").decode("ascii", "replace")


class EbmlInput:
    """A byte stream read element by element: a buffer that holds at most the element being
    parsed plus one read, skips in bounded pieces, and jumps (a seekable stream)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        # read1 returns what is available instead of waiting for a full chunk: on a pipe or a
        # socket a plain buffered read(16384) would hold back a second of audio.
        self._read = getattr(stream, "read1", stream.read)
        # The input is held in an immutable bytes object plus a read offset: slicing it gives
        # the packets directly (one copy). A refill joins the unread tail with what was read, so
        # the buffer never exceeds the element being parsed plus one read.
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self._eof = False
        self._origin = 0  # the stream's position when reading started (our offset 0)
        #: bytes consumed from the stream so far (what its reads returned)
        self.bytes_read = 0

    @property
    def _offset(self) -> int:
        """Stream offset of the next unparsed byte."""
        return self._base + self._pos

    def _fill(self, size: int) -> bool:
        """Make sure ``size`` unparsed bytes are buffered; False if the stream ends before."""
        have = len(self._buf) - self._pos
        if have >= size:
            return True
        if self._eof:
            return False
        parts = [self._buf[self._pos :]] if have else []
        self._base += self._pos
        try:
            while have < size:
                chunk = self._read(max(_READ_CHUNK, size - have))
                if not chunk:
                    self._eof = True
                    break
                self.bytes_read += len(chunk)
                parts.append(chunk)
                have += len(chunk)
        finally:
            # one join per fill: a trickle of tiny reads stays linear
            self._buf = b"".join(parts)
            self._pos = 0
        return have >= size

    def _need(self, size: int) -> None:
        if not self._fill(size):
            raise EndOfInput

    def _skip(self, count: int) -> None:
        """Consume ``count`` bytes without keeping them (they may be far more than we would ever
        buffer: read and drop them in bounded pieces)."""
        have = len(self._buf) - self._pos
        if count <= have:
            self._pos += count
            return
        count -= have
        self._base += len(self._buf)
        self._buf, self._pos = b"", 0
        while count > 0:
            if self._eof:
                raise EndOfInput
            chunk = self._read(min(count, _SKIP_CHUNK))
            if not chunk:
                self._eof = True
                raise EndOfInput
            self.bytes_read += len(chunk)
            if len(chunk) > count:  # a stream that returned more than asked: keep the rest
                self._buf, self._pos = chunk, count
                return
            self._base += len(chunk)
            count -= len(chunk)

    def _take(self, header_len: int, size: int) -> bytes:
        """Consume an element of ``size`` bytes after its header and return its body."""
        self._need(header_len + size)
        start = self._pos + header_len
        body = self._buf[start : start + size]
        self._pos = start + size
        return body

    def _jump(self, offset: int) -> bool:
        """Seek the stream to ``offset`` (ours: from where the reader started) and forget the
        buffer. False, with nothing changed, if the stream's seek fails."""
        try:
            self._stream.seek(self._origin + offset)
        except (OSError, ValueError, OverflowError) as exc:  # a hostile Cue: past any file
            log.debug("seeking to byte %d failed (%s): reading through instead", offset, exc)
            return False
        self._buf, self._pos, self._base, self._eof = b"", 0, offset, False
        return True

    def _jump_back(self, offset: int) -> None:
        if not self._jump(offset):
            raise WebmError(f"could not seek back to byte {offset} after reading the Cues")

    def _header(self) -> tuple[int, int, int]:
        """(ID, size or UNKNOWN, header length) of the element at the read offset; its header
        bytes are buffered (not consumed). EndOfInput if the input ends first."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 12:
            # Near the end of the buffer: ask only for the bytes the header needs, so a live
            # stream is never held waiting for bytes that belong to the next element.
            self._need(1)
            buf, pos = self._buf, self._pos
            id_len = 9 - buf[pos].bit_length()
            if id_len <= 4:
                self._need(id_len + 1)
                buf, pos = self._buf, self._pos
                size_len = 9 - buf[pos + id_len].bit_length()
                if size_len <= 8:
                    self._need(id_len + size_len)
                    buf, pos = self._buf, self._pos
        end = len(buf)
        try:
            eid, id_len = read_id(buf, pos, end)
            size, size_len = read_vint(buf, pos + id_len, end)
        except WebmError as exc:
            raise WebmError(f"{exc} at byte {self._offset}") from None
        return eid, size, id_len + size_len


def timecode_scale(body: bytes, meter: WorkMeter, default: int) -> int:
    """The TimecodeScale of an Info body (ns per timecode unit), else ``default``."""
    scale = default
    for eid, start, end in children(body, 0, len(body), meter):
        if eid == TIMECODE_SCALE:
            scale = uint(body, start, end)
            if scale == 0:
                raise WebmError("TimecodeScale of 0")
    return scale


class AudioTrack(NamedTuple):
    """The audio track a WebM reader plays."""

    number: int
    codec_private: bytes | None  # the OpusHead
    codec_delay_ns: int  # the Opus pre-skip
    prefix: bytes  # header stripping (ContentCompAlgo 3): the bytes removed from each frame


def select_audio_track(body: bytes, meter: WorkMeter) -> AudioTrack:
    """The first audio track of a Tracks body; NotOpusAudio unless it is Opus."""
    for eid, start, end in children(body, 0, len(body), meter):
        if eid != TRACK_ENTRY:
            continue
        number = track_type = 0
        codec = ""
        private: tuple[int, int] | None = None
        delay = 0
        encodings: tuple[int, int] | None = None
        for child, c_start, c_end in children(body, start, end, meter):
            if child == TRACK_NUMBER:
                number = uint(body, c_start, c_end)
            elif child == TRACK_TYPE:
                track_type = uint(body, c_start, c_end)
            elif child == CODEC_ID:
                codec = ascii_string(body, c_start, c_end)
            elif child == CODEC_PRIVATE:
                private = (c_start, c_end)
            elif child == CODEC_DELAY:
                delay = uint(body, c_start, c_end)
            elif child == CONTENT_ENCODINGS:
                encodings = (c_start, c_end)
        if track_type != TRACK_TYPE_AUDIO:
            continue
        if codec != OPUS_CODEC_ID:
            raise NotOpusAudio(f"the audio track's codec is {codec!r}, not Opus")
        if number == 0:
            raise WebmError("the audio track has no TrackNumber")
        codec_private = None
        if private is not None:
            if private[1] - private[0] > MAX_CODEC_PRIVATE:
                raise WebmError("CodecPrivate of excessive size")
            codec_private = body[private[0] : private[1]]
        prefix = b"" if encodings is None else _stripped_header(body, *encodings, meter)
        return AudioTrack(number, codec_private, delay, prefix)
    raise NotOpusAudio("the stream has no audio track")


def _stripped_header(body: bytes, start: int, end: int, meter: WorkMeter) -> bytes:
    """The bytes to put back in front of each frame for ContentEncodings. Only header
    stripping (what mkvmerge once did by default) is undone; zlib/bzip2/LZO compression and
    encryption are left to ffmpeg (NotOpusAudio: the caller transcodes)."""
    prefix = b""
    for eid, e_start, e_end in children(body, start, end, meter):
        if eid != CONTENT_ENCODING:
            continue
        scope = 1
        algo: int | None = None
        settings = b""
        for child, c_start, c_end in children(body, e_start, e_end, meter):
            if child == CONTENT_ENCODING_SCOPE:
                scope = uint(body, c_start, c_end)
            elif child == CONTENT_ENCRYPTION:
                raise NotOpusAudio("the audio track is encrypted")
            elif child == CONTENT_COMPRESSION:
                algo = 0  # ContentCompAlgo's default: zlib
                for item, i_start, i_end in children(body, c_start, c_end, meter):
                    if item == CONTENT_COMP_ALGO:
                        algo = uint(body, i_start, i_end)
                    elif item == CONTENT_COMP_SETTINGS:
                        settings = body[i_start:i_end]
        if not scope & 1 or algo is None:
            continue  # applies to CodecPrivate or other data only, not to the frames
        if algo != 3 or prefix:
            raise NotOpusAudio(f"the audio frames are compressed (ContentCompAlgo {algo})")
        if len(settings) > MAX_CODEC_PRIVATE:
            raise WebmError("ContentCompSettings of excessive size")
        prefix = settings
    return prefix


def delace(buf: bytes, pos: int, end: int, lacing: int) -> list[bytes]:
    """Split a laced block's data (after its flags byte) into frames."""
    if pos >= end:
        raise WebmError("laced block without a frame count")
    count = buf[pos] + 1
    pos += 1
    sizes: list[int] = []
    if lacing == LACING_XIPH:
        run = _XIPH_RUN.match
        for _ in range(count - 1):
            # each size is a run of 255s ended by a smaller byte (the run found in C: a block
            # of 255s costs no Python loop per byte)
            match = run(buf, pos, end)
            ones = match.end() if match else pos  # (it always matches, maybe no byte)
            if ones >= end:
                raise WebmError("truncated Xiph lacing")
            sizes.append(255 * (ones - pos) + buf[ones])
            pos = ones + 1
    elif lacing == LACING_FIXED:
        if (end - pos) % count:
            raise WebmError("fixed-size lacing that does not divide the block")
        sizes = [(end - pos) // count] * (count - 1)
    elif count > 1:  # EBML lacing: the first size, then signed differences to the previous one
        size, length = read_vint(buf, pos, end)
        if size == UNKNOWN:
            raise WebmError("invalid EBML lacing")
        pos += length
        sizes.append(size)
        for _ in range(count - 2):
            raw, length = read_vint(buf, pos, end)
            if raw == UNKNOWN:
                raise WebmError("invalid EBML lacing")
            pos += length
            size += raw - (SIZE_MASKS[length] >> 1)  # signed: biased by half the range
            if size < 0:
                raise WebmError("negative frame size in EBML lacing")
            sizes.append(size)
    frames = []
    for size in sizes:
        if pos + size > end:
            raise WebmError("laced frames overrun their block")
        frames.append(buf[pos : pos + size])
        pos += size
    frames.append(buf[pos:end])  # the last frame takes what is left
    return frames

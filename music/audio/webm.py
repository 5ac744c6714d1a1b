"""WebM (Matroska) demuxing to raw Opus packets, in the bot process.

``WebmOpusReader`` is the WebM twin of ``ogg.OggOpusReader``: it turns the byte stream of a
WebM/Opus file (what YouTube serves for its Opus formats) into the Opus packets Discord carries,
so a passthrough track needs no ffmpeg child that only rewraps packets from WebM into Ogg.

Only what packet extraction needs is parsed: the EBML header (DocType), the Segment, Info
(TimecodeScale), Tracks (the first audio track) and Clusters (SimpleBlock, BlockGroup/Block).
Everything else (Tags, Chapters, Attachments, Void, CRC-32, video blocks...) is read and thrown
away in bounded chunks, never buffered. SeekHead and Cues are read only to start at a position
(``start_ns``) in a seekable stream: they tell which Cluster to jump to.

The input may come from anywhere on the internet, so the parser assumes it can be hostile: every
variable-length integer is validated, a declared size is checked against a bound (and against the
parent element's end) before anything is read or allocated for it, the element tree is walked with
a loop over at most three fixed levels (Segment > Cluster > BlockGroup; no recursion), and every
step consumes input, so truncated or looping input cannot hang it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from .limits import OPUS_MAX_BYTES_PER_FRAME, MediaLimitError, WorkMeter, check_opus_packet
from .ogg import opus_frame_duration_ms
from .webm_cues import pick_clusters

log = logging.getLogger("red.music.audio.webm")

EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # the EBML header's ID: the first four bytes of every WebM file

# Element IDs, written as in the file (length marker included), as Matroska's spec lists them.
_EBML = 0x1A45DFA3
_DOC_TYPE = 0x4282
_SEGMENT = 0x18538067
_SEEK_HEAD = 0x114D9B74
_INFO = 0x1549A966
_TIMECODE_SCALE = 0x2AD7B1
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_TRACK_NUMBER = 0xD7
_TRACK_TYPE = 0x83
_CODEC_ID = 0x86
_CODEC_PRIVATE = 0x63A2
_CODEC_DELAY = 0x56AA
_CONTENT_ENCODINGS = 0x6D80
_CONTENT_ENCODING = 0x6240
_CONTENT_ENCODING_SCOPE = 0x5032
_CONTENT_COMPRESSION = 0x5034
_CONTENT_COMP_ALGO = 0x4254
_CONTENT_COMP_SETTINGS = 0x4255
_CONTENT_ENCRYPTION = 0x5035
_CUES = 0x1C53BB6B
_SEEK = 0x4DBB
_SEEK_ID = 0x53AB
_SEEK_POSITION = 0x53AC
_CUE_POINT = 0xBB
_CUE_TIME = 0xB3
_CUE_TRACK_POSITIONS = 0xB7
_CUE_TRACK = 0xF7
_CUE_CLUSTER_POSITION = 0xF1
_TAGS = 0x1254C367
_CHAPTERS = 0x1043A770
_ATTACHMENTS = 0x1941A469
_CLUSTER = 0x1F43B675
_TIMECODE = 0xE7
_SILENT_TRACKS = 0x5854
_POSITION = 0xA7
_PREV_SIZE = 0xAB
_SIMPLE_BLOCK = 0xA3
_BLOCK_GROUP = 0xA0
_BLOCK = 0xA1
_ENCRYPTED_BLOCK = 0xAF
_VOID = 0xEC
_CRC32 = 0xBF

TRACK_TYPE_AUDIO = 2
OPUS_CODEC_ID = "A_OPUS"
DEFAULT_TIMECODE_SCALE = 1_000_000  # ns per timecode unit: millisecond timecodes

# Elements a Segment may hold. An unknown-size Cluster ends at the first element that is not one
# of its children; that element then belongs to the Segment.
_SEGMENT_CHILDREN = frozenset(
    {_SEEK_HEAD, _INFO, _TRACKS, _CUES, _TAGS, _CHAPTERS, _ATTACHMENTS, _CLUSTER, _VOID, _CRC32}
)
_CLUSTER_CHILDREN = frozenset(
    {_TIMECODE, _SILENT_TRACKS, _POSITION, _PREV_SIZE, _SIMPLE_BLOCK, _BLOCK_GROUP,
     _ENCRYPTED_BLOCK, _VOID, _CRC32}
)

# Bounds on what is ever held in memory at once. Real values are far smaller: an EBML header is
# ~40 bytes, Tracks a few hundred, an Opus block at most a few KB, an OpusHead 19 bytes (more with
# a channel mapping table).
MAX_EBML_HEADER = 64 * 1024
MAX_BUFFERED_ELEMENT = 1024 * 1024  # Info, Tracks, one Block of the audio track
MAX_CODEC_PRIVATE = 64 * 1024
# Cues are read whole to pick a Cluster; larger ones are not trusted and the reader scans instead.
# ffmpeg writes ~17 bytes per 5 s Cluster, YouTube about as much per Cluster: 4 MiB is days.
MAX_CUES = 4 * 1024 * 1024

# Read size: what one read1 may return. 16 KB is ~1.3 s of 96 kb/s Opus, so the Python-level read
# calls stay rare, while a reader's buffer stays in the tens of KB (150 of them run at once).
_READ_CHUNK = 16 * 1024
# Elements we skip are read and dropped in pieces of at most this size.
_SKIP_CHUNK = 16 * 1024

_LACING_MASK = 0x06
_LACING_XIPH = 0x02
_LACING_FIXED = 0x04
_LACING_EBML = 0x06

# value of an all-ones size field (= "unknown size") for each length
_SIZE_MASKS = tuple((1 << (7 * n)) - 1 for n in range(9))
_UNKNOWN = -1
_NO_LIMIT = 1 << 64  # beyond any stream offset
_CUES_ID_BYTES = _CUES.to_bytes(4, "big")  # a SeekID naming the Cues

_Frames = Sequence[bytes]  # the packets of one Block
# A SimpleBlock the fast path takes: its 4 header bytes and a packet of at most 1,277 bytes,
# within every Opus limit whatever its TOC says (limits.check_opus_packet)
_FAST_BLOCK_MAX = 4 + OPUS_MAX_BYTES_PER_FRAME
_XIPH_RUN = re.compile(rb"\xff*")  # the 255s of one Xiph-laced size


class WebmError(ValueError):
    """The input is not a WebM/Matroska file we can read (malformed / hostile)."""


class NotOpusAudio(WebmError):
    """Valid Matroska, but its first audio track is not Opus (or there is no audio track).

    Also raised when that track's frames are stored compressed or encrypted in a way this reader
    does not undo (ffmpeg may still decode them)."""


class WebmLimitError(WebmError, MediaLimitError):
    """The input asks more than any real file does (see ``limits``): refused, not handed to
    ffmpeg."""


class _EndOfStream(Exception):
    """The input ended (cleanly between elements, or in the middle of one)."""


def _read_vint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode an EBML variable-length size at ``data[pos:end]``: (value or _UNKNOWN, length)."""
    if pos >= end:
        raise WebmError("truncated variable-length integer")
    first = data[pos]
    length = 9 - first.bit_length()
    if length > 8:
        raise WebmError("invalid variable-length integer (no length marker in its first byte)")
    if pos + length > end:
        raise WebmError("truncated variable-length integer")
    value = int.from_bytes(data[pos : pos + length], "big") & _SIZE_MASKS[length]
    return (_UNKNOWN if value == _SIZE_MASKS[length] else value), length


def _read_id(data: bytes, pos: int, end: int) -> tuple[int, int]:
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


def _id_is_valid(eid: int) -> bool:
    """Whether an ID is well formed (RFC 8794 5.1): its value bits are neither all zeros nor all
    ones, and it uses the shortest length that can hold it. Garbage rarely passes all three."""
    length = (eid.bit_length() + 7) // 8
    value = eid & _SIZE_MASKS[length]
    if value == 0 or value == _SIZE_MASKS[length]:
        return False
    return length == 1 or value >= _SIZE_MASKS[length - 1]


def _children(data: bytes, start: int, end: int,
              meter: WorkMeter | None = None) -> Iterator[tuple[int, int, int]]:
    """(id, data start, data end) of each child in a buffered master element's body; each
    child is a step on ``meter``."""
    pos = start
    while pos < end:
        if meter is not None:
            meter.charge(1)
        eid, id_len = _read_id(data, pos, end)
        size, size_len = _read_vint(data, pos + id_len, end)
        pos += id_len + size_len
        if size == _UNKNOWN or size > end - pos:
            raise WebmError(f"element {eid:#x} overruns its parent")
        yield eid, pos, pos + size
        pos += size


def _uint(data: bytes, start: int, end: int) -> int:
    if end - start > 8:
        raise WebmError("an unsigned integer element longer than 8 bytes")
    return int.from_bytes(data[start:end], "big")


def _string(data: bytes, start: int, end: int) -> str:
    # EBML strings may be padded with zero bytes
    return data[start:end].rstrip(b"\0").decode("ascii", "replace")


class WebmOpusReader:
    """Read the Opus packets of a WebM/Matroska stream (a file, a pipe or an HTTP response).

    Iterating yields the packets of the first audio track, in stream order, one per Block frame
    (laced blocks give several). It ends at the end of the input. Errors:

    * ``NotOpusAudio`` when the Tracks element is read (before any packet) if the first audio
      track is not Opus or there is no audio track;
    * ``WebmError`` for anything else we cannot read: not EBML, a DocType other than webm or
      matroska, a Cluster before Tracks, invalid integers, sizes over our bounds or past their
      parent's end, garbage. After packets were yielded it still ends the iteration this way:
      those packets stay valid;
    * the input ending in the middle of an element is not an error once the Tracks were read:
      the partial element is dropped and iteration ends (a dropped connection is handled below
      this reader, which sees one continuous stream). Before that it is a ``WebmError``.

    ``start_ns`` starts the track at a position (a seek, a resume): every audio packet that ends
    at or before it is dropped (counted in ``packets_skipped``). A packet starts at (its Cluster's
    Timecode + its Block's relative timecode) * TimecodeScale - CodecDelay (as ffmpeg's -ss), and
    lasts what its Opus TOC says (a packet whose TOC is unreadable counts as dropped when it
    starts before ``start_ns``); the packets of a laced Block follow one another. Dropping ends
    at the first packet kept: timestamps only grow in a well-formed file, and a hostile one
    cannot make the reader drop a whole stream it has started to play.

    When the stream is seekable (``seekable()`` returns True, and ``seek``/``tell`` work), the
    reader jumps instead of reading through: at the first Cluster it takes the Cues (an element
    met before that Cluster, as YouTube writes them, or the one the SeekHead points to, as
    ffmpeg writes them at the end of the file), picks the last CuePoint at or before
    ``start_ns`` (of the audio track if any CuePoint names it, else of any track; see
    ``webm_cues``) and seeks to its Cluster, which must start with a Cluster header whose
    Timecode is not after ``start_ns`` (else the Cues lie and the reader goes back to the first
    Cluster). Muxers write audio ahead of a video keyframe, into the Cluster before it (mkvmerge
    and GStreamer up to 80 ms): when the first audio packet of the Cluster jumped to starts
    after ``start_ns``, the packet that covers it is in an earlier Cluster, so the reader jumps
    again, to the CuePoint before (at most two more), then to the first Cluster. ``seeked_to``
    is the stream offset of the Cluster it read from (also when the Cues name the first one,
    where the parse already was), None when it read through. Without Cues (or with Cues that are larger than ``MAX_CUES``,
    malformed, or lead nowhere valid), or when a seek raises OSError, it reads through from the
    first Cluster: the same packets, more bytes. Either way the first packet is the first one
    that ends after ``start_ns``: seeking and reading through give the same packets.

    Limits (see ``limits``): a packet larger than Opus allows for its frames, or more
    elements, skipped blocks and empty frames than the input's size warrants, end the
    iteration with ``WebmLimitError`` (a ``WebmError``).
    """

    def __init__(self, stream: BinaryIO, *, start_ns: int = 0) -> None:
        if start_ns < 0:
            raise ValueError("start_ns must not be negative")
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
        self._iterator: Iterator[bytes] | None = None
        self._prefix = b""  # header stripping (ContentCompAlgo 3): bytes removed from each frame
        #: the OpusHead from the audio track's CodecPrivate
        self.codec_private: bytes | None = None
        #: CodecDelay of the audio track (the Opus pre-skip, in ns)
        self.codec_delay_ns = 0
        #: ns per timecode unit
        self.timecode_scale = DEFAULT_TIMECODE_SCALE
        #: bytes consumed from the stream so far (what its reads returned)
        self.bytes_read = 0
        #: TrackNumber of the audio track, once Tracks was read
        self.track_number: int | None = None
        #: blocks of other tracks (video etc.) skipped
        self.blocks_skipped = 0
        #: where the packets start (ns): earlier ones are dropped
        self.start_ns = start_ns
        #: audio packets dropped because they end at or before ``start_ns``
        self.packets_skipped = 0
        #: stream offset of the Cluster the Cues led to, or None (no seek: read through)
        self.seeked_to: int | None = None
        self._dropping = start_ns > 0  # until the first packet is kept
        self._want_seek = False  # a seekable stream whose first Cluster is not reached yet
        self._origin = 0  # the stream's position when the reader started (our offset 0)
        self._cluster_timecode = 0  # Timecode of the Cluster being read (while dropping)
        self._block_timecode = 0  # relative timecode of the last audio Block (while dropping)
        self._cues_seen = False  # a Cues element was met before the first Cluster
        self._cue_targets: list[int] = []  # from those Cues: segment-relative Cluster positions
        self._cues_position: int | None = None  # from the SeekHead: segment-relative
        # after a jump by the Cues: Clusters to try, earlier ones first, if the first audio
        # packet read where it landed starts after start_ns (stream offsets; the last one is
        # the first Cluster)
        self._earlier: list[int] = []
        self._check_landing = False  # the next audio Block read is the first after a jump
        self._segment_end: int | None = None  # of the Segment the Cues belong to
        #: audio packets yielded so far
        self.packets_out = 0
        self._meter = WorkMeter("EBML elements, skipped blocks and empty frames",
                                lambda: (self.bytes_read, self.packets_out))

    def __iter__(self) -> Iterator[bytes]:
        return self.packets()

    def packets(self) -> Iterator[bytes]:
        # one parse per reader: a second call continues where the first one is, instead of
        # parsing from the middle of the stream as if it were the start
        if self._iterator is None:
            self._iterator = self._packets()
        return self._iterator

    def _packets(self) -> Iterator[bytes]:
        if self._dropping:
            self._want_seek = self._can_seek()
        try:
            yield from self._demux()
        except _EndOfStream:
            if self.track_number is None:
                raise WebmError("the stream ended before its Tracks element") from None
        except WebmError:
            raise
        except MediaLimitError as exc:  # from limits: a WebmError to our callers
            raise WebmLimitError(str(exc)) from None

    def _can_seek(self) -> bool:
        stream = self._stream
        seekable = getattr(stream, "seekable", None)
        tell = getattr(stream, "tell", None)
        if seekable is None or tell is None or not hasattr(stream, "seek"):
            return False
        try:
            if seekable() is not True:
                return False
            origin = tell()
        except (OSError, ValueError):
            return False
        if not isinstance(origin, int) or origin < 0:
            return False
        self._origin = origin
        return True

    # -- byte handling ---------------------------------------------------------------------------

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
            raise _EndOfStream

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
                raise _EndOfStream
            chunk = self._read(min(count, _SKIP_CHUNK))
            if not chunk:
                self._eof = True
                raise _EndOfStream
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
        """(ID, size or _UNKNOWN, header length) of the element at the read offset; its header
        bytes are buffered (not consumed). _EndOfStream if the input ends first."""
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
            eid, id_len = _read_id(buf, pos, end)
            size, size_len = _read_vint(buf, pos + id_len, end)
        except WebmError as exc:
            raise WebmError(f"{exc} at byte {self._offset}") from None
        return eid, size, id_len + size_len

    # -- structure -------------------------------------------------------------------------------

    def _demux(self) -> Iterator[bytes]:
        while True:
            self._read_ebml_header()
            eid, size, header_len = self._header()
            while eid in (_VOID, _CRC32) and size != _UNKNOWN:
                self._skip(header_len + size)
                eid, size, header_len = self._header()
            if eid != _SEGMENT:
                raise WebmError(f"expected a Segment after the EBML header, found {eid:#x}")
            self._skip(header_len)
            # a live stream's Segment has an unknown size: it lasts to the end of the stream
            segment_start = self._offset  # SeekPosition and CueClusterPosition count from here
            segment_end = None if size == _UNKNOWN else segment_start + size
            yield from self._segment(segment_start, segment_end)
            # after the Segment: the end, or another EBML stream chained to this one
            if not self._fill(1):
                return
            if not self._fill(4) or self._buf[self._pos : self._pos + 4] != EBML_MAGIC:
                raise WebmError(f"unexpected data after the Segment, at byte {self._offset}")
            # A chained stream brings its own Tracks (and NotOpusAudio if they are not Opus);
            # track_number keeps the old value until then, so truncation there ends cleanly.

    def _read_ebml_header(self) -> None:
        if not self._fill(4) or self._buf[self._pos : self._pos + 4] != EBML_MAGIC:
            raise WebmError("not a WebM/Matroska stream (no EBML header)")
        _, size, header_len = self._header()
        if size == _UNKNOWN or size > MAX_EBML_HEADER:
            raise WebmError("EBML header of unknown or excessive size")
        body = self._take(header_len, size)
        doc_type = None
        for eid, start, end in _children(body, 0, len(body), self._meter):
            if eid == _DOC_TYPE:
                doc_type = _string(body, start, end)
        if doc_type not in ("webm", "matroska"):
            raise WebmError(f"unsupported EBML DocType {doc_type!r}")

    def _segment(self, segment_start: int, segment_end: int | None) -> Iterator[bytes]:
        """Yield the audio packets of one Segment. Returns at the Segment's end, or, in an
        unknown-size Segment, where a new EBML stream starts."""
        self._cues_seen, self._cue_targets, self._cues_position = False, [], None
        # Where we are: in the Segment, in a Cluster, or in a BlockGroup of that Cluster. Ends are
        # stream offsets; None is an unknown size (Segment and Cluster only).
        in_cluster = in_group = False
        cluster_end: int | None = None
        group_end = 0
        tracks_seen = False
        header = self._header
        fast_track = -1  # first byte of the audio track's number in a block, once known
        fast_limit = 0  # the stream offset a block must end by: the Cluster's or Segment's end
        meter = self._meter
        while True:
            if in_cluster and not in_group:
                # The fast path, for what nearly every element of an Opus WebM is: a SimpleBlock
                # of the audio track, size in 1 or 2 bytes, unlaced, wholly buffered, inside its
                # Cluster. Anything else (or any doubt) takes the general path below.
                buf, pos = self._buf, self._pos
                if len(buf) - pos > 8 and buf[pos] == _SIMPLE_BLOCK:
                    size_first = buf[pos + 1]
                    if 0x80 < size_first < 0xFF:
                        start, size = pos + 2, size_first & 0x7F
                    elif 0x40 <= size_first < 0x7F:
                        start, size = pos + 3, (size_first & 0x3F) << 8 | buf[pos + 2]
                    else:
                        start = size = 0
                    end = start + size
                    if (
                        4 < size <= _FAST_BLOCK_MAX
                        and end <= len(buf)
                        and self._base + end <= fast_limit
                        and buf[start] == fast_track
                        and not buf[start + 3] & _LACING_MASK
                    ):
                        self._pos = end
                        self.packets_out += 1
                        yield buf[start + 4 : end]
                        continue
            # every element the fast path does not take is a step (see limits)
            meter.steps += 1
            if meter.steps > meter.limit:
                meter.recheck()
            at = self._base + self._pos
            if in_group and at >= group_end:
                in_group = False
            if in_cluster and cluster_end is not None and at >= cluster_end:
                in_cluster = False
            if segment_end is not None and at >= segment_end:
                return
            eid, size, header_len = header()

            # the innermost known end that this element must fit in
            if in_group:
                limit: int | None = group_end
            elif in_cluster and cluster_end is not None:
                limit = cluster_end
            else:
                limit = segment_end
            if size == _UNKNOWN:
                element_end = None
            else:
                element_end = at + header_len + size
                if limit is not None and element_end > limit:
                    raise WebmError(f"element {eid:#x} at byte {at} overruns its parent")

            if in_cluster:
                if eid == _SIMPLE_BLOCK and not in_group or eid == _BLOCK and in_group:
                    if size == _UNKNOWN:
                        raise WebmError(f"block of unknown size at byte {at}")
                    frames = self._block(header_len, size)
                    if self._dropping and frames:
                        if self._check_landing and self._landed_late() and self._jump_earlier():
                            in_cluster = in_group = False
                            continue  # parse the Cluster jumped to
                        frames = self._drop_early(frames)
                        if not self._dropping:
                            fast_track = self._fast_track()
                    if frames:
                        self.packets_out += len(frames)
                        yield from frames
                    continue
                if eid == _TIMECODE and not in_group and self._dropping and size != _UNKNOWN:
                    if size > 8:
                        raise WebmError(f"Cluster Timecode of {size} bytes at byte {at}")
                    body = self._take(header_len, size)
                    self._cluster_timecode = _uint(body, 0, size)
                    continue
                if in_group:
                    self._skip_child(eid, size, header_len, at)
                    continue
                if eid == _BLOCK_GROUP:
                    if size == _UNKNOWN:
                        raise WebmError(f"BlockGroup of unknown size at byte {at}")
                    self._skip(header_len)
                    in_group, group_end = True, at + header_len + size
                    continue
                if eid in _CLUSTER_CHILDREN or cluster_end is not None:
                    self._skip_child(eid, size, header_len, at)
                    continue
                # An unknown-size Cluster ends at the first element that is not its child:
                # that element is the Segment's next one.
                in_cluster = False

            if eid == _CLUSTER:
                if not tracks_seen:
                    raise WebmError("a Cluster came before the Tracks element")
                if self._want_seek:
                    # the first Cluster: jump to the one the Cues name for start_ns, if any
                    self._want_seek = False
                    if self._seek_by_cues(at, segment_start, segment_end):
                        continue  # the read offset changed: parse the element found there
                self._skip(header_len)
                in_cluster, cluster_end = True, element_end
                fast_limit = _NO_LIMIT if element_end is None else element_end
                if segment_end is not None:
                    fast_limit = min(fast_limit, segment_end)
                self._cluster_timecode = 0
                fast_track = self._fast_track()
            elif eid == _TRACKS:
                if size == _UNKNOWN or size > MAX_BUFFERED_ELEMENT:
                    raise WebmError(f"Tracks element of unknown or excessive size ({size})")
                body = self._take(header_len, size)
                if not tracks_seen:  # a second Tracks element is not allowed: ignore it
                    self._select_track(body)
                    tracks_seen = True
            elif eid == _INFO:
                if size == _UNKNOWN or size > MAX_BUFFERED_ELEMENT:
                    raise WebmError(f"Info element of unknown or excessive size ({size})")
                self._read_info(self._take(header_len, size))
            elif eid == _EBML and segment_end is None:
                return  # a live stream chained a new EBML stream; _demux reads it
            elif (
                self._want_seek
                and eid == _SEEK_HEAD
                and size != _UNKNOWN
                and size <= MAX_BUFFERED_ELEMENT
            ):
                self._read_seek_head(self._take(header_len, size))
            elif self._want_seek and eid == _CUES and size != _UNKNOWN and tracks_seen:
                # Cues before the Clusters (YouTube's DASH WebM): read them as they pass
                self._cues_seen = True
                if size <= MAX_CUES:
                    self._cue_targets = self._pick_clusters(self._take(header_len, size))
                else:
                    self._skip(header_len + size)
            elif eid in _SEGMENT_CHILDREN or (eid > 0xFFFFFF and _id_is_valid(eid)):
                # Cues, Tags, SeekHead...; or an element unknown to us with a top-level
                # (4-byte) ID, which the spec says to skip. Shorter unknown IDs here are garbage.
                if size == _UNKNOWN:
                    raise WebmError(f"element {eid:#x} of unknown size at byte {at}")
                self._skip(header_len + size)
            else:
                raise WebmError(f"unexpected element {eid:#x} at byte {at}")

    def _fast_track(self) -> int:
        """The first byte of the audio track's number in a block, for the fast path; -1 (no
        fast path) when blocks need more than slicing: a long track number, header stripping,
        or packets still being dropped before ``start_ns``."""
        number = self.track_number or 0
        if 0 < number < 0x7F and not self._prefix and not self._dropping:
            return 0x80 | number
        return -1

    def _drop_early(self, frames: _Frames) -> _Frames:
        """The frames of an audio Block from the first one that ends after ``start_ns`` on."""
        # minus CodecDelay (the Opus pre-skip): the decoder drops that much of the first
        # packet's output, so a packet is heard that much earlier than its timestamp; ffmpeg's
        # -ss drops by the same times, so both paths start a position at the same packet
        start = ((self._cluster_timecode + self._block_timecode) * self.timecode_scale
                 - self.codec_delay_ns)
        for index, frame in enumerate(frames):
            try:
                end = start + round(opus_frame_duration_ms(frame) * 1_000_000)
                keep = end > self.start_ns
            except ValueError:
                end, keep = start, start >= self.start_ns  # unknown duration
            if keep:
                self._dropping = False
                return frames[index:]
            self.packets_skipped += 1
            start = end
        return ()

    # -- seeking with the Cues -------------------------------------------------------------------

    def _read_seek_head(self, body: bytes) -> None:
        """Note where the SeekHead says the Cues are (Segment-relative). A malformed SeekHead
        is ignored, as it was when it was skipped unread."""
        try:
            for eid, start, end in _children(body, 0, len(body), self._meter):
                if eid != _SEEK:
                    continue
                seek_id, position = b"", None
                for child, c_start, c_end in _children(body, start, end, self._meter):
                    if child == _SEEK_ID:
                        seek_id = body[c_start:c_end]
                    elif child == _SEEK_POSITION:
                        position = _uint(body, c_start, c_end)
                if seek_id == _CUES_ID_BYTES and position is not None:
                    if self._cues_position is None:
                        self._cues_position = position
        except WebmError as exc:
            log.debug("ignoring a malformed SeekHead: %s", exc)

    def _pick_clusters(self, body: bytes) -> list[int]:
        """Segment-relative positions of the Clusters the Cues name for start_ns, best first
        (see ``webm_cues.pick_clusters``)."""
        return pick_clusters(body, self.start_ns, self.timecode_scale, self.track_number)

    def _seek_by_cues(self, at: int, segment_start: int, segment_end: int | None) -> bool:
        """At the first Cluster (its header at ``at``, buffered, not consumed): go to the Cluster
        the Cues name for start_ns. Returns True when the read offset changed (the caller parses
        the element there), False when the parse goes on at ``at`` as if nothing happened."""
        targets = self._cue_targets
        moved = False
        if not targets and not self._cues_seen and self._cues_position is not None:
            # the Cues are elsewhere (ffmpeg: after the last Cluster): fetch them
            if not self._jump(segment_start + self._cues_position):
                return False
            moved = True
            targets = self._read_cues(segment_end)
        if targets:
            cluster_at = segment_start + targets[0]
            # where to go if the audio there starts too late: earlier Clusters, then the first
            self._earlier = [segment_start + t for t in targets[1:]
                             if at < segment_start + t < cluster_at] + [at]
            self._segment_end = segment_end
            if cluster_at == at:
                if moved:
                    self._jump_back(at)
                self.seeked_to = at
                return moved
            if (segment_end is None or cluster_at < segment_end) and self._jump(cluster_at):
                moved = True
                if self._cluster_starts_in_time(cluster_at, segment_end):
                    self.seeked_to = cluster_at
                    self._check_landing = True
                    return True
                log.debug("the Cues point at byte %d, where no fitting Cluster starts: "
                          "reading through instead", cluster_at)
        if moved:
            self._jump_back(at)
        return moved

    def _read_cues(self, segment_end: int | None) -> list[int]:
        """Read the Cues element at the read offset and pick Clusters (see _pick_clusters)."""
        try:
            eid, size, header_len = self._header()
            if eid != _CUES or size == _UNKNOWN or size > MAX_CUES:
                log.debug("no usable Cues where the SeekHead points (%#x, %d bytes)", eid, size)
                return []
            if segment_end is not None and self._offset + header_len + size > segment_end:
                return []
            return self._pick_clusters(self._take(header_len, size))
        except (_EndOfStream, WebmError) as exc:
            log.debug("the Cues could not be read: %s", exc or "the stream ended")
            return []

    def _landed_late(self) -> bool:
        """At the first audio Block after a jump by the Cues: whether it starts after start_ns
        (then the packet that covers start_ns is in an earlier Cluster: muxers write audio
        ahead of a video keyframe, into the Cluster before its own)."""
        self._check_landing = False
        start = ((self._cluster_timecode + self._block_timecode) * self.timecode_scale
                 - self.codec_delay_ns)
        return start > self.start_ns

    def _jump_earlier(self) -> bool:
        """Jump to the next earlier Cluster to try (see _earlier). False, reading on where the
        parse is, when none is left or the seek fails."""
        moved = False
        while self._earlier:
            target = self._earlier.pop(0)
            last_resort = not self._earlier  # the first Cluster: reading through from there
            if not self._jump(target):
                if moved:
                    raise WebmError(f"could not seek back to byte {target}")
                return False
            moved = True
            if last_resort or self._cluster_starts_in_time(target, self._segment_end):
                self.seeked_to = None if last_resort else target
                self._check_landing = not last_resort
                return True
        return moved

    def _cluster_starts_in_time(self, at: int, segment_end: int | None) -> bool:
        """Whether a Cluster header is at the read offset (``at``), fits in the Segment and has
        a Timecode (its first child, where muxers write it) not after start_ns. Consumes
        nothing."""
        try:
            eid, size, header_len = self._header()
            if eid != _CLUSTER:
                return False
            end_at = at + header_len + size
            if size != _UNKNOWN and segment_end is not None and end_at > segment_end:
                return False
            self._fill(header_len + 10)  # a Timecode element takes at most 10 bytes
            buf, pos = self._buf, self._pos + header_len
            end = len(buf) if size == _UNKNOWN else min(len(buf), pos + size)
            child, id_len = _read_id(buf, pos, end)
            child_size, size_len = _read_vint(buf, pos + id_len, end)
            start = pos + id_len + size_len
            if child != _TIMECODE or child_size == _UNKNOWN or start + child_size > end:
                return False
            return _uint(buf, start, start + child_size) * self.timecode_scale <= self.start_ns
        except (_EndOfStream, WebmError):
            return False

    def _skip_child(self, eid: int, size: int, header_len: int, at: int) -> None:
        """Skip an element inside a Cluster or BlockGroup that we do not need."""
        if size == _UNKNOWN:
            raise WebmError(f"element {eid:#x} of unknown size at byte {at}")
        if eid not in _CLUSTER_CHILDREN and not _id_is_valid(eid):
            raise WebmError(f"invalid element ID {eid:#x} at byte {at}")
        self._skip(header_len + size)

    def _read_info(self, body: bytes) -> None:
        for eid, start, end in _children(body, 0, len(body), self._meter):
            if eid == _TIMECODE_SCALE:
                scale = _uint(body, start, end)
                if scale == 0:
                    raise WebmError("TimecodeScale of 0")
                self.timecode_scale = scale

    def _select_track(self, body: bytes) -> None:
        """Pick the first audio track from a Tracks body; NotOpusAudio unless it is Opus."""
        self.codec_private, self.codec_delay_ns, self._prefix = None, 0, b""
        for eid, start, end in _children(body, 0, len(body), self._meter):
            if eid != _TRACK_ENTRY:
                continue
            number = track_type = 0
            codec = ""
            private: tuple[int, int] | None = None
            delay = 0
            encodings: tuple[int, int] | None = None
            for child, c_start, c_end in _children(body, start, end, self._meter):
                if child == _TRACK_NUMBER:
                    number = _uint(body, c_start, c_end)
                elif child == _TRACK_TYPE:
                    track_type = _uint(body, c_start, c_end)
                elif child == _CODEC_ID:
                    codec = _string(body, c_start, c_end)
                elif child == _CODEC_PRIVATE:
                    private = (c_start, c_end)
                elif child == _CODEC_DELAY:
                    delay = _uint(body, c_start, c_end)
                elif child == _CONTENT_ENCODINGS:
                    encodings = (c_start, c_end)
            if track_type != TRACK_TYPE_AUDIO:
                continue
            if codec != OPUS_CODEC_ID:
                raise NotOpusAudio(f"the audio track's codec is {codec!r}, not Opus")
            if number == 0:
                raise WebmError("the audio track has no TrackNumber")
            if private is not None:
                if private[1] - private[0] > MAX_CODEC_PRIVATE:
                    raise WebmError("CodecPrivate of excessive size")
                self.codec_private = body[private[0] : private[1]]
            self._prefix = b"" if encodings is None else self._stripped_header(body, *encodings)
            self.codec_delay_ns = delay
            self.track_number = number
            return
        raise NotOpusAudio("the stream has no audio track")

    def _stripped_header(self, body: bytes, start: int, end: int) -> bytes:
        """The bytes to put back in front of each frame for ContentEncodings. Only header
        stripping (what mkvmerge once did by default) is undone; zlib/bzip2/LZO compression and
        encryption are left to ffmpeg (NotOpusAudio: the caller transcodes)."""
        prefix = b""
        for eid, e_start, e_end in _children(body, start, end, self._meter):
            if eid != _CONTENT_ENCODING:
                continue
            scope = 1
            algo: int | None = None
            settings = b""
            for child, c_start, c_end in _children(body, e_start, e_end, self._meter):
                if child == _CONTENT_ENCODING_SCOPE:
                    scope = _uint(body, c_start, c_end)
                elif child == _CONTENT_ENCRYPTION:
                    raise NotOpusAudio("the audio track is encrypted")
                elif child == _CONTENT_COMPRESSION:
                    algo = 0  # ContentCompAlgo's default: zlib
                    for item, i_start, i_end in _children(body, c_start, c_end, self._meter):
                        if item == _CONTENT_COMP_ALGO:
                            algo = _uint(body, i_start, i_end)
                        elif item == _CONTENT_COMP_SETTINGS:
                            settings = body[i_start:i_end]
            if not scope & 1 or algo is None:
                continue  # applies to CodecPrivate or other data only, not to the frames
            if algo != 3 or prefix:
                raise NotOpusAudio(f"the audio frames are compressed (ContentCompAlgo {algo})")
            if len(settings) > MAX_CODEC_PRIVATE:
                raise WebmError("ContentCompSettings of excessive size")
            prefix = settings
        return prefix

    # -- blocks ----------------------------------------------------------------------------------

    def _block(self, header_len: int, size: int) -> _Frames:
        """Consume a SimpleBlock/Block; return its frames if it is the audio track's (other
        tracks' blocks are skipped). The hot path, once per packet: no generator, no per-byte
        loop for the usual unlaced block."""
        if size > MAX_BUFFERED_ELEMENT or len(self._buf) - self._pos < header_len + size:
            # Not buffered yet: look at the track number first, so that another track's block
            # (a video frame: up to megabytes) is dropped as it is read, never buffered whole.
            self._need(header_len + min(size, 8))
            start = self._pos + header_len
            track, _ = _read_vint(self._buf, start, min(len(self._buf), start + size))
            if track != self.track_number:
                self.blocks_skipped += 1
                self._skip(header_len + size)
                return ()
            if size > MAX_BUFFERED_ELEMENT:
                raise WebmError(f"an audio block of {size} bytes")
            self._need(header_len + size)  # a truncated final block raises _EndOfStream
        buf = self._buf
        start = self._pos + header_len
        end = start + size
        self._pos = end
        if start >= end:
            raise WebmError("empty block")
        first = buf[start]
        if first & 0x80:  # one-byte track number: every real file
            track, start = first & 0x7F, start + 1
        else:
            track, length = _read_vint(buf, start, end)
            start += length
        if track != self.track_number:
            self.blocks_skipped += 1
            return ()
        # then a 16-bit relative timecode and the flags byte
        if start + 3 > end:
            raise WebmError("block shorter than its header")
        if self._dropping:
            timecode = buf[start] << 8 | buf[start + 1]
            self._block_timecode = timecode - 0x10000 if timecode & 0x8000 else timecode
        lacing = buf[start + 2] & _LACING_MASK
        start += 3
        prefix = self._prefix
        if not lacing:
            if start == end:
                return ()  # an empty frame is no Opus packet (the Ogg reader drops them too)
            packet = prefix + buf[start:end] if prefix else buf[start:end]
            if len(packet) > OPUS_MAX_BYTES_PER_FRAME:
                check_opus_packet(packet)
            return (packet,)
        laced = _delace(buf, start, end, lacing)
        if not prefix:
            packets = [frame for frame in laced if frame]
            if end - start > OPUS_MAX_BYTES_PER_FRAME:
                for packet in packets:
                    if len(packet) > OPUS_MAX_BYTES_PER_FRAME:
                        check_opus_packet(packet)
        else:
            packets = []
            for frame in laced:
                if frame:
                    # one by one: 256 frames with a long prefix must not all be built first
                    packet = prefix + frame
                    if len(packet) > OPUS_MAX_BYTES_PER_FRAME:
                        check_opus_packet(packet)
                    packets.append(packet)
        if len(packets) < len(laced):
            self._meter.charge(len(laced) - len(packets))  # a step per empty frame
        return packets


def _delace(buf: bytes, pos: int, end: int, lacing: int) -> list[bytes]:
    """Split a laced block's data (after its flags byte) into frames."""
    if pos >= end:
        raise WebmError("laced block without a frame count")
    count = buf[pos] + 1
    pos += 1
    sizes: list[int] = []
    if lacing == _LACING_XIPH:
        run = _XIPH_RUN.match
        for _ in range(count - 1):
            # each size is a run of 255s ended by a smaller byte (the run found in C: a block
            # of 255s costs no Python loop per byte)
            ones = run(buf, pos, end).end()
            if ones >= end:
                raise WebmError("truncated Xiph lacing")
            sizes.append(255 * (ones - pos) + buf[ones])
            pos = ones + 1
    elif lacing == _LACING_FIXED:
        if (end - pos) % count:
            raise WebmError("fixed-size lacing that does not divide the block")
        sizes = [(end - pos) // count] * (count - 1)
    elif count > 1:  # EBML lacing: the first size, then signed differences to the previous one
        size, length = _read_vint(buf, pos, end)
        if size == _UNKNOWN:
            raise WebmError("invalid EBML lacing")
        pos += length
        sizes.append(size)
        for _ in range(count - 2):
            raw, length = _read_vint(buf, pos, end)
            if raw == _UNKNOWN:
                raise WebmError("invalid EBML lacing")
            pos += length
            size += raw - (_SIZE_MASKS[length] >> 1)  # signed: biased by half the range
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

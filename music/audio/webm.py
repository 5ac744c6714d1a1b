"""WebM (Matroska) demuxing to raw Opus packets, in the bot process.

``WebmOpusReader`` is the WebM twin of ``ogg.OggOpusReader``: it turns the byte stream of a
WebM/Opus file (what YouTube serves for its Opus formats) into the Opus packets Discord carries,
so a passthrough track needs no ffmpeg child that only rewraps packets from WebM into Ogg.

Only what packet extraction needs is parsed: the EBML header (DocType), the Segment, Info
(TimecodeScale), Tracks (the first audio track) and Clusters (SimpleBlock, BlockGroup/Block).
Everything else (Tags, Chapters, Attachments, Void, CRC-32, video blocks...) is read and thrown
away in bounded chunks, never buffered. SeekHead and Cues are read only to start at a position
(``start_ns``) in a seekable stream: they tell which Cluster to jump to (``webm_seek``). The EBML
primitives, the byte input and the Tracks parsing are in ``ebml``.

The input may come from anywhere on the internet, so the parser assumes it can be hostile: every
variable-length integer is validated, a declared size is checked against a bound (and against the
parent element's end) before anything is read or allocated for it, the element tree is walked with
a loop over at most three fixed levels (Segment > Cluster > BlockGroup; no recursion), and every
step consumes input, so truncated or looping input cannot hang it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import BinaryIO

from .ebml import (
    ATTACHMENTS,
    BLOCK,
    BLOCK_GROUP,
    CHAPTERS,
    CLUSTER,
    CRC32,
    CUES,
    DEFAULT_TIMECODE_SCALE,
    DOC_TYPE,
    EBML,
    EBML_MAGIC,
    ENCRYPTED_BLOCK,
    INFO,
    LACING_MASK,
    POSITION,
    PREV_SIZE,
    SEEK_HEAD,
    SEGMENT,
    SILENT_TRACKS,
    SIMPLE_BLOCK,
    TAGS,
    TIMECODE,
    TRACKS,
    UNKNOWN,
    VOID,
    AudioTrack,
    EndOfInput,
    Frames,
    NotOpusAudio,
    WebmError,
    WebmLimitError,
    ascii_string,
    children,
    delace,
    id_is_valid,
    read_vint,
    select_audio_track,
    timecode_scale,
    uint,
)
from .limits import (
    OPUS_MAX_BYTES_PER_FRAME,
    MediaLimitError,
    WorkMeter,
    check_opus_packet,
    progress_of,
)
from .webm_seek import MAX_CUES, StartAtPosition

__all__ = ["EBML_MAGIC", "MAX_BUFFERED_ELEMENT", "MAX_CUES", "NotOpusAudio", "WebmError",
           "WebmLimitError", "WebmOpusReader"]

log = logging.getLogger("red.music.audio.webm")


# Elements a Segment may hold. An unknown-size Cluster ends at the first element that is not one
# of its children; that element then belongs to the Segment.
_SEGMENT_CHILDREN = frozenset(
    {SEEK_HEAD, INFO, TRACKS, CUES, TAGS, CHAPTERS, ATTACHMENTS, CLUSTER, VOID, CRC32}
)
_CLUSTER_CHILDREN = frozenset(
    {TIMECODE, SILENT_TRACKS, POSITION, PREV_SIZE, SIMPLE_BLOCK, BLOCK_GROUP,
     ENCRYPTED_BLOCK, VOID, CRC32}
)

# Bounds on what is ever held in memory at once. Real values are far smaller: an EBML header is
# ~40 bytes, Tracks a few hundred, an Opus block at most a few KB, an OpusHead 19 bytes (more with
# a channel mapping table).
MAX_EBML_HEADER = 64 * 1024
MAX_BUFFERED_ELEMENT = 1024 * 1024  # Info, Tracks, one Block of the audio track

_NO_LIMIT = 1 << 64  # beyond any stream offset

# A SimpleBlock the fast path takes: its 4 header bytes and a packet of at most 1,277 bytes,
# within every Opus limit whatever its TOC says (limits.check_opus_packet)
_FAST_BLOCK_MAX = 4 + OPUS_MAX_BYTES_PER_FRAME


class WebmOpusReader(StartAtPosition):
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
    ``webm_seek``) and seeks to its Cluster, which must start with a Cluster header whose
    Timecode is not after ``start_ns`` (else the Cues lie and the reader goes back to the first
    Cluster). Muxers write audio ahead of a video keyframe, into the Cluster before it (mkvmerge
    and GStreamer up to 80 ms): when the first audio packet of the Cluster jumped to starts
    after ``start_ns``, the packet that covers it is in an earlier Cluster, so the reader jumps
    again, to the CuePoint before (at most two more), then to the first Cluster. ``seeked_to``
    is the stream offset of the Cluster it read from (also when the Cues name the first one,
    where the parse already was), None when it read through. Without Cues (or with Cues that
    are larger than ``MAX_CUES``, malformed, or lead nowhere valid), or when a seek raises
    OSError, it reads through from the first Cluster: the same packets, more bytes. Either way the first packet is the first one
    that ends after ``start_ns``: seeking and reading through give the same packets.

    Limits (see ``limits``): a packet larger than Opus allows for its frames, or more
    elements, skipped blocks and empty frames than the input's size warrants, end the
    iteration with ``WebmLimitError`` (a ``WebmError``).
    """

    def __init__(self, stream: BinaryIO, *, start_ns: int = 0) -> None:
        super().__init__(stream, start_ns)
        self._iterator: Iterator[bytes] | None = None
        self._prefix = b""  # header stripping (ContentCompAlgo 3): bytes removed from each frame
        #: the OpusHead from the audio track's CodecPrivate
        self.codec_private: bytes | None = None
        #: CodecDelay of the audio track (the Opus pre-skip, in ns)
        self.codec_delay_ns = 0
        #: ns per timecode unit
        self.timecode_scale = DEFAULT_TIMECODE_SCALE
        #: TrackNumber of the audio track, once Tracks was read
        self.track_number: int | None = None
        #: blocks of other tracks (video etc.) skipped
        self.blocks_skipped = 0
        #: audio packets yielded so far
        self.packets_out = 0
        self._meter = WorkMeter("EBML elements, skipped blocks and empty frames", progress_of(self))

    def __iter__(self) -> Iterator[bytes]:
        return self.packets()

    def close(self) -> None:
        """Stop the parse. A parse left suspended (a track stopped before its end) is a
        generator whose frame refers to this reader, which refers to it: a reference cycle
        that only a full garbage collection would free."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            iterator.close()  # type: ignore[attr-defined]

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
        except EndOfInput:
            if self.track_number is None:
                raise WebmError("the stream ended before its Tracks element") from None
        except WebmError:
            raise
        except MediaLimitError as exc:  # from limits: a WebmError to our callers
            raise WebmLimitError(str(exc)) from None

    # -- structure -------------------------------------------------------------------------------

    def _demux(self) -> Iterator[bytes]:
        while True:
            self._read_ebml_header()
            eid, size, header_len = self._header()
            while eid in (VOID, CRC32) and size != UNKNOWN:
                self._skip(header_len + size)
                eid, size, header_len = self._header()
            if eid != SEGMENT:
                raise WebmError(f"expected a Segment after the EBML header, found {eid:#x}")
            self._skip(header_len)
            # a live stream's Segment has an unknown size: it lasts to the end of the stream
            segment_start = self._offset  # SeekPosition and CueClusterPosition count from here
            segment_end = None if size == UNKNOWN else segment_start + size
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
        if size == UNKNOWN or size > MAX_EBML_HEADER:
            raise WebmError("EBML header of unknown or excessive size")
        body = self._take(header_len, size)
        doc_type = None
        for eid, start, end in children(body, 0, len(body), self._meter):
            if eid == DOC_TYPE:
                doc_type = ascii_string(body, start, end)
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
                if len(buf) - pos > 8 and buf[pos] == SIMPLE_BLOCK:
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
                        and not buf[start + 3] & LACING_MASK
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
            if size == UNKNOWN:
                element_end = None
            else:
                element_end = at + header_len + size
                if limit is not None and element_end > limit:
                    raise WebmError(f"element {eid:#x} at byte {at} overruns its parent")

            if in_cluster:
                if eid == SIMPLE_BLOCK and not in_group or eid == BLOCK and in_group:
                    if size == UNKNOWN:
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
                if eid == TIMECODE and not in_group and self._dropping and size != UNKNOWN:
                    if size > 8:
                        raise WebmError(f"Cluster Timecode of {size} bytes at byte {at}")
                    body = self._take(header_len, size)
                    self._cluster_timecode = uint(body, 0, size)
                    continue
                if in_group:
                    self._skip_child(eid, size, header_len, at)
                    continue
                if eid == BLOCK_GROUP:
                    if size == UNKNOWN:
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

            if eid == CLUSTER:
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
            elif eid == TRACKS:
                if size == UNKNOWN or size > MAX_BUFFERED_ELEMENT:
                    raise WebmError(f"Tracks element of unknown or excessive size ({size})")
                body = self._take(header_len, size)
                if not tracks_seen:  # a second Tracks element is not allowed: ignore it
                    self._use_track(select_audio_track(body, self._meter))
                    tracks_seen = True
            elif eid == INFO:
                if size == UNKNOWN or size > MAX_BUFFERED_ELEMENT:
                    raise WebmError(f"Info element of unknown or excessive size ({size})")
                self.timecode_scale = timecode_scale(self._take(header_len, size), self._meter,
                                                     self.timecode_scale)
            elif eid == EBML and segment_end is None:
                return  # a live stream chained a new EBML stream; _demux reads it
            elif (
                self._want_seek
                and eid == SEEK_HEAD
                and size != UNKNOWN
                and size <= MAX_BUFFERED_ELEMENT
            ):
                self._read_seek_head(self._take(header_len, size))
            elif self._want_seek and eid == CUES and size != UNKNOWN and tracks_seen:
                # Cues before the Clusters (YouTube's DASH WebM): read them as they pass
                self._cues_seen = True
                if size <= MAX_CUES:
                    self._cue_targets = self._pick_clusters(self._take(header_len, size))
                else:
                    self._skip(header_len + size)
            elif eid in _SEGMENT_CHILDREN or (eid > 0xFFFFFF and id_is_valid(eid)):
                # Cues, Tags, SeekHead...; or an element unknown to us with a top-level
                # (4-byte) ID, which the spec says to skip. Shorter unknown IDs here are garbage.
                if size == UNKNOWN:
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

    def _use_track(self, track: AudioTrack) -> None:
        self.track_number, self.codec_private, self.codec_delay_ns, self._prefix = track

    def _skip_child(self, eid: int, size: int, header_len: int, at: int) -> None:
        """Skip an element inside a Cluster or BlockGroup that we do not need."""
        if size == UNKNOWN:
            raise WebmError(f"element {eid:#x} of unknown size at byte {at}")
        if eid not in _CLUSTER_CHILDREN and not id_is_valid(eid):
            raise WebmError(f"invalid element ID {eid:#x} at byte {at}")
        self._skip(header_len + size)

    # -- blocks ----------------------------------------------------------------------------------

    def _block(self, header_len: int, size: int) -> Frames:
        """Consume a SimpleBlock/Block; return its frames if it is the audio track's (other
        tracks' blocks are skipped). The hot path, once per packet: no generator, no per-byte
        loop for the usual unlaced block."""
        if size > MAX_BUFFERED_ELEMENT or len(self._buf) - self._pos < header_len + size:
            # Not buffered yet: look at the track number first, so that another track's block
            # (a video frame: up to megabytes) is dropped as it is read, never buffered whole.
            self._need(header_len + min(size, 8))
            start = self._pos + header_len
            track, _ = read_vint(self._buf, start, min(len(self._buf), start + size))
            if track != self.track_number:
                self.blocks_skipped += 1
                self._skip(header_len + size)
                return ()
            if size > MAX_BUFFERED_ELEMENT:
                raise WebmError(f"an audio block of {size} bytes")
            self._need(header_len + size)  # a truncated final block raises EndOfInput
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
            track, length = read_vint(buf, start, end)
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
        lacing = buf[start + 2] & LACING_MASK
        start += 3
        prefix = self._prefix
        if not lacing:
            if start == end:
                return ()  # an empty frame is no Opus packet (the Ogg reader drops them too)
            packet = prefix + buf[start:end] if prefix else buf[start:end]
            if len(packet) > OPUS_MAX_BYTES_PER_FRAME:
                check_opus_packet(packet)
            return (packet,)
        laced = delace(buf, start, end, lacing)
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



"""Starting a WebM at a position (``webm.WebmOpusReader``'s ``start_ns``): the Cues, the jump, the
check of where it landed, and the packets dropped before the position.

Cues can hold hundreds of thousands of CuePoints (up to ``MAX_CUES`` bytes are read), and a
CuePoint costs about a microsecond of Python to look at, so large Cues are not walked: CuePoints
are found with one regular expression for the layout every muxer we know writes (ffmpeg,
mkvmerge, GStreamer, YouTube: a CuePoint whose CueTime is followed by a CueTrackPositions that
starts with CueTrack and CueClusterPosition; unsigned integers with one-byte sizes, the two
master elements of any size), and a bisection on the byte offset finds the latest one at or
before the start, as muxers write CuePoints in time order: about 22 regex searches for 4 MiB.
Cues of at most ``SCAN_ALL`` bytes are scanned whole instead (any order, and the audio track's
CuePoints preferred). CuePoints in another layout are not seen: with none seen, the reader
reads through, which always gives the right packets.

Nothing here is trusted: the reader checks the Cluster it jumps to (its Timecode, then the
first audio packet read there) and falls back to an earlier candidate, then to reading through.
"""

from __future__ import annotations

import logging
import re
from typing import BinaryIO

from .ebml import (
    CLUSTER,
    CUES,
    SEEK,
    SEEK_ID,
    SEEK_POSITION,
    TIMECODE,
    UNKNOWN,
    EbmlInput,
    EndOfInput,
    Frames,
    WebmError,
    children,
    read_id,
    read_vint,
    uint,
)
from .limits import WorkMeter
from .ogg import opus_frame_duration_ms

log = logging.getLogger("red.music.audio.webm")

# Cues are read whole to pick a Cluster; larger ones are not trusted and the reader scans instead.
# ffmpeg writes ~17 bytes per 5 s Cluster, YouTube about as much per Cluster: 4 MiB is days.
MAX_CUES = 4 * 1024 * 1024
_CUES_ID_BYTES = CUES.to_bytes(4, "big")  # a SeekID naming the Cues

# An EBML size of any length (RFC 8794 section 4): the length marker, then the rest.
_ANY_SIZE = (rb"(?:[\x80-\xff]|[\x40-\x7f].|[\x20-\x3f].{2}|[\x10-\x1f].{3}|[\x08-\x0f].{4}"
             rb"|[\x04-\x07].{5}|[\x02-\x03].{6}|\x01.{7})")
# An unsigned integer's size (one byte, 1-8) and value, as one group.
_UINT = rb"(\x81.|\x82.{2}|\x83.{3}|\x84.{4}|\x85.{5}|\x86.{6}|\x87.{7}|\x88.{8})"
CUE_POINT = re.compile(
    rb"\xbb" + _ANY_SIZE + rb"\xb3" + _UINT          # CuePoint, CueTime
    + rb"\xb7" + _ANY_SIZE + rb"\xf7" + _UINT        # CueTrackPositions, CueTrack
    + rb"\xf1" + _UINT,                              # CueClusterPosition
    re.DOTALL,
)
_VALUE_MASKS = tuple((1 << (8 * n)) - 1 for n in range(10))  # drops the size byte in front


SCAN_ALL = 64 * 1024  # ~3,500 CuePoints: a few ms to scan
_SEARCH_WINDOW = 4096  # a bisection step looks this far for the next CuePoint
_LONGEST_MATCH = 64  # the pattern's longest match (two 8-byte sizes, three 9-byte integers)


def _value(field: bytes) -> int:
    return int.from_bytes(field, "big") & _VALUE_MASKS[len(field) - 1]


def pick_clusters(body: bytes, start_ns: int, timecode_scale: int, track: int | None,
                  count: int = 3) -> list[int]:
    """Segment-relative positions of Clusters to start at, best first: the latest CuePoint at or
    before ``start_ns`` (of equal times the smallest position), then the latest ones before it,
    ``count`` at most. Empty when no CuePoint fits. Small Cues prefer ``track``'s CuePoints."""
    limit = start_ns // timecode_scale  # CueTime * scale <= start_ns, in integers
    if len(body) <= SCAN_ALL:
        return _scan_all(body, limit, track, count)
    positions: list[int] = []
    end = len(body)
    for _ in range(2 * count):  # a few more tries: CuePoints of several tracks in one Cluster
        match = _latest(body, limit, end)
        if match is None:
            break
        time, position = _value(match.group(1)), _value(match.group(3))
        if position not in positions:
            positions.append(position)
            if len(positions) == count:
                break
        limit, end = time - 1, match.start()
    return positions


def _latest(body: bytes, limit: int, end: int) -> re.Match[bytes] | None:
    """The last CuePoint starting before ``end`` whose CueTime is at most ``limit``, by
    bisection (CuePoints in time order). Each step halves [lo, hi): at most ~log2(len) steps."""
    lo, hi = 0, end
    found = None
    search = CUE_POINT.search
    while lo < hi:
        mid = (lo + hi) // 2
        match = search(body, mid, min(hi, mid + _SEARCH_WINDOW) + _LONGEST_MATCH)
        if match is None or match.start() >= hi or _value(match.group(1)) > limit:
            hi = mid  # nothing fits from mid on
        else:
            found, lo = match, match.start() + 1
    return found


def _scan_all(body: bytes, limit: int, track: int | None, count: int) -> list[int]:
    """Every CuePoint looked at, in any order (see pick_clusters)."""
    ours: list[tuple[int, int]] = []  # (time, position), latest first, distinct times
    others: list[tuple[int, int]] = []
    for match in CUE_POINT.finditer(body):
        time_field, track_field, position_field = match.groups()
        time = _value(time_field)
        if time > limit:
            continue
        best = ours if _value(track_field) == track else others
        position = _value(position_field)
        if best and time <= best[0][0]:
            if time == best[0][0]:
                if position < best[0][1]:
                    best[0] = (time, position)
                continue
            _offer_earlier(best, time, position, count)
            continue
        best.insert(0, (time, position))
        del best[count:]
    return [position for _, position in (ours or others)]
def _offer_earlier(best: list[tuple[int, int]], time: int, position: int, count: int) -> None:
    """Place a CuePoint earlier than the latest among the runners-up (Cues out of order)."""
    for index in range(1, len(best)):
        if time == best[index][0]:
            if position < best[index][1]:
                best[index] = (time, position)
            return
        if time > best[index][0]:
            best.insert(index, (time, position))
            del best[count:]
            return
    if len(best) < count:
        best.append((time, position))


class StartAtPosition(EbmlInput):
    """How ``webm.WebmOpusReader`` starts at ``start_ns``: the packets before it are dropped, and
    a seekable stream jumps by the Cues (see the reader's docstring). The reader's base class:
    the reader sets the state these methods share (``start_ns``, ``timecode_scale``,
    ``track_number``, the Cues found, where the parse is in time)."""

    timecode_scale: int
    track_number: int | None
    codec_delay_ns: int
    _meter: WorkMeter

    def __init__(self, stream: BinaryIO, start_ns: int) -> None:
        if start_ns < 0:
            raise ValueError("start_ns must not be negative")
        super().__init__(stream)
        #: where the packets start (ns): earlier ones are dropped
        self.start_ns = start_ns
        #: audio packets dropped because they end at or before ``start_ns``
        self.packets_skipped = 0
        #: stream offset of the Cluster the Cues led to, or None (no seek: read through)
        self.seeked_to: int | None = None
        self._dropping = start_ns > 0  # until the first packet is kept
        self._want_seek = False  # a seekable stream whose first Cluster is not reached yet
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

    def _drop_early(self, frames: Frames) -> Frames:
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

    def _read_seek_head(self, body: bytes) -> None:
        """Note where the SeekHead says the Cues are (Segment-relative). A malformed SeekHead
        is ignored, as it was when it was skipped unread."""
        try:
            for eid, start, end in children(body, 0, len(body), self._meter):
                if eid != SEEK:
                    continue
                seek_id, position = b"", None
                for child, c_start, c_end in children(body, start, end, self._meter):
                    if child == SEEK_ID:
                        seek_id = body[c_start:c_end]
                    elif child == SEEK_POSITION:
                        position = uint(body, c_start, c_end)
                if seek_id == _CUES_ID_BYTES and position is not None:
                    if self._cues_position is None:
                        self._cues_position = position
        except WebmError as exc:
            log.debug("ignoring a malformed SeekHead: %s", exc)

    def _pick_clusters(self, body: bytes) -> list[int]:
        """Segment-relative positions of the Clusters the Cues name for start_ns, best first
        (see ``pick_clusters``)."""
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
            if eid != CUES or size == UNKNOWN or size > MAX_CUES:
                log.debug("no usable Cues where the SeekHead points (%#x, %d bytes)", eid, size)
                return []
            if segment_end is not None and self._offset + header_len + size > segment_end:
                return []
            return self._pick_clusters(self._take(header_len, size))
        except (EndOfInput, WebmError) as exc:
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
            if eid != CLUSTER:
                return False
            end_at = at + header_len + size
            if size != UNKNOWN and segment_end is not None and end_at > segment_end:
                return False
            self._fill(header_len + 10)  # a Timecode element takes at most 10 bytes
            buf, pos = self._buf, self._pos + header_len
            end = len(buf) if size == UNKNOWN else min(len(buf), pos + size)
            child, id_len = read_id(buf, pos, end)
            child_size, size_len = read_vint(buf, pos + id_len, end)
            start = pos + id_len + size_len
            if child != TIMECODE or child_size == UNKNOWN or start + child_size > end:
                return False
            return uint(buf, start, start + child_size) * self.timecode_scale <= self.start_ns
        except (EndOfInput, WebmError):
            return False

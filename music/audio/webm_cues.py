"""Picking the Clusters to start a WebM at from its Cues (``webm.WebmOpusReader``'s seek).

Cues can hold hundreds of thousands of CuePoints (up to ``webm.MAX_CUES`` bytes are read), and a
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

import re

# An EBML size of any length (RFC 8794 section 4): the length marker, then the rest.
_ANY_SIZE = (rb"(?:[\x80-\xff]|[\x40-\x7f].|[\x20-\x3f].{2}|[\x10-\x1f].{3}|[\x08-\x0f].{4}"
             rb"|[\x04-\x07].{5}|[\x02-\x03].{6}|\x01.{7})")
# An unsigned integer's size (one byte, 1-8) and value, as one group.
_UINT = rb"(\x81.|\x82.{2}|\x83.{3}|\x84.{4}|\x85.{5}|\x86.{6}|\x87.{7}|\x88.{8})"
_CUE_POINT = re.compile(
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
    search = _CUE_POINT.search
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
    for match in _CUE_POINT.finditer(body):
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

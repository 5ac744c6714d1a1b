"""An MP4 whose index (`moov`) follows its media data (`mdat`), made streamable on the fly.

ffmpeg reads remote input from a pipe (music.audio.pipe_input), and a pipe cannot go back: from
a file laid out ftyp, mdat, moov (what ffmpeg and many encoders write without "fast start")
ffmpeg would read the index at the end and then find no way back to the data. So the cog does
what `qt-faststart` does, while streaming: it reads the `moov` first (Range requests through
the network guard), adds its size to every chunk offset that points into the data it moves
(`stco`, `co64`), and sends ftyp, moov, then the data. Costs: a few small requests to walk the
top-level boxes, and the `moov` (at most ``MAX_MOOV_BYTES``) in memory.

Discord-free: importable and testable without a bot.
"""

from __future__ import annotations

import struct
from typing import Protocol

from ..i18n import _
from .fetch import MediaFetchError

#: The index is held in memory while it is sent; a 3-hour audio file's is well under 4 MiB.
MAX_MOOV_BYTES = 16 * 1024 * 1024
#: Top-level boxes walked before giving up (a real file has a handful).
MAX_TOP_LEVEL_BOXES = 64
#: Boxes that hold other boxes on the way from moov to the chunk offset tables.
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})
READ_SIZE = 64 * 1024


class SeekableInput(Protocol):
    length: int | None

    def read1(self, size: int = ...) -> bytes: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...

    def close(self) -> None: ...


class Mp4IndexError(MediaFetchError):
    """The MP4 cannot be made streamable, in a sentence."""


def _read_exactly(raw: SeekableInput, offset: int, size: int) -> bytes:
    raw.seek(offset)
    data = b""
    while len(data) < size:
        chunk = raw.read1(min(READ_SIZE, size - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def top_level_boxes(raw: SeekableInput, length: int) -> list[tuple[bytes, int, int]]:
    """``(type, offset, size)`` of every top-level box, reading only their headers."""
    boxes: list[tuple[bytes, int, int]] = []
    offset = 0
    while offset < length:
        if len(boxes) >= MAX_TOP_LEVEL_BOXES:
            raise Mp4IndexError(_("That MP4 file has too many parts for me to read."))
        header = _read_exactly(raw, offset, 16)
        if len(header) < 8:
            break
        size, kind = struct.unpack_from(">I4s", header)
        if size == 1 and len(header) == 16:
            size = struct.unpack_from(">Q", header, 8)[0]
        elif size == 0:
            size = length - offset
        if size < 8 or offset + size > length:
            raise Mp4IndexError(_("That MP4 file is damaged (a part runs past its end)."))
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def shift_chunk_offsets(moov: bytearray, moved_from: int, moved_to: int, shift: int) -> None:
    """Add ``shift`` to every chunk offset in ``moov`` (stco/co64 of every track) that lies in
    ``[moved_from, moved_to)``, in place."""
    _walk(moov, 8, len(moov), moved_from, moved_to, shift)


def _walk(data: bytearray, start: int, end: int, low: int, high: int, shift: int) -> None:
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                raise Mp4IndexError(_("That MP4 file's index is damaged."))
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        if size < header or offset + size > end:
            raise Mp4IndexError(_("That MP4 file's index is damaged."))
        if kind in _CONTAINERS:
            _walk(data, offset + header, offset + size, low, high, shift)
        elif kind in (b"stco", b"co64"):
            _shift_table(data, offset + header, offset + size, kind == b"co64", low, high, shift)
        offset += size


def _shift_table(data: bytearray, start: int, end: int, wide: bool, low: int, high: int,
                 shift: int) -> None:
    if start + 8 > end:
        raise Mp4IndexError(_("That MP4 file's index is damaged."))
    count = struct.unpack_from(">I", data, start + 4)[0]
    width, form = (8, ">Q") if wide else (4, ">I")
    if start + 8 + count * width > end:
        raise Mp4IndexError(_("That MP4 file's index is damaged."))
    limit = 2**64 if wide else 2**32
    for at in range(start + 8, start + 8 + count * width, width):
        value = struct.unpack_from(form, data, at)[0]
        if low <= value < high:
            value += shift
            if value >= limit:
                raise Mp4IndexError(_("That MP4 file is too large to be streamed from its end."))
            struct.pack_into(form, data, at, value)


class IndexFirstReader:
    """The bytes of an MP4 laid out ..., mdat, ..., moov, ... as ..., moov', mdat, ...: the
    boxes before the first `mdat`, the `moov` with its chunk offsets shifted, then the rest
    without the `moov`. ``raw`` must know its length and seek (music.audio.fetch does both)."""

    def __init__(self, raw: SeekableInput) -> None:
        length = raw.length
        if not length:
            raise Mp4IndexError(
                _("That MP4 file keeps its index at the end and the site didn't say its size, "
                "so it can't be streamed."))
        self._raw = raw
        boxes = top_level_boxes(raw, length)
        moov = next((b for b in boxes if b[0] == b"moov"), None)
        data = next((b for b in boxes if b[0] == b"mdat"), None)
        if moov is None or data is None:
            raise Mp4IndexError(_("That MP4 file has no index, so I can't play it."))
        _box, moov_at, moov_size = moov
        if moov_size > MAX_MOOV_BYTES:
            raise Mp4IndexError(_("That MP4 file's index is too large for me to read."))
        index = bytearray(_read_exactly(raw, moov_at, moov_size))
        if len(index) != moov_size:
            raise Mp4IndexError(_("That MP4 file ended before its index did."))
        data_at = data[1]
        shift_chunk_offsets(index, data_at, moov_at, moov_size)
        #: what is sent, in order: bytes in memory, or (start, end) ranges of the input
        self._parts: list[bytes | tuple[int, int]] = [(0, data_at), bytes(index),
                                                      (data_at, moov_at),
                                                      (moov_at + moov_size, length)]
        self._position: int | None = None  # where the input is now (None: must seek)

    def read1(self, size: int = READ_SIZE) -> bytes:
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                self._parts.pop(0)
                if part:
                    return part
                continue
            start, end = part
            if start >= end:
                self._parts.pop(0)
                continue
            if self._position != start:
                self._raw.seek(start)
            data = self._raw.read1(min(size, end - start))
            if not data:
                raise Mp4IndexError(_("That MP4 file ended before its size said."))
            self._parts[0] = (start + len(data), end)
            self._position = start + len(data)
            return data
        return b""

    read = read1

    def close(self) -> None:
        self._raw.close()

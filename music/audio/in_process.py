"""Reading a passthrough input without ffmpeg: open it (a file, or music.audio.fetch through the
network guard), recognise its container from the first bytes, and demux WebM or Ogg in Python.

An ffmpeg child costs ~7.6 MB of private memory per stream (its static binary's relocated data
alone is 4 MB), the demuxing about a microsecond per packet. What this module cannot read goes
to ffmpeg (see music.audio.stream): :func:`open_demuxer` says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import BinaryIO, Union, cast

from .fetch import HttpMediaReader, MediaFetchError
from .ogg import CAPTURE_PATTERN, OggOpusReader
from .webm import EBML_MAGIC, WebmOpusReader

log = logging.getLogger("red.music.audio.in_process")

#: an opened input: a local file, or a remote one read over HTTP
MediaInput = Union[HttpMediaReader, BinaryIO]  # noqa: UP007 -- evaluated at runtime (3.9)


def open_input(source: str, *, local: bool, headers: Mapping[str, str] | None,
               proxy: str | None) -> MediaInput:
    """Open the input; raises MediaFetchError or OSError."""
    if local:
        return open(source, "rb")  # noqa: SIM115 -- the stream closes it
    return HttpMediaReader(source, headers=headers, proxy=proxy)


def open_demuxer(raw: MediaInput, start: float) -> tuple[str, Iterable[bytes]] | str:
    """``(container, packets)`` for an input this module demuxes from ``start`` seconds, or why
    ffmpeg must read it instead. Reads the first bytes of ``raw``; the demuxer sees them again.
    A WebM's packets raise NotOpusAudio when its first audio track is not Opus."""
    head = read_head(raw, 4)
    if head == EBML_MAGIC:
        # a later start jumps to the Cluster the file's Cues name (a Range request)
        return "webm", WebmOpusReader(cast(BinaryIO, Prefixed(head, raw)),
                                      start_ns=round(start * 1e9))
    if head == CAPTURE_PATTERN and start == 0:
        return "ogg", OggOpusReader(cast(BinaryIO, Prefixed(head, raw)))
    # other containers, and Ogg from a position (it has no index: ffmpeg bisects)
    return "Ogg from a position" if head == CAPTURE_PATTERN else "not WebM or Ogg"


class Prefixed:
    """A reader that first returns the bytes already read to recognise the container; seeks go
    to the input (WebM's Cues are used when it can seek: files, HttpMediaReader)."""

    def __init__(self, head: bytes, raw: MediaInput) -> None:
        self._head = head
        self._raw = raw
        self._raw_read = getattr(raw, "read1", raw.read)

    def read1(self, size: int = 65536) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._raw_read(size)

    read = read1

    def seekable(self) -> bool:
        seekable = getattr(self._raw, "seekable", None)
        return bool(seekable and seekable())

    def tell(self) -> int:
        return self._raw.tell() - len(self._head)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._head = b""
        return self._raw.seek(offset, whence)


def read_head(raw: MediaInput, size: int) -> bytes:
    read = getattr(raw, "read1", raw.read)
    head = b""
    while len(head) < size:
        chunk = read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


def close_quietly(raw: MediaInput) -> None:
    try:
        raw.close()
    except Exception:
        log.debug("closing an input failed", exc_info=True)


def input_error_text(exc: BaseException) -> str:
    if isinstance(exc, MediaFetchError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return "The file does not exist."
    return f"Reading the track failed: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)

"""Reading a passthrough input without ffmpeg: open it (a file, or music.audio.fetch through the
network guard), recognise its container from the first bytes, and demux WebM or Ogg in Python.

An ffmpeg child costs ~7.6 MB of private memory per stream (its static binary's relocated data
alone is 4 MB), the demuxing about a microsecond per packet. What this module cannot read goes
to ffmpeg (see music.audio.stream): :func:`open_demuxer` says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO, Union, cast

from ..i18n import _
from .fetch import HttpMediaReader, MediaFetchError
from .ogg import CAPTURE_PATTERN, OggOpusReader, opus_frame_duration_ms
from .pipe_input import Prefixed, fetch_error_sentence
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


def open_demuxer(raw: MediaInput, head: bytes, start: float
                 ) -> tuple[str, Iterable[bytes]] | str:
    """``(container, packets)`` for an input this module demuxes from ``start`` seconds, or why
    ffmpeg must read it instead. ``head`` is what was read from ``raw`` already (see
    pipe_input.SNIFF_BYTES); the demuxer sees it again. A WebM's packets raise NotOpusAudio
    when its first audio track is not Opus."""
    if head[:4] == EBML_MAGIC:
        # a later start jumps to the Cluster the file's Cues name (a Range request)
        return "webm", WebmOpusReader(cast(BinaryIO, Prefixed(head, raw)),
                                      start_ns=round(start * 1e9))
    if head[:4] == CAPTURE_PATTERN:
        packets = OggOpusReader(cast(BinaryIO, Prefixed(head, raw)))
        if start > 0:
            # Ogg has no index: read through (ffmpeg would too: it reads remote input from a
            # pipe, where it cannot bisect, and its copy from a position gives no packets there)
            return "ogg", ogg_from(packets, start, opus_pre_skip(head))
        return "ogg", packets
    return "not WebM or Ogg"


def opus_pre_skip(head: bytes) -> int:
    """The pre-skip (samples at 48 kHz) of the OpusHead in an Ogg file's first page, or 0."""
    if len(head) < 27 or head[:4] != CAPTURE_PATTERN:
        return 0
    packet_at = 27 + head[26]
    if head[packet_at:packet_at + 8] != b"OpusHead" or len(head) < packet_at + 12:
        return 0
    return int.from_bytes(head[packet_at + 10:packet_at + 12], "little")


def ogg_from(packets: Iterable[bytes], start: float, pre_skip: int) -> Iterator[bytes]:
    """The packets from the first one that ends after ``start`` seconds, their times counted
    from the start of the stream minus the pre-skip (as ffmpeg's -ss and the WebM reader's
    ``start_ns`` count them)."""
    start_samples = round(start * 48000)
    end = -pre_skip
    iterator = iter(packets)
    for packet in iterator:
        try:
            end += round(opus_frame_duration_ms(packet) * 48)
        except ValueError:
            pass  # not a valid packet: TrackStream's 20 ms check decides what to do with it
        if end > start_samples:
            yield packet
            break
    yield from iterator


def close_demuxer(packets: Iterable[bytes] | None) -> None:
    """End a demuxer's parse where it stopped (see WebmOpusReader.close), on the thread that
    iterated it, so nothing of it waits for the garbage collector."""
    close = getattr(packets, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.debug("closing a demuxer failed", exc_info=True)


def close_quietly(raw: MediaInput) -> None:
    try:
        raw.close()
    except Exception:
        log.debug("closing an input failed", exc_info=True)


def input_error_text(exc: BaseException) -> str:
    if isinstance(exc, MediaFetchError):
        return fetch_error_sentence(str(exc))
    if isinstance(exc, FileNotFoundError):
        return _("The file does not exist.")
    return _("Reading the track failed: {strerror}").format(strerror=exc.strerror or exc) if isinstance(exc, OSError) else str(exc)

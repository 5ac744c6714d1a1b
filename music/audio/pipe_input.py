"""Remote media for ffmpeg through its stdin: ffmpeg never opens a network URL.

ffmpeg's protocol whitelist is not a network policy: HLS, DASH, IMF and concat inputs (and any
demuxer that opens nested URLs) may name `tcp://HOST:PORT` or `httpproxy://HOST:PORT/`, which
connect straight to the address, around the network guard; and a stored or redirected stream
URL could be such a URL itself. So ffmpeg gets no network protocol at all: the cog fetches
every remote byte itself (music.audio.fetch through the guard, which checks each address;
dropped connections resumed with Range), reads HLS playlists itself (music.audio.hls), and a
:class:`PipeFeeder` thread writes the bytes into ffmpeg's stdin, which ffmpeg reads with
``-protocol_whitelist pipe`` and a demuxer allowlist (music.audio.ffmpeg.FORMAT_WHITELIST: no
demuxer that opens other URLs).

The cost: ffmpeg cannot seek a pipe, so a start position in a container the cog does not demux
itself (MP3, AAC, MP4, ...) is reached by reading through from the start (ffmpeg's ``-ss`` on
a pipe drops what comes before), and an MP4 whose index (`moov`) follows its media data is
sent index first (music.audio.mp4_index), since ffmpeg could not go back from the index to
the data.

Discord-free: importable and testable without a bot.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, BinaryIO, Callable, Optional, Protocol, Union, cast

from ..i18n import _
from ..netguard import policy_refusal
from .fetch import HttpMediaReader, MediaFetchError
from .hls import MAX_PLAYLIST_BYTES, HlsError, HlsReader, is_playlist
from .mp4_index import IndexFirstReader

log = logging.getLogger("red.music.audio.pipe_input")

#: Bytes read first to recognise what an input is (an XML manifest may start with a comment).
SNIFF_BYTES = 1024
#: Bytes per write into ffmpeg's stdin.
FEED_CHUNK = 64 * 1024
#: Seconds close() waits for a feeder blocked on the network or on a full pipe.
FEEDER_JOIN_SECONDS = 2.0
#: Bytes read from the end of an Ogg file to find its last page (a page is at most ~64 KiB).
OGG_TAIL_BYTES = 70_000


class Readable(Protocol):
    def read1(self, size: int = ...) -> bytes: ...

    def close(self) -> None: ...


def fetch_error_sentence(text: str) -> str:
    """A fetch error as the user reads it: the network guard's refusal becomes the policy's
    sentence (`I won't fetch ...`), anything else stays as it is (already a sentence)."""
    refusal = policy_refusal(text)
    return refusal.sentence if refusal is not None else text


def sniff(head: bytes) -> str:
    """What the first bytes of an input are: "webm", "ogg", "hls", "dash", "mp4" or "other"."""
    if head[:4] == b"\x1aE\xdf\xa3":
        return "webm"
    if head[:4] == b"OggS":
        return "ogg"
    if is_playlist(head):
        return "hls"
    if head[4:8] == b"ftyp":
        return "mp4"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<") and b"<MPD" in head:
        return "dash"
    return "other"


#: what the cog reads media from: a Readable (HttpMediaReader, HlsReader, ...) or a local file
Source = Union[Readable, BinaryIO]  # noqa: UP007 -- evaluated at runtime (3.9)


def reader_of(raw: Source) -> Callable[[int], bytes]:
    """``raw.read1`` when it has one (a read that returns what is there), else ``raw.read``."""
    read1 = getattr(raw, "read1", None)
    return read1 if read1 is not None else cast(BinaryIO, raw).read


def read_head(raw: Source, size: int) -> bytes:
    """Up to ``size`` bytes from the start of ``raw`` (fewer only at its end)."""
    read = reader_of(raw)
    head = b""
    while len(head) < size:
        chunk = read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


class Prefixed:
    """A reader that first returns the bytes already read to recognise the input; seeks go to
    the input (WebM's Cues are used when it can seek: files, HttpMediaReader)."""

    def __init__(self, head: bytes, raw: Source) -> None:
        self._head = head
        self._raw = raw
        self._raw_read = reader_of(raw)

    def read1(self, size: int = FEED_CHUNK) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._raw_read(size)

    read = read1

    def seekable(self) -> bool:
        seekable = getattr(self._raw, "seekable", None)
        return bool(seekable and seekable())

    def tell(self) -> int:
        # only called when seekable(): a file or an HttpMediaReader, which both tell and seek
        return cast(BinaryIO, self._raw).tell() - len(self._head)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._head = b""
        return cast(BinaryIO, self._raw).seek(offset, whence)

    def close(self) -> None:
        self._raw.close()


@dataclass
class FfmpegInput:
    """What ffmpeg reads on its stdin, and how."""

    #: the bytes (read1/close); the feeder reads it to its end
    reader: Readable
    #: ffmpeg's ``-ss``: where in these bytes the track's position is
    start: float
    #: ffmpeg's ``-f`` when the container is known for sure (None: ffmpeg recognises it, within
    #: the demuxer allowlist)
    input_format: Optional[str] = None  # noqa: UP045 -- dataclass fields are evaluated (3.9)
    #: a live HLS stream (no end, no position)
    live: bool = False
    #: what the input was recognised as (see sniff)
    container: str = "other"
    #: whether reading it to its end means the media ended (its size was announced, or a
    #: finished HLS playlist), not a connection that closed early
    known_end: bool = False


#: -f for what sniff() recognises for sure
_FORMATS = {"webm": "matroska", "ogg": "ogg", "mp4": "mov"}


def open_remote(url: str, *, headers: Mapping[str, str] | None, proxy: str | None
                ) -> tuple[HttpMediaReader, bytes]:
    """Connect to ``url`` through the guard and read its first bytes. The caller closes the
    reader. Raises MediaFetchError."""
    raw = HttpMediaReader(url, headers=headers, proxy=proxy)
    try:
        return raw, read_head(raw, SNIFF_BYTES)
    except BaseException:
        raw.close()
        raise


def ffmpeg_input(raw: HttpMediaReader, head: bytes, *, start: float,
                 headers: Mapping[str, str] | None, proxy: str | None) -> FfmpegInput:
    """The input ffmpeg reads for ``raw`` (already read up to ``head``): the same bytes, or for
    an HLS playlist its segments (``raw`` is then closed). Raises MediaFetchError with a
    sentence for what cannot be played."""
    container = sniff(head)
    if container == "hls":
        body = head + _read_rest(raw, MAX_PLAYLIST_BYTES + 1 - len(head))
        final_url = raw.final_url
        raw.close()
        stream = HlsReader(raw.url, headers=headers, proxy=proxy, start=start,
                           playlist=body, final_url=final_url)
        return FfmpegInput(stream, 0.0 if stream.live else stream.offset, None, stream.live,
                           "hls", known_end=not stream.live)
    if container == "dash":
        raise MediaFetchError(
            _("That link is a DASH manifest, which I can't play; try the page it came from."))
    if container == "mp4" and not _index_first(head):
        # a pipe cannot go back from the index at the end to the data: send the index first
        return FfmpegInput(IndexFirstReader(raw), start, "mov", False, container, known_end=True)
    return FfmpegInput(Prefixed(head, raw), start, _FORMATS.get(container), False, container,
                       known_end=raw.length is not None)


def _read_rest(raw: Readable, limit: int) -> bytes:
    body = b""
    while len(body) < limit:
        data = raw.read1(min(65536, limit - len(body)))
        if not data:
            break
        body += data
    if len(body) >= limit:
        raise HlsError(_("The stream's playlist is too large for me to read."))
    return body


def _index_first(head: bytes) -> bool:
    """Whether an MP4's `moov` (or a fragmented file's `moof`) comes before its `mdat`, judged
    from the top-level boxes in ``head``; True when ``head`` ends before either shows."""
    offset = 0
    while offset + 8 <= len(head):
        size, kind = struct.unpack_from(">I4s", head, offset)
        if kind in (b"moov", b"moof"):
            return True
        if kind == b"mdat":
            return False
        if size == 1:
            if offset + 16 > len(head):
                return True
            size = struct.unpack_from(">Q", head, offset + 8)[0]
        if size < 8:
            return True  # to the end of the file, or damaged: let ffmpeg say
        offset += size
    return True


class RemoteSource:
    """A remote input opened on its first read, i.e. on the feeder's thread (the caller does
    not wait for the connection): what :func:`ffmpeg_input` makes of it (the bytes, or an HLS
    stream's segments). :attr:`length` and :attr:`container` are known once it is open."""

    def __init__(self, url: str, *, headers: Mapping[str, str] | None, proxy: str | None,
                 start: float = 0.0) -> None:
        self.url = url
        self.headers = headers
        self.proxy = proxy
        self.start = start
        self.length: int | None = None
        self.container: str | None = None
        self._input: FfmpegInput | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._raw: HttpMediaReader | None = None

    def read1(self, size: int = FEED_CHUNK) -> bytes:
        if self._input is None:
            self._open()
        assert self._input is not None
        return self._input.reader.read1(size)

    def _open(self) -> None:
        raw = HttpMediaReader(self.url, headers=self.headers, proxy=self.proxy)
        with self._lock:
            if self._closed.is_set():
                raise MediaFetchError(_("The stream was closed."))
            self._raw = raw
        head = read_head(raw, SNIFF_BYTES)
        opened = ffmpeg_input(raw, head, start=self.start, headers=self.headers, proxy=self.proxy)
        self.length, self.container = raw.length, opened.container
        with self._lock:
            self._input = opened
            closed = self._closed.is_set()
        if closed:
            opened.reader.close()

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            raw, opened = self._raw, self._input
        if opened is not None:
            opened.reader.close()
        if raw is not None:
            raw.close()


def duration_from_bitrate(probe_text: str, length: int | None) -> float | None:
    """A duration estimated from the byte length and the bitrate ffmpeg printed, as ffmpeg
    itself does for a file without a length header (it cannot know the length of a pipe)."""
    if not length:
        return None
    match = re.search(r"bitrate: (\d+) kb/s", probe_text) or re.search(
        r"Audio: .*?, (\d+) kb/s", probe_text)
    if match is None or int(match[1]) <= 0:
        return None
    return length * 8 / (int(match[1]) * 1000)


def ogg_duration_from_tail(url: str, *, headers: Mapping[str, str] | None,
                           proxy: str | None, length: int) -> float | None:
    """An Ogg Opus file's duration from its last page's granule position (a Range request for
    the last bytes, as ffmpeg seeks to the end of a file); None if unknown. Assumes the 48 kHz
    granule clock of Opus and ignores the pre-skip (a few milliseconds)."""
    tail_size = min(length, OGG_TAIL_BYTES)
    reader = HttpMediaReader(url, headers=headers, proxy=proxy)
    try:
        reader.seek(length - tail_size)
        tail = read_head(reader, tail_size)
    except MediaFetchError:
        return None
    finally:
        reader.close()
    at = tail.rfind(b"OggS")
    while at >= 0 and at + 14 <= len(tail):
        granule = struct.unpack_from("<q", tail, at + 6)[0]
        if granule >= 0:
            return max(0.0, granule / 48000)
        at = tail.rfind(b"OggS", 0, at)
    return None


class PipeFeeder:
    """Copies an input into ffmpeg's stdin on its own thread, then closes stdin (ffmpeg sees
    the end). ffmpeg exiting early (it had enough, or it was ended) is not an error; the input
    failing is (:attr:`error`, the sentence of a MediaFetchError)."""

    def __init__(self, source: Readable, stdin: IO[bytes], name: str = "music-ffmpeg-feed") -> None:
        self._source = source
        self._stdin = stdin
        self._stopped = threading.Event()
        #: why the input failed (None if it did not)
        self.error: str | None = None
        #: the input was read to its end (not stopped, not failed)
        self.complete = False
        #: bytes written into the pipe
        self.fed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> PipeFeeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                data = self._source.read1(FEED_CHUNK)
                if not data:
                    self.complete = not self._stopped.is_set()
                    break
                if not self._write(data):
                    break  # ffmpeg has gone
        except MediaFetchError as exc:
            if not self._stopped.is_set():
                self.error = fetch_error_sentence(str(exc))
        except OSError as exc:
            if not self._stopped.is_set():
                self.error = _("Reading the track failed: {strerror}").format(strerror=exc.strerror or exc)
        except Exception as exc:  # never let the feeder die silently
            log.exception("feeding ffmpeg failed")
            self.error = _("Reading the track failed: {exc}").format(exc=exc)
        finally:
            _close_quietly(self._stdin)
            _close_quietly(self._source)

    def _write(self, data: bytes) -> bool:
        view = memoryview(data)
        try:
            while view:
                written = self._stdin.write(view)
                if written is None:  # a non-blocking pipe would; ours blocks
                    continue
                view = view[written:]
                self.fed += written
        except (BrokenPipeError, ValueError):
            return False
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """Stop feeding (any thread): ends the input, which wakes a read blocked on the
        network. ffmpeg's stdin is closed by the feeder thread."""
        self._stopped.set()
        _close_quietly(self._source)

    def join(self, timeout: float | None = FEEDER_JOIN_SECONDS) -> None:
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def _close_quietly(thing: object) -> None:
    try:
        thing.close()  # type: ignore[attr-defined]
    except Exception:
        log.debug("closing %r failed", thing, exc_info=True)


class FedByPipe:
    """What a consumer of a PipeFeeder's input offers about it (an ffmpeg child, a shared
    transcoder's job); ``feeder`` is None when nothing is fed (a local file ffmpeg opens)."""

    feeder: PipeFeeder | None

    @property
    def feed_error(self) -> str | None:
        """Why the fed input failed (a sentence), if it did."""
        return self.feeder.error if self.feeder is not None else None

    def stop_feeding(self) -> None:
        """Stop the feeder (it ends its input, waking a read blocked on the network)."""
        if self.feeder is not None:
            self.feeder.stop()

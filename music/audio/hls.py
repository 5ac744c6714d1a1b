"""HLS (m3u8) read by the cog itself, so that ffmpeg never opens a URL (see music.audio.pipe_input).

ffmpeg's HLS demuxer would fetch every playlist, key and segment itself, and a playlist may name
any URL its protocols can open (`tcp://`, `httpproxy://`, ...), which would connect around the
network guard. Here the playlist is read in the bot process, only http(s) links are followed,
each through the guard (music.audio.fetch), and the segments' bytes are handed on in order as
one stream (``HlsReader.read1``) that is piped into ffmpeg's stdin.

What it does:
- a master playlist: picks one rendition: an audio-only variant (the best one up to
  ``AUDIO_BANDWIDTH_CAP``), else the lowest-bandwidth variant; a variant whose audio lives in an
  ``EXT-X-MEDIA`` rendition of its own is read from that rendition's playlist;
- a media playlist: its segments in order, ``EXT-X-MAP`` init sections (sent before the first
  segment that uses them and again whenever they change), ``EXT-X-BYTERANGE``;
- live (no ``EXT-X-ENDLIST``): starts ``LIVE_START_SEGMENTS`` from the end, reloads at the target
  duration (half of it when nothing was new, as RFC 8216 6.3.4 says), ends when the playlist
  has not changed for ``LIVE_STALL_SECONDS``; segments that fail are skipped (a few in a row);
- a start position in a finished (VOD) playlist: skips whole segments by their durations and
  says how far into the first one the position is (``offset``, for ffmpeg's ``-ss``).

What it refuses, with a sentence (:class:`HlsError`): encrypted segments (AES-128,
SAMPLE-AES), I-frame-only playlists, a playlist that points to another list of streams, links
that are not http(s), a segment that is itself a playlist, and anything over its bounds:
``MAX_PLAYLIST_BYTES`` per playlist, ``MAX_ENTRIES`` entries, ``MAX_SEGMENT_BYTES`` per segment,
and at most ``SEGMENT_RATE`` segment requests a second on average (a playlist of empty
segments cannot make it fetch as fast as the network allows). Memory is the current playlist's
entries (bounded by its size) and one read of a segment at a time.

Parsing (and the bounds on what a playlist may hold) is music.audio.hls_playlist. Discord-free
and blocking: use it from one reader thread; :meth:`HlsReader.close` from any.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from ..i18n import _
from .fetch import HttpMediaReader, MediaFetchError
from .hls_playlist import (
    MAX_PLAYLIST_BYTES,
    ByteRange,
    HlsError,
    InitSection,
    MasterPlaylist,
    MediaPlaylist,
    Segment,
    choose_rendition,
    is_playlist,
    parse_playlist,
)

__all__ = ["HlsError", "HlsReader", "MediaPlaylist", "MasterPlaylist", "choose_rendition",
           "is_playlist", "parse_playlist"]

log = logging.getLogger("red.music.audio.hls")

#: Bytes of one segment or init section (6 s of 8 Mb/s video is 6 MB; audio is far less).
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
#: Live playlists: how many segments from the end playback starts (RFC 8216 6.3.3: at least 3
#: target durations from the end).
LIVE_START_SEGMENTS = 3
#: Reload waits are kept within these bounds whatever EXT-X-TARGETDURATION says.
MIN_RELOAD_SECONDS = 1.0
MAX_RELOAD_SECONDS = 20.0
#: A live playlist with nothing new for this long has ended.
LIVE_STALL_SECONDS = 30.0
#: Segments in a row that may fail in a live stream before it counts as lost.
LIVE_SKIPPABLE_FAILURES = 3
#: Average segment requests per second (a bucket of ``SEGMENT_BURST`` refilled at this rate):
#: playback needs one every few seconds; fetching ahead fills ffmpeg's pipe in a burst.
SEGMENT_RATE = 4.0
SEGMENT_BURST = 20
READ_SIZE = 64 * 1024

OpenUrl = Callable[[str], HttpMediaReader]


class HlsReader:
    """The bytes of an HLS stream's segments in order, as one blocking stream (``read1``).

    ``url`` is the playlist's URL (master or media); ``playlist`` its body when the caller has
    already fetched it (``final_url`` the URL it came from after redirects). ``start`` skips
    whole segments of a finished playlist; :attr:`offset` is then how far into the first
    segment the position is. Errors raise :class:`HlsError` or MediaFetchError (a refusal by
    the network guard keeps its text, for music.netguard.policy_refusal).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        proxy: str | None = None,
        start: float = 0.0,
        playlist: bytes | None = None,
        final_url: str | None = None,
        open_url: OpenUrl | None = None,
        min_reload: float = MIN_RELOAD_SECONDS,
        stall_seconds: float = LIVE_STALL_SECONDS,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.proxy = proxy
        self._open_url = open_url or self._default_open
        self.min_reload = min_reload
        self.stall_seconds = stall_seconds
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._current: HttpMediaReader | None = None  # the response being read (close() ends it)
        self._left = 0  # bytes still allowed from the current segment
        self._limit_is_range = False  # _left is the segment's byte range (else the size cap)
        self._checked_head = False
        self._pending: list[Segment] = []
        self._last_sequence: int | None = None
        self._sent_init: InitSection | None = None
        self._playlist_url = url
        self._media: MediaPlaylist | None = None
        self._reload_at = 0.0
        self._last_change = time.monotonic()
        self._tokens = float(SEGMENT_BURST)
        self._tokens_at = time.monotonic()
        self._failures = 0
        #: seconds into the first segment where ``start`` is (ffmpeg's -ss on this stream)
        self.offset = 0.0
        #: whether the playlist is live (no EXT-X-ENDLIST when first read)
        self.live = False
        #: segments fetched so far, and playlist reloads (for tests and status)
        self.segments_fetched = 0
        self.reloads = 0
        self._begin(playlist, final_url or url, max(0.0, start))

    # -- file-like ----------------------------------------------------------------------------

    def read1(self, size: int = READ_SIZE) -> bytes:
        if size is None or size <= 0:
            size = READ_SIZE
        while not self._closed.is_set():
            current = self._current
            if current is not None:
                data = current.read1(min(size, self._left + 1))
                if data:
                    return self._accept(data)
                self._end_current()
                continue
            if not self._next_part():
                return b""
        return b""

    read = read1

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            current.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> HlsReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- playlists ------------------------------------------------------------------------------

    def _default_open(self, url: str) -> HttpMediaReader:
        return HttpMediaReader(url, headers=self.headers, proxy=self.proxy)

    def _fetch_playlist(self, url: str) -> tuple[bytes, str]:
        reader = self._track(self._open_url(url))
        try:
            body = b""
            while len(body) <= MAX_PLAYLIST_BYTES:
                data = reader.read1(READ_SIZE)
                if not data:
                    break
                body += data
            return body, reader.final_url
        finally:
            self._untrack(reader)

    def _begin(self, playlist: bytes | None, final_url: str, start: float) -> None:
        if playlist is None:
            playlist, final_url = self._fetch_playlist(self.url)
        parsed = parse_playlist(playlist, final_url)
        if isinstance(parsed, MasterPlaylist):
            self._playlist_url = choose_rendition(parsed)
            body, final = self._fetch_playlist(self._playlist_url)
            parsed = parse_playlist(body, final)
            if isinstance(parsed, MasterPlaylist):
                raise HlsError(
                    _("The stream's playlist points to another list of streams; "
                    "I follow only one level.")
                )
        else:
            self._playlist_url = final_url
        self.live = not parsed.ended
        segments = parsed.segments
        if self.live:
            segments = segments[-LIVE_START_SEGMENTS:]
        elif start > 0:
            segments = self._skip_to(segments, start)
        self._take(parsed, segments)

    def _skip_to(self, segments: list[Segment], start: float) -> list[Segment]:
        elapsed = 0.0
        for index, segment in enumerate(segments):
            if elapsed + segment.duration > start:
                self.offset = start - elapsed
                return segments[index:]
            elapsed += segment.duration
        return []  # past the end

    def _take(self, playlist: MediaPlaylist, segments: list[Segment]) -> None:
        """Queue the segments not seen yet, and plan the next reload."""
        self._media = playlist
        last = self._last_sequence
        new = [s for s in segments if last is None or s.sequence > last]
        if last is not None and segments and segments[-1].sequence < last:
            # the sequence went back: the server restarted its numbering; play what it has now
            new = segments[-LIVE_START_SEGMENTS:]
        self._pending.extend(new)
        if self._pending:
            self._last_sequence = self._pending[-1].sequence
        now = time.monotonic()
        if new:
            self._last_change = now
        wait = playlist.target_duration if new else playlist.target_duration / 2
        self._reload_at = now + min(MAX_RELOAD_SECONDS, max(self.min_reload, wait))

    def _reload(self) -> bool:
        """Wait for the reload time and read the playlist again; False once the live stream
        has ended (nothing new for ``stall_seconds``) or the reader was closed."""
        while not self._closed.is_set():
            if time.monotonic() - self._last_change >= self.stall_seconds:
                log.debug("HLS playlist unchanged for %.0f s: the stream has ended",
                          self.stall_seconds)
                return False
            if self._closed.wait(max(0.0, self._reload_at - time.monotonic())):
                return False
            try:
                body, final = self._fetch_playlist(self._playlist_url)
            except MediaFetchError as exc:
                if "Refused by network policy" in str(exc) or self._closed.is_set():
                    raise
                # a live playlist that failed once is tried again until it has been quiet
                # for stall_seconds
                log.debug("HLS playlist reload failed (%s); trying again", exc)
                self._reload_at = time.monotonic() + self.min_reload
                continue
            parsed = parse_playlist(body, final)
            if isinstance(parsed, MasterPlaylist):
                raise HlsError(_("The stream's playlist changed into a list of streams."))
            self.reloads += 1
            self._take(parsed, parsed.segments)
            if self._pending:
                return True
            if parsed.ended:
                return False
        return False

    # -- segments -------------------------------------------------------------------------------

    def _next_part(self) -> bool:
        """Open the next thing to send (an init section or a segment); False at the end."""
        while not self._closed.is_set():
            if not self._pending:
                assert self._media is not None
                if self._media.ended or not self._reload():
                    return False
                continue
            segment = self._pending[0]
            if segment.init is not None and segment.init != self._sent_init:
                if self._open_part(segment.init.uri, segment.init.byterange):
                    self._sent_init = segment.init
                    return True
                continue
            self._pending.pop(0)
            if self._open_part(segment.uri, segment.byterange):
                return True
        return False

    def _open_part(self, url: str, byterange: ByteRange | None) -> bool:
        """Start reading one segment or init section; False if a live stream may skip it."""
        self._pace()
        try:
            reader = self._track(self._open_url(url))
            if byterange is not None:
                reader.seek(byterange.offset)
            # connect now, so that a failure is this segment's and not a later read's
            reader.connect()
        except MediaFetchError as exc:
            self._end_current()
            if self._skippable(exc):
                return False
            raise
        self._left = byterange.length if byterange is not None else MAX_SEGMENT_BYTES
        self._limit_is_range = byterange is not None
        self._checked_head = False
        self._failures = 0
        self.segments_fetched += 1
        return True

    def _skippable(self, exc: MediaFetchError) -> bool:
        """A live segment that failed (expired, a hiccup) is skipped, a few in a row at most;
        a refusal by the network guard never is."""
        if not self.live or "Refused by network policy" in str(exc):
            return False
        self._failures += 1
        log.debug("HLS segment failed (%s); skipping it", exc)
        return self._failures <= LIVE_SKIPPABLE_FAILURES

    def _accept(self, data: bytes) -> bytes:
        if not self._checked_head:
            self._checked_head = True
            if is_playlist(data[:64]):
                raise HlsError(_("The stream's segment is a playlist, not audio; I won't follow it."))
        if len(data) > self._left:
            if not self._limit_is_range:
                raise HlsError(_("A segment of the stream is larger than I will read."))
            data = data[: self._left]
        self._left -= len(data)
        if self._left == 0:
            if not self._limit_is_range:
                raise HlsError(_("A segment of the stream is larger than I will read."))
            self._end_current()
        return data

    def _pace(self) -> None:
        """At most ``SEGMENT_RATE`` segment requests a second on average."""
        now = time.monotonic()
        self._tokens = min(float(SEGMENT_BURST), self._tokens + (now - self._tokens_at) * SEGMENT_RATE)
        self._tokens_at = now
        if self._tokens < 1.0:
            self._closed.wait((1.0 - self._tokens) / SEGMENT_RATE)
            self._tokens = 1.0
            self._tokens_at = time.monotonic()
        self._tokens -= 1.0

    def _track(self, reader: HttpMediaReader) -> HttpMediaReader:
        with self._lock:
            if self._closed.is_set():
                reader.close()
                raise MediaFetchError(_("The stream was closed."))
            self._current = reader
        return reader

    def _untrack(self, reader: HttpMediaReader) -> None:
        with self._lock:
            if self._current is reader:
                self._current = None
        reader.close()

    def _end_current(self) -> None:
        with self._lock:
            current, self._current = self._current, None
        if current is not None:
            current.close()

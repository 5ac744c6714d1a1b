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

Discord-free and blocking: use it from one reader thread; :meth:`HlsReader.close` from any.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from .fetch import HttpMediaReader, MediaFetchError

log = logging.getLogger("red.music.audio.hls")

#: A playlist larger than this is refused (a 3-hour VOD playlist of 2 s segments is ~400 KB).
MAX_PLAYLIST_BYTES = 1024 * 1024
#: Segments (or variants) in one playlist.
MAX_ENTRIES = 20_000
#: Bytes of one segment or init section (6 s of 8 Mb/s video is 6 MB; audio is far less).
MAX_SEGMENT_BYTES = 64 * 1024 * 1024
#: A segment's declared duration is taken as at most this (the sum of hostile ones stays finite).
MAX_SEGMENT_SECONDS = 3600.0
#: One URI line (or tag line) longer than this makes the playlist unreadable.
MAX_LINE = 16 * 1024
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
#: An audio-only variant above this bandwidth is not needed for Discord (it plays <= 384 kb/s).
AUDIO_BANDWIDTH_CAP = 400_000
#: Codec names (RFC 6381 prefixes) that carry audio; a variant whose codecs are all among them is
#: audio-only.
AUDIO_CODECS = ("mp4a", "ac-3", "ec-3", "opus", "flac", "fla", "alac", "mp3", ".mp3", "vorbis")
#: The first bytes of a playlist (after an optional UTF-8 byte order mark and blank space).
PLAYLIST_MAGIC = b"#EXTM3U"
_BOM = b"\xef\xbb\xbf"
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^",]*)')
_BYTERANGE = re.compile(r"^(\d{1,15})(?:@(\d{1,15}))?$")
READ_SIZE = 64 * 1024


class HlsError(MediaFetchError):
    """The HLS stream cannot be played, in a sentence for the user (no URL path or query)."""


def is_playlist(head: bytes) -> bool:
    """Whether the first bytes of a response are an m3u8 playlist."""
    return head.lstrip(_BOM).lstrip(b" \t\r\n").startswith(PLAYLIST_MAGIC)


# ---- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    length: int
    offset: int


@dataclass(frozen=True)
class InitSection:
    uri: str
    byterange: ByteRange | None = None


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float
    sequence: int
    byterange: ByteRange | None = None
    init: InitSection | None = None


@dataclass
class MediaPlaylist:
    target_duration: float
    media_sequence: int
    segments: list[Segment]
    ended: bool


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int
    codecs: tuple[str, ...]
    audio_group: str | None


@dataclass(frozen=True)
class Rendition:
    group_id: str
    uri: str
    default: bool


@dataclass
class MasterPlaylist:
    variants: list[Variant]
    audio: list[Rendition] = field(default_factory=list)

    def audio_only(self) -> list[Variant]:
        return [v for v in self.variants if v.codecs and all(_is_audio_codec(c) for c in v.codecs)]


def _is_audio_codec(codec: str) -> bool:
    return codec.strip().lower().startswith(AUDIO_CODECS)


def _attributes(text: str) -> dict[str, str]:
    return {name: value.strip('"') for name, value in _ATTRIBUTE.findall(text)}


def _link(base_url: str, uri: str) -> str:
    """``uri`` resolved against the playlist's URL; only http(s) links are accepted."""
    url = urljoin(base_url, uri.strip())
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        shown = re.sub(r"[^a-z0-9+.-]", "", scheme)[:20] or "unnamed"
        raise HlsError(
            f"The stream's playlist names a `{shown}:` link; I only fetch http and https links."
        )
    return url


def _byterange(value: str) -> tuple[int, int | None]:
    """``(length, offset or None)`` from `<n>[@<o>]`."""
    match = _BYTERANGE.match(value.strip())
    if match is None:
        raise HlsError("The stream's playlist has a byte range I can't read.")
    return int(match[1]), (int(match[2]) if match[2] is not None else None)


def _resolve_range(written: tuple[int, int | None], previous_end: int | None) -> ByteRange:
    """A byte range as written or, without `@offset`, right after the previous range of the
    same resource (RFC 8216 4.3.2.2)."""
    length, offset = written
    if offset is None:
        if previous_end is None:
            raise HlsError("The stream's playlist has a byte range without a start.")
        offset = previous_end
    return ByteRange(length, offset)


def parse_playlist(body: bytes, base_url: str) -> MasterPlaylist | MediaPlaylist:
    """A master or media playlist from its bytes; raises :class:`HlsError` with a sentence."""
    if len(body) > MAX_PLAYLIST_BYTES:
        raise HlsError("The stream's playlist is too large for me to read.")
    if not is_playlist(body):
        raise HlsError("The stream's playlist is not an HLS playlist.")
    text = body.lstrip(_BOM).decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines()]
    if any(len(line) > MAX_LINE for line in lines):
        raise HlsError("The stream's playlist has a line too long for me to read.")
    if any(line.startswith("#EXT-X-STREAM-INF") for line in lines):
        return _parse_master(lines, base_url)
    return _parse_media(lines, base_url)


def _parse_master(lines: list[str], base_url: str) -> MasterPlaylist:
    master = MasterPlaylist(variants=[])
    pending: dict[str, str] | None = None
    for line in lines:
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = _attributes(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA:"):
            attrs = _attributes(line.split(":", 1)[1])
            if attrs.get("TYPE") == "AUDIO" and attrs.get("URI"):
                master.audio.append(Rendition(attrs.get("GROUP-ID", ""),
                                              _link(base_url, attrs["URI"]),
                                              attrs.get("DEFAULT") == "YES"))
        elif line and not line.startswith("#") and pending is not None:
            bandwidth = pending.get("BANDWIDTH", "")
            codecs = tuple(c for c in pending.get("CODECS", "").split(",") if c.strip())
            master.variants.append(Variant(
                _link(base_url, line),
                int(bandwidth) if bandwidth.isdigit() else 0,
                codecs,
                pending.get("AUDIO"),
            ))
            pending = None
        if len(master.variants) + len(master.audio) > MAX_ENTRIES:
            raise HlsError("The stream's playlist lists too many streams for me to read.")
    if not master.variants:
        raise HlsError("The stream's playlist lists no stream to play.")
    return master


def _parse_media(lines: list[str], base_url: str) -> MediaPlaylist:
    target = 10.0
    sequence = 0
    segments: list[Segment] = []
    ended = False
    duration = 0.0
    written_range: tuple[int, int | None] | None = None
    init: InitSection | None = None
    range_ends: dict[str, int] = {}  # end of the last byte range per resource
    for line in lines:
        if not line:
            continue
        if not line.startswith("#"):
            url = _link(base_url, line)
            byterange = None
            if written_range is not None:
                byterange = _resolve_range(written_range, range_ends.get(url))
                range_ends[url] = byterange.offset + byterange.length
            segments.append(Segment(url, duration, sequence + len(segments), byterange, init))
            duration, written_range = 0.0, None
            if len(segments) > MAX_ENTRIES:
                raise HlsError("The stream's playlist lists too many segments for me to read.")
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-TARGETDURATION":
            target = max(0.0, _number(value, target))
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            value = value.strip()
            sequence = int(value) if value.isdigit() and len(value) < 19 else 0
        elif tag == "#EXTINF":
            duration = min(MAX_SEGMENT_SECONDS, max(0.0, _number(value.split(",", 1)[0], 0.0)))
        elif tag == "#EXT-X-BYTERANGE":
            written_range = _byterange(value)
        elif tag == "#EXT-X-MAP":
            attrs = _attributes(value)
            if not attrs.get("URI"):
                raise HlsError("The stream's playlist has an init section without a link.")
            init_range = None
            if "BYTERANGE" in attrs:
                length, offset = _byterange(attrs["BYTERANGE"])
                init_range = ByteRange(length, offset or 0)
            init = InitSection(_link(base_url, attrs["URI"]), init_range)
        elif tag in ("#EXT-X-KEY", "#EXT-X-SESSION-KEY"):
            method = re.sub(r"[^A-Z0-9-]", "", _attributes(value).get("METHOD", "NONE"))[:20]
            if method != "NONE":
                raise HlsError(
                    f"The stream is encrypted ({method}); I can't play encrypted HLS streams."
                )
        elif tag == "#EXT-X-I-FRAMES-ONLY":
            raise HlsError("The stream's playlist holds only video key frames, no audio.")
        elif tag == "#EXT-X-ENDLIST":
            ended = True
    return MediaPlaylist(target, sequence, segments, ended)


def _number(text: str, default: float) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        return default
    return value if value == value and abs(value) != float("inf") else default


def choose_rendition(master: MasterPlaylist) -> str:
    """The URL of the media playlist to play: the best audio-only variant up to
    ``AUDIO_BANDWIDTH_CAP`` (else the smallest one above it), else the lowest-bandwidth variant;
    if that variant's audio is a separate rendition (EXT-X-MEDIA with a URI), that rendition
    (the default one of its group, else the first)."""
    audio_only = master.audio_only()
    if audio_only:
        fitting = [v for v in audio_only if v.bandwidth <= AUDIO_BANDWIDTH_CAP]
        chosen = (max(fitting, key=lambda v: v.bandwidth) if fitting
                  else min(audio_only, key=lambda v: v.bandwidth))
    else:
        chosen = min(master.variants, key=lambda v: v.bandwidth)
    if chosen.audio_group is not None:
        group = [r for r in master.audio if r.group_id == chosen.audio_group]
        if group:
            return next((r for r in group if r.default), group[0]).uri
    return chosen.uri


# ---- reading ----------------------------------------------------------------------------------

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
                    "The stream's playlist points to another list of streams; "
                    "I follow only one level."
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
                raise HlsError("The stream's playlist changed into a list of streams.")
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
                raise HlsError("The stream's segment is a playlist, not audio; I won't follow it.")
        if len(data) > self._left:
            if not self._limit_is_range:
                raise HlsError("A segment of the stream is larger than I will read.")
            data = data[: self._left]
        self._left -= len(data)
        if self._left == 0:
            if not self._limit_is_range:
                raise HlsError("A segment of the stream is larger than I will read.")
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
                raise MediaFetchError("The stream was closed.")
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

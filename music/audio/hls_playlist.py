"""HLS playlists (RFC 8216) parsed for music.audio.hls: media and master playlists, the variant
the cog plays, and every bound a hostile playlist meets (size, entries, line length, links that
are not http(s), encryption). Pure functions on bytes; no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ..i18n import _
from .fetch import MediaFetchError

#: A playlist larger than this is refused (a 3-hour VOD playlist of 2 s segments is ~400 KB).
MAX_PLAYLIST_BYTES = 1024 * 1024
#: Segments (or variants) in one playlist.
MAX_ENTRIES = 20_000
#: A segment's declared duration is taken as at most this (the sum of hostile ones stays finite).
MAX_SEGMENT_SECONDS = 3600.0
#: One URI line (or tag line) longer than this makes the playlist unreadable.
MAX_LINE = 16 * 1024
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


class HlsError(MediaFetchError):
    """The HLS stream cannot be played, in a sentence for the user (no URL path or query)."""


def is_playlist(head: bytes) -> bool:
    """Whether the first bytes of a response are an m3u8 playlist."""
    return head.lstrip(_BOM).lstrip(b" \t\r\n").startswith(PLAYLIST_MAGIC)


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
            _("The stream's playlist names a `{shown}:` link; I only fetch http and https links.").format(shown=shown)
        )
    return url


def _byterange(value: str) -> tuple[int, int | None]:
    """``(length, offset or None)`` from `<n>[@<o>]`."""
    match = _BYTERANGE.match(value.strip())
    if match is None:
        raise HlsError(_("The stream's playlist has a byte range I can't read."))
    return int(match[1]), (int(match[2]) if match[2] is not None else None)


def _resolve_range(written: tuple[int, int | None], previous_end: int | None) -> ByteRange:
    """A byte range as written or, without `@offset`, right after the previous range of the
    same resource (RFC 8216 4.3.2.2)."""
    length, offset = written
    if offset is None:
        if previous_end is None:
            raise HlsError(_("The stream's playlist has a byte range without a start."))
        offset = previous_end
    return ByteRange(length, offset)


def parse_playlist(body: bytes, base_url: str) -> MasterPlaylist | MediaPlaylist:
    """A master or media playlist from its bytes; raises :class:`HlsError` with a sentence."""
    if len(body) > MAX_PLAYLIST_BYTES:
        raise HlsError(_("The stream's playlist is too large for me to read."))
    if not is_playlist(body):
        raise HlsError(_("The stream's playlist is not an HLS playlist."))
    text = body.lstrip(_BOM).decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines()]
    if any(len(line) > MAX_LINE for line in lines):
        raise HlsError(_("The stream's playlist has a line too long for me to read."))
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
            raise HlsError(_("The stream's playlist lists too many streams for me to read."))
    if not master.variants:
        raise HlsError(_("The stream's playlist lists no stream to play."))
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
                raise HlsError(_("The stream's playlist lists too many segments for me to read."))
            continue
        tag, _colon, value = line.partition(":")
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
                raise HlsError(_("The stream's playlist has an init section without a link."))
            init_range = None
            if "BYTERANGE" in attrs:
                length, offset = _byterange(attrs["BYTERANGE"])
                init_range = ByteRange(length, offset or 0)
            init = InitSection(_link(base_url, attrs["URI"]), init_range)
        elif tag in ("#EXT-X-KEY", "#EXT-X-SESSION-KEY"):
            method = re.sub(r"[^A-Z0-9-]", "", _attributes(value).get("METHOD", "NONE"))[:20]
            if method != "NONE":
                raise HlsError(
                    _("The stream is encrypted ({method}); I can't play encrypted HLS streams.").format(method=method)
                )
        elif tag == "#EXT-X-I-FRAMES-ONLY":
            raise HlsError(_("The stream's playlist holds only video key frames, no audio."))
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

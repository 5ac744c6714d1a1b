"""yt-dlp's answers (info dicts) as Tracks: a playable one from a processed video, a
placeholder from a playlist or search entry, and a refreshed copy of a queued one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from music.engine.track import Track
from music.policy import NetworkPolicy, PolicyError
from music.resolve.errors import ResolveError
from music.resolve.local import MediaProbe
from music.resolve.urls import as_url, stream_expiry

from ..i18n import _

#: ffmpeg's look at a direct media URL (with the site's headers), for what yt-dlp can't say
Prober = Callable[[str, Mapping[str, str]], MediaProbe]


@dataclass
class ResolveResult:
    """Tracks found for one request. A playlist gives its title and may be `truncated` at the
    limit; `errors` are sentences about entries that were left out."""

    tracks: list[Track]
    title: str | None = None
    errors: list[str] = field(default_factory=list)
    truncated: bool = False


def full_track(
    info: dict[str, Any],
    policy: NetworkPolicy,
    requester_id: int,
    query: str | None,
    probe: Prober | None,
) -> Track:
    """A playable Track from a processed (format-selected) info dict. Direct media links come
    back from yt-dlp without duration or codec; `probe` (None: don't) fills them in."""
    stream_url = info.get("url")
    headers = info.get("http_headers") or {}
    acodec = info.get("acodec")
    if not stream_url:
        # A merged video+audio selection: take the audio part.
        for fmt in info.get("requested_formats") or []:
            if fmt.get("acodec") not in (None, "none") and fmt.get("url"):
                stream_url = fmt["url"]
                headers = fmt.get("http_headers") or headers
                acodec = fmt.get("acodec")
                break
    if not stream_url:
        raise ResolveError(_("I found that, but couldn't get an audio stream for it."))
    policy.check_url(stream_url)
    webpage_url = info.get("webpage_url") or info.get("original_url") or query
    title = info.get("title") or info.get("fulltitle") or webpage_url or _("Unknown title")
    duration = number(info.get("duration"))
    container = info.get("ext")
    if acodec in ("none", ""):
        acodec = None
    uploader = info.get("uploader") or info.get("channel") or info.get("artist")
    if probe is not None and info.get("direct") and (duration is None or acodec is None):
        found = probe(stream_url, headers)
        duration = duration if duration is not None else found.duration
        acodec = acodec or found.acodec
        # A generic title is only the file name; a tag is better.
        if found.title and title == info.get("id"):
            title = found.title
        uploader = uploader or found.artist  # a direct link has no uploader but its artist tag
    is_live = bool(info.get("is_live")) or info.get("live_status") == "is_live"
    return Track(
        query=webpage_url or stream_url,
        title=str(title),
        duration=None if is_live else duration,
        kind="remote",
        requester_id=requester_id,
        uploader=uploader,
        webpage_url=webpage_url,
        stream_url=stream_url,
        stream_expires=stream_expiry(stream_url),
        http_headers={str(k): str(v) for k, v in headers.items()},
        acodec=acodec,
        container=container,
        is_live=is_live,
        extractor=info.get("extractor_key") or info.get("extractor"),
    )


def entry_track(
    entry: dict[str, Any], policy: NetworkPolicy, requester_id: int, probe: Prober | None
) -> Track | None:
    """A Track for a playlist/search entry: resolved if yt-dlp already processed it,
    otherwise a placeholder to refresh before playing. None if it has no usable link."""
    if entry.get("_type", "video") == "video" and entry.get("format_id"):
        try:
            return full_track(entry, policy, requester_id, None, probe)
        except (ResolveError, PolicyError):
            return None
    link = next(
        (u for u in (entry.get("url"), entry.get("webpage_url")) if u and as_url(u)), None
    )
    if link is None:
        return None
    return Track(
        query=link,
        title=str(entry.get("title") or link),
        duration=number(entry.get("duration")),
        kind="remote",
        requester_id=requester_id,
        uploader=entry.get("uploader") or entry.get("channel"),
        webpage_url=link,
        is_live=entry.get("live_status") == "is_live" or bool(entry.get("is_live")),
        extractor=entry.get("ie_key") or entry.get("extractor_key"),
    )


def apply_fresh(track: Track, fresh: Track) -> Track:
    """A copy of `track` (same id) with the stream and missing details taken from `fresh`."""
    placeholder_title = not track.title or track.title == track.query
    return track.copy(
        stream_url=fresh.stream_url,
        stream_expires=fresh.stream_expires,
        http_headers=dict(fresh.http_headers),
        acodec=fresh.acodec,
        container=fresh.container,
        is_live=fresh.is_live,
        duration=track.duration if track.duration is not None else fresh.duration,
        title=fresh.title if placeholder_title else track.title,
        uploader=track.uploader or fresh.uploader,
        webpage_url=track.webpage_url or fresh.webpage_url,
        extractor=fresh.extractor or track.extractor,
    )


def number(value: Any) -> float | None:
    """A non-negative number from yt-dlp's loosely typed fields, else None."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result >= 0 else None

"""What autoplay picks when the queue runs dry: pure choices, no I/O (control/autoplay.py asks
for the entries and queues the pick through the control layer).

A playlist's entries play at random without repeating any of the last ``RECENT_LIMIT`` tracks
heard, or, when the playlist has no more songs than that, any of the others: a five-song
playlist plays all five before one comes back. `related` plays what the site lists as related
to the last track (``related_url``), the first one not heard recently.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from .track import Track, new_track_id

RECENT_LIMIT = 10  # tracks heard recently that autoplay does not repeat

SongKey = tuple[str, str]


def recent_keys(history: Sequence[Track], current: Track | None, upcoming: Sequence[Track]) -> list[SongKey]:
    """The songs heard and queued, oldest first: what "recently" counts back from."""
    tracks = [*history, *([current] if current is not None else []), *upcoming]
    return [t.song_key() for t in tracks]


def distinct(entries: Sequence[Track]) -> list[Track]:
    """Each song once (the first entry of it), in order."""
    seen: set[SongKey] = set()
    unique: list[Track] = []
    for entry in entries:
        key = entry.song_key()
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    return unique


def playlist_order(entries: Sequence[Track], recent: Sequence[SongKey], rng: random.Random) -> list[Track]:
    """The playlist's songs that may play next, in the random order to try them."""
    unique = distinct(entries)
    window = min(RECENT_LIMIT, len(unique) - 1)
    heard = set(recent[-window:]) if window > 0 else set()
    fresh = [e for e in unique if e.song_key() not in heard]
    rng.shuffle(fresh)
    return fresh


def related_order(entries: Sequence[Track], recent: Sequence[SongKey]) -> list[Track]:
    """The related songs not heard recently, in the site's order (the most related first)."""
    heard = set(recent[-RECENT_LIMIT:])
    return [e for e in distinct(entries) if e.song_key() not in heard]


def autoplay_entry(entry: Track) -> Track:
    """The queue entry for an autoplay pick: a new id, queued by nobody, marked as autoplay,
    and without any stored stream (it is looked up with the checks of a new `play`)."""
    return entry.copy(
        id=new_track_id(), requester_id=0, autoplay=True, stream_url=None, stream_expires=None,
        http_headers={},
    )


def related_url(track: Track) -> str | None:
    """The link whose entries yt-dlp lists as related to `track`, where the site has one:
    YouTube's mix of a video, SoundCloud's recommendations for a track. None elsewhere."""
    page = track.webpage_url or track.query
    if not page or "://" not in page:
        return None
    try:
        parts = urlsplit(page)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if host.startswith(("www.", "m.", "music.")):
        host = host.split(".", 1)[1]
    if host == "youtube.com" and parts.path == "/watch":
        video = (parse_qs(parts.query).get("v") or [""])[0]
        return _youtube_mix(video)
    if host == "youtu.be":
        return _youtube_mix(parts.path.strip("/"))
    if host == "soundcloud.com":
        path = [p for p in parts.path.split("/") if p]
        if len(path) == 2 and path[1] not in ("sets", "likes", "tracks", "albums", "reposts"):
            return f"https://soundcloud.com/{path[0]}/{path[1]}/recommended"
    return None


def _youtube_mix(video: str) -> str | None:
    if not video or not all(c.isalnum() or c in "-_" for c in video) or len(video) > 20:
        return None
    return f"https://www.youtube.com/watch?v={video}&list=RD{video}"

"""What a member typed, read as a link or as words, and what a stream URL says about itself."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

from music.engine.timefmt import quote_user_text

from ..i18n import _

# Stream URLs without an expiry hint are assumed to last this long (YouTube's are ~6 h).
DEFAULT_STREAM_LIFETIME = 5 * 3600.0

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
# Schemes refused with a clear sentence instead of being searched for as words.
_KNOWN_SCHEMES = frozenset(
    {
        "file",
        "data",
        "concat",
        "concatf",
        "subfile",
        "ftp",
        "sftp",
        "gopher",
        "javascript",
        "rtmp",
        "rtmps",
        "rtsp",
        "udp",
        "tcp",
        "tls",
        "pipe",
        "fd",
        "async",
        "cache",
        "crypto",
        "hls",
        "mmsh",
        "mmst",
        "smb",
        "ws",
        "wss",
        "about",
        "blob",
    }
)
# `youtu.be/abc`, `www.example.com/song.mp3`: links typed without a scheme.
_BARE_HOST = re.compile(r"^[\w-]+(\.[\w-]+)+(:\d+)?/\S*$")
_EXPIRE = re.compile(r"[/?&]expire[=/](\d{9,11})(?:[/&]|$)")


def as_url(text: str) -> str | None:
    """The URL in `text` if it is meant as a link (a bare `host/path` gets https://), else None
    (the text is a search)."""
    text = text.strip().strip("<>")  # Discord users wrap links in <> to hide embeds
    if " " in text:
        return None
    match = _SCHEME.match(text)
    if match is not None:
        scheme = match[1].lower()
        if text[match.end() :].startswith("//") or scheme in _KNOWN_SCHEMES:
            return text
        return None
    if _BARE_HOST.match(text):
        return "https://" + text
    return None


def stream_expiry(url: str, now: float | None = None) -> float:
    """When a stream URL stops working: its `expire=` hint if present, else now + 5 h."""
    now = time.time() if now is None else now
    try:
        values = parse_qs(urlsplit(url).query).get("expire")
    except ValueError:
        values = None
    candidate = values[0] if values else None
    if candidate is None and (match := _EXPIRE.search(url)) is not None:
        candidate = match[1]
    try:
        expires = float(candidate) if candidate is not None else None
    except ValueError:
        expires = None
    if expires is None or expires <= now:
        return now + DEFAULT_STREAM_LIFETIME
    return expires


def extractor_family(ie_name: str) -> str:
    """`youtube:tab` -> `youtube`: one breaker per site, whatever part of it a link names."""
    return ie_name.split(":", 1)[0].strip().lower() or "generic"


# A link inside other text: with a scheme (`https://...`, `file:///...`), or a bare
# `host.tld/...` (the top-level domain alphabetic, so `4.5/5` in a title is not one).
_LINK_IN_TEXT = re.compile(
    r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S*|\b[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}(?::\d+)?/\S*"
)


def site_of(url: str) -> str:
    """The site a link names, without its path, query string, port or credentials:
    `www.youtube.com`; `a file: link` when it names no host."""
    match = _SCHEME.match(url)
    try:
        host = urlsplit(url if match is not None else "https://" + url).hostname
    except ValueError:
        host = None
    if host:
        return host
    return _("a {match}: link").format(match=match[1].lower()) if match is not None else _("a link")


def without_links(text: str) -> str:
    """`text` with every link in it cut to its site (for showing it to people other than the
    member who typed it: a private playlist's path or a token in a query stays private)."""
    return _LINK_IN_TEXT.sub(lambda link: site_of(link[0]), text)


def lookup_label(query: str, title: str | None = None) -> str:
    """How `music status` names a lookup: a link's site and the title when known, a search's
    words; never a full URL (no path, no query string, no token)."""
    url = as_url(query)
    if url is None:
        label = query
    else:
        label = site_of(url)
        if title and as_url(title) is None and title.strip() != query.strip():
            label = f"{label}: {title}"
    return quote_user_text(without_links(label), 80)

"""Resolver: user text or links -> Tracks, with yt-dlp running in the resolver's own threads.

yt-dlp is blocking and sometimes slow; it never runs on the event loop. Every URL a user gives,
every URL yt-dlp requests while extracting and every final stream URL passes the network
policy, so a link can't make the bot fetch internal addresses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yt_dlp
import yt_dlp.globals
import yt_dlp.plugins
from yt_dlp.extractor import gen_extractor_classes
from yt_dlp.utils import DownloadError, PagedList, YoutubeDLError

from music.engine.timefmt import quote_user_text
from music.engine.track import Track
from music.policy import NetworkPolicy, PolicyError
from music.resolve.jsruntime import ytdlp_js_options
from music.resolve.local import probe_media

log = logging.getLogger("red.music.resolve")

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
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HTTP_STATUS = re.compile(r"http error (\d{3})")


class ErrorKind(str, enum.Enum):
    """What a failure says about retrying and about the site's health."""

    PERMANENT = "permanent"  # this video/link: private, unavailable, 404... no retry
    TRANSIENT = "transient"  # timeouts, HTTP 5xx, 429, dropped connections: retry with backoff
    BROKEN = "broken"  # the extractor or the site's treatment of the bot: no retry, but it
    # counts against the site's circuit breaker like a transient failure


class ResolveError(Exception):
    """Resolving failed; `sentence` (also str(self)) is what to tell the user."""

    def __init__(self, sentence: str, kind: ErrorKind = ErrorKind.PERMANENT) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.kind = kind

    @property
    def transient(self) -> bool:
        """Worth retrying (read by the job scheduler)."""
        return self.kind is ErrorKind.TRANSIENT


@dataclass
class ResolveResult:
    """Tracks found for one request. A playlist gives its title and may be `truncated` at the
    limit; `errors` are sentences about entries that were left out."""

    tracks: list[Track]
    title: str | None = None
    errors: list[str] = field(default_factory=list)
    truncated: bool = False


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


def describe_error(message: str, timeout: float) -> str:
    """A plain sentence for a yt-dlp error message."""
    return classify_error(message, timeout)[1]


def classify_error(message: str, timeout: float) -> tuple[ErrorKind, str]:
    """What kind of failure a yt-dlp error message is, and a plain sentence for it."""
    text = _ANSI.sub("", message).replace("ERROR: ", "", 1).strip()
    lower = text.lower()
    status_match = _HTTP_STATUS.search(lower)
    status = int(status_match[1]) if status_match else None
    permanent, transient, broken = ErrorKind.PERMANENT, ErrorKind.TRANSIENT, ErrorKind.BROKEN
    if "unsupported url" in lower:
        return permanent, "I can't play that link: the site isn't supported."
    if "private video" in lower or "video is private" in lower:
        return permanent, "That video is private."
    if "not a bot" in lower:
        return broken, (
            "The site asked the bot to sign in to prove it isn't a bot; the bot owner may need "
            "to update yt-dlp or give it cookies."
        )
    if "sign in to confirm your age" in lower or "age-restricted" in lower:
        return permanent, "That video is age-restricted and needs a signed-in account."
    if "members" in lower and "only" in lower or "join this channel" in lower:
        return permanent, "That video is for channel members only."
    if (
        "your country" in lower
        or "your location" in lower
        or "geo restrict" in lower
        or "geo-restrict" in lower
    ):
        return permanent, "That video isn't available in the bot's country."
    if status == 404 or status == 410:
        return permanent, "There's nothing at that link (the site answered 404 Not Found)."
    if status == 403:
        return broken, "The site refused access to that link (403 Forbidden)."
    if status == 429:
        return (
            transient,
            "The site is rate-limiting the bot (429 Too Many Requests); try again later.",
        )
    if status is not None and 500 <= status <= 599:
        return (
            transient,
            f"The site is having trouble (it answered HTTP {status}); try again later.",
        )
    if "timed out" in lower or "timeout" in lower:
        return transient, f"Looking that up timed out after {timeout:g} s."
    if "live event will begin" in lower or "premieres in" in lower:
        return permanent, "That stream hasn't started yet."
    if "unavailable" in lower or "not available" in lower or "has been removed" in lower:
        return permanent, "That video is unavailable."
    if "name or service not known" in lower or "getaddrinfo" in lower or "resolve host" in lower:
        return permanent, "I couldn't reach that site."
    if (
        "connection reset" in lower
        or "connection refused" in lower
        or "remote end closed" in lower
        or "temporary failure" in lower
        or "incompleteread" in lower
    ):
        return transient, "I couldn't reach that site; the connection dropped."
    first_line = text.splitlines()[0] if text else "unknown error"
    sentence = f"I couldn't load that: {quote_user_text(first_line, 150)}"
    if "unable to extract" in lower or "report this issue" in lower:
        return broken, sentence  # the site changed under yt-dlp
    return permanent, sentence


def to_resolve_error(exc: BaseException, timeout: float) -> ResolveError:
    """Any failure during a lookup as a ResolveError with a sentence and a kind."""
    if isinstance(exc, ResolveError):
        return exc
    if isinstance(exc, PolicyError):
        return ResolveError(exc.sentence)
    if isinstance(exc, (DownloadError, YoutubeDLError)):
        return ResolveError(*reversed(classify_error(str(exc), timeout)))
    if isinstance(exc, TimeoutError):
        return ResolveError(f"Looking that up timed out after {timeout:g} s.", ErrorKind.TRANSIENT)
    # An extractor bug must not escape as an unknown exception into a command.
    log.error("yt-dlp failed unexpectedly", exc_info=exc)
    return ResolveError("I couldn't load that: yt-dlp failed unexpectedly.", ErrorKind.BROKEN)


def extractor_family(ie_name: str) -> str:
    """`youtube:tab` -> `youtube`: one breaker per site, whatever part of it a link names."""
    return ie_name.split(":", 1)[0].strip().lower() or "generic"


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


class PlaylistReader:
    """A playlist whose entries are read lazily (page by page, as the extractor fetches them),
    so the first entries are available before the rest are listed. Iterate it inside the
    `Resolver.open_link_sync` block; it yields Tracks (unresolved placeholders unless yt-dlp
    already resolved the entry) and None for entries without a usable link. After the loop,
    `truncated` says whether more than `limit` entries existed."""

    def __init__(
        self,
        resolver: Resolver,
        info: dict[str, Any],
        policy: NetworkPolicy,
        requester_id: int,
        limit: int,
    ) -> None:
        self._resolver = resolver
        self._info = info
        self._policy = policy
        self._requester_id = requester_id
        self.limit = max(1, limit)
        self.title: str | None = info.get("title")
        count = info.get("playlist_count")
        self.count: int | None = count if isinstance(count, int) else None
        entries = info.get("entries")
        if self.count is None and isinstance(entries, (list, tuple)):
            self.count = len(entries)
        self.truncated = False

    @property
    def expected(self) -> int | None:
        """How many entries this will yield at most, when known."""
        return None if self.count is None else min(self.count, self.limit)

    def _raw_entries(self) -> Iterator[Any]:
        entries = self._info.get("entries") or []
        if isinstance(entries, PagedList):
            # getslice fetches only the pages it needs
            for start in itertools.count(0, 50):
                chunk = entries.getslice(start, start + 50)
                yield from chunk
                if len(chunk) < 50:
                    return
        else:
            yield from entries

    def __iter__(self) -> Iterator[Track | None]:
        # One more than the limit tells whether the playlist was cut.
        for index, entry in enumerate(itertools.islice(self._raw_entries(), self.limit + 1)):
            if index == self.limit:
                self.truncated = True
                return
            yield (
                self._resolver._entry_track(entry, self._policy, self._requester_id)
                if isinstance(entry, dict)
                else None
            )
        if self.count is not None and self.count > self.limit:
            self.truncated = True


class _YtdlLogger:
    """Routes yt-dlp's output to logging instead of the bot's console."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg: str) -> None:
        log.debug("yt-dlp error: %s", msg)


class PolicedYoutubeDL(yt_dlp.YoutubeDL):
    """A YoutubeDL whose every HTTP request (and where it was redirected to) passes the policy."""

    def __init__(
        self,
        params: dict[str, Any],
        policy: NetworkPolicy,
        extra_extractors: Sequence[type] = (),
    ) -> None:
        self._policy = policy
        super().__init__(params, auto_init=False)
        # Extra extractors first: yt-dlp asks extractors in order and Generic matches anything.
        for ie_cls in extra_extractors:
            self.add_info_extractor(ie_cls())
        self.add_default_info_extractors()

    def urlopen(self, req: Any) -> Any:
        url = req if isinstance(req, str) else getattr(req, "url", None) or req.full_url
        self._policy.check_url(url)
        response = super().urlopen(req)
        final = getattr(response, "url", None)
        if final and final != url:
            try:
                self._policy.check_url(final)
            except PolicyError:
                response.close()
                raise
        return response


class Resolver:
    """Turns queries into Tracks with yt-dlp in a private thread pool."""

    def __init__(
        self,
        policy_getter: Callable[[], NetworkPolicy],
        *,
        workers: int = 3,
        search_prefix: str = "ytsearch",
        timeout: float = 30.0,
        extra_extractors: Sequence[type] = (),
        probe_direct_media: bool = True,
    ) -> None:
        self._policy_getter = policy_getter
        self.search_prefix = search_prefix
        self.timeout = timeout
        self.extra_extractors = tuple(extra_extractors)
        # Direct media links (a .webm on some server) come back from yt-dlp without duration
        # or codec; one ffmpeg probe fills them in.
        self.probe_direct_media = probe_direct_media
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="music-resolve"
        )

    # ---- public API -------------------------------------------------------------------

    async def resolve(
        self, query: str, *, requester_id: int = 0, limit: int = 100
    ) -> ResolveResult:
        """A link (playlists expand to at most `limit` unresolved entries; a single video comes
        back fully resolved) or words (the first search result, fully resolved)."""
        text = query.strip()
        if not text:
            raise ResolveError("Tell me what to play: a link, or words to search for.")
        policy = self._policy_getter()
        url = as_url(text)
        if url is not None:
            await self._check(policy, url)
            return await self._run(self._resolve_url_sync, url, policy, requester_id, limit)
        return await self._run(self._resolve_search_sync, text, policy, requester_id)

    async def search(self, query: str, n: int = 5, *, requester_id: int = 0) -> list[Track]:
        """Up to n search results as unresolved Tracks (no stream URL yet)."""
        text = query.strip()
        if not text:
            raise ResolveError("Tell me what to search for.")
        policy = self._policy_getter()
        return await self._run(self._search_sync, text, n, policy, requester_id)

    async def refresh(self, track: Track) -> Track:
        """A copy of `track` (same id) with a fresh stream URL, headers and codec info."""
        if track.kind == "local":
            return track.copy()
        policy = self._policy_getter()
        target = track.webpage_url or track.query
        url = as_url(target)
        if url is not None:
            await self._check(policy, url)
        return await self._run(self._refresh_sync, track, url, policy)

    def close(self) -> None:
        """Stop accepting work; don't wait for a yt-dlp call that hangs (sockets time out)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---- blocking building blocks for the job scheduler (music.resolve.service) -------

    def policy(self) -> NetworkPolicy:
        """The network policy in force now (read at every request)."""
        return self._policy_getter()

    def extractor_family_sync(self, target: str) -> str:
        """Which site a link or search (`ytsearch1:words`) belongs to: `youtube`,
        `soundcloud`, ..., `generic`. Blocking: it asks every extractor (the first call
        compiles their patterns, ~0.4 s; later ~10 ms)."""
        if not yt_dlp.globals.all_plugins_loaded.value:
            # yt-dlp loads plugin extractors at the first YoutubeDL(); before that a plugin
            # site would be misnamed "generic" (and share the generic breaker)
            yt_dlp.plugins.load_all_plugins()
        for ie in itertools.chain(self.extra_extractors, gen_extractor_classes()):
            if ie.ie_key() == "Generic":
                continue
            try:
                if ie.suitable(target):
                    return extractor_family(ie.IE_NAME)
            except Exception:  # a broken pattern in one extractor must not stop the lookup
                continue
        return "generic"

    def search_target(self, text: str, n: int = 1) -> str:
        """The yt-dlp target for searching `text` with this resolver's search prefix."""
        return f"{self.search_prefix}{max(1, n)}:{text}"

    @contextlib.contextmanager
    def open_link_sync(
        self, url: str, policy: NetworkPolicy, requester_id: int, limit: int
    ) -> Iterator[Track | PlaylistReader]:
        """Blocking. A fully resolved Track for a single video, or a PlaylistReader whose
        entries are listed lazily while the block is open (yt-dlp stays open for its pages).
        The URL itself must have passed the policy already; every request yt-dlp makes does."""
        opts = self._options(flat=True)
        with PolicedYoutubeDL(opts, policy, self.extra_extractors) as ydl:
            # process=False: the playlist's entries stay a lazy generator/paged list instead
            # of being listed in full before anything is returned.
            raw = ydl.extract_info(url, download=False, process=False)
            if not raw:
                raise ResolveError("I found nothing at that link.")
            if raw.get("_type") in ("playlist", "multi_video"):
                yield PlaylistReader(self, raw, policy, requester_id, limit)
                return
            # A video, or a link that redirects elsewhere: let yt-dlp finish (format choice,
            # following `url` results) exactly as extract_info(process=True) would.
            info = ydl.process_ie_result(raw, download=False)
            if not info:
                raise ResolveError("I found nothing at that link.")
            if info.get("_type") in ("playlist", "multi_video"):
                yield PlaylistReader(self, info, policy, requester_id, limit)
                return
            yield self._full_track(info, policy, requester_id, url)

    def resolve_search_sync(self, text: str, policy: NetworkPolicy, requester_id: int) -> Track:
        """Blocking: the first search result, fully resolved."""
        return self._resolve_search_sync(text, policy, requester_id).tracks[0]

    def search_sync(
        self, text: str, n: int, policy: NetworkPolicy, requester_id: int
    ) -> list[Track]:
        """Blocking: up to n unresolved search results."""
        return self._search_sync(text, n, policy, requester_id)

    def refresh_sync(self, track: Track, policy: NetworkPolicy) -> Track:
        """Blocking: refresh() without the executor. The page URL must have passed the policy."""
        if track.kind == "local":
            return track.copy()
        return self._refresh_sync(track, as_url(track.webpage_url or track.query), policy)

    # ---- plumbing ---------------------------------------------------------------------

    @staticmethod
    async def _check(policy: NetworkPolicy, url: str) -> None:
        try:
            await policy.acheck_url(url)
        except PolicyError as exc:
            raise ResolveError(exc.sentence) from None

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, func, *args)
        except RuntimeError:  # executor shut down
            raise ResolveError("The music player is shutting down.") from None
        try:
            return await asyncio.wait_for(future, self.timeout)
        except ResolveError:
            raise
        except Exception as exc:
            raise to_resolve_error(exc, self.timeout) from None

    def _options(
        self, *, flat: bool, limit: int | None = None, single: bool = False
    ) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _YtdlLogger(),
            "format": "bestaudio/best",
            "skip_download": True,
            "extract_flat": "in_playlist" if flat else False,
            # Words are searched explicitly with the search prefix; a link never falls back to
            # a search.
            "default_search": "error",
            "socket_timeout": self.timeout,
            "cachedir": False,
            "noplaylist": single,
            "color": {"stderr": "no_color", "stdout": "no_color"},
        }
        if limit is not None:
            opts["playlistend"] = max(1, limit)
        # YouTube needs a JavaScript runtime; Downloader's `pip install -t` hides deno from
        # yt-dlp's own search, so pass the one we found (runs `--version` once per process).
        opts.update(ytdlp_js_options())
        return opts

    def _extract(self, target: str, policy: NetworkPolicy, opts: dict[str, Any]) -> dict[str, Any]:
        with PolicedYoutubeDL(opts, policy, self.extra_extractors) as ydl:
            info = ydl.extract_info(target, download=False)
        if not info:
            raise ResolveError("I found nothing at that link.")
        return info

    # ---- blocking work (executor threads) ---------------------------------------------

    def _resolve_url_sync(
        self, url: str, policy: NetworkPolicy, requester_id: int, limit: int
    ) -> ResolveResult:
        # One more than the limit tells whether the playlist was cut.
        info = self._extract(url, policy, self._options(flat=True, limit=limit + 1))
        if info.get("_type") not in ("playlist", "multi_video"):
            return ResolveResult([self._full_track(info, policy, requester_id, url)])
        entries = list(info.get("entries") or [])
        tracks: list[Track] = []
        missing = 0
        for entry in entries[:limit]:
            track = self._entry_track(entry, policy, requester_id) if entry else None
            if track is None:
                missing += 1
            else:
                tracks.append(track)
        errors = []
        if missing:
            errors.append(
                f"{missing} {'entry was' if missing == 1 else 'entries were'} unavailable."
            )
        count = info.get("playlist_count")
        truncated = len(entries) > limit or (isinstance(count, int) and count > limit)
        if not tracks:
            raise ResolveError("That playlist has nothing I can play.")
        return ResolveResult(tracks, info.get("title"), errors, truncated)

    def _resolve_search_sync(
        self, text: str, policy: NetworkPolicy, requester_id: int
    ) -> ResolveResult:
        info = self._extract(
            f"{self.search_prefix}1:{text}", policy, self._options(flat=False, limit=1)
        )
        entries = [e for e in info.get("entries") or [] if e]
        if not entries:
            raise ResolveError(f"I found nothing for `{quote_user_text(text)}`.")
        return ResolveResult([self._full_track(entries[0], policy, requester_id, None)])

    def _search_sync(
        self, text: str, n: int, policy: NetworkPolicy, requester_id: int
    ) -> list[Track]:
        n = max(1, n)
        info = self._extract(
            f"{self.search_prefix}{n}:{text}", policy, self._options(flat=True, limit=n)
        )
        entries = [e for e in info.get("entries") or [] if e]
        tracks = [t for e in entries[:n] if (t := self._entry_track(e, policy, requester_id))]
        return tracks

    def _refresh_sync(self, track: Track, url: str | None, policy: NetworkPolicy) -> Track:
        if url is None:  # only words are known: search again
            fresh = self._resolve_search_sync(track.query, policy, track.requester_id).tracks[0]
        else:
            info = self._extract(url, policy, self._options(flat=False, limit=1, single=True))
            if info.get("_type") in ("playlist", "multi_video"):
                entries = [e for e in info.get("entries") or [] if e]
                if not entries:
                    raise ResolveError("That link no longer has anything I can play.")
                info = entries[0]
            fresh = self._full_track(info, policy, track.requester_id, url)
        return apply_fresh(track, fresh)

    def _full_track(
        self, info: dict[str, Any], policy: NetworkPolicy, requester_id: int, query: str | None
    ) -> Track:
        """A playable Track from a processed (format-selected) info dict."""
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
            raise ResolveError("I found that, but couldn't get an audio stream for it.")
        policy.check_url(stream_url)
        webpage_url = info.get("webpage_url") or info.get("original_url") or query
        title = info.get("title") or info.get("fulltitle") or webpage_url or "Unknown title"
        duration = _number(info.get("duration"))
        container = info.get("ext")
        if acodec in ("none", ""):
            acodec = None
        if self.probe_direct_media and info.get("direct") and (duration is None or acodec is None):
            probe = probe_media(stream_url, headers=headers, timeout=min(self.timeout, 15.0))
            duration = duration if duration is not None else probe.duration
            acodec = acodec or probe.acodec
            # A generic title is only the file name; a tag is better.
            if probe.title and title == info.get("id"):
                title = probe.title
        is_live = bool(info.get("is_live")) or info.get("live_status") == "is_live"
        return Track(
            query=webpage_url or stream_url,
            title=str(title),
            duration=None if is_live else duration,
            kind="remote",
            requester_id=requester_id,
            uploader=info.get("uploader") or info.get("channel") or info.get("artist"),
            webpage_url=webpage_url,
            stream_url=stream_url,
            stream_expires=stream_expiry(stream_url),
            http_headers={str(k): str(v) for k, v in headers.items()},
            acodec=acodec,
            container=container,
            is_live=is_live,
            extractor=info.get("extractor_key") or info.get("extractor"),
        )

    def _entry_track(
        self, entry: dict[str, Any], policy: NetworkPolicy, requester_id: int
    ) -> Track | None:
        """A Track for a playlist/search entry: resolved if yt-dlp already processed it,
        otherwise a placeholder to refresh() before playing. None if it has no usable link."""
        if entry.get("_type", "video") == "video" and entry.get("format_id"):
            try:
                return self._full_track(entry, policy, requester_id, None)
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
            duration=_number(entry.get("duration")),
            kind="remote",
            requester_id=requester_id,
            uploader=entry.get("uploader") or entry.get("channel"),
            webpage_url=link,
            is_live=entry.get("live_status") == "is_live" or bool(entry.get("is_live")),
            extractor=entry.get("ie_key") or entry.get("extractor_key"),
        )


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None

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
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yt_dlp
import yt_dlp.globals
import yt_dlp.plugins
from yt_dlp.extractor import gen_extractor_classes
from yt_dlp.extractor.common import UnsupportedURLIE
from yt_dlp.networking._helper import make_ssl_context
from yt_dlp.utils import DownloadError, PagedList, YoutubeDLError, unsmuggle_url

from music.engine.timefmt import quote_user_text
from music.engine.track import Track
from music.netguard import policy_refusal
from music.policy import MEDIA_SUFFIXES, ExtractorPolicy, NetworkPolicy, PolicyError
from music.resolve.jsruntime import ytdlp_js_options
from music.resolve.local import MediaProbe, StartedProbe, probe_media

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
        refusal = policy_refusal(str(exc))  # the network guard refused a connection
        if refusal is not None:
            return ResolveError(refusal.sentence)
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


#: One logger for every yt-dlp instance (it holds no state).
_YTDL_LOGGER = _YtdlLogger()

#: The yt-dlp options that differ between lookups. yt-dlp reads them from `params` while it
#: extracts (never at construction), so a reused instance takes them per lookup; every other
#: option is fixed per Resolver and part of the instance's cache key.
PER_LOOKUP_OPTIONS = ("extract_flat", "playlistend", "noplaylist")

_extractor_list_lock = threading.Lock()
_extractor_list: tuple[tuple[type, ...], list[type | None]] | None = None
_ssl_contexts_lock = threading.Lock()
_ssl_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}


def default_extractor_classes() -> list[type | None]:
    """yt-dlp's default extractor classes in its own order, with None where its catch-all
    `UnsupportedURLIE` instance goes: what `YoutubeDL.add_default_info_extractors` registers.
    yt-dlp computes it with a regex-matched ordered set over ~1,800 names (~100 ms) for every
    instance; here once per process, and again only if the extractor set changes (plugins)."""
    global _extractor_list
    classes = tuple(gen_extractor_classes())
    with _extractor_list_lock:
        if _extractor_list is None or _extractor_list[0] != classes:
            # yt-dlp's selection: one class per lower-cased IE_NAME (the last one wins, at the
            # first one's place), "end" the catch-all, enabled ones only
            by_name: dict[str, Any] = {ie.IE_NAME.lower(): ie for ie in classes}
            by_name["end"] = UnsupportedURLIE
            enabled = [
                None if ie is UnsupportedURLIE else ie for ie in by_name.values() if ie._ENABLED
            ]
            _extractor_list = (classes, enabled)
        return _extractor_list[1]


def shared_ssl_context(**options: Any) -> ssl.SSLContext:
    """One SSL context per distinct set of options for the whole process. Making one loads
    the CA bundle (~55 ms); a context is safe to share between threads and yt-dlp doesn't
    change it after making it."""
    key = tuple(sorted(options.items()))
    with _ssl_contexts_lock:
        context = _ssl_contexts.get(key)
        if context is None:
            context = _ssl_contexts[key] = make_ssl_context(**options)
        return context


class PolicedYoutubeDL(yt_dlp.YoutubeDL):
    """A YoutubeDL whose every HTTP request (and where it was redirected to) passes the policy.

    The name checks here give an early, precise sentence; the network guard (the `proxy`
    option, music.netguard) is what holds against DNS rebinding and redirects, because it
    checks the address actually connected to. Its refusals become PolicyErrors here.

    Every extractor run (the link's own, and each one a result leads to: an embed, a redirect
    to another site) is first checked against the owner's extractor allow-list, before it
    fetches anything; the generic extractor's result must be direct media unless the owner
    allowed web pages.

    An instance is reused for many lookups in one thread (Resolver keeps one per worker
    thread): `begin_lookup()` sets the policies and per-lookup options and clears what one
    lookup could leave for the next (cookies, counters), `end_lookup()` drops pooled
    connections. The policies are read at every request and extractor run, never captured."""

    def __init__(
        self,
        params: dict[str, Any],
        policy: NetworkPolicy,
        extra_extractors: Sequence[type] = (),
        extractors: ExtractorPolicy | None = None,
    ) -> None:
        self._policy = policy
        self._extractors = extractors if extractors is not None else ExtractorPolicy()
        self._music_busy = False  # inside a lookup (Resolver._lookup)
        #: called with the URL just before the generic extractor runs (set per lookup)
        self.before_generic: Callable[[PolicedYoutubeDL, str], None] | None = None
        super().__init__(params, auto_init=False)
        # Extra extractors first: yt-dlp asks extractors in order and Generic matches anything.
        for ie_cls in extra_extractors:
            self.add_info_extractor(ie_cls())
        self.add_default_info_extractors()

    def add_default_info_extractors(self) -> None:
        if self.params.get("allowed_extractors") is not None:
            super().add_default_info_extractors()  # yt-dlp's own selection by pattern
            return
        for ie_cls in default_extractor_classes():
            self.add_info_extractor(UnsupportedURLIE() if ie_cls is None else ie_cls)

    def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
        director = super().build_request_director(handlers, preferences)
        for handler in director.handlers.values():
            # urllib's handler makes its SSL context at its first request; share one instead
            # (other handlers may adjust theirs, so they keep their own)
            if handler.RH_KEY == "Urllib" and not handler._client_cert:
                handler._make_sslcontext = self._shared_context_maker(handler)
        return director

    @staticmethod
    def _shared_context_maker(handler: Any) -> Callable[..., ssl.SSLContext]:
        def make(legacy_ssl_support: bool | None = None) -> ssl.SSLContext:
            legacy = handler.legacy_ssl_support if legacy_ssl_support is None else legacy_ssl_support
            return shared_ssl_context(
                verify=handler.verify,
                legacy_support=bool(legacy),
                use_certifi=not handler.prefer_system_certs,
            )

        return make

    def begin_lookup(
        self, policy: NetworkPolicy, extractors: ExtractorPolicy, options: dict[str, Any]
    ) -> None:
        """Prepare a (possibly reused) instance for one lookup."""
        self._policy = policy
        self._extractors = extractors
        self.before_generic = None
        for key in PER_LOOKUP_OPTIONS:
            if key in options:
                self.params[key] = options[key]
            else:
                self.params.pop(key, None)
        # what a previous lookup may have left: cookies a site set (a fresh instance starts
        # without any), playlist nesting after an abandoned lookup, counters, the set of
        # messages already shown (it would grow without end)
        if self.params.get("cookiefile") is None:
            self.cookiejar.clear()
        self._YoutubeDL__header_cookies = []
        self._playlist_level = 0
        self._playlist_urls.clear()
        self._num_downloads = 0
        self._num_videos = 0
        self._download_retcode = 0
        self._printed_messages.clear()

    def end_lookup(self) -> None:
        """After a lookup: no connection outlives it. urllib (yt-dlp's default handler) never
        keeps one; a pooling handler (requests, when installed) could keep a tunnel to an
        address checked under an older policy, so its pools are closed."""
        director = self.__dict__.get("_request_director")
        if director is not None:
            for handler in director.handlers.values():
                if handler.RH_KEY != "Urllib":
                    with contextlib.suppress(Exception):
                        handler.close()
        if self.params.get("cookiefile") is None:
            self.cookiejar.clear()

    def _forceprint(self, key: str, info_dict: Any) -> Any:
        # yt-dlp renders the format, thumbnail and subtitle tables at every processing step
        # even when nothing is to be printed (~3 ms a lookup); only the 'video' step uses the
        # result, the others print and discard it
        if (
            key != "video"
            and not self.params["forceprint"].get(key)
            and not self.params["print_to_file"].get(key)
        ):
            return None
        return super()._forceprint(key, info_dict)

    def add_info_extractor(self, ie: Any) -> None:
        super().add_info_extractor(ie)
        if not isinstance(ie, type) and not getattr(ie, "_music_checked", False):
            ie.extract = self._checked_extract(ie, ie.extract)
            ie._music_checked = True

    def _checked_extract(self, ie: Any, extract: Callable[[str], Any]) -> Callable[[str], Any]:
        family = extractor_family(ie.IE_NAME)

        def checked(url: str) -> Any:
            # read at every run: a reused instance must follow the owner's latest list
            allow_list = self._extractors
            allow_list.check(family)
            if family == "generic" and self.before_generic is not None:
                self.before_generic(self, url)
            result = extract(url)
            if family == "generic" and isinstance(result, dict):
                allow_list.check_generic_result(result, url)
            return result

        return checked

    def urlopen(self, req: Any) -> Any:
        url = req if isinstance(req, str) else getattr(req, "url", None) or req.full_url
        self._policy.check_url(url)
        try:
            response = super().urlopen(req)
        except YoutubeDLError as exc:  # HTTPError, ProxyError, TransportError...
            refusal = policy_refusal(str(exc))
            if refusal is not None:
                raise refusal from None
            raise
        final = getattr(response, "url", None)
        if final and final != url:
            try:
                self._policy.check_url(final)
            except PolicyError:
                response.close()
                raise
        return response


class EarlyProbe:
    """The ffmpeg probe of a direct media link, started when the generic extractor takes the
    link itself (so the owner's list allows it), while yt-dlp still fetches it: the ~15-30 ms
    ffmpeg needs overlaps yt-dlp's work instead of following it. Only a link whose path ends
    in a media suffix is probed early (a web page would be fetched twice for nothing); its
    result is used only if yt-dlp's stream URL is that same link. `close()` ends an unused one.
    """

    def __init__(self, url: str, *, timeout: float, proxy: str | None) -> None:
        self.url = url
        self._timeout = timeout
        self._proxy = proxy
        self._probe: StartedProbe | None = None
        self.started = False

    def before_generic(self, ydl: PolicedYoutubeDL, url: str) -> None:
        if self.started or unsmuggle_url(url)[0] != self.url:
            return
        if PurePosixPath(urlsplit(self.url).path).suffix.lower() not in MEDIA_SUFFIXES:
            return
        self.started = True
        # the headers yt-dlp gives a direct result (its standard browser-like ones)
        headers = {str(k): str(v) for k, v in ydl.params.get("http_headers", {}).items()}
        self._probe = StartedProbe(
            self.url, headers=headers, timeout=self._timeout, proxy=self._proxy
        )

    def result_for(self, stream_url: str) -> MediaProbe | None:
        """The early probe's finding if it probed `stream_url`, else None (probe it now)."""
        if self._probe is None or stream_url != self.url:
            return None
        probe, self._probe = self._probe, None
        return probe.result()

    def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()


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
        proxy: str | None = None,
        extractor_policy_getter: Callable[[], ExtractorPolicy] | None = None,
    ) -> None:
        self._policy_getter = policy_getter
        #: the owner's extractor allow-list, read at every lookup; the defaults without one
        self._extractor_policy_getter = extractor_policy_getter or ExtractorPolicy
        #: the network guard's URL (music.netguard): every connection yt-dlp and the direct
        #: media probe make goes through it. None = direct connections (name checks only).
        self.proxy = proxy
        self.search_prefix = search_prefix
        self.timeout = timeout
        self.extra_extractors = tuple(extra_extractors)
        # Direct media links (a .webm on some server) come back from yt-dlp without duration
        # or codec; one ffmpeg probe fills them in.
        self.probe_direct_media = probe_direct_media
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="music-resolve"
        )
        # yt-dlp instances reused per thread (see _lookup): building one costs ~150 ms.
        # Thread-local, so an instance is never used by two threads, and a worker stuck inside
        # yt-dlp keeps its own while its replacement builds a new one.
        self._per_thread = threading.local()
        self._instances: weakref.WeakSet[PolicedYoutubeDL] = weakref.WeakSet()
        self._instances_lock = threading.Lock()
        self._closed = False
        #: yt-dlp instances built so far (for `music status` and tests)
        self.instances_built = 0

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
        """Stop accepting work; don't wait for a yt-dlp call that hangs (sockets time out).
        Idle yt-dlp instances are closed now, busy ones when their lookup ends."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._instances_lock:
            self._closed = True
            idle = [ydl for ydl in self._instances if not getattr(ydl, "_music_busy", False)]
        for ydl in idle:
            with contextlib.suppress(Exception):
                ydl.close()

    # ---- blocking building blocks for the job scheduler (music.resolve.service) -------

    def policy(self) -> NetworkPolicy:
        """The network policy in force now (read at every request)."""
        return self._policy_getter()

    def extractor_family_sync(self, target: str) -> str:
        """Which site a link or search (`ytsearch1:words`) belongs to: `youtube`,
        `soundcloud`, ..., `generic`. Blocking: it asks the extractors in the order yt-dlp
        will (the first call compiles their patterns, ~0.4 s; later ~8 ms for a link only the
        generic extractor takes), on this thread's yt-dlp instance, and remembers the match:
        the lookup of the same target that follows in this thread asks only that extractor."""
        try:
            ydl = self._thread_instance(self._options(flat=True))
        except Exception:  # yt-dlp can't be set up: name the site without it
            log.debug("could not set up yt-dlp to name the site", exc_info=True)
        else:
            for key, ie in ydl._ies.items():
                try:
                    suitable = ie.suitable(target)
                except Exception:  # a broken pattern in one extractor must not stop the lookup
                    continue
                if suitable:
                    self._per_thread.match = (ydl, target, key)
                    return extractor_family(ie.IE_NAME)
            return "generic"
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

    def known_extractor_families_sync(self) -> set[str]:
        """Every extractor family yt-dlp (with plugins and extra extractors) knows. Blocking."""
        if not yt_dlp.globals.all_plugins_loaded.value:
            yt_dlp.plugins.load_all_plugins()
        return {
            extractor_family(ie.IE_NAME)
            for ie in itertools.chain(self.extra_extractors, gen_extractor_classes())
        }

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
        early = self._early_probe(url)
        with contextlib.ExitStack() as cleanup:
            ydl = cleanup.enter_context(self._lookup(self._options(flat=True), policy, early))
            if early is not None:
                cleanup.callback(early.close)
            # process=False: the playlist's entries stay a lazy generator/paged list instead
            # of being listed in full before anything is returned.
            raw = ydl.extract_info(
                url, download=False, process=False, ie_key=self._remembered_extractor(ydl, url)
            )
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
            yield self._full_track(info, policy, requester_id, url, early)

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
            "logger": _YTDL_LOGGER,
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
        if self.proxy:
            opts["proxy"] = self.proxy
        if limit is not None:
            opts["playlistend"] = max(1, limit)
        # YouTube needs a JavaScript runtime; Downloader's `pip install -t` hides deno from
        # yt-dlp's own search, so pass the one we found (runs `--version` once per process).
        opts.update(ytdlp_js_options())
        return opts

    def _extract(
        self,
        target: str,
        policy: NetworkPolicy,
        opts: dict[str, Any],
        early: EarlyProbe | None = None,
    ) -> dict[str, Any]:
        with self._lookup(opts, policy, early) as ydl:
            info = ydl.extract_info(
                target, download=False, ie_key=self._remembered_extractor(ydl, target)
            )
        if not info:
            raise ResolveError("I found nothing at that link.")
        return info

    def _build(self, opts: dict[str, Any], policy: NetworkPolicy) -> PolicedYoutubeDL:
        ydl = PolicedYoutubeDL(
            {k: v for k, v in opts.items() if k not in PER_LOOKUP_OPTIONS},
            policy,
            self.extra_extractors,
            self._extractor_policy_getter(),
        )
        with self._instances_lock:
            self.instances_built += 1
            self._instances.add(ydl)
        return ydl

    def _thread_instance(self, opts: dict[str, Any]) -> PolicedYoutubeDL:
        """This thread's instance for these options (built if needed), not prepared for a
        lookup: for reading its extractor list."""
        key = _fixed_options_key(opts)
        instances: dict[str, PolicedYoutubeDL] = self._per_thread.__dict__.setdefault(
            "instances", {}
        )
        ydl = instances.get(key)
        if ydl is None:
            ydl = instances[key] = self._build(opts, self._policy_getter())
        return ydl

    def _remembered_extractor(self, ydl: PolicedYoutubeDL, target: str) -> str | None:
        """The extractor extractor_family_sync found for `target` on this very instance, if
        that was the last thing it looked at in this thread (then yt-dlp needn't ask all
        ~1,800 extractors again: it would pick the same first suitable one)."""
        match = self._per_thread.__dict__.pop("match", None)
        if match is not None and match[0] is ydl and match[1] == target:
            return match[2]
        return None

    def _early_probe(self, url: str | None) -> EarlyProbe | None:
        if not self.probe_direct_media or url is None:
            return None
        return EarlyProbe(url, timeout=min(self.timeout, 15.0), proxy=self.proxy)

    @contextlib.contextmanager
    def _lookup(
        self, opts: dict[str, Any], policy: NetworkPolicy, early: EarlyProbe | None = None
    ) -> Iterator[PolicedYoutubeDL]:
        """This thread's yt-dlp instance for these options, prepared for one lookup with the
        policies in force now. The extractor set, the request handlers and the SSL context are
        built once per thread (and per set of fixed options), not per lookup."""
        key = _fixed_options_key(opts)
        instances: dict[str, PolicedYoutubeDL] = self._per_thread.__dict__.setdefault(
            "instances", {}
        )
        ydl = instances.get(key)
        throwaway = ydl is not None and ydl._music_busy  # re-entered in this thread
        if ydl is None or throwaway:
            ydl = self._build(opts, policy)
            if not throwaway:
                instances[key] = ydl
        ydl.begin_lookup(policy, self._extractor_policy_getter(), opts)
        if early is not None:
            ydl.before_generic = early.before_generic
        ydl._music_busy = True
        try:
            yield ydl
        finally:
            ydl.before_generic = None
            ydl.end_lookup()
            with self._instances_lock:
                ydl._music_busy = False
                retire = throwaway or self._closed
            if retire:
                if not throwaway and instances.get(key) is ydl:
                    del instances[key]
                with contextlib.suppress(Exception):
                    ydl.close()

    # ---- blocking work (executor threads) ---------------------------------------------

    def _resolve_url_sync(
        self, url: str, policy: NetworkPolicy, requester_id: int, limit: int
    ) -> ResolveResult:
        early = self._early_probe(url)
        try:
            # One more than the limit tells whether the playlist was cut.
            info = self._extract(url, policy, self._options(flat=True, limit=limit + 1), early)
            if info.get("_type") not in ("playlist", "multi_video"):
                return ResolveResult([self._full_track(info, policy, requester_id, url, early)])
        finally:
            if early is not None:
                early.close()
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
            early = self._early_probe(url)
            try:
                info = self._extract(
                    url, policy, self._options(flat=False, limit=1, single=True), early
                )
                if info.get("_type") in ("playlist", "multi_video"):
                    entries = [e for e in info.get("entries") or [] if e]
                    if not entries:
                        raise ResolveError("That link no longer has anything I can play.")
                    info = entries[0]
                fresh = self._full_track(info, policy, track.requester_id, url, early)
            finally:
                if early is not None:
                    early.close()
        return apply_fresh(track, fresh)

    def _full_track(
        self,
        info: dict[str, Any],
        policy: NetworkPolicy,
        requester_id: int,
        query: str | None,
        early: EarlyProbe | None = None,
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
            probe = early.result_for(stream_url) if early is not None else None
            if probe is None:
                probe = probe_media(
                    stream_url, headers=headers, timeout=min(self.timeout, 15.0), proxy=self.proxy
                )
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


def _fixed_options_key(opts: dict[str, Any]) -> str:
    """What identifies a reusable yt-dlp instance: every option but the per-lookup ones."""
    return repr(sorted((k, repr(v)) for k, v in opts.items() if k not in PER_LOOKUP_OPTIONS))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None

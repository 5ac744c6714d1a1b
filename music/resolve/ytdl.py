"""yt-dlp under the cog's rules: PolicedYoutubeDL checks every request against the network
policy and every extractor run against the owner's allow-list, and can be reused for many
lookups; the options every lookup runs with."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import yt_dlp
from yt_dlp.utils import YoutubeDLError

from music.netguard import policy_refusal
from music.policy import ExtractorPolicy, NetworkPolicy, PolicyError
from music.resolve import ytdl_compat
from music.resolve.jsruntime import ytdlp_js_options
from music.resolve.urls import extractor_family

log = logging.getLogger("red.music.resolve")

#: The yt-dlp options that differ between lookups. yt-dlp reads them from `params` while it
#: extracts (never at construction), so a reused instance takes them per lookup; every other
#: option is fixed per Resolver and part of the instance's cache key.
PER_LOOKUP_OPTIONS = ("extract_flat", "playlistend", "noplaylist")


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

#: The sites whose extractors run JavaScript (YouTube's signature and "n" challenges, yt-dlp
#: 2025.11+): the runtime is looked for (once per process) when one of them first runs.
JS_RUNTIME_FAMILIES = frozenset({"youtube"})


def lookup_options(
    *,
    timeout: float,
    proxy: str | None,
    flat: bool,
    limit: int | None = None,
    single: bool = False,
) -> dict[str, Any]:
    """yt-dlp's options for one lookup: metadata only, audio preferred, quiet."""
    opts: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _YTDL_LOGGER,
        # a DASH format's URL is its manifest, which the cog does not read (ffmpeg reads only
        # a pipe, see music.audio.pipe_input): any other format first
        "format": "bestaudio[protocol!*=dash]/best[protocol!*=dash]/bestaudio/best",
        "skip_download": True,
        "extract_flat": "in_playlist" if flat else False,
        # Words are searched explicitly with the search prefix; a link never falls back to
        # a search.
        "default_search": "error",
        "socket_timeout": timeout,
        "cachedir": False,
        "noplaylist": single,
        "color": {"stderr": "no_color", "stdout": "no_color"},
    }
    if proxy:
        opts["proxy"] = proxy
    if limit is not None:
        opts["playlistend"] = max(1, limit)
    # No JavaScript runtime here: looking for one runs `<runtime> --version` (~75 ms), and only
    # YouTube needs one; PolicedYoutubeDL hands it over when a YouTube extractor runs.
    return opts


def fixed_options_key(opts: dict[str, Any]) -> str:
    """What identifies a reusable yt-dlp instance: every option but the per-lookup ones."""
    return repr(sorted((k, repr(v)) for k, v in opts.items() if k not in PER_LOOKUP_OPTIONS))


class PolicedYoutubeDL(yt_dlp.YoutubeDL):
    """A YoutubeDL whose every HTTP request (and where it was redirected to) passes the policy.

    The name checks here give an early, precise sentence; the network guard (the `proxy`
    option, music.netguard) is what holds against DNS rebinding and redirects, because it
    checks the address actually connected to. Its refusals become PolicyErrors here.

    Every extractor run (the link's own, and each one a result leads to: an embed, a redirect
    to another site) is first checked against the owner's extractor allow-list, before it
    fetches anything; the generic extractor's result must be direct media unless the owner
    allowed web pages.

    An instance is reused for many lookups in one thread (music.resolve.instances):
    `begin_lookup()` sets the policies and per-lookup options and clears what one lookup could
    leave for the next (cookies, counters), `end_lookup()` drops pooled connections. The
    policies are read at every request and extractor run, never captured. What this needs of
    yt-dlp's internals goes through music.resolve.ytdl_compat."""

    def __init__(
        self,
        params: dict[str, Any],
        policy: NetworkPolicy,
        extra_extractors: Sequence[type] = (),
        extractors: ExtractorPolicy | None = None,
    ) -> None:
        self._policy = policy
        self._extractors = extractors if extractors is not None else ExtractorPolicy()
        self._music_busy = False  # inside a lookup (YtdlInstances.lookup)
        #: called with the URL just before the generic extractor runs (set per lookup)
        self.before_generic: Callable[[PolicedYoutubeDL, str], None] | None = None
        super().__init__(params, auto_init=False)
        #: yt-dlp's own choice of runtimes (deno on PATH), kept for when we find none
        self._default_js_runtimes = self.params.get("js_runtimes")
        # Extra extractors first: yt-dlp asks extractors in order and Generic matches anything.
        for ie_cls in extra_extractors:
            self.add_info_extractor(ie_cls())
        self.add_default_info_extractors()

    def add_default_info_extractors(self) -> None:
        classes = None
        if self.params.get("allowed_extractors") is None:  # else yt-dlp's selection by pattern
            classes = ytdl_compat.default_extractor_classes()
        if classes is None:
            super().add_default_info_extractors()
            return
        for ie_cls in classes:
            self.add_info_extractor(
                ytdl_compat.catch_all_extractor() if ie_cls is None else ie_cls
            )

    def build_request_director(self, handlers: Any, preferences: Any = None) -> Any:
        director = super().build_request_director(handlers, preferences)
        ytdl_compat.share_ssl_contexts(director)
        return director

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
        # cookies a site set in a previous lookup (a fresh instance starts without any)
        if self.params.get("cookiefile") is None:
            self.cookiejar.clear()
        ytdl_compat.clear_lookup_state(self)

    def end_lookup(self) -> None:
        """After a lookup: no connection outlives it, no cookie stays for the next."""
        ytdl_compat.close_pooled_connections(self)
        if self.params.get("cookiefile") is None:
            self.cookiejar.clear()

    def _forceprint(self, *args: Any, **kwargs: Any) -> Any:
        if ytdl_compat.forceprint_is_idle(self, args, kwargs):
            return None
        return super()._forceprint(*args, **kwargs)

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
            if family in JS_RUNTIME_FAMILIES:
                self._use_js_runtime()
            if family == "generic" and self.before_generic is not None:
                self.before_generic(self, url)
            result = extract(url)
            if family == "generic" and isinstance(result, dict):
                allow_list.check_generic_result(result, url)
            return result

        return checked

    def _use_js_runtime(self) -> None:
        """Give yt-dlp the JavaScript runtime found on this machine (Downloader's `pip install
        -t` hides the deno package's binary from yt-dlp's own search). Looked for once per
        process, at the first run of an extractor that needs one; read again at every run, so
        a runtime found later (`[p]music doctor` looks again) reaches reused instances too."""
        wanted = ytdlp_js_options().get("js_runtimes", self._default_js_runtimes)
        if self.params.get("js_runtimes") != wanted:
            self.params["js_runtimes"] = wanted
            ytdl_compat.forget_js_runtimes(self)

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

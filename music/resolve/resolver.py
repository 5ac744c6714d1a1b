"""Resolver: user text or links -> Tracks, with yt-dlp. Blocking building blocks that
music.resolve.service runs in its job threads; nothing here runs on the event loop.

Every URL a user gives, every URL yt-dlp requests while extracting and every final stream URL
passes the network policy, so a link can't make the bot fetch internal addresses.

The parts, one job each: urls (link or words), errors (yt-dlp's failures as sentences), ytdl
(yt-dlp under the policies), ytdl_compat (yt-dlp's private internals, checked), instances
(one reused yt-dlp per thread), tracks (info dicts as Tracks), playlist (lazy playlists),
probe (ffmpeg's look at direct media)."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from yt_dlp.extractor import gen_extractor_classes
from yt_dlp.utils import unified_timestamp

from music.engine.timefmt import quote_user_text
from music.engine.track import Track
from music.policy import ExtractorPolicy, NetworkPolicy
from music.resolve import ytdl_compat
from music.resolve.errors import ErrorKind, ResolveError, classify_error, to_resolve_error
from music.resolve.instances import YtdlInstances
from music.resolve.local import default_ffmpeg
from music.resolve.playlist import PlaylistReader
from music.resolve.probe import EarlyProbe, direct_prober
from music.resolve.tracks import Prober, ResolveResult, apply_fresh, entry_track, full_track
from music.resolve.urls import DEFAULT_STREAM_LIFETIME, as_url, extractor_family, stream_expiry
from music.resolve.warmup import (
    HTTP_DATE,
    WARM_URL,
    Pacer,
    WarmUpReport,
    compile_patterns,
    direct_link_result,
    warm_up_sync,
)
from music.resolve.ytdl import PER_LOOKUP_OPTIONS, PolicedYoutubeDL, lookup_options

from ..i18n import _

__all__ = [
    # re-exported: callers import these from here
    "DEFAULT_STREAM_LIFETIME",
    "ErrorKind",
    "PlaylistReader",
    "ResolveError",
    "ResolveResult",
    "Resolver",
    "apply_fresh",
    "as_url",
    "classify_error",
    "extractor_family",
    "stream_expiry",
    "to_resolve_error",
]

log = logging.getLogger("red.music.resolve")

#: the longest an ffmpeg probe of a direct media link may take
_PROBE_TIMEOUT = 15.0
#: the warm-up's policy: no address at all (it fetches nothing; if yt-dlp ever tried, no DNS)
_REFUSE_ALL = NetworkPolicy(deny=["0.0.0.0/0", "::/0"])


class Resolver:
    """Turns queries into Tracks with yt-dlp, in the caller's thread (blocking)."""

    def __init__(
        self,
        policy_getter: Callable[[], NetworkPolicy],
        *,
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
        # an instance is built with the extra extractors of the moment (a test may change them)
        self._instances = YtdlInstances(self._new_instance, lambda: tuple(self.extra_extractors))
        #: the last warm-up's report (None before one ran); see warm_up_sync
        self.warm_up_report: WarmUpReport | None = None

    @property
    def instances_built(self) -> int:
        """yt-dlp instances built so far (each costs ~150 ms; they are reused per thread)."""
        return self._instances.built

    @property
    def warmed(self) -> bool:
        """Whether a warm-up finished: a lookup in its thread pays none of yt-dlp's first-use
        costs."""
        return self.warm_up_report is not None and self.warm_up_report.done

    def close(self) -> None:
        """Idle yt-dlp instances are closed now, busy ones when their lookup ends."""
        self._instances.close()

    def warm_up_sync(
        self, should_stop: Callable[[], bool], freeze_as_it_goes: bool = False
    ) -> WarmUpReport:
        """Pay yt-dlp's first-use costs in this thread, as a lookup here would (music.resolve.
        warmup): its instance, every extractor's URL pattern, the generic extractor's module,
        the shared SSL context, the date formats, the processing of a result; and finding
        ffmpeg for the direct-link probe. Blocking, paced so that the event loop keeps
        the GIL; stops as soon as `should_stop()` is true. Never raises. `freeze_as_it_goes`:
        see warmup.Pacer (only when the process froze before, as the cog's first load does)."""
        ydl: list[PolicedYoutubeDL] = []

        def build_instance(pacer: Pacer) -> None:
            ydl.append(self._instances.for_this_thread(self._options(flat=True), self.policy()))

        def compile_extractor_patterns(pacer: Pacer) -> None:
            registered = ytdl_compat.registered_extractors(ydl[0])
            if registered is None:
                ytdl_compat.load_plugins()
                extractors = [*self.extra_extractors, *gen_extractor_classes()]
            else:
                extractors = [ie for _key, ie in registered]
            compile_patterns(extractors, pacer)

        def first_extract(pacer: Pacer) -> None:
            # what the first extract_info of a direct link pays once: the generic extractor's
            # module (it imports YouTube's), the request handlers and their SSL context, the
            # Last-Modified date's formats, the processing of the result
            ydl[0].get_info_extractor("Generic")
            pacer.pause()
            ytdl_compat.warm_request_handlers(ydl[0])
            pacer.pause()
            timestamp = unified_timestamp(HTTP_DATE)
            pacer.pause()
            # processing a made-up direct-link result compiles the regexes of format sorting and
            # URL sanitizing (the patterns above pushed them out of Python's cache); under a
            # policy that refuses every address, though nothing here fetches anything
            with self._lookup(self._options(flat=True), _REFUSE_ALL) as ready:
                ready.process_ie_result(direct_link_result(WARM_URL, timestamp), download=False)

        def find_ffmpeg(pacer: Pacer) -> None:
            # a direct link's probe asks imageio-ffmpeg for its binary: the first time it
            # imports the package and runs `ffmpeg -version` to check it (~40-100 ms)
            if self.probe_direct_media:
                default_ffmpeg()

        report = warm_up_sync(
            [
                ("instance", build_instance),
                ("patterns", compile_extractor_patterns),
                ("first extract", first_extract),
                ("ffmpeg", find_ffmpeg),
            ],
            should_stop,
            freeze_as_it_goes=freeze_as_it_goes,
        )
        self.warm_up_report = report
        return report

    def policy(self) -> NetworkPolicy:
        """The network policy in force now (read at every request)."""
        return self._policy_getter()

    # ---- naming the site (for its circuit breaker) -------------------------------------

    def extractor_family_sync(self, target: str) -> str:
        """Which site a link or search (`ytsearch1:words`) belongs to: `youtube`,
        `soundcloud`, ..., `generic`. Blocking: it asks the extractors in the order yt-dlp
        will (the first call compiles their patterns, ~0.4 s; later ~8 ms for a link only the
        generic extractor takes), on this thread's yt-dlp instance, and remembers the match:
        the lookup of the same target that follows in this thread asks only that extractor."""
        try:
            ydl = self._instances.for_this_thread(self._options(flat=True), self.policy())
        except Exception:  # yt-dlp can't be set up: name the site without it
            log.debug("could not set up yt-dlp to name the site", exc_info=True)
        else:
            registered = ytdl_compat.registered_extractors(ydl)
            if registered is not None:
                for key, ie in registered:
                    try:
                        suitable = ie.suitable(target)
                    except Exception:  # a broken pattern in one extractor must not stop it
                        continue
                    if suitable:
                        self._instances.remember_match(ydl, target, key)
                        return extractor_family(ie.IE_NAME)
                return "generic"
        ytdl_compat.load_plugins()  # else a plugin site would be named "generic"
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
        ytdl_compat.load_plugins()
        return {
            extractor_family(ie.IE_NAME)
            for ie in itertools.chain(self.extra_extractors, gen_extractor_classes())
        }

    def search_target(self, text: str, n: int = 1) -> str:
        """The yt-dlp target for searching `text` with this resolver's search prefix."""
        return f"{self.search_prefix}{max(1, n)}:{text}"

    # ---- lookups (blocking) ------------------------------------------------------------

    @contextlib.contextmanager
    def open_link_sync(
        self, url: str, policy: NetworkPolicy, requester_id: int, limit: int
    ) -> Iterator[Track | PlaylistReader]:
        """A fully resolved Track for a single video, or a PlaylistReader whose entries are
        listed lazily while the block is open (yt-dlp stays open for its pages). The URL
        itself must have passed the policy already; every request yt-dlp makes does."""
        early = self._early_probe(url)
        with contextlib.ExitStack() as cleanup:
            ydl = cleanup.enter_context(self._lookup(self._options(flat=True), policy, early))
            if early is not None:
                cleanup.callback(early.close)
            # process=False: the playlist's entries stay a lazy generator/paged list instead
            # of being listed in full before anything is returned.
            raw = ydl.extract_info(
                url,
                download=False,
                process=False,
                ie_key=self._instances.remembered_extractor(ydl, url),
            )
            if not raw:
                raise ResolveError(_("I found nothing at that link."))
            if raw.get("_type") in ("playlist", "multi_video"):
                yield self._playlist(raw, policy, requester_id, limit)
                return
            # A video, or a link that redirects elsewhere: let yt-dlp finish (format choice,
            # following `url` results) exactly as extract_info(process=True) would.
            info = ydl.process_ie_result(raw, download=False)
            if not info:
                raise ResolveError(_("I found nothing at that link."))
            if info.get("_type") in ("playlist", "multi_video"):
                yield self._playlist(info, policy, requester_id, limit)
                return
            yield full_track(info, policy, requester_id, url, self._prober(early))

    def resolve_search_sync(self, text: str, policy: NetworkPolicy, requester_id: int) -> Track:
        """The first search result, fully resolved."""
        info = self._extract(self.search_target(text), policy, self._options(flat=False, limit=1))
        entries = [e for e in info.get("entries") or [] if e]
        if not entries:
            raise ResolveError(_("I found nothing for `{text}`.").format(text=quote_user_text(text)))
        return full_track(entries[0], policy, requester_id, None, self._prober(None))

    def search_sync(
        self, text: str, n: int, policy: NetworkPolicy, requester_id: int
    ) -> list[Track]:
        """Up to n unresolved search results."""
        n = max(1, n)
        info = self._extract(self.search_target(text, n), policy, self._options(flat=True, limit=n))
        entries = [e for e in info.get("entries") or [] if e]
        tracks = [self._entry_track(e, policy, requester_id) for e in entries[:n]]
        return [t for t in tracks if t is not None]

    def refresh_sync(self, track: Track, policy: NetworkPolicy) -> Track:
        """A copy of `track` (same id) with a fresh stream URL, headers and codec info. The
        page URL must have passed the policy."""
        if track.kind == "local":
            return track.copy()
        url = as_url(track.webpage_url or track.query)
        if url is None:  # only words are known: search again
            return apply_fresh(
                track, self.resolve_search_sync(track.query, policy, track.requester_id)
            )
        early = self._early_probe(url)
        try:
            opts = self._options(flat=False, limit=1, single=True)
            info = self._extract(url, policy, opts, early)
            if info.get("_type") in ("playlist", "multi_video"):
                entries = [e for e in info.get("entries") or [] if e]
                if not entries:
                    raise ResolveError(_("That link no longer has anything I can play."))
                info = entries[0]
            fresh = full_track(info, policy, track.requester_id, url, self._prober(early))
        finally:
            if early is not None:
                early.close()
        return apply_fresh(track, fresh)

    # ---- plumbing ----------------------------------------------------------------------

    def _options(
        self, *, flat: bool, limit: int | None = None, single: bool = False
    ) -> dict[str, Any]:
        return lookup_options(
            timeout=self.timeout, proxy=self.proxy, flat=flat, limit=limit, single=single
        )

    def _new_instance(self, opts: dict[str, Any], policy: NetworkPolicy) -> PolicedYoutubeDL:
        return PolicedYoutubeDL(
            {k: v for k, v in opts.items() if k not in PER_LOOKUP_OPTIONS},
            policy,
            self.extra_extractors,
            self._extractor_policy_getter(),
        )

    def _lookup(
        self, opts: dict[str, Any], policy: NetworkPolicy, early: EarlyProbe | None = None
    ) -> contextlib.AbstractContextManager[PolicedYoutubeDL]:
        """This thread's yt-dlp instance for these options, prepared for one lookup with the
        policies in force now."""
        return self._instances.lookup(
            opts,
            policy,
            self._extractor_policy_getter(),
            early.before_generic if early is not None else None,
        )

    def _extract(
        self,
        target: str,
        policy: NetworkPolicy,
        opts: dict[str, Any],
        early: EarlyProbe | None = None,
    ) -> dict[str, Any]:
        with self._lookup(opts, policy, early) as ydl:
            info = ydl.extract_info(
                target, download=False, ie_key=self._instances.remembered_extractor(ydl, target)
            )
        if not info:
            raise ResolveError(_("I found nothing at that link."))
        return info  # type: ignore[no-any-return]

    def _early_probe(self, url: str | None) -> EarlyProbe | None:
        if not self.probe_direct_media or url is None:
            return None
        return EarlyProbe(url, timeout=min(self.timeout, _PROBE_TIMEOUT), proxy=self.proxy)

    def _prober(self, early: EarlyProbe | None) -> Prober | None:
        if not self.probe_direct_media:
            return None
        return direct_prober(early, timeout=min(self.timeout, _PROBE_TIMEOUT), proxy=self.proxy)

    def _entry_track(
        self, entry: dict[str, Any], policy: NetworkPolicy, requester_id: int
    ) -> Track | None:
        return entry_track(entry, policy, requester_id, self._prober(None))

    def _playlist(
        self, info: dict[str, Any], policy: NetworkPolicy, requester_id: int, limit: int
    ) -> PlaylistReader:
        make_track = functools.partial(self._entry_track, policy=policy, requester_id=requester_id)
        return PlaylistReader(info, make_track, limit)

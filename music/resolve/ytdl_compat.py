"""Every use of yt-dlp's private internals, in one place, each checked before it is relied on.

The resolver reaches past yt-dlp's public API in a few places to save time: it reuses one
YoutubeDL per thread (clearing what a lookup leaves behind), shares one SSL context per process,
builds the default extractor list once, names a link's site with the instance's own extractor
list, and skips rendering tables nobody prints. Any of these names can change in a yt-dlp patch
release, and owners update yt-dlp without asking. So each one is looked up here, by the names
below, when it is used; when one is missing (or has another shape), the resolver takes the
public path instead (slower or less precise, never wrong) and this module logs one line per
feature saying so. Nothing here raises because yt-dlp changed.

The names are module constants so that a test can rename one and run the fallback path.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any

import yt_dlp
from yt_dlp.extractor import gen_extractor_classes

log = logging.getLogger("red.music.resolve.ytdl_compat")

# ---- the private names relied on ---------------------------------------------------------------

#: YoutubeDL: its registered extractors, in the order it asks them (a dict: key -> extractor)
IES = "_ies"
#: YoutubeDL: cookies a result's headers carried, applied to later requests (name-mangled)
HEADER_COOKIES = "_YoutubeDL__header_cookies"
#: YoutubeDL: per-run counters and sets, reset between lookups on a reused instance
LOOKUP_INTS = ("_playlist_level", "_num_downloads", "_num_videos", "_download_retcode")
LOOKUP_SETS = ("_playlist_urls", "_printed_messages")
#: YoutubeDL: the cached request director (a functools.cached_property)
REQUEST_DIRECTOR = "_request_director"
#: YoutubeDL: renders the tables for --print; the resolver skips the ones nobody prints
FORCEPRINT = "_forceprint"
#: RequestHandler: makes the SSL context for a handler; and the client certificate it uses
MAKE_SSLCONTEXT = "_make_sslcontext"
CLIENT_CERT = "_client_cert"
#: yt-dlp's SSL context factory (a private module)
SSL_HELPER_MODULE = "yt_dlp.networking._helper"
#: InfoExtractor: whether an extractor is on yt-dlp's default list
ENABLED = "_ENABLED"
#: YoutubeDL: the runtimes made from params["js_runtimes"] (a functools.cached_property)
JS_RUNTIMES = "_js_runtimes"
#: yt-dlp's plugin loading (public modules, but young: 2025): the flag and the loader
PLUGINS_LOADED = "all_plugins_loaded"
LOAD_PLUGINS = "load_all_plugins"

_reported: set[str] = set()
_reported_lock = threading.Lock()


def _fall_back(feature: str, missing: str, consequence: str) -> None:
    """One log line per feature and process: what is missing and what that costs."""
    with _reported_lock:
        if feature in _reported:
            return
        _reported.add(feature)
    log.warning(
        "yt-dlp %s has no %s; %s. The music cog still works; updating the cog may restore it.",
        yt_dlp.version.__version__,
        missing,
        consequence,
    )


# ---- the default extractor list, built once ----------------------------------------------------

_extractor_list_lock = threading.Lock()
_extractor_list: tuple[tuple[type, ...], list[type | None]] | None = None


def _unsupported_url_ie() -> type | None:
    try:
        from yt_dlp.extractor.common import UnsupportedURLIE
    except ImportError:
        return None
    return UnsupportedURLIE


def default_extractor_classes() -> list[type | None] | None:
    """yt-dlp's default extractor classes in its own order, with None where its catch-all
    `UnsupportedURLIE` instance goes: what `YoutubeDL.add_default_info_extractors` registers.
    yt-dlp computes it with a regex-matched ordered set over ~1,800 names (~100 ms) for every
    instance; here once per process, and again only if the extractor set changes (plugins).
    None when yt-dlp no longer marks extractors the way this copies: use its own method."""
    from yt_dlp.extractor.common import InfoExtractor

    unsupported = _unsupported_url_ie()
    if unsupported is None or not hasattr(InfoExtractor, ENABLED):
        _fall_back(
            "extractor-list",
            f"UnsupportedURLIE or InfoExtractor.{ENABLED}",
            "each yt-dlp instance selects its extractors itself (~100 ms more per instance)",
        )
        return None
    global _extractor_list
    classes = tuple(gen_extractor_classes())
    with _extractor_list_lock:
        if _extractor_list is None or _extractor_list[0] != classes:
            # yt-dlp's selection: one class per lower-cased IE_NAME (the last one wins, at the
            # first one's place), "end" the catch-all, enabled ones only
            by_name: dict[str, Any] = {ie.IE_NAME.lower(): ie for ie in classes}
            by_name["end"] = unsupported
            enabled = [
                None if ie is unsupported else ie
                for ie in by_name.values()
                if getattr(ie, ENABLED, True)
            ]
            _extractor_list = (classes, enabled)
        return _extractor_list[1]


def catch_all_extractor() -> Any:
    """The instance registered where default_extractor_classes() says None."""
    unsupported = _unsupported_url_ie()
    assert unsupported is not None  # default_extractor_classes() returned a list
    return unsupported()


# ---- naming a link's site with an instance's extractors ------------------------------------------


def registered_extractors(ydl: Any) -> Iterable[tuple[str, Any]] | None:
    """(key, extractor) pairs in the order `ydl` asks them, or None when that can't be read
    (then the site is named from yt-dlp's public class list, and yt-dlp asks every extractor
    again for the lookup instead of going straight to the one found)."""
    ies = vars(ydl).get(IES)
    if not isinstance(ies, dict):
        _fall_back(
            "extractor-order",
            f"YoutubeDL.{IES}",
            "a link's site is named from yt-dlp's class list, and each lookup asks every "
            "extractor again (~8 ms more per lookup)",
        )
        return None
    return list(ies.items())


def load_plugins() -> None:
    """Load yt-dlp's plugin extractors if they aren't yet (yt-dlp loads them at the first
    YoutubeDL(); before that a plugin site would be named "generic")."""
    try:
        loaded = bool(getattr(importlib.import_module("yt_dlp.globals"), PLUGINS_LOADED).value)
        load = getattr(importlib.import_module("yt_dlp.plugins"), LOAD_PLUGINS)
    except (ImportError, AttributeError):
        _fall_back(
            "plugins",
            f"yt_dlp.globals.{PLUGINS_LOADED} or yt_dlp.plugins.{LOAD_PLUGINS}",
            "a plugin site may be named 'generic' until the first lookup",
        )
        return
    if not loaded:
        load()


def forget_js_runtimes(ydl: Any) -> None:
    """After params["js_runtimes"] changed: yt-dlp made its runtimes from the old value the
    first time it needed one, and keeps them; drop them so that it makes them again. (Under
    another name, the old runtimes may stay until the instance is replaced: only after the
    owner installs a runtime while the bot runs.)"""
    vars(ydl).pop(JS_RUNTIMES, None)


# ---- reusing one instance for many lookups -----------------------------------------------------


def _request_director_is_cached(ydl_class: type) -> bool:
    return isinstance(
        inspect.getattr_static(ydl_class, REQUEST_DIRECTOR, None), functools.cached_property
    )


def reusable(ydl: Any) -> bool:
    """Whether everything one lookup leaves in `ydl` can be cleared for the next (see
    clear_lookup_state and close_pooled_connections). When not, the resolver closes each
    instance after its lookup and builds a new one for the next: ~150 ms more per lookup."""
    state = vars(ydl)
    missing = [name for name in (HEADER_COOKIES, *LOOKUP_INTS, *LOOKUP_SETS) if name not in state]
    if not _request_director_is_cached(type(ydl)):
        missing.append(REQUEST_DIRECTOR)
    if missing:
        _fall_back(
            "reuse",
            "YoutubeDL." + ", YoutubeDL.".join(missing),
            "every lookup builds a new yt-dlp instance (~150 ms more per lookup)",
        )
        return False
    return True


def clear_lookup_state(ydl: Any) -> None:
    """Clear what a previous lookup may have left: cookies a result's headers carried (a fresh
    instance starts without any), playlist nesting after an abandoned lookup, counters, the set
    of messages already shown (it would grow without end). Only names present are touched: an
    instance without them is not reused (see reusable)."""
    state = vars(ydl)
    if HEADER_COOKIES in state:
        setattr(ydl, HEADER_COOKIES, [])
    for name in LOOKUP_INTS:
        if name in state:
            setattr(ydl, name, 0)
    for name in LOOKUP_SETS:
        if isinstance(state.get(name), set):
            state[name].clear()


def close_pooled_connections(ydl: Any) -> None:
    """After a lookup: no connection outlives it. urllib (yt-dlp's default handler) never
    keeps one; a pooling handler (requests, when installed) could keep a tunnel to an address
    checked under an older policy, so its pools are closed. Without the director's name, the
    instance is not reused (see reusable) and its close() ends them."""
    director = vars(ydl).get(REQUEST_DIRECTOR)
    for handler in request_handlers(director):
        if getattr(handler, "RH_KEY", None) != "Urllib":
            with contextlib.suppress(Exception):
                handler.close()


def request_handlers(director: Any) -> list[Any]:
    """A request director's handlers (a public attribute of yt-dlp's networking framework)."""
    handlers = getattr(director, "handlers", None)
    return list(handlers.values()) if isinstance(handlers, dict) else []


# ---- one SSL context per process ---------------------------------------------------------------

_ssl_contexts_lock = threading.Lock()
_ssl_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}


def _ssl_context_factory() -> Callable[..., ssl.SSLContext] | None:
    try:
        module = importlib.import_module(SSL_HELPER_MODULE)
    except ImportError:
        return None
    factory = getattr(module, "make_ssl_context", None)
    return factory if callable(factory) else None


def shared_ssl_context(**options: Any) -> ssl.SSLContext:
    """One SSL context per distinct set of options for the whole process. Making one loads
    the CA bundle (~55 ms); a context is safe to share between threads and yt-dlp doesn't
    change it after making it."""
    factory = _ssl_context_factory()
    assert factory is not None  # share_ssl_contexts checked
    key = tuple(sorted(options.items()))
    with _ssl_contexts_lock:
        context = _ssl_contexts.get(key)
        if context is None:
            context = _ssl_contexts[key] = factory(**options)
        return context


def share_ssl_contexts(director: Any) -> None:
    """Make the director's urllib handler use the process's shared SSL context instead of
    making its own at its first request (other handlers may adjust theirs, so they keep their
    own; so does a handler with a client certificate). Without the names this needs, each
    handler makes its own: ~55 ms at each instance's first https request."""
    for handler in request_handlers(director):
        if getattr(handler, "RH_KEY", None) != "Urllib":
            continue
        needed = (MAKE_SSLCONTEXT, CLIENT_CERT, "verify", "legacy_ssl_support", "prefer_system_certs")
        missing = [name for name in needed if not hasattr(handler, name)]
        if _ssl_context_factory() is None:
            missing.append(f"{SSL_HELPER_MODULE}.make_ssl_context")
        if missing:
            _fall_back(
                "ssl-context",
                ", ".join(missing),
                "each yt-dlp instance makes its own SSL context (~55 ms at its first https "
                "request)",
            )
            continue
        if not getattr(handler, CLIENT_CERT):
            setattr(handler, MAKE_SSLCONTEXT, _shared_context_maker(handler))


def warm_request_handlers(ydl: Any) -> None:
    """Build `ydl`'s request director now, and the SSL context its urllib handler will use (the
    process's shared one: loading the CA bundle takes ~45 ms; every request, http too, makes
    the handler ask for it). For the warm-up; a handler that makes its own context (see
    share_ssl_contexts) is left alone, and without the director's name nothing is done."""
    if not _request_director_is_cached(type(ydl)):
        return
    for handler in request_handlers(getattr(ydl, REQUEST_DIRECTOR)):
        make: Any = getattr(handler, MAKE_SSLCONTEXT, None)
        if callable(make) and getattr(make, "shares_context", False):
            make()


def _shared_context_maker(handler: Any) -> Callable[..., ssl.SSLContext]:
    def make(legacy_ssl_support: bool | None = None) -> ssl.SSLContext:
        legacy = handler.legacy_ssl_support if legacy_ssl_support is None else legacy_ssl_support
        return shared_ssl_context(
            verify=handler.verify,
            legacy_support=bool(legacy),
            use_certifi=not handler.prefer_system_certs,
        )

    make.shares_context = True  # type: ignore[attr-defined]
    return make


# ---- skipping tables nobody prints -------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _known_forceprint(method: Any) -> bool:
    if not callable(method):
        return False
    try:
        return list(inspect.signature(method).parameters) == ["self", "key", "info_dict"]
    except (TypeError, ValueError):
        return False


def forceprint_is_idle(ydl: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True when a call `ydl._forceprint(*args, **kwargs)` would render the format, thumbnail
    and subtitle tables only to discard them (~3 ms a lookup): any processing step but 'video'
    with nothing to print. False (let yt-dlp run it) whenever its shape is not the known one."""
    params = getattr(ydl, "params", {})
    forceprint, print_to_file = params.get("forceprint"), params.get("print_to_file")
    if (
        not _known_forceprint(getattr(yt_dlp.YoutubeDL, FORCEPRINT, None))
        or not isinstance(forceprint, dict)
        or not isinstance(print_to_file, dict)
    ):
        _fall_back(
            "forceprint",
            f"YoutubeDL.{FORCEPRINT}(key, info_dict) with dict params",
            "yt-dlp renders its format tables at every lookup (~3 ms more per lookup)",
        )
        return False
    key = args[0] if args else kwargs.get("key")
    return key != "video" and not forceprint.get(key) and not print_to_file.get(key)

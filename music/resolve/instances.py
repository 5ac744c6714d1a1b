"""yt-dlp instances reused per thread: building one costs ~150 ms (its extractor list, request
handlers and SSL context), so each resolver thread keeps one per set of fixed options.

Thread-local, so an instance is never used by two threads, and a worker stuck inside yt-dlp
keeps its own while its replacement builds a new one. A lookup started inside another one in
the same thread gets a throwaway instance. When yt-dlp's internals don't allow clearing one
lookup's leftovers (music.resolve.ytdl_compat), every lookup gets a fresh instance instead."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator

from music.policy import ExtractorPolicy, NetworkPolicy
from music.resolve import ytdl_compat
from music.resolve.ytdl import PolicedYoutubeDL, fixed_options_key

Builder = Callable[[dict, NetworkPolicy], PolicedYoutubeDL]


class YtdlInstances:
    """The per-thread instances of one Resolver. `build(opts, policy)` makes a new one."""

    def __init__(self, build: Builder, variant: Callable[[], Hashable] = lambda: None) -> None:
        self._build_new = build
        #: what else an instance is built from besides its options (the resolver's extra
        #: extractors): part of its key, so that changing it means a new instance
        self._variant = variant
        self._per_thread = threading.local()
        self._all: weakref.WeakSet[PolicedYoutubeDL] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        #: yt-dlp instances built so far
        self.built = 0

    def _build(self, opts: dict, policy: NetworkPolicy) -> PolicedYoutubeDL:
        ydl = self._build_new(opts, policy)
        with self._lock:
            self.built += 1
            self._all.add(ydl)
        return ydl

    def _mine(self) -> dict[tuple[str, Hashable], PolicedYoutubeDL]:
        instances: dict[tuple[str, Hashable], PolicedYoutubeDL] = (
            self._per_thread.__dict__.setdefault("instances", {})
        )
        return instances

    def _key(self, opts: dict) -> tuple[str, Hashable]:
        return fixed_options_key(opts), self._variant()

    def for_this_thread(self, opts: dict, policy: NetworkPolicy) -> PolicedYoutubeDL:
        """This thread's instance for these options (built if needed), not prepared for a
        lookup: for reading its extractor list."""
        key = self._key(opts)
        instances = self._mine()
        ydl = instances.get(key)
        if ydl is None:
            ydl = instances[key] = self._build(opts, policy)
        return ydl

    def remember_match(self, ydl: PolicedYoutubeDL, target: str, ie_key: str) -> None:
        """The extractor found for `target` on `ydl` (by naming its site), for the lookup of
        the same target that follows in this thread."""
        self._per_thread.match = (ydl, target, ie_key)

    def remembered_extractor(self, ydl: PolicedYoutubeDL, target: str) -> str | None:
        """The extractor remember_match noted for `target` on this very instance, if that was
        the last thing it looked at in this thread (then yt-dlp needn't ask all ~1,800
        extractors again: it would pick the same first suitable one)."""
        match = self._per_thread.__dict__.pop("match", None)
        if match is not None and match[0] is ydl and match[1] == target:
            return str(match[2])
        return None

    @contextlib.contextmanager
    def lookup(
        self,
        opts: dict,
        policy: NetworkPolicy,
        extractors: ExtractorPolicy,
        before_generic: Callable[[PolicedYoutubeDL, str], None] | None = None,
    ) -> Iterator[PolicedYoutubeDL]:
        """This thread's instance for these options, prepared for one lookup with the policies
        in force now."""
        key = self._key(opts)
        instances = self._mine()
        ydl = instances.get(key)
        throwaway = ydl is not None and ydl._music_busy  # re-entered in this thread
        if ydl is None or throwaway:
            ydl = self._build(opts, policy)
            if not throwaway:
                instances[key] = ydl
        ydl.begin_lookup(policy, extractors, opts)
        ydl.before_generic = before_generic
        ydl._music_busy = True
        try:
            yield ydl
        finally:
            ydl.before_generic = None
            ydl.end_lookup()
            with self._lock:
                ydl._music_busy = False
                retire = throwaway or self._closed
            if retire or not ytdl_compat.reusable(ydl):
                if not throwaway and instances.get(key) is ydl:
                    del instances[key]
                with contextlib.suppress(Exception):
                    ydl.close()

    def close(self) -> None:
        """Close idle instances now, busy ones when their lookup ends."""
        with self._lock:
            self._closed = True
            idle = [ydl for ydl in self._all if not getattr(ydl, "_music_busy", False)]
        for ydl in idle:
            with contextlib.suppress(Exception):
                ydl.close()

"""A playlist read lazily, page by page as the extractor fetches them, so its first entries
are queued before the rest are listed."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from yt_dlp.utils import PagedList

from music.engine.track import Track

#: entries asked of a paged list at a time (getslice fetches only the pages they are on)
_SLICE = 50


class PlaylistReader:
    """Iterate it inside the `Resolver.open_link_sync` block (yt-dlp stays open for its pages);
    it yields Tracks (`make_track`'s: unresolved placeholders unless yt-dlp already resolved the
    entry) and None for entries without a usable link. After the loop, `truncated` says whether
    more than `limit` entries existed."""

    def __init__(
        self,
        info: dict[str, Any],
        make_track: Callable[[dict[str, Any]], Track | None],
        limit: int,
    ) -> None:
        self._info = info
        self._make_track = make_track
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
            for start in itertools.count(0, _SLICE):
                chunk = entries.getslice(start, start + _SLICE)
                yield from chunk
                if len(chunk) < _SLICE:
                    return
        else:
            yield from entries

    def __iter__(self) -> Iterator[Track | None]:
        # One more than the limit tells whether the playlist was cut.
        for index, entry in enumerate(itertools.islice(self._raw_entries(), self.limit + 1)):
            if index == self.limit:
                self.truncated = True
                return
            yield self._make_track(entry) if isinstance(entry, dict) else None
        if self.count is not None and self.count > self.limit:
            self.truncated = True

"""The tests' fake video site (tests/support/fakesite.py) as a yt-dlp plugin, for a bot that runs
in another process: put `tests/support/ytdlp_plugins` and the repository root on its PYTHONPATH
and yt-dlp loads these extractors itself (yt_dlp/plugins.py scans every sys.path entry for
`yt_dlp_plugins/extractor/*.py` and prepends the `...IE` classes defined there).

yt-dlp only takes classes *defined* in the plugin module, so each one here is a subclass of the
in-process extractor. Settings come from the environment, as a subprocess can't be told otherwise:
- FAKESITE_BASE: the media server's base URL, for search results (`fakesearchN:words`).
- FAKESITE_TAKES_YTSEARCH=1: also answer `ytsearchN:words`, so the cog's unmodified YouTube
  search lands on the fake site (nothing reaches the internet).
- FAKESITE_SLOW_ENTRY_SECONDS: how long `/site/slowlist/<n>` takes per entry (default 0.2 s),
  a playlist slow enough to cancel while it loads.
"""

from __future__ import annotations

import os
import time
from typing import Any

from yt_dlp.extractor.common import InfoExtractor

from tests.support import fakesite

__all__ = ["FakeSiteItemIE", "FakeSitePlaylistIE", "FakeSiteSearchIE", "FakeSiteSlowItemIE", "FakeSiteSlowListIE"]


def _base_from_env() -> str:
    base = os.environ.get("FAKESITE_BASE", "").rstrip("/")
    if not base:
        raise RuntimeError("FAKESITE_BASE is not set: the fake site's search needs the media server's URL")
    return base


class FakeSiteItemIE(fakesite.FakeSiteItemIE):
    pass


class FakeSitePlaylistIE(fakesite.FakeSitePlaylistIE):
    pass


class FakeSiteSlowListIE(InfoExtractor):
    """`/site/slowlist/<n>`: like `/site/list/<n>`, each entry taking FAKESITE_SLOW_ENTRY_SECONDS
    to list (a site that pages slowly)."""

    IE_NAME = "fakesite:slowlist"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/site/slowlist/(?P<id>\d+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        count = int(self._match_id(url))
        base = fakesite._base(url)
        delay = float(os.environ.get("FAKESITE_SLOW_ENTRY_SECONDS", "0.2"))

        def entries():
            for i in range(count):
                time.sleep(delay)
                name = fakesite.ITEM_FILES[i % len(fakesite.ITEM_FILES)]
                yield self.url_result(f"{base}/site/item/{name}", FakeSiteItemIE, video_title=f"Slow entry {i}")

        return self.playlist_result(entries(), f"slowlist{count}", "Slow list", playlist_count=count)


class FakeSiteSlowItemIE(InfoExtractor):
    """`/site/slowitem/<seconds>/<file>`: the item `/site/item/<file>`, its page answering after
    <seconds> (a site slower than Discord's 3-second answer window)."""

    IE_NAME = "fakesite:slowitem"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/site/slowitem/(?P<seconds>[\d.]+)/(?P<id>[\w.-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        seconds, name = self._match_valid_url(url).group("seconds", "id")
        time.sleep(float(seconds))
        ext = name.rsplit(".", 1)[-1]
        return {"id": f"slow-{name}", "title": f"Slow {name}", "url": f"{fakesite._base(url)}/media/{name}",
                "ext": ext, "acodec": "opus" if ext == "webm" else "mp3", "vcodec": "none",
                "duration": 3.0, "uploader": "Fake uploader", "webpage_url": url}


class FakeSiteSearchIE(fakesite.FakeSiteSearchIE):
    def _search_results(self, query: str):
        self.base_url = _base_from_env()
        return super()._search_results(query)


if os.environ.get("FAKESITE_TAKES_YTSEARCH") == "1":

    class FakeSiteYoutubeSearchIE(FakeSiteSearchIE):
        """Answers `ytsearchN:` ahead of yt-dlp's YouTube search (plugins come first)."""

        IE_NAME = "fakesite:ytsearch"
        _SEARCH_KEY = "ytsearch"

    __all__.append("FakeSiteYoutubeSearchIE")

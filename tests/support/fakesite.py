"""A small fake video site for yt-dlp, served by the tests' local MediaServer.

yt-dlp's real extraction machinery runs (URL matching, playlist handling, format selection);
only the site is ours: `/site/item/<file>` is a video page whose audio is `/media/<file>`, and
`/site/list/<n>` a playlist of n items cycling through the given files."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from yt_dlp.extractor.common import InfoExtractor, SearchInfoExtractor

ITEM_FILES = ["a440.webm", "b880.webm", "a660.mp3"]


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class FakeSiteItemIE(InfoExtractor):
    IE_NAME = "fakesite"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/site/item/(?P<id>[\w.-]+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        name = self._match_id(url)
        ext = name.rsplit(".", 1)[-1]
        return {
            "id": name,
            "title": f"Fake {name}",
            "url": f"{_base(url)}/media/{name}",
            "ext": ext,
            "acodec": "opus" if ext == "webm" else "mp3",
            "vcodec": "none",
            "duration": 3.0,
            "uploader": "Fake uploader",
            "webpage_url": url,
        }


class FakeSitePlaylistIE(InfoExtractor):
    IE_NAME = "fakesite:list"
    _VALID_URL = r"https?://127\.0\.0\.1:\d+/site/list/(?P<id>\d+)"

    def _real_extract(self, url: str) -> dict[str, Any]:
        count = int(self._match_id(url))
        base = _base(url)
        entries = (
            self.url_result(f"{base}/site/item/{ITEM_FILES[i % len(ITEM_FILES)]}", FakeSiteItemIE,
                            video_title=f"Entry {i}")
            for i in range(count)
        )
        return self.playlist_result(entries, f"list{count}", "Fake list", playlist_count=count)


class FakeSiteSearchIE(SearchInfoExtractor):
    IE_NAME = "fakesite:search"
    _SEARCH_KEY = "fakesearch"
    base_url = ""  # set by the test to the MediaServer's base URL

    def _search_results(self, query: str):
        for name in ITEM_FILES:
            yield self.url_result(f"{self.base_url}/site/item/{name}", FakeSiteItemIE,
                                  video_title=f"{query} {name}")


EXTRACTORS = (FakeSiteItemIE, FakeSitePlaylistIE, FakeSiteSearchIE)

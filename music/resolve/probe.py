"""The ffmpeg probe that fills in what yt-dlp can't say about a direct media link (duration,
codec, title tag), started early so that it overlaps yt-dlp's own request."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from yt_dlp.utils import unsmuggle_url

from music.policy import MEDIA_SUFFIXES
from music.resolve.local import MediaProbe, StartedProbe, probe_media
from music.resolve.tracks import Prober


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

    def before_generic(self, ydl: Any, url: str) -> None:
        """Called by PolicedYoutubeDL just before the generic extractor runs on `url`."""
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


def direct_prober(early: EarlyProbe | None, *, timeout: float, proxy: str | None) -> Prober:
    """Probe a stream URL: the early probe's finding when it probed that URL, else now."""

    def probe(stream_url: str, headers: Mapping[str, str]) -> MediaProbe:
        found = early.result_for(stream_url) if early is not None else None
        if found is None:
            found = probe_media(stream_url, headers=headers, timeout=timeout, proxy=proxy)
        return found

    return probe

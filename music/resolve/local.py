"""Files in the owner's local music folder: listing, resolving to Tracks, probing."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from music.audio.ffmpeg import ProbeRun, is_http_url
from music.engine.track import Track
from music.policy import MEDIA_SUFFIXES, resolve_local_path

log = logging.getLogger("red.music.resolve.local")

PROBE_TIMEOUT = 15.0

_DURATION = re.compile(r"^\s*Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", re.MULTILINE)
_AUDIO = re.compile(r"^\s*Stream #\S+.*?: Audio: (\w+)", re.MULTILINE)
_TITLE = re.compile(r"^\s*title\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_ARTIST = re.compile(r"^\s*(?:artist|album_artist)\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_INPUT = re.compile(r"^Input #0, ([^ ]+), from", re.MULTILINE)


@dataclass(frozen=True)
class MediaProbe:
    """What `ffmpeg -i` says about a file or URL (any field may be unknown)."""

    duration: float | None = None
    acodec: str | None = None
    title: str | None = None
    container: str | None = None  # ffmpeg's demuxer names, e.g. "matroska,webm"
    artist: str | None = None  # the artist tag: a direct link's or a local file's uploader


def default_ffmpeg() -> str | None:
    """imageio-ffmpeg's static binary, else ffmpeg on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or no binary for this platform
        return shutil.which("ffmpeg")


def parse_probe_output(text: str) -> MediaProbe:
    """Read duration, first audio codec, title and artist tags and demuxer from `ffmpeg -i`."""
    duration = None
    if (m := _DURATION.search(text)) is not None:
        duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    acodec = m[1] if (m := _AUDIO.search(text)) is not None else None
    title = m[1] if (m := _TITLE.search(text)) is not None else None
    container = m[1] if (m := _INPUT.search(text)) is not None else None
    artist = m[1] if (m := _ARTIST.search(text)) is not None else None
    return MediaProbe(duration=duration, acodec=acodec, title=title, container=container, artist=artist)


def probe_media(
    source: str,
    *,
    ffmpeg: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = PROBE_TIMEOUT,
    proxy: str | None = None,
) -> MediaProbe:
    """Probe a local path or an http(s) URL (blocking; call in a thread). Never raises:
    returns an empty MediaProbe when ffmpeg is missing or fails. `proxy`: the network guard
    (music.netguard) every remote connection goes through."""
    return StartedProbe(
        source, ffmpeg=ffmpeg, headers=headers, timeout=timeout, proxy=proxy
    ).result()


class StartedProbe:
    """`ffmpeg -i source` started now, read later: the resolver starts one for a direct media
    link while yt-dlp looks at the same link, so the two overlap (ffmpeg alone takes ~15-30 ms
    to start). A remote source is fetched by the cog through the network guard and fed into
    ffmpeg's stdin (music.audio.ffmpeg.ProbeRun; ffmpeg opens no URL). `result()` waits for it
    (never raises); `cancel()` ends an unneeded one. Neither call may be skipped once started:
    one of them reaps the process."""

    def __init__(
        self,
        source: str,
        *,
        ffmpeg: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = PROBE_TIMEOUT,
        proxy: str | None = None,
    ) -> None:
        self.source = source
        self._headers = headers
        self._proxy = proxy
        self._deadline = time.monotonic() + timeout
        self._run: ProbeRun | None = None
        exe = ffmpeg or default_ffmpeg()
        if exe is None:
            return
        try:
            # the same input options as playback: a file with only the file protocol, or the
            # cog's pipe; either way no demuxer that opens other files or URLs
            self._run = ProbeRun(exe, source, local=not is_http_url(source),
                                 headers=headers, proxy=proxy)
        except OSError as exc:
            log.debug("probe of %s failed: %s", source, exc)

    def result(self) -> MediaProbe:
        """What ffmpeg said (blocking until it ends or the timeout passes)."""
        run, self._run = self._run, None
        if run is None:
            return MediaProbe()
        try:
            summary = run.finish(self._deadline - time.monotonic())
        except subprocess.TimeoutExpired:
            log.debug("probe of %s timed out", self.source)
            return MediaProbe()
        if run.input_error:
            log.debug("probe of %s could not read it: %s", self.source, run.input_error)
            return MediaProbe()
        probe = parse_probe_output(summary)
        if probe.duration is None:
            duration = run.duration_without_ffmpeg(summary, headers=self._headers,
                                                   proxy=self._proxy)
            probe = replace(probe, duration=duration)
        return probe

    def cancel(self) -> None:
        """End the probe without waiting for what it finds."""
        run, self._run = self._run, None
        if run is not None:
            run.cancel()


def list_local_files(folder: Path, limit: int = 1000) -> list[str]:
    """Relative POSIX paths of media files under `folder`, sorted, at most `limit`.

    Symlinks are followed only while they stay inside the folder (as resolve_local_path does)."""
    try:
        base = Path(folder).resolve(strict=True)
    except (OSError, RuntimeError):
        return []
    found: list[str] = []
    for root, dirs, files in os.walk(base, followlinks=False):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            if path.suffix.lower() not in MEDIA_SUFFIXES:
                continue
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if real.is_relative_to(base) and real.is_file():
                found.append(path.relative_to(base).as_posix())
    found.sort()
    return found[: max(0, limit)]


async def alist_local_files(folder: Path, limit: int = 1000) -> list[str]:
    """list_local_files in a thread (a big folder walk must not block the event loop)."""
    return await asyncio.to_thread(list_local_files, folder, limit)


def build_local_track(
    folder: Path,
    user_text: str,
    requester_id: int = 0,
    *,
    probe: bool = True,
    ffmpeg: str | None = None,
) -> Track:
    """A Track for a file in the local folder (blocking). Raises PolicyError when refused."""
    real = resolve_local_path(folder, user_text)
    relative = real.relative_to(Path(folder).resolve()).as_posix()
    info = probe_media(str(real), ffmpeg=ffmpeg) if probe else MediaProbe()
    return Track(
        query=relative,
        title=info.title or real.stem,
        duration=info.duration,
        kind="local",
        requester_id=requester_id,
        uploader=info.artist,
        stream_url=str(real),
        acodec=info.acodec,
        container=real.suffix.lower().lstrip("."),
        extractor="local",
    )


async def resolve_local(
    folder: Path,
    user_text: str,
    requester_id: int = 0,
    *,
    probe: bool = True,
    ffmpeg: str | None = None,
) -> Track:
    """build_local_track in a thread."""
    return await asyncio.to_thread(
        build_local_track, folder, user_text, requester_id, probe=probe, ffmpeg=ffmpeg
    )

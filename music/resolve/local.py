"""Files in the owner's local music folder: listing, resolving to Tracks, probing."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from music.engine.track import Track
from music.policy import MEDIA_SUFFIXES, resolve_local_path

log = logging.getLogger("red.music.resolve.local")

PROBE_TIMEOUT = 15.0

_DURATION = re.compile(r"^\s*Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", re.MULTILINE)
_AUDIO = re.compile(r"^\s*Stream #\S+.*?: Audio: (\w+)", re.MULTILINE)
_TITLE = re.compile(r"^\s*title\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_INPUT = re.compile(r"^Input #0, ([^ ]+), from", re.MULTILINE)


@dataclass(frozen=True)
class MediaProbe:
    """What `ffmpeg -i` says about a file or URL (any field may be unknown)."""

    duration: float | None = None
    acodec: str | None = None
    title: str | None = None
    container: str | None = None  # ffmpeg's demuxer names, e.g. "matroska,webm"


def default_ffmpeg() -> str | None:
    """imageio-ffmpeg's static binary, else ffmpeg on PATH, else None."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or no binary for this platform
        return shutil.which("ffmpeg")


def parse_probe_output(text: str) -> MediaProbe:
    """Read duration, first audio codec, title tag and demuxer from `ffmpeg -i` stderr."""
    duration = None
    if (m := _DURATION.search(text)) is not None:
        duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    acodec = m[1] if (m := _AUDIO.search(text)) is not None else None
    title = m[1] if (m := _TITLE.search(text)) is not None else None
    container = m[1] if (m := _INPUT.search(text)) is not None else None
    return MediaProbe(duration=duration, acodec=acodec, title=title, container=container)


def probe_media(
    source: str,
    *,
    ffmpeg: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> MediaProbe:
    """Probe a local path or an http(s) URL (blocking; call in a thread). Never raises:
    returns an empty MediaProbe when ffmpeg is missing or fails."""
    exe = ffmpeg or default_ffmpeg()
    if exe is None:
        return MediaProbe()
    remote = source.startswith(("http://", "https://"))
    # Only the protocols the source needs: a crafted playlist/concat input can't make ffmpeg
    # read other local files or URLs.
    args = [exe, "-hide_banner", "-nostdin"]
    if remote:
        args += [
            "-protocol_whitelist",
            "http,https,tcp,tls",
            "-rw_timeout",
            str(int(timeout * 1e6)),
        ]
        if headers:
            args += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in headers.items())]
        target = source
    else:
        args += ["-protocol_whitelist", "file"]
        target = "file:" + os.path.abspath(source)
    args += ["-i", target]
    try:
        done = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("probe of %s failed: %s", source, exc)
        return MediaProbe()
    return parse_probe_output(done.stderr.decode("utf-8", "replace"))


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

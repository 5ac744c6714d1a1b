"""Locating ffmpeg, probing inputs and building safe ffmpeg command lines.

Every command line here is an argument list (never a shell string) and user-controlled text only
ever appears as the value of ``-i``; it is never formatted into an option string. The protocol
whitelist keeps crafted inputs (HLS playlists, ``concat:``, ``subfile,`` ...) from making ffmpeg
read local files when the input is remote, or the network when the input is local.

A remote input goes through the cog's network guard (``proxy``, see music.netguard): ffmpeg's
http and tls protocols both honour ``-http_proxy`` (tls tunnels with CONNECT through the
``httpproxy`` protocol), so redirects and HLS segments are checked on the address actually
connected to. ``no_proxy`` is removed from ffmpeg's environment (music.netguard.ffmpeg_env): it
would let ffmpeg bypass the guard for matching hosts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from music.netguard import ffmpeg_env

from .fetch import clean_headers

log = logging.getLogger("red.music.audio.ffmpeg")

#: Protocols a remote (http/https) input may use, including what HLS and TLS need.
REMOTE_PROTOCOLS = "http,https,tcp,tls,crypto,httpproxy"
#: Protocols a local input may use: plain files only.
LOCAL_PROTOCOLS = "file"

#: Opus bitrate for transcoding. Discord's voice channels top out at 96-384 kbps depending on the
#: server's boost level; 128k is transparent for music and cheap to send.
TRANSCODE_BITRATE = "128k"
#: One Ogg page per 20 ms packet: ffmpeg flushes each page as soon as it is full, so the first
#: packet reaches us in ~27 ms instead of ~111 ms with the default 1 s pages (ENGINEERING.md).
OGG_PAGE_DURATION_US = "20000"


class FFmpegNotFound(RuntimeError):
    """No usable ffmpeg executable was found."""


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_ffmpeg(override: str | None = None) -> str:
    """Return the path of the ffmpeg to use.

    Order: ``override`` (when it is an executable file), the static binary shipped by
    imageio-ffmpeg, then ``ffmpeg`` on PATH. Raises :class:`FFmpegNotFound` with a sentence that
    tells the owner what to do when none is usable.
    """
    if override:
        if _is_executable(override):
            return override
        log.warning("Configured ffmpeg %r is not an executable file; looking elsewhere.", override)
    try:
        import imageio_ffmpeg

        path = imageio_ffmpeg.get_ffmpeg_exe()
        if path and _is_executable(path):
            return path
    except Exception:  # not installed, or no binary for this platform
        log.debug("imageio-ffmpeg has no usable binary", exc_info=True)
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    raise FFmpegNotFound(
        "No ffmpeg was found: install the imageio-ffmpeg package (the cog's requirements include "
        "it), put ffmpeg on PATH, or set the path of an ffmpeg executable in the cog's settings."
    )


def is_http_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def format_headers(headers: Mapping[str, str] | None) -> str | None:
    """The value for ffmpeg's ``-headers``: ``Key: Value\\r\\n`` lines, cleaned as the in-process
    reader's headers are (``fetch.clean_headers``: no CR or LF anywhere, no colon in a name), so
    a header cannot smuggle in another header or end the request head early (yt-dlp hands us
    headers that came from remote sites)."""
    lines = [f"{key}: {value}\r\n" for key, value in clean_headers(headers).items()]
    return "".join(lines) or None


def input_args(
    source: str,
    *,
    headers: Mapping[str, str] | None = None,
    local: bool,
    start: float = 0.0,
    proxy: str | None = None,
) -> list[str]:
    """Input options and ``-i source`` (shared by probing and playback). ``proxy`` (the network
    guard's ``http://127.0.0.1:port``) carries every remote connection."""
    args: list[str] = []
    if local:
        args += ["-protocol_whitelist", LOCAL_PROTOCOLS]
    else:
        # Streamed HTTP drops after a while (YouTube especially); let ffmpeg reconnect instead of
        # ending the track early.
        args += ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "5"]
        args += ["-protocol_whitelist", REMOTE_PROTOCOLS]
        if proxy:
            args += ["-http_proxy", proxy]
        header_value = format_headers(headers)
        if header_value:
            args += ["-headers", header_value]
    if start > 0:
        # Before -i: an input seek (fast, demuxer-level) instead of decoding up to the position.
        args += ["-ss", f"{start:.3f}"]
    args += ["-i", source]
    return args


def build_args(
    ffmpeg: str,
    source: str,
    *,
    start: float = 0.0,
    volume: int = 100,
    passthrough: bool,
    headers: Mapping[str, str] | None = None,
    local: bool,
    proxy: str | None = None,
) -> list[str]:
    """The full ffmpeg command line that writes Ogg/Opus (20 ms packets) to stdout.

    ``passthrough`` copies an Opus input as it is (no decode, no encode: ~1 ms CPU per second of
    audio instead of ~43); a volume other than 100 needs decoding, so passthrough with a volume is
    refused (the caller decides, see ``TrackStream``).
    """
    if passthrough and volume != 100:
        raise ValueError("A volume other than 100% needs transcoding; passthrough cannot apply it.")
    if volume < 0:
        raise ValueError("The volume cannot be negative.")
    args = [ffmpeg, "-hide_banner", "-loglevel", "warning", "-nostdin"]
    args += input_args(source, headers=headers, local=local, start=start, proxy=proxy)
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn"]
    if passthrough:
        args += ["-c:a", "copy"]
    else:
        if volume != 100:
            args += ["-af", f"volume={volume / 100:.2f}"]
        args += [
            "-c:a", "libopus",
            "-b:a", TRANSCODE_BITRATE,
            "-ar", "48000",
            "-ac", "2",
            # Discord plays 20 ms frames; any other size would be played at the wrong speed.
            "-frame_duration", "20",
            "-application", "audio",
            # Pinned to ffmpeg's defaults so a different build cannot add in-band FEC (more CPU
            # and first-frame latency, and Discord's clients do not ask for it).
            "-fec", "false",
            "-packet_loss", "0",
        ]
    args += ["-f", "ogg", "-page_duration", OGG_PAGE_DURATION_US, "pipe:1"]
    return args


@dataclass(frozen=True)
class ProbeResult:
    """What ffmpeg says about the first audio stream of an input."""

    codec: str | None
    container: str | None
    sample_rate: int | None
    channels: int | None
    duration: float | None  # seconds; None when unknown (live streams)

    @property
    def is_opus(self) -> bool:
        return self.codec == "opus"


class ProbeError(RuntimeError):
    """ffmpeg could not open the input or found no audio in it."""


_INPUT_RE = re.compile(r"^Input #0, (?P<container>[^\s].*?), from ", re.MULTILINE)
_DURATION_RE = re.compile(r"Duration: (?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)")
_AUDIO_RE = re.compile(r"Stream #0:\d+.*?: Audio: (?P<rest>.*)$", re.MULTILINE)
_CHANNEL_WORDS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "7.1": 8}


def parse_probe_output(stderr: str) -> ProbeResult:
    """Parse the stream summary ``ffmpeg -i`` prints. Raises :class:`ProbeError` if no audio."""
    audio = _AUDIO_RE.search(stderr)
    if audio is None:
        tail = " ".join(stderr.strip().splitlines()[-2:])[:300]
        raise ProbeError(f"ffmpeg found no audio stream in this input ({tail or 'no output'}).")
    parts = [p.strip() for p in audio.group("rest").split(",")]
    # "opus", "aac (LC) (mp4a / 0x6134706D)", "mp3 (mp3float)" -> the first word is the codec
    codec = parts[0].split(" ", 1)[0].lower() if parts and parts[0] else None
    sample_rate = channels = None
    for part in parts[1:]:
        rate = re.fullmatch(r"(\d+) Hz", part)
        if rate:
            sample_rate = int(rate.group(1))
            continue
        word = part.split("(", 1)[0].strip()
        if channels is None and word in _CHANNEL_WORDS:
            channels = _CHANNEL_WORDS[word]
        elif channels is None:
            count = re.fullmatch(r"(\d+) channels", word)
            if count:
                channels = int(count.group(1))
    container_match = _INPUT_RE.search(stderr)
    container = container_match.group("container") if container_match else None
    duration = None
    dur = _DURATION_RE.search(stderr)
    if dur:
        duration = int(dur.group("h")) * 3600 + int(dur.group("m")) * 60 + float(dur.group("s"))
    return ProbeResult(codec, container, sample_rate, channels, duration)


def probe_audio(
    ffmpeg: str,
    source: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
    local: bool | None = None,
    proxy: str | None = None,
) -> ProbeResult:
    """Ask ``ffmpeg -i`` what ``source`` holds (blocking: run it in a thread).

    ``local`` chooses the protocol whitelist as in :func:`build_args`; by default an http(s)
    source is remote and anything else local. Raises :class:`ProbeError` on failure or timeout.
    """
    if local is None:
        local = not is_http_url(source)
    args = [ffmpeg, "-hide_banner", "-nostdin"]
    args += input_args(source, headers=headers, local=local, proxy=proxy)
    try:
        # Without an output ffmpeg prints the input summary and exits 1: that is expected.
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            env=ffmpeg_env(proxy),
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"ffmpeg took longer than {timeout:g} s to open this input.") from exc
    return parse_probe_output(done.stderr.decode("utf-8", "replace"))


def end_process(proc: subprocess.Popen, timeout: float = 2.0) -> int | None:
    """End ``proc`` gracefully: terminate, wait, then kill and wait. Returns the exit code.

    Always reaps the child so no zombie is left behind (blocking up to ~2 x timeout)."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.terminate()
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.debug("ffmpeg %s ignored SIGTERM; killing it", proc.pid)
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("ffmpeg %s did not exit after SIGKILL", proc.pid)
        return None

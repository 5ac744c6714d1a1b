"""Locating ffmpeg, probing inputs and building safe ffmpeg command lines.

Every command line here is an argument list (never a shell string) and user-controlled text only
ever appears as the value of ``-i`` (a local file's path); it is never formatted into an option
string.

ffmpeg never opens a network URL (music.audio.pipe_input says why): a remote input is fetched by
the cog through the network guard and written into ffmpeg's stdin, read with
``-protocol_whitelist pipe``; a local file is read with ``-protocol_whitelist file``. Both get
``-format_whitelist`` (:data:`FORMAT_WHITELIST`): media containers only, none of the demuxers
that open other URLs or files themselves (hls, dash, imf, concat, image sequences, sdp/rtsp,
avisynth, dvdvideo, ...), so the bytes cannot make ffmpeg open anything else either.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace

from music.netguard import ffmpeg_env

from ..engine.filters import FilterChain
from ..i18n import _
from .filters import filter_graph
from .pipe_input import PipeFeeder, RemoteSource, duration_from_bitrate, ogg_duration_from_tail

log = logging.getLogger("red.music.audio.ffmpeg")

#: The protocol a remote input is read with: ffmpeg's stdin, which the cog writes into.
PIPE_PROTOCOLS = "pipe"
#: The input ffmpeg reads a remote input from.
PIPE_INPUT = "pipe:0"
#: Protocols a local input may use: plain files only.
LOCAL_PROTOCOLS = "file"
#: Demuxers ffmpeg may use (``-format_whitelist``; a name matches ffmpeg's "mov,mp4,m4a,..."
#: family): containers that carry audio and open nothing but their own input. Left out on
#: purpose: hls, dash, imf, concat, image2 and the other sequence readers, sdp, rtsp, rtp, sap,
#: avisynth, vapoursynth, dvdvideo, ffmetadata and subtitle formats.
FORMAT_WHITELIST = ",".join([
    "aac", "ac3", "aiff", "amr", "ape", "asf", "au", "avi", "caf", "dts", "dtshd", "eac3",
    "flac", "flv", "live_flv", "loas", "matroska", "mlp", "mov", "mp3", "mpc", "mpc8", "mpeg",
    "mpegts", "nut", "ogg", "oma", "rm", "shn", "tak", "truehd", "tta", "voc", "w64", "wav",
    "wv", "xwma",
])

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
        _("No ffmpeg was found: install the imageio-ffmpeg package (the cog's requirements include "
        "it), put ffmpeg on PATH, or set the path of an ffmpeg executable in the cog's settings.")
    )


def is_http_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def input_args(
    path: str | None,
    *,
    start: float = 0.0,
    input_format: str | None = None,
) -> list[str]:
    """Input options and ``-i`` (shared by probing and playback): ``path`` a local file, or
    None for ffmpeg's stdin (a remote input the cog feeds, see music.audio.pipe_input).
    ``input_format`` forces the demuxer when the container is known."""
    if path is None:
        args = ["-protocol_whitelist", PIPE_PROTOCOLS]
        target = PIPE_INPUT
    else:
        args = ["-protocol_whitelist", LOCAL_PROTOCOLS]
        # "file:" + an absolute path: a name with a colon ("concat:a|b") stays a file name
        target = "file:" + os.path.abspath(path)
    args += ["-format_whitelist", FORMAT_WHITELIST]
    if input_format:
        args += ["-f", input_format]
    if start > 0:
        # Before -i: an input seek (fast in a file; on a pipe ffmpeg reads up to the position)
        args += ["-ss", f"{start:.3f}"]
    args += ["-i", target]
    return args


def build_args(
    ffmpeg: str,
    path: str | None,
    *,
    start: float = 0.0,
    volume: int = 100,
    filters: FilterChain | None = None,
    passthrough: bool,
    input_format: str | None = None,
) -> list[str]:
    """The full ffmpeg command line that writes Ogg/Opus (20 ms packets) to stdout, reading
    the local file ``path`` or (None) its stdin.

    ``passthrough`` copies an Opus input as it is (no decode, no encode: ~1 ms CPU per second of
    audio instead of ~43); a volume other than 100 or a ``filters`` chain that is not flat needs
    decoding, so passthrough with either is refused (the caller decides, see ``TrackStream``).
    The filter graph holds only numbers (music.audio.filters).
    """
    graph = filter_graph(filters, volume)  # raises for a negative volume
    if passthrough and graph is not None:
        raise ValueError(_("A volume other than 100% or a filter needs transcoding; passthrough "
                         "cannot apply it."))
    args = [ffmpeg, "-hide_banner", "-loglevel", "warning", "-nostdin"]
    args += input_args(path, start=start, input_format=input_format)
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn"]
    if passthrough:
        args += ["-c:a", "copy"]
    else:
        if graph is not None:
            args += ["-af", graph]
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
        raise ProbeError(_("ffmpeg found no audio stream in this input ({tail}).").format(tail=tail or _('no output')))
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


class ProbeRun:
    """``ffmpeg -i`` started now on a local file, or on a remote input that a PipeFeeder opens
    (through the guard, on its own thread) and writes into ffmpeg's stdin; read it later with
    :meth:`finish` (or end it with :meth:`cancel`: one of them must be called)."""

    def __init__(self, ffmpeg: str, source: str, *, local: bool,
                 headers: Mapping[str, str] | None = None, proxy: str | None = None) -> None:
        self.source: RemoteSource | None = None
        self.feeder: PipeFeeder | None = None
        args = [ffmpeg, "-hide_banner", "-nostdin"] + input_args(source if local else None)
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL if local else subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ffmpeg_env(),
        )
        if not local:
            self.source = RemoteSource(source, headers=headers, proxy=proxy)
            # the feeder owns stdin from now on (communicate() would close it under it)
            stdin, self.process.stdin = self.process.stdin, None
            assert stdin is not None
            self.feeder = PipeFeeder(self.source, stdin, name="music-probe-feed").start()

    def finish(self, timeout: float) -> str:
        """ffmpeg's summary (stderr). Raises subprocess.TimeoutExpired (ffmpeg ended)."""
        try:
            # Without an output ffmpeg prints the input summary and exits 1: that is expected.
            _, stderr = self.process.communicate(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            self.cancel()
            raise
        finally:
            self._stop_feeding()
        return stderr.decode("utf-8", "replace")

    @property
    def input_error(self) -> str | None:
        """Why the remote input could not be read (a sentence), if it could not."""
        return self.feeder.error if self.feeder is not None else None

    def duration_without_ffmpeg(self, summary: str, *, headers: Mapping[str, str] | None,
                                proxy: str | None) -> float | None:
        """The duration ffmpeg cannot know from a pipe: an Ogg file's from its last page, any
        other's estimated from its length and bitrate (blocking: one more request for Ogg)."""
        source = self.source
        if source is None or not source.length:
            return None
        if source.container == "ogg":
            return ogg_duration_from_tail(source.url, headers=headers, proxy=proxy,
                                          length=source.length)
        return duration_from_bitrate(summary, source.length)

    def cancel(self) -> None:
        self._stop_feeding()
        end_process(self.process)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def _stop_feeding(self) -> None:
        if self.feeder is not None:
            self.feeder.stop()
            self.feeder.join()


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

    By default an http(s) source is remote (fetched by the cog through ``proxy``, the network
    guard, into ffmpeg's stdin) and anything else a local file. Raises :class:`ProbeError` on
    failure or timeout.
    """
    if local is None:
        local = not is_http_url(source)
    run = ProbeRun(ffmpeg, source, local=local, headers=headers, proxy=proxy)
    try:
        summary = run.finish(timeout)
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(_("ffmpeg took longer than {timeout:g} s to open this input.").format(timeout=timeout)) from exc
    if run.input_error:
        raise ProbeError(run.input_error)
    result = parse_probe_output(summary)
    if result.duration is None:
        duration = run.duration_without_ffmpeg(summary, headers=headers, proxy=proxy)
        result = replace(result, duration=duration)
    return result


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

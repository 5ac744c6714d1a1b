"""find_ffmpeg, build_args (safety of the command line), probe_audio and end_process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from music.audio import ffmpeg as ffmpeg_mod
from music.audio.ffmpeg import (
    FORMAT_WHITELIST,
    FFmpegNotFound,
    ProbeError,
    build_args,
    end_process,
    find_ffmpeg,
    parse_probe_output,
    probe_audio,
)
from music.audio.ffmpeg_process import drain_stderr_lines
from tests.support.media import FFMPEG, MediaServer

URL = "https://media.example/watch?v=abc&x=1"


def option_value(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


# -- find_ffmpeg ---------------------------------------------------------------------------------


def test_find_ffmpeg_prefers_an_executable_override(tmp_path: Path):
    fake = tmp_path / "my-ffmpeg"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert find_ffmpeg(str(fake)) == str(fake)


def test_find_ffmpeg_ignores_an_override_that_is_not_executable(tmp_path: Path):
    not_executable = tmp_path / "ffmpeg.txt"
    not_executable.write_text("not a program")
    assert find_ffmpeg(str(not_executable)) == FFMPEG
    assert find_ffmpeg(str(tmp_path / "missing")) == FFMPEG
    assert find_ffmpeg(None) == FFMPEG


def test_find_ffmpeg_falls_back_to_path_then_explains(monkeypatch: pytest.MonkeyPatch):
    import imageio_ffmpeg

    def no_binary() -> str:
        raise RuntimeError("no ffmpeg for this platform")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)
    monkeypatch.setattr(ffmpeg_mod.shutil, "which", lambda name: "/opt/bin/ffmpeg")
    assert find_ffmpeg() == "/opt/bin/ffmpeg"
    monkeypatch.setattr(ffmpeg_mod.shutil, "which", lambda name: None)
    with pytest.raises(FFmpegNotFound, match="imageio-ffmpeg"):
        find_ffmpeg()


# -- build_args ----------------------------------------------------------------------------------


def test_remote_input_is_ffmpegs_stdin_with_no_network_protocol():
    args = build_args(FFMPEG, None, passthrough=True)
    assert args[0] == FFMPEG
    assert option_value(args, "-i") == "pipe:0"
    assert option_value(args, "-c:a") == "copy"
    # the cog feeds the bytes (music.audio.pipe_input): ffmpeg opens nothing itself
    assert option_value(args, "-protocol_whitelist") == "pipe"
    for network_option in ("-http_proxy", "-headers", "-reconnect", "-rw_timeout"):
        assert network_option not in args
    assert option_value(args, "-map") == "0:a:0"
    assert "-vn" in args and "-nostdin" in args
    assert option_value(args, "-loglevel") == "warning"
    assert args[-5:] == ["-f", "ogg", "-page_duration", "20000", "pipe:1"]
    assert "libopus" not in args and "-ss" not in args
    # input options must come before -i to apply to the input
    for option in ("-protocol_whitelist", "-format_whitelist"):
        assert args.index(option) < args.index("-i")


def test_no_demuxer_that_opens_other_urls_is_allowed():
    allowed = set(option_value(build_args(FFMPEG, None, passthrough=True), "-format_whitelist").split(","))
    assert allowed == set(FORMAT_WHITELIST.split(","))
    nested = {"hls", "dash", "imf", "concat", "image2", "image2pipe", "sdp", "rtsp", "rtp", "sap",
              "avisynth", "vapoursynth", "dvdvideo", "ffmetadata", "webm_dash_manifest", "tee",
              "data", "libopenmpt", "libgme", "bluray"}
    assert not allowed & nested
    # every name is a demuxer this ffmpeg has (a typo would silently allow nothing)
    listed = subprocess.run([FFMPEG, "-hide_banner", "-demuxers"], capture_output=True,
                            text=True, check=True).stdout
    demuxers = {name for line in listed.splitlines()[4:] if len(line.split()) >= 2
                for name in line.split()[1].split(",")}
    assert allowed <= demuxers, allowed - demuxers


def test_a_forced_container_comes_before_the_input():
    args = build_args(FFMPEG, None, passthrough=True, input_format="matroska")
    assert option_value(args, "-f") == "matroska" and args.index("-f") < args.index("-i")


def test_transcode_args_and_volume():
    args = build_args(FFMPEG, None, passthrough=False)
    assert option_value(args, "-c:a") == "libopus"
    assert option_value(args, "-b:a") == "128k"
    assert option_value(args, "-frame_duration") == "20"
    assert option_value(args, "-application") == "audio"
    assert "-af" not in args
    quieter = build_args(FFMPEG, None, volume=50, passthrough=False)
    assert option_value(quieter, "-af") == "volume=0.50"
    assert quieter.index("-af") > quieter.index("-i")  # an output option


def test_passthrough_cannot_apply_a_volume():
    with pytest.raises(ValueError, match="volume"):
        build_args(FFMPEG, None, volume=80, passthrough=True)


def test_seek_is_an_input_option():
    args = build_args(FFMPEG, None, start=83.5, passthrough=True)
    assert option_value(args, "-ss") == "83.500"
    assert args.index("-ss") < args.index("-i")


def test_local_input_is_a_file_url_limited_to_files():
    args = build_args(FFMPEG, "/music/a.mp3", passthrough=False)
    assert option_value(args, "-protocol_whitelist") == "file"
    assert option_value(args, "-format_whitelist") == FORMAT_WHITELIST
    assert option_value(args, "-i") == "file:/music/a.mp3"


def test_user_text_only_ever_is_the_input_value():
    hostile = "/music/x.mp3 -f lavfi -i sine -y /tmp/owned"
    args = build_args(FFMPEG, hostile, passthrough=False)
    assert [a for a in args if "lavfi" in a or "owned" in a] == ["file:" + hostile]
    # a name that looks like a protocol stays a file name
    assert option_value(build_args(FFMPEG, "/m/concat:a|b", passthrough=True), "-i") == "file:/m/concat:a|b"


# -- probe_audio ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "codec", "sample_rate"),
    [("a440.webm", "opus", 48000), ("a440.ogg", "opus", 48000),
     ("a660.mp3", "mp3", 48000), ("a550.m4a", "aac", 48000)],
)
def test_probe_over_http(media_server, name: str, codec: str, sample_rate: int):
    result = probe_audio(FFMPEG, media_server.url(name))
    assert result.codec == codec
    assert result.is_opus is (codec == "opus")
    assert result.sample_rate == sample_rate
    assert result.channels == 2
    assert result.duration == pytest.approx(3.0, abs=0.1)
    assert result.container


def test_probe_of_missing_or_non_audio_input_raises(media_server, tmp_path: Path):
    with pytest.raises(ProbeError):
        probe_audio(FFMPEG, media_server.url("missing.webm"))
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all\n" * 50)
    with pytest.raises(ProbeError):
        probe_audio(FFMPEG, str(text))


def test_parse_probe_output_of_a_video_with_surround_audio():
    stderr = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'https://x/v.mp4':
  Duration: 01:02:03.50, start: 0.000000, bitrate: 1200 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p, 1920x1080
  Stream #0:1[0x2](eng): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, 5.1, fltp, 384 kb/s
"""
    result = parse_probe_output(stderr)
    assert (result.codec, result.sample_rate, result.channels) == ("aac", 44100, 6)
    assert result.duration == pytest.approx(3723.5)
    assert result.container == "mov,mp4,m4a,3gp,3g2,mj2"
    live = parse_probe_output("Input #0, hls, from 'x':\n  Duration: N/A, start: 1.0\n"
                              "  Stream #0:0: Audio: opus, 48000 Hz, stereo, fltp\n")
    assert live.duration is None and live.is_opus


class HeaderRecorder:
    def __init__(self, media_dir: Path) -> None:
        self.seen: list[dict[str, str]] = []
        self.server = MediaServer(media_dir)
        self.server.app.router.add_get("/with-headers/{name}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        return web.FileResponse(self.server.root / request.match_info["name"])


def test_headers_reach_the_server_without_injection(media_dir: Path):
    recorder = HeaderRecorder(media_dir)
    recorder.server.start()
    try:
        url = f"{recorder.server.base_url}/with-headers/a440.webm"
        result = probe_audio(FFMPEG, url, headers={"X-Token": "abc\r\nX-Injected: yes",
                                                   "User-Agent": "MusicCogTest/1"})
    finally:
        recorder.server.stop()
    assert result.is_opus
    assert recorder.seen, "ffmpeg never reached the server"
    first = recorder.seen[0]
    assert first["X-Token"] == "abcX-Injected: yes"
    assert "X-Injected" not in first
    assert first["User-Agent"] == "MusicCogTest/1"


# -- end_process ---------------------------------------------------------------------------------


def test_end_process_terminates_politely_first():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert end_process(proc, timeout=2.0) == -signal.SIGTERM
    assert not Path(f"/proc/{proc.pid}").exists()  # reaped, no zombie


def test_end_process_kills_a_process_that_ignores_sigterm():
    code = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    started = time.monotonic()
    assert end_process(proc, timeout=0.3) == -signal.SIGKILL
    assert 0.3 <= time.monotonic() - started < 2.0
    assert not Path(f"/proc/{proc.pid}").exists()
    proc.stdout.close()


def test_end_process_of_an_exited_process_returns_its_code():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(10)
    assert end_process(proc) == 3


# -- the playback ffmpeg's priority --------------------------------------------------------------


def _thread_niceness(pid: int) -> dict[int, int]:
    """Niceness of every thread of ``pid`` (Linux /proc: field 19 of each task's stat)."""
    niceness = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        niceness[int(task.name)] = int(fields[16])  # fields after "(comm)" start at field 3
    return niceness


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_playback_ffmpeg_and_all_its_threads_run_at_a_lower_priority(media_dir: Path):
    """The sender's 20 ms deadlines beat ffmpeg's read-ahead on a busy machine: every thread
    ffmpeg starts (it starts several to transcode) inherits the lowered priority."""
    import collections
    import os

    from music.audio.ffmpeg_process import FFMPEG_NICENESS_INCREMENT, FfmpegProcess
    from music.netguard import ffmpeg_env

    ours = os.getpriority(os.PRIO_PROCESS, 0)
    args = build_args(FFMPEG, str(media_dir / "long.mp3"), passthrough=False, volume=50)
    process = FfmpegProcess(args, ffmpeg_env(), collections.deque(maxlen=20))
    try:
        assert process.stdout is not None
        process.stdout.read(4096)  # it is transcoding: its threads exist by now
        niceness = _thread_niceness(process.pid)
        assert len(niceness) > 1
        assert set(niceness.values()) == {min(19, ours + FFMPEG_NICENESS_INCREMENT)}
        assert os.getpriority(os.PRIO_PROCESS, 0) == ours  # the bot's own priority is unchanged
    finally:
        process.end(timeout=2.0)
        process.close_stdout()


def test_stderr_is_drained_line_by_line_keeping_indentation_and_skipping_blank_lines():
    """The one loop that drains a child's stderr (ffmpeg's tail, the transcoder worker's log)."""
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; sys.stderr.buffer.write(b'first\\n\\n   \\n  Stream #0: indented\\r\\nbad \\xff byte\\nlast')"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    lines: list[str] = []
    drain_stderr_lines(child.stderr, lines.append)
    child.wait(5)
    assert lines == ["first", "  Stream #0: indented", "bad \ufffd byte", "last"]
    assert child.stderr.closed

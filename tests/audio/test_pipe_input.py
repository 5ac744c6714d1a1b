"""Remote input fed into ffmpeg's stdin (music.audio.pipe_input): what a remote input is taken
for, HLS and an MP4 with its index at the end played by TrackStream, positions reached on a pipe,
the feeder's errors, and nothing of the guard's secret in an ffmpeg child."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from music.audio import mp4_index
from music.audio.fetch import HttpMediaReader, MediaFetchError
from music.audio.mp4_index import (
    IndexFirstReader,
    Mp4IndexError,
    shift_chunk_offsets,
    top_level_boxes,
)
from music.audio.pipe_input import PipeFeeder, fetch_error_sentence, sniff
from music.audio.stream import TrackStream
from music.netguard import ffmpeg_env
from tests.audio.test_hls import make_hls
from tests.audio.test_network_guard import LOOPBACK_ALLOWED, guard_for  # noqa: F401
from tests.audio.test_source import drain, frequency_of
from tests.support.media import FFMPEG, MediaServer, generate_tone

# ---- recognising the input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "head, kind",
    [
        (b"\x1aE\xdf\xa3\x01\x00", "webm"),
        (b"OggS\x00\x02", "ogg"),
        (b"#EXTM3U\n#EXT-X-VERSION:3", "hls"),
        (b"\xef\xbb\xbf\r\n#EXTM3U", "hls"),
        (b"\x00\x00\x00\x20ftypM4A ", "mp4"),
        (b'<?xml version="1.0"?>\n<!-- x -->\n<MPD xmlns="urn:mpeg:dash">', "dash"),
        (b"ID3\x04\x00\x00", "other"),
        (b"ffconcat version 1.0\nfile 'tcp://x'", "other"),
        (b"", "other"),
    ],
)
def test_what_a_remote_input_is_taken_for(head: bytes, kind: str) -> None:
    assert sniff(head) == kind


def test_a_refusal_by_the_guard_reads_as_the_policy_sentence() -> None:
    text = "HTTP error 403 Refused by network policy: local 10.0.0.1 from http://10.0.0.1"
    assert fetch_error_sentence(text) == (
        "I won't fetch `10.0.0.1`: it points to a private or local network address.")
    assert fetch_error_sentence("HTTP error 404 Not Found from http://a") == (
        "HTTP error 404 Not Found from http://a")


def test_ffmpeg_gets_no_proxy_settings(monkeypatch) -> None:
    for name in ("http_proxy", "HTTPS_PROXY", "all_proxy", "no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "http://music:secret@127.0.0.1:9")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = ffmpeg_env()
    assert env["LANG"] == "C.UTF-8"
    assert not any("proxy" in key.lower() for key in env)


# ---- the feeder ---------------------------------------------------------------------------------


class Failing:
    """A source that gives some bytes, then fails as the guard's refusal would."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def read1(self, size: int = 65536) -> bytes:
        self.calls += 1
        if self.calls == 1:
            return b"x" * 1000
        raise MediaFetchError("HTTP error 403 Refused by network policy: owner cdn.test")

    def close(self) -> None:
        self.closed = True


def test_the_feeder_reports_the_inputs_failure_and_closes_both_ends() -> None:
    read_end, write_end = os.pipe()
    source = Failing()
    feeder = PipeFeeder(source, os.fdopen(write_end, "wb", buffering=0)).start()
    feeder.join(5)
    with os.fdopen(read_end, "rb") as pipe:
        assert pipe.read() == b"x" * 1000  # then the end: ffmpeg sees EOF
    assert feeder.error == "I won't fetch `cdn.test`: the bot owner has blocked the address it points to."
    assert not feeder.complete and source.closed and feeder.fed == 1000


def test_ffmpeg_ending_early_is_not_the_inputs_error() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone

    class Endless:
        def read1(self, size: int = 65536) -> bytes:
            return b"y" * size

        def close(self) -> None:
            pass

    feeder = PipeFeeder(Endless(), os.fdopen(write_end, "wb", buffering=0)).start()
    feeder.join(5)
    assert not feeder.running and feeder.error is None and not feeder.complete


# ---- an MP4 with its index at the end -----------------------------------------------------------


class BytesInput(io.BytesIO):
    """A seekable in-memory input with the length HttpMediaReader would know."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.length = len(data)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def index_last(chunk_offsets: list[int], *, wide: bool = False, count: int | None = None) -> bytes:
    """ftyp, mdat (100 bytes), then a moov whose one track's chunk offset table is given."""
    entries = b"".join(struct.pack(">Q" if wide else ">I", o) for o in chunk_offsets)
    table = box(b"co64" if wide else b"stco",
                b"\0\0\0\0" + struct.pack(">I", len(chunk_offsets) if count is None else count) + entries)
    moov = box(b"moov", box(b"trak", box(b"mdia", box(b"minf", box(b"stbl", table)))))
    return box(b"ftyp", b"M4A \0\0\0\0") + box(b"mdat", bytes(range(100))) + moov


def test_the_index_is_sent_first_with_its_chunk_offsets_moved() -> None:
    data = index_last([24, 60])  # ftyp is 16 bytes, the mdat payload starts at 24
    out = IndexFirstReader(BytesInput(data))
    result = b""
    while chunk := out.read1(7):
        result += chunk
    moov_size = len(data) - 16 - 108
    assert [kind for kind, _, _ in top_level_boxes(BytesInput(result), len(result))] == [
        b"ftyp", b"moov", b"mdat"]
    offsets = struct.unpack_from(">II", result, result.index(b"stco") + 12)
    assert offsets == (24 + moov_size, 60 + moov_size)
    assert result[offsets[0]:offsets[0] + 4] == bytes(range(4))  # they still point at the data


@pytest.mark.parametrize(
    "data, sentence",
    [
        (index_last([24], count=10**6), "index is damaged"),  # more entries than the box holds
        (box(b"ftyp", b"M4A ") + box(b"mdat", b"x" * 10), "has no index"),
        (box(b"ftyp", b"M4A ") + struct.pack(">I4s", 99999, b"mdat"), "runs past its end"),
    ],
)
def test_a_hostile_index_is_refused_with_a_sentence(data: bytes, sentence: str) -> None:
    with pytest.raises(Mp4IndexError, match=sentence):
        IndexFirstReader(BytesInput(data))


def test_a_32_bit_chunk_offset_that_would_overflow_is_refused() -> None:
    data = index_last([2**32 - 20])
    moov = bytearray(data[data.index(b"moov") - 4:])
    with pytest.raises(Mp4IndexError, match="too large to be streamed"):
        shift_chunk_offsets(moov, 0, 2**32, 100)
    wide = bytearray(index_last([2**32 - 20], wide=True)[124:])
    shift_chunk_offsets(wide, 0, 2**33, 100)  # co64 holds it
    assert struct.unpack_from(">Q", wide, wide.index(b"co64") + 12)[0] == 2**32 + 80


def test_too_many_boxes_or_a_huge_index_are_refused(monkeypatch) -> None:
    many = box(b"ftyp", b"M4A ") + box(b"free", b"") * 100 + box(b"mdat", b"x")
    with pytest.raises(Mp4IndexError, match="too many parts"):
        IndexFirstReader(BytesInput(many))
    monkeypatch.setattr(mp4_index, "MAX_MOOV_BYTES", 50)
    with pytest.raises(Mp4IndexError, match="index is too large"):
        IndexFirstReader(BytesInput(index_last([24] * 20)))


# ---- TrackStream on piped inputs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def piped_media(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("piped")
    generate_tone(root / "steps.mp3", [300.0, 500.0, 700.0, 900.0], 1.0)
    generate_tone(root / "steps.m4a", [300.0, 500.0, 700.0, 900.0], 1.0)  # index at the end
    make_hls(root / "hls", "ts", seconds=4.0, freq=440.0)
    server = MediaServer(root).start()
    yield root, server
    server.stop()


def play(url: str, **kwargs) -> tuple[TrackStream, list[bytes]]:
    stream = TrackStream(FFMPEG, url, passthrough=False, **kwargs).start()
    try:
        return stream, drain(stream, timeout=30)
    finally:
        stream.close()


def test_an_mp4_with_its_index_at_the_end_plays_from_the_start_and_from_a_position(piped_media):
    root, server = piped_media
    boxes = [kind for kind, _, _ in top_level_boxes(BytesInput((root / "steps.m4a").read_bytes()),
                                                    (root / "steps.m4a").stat().st_size)]
    assert boxes.index(b"mdat") < boxes.index(b"moov")  # the layout this is about
    stream, packets = play(server.url("steps.m4a"))
    assert stream.error is None and stream.fed_container == "mp4"
    assert abs(len(packets) - 200) <= 3
    stream, packets = play(server.url("steps.m4a"), start=2.5)
    assert stream.error is None and abs(len(packets) - 75) <= 3
    assert abs(frequency_of(packets, skip_seconds=0.0, seconds=0.3) - 700) < 10


def test_a_position_in_an_mp3_is_reached_by_reading_the_pipe_from_the_start(piped_media):
    _, server = piped_media
    before = len(server.requests)
    stream, packets = play(server.url("steps.mp3"), start=1.5)
    assert stream.error is None and abs(len(packets) - 125) <= 3
    assert abs(frequency_of(packets, skip_seconds=0.0, seconds=0.3) - 500) < 10
    assert server.requests[before:] == ["/media/steps.mp3"]  # one request, from byte 0
    assert "-i" in stream.args and stream.args[stream.args.index("-i") + 1] == "pipe:0"


def test_an_hls_stream_plays_from_the_start_and_from_a_position(piped_media):
    _, server = piped_media
    stream, packets = play(server.url("hls/index.m3u8"))
    assert stream.error is None and stream.fed_container == "hls"
    assert abs(len(packets) - 200) <= 5 and abs(frequency_of(packets) - 440) < 10
    stream, packets = play(server.url("hls/index.m3u8"), start=2.5, expected_end=4.0)
    assert stream.error is None and abs(len(packets) - 75) <= 5


def test_a_dash_manifest_is_refused_before_any_ffmpeg(piped_media):
    root, server = piped_media
    (root / "stream.mpd").write_text('<?xml version="1.0"?><MPD type="static"></MPD>')
    stream, packets = play(server.url("stream.mpd"))
    assert packets == [] and stream.pid is None
    assert stream.error == "That link is a DASH manifest, which I can't play; try the page it came from."


async def test_the_guards_secret_is_in_no_ffmpeg_argv_or_environment(piped_media, guard_for):  # noqa: F811
    _, server = piped_media
    guard = await guard_for(LOOPBACK_ALLOWED)
    secret = guard.url.split("@")[0].rsplit(":", 1)[1]
    stream = TrackStream(FFMPEG, server.url("steps.mp3"), passthrough=False,
                         proxy=guard.url).start()
    try:
        assert await asyncio.to_thread(stream.wait_ready, 15)
        proc = Path(f"/proc/{stream.pid}")
        argv, environ = await asyncio.to_thread(
            lambda: ((proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()))
    finally:
        await asyncio.to_thread(stream.close)
    assert secret.encode() not in argv and secret.encode() not in environ
    assert b"127.0.0.1" not in argv  # neither the guard nor the site: the input is the pipe
    assert guard.stats.forwarded == 1 and guard.stats.unauthorized == 0


# ---- SHOUTcast's status line ----------------------------------------------------------------------


def test_a_shoutcast_icy_status_line_is_read_as_http() -> None:
    """Internet radio (SHOUTcast v1, often on port 8000) answers `ICY 200 OK`."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"ICY 200 OK\r\nicy-name: radio\r\nContent-Type: audio/mpeg\r\n\r\n" + b"m" * 5000)
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    reader = HttpMediaReader(f"http://127.0.0.1:{server.getsockname()[1]}/stream")
    data = b""
    while chunk := reader.read1(65536):
        data += chunk
    thread.join(5)
    server.close()
    assert data == b"m" * 5000 and reader.content_type == "audio/mpeg"


def test_the_index_first_file_decodes_like_the_original(piped_media, tmp_path: Path):
    """ffmpeg reading the reordered bytes from a pipe decodes what it decodes from the file."""
    root, _ = piped_media
    original = (root / "steps.m4a").read_bytes()
    reader = IndexFirstReader(BytesInput(original))
    reordered = b""
    while chunk := reader.read1():
        reordered += chunk

    def pcm(args: list[str], data: bytes | None) -> bytes:
        return subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", *args, "-f", "s16le",
                               "pipe:1"], input=data, capture_output=True, check=True).stdout

    assert pcm(["-i", "pipe:0"], reordered) == pcm(["-i", str(root / "steps.m4a")], None)


async def test_an_endless_shoutcast_radio_plays_through_the_guard_and_closes(piped_media, guard_for):  # noqa: F811
    """Radio as users have it (an `ICY 200 OK` answer, no length, MP3 for ever): it plays
    through the guard with its secret, and close() ends the feeder blocked on it."""
    root, _ = piped_media
    mp3 = (root / "steps.mp3").read_bytes()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def broadcast() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"ICY 200 OK\r\nicy-name: test radio\r\nContent-Type: audio/mpeg\r\n\r\n")
        try:
            while not stop.is_set():
                conn.sendall(mp3)
        except OSError:
            pass
        conn.close()

    thread = threading.Thread(target=broadcast, daemon=True)
    thread.start()
    guard = await guard_for(LOOPBACK_ALLOWED)
    stream = TrackStream(FFMPEG, f"http://127.0.0.1:{server.getsockname()[1]}/;stream.mp3",
                         passthrough=False, proxy=guard.url).start()
    try:
        assert await asyncio.to_thread(stream.wait_ready, 15), stream.error
        await asyncio.sleep(1.0)
        taken = 0
        while stream.read_packet() is not None:
            taken += 1
        assert taken >= 40 and stream.error is None
    finally:
        began = asyncio.get_running_loop().time()
        await asyncio.to_thread(stream.close)
        closed_in = asyncio.get_running_loop().time() - began
        stop.set()
        server.close()
    assert closed_in < 3.0
    assert not [t for t in threading.enumerate() if t.name.startswith("music-ffmpeg-feed")]
    assert guard.stats.forwarded == 1 and guard.stats.unauthorized == 0

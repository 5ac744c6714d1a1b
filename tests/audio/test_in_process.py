"""In-process passthrough: TrackStream(in_process=True) copies WebM/Ogg Opus without an ffmpeg
child, fetching through music.audio.fetch (the guard, redirects, resuming a dropped connection),
and hands over to ffmpeg for anything it does not copy itself.

The reference for every "same packets" check is the ffmpeg copy path of the same file."""

from __future__ import annotations

import asyncio
import itertools
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from music.audio.fetch import HttpMediaReader, MediaFetchError
from music.audio.ogg import opus_frame_duration_ms
from music.audio.source import TrackStream
from music.policy import NetworkPolicy
from tests.audio.test_network_guard import LOOPBACK_ALLOWED, guard_for, start_tls_server  # noqa: F401
from tests.audio.test_source import drain, frequency_of, process_is_gone
from tests.support.media import FFMPEG, MediaServer, start_ranged_response
from tests.support.processes import ffmpeg_children

#: bytes the faulty routes send before they cut (mid-cluster in a 3 s, 96 kbps WebM)
CUT_AT = 12_000
_runs = itertools.count()


class FaultyMedia:
    """Routes on a MediaServer serving the media folder with faults on the first request:
    `/cut/` drops the connection after CUT_AT bytes (and honours Range afterwards), `/norange/`
    does the same but always answers 200 from the start, `/expire/` answers 403 after the drop,
    `/stall/` stops sending after CUT_AT bytes and never ends. `?run=N` keeps tests apart."""

    def __init__(self, media_dir: Path, server: MediaServer) -> None:
        self.media_dir = media_dir
        self.server = server
        self.seen: dict[str, int] = {}
        #: (path with query, Range header or None) of every request, in order
        self.requests: list[tuple[str, str | None]] = []
        server.app.router.add_get("/{mode:cut|norange|expire|stall}/{name}", self.handle)

    def url(self, mode: str, name: str) -> str:
        return f"{self.server.base_url}/{mode}/{name}?run={next(_runs)}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        mode, name = request.match_info["mode"], request.match_info["name"]
        data = (self.media_dir / name).read_bytes()
        key = request.path_qs
        count = self.seen[key] = self.seen.get(key, 0) + 1
        ranged = request.headers.get("Range")
        self.requests.append((key, ranged))
        if count > 1 and mode == "expire":
            return web.Response(status=403, reason="Forbidden")
        response, body = await start_ranged_response(request, data, honour_range=mode != "norange",
                                                     content_type="audio/webm")
        if count == 1:
            await response.write(body[:CUT_AT])
            if mode == "stall":
                await asyncio.sleep(3600)
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(body)
        await response.write_eof()
        return response


@pytest.fixture(scope="module")
def faulty(media_dir: Path) -> Iterator[FaultyMedia]:
    server = MediaServer(media_dir)
    routes = FaultyMedia(media_dir, server)
    server.start()
    yield routes
    server.stop()


@pytest.fixture(scope="module")
def odd_files(media_dir: Path) -> dict[str, str]:
    """Opus in MP4 (a container only ffmpeg reads), MP3 in Matroska (not Opus), 60 ms Opus."""
    made = {}
    for name, codec in (("opus_in.mp4", ["-c:a", "libopus", "-frame_duration", "20", "-f", "mp4"]),
                        ("mp3_in.mka", ["-c:a", "libmp3lame", "-f", "matroska"]),
                        ("opus60.webm", ["-c:a", "libopus", "-frame_duration", "60", "-f", "webm"])):
        path = media_dir / name
        if not path.exists():
            subprocess.run(
                [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                 "-i", "sine=frequency=440:sample_rate=48000:duration=3", "-ac", "2", *codec,
                 str(path)],
                check=True, timeout=60,
            )
        made[name] = name
    return made


def copied_by_ffmpeg(url: str, **kwargs) -> list[bytes]:
    """The reference: the packets an ffmpeg copy gives (what players heard until now)."""
    stream = TrackStream(FFMPEG, url, passthrough=True, **kwargs).start()
    try:
        return drain(stream)
    finally:
        stream.close()


@pytest.fixture(scope="module")
def reference(media_server) -> dict[str, list[bytes]]:
    return {name: copied_by_ffmpeg(media_server.url(name)) for name in ("a440.webm", "a440.ogg")}


def in_process(url: str, **kwargs) -> TrackStream:
    return TrackStream(FFMPEG, url, passthrough=True, in_process=True, **kwargs).start()


@pytest.mark.parametrize(("name", "container"), [("a440.webm", "webm"), ("a440.ogg", "ogg")])
def test_copies_the_same_packets_as_ffmpeg_without_an_ffmpeg_child(media_server, reference, name, container):
    stream = in_process(media_server.url(name))
    try:
        assert stream.wait_ready(10)
        assert ffmpeg_children() == []  # nothing spawned to play it
        assert stream.pid is None and stream.demuxed == container
        assert stream.mode == f"copy (in process, {container})"
        packets = drain(stream)
    finally:
        stream.close()
    assert stream.error is None
    assert packets == reference[name]
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}


def test_a_local_file_is_copied_in_process(media_dir: Path, media_server, reference):
    stream = in_process(str(media_dir / "a440.webm"), local=True)
    with stream:
        packets = drain(stream)
    assert stream.pid is None and packets == reference["a440.webm"]


def test_a_missing_local_file_is_a_sentence(media_dir: Path):
    stream = in_process(str(media_dir / "nope.webm"), local=True)
    with stream:
        assert stream.wait_ready(5) is False
    assert stream.error == "The file does not exist."


def test_a_dropped_connection_resumes_at_the_same_byte(faulty, reference):
    url = faulty.url("cut", "a440.webm")
    stream = in_process(url)
    with stream:
        packets = drain(stream)
    assert stream.error is None
    assert packets == reference["a440.webm"]  # nothing lost, nothing repeated
    ranges = [r for key, r in faulty.requests if url.endswith(key)]
    assert ranges[0] is None and ranges[1] is not None
    resumed_at = int(ranges[1][len("bytes="):].rstrip("-"))
    assert 0 < resumed_at <= CUT_AT  # where the first connection stopped


def test_a_server_without_ranges_is_resumed_by_skipping(faulty, reference):
    stream = in_process(faulty.url("norange", "a440.webm"))
    with stream:
        packets = drain(stream)
    assert stream.error is None and packets == reference["a440.webm"]


def test_an_expired_url_ends_the_stream_with_the_servers_answer(faulty, reference):
    url = faulty.url("expire", "a440.webm")
    stream = in_process(url)
    with stream:
        packets = drain(stream)
    assert stream.error is not None and "403" in stream.error
    assert "/expire/" not in stream.error and "run=" not in stream.error  # no path or query
    # what arrived before the drop played; the player re-resolves and reopens from its position
    assert 0 < len(packets) < len(reference["a440.webm"])
    assert packets == reference["a440.webm"][: len(packets)]
    assert sum(1 for key, _ in faulty.requests if url.endswith(key)) == 2  # 403 is final


def test_close_wakes_a_reader_blocked_on_a_stalled_server(faulty):
    stream = in_process(faulty.url("stall", "a440.webm"))
    assert stream.wait_ready(10)
    deadline = time.monotonic() + 5
    while stream.read_packet() is not None or stream.buffered:
        assert time.monotonic() < deadline
    reader = stream._reader
    assert reader is not None and reader.is_alive()  # blocked on the network
    started = time.monotonic()
    stream.close()
    reader.join(2)
    assert not reader.is_alive() and time.monotonic() - started < 1.0
    assert stream.error is None  # being closed is not a failure


def test_a_missing_url_reports_the_status_without_the_path(media_server):
    stream = in_process(media_server.url("nope.webm"))
    with stream:
        assert stream.wait_ready(10) is False
    assert stream.error is not None and "404" in stream.error
    assert "/media/nope.webm" not in stream.error


def test_opus_in_another_container_is_copied_by_ffmpeg(media_server, odd_files):
    stream = in_process(media_server.url(odd_files["opus_in.mp4"]))
    with stream:
        assert stream.wait_ready(10)
        assert stream.pid is not None and stream.mode == "copy (ffmpeg)"
        packets = drain(stream)
    assert stream.ffmpeg_fallback == "not WebM or Ogg" and stream.passthrough
    assert abs(len(packets) - 150) <= 3 and abs(frequency_of(packets) - 440) < 5
    assert process_is_gone(stream.pid)


def test_matroska_that_is_not_opus_is_transcoded(media_server, odd_files):
    stream = in_process(media_server.url(odd_files["mp3_in.mka"]))
    with stream:
        packets = drain(stream)
    assert stream.ffmpeg_fallback == "not Opus" and stream.fell_back_to_transcode
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}
    assert abs(frequency_of(packets) - 440) < 5


def test_opus_in_60ms_packets_is_transcoded_from_the_start(media_server, odd_files):
    stream = in_process(media_server.url(odd_files["opus60.webm"]))
    with stream:
        packets = drain(stream)
    assert stream.ffmpeg_fallback == "packets other than 20 ms" and not stream.passthrough
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}
    assert abs(len(packets) - 150) <= 3 and abs(frequency_of(packets) - 440) < 5


@pytest.mark.parametrize("where", ["http", "file"])
def test_a_later_start_in_webm_is_copied_in_process_from_the_same_packet_as_ffmpeg(
        media_server, media_dir: Path, where):
    reference = copied_by_ffmpeg(media_server.url("steps.webm"), start=2.0)
    source = media_server.url("steps.webm") if where == "http" else str(media_dir / "steps.webm")
    before = len(media_server.requests)
    stream = TrackStream(FFMPEG, source, start=2.0, passthrough=True, in_process=True,
                         local=where == "file").start()
    with stream:
        packets = drain(stream)
        assert stream.pid is None and stream.demuxed == "webm"
    assert packets == reference  # ffmpeg's -ss copy starts at the very same packet
    assert abs(frequency_of(packets, skip_seconds=0.0, seconds=0.2) - 700) < 10  # 2-3 s is 700 Hz
    if where == "http":
        # the Cues at the end of the file, then the first Cluster (steps.webm has one): ranged
        assert len(media_server.requests) - before >= 2


@pytest.mark.parametrize("start", [0.5, 1.0, 2.37])
def test_ogg_from_a_position_is_read_through_in_process_from_the_same_packet_as_ffmpeg(
    media_server, media_dir: Path, start: float
):
    """Ogg has no index: the reader reads through and drops what ends before the position
    (ffmpeg would read through too: remote input reaches it through a pipe). The reference is
    ffmpeg's copy from the file, where it can bisect."""
    reference = copied_by_ffmpeg(str(media_dir / "a440.ogg"), local=True, start=start)
    stream = TrackStream(FFMPEG, media_server.url("a440.ogg"), start=start, passthrough=True,
                         in_process=True).start()
    with stream:
        packets = drain(stream)
    assert stream.ffmpeg_fallback is None and stream.mode == "copy (in process, ogg)"
    assert packets == reference
    assert abs(len(packets) - (3.0 - start) / 0.02) <= 3


# -- through the network guard ---------------------------------------------------------------------


async def test_in_process_copy_goes_through_the_guard(media_server, reference, guard_for):  # noqa: F811
    guard = await guard_for(LOOPBACK_ALLOWED)
    stream = in_process(media_server.url("a440.webm"), proxy=guard.url)
    with stream:
        packets = await asyncio.to_thread(drain, stream)
    assert packets == reference["a440.webm"]
    assert guard.stats.forwarded == 1 and guard.stats.refused == 0


async def test_the_guard_refusal_becomes_the_users_sentence(media_server, guard_for):  # noqa: F811
    guard = await guard_for(NetworkPolicy())  # the default: local addresses denied
    before = len(media_server.requests)
    stream = in_process(media_server.url("a440.webm"), proxy=guard.url)
    with stream:
        assert await asyncio.to_thread(stream.wait_ready, 10) is False
    # the stream's error is already the sentence (the player shows it as it is)
    assert stream.error == "I won't fetch `127.0.0.1`: it points to a private or local network address."
    assert len(media_server.requests) == before  # nothing reached the server


async def test_https_is_tunnelled_through_the_guard(media_dir: Path, tmp_path, guard_for):  # noqa: F811
    tls_server, cert = await start_tls_server(media_dir, tmp_path)
    try:
        guard = await guard_for(LOOPBACK_ALLOWED)
        reader = HttpMediaReader(f"https://localhost:{tls_server.port}/media/a440.webm",
                                 proxy=guard.url, tls_context=ssl.create_default_context(cafile=cert))

        def read_all() -> bytes:
            with reader:
                return b"".join(iter(reader.read1, b""))

        data = await asyncio.to_thread(read_all)
    finally:
        await tls_server.stop()
    assert data == (media_dir / "a440.webm").read_bytes()
    assert guard.stats.tunnels == 1 and tls_server.hits == ["/media/a440.webm"]


def test_only_web_links_are_fetched():
    with pytest.raises(MediaFetchError, match="Only http and https"):
        HttpMediaReader("file:///etc/passwd")


def test_headers_cannot_smuggle_lines(faulty):
    reader = HttpMediaReader(faulty.url("cut", "a440.webm"),
                             headers={"X-A": "1\r\nX-Injected: yes", "Bad\r\nName": "v"})
    assert reader.headers["X-A"] == "1X-Injected: yes" and "BadName" in reader.headers
    reader.close()


def test_no_reader_thread_outlives_its_stream(media_server):
    stream = in_process(media_server.url("a440.webm"))
    assert stream.wait_ready(10)
    stream.close()
    assert not any(t.name == "music-reader:input" and t.is_alive()
                   for t in threading.enumerate() if t is stream._reader)

"""music.audio.hls: the cog reads HLS itself (ffmpeg gets only the segments' bytes on its stdin).

Parsing is checked on texts; reading on real HLS made by the same static ffmpeg (MPEG-TS and
fMP4 with EXT-X-MAP), served by a local server, through the network guard; hostile playlists
(huge, endless, self-referencing, links that are not http, segments of nothing) are refused
with a sentence or bounded."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from music.audio import hls, hls_playlist
from music.audio.fetch import MediaFetchError
from music.audio.hls import (
    HlsError,
    HlsReader,
    MasterPlaylist,
    MediaPlaylist,
    choose_rendition,
    is_playlist,
    parse_playlist,
)
from music.netguard import policy_refusal
from music.policy import NetworkPolicy
from tests.audio.test_network_guard import LOOPBACK_ALLOWED, guard_for  # noqa: F401
from tests.support.audio_analysis import dominant_frequency
from tests.support.media import FFMPEG, MediaServer

BASE = "http://site.test/live/"


# ---- parsing ------------------------------------------------------------------------------------


def test_a_media_playlist_is_read_with_its_sequence_ranges_and_init_sections() -> None:
    body = b"""\xef\xbb\xbf
#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:17
#EXT-X-MAP:URI="init.mp4",BYTERANGE="700@0"
#EXTINF:3.9,
#EXT-X-BYTERANGE:1000@700
media.m4s
#EXTINF:4.1,title
#EXT-X-BYTERANGE:500
media.m4s
#EXTINF:2,
https://cdn.test/abs/seg.m4s?token=1
#EXT-X-ENDLIST
"""
    playlist = parse_playlist(body, BASE + "index.m3u8")
    assert isinstance(playlist, MediaPlaylist)
    assert playlist.ended and playlist.target_duration == 4 and playlist.media_sequence == 17
    first, second, third = playlist.segments
    assert (first.uri, first.sequence, first.duration) == (BASE + "media.m4s", 17, 3.9)
    assert (first.byterange.offset, first.byterange.length) == (700, 1000)
    # a range without @offset continues the previous range of the same resource
    assert (second.byterange.offset, second.byterange.length) == (1700, 500)
    assert third.uri == "https://cdn.test/abs/seg.m4s?token=1" and third.byterange is None
    assert first.init == third.init and first.init.uri == BASE + "init.mp4"
    assert first.init.byterange.length == 700


def test_the_variant_is_audio_only_when_there_is_one_else_the_smallest() -> None:
    master = b"""#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=6000000,CODECS="avc1.64002a,mp4a.40.2"
1080p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=160000,CODECS="mp4a.40.2"
audio_only.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.4d401f,mp4a.40.2"
360p.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=640000,CODECS="mp4a.40.2"
audio_hifi.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.5"
audio_low.m3u8
"""
    parsed = parse_playlist(master, BASE + "master.m3u8")
    assert isinstance(parsed, MasterPlaylist) and len(parsed.variants) == 5
    # the best audio-only one Discord can use (under 400 kb/s)
    assert choose_rendition(parsed) == BASE + "audio_only.m3u8"
    video_only = parse_playlist(
        b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000\nhi.m3u8\n"
        b"#EXT-X-STREAM-INF:BANDWIDTH=300000\nlo.m3u8\n", BASE)
    assert choose_rendition(video_only) == BASE + "lo.m3u8"


def test_a_separate_audio_rendition_is_read_instead_of_the_video() -> None:
    master = b"""#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",DEFAULT=NO,URI="audio/en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Main",DEFAULT=YES,URI="audio/main.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aud"
video/720.m3u8
"""
    assert choose_rendition(parse_playlist(master, BASE)) == BASE + "audio/main.m3u8"


@pytest.mark.parametrize(
    "link",
    [
        "tcp://127.0.0.2:9/",
        "httpproxy://127.0.0.2:9/x",
        "tls://127.0.0.2:9",
        "file:///etc/passwd",
        "crypto+http://127.0.0.2:9/",
        "concat:a|b",
        "data:text/plain,x",
        "pipe:0",
        "//[::1]:9/x",  # scheme-relative stays http: allowed here, refused by the guard
    ],
)
def test_links_that_are_not_http_are_refused_in_every_place_a_playlist_names_one(link) -> None:
    places = [
        f"#EXTM3U\n#EXTINF:1,\n{link}\n",
        f'#EXTM3U\n#EXT-X-MAP:URI="{link}"\n#EXTINF:1,\nok.ts\n',
        f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n{link}\n",
        f'#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",URI="{link}"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="a"\nv.m3u8\n',
    ]
    for text in places:
        if link.startswith("//"):
            parse_playlist(text.encode(), BASE)  # http: the guard decides on the address
            continue
        with pytest.raises(HlsError, match="I only fetch http and https links") as caught:
            parse_playlist(text.encode(), BASE)
        assert "127.0.0.2" not in caught.value.args[0] and "passwd" not in caught.value.args[0]


@pytest.mark.parametrize(
    "text, sentence",
    [
        ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="k"\n#EXTINF:1,\na.ts\n', "encrypted (AES-128)"),
        ('#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k"\n#EXTINF:1,\na.ts\n', "encrypted (SAMPLE-AES)"),
        ("#EXTM3U\n#EXT-X-I-FRAMES-ONLY\n#EXTINF:1,\na.ts\n", "only video key frames"),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "no stream to play"),
        ("#EXTM3U\n#EXT-X-BYTERANGE:10\n#EXTINF:1,\na.ts\n", "byte range without a start"),
        ("#EXTM3U\n#EXT-X-BYTERANGE:x@y\n#EXTINF:1,\na.ts\n", "byte range I can't read"),
        ("<MPD></MPD>", "not an HLS playlist"),
        ("#EXTM3U\n#EXTINF:1,\n" + "a" * (hls_playlist.MAX_LINE + 1) + "\n", "line too long"),
    ],
)
def test_what_it_cannot_play_is_refused_with_a_sentence(text: str, sentence: str) -> None:
    with pytest.raises(HlsError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        parse_playlist(text.encode(), BASE)


def test_huge_playlists_are_refused_by_size_and_by_entries(monkeypatch) -> None:
    with pytest.raises(HlsError, match="too large"):
        parse_playlist(b"#EXTM3U\n" + b"#" * hls_playlist.MAX_PLAYLIST_BYTES, BASE)
    monkeypatch.setattr(hls_playlist, "MAX_ENTRIES", 100)
    many = "#EXTM3U\n" + "#EXTINF:1,\ns.ts\n" * 101
    with pytest.raises(HlsError, match="too many segments"):
        parse_playlist(many.encode(), BASE)
    variants = "#EXTM3U\n" + "#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n" * 101
    with pytest.raises(HlsError, match="too many streams"):
        parse_playlist(variants.encode(), BASE)


def test_hostile_numbers_stay_finite() -> None:
    text = ("#EXTM3U\n#EXT-X-TARGETDURATION:1e400\n#EXT-X-MEDIA-SEQUENCE:99999999999999999999\n"
            "#EXTINF:nan,\na.ts\n#EXTINF:1e300,\nb.ts\n#EXTINF:-5,\nc.ts\n")
    playlist = parse_playlist(text.encode(), BASE)
    assert playlist.media_sequence == 0
    assert [s.duration for s in playlist.segments] == [0.0, hls_playlist.MAX_SEGMENT_SECONDS, 0.0]


def test_playlists_are_recognised_by_their_first_bytes() -> None:
    assert is_playlist(b"#EXTM3U\n") and is_playlist(b"\xef\xbb\xbf\r\n #EXTM3U")
    assert not is_playlist(b"\x1aE\xdf\xa3") and not is_playlist(b"ID3\x04")


# ---- reading through the guard ----------------------------------------------------------------


def make_hls(folder: Path, kind: str, seconds: float = 6.0, freq: float = 440.0) -> Path:
    """An HLS VOD of a tone (1 s segments) made by ffmpeg: `ts` or `fmp4` (EXT-X-MAP)."""
    folder.mkdir(parents=True, exist_ok=True)
    args = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"sine=f={freq}:d={seconds}:r=48000", "-ac", "2", "-c:a", "aac", "-b:a", "96k",
            "-f", "hls", "-hls_time", "1", "-hls_list_size", "0"]
    if kind == "fmp4":
        args += ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
                 "-hls_segment_filename", str(folder / "seg%03d.m4s")]
    else:
        args += ["-hls_segment_filename", str(folder / "seg%03d.ts")]
    subprocess.run(args + [str(folder / "index.m3u8")], check=True, timeout=60)
    return folder / "index.m3u8"


@pytest.fixture(scope="module")
def hls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hls")
    make_hls(root / "ts", "ts")
    make_hls(root / "fmp4", "fmp4")
    return root


class HlsSite:
    """A MediaServer serving the HLS folder under /hls/, plus routes for live and hostile
    playlists; every request path is recorded in `server.requests`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = MediaServer(root)
        self.server.app.router.add_static("/hls/", str(root))
        self.live_started = 0.0
        self.live_until = 0  # the live playlist stops growing at this sequence number
        self.routes: dict[str, web.StreamResponse | None] = {}
        app = self.server.app
        app.router.add_get("/live/index.m3u8", self.live_playlist)
        app.router.add_get("/live/{n}.ts", self.live_segment)
        app.router.add_get("/text/{name}", self.text)
        app.router.add_get("/endless.m3u8", self.endless)
        app.router.add_get("/redirect/{name}", self.redirect)
        self.texts: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}

    def url(self, path: str) -> str:
        return f"{self.server.base_url}/{path}"

    async def live_playlist(self, request: web.Request) -> web.Response:
        """A sliding window of 4 one-second segments; one new segment a second until
        live_until; the segments are the TS VOD's, in a loop."""
        newest = min(self.live_until, 3 + int(time.monotonic() - self.live_started))
        first = max(0, newest - 3)
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for n in range(first, newest + 1):
            lines += ["#EXTINF:1.0,", f"{n}.ts"]
        return web.Response(text="\n".join(lines) + "\n", content_type="application/vnd.apple.mpegurl")

    async def live_segment(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(body=(self.root / "ts" / f"seg{n % 6:03d}.ts").read_bytes())

    async def text(self, request: web.Request) -> web.Response:
        return web.Response(body=self.texts[request.match_info["name"]])

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.redirects[request.match_info["name"]])

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"#EXTM3U\n")
        try:
            for _ in range(100_000):
                await response.write(b"#EXTINF:1,\nseg.ts\n" * 1000)
        except (ConnectionError, RuntimeError):
            pass
        return response


@pytest.fixture
def site(hls_dir: Path):
    s = HlsSite(hls_dir)
    s.server.start()
    yield s
    s.server.stop()


def read_all(reader: HlsReader, limit: int = 50_000_000) -> bytes:
    out = bytearray()
    while len(out) < limit:
        data = reader.read1(65536)
        if not data:
            break
        out += data
    return bytes(out)


def decode(data: bytes, start: float = 0.0) -> tuple[float, float]:
    """(seconds, dominant frequency) of what ffmpeg decodes from `data` on its stdin, as the
    cog runs it: only the pipe protocol."""
    args = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-protocol_whitelist", "pipe"]
    if start:
        args += ["-ss", f"{start:.3f}"]
    args += ["-i", "pipe:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "pipe:1"]
    done = subprocess.run(args, input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-400:]
    import numpy as np

    pcm = np.frombuffer(done.stdout, dtype="<i2").astype(np.float32) / 32768
    return len(pcm) / 48000, dominant_frequency(pcm)


@pytest.mark.parametrize("kind", ["ts", "fmp4"])
async def test_a_vod_is_read_segment_by_segment_through_the_guard(site, guard_for, hls_dir, kind):  # noqa: F811
    guard = await guard_for(LOOPBACK_ALLOWED)
    reader = await asyncio.to_thread(lambda: HlsReader(site.url(f"hls/{kind}/index.m3u8"), proxy=guard.url))
    data = await asyncio.to_thread(read_all, reader)
    folder = hls_dir / kind
    parts = sorted(folder.glob("seg*"))
    expected = b"".join(p.read_bytes() for p in parts)
    if kind == "fmp4":
        expected = (folder / "init.mp4").read_bytes() + expected  # the init section once
    assert data == expected
    assert not reader.live and reader.segments_fetched == len(parts) + (kind == "fmp4")
    seconds, freq = await asyncio.to_thread(decode, data)
    assert seconds == pytest.approx(6.0, abs=0.1) and freq == pytest.approx(440, abs=5)
    assert guard.stats.forwarded == 1 + reader.segments_fetched and guard.stats.unauthorized == 0


async def test_a_master_playlist_leads_to_the_audio_only_rendition(site, guard_for):  # noqa: F811
    site.texts["master.m3u8"] = (
        b'#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=5000000,CODECS="avc1.64002a,mp4a.40.2"\n'
        b"/text/video.m3u8\n"
        b'#EXT-X-STREAM-INF:BANDWIDTH=96000,CODECS="mp4a.40.2"\n/hls/ts/index.m3u8\n')
    guard = await guard_for(LOOPBACK_ALLOWED)
    reader = await asyncio.to_thread(lambda: HlsReader(site.url("text/master.m3u8"), proxy=guard.url))
    data = await asyncio.to_thread(read_all, reader)
    assert len(data) > 50_000
    assert "/text/video.m3u8" not in site.server.requests


async def test_a_start_position_skips_whole_segments_and_says_the_rest(site, guard_for):  # noqa: F811
    guard = await guard_for(LOOPBACK_ALLOWED)
    reader = await asyncio.to_thread(lambda: HlsReader(site.url("hls/ts/index.m3u8"), proxy=guard.url, start=2.5))
    assert reader.offset == pytest.approx(2.5 - 2 * 1.002667, abs=1e-6)
    data = await asyncio.to_thread(read_all, reader)
    assert not any(p.endswith(("seg000.ts", "seg001.ts")) for p in site.server.requests)
    seconds, _ = await asyncio.to_thread(decode, data, reader.offset)
    assert seconds == pytest.approx(6.0 - 2.5, abs=0.1)


async def test_a_live_playlist_is_reloaded_and_ends_when_it_stops_changing(site, guard_for):  # noqa: F811
    site.live_started = time.monotonic()
    site.live_until = 7  # new segments for ~4 s, then the playlist stays the same
    guard = await guard_for(LOOPBACK_ALLOWED)
    reader = await asyncio.to_thread(lambda: HlsReader(site.url("live/index.m3u8"), proxy=guard.url, stall_seconds=2.5))
    assert reader.live
    began = time.monotonic()
    data = await asyncio.to_thread(read_all, reader)
    took = time.monotonic() - began
    fetched = [p for p in site.server.requests if p.endswith(".ts")]
    # started 3 segments before the newest (0..3 -> 1, 2, 3), then every new one, each once
    assert fetched == [f"/live/{n}.ts" for n in range(1, 8)]
    assert reader.reloads >= 4 and 4.0 <= took <= 12.0
    assert len(data) > 6 * 13_000


async def test_a_segment_that_is_a_playlist_is_refused(site, guard_for):  # noqa: F811
    site.texts["self.m3u8"] = b"#EXTM3U\n#EXTINF:1,\nself.m3u8\n#EXT-X-ENDLIST\n"
    guard = await guard_for(LOOPBACK_ALLOWED)
    reader = await asyncio.to_thread(lambda: HlsReader(site.url("text/self.m3u8"), proxy=guard.url))
    with pytest.raises(HlsError, match="segment is a playlist"):
        await asyncio.to_thread(read_all, reader)
    assert site.server.requests.count("/text/self.m3u8") == 2  # the playlist, then the "segment"


async def test_a_master_that_points_to_a_master_is_refused(site, guard_for):  # noqa: F811
    site.texts["loop.m3u8"] = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nloop.m3u8\n"
    guard = await guard_for(LOOPBACK_ALLOWED)
    with pytest.raises(HlsError, match="another list of streams"):
        await asyncio.to_thread(HlsReader, site.url("text/loop.m3u8"), proxy=guard.url)
    assert site.server.requests.count("/text/loop.m3u8") == 2


async def test_an_endless_playlist_is_cut_at_its_size_limit(site, guard_for):  # noqa: F811
    guard = await guard_for(LOOPBACK_ALLOWED)
    began = time.monotonic()
    with pytest.raises(HlsError, match="too large"):
        await asyncio.to_thread(HlsReader, site.url("endless.m3u8"), proxy=guard.url)
    assert time.monotonic() - began < 10


async def test_a_segment_over_the_size_limit_is_refused(site, guard_for, monkeypatch):  # noqa: F811
    monkeypatch.setattr(hls, "MAX_SEGMENT_BYTES", 5000)
    guard = await guard_for(LOOPBACK_ALLOWED)
    reader = await asyncio.to_thread(lambda: HlsReader(site.url("hls/ts/index.m3u8"), proxy=guard.url))
    with pytest.raises(HlsError, match="larger than I will read"):
        await asyncio.to_thread(read_all, reader)


async def test_segments_of_nothing_are_fetched_at_a_bounded_rate(site, guard_for, monkeypatch):  # noqa: F811
    """A VOD of 500 empty segments: without the pace the reader would ask as fast as the
    network answers."""
    site.texts["empty"] = b""
    site.texts["empties.m3u8"] = b"#EXTM3U\n" + b"#EXTINF:0,\nempty\n" * 500 + b"#EXT-X-ENDLIST\n"
    guard = await guard_for(LOOPBACK_ALLOWED)
    reader = await asyncio.to_thread(lambda: HlsReader(site.url("text/empties.m3u8"), proxy=guard.url))
    thread = threading.Thread(target=read_all, args=(reader,), daemon=True)
    began = time.monotonic()
    thread.start()
    await asyncio.sleep(2.0)
    elapsed = time.monotonic() - began
    reader.close()
    await asyncio.to_thread(thread.join, 5)
    asked = site.server.requests.count("/text/empty")
    assert asked <= hls.SEGMENT_BURST + hls.SEGMENT_RATE * elapsed + 1, asked
    assert asked >= hls.SEGMENT_BURST  # it did read
    assert not thread.is_alive()  # close() ended a reader waiting for its pace


class DeniedListener:
    """A TCP listener on 127.0.0.2 (denied when only 127.0.0.1/32 is allowed) counting every
    connection made to it."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(50)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


async def test_a_segment_on_a_denied_address_is_refused_by_the_guard(site, guard_for):  # noqa: F811
    listener = DeniedListener()
    try:
        site.texts["denied.m3u8"] = (
            f"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.2:{listener.port}/seg.ts\n#EXT-X-ENDLIST\n"
        ).encode()
        site.redirects["hop.ts"] = f"http://127.0.0.2:{listener.port}/seg.ts"
        site.texts["hop.m3u8"] = b"#EXTM3U\n#EXTINF:1,\n/redirect/hop.ts\n#EXT-X-ENDLIST\n"
        guard = await guard_for(NetworkPolicy(allow=["127.0.0.1/32"]))
        for name in ("denied.m3u8", "hop.m3u8"):
            reader = await asyncio.to_thread(HlsReader, site.url(f"text/{name}"), proxy=guard.url)
            with pytest.raises(MediaFetchError) as caught:
                await asyncio.to_thread(read_all, reader)
            refusal = policy_refusal(str(caught.value))
            assert refusal is not None, caught.value
            assert "private or local network address" in refusal.sentence
        assert listener.connections == 0 and guard.stats.refused == 2
    finally:
        listener.close()

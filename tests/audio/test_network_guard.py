"""The network guard with the real clients: yt-dlp (through the Resolver) and ffmpeg connect
only to addresses the policy allows, checked on the address actually connected to.

Names like `rebind.test` don't exist: a fake getaddrinfo (socket.getaddrinfo patched, so the
policy's checks, urllib and the guard all see it) answers them. ffmpeg can't resolve them
itself, so when ffmpeg plays `media.test` it has gone through the guard."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from music.audio.fetch import HttpMediaReader
from music.audio.ffmpeg import ProbeError, find_ffmpeg, input_args, probe_audio
from music.audio.pipe_input import PipeFeeder
from music.audio.source import TrackStream
from music.netguard import NetworkGuard
from music.policy import NetworkPolicy
from music.resolve.resolver import ResolveError, Resolver
from standin.voice import make_self_signed_cert
from tests.audio.test_resolved_playback import drain
from tests.support.audio_analysis import decode_opus_packets, dominant_frequency
from tests.support.lookups import resolve_once

PUBLIC_ADDRESS = "93.184.216.34"  # what a rebinding name answers the first lookups with
LOOPBACK_ALLOWED = NetworkPolicy(allow=["127.0.0.0/8"])
ONLY_127_0_0_1 = NetworkPolicy(allow=["127.0.0.1/32"])  # 127.0.0.2 stays denied (loopback)


class CountingServer:
    """An aiohttp server on `host` serving the media folder, counting every request."""

    def __init__(self, media_dir: Path, host: str = "127.0.0.1") -> None:
        self.host = host
        self.hits: list[str] = []
        self.app = web.Application()
        self.app.router.add_static("/media/", str(media_dir))
        self.port = 0
        self.runner: web.AppRunner | None = None

        @web.middleware
        async def count(request: web.Request, handler):
            self.hits.append(request.path)
            return await handler(request)

        self.app.middlewares.append(count)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> CountingServer:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def start_tls_server(media_dir: Path, tmp_path: Path) -> tuple[CountingServer, str]:
    """A CountingServer over https with a self-signed certificate naming localhost; returns it
    and the certificate's path (the CA file a client must trust)."""
    cert, key = make_self_signed_cert(str(tmp_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return await CountingServer(media_dir).start(ssl_context=context), cert


@pytest_asyncio.fixture
async def server(media_dir: Path) -> AsyncIterator[CountingServer]:
    s = await CountingServer(media_dir).start()
    yield s
    await s.stop()


class FakeDNS:
    """socket.getaddrinfo for made-up names: `answers[name]` is a list of addresses given out
    one per lookup (the last one repeats), so a name can rebind after N lookups."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: dict[str, int] = {}
        real = socket.getaddrinfo

        def fake(host, port, *args, **kwargs):
            name = host.decode() if isinstance(host, bytes) else host
            if name not in self.answers:
                return real(host, port, *args, **kwargs)
            count = self.lookups.get(name, 0)
            self.lookups[name] = count + 1
            seq = self.answers[name]
            address = seq[min(count, len(seq) - 1)]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

        monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    return FakeDNS(monkeypatch)


@pytest_asyncio.fixture
async def guard_for() -> AsyncIterator[Callable[[NetworkPolicy], asyncio.Future]]:
    guards: list[NetworkGuard] = []

    async def start(policy: NetworkPolicy) -> NetworkGuard:
        guard = NetworkGuard(lambda: policy)
        await guard.start()
        guards.append(guard)
        return guard

    yield start
    for guard in guards:
        await guard.close()


async def resolve_with(policy: NetworkPolicy, url: str, proxy: str | None, *, probe: bool = True):
    resolver = Resolver(lambda: policy, proxy=proxy, timeout=15, probe_direct_media=probe)
    return await resolve_once(resolver, url, limit=1)


# ---- DNS rebinding ---------------------------------------------------------------------


async def test_without_the_guard_a_rebinding_name_reaches_the_local_server(dns, server):
    """The control for the next test: the name checks alone let this through."""
    # public for the two name checks (the resolver's, then yt-dlp's request), then loopback
    dns.answers["rebind.test"] = [PUBLIC_ADDRESS, PUBLIC_ADDRESS, "127.0.0.1"]
    url = f"http://rebind.test:{server.port}/media/a440.webm"
    with pytest.raises(ResolveError):  # whatever happens after: the request was made
        # no media probe: its own lookup would take one of the answers meant for yt-dlp
        await resolve_with(NetworkPolicy(), url, proxy=None, probe=False)
    assert server.hits, "the unguarded resolver should have reached the server"


@pytest.mark.parametrize("public_lookups", [1, 2])
async def test_a_rebinding_name_never_reaches_a_local_server_through_ytdlp(
    dns, server, guard_for, public_lookups
):
    dns.answers["rebind.test"] = [PUBLIC_ADDRESS] * public_lookups + ["127.0.0.1"]
    guard = await guard_for(NetworkPolicy())  # 127.0.0.0/8 not allowed
    url = f"http://rebind.test:{server.port}/media/a440.webm"
    with pytest.raises(ResolveError) as caught:
        # no media probe: its own lookups would take answers meant for yt-dlp's
        await resolve_with(NetworkPolicy(), url, proxy=guard.url, probe=False)
    assert server.hits == []
    assert caught.value.sentence == (
        "I won't fetch `rebind.test`: it points to a private or local network address."
    )
    if public_lookups == 2:  # both name checks passed: the guard is what refused
        assert guard.stats.refused == 1
        assert guard.refusals[-1][1:] == ("rebind.test", "local")


async def test_ffmpeg_reaches_a_rebound_name_only_through_the_guard_and_is_refused(
    dns, server, guard_for
):
    dns.answers["rebind.test"] = ["127.0.0.1"]
    guard = await guard_for(NetworkPolicy())
    url = f"http://rebind.test:{server.port}/media/a440.webm"
    with pytest.raises(ProbeError):
        await asyncio.to_thread(probe_audio, find_ffmpeg(), url, proxy=guard.url, timeout=15)
    assert server.hits == []
    assert guard.stats.refused >= 1


# ---- redirects -----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def redirect_pair(media_dir: Path) -> AsyncIterator[tuple[CountingServer, CountingServer]]:
    """`allowed` on 127.0.0.1 redirects /hop/<name> to `denied` on 127.0.0.2."""
    denied = await CountingServer(media_dir, host="127.0.0.2").start()
    allowed = CountingServer(media_dir)

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{denied.port}/media/{request.match_info['name']}")

    allowed.app.router.add_get("/hop/{name}", hop)
    await allowed.start()
    yield allowed, denied
    await allowed.stop()
    await denied.stop()


async def test_a_redirect_to_a_denied_address_is_refused_before_connecting(
    redirect_pair, guard_for
):
    allowed, denied = redirect_pair
    guard = await guard_for(ONLY_127_0_0_1)
    url = f"http://127.0.0.1:{allowed.port}/hop/a440.webm"
    with pytest.raises(ResolveError) as caught:
        await resolve_with(ONLY_127_0_0_1, url, proxy=guard.url)
    assert "private or local network address" in caught.value.sentence
    assert allowed.hits and denied.hits == []
    # ffmpeg follows redirects itself: through the guard it is refused too
    with pytest.raises(ProbeError):
        await asyncio.to_thread(probe_audio, find_ffmpeg(), url, proxy=guard.url, timeout=15)
    assert denied.hits == []


async def test_without_the_guard_the_redirect_target_is_contacted(redirect_pair):
    """The control: the after-the-fact check refuses, but only once the request was made."""
    allowed, denied = redirect_pair
    with pytest.raises(ResolveError):
        await resolve_with(ONLY_127_0_0_1, f"http://127.0.0.1:{allowed.port}/hop/a440.webm", None)
    assert denied.hits


# ---- normal playback through the guard ------------------------------------------------------


async def test_a_track_resolves_and_plays_through_the_guard(dns, server, guard_for):
    dns.answers["media.test"] = ["127.0.0.1"]  # ffmpeg can only reach this via the guard
    guard = await guard_for(LOOPBACK_ALLOWED)
    result = await resolve_with(
        LOOPBACK_ALLOWED, f"http://media.test:{server.port}/media/a440.webm", guard.url
    )
    track = result.tracks[0]
    assert track.duration == pytest.approx(3.0, abs=0.1)  # the direct-media probe went through
    stream = TrackStream(find_ffmpeg(), track.stream_url, passthrough=True, proxy=guard.url)
    with stream.start():
        packets = await asyncio.to_thread(drain, stream)
    assert 147 <= len(packets) <= 153, (len(packets), stream.error)
    pcm, _ = decode_opus_packets(packets)
    assert dominant_frequency(pcm) == pytest.approx(440.0, abs=5)
    assert guard.stats.forwarded >= 3  # yt-dlp, the probe, the stream
    assert guard.stats.refused == 0


async def test_https_reaches_ffmpeg_only_as_bytes_the_cog_tunnelled(media_dir, tmp_path, guard_for):
    """ffmpeg opens no https itself: the cog's reader tunnels through the guard with CONNECT
    and ffmpeg reads the bytes on its stdin; through a guard that refuses loopback the tunnel
    is never opened and the refusal is the feeder's error."""
    tls_server, cert = await start_tls_server(media_dir, tmp_path)
    tls = ssl.create_default_context(cafile=cert)
    url = f"https://localhost:{tls_server.port}/media/a440.webm"

    def play(proxy: str) -> tuple[int, str | None]:
        proc = subprocess.Popen(
            [find_ffmpeg(), "-hide_banner", "-nostdin", *input_args(None), "-f", "null", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stdin, proc.stdin = proc.stdin, None
        feeder = PipeFeeder(HttpMediaReader(url, proxy=proxy, tls_context=tls), stdin).start()
        returncode = proc.wait(30)
        feeder.join(5)
        return returncode, feeder.error

    try:
        guard = await guard_for(LOOPBACK_ALLOWED)
        assert await asyncio.to_thread(play, guard.url) == (0, None)
        assert (guard.stats.tunnels, guard.stats.forwarded) == (1, 0)
        assert tls_server.hits == ["/media/a440.webm"]
        strict = await guard_for(NetworkPolicy())
        returncode, error = await asyncio.to_thread(play, strict.url)
        assert returncode != 0
        assert error == "I won't fetch `localhost`: it points to a private or local network address."
        assert len(tls_server.hits) == 1
    finally:
        await tls_server.stop()



# ---- the guard's secret: every client of the cog sends it; nothing else gets through --------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_ytdlp_sends_the_guards_secret_for_plain_requests_and_connect(
    scheme, media_dir, tmp_path, guard_for
):
    """yt-dlp's `proxy` option with the guard's URL: the credentials in it become the
    Proxy-Authorization of the absolute-URI request (http) and of the CONNECT (https)."""
    from yt_dlp import YoutubeDL

    if scheme == "https":
        site, _ = await start_tls_server(media_dir, tmp_path)
        host = "localhost"
    else:
        site, host = await CountingServer(media_dir).start(), "127.0.0.1"
    try:
        guard = await guard_for(LOOPBACK_ALLOWED)
        url = f"{scheme}://{host}:{site.port}/media/a440.webm"

        def fetch() -> bytes:
            with YoutubeDL({"quiet": True, "proxy": guard.url, "nocheckcertificate": True}) as ydl:
                return ydl.urlopen(url).read()

        body = await asyncio.to_thread(fetch)
        assert body == (media_dir / "a440.webm").read_bytes()
        assert guard.stats.unauthorized == 0 and site.hits == ["/media/a440.webm"]
        assert (guard.stats.tunnels, guard.stats.forwarded) == ((1, 0) if scheme == "https" else (0, 1))
    finally:
        await site.stop()


async def test_a_raw_client_without_the_secret_is_refused_and_reaches_nothing(server, guard_for):
    """Another local process that finds the guard's port: 407 for a plain request and for a
    CONNECT, and the site behind it sees nothing."""
    guard = await guard_for(LOOPBACK_ALLOWED)
    port = int(guard.address.rsplit(":", 1)[1])
    for head in (
        f"GET http://127.0.0.1:{server.port}/media/a440.webm HTTP/1.1\r\nHost: x\r\n\r\n",
        f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head.encode())
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 407 "), answer
    assert server.hits == [] and guard.stats.unauthorized == 2

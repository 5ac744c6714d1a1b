"""No connection leaves the cog or its ffmpeg children except through the network guard,
whatever a manifest, a redirect or a stored track names (issue 13, point 1).

Every input protocol the bundled ffmpeg lists (`ffmpeg -protocols`), in the URL forms that could
reach an address (`P://host:port/...`, `P:tcp://host:port`, `P+http://host:port/`, and the
wrapper forms of concat and subfile), aimed at a listener on 127.0.0.2 that the policy denies
(only the media server's 127.0.0.1/32 is allowed), is named:

- in manifests served by the allowed media server: an HLS segment, init section, variant,
  audio rendition and key; a DASH BaseURL; an ffconcat script; an IMF composition; each played
  as the cog plays a remote track (TrackStream, in-process first, through the guard) and probed
  as the resolver probes a direct link;
- as the target of a redirect from the allowed server;
- as a stored track's stream URL, remote and local;
- in the same manifests saved as local files in the owner's folder.

The listener counts TCP connections and UDP datagrams: it must see none. Two controls show the
test can fail: ffmpeg with the input options the cog used before (http, https, tcp, tls,
crypto, httpproxy allowed) reaches the listener from the same manifests; and ffmpeg itself, fed
a manifest with a nested-URL demuxer forced, is stopped by the demuxer allowlist, and, with that
allowlist removed, still by the pipe-only protocol whitelist.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web

from music.audio.ffmpeg import FORMAT_WHITELIST, build_args, input_args
from music.audio.ffmpeg_process import NOT_MEDIA_SENTENCE
from music.audio.stream import TrackStream
from music.netguard import NetworkGuard
from music.policy import NetworkPolicy
from music.resolve.local import StartedProbe
from tests.audio.test_source import drain
from tests.support.denied import ALLOWED_NETWORKS, DeniedListener
from tests.support.media import FFMPEG, MediaServer

#: the demuxers of the bundled ffmpeg that open URLs named in their input
NESTED_DEMUXERS = ("hls", "dash", "imf", "concat")
#: the input options the cog gave ffmpeg before (the controls show they were not enough)
OLD_REMOTE_PROTOCOLS = "http,https,tcp,tls,crypto,httpproxy"


def input_protocols() -> list[str]:
    listed = subprocess.run([FFMPEG, "-hide_banner", "-protocols"], capture_output=True,
                            text=True, check=True).stdout
    inputs = listed.split("Input:", 1)[1].split("Output:", 1)[0]
    return sorted({name.strip() for name in inputs.split() if name.strip()})


def hostile_urls(address: str) -> list[str]:
    """Every input protocol in every form that could open ``address``."""
    urls: list[str] = []
    for protocol in input_protocols():
        urls += [f"{protocol}://{address}/x", f"{protocol}:tcp://{address}/x",
                 f"{protocol}+http://{address}/x"]
    urls += [f"concat:tcp://{address}|http://{address}/b",
             f"subfile,,start,0,end,0,,:tcp://{address}",
             f"http://{address}/plain", f"https://{address}/plain"]
    return urls


def manifests(url: str, allowed: str) -> dict[str, str]:
    """Each manifest kind naming ``url``; ``allowed`` is a real segment on the allowed server,
    so that nothing else is wrong with the manifest."""
    return {
        "hls-segment": f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{url}\n#EXT-X-ENDLIST\n",
        "hls-init": (f'#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI="{url}"\n'
                     f"#EXTINF:1,\n{allowed}\n#EXT-X-ENDLIST\n"),
        "hls-variant": f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=64000\n{url}\n",
        "hls-rendition": (f'#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="{url}"\n'
                          f'#EXT-X-STREAM-INF:BANDWIDTH=64000,AUDIO="a"\n{allowed}\n'),
        "hls-key": (f'#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-KEY:METHOD=AES-128,URI="{url}"\n'
                    f"#EXTINF:1,\n{allowed}\n#EXT-X-ENDLIST\n"),
        "dash": ('<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" '
                 'type="static" mediaPresentationDuration="PT3S" minBufferTime="PT1S" '
                 'profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">'
                 f"<BaseURL>{url}</BaseURL><Period><AdaptationSet mimeType=\"audio/webm\">"
                 f'<Representation id="1" bandwidth="64000" codecs="opus"><BaseURL>{url}</BaseURL>'
                 "</Representation></AdaptationSet></Period></MPD>\n"),
        "concat": f"ffconcat version 1.0\nfile '{url}'\nfile '{url}'\n",
        "imf": ('<?xml version="1.0"?>\n<CompositionPlaylist xmlns="http://www.smpte-ra.org/'
                'schemas/2067-3/2016"><Id>urn:uuid:00000000-0000-0000-0000-000000000001</Id>'
                f"<ContentTitle>{url}</ContentTitle><SegmentList><Segment><SequenceList>"
                f"<MainAudioSequence><ResourceList><Resource><TrackFileId>{url}</TrackFileId>"
                "</Resource></ResourceList></MainAudioSequence></SequenceList></Segment>"
                "</SegmentList></CompositionPlaylist>\n"),
    }


class Site:
    """The allowed media server with `/m/<n>` serving registered texts and `/r/<n>`
    redirecting to registered URLs."""

    def __init__(self, media_dir: Path) -> None:
        self.server = MediaServer(media_dir)
        self.texts: dict[str, str] = {}
        self.targets: dict[str, str] = {}
        self.server.app.router.add_get("/m/{n}", self.text)
        self.server.app.router.add_get("/r/{n}", self.redirect)

    async def text(self, request: web.Request) -> web.Response:
        name = request.match_info["n"]
        # ffmpeg's HLS demuxer wants an .m3u8 name or an HLS media type: give it both
        kind = "application/vnd.apple.mpegurl" if name.endswith(".m3u8") else "text/plain"
        return web.Response(text=self.texts[name], content_type=kind)

    async def redirect(self, request: web.Request) -> web.Response:
        # aiohttp's HTTPFound insists on a URL it can parse; any Location text goes out as is
        return web.Response(status=302, headers={"Location": self.targets[request.match_info["n"]]})

    def serve(self, text: str, suffix: str = "") -> str:
        key = f"{len(self.texts)}{suffix}"
        self.texts[key] = text
        return f"{self.server.base_url}/m/{key}"

    def redirect_to(self, url: str) -> str:
        key = str(len(self.targets))
        self.targets[key] = url
        return f"{self.server.base_url}/r/{key}"


@pytest.fixture
def listener() -> Iterator[DeniedListener]:
    denied = DeniedListener()
    yield denied
    denied.close()


@pytest.fixture
def site(media_dir: Path) -> Iterator[Site]:
    s = Site(media_dir)
    s.server.start()
    yield s
    s.server.stop()


@pytest.fixture
async def guard() -> NetworkGuard:
    g = NetworkGuard(lambda: NetworkPolicy(allow=list(ALLOWED_NETWORKS)))
    await g.start()
    yield g
    await g.close()


def play(source: str, *, proxy: str | None, local: bool = False) -> str | None:
    """Play ``source`` as the cog plays a track (in process first, ffmpeg for the rest);
    return its error (None would mean it played)."""
    stream = TrackStream(FFMPEG, source, passthrough=True, in_process=True, local=local,
                         proxy=proxy).start()
    try:
        packets = drain(stream, timeout=30)
    finally:
        stream.close()
    return None if packets else (stream.error or "no audio")


def probe(source: str, *, proxy: str | None) -> None:
    StartedProbe(source, proxy=proxy, timeout=15).result()


async def run_all(jobs: list[Callable[[], object]]) -> list[object]:
    def run() -> list[object]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda job: job(), jobs))

    return await asyncio.to_thread(run)


def test_every_input_protocol_is_swept() -> None:
    """The sweep covers what this ffmpeg has, network protocols included."""
    protocols = input_protocols()
    assert {"tcp", "httpproxy", "tls", "crypto", "http", "udp", "rtmp", "concat", "subfile"} <= set(protocols)
    assert len(hostile_urls("127.0.0.2:9")) >= 3 * len(protocols)


async def test_manifests_naming_any_protocol_reach_no_denied_address(site, guard, listener) -> None:
    allowed = site.server.url("a440.webm")
    urls = hostile_urls(listener.address())
    served: list[tuple[str, str]] = []
    for url in urls:
        for kind, text in manifests(url, allowed).items():
            served.append((kind, site.serve(text, ".m3u8" if kind.startswith("hls") else "")))
    errors = await run_all([lambda u=u: play(u, proxy=guard.url) for _, u in served])
    await run_all([lambda u=u: probe(u, proxy=guard.url) for _, u in served])
    assert listener.connections == 0, listener.seen[:5]
    assert all(errors), [kind for (kind, _), error in zip(served, errors) if not error]
    # every manifest was read (by the cog; ffmpeg never opened a URL)
    fetched = set(site.server.requests)
    assert all(url.split(str(site.server.port), 1)[1] in fetched for _, url in served)
    kinds = {kind for kind, _ in served}
    assert {"hls-segment", "hls-init", "hls-variant", "dash", "concat", "imf"} <= kinds


async def test_redirects_to_any_protocol_reach_no_denied_address(site, guard, listener) -> None:
    redirects = [site.redirect_to(url) for url in hostile_urls(listener.address())]
    errors = await run_all([lambda u=u: play(u, proxy=guard.url) for u in redirects])
    await run_all([lambda u=u: probe(u, proxy=guard.url) for u in redirects])
    assert listener.connections == 0, listener.seen[:5]
    assert all(errors)
    assert any("not a web link" in str(e) for e in errors)
    assert any("I won't fetch `127.0.0.2`" in str(e) for e in errors)  # the http(s) ones


async def test_stored_stream_urls_of_any_protocol_reach_no_denied_address(guard, listener) -> None:
    urls = hostile_urls(listener.address())
    remote = await run_all([lambda u=u: play(u, proxy=guard.url) for u in urls])
    local = await run_all([lambda u=u: play(u, proxy=None, local=True) for u in urls])
    await run_all([lambda u=u: probe(u, proxy=guard.url) for u in urls])
    assert listener.connections == 0, listener.seen[:5]
    assert all(remote) and all(local)
    assert {e for u, e in zip(urls, remote) if not u.startswith("http")} == {
        "Only http and https links can be streamed."}


async def test_local_manifest_files_reach_no_denied_address(media_dir, tmp_path, listener) -> None:
    allowed = f"file:{media_dir / 'a440.webm'}"
    paths: list[Path] = []
    for n, url in enumerate(hostile_urls(listener.address())):
        for kind, text in manifests(url, allowed).items():
            path = tmp_path / f"{n}-{kind}.{ {'dash': 'mpd', 'concat': 'ffconcat', 'imf': 'xml'}.get(kind, 'm3u8')}"
            path.write_text(text)
            paths.append(path)
    errors = await run_all([lambda p=p: play(str(p), proxy=None, local=True) for p in paths])
    assert listener.connections == 0, listener.seen[:5]
    assert all(errors)
    assert NOT_MEDIA_SENTENCE in errors  # ffmpeg's demuxer allowlist refused the manifest


# ---- ffmpeg's own layers, and the controls --------------------------------------------------------


def ffmpeg_reads(text: str, args: list[str]) -> str:
    done = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", *args,
                           "-f", "null", "-"], input=text.encode(), capture_output=True, timeout=30)
    return done.stderr.decode("utf-8", "replace")


NETWORK_FORMS = ("tcp://{a}/x", "httpproxy://{a}/x", "tls://{a}", "udp://{a}", "http://{a}/x",
                 "crypto+http://{a}/x", "rtmp://{a}/app/x", "srt://{a}")


async def test_a_forced_nested_demuxer_is_stopped_by_the_allowlist_then_by_the_pipe(listener) -> None:
    urls = [form.format(a=listener.address()) for form in NETWORK_FORMS]

    def sweep() -> list[str]:
        said = []
        for url in urls:
            for demuxer in NESTED_DEMUXERS:
                text = manifests(url, url)[{"hls": "hls-segment"}.get(demuxer, demuxer)]
                # the production options with the demuxer forced: the allowlist refuses it
                said.append(ffmpeg_reads(text, input_args(None, input_format=demuxer)))
                # without the allowlist, the pipe-only protocol whitelist still holds
                said.append(ffmpeg_reads(text, ["-protocol_whitelist", "pipe", "-f", demuxer,
                                                "-i", "pipe:0"]))
        return said

    said = await asyncio.to_thread(sweep)
    assert listener.connections == 0, listener.seen[:5]
    assert sum("not on whitelist" in s.lower() for s in said) >= len(urls) * len(NESTED_DEMUXERS)
    assert set(FORMAT_WHITELIST.split(",")).isdisjoint(NESTED_DEMUXERS)


async def test_control_the_old_input_options_let_a_manifest_reach_the_listener(site, guard, listener) -> None:
    """What the cog gave ffmpeg before: the same manifests open sockets to the denied address."""
    address = listener.address()
    # ffmpeg's HLS demuxer takes http* segments (httpproxy among them), concat anything
    urls = [site.serve(manifests(f"httpproxy://{address}/x.ts", "")["hls-segment"], ".m3u8"),
            site.serve(manifests(f"tcp://{address}/x", "")["concat"]),
            site.serve(manifests(f"httpproxy://{address}/x", "")["concat"])]

    def old_ffmpeg(url: str, demuxer: str | None) -> None:
        args = ["-protocol_whitelist", OLD_REMOTE_PROTOCOLS, "-http_proxy", guard.url]
        if demuxer:
            args += ["-f", demuxer, "-safe", "0"]
        subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", *args,
                        "-i", url, "-t", "1", "-f", "null", "-"], capture_output=True, timeout=30)

    await asyncio.to_thread(old_ffmpeg, urls[0], None)
    await asyncio.to_thread(old_ffmpeg, urls[1], "concat")
    await asyncio.to_thread(old_ffmpeg, urls[2], "concat")
    assert listener.connections >= 3, listener.seen
    # httpproxy sends a CONNECT whose text the manifest chose
    assert any(first.startswith(b"CONNECT x") for kind, first in listener.seen), listener.seen
    # and the new options on the very same manifests
    before = listener.connections
    errors = await run_all([lambda u=u: play(u, proxy=guard.url) for u in urls])
    assert all(errors) and listener.connections == before


def test_the_command_line_names_no_url_for_a_remote_input() -> None:
    args = build_args(FFMPEG, None, passthrough=False)
    assert args[args.index("-i") + 1] == "pipe:0"
    assert args[args.index("-protocol_whitelist") + 1] == "pipe"
    assert not any("://" in a for a in args)

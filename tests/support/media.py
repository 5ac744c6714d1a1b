"""Generated test media and a local HTTP server that serves it (Range requests supported).

Everything is made with the same static ffmpeg the cog uses, so the tests need no system package.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
from aiohttp import web

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

# container/codec arguments per file suffix
_FORMATS: dict[str, list[str]] = {
    "webm": ["-c:a", "libopus", "-b:a", "96k", "-frame_duration", "20", "-f", "webm"],
    "ogg": ["-c:a", "libopus", "-b:a", "96k", "-frame_duration", "20", "-f", "ogg"],
    "opus": ["-c:a", "libopus", "-b:a", "96k", "-frame_duration", "20", "-f", "ogg"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"],
    "m4a": ["-c:a", "aac", "-b:a", "128k", "-f", "ipod"],
}


def generate_tone(
    path: Path,
    freqs: float | Sequence[float],
    seconds_each: float = 2.0,
    *,
    amplitude: float = 0.5,
    title: str | None = None,
    artist: str | None = None,
) -> Path:
    """Write a tone file. With several frequencies, each lasts `seconds_each` (a stepped tone,
    useful to check seek offsets); the format follows the suffix of `path`."""
    freq_list = [float(freqs)] if isinstance(freqs, (int, float)) else [float(f) for f in freqs]
    total = seconds_each * len(freq_list)
    # piecewise frequency: f(t) = freq_list[floor(t / seconds_each)]
    expr = str(freq_list[-1])
    for i in range(len(freq_list) - 2, -1, -1):
        expr = f"if(lt(t,{(i + 1) * seconds_each}),{freq_list[i]},{expr})"
    src = f"aevalsrc='{amplitude}*sin(2*PI*({expr})*t)':s=48000:c=stereo:d={total}"
    args = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src]
    if title:
        args += ["-metadata", f"title={title}"]
    if artist:
        args += ["-metadata", f"artist={artist}"]
    args += _FORMATS[path.suffix.lstrip(".")] + [str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(args, check=True, timeout=60)
    return path


async def start_ranged_response(
    request: web.Request, data: bytes, *, honour_range: bool = True,
    content_type: str = "application/octet-stream",
) -> tuple[web.StreamResponse, bytes]:
    """A prepared response serving ``data`` from the request's ``Range: bytes=N-`` (206 with its
    Content-Range) or, without one (or with ``honour_range`` False), whole (200). Returns it
    with the body still to write, so a fault route can send part of it and cut."""
    ranged = request.headers.get("Range") if honour_range else None
    start = int(ranged[len("bytes="):].split("-")[0]) if ranged else 0
    body = data[start:]
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    if start:
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    response = web.StreamResponse(status=206 if start else 200, headers=headers)
    await response.prepare(request)
    return response, body


class MediaServer:
    """An aiohttp server on 127.0.0.1 in its own thread, serving a directory.

    Extra routes can be added before `start()` through `app` (e.g. to simulate failures)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.app = web.Application()
        self.app.router.add_static("/media/", str(root), show_index=False)
        self.requests: list[str] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

        @web.middleware
        async def log_requests(request: web.Request, handler):
            self.requests.append(request.path)
            return await handler(request)

        self.app.middlewares.append(log_requests)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/media/{name}"

    def start(self) -> MediaServer:
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            runner = web.AppRunner(self.app, access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self._runner = runner
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="media-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("media server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

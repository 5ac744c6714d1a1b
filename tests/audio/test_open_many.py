"""Many tracks opened at once through the network guard (a restart resumes every guild; a large
bot's prefetches overlap): no open may wait on another's host-name lookup.

The guard resolves names with loop.getaddrinfo, on the loop's default executor. An open that
parked a thread of that executor while waiting for its first packet (up to OPEN_TIMEOUT) made
more simultaneous opens than workers wait for lookups queued behind themselves, until they all
timed out: on 2 cores (6 workers), 8 opens at once, 6 failed after 15 s."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from music.engine.track import Track
from music.netguard import NetworkGuard, system_resolve
from music.player.adapters import PipelineAudio
from music.policy import NetworkPolicy

WORKERS = 2
OPENS = 3 * WORKERS


async def test_more_opens_at_once_than_executor_workers(media_server):
    loop = asyncio.get_running_loop()
    executor = concurrent.futures.ThreadPoolExecutor(WORKERS)
    loop.set_default_executor(executor)
    # `media.test` is a name, so the guard looks it up (the way system_resolve does: on the
    # default executor); it answers the media server's address
    guard = NetworkGuard(lambda: NetworkPolicy(allow=["127.0.0.0/8"]),
                         resolve=lambda host, port: system_resolve("127.0.0.1", port))
    proxy = await guard.start()
    audio = PipelineAudio(lambda: None, lambda: proxy)
    url = media_server.url("a440.webm").replace("127.0.0.1", "media.test")
    tracks = [Track(query=url, title="a440", stream_url=url, acodec="opus", container="webm",
                    duration=3.0) for _ in range(OPENS)]
    started = time.monotonic()
    try:
        streams = await asyncio.gather(*(audio.open(track, 0.0, 100) for track in tracks))
        took = time.monotonic() - started
        assert all(stream.frames_read == 0 and stream.read_packet() for stream in streams)
        assert took < 5.0, f"{OPENS} opens took {took:.1f} s"
        for stream in streams:
            await asyncio.to_thread(stream.close)
    finally:
        await guard.close()
        executor.shutdown(wait=False)

"""A finished or stopped track leaves no reference cycle behind: everything a stream held (its
demuxer, the input's buffers, locks and connection) is freed when the stream is dropped, not at
the next full garbage collection. Over a long session every track change left ~20 objects for
the collector, which piled up in the soak (benchmarks/soak.py) and make the rare full
collection, a pause of the audio thread, longer."""

from __future__ import annotations

import gc
import time

import pytest

from music.audio.fetch import HttpMediaReader
from music.audio.ffmpeg import find_ffmpeg
from music.audio.limits import WorkMeter
from music.audio.ogg import OggOpusReader
from music.audio.source import TrackStream
from music.audio.webm import WebmOpusReader

LEFT_FOR_THE_COLLECTOR = (TrackStream, WebmOpusReader, OggOpusReader, HttpMediaReader, WorkMeter)


def play(url: str, packets: int | None) -> int:
    """Open `url` in process, take `packets` packets (None: all), close; the packets taken."""
    stream = TrackStream(find_ffmpeg(), url, passthrough=True, in_process=True)
    stream.start()
    assert stream.wait_ready(10), stream.error
    taken = 0
    deadline = time.monotonic() + 20
    while not stream.finished and (packets is None or taken < packets):
        assert time.monotonic() < deadline
        if stream.read_packet() is None:
            time.sleep(0.002)
        else:
            taken += 1
    stream.close()
    assert stream.demuxed is not None  # read in process, no ffmpeg
    return taken


@pytest.mark.parametrize("name", ["a440.webm", "a440.ogg"])
@pytest.mark.parametrize("packets", [None, 30], ids=["to the end", "stopped mid-track"])
def test_a_stream_leaves_nothing_for_the_garbage_collector(media_server, name, packets):
    url = media_server.url(name)
    play(url, packets)  # imports and first-use caches before the count
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds goes to gc.garbage, to look at
    try:
        taken = play(url, packets)
        time.sleep(0.2)  # the reader thread ends after close()
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, LEFT_FOR_THE_COLLECTOR)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert taken >= (packets or 100)
    assert left == []

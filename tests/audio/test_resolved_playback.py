"""Real yt-dlp on local URLs, the cog's passthrough decision, real ffmpeg: what the voice
connection would be handed is 20 ms Opus that decodes to the served tone, for its duration."""

from __future__ import annotations

import asyncio
import time

import pytest

from music.audio.ffmpeg import find_ffmpeg
from music.audio.ogg import opus_frame_duration_ms
from music.audio.source import TrackStream
from music.player.adapters import wants_passthrough
from music.policy import NetworkPolicy
from music.resolve.resolver import Resolver
from tests.support.audio_analysis import decode_opus_packets, dominant_frequency
from tests.support.lookups import resolve_once


def drain(stream: TrackStream) -> list[bytes]:
    """Every packet the stream gives, read as the audio thread would (never blocking)."""
    assert stream.wait_ready(10)
    packets: list[bytes] = []
    deadline = time.monotonic() + 20
    while not stream.finished and time.monotonic() < deadline:
        packet = stream.read_packet()
        if packet is None:
            time.sleep(0.005)
        else:
            packets.append(packet)
    return packets


FORMATS = [
    # file, tone, copied rather than transcoded
    ("a440.webm", 440.0, True),
    ("a440.ogg", 440.0, True),
    ("a660.mp3", 660.0, False),
    ("a550.m4a", 550.0, False),
]


@pytest.mark.parametrize(("name", "frequency", "copied"), FORMATS)
async def test_a_resolved_track_plays_as_20ms_opus_of_its_tone(media_server, name, frequency, copied):
    resolver = Resolver(lambda: NetworkPolicy(allow=["127.0.0.0/8"]))
    result = await resolve_once(resolver, media_server.url(name), requester_id=1, limit=1)
    track = result.tracks[0]
    assert wants_passthrough(track, 100) is copied
    assert not wants_passthrough(track, 50)  # a volume always needs decoding
    stream = TrackStream(find_ffmpeg(), track.stream_url, passthrough=wants_passthrough(track, 100))
    with stream.start():
        packets = await asyncio.to_thread(drain, stream)
        assert stream.passthrough is copied
    assert all(opus_frame_duration_ms(p) == 20.0 for p in packets)
    assert 147 <= len(packets) <= 153, len(packets)  # a 3 s track is 150 packets of 20 ms
    pcm, undecodable = decode_opus_packets(packets)
    assert undecodable == 0  # no Ogg header packet passed as audio
    assert abs(dominant_frequency(pcm[4800:-4800]) - frequency) < 5
    assert track.duration == pytest.approx(3.0, abs=0.1)

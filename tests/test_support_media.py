from tests.support.audio_analysis import decode_file, dominant_frequency


def test_generated_tones_have_their_frequency(media_dir):
    pcm = decode_file(str(media_dir / "a660.mp3"))
    assert abs(dominant_frequency(pcm[48000:96000]) - 660) < 5
    steps = decode_file(str(media_dir / "steps.webm"))
    assert abs(dominant_frequency(steps[int(2.1 * 48000):int(2.9 * 48000)]) - 700) < 5


def test_media_server_serves_ranges(media_server):
    import urllib.request

    req = urllib.request.Request(media_server.url("a440.webm"), headers={"Range": "bytes=0-9"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 206
        assert len(resp.read()) == 10

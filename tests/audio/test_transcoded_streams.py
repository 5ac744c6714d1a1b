"""TrackStream with the shared transcoder (music.audio.transcoder): transcoding runs as a job
of the one worker, not an ffmpeg child; a copy, a local file from a position and a transcoder
that cannot run stay with ffmpeg. Real PyAV, a real worker, real ffmpeg, local HTTP."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

import music.audio.transcoder as transcoder_module
from music.audio.ogg import opus_frame_duration_ms
from music.audio.source import TrackStream
from music.audio.transcoder import STOPPED_SENTENCE, SharedTranscoder, shared_transcoder
from music.engine.filters import FilterChain
from tests.audio.test_in_process import odd_files  # noqa: F401 -- a fixture
from tests.audio.test_source import drain, frequency_of, process_is_gone
from tests.support.media import FFMPEG
from tests.support.processes import ffmpeg_children, transcoder_workers

pytestmark = pytest.mark.skipif(not SharedTranscoder.available(),
                                reason="no PyAV with libopus, or no socket.send_fds")


def transcoding(source: str, transcoder: SharedTranscoder | None, **kwargs) -> TrackStream:
    return TrackStream(FFMPEG, source, passthrough=False, transcoder=transcoder, **kwargs)


def test_a_remote_mp3_plays_through_the_shared_worker_with_no_ffmpeg_child(transcoder, media_server):
    stream = transcoding(media_server.url("a660.mp3"), transcoder).start()
    try:
        assert stream.wait_ready(15)
        assert stream.in_shared_transcoder and stream.mode == "transcode (shared)"
        assert stream.pid == transcoder.worker_pid and stream.process is None
        assert ffmpeg_children() == []
        packets = drain(stream)
    finally:
        stream.close()
    assert stream.error is None and stream.returncode == 0
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}
    assert abs(len(packets) - 150) <= 3 and abs(frequency_of(packets) - 660) < 5


def test_filters_volume_and_a_start_position_go_to_the_worker(transcoder, media_server):
    nightcore = FilterChain().with_filter("nightcore")  # rate 1.25: 440 Hz -> 550 Hz
    with transcoding(media_server.url("a440.webm"), transcoder, filters=nightcore,
                     volume=80, start=1.0) as stream:
        packets = drain(stream)
    assert stream.in_shared_transcoder and stream.error is None
    # 2 s of the track left, played 1.25 times as fast
    assert abs(len(packets) - 2.0 / 1.25 / 0.02) <= 3
    assert abs(frequency_of(packets) - 550) < 6
    assert stream.position == pytest.approx(3.0, abs=0.1)


def test_a_local_file_from_its_start_uses_the_worker_from_a_position_ffmpeg(transcoder, media_dir):
    with transcoding(str(media_dir / "a660.mp3"), transcoder, local=True) as stream:
        packets = drain(stream)
    assert stream.in_shared_transcoder and stream.error is None
    assert abs(len(packets) - 150) <= 3
    # ffmpeg seeks in the file; the worker would decode everything before the position
    with transcoding(str(media_dir / "a660.mp3"), transcoder, local=True, start=2.0) as stream:
        assert stream.process is not None and not stream.in_shared_transcoder
        packets = drain(stream)
    assert stream.error is None and abs(len(packets) - 50) <= 3


def test_opus_in_60ms_packets_restarts_transcoding_in_the_worker(transcoder, media_server,
                                                                  odd_files):  # noqa: F811
    stream = TrackStream(FFMPEG, media_server.url(odd_files["opus60.webm"]), passthrough=True,
                         in_process=True, transcoder=transcoder)
    with stream:
        packets = drain(stream)
    assert stream.ffmpeg_fallback == "packets other than 20 ms" and stream.fell_back_to_transcode
    assert stream.in_shared_transcoder and stream.error is None
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}
    assert abs(len(packets) - 150) <= 3


def test_a_copy_still_runs_ffmpeg(transcoder, media_server):
    stream = TrackStream(FFMPEG, media_server.url("a440.webm"), passthrough=True,
                         transcoder=transcoder)
    with stream:
        assert stream.wait_ready(15)
        assert stream.mode == "copy (ffmpeg)" and stream.process is not None
        drain(stream)
    assert transcoder.worker_pid is None  # never started: nothing transcoded


def test_killing_the_worker_mid_play_ends_the_stream_with_a_sentence_and_the_next_one_plays(
        transcoder, media_server):
    first = transcoding(media_server.url("long.mp3"), transcoder).start()
    try:
        assert first.wait_ready(15)
        dead = transcoder.worker_pid
        assert dead is not None
        os.kill(dead, signal.SIGKILL)
        drain(first)
    finally:
        first.close()
    assert first.error == STOPPED_SENTENCE
    assert first.position < 29  # it did not play to its end
    with transcoding(media_server.url("a660.mp3"), transcoder) as second:
        packets = drain(second)
    assert second.error is None and second.in_shared_transcoder
    assert transcoder.worker_pid not in (None, dead)
    assert abs(len(packets) - 150) <= 3
    assert process_is_gone(dead)


def test_a_worker_that_cannot_start_falls_back_to_ffmpeg(media_server, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(transcoder_module, "_refusal", None)  # restored: later tests use it
    broken = tmp_path / "broken_worker.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    shared = SharedTranscoder(python=sys.executable, script=broken)
    try:
        with transcoding(media_server.url("a660.mp3"), shared) as stream:
            assert stream.wait_ready(15)
            assert stream.process is not None and not stream.in_shared_transcoder
            packets = drain(stream)
        assert stream.error is None and abs(len(packets) - 150) <= 3
        # the refusal holds: the next stream goes straight to ffmpeg, no new worker is tried
        assert "before it was ready" in (transcoder_module.unavailable_reason() or "")
        assert shared_transcoder() is None
    finally:
        shared.close()


def test_without_pyav_there_is_no_shared_transcoder(monkeypatch):
    monkeypatch.setattr(transcoder_module, "unavailable_reason",
                        lambda: "PyAV (the av package) is not installed")
    assert shared_transcoder() is None


def test_the_process_wide_transcoder_is_one_and_closes_without_an_orphan():
    shared = shared_transcoder()
    assert shared is not None and shared_transcoder() is shared
    transcoder_module.warm_up_shared_transcoder()
    pid = shared.worker_pid
    assert pid is not None
    transcoder_module.close_shared_transcoder()
    assert process_is_gone(pid)
    again = shared_transcoder()
    assert again is not None and again is not shared  # a reload gets a fresh one
    transcoder_module.close_shared_transcoder()
    assert again.worker_pid is None


def test_a_warm_up_that_runs_after_the_unload_starts_no_worker(caplog):
    # cog_load takes the instance, then warms it up in a thread; cog_unload may close it
    # before that thread runs: the late warm-up must not start a worker nothing would end
    shared = shared_transcoder()
    assert shared is not None
    transcoder_module.close_shared_transcoder()
    with caplog.at_level("DEBUG", logger="red.music.audio.transcoder"):
        transcoder_module.warm_up_transcoder(shared)
    assert shared.worker_pid is None and transcoder_workers() == []
    assert not [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" or "worker started" in r.getMessage()]

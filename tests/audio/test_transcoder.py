"""The shared transcoder (music.audio.transcoder + transcoder_worker): real media, real PyAV,
a real worker process; what comes out is decoded and measured."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from music.audio.filters import filter_graph
from music.audio.ogg import OggOpusReader, opus_frame_duration_ms
from music.audio.pipe_input import RemoteSource
from music.audio.transcoder import SharedTranscoder, TranscodeJob
from music.engine.filters import FilterChain
from tests.support.audio_analysis import SAMPLE_RATE, decode_opus_packets, dominant_frequency, rms
from tests.support.processes import process_is_gone

pytestmark = pytest.mark.skipif(not SharedTranscoder.available(),
                                reason="no PyAV with libopus, or no socket.send_fds")

SECONDS_PER_PACKET = 0.02


def packets_of(job: TranscodeJob, limit: int | None = None) -> list[bytes]:
    packets: list[bytes] = []
    assert job.stdout is not None
    for packet in OggOpusReader(job.stdout):
        packets.append(packet)
        if limit is not None and len(packets) >= limit:
            break
    return packets


def played(job: TranscodeJob) -> list[bytes]:
    """Every packet of a job, and its end: it must have played to its end without an error."""
    packets = packets_of(job)
    assert job.wait_exit(closing=False) == 0, job.error
    assert job.error is None
    return packets


def frequency_at(packets: list[bytes], begin: float, seconds: float = 0.5) -> float:
    pcm, bad = decode_opus_packets(packets)
    assert bad == 0
    first = int(begin * SAMPLE_RATE)
    return dominant_frequency(pcm[first:first + int(seconds * SAMPLE_RATE)])


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Pss line")


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_mp3_becomes_20ms_ogg_opus_of_its_tone(transcoder, media_dir):
    job = transcoder.start_job(open(media_dir / "a660.mp3", "rb"))
    packets = played(job)
    assert {opus_frame_duration_ms(p) for p in packets} == {20.0}
    assert len(packets) * SECONDS_PER_PACKET == pytest.approx(3.0, abs=0.1)
    assert frequency_at(packets, 1.0) == pytest.approx(660, abs=4)


def test_a_remote_input_through_the_feeder_and_a_filter_chain(transcoder, media_server):
    nightcore = FilterChain().with_filter("nightcore")  # rate 1.25: 440 Hz -> 550 Hz, 3 -> 2.4 s
    source = RemoteSource(media_server.url("a440.webm"), headers=None, proxy=None)
    job = transcoder.start_job(source, filters=filter_graph(nightcore), input_format="matroska")
    packets = played(job)
    assert len(packets) * SECONDS_PER_PACKET == pytest.approx(3.0 / 1.25, abs=0.1)
    assert frequency_at(packets, 1.0) == pytest.approx(550, abs=5)


def test_volume_50_halves_the_level(transcoder, media_dir):
    full = played(transcoder.start_job(open(media_dir / "a660.mp3", "rb")))
    half = played(transcoder.start_job(open(media_dir / "a660.mp3", "rb"),
                                       filters=filter_graph(None, 50)))
    level_full = rms(decode_opus_packets(full)[0][SAMPLE_RATE:2 * SAMPLE_RATE])
    level_half = rms(decode_opus_packets(half)[0][SAMPLE_RATE:2 * SAMPLE_RATE])
    assert level_half / level_full == pytest.approx(0.5, abs=0.03)


def test_a_start_position_skips_that_much(transcoder, media_dir):
    # steps.webm: 300, 500, 700, 900, 1100 Hz, one second each
    job = transcoder.start_job(open(media_dir / "steps.webm", "rb"), start=2.0)
    packets = played(job)
    assert len(packets) * SECONDS_PER_PACKET == pytest.approx(3.0, abs=0.1)
    assert frequency_at(packets, 0.2, 0.6) == pytest.approx(700, abs=6)
    assert frequency_at(packets, 1.2, 0.6) == pytest.approx(900, abs=6)


def test_the_loss_settings_reach_libopus(transcoder, media_dir):
    # what the benchmarks' like-for-like rows set for both sides (FEC on, 15 % expected loss):
    # libopus encodes differently when it expects losses, and the same settings encode the
    # same bytes, so a job that ignored them would give the plain job's packets
    def encoded(**loss) -> list[bytes]:
        return played(transcoder.start_job(open(media_dir / "a660.mp3", "rb"), **loss))

    plain = encoded()
    assert encoded(fec=False, packet_loss=0) == plain
    lossy = encoded(fec=True, packet_loss=15)
    assert lossy == encoded(fec=True, packet_loss=15)
    assert lossy != plain and len(lossy) == len(plain)


def test_twenty_jobs_share_one_worker_at_well_under_4_mb_each(transcoder, media_dir):
    first = transcoder.start_job(open(media_dir / "long.mp3", "rb"))
    assert len(packets_of(first, 50)) == 50  # 1 s: it runs (and PyAV is loaded)
    pid = first.pid
    alone = pss_mb(pid)
    threads_alone = len(os.listdir(f"/proc/{pid}/task"))
    fds_alone = len(os.listdir(f"/proc/{pid}/fd"))
    jobs = [transcoder.start_job(open(media_dir / "long.mp3", "rb")) for _ in range(19)]
    for job in jobs:
        assert len(packets_of(job, 50)) == 50
    # nobody reads now: each job fills its pipe and blocks there, nothing grows
    time.sleep(0.5)
    together = pss_mb(pid)
    time.sleep(0.5)
    assert pss_mb(pid) <= together + 1.0
    assert {job.pid for job in jobs} == {pid}
    assert transcoder.worker_pid == pid
    threads = len(os.listdir(f"/proc/{pid}/task"))
    assert threads >= 20
    per_job = (together - alone) / 19
    assert per_job < 2.0, f"{per_job:.2f} MB per job"
    for job in [first, *jobs]:
        job.end_while_draining()
        assert job.wait_exit(closing=True) == 0
        assert job.error is None
    # every job's thread and pipes are gone with it
    wait_until(lambda: len(os.listdir(f"/proc/{pid}/task")) <= threads_alone - 1)
    assert len(os.listdir(f"/proc/{pid}/fd")) <= fds_alone - 2


def test_garbage_gives_a_clear_error_and_the_other_jobs_go_on(transcoder, media_dir, tmp_path):
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(os.urandom(200_000))
    good = transcoder.start_job(open(media_dir / "a660.mp3", "rb"))
    bad = transcoder.start_job(open(garbage, "rb"))
    assert packets_of(bad) == []
    assert bad.wait_exit(closing=False) == 1
    assert bad.error is not None and "could not" in bad.error
    assert "Traceback" not in bad.error
    packets = played(good)
    assert frequency_at(packets, 1.0) == pytest.approx(660, abs=4)


def test_a_playlist_naming_a_local_file_is_not_played(transcoder, media_dir, tmp_path):
    # libav's HLS demuxer, allowed, would open and play the file it names (outside the
    # worker: there the input's name does not end in .m3u8, so it is not even probed)
    playlist = tmp_path / "list.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3.0,\n"
                        f"file://{media_dir / 'a660.mp3'}\n#EXT-X-ENDLIST\n")
    job = transcoder.start_job(open(playlist, "rb"))
    assert packets_of(job) == []
    assert job.wait_exit(closing=False) == 1
    assert job.error is not None
    assert "looks like a playlist" in job.error or "could not open" in job.error


def test_a_filter_the_cog_never_makes_is_refused(transcoder, media_dir):
    job = transcoder.start_job(open(media_dir / "a660.mp3", "rb"),
                               filters="amovie=/etc/passwd")
    assert packets_of(job) == []
    assert job.wait_exit(closing=False) == 1
    assert job.error is not None and "filters" in job.error


def test_a_killed_worker_ends_every_open_job_and_the_next_starts_a_new_one(transcoder, media_dir):
    jobs = [transcoder.start_job(open(media_dir / "long.mp3", "rb")) for _ in range(3)]
    for job in jobs:
        assert len(packets_of(job, 10)) == 10
    pid = jobs[0].pid
    os.kill(pid, signal.SIGKILL)
    for job in jobs:
        packets_of(job)  # the output ends
        assert job.wait_exit(closing=False) == 1
        assert job.error == "The transcoder stopped."
    wait_until(lambda: process_is_gone(pid))
    again = transcoder.start_job(open(media_dir / "a660.mp3", "rb"))
    assert again.pid != pid
    assert frequency_at(played(again), 1.0) == pytest.approx(660, abs=4)


def test_cancel_ends_a_job_mid_stream(transcoder, media_dir):
    job = transcoder.start_job(open(media_dir / "long.mp3", "rb"))
    assert len(packets_of(job, 25)) == 25
    began = time.monotonic()
    job.end_while_draining()  # as TrackStream's reader does when it is closed
    assert job.wait_exit(closing=True) == 0
    assert time.monotonic() - began < 1.0
    assert job.error is None
    assert not job.feeder.running


def test_cancel_drains_a_job_whose_pipe_is_numbered_past_1024(transcoder, media_dir,
                                                             high_descriptors):
    """A bot with hundreds of voice connections gets descriptors numbered 1,024 and up, which
    select() refuses: ending a job from its reader must still drain the pipe the worker is
    blocked writing into, not wait for the exit timeout."""
    job = transcoder.start_job(open(media_dir / "long.mp3", "rb"))
    assert job.stdout is not None and job.stdout.fileno() >= 1024
    assert len(packets_of(job, 25)) == 25
    time.sleep(0.5)  # the worker runs ahead until the pipe is full and its write blocks
    began = time.monotonic()
    job.end_while_draining()
    assert job.wait_exit(closing=True) == 0
    assert time.monotonic() - began < 1.0
    assert job.error is None


@pytest.fixture
def stalling_server():
    """An http server that answers with headers and then sends nothing (a server that stalls)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _addr = listener.accept()
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\n"
                             b"Content-Length: 1000000\r\n\r\n")
                held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/stall.mp3"
    listener.close()
    for conn in held:
        conn.close()


def test_cancel_ends_a_job_waiting_for_its_first_bytes(transcoder, stalling_server):
    job = transcoder.start_job(RemoteSource(stalling_server, headers=None, proxy=None))
    time.sleep(0.3)
    assert not job.ended  # the worker waits in its demuxer, the feeder on the network
    began = time.monotonic()
    job.end(timeout=2.0)  # closes the input: the feeder ends it, the worker sees its end
    assert job.ended and job.error is None
    assert time.monotonic() - began < 1.0
    assert packets_of(job) == []
    assert not job.feeder.running
    job.close_stdout()


def test_end_from_another_thread_while_nobody_reads(transcoder, media_dir):
    job = transcoder.start_job(open(media_dir / "long.mp3", "rb"))
    assert len(packets_of(job, 25)) == 25
    time.sleep(0.3)  # the pipe fills: the job blocks writing
    ender = threading.Thread(target=job.end)
    ender.start()
    rest = packets_of(job)  # the reader goes on draining until the worker closes the output
    ender.join(3)
    assert not ender.is_alive()
    assert job.ended and job.error is None
    assert len(rest) < 30 * 50  # it stopped well before the track's end


def test_close_leaves_no_process_behind(media_dir):
    shared = SharedTranscoder()
    shared.warm_up()
    pid = shared.worker_pid
    assert pid is not None
    job = shared.start_job(open(media_dir / "long.mp3", "rb"))
    assert job.pid == pid
    assert len(packets_of(job, 10)) == 10
    began = time.monotonic()
    shared.close()
    assert time.monotonic() - began < 3.0
    assert process_is_gone(pid)
    packets_of(job)
    assert job.wait_exit(closing=False) == 1 and job.error == "The transcoder stopped."
    with pytest.raises(OSError):
        shared.start_job(open(media_dir / "a660.mp3", "rb"))


def test_the_bot_process_never_imports_pyav(media_dir):
    """PyAV maps ~10 MB of libraries into whoever imports it: only the worker does."""
    script = (
        "import sys\n"
        "from music.audio.transcoder import SharedTranscoder\n"
        "from music.audio.ogg import OggOpusReader\n"
        "assert SharedTranscoder.available()\n"
        "shared = SharedTranscoder()\n"
        f"job = shared.start_job(open({str(media_dir / 'a660.mp3')!r}, 'rb'))\n"
        "assert len(list(OggOpusReader(job.stdout))) > 100\n"
        "assert job.wait_exit(closing=False) == 0, job.error\n"
        "shared.close()\n"
        "assert 'av' not in sys.modules, 'the bot imported PyAV'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]

"""Local folder: listing, Tracks for local files, ffmpeg probe parsing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from music.policy import PolicyError
from music.resolve import local
from music.resolve.local import (
    alist_local_files,
    build_local_track,
    list_local_files,
    parse_probe_output,
    probe_media,
    resolve_local,
)
from tests.support.media import generate_tone


@pytest.fixture
def library(tmp_path: Path, media_dir: Path) -> Path:
    folder = tmp_path / "library"
    (folder / "b-side").mkdir(parents=True)
    (folder / "a440.webm").write_bytes((media_dir / "a440.webm").read_bytes())
    (folder / "b-side" / "a660.mp3").write_bytes((media_dir / "a660.mp3").read_bytes())
    (folder / "Z.FLAC").write_bytes(b"x")  # suffixes match case-insensitively
    (folder / "cover.jpg").write_bytes(b"x")
    (tmp_path / "secret.mp3").write_bytes(b"x")
    (folder / "escape.mp3").symlink_to(tmp_path / "secret.mp3")
    (folder / "alias.webm").symlink_to(folder / "a440.webm")
    return folder


def test_list_local_files_sorted_relative_media_only(library: Path) -> None:
    assert list_local_files(library) == ["Z.FLAC", "a440.webm", "alias.webm", "b-side/a660.mp3"]


def test_list_local_files_respects_limit_and_missing_folder(library: Path, tmp_path: Path) -> None:
    assert list_local_files(library, limit=2) == ["Z.FLAC", "a440.webm"]
    assert list_local_files(tmp_path / "nope") == []


async def test_alist_local_files_runs_in_a_thread(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = local.list_local_files

    def spy(folder: Path, limit: int) -> list[str]:
        seen.append(threading.current_thread().name)
        return real(folder, limit)

    monkeypatch.setattr(local, "list_local_files", spy)
    assert "a440.webm" in await alist_local_files(library, 10)
    assert seen and seen[0] != threading.main_thread().name


def test_local_track_has_relative_query_absolute_stream_and_probed_info(library: Path) -> None:
    track = build_local_track(library, "b-side/a660.mp3", requester_id=7)
    assert track.kind == "local"
    assert track.query == "b-side/a660.mp3"
    assert track.stream_url == str((library / "b-side" / "a660.mp3").resolve())
    assert track.title == "a660"  # the file's title tag
    assert track.duration == pytest.approx(3.0, abs=0.1)
    assert track.acodec == "mp3"
    assert track.container == "mp3"
    assert track.requester_id == 7
    assert not track.is_expired(now=1e12)


def test_local_track_title_falls_back_to_file_stem(tmp_path: Path) -> None:
    generate_tone(tmp_path / "Untagged Song.ogg", [440.0], 0.5)
    track = build_local_track(tmp_path, "Untagged Song.ogg")
    assert track.title == "Untagged Song"
    assert track.acodec == "opus"
    assert build_local_track(tmp_path, "Untagged Song.ogg", probe=False).duration is None


async def test_resolve_local_refuses_outside_paths(library: Path) -> None:
    with pytest.raises(PolicyError, match="outside the local folder"):
        await resolve_local(library, "escape.mp3")
    track = await resolve_local(library, "a440.webm", 3)
    assert track.acodec == "opus" and track.requester_id == 3


def test_probe_missing_file_or_ffmpeg_gives_empty_probe(tmp_path: Path) -> None:
    empty = local.MediaProbe()
    assert probe_media(str(tmp_path / "none.mp3")) == empty
    assert probe_media(str(tmp_path / "none.mp3"), ffmpeg=str(tmp_path / "no-ffmpeg")) == empty


def test_parse_probe_output_reads_duration_codec_title_container() -> None:
    text = """Input #0, matroska,webm, from 'file:/x.webm':
  Metadata:
    title           : Song: Part 2
  Duration: 01:02:03.50, start: 0.000000, bitrate: 132 kb/s
  Stream #0:0(eng): Audio: opus, 48000 Hz, stereo, fltp
"""
    probe = parse_probe_output(text)
    assert probe.duration == pytest.approx(3723.5)
    assert probe.acodec == "opus"
    assert probe.title == "Song: Part 2"
    assert probe.container == "matroska,webm"
    assert parse_probe_output("  Duration: N/A, bitrate: N/A") == local.MediaProbe()

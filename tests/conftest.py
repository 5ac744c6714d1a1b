"""Fixtures shared by the whole suite: generated tone media served over local HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.media import MediaServer, generate_tone

# name -> (frequencies, seconds per frequency)
TONES: dict[str, tuple[list[float], float]] = {
    "a440.webm": ([440.0], 3.0),
    "a440.ogg": ([440.0], 3.0),
    "a660.mp3": ([660.0], 3.0),
    "a550.m4a": ([550.0], 3.0),
    "b880.webm": ([880.0], 3.0),
    "steps.webm": ([300.0, 500.0, 700.0, 900.0, 1100.0], 1.0),
    # long enough that ffmpeg outlives the pipe buffer: it stays alive while the track plays
    "long.mp3": ([330.0], 30.0),
}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    for name, (freqs, secs) in TONES.items():
        generate_tone(root / name, freqs, secs, title=name.split(".")[0])
    return root


@pytest.fixture(scope="session")
def media_server(media_dir: Path) -> Iterator[MediaServer]:
    server = MediaServer(media_dir).start()
    yield server
    server.stop()


#: descriptors held open by ``high_descriptors``: past select()'s limit of 1,024
HIGH_DESCRIPTOR = 1100


@pytest.fixture
def high_descriptors() -> Iterator[None]:
    """Hold descriptors up to HIGH_DESCRIPTOR open, so the next ones (sockets, pipes) are
    numbered above 1,024, as in a bot with hundreds of voice connections."""
    held: list[int] = []
    probe = os.open(os.devnull, os.O_RDONLY)
    held.append(probe)
    while held[-1] < HIGH_DESCRIPTOR:
        held.append(os.dup(probe))
    yield
    for fd in held:
        os.close(fd)

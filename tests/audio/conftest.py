"""Fixtures shared by the audio tests."""

from __future__ import annotations

import pytest

from music.audio.transcoder import SharedTranscoder
from tests.support.processes import process_is_gone


@pytest.fixture
def transcoder():
    """A shared transcoder of the test's own; closed after it, leaving no worker behind."""
    shared = SharedTranscoder()
    yield shared
    pid = shared.worker_pid
    shared.close()
    if pid is not None:
        assert process_is_gone(pid)

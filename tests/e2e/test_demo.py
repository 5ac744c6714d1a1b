"""The demo (`scripts/demo` runs `python -m standin.demo`) as a user runs it: its own stand-in,
Red and media server, the cog installed through Downloader; we check its report, its WAV and its
exit code."""

from __future__ import annotations

import asyncio
import re
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from standin.analysis import dominant_frequency
from tests.support.redbot import REPO_ROOT

pytestmark = [pytest.mark.e2e]


async def test_demo_plays_two_tracks_reports_them_and_writes_the_wav(tmp_path: Path) -> None:
    output = tmp_path / "demo-output"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "standin.demo", "--tracks", "2", "--output", str(output),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    report = out.decode()
    print(report)
    assert proc.returncode == 0, report

    # (a) the chat, as the owner and the member typed it, with the bot's answers
    assert "owner: !cog install musicrepo music" in report
    assert "Successfully installed the cog: `music`" in report
    assert re.search(r"member: !play http://127\.0\.0\.1:\d+/media/a4-440hz\.webm", report)
    assert "Playing **a4-440hz**" in report and "Queued **e5-660hz**" in report

    # (b) one row per track, at its frequency, about 2.5 s each, at the generated -9 dBFS
    rows = re.findall(r"^\s+(\S+)\s+(\d+) Hz\s+([\d.]+)s\s+([\d.]+) Hz\s+(-?[\d.]+) dBFS\s+(\S+)\s+ok$",
                      report, re.MULTILINE)
    assert [r[0] for r in rows] == ["a4-440hz.webm", "e5-660hz.mp3"], report
    for name, expected, heard, dominant, level, _frames in rows:
        assert abs(float(dominant) - float(expected)) < 5, name
        assert 2.2 <= float(heard) <= 2.7, name
        assert -12 <= float(level) <= -7, name
    assert rows[1][5].isdigit() and int(rows[1][5]) <= 5  # frames between the two tracks
    assert "Every track was heard at its frequency." in report

    # (c) the WAV holds what the channel heard: 440 Hz then 660 Hz
    wav_path = output / "received.wav"
    assert f"{wav_path.resolve()}" in report
    with wave.open(str(wav_path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 48000)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float32) / 32768
    assert len(pcm) >= 4.5 * 48000
    assert abs(dominant_frequency(pcm[24000:96000]) - 440) < 5
    assert abs(dominant_frequency(pcm[150000:216000]) - 660) < 5
    assert (output / "red.log").stat().st_size > 0

"""`mypy music` (the settings in pyproject.toml) reports no error: the types hold at the
discord.py and Red boundaries too, so a refactor that breaks a contract fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_finds_no_error_in_the_cog():
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "music"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout

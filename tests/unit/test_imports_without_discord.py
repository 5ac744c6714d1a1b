"""The Discord-free parts import without discord.py (issue 12): the container parsers, the HTTP
input, the per-track stream and the engine. A fresh interpreter, where any ``import discord``
raises, imports them; a control run shows the blocker really blocks."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import music.engine

ROOT = Path(__file__).resolve().parents[2]

DISCORD_FREE = [
    "music.audio",
    "music.audio.ogg",
    "music.audio.webm",
    "music.audio.fetch",
    "music.audio.prebuffer",
    "music.audio.ffmpeg_process",
    "music.audio.in_process",
    "music.audio.stream",
    "music.i18n",
    "music.engine",
    *(f"music.engine.{m.name}" for m in pkgutil.iter_modules(music.engine.__path__)),
]

BLOCKER = """
import importlib, sys

class BlockDiscord:
    def find_spec(self, name, path=None, target=None):
        if name == "discord" or name.startswith("discord."):
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, BlockDiscord())
for name in sys.argv[1:]:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m == "discord" or m.startswith(("discord.", "redbot")))
assert not leaked, leaked
print("imported", len(sys.argv) - 1)
"""


def run_blocked(*modules: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER, *modules], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_parsers_stream_and_engine_import_without_discord() -> None:
    assert len(DISCORD_FREE) > 10  # the engine's modules were found
    result = run_blocked(*DISCORD_FREE)
    assert result.returncode == 0, result.stderr
    assert f"imported {len(DISCORD_FREE)}" in result.stdout


def test_the_blocker_blocks_what_needs_discord() -> None:
    result = run_blocked("music.audio.chain")
    assert result.returncode != 0
    assert "blocked: discord" in result.stderr

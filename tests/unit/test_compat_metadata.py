"""What the cog promises about Python and Red (music/info.json, read by Downloader) agrees with what
the project is developed and tested on (pyproject.toml, scripts/test) and with the README (issue 14).
pyproject.toml is read with regular expressions: these tests run on Python 3.10 too (no tomllib)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFO = json.loads((ROOT / "music" / "info.json").read_text(encoding="utf-8"))
PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def pyproject_value(pattern: str) -> str:
    match = re.search(pattern, PYPROJECT, re.MULTILINE)
    assert match, pattern
    return match[1]


def test_min_python_version_is_the_lower_bound_of_requires_python_and_this_python_is_in_it() -> None:
    lower, upper = re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)",
                                pyproject_value(r'^requires-python = "([^"]+)"')).groups()
    assert INFO["min_python_version"] == [*map(int, lower.split(".")), 0] == [3, 10, 0]
    assert tuple(map(int, lower.split("."))) <= sys.version_info[:2] < tuple(map(int, upper.split(".")))


def test_min_bot_version_is_the_first_dave_capable_red_and_the_development_range_starts_there() -> None:
    assert INFO["min_bot_version"] == "3.5.23"
    red = pyproject_value(r'^\s*"Red-DiscordBot([^"]+)"')
    assert red == ">=3.5.23,<3.6", "a range for development, not one version"


def test_the_readme_install_section_states_both_minimums() -> None:
    install = README.split("## Installing on your Red bot", 1)[1].split("\n## ", 1)[0]
    assert "Red-DiscordBot 3.5.23 or newer" in install
    assert "Python 3.10 or 3.11" in install


def test_the_cog_asks_downloader_for_what_it_imports_at_load() -> None:
    names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in INFO["requirements"]}
    assert {"yt-dlp", "yt-dlp-ejs", "pynacl", "davey", "imageio-ffmpeg"} <= names
    assert not any(n.startswith("discord") for n in names), "a second discord.py would land in lib"

"""Create ./.venv with everything the project needs, from pyproject.toml (idempotent).

Used by scripts/test and scripts/demo, so a fresh machine with Python 3.11 and git needs no
other step. A stamp file skips pip when pyproject.toml has not changed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("MUSIC_VENV", ROOT / ".venv"))


def main() -> int:
    if sys.version_info[:2] != (3, 11):
        print(f"Python 3.11 is needed (Red 3.5 supports <3.12); this is {sys.version.split()[0]}.", file=sys.stderr)
        return 2
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    project = tomllib.loads(pyproject.decode())["project"]
    wanted = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    stamp = VENV / ".music-deps"
    digest = hashlib.sha256(pyproject).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return 0
    print("Installing dependencies (first run only) ...", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-U", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted], check=True)
    stamp.write_text(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

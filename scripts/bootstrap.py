"""Create a virtual environment with everything the project needs, from pyproject.toml (idempotent).

    python3.11 scripts/bootstrap.py                   ./.venv: this Python 3.11, the newest Red 3.5
    python3.11 scripts/bootstrap.py --python 3.10     ./.venv-3.10: Python 3.10 (pyenv's or PATH's)
    python3.11 scripts/bootstrap.py --red 3.5.23      ./.venv-red3.5.23: Python 3.11, that Red

Used by scripts/test (the main run and the compatibility matrix) and scripts/demo, so a fresh
machine with Python 3.11 and git needs no other step. The script itself runs on 3.11 (it reads
pyproject.toml with tomllib); the environment it builds may use another interpreter. A stamp
file skips pip when nothing it depends on has changed. Prints the environment's python path."""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RED = "Red-DiscordBot"


def find_python(version: str) -> str:
    """An interpreter for `version` ("3.10"): pyenv's real binary (its bare shims refuse when the
    version is not selected), else `python3.10` on PATH if it runs."""
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    if shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            pyenv_root = done.stdout.strip()
    candidates = sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        done = subprocess.run([candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    raise SystemExit(f"No working Python {version} found (looked in {pyenv_root}/versions and on PATH).")


def version_of(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def supported(requires_python: str, version: tuple[int, int]) -> bool:
    """`>=3.10,<3.12` against (3, 10): enough of PEP 440 for a requires-python range."""
    for clause in filter(None, (c.strip() for c in requires_python.split(","))):
        match = re.fullmatch(r"(>=|<=|<|>|==)\s*(\d+)\.(\d+)", clause)
        if match is None:
            raise SystemExit(f"bootstrap.py cannot read requires-python clause {clause!r}")
        bound = (int(match[2]), int(match[3]))
        ok = {">=": version >= bound, "<=": version <= bound, "<": version < bound,
              ">": version > bound, "==": version == bound}[match[1]]
        if not ok:
            return False
    return True


def requirements(project: dict, red: str | None) -> list[str]:
    """The project's and the test extra's requirements; `red` pins Red-DiscordBot to one release
    (asyncpg stays, so the PostgreSQL backend tests run on it too)."""
    wanted = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    if red is None:
        return wanted
    pinned = [w for w in wanted if not re.match(rf"{RED}\b", w, re.IGNORECASE)]
    return [f"{RED}=={red}", *pinned]


def default_venv(python_version: str | None, red: str | None) -> Path:
    if python_version is None and red is None:
        return Path(os.environ.get("MUSIC_VENV", ROOT / ".venv"))
    name = ".venv"
    if python_version is not None:
        name += f"-{python_version}"
    if red is not None:
        name += f"-red{red}"
    return ROOT / name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", metavar="X.Y", help="build the environment with this Python version")
    parser.add_argument("--red", metavar="VERSION", help="install exactly this Red-DiscordBot release")
    parser.add_argument("--venv", type=Path, help="where (default: .venv, .venv-X.Y, .venv-redVERSION)")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 11):
        print(f"bootstrap.py runs on Python 3.11 (it reads pyproject.toml with tomllib); this is "
              f"{sys.version.split()[0]}.", file=sys.stderr)
        return 2
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    project = tomllib.loads(pyproject.decode())["project"]
    python = find_python(args.python) if args.python else sys.executable
    version = version_of(python)
    if not supported(project["requires-python"], version):
        print(f"Python {version[0]}.{version[1]} is outside the project's requires-python "
              f"({project['requires-python']}).", file=sys.stderr)
        return 2
    venv = args.venv or default_venv(args.python, args.red)
    venv_python = venv / "bin" / "python"
    wanted = requirements(project, args.red)
    stamp = venv / ".music-deps"
    digest = hashlib.sha256(pyproject + repr((version, wanted)).encode()).hexdigest()
    if venv_python.exists() and stamp.exists() and stamp.read_text() == digest:
        print(venv_python)
        return 0
    if not venv_python.exists() or version_of(str(venv_python)) != version:
        print(f"Creating {venv} with Python {version[0]}.{version[1]} ...", file=sys.stderr, flush=True)
        subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    print(f"Installing dependencies into {venv} (first run only) ...", file=sys.stderr, flush=True)
    pip = [str(venv_python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-U", "pip"], check=True, stdout=sys.stderr)
    subprocess.run([*pip, *wanted], check=True, stdout=sys.stderr)
    stamp.write_text(digest)
    print(venv_python)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

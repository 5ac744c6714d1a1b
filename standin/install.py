"""Install the music cog into a running Red bot the way an owner does: through Downloader, by chat.

Red's Downloader clones a git repository and sees only committed content, so
`snapshot_working_tree` first copies this checkout's working tree (tracked files plus untracked
files that are not ignored: what `git add -A` would take) into a throwaway repository with one
commit. `install_music_cog` then, as the owner in a text channel of the stand-in:

    !load downloader
    !repo add <name> <snapshot path>      (answers Red's "I agree" prompt when it comes)
    !cog install <name> music             (Downloader pip-installs info.json's requirements)
    !load music
    !musicset network allow <cidr>        (for each network asked for, e.g. 127.0.0.0/8)

and returns every reply with how long each step took. Used by the end-to-end tests
(tests/e2e) and by the demo (standin.demo).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .server import Standin
from .state import Channel, Member, Message

REPO_ROOT = Path(__file__).resolve().parents[1]

# A fixed identity and date make the snapshot's commit independent of the user's git config.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "music-cog snapshot",
    "GIT_AUTHOR_EMAIL": "snapshot@invalid",
    "GIT_COMMITTER_NAME": "music-cog snapshot",
    "GIT_COMMITTER_EMAIL": "snapshot@invalid",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
    # the user's global/system config (hooks, signing, templates) must not apply
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

# Downloader's pip runs `pip install -U -t <lib>` for every requirement, which never counts the
# copies already in Red's environment: it downloads (or takes from pip's cache) and unpacks all
# of them, imageio-ffmpeg's ~30 MB static ffmpeg included. Give it time.
COG_INSTALL_TIMEOUT = 600.0


class InstallError(RuntimeError):
    """A step of the owner's install did not get the answer it needs; the message says which."""


def _git(args: Sequence[str], cwd: Path) -> str:
    env = {**os.environ, **_GIT_ENV}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


def working_tree_files(source: Path = REPO_ROOT) -> list[str]:
    """Paths (relative) that `git add -A` would commit in `source`: tracked files still present
    plus untracked files that no .gitignore excludes."""
    out = _git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], source)
    names = sorted({name for name in out.split("\0") if name})
    # a tracked file deleted in the working tree is listed by --cached but is gone
    return [name for name in names if (source / name).is_file()]


def snapshot_working_tree(dest: Path, source: Path = REPO_ROOT) -> Path:
    """Copy `source`'s working tree into a new git repository at `dest` with one commit, so
    Downloader (which clones) sees uncommitted work too. Returns `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in working_tree_files(source):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target, follow_symlinks=False)
    _git(["init", "-q", "-b", "main"], dest)
    _git(["add", "-A"], dest)
    _git(["commit", "-q", "--no-gpg-sign", "--no-verify", "-m", "snapshot of the working tree"], dest)
    return dest


@dataclass
class InstallStep:
    command: str
    replies: list[Message]
    seconds: float

    @property
    def text(self) -> str:
        return "\n".join(m.text for m in self.replies)


@dataclass
class InstallReport:
    snapshot: Path
    snapshot_seconds: float
    steps: list[InstallStep] = field(default_factory=list)

    def seconds(self, command_start: str) -> float:
        """Duration of the first step whose command starts with `command_start`."""
        return next(s.seconds for s in self.steps if s.command.startswith(command_start))

    def summary(self) -> str:
        parts = [f"snapshot {self.snapshot_seconds:.1f}s"]
        parts += [f"{s.command.split()[0]} {' '.join(s.command.split()[1:2])}".strip()
                  + f" {s.seconds:.1f}s" for s in self.steps]
        return ", ".join(parts)


def _install_msg(info_json: Path) -> str:
    try:
        return str(json.loads(info_json.read_text(encoding="utf-8")).get("install_msg") or "")
    except (OSError, ValueError):
        return ""


async def _human_pause(standin: Standin, prompt: Message) -> None:
    delay = getattr(standin, "human_delay", 0.3)
    wait = prompt.changed_at + delay - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)


async def _ask(
    standin: Standin, owner: Member, channel: Channel, content: str,
    done: Callable[[Message], bool], *, timeout: float,
) -> tuple[list[Message], float]:
    """Say `content`; collect the bot's messages until one satisfies `done`."""
    started = time.monotonic()
    said = await standin.say(owner, channel, content)
    final = await standin.wait_for_message(channel, done, after=said, timeout=timeout)
    replies = [m for m in standin.bot_messages(channel) if said.id < m.id <= final.id]
    return replies, time.monotonic() - started


def _check(step: InstallStep, ok: Callable[[str], bool], what: str) -> InstallStep:
    if not ok(step.text):
        raise InstallError(f"`{step.command}` did not {what}; the bot said:\n{step.text}")
    return step


async def install_music_cog(
    standin: Standin,
    owner: Member,
    channel: Channel,
    snapshot: Path,
    *,
    repo_name: str = "musicrepo",
    cog_name: str = "music",
    allow_networks: Sequence[str] = ("127.0.0.0/8",),
    load: bool = True,
    prefix: str = "!",
    snapshot_seconds: float = 0.0,
) -> InstallReport:
    """Drive the owner's install through chat (see the module docstring). Raises InstallError
    with the bot's words when a step fails."""
    report = InstallReport(snapshot, snapshot_seconds)
    p = prefix

    def step(command: str, replies: list[Message], seconds: float) -> InstallStep:
        made = InstallStep(command, replies, seconds)
        report.steps.append(made)
        return made

    command = f"{p}load downloader"
    replies, secs = await _ask(standin, owner, channel, command, lambda m: "downloader" in m.content,
                               timeout=30)
    _check(step(command, replies, secs), lambda t: "Loaded" in t or "already loaded" in t,
           "load Downloader")

    command = f"{p}repo add {repo_name} {snapshot}"
    agreement = "3rd party repository"
    replies, secs = await _ask(
        standin, owner, channel, command,
        lambda m: agreement in m.content or "repo" in m.content.lower(), timeout=60)
    if agreement in replies[-1].content:
        # Red asks once per boot; answering is part of what an owner does. Red starts listening
        # for the answer only after its prompt's POST returns, so an instant answer can be
        # missed: answer after a human's pause, as Standin.react does for reactions.
        await _human_pause(standin, replies[-1])
        more, more_secs = await _ask(standin, owner, channel, "I agree",
                                     lambda m: "repo" in m.content.lower(), timeout=60)
        replies += more
        secs += more_secs
    if "successfully added" in replies[-1].content and _install_msg(snapshot / "info.json"):
        # Red follows with the repository's install_msg; keep it with this step
        replies.append(await standin.wait_for_message(channel, after=replies[-1], timeout=10))
    _check(step(command, replies, secs),
           lambda t: "successfully added" in t or "already in use" in t, "add the repository")

    command = f"{p}cog install {repo_name} {cog_name}"
    replies, secs = await _ask(standin, owner, channel, command,
                               lambda m: m.content.rstrip().endswith("---"),
                               timeout=COG_INSTALL_TIMEOUT)
    if "Successfully installed" in replies[-1].content and _install_msg(snapshot / cog_name / "info.json"):
        # Red follows Downloader's summary with the cog's install_msg
        replies.append(await standin.wait_for_message(channel, after=replies[-1], timeout=10))
    _check(step(command, replies, secs),
           lambda t: "Successfully installed" in t or "already installed" in t, "install the cog")

    if not load:
        return report
    command = f"{p}load {cog_name}"
    replies, secs = await _ask(standin, owner, channel, command,
                               lambda m: cog_name in m.content or "could not be loaded" in m.content,
                               timeout=60)
    _check(step(command, replies, secs), lambda t: f"Loaded `{cog_name}`" in t, "load the cog")

    for network in allow_networks:
        command = f"{p}musicset network allow {network}"
        replies, secs = await _ask(standin, owner, channel, command, lambda m: True, timeout=30)
        _check(step(command, replies, secs), lambda t, n=network: n in t, f"allow {network}")
    return report


async def snapshot_and_install(
    standin: Standin, owner: Member, channel: Channel, workdir: Path, **kwargs: object
) -> InstallReport:
    """`snapshot_working_tree(workdir / "music-cog-snapshot")` then `install_music_cog`."""
    started = time.monotonic()
    snapshot = snapshot_working_tree(Path(workdir) / "music-cog-snapshot")
    return await install_music_cog(standin, owner, channel, snapshot,
                                   snapshot_seconds=time.monotonic() - started, **kwargs)  # type: ignore[arg-type]


__all__ = [
    "COG_INSTALL_TIMEOUT",
    "InstallError",
    "InstallReport",
    "InstallStep",
    "install_music_cog",
    "snapshot_and_install",
    "snapshot_working_tree",
    "working_tree_files",
]

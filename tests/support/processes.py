"""The ffmpeg processes (and shared transcoder workers) this test process started, read from
/proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def ffmpeg_children(*, zombies: bool = True) -> list[int]:
    """Pids of this process's ffmpeg children (of any of its threads); with `zombies=False`
    only the ones still running (an exited, unreaped child is state Z)."""
    return _children_running(b"ffmpeg", "ffmpeg", zombies=zombies)


def process_is_gone(pid: int) -> bool:
    """Exited and reaped: no /proc entry (a zombie would still have one)."""
    return not Path(f"/proc/{pid}").exists()


def transcoder_workers(*, zombies: bool = True) -> list[int]:
    """Pids of this process's shared transcoder workers (music/audio/transcoder_worker.py)."""
    return _children_running(b"transcoder_worker.py", "python", zombies=zombies)


def _children_running(in_cmdline: bytes, in_command: str, *, zombies: bool) -> list[int]:
    children: list[str] = []
    for task in os.listdir("/proc/self/task"):
        try:
            children += Path(f"/proc/self/task/{task}/children").read_text().split()
        except FileNotFoundError:  # the thread ended meanwhile: it has no children to report
            continue
    found: list[int] = []
    for pid in children:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # reaped meanwhile
            continue
        command, state = stat.rsplit(")", 1)[0], stat.rsplit(")", 1)[1].split()[0]
        if in_cmdline not in cmdline and (cmdline or in_command not in command):
            continue  # a zombie has no cmdline: judged by its command name
        if zombies or state != "Z":
            found.append(int(pid))
    return found


def described(pids: list[int]) -> str:
    """Each pid with its state, age and command line: what a failed "no ffmpeg here" assertion
    needs to tell a leftover child of an earlier test from one this test started."""
    lines: list[str] = []
    ticks = os.sysconf("SC_CLK_TCK")
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            lines.append(f"{pid}: gone")
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # field 22 of stat (starttime) is the 20th after the state
        age = uptime - int(fields[19]) / ticks
        lines.append(f"{pid}: state {fields[0]}, started {age:.1f} s ago: {cmdline.strip()}")
    return "; ".join(lines)

"""Ending a Red bot subprocess the way an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import signal


async def stop_red(proc: asyncio.subprocess.Process | None, *, graceful_wait: float = 20.0) -> int | None:
    """SIGINT (Red's graceful shutdown), then SIGTERM, then SIGKILL; returns the exit code."""
    if proc is None or proc.returncode is not None:
        return None if proc is None else proc.returncode
    for sig, wait in ((signal.SIGINT, graceful_wait), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), wait)
            break
        except TimeoutError:
            continue
    return proc.returncode

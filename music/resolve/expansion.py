"""The rest of a playlist, handed out in batches while its first entry already plays: what
ResolveService.resolve returns as `result.rest`, filled from the job that lists it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from music.engine.track import Track
from music.resolve.jobs import Job

from ..i18n import _


@dataclass
class ExpansionDone:
    """How the listing job ended: entries listed and unusable, cut at the limit, or stopped."""

    listed: int
    unusable: int
    truncated: bool
    error: str | None


class PlaylistExpansion:
    """The rest of a playlist, arriving while its first entry already plays.

    `async for batch in expansion` yields lists of Tracks in playlist order (the first batch was
    returned by `resolve()`); it ends when the playlist is listed up to the cap, fails, or is
    cancelled. Afterwards `received`, `truncated` and `errors` say how it went. `expected` is
    the number of entries that will come in total (first batch included), when the site says."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.job_id: int | None = None
        self.title: str | None = None
        self.expected: int | None = None
        self.received = 0
        self.truncated = False
        self.errors: list[str] = []
        self.finished = False
        self._job: Job[Any] | None = None
        self._first: asyncio.Future[list[Track]] = loop.create_future()
        self._batches: asyncio.Queue[list[Track] | None] = asyncio.Queue()
        self._done = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[list[Track]]:
        return self

    async def __anext__(self) -> list[Track]:
        batch = await self._batches.get()
        if batch is None:
            self._batches.put_nowait(None)  # every later __anext__ ends too
            raise StopAsyncIteration
        return batch

    async def wait(self) -> None:
        """Until the expansion has finished (all batches delivered to the queue)."""
        await self._done.wait()

    # ---- called on the loop by the service --------------------------------------------

    def _begin(self, title: str | None, expected: int | None) -> None:
        self.title, self.expected = title, expected

    def _push(self, batch: list[Track]) -> None:
        if self._job is not None:
            # entries already handed out must not be handed out again by a retry
            self._job.retry_allowed = False
        self.received += len(batch)
        if not self._first.done():
            self._first.set_result(batch)
        else:
            self._batches.put_nowait(batch)

    def _finish(self, done: ExpansionDone | None, error: str | None) -> None:
        if self.finished:
            return
        self.finished = True
        if done is not None:
            self.truncated = done.truncated
            if done.unusable:
                self.errors.append(
                    (_("{unusable} entry was unavailable.") if done.unusable == 1 else _("{unusable} entries were unavailable.")).format(unusable=done.unusable)
                )
            error = error or done.error
        if error:
            self.errors.append(
                _("I stopped loading the playlist after {received} entries: {error}").format(received=self.received, error=error)
            )
        self._batches.put_nowait(None)
        self._done.set()

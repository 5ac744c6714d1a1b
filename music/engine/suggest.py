"""What `/play`'s autocomplete offers as a member types, at a bounded cost (no discord imports).

Discord shows at most 25 choices, each name and value at most 100 characters, and drops an
answer that comes more than 3 seconds after the keystroke. A member types a letter every
100-200 ms, so a lookup per keystroke would be a flood: searches are rate-limited per member,
capped bot-wide while in flight, and their results remembered per text, so the next keystroke
(or the next member typing the same) gets them at once. A search that outlives the budget keeps
running to fill that memory; it is never started again for the same text meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

MAX_CHOICES = 25
MAX_CHOICE_TEXT = 100  # Discord's limit for a choice's name and for a string value
MAX_TYPED = 200  # longer input is cut before any matching (a query is at most this long anyway)
SEARCH_MIN_CHARS = 3  # fewer letters match too much to be worth a search
SEARCH_INTERVAL = 1.5  # seconds between one member's searches
MAX_SEARCHES_IN_FLIGHT = 2  # bot-wide: each one is a yt-dlp lookup in a worker thread
SEARCH_RESULTS = 5
MEMO_SIZE = 128  # remembered search texts
BUDGET = 2.0  # seconds an answer may wait for a search (Discord's limit is 3, from the keystroke)


@dataclass(frozen=True)
class Suggestion:
    name: str  # what the member sees
    value: str  # what the command receives: a link, or words to search for


def suggestion(title: str, link: str | None) -> Suggestion | None:
    """A choice for a track: its title, and its link when the link fits (else the title, which
    `play` then searches for)."""
    name = " ".join(title.split())[:MAX_CHOICE_TEXT]
    if not name:
        return None
    value = link if link and len(link) <= MAX_CHOICE_TEXT else name
    return Suggestion(name, value)


def matches(typed: str, title: str) -> bool:
    """Every typed word appears in the title (case-insensitive); nothing typed matches all."""
    lowered = title.lower()
    return all(word in lowered for word in typed.lower().split())


def looks_like_link(typed: str) -> bool:
    return typed.startswith(("http://", "https://")) and " " not in typed


SearchFn = Callable[[str], Awaitable[list[tuple[str, str | None]]]]


class Suggester:
    """Ranks suggestions and runs the searches behind them within the limits above."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 interval: float = SEARCH_INTERVAL, max_in_flight: int = MAX_SEARCHES_IN_FLIGHT,
                 budget: float = BUDGET) -> None:
        self._clock = clock
        self.interval = interval
        self.max_in_flight = max_in_flight
        self.budget = budget
        self._last_search: dict[int, float] = {}  # member id -> when their last search started
        self._memo: collections.OrderedDict[str, list[tuple[str, str | None]]] = collections.OrderedDict()
        self._running: dict[str, asyncio.Task[list[tuple[str, str | None]]]] = {}
        self.searches_started = 0
        self.searches_refused = 0  # rate-limited or over the in-flight cap

    async def suggest(self, member_id: int, typed: str, known: Iterable[tuple[str, str | None]],
                      search: SearchFn | None) -> list[Suggestion]:
        """Up to 25 suggestions: a typed link as is, then `known` tracks (recent and cached,
        best first) that match, then search results for the text."""
        typed = " ".join(typed[:MAX_TYPED].split())
        found: list[Suggestion] = []
        if looks_like_link(typed):
            return [Suggestion(typed[:MAX_CHOICE_TEXT], typed[:MAX_CHOICE_TEXT])] if len(typed) <= MAX_CHOICE_TEXT else []
        seen: set[str] = set()

        def add(pairs: Iterable[tuple[str, str | None]], *, must_match: bool) -> None:
            for title, link in pairs:
                if len(found) >= MAX_CHOICES:
                    return
                choice = suggestion(title, link)
                if choice is not None and choice.value not in seen and (not must_match or matches(typed, title)):
                    seen.add(choice.value)
                    found.append(choice)

        add(known, must_match=True)
        if search is not None and len(typed) >= SEARCH_MIN_CHARS and len(found) < MAX_CHOICES:
            # a site's search finds more than the typed words (spelling, other languages): as is
            add(await self._search_results(member_id, typed.lower(), search), must_match=False)
        return found

    async def _search_results(self, member_id: int, text: str, search: SearchFn) -> list[tuple[str, str | None]]:
        if text in self._memo:
            self._memo.move_to_end(text)
            return self._memo[text]
        task = self._running.get(text)
        if task is None:
            task = self._start(member_id, text, search)
            if task is None:  # no search now: what was found for the start of these words
                return self._remembered_prefix(text)
        done, _ = await asyncio.wait({task}, timeout=self.budget)
        if task not in done or task.cancelled() or task.exception() is not None:
            return []
        return task.result()

    def _remembered_prefix(self, text: str) -> list[tuple[str, str | None]]:
        best = max((key for key in self._memo if text.startswith(key)), key=len, default=None)
        return [] if best is None else self._memo[best]

    def _start(self, member_id: int, text: str, search: SearchFn) -> asyncio.Task[list[tuple[str, str | None]]] | None:
        now = self._clock()
        last = self._last_search.get(member_id)
        if (last is not None and now - last < self.interval) or len(self._running) >= self.max_in_flight:
            self.searches_refused += 1
            return None
        self._last_search[member_id] = now
        if len(self._last_search) > 4096:  # forget the oldest members (dicts keep insertion order)
            for old in list(self._last_search)[:1024]:
                del self._last_search[old]
        self.searches_started += 1
        task = asyncio.ensure_future(search(text))
        self._running[text] = task
        task.add_done_callback(lambda t: self._finished(text, t))
        return task

    def _finished(self, text: str, task: asyncio.Task[list[tuple[str, str | None]]]) -> None:
        self._running.pop(text, None)
        if task.cancelled() or task.exception() is not None:  # retrieved: no "never retrieved" log
            return
        self._memo[text] = task.result()
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)

    def in_flight(self) -> int:
        return len(self._running)

    def close(self) -> None:
        """Cancel the searches still running (the cog unloads)."""
        for task in list(self._running.values()):
            task.cancel()

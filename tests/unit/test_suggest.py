"""`/play`'s autocomplete (music/engine/suggest.py): what it offers, in what order, and what it
costs: searches rate-limited per member, capped in flight, remembered, never waited past the
budget."""

from __future__ import annotations

import asyncio

from music.engine.suggest import MAX_CHOICES, Suggester, suggestion


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Search:
    """A site search that answers after `delay` and counts its calls."""

    def __init__(self, delay: float = 0.0, results: int = 3) -> None:
        self.delay, self.results = delay, results
        self.calls: list[str] = []

    async def __call__(self, text: str) -> list[tuple[str, str | None]]:
        self.calls.append(text)
        await asyncio.sleep(self.delay)
        return [(f"result {i} for {text}", f"https://site.example/{i}") for i in range(self.results)]


KNOWN = [("Road Trip Song", "https://site.example/road"), ("Night Drive", "https://site.example/night"),
         ("Road Works", None)]


async def test_known_titles_that_match_come_first_then_search_results() -> None:
    search = Search()
    found = await Suggester(clock=Clock()).suggest(1, "road", KNOWN, search)
    assert [s.name for s in found] == ["Road Trip Song", "Road Works", "result 0 for road",
                                       "result 1 for road", "result 2 for road"]
    assert found[0].value == "https://site.example/road"
    assert found[1].value == "Road Works"  # no link: the title, which `play` searches for


async def test_nothing_typed_offers_the_recent_tracks_and_searches_nothing() -> None:
    search = Search()
    found = await Suggester(clock=Clock()).suggest(1, "", KNOWN, search)
    assert [s.name for s in found] == ["Road Trip Song", "Night Drive", "Road Works"] and not search.calls


async def test_a_typed_link_is_offered_as_is_without_a_search() -> None:
    search = Search()
    found = await Suggester(clock=Clock()).suggest(1, "https://x.example/watch?v=1", KNOWN, search)
    assert [s.value for s in found] == ["https://x.example/watch?v=1"] and not search.calls


def test_names_and_values_fit_discords_limits() -> None:
    long_title = "x " * 300
    choice = suggestion(long_title, "https://site.example/" + "a" * 200)
    assert choice is not None and len(choice.name) == 100 and len(choice.value) <= 100
    assert suggestion("   ", None) is None


async def test_at_most_25_choices() -> None:
    known = [(f"song {i}", f"https://site.example/{i}") for i in range(60)]
    found = await Suggester(clock=Clock()).suggest(1, "song", known, Search())
    assert len(found) == MAX_CHOICES


async def test_one_member_searches_at_most_once_per_interval_and_results_are_remembered() -> None:
    clock, search = Clock(), Search()
    suggester = Suggester(clock=clock, interval=1.5)
    assert len(await suggester.suggest(1, "abc", [], search)) == 3
    # too soon for another search: what was found for "abc" stands in for "abcd"
    assert [s.name for s in await suggester.suggest(1, "abcd", [], search)][0] == "result 0 for abc"
    assert await suggester.suggest(1, "xyz", [], search) == []
    assert len(await suggester.suggest(2, "abcd", [], search)) == 3  # another member may
    clock.now += 0.1
    assert len(await suggester.suggest(1, "abc", [], search)) == 3  # remembered: no new search
    assert search.calls == ["abc", "abcd"] and suggester.searches_refused == 2


async def test_a_slow_search_is_not_waited_past_the_budget_and_fills_the_memory_later() -> None:
    clock, search = Clock(), Search(delay=0.3)
    suggester = Suggester(clock=clock, budget=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await suggester.suggest(1, "slow", [], search) == []
    assert loop.time() - started < 0.2 and suggester.in_flight() == 1
    # the same text meanwhile joins the running search instead of starting another
    assert await suggester.suggest(2, "slow", [], search) == []
    await asyncio.sleep(0.35)
    assert suggester.in_flight() == 0
    assert len(await suggester.suggest(3, "slow", [], search)) == 3
    assert search.calls == ["slow"]


async def test_searches_in_flight_are_capped_bot_wide() -> None:
    search = Search(delay=0.2)
    suggester = Suggester(clock=Clock(), max_in_flight=2, budget=0.01)
    for member, text in enumerate(["aaa", "bbb", "ccc", "ddd"]):
        await suggester.suggest(member, text, [], search)
    assert search.calls == ["aaa", "bbb"] and suggester.searches_refused == 2
    suggester.close()
    await asyncio.sleep(0)


async def test_a_failing_search_offers_nothing_and_is_not_remembered() -> None:
    async def broken(text: str) -> list[tuple[str, str | None]]:
        raise RuntimeError("site down")

    clock = Clock()
    suggester = Suggester(clock=clock)
    assert await suggester.suggest(1, "abc", KNOWN, broken) == []
    clock.now += 10
    search = Search()
    assert len(await suggester.suggest(1, "abc", [], search)) == 3 and search.calls == ["abc"]


def test_the_lookup_cache_lists_its_newest_entries_first_without_copying_all() -> None:
    from music.resolve.cache import TTLCache

    cache = TTLCache(max_entries=10, ttl=60, clock=lambda: 0.0)
    for i in range(5):
        cache.put(f"k{i}", {"title": f"t{i}"})
    cache.get("k1")  # a use makes it the newest
    assert [k for k, _ in cache.newest(3)] == ["k1", "k4", "k3"]

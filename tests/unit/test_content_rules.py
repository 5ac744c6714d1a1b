"""Block and allow lists (engine/content_rules.py) and their place in admission: which rule
matches which field, which list wins, the sentences, the limits, and a linear cost."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from music.engine.admission import AdmissionError, admit, admit_batch, summarise_refusals
from music.engine.content_rules import (
    MAX_RULE_LENGTH,
    ContentRules,
    RuleError,
    _Automaton,
    hosts_of,
    parse_rule,
)
from music.engine.queue import QueueModel
from music.engine.track import Track


def track(title: str = "A song", *, uploader: str | None = None, url: str = "https://site.example/a") -> Track:
    return Track(query=url, title=title, uploader=uploader, webpage_url=url, duration=100.0)


class Limits:
    max_length = 0
    max_queue = 100
    max_per_member = 0
    fair_queue = False


# -- rules as typed --------------------------------------------------------------------------


@pytest.mark.parametrize("typed, stored", [
    ("  Remix  ", "remix"),
    ("Night   Core", "night core"),
    ("https://www.Example.com/watch?v=1", "example.com"),
    ("<https://music.example.com/x>", "music.example.com"),
    ("www.example.com", "example.com"),
    ("*.example.com", "example.com"),
])
def test_a_typed_rule_is_stored_in_its_compared_form(typed: str, stored: str):
    assert parse_rule(typed) == stored


@pytest.mark.parametrize("typed, sentence", [
    ("a", "at least 2"),
    ("x" * (MAX_RULE_LENGTH + 1), f"at most {MAX_RULE_LENGTH}"),
    ("`code`", "backticks"),
    ("https:///nohost", "no site name"),
])
def test_unusable_rules_are_refused_with_a_sentence(typed: str, sentence: str):
    with pytest.raises(RuleError, match=sentence):
        parse_rule(typed)


# -- what matches -------------------------------------------------------------------------------


def test_a_keyword_matches_the_title_the_uploader_or_the_site_name_in_any_case():
    rules = ContentRules(server_block=["night core"])
    assert rules.refusal(track("Song (NIGHT  Core edit)")) == "it matches `night core` on this server's block list"
    assert rules.refusal(track("Song", uploader="Night Core Fan")) is not None
    assert rules.refusal(track("Song", url="https://nightcore.example/x")) is None  # no space in a host
    assert ContentRules(server_block=["tube"]).refusal(track("Song", url="https://www.youtube.com/watch?v=1"))
    assert rules.refusal(track("Nightcore song")) is None


def test_a_domain_matches_its_site_and_subdomains_and_titles_but_not_other_sites():
    rules = ContentRules(server_block=["example.com"])
    assert rules.refusal(track(url="https://example.com/a"))
    assert rules.refusal(track(url="https://www.example.com/a"))
    assert rules.refusal(track(url="https://music.example.com/a"))
    assert rules.refusal(track(url="https://notexample.com/a")) is None
    assert rules.refusal(track(url="https://example.com.evil.test/a")) is None
    assert rules.refusal(track("Live at example.com", url="https://other.test/a"))


def test_the_asked_link_counts_as_well_as_the_page_a_site_reports():
    entry = Track(query="https://short.test/abc", title="x", webpage_url="https://long.example/watch")
    assert hosts_of(entry) == ["long.example", "short.test"]
    assert ContentRules(server_block=["short.test"]).refusal(entry)
    local = Track(query="albums/song.mp3", title="Song", kind="local", uploader="Band")
    assert hosts_of(local) == [] and ContentRules(server_block=["band"]).refusal(local)


def test_block_lists_win_and_an_allow_list_admits_only_its_matches():
    rules = ContentRules(server_allow=["example.com"], global_block=["remix"])
    assert rules.refusal(track("Song", url="https://example.com/1")) is None
    assert rules.refusal(track("Song", url="https://other.test/1")) == "it matches nothing on this server's allow list"
    assert rules.refusal(track("Song remix", url="https://example.com/1")) == "it matches `remix` on the bot's block list"
    both = ContentRules(server_allow=["song"], global_allow=["example.com"])
    assert both.refusal(track("Song", url="https://other.test/1")) == "it matches nothing on the bot's allow list"
    assert both.refusal(track("Tune", url="https://example.com/1")) == "it matches nothing on this server's allow list"
    assert both.refusal(track("Song", url="https://example.com/1")) is None


def test_no_rules_let_everything_through():
    assert ContentRules().refusal(track()) is None and ContentRules().empty


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(st.text(alphabet="abc ", min_size=1, max_size=5), min_size=1, max_size=8, unique=True),
    text=st.text(alphabet="abc ", max_size=40),
)
def test_the_automaton_finds_exactly_the_rules_a_plain_search_finds(patterns: list[str], text: str):
    found: set[int] = set()
    _Automaton(patterns).found_in(text, found)
    assert {patterns[i] for i in found} == {p for p in patterns if p in text}


def test_matching_cost_does_not_grow_with_the_number_of_rules():
    """The worst case for a plain search (rules that are prefixes of one another, a text of
    one repeated letter) stays one pass: 100 rules cost about what 2 do."""
    text = "a" * 20_000

    def cost(count: int) -> float:
        rules = ContentRules(server_block=["a" * n + "b" for n in range(2, 2 + count)])
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            rules.refusal(track(text))
            best = min(best, time.perf_counter() - started)
        return best

    few, many = cost(2), cost(99)
    print(f"\nrefusal() on a 20,000-character title: 2 rules {few * 1000:.1f} ms, 99 rules {many * 1000:.1f} ms")
    assert many < few * 3 + 0.005


# -- admission --------------------------------------------------------------------------------


def test_admission_skips_blocked_entries_with_a_sentence_and_queues_the_rest():
    rules = ContentRules(server_block=["remix", "bad.example"], server_allow=[])
    entries = [track("One"), track("Two remix"), track("Three", url="https://bad.example/3"), track("Four")]
    admission = admit(QueueModel(), entries, Limits(), requester_id=1, privileged=False, front=False,
                      describe=lambda t: f"**{t.title}**", rules=rules)
    assert [t.title for t in admission.tracks] == ["One", "Four"]
    assert admission.notes == [
        "**Two remix** was skipped: it matches `remix` on this server's block list.",
        "**Three** was skipped: it matches `bad.example` on this server's block list.",
    ]


def test_admission_of_only_blocked_entries_is_refused_with_the_rule():
    with pytest.raises(AdmissionError, match="it matches `remix` on the bot's block list"):
        admit(QueueModel(), [track("A remix")], Limits(), requester_id=1, privileged=True, front=False,
              rules=ContentRules(global_block=["remix"]))


def test_a_later_playlist_batch_reports_its_blocked_entries_apart_from_the_limits():
    queue = QueueModel()
    limits = Limits()
    limits.max_queue = 2
    usable, left_out, blocked = admit_batch(
        queue, [track("a"), track("b remix"), track("c"), track("d")], limits,
        requester_id=1, privileged=False, rules=ContentRules(server_block=["remix"]),
    )
    assert [t.title for t in usable] == ["a", "c"] and left_out == 1
    assert blocked == ["b remix was skipped: it matches `remix` on this server's block list."]


def test_many_refusals_are_named_up_to_three_then_counted():
    refusals = [f"s{n}." for n in range(5)]
    assert summarise_refusals(refusals) == ["s0.", "s1.", "s2.", "2 more entries were skipped by the block and allow lists."]
    assert summarise_refusals(refusals[:2]) == ["s0.", "s1."]


def test_a_blocked_site_is_known_from_the_link_alone_and_allow_lists_wait_for_the_title():
    rules = ContentRules(server_block=["bad.example", "tube"], server_allow=["song"])
    assert rules.site_refusal("https://cdn.bad.example/x.mp3") == "it matches `bad.example` on this server's block list"
    assert rules.site_refusal("https://www.youtube.com/watch?v=1") == "it matches `tube` on this server's block list"
    assert rules.site_refusal("https://fine.example/x") is None  # the allow list may match its title


def test_the_readme_lists_the_rules_as_the_code_applies_them():
    from pathlib import Path

    from music.engine.content_rules import MAX_RULES, MIN_RULE_LENGTH

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("### Block and allow lists"):]
    section = section[: section.index("\n## ")]
    for needed in ("**keyword**", "**domain**", "**block list**", "**allow list**", "The block lists win",
                   f"at most {MAX_RULES} rules of {MIN_RULE_LENGTH} to {MAX_RULE_LENGTH} characters",
                   "`play`", "each\n  entry of a playlist", "saved playlists", "autoplay", "the RPC API",
                   "checked again\n  when they come to play"):
        assert needed in section, needed

"""Block and allow lists: which entries may play, checked on the title, the uploader and the
link's site. No Discord, no I/O: the control layer's admission passes a ``ContentRules`` for
every entry of every path (play, playlists as they expand, saved playlists, autoplay, RPC).

A rule is a keyword or a domain. A keyword matches anywhere in the title, the uploader or the
link's host name (case-insensitive, runs of spaces count as one). A rule that looks like a
domain (``example.com``, or a link: its host is kept) matches that site and its subdomains,
and the title and uploader as a keyword does. A leading ``www.`` is ignored on both sides.

Cost is bounded: at most ``MAX_RULES`` rules of at most ``MAX_RULE_LENGTH`` characters per
list, and matching one entry is linear in the length of its texts whatever the number of rules
(one Aho-Corasick pass per text; the site is looked up label by label).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..i18n import _
from .track import Track

MAX_RULES = 100  # per list (this server's block list, its allow list, the bot's two)
MAX_RULE_LENGTH = 100
MIN_RULE_LENGTH = 2  # one character would match nearly every title

_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}")


class RuleError(ValueError):
    """A rule that can't be used; `sentence` says why."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


def normalise_text(text: str) -> str:
    """Case-folded, with every run of whitespace as one space: how texts and rules compare."""
    return " ".join(text.casefold().split())


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def parse_rule(text: str) -> str:
    """The stored form of a rule a member typed, or RuleError. A link becomes its host name."""
    rule = normalise_text(text.strip().strip("<>"))
    if "`" in rule:
        raise RuleError(_("A rule can't contain backticks."))
    if "://" in rule:
        try:
            host = urlsplit(rule).hostname or ""
        except ValueError:
            host = ""
        if not host:
            raise RuleError(_("That link has no site name to block or allow."))
        rule = host
    if rule.startswith("*."):
        rule = rule[2:]
    if is_domain(rule):
        rule = _strip_www(rule.rstrip("."))
    if len(rule) < MIN_RULE_LENGTH:
        raise RuleError(_("A rule needs at least {min_rule_length} characters.").format(min_rule_length=MIN_RULE_LENGTH))
    if len(rule) > MAX_RULE_LENGTH:
        raise RuleError(_("A rule can be at most {max_rule_length} characters long.").format(max_rule_length=MAX_RULE_LENGTH))
    return rule


def is_domain(rule: str) -> bool:
    return " " not in rule and _DOMAIN.fullmatch(rule.rstrip(".")) is not None


def hosts_of(track: Track) -> list[str]:
    """The site names of the entry's links (its page and what was asked for), without `www.`."""
    hosts: list[str] = []
    for link in (track.webpage_url, track.query):
        if not link or "://" not in link:
            continue
        try:
            host = urlsplit(link).hostname or ""
        except ValueError:
            continue
        host = _strip_www(host.rstrip(".").casefold())
        if host and host not in hosts:
            hosts.append(host)
    return hosts


class _Automaton:
    """Aho-Corasick over the rule texts: every rule found in a text, in one pass over it."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.goto: list[dict[str, int]] = [{}]
        self.fail: list[int] = [0]
        self.out: list[int | None] = [None]  # the pattern ending at the node, if any
        self.out_link: list[int] = [0]  # the nearest suffix node that ends a pattern (0: none)
        for index, pattern in enumerate(patterns):
            node = 0
            for char in pattern:
                nxt = self.goto[node].get(char)
                if nxt is None:
                    nxt = len(self.goto)
                    self.goto[node][char] = nxt
                    self.goto.append({})
                    self.fail.append(0)
                    self.out.append(None)
                    self.out_link.append(0)
                node = nxt
            self.out[node] = index
        self._link()

    def _link(self) -> None:
        queue = list(self.goto[0].values())
        for node in queue:  # breadth first: a node's failure target is already linked
            for char, child in self.goto[node].items():
                queue.append(child)
                target = self.fail[node]
                while target and char not in self.goto[target]:
                    target = self.fail[target]
                found = self.goto[target].get(char, 0)
                self.fail[child] = found if found != child else 0
                suffix = self.fail[child]
                self.out_link[child] = suffix if self.out[suffix] is not None else self.out_link[suffix]

    def found_in(self, text: str, into: set[int]) -> None:
        """Add the index of every pattern occurring in `text` to `into`. Each node's chain of
        shorter matches is walked once per text, so the cost stays linear."""
        node = 0
        walked: set[int] = set()
        goto, fail = self.goto, self.fail
        for char in text:
            while node and char not in goto[node]:
                node = fail[node]
            node = goto[node].get(char, 0)
            hit = node if self.out[node] is not None else self.out_link[node]
            while hit and hit not in walked:
                walked.add(hit)
                pattern = self.out[hit]
                if pattern is not None:
                    into.add(pattern)
                hit = self.out_link[hit]


@dataclass(frozen=True)
class _List:
    rules: tuple[str, ...]
    where: str  # "this server's" or "the bot's"
    kind: str  # "block" or "allow"


class ContentRules:
    """The bot's and one server's block and allow lists, ready to check entries.

    An entry is refused when a block list matches it (the bot's first), or when an allow list
    that is not empty does not. `refusal(track)` says which rule decided, or None."""

    def __init__(
        self,
        *,
        server_block: Iterable[str] = (),
        server_allow: Iterable[str] = (),
        global_block: Iterable[str] = (),
        global_allow: Iterable[str] = (),
    ) -> None:
        self._lists = (
            _List(tuple(global_block), _("the bot's"), "block"),
            _List(tuple(server_block), _("this server's"), "block"),
            _List(tuple(global_allow), _("the bot's"), "allow"),
            _List(tuple(server_allow), _("this server's"), "allow"),
        )
        self.patterns: list[str] = sorted({r for lst in self._lists for r in lst.rules})
        self._index = {p: i for i, p in enumerate(self.patterns)}
        self._domains = {p for p in self.patterns if is_domain(p)}
        self._automaton = _Automaton(self.patterns)

    @property
    def empty(self) -> bool:
        return not self.patterns

    def matches(self, track: Track) -> set[str]:
        """Every rule (of any list) that matches the entry."""
        if self.empty:
            return set()
        found: set[int] = set()
        for text in (track.title, track.uploader):
            if text:
                self._automaton.found_in(normalise_text(text), found)
        matched = {self.patterns[i] for i in found}
        for host in hosts_of(track):
            in_host: set[int] = set()
            self._automaton.found_in(host, in_host)
            # a keyword anywhere in the site's name; a domain only as the site or its parent
            matched.update(p for p in (self.patterns[i] for i in in_host) if p not in self._domains)
            labels = host.split(".")
            matched.update(s for s in (".".join(labels[n:]) for n in range(len(labels))) if s in self._domains)
        return matched

    def site_refusal(self, url: str) -> str | None:
        """Why a link's site is on a block list (before anything is fetched from it), or None.
        Allow lists wait for the title and uploader, which may match them."""
        if self.empty:
            return None
        matched = self.matches(Track(query=url, title=""))
        for lst in self._lists:
            hits = [r for r in lst.rules if r in matched] if lst.kind == "block" else []
            if hits:
                return _("it matches `{hits}` on {where} block list").format(hits=hits[0], where=lst.where)
        return None

    def refusal(self, track: Track) -> str | None:
        """Why the entry may not play ("it matches `x` on this server's block list"), or None."""
        if self.empty:
            return None
        matched = self.matches(track)
        for lst in self._lists:
            if not lst.rules:
                continue
            hits = [r for r in lst.rules if r in matched]
            if lst.kind == "block" and hits:
                return _("it matches `{hits}` on {where} block list").format(hits=hits[0], where=lst.where)
            if lst.kind == "allow" and not hits:
                return _("it matches nothing on {where} allow list").format(where=lst.where)
        return None


NO_RULES = ContentRules()

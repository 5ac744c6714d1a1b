"""Property tests on the parsers of what users and the owner type (issue #5).

For any text: the parser either answers within its contract or raises ValueError with a sentence
that quotes at most a short, inert piece of the input (no backticks, no newlines), never anything
else. For well-formed input it round-trips with the formatter.
"""

from __future__ import annotations

import ipaddress
import math

from hypothesis import assume, given
from hypothesis import strategies as st

from music.engine.timefmt import (
    END_MARGIN,
    QUOTE_LIMIT,
    format_duration,
    parse_duration,
    parse_seek,
    quote_user_text,
)
from music.policy import validate_cidr
from music.resolve.resolver import as_url

# what people paste: digits, separators, signs, units, whitespace, markdown, mentions, unicode
typed = st.text(
    alphabet=st.sampled_from(list("0123456789:+-.hms min`\n\t @<>#*_~|/\\") + ["é", "٣", "\u200b", "𝟗"]),
    max_size=40,
) | st.text(max_size=200)

positions = st.floats(min_value=0, max_value=10 * 3600, allow_nan=False)
durations = st.none() | st.floats(min_value=0, max_value=10 * 3600, allow_nan=False) | st.just(math.inf)


def assert_inert_refusal(error: ValueError, text: str) -> None:
    message = str(error)
    assert message.endswith("."), message
    assert "\n" not in message
    quoted = message.split("`")[1] if message.count("`") >= 2 else ""
    assert len(quoted) <= QUOTE_LIMIT
    assert quoted == quote_user_text(text)


@given(text=typed, position=positions, duration=durations)
def test_parse_seek_answers_inside_the_track_or_refuses_with_a_sentence(text, position, duration) -> None:
    try:
        target = parse_seek(text, position=position, duration=duration)
    except ValueError as exc:
        assert_inert_refusal(exc, text)
        return
    assert math.isfinite(target) and target >= 0.0
    if duration is not None and math.isfinite(duration) and duration > 0:
        assert target <= max(0.0, duration - END_MARGIN)


@given(seconds=st.integers(0, 99 * 3600), position=positions)
def test_parse_seek_reads_back_what_format_duration_writes(seconds, position) -> None:
    text = format_duration(seconds)
    assert parse_seek(text, position=position, duration=None) == seconds


@given(offset=st.integers(0, 3600), position=positions, duration=durations)
def test_relative_seeks_move_from_the_position_and_stay_clamped(offset, position, duration) -> None:
    forward = parse_seek(f"+{offset}", position=position, duration=duration)
    backward = parse_seek(f"-{offset}", position=position, duration=duration)
    assert backward <= forward
    if duration is None or not math.isfinite(duration) or duration <= 0:
        assert forward == position + offset
        assert backward == max(0.0, position - offset)


@given(text=typed)
def test_parse_duration_is_finite_and_non_negative_or_refuses(text) -> None:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert_inert_refusal(exc, text)
        return
    assert math.isfinite(value) and value >= 0.0


@given(seconds=st.integers(0, 99 * 3600))
def test_parse_duration_reads_back_format_duration(seconds) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(h=st.integers(0, 99), m=st.integers(0, 999), s=st.integers(0, 999))
def test_parse_duration_units_add_up(h, m, s) -> None:
    assume(h or m or s)
    text = "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v)
    assert parse_duration(text) == h * 3600 + m * 60 + s


@given(text=typed)
def test_validate_cidr_normalises_to_a_network_or_refuses(text) -> None:
    try:
        normal = validate_cidr(text)
    except ValueError as exc:
        assert "isn't an IP address or network" in str(exc)
        assert "\n" not in str(exc)
        return
    network = ipaddress.ip_network(normal)
    assert str(network) == normal
    assert validate_cidr(normal) == normal  # idempotent: what is stored reads back the same


@given(address=st.ip_addresses(), prefix=st.integers(0, 128))
def test_validate_cidr_keeps_the_network_an_address_and_prefix_name(address, prefix) -> None:
    prefix = min(prefix, address.max_prefixlen)
    normal = validate_cidr(f"  {address}/{prefix} ")
    assert address in ipaddress.ip_network(normal)
    assert ipaddress.ip_network(normal).prefixlen == prefix


@given(text=typed)
def test_as_url_gives_a_link_without_spaces_or_none(text) -> None:
    url = as_url(text)
    if url is None:
        return
    assert " " not in url
    assert url in (text.strip().strip("<>"), "https://" + text.strip().strip("<>"))
    assert as_url(url) == url  # a link stays the same link


@given(host=st.from_regex(r"[a-z][a-z0-9-]{0,20}\.(com|org|net|io)", fullmatch=True),
       path=st.from_regex(r"(/[A-Za-z0-9_.-]{0,10}){0,3}", fullmatch=True),
       wrap=st.booleans(), scheme=st.sampled_from(["http://", "https://", ""]))
def test_as_url_reads_links_as_people_paste_them(host, path, wrap, scheme) -> None:
    if not scheme:
        path = path or "/"  # a bare `host/path` is a link; a bare `host.com` is searched for
    link = f"{scheme}{host}{path}"
    text = f"<{link}>" if wrap else link
    assert as_url(text) == (link if scheme else "https://" + link)


@given(words=st.lists(st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True), min_size=2, max_size=6))
def test_as_url_leaves_searches_alone(words) -> None:
    assert as_url(" ".join(words)) is None

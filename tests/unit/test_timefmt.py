"""Seek/duration parsing and display formatting."""

from __future__ import annotations

import pytest

from music.engine.timefmt import (
    END_MARGIN,
    format_duration,
    parse_duration,
    parse_seek,
    progress_bar,
    quote_user_text,
)


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("90", 0.0, 90.0),
        ("1:30", 0.0, 90.0),
        ("01:30", 500.0, 90.0),
        ("1:02:03", 0.0, 3723.0),
        ("  45.5 ", 0.0, 45.5),
        ("+10", 30.0, 40.0),
        ("-10", 30.0, 20.0),
        ("+1:00", 30.0, 90.0),
        ("-0:05", 7.0, 2.0),
    ],
)
def test_parse_seek_accepts_user_forms(text: str, position: float, expected: float) -> None:
    assert parse_seek(text, position=position, duration=None) == pytest.approx(expected)


def test_parse_seek_clamps_to_track() -> None:
    assert parse_seek("-100", position=30.0, duration=200.0) == 0.0
    assert parse_seek("500", position=0.0, duration=200.0) == 200.0 - END_MARGIN
    assert parse_seek("+500", position=10.0, duration=200.0) < 200.0
    # Unknown duration (live): no upper clamp.
    assert parse_seek("5000", position=0.0, duration=None) == 5000.0


@pytest.mark.parametrize(
    "text", ["abc", "", "1:75", "1:60:00", "++5", "1:2:3:4", "nan", "inf", "-", "1e3", "5 min"]
)
def test_parse_seek_rejects_garbage_with_a_sentence(text: str) -> None:
    with pytest.raises(ValueError, match=r"couldn't read .* as a position: use seconds \(90\)"):
        parse_seek(text, position=0.0, duration=100.0)


def test_parse_seek_error_never_echoes_long_or_breaking_user_text() -> None:
    hostile = "`@everyone` " + "x" * 500
    with pytest.raises(ValueError) as info:
        parse_seek(hostile, position=0.0, duration=None)
    message = str(info.value)
    quoted = message.split("`")[1]
    assert len(quoted) <= 50
    assert message.count("`") == 2  # user backticks can't close the code span


def test_quote_user_text_flattens_newlines_and_limits_length() -> None:
    assert quote_user_text("a\nb\tc") == "a b c"
    assert len(quote_user_text("y" * 80)) == 50
    assert quote_user_text("y" * 80).endswith("…")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90.0),
        ("1:30", 90.0),
        ("1:02:03", 3723.0),
        ("2m30s", 150.0),
        ("1h", 3600.0),
        ("45s", 45.0),
        ("10min", 600.0),
    ],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "-5", "m", "1:99"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="as a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0:00"),
        (7.9, "0:07"),
        (187, "3:07"),
        (3723, "1:02:03"),
        (36000, "10:00:00"),
        (None, "live"),
        (float("inf"), "live"),
        (-3, "0:00"),
    ],
)
def test_format_duration(seconds: float | None, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_progress_bar_has_fixed_width_and_moves_with_position() -> None:
    bars = [progress_bar(p, 100.0, width=20) for p in (0, 25, 50, 99.9, 150)]
    assert all(len(b) == 20 and b.count("●") == 1 for b in bars)
    markers = [b.index("●") for b in bars]
    assert markers == sorted(markers)
    assert markers[0] == 0 and markers[2] == 10 and markers[-1] == 19
    live = progress_bar(10, None, width=12)
    assert len(live) == 12 and live.endswith("●")

"""Playlist files (music/playlists/formats.py): this cog's format round-trips, Red Audio's v2
and v3 exports (written by Audio's own classes, tests/support/red_audio.py) and lists of links
are read, and any bytes at all give a playlist or a sentence at a bounded cost."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from music.engine.track import Track
from music.playlists.formats import (
    MAX_FILE_BYTES,
    ParsedFile,
    dump_file,
    file_name,
    http_link,
    parse_file,
)
from music.playlists.model import ENTRY_CEILING, MAX_QUERY, Playlist, PlaylistError, Where, entry_of
from tests.support.red_audio import audio_v2_export, audio_v3_export, lavalink_track


def saved(*entries: Track, name: str = "Road trip") -> Playlist:
    playlist = Playlist(name=name, where=Where.server(1), author_id=3, source_url="https://example.com/list")
    playlist.entries = [entry_of(e) for e in entries]
    return playlist


def test_this_cogs_file_round_trips_every_field_that_matters() -> None:
    playlist = saved(
        Track(query="https://example.com/a.webm", title="A *bold* title", duration=183.5, uploader="Band",
              webpage_url="https://example.com/page/a"),
        Track(query="https://radio.example/live", title="Radio", is_live=True),
        Track(query="albums/b.flac", title="B", duration=60.0, kind="local"),
    )
    parsed = parse_file(dump_file(playlist), "whatever.json")
    assert parsed.kind == "music" and parsed.name == "Road trip" and parsed.skipped == 0
    assert parsed.source_url == "https://example.com/list"

    def fields(t: Track) -> tuple:
        return (t.query, t.title, t.duration, t.kind, t.uploader, t.webpage_url, t.is_live)

    assert [fields(t) for t in parsed.entries] == [fields(t) for t in playlist.entries]
    assert file_name(playlist) == "Road_trip.json"


def test_red_audio_v3_export_is_read_with_titles_lengths_and_live_streams() -> None:
    tracks = [lavalink_track("https://example.com/a.webm", "Alpha", author="Band", length_ms=125_000),
              lavalink_track("https://radio.example/stream", "Radio", stream=True),
              lavalink_track("/home/red/localtracks/song.mp3", "Local song")]  # Audio's local file
    parsed = parse_file(audio_v3_export("Audio mix", tracks, url="https://example.com/pl"), "123456.txt")
    assert parsed.kind == "audio v3" and parsed.name == "Audio mix"
    assert parsed.source_url == "https://example.com/pl"
    assert [(t.query, t.title, t.duration, t.uploader, t.is_live) for t in parsed.entries] == [
        ("https://example.com/a.webm", "Alpha", 125.0, "Band", False),
        ("https://radio.example/stream", "Radio", None, "Someone", True),
    ]
    assert parsed.skipped == 1 and "1 entry was not" in parsed.notes[0]


def test_red_audio_v2_export_and_red_v2_files_are_lists_of_links() -> None:
    parsed = parse_file(audio_v2_export("old", ["https://youtube.com/watch?v=1", "https://soundcloud.com/x"]), "old.txt")
    assert parsed.kind == "audio v2" and parsed.name == "old"
    assert [t.query for t in parsed.entries] == ["https://youtube.com/watch?v=1", "https://soundcloud.com/x"]
    red_v2 = json.dumps({"author": 1, "playlist": ["https://a.example/1"], "link": None}).encode()
    parsed = parse_file(red_v2, "Party Mix.txt")
    assert parsed.kind == "audio v2" and parsed.name == "Party Mix"  # named after the file


def test_a_text_file_of_links_skips_comments_and_counts_what_is_not_a_link() -> None:
    text = "\ufeff# my list\r\nhttps://a.example/1\n\n  <https://b.example/2>  \nnot a link\nfile:///etc/passwd\n"
    parsed = parse_file(text.encode(), "links.txt")
    assert parsed.kind == "text" and parsed.name == "links"
    assert [t.query for t in parsed.entries] == ["https://a.example/1", "https://b.example/2"]
    assert parsed.skipped == 2


@pytest.mark.parametrize("data, says", [
    (b"\xff\xfe\x00garbage", "not text"),
    (b"{\"format\": \"red-music-playlist\", \"version\": 1, \"entries\": [", "cut off or malformed"),
    (b"[1, 2, 3]", "not a playlist"),
    (b"{\"hello\": 1}", "not a playlist I know"),
    (json.dumps({"format": "red-music-playlist", "version": 9, "entries": []}).encode(), "newer version"),
    (b"no links here\njust words", "no playable links"),
    (b"[" * 100_000 + b"]" * 100_000, "cut off or malformed"),  # nesting deeper than json allows
    (json.dumps({"playlist": ["https://a.example/"] * (ENTRY_CEILING + 1)}).encode(), "at most 10000"),
])
def test_a_bad_file_is_a_sentence(data: bytes, says: str) -> None:
    with pytest.raises(PlaylistError, match=says):
        parse_file(data, "bad.txt")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(PlaylistError, match="too big"):
        parse_file(b" " * (MAX_FILE_BYTES + 1))


@pytest.mark.parametrize("value, ok", [
    ("https://example.com/a", True), ("HTTP://EXAMPLE.COM", True), ("<https://e.x/a>", True),
    ("ftp://example.com/a", False), ("file:///etc/passwd", False), ("https://", False),
    ("https://a b", False), ("javascript:alert(1)", False), ("https://e.x/" + "a" * MAX_QUERY, False),
    (None, False), (12, False), ("https://[::1", False),
])
def test_only_http_links_are_entries(value: object, ok: bool) -> None:
    assert (http_link(value) is not None) is ok


# -- any input -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
keys = st.sampled_from(["format", "version", "schema", "name", "entries", "tracks", "playlist", "link",
                        "playlist_url", "source_url", "info", "uri", "query", "kind", "title", "duration",
                        "length", "isStream", "is_live", "webpage_url"])
playlist_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(
        ["red-music-playlist", "v3", "v2", "local", "remote", "https://a.example/x", "../../etc/passwd"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)


def check_outcome(data: bytes, filename: str = "f.txt") -> ParsedFile | None:
    started = time.perf_counter()
    try:
        parsed = parse_file(data, filename)
    except PlaylistError as exc:
        assert exc.sentence.endswith("."), exc.sentence
        return None
    finally:
        assert time.perf_counter() - started < 2.0
    assert parsed.entries and len(parsed.entries) <= ENTRY_CEILING
    for entry in parsed.entries:
        assert entry.kind in ("remote", "local")
        if entry.kind == "remote":
            assert http_link(entry.query) == entry.query
        assert len(entry.query) <= MAX_QUERY and entry.stream_url is None and entry.requester_id == 0
    return parsed


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_any_bytes_give_a_playlist_or_a_sentence(data: bytes) -> None:
    check_outcome(data)


@settings(max_examples=300, deadline=None)
@given(document=json_values | playlist_like)
def test_any_json_gives_a_playlist_or_a_sentence(document: object) -> None:
    check_outcome(json.dumps(document).encode())


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.sampled_from(["https://a.example/1", "http://b.example/x?y=1", "# c", "", "word",
                                       "https://", "\t", "https://é.example/ü"]) | st.text(max_size=40),
                      max_size=30))
def test_any_text_gives_its_links_in_order(lines: list[str]) -> None:
    parsed = check_outcome("\n".join(lines).encode("utf-8"))
    expected = [http_link(line.strip()) for line in lines if line.strip() and not line.strip().startswith("#")]
    links = [link for link in expected if link is not None]
    if parsed is None:
        assert not links or "\x00" in "".join(lines) or "".join(lines).lstrip().startswith(("{", "["))
    elif parsed.kind == "text":
        assert [e.query for e in parsed.entries] == links


def test_the_biggest_file_costs_well_under_a_second() -> None:
    """8 MB of links: the upper bound of what a member can make the bot parse."""
    line = b"https://example.com/" + b"a" * 200 + b"\n"
    data = line * min(ENTRY_CEILING, MAX_FILE_BYTES // len(line))
    started = time.perf_counter()
    parsed = parse_file(data, "big.txt")
    elapsed = time.perf_counter() - started
    print(f"\n{len(data) / 1e6:.1f} MB, {len(parsed.entries)} links parsed in {elapsed * 1000:.0f} ms")
    assert len(parsed.entries) == ENTRY_CEILING and elapsed < 1.0

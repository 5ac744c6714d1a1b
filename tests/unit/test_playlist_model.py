"""The saved-playlist model (music/playlists/model.py) and the `--scope` options
(music/playlists/scopes.py), without Discord."""

from __future__ import annotations

import pytest

from music.engine.track import Track
from music.playlists.model import (
    ENTRY_CEILING,
    Playlist,
    PlaylistError,
    Scope,
    Where,
    check_name,
    entry_of,
    name_key,
    parse_scope,
    queued_from,
)
from music.playlists.scopes import parse_copy_options, parse_scope_options


def song(n: int, **extra) -> Track:
    return Track(query=f"https://example.com/{n}", title=f"song {n}", duration=60.0 + n, **extra)


def playlist_of(*numbers: int) -> Playlist:
    playlist = Playlist(name="mix", where=Where.server(1), author_id=5)
    playlist.append([song(n) for n in numbers], limit=100)
    return playlist


# -- names and scopes --------------------------------------------------------------------------


@pytest.mark.parametrize("typed, kept", [("  road   trip ", "road trip"), ("Ünïcode ✓", "Ünïcode ✓"),
                                          ("x" * 64, "x" * 64)])
def test_names_are_tidied_and_kept(typed: str, kept: str) -> None:
    assert check_name(typed) == kept


@pytest.mark.parametrize("typed, says", [("", "Give the playlist a name"), ("x" * 65, "under 65"),
                                         ("--scope", "can't start with `-`"), ("@everyone", "can't contain"),
                                         ("a`b", "can't contain"), ("tab\u0007bell", "control characters")])
def test_bad_names_are_refused_with_a_sentence(typed: str, says: str) -> None:
    with pytest.raises(PlaylistError, match=says):
        check_name(typed)


def test_names_compare_without_case_or_extra_spaces() -> None:
    assert name_key("Road  Trip") == name_key("road trip") == "road trip"
    assert name_key("STRASSE") == name_key("straße")  # casefold, not lower


@pytest.mark.parametrize("word, scope", [("server", Scope.SERVER), ("Guild", Scope.SERVER),
                                         ("GUILDPLAYLIST", Scope.SERVER), ("member", Scope.USER),
                                         ("author", Scope.USER), ("BOT", Scope.GLOBAL), ("global", Scope.GLOBAL)])
def test_every_scope_word_red_audio_accepts_is_understood(word: str, scope: Scope) -> None:
    assert parse_scope(word) is scope


def test_an_unknown_scope_is_a_sentence() -> None:
    with pytest.raises(PlaylistError, match="`server`, `user` or `global`"):
        parse_scope("channel")


# -- entries -----------------------------------------------------------------------------------


def test_an_entry_keeps_the_song_and_drops_what_belongs_to_one_play() -> None:
    played = song(1, requester_id=42, stream_url="https://cdn/x", stream_expires=1e10,
                  http_headers={"Cookie": "secret"}, acodec="opus", container="webm", uploader="Band")
    entry = entry_of(played)
    assert (entry.query, entry.title, entry.duration, entry.uploader) == (played.query, "song 1", 61.0, "Band")
    assert entry.id != played.id
    assert (entry.requester_id, entry.stream_url, entry.stream_expires, entry.http_headers) == (0, None, None, {})
    assert (entry.acodec, entry.container) == (None, None)
    queued = queued_from(entry, 77)
    assert queued.requester_id == 77 and queued.id != entry.id and queued.query == entry.query


def test_append_stops_at_the_limit_and_says_how_many_were_left_out() -> None:
    playlist = playlist_of(1, 2, 3)
    added, left_out = playlist.append([song(n) for n in range(4, 10)], limit=5)
    assert (added, left_out) == (2, 4)
    assert [e.title for e in playlist.entries] == [f"song {n}" for n in (1, 2, 3, 4, 5)]
    assert playlist.append([song(99)], limit=ENTRY_CEILING * 2) == (1, 0)  # the setting is capped
    assert len(playlist.entries) == 6


def test_remove_by_position_and_by_link() -> None:
    playlist = playlist_of(1, 2, 3, 2)
    assert playlist.remove_at(1).title == "song 1"
    with pytest.raises(PlaylistError, match="from 1 to 3"):
        playlist.remove_at(4)
    assert playlist.remove_link("<https://example.com/2/>") == 2  # every copy, as Red's Audio does
    assert [e.title for e in playlist.entries] == ["song 3"]
    assert playlist.remove_link("https://example.com/404") == 0


def test_dedupe_keeps_the_first_of_each_link() -> None:
    playlist = playlist_of(1, 2, 1, 3, 2, 1)
    assert playlist.dedupe() == 3
    assert [e.title for e in playlist.entries] == ["song 1", "song 2", "song 3"]
    assert playlist.dedupe() == 0


def test_summary_figures() -> None:
    playlist = playlist_of(1, 2)
    assert playlist.duration == 123.0 and playlist.key == "mix"


# -- `--scope` options --------------------------------------------------------------------------


def test_the_text_before_the_options_is_kept_and_each_option_takes_its_words() -> None:
    text, options = parse_scope_options("never gonna give  you up --scope User --author Rick Astley")
    assert text == "never gonna give  you up"
    assert (options.scope, options.author, options.guild) == (Scope.USER, "Rick Astley", None)


def test_audio_aliases_and_the_long_dash_phones_type() -> None:
    text, options = parse_scope_options("—scope global —server My Server")
    assert text == "" and options.scope is Scope.GLOBAL and options.guild == "My Server"
    _, options = parse_scope_options("--member 123")
    assert options.author == "123" and options.scope is None


@pytest.mark.parametrize("text, says", [("x --sc global", "don't know the option `--sc`"),
                                        ("x --scope", "`--scope` needs a value"),
                                        ("x --scope user --user a --author b", "given twice"),
                                        ("x --scope team", "`server`, `user` or `global`")])
def test_bad_options_are_sentences(text: str, says: str) -> None:
    with pytest.raises(PlaylistError, match=says):
        parse_scope_options(text)


def test_words_with_dashes_inside_are_not_options() -> None:
    text, options = parse_scope_options("lo-fi beats -- to study to --scope server")
    assert text == "lo-fi beats -- to study to" and options.scope is Scope.SERVER


def test_copy_options_have_a_from_and_a_to_side() -> None:
    name, source, target = parse_copy_options("new name --from-scope global --to-scope user --to-member 9")
    assert name == "new name"
    assert source.scope is Scope.GLOBAL and source.author is None
    assert target.scope is Scope.USER and target.author == "9"
    with pytest.raises(PlaylistError, match="--scope"):
        parse_copy_options("--scope user")  # copy takes --from-/--to- only

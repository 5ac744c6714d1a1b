"""Red Audio's leftovers, mapped without Discord (music/playlists/audio.py): its server settings
to this cog's, its old Config playlists, its track lists. The files Audio itself writes are
read in tests/red/test_playlists_import_red.py."""

from __future__ import annotations

from music.playlists.audio import (
    AUDIO_GUILD_DEFAULTS,
    AUDIO_UNMAPPED_DEFAULTS,
    AudioPlaylist,
    audio_entries,
    config_playlists,
    settings_plan,
)
from music.playlists.model import ENTRY_CEILING, Scope
from tests.support.red_audio import lavalink_track


def test_settings_left_at_audios_defaults_import_nothing() -> None:
    plan = settings_plan({**AUDIO_GUILD_DEFAULTS, **AUDIO_UNMAPPED_DEFAULTS})
    assert plan.values == {} and plan.notes == [] and plan.unmapped == []
    assert settings_plan({}).values == {}


def test_every_setting_with_an_equivalent_is_mapped() -> None:
    raw = {"dj_enabled": True, "dj_role": 555, "vote_enabled": True, "vote_percent": 40, "maxlength": 600,
           "volume": 80, "emptydc_enabled": True, "emptydc_timer": 120, "emptypause_enabled": True,
           "emptypause_timer": 30, "notify": True, "jukebox": True, "max_volume": 100}
    plan = settings_plan(raw)
    assert plan.values == {"dj_role": 555, "vote_percent": 40, "max_length": 600, "volume": 80,
                           "empty_disconnect": 120, "pause_when_alone": True, "notify": True}
    assert plan.unmapped == ["jukebox", "max_volume"]
    assert any("pauses at once" in note for note in plan.notes)


def test_turning_things_off_in_audio_is_imported_as_off() -> None:
    plan = settings_plan({"emptydc_enabled": False, "emptydc_timer": 300, "emptypause_enabled": False,
                          "emptypause_timer": 0, "notify": False, "volume": 100})
    # the timer was changed but Audio never left empty channels: neither does this cog now
    assert plan.values == {"empty_disconnect": 0}


def test_half_settings_are_explained_not_guessed() -> None:
    plan = settings_plan({"dj_enabled": True, "dj_role": None, "vote_enabled": True, "vote_percent": 150})
    assert plan.values == {"vote_percent": 100}  # bounded
    assert any("without a DJ role" in n for n in plan.notes)
    assert any("votes apply while a DJ role is set" in n for n in plan.notes)
    plan = settings_plan({"dj_enabled": False, "dj_role": 9, "volume": "loud", "maxlength": True})
    assert plan.values == {} and any("DJ mode was off" in n for n in plan.notes)


def test_audio_config_playlists_of_every_schema() -> None:
    track = lavalink_track("https://example.com/a", "A")
    groups = {
        "GLOBALPLAYLIST": {"11": {"id": 11, "name": "g", "author": 1, "tracks": [track]}},
        "GUILDPLAYLIST": {"500": {"12": {"id": 12, "name": "s", "author": 2, "playlist_url": "https://x.example/p",
                                         "tracks": [track, track]}}},
        "USERPLAYLIST": {"77": {"13": {"id": 13, "name": "u", "author": 77, "tracks": []}}},
    }
    schema_1 = {600: {"playlists": {"old one": {"author": 3, "playlist_url": None, "tracks": [track]}}}}
    found = config_playlists(groups, schema_1)
    assert [(p.scope, p.scope_id, p.playlist_id, p.name, p.author_id, len(p.tracks)) for p in found] == [
        (Scope.GLOBAL, 0, 11, "g", 1, 1), (Scope.SERVER, 500, 12, "s", 2, 2), (Scope.USER, 77, 13, "u", 77, 0),
        (Scope.SERVER, 600, 1000, "old one", 3, 1),
    ]
    assert found[1].url == "https://x.example/p"
    assert len({p.source_key for p in found}) == 4


def test_audio_entries_leave_out_local_files_and_stop_at_the_ceiling() -> None:
    tracks = [lavalink_track("https://example.com/1", "one"), lavalink_track("/srv/localtracks/a.mp3", "local"),
              {"info": "broken"}, "https://example.com/bare"]
    playlist = AudioPlaylist(Scope.SERVER, 1, 2, "x", 3, None, tracks, "test")
    entries, left_out, cut = audio_entries(playlist)
    assert [e.query for e in entries] == ["https://example.com/1", "https://example.com/bare"]
    assert (left_out, cut) == (2, 0)
    many = AudioPlaylist(Scope.SERVER, 1, 2, "x", 3, None, ["https://example.com/x"] * (ENTRY_CEILING + 5), "test")
    entries, left_out, cut = audio_entries(many)
    assert len(entries) == ENTRY_CEILING and cut == 5

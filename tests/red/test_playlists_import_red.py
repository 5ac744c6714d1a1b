"""`musicset import audio` on data written by Red's core Audio cog's own storage code (its Config
registration and playlist API classes from the installed `redbot` package: see
tests/support/red_audio.py), read by this cog in a new Red process where Audio was never loaded
and no Lavalink exists. Every playlist and setting is accounted for; a second run imports
nothing; Audio's own files are left exactly as they were."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from redbot.cogs.audio.utils import PlaylistScope
from redbot.core.bot import Red
from redbot.core.data_manager import cog_data_path

from music.commands.base import CommandError
from music.playlists.model import Where
from tests.support.fakevoice import FakeContext, member_in
from tests.support.red_audio import AudioWriter, lavalink_track
from tests.support.redlevel import World, load_cog, new_red

BOT_USER = 4_000_000_000_000_000_01
SERVER_A = 5_000_000_000_000_000_01
SERVER_B = 5_000_000_000_000_000_02
AUTHOR = 6_000_000_000_000_000_01
MEMBER = 6_000_000_000_000_000_02


def tracks(*names: str) -> list[dict]:
    return [lavalink_track(f"https://example.com/{n}", n.title(), author="Band", length_ms=61_000) for n in names]


LOCAL = lavalink_track("/home/red/.local/share/Red-DiscordBot/data/x/cogs/Audio/localtracks/a/b.mp3", "local")


async def write_audio_data(red: Red) -> AudioWriter:
    audio = await AudioWriter(red, BOT_USER).start()
    S, U, G = PlaylistScope.GUILD.value, PlaylistScope.USER.value, PlaylistScope.GLOBAL.value
    await audio.playlist(S, "Rock", tracks("one", "two", "three") + [LOCAL], author_id=AUTHOR, guild_id=SERVER_A,
                         url="https://example.com/rock-list")
    await audio.playlist(S, "rock", tracks("four"), author_id=MEMBER, guild_id=SERVER_A)  # Audio allows the same name
    await audio.playlist(S, "Empty", [], author_id=AUTHOR, guild_id=SERVER_A)
    gone = await audio.playlist(S, "Gone", tracks("five"), author_id=AUTHOR, guild_id=SERVER_A)
    await audio.delete(S, gone, SERVER_A)  # Audio keeps deleted rows, marked
    await audio.playlist(S, "Locals", [LOCAL, LOCAL], author_id=AUTHOR, guild_id=SERVER_A)
    await audio.playlist(S, "@everyone `party`", tracks("six"), author_id=AUTHOR, guild_id=SERVER_B)
    await audio.playlist(U, "Mine", tracks("seven", "eight"), author_id=MEMBER)
    await audio.playlist(G, "Everyone", tracks("nine"), author_id=AUTHOR)
    # a bot that never ran Audio's schema-3 migration still has playlists in Audio's Config
    await audio.config.custom(S, str(SERVER_B), "77").set(
        {"id": 77, "name": "Old", "author": AUTHOR, "playlist_url": None, "tracks": tracks("ten")})
    guild = audio.guild(SERVER_A)  # as Audio's `audioset` commands store them
    await guild.dj_enabled.set(True)
    await guild.dj_role.set(555)
    await guild.vote_percent.set(30)
    await guild.vote_enabled.set(True)
    await guild.maxlength.set(600)
    await guild.volume.set(70)
    await guild.emptydc_timer.set(120)
    await guild.emptydc_enabled.set(True)
    await guild.emptypause_timer.set(15)
    await guild.emptypause_enabled.set(True)
    await guild.notify.set(True)
    await guild.jukebox.set(True)
    await audio.guild(SERVER_B).volume.set(100)  # Audio's default: nothing to import
    await audio.guild(SERVER_B).max_volume.set(90)  # no equivalent here
    await audio.close()
    return audio


def fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


async def test_import_audio_brings_every_playlist_and_setting_once(red: Red) -> None:
    await write_audio_data(red)
    audio_folder = Path(cog_data_path(raw_name="Audio"))
    before = fingerprint(audio_folder)
    assert "Audio.db" in before and "settings.json" in before

    red2 = new_red()  # a new process: Audio never loaded, no Lavalink
    world = World(red2)
    cog = await load_cog(red2)
    owner = member_in(world.voice, "owner")
    red2.owner_ids.add(owner.id)
    ctx = FakeContext(red2, world.guild, owner)
    with pytest.raises(CommandError, match="Only the bot owner can do that"):
        await cog.lists.import_audio(await cog.actor(world.ctx()), cog_data_path())
    # a playlist of the same name already here: Audio's goes beside it
    await cog.control.playlists.create(SERVER_A, await cog.actor(ctx), Where.server(SERVER_A), "Rock")

    await red2.get_command("musicset import audio")(ctx)
    report = "\n".join(m["content"] for m in ctx.sent)
    print("\n" + report)
    assert "Read: Audio's playlist database (Audio.db) and Audio's settings (Config)." in report
    assert "**Playlists imported: 7** (9 entries)." in report
    assert f"- server {SERVER_A}: **Rock (audio)** (was **Rock**), 3 entries; 1 entry left out (local files or unreadable)" in report
    assert f"- server {SERVER_A}: **rock (audio 2)** (was **rock**), 1 entry" in report
    assert f"- server {SERVER_B}: **everyone party** (was **@\u200beveryone \\`party\\`**), 1 entry" in report  # inert
    assert f"- <@{MEMBER}>'s: **Mine**, 2 entries" in report and "- global: **Everyone**, 1 entry" in report
    assert "**Playlists skipped: 1**" in report and "**Locals**: all 2 entries are local files or unreadable" in report
    assert "Gone" not in report
    assert "**Server settings imported: 1**" in report
    assert "1 server(s) had no setting with an equivalent here changed from Audio's default." in report
    assert "Not imported, no equivalent here (servers): jukebox (1), max_volume (1)." in report

    playlists = cog.control.playlists
    summaries = {(w.scope.value, w.scope_id): {s.name: (s.count, s.author_id) for s in found}
                 for w in (Where.server(SERVER_A), Where.server(SERVER_B), Where.user(MEMBER), Where.global_())
                 for found in [await playlists.store.summaries(w)]}
    assert summaries == {
        ("server", SERVER_A): {"Rock": (0, owner.id), "Rock (audio)": (3, AUTHOR), "rock (audio 2)": (1, MEMBER),
                               "Empty": (0, AUTHOR)},
        ("server", SERVER_B): {"everyone party": (1, AUTHOR), "Old": (1, AUTHOR)},
        ("user", MEMBER): {"Mine": (2, MEMBER)},
        ("global", 0): {"Everyone": (1, AUTHOR)},
    }
    rock = await playlists.entries(Where.server(SERVER_A), "rock (audio)")
    assert [(e.query, e.title, e.duration, e.uploader) for e in rock] == [
        (f"https://example.com/{n}", n.title(), 61.0, "Band") for n in ("one", "two", "three")]
    settings = cog.store.guild(SERVER_A)
    assert (settings.dj_role, settings.vote_percent, settings.max_length, settings.volume,
            settings.empty_disconnect, settings.pause_when_alone, settings.notify) == (555, 30, 600, 70, 120, True, True)
    assert cog.store.guild(SERVER_B).volume == 100 and cog.store.guild(SERVER_B).dj_role is None

    ctx.sent.clear()
    await red2.get_command("musicset import audio")(ctx)
    again = "\n".join(m["content"] for m in ctx.sent)
    assert "**Playlists imported: 0** (0 entries)." in again
    assert "7 playlist(s) were imported by an earlier run and were skipped." in again
    assert "**Server settings imported: 0**" in again and "1 server(s) had their settings imported" in again
    assert len(await playlists.store.summaries(Where.server(SERVER_A))) == 4
    assert fingerprint(audio_folder) == before  # Audio's files untouched
    await red2.remove_cog("Music")


async def test_nothing_left_by_audio_is_a_sentence_and_creates_no_audio_files(red: Red) -> None:
    world = World(red)
    cog = await load_cog(red)
    owner = member_in(world.voice, "owner")
    red.owner_ids.add(owner.id)
    ctx = FakeContext(red, world.guild, owner)
    await red.get_command("musicset import audio")(ctx)
    assert ctx.sent[0]["content"].startswith("I found nothing Red's Audio left in this bot's data.")
    assert not (Path(cog_data_path()) / "Audio").exists()
    assert await cog.control.playlists.store.summaries(Where.server(world.guild.id)) == []
    await red.remove_cog("Music")


async def test_playlists_still_in_audios_write_ahead_log_are_read(red: Red) -> None:
    """Audio did not close its database (a crash): the newest rows are only in Audio.db-wal."""
    from music.playlists.audio import read_audio_db

    audio = await AudioWriter(red, BOT_USER).start()
    try:
        await audio.playlist(PlaylistScope.GUILD.value, "Unsaved", tracks("x"), author_id=AUTHOR, guild_id=SERVER_A)
        assert audio.db_path.with_name("Audio.db-wal").stat().st_size > 0
        found = read_audio_db(audio.db_path)
        assert [(p.name, p.scope_id, len(p.tracks)) for p in found] == [("Unsaved", SERVER_A, 1)]
    finally:
        await audio.close()
    assert [p.name for p in read_audio_db(audio.db_path)] == ["Unsaved"]  # and after a clean close

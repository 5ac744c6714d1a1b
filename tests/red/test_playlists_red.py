"""`playlist ...` inside a real Red bot with real Config (JSON on disk), real yt-dlp on local URLs,
real ffmpeg and discord.py's real AudioPlayer thread (the voice connection is a recorder)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from redbot.core.bot import Red

from music.cog import Music
from music.commands.base import CommandError
from music.player import PlayerState
from music.playlists.model import Where
from tests.support.audio_analysis import decode_opus_packets, dominant_frequency
from tests.support.fakevoice import FakeContext, member_in
from tests.support.red_audio import audio_v3_export, lavalink_track
from tests.support.redlevel import World, load_cog, new_red

SECOND = 48000


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def ready_cog(red: Red, world: World, media_server: Any = None) -> Music:
    cog = await load_cog(red)
    await red.get_command("musicset network allow")(world.ctx(), "127.0.0.0/8")
    if media_server is not None:
        from tests.support import fakesite

        fakesite.FakeSiteSearchIE.base_url = media_server.base_url
        cog.resolver.extra_extractors = fakesite.EXTRACTORS
        await red.get_command("musicset extractors allow")(world.ctx(), "fakesite")
    return cog


def command(red: Red, name: str) -> Any:
    found = red.get_command(f"playlist {name}")
    assert found is not None, name
    return found


class FakeAttachment:
    def __init__(self, filename: str, data: bytes) -> None:
        self.filename, self.data, self.size = filename, data, len(data)

    async def read(self) -> bytes:
        return self.data


def with_file(ctx: FakeContext, filename: str, data: bytes) -> FakeContext:
    ctx.message = SimpleNamespace(attachments=[FakeAttachment(filename, data)])  # type: ignore[attr-defined]
    return ctx


def queued_titles(cog: Music, guild_id: int) -> list[str]:
    queue = cog.manager.get(guild_id).queue
    return [t.title for t in ([queue.current] if queue.current else []) + queue.upcoming]


async def test_every_playlist_command_is_registered_with_help(red: Red) -> None:
    World(red)
    await load_cog(red)
    names = {c.name for c in red.get_command("playlist").commands}
    assert names == {"start", "save", "create", "append", "remove", "list", "info", "rename", "copy",
                     "dedupe", "delete", "download", "upload"}
    for c in [*red.get_command("playlist").walk_commands(), red.get_command("playlist"),
              red.get_command("musicset import audio"), red.get_command("musicset playlistlimits")]:
        assert c.help and len(c.help) > 20, c.qualified_name
    assert red.get_command("playlist play") is red.get_command("playlist start")  # Red Audio's alias
    await red.remove_cog("Music")


async def test_a_saved_queue_plays_in_the_same_order_after_a_restart(red: Red, media_server) -> None:
    world = World(red)
    cog = await ready_cog(red, world)
    ctx = world.ctx()
    for name in ("a440.webm", "b880.webm", "a660.mp3"):
        await cog.play(ctx, query=media_server.url(name))
    await command(red, "save")(ctx, "Tones")
    assert ctx.last == "Saved 3 tracks as server playlist **Tones**."
    await red.get_command("stop")(ctx)
    player = cog.manager.players[world.guild.id]
    await wait_for(lambda: player.queue.current is None and not player.queue.upcoming)
    await red.remove_cog("Music")

    red2 = new_red()
    world.attach(red2)
    cog2 = await load_cog(red2)
    ctx = world.ctx()
    await command(red2, "start")(ctx, "tones")
    first = ctx.messages[-1]
    assert first.content == "Playing **a440** (0:03) from server playlist **Tones**."
    await wait_for(lambda: first.edits and first.edits[-1] == "Queued 3 tracks from **Tones**.")
    assert queued_titles(cog2, world.guild.id)[:3] == ["a440", "b880", "a660"]
    assert {t.requester_id for t in cog2.manager.get(world.guild.id).queue.upcoming} == {world.member.id}
    player = cog2.manager.players[world.guild.id]
    vc = world.guild.voice_client
    await wait_for(lambda: player.state is PlayerState.IDLE and len(vc.packets) > 400, timeout=20)
    pcm, bad = decode_opus_packets(vc.opus_packets())
    assert bad == 0
    heard = [round(dominant_frequency(pcm[int((s + 0.5) * SECOND): int((s + 2.5) * SECOND)])) for s in (0, 3, 6)]
    assert [abs(h - f) < 5 for h, f in zip(heard, (440, 880, 660))] == [True] * 3, heard
    await red2.remove_cog("Music")


async def test_append_remove_dedupe_rename_copy_and_delete(red: Red, media_server) -> None:
    world = World(red)
    cog = await ready_cog(red, world, media_server)
    ctx = world.ctx()
    await command(red, "create")(ctx, "mix")
    assert ctx.last == "Made the empty server playlist **mix**."
    item = f"{media_server.base_url}/site/item/b880.webm"
    await command(red, "append")(ctx, "mix", args=item)
    assert ctx.last == "Added 1 track to server playlist **mix** (1 in all)."
    await command(red, "append")(ctx, "MIX", args=f"{media_server.base_url}/site/list/7")
    assert ctx.last == "Added 5 tracks to server playlist **mix** (6 in all). 2 were already in it."
    await command(red, "info")(ctx, "mix")
    lines = ctx.last.splitlines()
    # pages go through Red's menus, which would ping a mention: members are named instead
    assert lines[0] == f"Server playlist **mix**, by user {world.member.id}: 6 entries, 0:03."
    assert lines[2:5] == ["`1.` **Fake b880.webm** (0:03)", "`2.` **Entry 0** (?)", "`3.` **Entry 2** (?)"]

    await command(red, "remove")(ctx, "mix", args="2")
    assert ctx.last == "Removed **Entry 0** (?) from **mix** (5 left)."
    playlist = await cog.control.playlists.get(world.guild.id, await cog.actor(ctx), "mix", None)
    playlist_links = [e.query for e in playlist.entries]
    await command(red, "remove")(ctx, "mix", args=playlist_links[1])  # Entry 2 and Entry 5: the same link
    assert ctx.last == "Removed 2 entries from **mix** (3 left)."
    with pytest.raises(CommandError, match="Pick an entry from 1 to 3"):
        await command(red, "remove")(ctx, "mix", args="9")

    await command(red, "copy")(ctx, "mix", args="--to-scope user")
    assert ctx.last.startswith("Copied server playlist **mix** to <@") and ": 3 entries" in ctx.last
    await command(red, "append")(ctx, "mix", args=f"{item} --scope user")  # a copy of what is there: skipped
    assert "0 tracks" in ctx.last and "1 was already in it" in ctx.last
    await command(red, "save")(ctx, "twice", args=f"{media_server.base_url}/site/list/4")
    assert ctx.last.startswith("Saved 4 tracks as server playlist **twice**")
    await command(red, "dedupe")(ctx, "twice")
    assert ctx.last == "Removed 1 repeated entry from **twice**."  # item 3 is item 0's file again

    await command(red, "rename")(ctx, "twice", args="Once")
    assert ctx.last == "Renamed **twice** to **Once**."
    with pytest.raises(CommandError, match="already a server playlist named"):
        await command(red, "rename")(ctx, "once", args="MIX")
    await command(red, "list")(ctx)
    listing = ctx.last
    assert "__Server playlists__ (2)" in listing and "**mix**: 3 entries" in listing and "**Once**: 3 entries" in listing
    assert f"__User {world.member.id}'s playlists__ (1)" in listing and "<@" not in listing
    await command(red, "delete")(ctx, "once")
    assert ctx.last == "Deleted server playlist **Once**."
    with pytest.raises(CommandError, match="no playlist named \\*\\*once\\*\\*"):
        await command(red, "info")(ctx, "once")
    await red.remove_cog("Music")


async def test_who_may_make_and_change_playlists(red: Red) -> None:
    world = World(red)
    cog = await load_cog(red)
    gid = world.guild.id
    other = member_in(world.voice, "other")
    dj = member_in(None, "dj")
    dj.roles = [SimpleNamespace(id=555)]
    as_author, as_other, as_dj = world.ctx(), FakeContext(red, world.guild, other), FakeContext(red, world.guild, dj)
    await command(red, "create")(as_author, "theirs")
    await cog.store.set_guild(gid, "dj_role", 555)
    with pytest.raises(CommandError, match="Only its author, DJs, mods and admins can change that playlist"):
        await command(red, "delete")(as_other, "theirs")
    with pytest.raises(CommandError, match="Only DJs can make server playlists here"):
        await command(red, "create")(as_other, "mine")
    await command(red, "create")(as_other, "mine", args="--scope user")  # their own: always
    await command(red, "rename")(as_author, "theirs", args="still theirs")  # the author: always
    await command(red, "delete")(as_dj, "still theirs")  # a DJ, anywhere (no voice needed)
    with pytest.raises(CommandError, match="another member's own playlist"):
        await command(red, "delete")(as_author, "mine", args=f"--author {other.id}")
    with pytest.raises(CommandError, match="Only the bot owner can change global playlists"):
        await command(red, "create")(as_dj, "everyone", args="--scope global")
    with pytest.raises(CommandError, match="Only the bot owner can use `--guild`"):
        await command(red, "list")(as_other, args="--guild 123")
    red.owner_ids.add(other.id)
    await command(red, "create")(as_other, "everyone", args="--scope global")
    await command(red, "info")(as_author, "everyone")  # anyone may read: found in the global scope
    assert as_author.last.startswith("Global playlist **everyone**")
    await red.remove_cog("Music")


async def test_download_then_upload_round_trips_and_a_bad_file_changes_nothing(red: Red, media_server) -> None:
    world = World(red)
    cog = await ready_cog(red, world, media_server)
    ctx = world.ctx()
    await command(red, "save")(ctx, "road trip", args=f"{media_server.base_url}/site/list/5")
    await command(red, "download")(ctx, "road trip")
    sent = ctx.sent[-1]
    assert sent["content"] == "Here is **road trip**." and sent["file"].filename == "road_trip.json"
    data = sent["file"].fp.read()

    await command(red, "upload")(with_file(world.ctx(), "road_trip.json", data), args="--scope user")
    mine = await cog.control.playlists.get(world.guild.id, await cog.actor(ctx), "road trip", Where.user(world.member.id))
    server = await cog.control.playlists.get(world.guild.id, await cog.actor(ctx), "road trip", Where.server(world.guild.id))
    assert [(e.query, e.title) for e in mine.entries] == [(e.query, e.title) for e in server.entries]

    before = json.loads((cog.store.config._driver.data_path).read_text())
    bad = with_file(world.ctx(), "broken.json", data[: len(data) // 2])
    with pytest.raises(CommandError, match="cut off or malformed"):
        await command(red, "upload")(bad, args="copy")
    with pytest.raises(CommandError, match="already a server playlist named \\*\\*road trip\\*\\*"):
        await command(red, "upload")(with_file(world.ctx(), "road_trip.json", data))
    assert json.loads((cog.store.config._driver.data_path).read_text()) == before

    v3 = audio_v3_export("From Audio", [lavalink_track(media_server.url("a440.webm"), "A440", length_ms=3000),
                                        lavalink_track("/srv/localtracks/x.mp3", "local")])
    upload = with_file(world.ctx(), "123.txt", v3)
    await command(red, "upload")(upload)
    assert upload.last == ("Made server playlist **From Audio** with 1 entry from Red Audio's v3 file. "
                           "1 entry was not an http(s) link and was left out.")
    await red.remove_cog("Music")


async def test_limits_refuse_with_sentences_and_playlist_start_meets_the_queue_limits(red: Red, media_server) -> None:
    world = World(red)
    await ready_cog(red, world, media_server)
    ctx = world.ctx()
    limits = red.get_command("musicset playlistlimits")
    with pytest.raises(CommandError, match="Only the bot owner can change that limit"):
        await limits(FakeContext(red, world.guild, SimpleNamespace(id=1, guild_permissions=SimpleNamespace(manage_guild=True),
                                                               voice=None, bot=False)), "entries", 3)
    red.owner_ids.add(world.member.id)
    await limits(ctx, "entries", 4)
    await limits(ctx, "server", 1)
    await limits(ctx)
    assert ctx.last == "Playlists per server: 1. Per member: 25. Global: 100. Entries per playlist: 4."
    await command(red, "save")(ctx, "long", args=f"{media_server.base_url}/site/list/9")
    assert ctx.last == "Saved 4 tracks as server playlist **long**. The link has more entries than fit; the first 4 were taken."
    with pytest.raises(CommandError, match="This server has 1 server playlists, the limit"):
        await command(red, "create")(ctx, "second")
    with pytest.raises(CommandError, match="is full \\(4 entries"):
        await command(red, "append")(ctx, "long", args=media_server.url("a440.webm"))

    await red.get_command("musicset maxqueue")(ctx, 2)
    await command(red, "start")(ctx, "long")
    reply = ctx.messages[-1]
    await wait_for(lambda: reply.edits and reply.edits[-1].startswith("Queued"))
    assert reply.edits[-1] == "Queued 3 tracks from **long**. 1 left out by this server's queue, length or per-member limits."
    await red.remove_cog("Music")


async def test_deleting_a_members_data_deletes_their_playlists(red: Red) -> None:
    world = World(red)
    cog = await load_cog(red)
    ctx = world.ctx()
    await command(red, "create")(ctx, "mine", args="--scope user")
    await command(red, "create")(ctx, "shared")
    await cog.red_delete_data_for_user(requester="user", user_id=world.member.id)
    sections = await cog.control.playlists.summaries(world.guild.id, await cog.actor(ctx), None)
    found = {where.scope.value: [(s.name, s.author_id) for s in summaries] for where, summaries in sections}
    assert found == {"server": [("shared", 0)], "user": [], "global": []}
    await red.remove_cog("Music")



def test_info_pages_hold_ten_entries_each_and_name_members_without_mentions() -> None:
    from music.commands.playlists import _info_pages
    from music.engine.track import Track
    from music.playlists.model import Playlist

    playlist = Playlist(name="@everyone *long*", where=Where.user(42), author_id=42)
    playlist.append([Track(query=f"https://example.com/{i}", title=f"<@{100000000000000000 + i}> song", duration=60.0) for i in range(25)], 100)
    pages = _info_pages(playlist, lambda user_id: f"name{user_id}")
    assert [len(p) for p in pages] == [12, 12, 7]  # the heading, a blank line, then the entries
    assert pages[0][0] == "Name42's playlist **@\u200beveryone \\*long\\***, by name42: 25 entries, 25:00."
    assert pages[2][-1] == "`25.` **<@\u200b100000000000000024> song** (1:00)"  # a title's mention is inert
    assert not any("<@1" in line or "<@4" in line for page in pages for line in page)


async def test_save_history_keeps_what_played_oldest_first(red: Red, media_server) -> None:
    """`playlist save <name> --history`: what played recently, up to the current track."""
    world = World(red)
    cog = await ready_cog(red, world)
    ctx = world.ctx()
    with pytest.raises(CommandError, match="no history to save"):
        await command(red, "save")(ctx, "Before", args="--history")
    for name in ("a440.webm", "b880.webm", "a660.mp3"):
        await cog.play(ctx, query=media_server.url(name))
    player = cog.manager.players[world.guild.id]
    await wait_for(lambda: player.queue.current is not None and player.queue.current.title == "b880"
                   and player.state is PlayerState.PLAYING, timeout=15)
    await command(red, "save")(ctx, "Played", args="--history")
    assert ctx.last == "Saved 2 tracks as server playlist **Played**."
    with pytest.raises(CommandError, match="either a link or `--history`"):
        await command(red, "save")(ctx, "Both", args=f"{media_server.url('a440.webm')} --history")
    await red.get_command("stop")(ctx)
    await wait_for(lambda: player.queue.current is None)
    await command(red, "start")(ctx, "played")
    await wait_for(lambda: len(queued_titles(cog, world.guild.id)) >= 2)
    assert queued_titles(cog, world.guild.id)[:2] == ["a440", "b880"]
    await red.get_command("stop")(ctx)
    await red.remove_cog("Music")

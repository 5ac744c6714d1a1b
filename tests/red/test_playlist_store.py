"""Saved playlists in Red Config (music/playlists/store.py) on both backends, JSON and PostgreSQL:
the queue's chunked layout, so a change to a big playlist writes a chunk or two and the head,
a rename moves only the head, and what is stored (read beside Config) reads back as written."""

from __future__ import annotations

import random
import time
import uuid

from redbot.core import Config

from music.config_internals import CONFIG_CALLS
from music.engine.track import Track
from music.playlists.model import Playlist, Where
from music.playlists.store import PLAYLIST_CHUNK_GROUP, PLAYLIST_GROUP, PlaylistStore
from music.store_chunks import ChunkedQueueWriter
from tests.support.postgres import Backend, backend_fixture  # noqa: F401  (the `backend` fixture)

SERVER = Where.server(4242)


def new_store() -> PlaylistStore:
    config = Config.get_conf(None, identifier=0x706C61796C, cog_name="MusicPlaylists", force_registration=True)
    internals = ChunkedQueueWriter(config).internals  # the checked Config internals, as the cog has them
    return PlaylistStore(config, internals)


def entries(n: int, seed: int = 3) -> list[Track]:
    rng = random.Random(seed)  # fixed ids: the same chunk boundaries every run
    return [Track(id=uuid.UUID(int=rng.getrandbits(128)).hex, query=f"https://example.com/{i}", title=f"song {i}",
                  duration=100.0 + i) for i in range(n)]


def big_playlist(n: int = 5000) -> Playlist:
    return Playlist(name="Big One", where=SERVER, author_id=9, entries=entries(n), source_url="https://example.com/l")


async def stored_entries(backend: Backend, store: PlaylistStore, where: Where, key: str) -> list[str]:
    """The entry ids as the backend holds them, read without Config."""
    head = await backend.stored_document(store.config, PLAYLIST_GROUP, where.scope.value, where.scope_id, key)
    ids: list[str] = []
    for name in head["chunks"]:
        chunk = await backend.stored_document(store.config, PLAYLIST_CHUNK_GROUP, where.scope.value,
                                              where.scope_id, head["uid"], name)
        ids += [t["id"] for t in chunk["tracks"]]
    return ids


async def test_one_change_to_a_big_playlist_writes_one_or_two_chunks(backend: Backend) -> None:
    store = new_store()
    playlist = big_playlist()
    async with store.lock:
        first = await store.write(playlist)
    assert first.chunks_written == first.chunks_total > 40

    async with store.lock:
        loaded = await store.load(SERVER, "big one")
        assert loaded is not None
        loaded.playlist.entries.append(entries(1, seed=99)[0])
        started = time.perf_counter()
        appended = await store.write(loaded.playlist, loaded)
        elapsed = time.perf_counter() - started
        print(f"\n{backend.name}: one append to 5,000 entries wrote {appended.chunks_written} chunk(s), "
              f"deleted {appended.chunks_deleted}, {elapsed * 1000:.1f} ms")
        assert appended.chunks_written == 1 and appended.chunks_deleted == 1

        del loaded.playlist.entries[2500]  # a removal in the middle
        removed = await store.write(loaded.playlist, loaded)
        assert 1 <= removed.chunks_written <= 2 and removed.chunks_deleted <= 2
        expected = [e.id for e in loaded.playlist.entries]

    assert await stored_entries(backend, store, SERVER, "big one") == expected
    # the baseline, same run: the playlist as one Config value, rewritten whole for the same change
    store.config.init_custom("WHOLE", 1)
    whole = {"tracks": [e.to_dict() for e in loaded.playlist.entries]}
    started = time.perf_counter()
    await store.config.custom("WHOLE", "big one").set(whole)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    async with store.lock:
        await store.load(SERVER, "big one")
    print(f"{backend.name}: the same change as one whole value: {baseline * 1000:.1f} ms; "
          f"reading the 5,000 entries back: {(time.perf_counter() - started) * 1000:.1f} ms")
    await backend.new_process()
    again = new_store()
    async with again.lock:
        back = await again.load(SERVER, "BIG ONE")
    assert back is not None
    assert [e.id for e in back.playlist.entries] == expected
    assert (back.playlist.name, back.playlist.author_id, back.playlist.source_url) == ("Big One", 9, "https://example.com/l")
    async with again.lock:
        unchanged = await again.write(back.playlist, back)  # a new process knows what is stored
    assert unchanged.chunks_written == 0 and unchanged.chunks_deleted == 0


async def test_a_rename_moves_the_head_only_and_a_delete_leaves_nothing(backend: Backend) -> None:
    store = new_store()
    async with store.lock:
        await store.write(big_playlist(1000))
        loaded = await store.load(SERVER, "big one")
        assert loaded is not None
        loaded.playlist.name = "Smaller"
        renamed = await store.write(loaded.playlist, loaded)
        assert renamed.chunks_written == 0 and renamed.chunks_deleted == 0
        assert not await store.exists(SERVER, "big one") and await store.exists(SERVER, "smaller")
        assert [s.name for s in await store.summaries(SERVER)] == ["Smaller"]
    assert len(await stored_entries(backend, store, SERVER, "smaller")) == 1000

    async with store.lock:
        assert await store.delete(SERVER, "smaller")
        assert not await store.delete(SERVER, "smaller")
        assert await store.summaries(SERVER) == []
    chunks = await store.config.custom(PLAYLIST_CHUNK_GROUP, SERVER.scope.value, str(SERVER.scope_id)).all()
    assert not any(chunks.values())


async def test_scopes_keep_their_own_names_and_the_public_path_works_too(backend: Backend) -> None:
    store = new_store()
    store.path_override = CONFIG_CALLS  # the path for a Red whose internals are not as expected
    same_name = [Playlist(name="Mix", where=w, author_id=1, entries=entries(70, seed=n))
                 for n, w in enumerate([SERVER, Where.server(1), Where.user(5), Where.global_()])]
    async with store.lock:
        for playlist in same_name:
            await store.write(playlist)
        for playlist in same_name:
            loaded = await store.load(playlist.where, "mix")
            assert loaded is not None and [e.id for e in loaded.playlist.entries] == [e.id for e in playlist.entries]
        assert sorted(await store.scopes(SERVER.scope)) == [1, SERVER.scope_id]
        # a crash after new chunks and before the head (public path): the rows are orphans that
        # the playlist's next write deletes
        loaded = await store.load(SERVER, "mix")
        assert loaded is not None
        await store._chunks(SERVER, loaded.playlist.uid, "orphan").set({"tracks": []})
        again = await store.load(SERVER, "mix")
        assert again is not None and again.orphans == {"orphan"}
        cleaned = await store.write(again.playlist, again)
        assert cleaned.chunks_deleted == 1
        rows = await store._chunks(SERVER, loaded.playlist.uid).all()
        assert "orphan" not in rows


async def test_forgetting_a_member_deletes_their_own_and_clears_their_authorship(backend: Backend) -> None:
    store = new_store()
    async with store.lock:
        await store.write(Playlist(name="mine", where=Where.user(5), author_id=5, entries=entries(3)))
        await store.write(Playlist(name="shared", where=SERVER, author_id=5, entries=entries(3)))
        await store.write(Playlist(name="other", where=SERVER, author_id=6, entries=entries(3)))
        assert await store.forget_user(5) == (1, 1)
        assert await store.summaries(Where.user(5)) == []
        authors = {s.name: s.author_id for s in await store.summaries(SERVER)}
    assert authors == {"shared": 0, "other": 6}

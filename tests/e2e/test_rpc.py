"""The queue API over Red's RPC server: a real Red started with `--rpc --rpc-port <port>`, the cog
installed through Downloader, and a JSON-RPC 2.0 client on Red's websocket calling MUSIC__*.

Effects are checked where they show: the queue the API reports, the audio the stand-in's voice
channel hears, and the sentences of refused input. Tests run in file order on one Red: the
refusals first (the bot is not in voice yet), then playback, then the background.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from standin import Standin
from standin.server import DefaultWorld
from tests.e2e.conftest import MusicBot, near, running_music_bot

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

MUSIC_METHODS = {
    "MUSIC__STATUS", "MUSIC__QUEUE", "MUSIC__ADD", "MUSIC__REMOVE", "MUSIC__MOVE", "MUSIC__SKIP",
    "MUSIC__BACKGROUND",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RpcClient:
    """JSON-RPC 2.0 over Red's websocket. Red's server answers each request in its own task, so
    answers are matched to requests by id, not by order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> RpcClient:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            future = self._pending.pop(data.get("id"), None)
            if future is not None and not future.done():
                future.set_result(data)

    async def request(self, method: str, params: dict[str, Any] | list[Any] | None = None,
                      *, timeout: float = 30.0) -> dict[str, Any]:
        """The whole JSON-RPC answer: {"result": ...} or {"error": {...}}."""
        assert self._ws is not None
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self._ws.send_json({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params or {}})
        return await asyncio.wait_for(future, timeout)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The result of a MUSIC__ method (a dict with "ok"); fails on a JSON-RPC error."""
        answer = await self.request(method, params)
        assert "result" in answer, answer
        return answer["result"]

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)
        if self._session is not None:
            await self._session.close()


@pytest.fixture(scope="module")
def rpc_port() -> int:
    return free_port()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def music_bot(standin: Standin, world: DefaultWorld, cog_snapshot: Path, rpc_port: int,
                    allowed_networks: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory):
    """conftest's music_bot, with Red's RPC server on `rpc_port`."""
    async with running_music_bot(standin, world, cog_snapshot, allowed_networks, tmp_path_factory,
                                 extra_args=["--rpc", "--rpc-port", str(rpc_port)]) as bot:
        yield bot


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rpc(music_bot: MusicBot, rpc_port: int):
    client = await RpcClient(f"ws://127.0.0.1:{rpc_port}/").connect()
    yield client
    await client.close()


@pytest.fixture(autouse=True)
def clean_recording(music_bot: MusicBot):
    music_bot.audio.clear()


def titles(answer: dict[str, Any]) -> list[str]:
    return [t["title"] for t in answer["queue"]]


async def test_red_serves_the_music_methods(rpc: RpcClient) -> None:
    listed = await rpc.request("GET_METHODS")
    assert MUSIC_METHODS <= set(listed["result"]), listed


async def test_bad_input_gets_a_sentence_and_changes_nothing(music_bot: MusicBot, rpc: RpcClient,
                                                             media_server) -> None:
    w = music_bot.world
    gid = w.guild.id
    fetched_before = len(media_server.requests)
    refusals = [
        (("MUSIC__STATUS", {"guild_id": 123}), "I'm not in a server with id 123."),
        (("MUSIC__QUEUE", {"guild_id": "not a number"}),
         "`guild_id` must be a Discord id (a number or a string of digits)."),
        (("MUSIC__QUEUE", {"guild_id": gid, "fields": ["title", "stream_url"]}), "Unknown field(s) stream_url"),
        (("MUSIC__ADD", {"guild_id": gid, "query": "x", "channel_id": w.general.id}),
         f"There's no voice channel {w.general.id} in that server."),
        # the network policy applies to the API as to `play`
        (("MUSIC__ADD", {"guild_id": gid, "query": "http://10.1.2.3/a.mp3", "channel_id": w.music.id}),
         "I won't fetch `10.1.2.3`: it points to a private or local network"),
        (("MUSIC__ADD", {"guild_id": gid, "query": "file:///etc/passwd", "channel_id": w.music.id}),
         "I only play http and https links"),
        (("MUSIC__BACKGROUND", {"guild_id": gid, "url": "http://169.254.169.254/latest"}), "I won't fetch"),
        (("MUSIC__REMOVE", {"guild_id": gid, "position": 1}), "The queue is empty."),
        (("MUSIC__REMOVE", {"guild_id": gid}), "Give either `position` (1-based) or `track_id`."),
        (("MUSIC__SKIP", {"guild_id": gid}), "Nothing is playing."),
        # the bot is in no voice channel yet, and the refused adds above did not leave theirs
        (("MUSIC__ADD", {"guild_id": gid, "query": media_server.url("a440.webm")}),
         "I'm not in a voice channel: give `channel_id`, the voice channel to play in."),
    ]
    for (method, params), sentence in refusals:
        answer = await rpc.call(method, **params)
        assert answer["ok"] is False, (method, params, answer)
        assert answer["error"].startswith(sentence), (method, params, answer)
    # a required parameter missing is a JSON-RPC "invalid params" error
    missing = await rpc.request("MUSIC__ADD", {"guild_id": gid})
    assert missing["error"]["code"] == -32602, missing

    status = await rpc.call("MUSIC__STATUS", guild_id=str(gid))
    assert status["ok"] and status["state"] == "idle" and status["queue_length"] == 0, status
    assert status["background"] is None
    assert music_bot.standin.bot_voice_channel(w.guild) is None
    assert len(media_server.requests) == fetched_before  # nothing refused was fetched


async def test_add_edit_and_skip_through_the_api(music_bot: MusicBot, rpc: RpcClient, media_server) -> None:
    w = music_bot.world
    gid = w.guild.id
    ears = music_bot.ears
    await music_bot.standin.join_voice(w.member, w.music)

    first = await rpc.call("MUSIC__ADD", guild_id=gid, query=media_server.url("long.mp3"),
                           channel_id=w.music.id, text_channel_id=w.general.id, requester_id=w.member.id)
    assert first["ok"] and first["position"] == 1, first
    assert [t["title"] for t in first["added"]] == ["long"]
    await ears.wait_for_tone(330, packets=10)  # the bot joined Music by itself and plays
    assert music_bot.standin.bot_voice_channel(w.guild) is w.music
    for name, position in (("a440.webm", 1), ("b880.webm", 2), ("a660.mp3", 3)):
        added = await rpc.call("MUSIC__ADD", guild_id=gid, query=media_server.url(name))
        assert added["ok"] and added["position"] == position, added

    listed = await rpc.call("MUSIC__QUEUE", guild_id=gid, fields=["title", "duration", "requester_id"])
    # exactly the chosen fields; durations as the encoder wrote the files (3 s, 30 s)
    assert listed["current"] == {"title": "long", "duration": pytest.approx(30.0, abs=0.1),
                                 "requester_id": str(w.member.id)}
    assert listed["queue"] == [
        {"position": n, "title": title, "duration": pytest.approx(3.0, abs=0.1), "requester_id": "0"}
        for n, title in enumerate(["a440", "b880", "a660"], 1)
    ]

    moved = await rpc.call("MUSIC__MOVE", guild_id=gid, position=3, to_position=1)
    assert moved["ok"] and moved["moved"]["title"] == "a660", moved
    removed = await rpc.call("MUSIC__REMOVE", guild_id=gid, position=2)
    assert removed["ok"] and removed["removed"]["title"] == "a440", removed
    queue = await rpc.call("MUSIC__QUEUE", guild_id=gid)
    assert titles(queue) == ["a660", "b880"]
    b880_id = queue["queue"][1]["id"]
    by_id = await rpc.call("MUSIC__REMOVE", guild_id=gid, track_id=b880_id)
    assert by_id["ok"] and by_id["removed"]["title"] == "b880", by_id

    # bad positions: a sentence naming the valid range, and the queue as it was
    bad_remove = await rpc.call("MUSIC__REMOVE", guild_id=gid, position=5)
    assert bad_remove == {"ok": False, "error": "There's no track 5 in the queue: pick a number from 1 to 1 (1 track queued)."}
    bad_move = await rpc.call("MUSIC__MOVE", guild_id=gid, position=1, to_position=4)
    assert bad_move["ok"] is False and bad_move["error"].startswith("There's no position 4 in the queue"), bad_move
    gone = await rpc.call("MUSIC__REMOVE", guild_id=gid, track_id=b880_id)
    assert gone == {"ok": False, "error": f"There's no queued track with id {b880_id}."}
    assert titles(await rpc.call("MUSIC__QUEUE", guild_id=gid)) == ["a660"]

    status = await rpc.call("MUSIC__STATUS", guild_id=gid)
    assert status["state"] == "playing" and status["connected"] is True, status
    assert status["voice_channel_id"] == str(w.music.id)
    assert status["current"]["title"] == "long" and status["queue_length"] == 1
    long_id = status["current"]["id"]

    # a skip naming a track that is not current skips nothing
    stale = await rpc.call("MUSIC__SKIP", guild_id=gid, track_id="0" * 32)
    assert stale["ok"] is False and "nothing was skipped" in stale["error"], stale
    skipped = await rpc.call("MUSIC__SKIP", guild_id=gid, track_id=long_id)
    assert skipped["ok"] and skipped["skipped"]["title"] == "long", skipped
    skipped_at = time.monotonic()
    await ears.wait_for_tone(660, after=skipped_at, packets=5, timeout=5)
    first_660 = next(p for p in ears.sound_after(skipped_at) if near(p.frequency, 660))
    assert first_660.arrival - skipped_at < 2.0
    await music_bot.audio.wait_for_quiet(1.0, timeout=10)  # a660 played out; the queue is done
    after = await rpc.call("MUSIC__STATUS", guild_id=gid)
    assert after["state"] == "idle" and after["current"] is None and after["queue_length"] == 0, after


async def test_the_servers_limits_and_block_list_apply_to_the_api(music_bot: MusicBot, rpc: RpcClient, media_server) -> None:
    w = music_bot.world
    gid = w.guild.id
    reply = await music_bot.ask(w.owner, "!musicset maxlength 10")
    assert reply.content == "Longest track: 0:10."
    too_long = await rpc.call("MUSIC__ADD", guild_id=gid, query=media_server.url("long.mp3"))
    assert too_long == {"ok": False, "error": "long is longer than this server's limit of 0:10."}
    assert (await music_bot.ask(w.owner, "!musicset maxlength 0")).content == "Longest track: no limit."

    reply = await music_bot.ask(w.owner, "!musicset blocklist add a660")
    assert reply.content == "Added `a660` to this server's block list."
    blocked = await rpc.call("MUSIC__ADD", guild_id=gid, query=media_server.url("a660.mp3"))
    assert blocked == {"ok": False, "error": "a660 was skipped: it matches `a660` on this server's block list."}
    assert (await music_bot.ask(w.owner, "!musicset blocklist clear")).content == "Cleared this server's block list (1 rule)."

    reply = await music_bot.ask(w.owner, "!musicset memberlimit 1")
    assert reply.content == "Each member may queue 1 track."
    mine = {"guild_id": gid, "requester_id": str(w.member.id)}
    playing = await rpc.call("MUSIC__ADD", query=media_server.url("long.mp3"), **mine)
    assert playing["ok"], playing
    await music_bot.ears.wait_for_tone(330, packets=5)  # it became the current track
    queued = await rpc.call("MUSIC__ADD", query=media_server.url("a440.webm"), **mine)
    assert queued["ok"] and queued["position"] == 1, queued
    refused = await rpc.call("MUSIC__ADD", query=media_server.url("b880.webm"), **mine)
    assert refused == {"ok": False, "error": "That member already has 1 track(s) queued, this server's limit per member."}
    assert titles(await rpc.call("MUSIC__QUEUE", guild_id=gid)) == ["a440"]
    assert (await music_bot.ask(w.owner, "!musicset memberlimit 0")).content == "Members may queue any number of tracks."

    assert (await rpc.call("MUSIC__REMOVE", guild_id=gid, position=1))["ok"]
    assert (await rpc.call("MUSIC__SKIP", guild_id=gid))["ok"]
    await music_bot.audio.wait_for_quiet(1.0, timeout=5)


async def test_background_plays_while_idle_and_yields_to_added_tracks(
    music_bot: MusicBot, rpc: RpcClient, media_server
) -> None:
    w = music_bot.world
    gid = w.guild.id
    ears = music_bot.ears
    assert music_bot.standin.bot_voice_channel(w.guild) is w.music  # still there from the last test
    url = media_server.url("a660.mp3")

    shown = await rpc.call("MUSIC__BACKGROUND", guild_id=gid)
    assert shown == {"ok": True, "background": None}
    set_at = time.monotonic()
    assert await rpc.call("MUSIC__BACKGROUND", guild_id=gid, url=url) == {"ok": True, "background": url}
    await ears.wait_for_tone(660, after=set_at, packets=10, timeout=10)
    status = await rpc.call("MUSIC__STATUS", guild_id=gid)
    assert status["background"] == url and status["background_playing"] is True, status

    added = await rpc.call("MUSIC__ADD", guild_id=gid, query=media_server.url("b880.webm"))
    assert added["ok"] and added["position"] == 1, added
    added_at = time.monotonic()
    heard_880 = await ears.wait_for_tone(880, after=added_at, packets=5, timeout=5)
    assert heard_880[0].arrival - added_at < 2.0  # the background yields at once
    # b880 is 3 s; then the background comes back by itself
    await ears.wait_for_tone(660, after=heard_880[-1].arrival, packets=10, timeout=10)

    assert await rpc.call("MUSIC__BACKGROUND", guild_id=gid, url="off") == {"ok": True, "background": None}
    await music_bot.audio.wait_for_quiet(1.0, timeout=5)
    status = await rpc.call("MUSIC__STATUS", guild_id=gid)
    assert status["background"] is None and status["state"] == "idle", status


async def test_unload_removes_the_methods_and_load_restores_them(
    music_bot: MusicBot, rpc: RpcClient, rpc_port: int
) -> None:
    w = music_bot.world
    unloaded = await music_bot.ask(w.owner, "!unload music", expect=lambda m: "music" in m.content.lower())
    assert unloaded.content == "The following package was unloaded: `music`.", unloaded.content
    # Red's RPC server gives each websocket the method table of its connection time, so the
    # connection opened before the unload still reaches the old handlers: they must refuse
    stale = await rpc.call("MUSIC__STATUS", guild_id=w.guild.id)
    assert stale == {"ok": False, "error": "Music was unloaded or reloaded; reconnect to the RPC server."}
    fresh = await RpcClient(f"ws://127.0.0.1:{rpc_port}/").connect()
    try:
        listed = await fresh.request("GET_METHODS")
        assert not MUSIC_METHODS & set(listed["result"]), listed
        gone = await fresh.request("MUSIC__STATUS", {"guild_id": w.guild.id})
        assert gone["error"]["code"] == -32601, gone  # method not found
    finally:
        await fresh.close()

    loaded = await music_bot.ask(w.owner, "!load music", expect=lambda m: "music" in m.content.lower())
    assert loaded.content == "Loaded `music`.", loaded.content
    fresh = await RpcClient(f"ws://127.0.0.1:{rpc_port}/").connect()
    try:
        status = await fresh.call("MUSIC__STATUS", guild_id=w.guild.id)
        assert status["ok"] and status["state"] == "idle", status
    finally:
        await fresh.close()

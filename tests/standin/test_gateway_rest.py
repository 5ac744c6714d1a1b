"""The stand-in's REST API and main gateway, spoken to directly (no bot): the shapes discord.py
relies on, the test API, and the faults."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from standin import Standin


class FakeVoiceServer:
    """Just the interface the gateway uses (the real one is tested in tests/standin/test_voice*)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.endpoint = f"{host}:9"
        self.ca_file = ""
        self.opened: list[tuple[int, int, str]] = []
        self.channels: list[int | None] = []  # the voice channel of each open_session (DAVE group id)
        self.closed: list[int] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def open_session(self, guild_id: int, user_id: int, session_id: str,
                     channel_id: int | None = None) -> str:
        self.opened.append((guild_id, user_id, session_id))
        self.channels.append(channel_id)
        return f"token-{len(self.opened)}"

    def close_session(self, guild_id: int) -> None:
        self.closed.append(guild_id)


@pytest_asyncio.fixture
async def standin():
    s = Standin(voice_factory=FakeVoiceServer)
    await s.start()
    s.default_world()
    yield s
    await s.stop()


@pytest_asyncio.fixture
async def http(standin: Standin):
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {standin.token}"}) as session:
        yield session


async def api(http: aiohttp.ClientSession, standin: Standin, method: str, path: str,
              **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.request(method, standin.api_url + path, **kw) as resp:
        body = await resp.read()
        data = json.loads(body) if resp.headers.get("Content-Type") == "application/json" else body
        return resp.status, data, resp


class GatewayClient:
    """A minimal gateway client, enough to watch the protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seq = 0

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg  # plain text frames, never binary
        frame = json.loads(msg.data)
        if frame.get("s") is not None:
            self.seq = frame["s"]
        return frame

    async def recv_dispatch(self, event: str, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            frame = await self.recv(timeout)
            if frame["op"] == 0 and frame["t"] == event:
                return frame

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": d}))


async def connect(http: aiohttp.ClientSession, standin: Standin) -> GatewayClient:
    status, data, _ = await api(http, standin, "GET", "/gateway/bot")
    assert status == 200
    ws = await http.ws_connect(data["url"] + "?v=10&encoding=json&compress=zlib-stream")
    return GatewayClient(ws)


async def identify(http: aiohttp.ClientSession, standin: Standin) -> tuple[GatewayClient, dict[str, Any]]:
    gw = await connect(http, standin)
    hello = await gw.recv()
    assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
    await gw.send(2, {"token": standin.token, "intents": 3276799, "shard": [0, 1],
                      "properties": {"os": "linux", "browser": "test", "device": "test"}})
    ready = await gw.recv_dispatch("READY")
    return gw, ready


# -- REST ------------------------------------------------------------------------------------

async def test_login_routes_answer_with_exact_json_content_type(standin: Standin, http) -> None:
    status, me, resp = await api(http, standin, "GET", "/users/@me")
    assert status == 200
    # discord.py parses JSON only when the header is exactly this (no charset)
    assert resp.headers["Content-Type"] == "application/json"
    assert me["id"] == str(standin.bot_user.id) and me["bot"] is True

    status, app, _ = await api(http, standin, "GET", "/oauth2/applications/@me")
    assert status == 200
    assert app["owner"]["id"] == str(standin.owner.id)  # Red makes the app owner its bot owner
    assert app["team"] is None

    status, gw, _ = await api(http, standin, "GET", "/gateway/bot")
    assert gw["url"] == standin.gateway_url and gw["shards"] == 1


async def test_wrong_token_is_401(standin: Standin) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": "Bot nope"}) as bad:
        status, data, _ = await api(bad, standin, "GET", "/users/@me")
    assert status == 401 and data == {"message": "401: Unauthorized", "code": 0}


async def test_unknown_route_is_discords_404_and_is_logged(standin: Standin, http) -> None:
    status, data, resp = await api(http, standin, "GET", "/guilds/1/audit-logs")
    assert status == 404
    assert data == {"message": "404: Not Found", "code": 0}
    assert resp.headers["Content-Type"] == "application/json"
    assert standin.unknown_routes == ["GET /guilds/1/audit-logs"]


async def test_known_route_with_unknown_id_is_a_discord_error_not_an_unknown_route(standin: Standin, http) -> None:
    status, data, _ = await api(http, standin, "GET", "/channels/123")
    assert status == 404 and data == {"message": "Unknown Channel", "code": 10003}
    assert standin.unknown_routes == []


async def test_message_create_edit_react_delete_are_recorded(standin: Standin, http) -> None:
    world = standin.default_world()
    ch = world.general.id
    embed = {"title": "Now playing", "description": "a440"}
    status, msg, _ = await api(http, standin, "POST", f"/channels/{ch}/messages",
                               json={"content": "hello", "embeds": [embed]})
    assert status == 200
    assert msg["author"]["id"] == str(standin.bot_user.id) and msg["content"] == "hello"
    assert msg["guild_id"] == str(world.guild.id)
    [logged] = standin.bot_messages(world.general)
    assert logged.id == int(msg["id"]) and logged.embeds == [embed]
    assert "Now playing" in logged.text

    status, edited, _ = await api(http, standin, "PATCH", f"/channels/{ch}/messages/{msg['id']}",
                                  json={"content": "hello again"})
    assert status == 200 and edited["content"] == "hello again" and edited["edited_timestamp"]
    assert logged.content == "hello again"
    assert logged.edits[0]["content"] == "hello" and logged.embeds == [embed]  # untouched key kept

    status, _, _ = await api(http, standin, "PUT",
                             f"/channels/{ch}/messages/{msg['id']}/reactions/%E2%8F%AF%EF%B8%8F/@me")
    assert status == 204
    assert logged.reactions == {"⏯️": [standin.bot_user.id]}

    status, _, _ = await api(http, standin, "POST", f"/channels/{ch}/typing")
    assert status == 204

    status, _, _ = await api(http, standin, "DELETE", f"/channels/{ch}/messages/{msg['id']}")
    assert status == 204 and logged.deleted
    status, data, _ = await api(http, standin, "GET", f"/channels/{ch}/messages/{msg['id']}")
    assert status == 404 and data["code"] == 10008


async def test_multipart_message_keeps_files(standin: Standin, http) -> None:
    world = standin.default_world()
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", json.dumps({"content": "queue export",
                                               "attachments": [{"id": 0, "filename": "q.txt"}]}))
    form.add_field("files[0]", b"track one\ntrack two\n", filename="q.txt", content_type="text/plain")
    status, msg, _ = await api(http, standin, "POST", f"/channels/{world.general.id}/messages", data=form)
    assert status == 200
    [att] = msg["attachments"]
    assert att["filename"] == "q.txt" and att["size"] == len(b"track one\ntrack two\n")
    async with http.get(att["url"]) as resp:
        assert await resp.read() == b"track one\ntrack two\n"


async def test_empty_message_is_refused_like_discord(standin: Standin, http) -> None:
    world = standin.default_world()
    status, data, _ = await api(http, standin, "POST", f"/channels/{world.general.id}/messages",
                                json={"content": ""})
    assert status == 400 and data["code"] == 50006


async def test_guild_channel_member_lookups(standin: Standin, http) -> None:
    world = standin.default_world()
    status, guild, _ = await api(http, standin, "GET", f"/guilds/{world.guild.id}")
    assert status == 200 and guild["owner_id"] == str(standin.owner.id)
    assert {r["name"] for r in guild["roles"]} >= {"@everyone", "Admin", "DJ"}
    status, channel, _ = await api(http, standin, "GET", f"/channels/{world.music.id}")
    assert channel["type"] == 2 and channel["name"] == "Music"
    status, member, _ = await api(http, standin, "GET", f"/guilds/{world.guild.id}/members/{world.dj.id}")
    assert member["roles"] == [str(world.dj_role.id)]
    status, data, _ = await api(http, standin, "GET", f"/guilds/{world.guild.id}/members/42")
    assert status == 404 and data["code"] == 10007


# -- gateway ---------------------------------------------------------------------------------

async def test_identify_gets_ready_then_full_guilds_that_need_no_chunking(standin: Standin, http) -> None:
    world = standin.default_world()
    await standin.join_voice(world.dj, world.music)
    gw, ready = await identify(http, standin)
    assert ready["s"] == 1
    assert ready["d"]["user"]["id"] == str(standin.bot_user.id)
    assert ready["d"]["guilds"] == [{"id": str(world.guild.id), "unavailable": True}]
    assert ready["d"]["resume_gateway_url"] == standin.gateway_url
    create = await gw.recv_dispatch("GUILD_CREATE")
    guild = create["d"]
    assert guild["member_count"] == len(guild["members"]) == 6  # owner, bot, admin, dj, member, otherbot
    assert {c["name"] for c in guild["channels"]} == {"general", "Music", "Lounge"}
    assert guild["voice_states"] == [
        {**guild["voice_states"][0], "user_id": str(world.dj.id), "channel_id": str(world.music.id)}]

    await gw.send(1, ready["s"])
    ack = await gw.recv()
    assert ack["op"] == 11
    await gw.ws.close()


async def test_identify_with_wrong_token_is_closed_4004(standin: Standin, http) -> None:
    gw = await connect(http, standin)
    await gw.recv()
    await gw.send(2, {"token": "wrong", "intents": 0, "properties": {}})
    msg = await gw.ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and gw.ws.close_code == 4004


async def test_member_actions_are_dispatched(standin: Standin, http) -> None:
    world = standin.default_world()
    gw, _ = await identify(http, standin)
    await gw.recv_dispatch("GUILD_CREATE")

    said = await standin.say(world.member, world.general, "!queue")
    created = (await gw.recv_dispatch("MESSAGE_CREATE"))["d"]
    assert created["id"] == str(said.id) and created["content"] == "!queue"
    assert created["author"]["id"] == str(world.member.id) and created["member"]["roles"] == []

    await standin.join_voice(world.dj, world.music)
    vsu = (await gw.recv_dispatch("VOICE_STATE_UPDATE"))["d"]
    assert vsu["user_id"] == str(world.dj.id) and vsu["channel_id"] == str(world.music.id)
    assert vsu["member"]["user"]["id"] == str(world.dj.id)
    await standin.join_voice(world.dj, world.lounge)
    assert (await gw.recv_dispatch("VOICE_STATE_UPDATE"))["d"]["channel_id"] == str(world.lounge.id)
    await standin.leave_voice(world.dj)
    assert (await gw.recv_dispatch("VOICE_STATE_UPDATE"))["d"]["channel_id"] is None

    bot_msg = standin._create_bot_message(world.general, content="menu", embeds=[], components=[],
                                          files=[], reference_id=None, flags=0)
    await standin.react(world.dj, bot_msg, "➡️")
    reaction = (await gw.recv_dispatch("MESSAGE_REACTION_ADD"))["d"]
    assert reaction["user_id"] == str(world.dj.id) and reaction["emoji"] == {"id": None, "name": "➡️"}
    assert reaction["message_id"] == str(bot_msg.id) and reaction["member"]["user"]["id"] == str(world.dj.id)
    await gw.ws.close()


async def test_op4_voice_join_gives_state_and_server_update(standin: Standin, http) -> None:
    world = standin.default_world()
    gw, ready = await identify(http, standin)
    session_id = ready["d"]["session_id"]
    await gw.send(4, {"guild_id": str(world.guild.id), "channel_id": str(world.music.id),
                      "self_mute": False, "self_deaf": True})
    state = (await gw.recv_dispatch("VOICE_STATE_UPDATE"))["d"]
    assert state["user_id"] == str(standin.bot_user.id) and state["session_id"] == session_id
    assert state["channel_id"] == str(world.music.id) and state["self_deaf"] is True
    server = (await gw.recv_dispatch("VOICE_SERVER_UPDATE"))["d"]
    assert server == {"token": "token-1", "guild_id": str(world.guild.id), "endpoint": "127.0.0.1:9"}
    assert standin.voice.opened == [(world.guild.id, standin.bot_user.id, session_id)]
    assert standin.voice.channels == [world.music.id]  # DAVE's MLS group is the channel
    assert standin.bot_voice_channel(world.guild) is world.music

    # a move keeps the voice server: only the state changes
    await gw.send(4, {"guild_id": str(world.guild.id), "channel_id": str(world.lounge.id)})
    assert (await gw.recv_dispatch("VOICE_STATE_UPDATE"))["d"]["channel_id"] == str(world.lounge.id)
    await gw.send(4, {"guild_id": str(world.guild.id), "channel_id": None})
    assert (await gw.recv_dispatch("VOICE_STATE_UPDATE"))["d"]["channel_id"] is None
    assert len(standin.voice.opened) == 1 and standin.voice.closed == [world.guild.id]
    await gw.ws.close()


async def test_request_guild_members_is_answered_with_a_chunk(standin: Standin, http) -> None:
    world = standin.default_world()
    gw, _ = await identify(http, standin)
    await gw.send(8, {"guild_id": str(world.guild.id), "query": "d", "limit": 0, "nonce": "n1"})
    chunk = (await gw.recv_dispatch("GUILD_MEMBERS_CHUNK"))["d"]
    assert chunk["nonce"] == "n1" and [m["user"]["id"] for m in chunk["members"]] == [str(world.dj.id)]
    await gw.ws.close()


# -- faults ----------------------------------------------------------------------------------

async def test_dropped_gateway_resumes_with_missed_events_replayed(standin: Standin, http) -> None:
    world = standin.default_world()
    gw, ready = await identify(http, standin)
    await gw.recv_dispatch("GUILD_CREATE")
    seq = gw.seq

    assert await standin.drop_gateway() == 1
    msg = await gw.ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and gw.ws.close_code == 4000  # resumable
    said = await standin.say(world.member, world.general, "said while the bot was away")

    gw2 = await connect(http, standin)
    assert (await gw2.recv())["op"] == 10
    await gw2.send(6, {"token": standin.token, "session_id": ready["d"]["session_id"], "seq": seq})
    missed = await gw2.recv()
    assert missed["t"] == "MESSAGE_CREATE" and missed["d"]["id"] == str(said.id) and missed["s"] == seq + 1
    resumed = await gw2.recv()
    assert resumed["t"] == "RESUMED" and resumed["s"] == seq + 2
    assert standin.gateway.resume_count == 1
    await gw2.ws.close()


async def test_resume_of_unknown_session_is_invalid_session(standin: Standin, http) -> None:
    gw = await connect(http, standin)
    await gw.recv()
    await gw.send(6, {"token": standin.token, "session_id": "nope", "seq": 3})
    frame = await gw.recv()
    assert frame == {"op": 9, "d": False}
    await gw.ws.close()


async def test_rest_delay_applies_to_matching_routes_only(standin: Standin, http) -> None:
    world = standin.default_world()
    with standin.delay_rest(0.5, "POST /channels/*/messages"):
        started = time.monotonic()
        status, _, _ = await api(http, standin, "GET", "/users/@me")
        assert status == 200 and time.monotonic() - started < 0.4
        started = time.monotonic()
        status, _, _ = await api(http, standin, "POST", f"/channels/{world.general.id}/messages",
                                 json={"content": "late"})
        assert status == 200 and time.monotonic() - started >= 0.5
    assert standin.rest.faults == []


async def test_rate_limit_answers_429_with_discords_headers_then_recovers(standin: Standin, http) -> None:
    world = standin.default_world()
    path = f"/channels/{world.general.id}/messages"
    fault = standin.rate_limit("POST /channels/*/messages", retry_after=1.5, times=1)
    status, data, resp = await api(http, standin, "POST", path, json={"content": "x"})
    assert status == 429
    assert data == {"message": "You are being rate limited.", "retry_after": 1.5, "global": False}
    assert resp.headers["Retry-After"] == "2"
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    assert float(resp.headers["X-RateLimit-Reset-After"]) == 1.5
    assert resp.headers["X-RateLimit-Scope"] == "user"
    assert resp.headers["Via"]  # without it discord.py takes a 429 for a Cloudflare ban
    status, _, _ = await api(http, standin, "POST", path, json={"content": "x"})
    assert status == 200 and fault.hits == 1
    assert [r.status for r in standin.requests if r.method == "POST"] == [429, 200]


async def test_wait_helpers_see_bot_messages_edits_and_reactions(standin: Standin, http) -> None:
    world = standin.default_world()
    ch = world.general.id

    async def bot_activity() -> None:
        await asyncio.sleep(0.05)
        _, msg, _ = await api(http, standin, "POST", f"/channels/{ch}/messages", json={"content": "Page 1"})
        await api(http, standin, "PUT", f"/channels/{ch}/messages/{msg['id']}/reactions/%E2%9E%A1%EF%B8%8F/@me")
        await asyncio.sleep(0.05)
        await api(http, standin, "PATCH", f"/channels/{ch}/messages/{msg['id']}", json={"content": "Page 2"})

    task = asyncio.create_task(bot_activity())
    message = await standin.wait_for_message(world.general, lambda m: m.content.startswith("Page"), timeout=5)
    await standin.wait_for_reaction(message, "➡️", timeout=5)
    await standin.wait_for_edit(message, lambda m: m.content == "Page 2", timeout=5)
    await task
    with pytest.raises(TimeoutError):
        await standin.wait_for_message(world.general, timeout=0.2)

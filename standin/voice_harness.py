"""A real discord.py `VoiceClient` connected to a `VoiceServer` without a main gateway.

Everything from the voice websocket down is discord.py's own code (connection state machine,
handshake, IP discovery, encryption, `AudioPlayer`, reconnect logic). Only the two main-gateway
hops are played by the harness: when discord.py would send gateway op 4, the harness does what
Discord (and the stand-in's gateway) does: opens or closes the voice session and delivers
VOICE_STATE_UPDATE then VOICE_SERVER_UPDATE to the voice client, asynchronously as a network would.

Useful to test the voice server alone, and for benchmarks that want many voice connections
without bots (one harness per guild, all sharing one client).
"""

from __future__ import annotations

import asyncio
import secrets
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

from standin.voice import VoiceServer, client_ssl_context


class _FakeGuild(SimpleNamespace):
    def get_channel(self, channel_id: int) -> Any:
        return self.channels.get(channel_id)


class _FakeVoiceChannel(SimpleNamespace):
    def _get_voice_client_key(self) -> tuple[int, str]:
        return self.guild.id, "guild_id"


class _GatewayVoiceState(VoiceConnectionState):
    """discord.py's state machine with the gateway op 4 routed to the harness."""

    harness: VoiceHarness

    async def _voice_connect(self, *, self_deaf: bool = False, self_mute: bool = False) -> None:
        self.harness._gateway_op4(self.voice_client.channel.id)

    async def _voice_disconnect(self) -> None:
        # same steps as discord.py's own, minus the real gateway
        self.state = ConnectionFlowState.disconnected
        self.harness._gateway_op4(None)
        self._expecting_disconnect = True
        self._disconnected.clear()


class HarnessVoiceClient(discord.VoiceClient):
    harness: VoiceHarness

    def create_connection_state(self) -> VoiceConnectionState:
        state = _GatewayVoiceState(self)
        state.harness = self.harness
        return state


class VoiceHarness:
    """One guild's voice connection through discord.py to `server`.

    `await harness.connect()` returns the connected `discord.VoiceClient`; `play()` on it sends real
    RTP. `kick()` is Discord removing the bot from the channel. Close with `await harness.close()`."""

    def __init__(
        self, server: VoiceServer, *, guild_id: int = 1001, channel_id: int = 2002,
        user_id: int = 3003, client: discord.Client | None = None,
    ) -> None:
        self.server = server
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.user_id = user_id
        self._own_client = client is None
        self.client: discord.Client | None = client
        self.voice_client: HarnessVoiceClient | None = None
        self.gateway_session_id = secrets.token_hex(16)
        self.op4_log: list[int | None] = []  # channel ids discord.py asked for (None = leave)
        self._tasks: set[asyncio.Task[None]] = set()

    async def _make_client(self) -> discord.Client:
        client = discord.Client(intents=discord.Intents.none())
        await client._async_setup_hook()  # binds the running loop, as login() would
        # limit=0 like discord.py's own session: every voice websocket holds a connection open,
        # so the default 100 would hang the 101st harness sharing a client
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(self.server.ca_file), limit=0)
        # discord.py opens the voice websocket through its HTTP session (filled in static_login)
        client.http._HTTPClient__session = aiohttp.ClientSession(connector=connector)  # type: ignore[attr-defined]
        client._connection.user = discord.ClientUser(
            state=client._connection,
            data={"id": str(self.user_id), "username": "harness", "discriminator": "0",
                  "avatar": None, "bot": True},  # type: ignore[typeddict-item]
        )
        return client

    async def connect(self, *, timeout: float = 10.0, reconnect: bool = True) -> HarnessVoiceClient:
        if self.client is None:
            self.client = await self._make_client()
        guild = _FakeGuild(id=self.guild_id, channels={}, me=SimpleNamespace(voice=None))
        channel = _FakeVoiceChannel(id=self.channel_id, guild=guild, name="harness-voice")
        guild.channels[self.channel_id] = channel
        # a subclass per harness: VoiceClient.__init__ calls create_connection_state, which must
        # already know its harness (several harnesses may share one client)
        client_class = type("HarnessVoiceClient", (HarnessVoiceClient,), {"harness": self})
        self.voice_client = client_class(self.client, channel)  # type: ignore[arg-type]
        await self.voice_client.connect(reconnect=reconnect, timeout=timeout)
        return self.voice_client

    def _gateway_op4(self, channel_id: int | None) -> None:
        """What Discord's gateway does with op 4, delivered on the next loop turns."""
        self.op4_log.append(channel_id)
        task = asyncio.get_running_loop().create_task(self._deliver(channel_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, channel_id: int | None) -> None:
        await asyncio.sleep(0)
        vc = self.voice_client
        assert vc is not None
        state = {
            "guild_id": str(self.guild_id), "user_id": str(self.user_id),
            "session_id": self.gateway_session_id, "deaf": False, "mute": False,
            "self_deaf": False, "self_mute": False, "suppress": False, "request_to_speak_timestamp": None,
        }
        if channel_id is None:
            self.server.close_session(self.guild_id)
            await vc.on_voice_state_update({**state, "channel_id": None})  # type: ignore[typeddict-item]
            return
        # the channel is DAVE's MLS group id (a commit for another group is refused); servers
        # that only stand for a VoiceServer elsewhere (the benchmarks') take no channel
        where = {"channel_id": channel_id} if isinstance(self.server, VoiceServer) else {}
        token = self.server.open_session(self.guild_id, self.user_id, self.gateway_session_id, **where)
        await vc.on_voice_state_update({**state, "channel_id": str(channel_id)})  # type: ignore[typeddict-item]
        await asyncio.sleep(0)
        await vc.on_voice_server_update(
            {"token": token, "guild_id": str(self.guild_id), "endpoint": self.server.endpoint}
        )

    async def kick(self) -> None:
        """Discord removes the bot from voice: the voice websocket closes with 4014 and the gateway
        sends a VOICE_STATE_UPDATE without a channel."""
        self.server.close_session(self.guild_id)
        await asyncio.sleep(0.05)
        vc = self.voice_client
        assert vc is not None
        await vc.on_voice_state_update(
            {"guild_id": str(self.guild_id), "user_id": str(self.user_id), "channel_id": None,
             "session_id": self.gateway_session_id}  # type: ignore[typeddict-item]
        )

    async def close(self) -> None:
        vc = self.voice_client
        if vc is not None and vc.is_connected():
            await vc.disconnect(force=True)
        elif vc is not None:
            vc.stop()
            await vc._connection.disconnect(force=True, wait=False)
        for task in list(self._tasks):
            task.cancel()
        if self._own_client and self.client is not None:
            await self.client.http.close()
        self.voice_client = None

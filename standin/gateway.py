"""The main gateway: one websocket per bot connection, sessions that survive a dropped socket.

discord.py's view of it (discord/gateway.py): it connects to the URL of GET /gateway/bot, waits
for op 10 HELLO, sends a heartbeat at once and then IDENTIFY (op 2) or RESUME (op 6). Frames
are plain JSON text: discord.py asks for zlib/zstd but only decompresses binary frames.

Every dispatch gets a sequence number and is kept in the session's backlog, so a bot that
RESUMEs after a drop receives what it missed (as Discord does), then RESUMED.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .server import Standin

log = logging.getLogger("standin.gateway")

# opcodes (https://discord.com/developers/docs/topics/opcodes-and-status-codes)
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE, RESUME, RECONNECT = 0, 1, 2, 3, 4, 6, 7
REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 8, 9, 10, 11

# Close codes after which Discord forgets the session (a client closing with 1000/1001 too).
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_UNKNOWN_ERROR = 4000  # resumable: what a network blip or a Discord restart looks like

BACKLOG_SIZE = 5000


class GatewaySession:
    """A logged-in bot session (session_id, sequence, backlog). Outlives its websocket."""

    def __init__(self, *, intents: int, shard: list[int] | None) -> None:
        self.session_id = secrets.token_hex(16)
        self.intents = intents
        self.shard = shard or [0, 1]
        self.seq = 0
        self.backlog: collections.deque[dict[str, Any]] = collections.deque(maxlen=BACKLOG_SIZE)
        self.connection: GatewayConnection | None = None
        self.valid = True
        self.presence: dict[str, Any] | None = None

    def dispatch(self, event: str, data: Any) -> None:
        self.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.backlog.append(frame)
        if self.connection is not None:
            self.connection.send(frame)

    def replay_after(self, seq: int) -> list[dict[str, Any]]:
        return [frame for frame in self.backlog if frame["s"] > seq]


class GatewayConnection:
    """One websocket. Frames go out through a queue and one writer task, so dispatching is a
    plain (sync) call from anywhere in the stand-in and order is preserved."""

    def __init__(self, ws: web.WebSocketResponse,
                 on_sent: Callable[[dict[str, Any], float], None] | None = None) -> None:
        self.ws = ws
        self.on_sent = on_sent  # (frame, monotonic time it was written), for latency figures
        self.session: GatewaySession | None = None
        self._out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop())

    def send(self, frame: dict[str, Any]) -> None:
        self._out.put_nowait(frame)

    async def _write_loop(self) -> None:
        while True:
            frame = await self._out.get()
            if frame is None or self.ws.closed:
                return
            try:
                await self.ws.send_str(json.dumps(frame))
            except (ConnectionError, RuntimeError):
                return
            if self.on_sent is not None:
                self.on_sent(frame, time.monotonic())

    async def close(self, code: int) -> None:
        self._out.put_nowait(None)
        await self.ws.close(code=code)

    async def finish(self) -> None:
        self._out.put_nowait(None)
        try:
            await asyncio.wait_for(self._writer, 5)
        except (TimeoutError, asyncio.CancelledError):
            self._writer.cancel()


class Gateway:
    """The websocket endpoint and the sessions. `Standin` supplies the world (READY payload,
    guilds, voice handling) through the callbacks it passes in."""

    def __init__(self, standin: Standin, *, heartbeat_interval_ms: int = 41250) -> None:
        self.standin = standin
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[GatewayConnection] = set()
        # Every frame a client sent (heartbeats included), for tests: {"op", "d", ...}
        self.received: list[dict[str, Any]] = []
        self.identify_count = 0
        self.resume_count = 0
        # message id -> time.monotonic() when its MESSAGE_CREATE was first written to a bot's
        # websocket: where "the bot got the message" starts for latency benchmarks
        self.message_delivered_at: dict[int, float] = {}
        self.on_voice_state: Callable[[GatewaySession, dict[str, Any]], None] | None = None
        # Discord answers op 4 tens of milliseconds later, and discord.py depends on it:
        # VoiceConnectionState._voice_disconnect sends op 4 and only then clears its
        # `_disconnected` event, so an answer processed in between (possible when the send
        # yields to drain) is lost and disconnect() waits its whole 30 s timeout.
        self.voice_state_latency = 0.03
        self._voice_ops: asyncio.Queue[tuple[float, GatewaySession, dict[str, Any]]] = asyncio.Queue()
        self._voice_worker: asyncio.Task[None] | None = None

    # -- dispatch ---------------------------------------------------------------------------

    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.valid]

    def dispatch(self, event: str, data: Any) -> None:
        """Send an event to every valid session (buffered in the backlog while disconnected)."""
        for session in self.live_sessions():
            session.dispatch(event, data)

    # -- faults -----------------------------------------------------------------------------

    async def drop(self, code: int = CLOSE_UNKNOWN_ERROR) -> int:
        """Close every open websocket with `code` (4000 = resumable). Returns how many."""
        conns = list(self.connections)
        for conn in conns:
            await conn.close(code)
        return len(conns)

    def send_reconnect(self) -> None:
        """op 7: Discord asks the client to reconnect and resume."""
        for conn in list(self.connections):
            conn.send({"op": RECONNECT, "d": None})

    def invalidate_sessions(self, resumable: bool = False) -> None:
        """op 9: the session is gone; with resumable=False the client must IDENTIFY again."""
        for conn in list(self.connections):
            if conn.session is not None and not resumable:
                conn.session.valid = False
            conn.send({"op": INVALID_SESSION, "d": resumable})

    def _frame_sent(self, frame: dict[str, Any], at: float) -> None:
        if frame.get("t") == "MESSAGE_CREATE":
            self.message_delivered_at.setdefault(int(frame["d"]["id"]), at)

    # -- websocket handler ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # max_msg_size=0: discord.py sends big IDENTIFYs rarely, but never refuse a frame
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(ws, on_sent=self._frame_sent)
        self.connections.add(conn)
        log.debug("gateway connection from %s", request.remote)
        conn.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        await conn.close(4002)  # decode error: Discord accepts only text here
                    break
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    await conn.close(4002)
                    break
                self.received.append(frame)
                await self._on_frame(conn, frame)
        finally:
            self.connections.discard(conn)
            session = conn.session
            if session is not None and session.connection is conn:
                session.connection = None
                # A client that closes cleanly ends its session, as on Discord.
                if ws.close_code in (1000, 1001) and not getattr(conn, "server_closed", False):
                    session.valid = False
            await conn.finish()
            self.standin._changed()
        return ws

    async def _on_frame(self, conn: GatewayConnection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == HEARTBEAT:
            conn.send({"op": HEARTBEAT_ACK, "d": None})
        elif op == IDENTIFY:
            await self._identify(conn, data or {})
        elif op == RESUME:
            await self._resume(conn, data or {})
        elif op == PRESENCE:
            if conn.session is not None:
                conn.session.presence = data
        elif op == VOICE_STATE:
            if conn.session is None:
                await conn.close(4003)  # not authenticated
                return
            if self._voice_worker is None:
                self._voice_worker = asyncio.create_task(self._answer_voice_ops())
            due = asyncio.get_running_loop().time() + self.voice_state_latency
            self._voice_ops.put_nowait((due, conn.session, data or {}))
        elif op == REQUEST_MEMBERS:
            if conn.session is not None:
                self._request_members(conn.session, data or {})
        else:
            log.warning("gateway: unhandled op %r", op)
        self.standin._changed()

    async def _answer_voice_ops(self) -> None:
        """Answer op 4s in order, each `voice_state_latency` after it arrived."""
        loop = asyncio.get_running_loop()
        while True:
            due, session, data = await self._voice_ops.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if self.on_voice_state is not None and session.valid:
                try:
                    self.on_voice_state(session, data)
                except Exception:
                    log.exception("gateway: op 4 handling failed for %r", data)
            self.standin._changed()

    async def stop(self) -> None:
        await self.drop(1001)
        if self._voice_worker is not None:
            self._voice_worker.cancel()
            try:
                await self._voice_worker
            except asyncio.CancelledError:
                pass
            self._voice_worker = None

    async def _identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        if data.get("token") != self.standin.token:
            await conn.close(CLOSE_AUTHENTICATION_FAILED)
            return
        session = GatewaySession(intents=int(data.get("intents") or 0), shard=data.get("shard"))
        session.connection = conn
        conn.session = session
        self.sessions[session.session_id] = session
        self.identify_count += 1
        guilds = self.standin._bot_guilds()
        session.dispatch("READY", {
            "v": 10,
            "user": self.standin._bot_user_payload(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.standin.gateway_url,
            "shard": session.shard,
            "application": {"id": str(self.standin.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["standin"],
        })
        for guild in guilds:
            session.dispatch("GUILD_CREATE", guild.create_payload())

    async def _resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if data.get("token") != self.standin.token:
            await conn.close(CLOSE_AUTHENTICATION_FAILED)
            return
        if session is None or not session.valid:
            conn.send({"op": INVALID_SESSION, "d": False})
            return
        if session.connection is not None and session.connection is not conn:
            old = session.connection
            old.server_closed = True  # type: ignore[attr-defined]
            asyncio.create_task(old.close(CLOSE_UNKNOWN_ERROR))
        session.connection = conn
        conn.session = session
        self.resume_count += 1
        for frame in session.replay_after(int(data.get("seq") or 0)):
            conn.send(frame)
        session.dispatch("RESUMED", {"_trace": ["standin"]})

    def _request_members(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild_ids = data.get("guild_id")
        if not isinstance(guild_ids, list):
            guild_ids = [guild_ids]
        for gid in guild_ids:
            guild = self.standin.guilds.get(int(gid))
            if guild is None:
                continue
            members = list(guild.members.values())
            if data.get("user_ids"):
                wanted = {int(u) for u in data["user_ids"]}
                members = [m for m in members if m.id in wanted]
            elif data.get("query"):
                members = [m for m in members if m.name.lower().startswith(data["query"].lower())]
            limit = int(data.get("limit") or 0)
            if limit:
                members = members[:limit]
            chunk: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [m.payload() for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
            }
            if data.get("nonce") is not None:
                chunk["nonce"] = data["nonce"]
            session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

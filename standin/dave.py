"""DAVE (Discord's audio end-to-end encryption, protocol version 1) for the stand-in's voice server.

On Discord the voice server is the MLS *external sender* and delivery service of each call's group:
it never holds media keys, it only signs Add/Remove proposals and relays commits and welcomes.
Members (clients) run libdave; discord.py runs it through `davey`. The stand-in plays both parts
the bot talks to:

- the server: an external sender with its own P-256 key (`ExternalSender`), which signs an MLS
  Add proposal for the bot's key package (RFC 9420 PublicMessage, sender type "external");
- the listener already in the call (`DaveListener`): a real `davey.DaveSession` that owns the group,
  commits the Add and so produces the Welcome the bot joins with. Frames the bot sends are then
  decrypted with this session before the "ears" decode them, as a Discord client would.

`davey` has no external-sender side (it parses the package and proposals, it cannot make them), so
the few MLS structures the server signs are encoded here by hand; the members' work (key packages,
commit, welcome, ratchets, frame encryption) is all davey's.

The voice gateway exchange (opcodes as discord.py's gateway.py names them), as implemented in
`standin.voice`:

    server -> SESSION_DESCRIPTION {dave_protocol_version: 1}
    server -> 25 MLS_EXTERNAL_SENDER (binary)     client -> 26 MLS_KEY_PACKAGE (binary)
    server -> 30 MLS_WELCOME (transition id)      client -> 23 DAVE_TRANSITION_READY
    server -> 22 DAVE_EXECUTE_TRANSITION
    client -> 31 MLS_INVALID_COMMIT_WELCOME: the client starts over with a new key package.

Server binary frames are `seq (u16) | opcode (u8) | payload`; client binary frames `opcode | payload`.
"""

from __future__ import annotations

import struct
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

DAVE_PROTOCOL_VERSION = 1
#: the user id the stand-in's listening member has in every call's MLS group
LISTENER_USER_ID = 1_000_000_000_000_001
#: every DAVE-encrypted frame ends with this magic (after the supplemental data size byte)
FRAME_MAGIC = b"\xfa\xfa"
#: the 20 ms Opus silence frame: libdave sends it as it is, unencrypted (so does a Discord client)
OPUS_SILENCE = b"\xf8\xff\xfe"

# voice gateway opcodes (discord.gateway.DiscordVoiceWebSocket)
OP_DAVE_PREPARE_TRANSITION = 21
OP_DAVE_EXECUTE_TRANSITION = 22
OP_DAVE_TRANSITION_READY = 23
OP_DAVE_PREPARE_EPOCH = 24
OP_MLS_EXTERNAL_SENDER = 25
OP_MLS_KEY_PACKAGE = 26
OP_MLS_PROPOSALS = 27
OP_MLS_COMMIT_WELCOME = 28
OP_MLS_ANNOUNCE_COMMIT_TRANSITION = 29
OP_MLS_WELCOME = 30
OP_MLS_INVALID_COMMIT_WELCOME = 31

# RFC 9420 code points
_MLS10 = 1
_WIRE_PUBLIC_MESSAGE = 1
_SENDER_EXTERNAL = 2
_CONTENT_PROPOSAL = 2
_PROPOSAL_ADD = 1
_CREDENTIAL_BASIC = 1


def is_dave_frame(frame: bytes) -> bool:
    """Whether a media payload carries the DAVE trailer (else it is plain Opus)."""
    return len(frame) > 2 and frame[-2:] == FRAME_MAGIC


def mls_varint(n: int) -> bytes:
    """RFC 9420's variable-length integer (the length prefix of every `<V>` vector)."""
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return struct.pack(">H", n | 0x4000)
    if n < 1 << 30:
        return struct.pack(">I", n | 0x8000_0000)
    raise ValueError(f"{n} is too long for an MLS vector")


def mls_vector(data: bytes) -> bytes:
    return mls_varint(len(data)) + data


def group_id(channel_id: int) -> bytes:
    """DAVE's MLS group id: the voice channel id, big-endian."""
    return struct.pack(">Q", channel_id)


class ExternalSender:
    """The voice server's MLS identity: announces itself (opcode 25) and signs proposals."""

    def __init__(self, identity: bytes = b"discord-standin") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.identity = identity

    def package(self) -> bytes:
        """struct ExternalSender { SignaturePublicKey signature_key; Credential credential; }"""
        return (mls_vector(self.public_key) + struct.pack(">H", _CREDENTIAL_BASIC)
                + mls_vector(self.identity))

    def add_proposal(self, group: bytes, epoch: int, key_package: bytes) -> bytes:
        """An MLSMessage(PublicMessage) carrying Add(key_package), signed by this external sender
        (sender index 0: the only entry of the group's external_senders extension)."""
        content = (
            mls_vector(group) + struct.pack(">Q", epoch)
            + bytes([_SENDER_EXTERNAL]) + struct.pack(">I", 0)
            + mls_vector(b"")  # authenticated_data
            + bytes([_CONTENT_PROPOSAL]) + struct.pack(">H", _PROPOSAL_ADD) + key_package
        )
        header = struct.pack(">HH", _MLS10, _WIRE_PUBLIC_MESSAGE)
        # FramedContentTBS for an external sender has no GroupContext
        signature = self._sign(b"FramedContentTBS", header + content)
        return header + content + mls_vector(signature)

    def _sign(self, label: bytes, content: bytes) -> bytes:
        """SignWithLabel: ECDSA P-256/SHA-256 (DER) over SignContent {"MLS 1.0 "+label, content}."""
        sign_content = mls_vector(b"MLS 1.0 " + label) + mls_vector(content)
        return self._key.sign(sign_content, ec.ECDSA(hashes.SHA256()))


class DaveListener:
    """The member already in the call: owns the MLS group, welcomes the bot, decrypts its frames.

    One per voice connection (IDENTIFY); a new key package from the client (a reinit after an
    invalid welcome, or a new epoch 1) starts a new group."""

    def __init__(self, external_sender: ExternalSender, channel_id: int, bot_user_id: int) -> None:
        import davey  # discord.py's own DAVE dependency; imported here so plain tests need not load it

        self._davey: Any = davey
        self.external_sender = external_sender
        self.channel_id = channel_id
        self.bot_user_id = bot_user_id
        self.session: Any = None
        self.pending_transition: int | None = None
        self.executed_transitions: list[int] = []
        self.members: dict[int, Any] = {}  # other members' DaveSessions, by user id
        self._next_transition = 1

    def welcome(self, bot_key_package: bytes) -> tuple[int, bytes]:
        """Add the bot to a fresh group: returns (transition id, MLS Welcome for the bot)."""
        davey = self._davey
        self.session = davey.DaveSession(DAVE_PROTOCOL_VERSION, LISTENER_USER_ID, self.channel_id)
        self.session.set_external_sender(self.external_sender.package())
        proposal = self.external_sender.add_proposal(group_id(self.channel_id), 0, bot_key_package)
        result = self.session.process_proposals(
            davey.ProposalsOperationType.append, mls_vector(proposal), [self.bot_user_id]
        )
        if result is None or result.welcome is None:
            raise ValueError("the listener's DAVE session made no welcome for the bot")
        # the server would announce this commit (opcode 29) to every other member; the committer
        # applies its own commit when it hears it
        self.session.process_commit(result.commit)
        transition = self._next_transition
        self._next_transition += 1
        self.pending_transition = transition
        return transition, result.welcome

    def add_member(self, user_id: int) -> tuple[bytes, bytes, int]:
        """Another member joins the call: an Add proposal for its key package, committed by the
        listener (the gateway takes the first commit it gets: ours, in process) and welcomed.
        Returns (the proposals payload every member gets in opcode 27, the commit the gateway
        announces in opcode 29, the transition id)."""
        davey = self._davey
        if self.session is None:
            raise RuntimeError("no DAVE group yet")
        member = davey.DaveSession(DAVE_PROTOCOL_VERSION, user_id, self.channel_id)
        member.set_external_sender(self.external_sender.package())
        proposal = self.external_sender.add_proposal(
            group_id(self.channel_id), self.session.epoch, member.get_serialized_key_package()
        )
        proposals = mls_vector(proposal)
        result = self.session.process_proposals(davey.ProposalsOperationType.append, proposals)
        if result is None or result.welcome is None:
            raise ValueError(f"the listener's DAVE session made no commit adding {user_id}")
        self.session.process_commit(result.commit)
        member.process_welcome(result.welcome)
        self.members[user_id] = member
        transition = self._next_transition
        self._next_transition += 1
        self.pending_transition = transition
        return proposals, result.commit, transition

    def transition_ready(self, transition_id: int) -> bool:
        """The client is ready for `transition_id`; True when it is the pending one (execute it)."""
        if transition_id != self.pending_transition:
            return False
        self.pending_transition = None
        self.executed_transitions.append(transition_id)
        return True

    @property
    def ready(self) -> bool:
        return self.session is not None and bool(self.session.ready)

    @property
    def privacy_code(self) -> str | None:
        return self.session.voice_privacy_code if self.session is not None else None

    def decrypt(self, frame: bytes) -> bytes:
        """The Opus packet inside a DAVE frame from the bot; raises ValueError if it does not
        decrypt (no group yet, wrong key, tampered)."""
        if self.session is None:
            raise ValueError("no DAVE group yet")
        try:
            return bytes(self.session.decrypt(self.bot_user_id, self._davey.MediaType.audio, frame))
        except Exception as exc:  # davey raises its own error types
            raise ValueError(f"DAVE decryption failed: {exc}") from exc


class DaveServerMixin:
    """The DAVE half of `standin.voice.VoiceServer` (which provides `_send`, `_error` and the
    session objects): external sender, welcome, transitions, and the media layer on UDP."""

    _external_sender: ExternalSender | None

    async def _dave_start(self, ws: Any, session: Any) -> None:
        """After SESSION_DESCRIPTION {dave_protocol_version: 1}: announce the external sender."""
        if self._external_sender is None:
            self._external_sender = ExternalSender()
        session.connection.dave = DaveListener(self._external_sender, session.channel_id, session.user_id)
        session.log("dave_external_sender")
        await self._send_binary(ws, session, OP_MLS_EXTERNAL_SENDER, self._external_sender.package())

    async def _dave_binary(self, ws: Any, session: Any, data: bytes) -> None:
        """A binary (MLS) frame from the client: `opcode | payload`."""
        conn = session.connection if session is not None else None
        if conn is None or conn.dave is None or not data:
            self._error(session, f"unexpected binary voice frame ({len(data)} bytes)")  # type: ignore[attr-defined]
            return
        op = data[0]
        if op == OP_MLS_KEY_PACKAGE:
            # a new key package (first join, or a reinit after an invalid welcome): a new group.
            # About 20 ms of MLS work, once per join: done inline to keep the order of frames.
            try:
                transition, welcome = conn.dave.welcome(bytes(data[1:]))
            except Exception as exc:  # davey rejects a malformed key package
                self._error(session, f"DAVE key package refused: {exc}")  # type: ignore[attr-defined]
                return
            session.log("dave_welcome", transition_id=transition)
            await self._send_binary(ws, session, OP_MLS_WELCOME, struct.pack(">H", transition) + welcome)
        elif op == OP_MLS_COMMIT_WELCOME:
            # the client's commit for proposals we sent: like Discord we announce the first
            # commit we got, which is always the listener's (made in process before sending)
            session.log("dave_commit_not_chosen", size=len(data) - 1)
        else:
            self._error(session, f"unknown binary voice op {op}")  # type: ignore[attr-defined]

    async def dave_add_member(self, guild_id: int, user_id: int) -> int:
        """Someone joins the bot's call: send the bot the Add proposal (opcode 27) and then the
        chosen commit (29), as Discord does; the bot moves to the next epoch after the
        transition. Returns the transition id (wait for the "dave_ready" event that names it)."""
        session = self._sessions.get(guild_id)  # type: ignore[attr-defined]
        conn = session.connection if session is not None else None
        ws = session.websocket if session is not None else None
        if conn is None or conn.dave is None or not conn.dave.ready or ws is None:
            raise RuntimeError(f"guild {guild_id} has no ready DAVE connection")
        proposals, commit, transition = conn.dave.add_member(user_id)
        session.log("dave_add_member", user_id=user_id, transition_id=transition)
        await self._send_binary(ws, session, OP_MLS_PROPOSALS, bytes([0]) + proposals)
        await self._send_binary(ws, session, OP_MLS_ANNOUNCE_COMMIT_TRANSITION,
                                struct.pack(">H", transition) + commit)
        return transition

    async def dave_member_joined(self, guild_id: int, user_id: int, channel_id: int) -> int | None:
        """The main gateway saw `user_id` join `channel_id`: when that is the bot's call and its
        DAVE group is ready, add the member (see `dave_add_member`); otherwise nothing."""
        session = self._sessions.get(guild_id)  # type: ignore[attr-defined]
        conn = session.connection if session is not None else None
        if conn is None or conn.dave is None or not conn.dave.ready or session.websocket is None \
                or session.channel_id != channel_id or user_id in conn.dave.members:
            return None
        return await self.dave_add_member(guild_id, user_id)

    async def _dave_transition_ready(self, ws: Any, session: Any, data: Any) -> None:
        """Opcode 23: the client holds the new group; tell it to execute the transition (22)."""
        conn = session.connection
        transition = data.get("transition_id") if isinstance(data, dict) else None
        session.log("dave_transition_ready", transition_id=transition)
        if conn is None or conn.dave is None or not isinstance(transition, int) \
                or not conn.dave.transition_ready(transition):
            self._error(session, f"ready for unknown DAVE transition {transition!r}")  # type: ignore[attr-defined]
            return
        await self._send(ws, session, OP_DAVE_EXECUTE_TRANSITION, {"transition_id": transition})  # type: ignore[attr-defined]
        session.log("dave_ready", transition_id=transition, privacy_code=conn.dave.privacy_code)

    async def _send_binary(self, ws: Any, session: Any, op: int, payload: bytes) -> None:
        """Server binary frames carry the message sequence number first (discord.py acks it)."""
        session.sequence += 1
        if not ws.closed:
            await ws.send_bytes(struct.pack(">HB", session.sequence & 0xFFFF, op) + payload)

    @staticmethod
    def _dave_media(conn: Any, audio: Any, payload: bytes) -> tuple[bytes, bool] | None:
        """The Opus inside a media payload: (opus, was end-to-end encrypted), or None when a DAVE
        frame does not decrypt (dropped, as a Discord client drops it)."""
        listener = conn.dave
        if listener is None:
            return payload, False
        if not is_dave_frame(payload):
            if payload != OPUS_SILENCE:
                # before the client's group is ready discord.py sends plain Opus (passthrough)
                audio.plain_while_dave += 1
            return payload, False
        audio.dave_wire_frames.append(payload)
        try:
            return listener.decrypt(payload), True
        except ValueError:
            audio.dave_failures += 1
            return None


__all__ = [
    "DAVE_PROTOCOL_VERSION",
    "DaveServerMixin",
    "DaveListener",
    "ExternalSender",
    "FRAME_MAGIC",
    "LISTENER_USER_ID",
    "OPUS_SILENCE",
    "group_id",
    "is_dave_frame",
    "mls_varint",
    "mls_vector",
]

"""The voice side of the Discord stand-in: a TLS voice websocket and a UDP RTP receiver.

A real, unmodified discord.py 2.7.1 voice client connects here exactly as it connects to Discord:

1. the main gateway (another module) calls `VoiceServer.open_session` when the bot sends op 4 and
   puts the returned token and `VoiceServer.endpoint` in VOICE_SERVER_UPDATE;
2. discord.py opens `wss://{endpoint}/?v=8` (TLS is mandatory: the scheme is hard-coded, so the
   client must trust `VoiceServer.ca_file`), we send HELLO, it sends IDENTIFY, we answer READY
   with an SSRC and our UDP port;
3. it does UDP IP discovery against that port, sends SELECT_PROTOCOL, we answer
   SESSION_DESCRIPTION with a secret key and `dave_protocol_version: 1` when the client offered
   DAVE (as Discord does; `VoiceServer(dave=False)` or STANDIN_DAVE=0 keeps it at 0), then act as
   the MLS external sender and the listener already in the call (standin/dave.py): the client's
   key package is added to the listener's group and it gets the Welcome, after which discord.py
   end-to-end encrypts every frame;
4. it sends RTP packets encrypted with aead_xchacha20_poly1305_rtpsize; we decrypt them (and the
   DAVE layer inside) and record every Opus packet with its arrival time in the guild's
   `GuildAudio`.

Faults on demand (`close_websocket`, `set_udp_blackhole`) let tests watch discord.py react.
Everything runs on the asyncio loop that called `start()`; Opus decoding is lazy (see GuildAudio).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import ipaddress
import json
import logging
import os
import secrets
import shutil
import ssl
import struct
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import av
import nacl.bindings
import nacl.exceptions
import numpy as np
from aiohttp import WSMsgType, web

from standin import dave as dave_protocol

log = logging.getLogger("standin.voice")

SAMPLE_RATE = 48000
# What Discord advertises today, in its order; discord.py takes the first mode it supports.
ADVERTISED_MODES = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]
SUPPORTED_MODES = frozenset(ADVERTISED_MODES)
# Discord's value; discord.py heartbeats every min(interval, 5 s).
HEARTBEAT_INTERVAL_MS = 13750.0
RTP_HEADER_SIZE = 12
RTP_PAYLOAD_TYPE_OPUS = 0x78
IP_DISCOVERY_SIZE = 74
IP_DISCOVERY_REQUEST = 0x1
IP_DISCOVERY_RESPONSE = 0x2
OGG_HEADER_MAGICS = (b"OpusHead", b"OpusTags")

# Voice gateway ops (https://discord.com/developers/docs/topics/opcodes-and-status-codes#voice)
OP_IDENTIFY = 0
OP_SELECT_PROTOCOL = 1
OP_READY = 2
OP_HEARTBEAT = 3
OP_SESSION_DESCRIPTION = 4
OP_SPEAKING = 5
OP_HEARTBEAT_ACK = 6
OP_RESUME = 7
OP_HELLO = 8
OP_RESUMED = 9

# Voice close codes Discord uses
CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_SESSION_INVALID = 4006
CLOSE_SERVER_NOT_FOUND = 4011
CLOSE_UNKNOWN_PROTOCOL = 4012
CLOSE_DISCONNECTED = 4014
CLOSE_UNKNOWN_ENCRYPTION_MODE = 4016


# ----------------------------------------------------------------------------------------------
# Wire formats (pure functions, also used by tests to build packets the way discord.py does)


def build_ip_discovery_request(ssrc: int) -> bytes:
    """The 74-byte request discord.py sends (type 0x1, length 70, SSRC, zero address and port)."""
    packet = bytearray(IP_DISCOVERY_SIZE)
    struct.pack_into(">HHI", packet, 0, IP_DISCOVERY_REQUEST, 70, ssrc)
    return bytes(packet)


def build_ip_discovery_response(ssrc: int, address: str, port: int) -> bytes:
    """The 74-byte answer: type 0x2, length 70, SSRC, the client's address as NUL-terminated ASCII
    at offset 8, its port big-endian in the last two bytes (where discord.py reads it)."""
    packet = bytearray(IP_DISCOVERY_SIZE)
    struct.pack_into(">HHI", packet, 0, IP_DISCOVERY_RESPONSE, 70, ssrc)
    raw = address.encode("ascii")[:63]
    packet[8 : 8 + len(raw)] = raw
    struct.pack_into(">H", packet, IP_DISCOVERY_SIZE - 2, port)
    return bytes(packet)


def parse_ip_discovery(packet: bytes) -> tuple[int, int, str, int]:
    """(type, ssrc, address, port) of a 74-byte discovery packet, parsed as discord.py does."""
    if len(packet) != IP_DISCOVERY_SIZE:
        raise ValueError(f"IP discovery packets are {IP_DISCOVERY_SIZE} bytes, got {len(packet)}")
    kind, _length, ssrc = struct.unpack_from(">HHI", packet, 0)
    end = packet.index(0, 8)
    address = packet[8:end].decode("ascii")
    (port,) = struct.unpack_from(">H", packet, IP_DISCOVERY_SIZE - 2)
    return kind, ssrc, address, port


def _rtp_header_length(packet: bytes) -> tuple[int, bool]:
    """Length of the unencrypted part of an rtpsize packet, and whether a header extension follows.

    In the *_rtpsize modes the fixed header, the CSRCs and the 4-byte extension preamble are
    associated data; the extension body is encrypted with the payload."""
    csrc_count = packet[0] & 0x0F
    length = RTP_HEADER_SIZE + 4 * csrc_count
    has_extension = bool(packet[0] & 0x10)
    if has_extension:
        length += 4
    return length, has_extension


def decrypt_rtpsize(mode: str, secret_key: bytes, packet: bytes) -> tuple[bytes, bytes]:
    """Decrypt one RTP packet sent in an *_rtpsize mode; returns (rtp header, opus payload).

    discord.py's `_encrypt_aead_xchacha20_poly1305_rtpsize`: the 12-byte header is the associated
    data, the nonce is a 32-bit big-endian counter appended as the packet's last 4 bytes and
    zero-padded to 24 bytes (12 for AES-GCM). Raises ValueError when authentication fails."""
    packet = bytes(packet)  # the bindings refuse bytearray/memoryview
    header_length, has_extension = _rtp_header_length(packet)
    if len(packet) < header_length + 16 + 4:
        raise ValueError(f"packet of {len(packet)} bytes is too short for {mode}")
    header = packet[:header_length]
    nonce_suffix = packet[-4:]
    ciphertext = packet[header_length:-4]
    try:
        if mode == "aead_xchacha20_poly1305_rtpsize":
            plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                ciphertext, header, nonce_suffix + bytes(20), secret_key
            )
        elif mode == "aead_aes256_gcm_rtpsize":
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            plain = AESGCM(secret_key).decrypt(nonce_suffix + bytes(8), ciphertext, header)
        else:
            raise ValueError(f"unsupported encryption mode {mode!r}")
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise ValueError(f"decryption failed ({mode}): {exc}") from exc
    except Exception as exc:  # cryptography's InvalidTag
        raise ValueError(f"decryption failed ({mode}): {type(exc).__name__}") from exc
    if has_extension:
        # the extension preamble gives the body length in 32-bit words
        (words,) = struct.unpack_from(">H", header, header_length - 2)
        plain = plain[4 * words :]
    return bytes(packet[:RTP_HEADER_SIZE]), plain


def encrypt_rtpsize(mode: str, secret_key: bytes, header: bytes, payload: bytes, counter: int) -> bytes:
    """The inverse of `decrypt_rtpsize` with discord.py's nonce scheme (for tests and load tools)."""
    suffix = struct.pack(">I", counter)
    if mode == "aead_xchacha20_poly1305_rtpsize":
        sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            payload, header, suffix + bytes(20), secret_key
        )
    elif mode == "aead_aes256_gcm_rtpsize":
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        sealed = AESGCM(secret_key).encrypt(suffix + bytes(8), payload, header)
    else:
        raise ValueError(f"unsupported encryption mode {mode!r}")
    return header + sealed + suffix


def build_rtp_header(sequence: int, timestamp: int, ssrc: int) -> bytes:
    """The 12-byte header discord.py writes (version 2, payload type 0x78)."""
    return struct.pack(">BBHII", 0x80, RTP_PAYLOAD_TYPE_OPUS, sequence, timestamp, ssrc)


# ----------------------------------------------------------------------------------------------
# TLS


def make_self_signed_cert(directory: str) -> tuple[str, str]:
    """Write a throwaway self-signed certificate (SAN IP 127.0.0.1, DNS localhost) and its key.

    The certificate is its own CA (basicConstraints CA:TRUE) so a client can trust it through
    `cafile`/SSL_CERT_FILE; key identifiers are included so strict X.509 checking accepts it.
    Returns (cert_path, key_path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "discord-standin-voice")])
    now = dt.datetime.now(dt.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "standin-voice-ca.pem")
    key_path = os.path.join(directory, "standin-voice-key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def client_ssl_context(ca_file: str) -> ssl.SSLContext:
    """A verifying client context that trusts the stand-in's certificate (and nothing else).

    Give it to discord.py as `discord.Client(connector=aiohttp.TCPConnector(ssl=...))`. A bot in
    another process trusts it with the environment variable SSL_CERT_FILE=ca_file instead."""
    return ssl.create_default_context(cafile=ca_file)


# ----------------------------------------------------------------------------------------------
# What the stand-in heard


@dataclass(frozen=True)
class ReceivedPacket:
    arrival: float  # time.monotonic() when the datagram was read
    sequence: int  # RTP sequence number
    timestamp: int  # RTP timestamp (48 kHz units)
    ssrc: int
    opus: bytes  # decrypted payload (transport and, when `dave`, end-to-end)
    dave: bool = False  # it came end-to-end encrypted (a DAVE frame) and was decrypted


@dataclass(frozen=True)
class SpeakingEvent:
    time: float  # time.monotonic()
    speaking: int  # discord.SpeakingState flags; 0 = stopped
    ssrc: int
    delay: int


class GuildAudio:
    """Everything received for one guild, kept across reconnections.

    `pcm()` decodes lazily and incrementally (PyAV's Opus decoder; a fresh decoder whenever the
    SSRC changes, as a new stream starts then). Decoding ~500 packets takes a few ms; for long
    recordings from a coroutine use `await pcm_async()`, which decodes in a thread."""

    def __init__(self, guild_id: int) -> None:
        self.guild_id = guild_id
        self.packets: list[ReceivedPacket] = []
        self.speaking: list[SpeakingEvent] = []
        self.decrypt_failures = 0  # RTP datagrams that failed authentication
        self.blackholed = 0  # datagrams dropped because of set_udp_blackhole
        self._reset_dave_counters()
        # asyncio.Event binds no loop at construction (3.10+): safe to build anywhere
        self._changed = asyncio.Event()
        self._decode_lock = threading.Lock()
        self._reset_decoded()

    def _reset_dave_counters(self) -> None:
        # the last DAVE frames as they were on the wire (after transport decryption): evidence
        self.dave_wire_frames: collections.deque[bytes] = collections.deque(maxlen=64)
        self.dave_failures = 0  # DAVE frames the listener could not decrypt (dropped)
        # plain Opus frames while DAVE was negotiated (sent before the client's group was ready)
        self.plain_while_dave = 0

    def _reset_decoded(self) -> None:
        self._decoded_upto = 0
        self._decoder: Any = None
        self._decoder_ssrc: int | None = None
        self._chunks: list[np.ndarray] = []
        # per packet: decoded mono samples, or None when undecodable
        self._per_packet: list[np.ndarray | None] = []
        self._undecodable = 0
        self._pcm_cache: np.ndarray | None = None

    # recording (loop thread)

    def _record(self, packet: ReceivedPacket) -> None:
        self.packets.append(packet)
        self._notify()

    def _record_speaking(self, event: SpeakingEvent) -> None:
        self.speaking.append(event)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    async def wait_for_packets(self, n: int, timeout: float) -> list[ReceivedPacket]:
        """Wait until at least `n` packets were received; raises TimeoutError saying how many came."""
        deadline = time.monotonic() + timeout
        while len(self.packets) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"guild {self.guild_id}: {len(self.packets)} of {n} packets in {timeout} s"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return self.packets

    async def wait_for_quiet(self, quiet: float, timeout: float, *, sound_expected: bool = True) -> None:
        """Wait until no packet arrived for `quiet` seconds (playback finished); TimeoutError if
        packets keep coming for `timeout` seconds. `sound_expected=False` (after a `stop` that
        may have come before the track's first packet): no packet at all is quiet too."""
        called = time.monotonic()
        deadline = called + timeout
        while True:
            last = self.packets[-1].arrival if self.packets else None
            now = time.monotonic()
            if last is not None and now - last >= quiet:
                return
            if last is None and not sound_expected and now - called >= quiet:
                return
            if now >= deadline:
                if last is None:
                    raise TimeoutError(f"guild {self.guild_id}: no packet arrived in {timeout} s")
                raise TimeoutError(f"guild {self.guild_id}: packets still arriving after {timeout} s")
            await asyncio.sleep(min(quiet / 4, 0.05))

    def clear(self) -> None:
        """Forget everything heard so far (packets, speaking events, counters, decoded audio)."""
        with self._decode_lock:
            self.packets = []
            self.speaking = []
            self.decrypt_failures = 0
            self.blackholed = 0
            self._reset_dave_counters()
            self._reset_decoded()

    # decoding

    def _decode_new(self) -> None:
        with self._decode_lock:
            packets = self.packets
            end = len(packets)
            for packet in packets[self._decoded_upto : end]:
                if self._decoder is None or packet.ssrc != self._decoder_ssrc:
                    self._decoder = _new_opus_decoder()
                    self._decoder_ssrc = packet.ssrc
                samples = _decode_one(self._decoder, packet.opus)
                self._per_packet.append(samples)
                if samples is None:
                    self._undecodable += 1
                else:
                    self._chunks.append(samples)
            if end != self._decoded_upto:
                self._decoded_upto = end
                self._pcm_cache = None

    def pcm(self) -> np.ndarray:
        """Mono float32 PCM at 48 kHz of every decodable packet, in arrival order."""
        self._decode_new()
        if self._pcm_cache is None:
            self._pcm_cache = (
                np.concatenate(self._chunks).astype(np.float32)
                if self._chunks
                else np.zeros(0, dtype=np.float32)
            )
        return self._pcm_cache

    async def pcm_async(self) -> np.ndarray:
        return await asyncio.to_thread(self.pcm)

    def packet_pcm(self) -> list[np.ndarray | None]:
        """Decoded samples per received packet (None where the packet did not decode)."""
        self._decode_new()
        return list(self._per_packet)

    @property
    def undecodable(self) -> int:
        """Packets the Opus decoder rejected (FFmpegOpusAudio's Ogg OpusHead/OpusTags among them)."""
        self._decode_new()
        return self._undecodable

    @property
    def ogg_header_packets(self) -> int:
        """Packets that are really Ogg OpusHead/OpusTags headers sent as if they were audio."""
        return sum(1 for p in self.packets if p.opus[:8] in OGG_HEADER_MAGICS)

    @property
    def duration(self) -> float:
        """Seconds of decoded audio."""
        return len(self.pcm()) / SAMPLE_RATE


def _new_opus_decoder() -> Any:
    ctx = av.CodecContext.create("opus", "r")
    ctx.sample_rate = SAMPLE_RATE
    ctx.layout = "stereo"
    return ctx


def _decode_one(decoder: Any, data: bytes) -> np.ndarray | None:
    """Decode one Opus packet to mono float32; None if the decoder rejects it."""
    try:
        frames = decoder.decode(av.Packet(data))
    except (av.error.FFmpegError, ValueError):
        return None
    chunks = []
    for frame in frames:
        arr = frame.to_ndarray()
        if arr.dtype != np.float32:
            arr = arr.astype(np.float32) / 32768.0
        if frame.format.is_planar:
            chunks.append(arr.mean(axis=0))
        else:
            chunks.append(arr.reshape(-1, len(frame.layout.channels)).mean(axis=1))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Sessions


@dataclass
class VoiceEvent:
    time: float
    kind: str  # ws_open, identify, resume, select_protocol, ip_discovery, heartbeat, ws_closed, error
    detail: dict[str, Any] = field(default_factory=dict)


class _Journal:
    """A guild's voice event log; outlives sessions so tests can read it after the bot left."""

    def __init__(self) -> None:
        self.events: list[VoiceEvent] = []
        self.changed = asyncio.Event()

    def log(self, kind: str, **detail: Any) -> None:
        self.events.append(VoiceEvent(time.monotonic(), kind, detail))
        self.changed.set()


@dataclass
class _Connection:
    """One IDENTIFY: its SSRC, key and mode (a RESUME continues it on a new websocket)."""

    session: _Session
    ssrc: int
    secret_key: bytes = b""
    mode: str | None = None
    client_address: tuple[str, int] | None = None
    max_dave_protocol_version: int | None = None
    dave_protocol_version: int = 0
    dave: dave_protocol.DaveListener | None = None


@dataclass
class _Session:
    guild_id: int
    user_id: int
    session_id: str
    token: str
    audio: GuildAudio
    journal: _Journal
    channel_id: int = 0  # the voice channel: DAVE's MLS group id
    websocket: web.WebSocketResponse | None = None
    connection: _Connection | None = None
    sequence: int = 0  # seq of our server messages (discord.py echoes it as seq_ack)
    last_seq_ack: int | None = None
    blackhole: bool = False

    def log(self, kind: str, **detail: Any) -> None:
        self.journal.log(kind, **detail)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: VoiceServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._on_datagram(data, addr, time.monotonic())


class VoiceServer(dave_protocol.DaveServerMixin):
    """A Discord voice server on `host`: TLS websocket + UDP, one session per guild.

    `dave`: speak DAVE (end-to-end encryption, protocol 1) with clients that offer it, as Discord
    does; None reads STANDIN_DAVE (on unless "0")."""

    def __init__(self, host: str = "127.0.0.1", *, dave: bool | None = None) -> None:
        self.host = host
        self.dave = os.environ.get("STANDIN_DAVE", "1") != "0" if dave is None else dave
        self._external_sender: dave_protocol.ExternalSender | None = None
        self._tmpdir = tempfile.mkdtemp(prefix="standin-voice-")
        # remove the key material even if stop() is never called
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
        self.ca_file, self._key_file = make_self_signed_cert(self._tmpdir)
        self.udp_port = 0
        self._ws_port = 0
        self._runner: web.AppRunner | None = None
        self._udp: _UdpProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[int, _Session] = {}
        self._audio: dict[int, GuildAudio] = {}
        self._journals: dict[int, _Journal] = {}
        self._by_ssrc: dict[int, _Connection] = {}
        self._websockets: set[web.WebSocketResponse] = set()
        # websockets being closed by us from another task, see _close_from_server
        self._server_closing: dict[web.WebSocketResponse, asyncio.Event] = {}
        self._server_close_codes: dict[web.WebSocketResponse, int] = {}
        self.unmatched_datagrams = 0  # datagrams for no known SSRC, or not RTP / discovery
        self.protocol_errors: list[str] = []  # what clients did wrong (for assertions)

    # lifecycle

    @property
    def endpoint(self) -> str:
        if not self._ws_port:
            raise RuntimeError("VoiceServer.start() has not run yet")
        return f"{self.host}:{self._ws_port}"

    def server_ssl_context(self) -> ssl.SSLContext:
        """A server context with this server's certificate (clients trust it through ``ca_file``):
        for the voice websocket, and any other stand-in site that should speak TLS."""
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(self.ca_file, self._key_file)
        return ssl_context

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ssl_context = self.server_ssl_context()
        app = web.Application()
        app.router.add_get("/", self._handle_websocket)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=ssl_context)
        await site.start()
        self._ws_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        transport, protocol = await self._loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.host, 0)
        )
        self._udp = protocol
        self.udp_port = transport.get_extra_info("sockname")[1]
        log.info("voice server on wss://%s, UDP %s:%d", self.endpoint, self.host, self.udp_port)

    async def stop(self) -> None:
        for ws in list(self._websockets):
            await self._close_from_server(ws, 1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
            self._udp = None
        self._cleanup()

    # sessions (called by the main gateway)

    def open_session(
        self, guild_id: int, user_id: int, session_id: str, channel_id: int | None = None
    ) -> str:
        """Expect a voice connection for (guild, user, gateway session); returns its token.

        Called again for the same guild (a move, a reconnect) it keeps the token and the recorded
        audio and takes the new gateway session id. `channel_id` names DAVE's MLS group (the
        guild id stands in when unknown: davey does not check it)."""
        session = self._sessions.get(guild_id)
        if session is not None:
            session.user_id = user_id
            session.session_id = session_id
            session.channel_id = channel_id or session.channel_id
            session.log("session_updated", session_id=session_id)
            return session.token
        session = _Session(
            guild_id=guild_id,
            user_id=user_id,
            session_id=session_id,
            token=secrets.token_hex(8),
            audio=self.audio(guild_id),
            journal=self._journal(guild_id),
            channel_id=channel_id or guild_id,
        )
        self._sessions[guild_id] = session
        session.log("session_opened", session_id=session_id)
        return session.token

    def close_session(self, guild_id: int) -> None:
        """The bot left voice: forget the session and, like Discord, close its websocket with
        4014 (unless the client already closed it). The guild's recorded audio is kept."""
        session = self._sessions.pop(guild_id, None)
        if session is None:
            return
        session.log("session_closed")
        for ssrc in [s for s, c in self._by_ssrc.items() if c.session is session]:
            del self._by_ssrc[ssrc]
        ws = session.websocket
        if ws is not None and not ws.closed and self._loop is not None:
            self._loop.create_task(self._close_from_server(ws, CLOSE_DISCONNECTED))

    def audio(self, guild_id: int) -> GuildAudio:
        audio = self._audio.get(guild_id)
        if audio is None:
            audio = self._audio[guild_id] = GuildAudio(guild_id)
        return audio

    def _journal(self, guild_id: int) -> _Journal:
        journal = self._journals.get(guild_id)
        if journal is None:
            journal = self._journals[guild_id] = _Journal()
        return journal

    def events(self, guild_id: int, kind: str | None = None) -> list[VoiceEvent]:
        """What happened on the guild's voice sessions so far (session_opened, ws_open, identify,
        ip_discovery, select_protocol, speaking, heartbeat, resume, fault_close, ws_closed,
        session_closed, error), optionally only one kind."""
        events = self._journal(guild_id).events
        return [e for e in events if kind is None or e.kind == kind]

    def has_session(self, guild_id: int) -> bool:
        return guild_id in self._sessions

    def is_connected(self, guild_id: int) -> bool:
        """A websocket is open and a protocol was selected (audio can flow)."""
        session = self._sessions.get(guild_id)
        return bool(
            session
            and session.websocket is not None
            and not session.websocket.closed
            and session.connection is not None
            and session.connection.mode is not None
        )

    def connection_info(self, guild_id: int) -> dict[str, Any] | None:
        """ssrc, mode, client UDP address and the DAVE version the client offered."""
        session = self._sessions.get(guild_id)
        if session is None or session.connection is None:
            return None
        conn = session.connection
        return {
            "ssrc": conn.ssrc,
            "mode": conn.mode,
            "client_address": conn.client_address,
            "max_dave_protocol_version": conn.max_dave_protocol_version,
            "dave_protocol_version": conn.dave_protocol_version,
            "dave_ready": conn.dave is not None and conn.dave.ready,
            "dave_privacy_code": conn.dave.privacy_code if conn.dave is not None else None,
            "last_seq_ack": session.last_seq_ack,
        }

    async def wait_for_event(
        self, guild_id: int, kind: str, *, count: int = 1, timeout: float = 10.0
    ) -> VoiceEvent:
        """Wait until the guild's session logged `count` events of `kind`; returns the last one."""
        journal = self._journal(guild_id)
        deadline = time.monotonic() + timeout
        while True:
            matching = [e for e in journal.events if e.kind == kind]
            if len(matching) >= count:
                return matching[-1]
            journal.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [e.kind for e in journal.events if e.kind != "heartbeat"]
                raise TimeoutError(f"guild {guild_id}: no {count}x {kind!r} in {timeout} s; saw {seen}")
            try:
                await asyncio.wait_for(journal.changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_connected(self, guild_id: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_connected(guild_id):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"guild {guild_id}: no voice connection in {timeout} s")
            await asyncio.sleep(0.02)

    # faults

    async def close_websocket(self, guild_id: int, code: int) -> None:
        """Close the guild's voice websocket with `code` (4006 session invalid, 4014 disconnected,
        4015 server crashed, 4017 DAVE required, 1001 going away, ...)."""
        session = self._sessions.get(guild_id)
        if session is None or session.websocket is None or session.websocket.closed:
            raise RuntimeError(f"guild {guild_id} has no open voice websocket")
        session.log("fault_close", code=code)
        await self._close_from_server(session.websocket, code)

    def set_udp_blackhole(self, guild_id: int, on: bool) -> None:
        """While on, the guild's UDP datagrams (discovery and audio) are dropped unanswered; they are
        counted in `audio(guild_id).blackholed`."""
        session = self._sessions.get(guild_id)
        if session is None:
            raise RuntimeError(f"guild {guild_id} has no voice session")
        session.blackhole = on
        session.log("udp_blackhole", on=on)

    # websocket

    async def _handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        # timeout bounds how long close() waits for the client's close frame: discord.py reads
        # with autoclose=False and may only answer after its reconnect back-off.
        ws = web.WebSocketResponse(timeout=2.0, heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        self._websockets.add(ws)
        if request.query.get("v") != "8":
            self.protocol_errors.append(f"voice websocket opened with v={request.query.get('v')!r}")
        # Discord says HELLO as soon as the socket opens, before IDENTIFY.
        await self._send(ws, None, OP_HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, seq=False)
        session: _Session | None = None
        client_close_code: int | None = None
        try:
            while not ws.closed:
                msg = await ws.receive()
                if msg.type == WSMsgType.CLOSE:
                    client_close_code = msg.data  # aiohttp answers the close frame itself
                    break
                if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if msg.type == WSMsgType.BINARY:
                    await self._dave_binary(ws, session, msg.data)
                    continue
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(msg.data)
                    op = payload["op"]
                    data = payload.get("d")
                except (ValueError, KeyError, TypeError):
                    self._error(session, f"undecodable voice frame {msg.data[:200]!r}")
                    await ws.close(code=CLOSE_DECODE_ERROR)
                    break
                session = await self._dispatch(ws, session, op, data)
        finally:
            closing = self._server_closing.get(ws)
            if closing is not None:
                # Another task is closing this socket with a chosen code. Returning now would let
                # aiohttp close it first with 1000 (write_eof), so wait for that close to finish.
                await closing.wait()
            self._websockets.discard(ws)
            if session is not None:
                server_code = self._server_close_codes.pop(ws, None)
                if server_code is not None:
                    session.log("ws_closed", by="server", code=server_code)
                else:
                    session.log("ws_closed", by="client", code=client_close_code)
                if session.websocket is ws:
                    session.websocket = None
        return ws

    async def _dispatch(
        self, ws: web.WebSocketResponse, session: _Session | None, op: int, data: Any
    ) -> _Session | None:
        if op == OP_HEARTBEAT:
            # discord.py v8 sends {"t": ms, "seq_ack": n}; Discord echoes the nonce back.
            nonce = data.get("t") if isinstance(data, dict) else data
            if session is not None and isinstance(data, dict):
                session.last_seq_ack = data.get("seq_ack")
                session.log("heartbeat", seq_ack=data.get("seq_ack"))
            await self._send(ws, None, OP_HEARTBEAT_ACK, {"t": nonce}, seq=False)
            return session
        if op == OP_IDENTIFY:
            if session is not None:
                await self._reject(ws, session, CLOSE_ALREADY_AUTHENTICATED, "IDENTIFY twice")
                return session
            return await self._identify(ws, data)
        if op == OP_RESUME:
            if session is not None:
                await self._reject(ws, session, CLOSE_ALREADY_AUTHENTICATED, "RESUME after IDENTIFY")
                return session
            return await self._resume(ws, data)
        if session is None:
            await self._reject(ws, None, CLOSE_NOT_AUTHENTICATED, f"op {op} before IDENTIFY")
            return None
        if op == OP_SELECT_PROTOCOL:
            await self._select_protocol(ws, session, data)
        elif op == OP_SPEAKING:
            event = SpeakingEvent(
                time.monotonic(), int(data.get("speaking", 0)), int(data.get("ssrc", 0)),
                int(data.get("delay", 0)),
            )
            session.audio._record_speaking(event)
            session.log("speaking", speaking=event.speaking)
        elif op == dave_protocol.OP_DAVE_TRANSITION_READY:
            await self._dave_transition_ready(ws, session, data)
        elif op in (11, 12, 13, 31):
            # client connect / invalid commit-welcome (a new key package follows): recorded
            session.log("op", op=op, data=data)
        else:
            await self._reject(ws, session, CLOSE_UNKNOWN_OPCODE, f"unknown op {op}")
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        try:
            guild_id = int(data["server_id"])
            user_id = int(data["user_id"])
            session_id = data["session_id"]
            token = data["token"]
        except (KeyError, TypeError, ValueError):
            await self._reject(ws, None, CLOSE_DECODE_ERROR, f"malformed IDENTIFY {data!r}")
            return None
        session = self._sessions.get(guild_id)
        if session is None:
            await self._reject(ws, None, CLOSE_SERVER_NOT_FOUND, f"IDENTIFY for unknown guild {guild_id}")
            return None
        if token != session.token or user_id != session.user_id:
            await self._reject(ws, session, CLOSE_AUTHENTICATION_FAILED, "IDENTIFY with wrong token or user")
            return None
        if session_id != session.session_id:
            await self._reject(ws, session, CLOSE_SESSION_INVALID, "IDENTIFY with a stale session id")
            return None
        await self._replace_websocket(session, ws)
        ssrc = self._new_ssrc()
        conn = _Connection(session=session, ssrc=ssrc)
        conn.max_dave_protocol_version = data.get("max_dave_protocol_version")
        self._by_ssrc[ssrc] = conn
        session.connection = conn
        session.sequence = 0
        session.log("identify", ssrc=ssrc, max_dave_protocol_version=conn.max_dave_protocol_version)
        await self._send(
            ws, session, OP_READY,
            {
                "ssrc": ssrc,
                "ip": self.host,
                "port": self.udp_port,
                "modes": ADVERTISED_MODES,
                "heartbeat_interval": HEARTBEAT_INTERVAL_MS,  # legacy field, still sent
            },
        )
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        try:
            guild_id = int(data["server_id"])
            session_id = data["session_id"]
            token = data["token"]
        except (KeyError, TypeError, ValueError):
            await self._reject(ws, None, CLOSE_DECODE_ERROR, f"malformed RESUME {data!r}")
            return None
        session = self._sessions.get(guild_id)
        if session is None or session.connection is None:
            await self._reject(ws, None, CLOSE_SESSION_INVALID, f"RESUME of unknown session {guild_id}")
            return None
        if token != session.token or session_id != session.session_id:
            await self._reject(ws, session, CLOSE_AUTHENTICATION_FAILED, "RESUME with wrong token/session")
            return None
        await self._replace_websocket(session, ws)
        session.last_seq_ack = data.get("seq_ack")
        session.log("resume", seq_ack=data.get("seq_ack"), ssrc=session.connection.ssrc)
        await self._send(ws, session, OP_RESUMED, None)
        return session

    async def _select_protocol(self, ws: web.WebSocketResponse, session: _Session, data: Any) -> None:
        conn = session.connection
        assert conn is not None
        try:
            protocol = data["protocol"]
            mode = data["data"]["mode"]
            address = (data["data"]["address"], int(data["data"]["port"]))
        except (KeyError, TypeError, ValueError):
            await self._reject(ws, session, CLOSE_DECODE_ERROR, f"malformed SELECT_PROTOCOL {data!r}")
            return
        if protocol != "udp":
            await self._reject(ws, session, CLOSE_UNKNOWN_PROTOCOL, f"protocol {protocol!r}")
            return
        if mode not in SUPPORTED_MODES:
            await self._reject(ws, session, CLOSE_UNKNOWN_ENCRYPTION_MODE, f"mode {mode!r}")
            return
        if conn.client_address is not None and conn.client_address != address:
            self._error(session, f"SELECT_PROTOCOL address {address} differs from discovery {conn.client_address}")
        conn.mode = mode
        conn.secret_key = os.urandom(32)
        offered = conn.max_dave_protocol_version if isinstance(conn.max_dave_protocol_version, int) else 0
        conn.dave_protocol_version = dave_protocol.DAVE_PROTOCOL_VERSION if self.dave and offered >= 1 else 0
        session.log("select_protocol", mode=mode, address=address)
        await self._send(
            ws, session, OP_SESSION_DESCRIPTION,
            {
                "mode": mode,
                "secret_key": list(conn.secret_key),
                # 0 keeps discord.py from starting a DAVE (MLS) session.
                "dave_protocol_version": conn.dave_protocol_version,
                "audio_codec": "opus",
                "media_session_id": secrets.token_hex(16),
            },
        )
        if conn.dave_protocol_version:
            await self._dave_start(ws, session)

    async def _replace_websocket(self, session: _Session, ws: web.WebSocketResponse) -> None:
        old = session.websocket
        session.websocket = ws
        session.log("ws_open")
        if old is not None and old is not ws and not old.closed:
            # one live websocket per session, as on Discord
            self._loop.create_task(self._close_from_server(old, CLOSE_SESSION_INVALID))  # type: ignore[union-attr]

    async def _send(
        self, ws: web.WebSocketResponse, session: _Session | None, op: int, data: Any, *, seq: bool = True
    ) -> None:
        payload: dict[str, Any] = {"op": op, "d": data}
        if seq and session is not None:
            session.sequence += 1
            payload["seq"] = session.sequence
        if not ws.closed:
            await ws.send_str(json.dumps(payload))

    async def _reject(
        self, ws: web.WebSocketResponse, session: _Session | None, code: int, reason: str
    ) -> None:
        self._error(session, f"{reason} -> close {code}")
        self._server_close_codes[ws] = code
        await ws.close(code=code, message=reason.encode()[:120])

    def _error(self, session: _Session | None, text: str) -> None:
        log.warning("voice protocol error: %s", text)
        self.protocol_errors.append(text)
        if session is not None:
            session.log("error", text=text)

    def _new_ssrc(self) -> int:
        while True:
            ssrc = secrets.randbelow(2**32 - 2) + 1
            if ssrc not in self._by_ssrc:
                return ssrc

    # UDP

    def _on_datagram(self, data: bytes, addr: tuple[str, int], arrival: float) -> None:
        if len(data) == IP_DISCOVERY_SIZE and data[0] == 0 and data[1] == IP_DISCOVERY_REQUEST:
            (ssrc,) = struct.unpack_from(">I", data, 4)
            conn = self._by_ssrc.get(ssrc)
            if conn is None:
                self.unmatched_datagrams += 1
                return
            if conn.session.blackhole:
                conn.session.audio.blackholed += 1
                return
            conn.client_address = addr
            conn.session.log("ip_discovery", address=addr)
            assert self._udp is not None and self._udp.transport is not None
            self._udp.transport.sendto(build_ip_discovery_response(ssrc, addr[0], addr[1]), addr)
            return
        if len(data) < RTP_HEADER_SIZE or data[0] & 0xC0 != 0x80 or data[1] & 0x7F != RTP_PAYLOAD_TYPE_OPUS:
            self.unmatched_datagrams += 1  # RTCP or garbage: Discord ignores it too
            return
        sequence, timestamp, ssrc = struct.unpack_from(">HII", data, 2)
        conn = self._by_ssrc.get(ssrc)
        if conn is None or conn.mode is None:
            self.unmatched_datagrams += 1
            return
        audio = conn.session.audio
        if conn.session.blackhole:
            audio.blackholed += 1
            return
        try:
            _header, payload = decrypt_rtpsize(conn.mode, conn.secret_key, data)
        except ValueError:
            audio.decrypt_failures += 1
            return
        media = self._dave_media(conn, audio, payload)
        if media is None:
            return
        opus, end_to_end = media
        audio._record(ReceivedPacket(arrival, sequence, timestamp, ssrc, opus, end_to_end))


    async def _close_from_server(self, ws: web.WebSocketResponse, code: int) -> None:
        """Close `ws` with `code` from a task other than its handler."""
        if ws.closed or ws in self._server_closing:
            return
        done = self._server_closing[ws] = asyncio.Event()
        self._server_close_codes[ws] = code
        try:
            await _close_quietly(ws, code)
        finally:
            done.set()
            del self._server_closing[ws]


async def _close_quietly(ws: web.WebSocketResponse, code: int) -> None:
    try:
        await ws.close(code=code)
    except Exception:  # the peer vanished mid-close: nothing left to do
        log.debug("closing a voice websocket failed", exc_info=True)


__all__ = [
    "ADVERTISED_MODES",
    "GuildAudio",
    "ReceivedPacket",
    "SpeakingEvent",
    "VoiceEvent",
    "VoiceServer",
    "build_ip_discovery_request",
    "build_ip_discovery_response",
    "build_rtp_header",
    "client_ssl_context",
    "decrypt_rtpsize",
    "encrypt_rtpsize",
    "make_self_signed_cert",
    "parse_ip_discovery",
]

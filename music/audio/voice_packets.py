"""The shared sender's per-packet step: discord.py's voice packet, built and sent with the GIL held.

``VoiceClient.send_audio_packet(opus, encode=False)`` does, per packet: three ``checked_add``
calls, DAVE's ``encrypt_opus``, an RTP header, a new PyNaCl ``Aead`` box with its argument
checks, libsodium's XChaCha20-Poly1305 through cffi and ``socket.sendall``. The cffi call and
the send each release the GIL. With hundreds of guilds on one sender thread, every release lets
a waiting thread (a reader, the event loop) in, and the sender pays to take the GIL back. That
is 2 x 50 hand-overs per guild per second. Measured at 150 guilds (benchmarks: ``--only
capacity``, which prints the sender's CPU per packet): this step took 59 us of CPU per packet
inside the bot, against 16 us on an idle thread.

:class:`PacketWriter` builds the same bytes: the same state updates, and the same DAVE,
header, cipher and nonce as discord.py 2.7's ``_get_voice_packet``. It keeps the key as bytes
between packets. It calls libsodium's function through a ctypes prototype that keeps the GIL,
and sends with the C library's ``send(..., MSG_DONTWAIT)``, which never blocks on UDP: a full
socket buffer drops the packet, as discord.py's ``OSError`` path does. The sender thread then
gives the GIL up only between its ticks.

These lean on private parts of discord.py (``_connection``, ``_incr_nonce``) and of PyNaCl
(``nacl._sodium``). So :func:`packet_path_problem` checks at load, on a bare voice client with no
connection, that discord.py still builds exactly these bytes. When anything differs, or ctypes
or the C library's ``send`` is missing (Windows), every packet goes through
``send_audio_packet``. That is correct, only costlier. Only transport mode
``aead_xchacha20_poly1305_rtpsize`` (the one discord.py 2.7 offers first) takes this path; a
connection in another mode is handed to discord.py per packet.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import socket
import struct
from types import SimpleNamespace
from typing import Any, Callable, Optional

log = logging.getLogger("red.music.audio.sender")

FAST_MODE = "aead_xchacha20_poly1305_rtpsize"
#: the RTP header discord.py writes: version 2, payload type 0x78, sequence, timestamp, ssrc
RTP_HEADER = struct.Struct(">BBHII")
RTP_HEADER_SIZE = RTP_HEADER.size
NONCE_COUNTER = struct.Struct(">I")
#: XChaCha20's 24-byte nonce: discord.py's 4-byte counter, then zeros
NONCE_PADDING = bytes(20)
SAMPLES_PER_FRAME = 960
SEQUENCE_LIMIT = 65535
COUNTER_LIMIT = 4294967295
#: header + ciphertext (the frame and Poly1305's 16-byte tag) + nonce counter: an Opus frame is
#: at most 1,275 bytes, DAVE adds a few dozen
BUFFER_SIZE = 2048
_TAG_SIZE = 16

# (ciphertext out, its length out, message, message length, additional data, its length,
# nsec (unused), nonce, key) -> 0 on success
EncryptFunction = Callable[[int, int, bytes, int, int, int, Optional[int], bytes, bytes], int]
SendFunction = Callable[[int, int, int, int], int]


def _gil_holding_encrypt() -> EncryptFunction | None:
    """libsodium's XChaCha20-Poly1305 (the copy inside PyNaCl) as a ctypes function that keeps
    the GIL, or None when PyNaCl no longer exposes it."""
    try:
        from nacl import _sodium  # PyNaCl's compiled libsodium (private)

        address = int(_sodium.ffi.cast(
            "uintptr_t", _sodium.ffi.addressof(_sodium.lib, "crypto_aead_xchacha20poly1305_ietf_encrypt")))
    except (ImportError, AttributeError, TypeError):
        return None
    pointer = ctypes.c_void_p
    prototype = ctypes.PYFUNCTYPE(  # PYFUNCTYPE: the call does not release the GIL
        ctypes.c_int, pointer, pointer, ctypes.c_char_p, ctypes.c_ulonglong, pointer,
        ctypes.c_ulonglong, pointer, ctypes.c_char_p, ctypes.c_char_p)
    return prototype(address)  # type: ignore[no-any-return]


def _gil_holding_send() -> SendFunction | None:
    """The C library's ``send`` through ctypes.PyDLL (keeps the GIL), or None (e.g. Windows)."""
    if not hasattr(socket, "MSG_DONTWAIT"):
        return None
    try:
        libc = ctypes.PyDLL(None)  # the process's own symbols, the C library's among them
        send = libc.send
    except (OSError, AttributeError, TypeError):
        return None
    send.restype = ctypes.c_ssize_t
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return send  # type: ignore[no-any-return]


class PacketWriter:
    """Builds and sends one voice client's packets on the sender thread (one writer per voice
    client, used by one thread at a time: it reuses one buffer)."""

    def __init__(self, encrypt: EncryptFunction, send: SendFunction | None) -> None:
        self._encrypt = encrypt
        self._send = send
        self._buffer = ctypes.create_string_buffer(BUFFER_SIZE)
        self._address = ctypes.addressof(self._buffer)
        self._length = ctypes.c_ulonglong()
        self._length_address = ctypes.addressof(self._length)
        self._key_source: object = None
        self._key = b""
        #: packets the socket refused (discord.py logs these at debug level and goes on)
        self.dropped = 0

    def build(self, client: Any, opus: bytes) -> int:
        """Write ``client``'s next packet of ``opus`` into the buffer and advance its sequence
        and nonce as ``send_audio_packet`` does before sending; returns the packet's length."""
        sequence = client.sequence + 1
        if sequence > SEQUENCE_LIMIT:
            sequence = 0
        client.sequence = sequence
        connection = client._connection
        dave = connection.dave_session
        if dave and connection.can_encrypt:
            opus = dave.encrypt_opus(opus)
        if len(opus) + RTP_HEADER_SIZE + _TAG_SIZE + NONCE_COUNTER.size > BUFFER_SIZE:
            raise ValueError(f"a voice frame of {len(opus)} bytes is too large")
        key_source = connection.secret_key
        if key_source is not self._key_source:  # a new session description: a new key
            self._key, self._key_source = bytes(key_source), key_source
        buffer, address = self._buffer, self._address
        RTP_HEADER.pack_into(buffer, 0, 0x80, 0x78, sequence, client.timestamp, connection.ssrc)
        counter = client._incr_nonce
        nonce = NONCE_COUNTER.pack(counter)
        client._incr_nonce = 0 if counter + 1 > COUNTER_LIMIT else counter + 1
        if self._encrypt(address + RTP_HEADER_SIZE, self._length_address, opus, len(opus),
                         address, RTP_HEADER_SIZE, None, nonce + NONCE_PADDING, self._key) != 0:
            raise ValueError("encrypting the voice packet failed")
        end = RTP_HEADER_SIZE + self._length.value
        NONCE_COUNTER.pack_into(buffer, end, counter)
        return end + NONCE_COUNTER.size

    def packet(self, length: int) -> bytes:
        return self._buffer.raw[:length]

    def send(self, client: Any, opus: bytes) -> None:
        """What ``client.send_audio_packet(opus, encode=False)`` does."""
        if getattr(client, "mode", None) != FAST_MODE:  # another transport mode, or not a VoiceClient
            client.send_audio_packet(opus, encode=False)
            return
        length = self.build(client, opus)
        connection = client._connection
        if self._send is None:
            try:
                connection.send_packet(self.packet(length))
            except OSError:
                self.dropped += 1
        else:
            try:
                descriptor = connection.socket.fileno()
            except (AttributeError, OSError):
                descriptor = -1
            if descriptor < 0 or self._send(descriptor, self._address, length, socket.MSG_DONTWAIT) < 0:
                self.dropped += 1  # full buffer, closed socket: dropped, as discord.py drops it
        timestamp = client.timestamp + SAMPLES_PER_FRAME
        client.timestamp = 0 if timestamp > COUNTER_LIMIT else timestamp


def _bare_client(voice_client_cls: type, dave: Any) -> Any:
    """A voice client with no connection, in the state ``_get_voice_packet`` reads."""
    client: Any = object.__new__(voice_client_cls)
    client._connection = SimpleNamespace(
        dave_session=dave, can_encrypt=dave is not None, ssrc=0x01020304, mode=FAST_MODE,
        secret_key=list(range(1, 33)))
    client.sequence, client.timestamp, client._incr_nonce = 65534, 4294967000, 7
    return client


class _TaggingDave:
    """Stands in for a DAVE session: marks the frame, so the check sees where DAVE applies."""

    def encrypt_opus(self, data: bytes) -> bytes:
        return data + b"\xfa\xfa"


def packet_path_problem(voice_client_cls: type | None = None) -> str | None:
    """None when :class:`PacketWriter` builds exactly what ``voice_client_cls`` (default
    ``discord.VoiceClient``) builds, with and without DAVE, over a sequence wrap; else why not."""
    encrypt = _gil_holding_encrypt()
    if encrypt is None:
        return "PyNaCl's libsodium is not reachable"
    if voice_client_cls is None:
        import discord

        voice_client_cls = discord.VoiceClient
    try:
        for dave in (None, _TaggingDave()):
            theirs, ours = _bare_client(voice_client_cls, dave), _bare_client(voice_client_cls, dave)
            writer = PacketWriter(encrypt, None)
            for frame in (b"\xf8\xff\xfe", bytes(range(200))):
                theirs.checked_add("sequence", 1, SEQUENCE_LIMIT)  # as send_audio_packet does
                expected = theirs._get_voice_packet(frame)
                built = writer.packet(writer.build(ours, frame))
                if built != expected:
                    return "discord.py builds voice packets differently"
                if (ours.sequence, ours._incr_nonce) != (theirs.sequence, theirs._incr_nonce):
                    return "discord.py counts sequence or nonce differently"
    except Exception as exc:  # any missing attribute or changed signature
        return f"discord.py's voice packet could not be checked ({type(exc).__name__}: {exc})"
    return None


@functools.cache
def _checked() -> tuple[EncryptFunction | None, SendFunction | None]:
    problem = packet_path_problem()
    if problem is not None:
        log.info("Voice packets go through discord.py's send_audio_packet: %s", problem)
        return None, None
    send = _gil_holding_send()
    if send is None:
        log.info("Voice packets are sent with Python's socket (no C library send here)")
    return _gil_holding_encrypt(), send


def packet_writer() -> PacketWriter | None:
    """A writer for one voice client, or None when packets must go through discord.py."""
    encrypt, send = _checked()
    return None if encrypt is None else PacketWriter(encrypt, send)

"""The sender's own packet step (music.audio.voice_packets) against discord.py's.

The writer must put on the wire exactly what ``VoiceClient.send_audio_packet(opus, encode=False)``
puts there: the stand-in's voice server authenticates every datagram (transport AEAD) and opens
every DAVE frame as a Discord client does, so a wrong byte, key, nonce or counter shows up as a
failure or a gap there. The load-time check must notice when discord.py builds packets another way.
"""

from __future__ import annotations

import socket
from typing import Any

import discord
import pytest

from music.audio.voice_packets import FAST_MODE, PacketWriter, packet_path_problem, packet_writer
from standin.voice import VoiceServer
from standin.voice_harness import VoiceHarness
from tests.support.voice_call import harness_fixture, server_fixture  # noqa: F401


def test_the_installed_discord_py_builds_the_same_packets() -> None:
    assert packet_path_problem() is None
    assert isinstance(packet_writer(), PacketWriter)


class _OtherPayloadType(discord.VoiceClient):
    def _get_voice_packet(self, data: bytes) -> bytes:
        packet = bytearray(super()._get_voice_packet(data))
        packet[1] = 0x79
        return bytes(packet)


class _NoDave(discord.VoiceClient):
    def _get_voice_packet(self, data: bytes) -> bytes:
        encrypt = getattr(self, "_encrypt_" + self.mode)
        header = bytearray(12)
        header[0], header[1] = 0x80, 0x78
        header[2:4] = self.sequence.to_bytes(2, "big")
        header[4:8] = self.timestamp.to_bytes(4, "big")
        header[8:12] = self.ssrc.to_bytes(4, "big")
        return encrypt(header, data)  # type: ignore[no-any-return]


class _NoNonceCounter(discord.VoiceClient):
    def __getattribute__(self, name: str) -> Any:
        if name == "_incr_nonce":
            raise AttributeError(name)
        return super().__getattribute__(name)


@pytest.mark.parametrize(("cls", "says"), [
    (_OtherPayloadType, "builds voice packets differently"),
    (_NoDave, "builds voice packets differently"),
    (_NoNonceCounter, "could not be checked"),
])
def test_the_check_says_when_discord_py_builds_packets_another_way(cls: type, says: str) -> None:
    problem = packet_path_problem(cls)
    assert problem is not None and says in problem


async def test_the_writers_packets_are_heard_like_discord_py_s_and_continue_its_counters(
    server: VoiceServer, harness: VoiceHarness
) -> None:
    vc = await harness.connect(timeout=4.0)
    await server.wait_for_event(harness.guild_id, "dave_ready", timeout=5)
    assert vc.mode == FAST_MODE and vc._connection.can_encrypt
    writer = packet_writer()
    assert writer is not None
    frames = [bytes([0xFC, n]) + bytes(range(n % 200)) for n in range(60)]
    # interleaved: discord.py's own send and the writer share the sequence, timestamp and nonce
    for n, frame in enumerate(frames):
        if n % 3 == 0:
            vc.send_audio_packet(frame, encode=False)
        else:
            writer.send(vc, frame)
    audio = server.audio(harness.guild_id)
    packets = await audio.wait_for_packets(len(frames), timeout=5)
    assert audio.decrypt_failures == 0 and audio.dave_failures == 0 and writer.dropped == 0
    assert [p.opus for p in packets] == frames
    assert all(p.dave for p in packets)  # end-to-end encrypted, and opened by the listener
    sequences = [p.sequence for p in packets]
    assert sequences == [(sequences[0] + n) % 65536 for n in range(len(frames))]
    timestamps = [p.timestamp for p in packets]
    assert all(b - a == 960 for a, b in zip(timestamps, timestamps[1:]))


class _Client:
    """A voice client in another transport mode: the writer hands its packets to discord.py."""

    mode = "xsalsa20_poly1305_lite"

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bool]] = []

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        self.sent.append((data, encode))


def test_another_transport_mode_goes_through_discord_py() -> None:
    writer = packet_writer()
    assert writer is not None
    client = _Client()
    writer.send(client, b"\xf8\xff\xfe")
    assert client.sent == [(b"\xf8\xff\xfe", False)]


def test_a_closed_socket_drops_the_packet_and_still_advances_the_counters() -> None:
    from types import SimpleNamespace

    writer = packet_writer()
    assert writer is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.close()
    client = SimpleNamespace(
        mode=FAST_MODE, sequence=65535, timestamp=4294967295 - 100, _incr_nonce=0,
        _connection=SimpleNamespace(dave_session=None, can_encrypt=False, ssrc=5, socket=sock,
                                    secret_key=[7] * 32, send_packet=sock.send))
    writer.send(client, b"\xf8\xff\xfe")
    assert writer.dropped == 1
    # the counters wrap as discord.py's checked_add wraps them
    assert (client.sequence, client.timestamp, client._incr_nonce) == (0, 0, 1)

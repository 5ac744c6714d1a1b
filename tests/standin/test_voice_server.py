"""The voice server's websocket and UDP protocol, driven by a minimal raw client (aiohttp + a UDP
socket) so every message shape is checked without discord.py's retries in the way."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from standin.voice import (
    ADVERTISED_MODES,
    VoiceServer,
    build_ip_discovery_request,
    build_rtp_header,
    client_ssl_context,
    encrypt_rtpsize,
    parse_ip_discovery,
)

GUILD, USER, SESSION = 111, 222, "gateway-session-1"
XCHACHA = "aead_xchacha20_poly1305_rtpsize"


@pytest.fixture
async def server() -> AsyncIterator[VoiceServer]:
    # the transport layer alone: these raw clients speak no MLS (tests/standin/test_dave.py does)
    voice = VoiceServer(dave=False)
    await voice.start()
    yield voice
    await voice.stop()


@pytest.fixture
async def http(server: VoiceServer) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(server.ca_file))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def receive_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def open_ws(http: aiohttp.ClientSession, server: VoiceServer) -> aiohttp.ClientWebSocketResponse:
    # the URL discord.py builds: wss://{endpoint}/?v=8, certificate verified against ca_file
    ws = await http.ws_connect(f"wss://{server.endpoint}/?v=8", autoclose=False)
    hello = await receive_json(ws)
    assert hello["op"] == 8 and hello["d"]["heartbeat_interval"] > 0
    return ws


async def identify(ws: aiohttp.ClientWebSocketResponse, token: str, **overrides: Any) -> dict[str, Any]:
    d = {"server_id": str(GUILD), "user_id": str(USER), "session_id": SESSION, "token": token,
         "max_dave_protocol_version": 1, **overrides}
    await ws.send_str(json.dumps({"op": 0, "d": d}))
    return await receive_json(ws)


class UdpClient:
    def __init__(self, server: VoiceServer) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(("127.0.0.1", server.udp_port))

    async def discover(self, ssrc: int) -> bytes:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, build_ip_discovery_request(ssrc))
        return await asyncio.wait_for(loop.sock_recv(self.sock, 2048), 2)

    def close(self) -> None:
        self.sock.close()


async def connect_fully(http: aiohttp.ClientSession, server: VoiceServer):
    """IDENTIFY, IP discovery, SELECT_PROTOCOL; returns (ws, udp, ssrc, secret key)."""
    token = server.open_session(GUILD, USER, SESSION)
    ws = await open_ws(http, server)
    ready = await identify(ws, token)
    ssrc = ready["d"]["ssrc"]
    udp = UdpClient(server)
    _, _, address, port = parse_ip_discovery(await udp.discover(ssrc))
    await ws.send_str(json.dumps({"op": 1, "d": {"protocol": "udp", "data": {
        "address": address, "port": port, "mode": XCHACHA}}}))
    description = await receive_json(ws)
    return ws, udp, ssrc, bytes(description["d"]["secret_key"])


async def test_identify_gets_ready_with_ssrc_udp_port_and_modes(server: VoiceServer, http) -> None:
    token = server.open_session(GUILD, USER, SESSION)
    ws = await open_ws(http, server)
    ready = await identify(ws, token)
    assert ready["op"] == 2
    assert ready["d"]["ip"] == "127.0.0.1" and ready["d"]["port"] == server.udp_port
    assert XCHACHA in ready["d"]["modes"] and ready["d"]["modes"] == ADVERTISED_MODES
    assert 0 < ready["d"]["ssrc"] < 2**32
    assert "seq" in ready  # discord.py echoes the last seq as seq_ack in heartbeats

    await ws.send_str(json.dumps({"op": 3, "d": {"t": 1234567, "seq_ack": ready["seq"]}}))
    ack = await receive_json(ws)
    assert ack == {"op": 6, "d": {"t": 1234567}}
    assert server.connection_info(GUILD)["last_seq_ack"] == ready["seq"]
    await ws.close()


async def test_select_protocol_gives_a_key_and_keeps_dave_off(server: VoiceServer, http) -> None:
    ws, udp, ssrc, key = await connect_fully(http, server)
    assert len(key) == 32
    assert server.is_connected(GUILD)
    info = server.connection_info(GUILD)
    assert info["mode"] == XCHACHA and info["max_dave_protocol_version"] == 1
    assert info["client_address"] == udp.sock.getsockname()
    udp.close()
    await ws.close()


async def test_session_description_shape(server: VoiceServer, http) -> None:
    token = server.open_session(GUILD, USER, SESSION)
    ws = await open_ws(http, server)
    ready = await identify(ws, token)
    udp = UdpClient(server)
    await udp.discover(ready["d"]["ssrc"])
    await ws.send_str(json.dumps({"op": 1, "d": {"protocol": "udp", "data": {
        "address": "127.0.0.1", "port": udp.sock.getsockname()[1], "mode": XCHACHA}}}))
    description = await receive_json(ws)
    assert description["op"] == 4
    assert description["d"]["mode"] == XCHACHA
    assert description["d"]["dave_protocol_version"] == 0
    assert all(0 <= b < 256 for b in description["d"]["secret_key"])
    udp.close()
    await ws.close()


async def test_ip_discovery_answers_the_clients_own_address(server: VoiceServer, http) -> None:
    token = server.open_session(GUILD, USER, SESSION)
    ws = await open_ws(http, server)
    ssrc = (await identify(ws, token))["d"]["ssrc"]
    udp = UdpClient(server)
    kind, echoed_ssrc, address, port = parse_ip_discovery(await udp.discover(ssrc))
    assert (kind, echoed_ssrc) == (2, ssrc)
    assert (address, port) == udp.sock.getsockname()
    udp.close()
    await ws.close()


async def test_rtp_packets_are_decrypted_and_recorded_in_order(server: VoiceServer, http) -> None:
    ws, udp, ssrc, key = await connect_fully(http, server)
    loop = asyncio.get_running_loop()
    payloads = [os.urandom(40) for _ in range(5)]
    for n, opus in enumerate(payloads):
        packet = encrypt_rtpsize(XCHACHA, key, build_rtp_header(n, n * 960, ssrc), opus, counter=n)
        await loop.sock_sendall(udp.sock, packet)
    # a packet with a wrong key is counted, not recorded
    await loop.sock_sendall(udp.sock, encrypt_rtpsize(
        XCHACHA, os.urandom(32), build_rtp_header(9, 0, ssrc), b"x", counter=9))
    audio = server.audio(GUILD)
    await audio.wait_for_packets(5, timeout=2)
    await asyncio.sleep(0.05)
    assert [p.opus for p in audio.packets] == payloads
    assert [p.sequence for p in audio.packets] == [0, 1, 2, 3, 4]
    assert [p.timestamp for p in audio.packets] == [0, 960, 1920, 2880, 3840]
    assert all(p.ssrc == ssrc for p in audio.packets)
    arrivals = [p.arrival for p in audio.packets]
    assert arrivals == sorted(arrivals)
    assert audio.decrypt_failures == 1
    udp.close()
    await ws.close()


async def test_blackhole_drops_discovery_and_audio(server: VoiceServer, http) -> None:
    ws, udp, ssrc, key = await connect_fully(http, server)
    server.set_udp_blackhole(GUILD, True)
    with pytest.raises(asyncio.TimeoutError):
        await udp.discover(ssrc)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(udp.sock, encrypt_rtpsize(XCHACHA, key, build_rtp_header(1, 0, ssrc), b"a", counter=0))
    await asyncio.sleep(0.1)
    audio = server.audio(GUILD)
    assert audio.packets == [] and audio.blackholed == 2

    server.set_udp_blackhole(GUILD, False)
    await loop.sock_sendall(udp.sock, encrypt_rtpsize(XCHACHA, key, build_rtp_header(2, 960, ssrc), b"b", counter=1))
    await audio.wait_for_packets(1, timeout=2)
    udp.close()
    await ws.close()


async def test_resume_continues_the_session_with_the_same_ssrc(server: VoiceServer, http) -> None:
    ws, udp, ssrc, key = await connect_fully(http, server)
    token = server.open_session(GUILD, USER, SESSION)  # same guild again: same token
    await server.close_websocket(GUILD, 4015)
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4015
    await ws.close()

    ws2 = await open_ws(http, server)
    await ws2.send_str(json.dumps({"op": 7, "d": {
        "server_id": str(GUILD), "session_id": SESSION, "token": token, "seq_ack": 2}}))
    resumed = await receive_json(ws2)
    assert resumed["op"] == 9
    assert server.connection_info(GUILD)["ssrc"] == ssrc
    # the old key still decrypts: a resume keeps the UDP session
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(udp.sock, encrypt_rtpsize(XCHACHA, key, build_rtp_header(1, 0, ssrc), b"r", counter=0))
    await server.audio(GUILD).wait_for_packets(1, timeout=2)
    assert [e.kind for e in server.events(GUILD, "resume")] == ["resume"]
    udp.close()
    await ws2.close()


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"token": "wrong"}, 4004), ({"session_id": "stale"}, 4006), ({"server_id": "999"}, 4011)],
)
async def test_bad_identify_is_closed_with_discords_code(server: VoiceServer, http, overrides, code) -> None:
    token = server.open_session(GUILD, USER, SESSION)
    ws = await open_ws(http, server)
    d = {"server_id": str(GUILD), "user_id": str(USER), "session_id": SESSION, "token": token, **overrides}
    await ws.send_str(json.dumps({"op": 0, "d": d}))
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == code
    assert server.protocol_errors
    await ws.close()


async def test_legacy_encryption_mode_is_refused(server: VoiceServer, http) -> None:
    token = server.open_session(GUILD, USER, SESSION)
    ws = await open_ws(http, server)
    await identify(ws, token)
    await ws.send_str(json.dumps({"op": 1, "d": {"protocol": "udp", "data": {
        "address": "127.0.0.1", "port": 1, "mode": "xsalsa20_poly1305"}}}))
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4016
    await ws.close()


async def test_close_session_closes_the_websocket_with_4014_and_keeps_the_audio(server: VoiceServer, http) -> None:
    ws, udp, ssrc, key = await connect_fully(http, server)
    audio = server.audio(GUILD)
    server.close_session(GUILD)
    msg = await asyncio.wait_for(ws.receive(), 5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4014
    assert not server.has_session(GUILD)
    assert server.audio(GUILD) is audio
    assert [e.kind for e in server.events(GUILD, "session_closed")] == ["session_closed"]
    udp.close()
    await ws.close()


async def test_the_certificate_is_refused_by_a_client_that_does_not_trust_it(server: VoiceServer) -> None:
    # proves TLS is really verified in the other tests (and that trusting ca_file is required)
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await plain.ws_connect(f"wss://{server.endpoint}/?v=8")


async def test_quiet_needs_sound_unless_told_that_none_may_come():
    """After a `stop` that beat the track's first packet, nothing at all is quiet; otherwise no
    packet in the window is a failure that says so (not "still arriving")."""
    import time

    from standin.voice import GuildAudio, ReceivedPacket

    audio = GuildAudio(GUILD)
    await audio.wait_for_quiet(0.1, timeout=1, sound_expected=False)
    with pytest.raises(TimeoutError, match="no packet arrived in 0.3 s"):
        await audio.wait_for_quiet(0.1, timeout=0.3)
    audio._record(ReceivedPacket(arrival=time.monotonic(), sequence=1, timestamp=0, ssrc=1, opus=b"\xf8\xff\xfe"))
    await audio.wait_for_quiet(0.1, timeout=1)

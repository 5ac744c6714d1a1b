"""discord.py's real VoiceClient (state machine, handshake, UDP, encryption, AudioPlayer) against
the voice server, with the main gateway's two voice events played by `VoiceHarness`: playback is
heard at the right pitch and length, and each fault gets discord.py's documented reaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord

from standin import analysis
from standin.voice import VoiceServer
from standin.voice_harness import VoiceHarness
from tests.support.media import generate_tone
from tests.support.voice_call import (  # noqa: F401  (the server, harness and tone_2s fixtures)
    CONNECT_TIMEOUT,
    harness_fixture,
    play_to_end,
    server_fixture,
    start_playing,
    tone_2s_fixture,
)


async def connect_ready(server: VoiceServer, harness: VoiceHarness) -> discord.VoiceClient:
    """Connect and wait until the DAVE handshake is over, as a fault comes mid-call. (A close that
    lands while discord.py 2.7.1 answers the Welcome kills its websocket task with
    ConnectionResetError from `_recover_from_invalid_commit` instead of reconnecting.)"""
    vc = await harness.connect(timeout=CONNECT_TIMEOUT)
    await server.wait_for_event(harness.guild_id, "dave_ready", timeout=5)
    return vc


async def test_discord_py_plays_a_two_second_tone_that_the_server_hears(
    server: VoiceServer, harness: VoiceHarness, tone_2s: Path
) -> None:
    vc = await connect_ready(server, harness)
    assert vc.is_connected() and server.is_connected(harness.guild_id)
    # DAVE is on, as on Discord: discord.py offered version 1 and joined the listener's group
    assert server.connection_info(harness.guild_id)["max_dave_protocol_version"] >= 1
    await server.wait_for_event(harness.guild_id, "dave_ready", timeout=5)
    assert vc._connection.dave_protocol_version == 1 and vc._connection.can_encrypt
    assert vc.mode == "aead_xchacha20_poly1305_rtpsize"

    await play_to_end(vc, tone_2s)
    audio = server.audio(harness.guild_id)
    await audio.wait_for_quiet(0.2, timeout=5)

    assert abs(analysis.dominant_frequency(audio.pcm()) - 440.0) < 2.0
    [segment] = analysis.segment_by_frequency(audio)
    assert abs(segment.frequency - 440.0) < 3.0
    assert abs(segment.duration - 2.0) < 0.1
    # real time: 100 frames take ~2 s to arrive, ~20 ms apart
    assert 1.8 < segment.end - segment.start < 2.3
    gaps = analysis.inter_arrival_times(audio.packets[segment.first_packet : segment.last_packet + 1])
    assert 0.018 < float(gaps.mean()) < 0.022
    assert analysis.sequence_gaps(audio.packets) == 0
    assert audio.undecodable == 2 == audio.ogg_header_packets  # FFmpegOpusAudio's Ogg headers
    assert audio.decrypt_failures == 0
    # the player says "speaking" before the audio and "not speaking" after it
    speaking = [e.speaking for e in audio.speaking]
    assert speaking[-2:] == [1, 0]
    assert server.protocol_errors == []


async def test_4006_session_invalid_makes_discord_py_reconnect_with_a_new_identify(
    server: VoiceServer, harness: VoiceHarness
) -> None:
    await connect_ready(server, harness)
    first_ssrc = server.connection_info(harness.guild_id)["ssrc"]
    await server.close_websocket(harness.guild_id, 4006)
    # not a resume: discord.py leaves (op 4 without channel), rejoins and identifies again
    identify = await server.wait_for_event(harness.guild_id, "identify", count=2, timeout=10)
    assert identify.detail["ssrc"] != first_ssrc
    await server.wait_for_event(harness.guild_id, "ip_discovery", count=2, timeout=5)
    assert harness.op4_log[:3] == [harness.channel_id, None, harness.channel_id]
    assert server.events(harness.guild_id, "resume") == []
    # Completing the handshake is left unasserted on purpose: discord.py's SocketReader may sit
    # up to 30 s in select() on the closed old UDP socket before it reads the new discovery answer.


async def test_1001_going_away_also_reconnects(server: VoiceServer, harness: VoiceHarness) -> None:
    await connect_ready(server, harness)
    await server.close_websocket(harness.guild_id, 1001)
    await server.wait_for_event(harness.guild_id, "identify", count=2, timeout=10)
    assert server.events(harness.guild_id, "resume") == []


async def test_4014_alone_makes_discord_py_wait_for_a_move_then_disconnect(
    server: VoiceServer, harness: VoiceHarness
) -> None:
    vc = await connect_ready(server, harness)
    await server.close_websocket(harness.guild_id, 4014)
    # 4014 means "maybe moved": discord.py waits `timeout` for a VOICE_SERVER_UPDATE, and all
    # that time it still reports itself connected although nothing can be heard
    await asyncio.sleep(0.5)
    assert vc.is_connected()
    await server.wait_for_event(harness.guild_id, "session_closed", timeout=CONNECT_TIMEOUT + 3)
    assert not vc.is_connected()
    assert harness.op4_log == [harness.channel_id, None]
    assert len(server.events(harness.guild_id, "identify")) == 1


async def test_kick_closes_with_4014_and_discord_py_disconnects_at_once(
    server: VoiceServer, harness: VoiceHarness
) -> None:
    vc = await connect_ready(server, harness)
    await harness.kick()
    closed = await server.wait_for_event(harness.guild_id, "ws_closed", timeout=2)
    assert closed.detail == {"by": "server", "code": 4014}
    for _ in range(40):
        if vc._connection.state is discord.voice_state.ConnectionFlowState.disconnected:
            break
        await asyncio.sleep(0.05)
    assert not vc.is_connected()
    assert len(server.events(harness.guild_id, "identify")) == 1  # no reconnect attempt


async def test_4015_makes_discord_py_try_a_resume_that_ends_in_a_disconnect(
    server: VoiceServer, harness: VoiceHarness
) -> None:
    """discord.py 2.7.1 answers 4015 by re-sending op 4 and waiting for both voice events while it
    still believes it is connected; the VOICE_SERVER_UPDATE only moves it to
    got_voice_server_update, so it times out and disconnects. A cog must rejoin by itself."""
    vc = await connect_ready(server, harness)
    await server.close_websocket(harness.guild_id, 4015)
    await server.wait_for_event(harness.guild_id, "session_closed", timeout=CONNECT_TIMEOUT + 3)
    assert harness.op4_log == [harness.channel_id, harness.channel_id, None]
    assert not vc.is_connected()
    assert len(server.events(harness.guild_id, "identify")) == 1


async def test_4017_dave_required_is_treated_as_a_plain_reconnect(
    server: VoiceServer, harness: VoiceHarness
) -> None:
    await connect_ready(server, harness)
    await server.close_websocket(harness.guild_id, 4017)
    await server.wait_for_event(harness.guild_id, "identify", count=2, timeout=10)


async def test_udp_blackhole_means_nothing_is_heard_until_it_is_lifted(
    server: VoiceServer, harness: VoiceHarness, tmp_path: Path
) -> None:
    vc = await connect_ready(server, harness)
    audio = server.audio(harness.guild_id)
    server.set_udp_blackhole(harness.guild_id, True)
    finished = start_playing(vc, generate_tone(tmp_path / "long.ogg", 660.0, 3.0))
    await asyncio.sleep(1.0)
    assert audio.packets == []
    assert audio.blackholed >= 40  # ~50 packets a second were sent and dropped
    assert vc.is_connected()  # UDP loss alone is invisible to discord.py

    server.set_udp_blackhole(harness.guild_id, False)
    await audio.wait_for_packets(20, timeout=3)
    assert await asyncio.wait_for(finished, 10) is None
    await audio.wait_for_quiet(0.2, timeout=3)
    # only the tail after the blackhole was heard
    [segment] = analysis.segment_by_frequency(audio)
    assert abs(segment.frequency - 660.0) < 3.0
    assert 1.0 < segment.duration < 2.2

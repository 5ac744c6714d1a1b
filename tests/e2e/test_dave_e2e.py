"""The cog as real Discord runs it: DAVE (end-to-end encryption, protocol 1) on the voice connection.

A real Red bot with the music cog plays a track; the stand-in's voice server, acting as Discord's
MLS external sender and as the listener already in the call, welcomes the bot's davey session into
its group. The ears hear the track only after decrypting each frame with the listener's session,
and the frames captured inside the transport encryption are DAVE frames, not plain Opus."""

from __future__ import annotations

import pytest

from standin.analysis import segment_by_frequency
from standin.dave import FRAME_MAGIC, OPUS_SILENCE, is_dave_frame
from tests.e2e.conftest import MusicBot

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


async def test_a_track_is_heard_through_dave_and_the_wire_carries_only_encrypted_frames(
    music_bot: MusicBot, media_server
) -> None:
    standin, w = music_bot.standin, music_bot.world
    music_bot.audio.clear()
    await standin.join_voice(w.member, w.music)
    reply = await music_bot.ask(w.member, f"!play {media_server.url('a440.webm')}")
    assert reply.content.startswith("Playing **a440**"), reply.content

    voice = standin.voice
    ready = await voice.wait_for_event(w.guild.id, "dave_ready", timeout=10)
    info = voice.connection_info(w.guild.id)
    assert info["max_dave_protocol_version"] == 1 and info["dave_protocol_version"] == 1
    assert info["dave_ready"] and info["dave_privacy_code"] == ready.detail["privacy_code"]

    await music_bot.ears.wait_for_tone(440, packets=100, timeout=20)
    audio = music_bot.audio
    await audio.wait_for_quiet(1.0, timeout=10)

    # heard whole, after decryption: the 3-second tone
    [segment] = segment_by_frequency(audio)
    assert abs(segment.frequency - 440) < 5 and 2.6 <= segment.duration <= 3.2, segment
    # every audio frame came end-to-end encrypted and decrypted; only Opus silence frames
    # (which libdave leaves plain by design) and frames sent before the group was ready were not
    encrypted = [p for p in audio.packets if p.dave]
    plain = [p for p in audio.packets if not p.dave and p.opus != OPUS_SILENCE]
    print(f"\nDAVE frames {len(encrypted)}, plain before the group was ready {len(plain)}, "
          f"silence {len(audio.packets) - len(encrypted) - len(plain)}; privacy code {ready.detail['privacy_code']}")
    assert len(encrypted) >= 140 and audio.dave_failures == 0 and audio.decrypt_failures == 0
    assert len(plain) == audio.plain_while_dave <= 5
    # captured on the wire (inside the transport layer): DAVE frames, not the Opus the ears got
    wire = list(audio.dave_wire_frames)
    assert wire and all(is_dave_frame(f) and f.endswith(FRAME_MAGIC) for f in wire)
    for frame, packet in zip(wire, encrypted[-len(wire):]):
        assert len(frame) > len(packet.opus) and frame[: len(packet.opus)] != packet.opus
    assert voice.protocol_errors == []


async def test_a_member_joining_mid_track_changes_the_dave_epoch_and_nothing_is_lost(
    music_bot: MusicBot, media_server
) -> None:
    standin, w = music_bot.standin, music_bot.world
    voice, audio = standin.voice, music_bot.audio
    if standin.voice_channel_of(w.member) is not w.music:
        await standin.join_voice(w.member, w.music)
    audio.clear()
    readies = len(voice.events(w.guild.id, "dave_ready"))
    reply = await music_bot.ask(w.member, f"!play {media_server.url('a440.webm')}")
    assert reply.content.startswith("Playing **a440**"), reply.content
    await music_bot.ears.wait_for_tone(440, packets=40, timeout=20)

    await standin.join_voice(w.dj, w.music)  # Discord sends the bot an Add proposal and a commit
    ready = await voice.wait_for_event(w.guild.id, "dave_ready", count=readies + 1, timeout=10)
    await audio.wait_for_quiet(1.0, timeout=10)

    joined = voice.events(w.guild.id, "dave_add_member")[-1]
    assert joined.detail["user_id"] == w.dj.id and ready.detail["transition_id"] == joined.detail["transition_id"]
    assert voice.connection_info(w.guild.id)["dave_privacy_code"] == ready.detail["privacy_code"]
    # the bot did not start over (no invalid-commit recovery): it moved to the next epoch
    assert [e for e in voice.events(w.guild.id, "op") if e.detail["op"] == 31] == []
    [segment] = segment_by_frequency(audio)
    assert abs(segment.frequency - 440) < 5 and 2.6 <= segment.duration <= 3.2, segment
    assert audio.dave_failures == 0 and audio.plain_while_dave == 0
    assert voice.protocol_errors == []

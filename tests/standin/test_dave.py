"""DAVE end to end: the stand-in's voice server is the MLS external sender and the listener already
in the call; an unmodified discord.py VoiceClient (with davey) joins the listener's group through
the Welcome, end-to-end encrypts every frame, and the listener decrypts them before the ears."""

from __future__ import annotations

import asyncio
from pathlib import Path

import davey
import pytest

from standin import analysis
from standin.dave import (
    FRAME_MAGIC,
    LISTENER_USER_ID,
    OPUS_SILENCE,
    DaveListener,
    ExternalSender,
    is_dave_frame,
    mls_varint,
)
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

BOT_USER_ID = 4242
CHANNEL_ID = 777


def test_mls_varint_matches_rfc_9420_examples() -> None:
    assert mls_varint(37) == bytes.fromhex("25")
    assert mls_varint(15293) == bytes.fromhex("7bbd")
    assert mls_varint(494878333) == bytes.fromhex("9d7f3e7d")
    with pytest.raises(ValueError):
        mls_varint(1 << 30)


def test_the_external_senders_add_proposal_lets_the_listener_welcome_a_davey_member() -> None:
    """No discord.py: davey on both sides, our signed proposal in between."""
    bot = davey.DaveSession(1, BOT_USER_ID, CHANNEL_ID)
    sender = ExternalSender()
    listener = DaveListener(sender, CHANNEL_ID, BOT_USER_ID)
    transition, welcome = listener.welcome(bot.get_serialized_key_package())
    assert transition == 1 and listener.ready
    bot.set_external_sender(sender.package())
    bot.process_welcome(welcome)
    assert bot.ready and bot.epoch == 1
    assert sorted(int(u) for u in bot.get_user_ids()) == sorted([BOT_USER_ID, LISTENER_USER_ID])
    assert bot.voice_privacy_code == listener.privacy_code

    opus = b"\xfc" + bytes(range(99))
    frame = bot.encrypt_opus(opus)
    assert is_dave_frame(frame) and frame.endswith(FRAME_MAGIC) and opus[1:20] not in frame
    assert listener.decrypt(frame) == opus
    with pytest.raises(ValueError):
        listener.decrypt(frame[:5] + bytes([frame[5] ^ 1]) + frame[6:])  # tampered


def test_a_proposal_signed_by_another_key_is_refused() -> None:
    bot = davey.DaveSession(1, BOT_USER_ID, CHANNEL_ID)
    listener = DaveListener(ExternalSender(), CHANNEL_ID, BOT_USER_ID)
    impostor = ExternalSender()
    # the group is told about one external sender, the proposal is signed by another
    impostor.package = ExternalSender().package  # type: ignore[method-assign]
    listener.external_sender = impostor
    with pytest.raises(ValueError, match="(?i)signature|verif"):
        listener.welcome(bot.get_serialized_key_package())


def test_the_benchmark_hook_encrypts_each_frame_as_discord_py_does() -> None:
    from benchmarks.dave import DaveFrameEncryptor, encrypt_frame

    encryptor = DaveFrameEncryptor()
    opus = b"\xfc" + bytes(120)
    frame = encrypt_frame(encryptor, opus)
    assert is_dave_frame(frame) and encryptor.listener.decrypt(frame) == opus
    assert encrypt_frame(None, opus) is opus
    assert encryptor.session.get_encryption_stats().successes == 1


async def test_discord_py_joins_the_dave_group_and_every_frame_is_end_to_end_encrypted(
    server: VoiceServer, harness: VoiceHarness, tone_2s: Path
) -> None:
    vc = await harness.connect(timeout=CONNECT_TIMEOUT)
    ready = await server.wait_for_event(harness.guild_id, "dave_ready", timeout=5)
    kinds = [e.kind for e in server.events(harness.guild_id) if e.kind.startswith("dave")]
    assert kinds == ["dave_external_sender", "dave_welcome", "dave_transition_ready", "dave_ready"]
    state = vc._connection
    assert state.dave_protocol_version == 1 and state.can_encrypt
    assert state.dave_session is not None and state.dave_session.epoch == 1
    # both members derive the same group secret: the code Discord shows users to compare
    info = server.connection_info(harness.guild_id)
    assert info["dave_ready"] and vc.voice_privacy_code == info["dave_privacy_code"] == ready.detail["privacy_code"]
    for _ in range(50):  # the execute (op 22) was sent; discord.py reads it on its next poll
        if not state.dave_pending_transitions:
            break
        await asyncio.sleep(0.02)
    assert state.dave_pending_transitions == {}

    await play_to_end(vc, tone_2s)
    audio = server.audio(harness.guild_id)
    await audio.wait_for_quiet(0.2, timeout=5)

    # heard, after decryption, as a 2-second 440 Hz tone
    [segment] = analysis.segment_by_frequency(audio)
    assert abs(segment.frequency - 440.0) < 3.0 and abs(segment.duration - 2.0) < 0.1
    # every frame came end-to-end encrypted; none failed; nothing plain slipped through
    # (but the Opus silence frames discord.py sends when it stops: libdave leaves those plain)
    assert len(audio.packets) >= 100
    assert [p.opus for p in audio.packets if not p.dave] == [OPUS_SILENCE] * 5
    assert audio.dave_failures == 0 and audio.plain_while_dave == 0 and audio.decrypt_failures == 0
    stats = state.dave_session.get_encryption_stats()
    assert stats.successes == len(audio.packets) - 5 and stats.failures == 0
    # on the wire (inside the transport encryption) a frame is not the Opus the ears decoded
    wire = list(audio.dave_wire_frames)
    assert len(wire) == 64 and all(f.endswith(FRAME_MAGIC) for f in wire)
    tail = [p for p in audio.packets if p.dave][-64:]
    for frame, packet in zip(wire, tail):
        # DAVE encrypts an Opus frame whole and appends tag, nonce, size and magic
        assert len(frame) > len(packet.opus) and frame[: len(packet.opus)] != packet.opus
        assert frame[1 : len(packet.opus)] != packet.opus[1:]
    assert server.protocol_errors == []


async def test_a_bad_welcome_makes_discord_py_start_over_and_the_second_one_works(
    server: VoiceServer, harness: VoiceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """discord.py answers a welcome it cannot process with op 31 and a new key package."""
    real_welcome = DaveListener.welcome
    calls = []

    def corrupt_first(self: DaveListener, key_package: bytes) -> tuple[int, bytes]:
        transition, welcome = real_welcome(self, key_package)
        calls.append(transition)
        return transition, (welcome[:-8] + bytes(8)) if len(calls) == 1 else welcome

    monkeypatch.setattr(DaveListener, "welcome", corrupt_first)
    vc = await harness.connect(timeout=CONNECT_TIMEOUT)
    await server.wait_for_event(harness.guild_id, "dave_ready", timeout=5)
    invalid = [e for e in server.events(harness.guild_id, "op") if e.detail["op"] == 31]
    assert [e.detail["data"] for e in invalid] == [{"transition_id": 1}]
    assert calls == [1, 2] and vc._connection.can_encrypt


async def test_dave_off_keeps_the_frames_plain(tmp_path: Path, tone_2s: Path) -> None:
    server = VoiceServer(dave=False)
    await server.start()
    harness = VoiceHarness(server)
    try:
        vc = await harness.connect(timeout=CONNECT_TIMEOUT)
        assert vc._connection.dave_protocol_version == 0 and vc._connection.dave_session is None
        await play_to_end(vc, tone_2s)
        audio = server.audio(harness.guild_id)
        await audio.wait_for_quiet(0.2, timeout=5)
        assert audio.packets and not any(p.dave for p in audio.packets)
        assert not any(is_dave_frame(p.opus) for p in audio.packets)
        assert server.events(harness.guild_id, "dave_external_sender") == []
    finally:
        await harness.close()
        await server.stop()


async def test_a_member_joining_mid_track_moves_the_bot_to_a_new_epoch_without_losing_a_frame(
    server: VoiceServer, harness: VoiceHarness, tmp_path: Path
) -> None:
    """Someone joins the call while music plays: the bot gets the Add proposal (27), commits
    (28, not chosen), processes the listener's commit (29) and the transition (23, 22); frames
    keep decrypting across the key change."""
    vc = await harness.connect(timeout=CONNECT_TIMEOUT)
    await server.wait_for_event(harness.guild_id, "dave_ready", timeout=5)
    first_code = vc.voice_privacy_code
    finished = start_playing(vc, generate_tone(tmp_path / "a660.ogg", 660.0, 3.0))
    audio = server.audio(harness.guild_id)
    await audio.wait_for_packets(50, timeout=5)

    transition = await server.dave_add_member(harness.guild_id, user_id=5555)
    ready = await server.wait_for_event(harness.guild_id, "dave_ready", count=2, timeout=5)
    assert ready.detail["transition_id"] == transition == 2
    assert server.events(harness.guild_id, "dave_commit_not_chosen")  # the bot committed too
    assert await asyncio.wait_for(finished, 10) is None
    await audio.wait_for_quiet(0.2, timeout=5)

    session = vc._connection.dave_session
    assert session.epoch == 2 and sorted(int(u) for u in session.get_user_ids()) == sorted(
        [harness.user_id, LISTENER_USER_ID, 5555])
    assert vc.voice_privacy_code == ready.detail["privacy_code"] != first_code
    # not a frame lost or undecryptable across the epoch change: one whole 3-second tone
    assert audio.dave_failures == 0 and audio.plain_while_dave == 0
    assert analysis.sequence_gaps(audio.packets) == 0
    [segment] = analysis.segment_by_frequency(audio)
    assert abs(segment.frequency - 660.0) < 3.0 and abs(segment.duration - 3.0) < 0.1
    assert server.protocol_errors == []

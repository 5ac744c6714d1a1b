"""The stand-in's voice wire formats against discord.py's own code: RTP encryption, IP discovery,
Opus decoding of what FFmpegOpusAudio really sends, and the analysis helpers."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import SimpleNamespace

import discord
import imageio_ffmpeg
import numpy as np
import pytest

from standin import analysis
from standin.voice import (
    GuildAudio,
    ReceivedPacket,
    build_ip_discovery_request,
    build_ip_discovery_response,
    build_rtp_header,
    decrypt_rtpsize,
    encrypt_rtpsize,
    parse_ip_discovery,
)
from tests.support.media import generate_tone

XCHACHA = "aead_xchacha20_poly1305_rtpsize"


class _DiscordPySender:
    """Just the attributes discord.VoiceClient's packet code reads, with its methods borrowed,
    so the packets below are byte for byte what a connected VoiceClient sends."""

    _get_voice_packet = discord.VoiceClient._get_voice_packet
    _encrypt_aead_xchacha20_poly1305_rtpsize = discord.VoiceClient._encrypt_aead_xchacha20_poly1305_rtpsize
    checked_add = discord.VoiceClient.checked_add

    def __init__(self, key: bytes, ssrc: int) -> None:
        self.secret_key = list(key)  # discord.py keeps the key as the JSON list of ints
        self.mode = XCHACHA
        self.ssrc = ssrc
        self.sequence = 0
        self.timestamp = 0
        self._incr_nonce = 0
        self._connection = SimpleNamespace(dave_session=None, can_encrypt=False)

    def packet(self, opus: bytes) -> bytes:
        # the same steps as VoiceClient.send_audio_packet around _get_voice_packet
        self.checked_add("sequence", 1, 65535)
        packet = self._get_voice_packet(opus)
        self.checked_add("timestamp", 960, 4294967295)
        return packet


def test_packets_encrypted_by_discord_py_decrypt_to_the_same_opus() -> None:
    key = os.urandom(32)
    sender = _DiscordPySender(key, ssrc=0xDEADBEEF)
    payloads = [os.urandom(n) for n in (3, 60, 160, 400)]
    for n, opus in enumerate(payloads, start=1):
        packet = sender.packet(opus)
        header, plain = decrypt_rtpsize(XCHACHA, key, packet)
        assert plain == opus
        assert header == build_rtp_header(n, (n - 1) * 960, 0xDEADBEEF)
        # the nonce travels as the last 4 bytes: discord.py's counter, big-endian
        assert packet[-4:] == struct.pack(">I", n - 1)


def test_our_encryption_matches_discord_py_byte_for_byte() -> None:
    key = os.urandom(32)
    sender = _DiscordPySender(key, ssrc=42)
    opus = os.urandom(120)
    theirs = sender.packet(opus)
    ours = encrypt_rtpsize(XCHACHA, key, build_rtp_header(1, 0, 42), opus, counter=0)
    assert ours == theirs


@pytest.mark.parametrize("mode", [XCHACHA, "aead_aes256_gcm_rtpsize"])
def test_tampering_with_header_or_payload_fails_authentication(mode: str) -> None:
    key = os.urandom(32)
    packet = bytearray(encrypt_rtpsize(mode, key, build_rtp_header(7, 960, 99), b"opus!", counter=5))
    assert decrypt_rtpsize(mode, key, bytes(packet))[1] == b"opus!"
    for index in (3, 14):  # the sequence number (associated data), then the ciphertext
        tampered = bytearray(packet)
        tampered[index] ^= 0x01
        with pytest.raises(ValueError, match="decryption failed"):
            decrypt_rtpsize(mode, key, bytes(tampered))
    with pytest.raises(ValueError):
        decrypt_rtpsize(mode, os.urandom(32), bytes(packet))


def test_ip_discovery_request_and_answer_have_the_shapes_discord_py_uses() -> None:
    request = build_ip_discovery_request(0x01020304)
    # discord.py's discover_ip builds: >H 1, >H 70, >I ssrc, zeros up to 74 bytes
    expected = bytearray(74)
    struct.pack_into(">H", expected, 0, 1)
    struct.pack_into(">H", expected, 2, 70)
    struct.pack_into(">I", expected, 4, 0x01020304)
    assert request == bytes(expected)

    answer = build_ip_discovery_response(0x01020304, "127.0.0.1", 54321)
    assert len(answer) == 74 and answer[1] == 0x02  # what discord.py's listener checks
    # discord.py's parsing, verbatim: ASCII from byte 8 to the first NUL, port in the last 2 bytes
    ip = answer[8 : answer.index(0, 8)].decode("ascii")
    port = struct.unpack_from(">H", answer, len(answer) - 2)[0]
    assert (ip, port) == ("127.0.0.1", 54321)
    assert parse_ip_discovery(answer) == (2, 0x01020304, "127.0.0.1", 54321)


def _ffmpeg_opus_packets(path: Path) -> list[bytes]:
    """Exactly what discord.py's player would send for `path`: FFmpegOpusAudio.read() until EOF."""
    source = discord.FFmpegOpusAudio(str(path), executable=imageio_ffmpeg.get_ffmpeg_exe())
    packets = []
    try:
        while packet := source.read():
            packets.append(packet)
    finally:
        source.cleanup()
    return packets


def _audio_of(packets: list[bytes], *, start: float = 100.0) -> GuildAudio:
    audio = GuildAudio(guild_id=1)
    for n, opus in enumerate(packets):
        audio._record(ReceivedPacket(start + n * 0.02, n, n * 960, 1234, opus))
    return audio


@pytest.fixture(scope="module")
def tone_packets(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = generate_tone(tmp_path_factory.mktemp("voice") / "a440.ogg", 440.0, 2.0)
    return _ffmpeg_opus_packets(path)


def test_ffmpeg_encoded_tone_decodes_to_its_frequency(tone_packets: list[bytes]) -> None:
    audio = _audio_of(tone_packets)
    pcm = audio.pcm()
    assert abs(analysis.dominant_frequency(pcm) - 440.0) < 2.0
    assert abs(audio.duration - 2.0) < 0.05
    assert analysis.rms(pcm) > 0.2  # a 0.5-amplitude sine: RMS ~0.35
    # FFmpegOpusAudio sends the Ogg OpusHead and OpusTags pages as if they were frames
    assert audio.ogg_header_packets == 2
    assert audio.undecodable == 2


def test_pcm_is_decoded_incrementally_and_clear_forgets(tone_packets: list[bytes]) -> None:
    audio = _audio_of(tone_packets[:50])
    first = audio.pcm()
    for n, opus in enumerate(tone_packets[50:], start=50):
        audio._record(ReceivedPacket(200.0 + n * 0.02, n, n * 960, 1234, opus))
    whole = audio.pcm()
    assert len(whole) > len(first)
    np.testing.assert_array_equal(whole[: len(first)], first)
    assert audio.pcm() is whole  # cached until a packet arrives
    audio.clear()
    assert audio.packets == [] and len(audio.pcm()) == 0 and audio.undecodable == 0


def test_segments_gap_and_packet_classes_of_two_tones_with_silence_between(tmp_path: Path) -> None:
    first = _ffmpeg_opus_packets(generate_tone(tmp_path / "a.ogg", 440.0, 1.0))
    second = _ffmpeg_opus_packets(generate_tone(tmp_path / "b.ogg", 880.0, 1.0))
    silence = [b"\xf8\xff\xfe"] * 10  # discord.py's OPUS_SILENCE frame
    audio = _audio_of(first + silence + second)

    segments = analysis.segment_by_frequency(audio)
    assert [round(s.frequency / 10) * 10 for s in segments] == [440, 880]
    assert all(abs(s.duration - 1.0) < 0.1 for s in segments)

    between = analysis.packets_between_tones(audio, 440.0, 880.0)
    kinds = [p.kind for p in between]
    assert kinds.count("silence") >= 10
    assert kinds.count("undecodable") == 2  # the second track's Ogg headers
    # 0.02 s per packet in _audio_of: the gap spans the packets between plus one interval
    gap = analysis.gap_between_tones(audio, 440.0, 880.0)
    assert gap == pytest.approx((len(between) + 1) * 0.02)

    spans = analysis.silent_spans(audio.pcm())
    assert any(end - start >= 0.18 for start, end in spans)
    with pytest.raises(ValueError):
        analysis.packets_between_tones(audio, 880.0, 440.0)


def test_dominant_frequency_is_precise_on_a_single_frame() -> None:
    t = np.arange(960) / 48000
    for hz in (300.0, 440.0, 555.0, 1000.0):
        assert abs(analysis.dominant_frequency(np.sin(2 * np.pi * hz * t).astype(np.float32)) - hz) < 5
    assert analysis.dominant_frequency(np.zeros(960, dtype=np.float32)) == 0.0
    assert analysis.is_silent(np.zeros(960, dtype=np.float32))


def test_inter_arrival_times_and_sequence_gaps() -> None:
    packets = [ReceivedPacket(t, seq, 0, 1, b"") for t, seq in
               [(0.0, 65534), (0.02, 65535), (0.05, 0), (0.07, 3)]]
    np.testing.assert_allclose(analysis.inter_arrival_times(packets), [0.02, 0.03, 0.02])
    assert analysis.sequence_gaps(packets) == 2  # 1 and 2 missing, across the wrap

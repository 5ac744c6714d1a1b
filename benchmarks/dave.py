"""What DAVE (Discord's end-to-end encryption) adds to each frame the bot sends (issue 18, part 2).

    python -m benchmarks.run --only dave        (inside the benchmark run: also checks that the
    python -m benchmarks.dave [--quick]          run's own voice connection negotiated DAVE)

Since March 2026 every real voice connection runs DAVE, and discord.py 2.7.1 encrypts each frame
with davey inside ``send_audio_packet``. The stand-in's voice server speaks DAVE by default
(standin/dave.py), so every benchmark row that sends through discord.py's ``VoiceClient`` already
pays for it. This module measures the cost on its own, on a real ready session: a bot member and a
listener member, the listener's group built by an in-process MLS commit/welcome with davey (the
stand-in's external sender signs the Add proposal). For each typical 20 ms Opus frame size:

- davey's ``encrypt_opus`` alone (median, p99; Python call overhead included);
- discord.py's whole packet step (``VoiceClient._get_voice_packet``: DAVE, RTP header, transport
  AEAD) with DAVE and without, so the difference is what DAVE adds in the real send path;
- the listener's ``decrypt`` (what the stand-in spends per frame, outside the bot).

``DaveFrameEncryptor`` is the hook for send paths that build packets themselves (not through
``VoiceClient``): ``encrypt(opus)`` is exactly what discord.py does to each frame.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import davey
import discord

from standin.dave import OPUS_SILENCE, DaveListener, ExternalSender

from .common import fmt, print_table

#: typical 20 ms Opus frames: ~24 kb/s speech to ~80 kb/s music (60-200 bytes)
FRAME_SIZES = (60, 100, 150, 200)
FRAMES_PER_SECOND = 50
BOT_USER_ID = 3003
CHANNEL_ID = 1002
XCHACHA = "aead_xchacha20_poly1305_rtpsize"


def ready_session_pair(bot_user_id: int = BOT_USER_ID,
                       channel_id: int = CHANNEL_ID) -> tuple[Any, DaveListener]:
    """A bot DaveSession and a listener, both in one ready MLS group (epoch 1), made the way the
    stand-in makes them for a joining bot: external sender, Add proposal, commit, welcome."""
    bot = davey.DaveSession(davey.DAVE_PROTOCOL_VERSION, bot_user_id, channel_id)
    sender = ExternalSender()
    listener = DaveListener(sender, channel_id, bot_user_id)
    _transition, welcome = listener.welcome(bot.get_serialized_key_package())
    bot.set_external_sender(sender.package())
    bot.process_welcome(welcome)
    if not (bot.ready and listener.ready):
        raise RuntimeError("the DAVE session pair did not become ready")
    return bot, listener


class DaveFrameEncryptor:
    """Encrypts frames as discord.py does on a DAVE connection (the send-path hook).

    `encrypt(opus)` returns the DAVE frame (the Opus silence frame stays plain, as in libdave);
    `listener.decrypt(frame)` gives the Opus back."""

    def __init__(self, bot_user_id: int = BOT_USER_ID, channel_id: int = CHANNEL_ID) -> None:
        self.session, self.listener = ready_session_pair(bot_user_id, channel_id)
        self.encrypt: Callable[[bytes], bytes] = self.session.encrypt_opus


def encrypt_frame(encryptor: DaveFrameEncryptor | None, opus: bytes) -> bytes:
    """What a send path calls per frame: the DAVE frame, or `opus` itself when DAVE is off."""
    return opus if encryptor is None else encryptor.encrypt(opus)


class _PacketStep:
    """discord.VoiceClient's per-packet code with its own methods (see tests/standin/test_voice_wire)."""

    _get_voice_packet = discord.VoiceClient._get_voice_packet
    _encrypt_aead_xchacha20_poly1305_rtpsize = discord.VoiceClient._encrypt_aead_xchacha20_poly1305_rtpsize
    checked_add = discord.VoiceClient.checked_add

    def __init__(self, dave_session: Any) -> None:
        self.secret_key = list(os.urandom(32))
        self.mode = XCHACHA
        self.ssrc, self.sequence, self.timestamp, self._incr_nonce = 1234, 0, 0, 0
        self._connection = SimpleNamespace(dave_session=dave_session, can_encrypt=dave_session is not None)

    def packet(self, opus: bytes) -> bytes:
        # VoiceClient's methods on a stand-in for it: mypy cannot know the duck fits
        self.checked_add("sequence", 1, 65535)  # type: ignore[misc]
        packet: bytes = self._get_voice_packet(opus)  # type: ignore[misc]
        self.checked_add("timestamp", 960, 4294967295)  # type: ignore[misc]
        return packet


def _timed(call: Callable[[bytes], Any], frames: Sequence[bytes]) -> list[float]:
    """Microseconds per call, one timing per frame."""
    clock = time.perf_counter_ns
    out = []
    for frame in frames:
        start = clock()
        call(frame)
        out.append((clock() - start) / 1000)
    return out


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def measure(frames_per_size: int) -> list[dict[str, Any]]:
    """Per frame size: encrypt, packet step with/without DAVE, decrypt (microseconds)."""
    encryptor = DaveFrameEncryptor()
    with_dave, without = _PacketStep(encryptor.session), _PacketStep(None)
    rows = []
    for size in FRAME_SIZES:
        # real Opus starts with a TOC byte; the rest is incompressible payload
        frames = [b"\xfc" + os.urandom(size - 1) for _ in range(frames_per_size)]
        for warm in frames[:200]:
            encryptor.listener.decrypt(encryptor.encrypt(warm))
        encrypt = _timed(encryptor.encrypt, frames)
        sealed = [encryptor.encrypt(f) for f in frames]
        decrypt = _timed(encryptor.listener.decrypt, sealed)
        # interleave the two packet paths so drift in the machine's load hits both alike
        packet_dave: list[float] = []
        packet_plain: list[float] = []
        for start in range(0, len(frames), 500):
            chunk = frames[start:start + 500]
            packet_dave += _timed(with_dave.packet, chunk)
            packet_plain += _timed(without.packet, chunk)
        rows.append({
            "size": size, "overhead": len(sealed[0]) - size,
            "encrypt": encrypt, "decrypt": decrypt,
            "packet_dave": packet_dave, "packet_plain": packet_plain,
        })
    assert encryptor.encrypt(OPUS_SILENCE) == OPUS_SILENCE  # libdave leaves silence plain
    stats = encryptor.session.get_encryption_stats()
    if stats.failures:
        raise RuntimeError(f"davey reported {stats.failures} encryption failures")
    return rows


def table(rows: list[dict[str, Any]], frames_per_size: int, live: str | None = None) -> str:
    med = statistics.median
    body = []
    for r in rows:
        added = med(r["packet_dave"]) - med(r["packet_plain"])
        body.append([
            f"{r['size']} B (+{r['overhead']} B)",
            f"{fmt(med(r['encrypt']), 2)} / {fmt(_p99(r['encrypt']), 2)}",
            f"{fmt(med(r['packet_plain']), 2)} / {fmt(_p99(r['packet_plain']), 2)}",
            f"{fmt(med(r['packet_dave']), 2)} / {fmt(_p99(r['packet_dave']), 2)}",
            f"{fmt(added * FRAMES_PER_SECOND / 1000, 3)} ms",
            f"{fmt(med(r['decrypt']), 2)}",
        ])
    notes = [
        f"{frames_per_size} frames per size, one thread, this process idle otherwise; "
        "microseconds per frame, median / p99, Python call overhead included.",
        "session: a real ready DAVE group (protocol 1, epoch 1) made by an in-process MLS "
        "Add proposal (the stand-in's external sender), commit and welcome with davey "
        f"{davey.__version__}; the frame grows by the DAVE trailer (tag, nonce, size, 0xFAFA).",
        "packet step = discord.py's `VoiceClient._get_voice_packet` (DAVE when the session is "
        "ready, RTP header, aead_xchacha20_poly1305_rtpsize); DAVE's share per stream-second = "
        "(with - without) x 50 frames.",
        "decrypt is the listener's cost (the stand-in's, not the bot's).",
    ]
    if live:
        notes.append(live)
    return print_table(
        "DAVE per-frame cost (davey encrypt_opus, on a ready session)",
        ["Opus frame", "encrypt (us)", "packet step, no DAVE (us)", "packet step, DAVE (us)",
         "DAVE per stream-second", "listener decrypt (us)"],
        body, notes)


def live_connection_note(vc: discord.VoiceClient | None) -> str:
    """Whether this benchmark run's own voice connection encrypts with DAVE (so every row that
    sends through VoiceClient includes it)."""
    state = getattr(vc, "_connection", None)
    session = getattr(state, "dave_session", None)
    if state is None or session is None or not state.can_encrypt:
        return "this run's voice connection: DAVE NOT active (rows send plain frames)"
    stats = session.get_encryption_stats()
    per_frame = stats.duration / stats.successes if stats.successes else float("nan")
    return (f"this run's voice connection: DAVE protocol {state.dave_protocol_version} active "
            f"(epoch {session.epoch}); davey's own count so far: {stats.successes} frames, "
            f"{fmt(per_frame, 2)} us each")


async def run(bench: Any, quick: bool) -> None:
    """The `--only dave` row of benchmarks.run."""
    import asyncio

    frames = 2000 if quick else 20000
    rows = await asyncio.to_thread(measure, frames)
    table(rows, frames, live_connection_note(getattr(bench, "vc", None)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 frames per size instead of 20,000")
    args = parser.parse_args(argv)
    frames = 2000 if args.quick else 20000
    table(measure(frames), frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())

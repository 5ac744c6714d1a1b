"""The stand-in's per-minute soak window (benchmarks/standin_proc.py): the summary runs off the
event loop, which keeps reading the voice socket meanwhile (a summary on the loop let the
receive buffer overflow), and datagrams the kernel dropped at the receiver are counted, so a
gap in RTP sequence numbers can be told apart: lost by the receiver or never sent by the bot."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from benchmarks import soak_receiver, standin_proc


@dataclass
class Packet:
    arrival: float
    sequence: int


@dataclass
class Audio:
    packets: list[Packet] = field(default_factory=list)


class FakeVoice:
    """What op_soak_window and the socket reader use of TimingVoiceServer."""

    def __init__(self) -> None:
        self.audios: dict[int, Audio] = {}
        self.receiver_drops: int | None = 0
        self.datagrams: list[bytes] = []

    def audio(self, guild_id: int) -> Audio:
        return self.audios.setdefault(guild_id, Audio())

    def _on_datagram(self, data: bytes, addr: Any, arrival: float) -> None:
        self.datagrams.append(data)


async def wait_for_datagrams(voice: FakeVoice, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while len(voice.datagrams) < count:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # and any still queued


async def test_the_summary_runs_off_the_loop_and_keeps_later_packets(monkeypatch):
    voice = FakeVoice()
    voice.audio(1).packets[:] = [Packet(10 + 0.02 * i, i) for i in range(100)]  # 10.00-11.98
    summarised_in: list[threading.Thread] = []
    summarise = soak_receiver.window_summary

    def recording(*args: Any) -> dict[str, Any]:
        summarised_in.append(threading.current_thread())
        return summarise(*args)

    monkeypatch.setattr(soak_receiver, "window_summary", recording)
    controller = standin_proc.Controller(voice)  # type: ignore[arg-type]
    summary = await controller.op_soak_window([1], since=10.0, until=11.0)
    assert summarised_in and summarised_in[0] is not threading.main_thread()
    assert summary["packets"] == 50 and summary["sequence_gaps"] == 0
    assert [p.sequence for p in voice.audio(1).packets] == list(range(50, 100))  # the next window's


async def test_each_window_reports_the_receivers_drops_since_the_previous_one():
    voice = FakeVoice()
    voice.receiver_drops = 5  # before the soak: not the soak's
    controller = standin_proc.Controller(voice)  # type: ignore[arg-type]
    voice.receiver_drops = 12
    assert (await controller.op_soak_window([1], since=0.0, until=1.0))["receiver_drops"] == 7
    assert (await controller.op_soak_window([1], since=1.0, until=2.0))["receiver_drops"] == 0
    voice.receiver_drops = None  # not counted (not Linux)
    assert (await controller.op_soak_window([1], since=2.0, until=3.0))["receiver_drops"] is None


@pytest.mark.skipif(not hasattr(socket, "SO_RCVBUF") or not socket.CMSG_SPACE, reason="Linux")
async def test_the_kernels_drops_at_a_full_receive_buffer_are_counted():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel's least
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        voice = FakeVoice()
        voice.receiver_drops = None
        loop = asyncio.get_running_loop()
        # nobody reads while these arrive: the buffer overflows, as when the loop was blocked
        sent = 200
        for sequence in range(sent):
            sender.sendto(sequence.to_bytes(2, "big") * 50, receiver.getsockname())
        standin_proc.read_with_kernel_timestamps(voice, receiver)  # type: ignore[arg-type]
        try:
            await wait_for_datagrams(voice)
            assert voice.receiver_drops == 0  # a datagram tells the drops before it was queued
            sender.sendto(b"after", receiver.getsockname())
            sent += 1
            await wait_for_datagrams(voice, len(voice.datagrams) + 1)
        finally:
            loop._remove_reader(receiver.fileno())  # type: ignore[attr-defined]
        assert voice.datagrams[-1] == b"after"
        assert voice.receiver_drops and len(voice.datagrams) + voice.receiver_drops == sent
    finally:
        receiver.close()
        sender.close()

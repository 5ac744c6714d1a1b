"""discord.py's voice socket reader past descriptor 1,024 (music.voiceclient.lift_select_limit).

A bot with ~500 voice connections holds descriptors numbered 1,024 and up; discord.py's
``SocketReader`` waits on its UDP socket with ``select.select``, which refuses those, so the
connection's IP discovery never hears back. These tests hold 1,100 descriptors open first, so the
voice connection's socket gets a high number, as in such a bot.
"""

from __future__ import annotations

import select
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from music.voiceclient import VOICE_STATE_MODULE, lift_select_limit, restore_select_limit
from standin.voice import VoiceServer
from standin.voice_harness import VoiceHarness


@pytest.fixture
def lifted() -> Iterator[None]:
    assert lift_select_limit()
    yield
    restore_select_limit()


@pytest.fixture
async def server() -> AsyncIterator[VoiceServer]:
    voice = VoiceServer()
    await voice.start()
    yield voice
    await voice.stop()


def test_select_itself_refuses_a_descriptor_past_1024(high_descriptors: None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert sock.fileno() >= 1024
        with pytest.raises(ValueError):
            select.select([sock], [], [], 0)


def test_the_lifted_select_waits_on_high_descriptors_and_keeps_select_s_answers(
    high_descriptors: None, lifted: None
) -> None:
    module = sys.modules[VOICE_STATE_MODULE]
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        assert receiver.fileno() >= 1024
        assert module.select.select([receiver], [], [], 0.05) == ([], [], [])  # the timeout
        sender.sendto(b"x", receiver.getsockname())
        assert module.select.select([receiver], [], [], 1) == ([receiver], [], [])
    finally:
        sender.close()
        receiver.close()
    with pytest.raises(ValueError):  # a closed socket: what discord.py's reader catches
        module.select.select([receiver], [], [], 0)


def test_lifting_is_once_and_unload_puts_select_back() -> None:
    module = sys.modules[VOICE_STATE_MODULE]
    assert module.select is select
    assert lift_select_limit() and lift_select_limit()
    assert module.select is not select and module.select.POLLIN == select.POLLIN
    restore_select_limit()
    assert module.select is select


async def test_a_voice_connection_on_a_high_descriptor_connects_once_lifted(
    high_descriptors: None, lifted: None, server: VoiceServer
) -> None:
    harness = VoiceHarness(server)
    try:
        vc = await harness.connect(timeout=4.0)
        assert vc._connection.socket.fileno() >= 1024
        assert vc.is_connected()
        assert any(e.kind == "ip_discovery" for e in server.events(harness.guild_id))
    finally:
        await harness.close()

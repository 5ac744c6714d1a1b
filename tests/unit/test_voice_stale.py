"""Replacing a voice connection that discord.py gave up on also ends its own reconnect attempts
(music.voiceclient.stop_reconnecting): left running, the old poller's disconnect() later sends
the guild's leave and unregisters the guild's voice client, kicking out the connection that
replaced it, whose poller then does the same 15 s later (tests/e2e/test_faults.py's flapping)."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import discord.voice_state

from music.player.adapters import DiscordVoice
from music.voiceclient import CONNECTION_STATE, CONNECTION_TASKS, stop_reconnecting


class FakeState:
    def __init__(self, runner: asyncio.Task | None, connector: asyncio.Task | None) -> None:
        self._runner = runner
        self._connector = connector


class FakeVoiceClient:
    def __init__(self, state: FakeState) -> None:
        self._connection = state
        self.disconnected_with: list[bool] = []

    async def disconnect(self, *, force: bool = False) -> None:
        self.disconnected_with.append(force)


class FakeGuild:
    id = 1

    def __init__(self, vc: FakeVoiceClient) -> None:
        self.voice_client = vc


def class_source(module: object, name: str) -> str:
    """The text of class ``name`` in ``module``'s file, from its line to the next top-level
    statement. Not inspect.getsource(cls): on Python 3.11 that parses the module with ast, which
    raises "AST constructor recursion depth mismatch" when another thread is parsing too (a
    CPython 3.11 bug; seen once in a clean-clone CI run)."""
    text = Path(inspect.getsourcefile(module)).read_text(encoding="utf-8")  # type: ignore[arg-type]
    start = text.index(f"\nclass {name}")
    end = re.search(r"\n(?=\S)", text[start + 1:])
    return text[start:start + 1 + end.start()] if end else text[start:]


def test_discord_py_keeps_the_tasks_where_the_adapter_looks():
    source = class_source(discord.voice_state, "VoiceConnectionState")
    assert "def __init__" in source  # the whole class, not only its first line
    for name in CONNECTION_TASKS:
        assert f"self.{name}" in source, name
    assert CONNECTION_STATE in inspect.getsource(discord.VoiceClient.__init__)


async def test_the_pollers_of_a_replaced_connection_are_cancelled_before_it_disconnects():
    # a poller stuck in a resume that will give up (and disconnect the guild) later
    runner = asyncio.create_task(asyncio.sleep(60))
    connector = asyncio.create_task(asyncio.sleep(60))
    state = FakeState(runner, connector)
    stale = FakeVoiceClient(state)
    await DiscordVoice._end_stale(FakeGuild(stale))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert runner.cancelled() and connector.cancelled()
    assert state._runner is None and state._connector is None
    assert stale.disconnected_with == [True]


async def test_nothing_to_cancel_is_fine():
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    assert stop_reconnecting(FakeVoiceClient(FakeState(None, done))) == 0
    assert stop_reconnecting(object()) == 0  # a discord.py without these names: no-op


async def test_the_running_task_is_not_cancelled_from_inside():
    result: list[int] = []

    async def poller() -> None:
        result.append(stop_reconnecting(vc))

    state = FakeState(None, None)
    vc = FakeVoiceClient(state)
    state._runner = asyncio.create_task(poller())
    await state._runner
    assert result == [0]



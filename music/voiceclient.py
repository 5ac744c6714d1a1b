"""The guild's voice client, typed as the discord.VoiceClient this cog always connects.

discord.py types `guild.voice_client` as the abstract VoiceProtocol; every connection this cog
makes is a `discord.VoiceClient` (channel.connect's default), so the cast is one place."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import discord


def connected_voice(guild: discord.Guild | None) -> discord.VoiceClient | None:
    """The guild's voice client when it is connected, else None."""
    vc = cast("discord.VoiceClient | None", guild.voice_client if guild is not None else None)
    if vc is None or not vc.is_connected():
        return None
    return vc


def voice_channel(vc: discord.VoiceClient) -> discord.VoiceChannel:
    """The channel a connected voice client is in (this cog joins voice and stage channels)."""
    return cast(discord.VoiceChannel, vc.channel)


#: discord.py 2.5+ (VoiceConnectionState): the voice client's connection flow, and its two tasks
#: that may still act on the guild after the client was given up: the websocket poller (it
#: reconnects or resumes on its own) and the connector
CONNECTION_STATE = "_connection"
CONNECTION_TASKS = ("_runner", "_connector")


def stop_reconnecting(vc: object) -> int:
    """Cancel a voice client's own reconnect and resume attempts before it is given up.

    When discord.py's poller of a connection that we replace later gives up (a resume or a
    reconnect timing out), it calls its disconnect(), which acts on the GUILD: it sends the
    gateway's leave (kicking the connection that replaced it out of the channel) and
    unregisters whatever voice client the guild has now. The kicked connection's own poller
    then does the same to the next one 15 s later: a cascade that stops playback every 15 s.
    Returns how many tasks were cancelled (0 if discord.py keeps them elsewhere: then only the
    cascade's guard is missing, not the disconnect)."""
    state = getattr(vc, CONNECTION_STATE, None)
    cancelled = 0
    for name in CONNECTION_TASKS:
        task = getattr(state, name, None)
        if isinstance(task, asyncio.Task) and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(AttributeError):
                setattr(state, name, None)
            cancelled += 1
    return cancelled


# -- discord.py's voice socket reader and the 1,024-descriptor limit of select() ------------------

#: discord.py (2.5+) waits for a voice connection's UDP socket with ``select.select`` in its
#: ``SocketReader`` thread (``discord.voice_state``). ``select()`` cannot watch a descriptor
#: numbered 1,024 or more: it raises ValueError, which that thread logs at debug level and retries
#: at once. A bot past roughly 500 voice connections (each holds a websocket and a UDP socket, the
#: streams their connections) gets such descriptors, and then every new connection spins that
#: thread and times out in IP discovery (measured: connections 1-500 in 0.2-0.4 s a batch of 10,
#: every one after that failed). :func:`lift_select_limit` replaces that module's ``select`` name
#: with one whose ``select()`` uses poll(), which has no such limit, for read-only waits; anything
#: else goes to the real one. The cog lifts it at load and puts it back at unload.
VOICE_STATE_MODULE = "discord.voice_state"


class _PollingSelect:
    """What ``discord.voice_state`` calls as ``select.select``, without the descriptor limit."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def select(self, rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> Any:
        poll_factory = getattr(self._real, "poll", None)
        if wlist or xlist or poll_factory is None:
            return self._real.select(rlist, wlist, xlist, timeout)
        poller = poll_factory()
        by_fd: dict[int, Any] = {}
        for item in rlist:
            fd = item if isinstance(item, int) else item.fileno()  # ValueError/OSError if closed
            if fd < 0:
                raise ValueError("file descriptor cannot be a negative integer")
            by_fd[fd] = item
            poller.register(fd, self._real.POLLIN)
        ready = poller.poll(None if timeout is None else max(0.0, timeout) * 1000)
        return [by_fd[fd] for fd, _events in ready if fd in by_fd], [], []


def lift_select_limit() -> bool:
    """Let discord.py's voice socket readers wait on any descriptor number (process-wide, once);
    False, changing nothing, when discord.py no longer reads voice sockets that way."""
    import select
    import sys

    module = sys.modules.get(VOICE_STATE_MODULE)
    if module is None:
        import importlib

        try:
            module = importlib.import_module(VOICE_STATE_MODULE)
        except ImportError:
            return False
    current = getattr(module, "select", None)
    if isinstance(current, _PollingSelect):
        return True
    if current is not select or not hasattr(select, "poll"):
        return False
    module.select = _PollingSelect(select)  # type: ignore[attr-defined]
    return True


def restore_select_limit() -> None:
    """Undo :func:`lift_select_limit` (at unload; a no-op when it did nothing)."""
    import sys

    module = sys.modules.get(VOICE_STATE_MODULE)
    current = getattr(module, "select", None)
    if module is not None and type(current).__name__ == _PollingSelect.__name__:
        module.select = current._real  # type: ignore[attr-defined,union-attr]

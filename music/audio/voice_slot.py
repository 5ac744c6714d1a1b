"""The one place that relies on discord.py's private ``VoiceClient._player`` (issue 14).

The shared sender (music.audio.sender) installs each playback as the voice client's ``_player``:
discord.py's ``VoiceClient`` implements ``stop``, ``pause``, ``resume``, ``is_playing``,
``is_paused`` and ``source`` by delegating to that attribute, so the cog's ``vc.pause()`` and
discord.py's own stop on disconnect reach the shared sender. A private attribute can change in
any release, so :func:`player_slot_problem` checks once, at load, what that relies on: a
discord.py 2.x, the public methods the sender calls, ``__init__`` creating the attribute, and
each of those methods delegating to it (probed on a bare instance, no connection). When anything
differs the sender plays through discord.py's public ``vc.play(source, after=...)`` instead
(:class:`PublicPlayer`: one AudioPlayer thread per guild, correct but costlier with many guilds)
and says so in the log once; it never crashes the cog.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

import discord

log = logging.getLogger("red.music.audio.sender")

#: The private attribute the shared sender installs its playback in.
PLAYER_SLOT = "_player"
#: discord.py versions whose VoiceClient keeps its player there: from 2.0, below 3.0.
SUPPORTED_DISCORD = ((2, 0), (3, 0))
#: What the sender calls on a voice client (public API), and what the cog calls on it (which
#: must reach the installed playback).
SENDER_CALLS = ("send_audio_packet", "is_connected", "play")
DELEGATED = ("is_playing", "is_paused", "pause", "resume", "stop")

# a runtime alias: Optional, since `Exception | None` is evaluated here and fails on Python 3.9
AfterCallback = Callable[[Optional[Exception]], Any]  # noqa: UP045

def installed_player(client: Any) -> Any:
    """What the voice client plays through: a sender's playback, an AudioPlayer, or None."""
    return getattr(client, PLAYER_SLOT, None)


def install(client: Any, playback: Any) -> None:
    setattr(client, PLAYER_SLOT, playback)


def player_slot_problem(voice_client_cls: type | None = None,
                        version: tuple[int, int] | None = None) -> str | None:
    """None when ``voice_client_cls`` (default ``discord.VoiceClient``) delegates to its
    ``_player`` the way the shared sender relies on; otherwise why not, as a sentence."""
    cls: type[Any] = voice_client_cls if voice_client_cls is not None else discord.VoiceClient
    if version is None:
        version = (discord.version_info.major, discord.version_info.minor)
    low, high = SUPPORTED_DISCORD
    if not low <= tuple(version) < high:
        return (f"discord.py {version[0]}.{version[1]} is outside the versions checked "
                f"({low[0]}.{low[1]} to below {high[0]}.{high[1]})")
    missing = [name for name in (*SENDER_CALLS, *DELEGATED)
               if not callable(getattr(cls, name, None))]
    if missing:
        return f"VoiceClient has no {', '.join(missing)}"
    init_code = getattr(cls.__init__, "__code__", None)
    if init_code is None or PLAYER_SLOT not in init_code.co_names:
        return f"VoiceClient.__init__ no longer sets {PLAYER_SLOT}"
    return _probe_delegation(cls)


class _ProbePlayer:
    """Stands in the slot of a bare VoiceClient and records what reached it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.source = object()

    def is_playing(self) -> bool:
        self.calls.append("is_playing")
        return True

    def is_paused(self) -> bool:
        self.calls.append("is_paused")
        return True

    def pause(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append("pause")

    def resume(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append("resume")

    def stop(self) -> None:
        self.calls.append("stop")


def _probe_delegation(cls: type) -> str | None:
    """Call the delegated methods on an instance made without ``__init__`` (no client, no
    connection) whose slot holds a probe: each must reach the probe, and stop() empty the slot."""
    probe = _ProbePlayer()
    try:
        client: Any = object.__new__(cls)
        install(client, probe)
        answers = (client.is_playing(), client.is_paused())
        client.pause()
        client.resume()
        source = client.source
        client.stop()
        emptied = getattr(client, PLAYER_SLOT, probe) is None
    except Exception as exc:
        return f"probing VoiceClient.{PLAYER_SLOT} failed ({type(exc).__name__}: {exc})"
    if answers != (True, True) or probe.calls != [*DELEGATED] or source is not probe.source:
        return f"VoiceClient no longer delegates to {PLAYER_SLOT} (it called {probe.calls})"
    if not emptied:
        return f"VoiceClient.stop() no longer empties {PLAYER_SLOT}"
    return None


@functools.cache
def player_slot_usable() -> bool:
    """The check against the installed discord.py, done once (logged once when it fails)."""
    problem = player_slot_problem()
    if problem is not None:
        log.warning(
            "discord.py %s: %s. Playing through discord.py's own vc.play instead (one audio "
            "thread per guild: correct, but costlier with many guilds).",
            discord.__version__, problem)
    return problem is None


class PublicPlayback:
    """One ``vc.play``: knows when discord.py's AudioPlayer has called ``after``."""

    def __init__(self, owner: PublicPlayer, client: Any, source: discord.AudioSource,
                 after: AfterCallback | None) -> None:
        self._owner = owner
        self.client = client
        self.source = source
        self._after = after
        self._done = threading.Event()

    def finished(self, error: Exception | None) -> None:
        """The ``after`` handed to discord.py (on its AudioPlayer thread)."""
        try:
            if self._after is not None:
                self._after(error)  # an exception here is logged by discord.py
        finally:
            self._owner._forget(self)
            self._done.set()

    def join(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()


class PublicPlayer:
    """The fallback: every playback through discord.py's public ``vc.play``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: list[PublicPlayback] = []

    def play(self, client: Any, source: discord.AudioSource,
             after: AfterCallback | None) -> PublicPlayback:
        if client.is_playing() or client.is_paused():
            raise discord.ClientException("Already playing audio.")  # as the shared sender
        playback = PublicPlayback(self, client, source, after)
        with self._lock:
            self._live.append(playback)
        try:
            client.play(source, after=playback.finished)
        except BaseException:
            self._forget(playback)
            raise
        return playback

    def _forget(self, playback: PublicPlayback) -> None:
        with self._lock:
            if playback in self._live:
                self._live.remove(playback)

    @property
    def active(self) -> int:
        return len(self._live)

    def close(self, timeout: float) -> bool:
        """Stop every voice client still playing a source of ours; wait for their ``after``."""
        with self._lock:
            live = list(self._live)
        for playback in live:
            client = playback.client
            # not if the voice client has moved on to another source (read where it tells)
            if getattr(client, "source", playback.source) is playback.source:
                client.stop()
        deadline = time.monotonic() + timeout
        return all(p.join(max(0.0, deadline - time.monotonic())) for p in live)

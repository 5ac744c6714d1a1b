"""One audio thread for every guild: ``SharedSender`` paces all playing voice clients on one clock.

discord.py's ``VoiceClient.play`` starts an ``AudioPlayer`` thread per voice client, each waking
every 20 ms: at 150 guilds that is 7,500 wake-ups a second competing for the GIL, and the audio
falls behind (issue 7). The sender is one thread that, every 20 ms on an absolute schedule
(``t0 + k * 20 ms``, so no drift), reads one packet from each playing guild's source and hands it
to the public ``VoiceClient.send_audio_packet(data, encode=False)``.

What it keeps from ``AudioPlayer``: speaking state on start / pause / resume / stop and after a
reconnect (``run_coroutine_threadsafe(vc.ws.speak(...), loop)``), 5 silence frames after a pause
or the end, ``after(error)`` once a playback ends, then ``source.cleanup()``. What it does
differently:

* a tick that comes late never makes up for it with frames sent back to back (discord.py #9120):
  consecutive ticks start at least half a frame apart, and a tick more than a frame late skips
  the missed slots; the silence frames are paced too (``AudioPlayer`` sends its 5 at once); a
  guild whose packet a late tick held back sends it once half a frame has passed, not a frame
  later, so its stream stays on its 20 ms grid;
* with many guilds (``PHASED_FROM``) each frame is split in ``PHASES`` sub-ticks and each
  guild sends in its own one, so a packet waits behind a quarter of the guilds, not all of them;
* a guild whose voice client is not connected is skipped, not waited on (one reconnecting guild
  must not stall the others); it rejoins the clock once connected, and is ended after the voice
  client's ``timeout`` seconds offline, as ``AudioPlayer`` gives up;
* one source that raises ends only its own playback; ``after`` callbacks and ``cleanup()`` run
  on a helper thread, never inside a tick.

Each playback is installed as the voice client's ``_player``, the attribute through which
discord.py's ``VoiceClient`` implements ``stop``, ``pause``, ``resume``, ``is_playing``,
``is_paused`` and ``source`` (discord.py 2.7, pinned by Red). So ``vc.stop()``, and
``vc.disconnect()`` / discord.py's own disconnect handling (which call ``vc.stop()``), end the
playback, and code asking ``vc.is_playing()`` keeps working. Each tick also checks that the voice
client's ``_player`` is still this playback (``vc.play`` of another source replaces it). That
attribute is private: music.audio.voice_slot checks at load that discord.py still works that
way, and otherwise the sender hands every playback to discord.py's public ``vc.play`` (one
AudioPlayer thread per guild) and says so in the log.

Only ``read()`` runs on the sending thread, so sources must never block (``ChainSource`` doesn't).
The thread starts with the first ``play`` and ends once nothing played for ``IDLE_EXIT_SECONDS``
or at :meth:`SharedSender.close`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import discord
from discord.enums import SpeakingState

from .chain import SILENCE_FRAME
from .prebuffer import FRAME_SECONDS
from .voice_packets import PacketWriter, packet_writer
from .voice_slot import (
    AfterCallback,
    PublicPlayback,
    PublicPlayer,
    install,
    installed_player,
    player_slot_usable,
)

log = logging.getLogger("red.music.audio.sender")

#: Consecutive ticks start at least this far apart: the issue forbids inter-arrivals under 10 ms.
MIN_TICK_INTERVAL = FRAME_SECONDS / 2
#: Silence frames after a pause or the end, so Discord clients do not interpolate (AudioPlayer: 5).
TRAILING_SILENCE_FRAMES = 5
#: The thread ends after this long with nothing to send (a stop followed by a play is common,
#: so it does not end at once).
IDLE_EXIT_SECONDS = 2.0
#: Sub-ticks per frame once many guilds play (see SharedSender._clock_loop). Measured at 150
#: guilds, kernel receive timestamps, 3 paired trials: p99 inter-arrival 22.2-23.4 ms with 4
#: against 24.4-25.6 ms with 1. Each sub-tick is a wake-up of the thread (~140 us of CPU): at
#: 10 guilds 4 sub-ticks cost 2.1 ms more CPU per stream-second, so they start only from
#: PHASED_FROM playbacks, and stop again below UNPHASED_BELOW (no flapping at the threshold).
PHASES = 4
PHASED_FROM = 48
UNPHASED_BELOW = 40
#: Used when a voice client has no ``timeout`` (discord.py's default is 30 s).
DEFAULT_OFFLINE_TIMEOUT = 30.0


@dataclass
class SenderStats:
    """How well the clock kept time."""

    ticks: int = 0
    late_ticks: int = 0  # ticks that started more than half a frame after their slot
    skipped_slots: int = 0  # slots dropped because a tick came more than a frame late
    max_tick_ms: float = 0.0  # the longest tick (reading and sending for every guild)
    #: packets a guild held back because its previous one went out less than half a frame
    #: before (a tick ran late past it); each goes once half a frame has passed
    held_back: int = 0


class Playback:
    """One voice client playing one source on the shared sender.

    Also what the voice client's ``_player`` points at, so it offers the methods discord.py's
    ``VoiceClient`` calls on its ``AudioPlayer``. Its state is written by the controlling thread
    (the event loop) and read by the sending thread; single attribute writes are atomic."""

    def __init__(self, sender: SharedSender, client: Any, source: discord.AudioSource,
                 after: AfterCallback | None) -> None:
        self._sender = sender
        self.client = client
        self.source = source
        self.after = after
        self.encode = not source.is_opus()
        # discord.py's packet, built and sent without giving the GIL up (music.audio.voice_packets)
        self.writer: PacketWriter | None = packet_writer()
        self.paused = False
        self.ending = False  # stop asked or the source ended: trailing silence, then finalize
        self.error: Exception | None = None
        self.silence_left = 0  # paced trailing silence frames still to send
        self.offline_since: float | None = None
        self.last_sent = float("-inf")  # clock time of its last packet (the sender's clock)
        self.phase = 0  # which sub-tick of each frame sends its packet (SharedSender phases)
        # its packet waits because the previous one went out less than half a frame ago
        self.held_back = False
        self._done = threading.Event()  # after() and cleanup() have run

    def send(self, data: bytes, *, encode: bool = False) -> None:
        """One packet to the voice client (sender thread only)."""
        if encode or self.writer is None:
            self.client.send_audio_packet(data, encode=encode)
        else:
            self.writer.send(self.client, data)

    # -- what discord.py's VoiceClient calls on its _player ---------------------------------------

    def is_playing(self) -> bool:
        return not self.ending and not self.paused

    def is_paused(self) -> bool:
        return not self.ending and self.paused

    def pause(self, *, update_speaking: bool = True) -> None:
        if self.ending or self.paused:
            return
        self.paused = True
        self.silence_left = TRAILING_SILENCE_FRAMES
        if update_speaking:
            speak(self.client, SpeakingState.none)

    def resume(self, *, update_speaking: bool = True) -> None:
        if self.ending or not self.paused:
            return
        self.silence_left = 0
        self.paused = False
        if update_speaking:
            speak(self.client, SpeakingState.voice)

    def stop(self) -> None:
        self.end(None)

    def set_source(self, source: discord.AudioSource) -> None:
        """``vc.source = ...``: play another source from the next tick (the old one is not
        cleaned up, as in discord.py)."""
        self.encode = not source.is_opus()
        self.source = source

    def join(self, timeout: float | None = None) -> bool:
        """Wait until ``after`` and ``cleanup()`` ran (the sender may need a few ticks to get there)."""
        return self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()

    # -- ending ---------------------------------------------------------------------------------

    def end(self, error: Exception | None) -> None:
        """Stop playing (any thread): trailing silence on the next ticks, then ``after(error)``."""
        if self.ending:
            return
        self.error = error
        # a paused playback already sent its silence
        self.silence_left = 0 if self.paused else TRAILING_SILENCE_FRAMES
        self.ending = True
        speak(self.client, SpeakingState.none)

    def _finalize(self) -> None:
        """On the helper thread: what AudioPlayer does as its thread ends."""
        try:
            if self.after is not None:
                try:
                    self.after(self.error)
                except Exception as exc:
                    exc.__context__ = self.error
                    log.exception("The after callback of a playback failed", exc_info=exc)
            elif self.error is not None:
                log.error("A playback ended with an error", exc_info=self.error)
            try:
                self.source.cleanup()
            except Exception:
                log.exception("Cleaning up %r failed", self.source)
        finally:
            self._done.set()

    def __repr__(self) -> str:
        state = "ending" if self.ending else "paused" if self.paused else "playing"
        return f"<Playback {state} source={self.source!r}>"


def speak(client: Any, state: SpeakingState) -> None:
    """Set the speaking state from any thread, as AudioPlayer does (never raises)."""
    try:
        asyncio.run_coroutine_threadsafe(client.ws.speak(state), client.client.loop)
    except Exception:
        log.debug("Setting the speaking state failed", exc_info=True)


class SharedSender:
    """One thread sending every guild's packets on a common 20 ms clock (see the module docs).

    Thread-safe; ``play``/``pause``/``resume``/``stop`` are meant for the event loop and never
    block. ``clock`` is for tests."""

    def __init__(
        self,
        *,
        name: str = "music-sender",
        frame_seconds: float = FRAME_SECONDS,
        idle_exit_seconds: float = IDLE_EXIT_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
        phases: int = PHASES,
        phased_from: int = PHASED_FROM,
        unphased_below: int = UNPHASED_BELOW,
        use_player_slot: bool | None = None,
    ) -> None:
        """``use_player_slot``: install playbacks in the voice client's ``_player`` (the one
        thread for every guild), or play through ``vc.play``; None asks music.audio.voice_slot."""
        if phases < 1:
            raise ValueError("phases must be at least 1")
        self.name = name
        self.frame_seconds = frame_seconds
        self.min_tick_interval = frame_seconds / 2
        #: sub-ticks per frame once phased: each playback sends in one of them (_clock_loop)
        self.phases = phases
        self.phased_from = phased_from
        self.unphased_below = min(unphased_below, phased_from)
        self.idle_exit_seconds = idle_exit_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # Copy-on-write: the tick loop reads the tuple without taking the lock.
        self._playbacks: tuple[Playback, ...] = ()
        self._thread: threading.Thread | None = None
        self._after_thread: threading.Thread | None = None
        self._closing = False
        self._wake = threading.Event()  # cuts a sleep short: close(), and play() (first packet)
        self._stats = SenderStats()
        #: True: one thread for every guild; False: discord.py's vc.play (the fallback)
        self.shared = player_slot_usable() if use_player_slot is None else use_player_slot
        self._public = PublicPlayer()

    # -- control ----------------------------------------------------------------------------------

    def play(self, client: Any, source: discord.AudioSource, *,
             after: AfterCallback | None = None) -> Playback | PublicPlayback:
        """Start sending ``source`` to ``client`` from the next tick. Raises
        ``discord.ClientException`` if the client is already playing (or paused), like
        ``VoiceClient.play``."""
        if not self.shared:
            return self._public.play(client, source, after)
        if not isinstance(source, discord.AudioSource):
            raise TypeError(f"source must be an AudioSource, not {type(source).__name__}")
        if after is not None and not callable(after):
            raise TypeError('Expected a callable for the "after" parameter.')
        if client.is_playing() or client.is_paused():
            raise discord.ClientException("Already playing audio.")
        playback = Playback(self, client, source, after)
        with self._lock:
            load = [0] * self.phases
            for other in self._playbacks:
                load[other.phase] += 1
            playback.phase = load.index(min(load))
            for previous in self._playbacks:
                if previous.client is client:  # ending (vc.stop() also forgot it as _player)
                    previous.silence_left = 0  # the new audio replaces its trailing silence
                    playback.last_sent = max(playback.last_sent, previous.last_sent)
            install(client, playback)
            self._playbacks = (*self._playbacks, playback)
            self._closing = False
            self._ensure_thread_locked()
        speak(client, SpeakingState.voice)
        self._wake.set()  # its first packet need not wait for the next slot (_sleep_until)
        return playback

    def playback(self, client: Any) -> Playback | None:
        """The client's live playback on this sender (playing or paused), if any."""
        if not self.shared:
            return None
        player = installed_player(client)
        if isinstance(player, Playback) and player._sender is self and not player.ending:
            return player
        return None

    def pause(self, client: Any) -> None:
        if not self.shared:
            client.pause()
        elif (playback := self.playback(client)) is not None:
            playback.pause()

    def resume(self, client: Any) -> None:
        if not self.shared:
            client.resume()
        elif (playback := self.playback(client)) is not None:
            playback.resume()

    def stop(self, client: Any) -> None:
        """End the client's playback (its ``after`` runs soon after, on the helper thread)."""
        if not self.shared:
            client.stop()
        elif (playback := self.playback(client)) is not None:
            playback.end(None)
            if installed_player(client) is playback:
                install(client, None)

    def is_playing(self, client: Any) -> bool:
        if not self.shared:
            return bool(client.is_playing())
        playback = self.playback(client)
        return playback is not None and playback.is_playing()

    def is_paused(self, client: Any) -> bool:
        if not self.shared:
            return bool(client.is_paused())
        playback = self.playback(client)
        return playback is not None and playback.is_paused()

    @property
    def active(self) -> int:
        """Playbacks on the clock (including ones sending their trailing silence); with the
        fallback, playbacks whose ``after`` has not run yet."""
        return len(self._playbacks) if self.shared else self._public.active

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def stats(self) -> SenderStats:
        return replace(self._stats)

    def close(self, timeout: float = 5.0) -> bool:
        """End every playback (their ``after`` callbacks run) and the threads. Blocking, bounded
        by ``timeout``; True if the threads ended. A later ``play`` starts them again."""
        if not self.shared:
            return self._public.close(timeout)
        with self._lock:
            self._closing = True
            playbacks = self._playbacks
            thread, after_thread = self._thread, self._after_thread
        for playback in playbacks:
            playback.end(None)
        self._wake.set()
        deadline = time.monotonic() + timeout
        for worker in (thread, after_thread):
            if worker is not None and worker is not threading.current_thread():
                worker.join(max(0.0, deadline - time.monotonic()))
        return not any(w is not None and w.is_alive() for w in (thread, after_thread))

    # -- the thread -------------------------------------------------------------------------------

    def _ensure_thread_locked(self) -> None:
        if self._thread is not None:
            return
        finished: queue.SimpleQueue[Playback | None] = queue.SimpleQueue()
        self._wake.clear()
        self._after_thread = threading.Thread(
            target=_run_finalizers, args=(finished,), name=f"{self.name}-after", daemon=True
        )
        self._thread = threading.Thread(
            target=self._run, args=(finished,), name=self.name, daemon=True
        )
        self._after_thread.start()
        self._thread.start()

    def _run(self, finished: queue.SimpleQueue[Playback | None]) -> None:
        try:
            self._clock_loop(finished)
        except BaseException:  # a bug here must not leave playbacks waiting forever
            log.exception("The audio sender failed")
            with self._lock:
                playbacks, self._playbacks = self._playbacks, ()
                self._thread = None
            for playback in playbacks:
                playback.ending = True
                finished.put(playback)
        finally:
            finished.put(None)  # ends the helper thread after the queued finalizers

    def _clock_loop(self, finished: queue.SimpleQueue[Playback | None]) -> None:
        """Tick on an absolute schedule. Once ``phased_from`` guilds play, each frame is split
        in ``phases`` sub-ticks and a playback sends in its own sub-tick only: a guild's packet
        then waits behind a share of the guilds instead of all of them, so a stall in the
        middle of a tick (another thread holding the GIL) delays fewer packets by its length."""
        clock = self._clock
        frame = self.frame_seconds
        phases = self.phases
        sub = frame / phases
        min_interval = self.min_tick_interval
        stats = self._stats
        send_tick = self._send_tick
        start = clock()
        slot = 0  # the (sub-)tick about to run is at start + slot * sub, phase slot % phases
        phased = False
        idle_since: float | None = None
        while True:
            now = clock()
            lateness = now - (start + slot * sub)
            if lateness > frame:
                # more than a frame late: drop the missed frames rather than send them back to
                # back (that burst is the "audio speeds up" bug); whole frames, so every
                # phase keeps its place
                missed = int(lateness // frame)
                slot += missed * phases
                stats.skipped_slots += missed
            if lateness > min_interval:
                stats.late_ticks += 1
            tick_started = now

            playbacks = self._playbacks
            if phases > 1:
                if not phased and len(playbacks) >= self.phased_from:
                    phased = True
                elif phased and len(playbacks) < self.unphased_below:
                    phased = False
            if playbacks:
                idle_since = None
                if phased:
                    phase = slot % phases
                    # a playback that has not sent yet goes in the first sub-tick it meets
                    playbacks = tuple(p for p in playbacks
                                      if p.phase == phase or p.last_sent == float("-inf"))
                if playbacks:
                    self._retire(send_tick(playbacks, now), finished)
            else:
                with self._lock:
                    if not self._playbacks:
                        if idle_since is None:
                            idle_since = now
                        if self._closing or now - idle_since >= self.idle_exit_seconds:
                            self._thread = None
                            return
            stats.ticks += 1
            elapsed = clock() - tick_started
            if elapsed * 1000 > stats.max_tick_ms:
                stats.max_tick_ms = elapsed * 1000

            # phased: the next sub-tick; otherwise the next frame's start
            slot += 1 if phased else phases - slot % phases
            # Never closer than half a (sub-)tick after this one's start: a tick that was a
            # little late is made up gradually, not with two packets at once.
            spacing = sub / 2 if phased else min_interval
            wake_at = max(start + slot * sub, tick_started + spacing)
            self._sleep_until(wake_at, finished)

    def _send_held_back(self, wake_at: float, finished: queue.SimpleQueue[Playback | None]) -> None:
        """Send the packets a late tick held back as soon as half a frame has passed since each
        guild's previous packet, instead of a frame later: waiting a whole frame would move
        that guild's stream 20 ms later for good (a listener hears a gap, the schedule a
        shift), while half a frame later it is back on its 20 ms grid with the next slot. Not
        when the next tick is as near: they go with it."""
        held = [p for p in self._playbacks if p.held_back and not p.ending and not p.paused]
        if not held:
            return
        ready_at = max(p.last_sent for p in held) + self.min_tick_interval
        if ready_at > wake_at - self.min_tick_interval / 2:
            return
        while (delay := ready_at - self._clock()) > 0:
            time.sleep(delay)
        if not self._closing:
            self._retire(self._send_tick(tuple(held), self._clock()), finished)

    def _sleep_until(self, wake_at: float, finished: queue.SimpleQueue[Playback | None]) -> None:
        """Sleep until the next slot. ``play`` and ``close`` cut the sleep short: a playback that
        has not sent yet gets its first packet at once when the next slot is at least half a
        frame away (so its second packet never follows closer than that), which saves a track
        start the wait for the shared clock (10 ms on average, up to a frame)."""
        clock = self._clock
        self._send_held_back(wake_at, finished)
        while (delay := wake_at - clock()) > 0:
            if not self._wake.wait(delay):
                return
            self._wake.clear()
            if self._closing:
                return
            if wake_at - clock() < self.min_tick_interval:
                continue  # the slot is near: the first packet goes out with it
            fresh = tuple(p for p in self._playbacks
                          if p.last_sent == float("-inf") and not p.ending and not p.paused)
            if fresh:
                self._retire(self._send_tick(fresh, clock()), finished)

    def _retire(self, done: list[Playback], finished: queue.SimpleQueue[Playback | None]) -> None:
        """Take ended playbacks off the clock; their after() and cleanup() go to the helper."""
        if not done:
            return
        with self._lock:
            self._playbacks = tuple(p for p in self._playbacks if p not in done)
        for playback in done:
            finished.put(playback)

    def _send_tick(self, playbacks: tuple[Playback, ...], now: float) -> list[Playback]:
        """One packet per playback; returns the playbacks that are over."""
        done: list[Playback] = []
        clock = self._clock
        min_interval = self.min_tick_interval
        for playback in playbacks:
            client = playback.client
            try:
                if clock() - playback.last_sent < min_interval:
                    # the previous tick ran late past this guild (something held the GIL
                    # mid-tick): its packet waits rather than go out right behind the last
                    # one, and goes as soon as half a frame has passed (_send_held_back)
                    if not playback.held_back:
                        playback.held_back = True
                        self._stats.held_back += 1
                    continue
                playback.held_back = False
                if playback.ending:
                    player = installed_player(client)
                    if player is not None and player is not playback:
                        playback.silence_left = 0  # another player has this voice client now
                    if playback.silence_left > 0 and client.is_connected():
                        playback.silence_left -= 1
                        playback.send(SILENCE_FRAME)
                        playback.last_sent = clock()
                    else:
                        done.append(playback)
                    continue
                if installed_player(client) is not playback:
                    # vc.play() of another source, or something cleared it without stop()
                    playback.end(None)
                    playback.silence_left = 0
                    done.append(playback)
                    continue
                if not client.is_connected():
                    # skipped, never waited on: the other guilds keep their cadence
                    if playback.offline_since is None:
                        playback.offline_since = now
                    elif now - playback.offline_since > _offline_timeout(client):
                        log.info("Voice stayed disconnected; ending its playback")
                        playback.end(None)
                        playback.silence_left = 0
                        done.append(playback)
                    continue
                if playback.offline_since is not None:
                    playback.offline_since = None
                    speak(client, SpeakingState.voice)
                if playback.paused:
                    if playback.silence_left > 0:
                        playback.silence_left -= 1
                        playback.send(SILENCE_FRAME)
                        playback.last_sent = clock()
                    continue
                data = playback.source.read()
                if not data:
                    playback.end(None)
                    continue  # its trailing silence starts on the next tick
                playback.send(data, encode=playback.encode)
                playback.last_sent = clock()
            except Exception as exc:
                # this guild only: its after() gets the error, the others play on
                if playback.ending:  # sending its trailing silence failed: give up on it
                    playback.silence_left = 0
                    if playback not in done:
                        done.append(playback)
                else:
                    playback.end(exc)  # trailing silence from the next tick, then after(exc)
        return done


def _offline_timeout(client: Any) -> float:
    timeout = getattr(client, "timeout", None)
    return float(timeout) if isinstance(timeout, (int, float)) else DEFAULT_OFFLINE_TIMEOUT


def _run_finalizers(finished: queue.SimpleQueue[Playback | None]) -> None:
    """The helper thread: after() and cleanup() of ended playbacks, off the sending clock."""
    while True:
        playback = finished.get()
        if playback is None:
            return
        playback._finalize()

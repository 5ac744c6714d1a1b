"""End-to-end fixtures: the Discord stand-in, a real Red bot subprocess with the music cog
installed by the owner through Downloader (from a git snapshot of this working tree), and small
helpers to talk to it and to read what the voice channel heard.

One stand-in and one Red per test module (module-scoped, on the module's event loop); the git
snapshot is made once per session. Modules choose what the owner allows with the
`allowed_networks` fixture (default: loopback, where the test media server listens).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import pytest_asyncio

from music.store_chunks import CHUNK_GROUP, HEAD, state_from_stored
from standin import Channel, Member, Message, Standin
from standin.analysis import SILENCE_RMS, PacketInfo, dominant_frequency, rms
from standin.install import InstallReport, install_music_cog, snapshot_working_tree
from standin.server import DefaultWorld
from standin.voice import GuildAudio
from tests.support.redbot import RedInstance, RedProcess

T = TypeVar("T")


@pytest.fixture(scope="session")
def cog_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-commit git repository of the current working tree (what Downloader clones)."""
    return snapshot_working_tree(tmp_path_factory.mktemp("snapshot") / "music-cog")


@pytest.fixture(scope="module")
def allowed_networks() -> tuple[str, ...]:
    return ("127.0.0.0/8",)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def standin():
    s = Standin()
    await s.start()
    s.default_world()
    yield s
    await s.stop()


@pytest.fixture(scope="module")
def world(standin: Standin) -> DefaultWorld:
    return standin.default_world()


@dataclass
class MusicBot:
    """The Red process plus what its install did, and chat helpers bound to the default world."""

    standin: Standin
    world: DefaultWorld
    red: RedProcess
    install: InstallReport

    heard: Heard | None = None

    @property
    def audio(self) -> GuildAudio:
        return self.standin.voice.audio(self.world.guild.id)

    @property
    def ears(self) -> Heard:
        """What the voice channel heard, classified (see Heard)."""
        if self.heard is None or self.heard.audio is not self.audio:
            self.heard = Heard(self.audio)
        return self.heard

    async def ask(self, member: Member, content: str, *, expect: Callable[[Message], bool] | None = None,
                  timeout: float = 20.0, channel: Channel | None = None,
                  files: list[tuple[str, bytes, str]] | None = None) -> Message:
        """`member` says `content` (with `files` attached); the bot's first answer (not counting
        its "Now playing" announcements, which can land at any time) or the first matching `expect`."""
        channel = channel or self.world.general
        said = await self.standin.say(member, channel, content, files=files)

        def answer(m: Message) -> bool:
            if expect is not None:
                return expect(m)
            return not m.content.startswith("Now playing:")

        try:
            return await self.standin.wait_for_message(channel, answer, after=said, timeout=timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"no answer to {content!r}; Red log tail:\n{self.red.log_tail(40)}") from exc

    def saved_state(self) -> dict:
        """The cog's persisted player state for the default guild, read from Red's JSON
        Config file (what a restart would load)."""
        path = self.red.instance.data_dir / "cogs" / "Music" / "settings.json"
        data = json.loads(path.read_text())
        (per_identifier,) = data.values()
        guild = per_identifier["GUILD"][str(self.world.guild.id)]
        if not guild.get(HEAD):  # the old whole-snapshot layout
            return guild["state"]
        chunks = per_identifier.get(CHUNK_GROUP, {}).get(str(self.world.guild.id), {})
        return state_from_stored(guild[HEAD], chunks)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def music_bot(standin: Standin, world: DefaultWorld, cog_snapshot: Path,
                    allowed_networks: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory):
    async with running_music_bot(standin, world, cog_snapshot, allowed_networks, tmp_path_factory) as bot:
        print(f"\ninstall through Downloader: {bot.install.summary()}")
        yield bot


@contextlib.asynccontextmanager
async def running_music_bot(
    standin: Standin,
    world: DefaultWorld,
    cog_snapshot: Path,
    allowed_networks: tuple[str, ...],
    tmp_path_factory: pytest.TempPathFactory,
    *,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[MusicBot]:
    """A real Red bot (a new instance) with the cog installed through Downloader; it must exit
    cleanly at the end. Modules that need Red started differently (`--dev`, `--rpc`, a yt-dlp
    plugin on PYTHONPATH) pass `extra_args` / `env` to their own `music_bot` fixture."""
    instance = RedInstance.create(tmp_path_factory.mktemp("red"))
    # no --no-cogs: a restart on the same data dir must load the installed cog again
    red = RedProcess(standin, instance, extra_args=extra_args or [], env=env)
    await red.start()
    try:
        report = await install_music_cog(standin, world.owner, world.general, cog_snapshot,
                                         allow_networks=allowed_networks)
    except BaseException:
        print(red.log_tail(80))
        await red.stop()
        raise
    yield MusicBot(standin, world, red, report)
    code = await red.stop()
    assert code == 0, red.log_tail()


# -- what the channel heard ------------------------------------------------------------------


class Heard:
    """Classifies the guild's received packets incrementally (decoding and an FFT per packet
    once, not on every check) and waits on packet arrival.

    `Standin.wait_until` is not woken by voice packets (only by gateway/REST changes), so audio
    waits here block on `GuildAudio.wait_for_packets` instead."""

    def __init__(self, audio: GuildAudio) -> None:
        self.audio = audio
        self._infos: list[PacketInfo] = []
        self._packets_seen: list | None = None

    def infos(self) -> list[PacketInfo]:
        if self.audio.packets is not self._packets_seen:  # GuildAudio.clear() swaps the list
            self._packets_seen = self.audio.packets
            self._infos = []
        decoded = self.audio.packet_pcm()
        packets = self.audio.packets
        for index in range(len(self._infos), min(len(decoded), len(packets))):
            samples = decoded[index]
            packet = packets[index]
            if samples is None:
                self._infos.append(PacketInfo(index, packet.arrival, packet.sequence, "undecodable", 0.0, 0.0))
                continue
            level = rms(samples)
            if level < SILENCE_RMS:
                self._infos.append(PacketInfo(index, packet.arrival, packet.sequence, "silence", 0.0, level))
            else:
                self._infos.append(PacketInfo(index, packet.arrival, packet.sequence, "sound",
                                              dominant_frequency(samples), level))
        return self._infos

    def sound_after(self, after: float) -> list[PacketInfo]:
        """Packets with sound that arrived after monotonic time `after`."""
        return [p for p in self.infos() if p.arrival > after and p.kind == "sound"]

    async def wait_for(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}; heard "
                                   f"{len(self.audio.packets)} packets")
            try:
                await self.audio.wait_for_packets(len(self.audio.packets) + 1, remaining)
            except TimeoutError:
                pass

    async def wait_for_tone(self, hz: float, *, after: float = 0.0, packets: int = 10,
                            timeout: float = 15.0) -> list[PacketInfo]:
        """Wait until `packets` sound packets at `hz` arrived after `after`; returns them."""

        def heard() -> list[PacketInfo] | None:
            found = [p for p in self.sound_after(after) if near(p.frequency, hz)]
            return found if len(found) >= packets else None

        return await self.wait_for(heard, timeout, f"{packets} packets of {hz} Hz")

    def level(self, packets: list[PacketInfo]) -> float:
        """RMS of the decoded samples of `packets` together."""
        decoded = self.audio.packet_pcm()
        return rms(np.concatenate([decoded[p.index] for p in packets]))


async def stop_music(music_bot: MusicBot, by: Member | None = None) -> None:
    """`by` (the member, by default) stops the music; then wait until nothing more is sent (the
    stop may have come before the track's first packet)."""
    reply = await music_bot.ask(by or music_bot.world.member, "!stop")
    assert reply.content.startswith("Stopped"), reply.content
    await music_bot.audio.wait_for_quiet(1.0, timeout=10, sound_expected=False)


def near(hz: float, target: float, tolerance: float = 15.0) -> bool:
    return abs(hz - target) <= tolerance


def queue_lines(message: Message) -> list[str]:
    """The numbered entries of a `queue` answer (`1.` **title** (0:03)), position-free."""
    return [line for line in message.text.splitlines() if re.match(r"^`?\d+\.`? ", line)]


def now_line(message: Message) -> str:
    return next((line for line in message.text.splitlines() if line.startswith("Now:")), "")


def since(started: float) -> float:
    return time.monotonic() - started

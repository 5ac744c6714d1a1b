"""Run a real, unmodified Red bot as a subprocess against the Discord stand-in.

    async with running_red(standin, tmp_path) as bot:
        reply = await bot_cmd(standin, world.owner, "!ping")
        assert reply.content == "Pong."

The instance uses Red's JSON backend in `root/data`; Red's instance list (config.json) is written
under `root/config`, which the child sees as XDG_CONFIG_HOME, so nothing touches the user's own
Red configuration. The child's stdout+stderr go to `root/red.log` (appended across restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from standin import Channel, Member, Message, Standin
from standin.process import stop_red

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RedInstance:
    """A Red instance on disk: `redbot-setup --no-prompt --backend json` without the prompt
    and without touching the real config dir."""

    name: str
    root: Path

    @property
    def config_home(self) -> Path:
        return self.root / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "red.log"

    @classmethod
    def create(cls, root: Path, name: str = "standin_red") -> RedInstance:
        instance = cls(name, Path(root))
        # Red's own layout (redbot.setup.basic_setup / data_manager.basic_config_default).
        config_file = instance.config_home / "Red-DiscordBot" / "config.json"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        instance.data_dir.mkdir(parents=True, exist_ok=True)
        existing = json.loads(config_file.read_text()) if config_file.exists() else {}
        existing[name] = {
            "DATA_PATH": str(instance.data_dir),
            "COG_PATH_APPEND": "cogs",
            "CORE_PATH_APPEND": "core",
            "STORAGE_TYPE": "JSON",
            "STORAGE_DETAILS": {},
        }
        config_file.write_text(json.dumps(existing, indent=4))
        return instance


class RedProcess:
    """One Red bot subprocess on `instance`, talking to `standin`."""

    def __init__(
        self,
        standin: Standin,
        instance: RedInstance,
        *,
        prefix: str = "!",
        extra_args: Sequence[str] = ("--no-cogs",),
        env: dict[str, str] | None = None,
        probe_channel: Channel | None = None,
        probe_member: Member | None = None,
    ) -> None:
        self.standin = standin
        self.instance = instance
        self.prefix = prefix
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.probe_channel = probe_channel
        self.probe_member = probe_member
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.instance.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.standin.red_env())
        env.update(
            XDG_CONFIG_HOME=str(self.instance.config_home),
            XDG_DATA_HOME=str(self.instance.root / "xdg-data"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
            PYTHONUNBUFFERED="1",
            # rich: a wide, colourless console makes the log readable
            COLUMNS="160",
            NO_COLOR="1",
            TERM="dumb",
        )
        env.update(self.extra_env)
        return env

    async def start(self, *, ready_timeout: float = 60.0) -> None:
        """Launch Red and wait until it has identified and answers a `ping` probe."""
        if self.proc is not None and self.proc.returncode is None:
            raise RuntimeError("Red is already running")
        identified_before = self.standin.gateway.identify_count
        self.starts += 1
        with self.instance.log_path.open("ab") as log_file:
            log_file.write(f"\n===== start {self.starts} =====\n".encode())
            log_file.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "standin.run_red", self.instance.name,
                "--token", self.standin.token, "--prefix", self.prefix, "--no-prompt",
                *self.extra_args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=asyncio.subprocess.STDOUT,
                env=self._env(), cwd=str(REPO_ROOT),
            )
        try:
            await self._race_exit(self._wait_ready(identified_before, ready_timeout), ready_timeout)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, identified_before: int, timeout: float) -> None:
        s = self.standin
        await s.wait_until(lambda: s.gateway.identify_count > identified_before, timeout,
                           "Red to IDENTIFY")
        channel = self.probe_channel or self._default_probe_channel()
        member = self.probe_member or s.guilds[channel.guild_id].members[s.owner.id]  # type: ignore[index]
        # Red queues commands until it is ready (before_invoke awaits wait_until_red_ready),
        # so one probe is enough: its answer means the bot is fully up.
        probe = await s.say(member, channel, f"{self.prefix}ping")
        await s.wait_for_message(channel, lambda m: m.content == "Pong.", after=probe, timeout=timeout)

    def _default_probe_channel(self) -> Channel:
        for guild in self.standin._bot_guilds():
            for channel in guild.channels:
                if channel.type == 0:
                    return channel
        raise RuntimeError("the stand-in has no guild text channel to probe Red's readiness in")

    async def _race_exit(self, coro, timeout: float) -> None:  # type: ignore[no-untyped-def]
        """Run `coro` but fail fast, with the log tail, if Red exits meanwhile."""
        assert self.proc is not None
        work = asyncio.ensure_future(coro)
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            done, _ = await asyncio.wait({work, exited}, timeout=timeout + 5,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, exited):
                if not task.done():
                    task.cancel()
        if work in done:
            work.result()
            return
        if exited in done:
            raise RuntimeError(f"Red exited with code {self.proc.returncode} before it was ready;"
                               f" log tail:\n{self.log_tail()}")
        raise TimeoutError(f"Red was not ready after {timeout}s; log tail:\n{self.log_tail()}")

    async def stop(self, *, timeout: float = 20.0) -> int | None:
        """SIGINT (Red's graceful shutdown), then SIGTERM, then SIGKILL. Returns the exit code."""
        return await stop_red(self.proc, graceful_wait=timeout)

    async def restart(self, *, ready_timeout: float = 60.0) -> None:
        """Stop and start again on the same data dir (persistence across restarts)."""
        await self.stop()
        await self.start(ready_timeout=ready_timeout)

    async def command(self, member: Member, content: str, *, channel: Channel | None = None,
                      timeout: float = 15.0) -> Message:
        return await bot_cmd(self.standin, member, content, channel=channel, timeout=timeout)


async def bot_cmd(standin: Standin, member: Member, content: str, *, channel: Channel | None = None,
                  predicate=None, timeout: float = 15.0) -> Message:  # type: ignore[no-untyped-def]
    """`member` says `content` (default channel: the guild's first text channel); returns the
    bot's first message in that channel after it (matching `predicate` if given)."""
    if channel is None:
        guild = standin.guilds[member.guild_id]
        channel = next(c for c in guild.channels if c.type == 0)
    said = await standin.say(member, channel, content)
    return await standin.wait_for_message(channel, predicate, after=said, timeout=timeout)


@contextlib.asynccontextmanager
async def running_red(
    standin: Standin,
    root: Path,
    *,
    name: str = "standin_red",
    prefix: str = "!",
    extra_args: Sequence[str] = ("--no-cogs",),
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> AsyncIterator[RedProcess]:
    """Create (or reuse) the instance under `root`, run Red until the block ends."""
    instance = RedInstance.create(root, name)
    bot = RedProcess(standin, instance, prefix=prefix, extra_args=extra_args, env=env)
    await bot.start(ready_timeout=ready_timeout)
    try:
        yield bot
    finally:
        await bot.stop()

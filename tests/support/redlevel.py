"""Running the cog inside a real, unconnected Red bot with real Config (see tests/red/)."""

from __future__ import annotations

import asyncio
import weakref

from redbot.core import config as config_module
from redbot.core._drivers import json as json_driver
from redbot.core.bot import Red

from music.cog import Music
from tests.support.fakevoice import FakeContext, FakeGuild, member_in


def new_red(*, forget_json_cache: bool = True) -> Red:
    """A fresh, unconnected Red on the test's data dir, as a new process would see it.

    The JSON driver keeps every cog's data in a module-level dict; a new process would not have
    it, so it is forgotten unless the caller wants it kept."""
    from redbot.core._cli import parse_cli_flags

    if forget_json_cache:
        config_module._config_cache = weakref.WeakValueDictionary()
        json_driver._shared_datastore.clear()
    return Red(cli_flags=parse_cli_flags(["ignore_me"]), description="test", dm_help=None, owner_ids=set())


class World:
    """A guild with a voice channel and a listener, plugged into a Red bot."""

    def __init__(self, red: Red) -> None:
        self.guild = FakeGuild()
        self.voice = self.guild.add_voice_channel()
        self.member = member_in(self.voice)
        self.attach(red)

    def attach(self, red: Red) -> None:
        self.red = red
        red.get_guild = lambda gid: self.guild if gid == self.guild.id else None  # type: ignore[method-assign]
        red._red_ready.set()  # an unconnected bot never becomes ready by itself

    def ctx(self) -> FakeContext:
        return FakeContext(self.red, self.guild, self.member)


async def load_cog(red: Red) -> Music:
    """Add the Music cog and wait until its ready gate opens."""
    cog = Music(red)
    await red.add_cog(cog)
    await asyncio.wait_for(cog.ready.wait(), 10)
    return cog

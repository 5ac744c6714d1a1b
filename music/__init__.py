"""Music for Red-DiscordBot: plays the web and the owner's local folder in voice channels.

Nothing from Red or discord.py is imported at package level, so `music.engine` stays importable
(and testable) without a bot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .i18n import _

if TYPE_CHECKING:
    from redbot.core.bot import Red

with open(Path(__file__).parent / "info.json", encoding="utf-8") as _fp:
    __red_end_user_data_statement__ = json.load(_fp)["end_user_data_statement"]


async def setup(bot: Red) -> None:
    from redbot.core.errors import CogLoadError

    # Core Audio owns the same command names (play, queue, skip...); discord.py would refuse
    # the duplicates and roll the load back with a confusing error, so say it plainly.
    if bot.get_cog("Audio") is not None:
        # Red shows this text as it is (it substitutes [p] only in install messages)
        p = await _display_prefix(bot)
        raise CogLoadError(
            _("The core Audio cog is loaded and uses the same commands; run `{p}unload audio` first, then `{p}load music`.").format(p=p)
        )
    from .cog import Music

    await bot.add_cog(Music(bot))


async def _display_prefix(bot: Red) -> str:
    """The bot's first prefix that isn't a mention, for sentences that name a command."""
    try:
        prefixes = await bot.get_valid_prefixes()
    except Exception:
        prefixes = []
    return next((p for p in prefixes if not p.startswith("<@")), "[p]")

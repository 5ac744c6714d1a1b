"""Menus for commands: the queue's pages with buttons, and search's pick (a select menu, or
the typed number as before: whichever comes first wins, once)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from redbot.core import commands

from ..engine.timefmt import format_duration
from ..formatting import track_line
from ..i18n import _
from ..ui.views import QueuePager, SearchPicker
from .base import listen_for_reply

if TYPE_CHECKING:
    from ..player import GuildPlayer
    from .base import MusicMixin

PAGE_SIZE = 10
# How long the queue's page buttons work; then they go away (a page is a snapshot anyway)
QUEUE_PAGES_TIMEOUT = 120.0
NO_MENTIONS = discord.AllowedMentions.none()


def queue_pages(player: GuildPlayer) -> list[str]:
    """The queue as pages of PAGE_SIZE entries; [] when nothing plays and nothing is queued."""
    current = player.queue.current
    upcoming = player.queue.upcoming
    if current is None and not upcoming:
        return []
    head = _("Now: {current}").format(current=track_line(current)) if current else _("Nothing playing.")
    total = sum(t.duration or 0 for t in upcoming)
    footer = ((_("{upcoming_count} track(s) queued, {total} in all. Repeat {repeat}, shuffle on.") if player.queue.shuffle else _("{upcoming_count} track(s) queued, {total} in all. Repeat {repeat}, shuffle off.")).format(upcoming_count=len(upcoming), total=format_duration(total), repeat=player.queue.repeat.value))
    pages_total = max(1, -(-len(upcoming) // PAGE_SIZE))
    pages: list[str] = []
    for start in range(0, max(len(upcoming), 1), PAGE_SIZE):
        lines = [head, ""]
        lines += [(_("`{position}.` {track} (autoplay)") if t.autoplay else _("`{position}.` {track}")).format(position=i, track=track_line(t))
                  for i, t in enumerate(upcoming[start : start + PAGE_SIZE], start + 1)]
        lines += ["", _("{footer} Page {page}/{pages_total}.").format(footer=footer, page=start // PAGE_SIZE + 1, pages_total=pages_total)]
        pages.append("\n".join(lines))
    return pages


async def send_pages(mixin: MusicMixin, ctx: commands.GuildContext, pages: Sequence[str], *, as_embeds: bool) -> None:
    """One page, with previous/next buttons for the author when there are more."""
    pager = QueuePager(ctx.author.id, pages, timeout=QUEUE_PAGES_TIMEOUT, as_embeds=as_embeds)
    if len(pages) == 1:
        await ctx.send(**pager.content(), allowed_mentions=NO_MENTIONS)
        return
    message = await ctx.send(**pager.content(), view=pager, allowed_mentions=NO_MENTIONS)
    pager.on_expire = lambda: message.edit(view=None)


@dataclass(frozen=True)
class Pick:
    index: int | None  # 0-based; None: cancelled or timed out
    timed_out: bool = False


async def pick_result(mixin: MusicMixin, ctx: commands.GuildContext, prompt: str, labels: Sequence[str],
                      timeout: float) -> Pick:
    """Show `prompt` with a select menu of `labels`; the author picks there or types a number.
    The first answer counts: a later one is ignored (the menu says so privately)."""
    loop = asyncio.get_running_loop()
    picked: asyncio.Future[int] = loop.create_future()

    def on_pick(index: int) -> bool:
        if picked.done():
            return False
        picked.set_result(index)
        return True

    picker = SearchPicker(ctx.author.id, labels, on_pick, timeout=timeout)
    typed = listen_for_reply(ctx, timeout)  # before the prompt goes out
    typed.add_done_callback(lambda task: task.cancelled() or task.exception())  # a lost race is no error
    message: discord.Message | None = None
    try:
        message = await mixin.say(ctx, prompt, view=picker)
        waits: set[asyncio.Future[Any]] = {typed, picked}
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        typed.cancel()
        picker.stop()
        if not picked.done():
            picked.cancel()  # a menu pick from now on is told it came too late
            if message is not None:
                with contextlib.suppress(discord.HTTPException):
                    await message.edit(view=None)
    if not picked.cancelled():
        index = picked.result()
        return Pick(index if 0 <= index < len(labels) else None)
    if typed.done() and not typed.cancelled() and typed.exception() is None:
        choice = typed.result().content.strip()
        if choice.isdigit() and 1 <= int(choice) <= len(labels):
            return Pick(int(choice) - 1)
        return Pick(None)
    return Pick(None, timed_out=True)

"""Queue tools: `queue clean`, `queue cleanself`, `queue search`, `queue dedupe`, and the range
and member forms of `queue remove` (its command is in queue.py and calls `remove_target`).

The subcommands hang on the `queue` group that QueueCommands defines: discord.py matches a
cog's subcommands to their group by qualified name when the cog is built, whichever mixin
declares them, so `@QueueCommands.queue.command` here is the same group the chat sees.
"""

from __future__ import annotations

import re
from typing import cast

from redbot.core import commands
from redbot.core.utils.chat_formatting import pagify
from redbot.core.utils.menus import menu

from ..control.queue_tools import QueueTools
from ..engine.track import Track
from ..formatting import track_line
from ..i18n import _
from .base import CommandError, MusicMixin, _ChatControl
from .queue import QueueCommands

RANGE = re.compile(r"^\s*(\d{1,6})\s*(?:-|\.\.|to)\s*(\d{1,6})\s*$")
SHOWN = 5  # titles named in a reply before "and n more"


def removed_reply(removed: list[Track], what: str) -> str:
    """`Removed 3 tracks ...: **a**, **b**, **c**.`"""
    names = ", ".join(track_line(t) for t in removed[:SHOWN])
    more = _(" and {count} more").format(count=len(removed) - SHOWN) if len(removed) > SHOWN else ""
    return (_("Removed {removed_count} track {what}: {names}{more}.") if len(removed) == 1 else _("Removed {removed_count} tracks {what}: {names}{more}.")).format(removed_count=len(removed), what=what, names=names, more=more)


def tools(mixin: MusicMixin) -> QueueTools:
    """The queue-tool intents, with their refusals raised as CommandError."""
    assert mixin.control is not None
    return cast(QueueTools, _ChatControl(mixin.control.queue_tools))


async def remove_target(mixin: MusicMixin, ctx: commands.GuildContext, target: str) -> None:
    """`queue remove <n>`, `<first>-<last>` or `<member>`."""
    actor = await mixin.actor(ctx)
    text = target.strip()
    if text.isdigit():
        track = mixin.ctl.remove(ctx.guild.id, actor, int(text))
        await mixin.say(ctx, _("Removed {track}.").format(track=track_line(track)))
        return
    span = RANGE.match(text)
    if span:
        first, last = sorted((int(span[1]), int(span[2])))
        removed = tools(mixin).remove_range(ctx.guild.id, actor, first, last)
        await mixin.say(ctx, removed_reply(removed, _("(positions {first} to {last})").format(first=first, last=last)))
        return
    try:
        member = await commands.MemberConverter().convert(ctx, text)
    except commands.BadArgument:
        raise CommandError(_("Give a queue position (`3`), a range (`3-7`) or a member.")) from None
    removed = tools(mixin).remove_member(ctx.guild.id, actor, member.id)
    await mixin.say(ctx, removed_reply(removed, _("queued by {mention}").format(mention=member.mention)))


class QueueToolCommands(MusicMixin):
    @QueueCommands.queue.command(name="clean")
    async def queue_clean(self, ctx: commands.GuildContext) -> None:
        """Remove the tracks of members who left the voice channel (DJs)."""
        listeners = frozenset(m.id for m in self.human_listeners(ctx))
        removed = tools(self).clean(ctx.guild.id, await self.actor(ctx), listeners)
        if not removed:
            await self.say(ctx, _("Nothing to clean: everyone with a queued track is in the voice channel."))
            return
        await self.say(ctx, removed_reply(removed, _("queued by members who left the voice channel")))

    @QueueCommands.queue.command(name="cleanself")
    async def queue_cleanself(self, ctx: commands.GuildContext) -> None:
        """Remove every track you queued."""
        removed = tools(self).clean_self(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, removed_reply(removed, _("you queued")))

    @QueueCommands.queue.command(name="dedupe")
    async def queue_dedupe(self, ctx: commands.GuildContext) -> None:
        """Remove tracks queued more than once (the first of each stays) (DJs)."""
        removed = tools(self).dedupe(ctx.guild.id, await self.actor(ctx))
        if not removed:
            await self.say(ctx, _("No track is queued twice."))
            return
        await self.say(ctx, removed_reply(removed, _("queued more than once")))

    @QueueCommands.queue.command(name="search")
    async def queue_search(self, ctx: commands.GuildContext, *, text: str) -> None:
        """Find queued tracks by words in their title or uploader."""
        found = tools(self).search(ctx.guild.id, await self.actor(ctx), text)
        if not found:
            await self.say(ctx, _("No queued track matches that."))
            return
        lines = [f"`{n}.` {track_line(t)}" for n, t in found]
        head = (_("{found_count} queued tracks match:") if len(found) != 1 else _("{found_count} queued track match:")).format(found_count=len(found))
        pages = list(pagify("\n".join([head, *lines]), page_length=1900))
        if len(pages) == 1:
            await self.say(ctx, pages[0])
        else:
            await menu(ctx, pages)

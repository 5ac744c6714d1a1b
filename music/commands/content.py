"""`musicset autoplay`, `musicset maxvolume`, and the block and allow lists (`musicset
blocklist ...`, `musicset allowlist ...`, each with a `global` group for the bot owner).

They hang on the `musicset` group that SettingsCommands defines (discord.py matches a cog's
subcommands to their group by qualified name, whichever mixin declares them).
"""

from __future__ import annotations

from typing import Optional, cast

from redbot.core import commands
from redbot.core.utils.chat_formatting import box, pagify

from ..control.autoplay import AutoplayControl
from ..control.content import ContentControl, RuleList
from ..formatting import safe
from ..i18n import _
from .base import MusicMixin, _ChatControl
from .settings import SettingsCommands

BLOCK, ALLOW = RuleList("block"), RuleList("allow")
BLOCK_GLOBAL, ALLOW_GLOBAL = RuleList("block", bot_wide=True), RuleList("allow", bot_wide=True)



class ContentCommands(MusicMixin):
    def _content(self) -> ContentControl:
        assert self.control is not None
        return cast(ContentControl, _ChatControl(self.control.content))

    def _autoplay(self) -> AutoplayControl:
        assert self.control is not None
        return cast(AutoplayControl, _ChatControl(self.control.autoplay))

    # -- autoplay and the volume cap -------------------------------------------------------------

    @SettingsCommands.musicset.command(name="autoplay")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_autoplay(self, ctx: commands.GuildContext, *, choice: Optional[str] = None) -> None:
        """What plays when the queue runs dry: a saved playlist's name, `related` or `off`.

        A playlist plays at random, repeating none of the last 10 tracks (or, for a shorter
        playlist, none of its others). `related` plays what the site lists as related to the
        last track (YouTube, SoundCloud), else the playlist set before, else it stops and says
        why. A member's `play` takes over at the next track change."""
        if choice is None:
            settings = self.store.guild(ctx.guild.id)
            await self.say(ctx, _autoplay_sentence(settings.autoplay_mode, settings.autoplay_playlist))
            return
        mode, playlist = await self._autoplay().set_mode(ctx.guild.id, await self.actor(ctx), choice)
        await self.say(ctx, _autoplay_sentence(mode, playlist))

    @SettingsCommands.musicset.command(name="maxvolume")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_maxvolume(self, ctx: commands.GuildContext, percent: int) -> None:
        """The highest volume anyone may set here, from 1 to 150 (admins too: raise this first).
        A louder player or default is turned down to it."""
        value = await self._content().set_max_volume(ctx.guild.id, await self.actor(ctx), percent)
        await self.say(ctx, _("The volume can be set up to {max_volume}% here.").format(max_volume=value))

    # -- the lists ---------------------------------------------------------------------------

    async def _add(self, ctx: commands.GuildContext, which: RuleList, rule: str) -> None:
        added = await self._content().add_rule(ctx.guild.id, await self.actor(ctx), which, rule)
        reply = _("Added `{added}` to {describe}.").format(added=added, describe=which.describe())
        if which.kind == "allow" and len(self._content().rules(ctx.guild.id, await self.actor(ctx), which)) == 1:
            reply += _(" From now on only what matches the allow list plays") + (_(" anywhere.") if which.bot_wide else _(" here."))
        await self.say(ctx, reply)

    async def _remove(self, ctx: commands.GuildContext, which: RuleList, rule: str) -> None:
        removed = await self._content().remove_rule(ctx.guild.id, await self.actor(ctx), which, rule)
        await self.say(ctx, _("Removed `{removed}` from {describe}.").format(removed=removed, describe=which.describe()))

    async def _list(self, ctx: commands.GuildContext, which: RuleList) -> None:
        rules = self._content().rules(ctx.guild.id, await self.actor(ctx), which)
        if not rules:
            await self.say(ctx, _("{describe} is empty.").format(describe=which.describe().capitalize()))
            return
        for page in pagify("\n".join(rules), page_length=1800):
            await self.say(ctx, f"{which.describe()[:1].upper()}{which.describe()[1:]}:\n{box(page)}")

    async def _clear(self, ctx: commands.GuildContext, which: RuleList) -> None:
        count = await self._content().clear_rules(ctx.guild.id, await self.actor(ctx), which)
        await self.say(ctx, (_("Cleared {describe} ({count} rules).") if count != 1 else _("Cleared {describe} ({count} rule).")).format(describe=which.describe(), count=count))

    @SettingsCommands.musicset.group(name="blocklist")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_blocklist(self, ctx: commands.GuildContext) -> None:
        """Keywords and domains that never play in this server.

        A rule is a keyword or a domain. A keyword matches anywhere in a track's title, its
        uploader or its site's name (`remix`); a domain (`example.com`, or a link to it) matches
        that site and its subdomains. Checked for every track however it is queued (play,
        playlists, autoplay, the RPC API), and again when it comes to play."""

    @musicset_blocklist.command(name="add")
    async def blocklist_add(self, ctx: commands.GuildContext, *, rule: str) -> None:
        """Block a keyword or a domain here."""
        await self._add(ctx, BLOCK, rule)

    @musicset_blocklist.command(name="remove", aliases=["delete"])
    async def blocklist_remove(self, ctx: commands.GuildContext, *, rule: str) -> None:
        """Remove a rule from this server's block list."""
        await self._remove(ctx, BLOCK, rule)

    @musicset_blocklist.command(name="list")
    async def blocklist_list(self, ctx: commands.GuildContext) -> None:
        """Show this server's block list."""
        await self._list(ctx, BLOCK)

    @musicset_blocklist.command(name="clear")
    async def blocklist_clear(self, ctx: commands.GuildContext) -> None:
        """Remove every rule from this server's block list."""
        await self._clear(ctx, BLOCK)

    @musicset_blocklist.group(name="global")
    @commands.is_owner()
    async def blocklist_global(self, ctx: commands.GuildContext) -> None:
        """The bot's block list (owner): nothing matching it plays in any server."""

    @blocklist_global.command(name="add")
    async def blocklist_global_add(self, ctx: commands.GuildContext, *, rule: str) -> None:
        """Block a keyword or a domain in every server."""
        await self._add(ctx, BLOCK_GLOBAL, rule)

    @blocklist_global.command(name="remove", aliases=["delete"])
    async def blocklist_global_remove(self, ctx: commands.GuildContext, *, rule: str) -> None:
        """Remove a rule from the bot's block list."""
        await self._remove(ctx, BLOCK_GLOBAL, rule)

    @blocklist_global.command(name="list")
    async def blocklist_global_list(self, ctx: commands.GuildContext) -> None:
        """Show the bot's block list."""
        await self._list(ctx, BLOCK_GLOBAL)

    @blocklist_global.command(name="clear")
    async def blocklist_global_clear(self, ctx: commands.GuildContext) -> None:
        """Remove every rule from the bot's block list."""
        await self._clear(ctx, BLOCK_GLOBAL)

    @SettingsCommands.musicset.group(name="allowlist")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_allowlist(self, ctx: commands.GuildContext) -> None:
        """When not empty, only what matches one of these keywords or domains plays here.

        Rules are written as for `musicset blocklist`; the block lists still apply."""

    @musicset_allowlist.command(name="add")
    async def allowlist_add(self, ctx: commands.GuildContext, *, rule: str) -> None:
        """Allow a keyword or a domain here (the first rule makes it the only thing that plays)."""
        await self._add(ctx, ALLOW, rule)

    @musicset_allowlist.command(name="remove", aliases=["delete"])
    async def allowlist_remove(self, ctx: commands.GuildContext, *, rule: str) -> None:
        """Remove a rule from this server's allow list."""
        await self._remove(ctx, ALLOW, rule)

    @musicset_allowlist.command(name="list")
    async def allowlist_list(self, ctx: commands.GuildContext) -> None:
        """Show this server's allow list."""
        await self._list(ctx, ALLOW)

    @musicset_allowlist.command(name="clear")
    async def allowlist_clear(self, ctx: commands.GuildContext) -> None:
        """Remove every rule from this server's allow list: anything may play again."""
        await self._clear(ctx, ALLOW)

    @musicset_allowlist.group(name="global")
    @commands.is_owner()
    async def allowlist_global(self, ctx: commands.GuildContext) -> None:
        """The bot's allow list (owner): when not empty, only what matches it plays anywhere."""

    @allowlist_global.command(name="add")
    async def allowlist_global_add(self, ctx: commands.GuildContext, *, rule: str) -> None:
        """Allow a keyword or a domain in every server (the first rule restricts every server)."""
        await self._add(ctx, ALLOW_GLOBAL, rule)

    @allowlist_global.command(name="remove", aliases=["delete"])
    async def allowlist_global_remove(self, ctx: commands.GuildContext, *, rule: str) -> None:
        """Remove a rule from the bot's allow list."""
        await self._remove(ctx, ALLOW_GLOBAL, rule)

    @allowlist_global.command(name="list")
    async def allowlist_global_list(self, ctx: commands.GuildContext) -> None:
        """Show the bot's allow list."""
        await self._list(ctx, ALLOW_GLOBAL)

    @allowlist_global.command(name="clear")
    async def allowlist_global_clear(self, ctx: commands.GuildContext) -> None:
        """Remove every rule from the bot's allow list."""
        await self._clear(ctx, ALLOW_GLOBAL)


def _autoplay_sentence(mode: str, playlist: str | None) -> str:
    named = f"**{safe(playlist, limit=80)}**" if playlist else None
    if mode == "playlist" and named:
        return _("Autoplay is on: when the queue runs dry, random tracks from {named} play.").format(named=named)
    if mode == "related":
        fallback = _("from {named}").format(named=named) if named else _("nothing (it stops and says why)")
        return (_("Autoplay is on: when the queue runs dry, tracks related to the last one play "
                "(YouTube, SoundCloud); where there are none, {fallback}.").format(fallback=fallback))
    return _("Autoplay is off.")

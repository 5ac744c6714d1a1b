"""`playlist ...`: saved playlists, with Red Audio's command names and `--scope` options.

Thin front door: parse the name and the options, say who asks, call one intent of
`control.playlists`, render. Files (`download`, `upload`) and the import from Red's Audio are in
playlist_files.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import cast

import discord
from redbot.core import commands
from redbot.core.utils.menus import menu

from ..control import Actor
from ..control.playlists import PlaylistControl, Started
from ..engine.admission import summarise_refusals
from ..engine.timefmt import format_duration, progress_bar
from ..formatting import safe, track_line
from ..i18n import _
from ..playlists.model import Playlist, PlaylistError, Scope, Where
from ..playlists.scopes import ScopeArgs, parse_copy_options, parse_scope_options
from . import hybrid
from .base import CommandError, MusicMixin, _ChatControl

PAGE_SIZE = 10
PROGRESS_EDIT_INTERVAL = 1.0
_ID = re.compile(r"^<?(?:@!?|#)?(\d{15,21})>?$")

def where_name(where: Where, who: Callable[[int], str] | None = None) -> str:
    """How a reply names a scope: "server", "<@id>'s" (inert: replies send no mentions) or
    "global". Pages sent through Red's menus name members with `who` instead (the menu's
    messages would ping a mention)."""
    if where.scope is Scope.USER:
        return _("{member}'s").format(member=who(where.scope_id) if who else f'<@{where.scope_id}>')
    return _("global") if where.scope is Scope.GLOBAL else _("server")


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


class PlaylistCommands(MusicMixin):
    @property
    def lists(self) -> PlaylistControl:
        """The saved-playlist intents, with refusals raised as CommandError."""
        assert self.control is not None
        return cast(PlaylistControl, _ChatControl(self.control.playlists))

    # -- options ------------------------------------------------------------------------------

    async def scope_of(self, ctx: commands.GuildContext, options: ScopeArgs, *, default: bool) -> Where | None:
        """The scope the options name; with none given, this server's (`default`) or None
        (the intent then looks in this server's, the author's own and the global ones)."""
        scope = options.scope
        if scope is None and options.author is not None:
            scope = Scope.USER
        if options.guild is not None:
            if not await ctx.bot.is_owner(ctx.author):
                raise CommandError(_("Only the bot owner can use `--guild`."))
            guild_id = self._find_guild(ctx, options.guild)
            if scope in (None, Scope.SERVER):
                return Where.server(guild_id)
        if scope is None:
            return Where.server(ctx.guild.id) if default else None
        if scope is Scope.SERVER:
            return Where.server(ctx.guild.id)
        if scope is Scope.GLOBAL:
            return Where.global_()
        return Where.user(self._find_member(ctx, options.author) if options.author else ctx.author.id)

    def _find_guild(self, ctx: commands.GuildContext, text: str) -> int:
        match = _ID.match(text)
        if match and ctx.bot.get_guild(int(match[1])) is not None:
            return int(match[1])
        found = [g for g in ctx.bot.guilds if g.name == text]
        if len(found) != 1:
            raise CommandError(_("`--guild` takes a server's id or its exact name (one the bot is in)."))
        return found[0].id

    def _find_member(self, ctx: commands.GuildContext, text: str) -> int:
        match = _ID.match(text)
        if match:
            return int(match[1])
        members = list(getattr(ctx.guild, "members", ()))
        found = {m.id for m in members if text in (m.name, getattr(m, "global_name", None), m.display_name, str(m))}
        if len(found) != 1:
            raise CommandError(_("`--author` takes a member's mention, id or exact name."))
        return found.pop()

    async def _named(self, ctx: commands.GuildContext, args: str, *, default: bool = False) -> tuple[str, Where | None]:
        """The words before the options, and the scope."""
        try:
            text, options = parse_scope_options(args)
        except PlaylistError as exc:
            raise CommandError(exc.sentence) from None
        return text, await self.scope_of(ctx, options, default=default)

    # -- the group ------------------------------------------------------------------------------

    @hybrid.group(name="playlist")  # its subcommands are hybrid too (Red's HybridGroup)
    @commands.guild_only()
    async def playlist(self, ctx: commands.GuildContext) -> None:
        """Saved playlists, in three scopes.

        **Server** playlists (the default) belong to this server: its members play them; their
        author, DJs, mods and admins change them. **User** playlists are a member's own, in every
        server (`--scope user`). **Global** playlists are the bot owner's, for every server.
        Names with spaces need quotes: `[p]playlist create "road trip"`.

        Options, as in Red's Audio, go last: `--scope server|user|global`, `--author <member>`
        (a member's own playlists), `--guild <server>` (bot owner). Without `--scope`, a name is
        looked for in this server's playlists, then yours, then the global ones.
        """

    @playlist.command(name="start", aliases=["play"], usage="<name> [--scope ...]")
    async def playlist_start(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Play a saved playlist: its first entry at once, the rest queued after it.

        The server's queue, length and per-member limits apply to every entry, as for `play`.
        """
        _name, where = await self._named(ctx, args)
        actor = await self.actor(ctx)
        where = await self.lists.locate(ctx.guild.id, actor, name, where)  # before joining voice
        await self.join_author(ctx)
        started = await self.lists.start(ctx.guild.id, actor, name, where)
        first = started.enqueued
        if not first.tracks:  # the block or allow list skipped the first entry (first.notes)
            reply = _("Queueing the rest of **{name}**.").format(name=safe(started.playlist.name))
            message = await self.say(ctx, " ".join([*first.notes, reply]))
            assert self.manager is not None and started.rest is not None
            self.manager.spawn(self._queue_rest(ctx, actor, started, message))
            return
        if first.starting:
            reply = _("Playing {track} from {where} playlist **{name}**.").format(track=track_line(first.tracks[0]), where=where_name(started.playlist.where), name=safe(started.playlist.name))
        else:
            reply = self.queued_reply(first.tracks, first.place, started.playlist.name)
        message = await self.say(ctx, " ".join([reply, *first.notes]))
        if started.rest is not None:
            assert self.manager is not None
            self.manager.spawn(self._queue_rest(ctx, actor, started, message))

    async def _queue_rest(self, ctx: commands.GuildContext, actor: Actor, started: Started,
                          reply: discord.Message) -> None:
        """Queue the other entries through the control layer, editing the reply with the
        progress (at most once a second) and then what was added and left out."""
        rest = started.rest
        assert rest is not None and self.control is not None
        title = safe(started.playlist.name)
        counts = [0, 0]
        last_edit = 0.0

        async def edit(text: str) -> None:
            with contextlib.suppress(discord.HTTPException):
                await reply.edit(content=text, allowed_mentions=discord.AllowedMentions.none())

        async def show(added: int, left_out: int) -> None:
            nonlocal last_edit
            counts[:] = [added, left_out]
            now = asyncio.get_running_loop().time()
            if now - last_edit >= PROGRESS_EDIT_INTERVAL:
                last_edit = now
                done = added + left_out
                await edit(_("Queueing **{title}**: `{bar}` {done}/{expected}").format(title=title, bar=progress_bar(done, rest.expected, width=20), done=done, expected=rest.expected))

        refusals: list[str] = []  # entries the block and allow lists skipped, with their rule
        try:
            counts[:] = await self.control.enqueue_rest(ctx.guild.id, actor, rest, None, show, refusals=refusals)
        finally:
            added, left_out = counts
            total = added + len(started.enqueued.tracks)
            parts = [(_("Queued {total} tracks from **{title}**.") if total != 1 else _("Queued {total} track from **{title}**.")).format(total=total, title=title)]
            if left_out:
                parts.append(_("{left_out} left out by this server's queue, length or per-member limits.").format(left_out=left_out))
            parts += summarise_refusals(refusals)
            await edit(" ".join(parts))

    @playlist.command(name="save", aliases=["queue"], usage="<name> [link | --history] [--scope ...]")
    async def playlist_save(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Save the current track and the queue, in order, as a new playlist.

        With a link (Red Audio's `playlist save <name> <url>`), save what the link holds instead;
        with `--history`, what played recently (oldest first, up to the current track).
        """
        words = args.split()
        history = "--history" in words
        if history:
            args = " ".join(w for w in words if w != "--history")
        link, where = await self._named(ctx, args, default=True)
        assert where is not None
        actor = await self.actor(ctx)
        if history:
            if link:
                raise CommandError(_("Give either a link or `--history`, not both."))
            changed = await self.lists.save_history(ctx.guild.id, actor, where, name)
        elif link:
            async with ctx.typing():
                changed = await self.lists.save_link(ctx.guild.id, actor, where, name, link)
        else:
            changed = await self.lists.save_queue(ctx.guild.id, actor, where, name)
        parts = [(_("Saved {added} tracks as {where} playlist **{name}**.") if changed.added != 1 else _("Saved {added} track as {where} playlist **{name}**.")).format(added=changed.added, where=where_name(where), name=safe(changed.playlist.name))]
        if changed.left_out:
            parts.append(_("{left_out} did not fit (the limit is {added} entries).").format(left_out=changed.left_out, added=changed.added))
        await self.say(ctx, " ".join(parts + [safe(n, limit=300) for n in changed.notes]))

    @playlist.command(name="create", usage="<name> [--scope ...]")
    async def playlist_create(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Make an empty playlist; `playlist append` adds to it."""
        _name, where = await self._named(ctx, args, default=True)
        assert where is not None
        changed = await self.lists.create(ctx.guild.id, await self.actor(ctx), where, name)
        await self.say(ctx, _("Made the empty {where} playlist **{name}**.").format(where=where_name(where), name=safe(changed.playlist.name)))

    @playlist.command(name="append", usage="<name> <link or search> [--scope ...]")
    async def playlist_append(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Add a track, a playlist link's entries or a search's first result at the end.

        Entries already in the playlist are skipped.
        """
        query, where = await self._named(ctx, args)
        if not query:
            raise CommandError(_("Give a link, or words to search for, after the playlist's name."))
        actor = await self.actor(ctx)
        shown: list[discord.Message] = []  # a progress line, once a playlist link takes a while
        last = [asyncio.get_running_loop().time()]

        async def progress(found: int, expected: int | None) -> None:
            now = asyncio.get_running_loop().time()
            if now - last[0] < PROGRESS_EDIT_INTERVAL:
                return
            last[0] = now
            text = _("Looking that up: {found}/{expected} entries.").format(found=found, expected=expected or '?')
            with contextlib.suppress(discord.HTTPException):
                if shown:
                    await shown[0].edit(content=text)
                else:
                    shown.append(await self.say(ctx, text))

        async with ctx.typing():
            changed = await self.lists.append(ctx.guild.id, actor, name, where, query, progress)
        playlist = changed.playlist
        parts = [(_("Added {added} tracks to {where} playlist **{name}** ({entries_count} in all).") if changed.added != 1 else _("Added {added} track to {where} playlist **{name}** ({entries_count} in all).")).format(added=changed.added, where=where_name(playlist.where), name=safe(playlist.name), entries_count=len(playlist.entries))]
        if changed.skipped:
            parts.append((_("{skipped} was already in it.") if changed.skipped == 1 else _("{skipped} were already in it.")).format(skipped=changed.skipped))
        if changed.left_out:
            parts.append(_("{left_out} did not fit: the playlist is full.").format(left_out=changed.left_out))
        text = " ".join(parts + [safe(n, limit=300) for n in changed.notes])
        if shown:
            with contextlib.suppress(discord.HTTPException):
                await shown[0].edit(content=text, allowed_mentions=discord.AllowedMentions.none())
                return
        await self.say(ctx, text)

    @playlist.command(name="remove", usage="<name> <number or link> [--scope ...]")
    async def playlist_remove(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Remove an entry by its number in `playlist info`, or every entry of a link."""
        target, where = await self._named(ctx, args)
        if not target:
            raise CommandError(_("Give the entry's number (see `playlist info`), or its link."))
        playlist, removed = await self.lists.remove(ctx.guild.id, await self.actor(ctx), name, where, target)
        what = f"{track_line(removed[0])}" if isinstance(removed, list) else (_("{removed} entry") if removed == 1 else _("{removed} entries")).format(removed=removed)
        await self.say(ctx, _("Removed {what} from **{name}** ({entries_count} left).").format(what=what, name=safe(playlist.name), entries_count=len(playlist.entries)))

    @playlist.command(name="list", usage="[--scope ...]")
    async def playlist_list(self, ctx: commands.GuildContext, *, args: str = "") -> None:
        """List the playlists of this server, yours and the global ones (or one `--scope`)."""
        _name, where = await self._named(ctx, args)
        sections = await self.lists.summaries(ctx.guild.id, await self.actor(ctx), where)
        who = self._who(ctx)
        lines: list[str] = []
        for scope, found in sections:
            if where is None and not found:
                continue
            lines.append(_("__{scope} playlists__ ({found_count})").format(scope=_upper_first(where_name(scope, who)), found_count=len(found)))
            for summary in found:
                by = _(", by {author_id}").format(author_id=who(summary.author_id)) if summary.author_id else ""
                count = summary.count
                lines.append((_("**{name}**: {count} entry, {duration}{by}") if count == 1 else _("**{name}**: {count} entries, {duration}{by}")).format(name=safe(summary.name), count=count, duration=format_duration(summary.duration), by=by))
            if not found:
                lines.append("none")
        if not lines:
            await self.say(ctx, _("There are no playlists here yet: `playlist save <name>` saves the queue."))
            return
        await self._pages(ctx, _("Playlists"), [lines[i:i + 15] for i in range(0, len(lines), 15)])

    @playlist.command(name="info", usage="<name> [--scope ...]")
    async def playlist_info(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Show a playlist's entries, ten to a page."""
        _name, where = await self._named(ctx, args)
        playlist = await self.lists.get(ctx.guild.id, await self.actor(ctx), name, where)
        await self._pages(ctx, f"{playlist.name}", _info_pages(playlist, self._who(ctx)))

    @playlist.command(name="rename", usage="<name> <new name> [--scope ...]")
    async def playlist_rename(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Give a playlist a new name."""
        new_name, where = await self._named(ctx, args)
        old, playlist = await self.lists.rename(ctx.guild.id, await self.actor(ctx), name, where, new_name)
        await self.say(ctx, _("Renamed **{old}** to **{name}**.").format(old=safe(old), name=safe(playlist.name)))

    @playlist.command(name="copy", usage="<name> [new name] [--from-scope s] [--to-scope s] ...")
    async def playlist_copy(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Copy a playlist into another scope (or under a new name).

        `--from-scope`/`--to-scope`, `--from-author`/`--to-author` and `--from-guild`/`--to-guild`
        (bot owner) say where from and where to; by default from this server's (or yours, or
        global) to this server's.
        """
        try:
            new_name, source_options, target_options = parse_copy_options(args)
        except PlaylistError as exc:
            raise CommandError(exc.sentence) from None
        source = await self.scope_of(ctx, source_options, default=False)
        target = await self.scope_of(ctx, target_options, default=True)
        assert target is not None
        found, changed = await self.lists.copy(ctx.guild.id, await self.actor(ctx), name, source, target, new_name or None)
        note = _(" ({left_out} entries did not fit)").format(left_out=changed.left_out) if changed.left_out else ""
        await self.say(ctx, _("Copied {found} playlist **{name}** to {target} "
                            "playlist **{new_name}**: {added} entries{note}.").format(found=where_name(found), name=safe(name), target=where_name(target), new_name=safe(changed.playlist.name), added=changed.added, note=note))

    @playlist.command(name="dedupe", usage="<name> [--scope ...]")
    async def playlist_dedupe(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Remove repeated entries (the same link), keeping the first of each."""
        _name, where = await self._named(ctx, args)
        playlist, removed = await self.lists.dedupe(ctx.guild.id, await self.actor(ctx), name, where)
        if not removed:
            await self.say(ctx, _("**{name}** has no repeated entries.").format(name=safe(playlist.name)))
            return
        await self.say(ctx, (_("Removed {removed} repeated entry from **{name}**.") if removed == 1 else _("Removed {removed} repeated entries from **{name}**.")).format(removed=removed, name=safe(playlist.name)))

    @playlist.command(name="delete", aliases=["del"], usage="<name> [--scope ...]")
    async def playlist_delete(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Delete a playlist (its author, DJs, mods and admins may; for your own, you)."""
        _name, where = await self._named(ctx, args)
        playlist = await self.lists.delete(ctx.guild.id, await self.actor(ctx), name, where)
        await self.say(ctx, _("Deleted {where} playlist **{name}**.").format(where=where_name(playlist.where), name=safe(playlist.name)))

    # -- pages ----------------------------------------------------------------------------------

    def _who(self, ctx: commands.GuildContext) -> Callable[[int], str]:
        """A member's name for pages (escaped), or "user <id>" when the bot can't see them."""

        def name(user_id: int) -> str:
            get_member = getattr(ctx.guild, "get_member", None)
            found = (get_member(user_id) if get_member else None) or ctx.bot.get_user(user_id)
            shown = safe(getattr(found, "display_name", None), limit=40)
            return shown or _("user {user_id}").format(user_id=user_id)

        return name

    async def _pages(self, ctx: commands.GuildContext, title: str, pages: list[list[str]]) -> None:
        """One message, or Red's menu for several pages (embeds when the channel wants them)."""
        texts = [_("{lines}\n\nPage {n}/{pages_count}").format(lines=chr(10).join(lines), n=n, pages_count=len(pages)) if len(pages) > 1 else chr(10).join(lines)
                 for n, lines in enumerate(pages, 1)]
        if await ctx.embed_requested():
            embeds = [discord.Embed(title=safe(title), description=t) for t in texts]
            if len(embeds) == 1:
                await ctx.send(embed=embeds[0], allowed_mentions=discord.AllowedMentions.none())
            else:
                await menu(ctx, embeds)
        elif len(texts) == 1:
            await self.say(ctx, texts[0])
        else:
            await menu(ctx, texts)


def _info_pages(playlist: Playlist, who: Callable[[int], str]) -> list[list[str]]:
    author = _("by {author_id}").format(author_id=who(playlist.author_id)) if playlist.author_id else _("author unknown")
    head = [(_("{where} playlist **{name}**, {author}: {entries_count} entry, {duration}.") if len(playlist.entries) == 1 else _("{where} playlist **{name}**, {author}: {entries_count} entries, {duration}.")).format(where=_upper_first(where_name(playlist.where, who)), name=safe(playlist.name), author=author, entries_count=len(playlist.entries), duration=format_duration(playlist.duration))]
    if playlist.source_url:
        head.append(_("Made from <{source_url}>").format(source_url=playlist.source_url[:300]))
    if not playlist.entries:
        return [head + ["", _("No entries yet: `playlist append` adds some.")]]
    return [head + [""] + [f"`{n}.` {track_line(e)}" for n, e in enumerate(playlist.entries[i:i + PAGE_SIZE], i + 1)]
            for i in range(0, len(playlist.entries), PAGE_SIZE)]


__all__ = ["PlaylistCommands", "where_name"]

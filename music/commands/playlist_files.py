"""Playlist files (`playlist download`, `playlist upload`), the playlist limits and the import
from Red's core Audio cog (`musicset playlistlimits`, `musicset import audio`)."""

from __future__ import annotations

import asyncio
import io
from typing import Any, Optional

import discord
from redbot.core import commands
from redbot.core.data_manager import cog_data_path
from redbot.core.utils.chat_formatting import humanize_list, pagify

from ..control.playlist_import import AudioImportReport
from ..formatting import safe
from ..i18n import _, deferred
from ..playlists.formats import MAX_FILE_BYTES
from ..playlists.model import Where
from ..playlists.store import LIMITS
from .base import CommandError
from .playlists import PlaylistCommands, where_name
from .settings import SettingsCommands

UPLOAD_WAIT = 30.0
DISCORD_FILE_LIMIT = 8 * 1024 * 1024  # the smallest upload size a server allows


class PlaylistFileCommands(PlaylistCommands):
    @PlaylistCommands.playlist.command(name="download", usage="<name> [--scope ...]")
    @commands.bot_has_permissions(attach_files=True)
    @commands.cooldown(1, 10, commands.BucketType.member)
    async def playlist_download(self, ctx: commands.GuildContext, name: str, *, args: str = "") -> None:
        """Get a playlist as a file (`playlist upload` reads it back, here or on another bot)."""
        _name, where = await self._named(ctx, args)
        filename, data = await self.lists.export(ctx.guild.id, await self.actor(ctx), name, where)
        if len(data) > int(getattr(ctx.guild, "filesize_limit", DISCORD_FILE_LIMIT)):
            raise CommandError(_("That playlist's file is bigger than this server lets me upload."))
        await ctx.send(_("Here is **{name}**.").format(name=safe(name)), file=discord.File(io.BytesIO(data), filename=filename),
                       allowed_mentions=discord.AllowedMentions.none())

    @PlaylistCommands.playlist.command(name="upload", usage="[name] [--scope ...]",
                                       with_app_command=False)  # it reads the message's attachment
    async def playlist_upload(self, ctx: commands.GuildContext, *, args: str = "") -> None:
        """Make a playlist from an attached file: one from `playlist download`, an export of
        Red's Audio (its v2 and v3 files) or a text file with one link per line.

        Attach the file to the command, or send it within 30 seconds after. The name comes from
        the file unless you give one.
        """
        name, where = await self._named(ctx, args, default=True)
        assert where is not None
        actor = await self.actor(ctx)
        attachment = await self._attachment(ctx)
        if attachment.size > MAX_FILE_BYTES:
            raise CommandError(_("That file is too big: a playlist file may be at most {max_mb} MB.").format(max_mb=MAX_FILE_BYTES // (1024 * 1024)))
        try:
            data = await attachment.read()
        except (discord.HTTPException, OSError):
            raise CommandError(_("I couldn't download that file; try again.")) from None
        changed, parsed = await self.lists.upload(ctx.guild.id, actor, where, data, attachment.filename, name or None)
        parts = [(_("Made {where} playlist **{name}** with {added} entry from {kind}.") if changed.added == 1 else _("Made {where} playlist **{name}** with {added} entries from {kind}.")).format(where=where_name(where), name=safe(changed.playlist.name), added=changed.added, kind=_(_KINDS[parsed.kind]) if parsed.kind in _KINDS else _("the file"))]
        if changed.left_out:
            parts.append(_("{left_out} did not fit: the limit is {added} entries.").format(left_out=changed.left_out, added=changed.added))
        await self.say(ctx, " ".join(parts + changed.notes))

    async def _attachment(self, ctx: commands.GuildContext) -> Any:
        message = getattr(ctx, "message", None)
        attachments = list(getattr(message, "attachments", None) or [])
        if attachments:
            return attachments[0]
        try:
            reply = await self.say_and_await_reply(
                ctx, _("Send the playlist file within {upload_wait:.0f} seconds (anything else cancels).").format(upload_wait=UPLOAD_WAIT), UPLOAD_WAIT)
        except asyncio.TimeoutError:
            raise CommandError(_("No file came; nothing was made.")) from None
        if not reply.attachments:
            raise CommandError(_("Upload cancelled; nothing was made."))
        return reply.attachments[0]

    # -- settings -------------------------------------------------------------------------------

    @SettingsCommands.musicset.command(name="playlistlimits", usage="[server|user|global|entries] [number]")
    @commands.guild_only()
    async def musicset_playlistlimits(self, ctx: commands.GuildContext, which: Optional[str] = None,
                                      value: Optional[int] = None) -> None:
        """Show or set the playlist limits.

        `server`: playlists this server may keep (admins). `user`: playlists each member may keep
        as their own, `global`: global playlists, `entries`: entries one playlist may hold (bot owner).
        """
        if which is None or value is None:
            limits = await self.lists.limits(ctx.guild.id)
            await self.say(ctx, _("Playlists per server: {server}. Per member: {user}. Global: "
                                "{global_}. Entries per playlist: {entries}.").format(server=limits.server, user=limits.user, global_=limits.global_, entries=limits.entries))
            return
        which = which.lower()
        if which not in LIMITS:
            raise CommandError(_("The limits are `server`, `user`, `global` and `entries`."))
        await self.lists.set_limit(ctx.guild.id, await self.actor(ctx), which, value)
        await self.say(ctx, _("The `{which}` playlist limit is now {limit}.").format(which=which, limit=value))

    @SettingsCommands.musicset.group(name="import")
    @commands.is_owner()
    async def musicset_import(self, ctx: commands.GuildContext) -> None:
        """Bring over what another music cog left in this bot's data."""

    @musicset_import.command(name="audio")
    async def musicset_import_audio(self, ctx: commands.GuildContext) -> None:
        """Import Red's core Audio playlists (every scope) and server settings.

        Audio and Lavalink need not be loaded. Imported: DJ role, vote percent, longest track,
        volume, leaving and pausing in empty channels, now-playing messages; a setting left at
        Audio's default keeps this cog's. A second run imports nothing new.
        """
        assert self.control is not None
        async with ctx.typing():
            report = await self.lists.import_audio(await self.actor(ctx), cog_data_path())
        for page in pagify("\n".join(report_lines(report, ctx.bot)), page_length=1900):
            await self.say(ctx, page)


_KINDS = {"music": deferred._("this cog's file"), "audio v3": deferred._("Red Audio's v3 file"),
          "audio v2": deferred._("Red Audio's v2 file"), "text": deferred._("the list of links")}


def _entries(n: int) -> str:
    return (_("{n} entry") if n == 1 else _("{n} entries")).format(n=n)


def _scope(where: Where, bot: Any) -> str:
    if where.scope.value == "server":
        guild = bot.get_guild(where.scope_id)
        return _("server {name}").format(name=safe(guild.name, limit=40)) if guild is not None else _("server {scope_id}").format(scope_id=where.scope_id)
    return where_name(where)


def report_lines(report: AudioImportReport, bot: Any) -> list[str]:
    """The import report, one line per playlist and per server (names escaped)."""
    lines = [_("Read: {sources}.").format(sources=humanize_list(report.sources)) if report.sources else
             _("I found nothing Red's Audio left in this bot's data.")]
    lines += [safe(p, limit=300) for p in report.problems]
    entries = sum(p.entries for p in report.imported)
    lines.append(_("**Playlists imported: {imported_count}** ({entries}).").format(imported_count=len(report.imported), entries=_entries(entries)))
    for p in report.imported:
        renamed = _(" (was **{original_name}**)").format(original_name=safe(p.original_name, limit=60)) if p.name != p.original_name else ""
        extra = []
        if p.left_out:
            extra.append(_("{left_out} left out (local files or unreadable)").format(left_out=_entries(p.left_out)))
        if p.cut:
            extra.append(_("{cut} over the limit left out").format(cut=_entries(p.cut)))
        lines.append(f"- {_scope(p.where, bot)}: **{safe(p.name)}**{renamed}, {_entries(p.entries)}"
                     + (f"; {', '.join(extra)}" if extra else ""))
    if report.already:
        lines.append(_("{already} playlist(s) were imported by an earlier run and were skipped.").format(already=report.already))
    if report.skipped:
        lines.append(_("**Playlists skipped: {skipped_count}**").format(skipped_count=len(report.skipped)))
        lines += [f"- {_scope(p.where, bot)}: **{safe(p.name)}**: {p.reason}." for p in report.skipped]
    lines.append(_("**Server settings imported: {settings_count}**").format(settings_count=len(report.settings)))
    for s in report.settings:
        values = ", ".join(f"{k} {v}" for k, v in s.values.items()) or _("nothing to set")
        lines.append(f"- {_scope(Where.server(s.guild_id), bot)}: {values}." + "".join(f" {n}" for n in s.notes))
    if report.settings_already:
        lines.append(_("{settings_already} server(s) had their settings imported by an earlier run.").format(settings_already=report.settings_already))
    if report.settings_unchanged:
        lines.append(_("{settings_unchanged} server(s) had no setting with an equivalent here changed from Audio's default.").format(settings_unchanged=report.settings_unchanged))
    if report.unmapped:
        shown = ", ".join(f"{name} ({count})" for name, count in sorted(report.unmapped.items()))
        lines.append(_("Not imported, no equivalent here (servers): {shown}.").format(shown=shown))
    lines.append(_("Audio has no queue-size setting; `musicset maxqueue` sets this cog's."))
    return lines

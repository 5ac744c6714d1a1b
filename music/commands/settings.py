"""`musicset`: server settings (admins) and bot-wide settings (owner)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import discord
from redbot.core import commands
from redbot.core.utils.chat_formatting import box, humanize_list

from ..audio.ffmpeg import find_ffmpeg
from ..engine.timefmt import format_duration, parse_duration
from ..formatting import safe
from ..i18n import _
from ..policy import validate_cidr
from .base import CommandError, MusicMixin


def _seconds(text: str) -> int:
    """`0`, `90`, `5:00` -> seconds, for the duration-valued settings."""
    try:
        value = int(parse_duration(text))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if value < 0:
        raise CommandError(_("Use a positive number of seconds, or 0 to turn it off."))
    return value


class SettingsCommands(MusicMixin):
    @commands.group()
    async def musicset(self, ctx: commands.GuildContext) -> None:
        """Music settings. Server settings need Manage Server; some are for the bot owner."""

    # -- server settings ------------------------------------------------------------------------

    @musicset.command(name="settings", aliases=["showsettings"])
    @commands.guild_only()
    async def musicset_settings(self, ctx: commands.GuildContext) -> None:
        """Show this server's music settings."""
        s = self.store.guild(ctx.guild.id)
        g = self.store.globals

        def seconds(v: int) -> str:
            return "off" if not v else format_duration(v)

        rows = [
            (_("Default volume"), f"{s.volume}%"),
            (_("Longest track"), seconds(s.max_length)),
            (_("Queue limit"), str(s.max_queue)),
            (_("Playlist limit"), str(s.max_playlist)),
            (_("Now-playing messages"), "on" if s.notify else "off"),
            (_("Leave when alone after"), seconds(s.empty_disconnect)),
            (_("Leave when idle after"), seconds(s.idle_disconnect)),
            (_("Resume after restart"), "on" if s.auto_resume else "off"),
            (_("DJ role"), f"<@&{s.dj_role}>" if s.dj_role else "off"),
            (_("Vote to skip"), f"{s.vote_percent}%"),
            (_("Tracks per member"), str(s.max_per_member) if s.max_per_member else _("no limit")),
            (_("Fair queue"), "on" if s.fair_queue else "off"),
            (_("Pause when alone"), "on" if s.pause_when_alone else "off"),
            (_("Now-playing channel"), f"<#{s.np_channel}>" if s.np_channel else _("where asked")),
            (_("Background"), _("set") if s.background else _("off")),
            (_("Loudness normalisation"), "on" if s.normalize else "off"),
            (_("Autoplay"), {"playlist": "playlist", "related": "related"}.get(s.autoplay_mode, "off")
             + (f" ({safe(s.autoplay_playlist, limit=60)})" if s.autoplay_mode != "off" and s.autoplay_playlist else "")),
            (_("Maximum volume"), f"{s.max_volume}%"),
            (_("Block list"), _("{server_rules} rule(s), bot-wide {bot_rules}").format(server_rules=len(s.blocklist), bot_rules=len(g.blocklist))),
            (_("Allow list"), (_("{allowlist_count} rule(s)").format(allowlist_count=len(s.allowlist)) if s.allowlist else _("off"))
             + (_(", bot-wide {allowlist_count}").format(allowlist_count=len(g.allowlist)) if g.allowlist else "")),
            (_("Local folder"), "set" if g.local_folder else _("not set")),
            (_("Allowed networks"), humanize_list(g.network_allow) if g.network_allow else _("none (public internet only)")),
        ]
        if await ctx.embed_requested():
            embed = discord.Embed(title=_("Music settings"))
            for name, value in rows:
                embed.add_field(name=name, value=value)
            await ctx.send(embed=embed)
        else:
            width = max(len(n) for n, _ in rows)
            await ctx.send(box("\n".join(f"{n:<{width}}  {v}" for n, v in rows)))

    @musicset.command(name="volume")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_volume(self, ctx: commands.GuildContext, percent: int) -> None:
        """The volume a new player starts at, from 0 to 150."""
        if not 0 <= percent <= 150:
            raise CommandError(_("Pick a volume from 0 to 150."))
        cap = self.store.guild(ctx.guild.id).max_volume
        if percent > cap:
            raise CommandError(_("This server's maximum volume is {cap}% (`musicset maxvolume`).").format(cap=cap))
        await self.store.set_guild(ctx.guild.id, "volume", percent)
        await self.say(ctx, _("New players will start at {percent}%.").format(percent=percent))

    @musicset.command(name="maxlength")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_maxlength(self, ctx: commands.GuildContext, length: str) -> None:
        """The longest track allowed (`10:00`, `600`); `0` for no limit."""
        seconds = _seconds(length)
        await self.store.set_guild(ctx.guild.id, "max_length", seconds)
        await self.say(ctx, _("Longest track: {length}.").format(length=format_duration(seconds) if seconds else _('no limit')))

    @musicset.command(name="maxqueue")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_maxqueue(self, ctx: commands.GuildContext, tracks: int) -> None:
        """The most tracks the queue may hold (1 to 10000)."""
        if not 1 <= tracks <= 10_000:
            raise CommandError(_("Pick a queue limit from 1 to 10000."))
        await self.store.set_guild(ctx.guild.id, "max_queue", tracks)
        await self.say(ctx, _("The queue holds at most {tracks} tracks.").format(tracks=tracks))

    @musicset.command(name="maxplaylist")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_maxplaylist(self, ctx: commands.GuildContext, tracks: int) -> None:
        """The most entries a playlist adds (1 to 5000)."""
        if not 1 <= tracks <= 5_000:
            raise CommandError(_("Pick a playlist limit from 1 to 5000."))
        await self.store.set_guild(ctx.guild.id, "max_playlist", tracks)
        await self.say(ctx, _("A playlist adds at most {tracks} tracks.").format(tracks=tracks))

    @musicset.command(name="notify")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_notify(self, ctx: commands.GuildContext, on: bool | None = None) -> None:
        """Turn now-playing messages on or off (toggles with no argument)."""
        value = (not self.store.guild(ctx.guild.id).notify) if on is None else on
        await self.store.set_guild(ctx.guild.id, "notify", value)
        await self.say(ctx, (_("Now-playing messages are on.") if value else _("Now-playing messages are off.")))

    @musicset.command(name="emptydisconnect")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_emptydisconnect(self, ctx: commands.GuildContext, seconds: str) -> None:
        """Leave this long after everyone else left the channel; `0` to stay."""
        value = _seconds(seconds)
        await self.store.set_guild(ctx.guild.id, "empty_disconnect", value)
        await self.say(ctx, _("I'll leave an empty channel after {delay}.").format(delay=format_duration(value)) if value else _("I'll stay in empty channels."))

    @musicset.command(name="idledisconnect")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_idledisconnect(self, ctx: commands.GuildContext, seconds: str) -> None:
        """Leave this long after the music stopped; `0` to stay."""
        value = _seconds(seconds)
        await self.store.set_guild(ctx.guild.id, "idle_disconnect", value)
        await self.say(ctx, _("I'll leave after {delay} with nothing playing.").format(delay=format_duration(value)) if value else _("I'll stay when nothing plays."))

    @musicset.command(name="autoresume")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_autoresume(self, ctx: commands.GuildContext, on: bool) -> None:
        """Rejoin and resume the queue after a bot restart (on by default)."""
        await self.store.set_guild(ctx.guild.id, "auto_resume", on)
        await self.say(ctx, (_("Resume after restart is on.") if on else _("Resume after restart is off.")))

    @musicset.command(name="dj")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_dj(self, ctx: commands.GuildContext, *, role: str) -> None:
        """Set the DJ role (`off` to turn it off). With it on, only DJs, mods and the track's
        requester control playback; others vote to skip."""
        if role.lower() in ("off", "none"):
            await self.store.set_guild(ctx.guild.id, "dj_role", None)
            await self.say(ctx, _("The DJ role is off: every listener controls the music."))
            return
        try:
            found = await commands.RoleConverter().convert(ctx, role)
        except commands.BadArgument:
            raise CommandError(_("I couldn't find that role.")) from None
        await self.store.set_guild(ctx.guild.id, "dj_role", found.id)
        await self.say(ctx, _("DJ role set to {mention}. Other listeners now vote to skip.").format(mention=found.mention))

    @musicset.command(name="vote")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_vote(self, ctx: commands.GuildContext, percent: int) -> None:
        """The share of listeners (1-100%) whose votes skip a track when the DJ role is on."""
        if not 1 <= percent <= 100:
            raise CommandError(_("Pick a percentage from 1 to 100."))
        await self.store.set_guild(ctx.guild.id, "vote_percent", percent)
        await self.say(ctx, _("A track skips when {percent}% of the listeners vote.").format(percent=percent))

    @musicset.command(name="memberlimit")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_memberlimit(self, ctx: commands.GuildContext, tracks: int) -> None:
        """The most tracks one member may have queued (DJs are exempt); `0` for no limit."""
        if not 0 <= tracks <= 10_000:
            raise CommandError(_("Pick a limit from 0 to 10000."))
        await self.store.set_guild(ctx.guild.id, "max_per_member", tracks)
        await self.say(ctx, (_("Each member may queue {tracks} tracks.") if tracks != 1 else _("Each member may queue {tracks} track.")).format(tracks=tracks) if tracks else _("Members may queue any number of tracks."))

    @musicset.command(name="fairqueue")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_fairqueue(self, ctx: commands.GuildContext, on: bool) -> None:
        """Take turns between requesters instead of first come, first served."""
        await self.store.set_guild(ctx.guild.id, "fair_queue", on)
        await self.say(ctx, _("Fair queue is {state}.").format(state=_('on: requesters take turns') if on else 'off'))

    @musicset.command(name="pausealone")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_pausealone(self, ctx: commands.GuildContext, on: bool) -> None:
        """Pause while nobody is listening, and resume when someone comes back."""
        await self.store.set_guild(ctx.guild.id, "pause_when_alone", on)
        await self.say(ctx, (_("Pause when alone is on.") if on else _("Pause when alone is off.")))

    @musicset.command(name="npchannel")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_npchannel(self, ctx: commands.GuildContext, channel: discord.TextChannel | None = None) -> None:
        """Post now-playing messages in one channel; with none, where music was asked for."""
        await self.store.set_guild(ctx.guild.id, "np_channel", channel.id if channel else None)
        await self.say(ctx, _("Now-playing messages go to {mention}.").format(mention=channel.mention) if channel else _("Now-playing messages go where music was asked for."))

    @musicset.command(name="background")
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_background(self, ctx: commands.GuildContext, *, url: str) -> None:
        """A stream or track that plays while the queue is empty (`off` to remove it).

        It stops the moment something is queued and comes back when the queue runs out."""
        background = await self.ctl.set_background(ctx.guild.id, await self.actor(ctx), url)
        if background is None:
            await self.say(ctx, _("The background is off."))
            return
        await self.say(ctx, _("Background set: it plays whenever the queue is empty."))

    # -- owner settings --------------------------------------------------------------------------

    @musicset.command(name="localfolder")
    @commands.is_owner()
    async def musicset_localfolder(self, ctx: commands.GuildContext, *, path: str | None = None) -> None:
        """Set the folder `local` plays from; with no path, turn local files off."""
        if path is None:
            await self.store.set_global("local_folder", None)
            await self.say(ctx, _("Local files are off."))
            return
        resolved = await asyncio.to_thread(_existing_folder, path)
        if resolved is None:
            raise CommandError(_("That folder doesn't exist (or isn't a folder)."))
        await self.store.set_global("local_folder", str(resolved))
        await self.say(ctx, _("Local folder set."))

    @musicset.command(name="ffmpeg")
    @commands.is_owner()
    async def musicset_ffmpeg(self, ctx: commands.GuildContext, *, path: str | None = None) -> None:
        """Use another ffmpeg; with no path, go back to the bundled one."""
        if path is not None:
            ok = await asyncio.to_thread(_runs_ffmpeg, path)
            if not ok:
                raise CommandError(_("That path doesn't run as ffmpeg (`ffmpeg -version` failed)."))
        await self.store.set_global("ffmpeg_path", path)
        in_use = find_ffmpeg(path)
        await self.say(ctx, _("Using ffmpeg at `{in_use}`.").format(in_use=in_use) if path else _("Using the bundled ffmpeg."))

    @musicset.group(name="network")
    @commands.is_owner()
    async def musicset_network(self, ctx: commands.GuildContext) -> None:
        """Networks the bot may fetch media from, beyond the public internet."""

    @musicset_network.command(name="allow")
    async def network_allow(self, ctx: commands.GuildContext, cidr: str) -> None:
        """Allow a network (e.g. `192.168.1.0/24`) that is denied by default."""
        await self._network_edit(ctx, cidr, add_to="network_allow", remove_from="network_deny")

    @musicset_network.command(name="deny")
    async def network_deny(self, ctx: commands.GuildContext, cidr: str) -> None:
        """Deny a network, even a public one (and drop it from the allowed list)."""
        await self._network_edit(ctx, cidr, add_to="network_deny", remove_from="network_allow")

    @musicset_network.command(name="list")
    async def network_list(self, ctx: commands.GuildContext) -> None:
        """Show the allowed and denied networks."""
        g = self.store.globals
        await ctx.send(
            box(
                _("Allowed: ") + (", ".join(g.network_allow) or _("none"))
                + _("\nDenied:  ") + (", ".join(g.network_deny) or _("none"))
                + _("\nAlways denied unless allowed: loopback, private, link-local, shared, multicast, metadata.")
            )
        )

    async def _network_edit(self, ctx: commands.GuildContext, cidr: str, *, add_to: str, remove_from: str) -> None:
        try:
            network = validate_cidr(cidr)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        g = self.store.globals
        target = [n for n in getattr(g, add_to) if n != network] + [network]
        other = [n for n in getattr(g, remove_from) if n != network]
        await self.store.set_global(add_to, target)
        await self.store.set_global(remove_from, other)
        verb = _("Allowed") if add_to == "network_allow" else _("Denied")
        await self.say(ctx, f"{verb} `{network}`.")


def _existing_folder(text: str) -> Path | None:
    folder = Path(text).expanduser()
    return folder.resolve() if folder.is_dir() else None


def _runs_ffmpeg(path: str) -> bool:
    try:
        out = subprocess.run([path, "-version"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and b"ffmpeg" in out.stdout.lower()

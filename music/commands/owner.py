"""Owner tools under `musicset`: `doctor`, `resolvers`, `resolvetimeout`, `extractors`.

The commands attach to the `musicset` group that SettingsCommands defines: `@musicset.command`
on the group object registers them as its subcommands at class creation, and Red's CogMeta
re-links every copied subcommand to the cog's copy of its parent (discord.py does this by
qualified name), exactly as for subcommands written in the same class. So the Music cog only
needs OwnerCommands among its bases; nothing is pasted into settings.py."""

from __future__ import annotations

import asyncio

import discord
from redbot.core import commands
from redbot.core.data_manager import cog_data_path, storage_type
from redbot.core.utils.chat_formatting import box, pagify

from ..doctor import Finding, run_checks
from ..i18n import _
from ..policy import DEFAULT_EXTRACTORS, GENERIC_ALL, ExtractorPolicy, normalise_extractor
from .base import NO_MENTIONS, CommandError, MusicMixin
from .settings import SettingsCommands

musicset = SettingsCommands.musicset

MIN_WORKERS, MAX_WORKERS = 1, 8
MIN_TIMEOUT, MAX_TIMEOUT = 5, 300
EMBED_FIELD_LIMIT = 1024


def render_text(findings: list[Finding], prefix: str) -> str:
    """The findings as plain text for a code box: one line each, problems with what to do."""
    width = max(len(f.label) for f in findings)
    lines = [summary(findings), ""]
    for finding in findings:
        # backticks mean nothing inside a code box; drop them
        detail = _with_prefix(finding.detail, prefix).replace("`", "")
        lines.append(f"{finding.label:<{width}}  {finding.name}: {detail}")
        if finding.fix:
            lines.append(f"{'':<{width}}  -> {_with_prefix(finding.fix, prefix).replace('`', '')}")
    return "\n".join(lines)


def render_embed(findings: list[Finding], prefix: str) -> discord.Embed:
    problems = [f for f in findings if not f.ok]
    embed = discord.Embed(
        title=_("Music doctor"),
        description=summary(findings),
        colour=discord.Colour.red() if problems else discord.Colour.green(),
    )
    marks = {"OK": "\N{WHITE HEAVY CHECK MARK}", "NOTE": "\N{INFORMATION SOURCE}\N{VARIATION SELECTOR-16}",
             "PROBLEM": "\N{CROSS MARK}"}
    for finding in findings:
        value = _with_prefix(finding.detail, prefix)
        if finding.fix:
            value += _("\n**What to do:** ") + _with_prefix(finding.fix, prefix)
        if len(value) > EMBED_FIELD_LIMIT:
            value = value[: EMBED_FIELD_LIMIT - 1] + "\N{HORIZONTAL ELLIPSIS}"
        embed.add_field(name=f"{marks[finding.label]} {finding.name}", value=value, inline=False)
    return embed


def summary(findings: list[Finding]) -> str:
    problems = sum(not f.ok for f in findings)
    if not problems:
        return _("All {findings_count} checks passed.").format(findings_count=len(findings))
    return (
        (_("{problems} problems found; fix them from the top (later checks may depend on earlier ones).") if problems != 1 else _("{problems} problem found; fix them from the top (later checks may depend on earlier ones).")).format(problems=problems)
    )


def storage_backend(config: object) -> str:
    """Red's storage backend: "JSON" or "Postgres"."""
    try:
        return storage_type()
    except RuntimeError:  # Red's basic config isn't loaded (a bot built in tests): ask Config's driver
        driver = type(getattr(config, "_driver", None)).__name__
        return {"JsonDriver": "JSON", "PostgresDriver": "Postgres"}.get(driver, driver)


def _with_prefix(text: str, prefix: str) -> str:
    return text.replace("[p]", prefix)


class OwnerCommands(MusicMixin):
    @musicset.command(name="doctor")
    @commands.is_owner()
    async def musicset_doctor(self, ctx: commands.GuildContext) -> None:
        """Check what the cog needs: ffmpeg, yt-dlp and its JavaScript runtime, voice
        encryption, storage. Each problem comes with what to do."""
        queued = 0
        if self.manager is not None:
            for player in self.manager.players.values():
                queued += len(player.queue) + (player.queue.current is not None)
        async with ctx.typing():
            findings = await run_checks(
                ffmpeg_override=self.store.globals.ffmpeg_path,
                data_path=cog_data_path(self),  # type: ignore[arg-type]
                storage_backend=storage_backend(self.store.config),
                queued_tracks=queued,
            )
        prefix = ctx.clean_prefix
        if await ctx.embed_requested():
            await ctx.send(embed=render_embed(findings, prefix), allowed_mentions=NO_MENTIONS)
            return
        for page in pagify(render_text(findings, prefix), delims=["\n"], page_length=1900):
            await ctx.send(box(page), allowed_mentions=NO_MENTIONS)

    @musicset.command(name="resolvers")
    @commands.is_owner()
    async def musicset_resolvers(self, ctx: commands.GuildContext, workers: int | None = None) -> None:
        """How many lookups (yt-dlp) run at once, from 1 to 8 (default 3). No number shows it."""
        if workers is None:
            await self.say(ctx, _("Up to {resolve_workers} lookups run at once.").format(resolve_workers=self.store.globals.resolve_workers))
            return
        if not MIN_WORKERS <= workers <= MAX_WORKERS:
            raise CommandError(_("Pick a number of lookup workers from {min_workers} to {max_workers}.").format(min_workers=MIN_WORKERS, max_workers=MAX_WORKERS))
        await self.store.set_global("resolve_workers", workers)
        self.apply_resolve_settings()
        await self.say(
            ctx,
            (_("Up to {workers} lookups now run at once. Each busy worker is a thread running yt-dlp: more helps many servers loading at once, at the cost of CPU while they do.") if workers != 1 else _("Up to {workers} lookup now run at once. Each busy worker is a thread running yt-dlp: more helps many servers loading at once, at the cost of CPU while they do.")).format(workers=workers),
        )

    @musicset.command(name="resolvetimeout")
    @commands.is_owner()
    async def musicset_resolvetimeout(self, ctx: commands.GuildContext, seconds: int | None = None) -> None:
        """How long one lookup may take before it fails, in seconds (default 30). No number
        shows it."""
        if seconds is None:
            await self.say(ctx, _("A lookup may take up to {resolve_timeout} s.").format(resolve_timeout=self.store.globals.resolve_timeout))
            return
        if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
            raise CommandError(_("Pick a timeout from {min_timeout} to {max_timeout} seconds.").format(min_timeout=MIN_TIMEOUT, max_timeout=MAX_TIMEOUT))
        await self.store.set_global("resolve_timeout", seconds)
        self.apply_resolve_settings()
        await self.say(ctx, _("A lookup may now take up to {seconds} s before it fails.").format(seconds=seconds))

    @musicset.group(name="extractors")
    @commands.is_owner()
    async def musicset_extractors(self, ctx: commands.GuildContext) -> None:
        """Which sites (yt-dlp extractors) links may come from.

        The default list holds the common music sites; `generic` allows direct links to audio
        and video files on any other site, `generic:all` any web page with media in it."""

    @musicset_extractors.command(name="list")
    async def extractors_list(self, ctx: commands.GuildContext) -> None:
        """Show the extractors links may use."""
        await self.say(ctx, describe_extractors(self.store.globals.extractors))

    @musicset_extractors.command(name="allow")
    async def extractors_allow(self, ctx: commands.GuildContext, name: str) -> None:
        """Allow links handled by a yt-dlp extractor family (e.g. `dailymotion`), or
        `generic:all` for any web page."""
        family = self._extractor_name(name)
        if family != GENERIC_ALL and family != "generic":
            known = await asyncio.to_thread(self.resolver.known_extractor_families_sync) if self.resolver else set()
            if known and family not in known:
                raise CommandError(
                    _("yt-dlp has no extractor called `{family}`; the family is the part before "
                    "the colon in yt-dlp's extractor names (`yt-dlp --list-extractors`).").format(family=family)
                )
        current = self._extractor_list()
        await self.store.set_global("extractors", sorted({*current, family}))
        if family == GENERIC_ALL:
            text = (_("Links to any web page are allowed now: yt-dlp's generic extractor looks for "
                    "media inside pages from any site."))
        elif family == "generic":
            text = _("Direct links to audio and video files on any site are allowed now.")
        else:
            text = _("Links from `{family}` are allowed now.").format(family=family)
        await self.say(ctx, text)

    @musicset_extractors.command(name="deny")
    async def extractors_deny(self, ctx: commands.GuildContext, name: str) -> None:
        """Stop allowing an extractor family. `generic:all` goes back to direct media only;
        `generic` refuses links to any site without its own extractor."""
        family = self._extractor_name(name)
        drop = {"generic", GENERIC_ALL} if family == "generic" else {family}
        current = self._extractor_list()
        if not drop & set(current):
            raise CommandError(_("`{family}` isn't on the list: {current}").format(family=family, current=describe_extractors(current)))
        await self.store.set_global("extractors", [n for n in current if n not in drop])
        if family == GENERIC_ALL:
            text = _("Links to web pages are refused now; direct media links still play.")
        elif family == "generic":
            text = _("Links to sites without their own extractor are refused now.")
        else:
            text = _("Links from `{family}` are refused now.").format(family=family)
        await self.say(ctx, text)

    @musicset_extractors.command(name="reset")
    async def extractors_reset(self, ctx: commands.GuildContext) -> None:
        """Go back to the default list."""
        await self.store.set_global("extractors", None)
        await self.say(ctx, _("Back to the default list. ") + describe_extractors(None))

    def _extractor_list(self) -> list[str]:
        return sorted(ExtractorPolicy(self.store.globals.extractors).allowed)

    @staticmethod
    def _extractor_name(name: str) -> str:
        try:
            return normalise_extractor(name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    def apply_resolve_settings(self) -> None:
        """Give the running lookup service the owner's settings (at start and on change)."""
        g = self.store.globals
        if self.resolver is not None:
            # yt-dlp's socket timeout and the "timed out after N s" sentences read this
            self.resolver.timeout = float(g.resolve_timeout)
        if self.service is not None:
            self.service.configure(workers=g.resolve_workers, timeout=float(g.resolve_timeout))


def describe_extractors(extractors: list[str] | None) -> str:
    """The allowed extractors as a sentence for `musicset extractors`."""
    allowed = ExtractorPolicy(extractors).allowed
    names = sorted(n for n in allowed if n not in ("generic", GENERIC_ALL))
    if GENERIC_ALL in allowed:
        names.append(_("generic (any web page)"))
    elif "generic" in allowed:
        names.append(_("generic (direct media links only)"))
    listed = ", ".join(names) if names else "none"
    source = _(" (the default list)") if extractors is None or allowed == set(DEFAULT_EXTRACTORS) else ""
    return _("Links may come from these yt-dlp extractors{source}: {listed}.").format(source=source, listed=listed)

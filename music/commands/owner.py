"""Owner tools under `musicset`: `doctor`, `resolvers`, `resolvetimeout`.

The commands attach to the `musicset` group that SettingsCommands defines: `@musicset.command`
on the group object registers them as its subcommands at class creation, and Red's CogMeta
re-links every copied subcommand to the cog's copy of its parent (discord.py does this by
qualified name), exactly as for subcommands written in the same class. So the Music cog only
needs OwnerCommands among its bases; nothing is pasted into settings.py."""

from __future__ import annotations

import discord
from redbot.core import commands
from redbot.core.data_manager import cog_data_path, storage_type
from redbot.core.utils.chat_formatting import box, pagify

from ..doctor import Finding, run_checks
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
        title="Music doctor",
        description=summary(findings),
        colour=discord.Colour.red() if problems else discord.Colour.green(),
    )
    marks = {"OK": "\N{WHITE HEAVY CHECK MARK}", "NOTE": "\N{INFORMATION SOURCE}\N{VARIATION SELECTOR-16}",
             "PROBLEM": "\N{CROSS MARK}"}
    for finding in findings:
        value = _with_prefix(finding.detail, prefix)
        if finding.fix:
            value += "\n**What to do:** " + _with_prefix(finding.fix, prefix)
        if len(value) > EMBED_FIELD_LIMIT:
            value = value[: EMBED_FIELD_LIMIT - 1] + "\N{HORIZONTAL ELLIPSIS}"
        embed.add_field(name=f"{marks[finding.label]} {finding.name}", value=value, inline=False)
    return embed


def summary(findings: list[Finding]) -> str:
    problems = sum(not f.ok for f in findings)
    if not problems:
        return f"All {len(findings)} checks passed."
    return (
        f"{problems} problem{'s' if problems != 1 else ''} found; fix them from the top "
        "(later checks may depend on earlier ones)."
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
    async def musicset_doctor(self, ctx: commands.Context) -> None:
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
    async def musicset_resolvers(self, ctx: commands.Context, workers: int | None = None) -> None:
        """How many lookups (yt-dlp) run at once, from 1 to 8 (default 3). No number shows it."""
        if workers is None:
            await self.say(ctx, f"Up to {self.store.globals.resolve_workers} lookups run at once.")
            return
        if not MIN_WORKERS <= workers <= MAX_WORKERS:
            raise CommandError(f"Pick a number of lookup workers from {MIN_WORKERS} to {MAX_WORKERS}.")
        await self.store.set_global("resolve_workers", workers)
        self.apply_resolve_settings()
        await self.say(
            ctx,
            f"Up to {workers} lookup{'s' if workers != 1 else ''} now run at once. Each busy "
            "worker is a thread running yt-dlp: more helps many servers loading at once, "
            "at the cost of CPU while they do.",
        )

    @musicset.command(name="resolvetimeout")
    @commands.is_owner()
    async def musicset_resolvetimeout(self, ctx: commands.Context, seconds: int | None = None) -> None:
        """How long one lookup may take before it fails, in seconds (default 30). No number
        shows it."""
        if seconds is None:
            await self.say(ctx, f"A lookup may take up to {self.store.globals.resolve_timeout} s.")
            return
        if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
            raise CommandError(f"Pick a timeout from {MIN_TIMEOUT} to {MAX_TIMEOUT} seconds.")
        await self.store.set_global("resolve_timeout", seconds)
        self.apply_resolve_settings()
        await self.say(ctx, f"A lookup may now take up to {seconds} s before it fails.")

    def apply_resolve_settings(self) -> None:
        """Give the running lookup service the owner's settings (at start and on change)."""
        g = self.store.globals
        if self.resolver is not None:
            # yt-dlp's socket timeout and the "timed out after N s" sentences read this
            self.resolver.timeout = float(g.resolve_timeout)
        if self.service is not None:
            self.service.configure(workers=g.resolve_workers, timeout=float(g.resolve_timeout))

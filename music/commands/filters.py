"""`filter`, `eq` (Red Audio's subcommands) and the `musicset` settings for them:
`normalize` (server) and `filterlimit` (owner)."""

from __future__ import annotations

from typing import Optional

from redbot.core import commands
from redbot.core.utils.chat_formatting import box

from ..engine.filters import EQ_BANDS, EQ_PRESETS, FILTERS, EqTable, FilterChain, gain_to_db
from ..i18n import _
from .base import CommandError, MusicMixin
from .settings import SettingsCommands


class FilterCommands(MusicMixin):
    # -- `filter` ---------------------------------------------------------------------------------

    @commands.command(name="filter")
    @commands.guild_only()
    async def filter_command(self, ctx: commands.GuildContext, name: Optional[str] = None,
                             value: Optional[str] = None) -> None:
        """Show the filters, or turn one on or off; the change is heard at once.

        `filter nightcore`, `filter speed 1.2`, `filter 8d`, `filter tremolo off`; `filter off`
        turns every filter off (the equalizer stays: `eq reset`). Several filters can be on at
        once; nightcore, vaporwave, speed, pitch and rate share one timescale."""
        if name is None:
            await self.say(ctx, self._filter_overview(ctx.guild.id))
            return
        chain = await self.ctl.filters.set_filter(ctx.guild.id, await self.actor(ctx), name, value)
        await self.say(ctx, _("Filters: {chain}.").format(chain=_effects_text(chain)))

    def _filter_overview(self, guild_id: int) -> str:
        chain = self.ctl.filters.chain(guild_id)
        lines = [(_("Filters: {chain}. Equalizer: {eq}. Normalisation: on.") if chain.normalize else _("Filters: {chain}. Equalizer: {eq}. Normalisation: off.")).format(chain=_effects_text(chain), eq=_eq_name(chain)), ""]
        for spec in FILTERS.values():
            if spec.default is None:
                usage = spec.name
            else:
                unit = "" if spec.unit == "x" else f" {spec.unit}"
                usage = f"{spec.name} [{spec.low:g}-{spec.high:g}{unit}]"
            lines.append(f"`{usage}`: {_(spec.about)}")
        lines.append(_("\n`filter <name> off` turns one off, `filter off` all of them; "
                     "`eq` shows the equalizer."))
        return "\n".join(lines)

    # -- `eq` -------------------------------------------------------------------------------------

    @commands.group(name="eq", invoke_without_command=True)
    @commands.guild_only()
    async def eq(self, ctx: commands.GuildContext) -> None:
        """Show the equalizer: 15 bands from 25 Hz to 16 kHz.

        Gains use Lavalink's and Red Audio's scale, from -0.25 (cut) to 1.0: the level at the
        band's centre is multiplied by 1 + 4 x gain (0.25 = +6 dB, 1.0 = +14 dB); `eq set` also
        takes dB (`+6db`)."""
        chain = self.ctl.filters.chain(ctx.guild.id)
        await self.say(ctx, _("Equalizer: {chain}\n").format(chain=_eq_name(chain)) + box(_eq_table(chain.eq)))

    @eq.command(name="set")
    async def eq_set(self, ctx: commands.GuildContext, band: str, gain: str) -> None:
        """Set one band: its number (1-15) or frequency (`63hz`, `1k`), and a gain (`0.25`,
        `-0.1`, `+6db`)."""
        index, value = await self.ctl.filters.set_band(ctx.guild.id, await self.actor(ctx), band, gain)
        await self.say(ctx, _("The {band} band is at {gain:+.2f} "
                            "({db:+.1f} dB).").format(band=_band_name(EQ_BANDS[index]), gain=value, db=gain_to_db(value)))

    @eq.command(name="load", aliases=["preset"])
    async def eq_load(self, ctx: commands.GuildContext, *, name: str) -> None:
        """Load a preset: a built-in one (`eq list`) or one this server saved."""
        await self.ctl.filters.load_preset(ctx.guild.id, await self.actor(ctx), name)
        await self.say(ctx, _("Equalizer: {name}.").format(name=name.strip().lower()[:32]))

    @eq.command(name="reset")
    async def eq_reset(self, ctx: commands.GuildContext) -> None:
        """Every band back to 0 (flat)."""
        await self.ctl.filters.reset_eq(ctx.guild.id, await self.actor(ctx))
        await self.say(ctx, _("Equalizer: flat."))

    @eq.command(name="save")
    async def eq_save(self, ctx: commands.GuildContext, name: str) -> None:
        """Save the equalizer as a preset of this server."""
        key = await self.ctl.filters.save_preset(ctx.guild.id, await self.actor(ctx), name)
        await self.say(ctx, _("Saved the equalizer as `{key}`.").format(key=key))

    @eq.command(name="list")
    async def eq_list(self, ctx: commands.GuildContext) -> None:
        """The built-in presets and this server's saved ones."""
        saved = self.ctl.filters.saved_presets(ctx.guild.id)
        lines = [_("Built in: ") + ", ".join(f"`{name}`" for name in EQ_PRESETS)]
        lines.append(_("Saved here: ") + (", ".join(f"`{name}`" for name in saved) or "none"))
        await self.say(ctx, "\n".join(lines))

    @eq.command(name="delete")
    async def eq_delete(self, ctx: commands.GuildContext, name: str) -> None:
        """Delete a preset this server saved."""
        key = await self.ctl.filters.delete_preset(ctx.guild.id, await self.actor(ctx), name)
        await self.say(ctx, _("Deleted the preset `{key}`.").format(key=key))

    # -- `musicset` -------------------------------------------------------------------------------

    @SettingsCommands.musicset.command(name="normalize", aliases=["normalise"])
    @commands.guild_only()
    @commands.admin_or_permissions(manage_guild=True)
    async def musicset_normalize(self, ctx: commands.GuildContext, on: bool) -> None:
        """Loudness normalisation (EBU R128): every track plays at about the same loudness;
        the volume applies on top. It costs the bot a transcode of each track."""
        await self.ctl.filters.set_normalize(ctx.guild.id, await self.actor(ctx), on)
        await self.say(ctx, (_("Loudness normalisation is on.") if on else _("Loudness normalisation is off.")))

    @SettingsCommands.musicset.command(name="filterlimit")
    @commands.is_owner()
    async def musicset_filterlimit(self, ctx: commands.GuildContext, servers: int) -> None:
        """How many servers may play through filters, an equalizer or normalisation at once
        (each costs a transcode); `0` for no limit."""
        if not 0 <= servers <= 100_000:
            raise CommandError(_("Pick a number of servers from 0 (no limit) to 100000."))
        await self.store.set_global("filter_limit", servers)
        await self.say(ctx, _("Up to {servers} servers may use filters at once.").format(servers=servers) if servers
                       else _("Any number of servers may use filters at once."))


def sound_line(chain: FilterChain) -> str:
    """What the music goes through, for `now` ("" when nothing)."""
    parts = []
    if chain.has_effects:
        parts.append("filters: " + _effects_text(chain))
    if chain.has_eq:
        parts.append(_("equalizer: {chain}").format(chain=_eq_name(chain)))
    if chain.normalize:
        parts.append(_("loudness normalised"))
    text = "; ".join(parts)
    return text[:1].upper() + text[1:]


def _effects_text(chain: FilterChain) -> str:
    return ", ".join(chain.effect_names()) or "off"


def _eq_name(chain: FilterChain) -> str:
    for name, gains in EQ_PRESETS.items():
        if tuple(chain.eq) == tuple(float(g) for g in gains):
            return name
    return "custom"


def _band_name(hz: int) -> str:
    return f"{hz / 1000:g} kHz" if hz >= 1000 else f"{hz} Hz"


def _eq_table(eq: tuple[float, ...]) -> str:
    """One line per band: frequency, gain, dB and a bar (one mark per 2 dB)."""
    lines = []
    for number, (label, gain, db) in enumerate(EqTable.of(eq).rows, 1):
        marks = round(abs(db) / 2)
        bar = ("+" if db > 0 else "-") * marks
        lines.append(f"{number:>2}. {label:>5} Hz  {gain:+.2f}  {db:+5.1f} dB  {bar}")
    return "\n".join(lines)

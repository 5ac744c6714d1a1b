"""Intents for what a server's music goes through: `filter`s, the equalizer and its saved
presets, and loudness normalisation.

They are server settings (kept in music.store, so a reload or a restart keeps them, like the
volume), and a change reaches the playing track at once: the player opens it again through the
new chain and splices it in where it has got to (player.handlers.on_set_filters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..engine.filters import (
    EQ_BANDS,
    FLAT,
    MAX_SAVED_PRESETS,
    FilterChain,
    parse_band,
    parse_gain,
    preset_gains,
    valid_preset_name,
)
from ..i18n import _
from ..player import events as ev
from ..player.state import PlayerState
from .errors import ControlError
from .permissions import Actor, Intent

if TYPE_CHECKING:
    from .controller import MusicControl

OFF_WORDS = ("off", "none", "reset", "clear")


def server_chain(settings: Any) -> FilterChain:
    """The chain a server's settings (store.GuildSettings) describe."""
    return FilterChain.from_dict(settings.filters, normalize=settings.normalize)


class FilterControl:
    """`filter`, `eq` and `musicset normalize`, composed by MusicControl (``control.filters``)."""

    def __init__(self, control: MusicControl) -> None:
        self._control = control

    # -- reading ----------------------------------------------------------------------------------

    def chain(self, guild_id: int) -> FilterChain:
        """The server's chain (what plays once any change in flight is heard)."""
        return server_chain(self._control.store.guild(guild_id))

    def saved_presets(self, guild_id: int) -> dict[str, tuple[float, ...]]:
        """The server's saved equalizer presets, by name."""
        saved = self._control.store.guild(guild_id).eq_presets or {}
        return {name: tuple(gains) for name, gains in sorted(saved.items())}

    def filtered_servers(self, *, besides: int | None = None) -> int:
        """Servers whose music plays through a chain now (the owner's limit counts these)."""
        return sum(
            1 for guild_id, player in self._control.manager.players.items()
            if guild_id != besides and player.state is not PlayerState.IDLE
            and not player.filters.is_flat
        )

    # -- `filter` ---------------------------------------------------------------------------------

    async def set_filter(self, guild_id: int, actor: Actor, name: str,
                         value: str | None = None) -> FilterChain:
        """Turn a filter on (`nightcore`), set it (`speed 1.2`), turn it off (`tremolo off`),
        or every filter off (`off`); the equalizer and normalisation stay. Returns the chain."""
        self._control._require(Intent.FILTER, guild_id, actor)
        chain = self.chain(guild_id)
        if name.strip().lower() in OFF_WORDS and value is None:
            changed = chain.without_effects()
        else:
            try:
                changed = chain.with_filter(name.strip(), value)
            except ValueError as exc:
                raise ControlError(str(exc)) from None
        await self._apply(guild_id, changed)
        return changed

    # -- `eq` -------------------------------------------------------------------------------------

    async def set_band(self, guild_id: int, actor: Actor, band: str, gain: str) -> tuple[int, float]:
        """One band (its number or frequency) to a gain (Lavalink's scale or dB); returns
        (band index, gain)."""
        self._control._require(Intent.EQ, guild_id, actor)
        try:
            index, value = parse_band(band), parse_gain(gain)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        await self._apply(guild_id, self.chain(guild_id).with_band(index, value))
        return index, value

    async def load_preset(self, guild_id: int, actor: Actor, name: str) -> tuple[float, ...]:
        """A built-in preset (`bassboost`, `flat`, ...) or one the server saved."""
        self._control._require(Intent.EQ, guild_id, actor)
        gains = preset_gains(name) or self.saved_presets(guild_id).get(name.strip().lower())
        if gains is None:
            raise ControlError(_("There is no equalizer preset called `{name}`; "
                               "`eq list` shows them.").format(name=name.strip()[:32]))
        await self._apply(guild_id, self.chain(guild_id).with_eq(gains))
        return gains

    async def reset_eq(self, guild_id: int, actor: Actor) -> None:
        self._control._require(Intent.EQ, guild_id, actor)
        await self._apply(guild_id, self.chain(guild_id).with_eq(FLAT))

    async def save_preset(self, guild_id: int, actor: Actor, name: str) -> str:
        """Save the server's equalizer as `name` (replacing a saved one of that name)."""
        self._control._require(Intent.EQ_SAVE, guild_id, actor)
        try:
            key = valid_preset_name(name)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        saved = dict(self._control.store.guild(guild_id).eq_presets or {})
        if key not in saved and len(saved) >= MAX_SAVED_PRESETS:
            raise ControlError(_("This server has {max_saved_presets} saved presets, the most it "
                               "may keep; delete one first.").format(max_saved_presets=MAX_SAVED_PRESETS))
        saved[key] = list(self.chain(guild_id).eq)
        await self._control.store.set_guild(guild_id, "eq_presets", saved)
        return key

    async def delete_preset(self, guild_id: int, actor: Actor, name: str) -> str:
        self._control._require(Intent.EQ_DELETE, guild_id, actor)
        key = name.strip().lower()
        saved = dict(self._control.store.guild(guild_id).eq_presets or {})
        if key not in saved:
            raise ControlError(_("This server has no saved preset called `{key}`.").format(key=key[:32]))
        del saved[key]
        await self._control.store.set_guild(guild_id, "eq_presets", saved)
        return key

    # -- `musicset normalize` ---------------------------------------------------------------------

    async def set_normalize(self, guild_id: int, actor: Actor, on: bool) -> None:
        self._control._require(Intent.NORMALIZE, guild_id, actor)
        await self._apply(guild_id, self.chain(guild_id).with_normalize(on))

    # -- applying ---------------------------------------------------------------------------------

    async def _apply(self, guild_id: int, chain: FilterChain) -> None:
        """Store the server's new chain and let the player play on through it."""
        control = self._control
        before = self.chain(guild_id)
        if chain == before:
            return
        if before.is_flat and not chain.is_flat:
            self._check_limit(guild_id)
        if chain.to_dict() != before.to_dict():
            await control.store.set_guild(guild_id, "filters", chain.to_dict())
        if chain.normalize != before.normalize:
            await control.store.set_guild(guild_id, "normalize", chain.normalize)
        player = control.player(guild_id)
        if player.state is PlayerState.IDLE:
            player.filters = chain  # nothing plays: the next track opens through it
        else:
            control.manager.post(ev.SetFilters(guild_id, chain))

    def _check_limit(self, guild_id: int) -> None:
        limit = self._control.store.globals.filter_limit
        if limit and self.filtered_servers(besides=guild_id) >= limit:
            raise ControlError(
                (_("Filters, the equalizer and normalisation are in use in {limit} servers already, the most the bot owner allows at once (they cost the bot a transcode each); try again when one of them stops.") if limit != 1 else _("Filters, the equalizer and normalisation are in use in {limit} server already, the most the bot owner allows at once (they cost the bot a transcode each); try again when one of them stops.")).format(limit=limit))


__all__ = ["EQ_BANDS", "FilterControl", "server_chain"]

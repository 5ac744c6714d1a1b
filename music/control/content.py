"""What may play and how loud (composed by MusicControl as `.content`): `musicset maxvolume`
and the block and allow lists, this server's (admins) and the bot's (owner).

The lists are stored as settings (store.MusicStore) and checked by admission for every entry
of every path (engine/admission.py `screen`); the player checks them again when an entry comes
to play (player/adapters.py), so a rule added later also stops what was already queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.content_rules import MAX_RULES, RuleError, parse_rule
from ..i18n import _
from ..player import events as ev
from ..player.state import PlayerState
from .errors import ControlError
from .permissions import Actor, Intent

if TYPE_CHECKING:
    from .controller import MusicControl

MAX_VOLUME_CEILING = 150  # what `volume` itself allows


@dataclass(frozen=True)
class RuleList:
    """Which list: `kind` "block" or "allow"; `bot_wide` the bot's (owner) or this server's."""

    kind: str
    bot_wide: bool = False

    @property
    def intent(self) -> Intent:
        if self.kind == "block":
            return Intent.BLOCKLIST_GLOBAL if self.bot_wide else Intent.BLOCKLIST
        return Intent.ALLOWLIST_GLOBAL if self.bot_wide else Intent.ALLOWLIST

    @property
    def setting(self) -> str:
        return f"{self.kind}list"

    def describe(self) -> str:
        if self.kind == "block":
            return _("the bot's block list") if self.bot_wide else _("this server's block list")
        return _("the bot's allow list") if self.bot_wide else _("this server's allow list")


class ContentControl:
    """The max-volume and block/allow-list intents of one cog."""

    def __init__(self, control: MusicControl) -> None:
        self.control = control

    # -- the highest volume --------------------------------------------------------------------

    async def set_max_volume(self, guild_id: int, actor: Actor, percent: int) -> int:
        """The highest volume anyone may set here (admins too: they raise this first). A player
        or a default above it comes down to it now."""
        self.control._require(Intent.MAX_VOLUME, guild_id, actor)
        if not 1 <= percent <= MAX_VOLUME_CEILING:
            raise ControlError(_("Pick a maximum volume from 1 to {max_volume_ceiling}.").format(max_volume_ceiling=MAX_VOLUME_CEILING))
        store = self.control.store
        await store.set_guild(guild_id, "max_volume", percent)
        if store.guild(guild_id).volume > percent:
            await store.set_guild(guild_id, "volume", percent)
        player = self.control.player(guild_id)
        if player.volume > percent:
            if player.queue.current is None or player.state is PlayerState.IDLE:
                player.volume = percent
                self.control.manager.save(player)
            else:
                self.control.manager.post(ev.SetVolume(guild_id, percent))
        return percent

    # -- block and allow lists -------------------------------------------------------------------

    def _rules(self, guild_id: int, which: RuleList) -> list[str]:
        store = self.control.store
        source = store.globals if which.bot_wide else store.guild(guild_id)
        return list(getattr(source, which.setting))

    async def _write(self, guild_id: int, which: RuleList, rules: list[str]) -> None:
        store = self.control.store
        if which.bot_wide:
            await store.set_global(which.setting, rules)
        else:
            await store.set_guild(guild_id, which.setting, rules)

    def rules(self, guild_id: int, actor: Actor, which: RuleList) -> list[str]:
        self.control._require(which.intent, guild_id, actor)
        return self._rules(guild_id, which)

    async def add_rule(self, guild_id: int, actor: Actor, which: RuleList, text: str) -> str:
        """Add a keyword or domain; returns it as stored (a link becomes its site's name)."""
        self.control._require(which.intent, guild_id, actor)
        try:
            rule = parse_rule(text)
        except RuleError as exc:
            raise ControlError(exc.sentence) from None
        rules = self._rules(guild_id, which)
        if rule in rules:
            raise ControlError(_("`{rule}` is already on {describe}.").format(rule=rule, describe=which.describe()))
        if len(rules) >= MAX_RULES:
            raise ControlError(_("{describe} is full ({max_rules} rules); remove one first.").format(describe=which.describe().capitalize(), max_rules=MAX_RULES))
        await self._write(guild_id, which, [*rules, rule])
        return rule

    async def remove_rule(self, guild_id: int, actor: Actor, which: RuleList, text: str) -> str:
        self.control._require(which.intent, guild_id, actor)
        try:
            rule = parse_rule(text)
        except RuleError:
            rule = text.strip()
        rules = self._rules(guild_id, which)
        if rule not in rules:
            raise ControlError(_("`{rule}` is not on {describe}.").format(rule=rule[:100], describe=which.describe()))
        await self._write(guild_id, which, [r for r in rules if r != rule])
        return rule

    async def clear_rules(self, guild_id: int, actor: Actor, which: RuleList) -> int:
        self.control._require(which.intent, guild_id, actor)
        rules = self._rules(guild_id, which)
        if rules:
            await self._write(guild_id, which, [])
        return len(rules)

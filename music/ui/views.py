"""The discord.ui views: the "Now playing" buttons, the search picker, the queue pager.

Every callback catches what it raises: a click never puts a traceback in Red's log."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import discord
from redbot.core.i18n import set_contextual_locales_from_guild

from ..i18n import _, deferred
from .controls import Action, custom_id

log = logging.getLogger("red.music.ui")

NO_MENTIONS = discord.AllowedMentions.none()
PressHandler = Callable[[discord.Interaction, Action], Awaitable[None]]

# label, style, row; PAUSE and RESUME share a place: a message shows the one that applies
_BUTTONS: dict[Action, tuple[str, discord.ButtonStyle, int]] = {
    Action.PREVIOUS: (deferred._("Back"), discord.ButtonStyle.secondary, 0),
    Action.PAUSE: (deferred._("Pause"), discord.ButtonStyle.primary, 0),
    Action.RESUME: (deferred._("Resume"), discord.ButtonStyle.success, 0),
    Action.SKIP: (deferred._("Skip"), discord.ButtonStyle.primary, 0),
    Action.STOP: (deferred._("Stop"), discord.ButtonStyle.danger, 0),
    Action.SHUFFLE: (deferred._("Shuffle"), discord.ButtonStyle.secondary, 1),
    Action.REPEAT: (deferred._("Repeat"), discord.ButtonStyle.secondary, 1),
    Action.QUEUE: (deferred._("Queue"), discord.ButtonStyle.secondary, 1),
}


class _QuietView(discord.ui.View):
    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]) -> None:
        # the callbacks answer every failure themselves; this is the last net, kept out of
        # Red's error log (a member's click is not the owner's problem)
        log.debug("A music button failed", exc_info=error)


class NowPlayingControls(_QuietView):
    """The buttons under "Now playing". Registered once per cog load with `bot.add_view` (no
    message id): it answers the fixed custom ids on any message, old ones included."""

    def __init__(self, on_press: PressHandler, actions: Sequence[Action] = tuple(Action), *,
                 shuffle: bool = False, repeat: str = "off") -> None:
        super().__init__(timeout=None)
        for action in actions:
            label, style, row = _BUTTONS[action]
            label = _(label)
            if action is Action.SHUFFLE and shuffle:
                label, style = _("Shuffle: on"), discord.ButtonStyle.success
            if action is Action.REPEAT and repeat != "off":
                label, style = _("Repeat: {repeat}").format(repeat=repeat), discord.ButtonStyle.success
            button: discord.ui.Button[NowPlayingControls] = discord.ui.Button(
                label=label, style=style, custom_id=custom_id(action), row=row)
            button.callback = _bind(on_press, action)  # type: ignore[method-assign,assignment]
            self.add_item(button)


def _bind(on_press: PressHandler, action: Action) -> Callable[[discord.Interaction], Coroutine[Any, Any, None]]:
    async def callback(interaction: discord.Interaction) -> None:
        await speak_guild_language(interaction)
        await on_press(interaction, action)

    return callback


async def _ignore(interaction: discord.Interaction, action: Action) -> None:
    return None


def display_controls(*, paused: bool, shuffle: bool, repeat: str) -> discord.ui.View:
    """The buttons to show on a message. Stopped before it is sent, so discord.py does not keep
    one view per message for ever: the registered NowPlayingControls answers the clicks."""
    shown = [a for a in Action if a is not (Action.PAUSE if paused else Action.RESUME)]
    view = NowPlayingControls(_ignore, shown, shuffle=shuffle, repeat=repeat)
    view.stop()
    return view


class SearchPicker(_QuietView):
    """A select menu of search results for the member who searched; `on_pick(index)` gets the
    0-based pick. Any other member is told privately that the menu is not theirs."""

    def __init__(self, owner_id: int, labels: Sequence[str], on_pick: Callable[[int], bool],
                 *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.on_pick = on_pick
        options = [discord.SelectOption(label=_clip(label, 100), value=str(i))
                   for i, label in enumerate(labels[:25])]  # Discord's limits: 25 options, 100 characters
        select: discord.ui.Select[SearchPicker] = discord.ui.Select(
            custom_id="music:search:pick", placeholder=_("Pick a result to queue"), options=options)
        select.callback = self._picked  # type: ignore[method-assign]
        self.select = select
        self.add_item(select)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        await speak_guild_language(interaction)
        if interaction.user.id == self.owner_id:
            return True
        await answer_privately(interaction, _("Only the member who searched can pick from this list."))
        return False

    async def _picked(self, interaction: discord.Interaction) -> None:
        try:
            index = int(self.select.values[0])
        except (IndexError, ValueError):
            index = -1
        won = self.on_pick(index)
        self.stop()
        try:
            if won:  # the menu goes away; the command answers in the channel
                await interaction.response.edit_message(view=None)
            else:
                await interaction.response.send_message(_("You already picked."), ephemeral=True)
        except discord.HTTPException:
            log.debug("Could not answer a search pick", exc_info=True)


class QueuePager(_QuietView):
    """Previous/next page buttons for whoever asked; times out and loses its buttons."""

    def __init__(self, owner_id: int, pages: Sequence[str], *, timeout: float,
                 as_embeds: bool = False) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.pages = list(pages)
        self.page = 0
        self.as_embeds = as_embeds
        self.on_expire: Callable[[], Awaitable[Any]] | None = None  # removes the buttons
        self.back: discord.ui.Button[QueuePager] = discord.ui.Button(
            label=_("Previous page"), style=discord.ButtonStyle.secondary, custom_id="music:queue:back")
        self.forward: discord.ui.Button[QueuePager] = discord.ui.Button(
            label=_("Next page"), style=discord.ButtonStyle.secondary, custom_id="music:queue:next")
        self.back.callback = self._back  # type: ignore[method-assign]
        self.forward.callback = self._forward  # type: ignore[method-assign]
        self.add_item(self.back)
        self.add_item(self.forward)
        self._refresh_buttons()

    def content(self) -> dict[str, Any]:
        """What to send or edit: the current page as text or as an embed."""
        text = self.pages[self.page]
        if self.as_embeds:
            return {"content": None, "embed": discord.Embed(title=_("Queue"), description=text)}
        return {"content": text}

    def _refresh_buttons(self) -> None:
        self.back.disabled = self.page == 0
        self.forward.disabled = self.page >= len(self.pages) - 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        await speak_guild_language(interaction)
        if interaction.user.id == self.owner_id:
            return True
        await answer_privately(interaction, _("Only the member who asked can turn these pages; `queue` shows you your own."))
        return False

    async def _back(self, interaction: discord.Interaction) -> None:
        await self._turn(interaction, -1)

    async def _forward(self, interaction: discord.Interaction) -> None:
        await self._turn(interaction, +1)

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        self.page = max(0, min(len(self.pages) - 1, self.page + step))
        self._refresh_buttons()
        try:
            await interaction.response.edit_message(**self.content(), view=self, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException:
            log.debug("Could not turn a queue page", exc_info=True)

    async def on_timeout(self) -> None:
        if self.on_expire is not None:
            try:
                await self.on_expire()
            except discord.HTTPException:
                log.debug("Could not remove the queue's page buttons", exc_info=True)


async def speak_guild_language(interaction: discord.Interaction) -> None:
    """Answer a click in its server's language (`[p]set locale`): Red sets it for commands and
    slash commands, not for components."""
    try:
        await set_contextual_locales_from_guild(interaction.client, interaction.guild)  # type: ignore[arg-type]
    except Exception:  # a language is never worth a failed click: keep the current one
        log.debug("Could not read the locale of guild %s", interaction.guild_id, exc_info=True)


async def answer_privately(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral sentence for the clicker; never raises (the token may have expired)."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException:
        log.debug("Could not answer a click", exc_info=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

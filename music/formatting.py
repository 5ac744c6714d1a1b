"""Turning remote and user text into safe chat text."""

from __future__ import annotations

import re

import discord

from .engine.timefmt import format_duration
from .engine.track import Track
from .i18n import _

_MAX_TITLE = 120
# <@123>, <@!123>, <@&123>, <#123>, @everyone, @here
_MENTION = re.compile(r"@(everyone|here|[!&]?\d{15,21})")


def safe(text: str | None, *, limit: int = _MAX_TITLE) -> str:
    """Remote or user text, made inert: no mentions, no markdown, bounded length."""
    if not text:
        return ""
    text = " ".join(str(text).split())  # newlines in titles would break layouts
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _MENTION.sub("@\u200b\\1", text)
    return discord.utils.escape_markdown(text)


def track_line(track: Track) -> str:
    """`**Title** (3:07)` with the title escaped."""
    if track.is_live:
        duration = "live"
    elif track.duration is None:
        duration = "?"  # not resolved yet (a playlist entry)
    else:
        duration = format_duration(track.duration)
    return _("**{title}** ({duration})").format(title=safe(track.title) or _('Unknown title'), duration=duration)

"""The player's errors, each a sentence for the user."""

from __future__ import annotations

from ..i18n import _


class VoiceError(Exception):
    """A voice connection problem, in a sentence for the user."""


class StreamOpenError(Exception):
    """A track's stream could not be opened, in a sentence for the user."""


def plain_error(exc: BaseException | None) -> str:
    """An exception as a short sentence (its text, or its type's name)."""
    if exc is None:
        return _("unknown error")
    text = str(exc).strip() or type(exc).__name__
    return text[:300]

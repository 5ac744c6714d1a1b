"""The control layer's one error, and the limits and sentences every front door shares."""

from __future__ import annotations

import asyncio

from ..i18n import _, deferred

# How long a command or an RPC call waits for the cog to finish starting.
READY_TIMEOUT = 15.0
STARTING_UP = deferred._("Music is still starting up; please try again in a few seconds.")
# The longest query (a link or search words) anyone may send.
MAX_QUERY_LENGTH = 500


class ControlError(Exception):
    """A request that can't be carried out; `sentence` says why, for the user. Nothing changed."""

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


async def wait_until_ready(ready: asyncio.Event, timeout: float = READY_TIMEOUT) -> None:
    """The readiness gate of every front door: wait for the cog's start, or refuse."""
    if ready.is_set():
        return
    try:
        await asyncio.wait_for(ready.wait(), timeout)
    except asyncio.TimeoutError:
        raise ControlError(_(STARTING_UP)) from None


def clean_query(query: object) -> str:
    """A member's query, checked: text, not empty, not too long; `<url>` accepted."""
    if not isinstance(query, str) or not query.strip():
        raise ControlError(_("Give a link, or words to search for."))
    text = query.strip().strip("<>")  # <url> suppresses Discord's embed; accept it
    if len(text) > MAX_QUERY_LENGTH:
        raise ControlError(_("That is too long: keep it under {max_query_length} characters.").format(max_query_length=MAX_QUERY_LENGTH))
    return text

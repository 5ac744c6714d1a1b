"""ResolveError, and what a failure inside yt-dlp means: a kind (retry? count against the
site?) and a plain sentence for the member who asked."""

from __future__ import annotations

import asyncio
import enum
import logging
import re

from yt_dlp.utils import DownloadError, YoutubeDLError

from music.engine.timefmt import quote_user_text
from music.netguard import policy_refusal
from music.policy import PolicyError

from ..i18n import _

log = logging.getLogger("red.music.resolve")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HTTP_STATUS = re.compile(r"http error (\d{3})")


class ErrorKind(str, enum.Enum):
    """What a failure says about retrying and about the site's health."""

    PERMANENT = "permanent"  # this video/link: private, unavailable, 404... no retry
    TRANSIENT = "transient"  # timeouts, HTTP 5xx, 429, dropped connections: retry with backoff
    BROKEN = "broken"  # the extractor or the site's treatment of the bot: no retry, but it
    # counts against the site's circuit breaker like a transient failure


class ResolveError(Exception):
    """Resolving failed; `sentence` (also str(self)) is what to tell the user."""

    def __init__(self, sentence: str, kind: ErrorKind = ErrorKind.PERMANENT) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.kind = kind

    @property
    def transient(self) -> bool:
        """Worth retrying (read by the job scheduler)."""
        return self.kind is ErrorKind.TRANSIENT


def classify_error(message: str, timeout: float) -> tuple[ErrorKind, str]:
    """What kind of failure a yt-dlp error message is, and a plain sentence for it."""
    text = _ANSI.sub("", message).replace("ERROR: ", "", 1).strip()
    lower = text.lower()
    status_match = _HTTP_STATUS.search(lower)
    status = int(status_match[1]) if status_match else None
    permanent, transient, broken = ErrorKind.PERMANENT, ErrorKind.TRANSIENT, ErrorKind.BROKEN
    if "unsupported url" in lower:
        return permanent, _("I can't play that link: the site isn't supported.")
    if "private video" in lower or "video is private" in lower:
        return permanent, _("That video is private.")
    if "not a bot" in lower:
        return broken, (
            _("The site asked the bot to sign in to prove it isn't a bot; the bot owner may need "
            "to update yt-dlp or give it cookies.")
        )
    if "sign in to confirm your age" in lower or "age-restricted" in lower:
        return permanent, _("That video is age-restricted and needs a signed-in account.")
    if "members" in lower and "only" in lower or "join this channel" in lower:
        return permanent, _("That video is for channel members only.")
    if (
        "your country" in lower
        or "your location" in lower
        or "geo restrict" in lower
        or "geo-restrict" in lower
    ):
        return permanent, _("That video isn't available in the bot's country.")
    if status == 404 or status == 410:
        return permanent, _("There's nothing at that link (the site answered 404 Not Found).")
    if status == 403:
        return broken, _("The site refused access to that link (403 Forbidden).")
    if status == 429:
        return (
            transient,
            _("The site is rate-limiting the bot (429 Too Many Requests); try again later."),
        )
    if status is not None and 500 <= status <= 599:
        return (
            transient,
            _("The site is having trouble (it answered HTTP {status}); try again later.").format(status=status),
        )
    if "timed out" in lower or "timeout" in lower:
        return transient, _("Looking that up timed out after {timeout:g} s.").format(timeout=timeout)
    if "live event will begin" in lower or "premieres in" in lower:
        return permanent, _("That stream hasn't started yet.")
    if "unavailable" in lower or "not available" in lower or "has been removed" in lower:
        return permanent, _("That video is unavailable.")
    if "name or service not known" in lower or "getaddrinfo" in lower or "resolve host" in lower:
        return permanent, _("I couldn't reach that site.")
    if (
        "connection reset" in lower
        or "connection refused" in lower
        or "remote end closed" in lower
        or "temporary failure" in lower
        or "incompleteread" in lower
    ):
        return transient, _("I couldn't reach that site; the connection dropped.")
    first_line = text.splitlines()[0] if text else _("unknown error")
    sentence = _("I couldn't load that: {first_line}").format(first_line=quote_user_text(first_line, 150))
    if "unable to extract" in lower or "report this issue" in lower:
        return broken, sentence  # the site changed under yt-dlp
    return permanent, sentence


def to_resolve_error(exc: BaseException, timeout: float) -> ResolveError:
    """Any failure during a lookup as a ResolveError with a sentence and a kind."""
    if isinstance(exc, ResolveError):
        return exc
    if isinstance(exc, PolicyError):
        return ResolveError(exc.sentence)
    if isinstance(exc, (DownloadError, YoutubeDLError)):
        refusal = policy_refusal(str(exc))  # the network guard refused a connection
        if refusal is not None:
            return ResolveError(refusal.sentence)
        kind, sentence = classify_error(str(exc), timeout)
        return ResolveError(sentence, kind)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):  # two classes before Python 3.11
        return ResolveError(_("Looking that up timed out after {timeout:g} s.").format(timeout=timeout), ErrorKind.TRANSIENT)
    # An extractor bug must not escape as an unknown exception into a command.
    log.error("yt-dlp failed unexpectedly", exc_info=exc)
    return ResolveError(_("I couldn't load that: yt-dlp failed unexpectedly."), ErrorKind.BROKEN)

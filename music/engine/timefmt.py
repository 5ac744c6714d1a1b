"""Parsing and formatting of positions and durations as users type and read them."""

from __future__ import annotations

import math
import re

from ..i18n import _, deferred

# Seeking exactly to the end would just end the track; stay this far before it.
END_MARGIN = 1.0
# Never echo more user text than this into a reply.
QUOTE_LIMIT = 50

_CLOCK = re.compile(
    r"^(?:(?P<h>\d+):(?P<m2>\d{1,2}):(?P<s3>\d{1,2}(?:\.\d+)?)|(?P<m>\d+):(?P<s2>\d{1,2}(?:\.\d+)?)|(?P<s>\d+(?:\.\d+)?))$"
)
_UNITS = re.compile(
    r"^(?:(?P<h>\d+(?:\.\d+)?)h)?\s*(?:(?P<m>\d+(?:\.\d+)?)m(?:in)?)?\s*(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)

_SEEK_HELP = deferred._("use seconds (90), mm:ss (1:30) or a relative offset (+10, -10)")
_DURATION_HELP = deferred._("use seconds (90), mm:ss (1:30), h:mm:ss (1:02:03) or units (2m30s)")


def quote_user_text(text: str, limit: int = QUOTE_LIMIT) -> str:
    """User text made safe for inline code in a reply: no backticks or newlines, at most
    `limit` characters (an ellipsis marks the cut)."""
    cleaned = " ".join(text.replace("`", "'").split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned or " "


def _clock_seconds(text: str) -> float | None:
    """Seconds for `90`, `1:30`, `1:02:03` (seconds/minutes fields must be < 60), else None."""
    match = _CLOCK.match(text)
    if match is None:
        return None
    parts = match.groupdict()
    if parts["s"] is not None:
        return float(parts["s"])
    if parts["m"] is not None:
        secs = float(parts["s2"])
        return None if secs >= 60 else int(parts["m"]) * 60 + secs
    minutes, secs = int(parts["m2"]), float(parts["s3"])
    if minutes >= 60 or secs >= 60:
        return None
    return int(parts["h"]) * 3600 + minutes * 60 + secs


def parse_seek(text: str, *, position: float, duration: float | None) -> float:
    """Target position in seconds for a seek command.

    `+10`/`-10` are relative to `position`; the result is clamped to [0, duration)."""
    raw = text.strip()
    sign = raw[:1] if raw[:1] in "+-" else ""
    value = _clock_seconds(raw[len(sign) :].strip())
    if value is None:
        raise ValueError(_("I couldn't read `{text}` as a position: {seek_help}.").format(text=quote_user_text(text), seek_help=_(_SEEK_HELP)))
    if sign == "+":
        target = position + value
    elif sign == "-":
        target = position - value
    else:
        target = value
    target = max(0.0, target)
    if duration is not None and math.isfinite(duration) and duration > 0:
        target = min(target, max(0.0, duration - END_MARGIN))
    return target


def parse_duration(text: str) -> float:
    """Seconds for `90`, `1:30`, `1:02:03`, `2m30s`, `1h`, `45s`; ValueError(sentence) else."""
    raw = text.strip().lower()
    value = _clock_seconds(raw)
    if value is None and raw:
        match = _UNITS.match(raw)
        if match is not None and any(match.groupdict().values()):
            parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
            value = parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    if value is None:
        raise ValueError(
            _("I couldn't read `{text}` as a duration: {duration_help}.").format(text=quote_user_text(text), duration_help=_(_DURATION_HELP))
        )
    return value


def format_duration(seconds: float | None) -> str:
    """`3:07`, `1:02:03`; `live` when there is no finite duration."""
    if seconds is None or not math.isfinite(seconds):
        return "live"
    total = int(max(0.0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def progress_bar(position: float, duration: float | None, width: int = 20) -> str:
    """A bar of exactly `width` characters with a marker at the played fraction.

    Without a known duration (live) the marker sits at the end."""
    width = max(2, width)
    if duration is None or not math.isfinite(duration) or duration <= 0:
        return "━" * (width - 1) + "●"
    fraction = min(1.0, max(0.0, position / duration))
    marker = min(width - 1, int(fraction * width))
    return "━" * marker + "●" + "─" * (width - 1 - marker)

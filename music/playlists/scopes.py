"""Red Audio's `--scope` style options, parsed without Discord.

`[p]playlist append MyList some song --scope user --author Alice`: the words before the first
option are the command's own text; each option takes the words up to the next one. The names
are Audio's (`--scope`, `--author`/`--user`/`--member`, `--guild`/`--server`, and for `copy`
the same with `--from-` and `--to-`); a long dash (what phones type for `--`) counts too. The
front door turns the author and guild text into ids; this module only splits and checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..i18n import _
from .model import PlaylistError, Scope, parse_scope

SCOPE_OPTIONS = {
    "--scope": "scope",
    "--author": "author", "--user": "author", "--member": "author",
    "--guild": "guild", "--server": "guild",
}
COPY_OPTIONS = {
    f"--{side}-{word}": f"{side}_{target}"
    for side in ("from", "to")
    for word, target in (("scope", "scope"), ("author", "author"), ("user", "author"),
                         ("member", "author"), ("guild", "guild"), ("server", "guild"))
}
_OPTION = re.compile(r"(?:^|(?<=\s))(--[A-Za-z][A-Za-z-]*)(?=\s|$)")
MAX_OPTION_TEXT = 200


@dataclass(frozen=True)
class ScopeArgs:
    """One side's scope options: `scope` parsed, `author` and `guild` as typed (None: not given)."""

    scope: Scope | None = None
    author: str | None = None
    guild: str | None = None


def split_options(text: str, options: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(the text before the first option, {option's target: its value}); PlaylistError for an
    unknown or empty option, or one given twice."""
    text = (text or "").replace("\u2014", "--").replace("\u2013\u2013", "--")
    matches = list(_OPTION.finditer(text))
    head = text[: matches[0].start()] if matches else text
    values: dict[str, str] = {}
    for index, match in enumerate(matches):
        flag = match.group(1).lower()
        target = options.get(flag)
        if target is None:
            known = ", ".join(sorted({f for f in options if not f.endswith(("user", "member", "server"))}))
            raise PlaylistError(_("I don't know the option `{flag}`; use {known}.").format(flag=flag[:40], known=known))
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        value = " ".join(text[match.end(): end].split())
        if not value:
            raise PlaylistError(_("`{flag}` needs a value.").format(flag=flag))
        if len(value) > MAX_OPTION_TEXT:
            raise PlaylistError(_("The value of `{flag}` is too long.").format(flag=flag))
        if target in values:
            raise PlaylistError(_("`{flag}` (or another name for it) is given twice.").format(flag=flag))
        values[target] = value
    return head.strip(), values


def _side(values: dict[str, str], prefix: str = "") -> ScopeArgs:
    scope = values.get(f"{prefix}scope")
    return ScopeArgs(
        scope=parse_scope(scope) if scope is not None else None,
        author=values.get(f"{prefix}author"),
        guild=values.get(f"{prefix}guild"),
    )


def parse_scope_options(text: str) -> tuple[str, ScopeArgs]:
    """`some words --scope user --author x` -> ("some words", ScopeArgs(USER, "x", None))."""
    head, values = split_options(text, SCOPE_OPTIONS)
    return head, _side(values)


def parse_copy_options(text: str) -> tuple[str, ScopeArgs, ScopeArgs]:
    """`[new name] --from-scope s --to-scope t ...` -> (new name, source, target)."""
    head, values = split_options(text, COPY_OPTIONS)
    return head, _side(values, "from_"), _side(values, "to_")

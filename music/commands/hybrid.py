"""Red's hybrid decorators, typed for this cog's command mixins (Red types them for methods of a
`Cog`; our commands live on mixins that the `Music` cog combines, which mypy cannot see).

Used as `@hybrid.command()` and `@hybrid.group()`: redgettext collects a command's help (for
the translations) from decorators named `command` and `group` only."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from redbot.core import commands

Callback = Callable[..., Coroutine[Any, Any, Any]]


def command(**attrs: Any) -> Callable[[Callback], commands.HybridCommand[Any, ..., Any]]:
    """A prefix command that is also a slash command (once the owner enables and syncs it)."""
    return cast("Callable[[Callback], commands.HybridCommand[Any, ..., Any]]", commands.hybrid_command(**attrs))


def group(**attrs: Any) -> Callable[[Callback], commands.HybridGroup[Any, ..., Any]]:
    """A prefix group that is also a slash command group; its `.command()` subcommands are
    hybrid too (`with_app_command=False` keeps one prefix-only)."""
    return cast("Callable[[Callback], commands.HybridGroup[Any, ..., Any]]", commands.hybrid_group(**attrs))

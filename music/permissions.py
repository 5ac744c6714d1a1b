"""Who counts as a DJ, shared by chat commands and the RPC API."""

from __future__ import annotations

from typing import Any


async def is_privileged(bot: Any, dj_role: int | None, member: Any) -> bool:
    """Holders of the DJ role (when one is set), moderators, admins and the bot owner."""
    if member is None:
        return False
    if dj_role is not None and any(role.id == dj_role for role in getattr(member, "roles", ())):
        return True
    return await bot.is_mod(member) or await bot.is_owner(member)

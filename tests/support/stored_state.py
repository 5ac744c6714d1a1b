"""Read the cog's persisted player state straight from the backend (settings.json on disk, or the
rows in Red's PostgreSQL layout), not through Config: what a new process would load."""

from __future__ import annotations

import json
from typing import Any

from music.store_chunks import CHUNK_GROUP, HEAD, LEGACY_STATE, state_from_stored
from tests.support.postgres import Backend


async def stored_chunks(backend: Backend, config: Any, guild_id: int) -> dict[str, Any]:
    """name -> chunk document of every chunk row stored for the guild."""
    if backend.name == "json":
        on_disk = json.loads(config._driver.data_path.read_text(encoding="utf-8"))
        return on_disk[config.unique_identifier].get(CHUNK_GROUP, {}).get(str(guild_id), {})
    import asyncpg

    assert backend.storage_details is not None
    schema = f"{config.cog_name}.{config.unique_identifier}"
    connection = await asyncpg.connect(**backend.storage_details)
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
            schema, CHUNK_GROUP)
        if not exists:
            return {}
        rows = await connection.fetch(
            f'SELECT primary_key_2, json_data FROM "{schema}"."{CHUNK_GROUP}" WHERE primary_key_1 = $1',
            str(guild_id))
    finally:
        await connection.close()
    return {row["primary_key_2"]: json.loads(row["json_data"]) for row in rows}


async def stored_state(backend: Backend, config: Any, guild_id: int) -> dict[str, Any]:
    """The guild's saved player in GuildPlayer.snapshot() form, from the chunked layout (or the
    old `state` value if that is all there is)."""
    guild = await backend.stored_guild(config, guild_id)
    if not guild.get(HEAD):
        return guild.get(LEGACY_STATE) or {}
    return state_from_stored(guild[HEAD], await stored_chunks(backend, config, guild_id))

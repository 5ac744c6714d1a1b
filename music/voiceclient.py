"""The guild's voice client, typed as the discord.VoiceClient this cog always connects.

discord.py types `guild.voice_client` as the abstract VoiceProtocol; every connection this cog
makes is a `discord.VoiceClient` (channel.connect's default), so the cast is one place."""

from __future__ import annotations

from typing import cast

import discord


def connected_voice(guild: discord.Guild | None) -> discord.VoiceClient | None:
    """The guild's voice client when it is connected, else None."""
    vc = cast("discord.VoiceClient | None", guild.voice_client if guild is not None else None)
    if vc is None or not vc.is_connected():
        return None
    return vc


def voice_channel(vc: discord.VoiceClient) -> discord.VoiceChannel:
    """The channel a connected voice client is in (this cog joins voice and stage channels)."""
    return cast(discord.VoiceChannel, vc.channel)

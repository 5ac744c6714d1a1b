"""The guild's voice client, typed as the discord.VoiceClient this cog always connects.

discord.py types `guild.voice_client` as the abstract VoiceProtocol; every connection this cog
makes is a `discord.VoiceClient` (channel.connect's default), so the cast is one place."""

from __future__ import annotations

import asyncio
import contextlib
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


#: discord.py 2.5+ (VoiceConnectionState): the voice client's connection flow, and its two tasks
#: that may still act on the guild after the client was given up: the websocket poller (it
#: reconnects or resumes on its own) and the connector
CONNECTION_STATE = "_connection"
CONNECTION_TASKS = ("_runner", "_connector")


def stop_reconnecting(vc: object) -> int:
    """Cancel a voice client's own reconnect and resume attempts before it is given up.

    When discord.py's poller of a connection that we replace later gives up (a resume or a
    reconnect timing out), it calls its disconnect(), which acts on the GUILD: it sends the
    gateway's leave (kicking the connection that replaced it out of the channel) and
    unregisters whatever voice client the guild has now. The kicked connection's own poller
    then does the same to the next one 15 s later: a cascade that stops playback every 15 s.
    Returns how many tasks were cancelled (0 if discord.py keeps them elsewhere: then only the
    cascade's guard is missing, not the disconnect)."""
    state = getattr(vc, CONNECTION_STATE, None)
    cancelled = 0
    for name in CONNECTION_TASKS:
        task = getattr(state, name, None)
        if isinstance(task, asyncio.Task) and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(AttributeError):
                setattr(state, name, None)
            cancelled += 1
    return cancelled

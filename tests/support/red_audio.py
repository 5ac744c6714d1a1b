"""Red's core Audio data, written by Audio's own code from the installed `redbot` package (its
Config registration, its playlist API classes and its SQLite wrapper), for the import and the
upload tests. Nothing here starts Audio's tasks or Lavalink.

- `lavalink_track(...)`: a track as Audio stores it: red-lavalink's `Track` turned into JSON by
  Audio's own `track_to_json`;
- `audio_v3_export(...)` / `audio_v2_export(...)`: the files `[p]playlist download` writes
  (Audio's `Playlist.to_json()` plus the fields the download command adds, as it adds them);
- `AudioWriter`: Audio's Config (registered by constructing the Audio cog object, not loading
  it) and its playlist database (`PlaylistWrapper` on `APSWConnectionWrapper`), to write
  playlists in every scope and server settings as Audio's commands do.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lavalink
from redbot.cogs.audio.apis.playlist_interface import Playlist as AudioPlaylistObject
from redbot.cogs.audio.apis.playlist_interface import create_playlist
from redbot.cogs.audio.apis.playlist_wrapper import PlaylistWrapper
from redbot.cogs.audio.core import Audio
from redbot.cogs.audio.core.utilities.miscellaneous import MiscellaneousUtilities
from redbot.cogs.audio.utils import PlaylistScope
from redbot.core.data_manager import cog_data_path
from redbot.core.utils.dbtools import APSWConnectionWrapper


def lavalink_track(uri: str, title: str, *, author: str = "Someone", length_ms: int = 180_000,
                   stream: bool = False) -> dict[str, Any]:
    """A track in the shape Audio saves in playlists (what its `track_to_json` makes)."""
    data = {
        "track": base64.b64encode(f"lavalink:{uri}".encode()).decode(),
        "info": {"identifier": uri.rsplit("/", 1)[-1], "isSeekable": not stream, "author": author,
                 "length": length_ms, "isStream": stream, "position": 0, "title": title, "uri": uri,
                 "sourceName": "http"},
    }
    # Audio's own serializer (it reads only the track; no cog state)
    return MiscellaneousUtilities.track_to_json(None, lavalink.Track(data))  # type: ignore[arg-type]


def _bot(user_id: int = 1) -> Any:
    return SimpleNamespace(user=SimpleNamespace(id=user_id))


def audio_v3_export(name: str, tracks: list[dict[str, Any]], *, guild_id: int = 5, author_id: int = 7,
                    playlist_id: int = 123456, url: str | None = None) -> bytes:
    """What Audio's `[p]playlist download <name>` uploads (v3, its default)."""
    playlist = AudioPlaylistObject(_bot(), None, PlaylistScope.GUILD.value, author_id, playlist_id, name,  # type: ignore[arg-type]
                                   url, tracks, guild_id)
    data = playlist.to_json()
    data["playlist"] = [track["info"]["uri"] for track in playlist.tracks]
    data["link"] = playlist.url
    data.update({"schema": 2, "version": "v3"})
    return json.dumps(data).encode("utf-8")


def audio_v2_export(name: str, uris: list[str], *, author_id: int = 7, url: str | None = None) -> bytes:
    """What Audio's `[p]playlist download <name> True` uploads (v2)."""
    data = {"author": author_id, "link": url, "playlist": uris, "name": name, "schema": 2, "version": "v2"}
    return json.dumps(data).encode("utf-8")


class AudioWriter:
    """Audio's storage in this bot's data folder, written through Audio's own classes."""

    def __init__(self, bot: Any, bot_user_id: int) -> None:
        self.bot = bot
        self.bot_user = SimpleNamespace(user=SimpleNamespace(id=bot_user_id))  # Audio keys global playlists by it
        self.cog = Audio(bot)  # registers Audio's Config exactly as Audio does; starts nothing
        self.config = self.cog.config
        self.db_path = Path(cog_data_path(raw_name="Audio")) / "Audio.db"
        self.connection = APSWConnectionWrapper(str(self.db_path))
        self.api = PlaylistWrapper(bot, self.config, self.connection)
        self._ids = iter(range(900_000_000_000_000_000, 2**62))

    async def start(self) -> AudioWriter:
        await self.api.init()
        return self

    async def playlist(self, scope: str, name: str, tracks: list[dict[str, Any]], *, author_id: int,
                       guild_id: int | None = None, url: str | None = None) -> int:
        """A playlist created the way `[p]playlist create/save` does (`create_playlist`, which
        takes the command message's id as the playlist id); returns its id."""
        playlist_id = next(self._ids)
        ctx = SimpleNamespace(bot=self.bot_user, message=SimpleNamespace(id=playlist_id),
                              guild=SimpleNamespace(id=guild_id) if guild_id is not None else None)
        author = SimpleNamespace(id=author_id)
        guild = SimpleNamespace(id=guild_id) if guild_id is not None else None
        await create_playlist(ctx, self.api, scope, name, url, tracks, author, guild)  # type: ignore[arg-type]
        return playlist_id

    async def delete(self, scope: str, playlist_id: int, scope_id: int) -> None:
        """Audio's delete: the row stays, marked deleted."""
        await self.api.delete(scope, playlist_id, scope_id)

    def guild(self, guild_id: int) -> Any:
        return self.config.guild_from_id(guild_id)

    async def close(self) -> None:
        """As Audio does on unload: close the database, end the HTTP session."""
        self.connection.close()
        await self.cog.session.close()

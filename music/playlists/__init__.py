"""Saved playlists without Discord: the model, file formats, `--scope` options, Red Audio's
leftover data, and the chunked Config storage."""

from .model import (
    ENTRY_CEILING,
    MAX_NAME_LENGTH,
    Playlist,
    PlaylistError,
    PlaylistSummary,
    Scope,
    Where,
    check_name,
    name_key,
)

__all__ = [
    "ENTRY_CEILING",
    "MAX_NAME_LENGTH",
    "Playlist",
    "PlaylistError",
    "PlaylistSummary",
    "Scope",
    "Where",
    "check_name",
    "name_key",
]

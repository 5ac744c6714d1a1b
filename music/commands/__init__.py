"""Thin command mixins; the decisions live in the engine and the player."""

from .filters import FilterCommands  # `filter`, `eq`, `musicset normalize/filterlimit`
from .owner import OwnerCommands
from .playback import PlaybackCommands
from .playlist_files import PlaylistFileCommands  # `playlist ...` (PlaylistCommands) and its files
from .queue import QueueCommands
from .settings import SettingsCommands

__all__ = [
    "FilterCommands", "OwnerCommands", "PlaybackCommands", "PlaylistFileCommands", "QueueCommands",
    "SettingsCommands",
]

"""Thin command mixins; the decisions live in the engine and the player."""

from .owner import OwnerCommands
from .playback import PlaybackCommands
from .playlist_files import PlaylistFileCommands  # `playlist ...` (PlaylistCommands) and its files
from .queue import QueueCommands
from .settings import SettingsCommands

__all__ = ["OwnerCommands", "PlaybackCommands", "PlaylistFileCommands", "QueueCommands", "SettingsCommands"]

"""Thin command mixins; the decisions live in the engine and the player."""

from .owner import OwnerCommands
from .playback import PlaybackCommands
from .queue import QueueCommands
from .settings import SettingsCommands

__all__ = ["OwnerCommands", "PlaybackCommands", "QueueCommands", "SettingsCommands"]

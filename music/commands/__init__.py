"""Thin command mixins; the decisions live in the engine and the player."""

from .buttons import NowPlayingButtons  # the live "Now playing" message and its buttons
from .content import ContentCommands  # musicset autoplay, maxvolume, blocklist, allowlist
from .filters import FilterCommands  # `filter`, `eq`, `musicset normalize/filterlimit`
from .owner import OwnerCommands
from .playback import PlaybackCommands
from .playlist_files import PlaylistFileCommands  # `playlist ...` (PlaylistCommands) and its files
from .queue import QueueCommands
from .queue_tools import QueueToolCommands  # queue clean, cleanself, search, dedupe
from .settings import SettingsCommands
from .slash import SlashCommands  # autocomplete, "Play this", deferral of the hybrid commands

__all__ = [
    "ContentCommands",
    "FilterCommands",
    "NowPlayingButtons",
    "OwnerCommands",
    "PlaybackCommands",
    "PlaylistFileCommands",
    "QueueCommands",
    "QueueToolCommands",
    "SettingsCommands",
    "SlashCommands",
]

"""The per-guild player: state, events, the table of handlers, and the ports it drives.

Only this package's handlers and the control layer (``music.control``) write a player or its
queue; front doors (commands, RPC) go through the control layer.
"""

from .errors import StreamOpenError, VoiceError
from .manager import PlayerManager
from .state import GuildPlayer, PlayerState

__all__ = ["GuildPlayer", "PlayerManager", "PlayerState", "StreamOpenError", "VoiceError"]

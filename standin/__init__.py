"""A local Discord stand-in for end-to-end tests, benchmarks and the no-token demo.

Not a cog: `info.json` here is hidden and disabled so Red's Downloader never offers it.
`Standin` (standin.server) is the entry point; `python -m standin.run_red` runs an unmodified
Red bot against it.
"""

from .rest import RestFault
from .server import DefaultWorld, Standin
from .state import Channel, Guild, Member, Message, Role, User

__all__ = ["Channel", "DefaultWorld", "Guild", "Member", "Message", "RestFault", "Role", "Standin", "User"]

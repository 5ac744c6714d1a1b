"""Turning what users ask for into Tracks: yt-dlp for links and searches, the local folder."""

from music.resolve.local import alist_local_files, list_local_files, resolve_local
from music.resolve.resolver import ResolveError, Resolver, ResolveResult

__all__ = [
    "ResolveError",
    "ResolveResult",
    "Resolver",
    "alist_local_files",
    "list_local_files",
    "resolve_local",
]

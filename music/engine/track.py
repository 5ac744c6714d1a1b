"""The Track: one queue entry, plus what is needed to (re)open its stream."""

from __future__ import annotations

import dataclasses
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

# Keyword-only fields need Python 3.10; on 3.9 the required fields simply come first.
_KEYWORD_ONLY: dict[str, bool] = {"kw_only": True} if sys.version_info >= (3, 10) else {}


def new_track_id() -> str:
    """A fresh queue-entry id."""
    return uuid.uuid4().hex


@dataclass(**_KEYWORD_ONLY)
class Track:
    """A queue entry. `id` identifies the entry (the same song queued twice has two ids).

    Keyword-only (on 3.10+) so that adding fields never silently shifts positional arguments;
    build it with keywords everywhere."""

    query: str
    title: str
    id: str = field(default_factory=new_track_id)
    duration: float | None = None
    kind: str = "remote"  # "remote" | "local"
    requester_id: int = 0
    uploader: str | None = None
    webpage_url: str | None = None
    stream_url: str | None = None
    stream_expires: float | None = None
    http_headers: dict[str, str] = field(default_factory=dict)
    acodec: str | None = None
    container: str | None = None
    is_live: bool = False
    extractor: str | None = None
    autoplay: bool = False  # queued by autoplay (not a member): a member's track takes its place

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (headers copied so the caller can't mutate this track)."""
        data = dataclasses.asdict(self)
        data["http_headers"] = dict(self.http_headers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Track:
        """Rebuild from `to_dict()` output; unknown keys (from newer/older versions) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if "http_headers" in kwargs:
            kwargs["http_headers"] = dict(kwargs["http_headers"] or {})
        return cls(**kwargs)

    def with_new_id(self) -> Track:
        """A copy that is a distinct queue entry (for re-queueing the same song)."""
        return dataclasses.replace(self, id=new_track_id(), http_headers=dict(self.http_headers))

    def copy(self, **changes: Any) -> Track:
        """A copy with the same id and `changes` applied."""
        changes.setdefault("http_headers", dict(self.http_headers))
        return dataclasses.replace(self, **changes)

    def song_key(self) -> tuple[str, str]:
        """Two entries are the same song when they point at the same page (or local file)."""
        target = (self.webpage_url or self.query).strip()
        if self.kind == "remote":
            target = target.rstrip("/")
        return self.kind, target

    def is_expired(self, now: float, margin: float = 60.0) -> bool:
        """True when the stream URL is missing or expires within `margin` seconds."""
        if self.kind == "local":
            return self.stream_url is None
        if self.stream_url is None:
            return True
        return self.stream_expires is not None and self.stream_expires - margin <= now

"""Lookups run the way the cog runs them (ResolveService over a Resolver, in the scheduler's
`music-resolve-N` threads), each answered whole: a playlist's later batches are collected, so a
test sees every entry at once. No cache and no retries unless asked: each lookup reaches yt-dlp
once, as a test of the resolver expects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from music.engine.track import Track
from music.resolve.cache import ResolveCache
from music.resolve.resolver import Resolver, ResolveResult
from music.resolve.service import ResolveService


class Lookups:
    def __init__(
        self,
        resolver: Resolver,
        *,
        workers: int = 3,
        max_attempts: int = 1,
        cached: bool = False,
        **service_options: Any,
    ) -> None:
        self.resolver = resolver
        cache = None if cached else ResolveCache(meta_ttl=0, stream_ttl=0)  # stores nothing
        self.service = ResolveService(
            resolver, workers=workers, max_attempts=max_attempts, cache=cache, **service_options
        )

    async def resolve(
        self, query: str, *, requester_id: int = 0, limit: int = 100, guild_id: int = 1
    ) -> ResolveResult:
        result = await self.service.resolve(
            query, guild_id=guild_id, requester_id=requester_id, limit=limit
        )
        tracks, title = list(result.tracks), result.title
        errors, truncated = list(result.errors), result.truncated
        if result.rest is not None:
            async for batch in result.rest:
                tracks += batch
            title = result.rest.title or title
            errors += result.rest.errors
            truncated = result.rest.truncated
        return ResolveResult(tracks, title, errors, truncated)

    async def refresh(self, track: Track, *, guild_id: int = 1) -> Track:
        return await self.service.refresh(track, guild_id=guild_id)

    async def search(
        self, query: str, n: int = 5, *, requester_id: int = 0, guild_id: int = 1
    ) -> list[Track]:
        return await self.service.search(query, n, guild_id=guild_id, requester_id=requester_id)

    async def close(self) -> None:
        """Stop the service, close the resolver's yt-dlp instances, wait for the threads."""
        await self.service.close()
        self.resolver.close()
        assert await asyncio.to_thread(self.service.scheduler.join, 10)


@asynccontextmanager
async def open_lookups(resolver: Resolver, **options: Any) -> AsyncIterator[Lookups]:
    lookups = Lookups(resolver, **options)
    try:
        yield lookups
    finally:
        await lookups.close()


async def resolve_once(resolver: Resolver, query: str, **options: Any) -> ResolveResult:
    """One lookup through a service of its own (closed afterwards)."""
    async with open_lookups(resolver) as lookups:
        return await lookups.resolve(query, **options)

"""ResolveService: the Resolver's blocking yt-dlp work run through the job scheduler, behind
per-site circuit breakers and a metadata/stream cache.

- Priorities and fairness come from JobScheduler (music.resolve.jobs); its threads are named
  `music-resolve-N`. The Resolver's own executor is not used by the service.
- Every lookup: the network policy is read and checked (also on cache hits), the site's breaker
  is asked, yt-dlp runs, the outcome is recorded on the breaker (a permanent "this video is
  private" counts as the site working).
- Playlists: `resolve()` returns as soon as the first entry is listed, with `result.rest`, a
  PlaylistExpansion to `async for` the remaining entries in batches while the first one plays.
  Entries are unresolved placeholders; `refresh()` resolves each as it nears the head of the
  queue (HIGH for prefetch, URGENT for the track about to play).
- Progress callbacks run on the event loop; `status()` and `cancel()` back `music status` and
  `music cancel`.

Not owned here: the Resolver (the caller closes it), the cache file's location (the caller
passes the cog's data path).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from music.engine.track import Track
from music.policy import NetworkPolicy, PolicyError
from music.resolve.breaker import BreakerBoard, BreakerOpenError
from music.resolve.cache import ResolveCache
from music.resolve.errors import ErrorKind, ResolveError, to_resolve_error
from music.resolve.expansion import ExpansionDone, PlaylistExpansion
from music.resolve.jobs import (
    Job,
    JobCancelled,
    JobContext,
    JobError,
    JobScheduler,
    Priority,
    ProgressCallback,
    Stage,
)
from music.resolve.playlist import PlaylistReader
from music.resolve.resolver import Resolver
from music.resolve.tracks import ResolveResult, apply_fresh
from music.resolve.urls import as_url, lookup_label, without_links
from music.resolve.warmup import WarmUpReport, warm_up_in

from ..i18n import _

log = logging.getLogger("red.music.resolve.service")

# Track fields that describe the song (cached for a day) vs. the stream (cached until expiry).
_STREAM_FIELDS = ("stream_url", "stream_expires", "http_headers", "acodec", "container")
_PER_ENTRY_FIELDS = ("id", "requester_id")


@dataclass
class ServiceResult(ResolveResult):
    """ResolveResult plus: `rest` (a playlist's remaining entries, None for a single track),
    `job_id` (None when answered from the cache) and `from_cache`."""

    rest: PlaylistExpansion | None = None
    job_id: int | None = None
    from_cache: bool = False


class ResolveService:
    """Scheduled, cached, breaker-guarded lookups. See the module docstring."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        workers: int = 3,
        timeout: float | None = None,
        max_attempts: int = 3,
        backoff_base: float = 1.0,
        backoff_max: float = 15.0,
        breaker_threshold: int = 5,
        breaker_open_for: float = 60.0,
        breaker_clock: Callable[[], float] = time.monotonic,
        cache: ResolveCache | None = None,
        cache_path: Path | None = None,
        autosave_interval: float = 300.0,
        batch_size: int = 50,
        batch_interval: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.resolver = resolver
        self.scheduler = JobScheduler(
            workers=workers,
            timeout=resolver.timeout if timeout is None else timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            rng=rng,
        )
        self.breakers = BreakerBoard(
            threshold=breaker_threshold, open_for=breaker_open_for, clock=breaker_clock
        )
        self.cache = cache if cache is not None else ResolveCache()
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.autosave_interval = autosave_interval
        self.batch_size = max(1, batch_size)
        self.batch_interval = batch_interval
        self._autosave: asyncio.Task[None] | None = None
        self._refreshing: dict[str, Job[Track]] = {}
        self._waiters: dict[int, int] = {}
        self._closed = False

    # ---- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Load the saved cache and start saving it periodically (if a cache_path is set)."""
        if self.cache_path is None:
            return
        loaded = await self.cache.load(self.cache_path)
        log.debug("Loaded %s cached lookups from %s", loaded, self.cache_path)
        if self._autosave is None and self.autosave_interval > 0:
            self._autosave = asyncio.create_task(self._autosave_loop(), name="music-resolve-cache")

    async def close(self) -> None:
        """Fail unfinished jobs with a sentence, stop the worker threads (a thread inside yt-dlp
        ends when its call returns, bounded by yt-dlp's socket timeout; threads are daemons) and
        save the cache."""
        if self._closed:
            return
        self._closed = True
        self.scheduler.close()
        if self._autosave is not None:
            self._autosave.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._autosave
            self._autosave = None
        if self.cache_path is not None and self.cache.dirty:
            try:
                await self.cache.save(self.cache_path)
            except OSError:
                log.warning(
                    "Could not save the resolve cache to %s", self.cache_path, exc_info=True
                )

    async def warm_up(self, *, freeze: bool = False) -> WarmUpReport | None:
        """yt-dlp's first-use costs paid now in the worker the first lookup gets, pacing the
        loop (music.resolve.warmup; `freeze`: gc, process-wide, see there). None if no worker."""
        if self._closed:
            return None
        return await warm_up_in(self.scheduler.run_ahead, self.resolver.warm_up_sync, freeze=freeze)

    def configure(self, *, workers: int | None = None, timeout: float | None = None) -> None:
        """Apply changed owner settings without restarting."""
        if workers is not None:
            self.scheduler.resize(workers)
        if timeout is not None:
            self.scheduler.timeout = timeout

    async def _autosave_loop(self) -> None:
        assert self.cache_path is not None
        while True:
            await asyncio.sleep(self.autosave_interval)
            if self.cache.dirty:
                try:
                    await self.cache.save(self.cache_path)
                except OSError:
                    log.warning("Could not save the resolve cache", exc_info=True)

    # ---- public API -------------------------------------------------------------------

    async def resolve(
        self,
        query: str,
        *,
        guild_id: int,
        requester_id: int,
        limit: int = 100,
        priority: Priority = Priority.NORMAL,
        on_progress: ProgressCallback | None = None,
    ) -> ServiceResult:
        """A link or words (the first search result). A single track comes back fully resolved
        (or, from the metadata cache, as a placeholder that refresh() completes); a playlist
        comes back with its first entry and `rest` for the others, at most `limit` in all."""
        text = query.strip()
        if not text:
            raise ResolveError(_("Tell me what to play: a link, or words to search for."))
        self._check_open()
        policy = self.resolver.policy()
        url = as_url(text)
        key = f"url:{url}" if url is not None else self._search_key(text)
        cached = await self._cached_track(key, policy, requester_id)
        if cached is not None:
            return ServiceResult([cached], from_cache=True)
        if url is None:
            job: Job[Any] = self._submit(
                functools.partial(self._search_first_work, text, policy, requester_id),
                guild_id,
                requester_id,
                priority,
                lookup_label(text),
                on_progress,
            )
            track = await self._await(job)
            self._remember(track, key)
            return ServiceResult([track], job_id=job.id)

        expansion = PlaylistExpansion(asyncio.get_running_loop())
        job = self._submit(
            functools.partial(self._link_work, url, policy, requester_id, max(1, limit), expansion),
            guild_id,
            requester_id,
            priority,
            lookup_label(text),
            on_progress,
        )
        expansion.job_id, expansion._job = job.id, job
        job.future.add_done_callback(functools.partial(self._expansion_ended, expansion))
        self._waiters[job.id] = self._waiters.get(job.id, 0) + 1
        try:
            await asyncio.wait({job.future, expansion._first}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._drop_waiter(job)
            raise
        if expansion._first.done():
            self._waiters.pop(job.id, None)
            # the job goes on listing the rest; only `music cancel` or close() stop it now
            return ServiceResult(
                expansion._first.result(), expansion.title, job_id=job.id, rest=expansion
            )
        self._waiters.pop(job.id, None)
        value = self._outcome(job)
        assert isinstance(value, Track)
        self._remember(value, key)
        return ServiceResult([value], job_id=job.id)

    async def refresh(
        self,
        track: Track,
        *,
        guild_id: int,
        priority: Priority = Priority.HIGH,
        on_progress: ProgressCallback | None = None,
    ) -> Track:
        """A copy of `track` (same id) with a fresh stream URL. Served from the stream cache
        when it's still valid; a refresh of the same page already under way is joined (and
        raised to this priority) instead of run twice."""
        if track.kind == "local":
            return track.copy()
        self._check_open()
        policy = self.resolver.policy()
        page = track.webpage_url or track.query
        url = as_url(page)
        stream_key = self._stream_key(page)
        stream = self.cache.get_stream(stream_key)
        if stream is not None and stream.get("stream_url"):
            await self._check_policy(policy, url, stream["stream_url"])
            return track.copy(**_stream_changes(stream))
        job = self._refreshing.get(stream_key)
        if job is None or job.future.done():
            job = self._submit(
                functools.partial(self._refresh_work, track, url, policy),
                guild_id,
                track.requester_id,
                priority,
                lookup_label(page, track.title),
                on_progress,
            )
            self._refreshing[stream_key] = job
            job.future.add_done_callback(functools.partial(self._refresh_ended, stream_key, job))
        else:
            self.scheduler.promote(job, priority)
        fresh = await self._await(job)
        self._remember(fresh, f"url:{url}" if url is not None else None)
        return apply_fresh(track, fresh)

    async def search(
        self,
        query: str,
        n: int = 5,
        *,
        guild_id: int,
        requester_id: int,
        priority: Priority = Priority.NORMAL,
        on_progress: ProgressCallback | None = None,
    ) -> list[Track]:
        """Up to n unresolved search results."""
        text = query.strip()
        if not text:
            raise ResolveError(_("Tell me what to search for."))
        self._check_open()
        policy = self.resolver.policy()
        job: Job[list[Track]] = self._submit(
            functools.partial(self._search_list_work, text, max(1, n), policy, requester_id),
            guild_id,
            requester_id,
            priority,
            lookup_label(text),
            on_progress,
        )
        return await self._await(job)

    def cancel(
        self, job_id: int, *, by_user_id: int, is_admin: bool, guild_id: int | None = None
    ) -> bool:
        """`music cancel <job>`: True if cancelled, False if no such unfinished job in
        `guild_id` (another server's job gets the same answer; None = any server's, for the
        bot owner). Raises JobNotAllowed (`.sentence`) when the user is neither the requester
        nor an admin."""
        return self.scheduler.cancel(
            job_id, by_user_id=by_user_id, is_admin=is_admin, guild_id=guild_id
        )

    def status(self, guild_id: int | None = None) -> dict[str, Any]:
        """`music status`: the lookups and recent failures of `guild_id` (None: of every
        server, for the bot owner), the shared workers, cache and breaker states. Lookups are
        described by site and title, failures with every link cut to its site."""
        status = self.scheduler.status(guild_id)
        status["recent_failures"] = [
            dict(failure, reason=without_links(str(failure["reason"])))
            for failure in status["recent_failures"]
        ]
        status["cache"] = self.cache.stats()
        status["breakers"] = self.breakers.snapshot()
        return status

    # ---- loop-side plumbing -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ResolveError(_("The music player is shutting down."))

    def _submit(
        self,
        work: Callable[[JobContext], Any],
        guild_id: int,
        requester_id: int,
        priority: Priority,
        description: str,
        on_progress: ProgressCallback | None,
    ) -> Job[Any]:
        try:
            return self.scheduler.submit(
                work,
                guild_id=guild_id,
                requester_id=requester_id,
                priority=priority,
                description=description,
                on_progress=on_progress,
            )
        except JobError as exc:
            raise ResolveError(exc.sentence) from None

    async def _await(self, job: Job[Any]) -> Any:
        """The job's result; several callers may wait on one job. When the last of them gives
        up (its command was cancelled), the job is cancelled too."""
        self._waiters[job.id] = self._waiters.get(job.id, 0) + 1
        try:
            await asyncio.shield(job.future)
        except asyncio.CancelledError:
            if not job.future.done():
                self._drop_waiter(job)
            raise
        except Exception:
            pass  # _outcome turns it into a ResolveError
        finally:
            if job.future.done():
                self._waiters.pop(job.id, None)
        return self._outcome(job)

    def _drop_waiter(self, job: Job[Any]) -> None:
        left = self._waiters.get(job.id, 1) - 1
        if left > 0:
            self._waiters[job.id] = left
            return
        self._waiters.pop(job.id, None)
        self.scheduler.cancel_job(job, _("The lookup was abandoned."))

    def _refresh_ended(self, stream_key: str, job: Job[Track], _future: object) -> None:
        """A finished refresh is no longer there to join."""
        if self._refreshing.get(stream_key) is job:
            del self._refreshing[stream_key]

    @staticmethod
    def _outcome(job: Job[Any]) -> Any:
        """The finished job's value, or its failure as a ResolveError with a sentence."""
        error = job.future.exception()
        if error is None:
            return job.future.result()
        if isinstance(error, ResolveError):
            kind, sentence = error.kind, error.sentence
        elif isinstance(error, JobError):
            kind = ErrorKind.TRANSIENT if error.transient else ErrorKind.PERMANENT
            sentence = error.sentence
        else:  # the work functions convert everything; this is a bug, said plainly
            log.error("Resolve job %s failed unexpectedly", job.id, exc_info=error)
            kind, sentence = ErrorKind.BROKEN, _("I couldn't load that: something went wrong.")
        if job.attempt > 1 and kind is ErrorKind.TRANSIENT and not isinstance(error, JobCancelled):
            sentence += _(" (I tried {attempt} times.)").format(attempt=job.attempt)
        raise ResolveError(sentence, kind)

    def _expansion_ended(self, expansion: PlaylistExpansion, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            expansion._finish(None, _("it was cancelled."))
            return
        error = future.exception()
        if error is not None:
            expansion._finish(None, getattr(error, "sentence", None) or str(error))
            return
        value = future.result()
        expansion._finish(value if isinstance(value, ExpansionDone) else None, None)

    def _search_key(self, text: str) -> str:
        return f"search:{self.resolver.search_prefix}:{' '.join(text.casefold().split())}"

    async def _cached_track(
        self, key: str, policy: NetworkPolicy, requester_id: int
    ) -> Track | None:
        """A track from the cache: fully playable if its stream is cached too, else a
        placeholder (refresh() completes it before it plays). The policy is checked again:
        the owner may have changed it since the entry was stored."""
        meta = self.cache.get_meta(key)
        if meta is None:
            return None
        page = meta.get("webpage_url") or meta.get("query")
        stream = self.cache.get_stream(f"stream:{page}") if page else None
        stream_url = stream.get("stream_url") if stream else None
        await self._check_policy(policy, as_url(page) if page else None, stream_url)
        data = dict(meta)
        if stream is not None:
            data.update(_stream_changes(stream))
        data["requester_id"] = requester_id
        return Track.from_dict(data)  # a new entry id

    @staticmethod
    async def _check_policy(policy: NetworkPolicy, *urls: str | None) -> None:
        def check() -> None:
            for url in urls:
                if url:
                    policy.check_url(url)

        try:
            await asyncio.to_thread(check)
        except PolicyError as exc:
            raise ResolveError(exc.sentence) from None

    def forget_stream(self, track: Track) -> None:
        """Drop the cached stream URL of `track`'s page: it failed (a 403 for an expired link,
        a dropped connection), so the next refresh must extract afresh."""
        self.cache.streams.discard(self._stream_key(track.webpage_url or track.query))

    @staticmethod
    def _stream_key(page: str) -> str:
        return f"stream:{page}"

    def _remember(self, track: Track, key: str | None) -> None:
        """Cache a resolved track's metadata under `key` (and its page URL) and its stream."""
        if track.kind != "remote":
            return
        data = track.to_dict()
        meta = {k: v for k, v in data.items() if k not in _STREAM_FIELDS + _PER_ENTRY_FIELDS}
        page = track.webpage_url or track.query
        for meta_key in {key, f"url:{page}"} - {None}:
            self.cache.put_meta(meta_key, meta)  # type: ignore[arg-type]
        # A live stream's URL is a manifest that changes; it is never reused.
        if track.stream_url and not track.is_live:
            stream = {k: data[k] for k in _STREAM_FIELDS}
            self.cache.put_stream(self._stream_key(page), stream, track.stream_expires)

    # ---- blocking work (worker threads) -----------------------------------------------

    @contextlib.contextmanager
    def _guarded(self, ctx: JobContext, target: str) -> Iterator[None]:
        """Ask the site's breaker, run the body, tell the breaker how it went, and turn every
        failure into a ResolveError with a sentence and a kind."""
        timeout = self.scheduler.timeout
        try:
            family = self.resolver.extractor_family_sync(target)
            ctx.set_extractor(family)
            breaker = self.breakers.get(family)
            breaker.acquire()
        except BreakerOpenError as exc:
            raise ResolveError(exc.sentence) from None
        try:
            ctx.report(Stage.EXTRACTING, 10)
            yield
        except Exception as exc:
            error = to_resolve_error(exc, timeout)
            # "private video" means the site answered: only transient/broken count against it
            if error.kind is ErrorKind.PERMANENT:
                breaker.record_success()
            else:
                breaker.record_failure()
            if error is exc:
                raise
            raise error from None
        else:
            breaker.record_success()

    def _validated(self, ctx: JobContext, policy: NetworkPolicy, url: str | None) -> None:
        ctx.report(Stage.VALIDATING, 0)
        if url is not None:
            try:
                policy.check_url(url)
            except PolicyError as exc:
                raise ResolveError(exc.sentence) from None

    def _link_work(
        self,
        url: str,
        policy: NetworkPolicy,
        requester_id: int,
        limit: int,
        expansion: PlaylistExpansion,
        ctx: JobContext,
    ) -> Track | ExpansionDone:
        self._validated(ctx, policy, url)
        with self._guarded(ctx, url):
            with self.resolver.open_link_sync(url, policy, requester_id, limit) as opened:
                if isinstance(opened, Track):
                    return opened
                return self._expand(ctx, opened, expansion)

    def _expand(
        self, ctx: JobContext, reader: PlaylistReader, expansion: PlaylistExpansion
    ) -> ExpansionDone:
        """List entries, handing the first one out at once and the rest in batches (every
        batch_size entries or batch_interval seconds)."""
        expected = reader.expected
        ctx.post(expansion._begin, reader.title, expected)
        batch: list[Track] = []
        sent = unusable = 0
        last_flush = time.monotonic()
        error: str | None = None

        def flush() -> None:
            nonlocal batch, sent, last_flush
            if batch:
                ctx.post(expansion._push, batch)
                sent += len(batch)
                batch = []
            last_flush = time.monotonic()

        try:
            for track in reader:
                if ctx.cancelled:
                    break
                if track is None:
                    unusable += 1
                    continue
                batch.append(track)
                if (
                    sent == 0
                    or len(batch) >= self.batch_size
                    or time.monotonic() - last_flush >= self.batch_interval
                ):
                    flush()
                listed = sent + len(batch)
                percent = 10 + 90 * listed // expected if expected else None
                ctx.report(Stage.EXPANDING, percent, done=listed, total=expected)
        except Exception as exc:
            if sent == 0 and not batch:
                raise  # nothing handed out yet: fail (and maybe retry) the whole job
            # later pages failing doesn't take back the entries already queued
            error = to_resolve_error(exc, self.scheduler.timeout).sentence
        flush()
        if sent == 0:
            raise ResolveError(_("That playlist has nothing I can play."))
        return ExpansionDone(sent, unusable, reader.truncated, error)

    def _search_first_work(
        self, text: str, policy: NetworkPolicy, requester_id: int, ctx: JobContext
    ) -> Track:
        self._validated(ctx, policy, None)
        with self._guarded(ctx, self.resolver.search_target(text)):
            return self.resolver.resolve_search_sync(text, policy, requester_id)

    def _search_list_work(
        self, text: str, n: int, policy: NetworkPolicy, requester_id: int, ctx: JobContext
    ) -> list[Track]:
        self._validated(ctx, policy, None)
        with self._guarded(ctx, self.resolver.search_target(text, n)):
            return self.resolver.search_sync(text, n, policy, requester_id)

    def _refresh_work(
        self, track: Track, url: str | None, policy: NetworkPolicy, ctx: JobContext
    ) -> Track:
        self._validated(ctx, policy, url)
        with self._guarded(ctx, url or self.resolver.search_target(track.query)):
            return self.resolver.refresh_sync(track, policy)


def _stream_changes(stream: dict[str, Any]) -> dict[str, Any]:
    changes = {k: stream[k] for k in _STREAM_FIELDS if k in stream}
    changes["http_headers"] = dict(changes.get("http_headers") or {})
    return changes

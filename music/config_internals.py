"""The one place the cog relies on private parts of Red's Config, checked when the store is built.

Why private parts at all: Red's JSON driver rewrites the cog's whole settings file on every set,
and its PostgreSQL driver commits every set on its own, so writing a queue's changed chunks
through Config's public API costs one file rewrite (or one commit) per chunk. With the driver's
internals a flush is one file save (JSON) or one transaction (PostgreSQL); see store_chunks.py.

What is relied on (read in Red 3.5.23 and 3.5.24, whose `redbot.core._drivers` are identical):
- `Config._driver`, a Config's driver instance, and `redbot.core._drivers.JsonDriver` /
  `PostgresDriver` to tell which one it is;
- `Value.identifier_data.to_tuple()` = (cog name, identifier, category, *keys, *attributes);
- JSON: the instance's `data` (the cog's document in memory, indexed by that tuple after the
  cog name), `_lock` (the cog's asyncio lock) and `_save()` (rewrites the file atomically);
- PostgreSQL: the class attribute `_pool` (asyncpg), `encode_identifier_data` from
  `redbot.core._drivers.postgres.postgres`, Red's server functions `red_config.set`, `.clear`
  and `.maybe_create_table`, and its layout: one table per category named
  "<cog>.<identifier>"."<category>" with columns primary_key_1..N and json_data.

`ConfigInternals.probe(config)` checks what can be checked without I/O, once: Red is 3.5.x, the
attributes and functions exist and behave as above. When something is missing or Red is another
series, it logs why and every write takes the public path (`CONFIG_CALLS`: separate Config calls
in a crash-safe order): slower for big queues, never wrong, never a crash.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redbot.core import Config

log = logging.getLogger("red.music.store")

POSTGRES_TRANSACTION = "postgres transaction"
JSON_SINGLE_SAVE = "json single save"
CONFIG_CALLS = "config calls"

# the Red series whose driver internals were read; another series takes the public path
CHECKED_RED_SERIES = (3, 5)
_PROBE_GUILD = 1
_PROBE_ATTRIBUTE = "queue_head"


class Unusable(Exception):
    """What the private path relies on is not there; the message says what."""


def red_series() -> tuple[int, int] | None:
    try:
        import redbot
    except ImportError:
        return None
    match = re.match(r"(\d+)\.(\d+)", str(getattr(redbot, "__version__", "")))
    return (int(match[1]), int(match[2])) if match else None


class ConfigInternals:
    """How the chunked store writes through one Config: `path` says which way."""

    def __init__(self, config: Config, path: str, reason: str = "") -> None:
        self.config = config
        self.path = path
        self.reason = reason  # why the public path was chosen ("" when it was not)
        self._encode: Any = None  # PostgreSQL: Red's encode_identifier_data

    @classmethod
    def probe(cls, config: Config) -> ConfigInternals:
        """Check what the private paths rely on and pick a path; log the fallback's reason."""
        try:
            internals = cls._checked(config)
        except Unusable as exc:
            log.warning("Saving queues through Config's public API (one write per changed chunk) "
                        "because Red's Config internals are not as expected: %s", exc)
            return cls(config, CONFIG_CALLS, str(exc))
        if internals.path == CONFIG_CALLS:
            log.info("Saving queues through Config's public API: %s", internals.reason)
        return internals

    @classmethod
    def _checked(cls, config: Config) -> ConfigInternals:
        series = red_series()
        if series != CHECKED_RED_SERIES:
            shown = "unknown" if series is None else f"{series[0]}.{series[1]}"
            raise Unusable(f"Red {shown} is not the checked series "
                           f"{CHECKED_RED_SERIES[0]}.{CHECKED_RED_SERIES[1]}")
        try:
            from redbot.core._drivers import JsonDriver, PostgresDriver
        except ImportError as exc:
            raise Unusable(f"redbot.core._drivers has no JsonDriver/PostgresDriver ({exc})") from None
        driver = getattr(config, "_driver", None)
        if driver is None:
            raise Unusable("Config has no _driver")
        _check_identifier_layout(config)
        if isinstance(driver, JsonDriver):
            _check_json_driver(driver)
            return cls(config, JSON_SINGLE_SAVE)
        if isinstance(driver, PostgresDriver):
            internals = cls(config, POSTGRES_TRANSACTION)
            internals._encode = _checked_postgres_encoder(config)
            if not hasattr(type(driver), "_pool"):
                raise Unusable("PostgresDriver has no _pool")
            return internals
        return cls(config, CONFIG_CALLS, f"the {type(driver).__name__} backend has no batched path")

    # -- which path, now ----------------------------------------------------------------------

    def current_path(self) -> str:
        """The path for the next write: PostgreSQL needs its pool open (Red opens it at start)."""
        if self.path == POSTGRES_TRANSACTION and self._pool() is None:
            return CONFIG_CALLS
        return self.path

    def _pool(self) -> Any:
        return getattr(type(self.config._driver), "_pool", None)

    # -- JSON ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def json_document(self) -> AsyncIterator[JsonDocument]:
        """The cog's in-memory document under the driver's lock; saved once on a clean exit."""
        driver: Any = self.config._driver  # the JSON driver's private parts, checked at load
        async with driver._lock:
            yield JsonDocument(driver.data)
            await driver._save()

    # -- PostgreSQL ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def postgres_transaction(self) -> AsyncIterator[Any]:
        """One connection of Red's pool, inside one transaction."""
        async with self._pool().acquire() as connection, connection.transaction():
            yield connection

    def encode(self, value: Any) -> tuple[Any, ...]:
        """A Config value's identifier as Red's PostgresDriver passes it to red_config.*."""
        return self._encode(value.identifier_data)

    def table(self, category: str) -> str:
        """The quoted table of a category (a custom group's name) in Red's PostgreSQL layout."""
        schema = f"{self.config.cog_name}.{self.config.unique_identifier}"
        return f"{_quote_ident(schema)}.{_quote_ident(category)}"


class JsonDocument:
    """JsonDriver.set / clear on its in-memory document, for several values and one save."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def set(self, value: Any, document: Any) -> None:
        """`document` is fresh (built for this write), so unlike JsonDriver.set it is not copied."""
        keys = value.identifier_data.to_tuple()[1:]
        partial = self.data
        for key in keys[:-1]:
            partial = partial.setdefault(key, {})
        partial[keys[-1]] = document

    def clear(self, value: Any) -> None:
        keys = value.identifier_data.to_tuple()[1:]
        partial: Any = self.data
        for key in keys[:-1]:
            partial = partial.get(key)
            if not isinstance(partial, dict):
                return
        partial.pop(keys[-1], None)


def _check_identifier_layout(config: Config) -> None:
    try:
        keys = config.guild_from_id(_PROBE_GUILD).get_attr(_PROBE_ATTRIBUTE).identifier_data.to_tuple()
    except Exception as exc:
        raise Unusable(f"a Config value has no identifier_data.to_tuple() ({exc!r})") from None
    expected = (config.cog_name, config.unique_identifier, "GUILD", str(_PROBE_GUILD), _PROBE_ATTRIBUTE)
    if tuple(keys) != expected:
        raise Unusable(f"identifier_data.to_tuple() gives {tuple(keys)!r}, expected {expected!r}")


def _check_json_driver(driver: Any) -> None:
    missing = [name for name in ("data", "_lock", "_save") if not hasattr(driver, name)]
    if missing:
        raise Unusable(f"JsonDriver has no {', '.join(missing)}")
    if not isinstance(driver.data, dict):
        raise Unusable(f"JsonDriver.data is a {type(driver.data).__name__}, not a dict")
    if not hasattr(driver._lock, "__aenter__"):
        raise Unusable("JsonDriver._lock is not an asyncio lock")
    if not inspect.iscoroutinefunction(driver._save):
        raise Unusable("JsonDriver._save is not a coroutine function")


def _checked_postgres_encoder(config: Config) -> Any:
    try:
        from redbot.core._drivers.postgres.postgres import encode_identifier_data
    except ImportError as exc:
        raise Unusable(f"no encode_identifier_data in Red's PostgreSQL driver ({exc})") from None
    value = config.guild_from_id(_PROBE_GUILD).get_attr(_PROBE_ATTRIBUTE)
    try:
        encoded = encode_identifier_data(value.identifier_data)
    except Exception as exc:
        raise Unusable(f"encode_identifier_data failed ({exc!r})") from None
    if not (isinstance(encoded, tuple) and len(encoded) == 7):
        raise Unusable(f"encode_identifier_data gives {encoded!r}, not the 7-tuple red_config.* takes")
    return encode_identifier_data


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

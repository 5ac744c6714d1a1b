"""A throwaway PostgreSQL server for tests and benchmarks, and Red's Postgres driver pointed at it.

    server = PostgresServer.start()          # initdb in a temp dir, listens on 127.0.0.1:<free port>
    details = server.create_database("t1")   # what Red keeps in basic_config["STORAGE_DETAILS"]
    ...
    server.stop()                            # stops the server and deletes the cluster

Nothing touches a system cluster: the data directory, the unix socket and the log all live in one
temp dir that `stop()` removes. initdb and postgres refuse to run as root, so when we are root the
server runs as the `postgres` system user (created by Debian's postgresql-common) through
`runuser`. Authentication is `trust` for the loopback address only, and the port is a free one, so
parallel sessions don't collide.

If the server binaries are missing, `start()` raises `PostgresUnavailable` with the install command
(`.ci/install-postgres`); tests turn that into a failure, never a silent skip.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPERUSER = "red"  # the cluster's bootstrap superuser; Red connects as it
INSTALL_HINT = "install the server with `.ci/install-postgres` (Debian: apt-get install postgresql)"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why and what to install."""


def find_bindir() -> Path:
    """The directory holding initdb/pg_ctl/postgres: $PG_BINDIR, Debian's newest
    /usr/lib/postgresql/N/bin, or wherever `initdb` is on PATH."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    # Debian keeps the server binaries off PATH, one directory per major version
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                    key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    candidates.extend(debian)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres", "psql")):
            return bindir
    raise PostgresUnavailable(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throwaway cluster. Create it with `start()`."""

    bindir: Path
    root: Path  # temp dir: data/, the socket, server.log
    port: int
    run_as: str | None  # the OS user the server runs as (None: ourselves)
    databases: list[str] = field(default_factory=list)
    _stopped: bool = False

    host = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(cls, *, durable: bool = True, attempts: int = 3) -> PostgresServer:
        """initdb + pg_ctl start. `durable=False` turns off fsync (fine for correctness tests,
        wrong for benchmarks: a real server fsyncs every commit)."""
        bindir = find_bindir()
        run_as = cls._server_user()
        root = Path(tempfile.mkdtemp(prefix="music-pg-"))
        if run_as is not None:
            pw = pwd.getpwnam(run_as)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        server = cls(bindir=bindir, root=root, port=0, run_as=run_as)
        try:
            server._run([str(bindir / "initdb"), "-D", str(server.data_dir), "--username", SUPERUSER,
                         "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync",
                         "--no-instructions"], what="initdb")
            last_error: Exception | None = None
            for _ in range(attempts):  # a free port can be taken between the probe and the bind
                server.port = _free_port()
                try:
                    server._pg_ctl_start(durable)
                    break
                except PostgresUnavailable as exc:
                    last_error = exc
            else:
                raise last_error or PostgresUnavailable("PostgreSQL did not start")
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        atexit.register(server.stop)  # a crashed test session must not leave a server behind
        return server

    @staticmethod
    def _server_user() -> str | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                if shutil.which("runuser"):
                    return name
        raise PostgresUnavailable("running as root, and there is no `postgres` user with `runuser` "
                                  "to run the server as (PostgreSQL refuses to run as root); " + INSTALL_HINT)

    def _pg_ctl_start(self, durable: bool) -> None:
        options = [f"-c listen_addresses={self.host}", f"-p {self.port}",
                   f"-c unix_socket_directories={self.root}",
                   "-c max_connections=50", "-c shared_buffers=64MB"]
        if not durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
                   "-w", "-t", "30", "-o", " ".join(options), "start"], what="pg_ctl start")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                       "-t", "20", "stop"], what="pg_ctl stop")
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def _run(self, argv: list[str], *, what: str) -> str:
        if self.run_as is not None:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        # our own PG* variables must not redirect the tools to another server
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.root, timeout=60)
        if done.returncode != 0:
            log_tail = ""
            with contextlib.suppress(OSError):
                log_tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
            raise PostgresUnavailable(f"{what} failed ({done.returncode}): {done.stderr.strip()}"
                                      f"{chr(10) + log_tail if log_tail else ''}")
        return done.stdout

    # -- databases ---------------------------------------------------------------------------

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run([str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                          "-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", database,
                          "-c", sql], what=f"psql {sql!r}")

    def create_database(self, name: str) -> dict[str, Any]:
        """Create an empty database; returns Red's STORAGE_DETAILS for it (the keyword
        arguments of PostgresDriver.initialize, i.e. asyncpg.create_pool)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        self.psql(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.storage_details(name)

    def storage_details(self, database: str) -> dict[str, Any]:
        # the same keys redbot-setup stores for the Postgres backend
        return {"host": self.host, "port": self.port, "user": SUPERUSER, "password": None,
                "database": database}

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.psql("SELECT 1")
                return
            except PostgresUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


# -- pytest glue: the `backend` fixture, parametrized over Red's two Config backends ---------------
#
# Red picks a cog's Config driver from `data_manager.basic_config["STORAGE_TYPE"]` when the cog
# calls `Config.get_conf`, and the Postgres driver keeps one class-level asyncpg pool that
# `PostgresDriver.initialize(**STORAGE_DETAILS)` opens (as redbot/__main__.py does at start).
# redbot.pytest's autouse `override_data_path` resets basic_config to the JSON default before
# every test; `backend` switches a copy of it to Postgres and opens the pool on the test's loop.
# Import `backend` (and `Backend`) into a test module to use it.

import itertools  # noqa: E402
import json  # noqa: E402
import weakref  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402

import pytest  # noqa: E402

BACKENDS = ["json", "postgres"]
_shared: PostgresServer | None = None
_shared_error: str | None = None
_database_numbers = itertools.count(1)


def shared_server() -> PostgresServer:
    """One server per test process, started on first use (only postgres tests start it), stopped
    at exit. Missing binaries or asyncpg FAIL the test with the reason: a silent skip would hide
    that half of the matrix never ran."""
    global _shared, _shared_error
    if _shared is None and _shared_error is None:
        try:
            import asyncpg  # noqa: F401  (Red's Postgres driver needs it)
        except ModuleNotFoundError:
            _shared_error = ("asyncpg is not installed: Red's PostgreSQL driver needs it "
                             "(Red-DiscordBot[postgres]==3.5.24, i.e. asyncpg==0.30.0)")
        else:
            try:
                # fsync off: tests check what is stored, not how fast (the benchmark keeps fsync on)
                _shared = PostgresServer.start(durable=False)
            except PostgresUnavailable as exc:
                _shared_error = str(exc)
    if _shared_error is not None:
        pytest.fail(f"cannot run the postgres backend tests: {_shared_error}", pytrace=False)
    assert _shared is not None
    return _shared


@dataclass
class Backend:
    name: str
    storage_details: dict[str, Any] | None = None  # Postgres: the pool's connection arguments

    @property
    def driver_class(self) -> type:
        from redbot.core._drivers import JsonDriver, PostgresDriver

        return PostgresDriver if self.name == "postgres" else JsonDriver

    async def new_process(self) -> None:
        """Forget what a process keeps in memory: Config objects, the JSON driver's copy of each
        cog's file, and (Postgres) the pool, reopened as a new bot would open it at start."""
        from redbot.core import config as config_module
        from redbot.core._drivers import PostgresDriver
        from redbot.core._drivers import json as json_driver

        config_module._config_cache = weakref.WeakValueDictionary()
        json_driver._shared_datastore.clear()
        if self.storage_details is not None:
            await PostgresDriver.teardown()
            await PostgresDriver.initialize(**self.storage_details)

    async def stored_document(self, config: Any, category: str, *keys: int | str) -> dict[str, Any]:
        """A Config document as the backend stores it, read without Config: settings.json on
        disk, or the row in Red's Postgres layout (schema "<cog>.<identifier>", one table per
        category, one row per full primary key)."""
        if self.name == "json":
            on_disk = json.loads(config._driver.data_path.read_text(encoding="utf-8"))
            document = on_disk[config.unique_identifier][category]
            for key in keys:
                document = document[str(key)]
            return document
        import asyncpg

        assert self.storage_details is not None
        schema = f"{config.cog_name}.{config.unique_identifier}"
        where = " AND ".join(f"primary_key_{i}::text = ${i}" for i in range(1, len(keys) + 1))
        connection = await asyncpg.connect(**self.storage_details)
        try:
            raw = await connection.fetchval(f'SELECT json_data FROM "{schema}"."{category}" WHERE {where}',
                                            *map(str, keys))
        finally:
            await connection.close()
        if raw is None:
            raise KeyError(f"no row {keys} in {schema}.{category}")
        return json.loads(raw)

    async def stored_guild(self, config: Any, guild_id: int) -> dict[str, Any]:
        return await self.stored_document(config, "GUILD", guild_id)


@pytest.fixture(params=BACKENDS, name="backend")
async def backend_fixture(request: pytest.FixtureRequest, override_data_path: None,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    from redbot.core import data_manager
    from redbot.core._drivers import PostgresDriver

    if request.param == "json":
        yield Backend("json")
        return
    server = shared_server()
    details = server.create_database(f"music_test_{os.getpid()}_{next(_database_numbers)}")
    # a copy: override_data_path hands out data_manager.basic_config_default itself, and the
    # next test must start on JSON again
    monkeypatch.setattr(data_manager, "basic_config", {
        **data_manager.basic_config, "STORAGE_TYPE": "Postgres", "STORAGE_DETAILS": details,
    })
    await PostgresDriver.initialize(**details)
    try:
        yield Backend("postgres", details)
    finally:
        await PostgresDriver.teardown()
        PostgresDriver._pool = None

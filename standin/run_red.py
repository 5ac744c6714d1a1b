"""Run an unmodified Red bot against the stand-in.

    STANDIN_API=http://127.0.0.1:PORT/api/v10 [STANDIN_CA=/path/ca.pem] \\
        python -m standin.run_red <instance> --token <token> --prefix ! --no-prompt ...

Arguments are Red's own (`redbot --help`). Before Red's normal entry point
(`redbot.__main__.main`) runs, three things are pointed at the stand-in; Red's code is untouched:

* `discord.http.Route.BASE` = STANDIN_API. The gateway URL then comes from the stand-in's
  `GET /gateway/bot`, as on Discord.
* TLS trust: discord.py hard-codes `wss://` for voice, and aiohttp builds its verified SSL
  context once, at import, with `ssl.create_default_context()`, which honours SSL_CERT_FILE.
  We set SSL_CERT_FILE to a bundle of the system CAs plus STANDIN_CA before anything imports
  aiohttp, so the stand-in's self-signed voice certificate is trusted and real hosts (PyPI for
  Downloader's pip) still are.
* Red's startup check of the latest version on PyPI is answered locally with the installed
  version (STANDIN_PYPI=1 keeps the real request): tests must not depend on the internet, and
  on_ready would otherwise wait up to 5 s for it.
"""

from __future__ import annotations

import atexit
import os
import ssl
import sys
import tempfile
from pathlib import Path


def install_trust_bundle(extra_ca: str) -> str:
    """Write system CAs + `extra_ca` to a temp file and point SSL_CERT_FILE at it (also used by
    the benchmarks, whose media fetcher must trust the stand-in's certificate)."""
    parts: list[str] = []
    defaults = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), defaults.cafile, defaults.openssl_cafile):
        if candidate and Path(candidate).is_file():
            parts.append(Path(candidate).read_text(encoding="utf-8", errors="replace"))
            break
    parts.append(Path(extra_ca).read_text(encoding="utf-8"))
    fd, bundle = tempfile.mkstemp(prefix="standin-ca-", suffix=".pem")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    atexit.register(lambda: Path(bundle).unlink(missing_ok=True))
    os.environ["SSL_CERT_FILE"] = bundle
    return bundle


def _answer_version_check_locally() -> None:
    import redbot
    import redbot.core._events as red_events
    from redbot.core.utils._internal_utils import VersionInfo

    async def installed_version_info() -> tuple[VersionInfo, str | None]:
        return VersionInfo.from_str(redbot.__version__), None

    red_events.fetch_latest_red_version_info = installed_version_info


def main() -> None:
    api = os.environ.get("STANDIN_API")
    if not api:
        sys.exit("standin.run_red: set STANDIN_API to the stand-in's API base, "
                 "e.g. http://127.0.0.1:PORT/api/v10")
    ca = os.environ.get("STANDIN_CA")
    if ca:
        install_trust_bundle(ca)  # before aiohttp is imported: it builds its SSL context then

    import discord.http

    discord.http.Route.BASE = api.rstrip("/")

    # Red's modules import each other in a cycle: load them through the entry point first.
    from redbot.__main__ import main as red_main

    if os.environ.get("STANDIN_PYPI") != "1":
        _answer_version_check_locally()

    sys.argv = ["redbot", *sys.argv[1:]]
    red_main()


if __name__ == "__main__":
    main()

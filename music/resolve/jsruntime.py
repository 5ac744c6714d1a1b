"""The JavaScript runtime yt-dlp needs for YouTube, found where Red's Downloader puts it.

Since 2025.11 yt-dlp solves YouTube's signature and "n" challenges by running the `yt-dlp-ejs`
scripts in an external JavaScript runtime (deno, node, bun or quickjs; the option is
`js_runtimes={"deno": {"path": ...}}`). Left alone, yt-dlp looks for `deno` in the Python
"scripts" folder and on PATH only. Red's Downloader installs requirements with
`pip install -t <lib>`, which puts the `deno` package's binary in `<lib>/bin/deno`: a folder
yt-dlp never looks in. `deno.find_deno_bin()` knows that place, so we ask it and pass the path.

Order of preference: deno from the `deno` package, deno on PATH, node on PATH, bun on PATH
(deno is yt-dlp's default and the runtime its maintainers test first). A runtime older than the
version yt-dlp supports is reported but not chosen. Finding a runtime runs `<runtime> --version`
once per process (blocking: call it from a thread)."""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from typing import Any

from ..i18n import _

log = logging.getLogger("red.music.resolve.jsruntime")

# Preference order of the runtimes we look for; quickjs is left out on purpose (slow: minutes
# per challenge according to yt-dlp's EJS wiki).
PREFERENCE = ("deno", "node", "bun")


@dataclass(frozen=True)
class JsRuntime:
    """One runtime found on this machine."""

    name: str  # yt-dlp's key: "deno", "node", "bun"
    path: str
    version: str
    supported: bool  # at least yt-dlp's minimum version for it
    source: str  # where it was found, for the owner: "the deno package", "PATH"
    minimum: str = ""  # the oldest version yt-dlp supports, e.g. "22.0.0"


@dataclass(frozen=True)
class JsRuntimeReport:
    """What was found: `chosen` is the runtime handed to yt-dlp (None if none is usable);
    `found` lists every runtime seen, usable or not; `known` are the runtime names the
    installed yt-dlp accepts (empty for a yt-dlp older than 2025.11)."""

    chosen: JsRuntime | None
    found: tuple[JsRuntime, ...] = ()
    known: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def supported_runtime_names() -> tuple[str, ...]:
    """Runtime names the installed yt-dlp accepts in `js_runtimes` (its registry)."""
    try:
        import yt_dlp  # noqa: F401  (registers the runtimes in yt_dlp.globals)
        from yt_dlp.globals import supported_js_runtimes
    except ImportError:  # a yt-dlp from before the JavaScript runtimes
        return ()
    return tuple(supported_js_runtimes.value)


def _deno_package_binary() -> str | None:
    """The binary of the `deno` PyPI package, wherever pip put it (also `pip install -t`)."""
    try:
        import deno
    except ImportError:
        return None
    try:
        return str(deno.find_deno_bin())
    except (FileNotFoundError, OSError, AttributeError):
        return None


def _probe(name: str, path: str, source: str) -> JsRuntime | None:
    """Ask yt-dlp's own runtime class for the version, so "supported" means what yt-dlp means."""
    try:
        from yt_dlp.globals import supported_js_runtimes
    except ImportError:
        return None
    runtime_cls = supported_js_runtimes.value.get(name)
    if runtime_cls is None:
        return None
    try:
        info = runtime_cls(path=path).info  # runs `<path> --version`
    except Exception:  # a broken binary must not break lookups
        log.debug("Probing %s at %s failed", name, path, exc_info=True)
        return None
    if info is None:
        return None
    minimum = ".".join(map(str, getattr(runtime_cls, "MIN_SUPPORTED_VERSION", ()) or ()))
    return JsRuntime(name, info.path, info.version, bool(info.supported), source, minimum)


def detect_js_runtime() -> JsRuntimeReport:
    """Look for every runtime in preference order and choose the first usable one. Blocking."""
    known = supported_runtime_names()
    if not known:
        return JsRuntimeReport(None, (), (), (_("This yt-dlp predates JavaScript runtimes."),))
    candidates: list[tuple[str, str, str]] = []
    package_deno = _deno_package_binary()
    if package_deno:
        candidates.append(("deno", package_deno, "the deno package"))
    for name in PREFERENCE:
        on_path = shutil.which(name)
        if on_path and (name, on_path) not in {(n, p) for n, p, _ in candidates}:
            candidates.append((name, on_path, "PATH"))
    found: list[JsRuntime] = []
    for name, path, source in candidates:
        if name not in known:
            continue
        runtime = _probe(name, path, source)
        if runtime is not None:
            found.append(runtime)
    chosen = next((r for r in found if r.supported), None)
    return JsRuntimeReport(chosen, tuple(found), known)


_lock = threading.Lock()
_cached: JsRuntimeReport | None = None


def js_runtime_report(*, refresh: bool = False) -> JsRuntimeReport:
    """detect_js_runtime(), remembered for the process (`refresh` looks again, e.g. after
    `[p]cog reinstallreqs` installed deno). Blocking on the first call."""
    global _cached
    with _lock:
        if _cached is None or refresh:
            _cached = detect_js_runtime()
            chosen = _cached.chosen
            log.debug("JavaScript runtime for yt-dlp: %s", chosen or "none")
        return _cached


def ytdlp_js_options(report: JsRuntimeReport | None = None) -> dict[str, Any]:
    """The yt-dlp options that enable the chosen runtime, e.g.
    `{"js_runtimes": {"deno": {"path": "/…/lib/bin/deno"}}}`; `{}` when none is usable (yt-dlp
    then keeps its default, deno on PATH, and YouTube may fail with a clear yt-dlp warning)."""
    report = js_runtime_report() if report is None else report
    if report.chosen is None:
        return {}
    return {"js_runtimes": {report.chosen.name: {"path": report.chosen.path}}}

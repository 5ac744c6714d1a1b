"""`[p]musicset doctor`: what the cog needs from the machine, checked, with what to do.

No Discord here: each check returns a Finding; the command renders them. Checks are blocking
(they run ffmpeg, deno, node and touch the disk): call `run_checks` (async, one worker thread)
from the bot, or `run_checks_sync` from a thread or a test. Fix texts say `[p]` for the
bot's prefix; the command replaces it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import importlib.metadata
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from music.resolve.jsruntime import JsRuntimeReport, js_runtime_report

from .i18n import _, deferred

log = logging.getLogger("red.music.doctor")

# yt-dlp ships fixes for sites every few weeks; older than this and YouTube breakage is likely.
YTDLP_STALE_DAYS = 60
# yt-dlp needs an external JavaScript runtime for YouTube from this release on.
YTDLP_JS_SINCE = (2025, 11, 12)
# The last yt-dlp release for each Python that yt-dlp has dropped (its Requires-Python): a bot on
# such a Python gets no more site fixes, whatever it reinstalls.
YTDLP_LAST_RELEASE_FOR_PYTHON = {(3, 9): "2025.10.14", (3, 10): "2026.10.21"}
# `[p]pipinstall` runs `pip install -U -t <lib>`: it updates yt-dlp (and the scripts it expects)
# and keeps what the owner installed by hand; `[p]cog reinstallreqs` empties the lib folder first,
# so deno installed with `[p]pipinstall deno` has to be installed again after it.
YTDLP_UPDATE = deferred._(
    "Update it with `[p]pipinstall -U yt-dlp yt-dlp-ejs` (or `[p]cog reinstallreqs`, which "
    "reinstalls every cog's requirements and removes what `[p]pipinstall` added, deno "
    "included), then restart the bot."
)
# Above this many queued tracks the JSON backend's whole-file rewrites get slow (measured:
# 85 ms per write with one server of 5,000 tracks, 0.8 s with ten).
JSON_QUEUE_NOTE_AT = 5000
COMMAND_TIMEOUT = 15.0


@dataclass(frozen=True)
class Finding:
    """One check. `ok` False is a problem; `fix` says what to do (a note when `ok`)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    @property
    def label(self) -> str:
        if not self.ok:
            return "PROBLEM"
        return "NOTE" if self.fix else "OK"


# -- ffmpeg ---------------------------------------------------------------------------------------


def _run(args: list[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
    )


def ffmpeg_origin(path: str, override: str | None) -> str:
    """Which ffmpeg this is, in the owner's words."""
    if override and os.path.realpath(path) == os.path.realpath(override):
        return _("set with `musicset ffmpeg`")
    if "imageio_ffmpeg" in path:
        return _("bundled (imageio-ffmpeg)")
    return _("from PATH")


def check_ffmpeg(override: str | None) -> Finding:
    from music.audio.ffmpeg import FFmpegNotFound, find_ffmpeg

    name = "ffmpeg"
    try:
        path = find_ffmpeg(override)
    except FFmpegNotFound as exc:
        return Finding(name, False, _("No ffmpeg found."), str(exc))
    origin = ffmpeg_origin(path, override)
    if override and origin != "set with `musicset ffmpeg`":
        note = _(" (the configured `{override}` is not an executable file)").format(override=override)
    else:
        note = ""
    try:
        version_out = _run([path, "-hide_banner", "-version"])
        encoders_out = _run([path, "-hide_banner", "-encoders"])
    except (OSError, subprocess.SubprocessError) as exc:
        return Finding(
            name,
            False,
            _("`{path}` ({origin}) does not run: {exc}.").format(path=path, origin=origin, exc=exc),
            _("Run `[p]musicset ffmpeg` with no path to use the bundled ffmpeg, or reinstall it "
            "with `[p]cog reinstallreqs`."),
        )
    if version_out.returncode != 0:
        return Finding(
            name,
            False,
            _("`{path}` ({origin}) exits with code {returncode}.").format(path=path, origin=origin, returncode=version_out.returncode),
            _("Run `[p]musicset ffmpeg` with no path to use the bundled ffmpeg."),
        )
    match = re.search(r"ffmpeg version (\S+)", version_out.stdout)
    version = match[1] if match else _("unknown version")
    detail = _("{version} at `{path}`, {origin}{note}").format(version=version, path=path, origin=origin, note=note)
    if not re.search(r"^\s*A\S*\s+libopus\b", encoders_out.stdout, re.MULTILINE):
        return Finding(
            name,
            False,
            detail + _("; it has no libopus encoder, so anything that isn't Opus already can't play."),
            _("Use an ffmpeg built with libopus: `[p]musicset ffmpeg` with no path picks the "
            "bundled one, which has it."),
        )
    return Finding(name, True, detail + _("; runs, has libopus."))


# -- yt-dlp and its JavaScript side ---------------------------------------------------------------


def version_date(version: str) -> dt.date | None:
    """`2026.10.26` (or a nightly `2026.10.26.232842`) -> the release date."""
    match = re.match(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", version)
    if match is None:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _normal(version: str) -> tuple[int, ...]:
    """`2026.01.02` and `2026.1.2` are the same release (PyPI drops the zeros)."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def check_ytdlp(
    today: dt.date, version: str | None = None, python: tuple[int, int] | None = None
) -> Finding:
    """yt-dlp's age (from its version, a release date), and whether this Python can still
    get newer releases."""
    name = "yt-dlp"
    python = python or (sys.version_info[0], sys.version_info[1])
    last_release = YTDLP_LAST_RELEASE_FOR_PYTHON.get(python)
    if version is None:
        try:
            from yt_dlp.version import __version__ as running
        except ImportError:
            return Finding(name, False, _("yt-dlp is not installed."), _("Run `[p]cog reinstallreqs`."))
        version = str(running)
        # `[p]cog reinstallreqs` replaces the files, but the running bot keeps the old module
        on_disk = _distribution_version("yt-dlp")
        if on_disk and _normal(on_disk) != _normal(version):
            return Finding(
                name,
                False,
                _("{on_disk} is installed but the bot still runs {version}.").format(on_disk=on_disk, version=version),
                _("Restart the bot to use the new yt-dlp."),
            )
    released = version_date(version)
    if released is None:
        return Finding(name, True, _("{version} (its age is unknown: not a dated release).").format(version=version))
    age = (today - released).days
    detail = (_("{version}, released {age} days ago") if age != 1 else _("{version}, released {age} day ago")).format(version=version, age=age)
    stuck = ""
    if last_release is not None and _normal(version) >= _normal(last_release):
        stuck = (
            _("yt-dlp releases after {last_release} need a newer Python than "
            "{major}.{minor}: run the bot on Python 3.11 (Red 3.5 supports it) to keep "
            "getting site fixes.").format(last_release=last_release, major=python[0], minor=python[1])
        )
    if (released.year, released.month, released.day) < YTDLP_JS_SINCE:
        return Finding(
            name,
            False,
            detail + _("; this release can't solve YouTube's JavaScript challenges."),
            stuck or _(YTDLP_UPDATE),
        )
    if age > YTDLP_STALE_DAYS:
        return Finding(
            name,
            False,
            detail + _("; sites change often and releases older than {ytdlp_stale_days} days "
            "tend to break.").format(ytdlp_stale_days=YTDLP_STALE_DAYS),
            stuck or _(YTDLP_UPDATE),
        )
    return Finding(name, True, detail + ".", stuck)


def check_js_runtime(report: JsRuntimeReport) -> Finding:
    name = _("JavaScript runtime (YouTube)")
    if not report.known:
        return Finding(
            name,
            False,
            _("This yt-dlp predates JavaScript runtimes."),
            _("Run `[p]cog reinstallreqs` to update yt-dlp."),
        )
    install = (
        _("Install deno for yt-dlp: `[p]pipinstall deno` (a 42 MB download, 96 MB on disk; the "
        "cog finds it in Red's library folder), or install node 22 or newer on the system; "
        "then run `[p]musicset doctor` again (no restart needed).")
    )
    if report.chosen is None:
        too_old = [r for r in report.found if not r.supported]
        if too_old:
            seen = ", ".join(
                _("{name} {version} from {source}").format(name=r.name, version=r.version, source=r.source)
                + (_(" (yt-dlp needs {minimum} or newer)").format(minimum=r.minimum) if r.minimum else "")
                for r in too_old
            )
            detail = _("Only a runtime too old for yt-dlp was found: {seen}. YouTube links will fail.").format(seen=seen)
        else:
            detail = _("None found (yt-dlp can use deno, node 22+ or bun). YouTube links will fail.")
        return Finding(name, False, detail, install)
    chosen = report.chosen
    others = [r for r in report.found if r is not chosen]
    extra = ""
    if others:
        extra = _(" Also found: ") + ", ".join(
            f"{r.name} {r.version}" + ("" if r.supported else " (too old)") for r in others
        ) + "."
    return Finding(
        name, True, _("{name} {version} from {source} (`{path}`).{extra}").format(name=chosen.name, version=chosen.version, source=chosen.source, path=chosen.path, extra=extra)
    )


def _expected_ejs_version() -> str | None:
    """The yt-dlp-ejs version the installed yt-dlp was built for (its vendored scripts')."""
    try:
        from yt_dlp.extractor.youtube.jsc._builtin.vendor import VERSION
    except ImportError:
        return None
    return str(VERSION)


def check_ejs() -> Finding:
    name = "yt-dlp-ejs"
    expected = _expected_ejs_version()
    pin = f"=={expected}" if expected else ""
    try:
        module = importlib.import_module("yt_dlp_ejs")
    except ImportError:
        return Finding(
            name,
            False,
            _("Not installed: yt-dlp has no challenge-solver scripts for YouTube, and the cog "
            "doesn't let it download them at run time."),
            _("Run `[p]pipinstall yt-dlp-ejs{pin}` (a 53 kB download).").format(pin=pin),
        )
    version = str(getattr(module, "version", None) or _distribution_version("yt-dlp-ejs") or "unknown")
    if expected and version.split(".")[:2] != expected.split(".")[:2]:
        return Finding(
            name,
            False,
            _("{version} is installed but this yt-dlp expects {expected}; yt-dlp will ignore it.").format(version=version, expected=expected),
            _("Run `[p]pipinstall yt-dlp-ejs{pin}`, or `[p]cog reinstallreqs` to update both.").format(pin=pin),
        )
    return Finding(name, True, _("{version} (the scripts yt-dlp runs for YouTube).").format(version=version))


# -- voice ----------------------------------------------------------------------------------------


def _distribution_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_pynacl() -> Finding:
    name = _("PyNaCl (voice encryption)")
    try:
        import nacl
    except ImportError:
        return Finding(
            name, False, _("Not installed: the bot can't send voice."), _("Run `[p]cog reinstallreqs`.")
        )
    version = str(getattr(nacl, "__version__", None) or _distribution_version("PyNaCl") or "")
    voice_client = sys.modules.get("discord.voice_client")
    seen_by_discord = getattr(voice_client, "has_nacl", True)
    if not version.startswith("1.5."):
        return Finding(
            name,
            False,
            _("{version} is installed; discord.py 2.7 expects 1.5.x.").format(version=version or _('an unknown version')),
            _("Run `[p]cog reinstallreqs` (the cog asks for PyNaCl>=1.5,<1.6)."),
        )
    if not seen_by_discord:
        return Finding(
            name,
            False,
            _("{version} is installed but discord.py was loaded before it and still thinks it is "
            "missing.").format(version=version),
            _("Restart the bot."),
        )
    return Finding(name, True, f"{version}.")


def check_davey() -> Finding:
    name = _("davey (DAVE voice encryption)")
    try:
        import davey  # noqa: F401
    except ImportError:
        return Finding(
            name,
            False,
            _("Not installed. Discord has refused unencrypted voice since 2 March 2026 (close "
            "code 4017), so the bot can't join voice channels."),
            _("Run `[p]cog reinstallreqs`, then restart the bot."),
        )
    version = _distribution_version("davey") or "installed"
    voice_state = sys.modules.get("discord.voice_state")
    if voice_state is not None and not getattr(voice_state, "has_dave", True):
        return Finding(
            name,
            False,
            _("{version} is installed but discord.py was loaded before it and still thinks it is "
            "missing, so voice connections fail.").format(version=version),
            _("Restart the bot."),
        )
    return Finding(name, True, f"{version}.")


# -- storage --------------------------------------------------------------------------------------


def check_config_backend(backend: str, queued_tracks: int) -> Finding:
    name = _("Config backend")
    kind = backend.lower()
    if kind.startswith("postgres"):
        return Finding(name, True, _("PostgreSQL: each queue is written on its own."))
    detail = (_("{backend}, {queued_tracks} tracks queued in all") if queued_tracks != 1 else _("{backend}, {queued_tracks} track queued in all")).format(backend=backend, queued_tracks=queued_tracks)
    if kind == "json" and queued_tracks >= JSON_QUEUE_NOTE_AT:
        return Finding(
            name,
            True,
            detail + _(". JSON rewrites every queue on each save (about 85 ms per save with "
            "5,000 tracks, 0.8 s with 50,000); saves are batched every 2 s, but they slow "
            "the bot's other cogs."),
            _("Consider PostgreSQL (`redbot-setup convert <instance> postgres`), or lower "
            "`[p]musicset maxqueue`."),
        )
    return Finding(name, True, detail + ".")


def check_data_folder(path: Path) -> Finding:
    name = _("Data folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        # the cache and Config write with temp file + replace: test exactly that
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-", delete=True) as handle:
            handle.write(b"ok")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        return Finding(
            name,
            False,
            _("`{path}` is not writable ({strerror}): the lookup cache and saved "
            "queues can't be written.").format(path=path, strerror=exc.strerror or exc),
            _("Give the user the bot runs as write access to that folder."),
        )
    return Finding(name, True, _("`{path}` is writable.").format(path=path))


# -- all together ---------------------------------------------------------------------------------


def run_checks_sync(
    *,
    ffmpeg_override: str | None,
    data_path: Path,
    storage_backend: str,
    queued_tracks: int,
    today: dt.date | None = None,
) -> list[Finding]:
    """Every check, in the order the owner should read them. Blocking."""
    today = today or dt.date.today()
    # the owner may just have run `[p]pipinstall deno`: forget cached directory listings
    importlib.invalidate_caches()
    report = js_runtime_report(refresh=True)
    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("ffmpeg", lambda: check_ffmpeg(ffmpeg_override)),
        ("yt-dlp", lambda: check_ytdlp(today)),
        (_("JavaScript runtime (YouTube)"), lambda: check_js_runtime(report)),
        ("yt-dlp-ejs", check_ejs),
        (_("PyNaCl (voice encryption)"), check_pynacl),
        (_("davey (DAVE voice encryption)"), check_davey),
        (_("Config backend"), lambda: check_config_backend(storage_backend, queued_tracks)),
        (_("Data folder"), lambda: check_data_folder(data_path)),
    ]
    findings = []
    for name, check in checks:
        try:
            findings.append(check())
        except Exception as exc:  # one broken check must not hide the others
            log.exception("The doctor's %s check failed", name)
            findings.append(Finding(name, False, _("The check itself failed: {exc!r}.").format(exc=exc)))
    return findings


async def run_checks(**kwargs: object) -> list[Finding]:
    """run_checks_sync in a thread: ffmpeg and the runtimes are started as subprocesses."""
    return await asyncio.to_thread(run_checks_sync, **kwargs)  # type: ignore[arg-type]

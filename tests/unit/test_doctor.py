"""`musicset doctor`'s checks (music.doctor), its rendering (music.commands.owner) and the
JavaScript runtime handed to yt-dlp (music.resolve.jsruntime), with fake runtimes and fake
ffmpeg builds as small shell scripts, and the real yt-dlp reading the options we produce."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
import sys
import time
import types
from pathlib import Path

import pytest
import yt_dlp

from music import doctor
from music.commands.owner import render_embed, render_text
from music.doctor import (
    Finding,
    check_config_backend,
    check_data_folder,
    check_davey,
    check_ejs,
    check_ffmpeg,
    check_js_runtime,
    check_pynacl,
    check_ytdlp,
    version_date,
)
from music.resolve.jsruntime import JsRuntime, detect_js_runtime, ytdlp_js_options


def script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def only_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH is one empty folder (tests put fake runtimes in it) and no `deno` package."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setitem(sys.modules, "deno", None)  # `import deno` raises ImportError
    return bin_dir


# -- the JavaScript runtime ---------------------------------------------------------------------


def test_deno_on_path_is_chosen_and_real_ytdlp_accepts_the_options(only_path: Path) -> None:
    deno = script(only_path, "deno", 'echo "deno 2.5.0 (stable, release, x86_64-unknown-linux-gnu)"')
    report = detect_js_runtime()
    assert report.chosen == JsRuntime("deno", str(deno), "2.5.0", True, "PATH", "2.3.0")
    options = ytdlp_js_options(report)
    assert options == {"js_runtimes": {"deno": {"path": str(deno)}}}
    # yt-dlp itself reads the option and finds the runtime at that path
    with yt_dlp.YoutubeDL({"quiet": True, **options}) as ydl:
        info = ydl._js_runtimes["deno"].info
    assert info is not None and info.path == str(deno) and info.supported


def test_deno_from_the_pip_target_folder_is_found_where_ytdlp_alone_does_not_look(
    tmp_path: Path, only_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pip install -t lib deno` (Red's Downloader) puts the binary in lib/bin: not on PATH
    lib_deno = script(tmp_path / "lib" / "bin", "deno", 'echo "deno 2.9.8 (stable)"')
    fake_package = types.ModuleType("deno")
    fake_package.find_deno_bin = lambda: str(lib_deno)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "deno", fake_package)
    script(only_path, "node", 'echo "v22.3.0"')
    with yt_dlp.YoutubeDL({"quiet": True}) as ydl:
        assert ydl._js_runtimes["deno"].info is None  # yt-dlp's default can't see it
    report = detect_js_runtime()
    assert report.chosen is not None
    assert (report.chosen.name, report.chosen.path, report.chosen.source) == ("deno", str(lib_deno), "the deno package")
    assert [r.name for r in report.found] == ["deno", "node"]


def test_node_older_than_ytdlp_supports_is_reported_but_not_used(only_path: Path) -> None:
    script(only_path, "node", 'echo "v20.20.2"')
    report = detect_js_runtime()
    assert report.chosen is None
    assert [(r.name, r.version, r.supported, r.minimum) for r in report.found] == [("node", "20.20.2", False, "22.0.0")]
    assert ytdlp_js_options(report) == {}
    finding = check_js_runtime(report)
    assert not finding.ok
    assert "node 20.20.2" in finding.detail and "22.0.0 or newer" in finding.detail
    assert "[p]pipinstall deno" in finding.fix


def test_a_recent_node_is_used_when_there_is_no_deno(only_path: Path) -> None:
    node = script(only_path, "node", 'echo "v22.11.0"')
    report = detect_js_runtime()
    assert report.chosen is not None and report.chosen.name == "node"
    assert ytdlp_js_options(report) == {"js_runtimes": {"node": {"path": str(node)}}}
    finding = check_js_runtime(report)
    assert finding.ok and "node 22.11.0 from PATH" in finding.detail


def test_no_runtime_at_all_says_youtube_will_fail(only_path: Path) -> None:
    report = detect_js_runtime()
    assert report.chosen is None and report.found == ()
    finding = check_js_runtime(report)
    assert not finding.ok and "YouTube links will fail" in finding.detail


# -- yt-dlp's age ---------------------------------------------------------------------------------


def test_version_dates() -> None:
    assert version_date("2026.10.26") == dt.date(2026, 10, 26)
    assert version_date("2026.01.02.232842") == dt.date(2026, 1, 2)  # nightly
    assert version_date("1.2.3-dev") is None
    assert version_date("2026.13.40") is None


def test_a_fresh_ytdlp_passes_and_one_older_than_60_days_says_how_to_update() -> None:
    fresh = check_ytdlp(dt.date(2026, 11, 29), "2026.10.26", python=(3, 11))
    assert fresh.ok and "34 days ago" in fresh.detail and fresh.label == "OK"
    at_the_limit = check_ytdlp(dt.date(2026, 12, 25), "2026.10.26", python=(3, 11))
    assert at_the_limit.ok and "60 days ago" in at_the_limit.detail
    stale = check_ytdlp(dt.date(2026, 12, 26), "2026.10.26", python=(3, 11))
    assert not stale.ok and "61 days ago" in stale.detail and "older than 60 days" in stale.detail
    assert "`[p]pipinstall -U yt-dlp yt-dlp-ejs`" in stale.fix
    assert "`[p]cog reinstallreqs`" in stale.fix and "restart the bot" in stale.fix
    nightly = check_ytdlp(dt.date(2027, 1, 1), "2026.10.26.232842", python=(3, 11))
    assert not nightly.ok and "67 days ago" in nightly.detail


def test_on_a_python_that_ytdlp_dropped_the_fix_is_a_newer_python_not_a_reinstall() -> None:
    # 2026.10.21 is the last release for Python 3.10: reinstalling cannot bring anything newer
    stale = check_ytdlp(dt.date(2027, 1, 1), "2026.10.21", python=(3, 10))
    assert not stale.ok and "72 days ago" in stale.detail
    assert "Python 3.11" in stale.fix and "after 2026.10.21" in stale.fix and "pipinstall" not in stale.fix
    # still fresh, but it will not be for long: a note, not a problem
    fresh = check_ytdlp(dt.date(2026, 11, 1), "2026.10.21", python=(3, 10))
    assert fresh.ok and fresh.label == "NOTE" and "Python 3.11" in fresh.fix
    # an older release on 3.10 can still be updated (up to 2026.10.21)
    older = check_ytdlp(dt.date(2026, 11, 1), "2026.8.19", python=(3, 10))
    assert not older.ok and "pipinstall" in older.fix


def test_a_ytdlp_from_before_javascript_runtimes_is_a_problem_even_if_recent_enough() -> None:
    old = check_ytdlp(dt.date(2025, 11, 1), "2025.10.22", python=(3, 11))
    assert not old.ok and "JavaScript" in old.detail and "pipinstall -U yt-dlp" in old.fix


def test_the_installed_ytdlp_is_read_when_no_version_is_given() -> None:
    finding = check_ytdlp(dt.date.today())
    assert yt_dlp.version.__version__ in finding.detail


def test_a_ytdlp_updated_on_disk_but_not_loaded_asks_for_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    # what `[p]cog reinstallreqs` leaves behind: new files, the old module still imported
    monkeypatch.setattr(doctor, "_distribution_version", lambda dist: "2099.1.2" if dist == "yt-dlp" else None)
    finding = check_ytdlp(dt.date.today())
    assert not finding.ok and finding.fix == "Restart the bot to use the new yt-dlp."
    assert "2099.1.2 is installed" in finding.detail
    # PyPI's spelling of the running release is the same release
    loaded = yt_dlp.version.__version__
    unpadded = ".".join(str(int(p)) for p in loaded.split("."))
    monkeypatch.setattr(doctor, "_distribution_version", lambda dist: unpadded)
    assert "is installed but" not in check_ytdlp(dt.date.today()).detail


# -- yt-dlp-ejs -------------------------------------------------------------------------------------


def test_missing_ejs_says_which_version_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from yt_dlp.extractor.youtube.jsc._builtin.vendor import VERSION

    monkeypatch.setitem(sys.modules, "yt_dlp_ejs", None)
    finding = check_ejs()
    assert not finding.ok
    assert f"[p]pipinstall yt-dlp-ejs=={VERSION}" in finding.fix


def test_ejs_must_match_the_scripts_ytdlp_was_built_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from yt_dlp.extractor.youtube.jsc._builtin.vendor import VERSION

    major, minor, *_ = VERSION.split(".")
    fake = types.ModuleType("yt_dlp_ejs")
    fake.version = f"{major}.{int(minor) + 1}.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "yt_dlp_ejs", fake)
    mismatch = check_ejs()
    assert not mismatch.ok and "expects" in mismatch.detail
    fake.version = f"{major}.{minor}.7"  # type: ignore[attr-defined]  (a patch release is fine)
    assert check_ejs().ok


# -- voice libraries ----------------------------------------------------------------------------


def test_voice_libraries_installed_here_pass() -> None:
    assert check_pynacl().ok
    assert check_davey().ok


def test_davey_installed_after_discord_was_loaded_asks_for_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    import discord.voice_state

    monkeypatch.setattr(discord.voice_state, "has_dave", False)
    finding = check_davey()
    assert not finding.ok and finding.fix == "Restart the bot."


def test_missing_davey_mentions_discords_encryption_requirement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "davey", None)
    finding = check_davey()
    assert not finding.ok and "4017" in finding.detail and "reinstallreqs" in finding.fix


def test_pynacl_of_another_series_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("nacl")
    fake.__version__ = "1.6.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nacl", fake)
    finding = check_pynacl()
    assert not finding.ok and "1.5.x" in finding.detail


# -- ffmpeg -----------------------------------------------------------------------------------------


def test_the_bundled_ffmpeg_runs_and_has_libopus() -> None:
    finding = check_ffmpeg(None)
    assert finding.ok, finding
    assert "bundled (imageio-ffmpeg)" in finding.detail and "has libopus" in finding.detail


def test_an_ffmpeg_without_libopus_is_a_problem(tmp_path: Path) -> None:
    fake = script(
        tmp_path,
        "ffmpeg",
        'if [ "$2" = "-encoders" ]; then echo " A....D aac  AAC (Advanced Audio Coding)"; '
        'else echo "ffmpeg version 4.4-minimal"; fi',
    )
    finding = check_ffmpeg(str(fake))
    assert not finding.ok
    assert "4.4-minimal" in finding.detail and "set with `musicset ffmpeg`" in finding.detail
    assert "libopus" in finding.detail and "[p]musicset ffmpeg" in finding.fix


def test_an_ffmpeg_that_fails_to_run_is_a_problem(tmp_path: Path) -> None:
    broken = script(tmp_path, "ffmpeg", "exit 3")
    finding = check_ffmpeg(str(broken))
    assert not finding.ok and "code 3" in finding.detail


# -- storage ----------------------------------------------------------------------------------------


def test_config_backend_notes() -> None:
    small = check_config_backend("JSON", 12)
    assert small.ok and not small.fix and small.label == "OK"
    big = check_config_backend("JSON", 6000)
    assert big.ok and big.label == "NOTE" and "postgres" in big.fix.lower()
    assert check_config_backend("Postgres", 100_000).fix == ""


def test_data_folder_writable_and_not(tmp_path: Path) -> None:
    assert check_data_folder(tmp_path / "data").ok
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    finding = check_data_folder(blocker / "data")  # a folder can't be made under a file
    assert not finding.ok and "not writable" in finding.detail
    assert os.listdir(tmp_path / "data") == []  # the probe file was removed


# -- all together and rendered ------------------------------------------------------------------


async def test_run_checks_works_in_a_thread_and_keeps_the_loop_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_check = doctor.check_ffmpeg

    def slow_check(override: str | None) -> Finding:
        time.sleep(0.5)  # a slow ffmpeg start
        return real_check(override)

    monkeypatch.setattr(doctor, "check_ffmpeg", slow_check)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    findings = await doctor.run_checks(
        ffmpeg_override=None, data_path=tmp_path, storage_backend="JSON", queued_tracks=0
    )
    task.cancel()
    assert ticks >= 10  # the loop ran while the checks did
    assert [f.name for f in findings] == [
        "ffmpeg", "yt-dlp", "JavaScript runtime (YouTube)", "yt-dlp-ejs",
        "PyNaCl (voice encryption)", "davey (DAVE voice encryption)", "Config backend", "Data folder",
    ]


async def test_a_check_that_crashes_becomes_a_problem_not_an_exception(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode() -> Finding:
        raise ValueError("boom")

    monkeypatch.setattr(doctor, "check_ejs", explode)
    findings = doctor.run_checks_sync(ffmpeg_override=None, data_path=tmp_path, storage_backend="JSON", queued_tracks=0)
    crashed = next(f for f in findings if f.name == "yt-dlp-ejs")
    assert not crashed.ok and "boom" in crashed.detail


def test_rendering_puts_the_fix_under_each_problem_with_the_prefix() -> None:
    findings = [
        Finding("ffmpeg", True, "9.0 at `/x/ffmpeg`."),
        Finding("yt-dlp-ejs", False, "Not installed.", "Run `[p]pipinstall yt-dlp-ejs==0.8.0`."),
        Finding("Config backend", True, "JSON, 6000 tracks.", "Consider PostgreSQL."),
    ]
    text = render_text(findings, "!")
    lines = text.splitlines()
    assert lines[0] == "1 problem found; fix them from the top (later checks may depend on earlier ones)."
    problem = lines.index("PROBLEM  yt-dlp-ejs: Not installed.")
    assert lines[problem + 1].strip() == "-> Run !pipinstall yt-dlp-ejs==0.8.0."
    assert "NOTE     Config backend: JSON, 6000 tracks." in lines
    assert "`" not in text  # no stray backticks inside the code box
    embed = render_embed(findings, "!")
    assert len(embed.fields) == 3 and embed.colour is not None and embed.colour.value == 0xE74C3C
    assert "**What to do:** Run `!pipinstall yt-dlp-ejs==0.8.0`." in embed.fields[1].value
    assert render_text(findings[:1], "!").startswith("All 1 checks passed.")

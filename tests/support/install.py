"""The owner's install of the music cog through Red's Downloader, for tests.

The code lives in `standin.install` because the demo (standin.demo) uses it too and the stand-in
must not import from tests/; this module only re-exports it."""

from standin.install import (
    COG_INSTALL_TIMEOUT,
    InstallError,
    InstallReport,
    InstallStep,
    install_music_cog,
    snapshot_and_install,
    snapshot_working_tree,
    working_tree_files,
)

__all__ = [
    "COG_INSTALL_TIMEOUT",
    "InstallError",
    "InstallReport",
    "InstallStep",
    "install_music_cog",
    "snapshot_and_install",
    "snapshot_working_tree",
    "working_tree_files",
]

"""music/ runs on Python 3.10 (music/info.json): no module, name or handler that only 3.11 has.

The 3.10 run of scripts/test catches what its tests reach; this reads every file, so an untested
`except TimeoutError:` around `asyncio.wait_for` (which raises asyncio.TimeoutError, a different
class before 3.11, so the handler never runs) is found too."""

from __future__ import annotations

import ast
from pathlib import Path

MUSIC = Path(__file__).resolve().parents[2] / "music"

ONLY_311_MODULES = {"tomllib"}
ONLY_311_ATTRIBUTES = {("asyncio", "timeout"), ("asyncio", "TaskGroup"), ("asyncio", "Runner"),
                       ("datetime", "UTC"), ("dt", "UTC"), ("typing", "Self"), ("enum", "StrEnum"),
                       ("hashlib", "file_digest"), ("contextlib", "chdir")}
ONLY_311_NAMES = {"ExceptionGroup", "BaseExceptionGroup"}


def _catches_only_builtin_timeout(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = {ast.unparse(k) for k in kinds if k is not None}
    return "TimeoutError" in names and "asyncio.TimeoutError" not in names


def problems_in(path: Path) -> list[tuple[str, int, str]]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))  # `except*` fails here on 3.10
    lines = source.splitlines()
    found = []
    for node in ast.walk(tree):
        what = None
        if isinstance(node, ast.ExceptHandler) and _catches_only_builtin_timeout(node):
            what = "TimeoutError without asyncio.TimeoutError"
        elif isinstance(node, ast.Import) and any(a.name in ONLY_311_MODULES for a in node.names):
            what = "3.11-only module"
        elif isinstance(node, ast.ImportFrom) and (
                node.module in ONLY_311_MODULES
                or any((node.module, a.name) in ONLY_311_ATTRIBUTES for a in node.names)):
            what = "3.11-only import"
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and (node.value.id, node.attr) in ONLY_311_ATTRIBUTES):
            what = "3.11-only attribute"
        elif isinstance(node, ast.Name) and node.id in ONLY_311_NAMES:
            what = "3.11-only name"
        if what is not None:
            found.append((what, node.lineno, lines[node.lineno - 1].strip()))
    return found


def test_music_uses_nothing_that_only_python_311_has() -> None:
    found = [f"music/{path.relative_to(MUSIC).as_posix()}:{line}: {what}: {text}"
             for path in sorted(MUSIC.rglob("*.py")) for what, line, text in problems_in(path)]
    assert not found, "\n".join(found)


def test_the_check_sees_a_bare_timeout_handler_and_accepts_the_portable_ones(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import asyncio, datetime as dt\n"
        "try:\n    pass\nexcept TimeoutError:\n    pass\n"
        "try:\n    pass\nexcept (OSError, TimeoutError):\n    pass\n"
        "try:\n    pass\nexcept asyncio.TimeoutError:\n    pass\n"
        "try:\n    pass\nexcept (TimeoutError, asyncio.TimeoutError):\n    pass\n"
        "now = dt.datetime.now(dt.UTC)\n"
    )
    assert [(what, line) for what, line, _ in problems_in(sample)] == [
        ("TimeoutError without asyncio.TimeoutError", 4),
        ("TimeoutError without asyncio.TimeoutError", 8),
        ("3.11-only attribute", 18),
    ]

"""One writer: outside the control layer (music/control) and the player (music/player), no
module of the cog assigns to a player's or a queue's state or calls a queue's mutating methods.
Front doors (commands, RPC, the cog's lifecycle and monitor) read, and call the control layer."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from music.engine.queue import QueueModel
from music.player.state import GuildPlayer

MUSIC = Path(__file__).resolve().parents[2] / "music"
WRITERS = ("control", "player")  # the packages allowed to write
# the engine defines the queue model itself (its own methods mutate it)
OWNERS = ("engine",)

PLAYER_FIELDS = {f.name for f in dataclasses.fields(GuildPlayer)}
QUEUE_FIELDS = {"current", "upcoming", "history", "repeat", "shuffle"}
QUEUE_MUTATORS = {"add", "remove", "remove_range", "remove_where", "move", "clear", "shuffle_upcoming", "advance",
                  "skip_to", "previous", "replace"}
LIST_MUTATORS = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"}
assert QUEUE_MUTATORS <= {name for name in dir(QueueModel) if not name.startswith("_")}


def _chain(node: ast.AST) -> list[str]:
    """`a.b.c` -> ["a", "b", "c"] (subscripts and calls are skipped through)."""
    names: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        elif isinstance(node, (ast.Subscript, ast.Call)):
            node = node.value if isinstance(node, ast.Subscript) else node.func
        elif isinstance(node, ast.Name):
            names.append(node.id)
            break
        else:
            break
    return names[::-1]


def _is_player(names: list[str]) -> bool:
    return any("player" in n.lower() or n == "players" for n in names)


def violations_in(source: str, filename: str = "<src>") -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        targets: list[ast.AST] = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                names = _chain(element)
                if len(names) < 2:
                    continue
                attr, owner = names[-1], names[:-1]
                if attr in QUEUE_FIELDS and "queue" in owner:
                    found.append(f"{filename}:{node.lineno} assigns to the queue's `{attr}`")
                elif attr in PLAYER_FIELDS and _is_player(owner):
                    found.append(f"{filename}:{node.lineno} assigns to a player's `{attr}`")
                elif isinstance(element, ast.Subscript) and names[-1] in ("players", "upcoming", "history", "skip_votes"):
                    found.append(f"{filename}:{node.lineno} writes into `{names[-1]}`")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            names = _chain(node.func)
            method, owner = names[-1], names[:-1]
            if owner and owner[-1] == "queue" and method in QUEUE_MUTATORS:
                found.append(f"{filename}:{node.lineno} calls queue.{method}()")
            elif (
                len(owner) >= 2  # an attribute of something (a local list of the same name is fine)
                and owner[-1] in ("upcoming", "history", "players", "skip_votes")
                and method in LIST_MUTATORS | {"setdefault", "update"}
            ):
                found.append(f"{filename}:{node.lineno} calls {owner[-1]}.{method}()")
    return found


def test_only_the_control_layer_and_the_player_write_player_or_queue_state():
    found: list[str] = []
    for path in sorted(MUSIC.rglob("*.py")):
        package = path.relative_to(MUSIC).parts[0]
        if package in WRITERS + OWNERS:
            continue
        found += violations_in(path.read_text(), str(path.relative_to(MUSIC.parent)))
    assert found == []


def test_the_check_catches_each_kind_of_write():
    samples = {
        "player.volume = 5": "player's `volume`",
        "self.player(ctx).state = 1": "player's `state`",
        "p = cog.manager.players[1]; p.queue.repeat = x": "queue's `repeat`",
        "player.queue.add([t])": "queue.add()",
        "manager.get(1).queue.shuffle_upcoming()": "queue.shuffle_upcoming()",
        "player.queue.upcoming.append(t)": "upcoming.append()",
        "manager.players[5] = p": "writes into `players`",
        "player.skip_votes.setdefault(t, set())": "skip_votes.setdefault()",
        "player.text_channel_id, player.channel_id = a, b": "player's `text_channel_id`",
    }
    for code, expected in samples.items():
        found = violations_in(code)
        assert found and expected in found[0], (code, found)
    assert violations_in("settings.volume = 5\nx = player.queue.current\nstream.position = 3") == []

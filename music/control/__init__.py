"""The control layer: every front door's one way to change a guild's player and queue."""

from .controller import Enqueued, MusicControl, SkipOutcome, forget_requester
from .errors import (
    MAX_QUERY_LENGTH,
    READY_TIMEOUT,
    STARTING_UP,
    ControlError,
    clean_query,
    wait_until_ready,
)
from .permissions import MATRIX, Actor, Intent, Rule, judge

__all__ = [
    "MATRIX",
    "MAX_QUERY_LENGTH",
    "READY_TIMEOUT",
    "STARTING_UP",
    "Actor",
    "ControlError",
    "Enqueued",
    "Intent",
    "MusicControl",
    "Rule",
    "SkipOutcome",
    "clean_query",
    "forget_requester",
    "judge",
    "wait_until_ready",
]

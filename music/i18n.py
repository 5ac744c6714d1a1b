"""The cog's sentences in the language Red chose for the server: one Red `Translator` for all of them.

Every module imports `_` from here and writes `_("... {name} ...").format(name=...)`, so the
catalogue (music/locales/messages.pot, made by `redgettext`) holds whole sentences. One translator
means one `music/locales/` folder; Red's own would look for `locales/` next to each module.

The engine, the audio code and the control layer must stay importable and testable without a
bot, and the engine and audio without discord.py (tests/unit/test_imports_without_discord.py):
`redbot.core.i18n` imports discord.py, so it is not imported here. `_` asks Red's Translator
once Red has loaded it (a running bot always has), and returns the English sentence before that
(unit tests, tools). Red's Translator reads the locale of the current command from a context
variable at each call, so one translator serves every server in its own language.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redbot.core.i18n import Translator

COG_NAME = "Music"
RED_I18N = "redbot.core.i18n"


class SentenceTranslator:
    """`_`: the English sentence in, the current locale's sentence out (through Red's Translator)."""

    def __init__(self) -> None:
        self._red: Translator | None = None

    def __call__(self, sentence: str) -> str:
        red = self._red or self._load()
        return red(sentence) if red is not None else sentence

    def _load(self) -> Translator | None:
        red_i18n: Any = sys.modules.get(RED_I18N)
        if red_i18n is None:
            return None  # no Red in this process: English
        # __file__ is music/i18n.py, so Red reads music/locales/<locale>.po
        self._red = red_i18n.Translator(COG_NAME, __file__)
        return self._red

    def red_translator(self) -> Translator:
        """Red's Translator itself, for `cog_i18n` (command help); imports Red if needed."""
        __import__(RED_I18N)
        red = self._red or self._load()
        assert red is not None
        return red


class Deferred:
    """`deferred._("...")` marks a sentence kept in a module-level constant or table.

    Translating at import would fix the sentence in the locale of that moment, so the constant
    stays English and the code translates it where it is shown: `_(CONSTANT)`. The method is
    named `_` because redgettext collects every `_("...")` call, so the sentence still reaches
    the catalogue.
    """

    @staticmethod
    def _(sentence: str) -> str:
        return sentence


_ = SentenceTranslator()
deferred = Deferred()

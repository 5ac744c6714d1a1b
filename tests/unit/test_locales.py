"""The translations (issue 16): the catalogue holds every sentence the code marks, every
translation keeps its sentence's placeholders and markdown, the German one is complete, and Red's
own Translator reads it under the file name Red looks for."""

from __future__ import annotations

import ast
import contextvars
import string
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
MUSIC = ROOT / "music"
LOCALES = MUSIC / "locales"
POT = LOCALES / "messages.pot"
FULL_TRANSLATIONS = ["de-DE"]
COMMAND_DECORATORS = {"command", "group", "hybrid_command", "hybrid_group", "cog_i18n"}


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def entries(catalog: Catalog) -> dict[str, str]:
    return {m.id: m.string for m in catalog if m.id and isinstance(m.id, str)}


def marked_sentences() -> set[str]:
    """Every `_("...")` (and `deferred._("...")`) literal in music/, and the help texts of the
    commands and the cog: what `redgettext -c` collects."""
    found: set[str] = set()
    for path in MUSIC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                named_underscore = (isinstance(func, ast.Name) and func.id == "_") or (
                    isinstance(func, ast.Attribute) and func.attr == "_")
                first = node.args[0]
                if named_underscore and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and is_command(node):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    found.add(doc)
    return found


def is_command(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> bool:
    """A command (its help) or the cog class itself (`@cog_i18n`: the cog's help)."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in COMMAND_DECORATORS:
            return True
    return False


def fields(text: str) -> Counter[str]:
    """The placeholders of a sentence as str.format sees them: `{name!r:>4}` and all."""
    found: Counter[str] = Counter()
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is not None:
            found[f"{name}!{conversion or ''}:{spec or ''}"] += 1
    return found


def markdown(text: str) -> tuple[int, int, int]:
    return text.count("`"), text.count("**"), text.count("__")


def test_the_catalogue_holds_every_marked_sentence_and_nothing_stale() -> None:
    catalogue = set(entries(read_catalog(POT)))
    marked = marked_sentences()
    assert len(marked) > 700  # the walk found the cog's sentences
    missing = sorted(marked - catalogue)
    assert not missing, (
        f"{len(missing)} sentences are not in music/locales/messages.pot; regenerate it "
        f"(README, Languages): {missing[:5]}")
    stale = sorted(catalogue - marked)
    assert not stale, f"messages.pot holds sentences the code no longer has: {stale[:5]}"


@pytest.mark.parametrize("locale", FULL_TRANSLATIONS)
def test_a_full_translation_translates_every_sentence(locale: str) -> None:
    catalogue = entries(read_catalog(POT))
    translated = entries(read_catalog(LOCALES / f"{locale}.po"))
    missing = sorted(m for m in catalogue if not translated.get(m))
    assert not missing, f"{len(missing)} sentences untranslated in {locale}.po: {missing[:5]}"
    stale = sorted(set(translated) - set(catalogue))
    assert not stale, f"{locale}.po holds sentences that are no longer in the catalogue: {stale[:5]}"


@pytest.mark.parametrize("path", sorted(LOCALES.glob("*.po")), ids=lambda p: p.name)
def test_every_translation_keeps_its_placeholders_and_markdown(path: Path) -> None:
    checked = 0
    for msgid, msgstr in entries(read_catalog(path)).items():
        if not msgstr:
            continue
        assert fields(msgstr) == fields(msgid), f"placeholders differ in {path.name}: {msgid!r} -> {msgstr!r}"
        assert markdown(msgstr) == markdown(msgid), f"markdown differs in {path.name}: {msgid!r} -> {msgstr!r}"
        checked += 1
    assert checked > 0


def test_the_placeholder_check_catches_a_renamed_or_dropped_field() -> None:
    assert fields("Skipped {track}.") != fields("{titel} übersprungen.")
    assert fields("Volume: {volume}%.") != fields("Lautstärke.")
    assert fields("{value:+.2f} dB") != fields("{value} dB")


def test_reds_translator_reads_the_german_file_by_the_name_red_looks_for() -> None:
    """Red looks for `locales/<standardised locale>.po` next to the Translator's file: the
    German sentences come back under `de-DE` and the English ones under `en-US`."""
    from redbot.core import _i18n

    from music.i18n import SentenceTranslator

    def translate(locale: str, sentence: str) -> str:
        _i18n.set_contextual_locale(_i18n._get_standardized_locale_name(locale))
        return SentenceTranslator().red_translator()(sentence)

    assert _i18n._get_standardized_locale_name("de-de") == "de-DE"
    assert (LOCALES / "de-DE.po").is_file()
    # a context of its own: the locale set here does not leak into other tests
    assert contextvars.copy_context().run(translate, "de-DE", "Paused.") == "Pausiert."
    assert contextvars.copy_context().run(translate, "de-DE", "Now playing: {track}") == "Jetzt läuft: {track}"
    assert contextvars.copy_context().run(translate, "en-US", "Paused.") == "Paused."

"""The second language end to end (issue 16): after `[p]set locale de-DE` (Red 3.5: the server's
locale) a real Red bot's music replies, the control layer's refusals, the player's own
"Now playing" message with its buttons, a click's answer and the command help come in German; `[p]set locale en-US` brings English
back. Red's `[p]set regionalformat` only changes how Red formats dates and numbers, not which
language a cog speaks, so the language is tested through `[p]set locale`.
"""

from __future__ import annotations

import pytest

from standin import Member, Message
from tests.e2e.conftest import MusicBot

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

GERMAN_NOW_PLAYING = "Jetzt läuft:"


@pytest.fixture(scope="module")
def outsider(music_bot: MusicBot) -> Member:
    """A member who is not in the voice channel: the control layer refuses their controls."""
    return music_bot.standin.add_member(music_bot.world.guild, "outsider")


def not_a_notice(message: Message) -> bool:
    return not message.content.startswith(("Now playing:", GERMAN_NOW_PLAYING))


async def set_locale(music_bot: MusicBot, code: str) -> None:
    # Red answers in its own translation of the new locale; any answer means it is set
    await music_bot.ask(music_bot.world.owner, f"!set locale {code}", expect=not_a_notice)


async def test_replies_refusals_notices_and_help_follow_the_server_locale(
        music_bot: MusicBot, outsider: Member, media_server) -> None:
    s, w = music_bot.standin, music_bot.world
    await s.join_voice(w.member, w.music)
    english = await music_bot.ask(w.member, "!resume", expect=not_a_notice)
    assert english.content == "Nothing is playing.", english.content

    await set_locale(music_bot, "de-DE")
    german = await music_bot.ask(w.member, "!resume", expect=not_a_notice)
    assert german.content == "Gerade läuft nichts.", german.content
    played = await music_bot.ask(w.member, f"!play {media_server.url('a440.webm')}", expect=not_a_notice)
    assert played.content.startswith("Spiele **"), played.content  # "Playing {track}."
    await music_bot.ears.wait_for_tone(440, packets=10)
    # said by the player's advancer (one task for every server), not by a command
    notice = await s.wait_for_message(w.general, lambda m: m.content.startswith(GERMAN_NOW_PLAYING),
                                      after=played, timeout=15)
    assert "**" in notice.content
    labels = [c.get("label") for row in notice.components for c in row.get("components", [])]
    assert "Überspringen" in labels and "Warteschlange" in labels, labels
    # a click is answered in the server's language too (Red sets it for commands, not buttons)
    clicked = await s.wait_for_answer(await s.click(outsider, notice, "music:np:pause"))
    assert clicked.content == f"Tritt <#{w.music.id}> bei, um die Musik zu steuern.", clicked.content
    assert clicked.ephemeral

    # a refusal of the control layer (permissions.judge) ...
    refused = await music_bot.ask(outsider, "!pause", expect=not_a_notice)
    assert refused.content == f"Tritt <#{w.music.id}> bei, um die Musik zu steuern.", refused.content
    # ... one of an intent (controller.resume) ...
    not_paused = await music_bot.ask(w.member, "!resume", expect=not_a_notice)
    assert not_paused.content == "Die Musik ist nicht pausiert.", not_paused.content
    # ... and one of the Discord-free engine (timefmt), its help text translated where it is used
    bad_seek = await music_bot.ask(w.member, "!seek soon", expect=not_a_notice)
    assert bad_seek.content.startswith("Ich konnte "), bad_seek.content
    assert "nicht als Position lesen: nutze Sekunden (90), mm:ss (1:30) oder einen relativen Versatz" \
        in bad_seek.content

    help_text = await music_bot.ask(w.member, "!help pause", expect=not_a_notice)
    assert "Pausiert die Musik." in help_text.text, help_text.text

    paused = await music_bot.ask(w.member, "!pause", expect=not_a_notice)
    assert paused.content == "Pausiert."

    await set_locale(music_bot, "en-US")
    resumed = await music_bot.ask(w.member, "!resume", expect=not_a_notice)
    assert resumed.content == "Resumed."
    refused_again = await music_bot.ask(outsider, "!pause", expect=not_a_notice)
    assert refused_again.content == f"Join <#{w.music.id}> to control the music."
    help_again = await music_bot.ask(w.member, "!help pause", expect=not_a_notice)
    assert "Pause the music." in help_again.text
    stopped = await music_bot.ask(w.member, "!stop", expect=not_a_notice)
    assert stopped.content == "Stopped, and cleared the queue."

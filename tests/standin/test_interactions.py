"""Application commands on the stand-in, driven by a real discord.py client (no Red): sync keeps
what was synced, slash commands arrive with typed options and resolved members, autocomplete
gets choices, a message context menu gets its message, deferral and followups write the answer,
ephemeral answers are recorded, and Discord's timing rules (3 s, token lifetime) hold."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands

from standin import Standin
from standin.state import Interaction

from .test_gateway_rest import FakeVoiceServer


class Bot(discord.AutoShardedClient):  # sharded: it asks GET /gateway/bot for the URL, like Red
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = app_commands.CommandTree(self)
        self.seen: list[Any] = []
        self.errors: list[BaseException] = []

        @self.tree.command(name="echo", description="Say it back")
        @app_commands.describe(text="what to say")
        async def echo(interaction: discord.Interaction, text: str, times: app_commands.Range[int, 1, 3] = 1,
                       who: discord.Member | None = None, private: bool = False) -> None:
            self.seen.append((text, times, who))
            await interaction.response.send_message(" ".join([text] * times), ephemeral=private)

        @echo.autocomplete("text")
        async def echo_text(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=f"{current} {i}", value=f"{current}{i}") for i in range(30)][:25]

        @self.tree.command(name="slow", description="Defer, then answer")
        async def slow(interaction: discord.Interaction, delay: float = 0.0) -> None:
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(delay)
            message = await interaction.followup.send("done after thinking", wait=True)
            await message.edit(content="done, edited")
            await interaction.followup.send("and a followup")

        @self.tree.command(name="late", description="Answer after 3.5 s")
        async def late(interaction: discord.Interaction) -> None:
            await asyncio.sleep(3.5)
            try:
                await interaction.response.send_message("too late")
            except discord.NotFound as exc:
                self.errors.append(exc)

        group = app_commands.Group(name="box", description="A group")

        @group.command(name="open", description="Open a box")
        async def box_open(interaction: discord.Interaction, where: discord.TextChannel) -> None:
            self.seen.append(("open", where.id))
            await interaction.response.send_message(f"opened in {where.name}")

        self.tree.add_command(group)

        @self.tree.context_menu(name="Shout")
        async def shout(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(message.content.upper())

    async def on_ready(self) -> None:
        self.seen.append("ready")


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[Standin]:
    s = Standin(voice_factory=FakeVoiceServer)
    await s.start()
    s.default_world()
    yield s
    await s.stop()


@pytest_asyncio.fixture
async def bot(standin: Standin, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    monkeypatch.setattr(discord.http.Route, "BASE", standin.api_url)
    client = Bot()
    await client.login(standin.token)
    runner = asyncio.ensure_future(client.connect(reconnect=False))
    await client.wait_until_ready()
    await client.tree.sync()
    yield client
    await client.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner, 5)


async def test_sync_keeps_what_was_synced_and_a_resync_keeps_ids(standin: Standin, bot: Bot) -> None:
    names = {(c["name"], c["type"]) for c in standin.app_commands.listed(None)}
    assert names == {("echo", 1), ("slow", 1), ("late", 1), ("box", 1), ("Shout", 3)}
    fetched = await bot.tree.fetch_commands()
    assert {c.name for c in fetched} == {"echo", "slow", "late", "box", "Shout"}
    ids = {c.name: c.id for c in fetched}
    again = await bot.tree.sync()
    assert {c.name: c.id for c in again} == ids
    guild = discord.Object(standin.default_world().guild.id)
    assert await bot.tree.fetch_commands(guild=guild) == []


async def test_slash_command_options_are_typed_and_members_resolved(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    interaction = await standin.slash(world.member, world.general, "echo",
                                      {"text": "hi", "times": 2, "who": world.dj})
    answer = await standin.wait_for_answer(interaction)
    assert answer.content == "hi hi" and not answer.ephemeral
    text, times, who = bot.seen[-1]
    assert (text, times) == ("hi", 2)
    assert isinstance(who, discord.Member) and who.id == world.dj.id


async def test_subcommand_with_a_channel_option(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    interaction = await standin.slash(world.member, world.general, "box open", {"where": world.general})
    assert (await standin.wait_for_answer(interaction)).content == "opened in general"
    assert bot.seen[-1] == ("open", world.general.id)


async def test_unsynced_command_or_option_cannot_be_used(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    with pytest.raises(ValueError, match="no synced command"):
        await standin.slash(world.member, world.general, "nothing")
    with pytest.raises(ValueError, match="no option"):
        await standin.slash(world.member, world.general, "echo", {"volume": 3})


async def test_ephemeral_answer_is_seen_by_the_invoker_only(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    interaction = await standin.slash(world.member, world.general, "echo", {"text": "psst", "private": True})
    answer = await standin.wait_for_answer(interaction)
    assert answer.ephemeral
    assert standin.seen_by(answer) is world.member


async def test_autocomplete_gets_at_most_25_choices(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    interaction = await standin.autocomplete(world.member, world.general, "echo", "text", "ab")
    choices = await standin.wait_for_choices(interaction)
    assert len(choices) == 25 and choices[0] == {"name": "ab 0", "value": "ab0"}
    assert interaction.responses[0]["type"] == 8


async def test_deferred_answer_then_followups_and_edit(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    interaction = await standin.slash(world.member, world.general, "slow", {"delay": 0.2})
    answer = await standin.wait_for_answer(interaction, lambda m: m.content == "done, edited")
    assert interaction.responses[0]["type"] == 5
    assert answer.edits[0]["content"] == "done after thinking"
    await standin.wait_until(lambda: interaction.followups, 5, "the followup")
    assert interaction.followups[0].content == "and a followup"


async def test_message_context_menu_gets_the_message(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    said = await standin.say(world.member, world.general, "hello there")
    interaction = await standin.message_command(world.dj, said, "Shout")
    assert (await standin.wait_for_answer(interaction)).content == "HELLO THERE"


async def test_first_answer_after_3_seconds_is_unknown_interaction(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    interaction = await standin.slash(world.member, world.general, "late")
    await standin.wait_until(lambda: bot.errors, 6, "the late answer's error")
    assert isinstance(bot.errors[0], discord.NotFound) and bot.errors[0].code == 10062
    assert interaction.late_callbacks == 1 and interaction.original is None


async def test_expired_token_is_unknown_webhook_and_unknown_interaction(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    interaction = await standin.slash(world.member, world.general, "echo", {"text": "x"})
    await standin.wait_for_answer(interaction)
    interaction.expire()
    base = f"{standin.api_url}/webhooks/{standin.application_id}/{interaction.token}"
    async with aiohttp.ClientSession() as http:
        async with http.patch(base + "/messages/@original", json={"content": "y"}) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10015
        async with http.post(base, json={"content": "y"}) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10015
        url = f"{standin.api_url}/interactions/{interaction.id}/{interaction.token}/callback"
        async with http.post(url, json={"type": 4, "data": {"content": "y"}}) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10062


async def test_wrong_callback_type_for_the_interaction_is_refused(standin: Standin, bot: Bot) -> None:
    world = standin.default_world()
    interaction = Interaction(id=standin.ids.next(), token="t" * 20, member=world.member,
                              channel_id=world.general.id, kind=4)
    standin.interactions[interaction.id] = interaction
    url = f"{standin.api_url}/interactions/{interaction.id}/{interaction.token}/callback"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"type": 4, "data": {"content": "no"}}) as resp:
            assert resp.status == 400
        too_many = [{"name": str(i), "value": str(i)} for i in range(26)]
        async with http.post(url, json={"type": 8, "data": {"choices": too_many}}) as resp:
            assert resp.status == 400
    assert interaction.choices is None

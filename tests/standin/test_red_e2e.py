"""A real, unmodified Red bot (subprocess, standin.run_red) against the stand-in: login, commands,
owner rights, voice join through the stand-in's voice server, and the gateway/REST faults.

One Red per module (it takes ~3 s to start); tests run in file order and the restart test is last.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio

from standin import Standin
from tests.support.redbot import RedInstance, RedProcess, bot_cmd

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def standin():
    s = Standin()
    await s.start()
    s.default_world()
    yield s
    await s.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def red(standin: Standin, tmp_path_factory: pytest.TempPathFactory):
    # --dev gives `[p]eval`, the only way to make a core-only Red join voice
    instance = RedInstance.create(tmp_path_factory.mktemp("red"))
    bot = RedProcess(standin, instance, extra_args=["--no-cogs", "--dev"])
    await bot.start()
    yield bot
    code = await bot.stop()
    assert code == 0, bot.log_tail()


@pytest.fixture(autouse=True)
def no_faults_left(standin: Standin):
    yield
    standin.clear_faults()


async def test_red_logs_in_and_answers_ping(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    reply = await bot_cmd(standin, world.member, "!ping")
    assert reply.content == "Pong."
    assert reply.channel_id == world.general.id
    routes = [r.route for r in standin.requests]
    assert routes[:3] == ["GET /users/@me", "GET /oauth2/applications/@me", "GET /gateway/bot"]
    assert standin.unknown_routes == []


async def test_owner_can_run_owner_commands_and_others_cannot(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    reply = await bot_cmd(standin, world.owner, "!load downloader", timeout=30)
    assert reply.content == "Loaded `downloader`."

    # Red answers a non-owner's owner command with silence (NotOwner is not reported)
    said = await standin.say(world.admin, world.general, "!unload downloader")
    with pytest.raises(TimeoutError):
        await standin.wait_for_message(world.general, after=said, timeout=1.5)


async def test_bot_joins_and_leaves_voice_through_the_voice_server(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    await standin.join_voice(world.owner, world.music)
    await bot_cmd(standin, world.owner, "!eval await ctx.author.voice.channel.connect(); return 'joined'",
                  timeout=30)
    assert standin.bot_voice_channel(world.guild) is world.music
    # the TLS voice websocket and UDP are up: discord.py trusted the stand-in's CA (run_red)
    await standin.voice.wait_connected(world.guild.id, timeout=10)

    await bot_cmd(standin, world.owner, "!eval await ctx.voice_client.disconnect(); return 'left'")
    await standin.wait_for_bot_voice(world.guild, None)
    await standin.leave_voice(world.owner)
    assert standin.unknown_routes == []


REACTION_MENU = """!eval
from redbot.core.utils.menus import menu
asyncio.create_task(menu(ctx, ["page one", "page two"]))
"""

BUTTON_VIEW = """!eval
class Panel(discord.ui.View):
    @discord.ui.button(label="Skip", custom_id="skip")
    async def skip(self, interaction, button):
        await interaction.response.edit_message(content="skipped by " + interaction.user.name)
await ctx.send("now playing", view=Panel())
"""


async def test_reaction_menu_turns_pages_when_a_member_reacts(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    page = await bot_cmd(standin, world.owner, REACTION_MENU, predicate=lambda m: m.content == "page one")
    forward = "\N{BLACK RIGHTWARDS ARROW}\N{VARIATION SELECTOR-16}"
    await standin.wait_for_reaction(page, forward)  # Red adds its controls as reactions
    await standin.react(world.owner, page, forward)
    await standin.wait_for_edit(page, lambda m: m.content == "page two")


async def test_button_click_reaches_the_view_and_its_answer_is_recorded(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    panel = await bot_cmd(standin, world.owner, BUTTON_VIEW, predicate=lambda m: m.content == "now playing")
    assert panel.components[0]["components"][0]["custom_id"] == "skip"
    interaction = await standin.click(world.dj, panel, label="Skip")
    response = await standin.wait_for_interaction_response(interaction)
    assert response["type"] == 7  # UPDATE_MESSAGE
    assert panel.content == "skipped by dj" and panel.edits[0]["content"] == "now playing"
    assert standin.unknown_routes == []


async def test_dropped_gateway_resumes_and_missed_command_is_answered(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    identifies = standin.gateway.identify_count
    resumes = standin.gateway.resume_count
    assert await standin.drop_gateway() == 1
    # said while the bot is disconnected: delivered when it RESUMEs (replayed from the backlog)
    said = await standin.say(world.member, world.general, "!ping")
    await standin.wait_for_resume(resumes + 1, timeout=30)
    reply = await standin.wait_for_message(world.general, after=said, timeout=15)
    assert reply.content == "Pong."
    assert standin.gateway.identify_count == identifies  # resumed, not a new session
    assert (await bot_cmd(standin, world.member, "!ping")).content == "Pong."


async def test_slow_rest_delays_the_reply_but_it_arrives(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    with standin.delay_rest(1.5, "POST /channels/*/messages") as fault:
        started = time.monotonic()
        reply = await bot_cmd(standin, world.member, "!ping", timeout=15)
        elapsed = time.monotonic() - started
    assert reply.content == "Pong."
    assert fault.hits == 1 and elapsed >= 1.5


async def test_rate_limited_send_is_retried_after_retry_after(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    fault = standin.rate_limit("POST /channels/*/messages", retry_after=1.0, times=1)
    first = len(standin.requests)
    started = time.monotonic()
    reply = await bot_cmd(standin, world.member, "!ping", timeout=15)
    elapsed = time.monotonic() - started
    assert reply.content == "Pong."
    sends = [r for r in standin.requests[first:] if r.route.startswith("POST /channels/")
             and r.route.endswith("/messages")]
    assert [r.status for r in sends] == [429, 200]  # discord.py waited, then retried once
    assert sends[1].started - sends[0].started >= 1.0
    assert fault.hits == 1 and elapsed >= 1.0


async def test_settings_survive_a_restart_on_the_same_data_dir(standin: Standin, red: RedProcess) -> None:
    world = standin.default_world()
    reply = await bot_cmd(standin, world.owner, "!set serverprefix $ !")
    assert "prefix" in reply.content.lower() and "set" in reply.content.lower()
    await red.restart()
    assert (await bot_cmd(standin, world.member, "$ping")).content == "Pong."
    assert red.returncode is None
    await asyncio.sleep(0)  # the module fixture stops Red and checks its exit code

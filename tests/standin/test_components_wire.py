"""Components on the stand-in, spoken to directly (no bot): a button click and a select-menu
choice reach the gateway as INTERACTION_CREATE, and the answers (callback types 4, 6, 7 and a
followup) are recorded: ephemeral ones with the one member who saw them, an edit that removes
the components leaves none."""

from __future__ import annotations

from standin import Standin
from tests.standin.test_gateway_rest import api, http, identify, standin  # noqa: F401 (fixtures)

ROWS = [
    {"type": 1, "components": [{"type": 2, "style": 1, "label": "Skip", "custom_id": "np:skip"}]},
    {"type": 1, "components": [{"type": 3, "custom_id": "pick", "options": [
        {"label": "one", "value": "0"}, {"label": "two", "value": "1"}]}]},
]


async def post_panel(standin: Standin, http) -> int:  # noqa: F811
    world = standin.default_world()
    status, msg, _ = await api(http, standin, "POST", f"/channels/{world.general.id}/messages",
                               json={"content": "now playing", "components": ROWS})
    assert status == 200
    return int(msg["id"])


async def callback(standin: Standin, http, interaction, body: dict) -> int:  # noqa: F811
    status, _, _ = await api(http, standin, "POST", f"/interactions/{interaction.id}/{interaction.token}/callback",
                             json=body)
    return status


async def test_a_select_choice_reaches_the_gateway_with_its_values(standin: Standin, http) -> None:  # noqa: F811
    world = standin.default_world()
    gw, _ = await identify(http, standin)
    panel = standin.messages[await post_panel(standin, http)]
    interaction = await standin.click(world.member, panel, "pick", values=["1"])
    frame = await gw.recv_dispatch("INTERACTION_CREATE")
    data = frame["d"]["data"]
    assert (data["custom_id"], data["component_type"], data["values"]) == ("pick", 3, ["1"])
    assert frame["d"]["member"]["user"]["id"] == str(world.member.id)
    assert await callback(standin, http, interaction, {"type": 6}) == 204
    assert (await standin.wait_for_interaction_response(interaction))["type"] == 6
    await gw.ws.close()


async def test_ephemeral_answers_are_seen_by_the_clicker_alone(standin: Standin, http) -> None:  # noqa: F811
    world = standin.default_world()
    panel = standin.messages[await post_panel(standin, http)]
    mark = standin.marker()
    clicked = await standin.click(world.member, panel, "np:skip")
    assert await callback(standin, http, clicked, {"type": 4, "data": {"content": "Vote counted", "flags": 64}}) == 204
    private = await standin.wait_for_answer(clicked)
    assert private.ephemeral and standin.seen_by(private) is world.member
    assert standin.private_answers(world.member, after=mark) == [private]
    assert standin.private_answers(world.dj, after=mark) == []
    # deferred, then a followup for the clicker only
    deferred = await standin.click(world.dj, panel, "np:skip")
    assert await callback(standin, http, deferred, {"type": 6}) == 204
    status, _, _ = await api(http, standin, "POST", f"/webhooks/{standin.application_id}/{deferred.token}",
                             json={"content": "Already skipping", "flags": 64})
    assert status == 200
    followup = await standin.wait_for_answer(deferred)
    assert followup.content == "Already skipping" and standin.seen_by(followup) is world.dj
    # a public answer is seen by everyone
    public = await standin.click(world.dj, panel, "np:skip")
    assert await callback(standin, http, public, {"type": 4, "data": {"content": "dj skipped"}}) == 204
    assert standin.seen_by(await standin.wait_for_answer(public)) is None


async def test_an_update_can_remove_the_components(standin: Standin, http) -> None:  # noqa: F811
    world = standin.default_world()
    panel = standin.messages[await post_panel(standin, http)]
    clicked = await standin.click(world.dj, panel, "np:skip")
    assert await callback(standin, http, clicked, {"type": 7, "data": {"content": "stopped", "components": []}}) == 204
    assert await standin.wait_for_answer(clicked) is panel
    assert panel.content == "stopped" and panel.components == [] and panel.edits[0]["components"] == ROWS
    # a second answer to the same interaction is refused, like Discord
    assert await callback(standin, http, clicked, {"type": 6}) == 400

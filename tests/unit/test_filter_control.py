"""The filter, equalizer and normalisation intents (music/control/filters.py) on the player's
fakes: what they store, what they ask of the player, and their refusals (which change nothing)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from music.control import Actor, ControlError, MusicControl
from music.control.filters import server_chain
from music.engine.filters import EQ_PRESETS, FLAT, MAX_SAVED_PRESETS, NIGHTCORE, FilterChain
from music.player import PlayerState
from music.player import events as ev
from tests.support.fakeplayer import GUILD, make_rig, tracks

DJ = Actor(user_id=1, privileged=True)
LISTENER = Actor(user_id=2)
ADMIN = Actor(user_id=3, privileged=True, moderator=True, admin=True)


class Store:
    """The settings the intents read and write (store.MusicStore's, in memory)."""

    def __init__(self, **settings: Any) -> None:
        self.settings: dict[int, SimpleNamespace] = {}
        self.defaults = dict(dj_role=None, filters={}, normalize=False, eq_presets={})
        self.defaults.update(settings)
        self.globals = SimpleNamespace(filter_limit=0)
        self.writes: list[tuple[int, str, Any]] = []

    def guild(self, guild_id: int) -> SimpleNamespace:
        if guild_id not in self.settings:
            self.settings[guild_id] = SimpleNamespace(**self.defaults)
        return self.settings[guild_id]

    async def set_guild(self, guild_id: int, name: str, value: Any) -> None:
        self.writes.append((guild_id, name, value))
        setattr(self.guild(guild_id), name, value)


def control_for(**settings: Any):
    rig = make_rig()
    store = Store(**settings)
    return rig, MusicControl(rig.manager, store, SimpleNamespace()), store  # type: ignore[arg-type]


def playing_player(control: MusicControl, guild_id: int = GUILD):
    player = control.player(guild_id)
    player.queue.add(tracks("a"))
    player.queue.advance()
    player.state = PlayerState.PLAYING
    return player


def posted(rig) -> list[ev.PlayerEvent]:
    events = []
    while not rig.manager.events.empty():
        events.append(rig.manager.events.get_nowait())
    return events


async def test_a_filter_is_stored_for_the_server_and_heard_through_the_player():
    rig, control, store = control_for()
    playing_player(control)
    chain = await control.filters.set_filter(GUILD, DJ, "nightcore")
    assert chain.timescale == NIGHTCORE
    assert server_chain(store.guild(GUILD)) == chain  # what a reload or a restart starts with
    assert posted(rig) == [ev.SetFilters(GUILD, chain)]


async def test_filters_set_while_nothing_plays_go_straight_to_the_player():
    rig, control, _ = control_for()
    chain = await control.filters.set_filter(GUILD, DJ, "8d", "0.5")
    assert control.player(GUILD).filters == chain and chain.rotation == 0.5
    assert posted(rig) == []


async def test_several_filters_at_once_and_off_keeps_the_equalizer():
    rig, control, store = control_for()
    await control.filters.load_preset(GUILD, DJ, "bassboost")
    await control.filters.set_filter(GUILD, DJ, "nightcore")
    chain = await control.filters.set_filter(GUILD, DJ, "tremolo", "3")
    assert chain.effect_names() == ["nightcore", "tremolo 3 Hz"]
    chain = await control.filters.set_filter(GUILD, DJ, "tremolo", "off")
    assert chain.effect_names() == ["nightcore"]
    chain = await control.filters.set_filter(GUILD, DJ, "off")
    assert not chain.has_effects and chain.eq == EQ_PRESETS["bassboost"]


async def test_a_bad_filter_is_refused_and_nothing_changes():
    rig, control, store = control_for()
    playing_player(control)
    with pytest.raises(ControlError, match="Speed takes a number from 0.5 to 2"):
        await control.filters.set_filter(GUILD, DJ, "speed", "9")
    with pytest.raises(ControlError, match="no filter called `echo`"):
        await control.filters.set_filter(GUILD, DJ, "echo")
    assert store.writes == [] and posted(rig) == []


async def test_only_djs_change_the_sound_when_a_dj_role_is_set():
    rig, control, store = control_for(dj_role=99)
    refusals = [
        control.filters.set_filter(GUILD, LISTENER, "nightcore"),
        control.filters.set_band(GUILD, LISTENER, "1", "0.2"),
        control.filters.save_preset(GUILD, LISTENER, "mine"),
    ]
    for refusal, action in zip(refusals, ("change the filters", "change the equalizer",
                                          "save equalizer presets")):
        with pytest.raises(ControlError, match=f"Only DJs can {action} here."):
            await refusal
    with pytest.raises(ControlError, match="Only admins"):
        await control.filters.set_normalize(GUILD, DJ, True)
    assert store.writes == []


async def test_a_band_by_number_or_frequency_and_a_gain_on_either_scale():
    rig, control, _ = control_for()
    assert await control.filters.set_band(GUILD, DJ, "3", "0.25") == (2, 0.25)
    index, gain = await control.filters.set_band(GUILD, DJ, "1khz", "+6db")
    assert index == 8 and gain == pytest.approx(0.249, abs=0.001)  # +6 dB is x1.995
    assert await control.filters.set_band(GUILD, DJ, "60", "-0.1") == (2, -0.1)  # nearest: 63 Hz
    with pytest.raises(ControlError, match="A gain is from -0.25 to 1.0"):
        await control.filters.set_band(GUILD, DJ, "1", "3")
    with pytest.raises(ControlError, match="The bands go from 25 Hz to 16 kHz"):
        await control.filters.set_band(GUILD, DJ, "90k", "0.1")
    assert control.filters.chain(GUILD).eq[2] == -0.1


async def test_presets_saved_loaded_listed_and_deleted():
    rig, control, store = control_for()
    await control.filters.set_band(GUILD, DJ, "2", "0.5")
    assert await control.filters.save_preset(GUILD, DJ, "Deep") == "deep"
    await control.filters.reset_eq(GUILD, DJ)
    assert control.filters.chain(GUILD).eq == FLAT
    gains = await control.filters.load_preset(GUILD, DJ, "deep")
    assert gains[1] == 0.5 and control.filters.chain(GUILD).eq[1] == 0.5
    assert list(control.filters.saved_presets(GUILD)) == ["deep"]
    with pytest.raises(ControlError, match="built-in preset"):
        await control.filters.save_preset(GUILD, DJ, "bassboost")
    with pytest.raises(ControlError, match="1-32 letters"):
        await control.filters.save_preset(GUILD, DJ, "no spaces!")
    with pytest.raises(ControlError, match="no equalizer preset called `nope`"):
        await control.filters.load_preset(GUILD, DJ, "nope")
    assert await control.filters.delete_preset(GUILD, DJ, "deep") == "deep"
    with pytest.raises(ControlError, match="no saved preset called `deep`"):
        await control.filters.delete_preset(GUILD, DJ, "deep")
    assert control.filters.saved_presets(GUILD) == {}


async def test_a_server_keeps_a_bounded_number_of_presets():
    rig, control, _ = control_for()
    for n in range(MAX_SAVED_PRESETS):
        await control.filters.save_preset(GUILD, DJ, f"p{n}")
    with pytest.raises(ControlError, match=f"{MAX_SAVED_PRESETS} saved presets"):
        await control.filters.save_preset(GUILD, DJ, "one-more")
    await control.filters.save_preset(GUILD, DJ, "p0")  # replacing one is fine


async def test_normalisation_is_part_of_the_chain_and_stored_on_its_own():
    rig, control, store = control_for()
    playing_player(control)
    await control.filters.set_normalize(GUILD, ADMIN, True)
    assert store.guild(GUILD).normalize is True and store.guild(GUILD).filters == {}
    assert posted(rig) == [ev.SetFilters(GUILD, FilterChain(normalize=True))]


async def test_the_owner_s_limit_on_servers_playing_through_filters():
    rig, control, store = control_for()
    store.globals.filter_limit = 1
    other = playing_player(control, guild_id=2)
    other.filters = FilterChain(karaoke=True)
    playing_player(control)
    with pytest.raises(ControlError, match="in use in 1 server already"):
        await control.filters.set_filter(GUILD, DJ, "nightcore")
    assert store.writes == []
    other.state = PlayerState.IDLE  # it stopped playing: its place is free
    await control.filters.set_filter(GUILD, DJ, "nightcore")
    other.state = PlayerState.PLAYING
    # a server already through filters may change them
    await control.filters.set_filter(GUILD, DJ, "vaporwave")
    store.globals.filter_limit = 0
    await control.filters.set_filter(GUILD, DJ, "karaoke")

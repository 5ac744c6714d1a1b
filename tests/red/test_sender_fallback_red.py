"""The cog on a discord.py whose VoiceClient._player the shared sender can't rely on (issue 14):
music.audio.voice_slot's check fails, the sender hands every playback to discord.py's public
vc.play (its real AudioPlayer thread, recording into tests/support/fakevoice.py), and two
tracks still play in order, each heard at its own pitch."""

from __future__ import annotations

import threading

from redbot.core.bot import Red

from music.audio import voice_slot
from music.player import PlayerState
from tests.red.test_cog_red import SECOND, allow_loopback, wait_for
from tests.support.audio_analysis import decode_opus_packets, dominant_frequency
from tests.support.redlevel import World, load_cog


async def test_two_tracks_play_in_order_through_vc_play_when_the_slot_check_fails(
    red: Red, media_server, monkeypatch, caplog,
) -> None:
    monkeypatch.setattr(voice_slot, "player_slot_problem", lambda *a, **k: "forced by the test")
    voice_slot.player_slot_usable.cache_clear()
    try:
        world = World(red)
        cog = await load_cog(red)
        assert not cog.manager.audio.sender.shared
        assert any("forced by the test" in r.getMessage() for r in caplog.records)
        await allow_loopback(cog)
        ctx = world.ctx()
        await cog.play(ctx, query=media_server.url("a440.webm"))
        assert "Playing" in ctx.last
        await cog.play(ctx, query=media_server.url("b880.webm"))
        vc = world.guild.voice_client
        player = cog.manager.players[world.guild.id]
        await wait_for(lambda: vc.is_playing(), timeout=5)
        assert any(t.name.startswith("audio-player") for t in threading.enumerate())
        assert not any(t.name.startswith("music-sender") for t in threading.enumerate())
        await wait_for(lambda: player.state is PlayerState.IDLE and len(vc.packets) > 250, timeout=15)
        pcm, bad = decode_opus_packets(vc.opus_packets())
        assert bad == 0
        assert abs(dominant_frequency(pcm[int(0.5 * SECOND) : int(2.5 * SECOND)]) - 440) < 5
        assert abs(dominant_frequency(pcm[int(3.5 * SECOND) : int(5.5 * SECOND)]) - 880) < 5
        assert [t.title for t in player.queue.history][-2:] == ["a440", "b880"]
        await red.remove_cog("Music")
    finally:
        voice_slot.player_slot_usable.cache_clear()

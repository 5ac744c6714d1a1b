"""Running ``load_worker`` processes from the parent: open their voice sessions in the stand-in
process, hand over the tokens, collect the worker's figures and the receiver's timing."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from .botside import new_session_id
from .common import REPO_ROOT

#: guild ids of load workers start here (the single-guild rows use 1001)
FIRST_LOAD_GUILD_ID = 100_000
_next_guild = FIRST_LOAD_GUILD_ID


async def run_worker(bench: Any, *, method: str, mode: str, url: str, guilds: int,
                     warmup: float, seconds: float, idle_seconds: float = 1.0,
                     measure_memory: bool = True, timing_only: bool = False,
                     sender_phases: int | None = None, encoder: str | None = None,
                     guard: bool = True, packet_path: str = "writer",
                     step_profile: bool = False) -> dict[str, Any]:
    """Run one configuration in a fresh process; returns the worker's result plus ``timing``
    (inter-arrival statistics at the receiver over the measuring window). ``method``: "ours",
    "baseline" (FFmpegOpusAudio) or "pcm" (FFmpegPCMAudio + PCMVolumeTransformer); ``encoder``:
    libopus loss settings for every transcode (botside.ENCODER_SETTINGS; None = each its own);
    ``guard``: ours' streams through the network guard, as the cog's always are;
    ``packet_path``: "writer" (the sender's own packet step) or "discord" (send_audio_packet);
    ``step_profile``: time the sender's per-packet steps (costs about 1 us a call)."""
    global _next_guild
    ids = list(range(_next_guild, _next_guild + 10 * guilds, 10))  # channel id = guild id + 1
    _next_guild += 10 * guilds
    sessions = []
    for guild_id in ids:
        session_id = new_session_id()
        token = await bench.standin.call("open_session", guild_id=guild_id, user_id=3003,
                                         session_id=session_id, timing_only=timing_only)
        sessions.append({"guild_id": guild_id, "session_id": session_id, "token": token})
    config = {"method": method, "mode": mode, "url": url, "ffmpeg": bench.ffmpeg,
              "endpoint": bench.standin.endpoint, "ca_file": bench.standin.ca_file,
              "guilds": sessions, "warmup": warmup, "seconds": seconds,
              "idle_seconds": idle_seconds, "measure_memory": measure_memory,
              "sender_phases": sender_phases, "encoder": encoder, "guard": guard,
              "packet_path": packet_path, "step_profile": step_profile}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.load_worker", cwd=str(REPO_ROOT),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(config).encode()),
                                          warmup + seconds + 60 + guilds * 0.5)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"load worker ({method} {mode}, {guilds} guilds) timed out") from None
    finally:
        for guild_id in ids:
            await bench.standin.call("close_session", guild_id=guild_id)
    if proc.returncode != 0 or not out.strip():
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"load worker failed ({proc.returncode}): {' | '.join(tail)}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    since, until = result["window"]
    result["timing"] = await bench.standin.call("timing", guild_ids=ids, since=since, until=until)
    await bench.standin.call("clear", guild_ids=ids)  # free the receiver's memory
    return result

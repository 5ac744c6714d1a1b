"""The stand-in's voice server and a media HTTP server in their own process, for the benchmarks.

Receiving packets (UDP reads, decryption, Opus decoding for analysis) then costs the measured bot
process nothing and cannot delay its audio threads through the GIL. Driven over stdin/stdout with
one JSON object per line: requests ``{"id", "op", ...args}``, answers ``{"id", "result"}`` or
``{"id", "error"}``. The first line written is ``{"endpoint", "ca_file", "media_base",
"media_base_https", ...}``: the media are served over http and over https, the latter with the
voice server's self-signed certificate (``ca_file``, SAN 127.0.0.1), which a client must trust to
verify it.

Run by ``benchmarks.common.StandinProcess``; not meant to be started by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from standin import analysis, listener, schedule
from standin.loss import LossModel
from standin.voice import OGG_HEADER_MAGICS, RTP_HEADER_SIZE, ReceivedPacket, VoiceServer

from . import soak_receiver

# Discord clients decode this 3-byte Opus frame as 20 ms of silence (discord.opus.OPUS_SILENCE).
OPUS_SILENCE = b"\xf8\xff\xfe"
LATE_SECONDS = 0.040
#: a large UDP receive buffer, so a moment without CPU for this process does not drop datagrams
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024


class TimingVoiceServer(VoiceServer):
    """The stand-in's voice server, able to skip decryption for guilds whose audio content is not
    needed (the load rows only time packets): a 150-guild load is 7,500 datagrams a second, and
    decrypting them all in Python would make the receiver, not the bot, the bottleneck."""

    def __init__(self) -> None:
        super().__init__()
        self.timing_only: set[int] = set()
        #: datagrams the kernel dropped because this socket's receive buffer was full (SO_RXQ_OVFL,
        #: cumulative): lost at the receiver, not by the bot; None when not counted
        self.receiver_drops: int | None = None

    def _on_datagram(self, data: bytes, addr: tuple[str, int], arrival: float) -> None:
        if self.timing_only and len(data) >= RTP_HEADER_SIZE and data[0] & 0xC0 == 0x80:
            sequence, timestamp, ssrc = struct.unpack_from(">HII", data, 2)
            conn = self._by_ssrc.get(ssrc)
            if conn is not None and conn.mode is not None and conn.session.guild_id in self.timing_only:
                conn.session.audio.packets.append(ReceivedPacket(arrival, sequence, timestamp, ssrc, b""))
                return
        super()._on_datagram(data, addr, arrival)


def _decode_source(ffmpeg: str, path: str) -> np.ndarray:
    """A media file as interleaved stereo at 48 kHz, -1..1."""
    raw = subprocess.run([ffmpeg, "-v", "error", "-i", path, "-f", "s16le", "-ar", "48000",
                          "-ac", "2", "pipe:1"], capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(raw, dtype=np.int16).astype(np.float64) / 32768.0


def _listen_under_loss(packets: list[ReceivedPacket], models: list[list[Any]], seeds: int,
                       source: str, ffmpeg: str) -> dict[str, Any]:
    audio = [p for p in packets if p.opus != OPUS_SILENCE and p.opus[:8] not in OGG_HEADER_MAGICS]
    payloads = [p.opus for p in audio]
    lossless = np.concatenate(listener.decode_all(payloads)) if payloads else np.zeros(0)
    modes: dict[str, int] = {}
    for payload in payloads:
        mode = listener.opus_mode(payload)
        modes[mode] = modes.get(mode, 0) + 1
    heard = {}
    for kind, rate, mean_burst in models:
        model = LossModel(kind, rate, mean_burst)
        heard[model.label] = listener.listen_under_loss(payloads, model, range(seeds)).as_dict()
    return {
        "packets": len(payloads),
        "bytes_per_packet": float(np.mean([len(p) for p in payloads])) if payloads else 0.0,
        "modes": modes,
        "with_lbrr": sum(1 for p in payloads if listener.has_lbrr(p)),
        "sequence_gaps": analysis.sequence_gaps(audio),
        "lossless_vs_source_db": listener.aligned_snr_db(_decode_source(ffmpeg, source), lossless),
        "heard": heard,
    }


#: Linux's SO_TIMESTAMPNS / SCM_TIMESTAMPNS (Python's socket module does not name them)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ll")
#: Linux's SO_RXQ_OVFL: each datagram read carries how many the socket dropped so far (a full
#: receive buffer), so a gap in RTP sequence numbers can be told apart: receiver or sender
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
_DROP_COUNT = struct.Struct("@I")


def read_with_kernel_timestamps(voice: TimingVoiceServer, udp_socket: socket.socket) -> None:
    """Time each datagram by when the kernel received it, not by when this process read it.

    The receiver shares the 2 cores with the measured bot: a moment without CPU here would
    otherwise show up as a late packet for every guild at once (and the next ones as too
    early), although the bot sent them on time. asyncio's datagram transport reads one datagram
    per wake-up with recvfrom, which drops the kernel's timestamp; this reader replaces it,
    drains every queued datagram per wake-up with recvmsg and converts the timestamp
    (CLOCK_REALTIME) to time.monotonic(), the clock the bot's window is given in. It also
    reads the kernel's count of datagrams dropped at this socket (``voice.receiver_drops``)."""
    udp_socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    try:
        udp_socket.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        voice.receiver_drops = 0
    except OSError:
        pass  # not Linux: receiver drops stay uncounted (None)
    loop = asyncio.get_running_loop()
    fd = udp_socket.fileno()
    # the public remove_reader/add_reader refuse a descriptor a transport owns: the transport
    # stays (the voice server sends its IP discovery answers through it), only reading moves
    loop._remove_reader(fd)  # type: ignore[attr-defined]
    ancillary_size = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_DROP_COUNT.size)

    def read_ready() -> None:
        offset = time.time() - time.monotonic()
        while True:
            try:
                data, ancillary, _flags, addr = udp_socket.recvmsg(65536, ancillary_size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP port unreachable reported for an earlier send
            arrival = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                    arrival = seconds + nanoseconds / 1e9 - offset
                elif level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(payload) >= _DROP_COUNT.size:
                    voice.receiver_drops = _DROP_COUNT.unpack_from(payload)[0]
            voice._on_datagram(data, addr, time.monotonic() if arrival is None else arrival)

    loop._add_reader(fd, read_ready)  # type: ignore[attr-defined]


class Controller:
    def __init__(self, voice: TimingVoiceServer) -> None:
        self.voice = voice
        self._receiver_drops_before = voice.receiver_drops

    async def op_open_session(self, guild_id: int, user_id: int, session_id: str,
                              timing_only: bool = False) -> str:
        if timing_only:
            self.voice.timing_only.add(guild_id)
        return self.voice.open_session(guild_id, user_id, session_id)

    async def op_close_session(self, guild_id: int) -> None:
        self.voice.close_session(guild_id)
        self.voice.timing_only.discard(guild_id)

    async def op_clear(self, guild_ids: list[int]) -> None:
        for guild_id in guild_ids:
            self.voice.audio(guild_id).clear()

    async def op_connected(self, guild_ids: list[int]) -> int:
        return sum(1 for g in guild_ids if self.voice.is_connected(g))

    async def op_packets(self, guild_id: int, classify: bool = True) -> dict[str, Any]:
        """Every packet of a guild: [arrival, sequence, kind, frequency, is_silence_frame]."""
        audio = self.voice.audio(guild_id)
        if classify:
            infos = analysis.classify_packets(audio)
            rows = [[i.arrival, i.sequence, i.kind, round(i.frequency, 1),
                     audio.packets[i.index].opus == OPUS_SILENCE] for i in infos]
        else:
            rows = [[p.arrival, p.sequence, "", 0.0, p.opus == OPUS_SILENCE] for p in audio.packets]
        return {"packets": rows, "ogg_headers": audio.ogg_header_packets,
                "decrypt_failures": audio.decrypt_failures}

    async def op_listen_under_loss(self, guild_id: int, models: list[list[Any]], seeds: int,
                                   source: str, ffmpeg: str) -> dict[str, Any]:
        """The guild's received audio packets (no silence frames, no Ogg headers) as a listener
        hears them under each loss model ``[kind, rate, mean_burst]``, one pattern per seed, with
        what the encoder put in them and how close their lossless decode is to the ``source``
        file the bot played (decoded with ``ffmpeg``); see standin.listener."""
        packets = list(self.voice.audio(guild_id).packets)
        return await asyncio.to_thread(_listen_under_loss, packets, models, seeds, source, ffmpeg)

    async def op_timing(self, guild_ids: list[int], since: float, until: float) -> dict[str, Any]:
        """Inter-arrival statistics over the guilds' packets that arrived in [since, until], and
        their lateness against each guild's own schedule (``schedule``)."""
        diffs: list[np.ndarray] = []
        missing = packets = 0
        per_guild: list[schedule.GuildSchedule] = []
        for guild_id in guild_ids:
            received = self.voice.audio(guild_id).packets
            chosen = [p for p in received if since <= p.arrival <= until]
            packets += len(chosen)
            missing += analysis.sequence_gaps(chosen)
            if len(chosen) > 1:
                diffs.append(analysis.inter_arrival_times(chosen))
            # every packet: those just outside the window tell which ones crossed its edges
            per_guild.append(schedule.guild_schedule([p.arrival for p in received],
                                                     [p.sequence for p in received], since, until))
        all_diffs = np.concatenate(diffs) if diffs else np.zeros(0)
        if len(all_diffs) == 0:
            return {"packets": packets, "intervals": 0}
        late_moments = self._late_moments(guild_ids, since, until)
        return {
            "packets": packets,
            "intervals": int(len(all_diffs)),
            "p50_ms": float(np.median(all_diffs) * 1000),
            "p99_ms": float(np.percentile(all_diffs, 99) * 1000),
            "max_ms": float(all_diffs.max() * 1000),
            "late_share": float(np.mean(all_diffs > LATE_SECONDS)),
            "sequence_gaps": missing,
            # packets expected at 50/s per guild over the window vs received
            "expected": int(round((until - since) * 50 * len(guild_ids))),
            # moments (50 ms apart or more) at which some guild's packet came > 40 ms late, and
            # how many guilds each one hit: one moment hitting every guild is a stall of the
            # whole machine (or of this receiver), not of one guild's stream
            "late_moments": late_moments,
            # lateness against each guild's own 20 ms schedule (standin/schedule.py)
            "schedule": schedule.pooled_schedule(per_guild),
        }

    async def op_soak_window(self, guild_ids: list[int], since: float, until: float) -> dict[str, Any]:
        """The soak's figures over [since, until) (benchmarks/soak_receiver.py); the packets
        that arrived before ``until`` are then dropped: 100 guilds for 30 minutes would keep
        9 M packets in this process.

        Only taking the minute's packets out runs on the loop (one pass, tens of ms at 100
        guilds); summarising them (seconds) runs in a thread, so the loop keeps reading the
        socket (a summary on the loop let the receive buffer overflow: 1,423 packets lost in
        a 100-guild soak). ``receiver_drops``: datagrams the kernel dropped at this socket
        since the previous window (None: not counted), which the RTP gaps include."""
        chosen: dict[int, list[ReceivedPacket]] = {}
        for guild_id in guild_ids:
            packets = self.voice.audio(guild_id).packets
            chosen[guild_id] = [p for p in packets if since <= p.arrival < until]
            # no await between reading and replacing: no datagram is handled in between
            packets[:] = [p for p in packets if p.arrival >= until]
        drops = self.voice.receiver_drops
        before, self._receiver_drops_before = self._receiver_drops_before, drops
        summary = await asyncio.to_thread(soak_receiver.window_summary, chosen, since, until)
        summary["receiver_drops"] = (drops - before) % 2**32 if drops is not None and before is not None else None
        return summary

    def _late_moments(self, guild_ids: list[int], since: float, until: float) -> list[list[float]]:
        late: list[tuple[float, int]] = []
        for guild_id in guild_ids:
            arrivals = [p.arrival for p in self.voice.audio(guild_id).packets if since <= p.arrival <= until]
            late += [(b, guild_id) for a, b in zip(arrivals, arrivals[1:], strict=False) if b - a > LATE_SECONDS]
        moments: list[list[float]] = []  # [seconds into the window, guilds hit]
        for arrival, _guild in sorted(late):
            if moments and arrival - since - moments[-1][0] < 0.05:
                moments[-1][1] += 1
            else:
                moments.append([round(arrival - since, 3), 1])
        return moments


def paced_handler(root: Path):
    """Serve a file at real-time rate: ``lead`` seconds of audio at once, then ``seconds``-long
    media paced to its duration, with one pause of ``stall`` seconds after ``stall_at`` seconds
    of audio (a network stall in the middle of a track)."""

    files = {p.name: p for p in root.iterdir() if p.is_file()}  # the media exist before we start

    async def handle(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        data = await asyncio.to_thread(path.read_bytes)
        seconds = float(request.query["seconds"])
        lead = float(request.query.get("lead", "0.5"))
        stall_at = float(request.query.get("stall_at", "-1"))
        stall = float(request.query.get("stall", "0"))
        rate = len(data) / seconds  # bytes per second of audio
        response = web.StreamResponse(headers={"Content-Type": "audio/webm"})
        response.content_length = len(data)
        await response.prepare(request)
        sent = 0
        chunk = max(1, int(rate / 50))  # 20 ms of audio per write
        started = time.monotonic()
        stalled = stall <= 0
        while sent < len(data):
            audio_sent = sent / rate
            if not stalled and audio_sent >= stall_at:
                stalled = True
                await asyncio.sleep(stall)
                started += stall
            due = started + max(0.0, audio_sent - lead)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await response.write(data[sent : sent + chunk])
            sent += chunk
        await response.write_eof()
        return response

    return handle


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--media", required=True)
    args = parser.parse_args()
    root = Path(args.media)

    voice = TimingVoiceServer()
    await voice.start()
    assert voice._udp is not None and voice._udp.transport is not None
    udp_socket = voice._udp.transport.get_extra_info("socket")
    udp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
    udp_buffer = udp_socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # MUSIC_BENCH_ARRIVAL=read keeps the old clock (when this process read the datagram), to
    # compare the two measurements
    kernel_clock = os.environ.get("MUSIC_BENCH_ARRIVAL", "kernel") != "read"
    if kernel_clock:
        # the transport's own socket: the wrapper get_extra_info() gives refuses recvmsg
        read_with_kernel_timestamps(voice, voice._udp.transport._sock)  # type: ignore[attr-defined]
    app = web.Application()
    app.router.add_static("/media/", str(root), show_index=False)
    app.router.add_get("/paced/{name}", paced_handler(root))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    # the same routes over https, with the voice server's certificate (its own CA)
    https_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=voice.server_ssl_context())
    await https_site.start()
    https_port = https_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    out = sys.stdout
    out.write(json.dumps({"endpoint": voice.endpoint, "ca_file": voice.ca_file,
                          "media_base": f"http://127.0.0.1:{port}",
                          "media_base_https": f"https://127.0.0.1:{https_port}",
                          "udp_receive_buffer": udp_buffer,
                          "arrival_clock": "kernel receive timestamps (SO_TIMESTAMPNS)"
                          if kernel_clock else "when the stand-in read the datagram"}) + "\n")
    out.flush()

    controller = Controller(voice)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(request: dict[str, Any]) -> None:
        request_id = request.pop("id")
        op = request.pop("op")
        try:
            result = await getattr(controller, f"op_{op}")(**request)
            line = {"id": request_id, "result": result}
        except Exception as exc:  # the caller gets the message instead of a hang
            line = {"id": request_id, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(line) + "\n")
        out.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        task = asyncio.create_task(answer(json.loads(line)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await runner.cleanup()
    await voice.stop()


if __name__ == "__main__":
    # This process is the measuring instrument: a garbage collection pass over the packets it
    # records (7,500 a second at 150 guilds) would stamp a whole batch of arrivals late at once
    # and show up as every guild's packets being late. Nothing it keeps forms cycles.
    gc.disable()
    asyncio.run(main())

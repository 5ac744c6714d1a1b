"""What a listener hears when some received Opus packets are lost, against the lossless decode.

A Discord client decodes with libopus: a lost packet whose NEXT packet arrived can be rebuilt
from that packet's in-band FEC (the SILK layer's LBRR copy of the previous frame, ``opus_decode``
with ``decode_fec=1``); otherwise, or when the next packet carries no LBRR data, libopus conceals
the gap (packet-loss concealment: it extrapolates from what it decoded last). The lossy decode is
compared frame by frame (20 ms, stereo) with the decode of every packet by a second decoder.

* lost: packets the loss pattern dropped;
* FEC decoded: lost frames rebuilt from the next packet's LBRR data (it had some);
* recovered: FEC decoded frames within :data:`CLOSE_SNR_DB` of the lossless frame;
* concealed: the other lost frames (concealment, or FEC data too poor to count as recovered);
* damaged: frames of the whole decode, lost or not, further than :data:`CLOSE_SNR_DB` from the
  lossless frame (after a loss the decoder's state differs, so the next frames can suffer too);
* SNR: lossless signal energy over the energy of the difference, in dB, over the whole decode.

libopus comes through discord.py (``discord.opus``), the library the bot sends with.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import discord.opus
import numpy as np

from standin.loss import LossModel

#: a rebuilt frame is "recovered" when its error is at least this far under the lossless frame's
#: energy: 10 dB = the error carries a tenth of the frame's energy, an audible but unbroken sound;
#: concealment of anything but a steady tone falls far below it
CLOSE_SNR_DB = 10.0
#: frames (and errors) under this RMS, on a -1..1 scale, are silence: -60 dBFS
SILENCE_RMS = 1e-3
SAMPLES_PER_FRAME = 960  # 20 ms at 48 kHz, per channel
CHANNELS = 2


def _libopus() -> ctypes.CDLL:
    """The libopus discord.py loaded (loading it if needed): its Decoder has no LBRR query."""
    if not discord.opus.is_loaded() and not discord.opus._load_default():
        raise RuntimeError("libopus is not available to discord.py")
    lib = discord.opus._lib
    if not getattr(lib.opus_packet_parse, "argtypes", None):
        lib.opus_packet_parse.argtypes = [
            ctypes.c_char_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_ubyte),
            ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int16),
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.opus_packet_parse.restype = ctypes.c_int
    return lib


def opus_mode(packet: bytes) -> str:
    """The coding mode the packet's TOC byte names (RFC 6716 3.1): "silk", "hybrid" or "celt"."""
    config = packet[0] >> 3
    return "silk" if config < 12 else "hybrid" if config < 16 else "celt"


def has_lbrr(packet: bytes) -> bool:
    """Whether the packet's first frame carries SILK LBRR (in-band FEC) data for the frame before.

    The SILK header starts the first frame: per channel, one VAD flag per 20 ms SILK frame and
    then the LBRR flag (RFC 6716 4.2.3), each an even-odds range-coded bit, which is the plain
    bit at that position of the first byte (the check WebRTC's ``WebRtcOpus_PacketHasFec``
    makes). CELT-only packets have no SILK layer, so no FEC."""
    if len(packet) < 2 or opus_mode(packet) == "celt":
        return False
    lib = _libopus()
    samples = lib.opus_packet_get_samples_per_frame(packet, 48000)
    silk_frames = {480: 1, 960: 1, 1920: 2, 2880: 3}.get(samples)
    if silk_frames is None:
        return False
    frames = (ctypes.c_void_p * 48)()
    sizes = (ctypes.c_int16 * 48)()
    parsed = lib.opus_packet_parse(packet, len(packet), None, frames, sizes, None)
    if parsed < 1 or sizes[0] <= 1 or frames[0] is None:
        return False
    first = ctypes.string_at(frames[0], 1)[0]
    channels = lib.opus_packet_get_nb_channels(packet)
    return any(first & (0x80 >> ((n + 1) * (silk_frames + 1) - 1)) for n in range(channels))


@dataclass
class Heard:
    """What a listener lost, over one or more loss patterns (the counts add up)."""

    frames: int = 0
    lost: int = 0
    fec_decoded: int = 0
    recovered: int = 0
    concealed: int = 0
    damaged: int = 0
    signal_energy: float = 0.0
    error_energy: float = 0.0

    @property
    def snr_db(self) -> float:
        """Whole-decode SNR against the lossless decode (inf when identical)."""
        if self.error_energy <= 0.0:
            return math.inf
        return 10.0 * math.log10(max(self.signal_energy, 1e-20) / self.error_energy)

    def __add__(self, other: Heard) -> Heard:
        return Heard(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, float]:
        figures = {f.name: getattr(self, f.name) for f in fields(self)}
        figures["snr_db"] = self.snr_db
        return figures


def _pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.int16).astype(np.float64) / 32768.0


def decode_all(packets: Sequence[bytes]) -> list[np.ndarray]:
    """Every packet decoded in order by one decoder: what a listener without loss hears."""
    decoder = discord.opus.Decoder()
    return [_pcm(decoder.decode(packet, fec=False)) for packet in packets]


def _frame_is_close(reference: np.ndarray, heard: np.ndarray) -> bool:
    if len(reference) != len(heard):
        return False
    error = float(np.sum((reference - heard) ** 2))
    energy = float(np.sum(reference ** 2))
    if math.sqrt(error / max(len(reference), 1)) < SILENCE_RMS:
        return True  # an error under the silence level is inaudible whatever the frame holds
    return error > 0 and 10.0 * math.log10(max(energy, 1e-20) / error) >= CLOSE_SNR_DB


def listen(packets: Sequence[bytes], lost: Sequence[bool],
           lossless: Sequence[np.ndarray] | None = None) -> Heard:
    """Decode ``packets`` as a listener who never got those marked in ``lost``, using in-band FEC
    where the next packet arrived, and compare with the lossless decode (``lossless``, if given,
    is :func:`decode_all` of the same packets)."""
    reference = list(lossless) if lossless is not None else decode_all(packets)
    decoder = discord.opus.Decoder()
    heard = Heard(frames=len(packets))
    for index, packet in enumerate(packets):
        following = packets[index + 1] if index + 1 < len(packets) and not lost[index + 1] else None
        if not lost[index]:
            frame = _pcm(decoder.decode(packet, fec=False))
        elif following is not None and has_lbrr(following):
            frame = _pcm(decoder.decode(following, fec=True))
            heard.fec_decoded += 1
        else:
            frame = _pcm(decoder.decode(None, fec=False))  # concealment
        close = _frame_is_close(reference[index], frame)
        if lost[index]:
            heard.lost += 1
            recovered = close and following is not None and has_lbrr(following)
            heard.recovered += recovered
            heard.concealed += not recovered
        heard.damaged += not close
        heard.signal_energy += float(np.sum(reference[index] ** 2))
        length = min(len(frame), len(reference[index]))
        difference = reference[index][:length] - frame[:length]
        heard.error_energy += float(np.sum(difference ** 2) + np.sum(reference[index][length:] ** 2))
    return heard


def listen_under_loss(packets: Sequence[bytes], model: LossModel, seeds: Sequence[int]) -> Heard:
    """:func:`listen` summed over one loss pattern per seed (each as long as ``packets``)."""
    lossless = decode_all(packets)
    total = Heard()
    for seed in seeds:
        total += listen(packets, model.pattern(len(packets), seed), lossless)
    return total


def aligned_snr_db(source: np.ndarray, decoded: np.ndarray, max_lag: int = 4800) -> float:
    """SNR in dB of ``decoded`` against ``source`` (both interleaved stereo at 48 kHz, -1..1),
    after delaying the source by the lag in [0, ``max_lag``] samples that correlates best (the
    encoder's look-ahead and the decoders' delays). A waveform figure: a rough measure for a
    perceptual codec, but the same yardstick for two encoder settings on the same input."""
    source_frames, decoded_frames = source.reshape(-1, CHANNELS), decoded.reshape(-1, CHANNELS)
    compared = min(len(source_frames), len(decoded_frames) - max_lag)
    if compared <= 0:
        return math.nan
    mono_source = source_frames[:compared].mean(axis=1)
    mono_decoded = decoded_frames[: compared + max_lag].mean(axis=1)
    size = 1 << int(math.ceil(math.log2(compared + max_lag + 1)))
    # cross-correlation by FFT: correlation[lag] = sum(decoded[lag + i] * source[i])
    correlation = np.fft.irfft(np.fft.rfft(mono_decoded, size) * np.conj(np.fft.rfft(mono_source, size)), size)
    lag = int(np.argmax(correlation[: max_lag + 1]))
    reference = source_frames[:compared]
    error = float(np.sum((reference - decoded_frames[lag : lag + compared]) ** 2))
    energy = float(np.sum(reference ** 2))
    return math.inf if error == 0 else 10.0 * math.log10(max(energy, 1e-20) / error)


__all__ = [
    "CLOSE_SNR_DB",
    "aligned_snr_db",
    "Heard",
    "decode_all",
    "has_lbrr",
    "listen",
    "listen_under_loss",
    "opus_mode",
]

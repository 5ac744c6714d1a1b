"""A FilterChain (music.engine.filters) as ffmpeg's audio filter graph (``-af``).

Only numbers go into the graph, formatted here from a chain whose every value was validated
into its range when the chain was made: no member text, no name that ffmpeg would open.
The graph first brings any input to 48 kHz stereo, so the timescale's sample-rate trick and the
stereo effects work on a known format.
"""

from __future__ import annotations

import math

from ..engine.filters import EQ_BANDS, FilterChain, gain_to_db
from ..i18n import _

SAMPLE_RATE = 48000
#: Each band's width in octaves: the bands are 2/3 octave apart, so neighbours meet at about
#: half their gain and a run of equal gains stays close to flat.
EQ_WIDTH_OCTAVES = 0.67
#: Loudness normalisation (EBU R128, ffmpeg's `loudnorm` in its one-pass dynamic mode): the
#: level YouTube and Spotify play at, true peaks under -1 dBFS. It looks 3 s ahead, so the
#: first packet comes ~0.1 s later than without it (from a file or a fast server).
LOUDNORM = "loudnorm=I=-14:TP=-1:LRA=11"
#: Karaoke: the centre (what is the same in both channels: most lead vocals) down by 30 dB.
KARAOKE = "stereotools=mlev=0.03"
TREMOLO_DEPTH = 0.5
VIBRATO_DEPTH = 0.5


def filter_graph(chain: FilterChain | None, volume: int = 100) -> str | None:
    """The ``-af`` value for ``chain`` with ``volume`` (percent) on top; None when there is
    nothing to do."""
    if volume < 0:
        raise ValueError(_("The volume cannot be negative."))
    parts: list[str] = []
    if chain is not None and not chain.is_flat:
        parts.append(f"aformat=sample_rates={SAMPLE_RATE}:channel_layouts=stereo")
        if chain.normalize:
            # loudnorm works at 192 kHz: back to 48 kHz before anything else runs
            parts += [LOUDNORM, f"aresample={SAMPLE_RATE}"]
        parts += _timescale(chain)
        parts += [
            f"equalizer=f={hz}:t=o:w={EQ_WIDTH_OCTAVES}:g={gain_to_db(gain):.2f}"
            for hz, gain in zip(EQ_BANDS, chain.eq) if gain
        ]
        if chain.karaoke:
            parts.append(KARAOKE)
        if chain.lowpass:
            parts.append(f"lowpass=f={_number(chain.lowpass)}")
        if chain.tremolo:
            parts.append(f"tremolo=f={_number(chain.tremolo)}:d={TREMOLO_DEPTH}")
        if chain.vibrato:
            parts.append(f"vibrato=f={_number(chain.vibrato)}:d={VIBRATO_DEPTH}")
        if chain.rotation:
            parts.append(f"apulsator=hz={_number(chain.rotation)}")
    if volume != 100:
        parts.append(f"volume={volume / 100:.2f}")
    return ",".join(parts) or None


def _timescale(chain: FilterChain) -> list[str]:
    """Rate and pitch by playing the samples at another rate (then resampling back); speed
    by ffmpeg's tempo filter, which keeps the pitch (and undoes the tempo part of pitch)."""
    ts = chain.timescale
    parts: list[str] = []
    resampled = ts.rate * ts.pitch
    if resampled != 1.0:
        parts += [f"asetrate={round(SAMPLE_RATE * resampled)}", f"aresample={SAMPLE_RATE}"]
    tempo = ts.speed / ts.pitch
    if tempo != 1.0:
        parts += [f"atempo={_number(step)}" for step in tempo_steps(tempo)]
    return parts


def tempo_steps(tempo: float) -> list[float]:
    """``tempo`` as factors of 0.5 to 2.0 (atempo's best-sounding range) whose product it is."""
    steps: list[float] = []
    while tempo > 2.0:
        steps.append(2.0)
        tempo /= 2.0
    while tempo < 0.5:
        steps.append(0.5)
        tempo /= 0.5
    steps.append(tempo)
    return steps


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(_("A filter value must be a finite number."))
    return f"{value:.6g}"

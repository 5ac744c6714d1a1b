"""Sound filters, the equalizer and loudness normalisation as one value: ``FilterChain``.

Discord-free and ffmpeg-free: this module says *what* a server hears (validated numbers only);
music.audio.filters turns a chain into ffmpeg's filter graph. Member text never reaches that
graph: every value is parsed here into a float inside its range, or refused with a sentence.

The equalizer has the 15 bands Red's Audio and Lavalink use, with their gain scale: a band's gain
``g`` (-0.25 to 1.0) sets the level at the band's centre to ``1 + 4g`` times (Lavaplayer's
formula): 0.25 doubles it (+6 dB), 1.0 is +14 dB, -0.25 mutes it (here -24 dB). Gains may also be
typed in dB (`+6db`), converted to that scale.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..i18n import _, deferred

#: Centre frequencies (Hz) of the 15 bands of Red's Audio and Lavalink.
EQ_BANDS: tuple[int, ...] = (
    25, 40, 63, 100, 160, 250, 400, 630, 1000, 1600, 2500, 4000, 6300, 10000, 16000,
)
GAIN_MIN = -0.25
GAIN_MAX = 1.0
#: What a fully cut band (-0.25, "muted" on Lavalink's scale) is turned into.
MUTED_DB = -24.0
FLAT: tuple[float, ...] = (0.0,) * len(EQ_BANDS)

#: Timescale factors (speed, pitch, rate) allowed, as Lavalink clients offer them.
TIMESCALE_MIN = 0.5
TIMESCALE_MAX = 2.0

#: Saved equalizer presets per server, and how a preset may be named.
MAX_SAVED_PRESETS = 25
PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def gain_to_db(gain: float) -> float:
    """A band gain on Lavalink's scale as dB at the band's centre."""
    factor = 1.0 + 4.0 * gain
    if factor <= 10 ** (MUTED_DB / 20):
        return MUTED_DB
    return 20.0 * math.log10(factor)


def db_to_gain(db: float) -> float:
    """dB at a band's centre on Lavalink's gain scale (clamped to it)."""
    return _clamp((10 ** (db / 20.0) - 1.0) / 4.0, GAIN_MIN, GAIN_MAX)


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


@dataclass(frozen=True)
class Timescale:
    """Lavalink's timescale: ``speed`` changes the tempo (pitch kept), ``pitch`` the pitch (tempo
    kept), ``rate`` both, as playing a record faster does (nightcore, vaporwave)."""

    speed: float = 1.0
    pitch: float = 1.0
    rate: float = 1.0

    def __post_init__(self) -> None:
        for name in ("speed", "pitch", "rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and TIMESCALE_MIN <= value <= TIMESCALE_MAX):
                raise ValueError(_("The {name} must be from {timescale_min:g} to {timescale_max:g}.").format(name=name, timescale_min=TIMESCALE_MIN, timescale_max=TIMESCALE_MAX))

    @property
    def media_rate(self) -> float:
        """Seconds of the track played per second heard."""
        return self.speed * self.rate

    @property
    def is_identity(self) -> bool:
        return self.speed == self.pitch == self.rate == 1.0


IDENTITY = Timescale()
NIGHTCORE = Timescale(rate=1.25)  # 440 Hz is heard at 550 Hz, 25 % faster
VAPORWAVE = Timescale(rate=0.8)  # slowed and lowered


@dataclass(frozen=True)
class FilterSpec:
    """One `filter` name: its default value, its range and unit (None: an on/off filter)."""

    name: str
    about: str
    default: float | None = None
    low: float = 0.0
    high: float = 0.0
    unit: str = ""


FILTERS: dict[str, FilterSpec] = {spec.name: spec for spec in (
    FilterSpec("nightcore", deferred._("faster and higher (25 %)")),
    FilterSpec("vaporwave", deferred._("slower and lower (20 %)")),
    FilterSpec("speed", deferred._("tempo, pitch kept"), 1.25, TIMESCALE_MIN, TIMESCALE_MAX, "x"),
    FilterSpec("pitch", deferred._("pitch, tempo kept"), 1.25, TIMESCALE_MIN, TIMESCALE_MAX, "x"),
    FilterSpec("rate", deferred._("tempo and pitch together"), 1.25, TIMESCALE_MIN, TIMESCALE_MAX, "x"),
    FilterSpec("karaoke", deferred._("removes what is in the centre (most vocals)")),
    FilterSpec("tremolo", deferred._("the volume wavers"), 4.0, 0.1, 20.0, "Hz"),
    FilterSpec("vibrato", deferred._("the pitch wavers"), 5.0, 0.1, 14.0, "Hz"),
    FilterSpec("8d", deferred._("the sound turns around your head"), 0.2, 0.01, 5.0, "Hz"),
    FilterSpec("lowpass", deferred._("muffled: only what is under the cut-off"), 1000.0, 100.0, 20000.0, "Hz"),
)}
ALIASES = {"rotation": "8d", "low-pass": "lowpass", "low_pass": "lowpass", "tempo": "speed"}
#: the filters that set the timescale (one timescale at a time: the latest wins, factor by factor)
TIMESCALE_FILTERS = ("nightcore", "vaporwave", "speed", "pitch", "rate")


@dataclass(frozen=True)
class FilterChain:
    """What a server's audio goes through. Equal chains sound the same; the flat chain (the
    default) needs no decoding at all, so an Opus source can still be copied."""

    timescale: Timescale = IDENTITY
    karaoke: bool = False
    tremolo: float = 0.0  # Hz; 0 = off
    vibrato: float = 0.0  # Hz; 0 = off
    rotation: float = 0.0  # Hz ("8d"); 0 = off
    lowpass: float = 0.0  # cut-off in Hz; 0 = off
    eq: tuple[float, ...] = FLAT
    normalize: bool = False  # loudness normalisation (an admin setting, not a `filter`)

    def __post_init__(self) -> None:
        if len(self.eq) != len(EQ_BANDS):
            raise ValueError(_("The equalizer has {eq_bands_count} bands.").format(eq_bands_count=len(EQ_BANDS)))
        for gain in self.eq:
            if not (math.isfinite(gain) and GAIN_MIN <= gain <= GAIN_MAX):
                raise ValueError(_("A band's gain must be from {gain_min} to {gain_max}.").format(gain_min=GAIN_MIN, gain_max=GAIN_MAX))
        for name in ("tremolo", "vibrato", "rotation", "lowpass"):
            value = getattr(self, name)
            spec = FILTERS["8d" if name == "rotation" else name]
            if value and not (math.isfinite(value) and spec.low <= value <= spec.high):
                raise ValueError(_("{name} must be from {low:g} to {high:g} {unit}.").format(name=spec.name, low=spec.low, high=spec.high, unit=spec.unit))

    # -- what it does -----------------------------------------------------------------------------

    @property
    def media_rate(self) -> float:
        """Seconds of the track played per second heard (1.25 for nightcore)."""
        return self.timescale.media_rate

    @property
    def has_effects(self) -> bool:
        """Any `filter` is on (the equalizer and normalisation aside)."""
        return (not self.timescale.is_identity or self.karaoke or bool(self.tremolo)
                or bool(self.vibrato) or bool(self.rotation) or bool(self.lowpass))

    @property
    def has_eq(self) -> bool:
        return any(self.eq)

    @property
    def is_flat(self) -> bool:
        """Nothing to apply: the audio may be copied as it is."""
        return not (self.has_effects or self.has_eq or self.normalize)

    def effect_names(self) -> list[str]:
        """The `filter`s that are on, as members name them (`nightcore`, `tremolo 4 Hz`)."""
        names: list[str] = []
        ts = self.timescale
        if ts == NIGHTCORE:
            names.append("nightcore")
        elif ts == VAPORWAVE:
            names.append("vaporwave")
        else:
            names += [f"{n} x{getattr(ts, n):g}" for n in ("speed", "pitch", "rate")
                      if getattr(ts, n) != 1.0]
        if self.karaoke:
            names.append("karaoke")
        for name, attr in (("tremolo", "tremolo"), ("vibrato", "vibrato"), ("8d", "rotation"),
                           ("lowpass", "lowpass")):
            value = getattr(self, attr)
            if value:
                names.append(f"{name} {value:g} {FILTERS[name].unit}")
        return names

    # -- changes (each returns a new chain) -------------------------------------------------------

    def with_filter(self, name: str, value: str | None = None) -> FilterChain:
        """The chain with the `filter` called `name` set to `value` (text as a member typed
        it: None for the default, `off` to turn it off). Raises ValueError with a sentence."""
        key = ALIASES.get(name.lower(), name.lower())
        spec = FILTERS.get(key)
        if spec is None:
            raise ValueError(_("There is no filter called `{name}`. "
                             "Filters: {filters}.").format(name=name[:30], filters=', '.join(FILTERS)))
        off = value is not None and value.strip().lower() in ("off", "none", "0", "reset")
        if key in TIMESCALE_FILTERS:
            return replace(self, timescale=_timescale_with(self.timescale, spec, value, off))
        if key == "karaoke":
            if value is not None and not off and value.strip().lower() not in ("on", "yes"):
                raise ValueError(_("Karaoke is `on` or `off`."))
            return replace(self, karaoke=not off)
        amount = 0.0 if off else _number(spec, value)
        change: dict[str, Any] = {"rotation" if key == "8d" else key: amount}
        return replace(self, **change)

    def without_effects(self) -> FilterChain:
        """Every `filter` off; the equalizer and normalisation stay."""
        return FilterChain(eq=self.eq, normalize=self.normalize)

    def with_eq(self, gains: Iterable[float]) -> FilterChain:
        return replace(self, eq=tuple(float(g) for g in gains))

    def with_band(self, index: int, gain: float) -> FilterChain:
        eq = list(self.eq)
        eq[index] = gain
        return replace(self, eq=tuple(eq))

    def with_normalize(self, on: bool) -> FilterChain:
        return replace(self, normalize=on)

    # -- stored form ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The server setting `filters` (normalisation is its own setting)."""
        ts = self.timescale
        return {
            "speed": ts.speed, "pitch": ts.pitch, "rate": ts.rate, "karaoke": self.karaoke,
            "tremolo": self.tremolo, "vibrato": self.vibrato, "rotation": self.rotation,
            "lowpass": self.lowpass, "eq": list(self.eq),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, normalize: bool = False) -> FilterChain:
        """A chain from stored data; a value that is missing, damaged or out of range (a hand
        edit, an older version) is left at its default rather than refusing the whole chain."""
        data = data or {}
        chain = cls(normalize=bool(normalize))
        try:
            chain = replace(chain, timescale=Timescale(
                *(float(data.get(n, 1.0)) for n in ("speed", "pitch", "rate"))))
        except (TypeError, ValueError):
            pass
        for name in ("tremolo", "vibrato", "rotation", "lowpass"):
            try:
                change: dict[str, Any] = {name: float(data.get(name) or 0.0)}
                chain = replace(chain, **change)
            except (TypeError, ValueError):
                pass
        chain = replace(chain, karaoke=bool(data.get("karaoke")))
        try:
            chain = chain.with_eq(float(g) for g in data.get("eq") or FLAT)
        except (TypeError, ValueError):
            pass
        return chain


def _timescale_with(ts: Timescale, spec: FilterSpec, value: str | None, off: bool) -> Timescale:
    if spec.name in ("nightcore", "vaporwave"):
        preset = NIGHTCORE if spec.name == "nightcore" else VAPORWAVE
        if off:
            return IDENTITY if ts == preset else ts
        if value is not None and value.strip().lower() not in ("on", "yes"):
            raise ValueError(_("{name} is `on` or `off`; for other speeds use "
                             "`speed`, `pitch` or `rate`.").format(name=spec.name.capitalize()))
        return preset
    return replace(ts, **{spec.name: 1.0 if off else _number(spec, value)})


_NUMBER = re.compile(r"^[x×]?\s*(?P<n>[0-9]*\.?[0-9]+)\s*(?:x|×|hz|khz)?$")


def _number(spec: FilterSpec, text: str | None) -> float:
    """A member's number for `spec` (`1.25`, `x1.25`, `4hz`, `1.2khz`), inside its range."""
    assert spec.default is not None
    if text is None or not text.strip():
        return spec.default
    cleaned = text.strip().lower()
    match = _NUMBER.match(cleaned)
    value = float(match.group("n")) * (1000.0 if cleaned.endswith("khz") else 1.0) if match else None
    if value is None or not spec.low <= value <= spec.high:
        unit = "" if spec.unit == "x" else f" {spec.unit}"
        raise ValueError(_("{name} takes a number from {low:g} to "
                         "{high:g}{unit}, or `off`.").format(name=spec.name.capitalize(), low=spec.low, high=spec.high, unit=unit))
    return value


# -- the equalizer's words ----------------------------------------------------------------------

#: Built-in equalizer presets (gains on Lavalink's scale, one per band of EQ_BANDS).
EQ_PRESETS: dict[str, tuple[float, ...]] = {
    "flat": FLAT,
    "bassboost": (0.3, 0.3, 0.25, 0.15, 0.08, 0.03, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "treble": (0, 0, 0, 0, 0, 0, 0, 0, 0, 0.03, 0.08, 0.15, 0.2, 0.25, 0.25),
    "vocal": (-0.08, -0.08, -0.05, -0.03, 0, 0.03, 0.08, 0.12, 0.15, 0.15, 0.12, 0.08, 0.03, 0, 0),
    "rock": (0.15, 0.12, 0.08, 0.03, -0.03, -0.05, -0.03, 0, 0.03, 0.08, 0.12, 0.15, 0.15, 0.12, 0.1),
    "pop": (-0.03, 0, 0.03, 0.08, 0.12, 0.12, 0.08, 0.03, 0, 0, 0.03, 0.05, 0.05, 0.03, 0),
    "soft": (0, 0, 0, 0, 0, 0, 0, 0, 0, -0.03, -0.05, -0.08, -0.1, -0.12, -0.15),
}
PRESET_ALIASES = {"bass": "bassboost", "bass-boost": "bassboost", "bass_boost": "bassboost",
                  "reset": "flat", "off": "flat", "voice": "vocal"}


def preset_gains(name: str) -> tuple[float, ...] | None:
    """A built-in preset's gains, or None."""
    key = name.strip().lower()
    return EQ_PRESETS.get(PRESET_ALIASES.get(key, key))


def parse_band(text: str) -> int:
    """A band as members name it: its number (1-15) or its frequency (`63`, `63hz`, `1k`,
    `16khz`; the nearest band). Returns its index. Raises ValueError with a sentence."""
    cleaned = text.strip().lower().replace(" ", "")
    match = re.match(r"^(?P<n>[0-9]*\.?[0-9]+)(?P<unit>k|khz|hz)?$", cleaned)
    if match is None:
        raise ValueError(_("Name a band by its number (1-{eq_bands_count}) or frequency (`63hz`, `1k`).").format(eq_bands_count=len(EQ_BANDS)))
    number = float(match.group("n"))
    unit = match.group("unit")
    if unit is None and number.is_integer() and 1 <= number <= len(EQ_BANDS):
        return int(number) - 1
    hz = number * (1000.0 if unit in ("k", "khz") else 1.0)
    if not EQ_BANDS[0] / 2 <= hz <= EQ_BANDS[-1] * 1.5:
        raise ValueError(_("The bands go from {lowest} Hz to {highest} kHz.").format(lowest=EQ_BANDS[0], highest=EQ_BANDS[-1] // 1000))
    return min(range(len(EQ_BANDS)), key=lambda i: abs(math.log(EQ_BANDS[i] / hz)))


def parse_gain(text: str) -> float:
    """A band gain: Lavalink's scale (`0.25`, `-0.1`) or dB (`+6db`, `-3 dB`)."""
    cleaned = text.strip().lower().replace(" ", "")
    match = re.match(r"^(?P<n>[+-]?[0-9]*\.?[0-9]+)(?P<db>db)?$", cleaned)
    if match is None:
        raise ValueError(_("A gain is from {gain_min} to {gain_max}, or in dB (`+6db`).").format(gain_min=GAIN_MIN, gain_max=GAIN_MAX))
    value = float(match.group("n"))
    if match.group("db"):
        if not MUTED_DB <= value <= gain_to_db(GAIN_MAX) + 0.01:
            raise ValueError(_("In dB a gain is from {muted_db:g} to +{gain_max:.0f}.").format(muted_db=MUTED_DB, gain_max=gain_to_db(GAIN_MAX)))
        return round(db_to_gain(value), 4)
    if not GAIN_MIN <= value <= GAIN_MAX:
        raise ValueError(_("A gain is from {gain_min} to {gain_max} (or in dB: `+6db`).").format(gain_min=GAIN_MIN, gain_max=GAIN_MAX))
    return value


def valid_preset_name(text: str) -> str:
    """A name for a saved preset (lowercase letters, digits, `-`, `_`; not a built-in's)."""
    name = text.strip().lower()
    if not PRESET_NAME.match(name):
        raise ValueError(_("A preset's name is 1-32 letters, digits, `-` or `_`."))
    if preset_gains(name) is not None:
        raise ValueError(_("`{name}` is a built-in preset; pick another name.").format(name=name))
    return name


@dataclass(frozen=True)
class EqTable:
    """The equalizer as rows to show: (band frequency label, gain, dB)."""

    rows: list[tuple[str, float, float]] = field(default_factory=list)

    @classmethod
    def of(cls, eq: Iterable[float]) -> EqTable:
        return cls([(band_label(hz), gain, gain_to_db(gain)) for hz, gain in zip(EQ_BANDS, eq)])


def band_label(hz: int) -> str:
    return f"{hz / 1000:g}k" if hz >= 1000 else str(hz)

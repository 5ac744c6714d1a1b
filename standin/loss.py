"""Seeded, reproducible packet-loss patterns for the stand-in's receiver.

A pattern is a list of booleans, one per packet in sending order, True where the packet is lost.
The same (model, rate, seed, length) always gives the same pattern, so two encoder settings can be
put through exactly the same losses, and a random and a bursty pattern can be applied to the same
received packets after the fact.

* ``random``: every packet is lost independently with probability ``rate`` (Bernoulli).
* ``bursts``: the Gilbert model, a Gilbert-Elliott chain whose good state loses nothing and whose
  bad state loses everything. Leaving the bad state has probability ``1 / mean_burst``, so bursts
  last ``mean_burst`` packets on average (geometric), and entering it is set so that the long-run
  loss rate is ``rate``: ``p_enter = rate / (1 - rate) / mean_burst``. The first packet's state is
  drawn from the chain's stationary distribution, so a pattern has no warm-up.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

RANDOM = "random"
BURSTS = "bursts"
KINDS = (RANDOM, BURSTS)
#: packets per burst on average unless told: Wi-Fi and mobile loss typically comes in runs of a
#: few 20 ms packets, which is what defeats in-band FEC (it only carries the previous frame)
DEFAULT_MEAN_BURST = 3.0


@dataclass(frozen=True)
class LossModel:
    kind: str  # RANDOM or BURSTS
    rate: float  # long-run share of packets lost, 0 <= rate < 1
    mean_burst: float = DEFAULT_MEAN_BURST  # BURSTS only: mean run of lost packets, >= 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown loss model {self.kind!r}; expected one of {KINDS}")
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"loss rate must be in [0, 1), not {self.rate}")
        if self.mean_burst < 1.0:
            raise ValueError(f"mean burst length must be at least 1 packet, not {self.mean_burst}")
        if self.kind == BURSTS and self.rate > 0 and self._enter_bad() > 1.0:
            raise ValueError(f"a {self.rate:.0%} loss rate cannot have bursts of {self.mean_burst:g} on average")

    def _enter_bad(self) -> float:
        return self.rate / (1.0 - self.rate) / self.mean_burst

    def pattern(self, length: int, seed: int) -> list[bool]:
        """Which of ``length`` packets are lost (True), reproducibly for ``seed``."""
        # the model is part of the seed, so "random" and "bursts" with one seed are independent
        rng = random.Random(f"{self.kind}:{self.rate}:{self.mean_burst}:{seed}")
        if self.rate == 0.0:
            return [False] * length
        if self.kind == RANDOM:
            return [rng.random() < self.rate for _ in range(length)]
        return self._gilbert(length, rng)

    def _gilbert(self, length: int, rng: random.Random) -> list[bool]:
        enter_bad, leave_bad = self._enter_bad(), 1.0 / self.mean_burst
        bad = rng.random() < self.rate  # stationary probability of the bad state
        lost = []
        for _ in range(length):
            lost.append(bad)
            bad = rng.random() >= leave_bad if bad else rng.random() < enter_bad
        return lost

    @property
    def label(self) -> str:
        if self.rate == 0.0:
            return "no loss"
        if self.kind == RANDOM:
            return f"{self.rate:.0%} random"
        return f"{self.rate:.0%} bursts (mean {self.mean_burst:g})"


def burst_lengths(pattern: Sequence[bool]) -> list[int]:
    """Lengths of the runs of consecutive lost packets in a pattern."""
    runs: list[int] = []
    current = 0
    for lost in pattern:
        if lost:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


__all__ = ["BURSTS", "DEFAULT_MEAN_BURST", "KINDS", "RANDOM", "LossModel", "burst_lengths"]

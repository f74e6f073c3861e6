"""The speed targets of ``benchmarks/``: each a figure compared with its limit.

Most targets are ratios against a baseline measured in the same run, because the machines
they run on are shared and noisy: an absolute time says more about the neighbours than about
Twofold. ``detail`` carries the raw figures behind a ratio, so a reader can check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["RATIO", "Target"]

#: The unit of a ratio target: the multiplication sign.
RATIO = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Target:
    """One speed target and what this run measured for it."""

    #: What is measured, e.g. "RS256 verification vs raw cryptography verify".
    name: str
    #: The measured figure, in ``unit``.
    measured: float
    #: The limit the figure must stay at or under (``"at_most"``) or reach (``"at_least"``).
    limit: float
    direction: Literal["at_most", "at_least"]
    #: :data:`RATIO` for ratios, "%" for shares of a baseline, "/s" for rates, "bytes".
    unit: str
    #: The raw figures behind ``measured``, e.g. "ours 52.1 µs, baseline 46.0 µs (p50)".
    detail: str

    @property
    def met(self) -> bool:
        if self.direction == "at_most":
            return self.measured <= self.limit
        return self.measured >= self.limit

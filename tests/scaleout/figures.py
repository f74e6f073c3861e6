"""What the watches of tests/scaleout/revocations.py show: per revocation, how long each
instance other than the revoker took to refuse, whether the revoker refused at once, and
any answer that accepted a credential on an instance after it had refused it there."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .agent import NGINX
from .nginx import LogLine
from .revocations import KINDS, Event, Sample


def resolve(events: Sequence[Event], log: dict[str, LogLine], addresses: Sequence[str]) -> None:
    """Name the instance behind every nginx answer, and the revoker of nginx revocations."""
    for event in events:
        if event.via == NGINX:
            line = log.get(event.request_id or "")
            if line is not None and line.upstream in addresses:
                event.revoker = addresses.index(line.upstream)


def served_by(sample: Sample, log: dict[str, LogLine], addresses: Sequence[str]) -> int | None:
    if isinstance(sample.via, int):
        return sample.via
    line = log.get(sample.request_id or "")
    if line is None or line.upstream not in addresses:
        return None
    return addresses.index(line.upstream)


@dataclass(frozen=True)
class Delay:
    """When an instance other than the revoker began to refuse, in seconds after the
    revoking answer: after ``lower`` (it still accepted a poll sent then; 0 if none)
    and by ``upper`` (its first refusing answer had arrived; ``inf`` if none did)."""

    lower: float
    upper: float


def delays(event: Event, size: int) -> list[Delay]:
    """One delay per credential and instance of the ``size``, the revoker excepted."""
    found: list[Delay] = []
    for watch in event.watches:
        for instance in range(size):
            if instance == event.revoker:
                continue
            samples = watch.direct(instance)
            refused = [s.received for s in samples if s.outcome == "refused"]
            accepted = [s.sent for s in samples if s.outcome == "accepted"]
            found.append(
                Delay(
                    max(accepted, default=event.at) - event.at,
                    min(refused, default=math.inf) - event.at,
                )
            )
    return found


def revoker_refused_at_once(event: Event) -> bool:
    """The instance that made the revocation refuses on the very next request."""
    if event.revoker is None:
        return False
    return all(
        bool(w.direct(event.revoker)) and w.direct(event.revoker)[0].outcome == "refused"
        for w in event.watches
    )


def wrong_answers(
    event: Event, log: dict[str, LogLine], addresses: Sequence[str]
) -> list[tuple[int | None, Sample]]:
    """Answers that accepted the credential on an instance after that instance had been
    seen refusing it (directly or through nginx), and answers that were neither."""
    wrong: list[tuple[int | None, Sample]] = []
    for watch in event.watches:
        first_refusal: dict[int, float] = {}
        for sample in sorted(watch.samples, key=lambda s: s.received):
            instance = served_by(sample, log, addresses)
            if sample.outcome == "error" or instance is None:
                wrong.append((instance, sample))
            elif sample.outcome == "refused":
                first_refusal.setdefault(instance, sample.received)
        for sample in watch.samples:
            instance = served_by(sample, log, addresses)
            if (
                sample.outcome == "accepted"
                and instance is not None
                and sample.sent > first_refusal.get(instance, math.inf)
            ):
                wrong.append((instance, sample))
    return wrong


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Figures:
    """Propagation of some revocations to the instances that did not make them."""

    revocations: int
    delays: tuple[Delay, ...]

    @property
    def upper(self) -> list[float]:
        return [d.upper for d in self.delays]

    @property
    def p50(self) -> float:
        return percentile(self.upper, 50)

    @property
    def p99(self) -> float:
        return percentile(self.upper, 99)

    @property
    def worst(self) -> float:
        return max(self.upper)

    @property
    def still_accepted(self) -> float:
        """The latest an instance was seen accepting after the revoking answer."""
        return max(d.lower for d in self.delays)

    @property
    def at_first_poll(self) -> int:
        """How many instances already refused the first poll after the revoking answer."""
        return sum(d.lower == 0 for d in self.delays)


def figures(events: Sequence[Event], size: int) -> dict[str, Figures]:
    """Figures for every kind of revocation, and for all of them (``"all"``)."""
    groups: dict[str, list[Event]] = {"all": list(events)}
    for event in events:
        groups.setdefault(event.kind, []).append(event)
    return {
        name: Figures(len(group), tuple(d for e in group for d in delays(e, size)))
        for name, group in groups.items()
    }


def table(deployment: str, by_kind: dict[str, Figures]) -> str:
    """One line per kind: revocations, delays measured, how many were refused at the first
    poll, the latest acceptance seen, and the p50, p99 and max of the upper bounds (ms)."""
    lines = [f"{'deployment':<21} {'revocation':<15} {'n':>3} {'delays':>6} {'at 1st':>6} "
             f"{'last ok':>7} {'p50':>6} {'p99':>6} {'max':>6}"]  # fmt: skip
    for kind in (*KINDS, "all"):
        found = by_kind.get(kind)
        if found is None:
            continue
        lines.append(
            f"{deployment:<21} {kind:<15} {found.revocations:>3} {len(found.delays):>6} "
            f"{found.at_first_poll:>6} {found.still_accepted * 1000:>7.1f} "
            f"{found.p50 * 1000:>6.1f} {found.p99 * 1000:>6.1f} {found.worst * 1000:>6.1f}"
        )
    return "\n".join(lines)

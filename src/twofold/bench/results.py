"""What one ``twofold bench`` run measured: frozen records that the report renders.

The records hold figures, not prose: every sentence of the report (the verdicts of the
comparison table included) is derived from them when it is rendered, so a report can
never say something its numbers contradict. Times are kept in the unit they are shown
in (µs for in-process checks, ms for HTTP and revocation), sizes in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twofold.bench.stats import Summary

__all__ = [
    "BenchResults",
    "ClaimGrowth",
    "Cost",
    "Footprint",
    "Machine",
    "Revocation",
    "Skipped",
    "Throughput",
    "Verification",
    "WireBytes",
]


@dataclass(frozen=True)
class Machine:
    """Where and when the figures were taken: they mean little without it."""

    cpus: int
    python: str
    platform: str
    #: 1, 5 and 15 minute load averages when the run started.
    load_average: tuple[float, float, float]
    #: ISO 8601, UTC.
    date: str
    quick: bool
    #: "wrk" or "builtin": what generated the HTTP load.
    load_tool: str
    #: How long the whole run took, in seconds.
    seconds: float = 0.0


@dataclass(frozen=True)
class Skipped:
    """A configuration (or a part of the run) that was not measured, and why."""

    what: str
    reason: str


@dataclass(frozen=True)
class WireBytes:
    """One authenticated ``GET /auth/me`` as a client wrote it on the socket, and the
    server's whole answer (status line, headers and body)."""

    configuration: str
    #: The whole request.
    request: int
    #: The header that carries the credential ("Cookie: ..." or "Authorization: Bearer
    #: ..."), with its CRLF.
    credential: int
    #: The answer, as read from the socket.
    response: int
    #: What the credential header was: "Cookie" or "Authorization".
    header: str


@dataclass(frozen=True)
class ClaimGrowth:
    """Size of an access token by the number of roles it carries: a JWT grows with its
    claims, a session id does not."""

    algorithm: str
    #: (number of roles, token length in bytes), in increasing number of roles.
    sizes: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Verification:
    """In-process cost of deciding who a request is from, in µs: a JWT's signature and
    claim checks, or a session's store lookup plus the server's check of the record."""

    configuration: str
    latency_us: Summary
    #: What the figure is: "signature + claims" or "store read + session check".
    what: str
    #: A baseline measured in the same run (JWT: the raw primitive), if any.
    baseline_name: str | None = None
    baseline_us: Summary | None = None


@dataclass(frozen=True)
class Throughput:
    """HTTP load against running instances: requests per second and latency in ms."""

    configuration: str
    path: str
    instances: int
    connections: int
    seconds: float
    requests: int
    rps: float
    latency_ms: Summary
    errors: int
    tool: str


@dataclass(frozen=True)
class Footprint:
    """What one session (or a JWT login's refresh family) occupies in its store."""

    configuration: str
    bytes_per_session: float
    #: "memory" (Redis) or "disk" (SQLite, PostgreSQL).
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class Revocation:
    """Milliseconds from a logout's answer at instance A until instance B refused the
    credential (polled every few ms: an upper bound that includes one round trip)."""

    configuration: str
    delay_ms: Summary
    #: Polls that were still accepted after the logout, over all samples.
    accepted_after: int = 0


@dataclass(frozen=True)
class Cost:
    """The price of getting a credential: a password login, a refresh rotation."""

    name: str
    #: Per operation, in ms.
    latency_ms: Summary
    #: Operations per second on one core, if measured.
    per_second: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class BenchResults:
    """Everything one run measured; the report is a function of this alone."""

    machine: Machine
    #: Names of the configurations that were measured, in report order.
    measured: tuple[str, ...]
    skipped: tuple[Skipped, ...] = ()
    wire: tuple[WireBytes, ...] = ()
    claim_growth: tuple[ClaimGrowth, ...] = ()
    verification: tuple[Verification, ...] = ()
    throughput: tuple[Throughput, ...] = ()
    footprints: tuple[Footprint, ...] = ()
    revocations: tuple[Revocation, ...] = ()
    costs: tuple[Cost, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def wire_for(self, configuration: str) -> WireBytes | None:
        return next((w for w in self.wire if w.configuration == configuration), None)

    def verification_for(self, configuration: str) -> Verification | None:
        return next((v for v in self.verification if v.configuration == configuration), None)

    def throughput_for(self, configuration: str, path: str) -> Throughput | None:
        return next(
            (t for t in self.throughput if t.configuration == configuration and t.path == path),
            None,
        )

    def footprint_for(self, configuration: str) -> Footprint | None:
        return next((f for f in self.footprints if f.configuration == configuration), None)

    def revocation_for(self, configuration: str) -> Revocation | None:
        return next((r for r in self.revocations if r.configuration == configuration), None)

"""The seed articles' comparison of sessions and JWTs, filled in with this run's figures.

The rows are the claims the articles make (``../shared/seeds/``): the "Comparison Table:
Sessions vs. JWTs" of *A Deep Dive into Sessions and JWTs* (token size, state and
storage, scalability, security) and the claims the others repeat ("tokens are more
scalable", "a read request to the database for every subsequent request", "bandwidth
consumption will be higher", a JWT "can be used until it expires"). Every cell of a
measured row is a figure of the run, and the verdict is computed from the same figures by
a rule stated in the code, never written ahead of the numbers. Rows the articles have
that are not measurements (cross-domain use, use cases, complexity) stay in the table,
marked as such.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from twofold.bench.results import BenchResults, Throughput

__all__ = ["Row", "comparison"]

TIMES = "\u00d7"
DASH = "\u2013"
#: Within this fraction two figures are called equal: the machines are shared and noisy.
SAME = 0.10


@dataclass(frozen=True)
class Row:
    criterion: str
    #: The article's words, and which article.
    claim: str
    sessions: str
    jwt: str
    verdict: str
    #: False for the articles' rows that are not measurements.
    measured: bool = True


def _bytes(value: float) -> str:
    return f"{value:,.0f} B"


def _rate(value: float) -> str:
    return f"{value:,.0f} req/s"


def _range(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    low, high = min(values), max(values)
    return (
        fmt.format(low)
        if round(low) == round(high)
        else f"{fmt.format(low)}{DASH}{fmt.format(high)}"
    )


def _compare(ratio: float, more: str, less: str, same: str) -> str:
    if ratio > 1 + SAME:
        return more
    if ratio < 1 - SAME:
        return less
    return same


def _sessions_and_jwt(results: BenchResults, names: Sequence[str]) -> tuple[list[str], list[str]]:
    sessions = [n for n in names if n.startswith("session/")]
    return sessions, [n for n in names if n.startswith("JWT ")]


def _token_size(results: BenchResults) -> Row | None:
    wires = {w.configuration: w for w in results.wire}
    sessions, jwts = _sessions_and_jwt(results, list(wires))
    if not sessions or not jwts:
        return None
    cookie = [wires[n].credential for n in sessions]
    bearer = [wires[n].credential for n in jwts]
    request_s = [wires[n].request for n in sessions]
    request_j = [wires[n].request for n in jwts]
    ratio = statistics.median(request_j) / statistics.median(request_s)
    grown = ""
    if results.claim_growth:
        largest = max(results.claim_growth, key=lambda g: g.sizes[-1][1])
        count, size = largest.sizes[-1]
        grown = f"; with {count} roles a {largest.algorithm} token alone is {_bytes(size)}"
    verdict = _compare(
        ratio,
        f"Borne out: a Bearer request is {ratio:.1f}{TIMES} a cookie request "
        f"({_range(request_j)} vs {_range(request_s)} bytes){grown}.",
        f"Not borne out: a Bearer request is {ratio:.2f}{TIMES} a cookie request.",
        f"No real difference: a Bearer request is {ratio:.2f}{TIMES} a cookie request.",
    )
    return Row(
        "Token size",
        "Sessions: small (session ID only); JWTs: larger (contains payload) — A Deep Dive",
        f"cookie header {_range(cookie)} B; request {_range(request_s)} B",
        f"Bearer header {_range(bearer)} B; request {_range(request_j)} B",
        verdict,
    )


def _bandwidth(results: BenchResults) -> Row | None:
    wires = {w.configuration: w for w in results.wire}
    sessions, jwts = _sessions_and_jwt(results, list(wires))
    if not sessions or not jwts:
        return None
    # Both directions of a million /auth/me exchanges in MB: numerically, the bytes of one.
    per_million_s = [float(wires[n].request + wires[n].response) for n in sessions]
    per_million_j = [float(wires[n].request + wires[n].response) for n in jwts]
    extra = statistics.median(per_million_j) - statistics.median(per_million_s)
    share = extra / statistics.median(per_million_s)
    verdict = _compare(
        1 + share,
        f"Borne out: {share:.0%} more bytes per request and answer "
        f"(+{extra:,.0f} MB per million requests).",
        f"Not borne out: {-share:.0%} fewer bytes with a JWT.",
        f"No real difference ({share:+.0%}).",
    )
    return Row(
        "Bandwidth",
        "Bandwidth consumption will be higher in the JWT-based approach — How to Authenticate "
        "Users: JWT vs. Session",
        f"{_range(per_million_s)} MB per million /auth/me (both ways)",
        f"{_range(per_million_j)} MB per million /auth/me (both ways)",
        verdict,
    )


def _per_request_check(results: BenchResults) -> Row | None:
    checks = {v.configuration: v for v in results.verification}
    sessions, jwts = _sessions_and_jwt(results, list(checks))
    if not sessions or not jwts:
        return None
    session_cells = ", ".join(
        f"{n.removeprefix('session/')} {checks[n].latency_us.p50:,.0f} µs" for n in sessions
    )
    jwt_cells = ", ".join(
        f"{n.removeprefix('JWT ')} {checks[n].latency_us.p50:,.0f} µs" for n in jwts
    )
    slowest_session = max(sessions, key=lambda n: checks[n].latency_us.p50)
    fastest_jwt = min(jwts, key=lambda n: checks[n].latency_us.p50)
    slowest_jwt = max(jwts, key=lambda n: checks[n].latency_us.p50)
    s_p50 = checks[slowest_session].latency_us.p50
    verdict = (
        f"Every session check read the store (no cache). The slowest store, "
        f"{slowest_session.removeprefix('session/')}, took {s_p50:,.0f} µs (p50); "
        f"JWT checks took {checks[fastest_jwt].latency_us.p50:,.0f}{DASH}"
        f"{checks[slowest_jwt].latency_us.p50:,.0f} µs with no store. "
    )
    slower = [n for n in jwts if checks[n].latency_us.p50 > s_p50]
    if slower:
        names = ", ".join(n.removeprefix("JWT ") for n in slower)
        verdict += f"The read is real but cheaper here than verifying {names}."
    else:
        verdict += "The read costs more than any signature check measured."
    return Row(
        "Cost of each request's check",
        "A read request to the database for every subsequent request — Session vs JWT: The "
        "Differences You May Not Know",
        f"store read + check, p50: {session_cells}",
        f"signature + claims, p50: {jwt_cells}",
        verdict,
    )


def _me(results: BenchResults, name: str, instances: int) -> Throughput | None:
    found = [
        t
        for t in results.throughput
        if t.configuration == name and t.path == "/auth/me" and t.instances == instances
    ]
    return found[0] if found else None


def _scalability(results: BenchResults) -> Row | None:
    sessions, jwts = _sessions_and_jwt(results, results.measured)
    one_s = {n: t for n in sessions if (t := _me(results, n, 1)) is not None}
    one_j = {n: t for n in jwts if (t := _me(results, n, 1)) is not None}
    if not one_s or not one_j:
        return None
    many_s = {n: t for n in sessions if (t := _me(results, n, 2)) is not None}
    many_j = {n: t for n in jwts if (t := _me(results, n, 2)) is not None}

    def cell(one: dict[str, Throughput], many: dict[str, Throughput], prefix: str) -> str:
        parts = []
        for name, figure in one.items():
            text = f"{name.removeprefix(prefix)} {figure.rps:,.0f}"
            if name in many:
                text += f" → {many[name].rps:,.0f} on 2"
            parts.append(text)
        return "req/s on 1 instance: " + ", ".join(parts)

    best_s = max(t.rps for t in one_s.values())
    best_j = max(t.rps for t in one_j.values())
    ratio = best_j / best_s
    verdict = _compare(
        ratio,
        f"Borne out on one instance: the best JWT configuration served {ratio:.2f}{TIMES} the best "
        "session store.",
        f"Not borne out: the best session store served {1 / ratio:.2f}{TIMES} the best JWT "
        "configuration on one instance.",
        f"Not borne out: within {SAME:.0%} of each other on one instance ({ratio:.2f}{TIMES}).",
    )
    if many_s and many_j:
        gain_s = max(many_s[n].rps / one_s[n].rps for n in many_s if n in one_s)
        gain_j = max(many_j[n].rps / one_j[n].rps for n in many_j if n in one_j)
        verdict += (
            f" A second instance on the shared store gave sessions {TIMES}{gain_s:.2f} and JWTs "
            f"{TIMES}{gain_j:.2f}"
        )
        verdict += f" (both instances and the load generator share {results.machine.cpus} cores)."
    verdict += (
        " As deployed by default: each session request read its store, while a repeated "
        "access token was checked against expiry and revocation only (its signature once)."
    )
    return Row(
        "Scalability",
        "Sessions: challenging as users grow; JWTs: easily scalable — A Deep Dive (and "
        "the other four articles)",
        cell(one_s, many_s, "session/"),
        cell(one_j, many_j, "JWT "),
        verdict,
    )


def _state(results: BenchResults) -> Row | None:
    sessions = [f for f in results.footprints if f.configuration.startswith("session/")]
    if not sessions:
        return None
    cells = ", ".join(
        f"{f.configuration.removeprefix('session/')} {f.bytes_per_session:,.0f} B ({f.kind})"
        for f in sessions
    )
    largest = max(sessions, key=lambda f: f.bytes_per_session)
    million = largest.bytes_per_session * 1e6 / 2**20
    return Row(
        "State and storage",
        "Sessions: stateful, server-side; JWTs: stateless, client-side — A Deep Dive",
        f"per session: {cells}",
        "0 B per access token; a login's refresh family is stored server-side",
        f"Borne out: a million logged-in sessions hold about {million:,.0f} MiB in "
        f"{largest.configuration.removeprefix('session/')}; an access token holds nothing "
        "on the server (its refresh token does, as a session would).",
    )


def _security(results: BenchResults) -> Row | None:
    revocations = {r.configuration: r for r in results.revocations}
    sessions, jwts = _sessions_and_jwt(results, list(revocations))
    if not sessions or not jwts:
        return None

    def cell(names: list[str], prefix: str) -> str:
        return "logout at A → refused at B, p50/max: " + ", ".join(
            f"{n.removeprefix(prefix)} {revocations[n].delay_ms.p50:,.0f}/"
            f"{revocations[n].delay_ms.max:,.0f} ms"
            for n in names
        )

    worst = max(revocations[n].delay_ms.max for n in jwts)
    verdict = (
        f"Not borne out here: a logged-out JWT was refused by the other instance within "
        f"{worst:,.0f} ms at worst: every instance follows Twofold's revocation stream. "
        "Without such a list a JWT stays valid until it expires (300 s by default)."
    )
    if worst >= 1000:
        verdict = (
            f"Partly borne out: a logged-out JWT was still accepted by the other instance "
            f"for up to {worst:,.0f} ms."
        )
    return Row(
        "Security (revocation)",
        "A compromised JWT can be used until it expires — A Deep Dive; JWTs are hard to "
        "revoke — How to Authenticate Users",
        cell(sessions, "session/"),
        cell(jwts, "JWT "),
        verdict,
    )


def _renewal(results: BenchResults) -> Row | None:
    costs = {c.name: c for c in results.costs}
    refresh = costs.get("refresh rotation")
    login = costs.get("password login")
    if refresh is None or login is None:
        return None
    rate = f", {refresh.per_second:,.0f}/s" if refresh.per_second else ""
    ratio = login.latency_ms.p50 / refresh.latency_ms.p50
    verdict = (
        f"A refresh costs {refresh.latency_ms.p50:,.2f} ms once per access-token lifetime; "
        f"a password login {login.latency_ms.p50:,.1f} ms "
    )
    verdict += (
        f"({ratio:,.0f}{TIMES} a refresh): renewal is the cheap part, its care is in the code."
        if ratio > 1
        else "(no dearer than a refresh)."
    )
    return Row(
        "Renewal",
        "Implementing JWTs requires careful handling of token expiration and renewal — A Deep Dive",
        "no renewal step (sliding expiry in the store); a new session is a password login, "
        f"p50 {login.latency_ms.p50:,.1f} ms",
        f"refresh rotation p50 {refresh.latency_ms.p50:,.2f} ms{rate}",
        verdict,
    )


_NOT_MEASURED = (
    ("Cross-domain", "Sessions: difficult to manage; JWTs: easily managed — A Deep Dive"),
    ("Use case", "Traditional web apps vs APIs and microservices — A Deep Dive"),
    ("Implementation complexity", "Simple vs requires careful handling — A Deep Dive"),
)


def comparison(results: BenchResults) -> list[Row]:
    """The table's rows: the measured ones this run has figures for, then the articles'
    rows that are not measurements."""
    rows = [
        row
        for make in (
            _token_size,
            _bandwidth,
            _per_request_check,
            _scalability,
            _state,
            _security,
            _renewal,
        )
        if (row := make(results)) is not None
    ]
    rows.extend(
        Row(criterion, claim, "—", "—", "Not a measurement: a design property.", measured=False)
        for criterion, claim in _NOT_MEASURED
    )
    return rows

"""One ``twofold bench`` run: every configuration measured on this machine, in one go.

For each configuration (three session stores, four JWT algorithms) the run starts two
``twofold serve`` instances on one store, registers and logs in a user through the API,
then measures bytes on the wire, HTTP throughput (``/healthz`` baseline and ``/auth/me``,
on one instance and on both where the store is shared), the revocation delay from one
instance to the other, and, with the instances stopped so that they take no CPU, the
in-process cost of recognising the credential. Store footprints and login and refresh
costs follow. A configuration whose store cannot be had, or whose servers do not start,
is skipped with the reason; the rest of the run goes on.

The steps run one after the other: the machine has few cores, and a measurement taken
while another runs would measure both.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from twofold.bench.configurations import ALGORITHMS, CONFIGURATIONS, Configuration
from twofold.bench.instances import Instance, stop_instances
from twofold.bench.results import (
    BenchResults,
    ClaimGrowth,
    Cost,
    Footprint,
    Machine,
    Revocation,
    Skipped,
    Throughput,
    Verification,
    WireBytes,
)
from twofold.bench.scenarios import stores
from twofold.bench.scenarios.credentials import Credential, login, register
from twofold.bench.scenarios.deploy import (
    Deployment,
    plan_deployments,
    start_deployment,
    start_deployments,
)
from twofold.bench.scenarios.http_load import LoadTool, measure_load
from twofold.bench.scenarios.revocation import measure_revocation
from twofold.bench.scenarios.session_check import measure_session_check
from twofold.bench.scenarios.wire import claim_growth, measure_wire
from twofold.bench.verification import measure as measure_jwt

__all__ = ["SECTIONS", "BenchOptions", "Plan", "Progress", "Section", "Silent", "run"]

Section = Literal["wire", "verification", "http", "revocation", "footprint", "costs"]
SECTIONS: tuple[Section, ...] = ("wire", "verification", "http", "revocation", "footprint", "costs")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Plan:
    """How long and how often each figure is sampled."""

    load_seconds: float
    connections: int
    revocation_rounds: int
    check_iterations: int
    #: Instances of a configuration whose store they can share.
    instances: int = 2
    #: /healthz on every deployment's servers (else only the first one's).
    baseline_everywhere: bool = True
    #: Instances of a JWT algorithm that has a deployment of its own.
    jwt_instances: int = 2
    #: Instances of the PostgreSQL and Redis deployments (the SQLite one always has two:
    #: the revocation delay of a session and of an ES256 token is measured there).
    shared_store_instances: int = 2
    #: Start every deployment's instances at once before measuring (the idle ones then
    #: share the machine with the one measured), instead of one deployment at a time.
    start_together: bool = False


QUICK = Plan(
    load_seconds=1.0,  # wrk takes whole seconds
    connections=8,
    revocation_rounds=3,
    check_iterations=300,
    baseline_everywhere=False,
    jwt_instances=1,
    shared_store_instances=1,
    start_together=True,
)
FULL = Plan(load_seconds=5.0, connections=32, revocation_rounds=20, check_iterations=5000)


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False
    postgres_url: str | None = None
    redis_url: str | None = None
    load_tool: LoadTool = "auto"
    sections: frozenset[Section] = frozenset(SECTIONS)

    @property
    def plan(self) -> Plan:
        return QUICK if self.quick else FULL


class Progress(Protocol):
    """Where the run is: ``step`` names what starts; the CLI shows it as a bar."""

    def start(self, total: int) -> None:
        """The run has ``total`` steps."""

    def step(self, description: str) -> None:
        """A step begins; the previous one is done."""


class Silent:
    """No progress shown."""

    def start(self, total: int) -> None:
        pass

    def step(self, description: str) -> None:
        pass


@dataclass
class _Collected:
    """Figures as they come in; frozen into :class:`BenchResults` at the end."""

    measured: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    wire: list[WireBytes] = field(default_factory=list)
    claim_growth: list[ClaimGrowth] = field(default_factory=list)
    verification: list[Verification] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)
    costs: list[Cost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _machine(options: BenchOptions) -> Machine:
    load = os.getloadavg()
    return Machine(
        cpus=os.cpu_count() or 1,
        python=platform.python_version(),
        platform=platform.platform(terse=True),
        load_average=(round(load[0], 2), round(load[1], 2), round(load[2], 2)),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        quick=options.quick,
        load_tool=_load_tool(options.load_tool),
    )


def _load_tool(requested: LoadTool) -> str:
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "builtin"
    return requested


class _Run:
    def __init__(self, options: BenchOptions, progress: Progress, work: Path) -> None:
        self.options = options
        self.plan = options.plan
        self.progress = progress
        self.work = work
        self.got = _Collected()
        self._baseline_taken = False

    def wants(self, section: Section) -> bool:
        return section in self.options.sections

    def attempt(self, what: str, measure: Callable[[], _T]) -> _T | None:
        """``measure()``, or None with the failure noted as a skip: one figure that
        cannot be taken does not end the run."""
        try:
            return measure()
        except Exception as exc:  # reported in the report, not hidden
            self.got.skipped.append(Skipped(what, _reason(exc)))
            return None

    # -- one deployment ------------------------------------------------------------

    def deployment(
        self, deployment: Deployment, started: list[Instance] | Exception | None = None
    ) -> None:
        """Measure the configurations ``deployment`` serves, starting its instances
        unless ``started`` has them (or why they did not start); stop them after."""
        label = " + ".join(c.name for c in deployment.configurations)
        if started is None:
            self.progress.step(f"{label}: starting {deployment.count} instance(s)")
            try:
                started = start_deployment(deployment)
            except Exception as exc:  # a server that does not start is a skip
                started = exc
        if isinstance(started, Exception):
            reason = f"the servers did not start: {_reason(started)}"
            self.got.skipped.extend(Skipped(c.name, reason) for c in deployment.configurations)
            return
        instances = started
        measured: list[Configuration] = []
        try:
            if self.wants("http"):
                self.progress.step(f"{label}: /healthz baseline")
                self._baseline(deployment, instances)
            for configuration in deployment.configurations:
                try:
                    self._over_http(configuration, instances)
                except Exception as exc:  # e.g. a refused login: reported
                    self.got.skipped.append(Skipped(configuration.name, _reason(exc)))
                else:
                    measured.append(configuration)
        finally:
            stop_instances(instances)
        for configuration in measured:
            self.got.measured.append(configuration.name)
            if self.wants("verification"):
                self.progress.step(f"{configuration.name}: in-process check")
                self._in_process(configuration, deployment)

    @staticmethod
    def _groups(urls: list[str]) -> list[list[str]]:
        """One instance, and all of them when there are several (every store here can be
        shared: SQLite by the processes of one machine)."""
        return [urls[:1], urls] if len(urls) > 1 else [urls[:1]]

    def _baseline(self, deployment: Deployment, instances: Sequence[Instance]) -> None:
        """``/healthz`` on the deployment's servers (a quick run: the first's only)."""
        if not (self.plan.baseline_everywhere or not self._baseline_taken):
            return
        self._baseline_taken = True
        urls = [instance.url for instance in instances]
        for group in self._groups(urls):
            figure = self.attempt(
                f"{deployment.name}: load on /healthz ({len(group)} instances)",
                partial(self._load, deployment.name, group, "/healthz", None),
            )
            if figure is not None:
                self.got.throughput.extend(
                    replace(figure, configuration=c.name) for c in deployment.configurations
                )

    def _load(
        self, name: str, urls: Sequence[str], path: str, headers: dict[str, str] | None
    ) -> Throughput:
        return measure_load(
            name,
            urls,
            path,
            headers=headers,
            duration=self.plan.load_seconds,
            connections=self.plan.connections,
            tool=self.options.load_tool,
        )

    def _over_http(self, configuration: Configuration, instances: Sequence[Instance]) -> None:
        name = configuration.name
        first = instances[0].url
        mode = configuration.mechanism
        email, password = register(first)
        credential = login(first, email, password, mode)
        if self.wants("wire"):
            self.progress.step(f"{name}: bytes on the wire")
            wire = self.attempt(
                f"{name}: bytes on the wire",
                lambda: measure_wire(name, first, credential.header, credential.value),
            )
            if wire is not None:
                self.got.wire.append(wire)
        if self.wants("http"):
            self.progress.step(f"{name}: HTTP load on /auth/me")
            for group in self._groups([i.url for i in instances]):
                load = self.attempt(
                    f"{name}: load on /auth/me ({len(group)} instances)",
                    partial(self._load, name, group, "/auth/me", credential.headers),
                )
                if load is not None:
                    self.got.throughput.append(load)
        if self.wants("revocation"):
            self.progress.step(f"{name}: revocation across instances")
            if len(instances) < 2:
                self.got.skipped.append(
                    Skipped(
                        f"{name}: revocation delay",
                        "a quick run starts one instance of this configuration (the "
                        "delays of a session and of a JWT are measured on SQLite)",
                    )
                )
                return

            def fresh() -> Credential:
                return login(first, email, password, mode)

            found = self.attempt(
                f"{name}: revocation delay",
                lambda: measure_revocation(
                    name, first, instances[-1].url, fresh, rounds=self.plan.revocation_rounds
                ),
            )
            if found is not None:
                self.got.revocations.append(found)

    def _in_process(self, configuration: Configuration, deployment: Deployment) -> None:
        name = configuration.name
        found: Verification | None
        if configuration.mechanism == "session":
            found = self.attempt(
                f"{name}: in-process session check",
                lambda: measure_session_check(
                    name,
                    deployment.data_dir,
                    database_url=deployment.database_url,
                    redis_url=deployment.redis_url,
                    iterations=self.plan.check_iterations,
                ),
            )
        else:
            algorithm = configuration.algorithm
            assert algorithm is not None

            def jwt() -> Verification:
                figure = measure_jwt(algorithm, quick=self.options.quick)
                return Verification(
                    name,
                    figure.ours,
                    "signature + claims",
                    baseline_name=figure.baseline_name,
                    baseline_us=figure.baseline,
                )

            found = self.attempt(f"{name}: in-process verification", jwt)
        if found is not None:
            self.got.verification.append(found)

    # -- the rest ------------------------------------------------------------------

    def claim_growth(self) -> None:
        self.progress.step("JWT size by number of roles")
        for algorithm in ALGORITHMS:
            found = self.attempt(f"JWT {algorithm}: size", partial(claim_growth, algorithm))
            if found is not None:
                self.got.claim_growth.append(found)

    def footprints(self, pg: stores.StoreURL, rd: stores.StoreURL) -> None:
        for configuration in CONFIGURATIONS:
            if configuration.mechanism != "session":
                continue
            name = configuration.name
            url = {"SQLite": None, "PostgreSQL": pg.url, "Redis": rd.url}[configuration.store]
            if configuration.store != "SQLite" and url is None:
                continue  # skipped with its configuration
            self.progress.step(f"{name}: store footprint")
            found = self.attempt(
                f"{name}: store footprint",
                partial(_footprint, configuration, url, quick=self.options.quick),
            )
            if found is not None:
                self.got.footprints.append(found)

    def costs(self) -> None:
        self.progress.step("login cost")
        found = self.attempt("login cost", lambda: _login_cost(quick=self.options.quick))
        if found is not None:
            self.got.costs.append(found)
        self.progress.step("refresh cost")
        found = self.attempt("refresh cost", lambda: _refresh_cost(quick=self.options.quick))
        if found is not None:
            self.got.costs.append(found)


def _footprint(configuration: Configuration, url: str | None, *, quick: bool) -> Footprint:
    from twofold.bench import store_costs

    figure = store_costs.session_footprint(configuration.store, url, quick=quick)
    return Footprint(
        configuration.name, figure.bytes_per_session, figure.kind, getattr(figure, "detail", "")
    )


def _login_cost(*, quick: bool) -> Cost:
    from twofold.bench import store_costs

    figure = store_costs.login_cost(quick=quick)
    return Cost("password login", figure.latency_ms, figure.per_second, figure.detail)


def _refresh_cost(*, quick: bool) -> Cost:
    from twofold.bench import store_costs

    figure = store_costs.refresh_cost(quick=quick)
    return Cost("refresh rotation", figure.latency_ms, figure.per_second, figure.detail)


def _reason(exc: BaseException) -> str:
    """One line: the error's first line and, for a server's log tail, its last line
    (the exception a traceback ends with), without the frames' boxes."""
    lines = [
        line.strip()
        for line in str(exc).splitlines()
        if line.strip() and line.strip()[0] not in "│╭╰─"
    ]
    if not lines:
        return type(exc).__name__
    text = lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"
    return text if len(text) <= 400 else f"{text[:400]}…"


def count_steps(options: BenchOptions) -> int:
    """How many times :meth:`Progress.step` will be called (at most)."""
    sections = options.sections
    per_configuration = sum(s in sections for s in ("wire", "http", "revocation", "verification"))
    steps = 2  # the stores
    if per_configuration:
        deployments = len(CONFIGURATIONS) - 1  # JWT ES256 shares the SQLite deployment
        steps += deployments * (1 + ("http" in sections))
        steps += per_configuration * len(CONFIGURATIONS)
    steps += "wire" in sections
    steps += 3 * ("footprint" in sections) + 2 * ("costs" in sections)
    return steps


@contextlib.contextmanager
def _work_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="twofold-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run(options: BenchOptions, progress: Progress | None = None) -> BenchResults:
    """Measure everything ``options`` asks for; never raises for a store or a figure
    that cannot be had (those are skips), only for a bug or an interrupt."""
    progress = progress or Silent()
    progress.start(count_steps(options))
    began = time.perf_counter()
    machine = _machine(options)
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(_work_dir())
        state = _Run(options, progress, work)
        progress.step("PostgreSQL")
        pg = stack.enter_context(stores.postgres(options.postgres_url))
        progress.step("Redis")
        rd = stack.enter_context(stores.redis(options.redis_url))
        planned = plan_deployments(
            work,
            pg,
            rd,
            jwt_instances=options.plan.jwt_instances,
            shared_store_instances=options.plan.shared_store_instances,
        )
        # A missing store is reported whatever was asked for.
        state.got.skipped.extend(d for d in planned if isinstance(d, Skipped))
        deployments = [d for d in planned if isinstance(d, Deployment)]
        if {"wire", "http", "revocation", "verification"} & options.sections:
            if options.plan.start_together:
                progress.step(f"starting {sum(d.count for d in deployments)} instances")
                everything = start_deployments(deployments)
                # Each deployment's instances are stopped after its measurements; these
                # stop the rest if the run ends early (an error, Ctrl-C).
                for started in everything:
                    if not isinstance(started, Exception):
                        stack.callback(stop_instances, started)
                for deployment, started in zip(deployments, everything, strict=True):
                    state.deployment(deployment, started)
            else:
                for deployment in deployments:
                    state.deployment(deployment)
        if "wire" in options.sections:
            state.claim_growth()
        if "footprint" in options.sections:
            state.footprints(pg, rd)
        if "costs" in options.sections:
            state.costs()
        got = state.got
    machine = replace(machine, seconds=time.perf_counter() - began)
    return BenchResults(
        machine=machine,
        measured=tuple(got.measured),
        skipped=tuple(got.skipped),
        wire=tuple(got.wire),
        claim_growth=tuple(got.claim_growth),
        verification=tuple(got.verification),
        throughput=tuple(got.throughput),
        footprints=tuple(got.footprints),
        revocations=tuple(got.revocations),
        costs=tuple(got.costs),
        notes=tuple(got.notes),
    )

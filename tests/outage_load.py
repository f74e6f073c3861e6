"""Tools for the store-outage tests (tests/test_outage.py): steady HTTP load that records
every answer with its time, and the readings taken from that record (when a route failed
closed, when it served again); a TCP relay that cuts one instance off from a store while
the others keep it; PostgreSQL and Redis restarts; logins and logouts.

Everything runs on 127.0.0.1, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType

import httpx

from .conftest import PASSWORD
from .services import Postgres

SESSION_COOKIE = "twofold_session"  # plain HTTP: no __Host- prefix
CLIENT_TIMEOUT = 10.0  # an answer slower than this is a hang


@dataclass(frozen=True, slots=True)
class Probe:
    """One request that a load client repeats: ``name`` says what it carries (``jwt``,
    ``revoked_session``, ``readyz``, ...), ``deployment`` and ``instance`` where it goes."""

    name: str
    deployment: str
    instance: str
    url: str
    method: str = "GET"
    path: str = "/auth/me"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, str] | None = None
    pause: float = 0.1  # seconds between requests


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request got. ``sent`` is ``time.monotonic()`` in the test process (the
    server's monotonic clock is the same one); ``status`` is None when no answer came
    (``failure`` names the exception: a client timeout is a hang)."""

    probe: str
    deployment: str
    instance: str
    sent: float
    took: float
    status: int | None
    error: str | None = None
    retry_after: str | None = None
    failure: str | None = None

    @property
    def received(self) -> float:
        return self.sent + self.took


def session_headers(session_id: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={session_id}"}


def bearer_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ask(client: httpx.Client, probe: Probe) -> Answer:
    """Send ``probe`` once and record the answer; never raises for a transport failure."""
    sent = time.monotonic()
    try:
        response = client.request(
            probe.method, probe.path, headers=dict(probe.headers), json=probe.body
        )
    except httpx.HTTPError as exc:
        return Answer(
            probe.name,
            probe.deployment,
            probe.instance,
            sent,
            time.monotonic() - sent,
            None,
            failure=type(exc).__name__,
        )
    finally:
        # Each probe carries its own credentials; a cookie set by an answer (a login, a
        # cleared session) must not ride along on the next request.
        client.cookies.clear()
    took = time.monotonic() - sent
    error = None
    if response.headers.get("content-type", "").startswith("application/json"):
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                error = body["error"]
    return Answer(
        probe.name,
        probe.deployment,
        probe.instance,
        sent,
        took,
        response.status_code,
        error,
        response.headers.get("retry-after"),
    )


class Load:
    """One client thread per probe, each repeating its request (``pause`` apart) until
    the load stops or it has sent ``max_requests``. Use as a context manager."""

    def __init__(
        self, probes: Sequence[Probe], *, timeout: float = CLIENT_TIMEOUT, max_requests: int = 1500
    ) -> None:
        self.answers: list[Answer] = []  # list.append is atomic: the threads share it
        self._timeout = timeout
        self._max_requests = max_requests
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(probe,), daemon=True) for probe in probes
        ]
        self.stuck: list[str] = []

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        deadline = time.monotonic() + self._timeout + 5
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self.stuck.append(thread.name)

    def snapshot(self) -> list[Answer]:
        return list(self.answers)

    def _run(self, probe: Probe) -> None:
        with _client(probe.url, self._timeout) as client:
            for _ in range(self._max_requests):
                if self._stop.is_set():
                    return
                self.answers.append(ask(client, probe))
                self._stop.wait(probe.pause)


def ask_once(probe: Probe) -> Answer:
    with _client(probe.url) as client:
        return ask(client, probe)


def _client(url: str, timeout: float = CLIENT_TIMEOUT) -> httpx.Client:
    # Plain HTTP on loopback: without verify=False httpx builds a TLS context (~50 ms).
    return httpx.Client(base_url=url, timeout=timeout, verify=False)  # noqa: S501


# -- reading the record ----------------------------------------------------------------


@dataclass
class Phase:
    """One outage and every answer the clients got in it; times are ``time.monotonic()``."""

    name: str
    affected: tuple[str, ...]  # the deployments that lost a store
    began: float = 0.0
    down_at: float = 0.0
    restart_at: float = 0.0  # the restart began: the store may answer from here on
    up_at: float = 0.0  # the store accepts clients again
    took: float = 0.0
    answers: list[Answer] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)  # client threads that never returned
    #: When a revocation made during or right after the outage was done, by deployment.
    revoked_at: dict[str, float] = field(default_factory=dict)
    revoke_failures: dict[str, str] = field(default_factory=dict)

    @property
    def restart_took(self) -> float:
        return self.up_at - self.restart_at


def answers_of(
    answers: Sequence[Answer], deployment: str, probe: str, instance: str = "X"
) -> list[Answer]:
    """One probe's answers, in the order they were asked for."""
    wanted = (deployment, probe, instance)
    return sorted(
        (a for a in answers if (a.deployment, a.probe, a.instance) == wanted),
        key=lambda a: a.sent,
    )


def during(answers: Sequence[Answer], phase: Phase) -> list[Answer]:
    """Answers to requests sent and answered while the store was surely down."""
    return [a for a in answers if a.sent >= phase.down_at and a.received < phase.restart_at]


def last_ok(answers: Sequence[Answer], phase: Phase) -> float | None:
    """Seconds into the outage of the last request served 200 while the store was down."""
    served = [a.sent - phase.down_at for a in during(answers, phase) if a.status == 200]
    return max(served, default=None)


def first_refusal(answers: Sequence[Answer], phase: Phase) -> Answer | None:
    """The first 503 that came while the store was down. Its request may have been sent
    just before: what needs PostgreSQL waits for a pooled connection (5 s) first."""
    refused = [a for a in answers if a.status == 503 and phase.down_at <= a.received < phase.up_at]
    return min(refused, key=lambda a: a.received, default=None)


def recovery(answers: Sequence[Answer], phase: Phase) -> float | None:
    """Seconds after the store returned from which every request was served 200; None
    while the last answer is not a 200."""
    after = [a for a in answers if a.sent >= phase.up_at]
    if not after or after[-1].status != 200:
        return None
    failing = [i for i, a in enumerate(after) if a.status != 200]
    recovered = after[failing[-1] + 1] if failing else after[0]
    return recovered.sent - phase.up_at


def write_record(path: Path, phases: Sequence[Phase]) -> None:
    """Every answer, one JSON object a line, timed from its phase's store going down."""
    with path.open("w") as record:
        for phase in phases:
            for answer in sorted(phase.answers, key=lambda a: a.sent):
                fields = dataclasses.asdict(answer) | {"phase": phase.name}
                fields["sent"] = round(answer.sent - phase.down_at, 3)
                record.write(json.dumps(fields) + "\n")


def show(phases: Sequence[Phase], answers: Sequence[Answer], limit: int = 12) -> str:
    """The first answers, each with its phase and time from the store going down."""
    lines = []
    for a in answers[:limit]:
        phase = next(p for p in phases if a in p.answers)
        lines.append(
            f"  {phase.name} {a.sent - phase.down_at:+.2f}s: {a.instance} {a.probe} "
            f"took {a.took:.2f}s -> {a.status} {a.error} retry-after={a.retry_after} "
            f"{a.failure or ''}"
        )
    return "\n".join(lines)


# -- logging in and out ------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str


def login_session(client: httpx.Client, email: str) -> Session:
    answer = client.post(
        "/auth/login", json={"email": email, "password": PASSWORD, "mode": "session"}
    )
    assert answer.status_code == 200, answer.text
    session = Session(answer.cookies[SESSION_COOKIE], answer.json()["csrf_token"])
    client.cookies.clear()
    return session


def login_token(client: httpx.Client, email: str) -> str:
    answer = client.post("/auth/login", json={"email": email, "password": PASSWORD, "mode": "jwt"})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def end_session(url: str, session: Session) -> httpx.Response:
    headers = {**session_headers(session.id), "X-CSRF-Token": session.csrf, "Origin": url}
    return httpx.post(f"{url}/auth/logout", headers=headers, timeout=CLIENT_TIMEOUT)


def end_token(url: str, token: str) -> httpx.Response:
    return httpx.post(f"{url}/auth/logout", headers=bearer_headers(token), timeout=CLIENT_TIMEOUT)


def revoke(url: str, sessions: Sequence[Session], tokens: Sequence[str], limit: float) -> float:
    """Log out ``sessions`` and ``tokens`` at ``url``, retrying for up to ``limit``
    seconds while the instance answers 503; returns when all are done. A 401 after a 503
    counts as done: the first attempt ended the session before a later step failed."""
    deadline = time.monotonic() + limit
    ends: list[Callable[[], httpx.Response]] = [
        *(partial(end_session, url, session) for session in sessions),
        *(partial(end_token, url, token) for token in tokens),
    ]
    for end in ends:
        refused = False
        while True:
            answer = end()
            if answer.status_code == 204 or (answer.status_code == 401 and refused):
                break
            if answer.status_code != 503 or time.monotonic() > deadline:
                raise AssertionError(f"logout answered {answer.status_code}: {answer.text}")
            refused = True
            time.sleep(0.1)
    return time.monotonic()


# -- cutting and restarting stores -------------------------------------------------------


class _Pair:
    """The two sockets of one relayed connection; closed when both directions are done."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self.sockets = (a, b)
        self._lock = threading.Lock()
        self._done = 0

    def shutdown(self) -> None:
        # shutdown (not close) wakes a thread blocked in recv without freeing its fd.
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def finished(self) -> None:
        with self._lock:
            self._done += 1
            last = self._done == 2
        if last:
            for sock in self.sockets:
                sock.close()


class TcpProxy:
    """A TCP relay on 127.0.0.1 to ``upstream_port``. While cut, its live connections are
    ended and new ones are reset at once: the store is unreachable for whoever connects
    through the relay only, and reachable again after :meth:`restore`."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._threads: list[threading.Thread] = []
        self._cut = False
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            pairs = list(self._pairs)
        for pair in pairs:
            pair.shutdown()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._acceptor.join(5)
        self._listener.close()
        for thread in list(self._threads):
            thread.join(5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                cut = self._cut
            if cut:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream), timeout=2)
            except OSError:
                _reset(client)  # the store itself is down: refuse as it would
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.add(pair)
                if self._cut:
                    pair.shutdown()
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            pair.shutdown()  # one side gone: the connection is over both ways
            with self._lock:
                self._pairs.discard(pair)
            pair.finished()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (linger 0), as a host that refuses the connection would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def await_redis(port: int, timeout: float = 30) -> None:
    """Return once the Redis on ``port`` answers PING (it answers LOADING while it reads
    its append-only file)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
            sock.settimeout(1)
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith(b"+PONG"):
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Redis on port {port} does not answer PING")
        time.sleep(0.02)


def await_postgres(postgres: Postgres, timeout: float = 30) -> None:
    """Return once PostgreSQL accepts a client: listening is not accepting, and after a
    crash it refuses clients while it replays its log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            postgres.psql("SELECT 1")
            return
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class QuickRecoveryPostgres(Postgres):
    """A private PostgreSQL with ``fsync=off``. After a crash PostgreSQL first fsyncs its
    whole data directory, which on a busy test machine took 10 s before it accepted a
    client; without fsync it replays its log at once. Nothing is lost when only the
    server dies (the kernel still holds every write), and the client side is the same."""

    def _command(self) -> list[str]:
        return [*super()._command(), "-c", "fsync=off"]


def fast_shutdown(server: Postgres) -> None:
    """PostgreSQL's fast shutdown (SIGINT): connections are ended with "terminating
    connection due to administrator command", then the server exits.

    ``Server.stop`` sends SIGTERM, PostgreSQL's *smart* shutdown, which waits for every
    client to disconnect: with a connection pool attached it never finishes on its own
    (``stop`` gives up after 30 s and sends SIGKILL)."""
    proc = server.proc
    assert proc is not None, "the PostgreSQL server is not running"
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)  # the postmaster only: it ends its backends
    proc.wait(timeout=30)
    server.proc = None

"""Write load against a real ``twofold serve`` (tests/processes.py) for the durability
tests: registrations, password changes and Bearer logouts from several threads at once,
each request recorded with what became of it, until the server is killed mid-load; and
the report of what the restarted server still knows of them."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import httpx

Kind = Literal["register", "password", "logout"]
KINDS: tuple[Kind, ...] = ("register", "password", "logout")

#: Seconds between the paced logouts of one thread during the warm-up.
LOGOUT_INTERVAL = 0.2
#: Seconds before the kill when the rest of the logouts go, back to back.
BURST_LEAD = 0.03

#: The success answer of each kind of write: only this status acknowledges it.
ACKNOWLEDGING_STATUS: dict[Kind, int] = {"register": 201, "password": 200, "logout": 204}


class Fate(Enum):
    """What a write's client saw."""

    #: Its success answer arrived: the server promises the write is stored.
    ACKNOWLEDGED = "acknowledged"
    #: Another answer arrived (a 503, say): nothing promised either way.
    REFUSED = "refused"
    #: Sent before the kill and never answered: it may or may not have been stored.
    IN_FLIGHT = "in flight"
    #: Begun as the kill was under way and never answered (it may have reached the server).
    AFTER_KILL = "after kill"
    #: No answer although nothing was killed: the server broke or hung.
    FAILED = "failed"


def new_email() -> str:
    return f"durable-{uuid.uuid4().hex[:16]}@example.com"


def new_password() -> str:
    return f"durable {secrets.token_hex(8)} staple"


def token_iat(access_token: str) -> int:
    """The ``iat`` of an access token, read without verifying it (for test bookkeeping)."""
    payload = access_token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return int(claims["iat"])


@dataclass(frozen=True, slots=True)
class Login:
    """An account and one JWT login of it: a token family of its own."""

    email: str
    password: str
    access_token: str
    refresh_token: str


@dataclass(slots=True)
class Write:
    """One write request. ``password`` is the registered password or, for a change, the
    current one; ``login`` holds the tokens the request was authenticated with; a change
    acknowledged leaves its new pair in ``answer``."""

    kind: Kind
    email: str
    password: str
    login: Login | None = None
    new_password: str | None = None
    answer: Login | None = None
    fate: Fate = Fate.FAILED
    status: int | None = None
    #: Wall-clock time just before the request was sent (the server's clock is the same).
    sent_at: float = 0.0


def client(url: str) -> httpx.Client:
    # No retries (httpx makes none by default): one request, one recorded fate. Plain HTTP
    # on loopback: verify=False spares building a TLS context (~50 ms) per client.
    return httpx.Client(base_url=url, timeout=15, verify=False)  # noqa: S501


def jwt_login(http: httpx.Client, email: str, password: str) -> httpx.Response:
    return http.post("/auth/login", json={"email": email, "password": password, "mode": "jwt"})


class WriteLoad:
    """Threads writing to one server: ``registrars`` threads register new accounts, one
    thread per account in ``chains`` changes that account's password again and again
    (each change authenticated by the previous change's new access token), and
    ``loggers_out`` threads log out the logins in ``families``."""

    def __init__(self, url: str, *, registrars: int = 2, loggers_out: int = 2) -> None:
        self.url = url
        self.registrars = registrars
        self.loggers_out = loggers_out
        self.chains: list[Login] = []
        self.families: list[Login] = []
        #: Logins nobody touches: their tokens must still work after the restart, which
        #: shows that a refusal elsewhere is a revocation and not a lost key.
        self.controls: list[Login] = []
        self.writes: list[Write] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._burst = threading.Event()
        self._killed_at: float | None = None
        self._to_log_out: deque[Login] = deque()
        self._paced = 0

    # -- before the load ---------------------------------------------------------------

    def prepare(self, *, chains: int, families: int, controls: int, per_user: int = 10) -> None:
        """Register the accounts and make the logins the load works on."""
        users = -(-(families + controls) // per_user)
        accounts = [(new_email(), new_password()) for _ in range(chains + users)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda account: self._register(*account), accounts))
            chain_accounts, family_accounts = accounts[:chains], accounts[chains:]
            owners = [family_accounts[i % users] for i in range(families + controls)]
            logins = list(pool.map(lambda account: self._login(*account), chain_accounts + owners))
        self.chains = logins[:chains]
        self.families = logins[chains : chains + families]
        self.controls = logins[chains + families :]

    def _register(self, email: str, password: str) -> None:
        with client(self.url) as http:
            answer = http.post("/auth/register", json={"email": email, "password": password})
        assert answer.status_code == 201, answer.text

    def _login(self, email: str, password: str) -> Login:
        with client(self.url) as http:
            answer = jwt_login(http, email, password)
        assert answer.status_code == 200, answer.text
        pair = answer.json()
        return Login(email, password, pair["access_token"], pair["refresh_token"])

    # -- the load ----------------------------------------------------------------------

    def run(
        self,
        kill: Callable[[], None],
        *,
        warm: int,
        then: float,
        timeout: float = 20,
    ) -> None:
        """Write from every thread until ``warm`` writes of each kind are acknowledged
        (or ``timeout`` seconds pass), ``then`` seconds more, and call ``kill`` (which
        must not return before the server is dead) while requests are in flight; wait
        for the threads to notice."""
        self._to_log_out = deque(self.families)
        # A logout takes milliseconds, and each needs a login made beforehand (an Argon2
        # hash), so there are few: a third go out paced during the warm-up, the rest
        # back to back from just before the kill, so that some are in flight when it comes.
        self._paced = len(self.families) // 3
        threads = [threading.Thread(target=self._registering) for _ in range(self.registrars)]
        threads += [threading.Thread(target=self._changing, args=(login,)) for login in self.chains]
        threads += [threading.Thread(target=self._logging_out) for _ in range(self.loggers_out)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + timeout
            while not self._warm(warm) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(max(0.0, then - BURST_LEAD))
            self._burst.set()
            time.sleep(min(then, BURST_LEAD))
        finally:
            self._killed_at = time.monotonic()
            self._stop.set()
            self._burst.set()
            try:
                kill()
            finally:
                for thread in threads:
                    thread.join(timeout=30)

    def _warm(self, warm: int) -> bool:
        with self._lock:
            acknowledged = Counter(w.kind for w in self.writes if w.fate is Fate.ACKNOWLEDGED)
        return all(acknowledged[kind] >= warm for kind in KINDS)

    def _send(
        self, http: httpx.Client, write: Write, path: str, body: dict[str, str] | None = None
    ) -> httpx.Response | None:
        """Send one write and record its fate; the answer if one came."""
        headers = {}
        if write.login is not None:
            headers["Authorization"] = f"Bearer {write.login.access_token}"
        started = time.monotonic()
        write.sent_at = time.time()
        try:
            answer = http.post(path, json=body, headers=headers)
        except httpx.TransportError:
            killed_at = self._killed_at
            if killed_at is None:
                write.fate = Fate.FAILED
            else:
                write.fate = Fate.IN_FLIGHT if started < killed_at else Fate.AFTER_KILL
            self._record(write)
            return None
        write.status = answer.status_code
        acknowledged = answer.status_code == ACKNOWLEDGING_STATUS[write.kind]
        write.fate = Fate.ACKNOWLEDGED if acknowledged else Fate.REFUSED
        self._record(write)
        return answer

    def _record(self, write: Write) -> None:
        with self._lock:
            self.writes.append(write)

    def _registering(self) -> None:
        with client(self.url) as http:
            while not self._stop.is_set():
                write = Write("register", new_email(), new_password())
                self._send(
                    http,
                    write,
                    "/auth/register",
                    {"email": write.email, "password": write.password},
                )
                if write.fate is not Fate.ACKNOWLEDGED:
                    return

    def _changing(self, login: Login) -> None:
        with client(self.url) as http:
            while not self._stop.is_set():
                write = Write("password", login.email, login.password, login, new_password())
                assert write.new_password is not None
                body = {"current_password": login.password, "new_password": write.new_password}
                answer = self._send(http, write, "/auth/password", body)
                if answer is None or write.fate is not Fate.ACKNOWLEDGED:
                    return  # the account's password is now unknown: leave it alone
                pair = answer.json()
                login = Login(
                    login.email, write.new_password, pair["access_token"], pair["refresh_token"]
                )
                write.answer = login

    def _logging_out(self) -> None:
        with client(self.url) as http:
            while True:
                with self._lock:
                    pace = self._paced > 0
                    self._paced -= pace
                if not pace:
                    self._burst.wait()
                with self._lock:
                    if self._stop.is_set() or not self._to_log_out:
                        return
                    login = self._to_log_out.popleft()
                write = Write("logout", login.email, login.password, login)
                self._send(http, write, "/auth/logout")
                if write.fate is not Fate.ACKNOWLEDGED:
                    return
                if pace:
                    self._stop.wait(LOGOUT_INTERVAL)

    # -- afterwards --------------------------------------------------------------------

    def counts(self) -> Counter[tuple[Kind, Fate]]:
        return Counter((write.kind, write.fate) for write in self.writes)

    def chain_of(self, start: Login) -> list[Write]:
        """The password changes made to ``start``'s account, in order."""
        return [w for w in self.writes if w.kind == "password" and w.email == start.email]


@dataclass(frozen=True, slots=True)
class Finding:
    """Something wrong after the restart. ``write`` is the write it concerns; an
    acknowledged one is lost, an unacknowledged one was left half-done."""

    write: Write
    what: str

    @property
    def lost(self) -> bool:
        return self.write.fate is Fate.ACKNOWLEDGED


@dataclass(frozen=True, slots=True)
class Report:
    """How many writes of each kind met each fate, were lost or were left half-done."""

    counts: dict[Kind, dict[str, int]]

    @classmethod
    def of(cls, load: WriteLoad, findings: list[Finding]) -> Report:
        seen = load.counts()
        lost = {id(f.write) for f in findings if f.lost}
        half = {id(f.write) for f in findings if not f.lost}
        counts: dict[Kind, dict[str, int]] = {}
        for kind in KINDS:
            row = {fate.value: seen[(kind, fate)] for fate in Fate}
            row["lost"] = sum(1 for w in load.writes if w.kind == kind and id(w) in lost)
            row["half-done"] = sum(1 for w in load.writes if w.kind == kind and id(w) in half)
            counts[kind] = row
        return cls(counts)

    def __str__(self) -> str:
        columns = [*(fate.value for fate in Fate), "lost", "half-done"]
        lines = ["".join(f"{c:>14}" for c in ["", *columns])]
        for kind, row in self.counts.items():
            lines.append(f"{kind:>14}" + "".join(f"{row[c]:>14}" for c in columns))
        return "\n".join(lines)

    def total(self, column: str) -> int:
        return sum(row[column] for row in self.counts.values())

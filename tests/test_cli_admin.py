"""The admin commands of `twofold`: keys, user lock/unlock/roles, sessions, audit and
clients, run against a real SQLite data directory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import PASSWORD, make_settings
from twofold.authority import Origin
from twofold.cli import app
from twofold.errors import InvalidClient, NotAuthenticated
from twofold.runtime import Runtime

runner = CliRunner()
FAST = {"TWOFOLD_ARGON2_PROFILE": "owasp-minimum", "TWOFOLD_HASH_WORKERS": "1"}
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 Twofold-Test"

_T = TypeVar("_T")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def twofold(data: Path, *args: str, input: str | None = None) -> Result:
    return runner.invoke(app, [*args, "--data-dir", str(data)], input=input, env=FAST)


def ok(data: Path, *args: str) -> Result:
    result = twofold(data, *args)
    assert result.exit_code == 0, result.output
    return result


def rows(result: Result) -> list[list[str]]:
    return [line.split("\t") for line in result.stdout.splitlines()]


def add_user(data: Path, email: str, *roles: str) -> None:
    role_args = [arg for role in roles for arg in ("--role", role)]
    result = twofold(data, "user", "add", email, *role_args, input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output


def users(data: Path) -> dict[str, list[str]]:
    """e-mail -> [id, roles, state] from `user list`."""
    return {
        email: [uid, roles, state] for uid, email, roles, state in rows(ok(data, "user", "list"))
    }


def with_runtime(data: Path, action: Callable[[Runtime], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        runtime = await Runtime.start(make_settings(data))
        try:
            return await action(runtime)
        finally:
            await runtime.close()

    return asyncio.run(run())


def assert_one_line_error(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == f"error: {message}"
    assert result.stdout == ""


# -- keys ------------------------------------------------------------------------------


def test_keys_rotate_keeps_the_old_key_verifying(data: Path) -> None:
    """A normal rotation prints the new kid and the previous one, which is listed as
    `verify` with a retire-after time while the new key is `active`."""
    ok(data, "migrate")
    [[first_kid, _, first_state, _, _]] = rows(ok(data, "keys", "list"))
    assert first_state == "active"
    [[kid, alg, previous]] = rows(ok(data, "keys", "rotate"))
    assert previous == first_kid
    assert alg == "ES256"
    listed = {row[0]: row for row in rows(ok(data, "keys", "list"))}
    assert set(listed) == {first_kid, kid}
    assert listed[first_kid][2] == "verify"
    assert listed[first_kid][4].endswith("Z")  # retire after, ISO UTC
    assert listed[kid][1:3] == ["ES256", "active"]
    assert listed[kid][4] == ""
    assert listed[kid][3].endswith("Z")
    assert listed[kid][3][10] == "T"


def test_keys_rotate_compromised_retires_every_old_key(data: Path) -> None:
    """--compromised retires the active key and the ones still verifying, at once."""
    ok(data, "migrate")
    [[first, _, _]] = rows(ok(data, "keys", "rotate"))
    [[second, _, previous]] = rows(ok(data, "keys", "rotate", "--compromised"))
    states = {row[0]: row[2] for row in rows(ok(data, "keys", "list"))}
    assert len(states) == 3
    assert states[second] == "active"
    assert set(previous.split(",")) == set(states) - {second}
    assert first in previous.split(",")
    assert [s for k, s in states.items() if k != second] == ["retired", "retired"]


# -- users -----------------------------------------------------------------------------


def test_user_lock_and_unlock_change_the_listed_state(data: Path) -> None:
    """lock/unlock find the user by any spelling of the address or by id."""
    add_user(data, "a@example.com")
    uid = users(data)["a@example.com"][0]
    ok(data, "user", "lock", "A@Example.com")
    assert users(data)["a@example.com"][2] == "locked"
    ok(data, "user", "unlock", uid)
    assert users(data)["a@example.com"][2] == "active"


def test_user_lock_ends_live_sessions(data: Path) -> None:
    """Locking an account ends its sessions at once, not when they expire."""
    add_user(data, "a@example.com")

    async def login(runtime: Runtime) -> str:
        login = await runtime.authority.login_session(
            "a@example.com", PASSWORD, origin=Origin(), replacing=None
        )
        return login.session.id

    session_id = with_runtime(data, login)
    assert len(rows(ok(data, "sessions", "list"))) == 1
    ok(data, "user", "lock", "a@example.com")
    assert rows(ok(data, "sessions", "list")) == []

    async def resolve(runtime: Runtime) -> None:
        await runtime.authority.session_principal(session_id)

    with pytest.raises(NotAuthenticated):
        with_runtime(data, resolve)


def test_user_roles_sets_exactly_the_given_roles(data: Path) -> None:
    """`user roles` replaces the roles (the implicit `user` role included) and prints them."""
    add_user(data, "a@example.com", "admin")
    result = ok(data, "user", "roles", "a@example.com", "--role", "auditor", "--role", "ops")
    assert result.stdout.strip() == "auditor,ops"
    assert users(data)["a@example.com"][1] == "auditor,ops"


@pytest.mark.parametrize(
    "command",
    [
        ["user", "lock", "nobody@example.com"],
        ["user", "unlock", "00000000-0000-0000-0000-000000000000"],
        ["user", "roles", "nobody@example.com", "--role", "admin"],
        ["audit", "--user", "nobody@example.com"],
    ],
    ids=["lock", "unlock-by-id", "roles", "audit-filter"],
)
def test_an_unknown_user_is_a_one_line_error(data: Path, command: list[str]) -> None:
    """An address or id of no account exits 1 with one line, not a traceback."""
    add_user(data, "a@example.com")
    assert_one_line_error(twofold(data, *command), "No such user.")


def test_bad_roles_are_a_one_line_error(data: Path) -> None:
    """A role name the core refuses is reported, and the roles are left as they were."""
    add_user(data, "a@example.com")
    result = twofold(data, "user", "roles", "a@example.com", "--role", "Not A Role")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Roles are")
    assert users(data)["a@example.com"][1] == "user"


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "list"],
        ["keys", "rotate"],
        ["user", "lock", "a@example.com"],
        ["sessions", "list"],
        ["audit"],
        ["client", "add", "rs"],
        ["client", "list"],
    ],
    ids=["keys-list", "keys-rotate", "user-lock", "sessions", "audit", "client-add", "clients"],
)
def test_admin_commands_need_an_existing_database(tmp_path: Path, command: list[str]) -> None:
    """A mistyped --data-dir is an error, not a new empty store (with a fresh key)."""
    elsewhere = tmp_path / "elsewhere"
    result = twofold(elsewhere, *command)
    assert result.exit_code == 1
    assert "no database" in result.stderr
    assert not elsewhere.exists()


# -- sessions --------------------------------------------------------------------------


def _log_in_both_ways(data: Path, email: str) -> tuple[str, str]:
    """A session and a token family for ``email``; returns (session id, family handle)."""

    async def login(runtime: Runtime) -> tuple[str, str]:
        origin = Origin(client_address="203.0.113.7", user_agent=FIREFOX)
        session = await runtime.authority.login_session(
            email, PASSWORD, origin=origin, replacing=None
        )
        tokens = await runtime.authority.login_token(email, PASSWORD, origin=Origin("198.51.100.2"))
        return session.session.id, "f_" + tokens.refresh.family.id

    return with_runtime(data, login)


def test_sessions_list_shows_who_is_logged_in(data: Path) -> None:
    """Both a cookie session and a token family are listed with the user's address, the
    client address and the whole user agent (piped output is not truncated)."""
    add_user(data, "a@example.com")
    session_id, family = _log_in_both_ways(data, "a@example.com")
    listed = {row[0]: row for row in rows(ok(data, "sessions", "list"))}
    assert len(listed) == 2
    session = next(row for handle, row in listed.items() if handle.startswith("s_"))
    assert session[1:5] == ["session", "a@example.com", "203.0.113.7", FIREFOX]
    assert listed[family][1:5] == ["token_family", "a@example.com", "198.51.100.2", ""]
    last_seen, expires = session[5], session[6]
    assert last_seen.endswith("Z")
    assert expires > last_seen
    # The handle names the session without being its id (the cookie value).
    assert session_id not in ok(data, "sessions", "list").stdout


def test_sessions_list_pages(data: Path) -> None:
    """--limit and --offset page the sessions."""
    add_user(data, "a@example.com")

    async def login_three(runtime: Runtime) -> None:
        for _ in range(3):
            await runtime.authority.login_session(
                "a@example.com", PASSWORD, origin=Origin(), replacing=None
            )

    with_runtime(data, login_three)
    everything = {row[0] for row in rows(ok(data, "sessions", "list"))}
    first = {row[0] for row in rows(ok(data, "sessions", "list", "--limit", "2"))}
    rest = {row[0] for row in rows(ok(data, "sessions", "list", "--limit", "2", "--offset", "2"))}
    assert len(everything) == 3
    assert len(first) == 2
    assert len(rest) == 1
    assert first | rest == everything


def test_sessions_revoke_ends_a_session_and_a_family(data: Path) -> None:
    """`sessions revoke HANDLE` ends that session (its id stops working) or family, is
    audited, and a second revoke of the same handle is a one-line error."""
    add_user(data, "a@example.com")
    session_id, family = _log_in_both_ways(data, "a@example.com")
    handle = next(row[0] for row in rows(ok(data, "sessions", "list")) if row[1] == "session")
    result = ok(data, "sessions", "revoke", handle)
    assert "a@example.com" in result.stderr
    assert [row[0] for row in rows(ok(data, "sessions", "list"))] == [family]

    async def resolve(runtime: Runtime) -> None:
        await runtime.authority.session_principal(session_id)

    with pytest.raises(NotAuthenticated):
        with_runtime(data, resolve)
    ok(data, "sessions", "revoke", family)
    assert rows(ok(data, "sessions", "list")) == []
    assert_one_line_error(twofold(data, "sessions", "revoke", handle), "No such session or device.")
    revoked = rows(ok(data, "audit", "--kind", "session_revoked"))
    assert [json.loads(row[6])["device"] for row in revoked] == [family, handle]
    assert {row[3] for row in revoked} == {"a@example.com"}


def test_sessions_table_truncates_the_user_agent(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the user agent is cut to 40 characters; the handle is whole."""
    add_user(data, "a@example.com")
    _log_in_both_ways(data, "a@example.com")
    handle = next(row[0] for row in rows(ok(data, "sessions", "list")) if row[1] == "session")
    monkeypatch.setattr("twofold.cli.common.is_terminal", lambda: True)
    result = runner.invoke(
        app,
        ["sessions", "list", "--data-dir", str(data)],
        env={**FAST, "COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert FIREFOX[:39] + "…" in result.stdout
    assert FIREFOX not in result.stdout
    assert handle in result.stdout
    assert "\t" not in result.stdout


# -- audit -----------------------------------------------------------------------------


def _admin_history(data: Path) -> None:
    add_user(data, "a@example.com")
    add_user(data, "b@example.com")
    ok(data, "user", "lock", "a@example.com")
    ok(data, "user", "roles", "b@example.com", "--role", "user", "--role", "admin")
    ok(data, "keys", "rotate")


def test_audit_lists_admin_events_newest_first(data: Path) -> None:
    """Lock, role change and key rotation are listed newest first with the user's
    address, no actor (the CLI) and compact JSON detail."""
    _admin_history(data)
    listed = rows(ok(data, "audit"))
    seqs = [int(row[0]) for row in listed]
    assert seqs == sorted(seqs, reverse=True)
    by_kind = {row[2]: row for row in listed}
    kinds = [row[2] for row in listed]
    assert kinds.index("key_rotated") < kinds.index("roles_changed")
    assert kinds.index("roles_changed") < kinds.index("account_locked")
    assert by_kind["account_locked"][3:7] == ["a@example.com", "", "", "{}"]
    assert by_kind["roles_changed"][3] == "b@example.com"
    assert by_kind["roles_changed"][6] == '{"after":["user","admin"],"before":["user"]}'
    rotated = json.loads(by_kind["key_rotated"][6])
    assert rotated["compromised"] is False
    assert len(rotated["previous"]) == 1
    assert by_kind["key_rotated"][1].endswith("Z")


def test_audit_filters_by_kind_and_user(data: Path) -> None:
    """--kind and --user (address or id) narrow the page to matching events only."""
    _admin_history(data)
    [locked] = rows(ok(data, "audit", "--kind", "account_locked"))
    assert locked[2:4] == ["account_locked", "a@example.com"]
    of_b = rows(ok(data, "audit", "--user", "B@example.com"))
    assert [row[2] for row in of_b] == ["roles_changed"]
    b_id = users(data)["b@example.com"][0]
    assert rows(ok(data, "audit", "--user", b_id)) == of_b
    assert rows(ok(data, "audit", "--user", "a@example.com", "--kind", "roles_changed")) == []


def test_audit_pages_with_limit_and_before(data: Path) -> None:
    """A full page hints the --before value on stderr; following it gives older events,
    and the last, partial page gives no hint."""
    _admin_history(data)
    everything = rows(ok(data, "audit"))
    assert len(everything) >= 3
    first = ok(data, "audit", "--limit", "2")
    assert rows(first) == everything[:2]
    assert f"--before {everything[1][0]}" in first.stderr
    second = ok(data, "audit", "--limit", "2", "--before", everything[1][0])
    assert rows(second) == everything[2:4]
    last = ok(data, "audit", "--before", everything[-1][0])
    assert rows(last) == []
    assert "--before" not in last.stderr


def test_audit_refuses_an_unknown_kind(data: Path) -> None:
    """A misspelt --kind is a usage error naming the kinds, not an empty page."""
    add_user(data, "a@example.com")
    result = twofold(data, "audit", "--kind", "acount_locked")
    assert result.exit_code == 2
    assert "account_locked" in result.stderr


# -- clients ---------------------------------------------------------------------------


def test_client_add_prints_a_secret_that_authenticates_once(data: Path) -> None:
    """The id and secret go to stdout once, with a warning on stderr; the secret then
    authenticates, and `client list` shows the client but never the secret."""
    ok(data, "migrate")
    added = ok(data, "client", "add", "billing-api")
    [[client_id, secret]] = rows(added)
    assert "not be shown again" in added.stderr
    assert secret not in added.stderr

    async def authenticate(runtime: Runtime) -> tuple[str, str]:
        client = await runtime.clients.authenticate(client_id, secret)
        return client.id, client.name

    assert with_runtime(data, authenticate) == (client_id, "billing-api")
    listed = ok(data, "client", "list")
    [[listed_id, name, created]] = rows(listed)
    assert (listed_id, name) == (client_id, "billing-api")
    assert created.endswith("Z")
    assert secret not in listed.output
    [event] = rows(ok(data, "audit", "--kind", "client_added"))
    assert json.loads(event[6]) == {"client": client_id, "name": "billing-api"}
    assert secret not in event[6]


def test_client_remove_revokes_the_credentials(data: Path) -> None:
    """A removed client can no longer authenticate; removing it again exits 1."""
    ok(data, "migrate")
    [[client_id, secret]] = rows(ok(data, "client", "add", "billing-api"))
    [[other_id, _]] = rows(ok(data, "client", "add", "search"))
    ok(data, "client", "remove", client_id)
    assert [row[:2] for row in rows(ok(data, "client", "list"))] == [[other_id, "search"]]

    async def authenticate(runtime: Runtime) -> None:
        await runtime.clients.authenticate(client_id, secret)

    with pytest.raises(InvalidClient):
        with_runtime(data, authenticate)
    assert_one_line_error(twofold(data, "client", "remove", client_id), "No such client.")
    [event] = rows(ok(data, "audit", "--kind", "client_removed"))
    assert json.loads(event[6]) == {"client": client_id, "name": "billing-api"}


def test_client_add_refuses_a_bad_name(data: Path) -> None:
    """A name the core refuses is a one-line error and nothing is registered."""
    ok(data, "migrate")
    result = twofold(data, "client", "add", "bad name!")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: A client name is 1-64")
    assert rows(ok(data, "client", "list")) == []


def test_sessions_end_for_one_user_or_everyone(data: Path) -> None:
    """`sessions end --user` ends that user's sessions and families only; `--all` ends
    everyone's; exactly one of the two is required."""
    add_user(data, "a@example.com")
    add_user(data, "b@example.com")
    _log_in_both_ways(data, "a@example.com")
    _log_in_both_ways(data, "b@example.com")
    assert "Ended 2 " in ok(data, "sessions", "end", "--user", "a@example.com").stderr
    assert {row[2] for row in rows(ok(data, "sessions", "list"))} == {"b@example.com"}
    assert "Ended 2 " in ok(data, "sessions", "end", "--all").stderr
    assert rows(ok(data, "sessions", "list")) == []
    assert twofold(data, "sessions", "end").exit_code == 2
    assert twofold(data, "sessions", "end", "--all", "--user", "a@example.com").exit_code == 2
    assert_one_line_error(
        twofold(data, "sessions", "end", "--user", "nobody@example.com"), "No such user."
    )


def test_client_remove_by_name(data: Path) -> None:
    """A client can be removed by the name it was added with, as well as by its id."""
    add_user(data, "a@example.com")  # makes the data directory
    ok(data, "client", "add", "billing-api")
    ok(data, "client", "remove", "billing-api")
    assert rows(ok(data, "client", "list")) == []
    assert_one_line_error(twofold(data, "client", "remove", "billing-api"), "No such client.")


@pytest.mark.parametrize("role", ["has space", "Upper", "x" * 40, ""])
def test_user_add_refuses_malformed_roles(data: Path, role: str) -> None:
    """`user add --role` follows the same role rules as `user roles` and the API."""
    result = twofold(data, "user", "add", "a@example.com", "--role", role, input=PASSWORD + "\n")
    assert result.exit_code == 1, result.output
    assert "Roles are at most" in result.stderr

"""The twofold command: user add/list, migrate, openapi, and serve as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.conftest import PASSWORD
from twofold.cli import app

runner = CliRunner()
FAST = {"TWOFOLD_ARGON2_PROFILE": "owasp-minimum", "TWOFOLD_HASH_WORKERS": "1"}


def test_user_add_reads_the_password_from_stdin_and_lists(tmp_path: Path) -> None:
    """`user add` takes the password from a non-terminal stdin; `user list` shows roles."""
    data = str(tmp_path / "data")
    added = runner.invoke(
        app,
        ["user", "add", "Admin@Example.com", "--role", "admin", "--data-dir", data],
        input=PASSWORD + "\n",
        env=FAST,
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["user", "list", "--data-dir", data], env=FAST)
    assert listed.exit_code == 0, listed.output
    assert "admin@example.com" in listed.output
    assert "user,admin" in listed.output
    assert PASSWORD not in added.output + listed.output


def test_user_add_refuses_duplicates_and_weak_passwords(tmp_path: Path) -> None:
    """A taken address or a weak password is a clear error with a non-zero exit."""
    data = str(tmp_path / "data")
    args = ["user", "add", "a@example.com", "--data-dir", data]
    assert runner.invoke(app, args, input=PASSWORD + "\n", env=FAST).exit_code == 0
    again = runner.invoke(app, args, input=PASSWORD + "\n", env=FAST)
    assert again.exit_code == 1
    assert "already registered" in again.output
    weak = runner.invoke(
        app, ["user", "add", "b@example.com", "--data-dir", data], input="password\n", env=FAST
    )
    assert weak.exit_code == 1
    assert "too common" in weak.output


def test_migrate_reports_the_revision(tmp_path: Path) -> None:
    """`migrate` brings a new database to the head revision and says which."""
    result = runner.invoke(app, ["migrate", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "Schema at revision" in result.output


def test_migrate_on_redis_has_nothing_to_do(tmp_path: Path) -> None:
    """Redis has no schema: `migrate` says so and succeeds without connecting."""
    result = runner.invoke(
        app,
        [
            "migrate",
            "--data-dir",
            str(tmp_path / "data"),
            "--database-url",
            "redis://127.0.0.1:1/0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "nothing to migrate" in result.output


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    """--config naming no file exits 2 with a message, not a traceback."""
    result = runner.invoke(app, ["migrate", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_runs_on_defaults_and_keeps_secrets_private(tmp_path: Path) -> None:
    """`twofold serve` starts a real server that makes its keys owner-only and whose logs
    hold no password, session id or token (O1, O2)."""
    port = _free_port()
    env = {**os.environ, **FAST, "TWOFOLD_LOG_LEVEL": "info"}
    process = subprocess.Popen(
        [sys.executable, "-m", "twofold", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        with httpx.Client(base_url=url) as client:
            client.post("/auth/register", json={"email": "o@example.com", "password": PASSWORD})
            session = client.post(
                "/auth/login", json={"email": "o@example.com", "password": PASSWORD}
            )
            session_id = client.cookies["twofold_session"]
            token = client.post(
                "/auth/login", json={"email": "o@example.com", "password": PASSWORD, "mode": "jwt"}
            ).json()["access_token"]
            assert (
                client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code
                == 200
            )
            assert session.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    data = tmp_path / "twofold-data"
    key_mode = stat.S_IMODE((data / "master.key").stat().st_mode)
    assert key_mode == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for secret in (PASSWORD, session_id, token, token.split(".")[2]):
        assert secret not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line.get("path") == "/auth/login" for line in lines)


def test_user_list_is_tab_separated_when_piped_and_needs_a_database(tmp_path: Path) -> None:
    """Piped output is one tab-separated line per user with the whole id; a data directory
    with no database is an error, not an empty list from a new store."""
    data = str(tmp_path / "data")
    runner.invoke(
        app, ["user", "add", "a@example.com", "--data-dir", data], input=PASSWORD + "\n", env=FAST
    )
    listed = runner.invoke(app, ["user", "list", "--data-dir", data], env=FAST)
    fields = listed.output.strip().split("\t")
    assert len(fields) == 4
    assert len(fields[0]) == 36
    assert fields[1:] == ["a@example.com", "user", "active"]
    missing = runner.invoke(app, ["user", "list", "--data-dir", str(tmp_path / "elsewhere")])
    assert missing.exit_code == 1
    assert "no database" in missing.output
    assert not (tmp_path / "elsewhere").exists()


def test_serve_refuses_a_bad_start_with_one_line(tmp_path: Path) -> None:
    """A data directory others can read stops `serve` with a message, not a traceback."""
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o755)
    result = runner.invoke(app, ["serve", "--data-dir", str(open_dir), "--port", "1"], env=FAST)
    assert result.exit_code == 1
    assert "chmod 700" in result.output
    assert "Traceback" not in result.output

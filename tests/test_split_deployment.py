"""PostgreSQL for accounts with Redis for sessions and the revocation stream (``redis_url``):
where each thing lives, and the CLI reaching the servers' Redis."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import PASSWORD, make_settings
from tests.services import Postgres, Redis
from twofold.authority import Origin
from twofold.cli import app
from twofold.config import Settings
from twofold.errors import NotAuthenticated
from twofold.runtime import Runtime
from twofold.sessions import hash_session_id
from twofold.store.migrate import upgrade

EMAIL = "split@example.com"
FAST = {"TWOFOLD_ARGON2_PROFILE": "owasp-minimum", "TWOFOLD_HASH_WORKERS": "1"}


def split_settings(tmp_path: Path, postgres: Postgres, redis: Redis) -> Settings:
    url = postgres.create_database(f"split_{uuid.uuid4().hex[:12]}")
    upgrade(url)
    db = int(uuid.uuid4().int % 15) + 1  # a Redis database of this test's own
    return make_settings(tmp_path / "data", database_url=url, redis_url=redis.url(db))


def test_sessions_and_revocations_live_in_redis_and_the_cli_reaches_them(
    tmp_path: Path, postgres_server: Postgres, redis_server: Redis
) -> None:
    """A session made by a split server is in Redis, not PostgreSQL; `twofold sessions
    end` given the same --redis-url ends it and cuts the user's tokens off there."""
    settings = split_settings(tmp_path, postgres_server, redis_server)

    async def log_in() -> tuple[str, str]:
        runtime = await Runtime.start(settings)
        try:
            authority = runtime.authority
            await authority.register(EMAIL, PASSWORD)
            login = await authority.login_session(EMAIL, PASSWORD, origin=Origin(), replacing=None)
            tokens = await authority.login_token(EMAIL, PASSWORD, origin=Origin())
            id_hash = hash_session_id(login.session.id)
            assert runtime.session_store is not runtime.store
            assert await runtime.session_store.get_session(id_hash) is not None
            assert await runtime.store.get_session(id_hash) is None
            return login.session.id, tokens.access_token
        finally:
            await runtime.close()

    session_id, access_token = asyncio.run(log_in())
    ended = CliRunner().invoke(
        app,
        [
            "sessions", "end", "--user", EMAIL,
            "--data-dir", str(settings.data_dir),
            "--database-url", settings.effective_database_url,
            "--redis-url", str(settings.redis_url),
        ],
        env=FAST,
    )  # fmt: skip
    assert ended.exit_code == 0, ended.output

    async def check() -> None:
        runtime = await Runtime.start(settings)
        try:
            for attempt in (
                runtime.authority.session_principal(session_id),
                asyncio.to_thread(runtime.authority.token_principal, access_token),
            ):
                try:
                    await attempt
                except NotAuthenticated:
                    continue
                raise AssertionError("a credential outlived `sessions end`")
        finally:
            await runtime.close()

    asyncio.run(check())

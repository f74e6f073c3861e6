"""Running the server and managing its schema: ``serve``, ``migrate`` and ``openapi``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from twofold.cli.common import (
    ConfigOption,
    DatabaseOption,
    DataDirOption,
    RedisOption,
    console,
    fail,
    settings_from,
    with_runtime,
)
from twofold.config import Settings, prepare_data_dir
from twofold.errors import TwofoldError
from twofold.runtime import Runtime
from twofold.tls import tls_files


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseOption = None,
    redis_url: RedisOption = None,
    config: ConfigOption = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's PEM private key.")] = None,
    tls_self_signed: Annotated[
        bool | None,
        typer.Option(
            "--tls-self-signed",
            help="Development: serve HTTPS with a self-signed certificate for localhost.",
        ),
    ] = None,
) -> None:
    """Run the server (defaults: 127.0.0.1:8000, SQLite and keys under ./twofold-data)."""
    import uvicorn

    from twofold.http.app import create_app
    from twofold.logs import configure

    settings = settings_from(
        config,
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        tls_self_signed=tls_self_signed,
    )
    # Start the core once before the server does: a bad data directory, master key or
    # database URL is then a one-line error here, not a traceback from inside uvicorn.
    with_runtime(settings, _nothing)
    try:
        tls = tls_files(settings)
    except TwofoldError as exc:
        raise fail(exc) from None
    configure(settings.log_level, settings.log_format)
    scheme = "https" if tls is not None else "http"
    console.print(
        f"Twofold listening on [bold]{scheme}://{settings.host}:{settings.port}[/bold] "
        f"(store: {_describe_store(settings)})"
    )
    if settings.tls_self_signed:
        console.print(f"Self-signed development certificate: {tls.cert if tls else ''}")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        # The app reads forwarding headers itself, from trusted_proxies only.
        proxy_headers=False,
        # Revocation feed connections stay open until they end by themselves (at most
        # every 10 s): a shutdown does not wait for them longer than this.
        timeout_graceful_shutdown=5,
        ssl_certfile=tls.cert if tls else None,
        ssl_keyfile=tls.key if tls else None,
    )


def migrate(
    data_dir: DataDirOption = None, database_url: DatabaseOption = None, config: ConfigOption = None
) -> None:
    """Bring the database schema to the current version."""
    from twofold.store.factory import parse_url, store_from_url
    from twofold.store.migrate import current_revision, upgrade

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    url = settings.effective_database_url
    try:
        store_from_url(url)  # refuses an unsupported scheme before Alembic tries a driver
        if parse_url(url).get_backend_name() == "redis":
            console.print("Redis has no schema: nothing to migrate.")
            return
        prepare_data_dir(settings.data_dir)
        upgrade(url)
    except TwofoldError as exc:
        raise fail(exc) from None
    console.print(f"Schema at revision {current_revision(url)}.")


def openapi() -> None:
    """Print the OpenAPI document of the HTTP API."""
    from twofold.http.app import create_app

    document = create_app(Settings()).openapi()
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


async def _nothing(runtime: Runtime) -> None:
    return None


def _describe_store(settings: Settings) -> str:
    """The store in words: a SQLite file's path, else only the scheme (URLs hold passwords)."""
    url = settings.effective_database_url
    described = url if url.startswith("sqlite:") else url.split(":", 1)[0]
    if settings.redis_url is not None:
        described += ", sessions and events: redis"
    return described

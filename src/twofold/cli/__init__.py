"""The ``twofold`` command: the server, the schema, and the admin's accounts, keys,
sessions, clients and audit log."""

from __future__ import annotations

import typer

from twofold.cli.admin import audit_log, client_app, keys_app, sessions_app
from twofold.cli.bench import bench
from twofold.cli.server import migrate, openapi, serve
from twofold.cli.users import user_app

__all__ = ["app"]

app = typer.Typer(help="Twofold: sessions and JWTs side by side.", no_args_is_help=True)
app.command()(serve)
app.command()(migrate)
app.command()(openapi)
app.command("audit")(audit_log)
app.command()(bench)
app.add_typer(user_app, name="user")
app.add_typer(keys_app, name="keys")
app.add_typer(sessions_app, name="sessions")
app.add_typer(client_app, name="client")

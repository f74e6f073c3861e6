"""The seed article's Rails login flow, as a FastAPI app with Twofold's in-process sessions.

    GET  /login    a form for e-mail and password
    POST /login    checks them; sets the session cookie; redirects to the main page
    GET  /         the main page: who is logged in, or a link to log in
    POST /logout   ends the session (CSRF-checked by the middleware)
    GET  /register and POST /register: make an account to log in with
    GET  /api/me   JSON for a session cookie or a Bearer token with the "read" scope
    GET  /admin    only for users with the "admin" role

Run it on its own (it needs no Twofold server; its accounts live in TWOFOLD_DATA_DIR):

    export TWOFOLD_PUBLIC_URL=http://127.0.0.1:8001
    .venv/bin/uvicorn app:app --app-dir examples/rails_login --port 8001

or beside ``twofold serve`` (port 8000) on the same TWOFOLD_DATA_DIR, so that one login is
good in both: add TWOFOLD_ISSUER=http://127.0.0.1:8000 (the server's tokens name it). The
public URL is this app's own: its forms' origin, which the CSRF check compares.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from twofold.errors import AuthenticationFailed, InvalidRequest, Throttled
from twofold.integrate import Principal, Twofold, TwofoldMiddleware
from twofold.integrate.fastapi import (
    CurrentUser,
    OptionalUser,
    answer_twofold_errors,
    require_roles,
    require_scopes,
)

auth = Twofold()  # Settings from TWOFOLD_* variables, as `twofold serve` reads them
app = FastAPI(lifespan=auth.lifespan)
app.add_middleware(TwofoldMiddleware, auth=auth)
answer_twofold_errors(app)  # a refused form (CSRF, store outage) is a 4xx/503, never a 500

Reader = Annotated[Principal, Depends(require_scopes("read"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Field = Annotated[str, Form()]


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title>"
        f"<h1>{escape(title)}</h1>{body}</html>",
        status_code=status,
    )


def credentials_form(action: str, button: str, message: str = "") -> str:
    note = f"<p role=alert>{escape(message)}</p>" if message else ""
    return (
        f'{note}<form method=post action="{action}">'
        "<label>E-mail <input name=email type=email autocomplete=username required></label>"
        "<label>Password <input name=password type=password required></label>"
        f"<button>{button}</button></form>"
    )


@app.get("/")
async def home(request: Request, user: OptionalUser) -> Response:
    if user is None:
        links = '<p><a href="/login">Log in</a> or <a href="/register">register</a>.'
        return page("Welcome", links)
    token = escape(auth.csrf_token(request) or "")
    return page(
        "Welcome back",
        f"<p>Logged in as <strong>{escape(user.email)}</strong>.</p>"
        f'<form method=post action="/logout"><input type=hidden name=csrf_token value="{token}">'
        "<button>Log out</button></form>",
    )


@app.get("/login")
async def login_form() -> Response:
    return page("Log in", credentials_form("/login", "Log in"))


@app.post("/login")
async def login(request: Request, email: Field, password: Field) -> Response:
    response = RedirectResponse("/", status_code=303)
    try:
        await auth.log_in(request, response, email, password)
    except AuthenticationFailed:
        wrong = "Wrong e-mail or password."
        return page("Log in", credentials_form("/login", "Log in", wrong), 401)
    except Throttled as exc:
        wait = f"Too many attempts: try again in {exc.retry_after} seconds."
        return page("Log in", credentials_form("/login", "Log in", wait), 429)
    return response


@app.post("/logout")
async def logout(request: Request, user: CurrentUser) -> Response:
    response = RedirectResponse("/", status_code=303)
    await auth.log_out(request, response, user)
    return response


@app.get("/register")
async def register_form() -> Response:
    return page("Register", credentials_form("/register", "Register"))


@app.post("/register")
async def register(request: Request, email: Field, password: Field) -> Response:
    auth.csrf.check_origin(request)
    try:
        await auth.runtime.authority.register(email, password)
    except InvalidRequest as exc:
        return page("Register", credentials_form("/register", "Register", exc.detail), 400)
    return RedirectResponse("/login", status_code=303)


@app.get("/api/me")
async def me(user: Reader) -> dict[str, object]:
    return {"id": user.user_id, "email": user.email, "roles": list(user.roles), "via": user.mode}


@app.get("/admin")
async def admin(user: Admin) -> Response:
    return page("Admin", f"<p>Hello, administrator {escape(user.email)}.</p>")

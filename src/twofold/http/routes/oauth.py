"""RFC 7662 introspection and RFC 7009 revocation, for registered resource servers.

Clients authenticate with HTTP Basic (``client_secret_basic``) or with ``client_id`` and
``client_secret`` in the form (``client_secret_post``); bodies are form-encoded, as both
RFCs define them.
"""

from __future__ import annotations

import base64
from typing import Annotated
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from twofold.errors import InvalidClient, InvalidRequest, UnsupportedMediaType
from twofold.http.deps import origin, web
from twofold.http.schemas import ErrorOut, IntrospectionOut
from twofold.store.records import Client

router = APIRouter(prefix="/oauth", tags=["oauth"])

FORM = "application/x-www-form-urlencoded"
MAX_TOKEN_LENGTH = 8192
ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut} for status in (400, 401, 413, 415, 503)
}


async def _form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM:
        raise UnsupportedMediaType(f"The request body must be {FORM}.")
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The form body is malformed.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            # RFC 6749 section 3.1: parameters must not be included more than once.
            raise InvalidRequest(f"The parameter {name!r} is repeated.")
        form[name] = value
    return form


async def authenticate_client(request: Request, form: dict[str, str]) -> Client:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient()
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except ValueError:  # bad base64 or UTF-8, or non-ASCII text (latin-1 header bytes)
            raise InvalidClient() from None
        client_id, sep, secret = decoded.partition(":")
        if not sep or "client_secret" in form:
            raise InvalidClient()
        # RFC 6749 section 2.3.1: both are form-urlencoded before Basic encoding.
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    return await web(request).runtime.clients.authenticate(client_id, secret)


async def _token(request: Request) -> tuple[Client, str]:
    form = await _form(request)
    client = await authenticate_client(request, form)
    token = form.get("token", "")
    if not token:
        raise InvalidRequest("The 'token' parameter is required.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidRequest("The token is too long.")
    return client, token


ClientToken = Annotated[tuple[Client, str], Depends(_token)]

# The form is parsed by hand (above), so FastAPI cannot describe it: say it here.
FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string", "maxLength": MAX_TOKEN_LENGTH},
                        "token_type_hint": {
                            "type": "string",
                            "enum": ["access_token", "refresh_token"],
                        },
                        "client_id": {
                            "type": "string",
                            "description": "client_secret_post; or use HTTP Basic.",
                        },
                        "client_secret": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/introspect", response_model=IntrospectionOut, responses=ERRORS, openapi_extra=FORM_BODY
)
async def introspect(request: Request, client_token: ClientToken) -> Response:
    """Whether a token is active now (revocations included) and its claims."""
    _, token = client_token
    answer = await web(request).runtime.oauth.introspect(token)
    return JSONResponse(answer)


@router.post("/revoke", responses=ERRORS, openapi_extra=FORM_BODY)
async def revoke(request: Request, client_token: ClientToken) -> Response:
    """Revoke an access or refresh token. Answers 200 whether or not the token was valid
    (RFC 7009 section 2.2)."""
    client, token = client_token
    await web(request).runtime.oauth.revoke(token, client=client, origin=origin(request))
    return JSONResponse({})

"""Every error becomes a JSON ``{"error": code, "detail": text}`` with the right status;
a browser navigating to a page that fails gets a friendly HTML page instead, with the same
status and headers (``twofold.http.pages.errors``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from twofold import errors
from twofold.http.pages.errors import PAGES, error_page, prefers_html
from twofold.http.pages.forms import PageExit
from twofold.http.security_headers import API_HEADERS, PAGE_CSP

log = logging.getLogger("twofold.http")

REALM = 'Bearer realm="twofold"'
# FastAPI's words when the body parser fails with anything but a JSONDecodeError.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"

STATUS: dict[type[errors.TwofoldError], int] = {
    errors.InvalidRequest: 400,
    errors.UnsupportedMediaType: 415,
    errors.PayloadTooLarge: 413,
    errors.AuthenticationFailed: 401,
    errors.NotAuthenticated: 401,
    errors.InvalidClient: 401,
    errors.CsrfFailed: 403,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Throttled: 429,
    errors.StoreUnavailable: 503,
    errors.Busy: 503,
    errors.ConfigurationError: 500,
}


def status_for(exc: errors.TwofoldError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def www_authenticate(exc: errors.TwofoldError) -> str:
    """RFC 6750 section 3: no error code when no credentials came, else invalid_token.
    A client of the OAuth endpoints authenticates with HTTP Basic (RFC 6749 2.3.1)."""
    if isinstance(exc, errors.InvalidClient):
        return 'Basic realm="twofold"'
    if isinstance(exc, errors.InvalidToken):
        return f'{REALM}, error="invalid_token", error_description="{exc.reason}"'
    return REALM


def plain_error(exc: errors.TwofoldError) -> JSONResponse:
    """The JSON answer for ``exc``, with the headers its status calls for."""
    status = status_for(exc)
    detail = exc.detail
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = www_authenticate(exc)
    elif isinstance(exc, errors.Throttled):
        headers["Retry-After"] = str(exc.retry_after)
    elif status == 503:
        headers["Retry-After"] = "1" if isinstance(exc, errors.Busy) else "5"
        if isinstance(exc, errors.StoreUnavailable):
            # The driver's words stay in the log; the caller learns only to come back.
            detail = errors.StoreUnavailable.default_detail
    return error_response(status, exc.code, detail, headers)


async def render_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.TwofoldError)
    response = plain_error(exc)
    status = response.status_code
    if isinstance(exc, errors.StoreUnavailable):
        log.warning("store unavailable", extra={"reason": exc.detail})
    elif status == 500:
        log.error("configuration error", extra={"code": exc.code})
    # A bad token or refresh token says nothing about the session cookie sent alongside.
    if isinstance(exc, errors.NotAuthenticated) and not isinstance(
        exc, errors.InvalidToken | errors.InvalidGrant
    ):
        _clear_dead_session_cookie(request, response)
    # What a refusal or a throttle says is meant for the caller; other words stay generic.
    return for_browser(request, response, exc.detail if status in (403, 429) else None)


def for_browser(request: Request, answer: Response, detail: str | None = None) -> Response:
    """``answer`` as a friendly page, with its status and headers, when a browser navigated
    here and the status has one; otherwise ``answer`` itself."""
    if answer.status_code not in PAGES or not prefers_html(request):
        return answer
    return error_page(request, answer.status_code, detail=detail, headers=answer.raw_headers)


def _clear_dead_session_cookie(request: Request, response: Response) -> None:
    """A refused session cookie is cleared, so the browser stops sending it (S7)."""
    context = getattr(request.app.state, "web", None)
    if context is not None and context.cookies.session_name in request.cookies:
        context.cookies.clear(response, context.cookies.session_name)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return error_response(400, "invalid_json", "The request body is not valid JSON.")
    # Name the fields and what is wrong, never echo the submitted values (passwords).
    fields = "; ".join(
        f"{'.'.join(str(part) for part in p.get('loc', ())[1:]) or 'body'}: {p.get('msg', '')}"
        for p in problems[:5]
    )
    return error_response(422, "invalid_request", fields or "The request is invalid.")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
    if exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
        # JSON the parser gave up on (nested thousands deep): as bad as invalid JSON.
        code, detail = "invalid_json", "The request body is not valid JSON."
    return for_browser(request, error_response(exc.status_code, code, detail, exc.headers))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    # This answer is sent by Starlette's outermost middleware, past our header middleware.
    answer = error_response(
        500, "internal_error", "An unexpected error occurred.", headers=API_HEADERS
    )
    if not prefers_html(request):
        return answer
    page = error_page(request, 500)
    page.headers.update({**API_HEADERS, "content-security-policy": PAGE_CSP})
    return page


async def _page_exit(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageExit)
    return exc.response


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.TwofoldError, render_error)
    app.add_exception_handler(PageExit, _page_exit)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

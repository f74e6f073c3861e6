"""Friendly error pages for people: a browser navigating to a page that fails gets HTML
with the same status and headers; API clients keep their JSON (``twofold.http.errors``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from twofold.http.pages.forms import render

#: (heading, what happened) for the statuses that get a page.
PAGES: dict[int, tuple[str, str]] = {
    403: ("Not allowed", "You are not allowed to do this."),
    404: ("Page not found", "There is nothing at this address. It may have moved, or the link "
          "may be mistyped."),
    405: ("Not possible here", "This address does not take that kind of request."),
    429: ("Too many attempts", "Please wait a little and try again."),
    500: ("Something went wrong", "An unexpected error occurred on our side. Please try "
          "again; if it keeps happening, tell the administrator."),
    503: ("Temporarily unavailable", "The service cannot answer right now. Please try again "
          "in a moment."),
}  # fmt: skip
_HTML = ("text/html", "application/xhtml+xml")
_JSON = ("application/json", "application/*", "*/*")


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(1.0, max(0.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


def prefers_html(request: Request) -> bool:
    """Whether the Accept header ranks HTML above JSON, as a browser's navigation does
    (``text/html,...,*/*;q=0.8``). An API client sending ``application/json``, ``*/*`` or no
    Accept at all is not a browser navigation."""
    html = json = 0.0
    for item in request.headers.get("accept", "").split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        if media in _HTML:
            html = max(html, _quality(params))
        elif media in _JSON or media.endswith("+json"):
            json = max(json, _quality(params))
    return html > json


def error_page(
    request: Request,
    status: int,
    *,
    detail: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Response:
    """The page for ``status`` (one of ``PAGES``), carrying ``headers`` (Retry-After,
    Allow, Set-Cookie) from the answer it replaces. ``detail`` is shown when it is safe
    and says more than the heading."""
    heading, message = PAGES[status]
    response = render(
        request,
        "error.html",
        status,
        # Who is asking is not known here (the store may be the thing that failed).
        error_nav=True,
        heading=heading,
        message=message,
        detail=detail,
        retry_after=_retry_after(headers or []),
    )
    skip = {b"content-type", b"content-length"}
    response.raw_headers.extend((k, v) for k, v in headers or [] if k.lower() not in skip)
    return response


def _retry_after(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"retry-after" and value.isdigit():
            return int(value)
    return None

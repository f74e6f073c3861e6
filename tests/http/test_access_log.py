"""The access log and the request metrics share one middleware: each request is logged
once (its path without the query string) and counted once under its route template."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from twofold.http.access_log import AccessLogMiddleware
from twofold.metrics import Metrics


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", status_code=201)


def app(metrics: Metrics | None) -> AccessLogMiddleware:
    return AccessLogMiddleware(Starlette(routes=[Route("/items/{id}", item)]), metrics=metrics)


def count(metrics: Metrics, **labels: str) -> float:
    value = metrics.registry.get_sample_value("twofold_http_requests_total", labels)
    return 0.0 if value is None else value


async def get(target: AccessLogMiddleware, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=target)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_one_line_and_one_count_per_request(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    with caplog.at_level(logging.INFO, logger="twofold.access"):
        answer = await get(app(metrics), "/items/secret-id?token=abc")
        await get(app(metrics), "/nowhere")
    assert answer.status_code == 201
    lines = [r for r in caplog.records if r.name == "twofold.access"]
    assert [(r.path, r.status) for r in lines] == [("/items/secret-id", 201), ("/nowhere", 404)]
    assert all("token" not in r.getMessage() + str(r.__dict__) for r in lines)
    assert count(metrics, route="/items/{id}", method="GET", status="201") == 1
    assert count(metrics, route="unmatched", method="GET", status="404") == 1


async def test_metrics_without_the_log_and_the_log_without_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    with caplog.at_level(logging.WARNING, logger="twofold.access"):
        await get(app(metrics), "/items/1")
    assert not [r for r in caplog.records if r.name == "twofold.access"]
    assert count(metrics, route="/items/{id}", method="GET", status="201") == 1
    with caplog.at_level(logging.INFO, logger="twofold.access"):
        await get(app(None), "/items/2")
    assert [r.path for r in caplog.records if r.name == "twofold.access"] == ["/items/2"]

"""HTTP throughput and latency under load, against running instances.

``/healthz`` (no credential, no store) is the baseline of the same servers: the cost of
HTTP, the framework and the middlewares. ``/auth/me`` adds the credential check and
little else, so the gap between the two is what recognising a caller costs. The load is
spread over the instances given (one generator per instance, summed), from this machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from twofold.bench.load import run_load
from twofold.bench.results import Throughput

__all__ = ["LoadTool", "measure_load"]

LoadTool = Literal["auto", "wrk", "builtin"]


def measure_load(
    configuration: str,
    base_urls: Sequence[str],
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    duration: float,
    connections: int,
    tool: LoadTool,
) -> Throughput:
    """``duration`` seconds of ``GET path`` with ``connections`` connections in all."""
    result = run_load(
        [f"{url}{path}" for url in base_urls],
        headers=headers,
        duration=duration,
        connections=connections,
        tool=tool,
    )
    return Throughput(
        configuration=configuration,
        path=path,
        instances=len(base_urls),
        connections=connections,
        seconds=result.seconds,
        requests=result.requests,
        rps=result.rps,
        latency_ms=result.latency_ms,
        errors=result.errors,
        tool=result.tool,
    )

"""The metric families and hooks without HTTP: bucket edges, bounded labels, the audit
mapping and the timed store."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from twofold import audit
from twofold.errors import StoreUnavailable
from twofold.metrics import Metrics
from twofold.store.sqlite import SQLiteStore
from twofold.store.timed import OPERATIONS, TimedStore, timed


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_histogram_buckets_are_less_than_or_equal_and_cumulative() -> None:
    """A value on a bucket's edge falls in that bucket (Prometheus ``le``)."""
    metrics = Metrics()
    for seconds in (0.001, 0.0011, 0.5, 99.0):
        metrics.request("/healthz", "GET", 200, seconds)
    name = "twofold_http_request_duration_seconds"
    labels = {"route": "/healthz", "method": "GET"}
    assert sample(metrics, f"{name}_bucket", le="0.0005", **labels) == 0
    assert sample(metrics, f"{name}_bucket", le="0.001", **labels) == 1
    assert sample(metrics, f"{name}_bucket", le="0.0025", **labels) == 2
    assert sample(metrics, f"{name}_bucket", le="0.5", **labels) == 3
    assert sample(metrics, f"{name}_bucket", le="10.0", **labels) == 3
    assert sample(metrics, f"{name}_bucket", le="+Inf", **labels) == 4
    assert sample(metrics, f"{name}_count", **labels) == 4
    assert sample(metrics, f"{name}_sum", **labels) == pytest.approx(99.5021)


def test_free_text_never_becomes_a_label() -> None:
    """A method or a reason outside the known sets is counted as ``other``."""
    metrics = Metrics()
    metrics.request("/healthz", "X-ANYTHING", 405, 0.001)
    metrics.authenticated("jwt", "reason with user@example.com")
    metrics.login("session", "whatever")
    text = generate_latest(metrics.registry).decode()
    assert "X-ANYTHING" not in text
    assert "example.com" not in text
    assert sample(metrics, "twofold_authentications_total", mode="jwt", result="other") == 1
    assert sample(metrics, "twofold_logins_total", mode="session", result="other") == 1


@pytest.mark.parametrize(
    ("kind", "detail", "counted"),
    [
        (audit.LOGOUT, {"mode": "jwt"}, "logout"),
        (audit.SESSION_REVOKED, {"device": "s_abc"}, "device"),
        (audit.SESSION_REVOKED, {"device": "others"}, "other_devices"),
        (audit.SESSION_REVOKED, {"device": "all"}, "all_devices"),
        (audit.ACCOUNT_LOCKED, {}, "lock"),
        (audit.PASSWORD_CHANGED, {}, "password_change"),
        (audit.KEY_ROTATED, {"compromised": True}, "key_compromise"),
        (audit.KEY_ROTATED, {"compromised": False}, None),
        (audit.LOGIN_SUCCEEDED, {"mode": "session"}, None),
    ],
    ids=[
        "logout",
        "device",
        "others",
        "all",
        "lock",
        "password",
        "compromise",
        "rotation",
        "login",
    ],
)
def test_revoking_audit_events_are_counted_by_kind(
    kind: str, detail: dict[str, object], counted: str | None
) -> None:
    """Every revocation is audited; the audit hook counts those that revoke something."""
    metrics = Metrics()
    metrics.audited(kind, detail)
    text = generate_latest(metrics.registry).decode()
    if counted is None:
        assert "twofold_revocations_total{" not in text
    else:
        assert sample(metrics, "twofold_revocations_total", kind=counted) == 1


async def test_the_timed_store_times_calls_and_counts_outages(store: SQLiteStore) -> None:
    """Each call is observed under its operation; an outage is counted too and re-raised;
    a replacement of the inner method still takes effect."""
    metrics = Metrics()
    wrapped = timed(store, "sqlite", metrics)
    assert await wrapped.get_user("nobody") is None

    async def down(user_id: str) -> None:
        raise StoreUnavailable("down")

    store.get_user = down  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await wrapped.get_user("nobody")
    labels = {"store": "sqlite", "operation": "get_user"}
    assert sample(metrics, "twofold_store_operation_duration_seconds_count", **labels) == 2
    assert sample(metrics, "twofold_store_errors_total", **labels) == 1
    # Operations never called add no series.
    assert "put_session" not in generate_latest(metrics.registry).decode()


def test_the_timed_store_offers_every_operation(tmp_path: Path) -> None:
    """Every coroutine of the protocol is a coroutine of the wrapper (code that walks a
    store's methods, like the durability tests, sees them all), and extras pass through."""
    inner = SQLiteStore(tmp_path / "twofold.db")
    wrapped = TimedStore(inner, "sqlite", Metrics())
    assert "get_session_and_user" in OPERATIONS
    for name in OPERATIONS:
        assert inspect.iscoroutinefunction(getattr(wrapped, name)), name
        assert name in dir(wrapped)
    extras = set(dir(inner)) - set(OPERATIONS)
    for name in (name for name in extras if not name.startswith("_")):
        assert getattr(wrapped, name) == getattr(inner, name)

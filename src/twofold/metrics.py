"""Prometheus metrics: what the server counts and times, in a registry of its own.

Each ``Metrics`` has its own ``CollectorRegistry`` (never the process-wide default), so
several servers in one process (tests, an embedding app) do not collide, and each
process exposes only its own figures.

Every label value comes from a bounded set fixed in the code: a route's path template
(never the raw path), a known method, a status code, an error's reason code. Nothing a
client chooses freely becomes a label, and no id, token or address ever does
(SECURITY.md O2): unbounded labels would be a memory exhaustion attack on the server and
on Prometheus.

The families are ``loop_metrics``'s lock-free ones; a request finds its two children
(count and duration) with one dict look-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from prometheus_client import CollectorRegistry

from twofold import audit
from twofold.loop_metrics import Counter, CounterChild, Histogram, HistogramChild, LoopMetrics

#: Label of a request that no route took (404s, CORS preflights, refused bodies).
UNMATCHED: Final = "unmatched"
#: Label of a method outside ``METHODS`` or a reason outside a known set.
OTHER: Final = "other"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: Result of an authentication that was accepted.
ACCEPTED: Final = "accepted"
#: ``InvalidToken`` reasons raised across Twofold, plus the outcomes of a session check.
AUTH_RESULTS: Final = frozenset(
    {
        ACCEPTED,
        "invalid",
        "expired",
        "revoked",
        "malformed",
        "oversized",
        "bad_signature",
        "unknown_key",
        "algorithm_mismatch",
        "unsupported_header",
        "wrong_type",
        "wrong_audience",
        "wrong_issuer",
        "missing_claim",
        "not_yet_valid",
        "lifetime_exceeded",
        "unavailable",
    }
)
LOGIN_RESULTS: Final = frozenset(
    {
        "succeeded",
        "failed",
        "throttled",
        "busy",
        "unavailable",
    }
)
REFRESH_RESULTS: Final = frozenset({"rotated", "replayed", "reuse", "refused", "unavailable"})

#: Audit events that revoke something, and the ``kind`` label each counts under.
REVOKING_EVENTS: Final[Mapping[str, str]] = {
    audit.LOGOUT: "logout",
    audit.SESSION_REVOKED: "device",
    audit.PASSWORD_CHANGED: "password_change",
    audit.EMAIL_CHANGED: "email_change",
    audit.ACCOUNT_LOCKED: "lock",
    audit.ROLES_CHANGED: "role_change",
    audit.REFRESH_REUSE: "refresh_reuse",
    audit.TOKEN_REVOKED: "oauth_revoke",
    audit.SCOPED_TOKEN_REVOKED: "scoped_token",
    audit.KEY_ROTATED: "key_compromise",
}
#: ``session_revoked`` events by their ``device`` detail: one device, or many at once.
_BULK_DEVICES: Final[Mapping[str, str]] = {"others": "other_devices", "all": "all_devices"}

HTTP_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
STORE_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5
)  # fmt: skip


class Metrics:
    """The server's metric families, bound to one registry, with the hooks that feed them.

    Updated on the event loop only (``loop_metrics``): no lock on the hot paths."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        families = LoopMetrics()
        self.http_requests = Counter(
            "twofold_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
        )
        self.http_duration = Histogram(
            "twofold_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ("route", "method"),
            buckets=HTTP_BUCKETS,
        )
        self.logins = Counter(
            "twofold_logins",
            "Password logins, by mode (session or jwt) and result.",
            ("mode", "result"),
        )
        self.authentications = Counter(
            "twofold_authentications",
            "Credentials of requests checked, by mode (session, jwt, scoped) and result "
            "(accepted, or the reason for the refusal).",
            ("mode", "result"),
        )
        self.refreshes = Counter("twofold_refreshes", "Refresh-token uses, by result.", ("result",))
        self.refresh_reuse = Counter(
            "twofold_refresh_reuse_detections",
            "Spent refresh tokens presented again: each ended its token family (theft).",
        )
        self.revocations = Counter(
            "twofold_revocations", "Actions that revoked sessions or tokens, by kind.", ("kind",)
        )
        self.store_duration = Histogram(
            "twofold_store_operation_duration_seconds",
            "Time of a store call, by store backend and operation.",
            ("store", "operation"),
            buckets=STORE_BUCKETS,
        )
        self.store_errors = Counter(
            "twofold_store_errors",
            "Store calls that failed because the store was unavailable.",
            ("store", "operation"),
        )
        for family in (
            self.http_requests,
            self.http_duration,
            self.logins,
            self.authentications,
            self.refreshes,
            self.refresh_reuse,
            self.revocations,
            self.store_duration,
            self.store_errors,
        ):
            families.add(family)
        self.registry.register(families)
        self._reuse = self.refresh_reuse.labels()
        # (route, method, status) -> its two children: one look-up per request.
        self._requests: dict[tuple[str, str, int], tuple[CounterChild, HistogramChild]] = {}

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered HTTP request; ``route`` is a template or ``UNMATCHED``."""
        key = (route, method if method in METHODS else OTHER, status)
        children = self._requests.get(key)
        if children is None:
            children = self._requests[key] = (
                self.http_requests.labels(key[0], key[1], str(status)),
                self.http_duration.labels(key[0], key[1]),
            )
        children[0].inc()
        children[1].observe(seconds)

    def login(self, mode: str, result: str) -> None:
        self.logins.labels(mode, result if result in LOGIN_RESULTS else OTHER).inc()

    def authenticated(self, mode: str, result: str = ACCEPTED) -> None:
        """A credential checked: ``result`` is ``ACCEPTED`` or a refusal's reason code."""
        self.authentications.labels(mode, result if result in AUTH_RESULTS else OTHER).inc()

    def refreshed(self, result: str) -> None:
        self.refreshes.labels(result if result in REFRESH_RESULTS else OTHER).inc()

    def reuse_detected(self) -> None:
        self._reuse.inc()

    def audited(self, kind: str, detail: Mapping[str, Any]) -> None:
        """Count an audit event that revokes something (the audit log calls this for
        every event, so every revocation path, CLI and admin included, is counted)."""
        label = REVOKING_EVENTS.get(kind)
        if label is None:
            return
        if kind == audit.SESSION_REVOKED:
            label = _BULK_DEVICES.get(str(detail.get("device")), label)
        elif kind == audit.KEY_ROTATED and not detail.get("compromised"):
            return  # a routine rotation revokes nothing
        self.revocations.labels(label).inc()

    def store_timer(self, store: str, operation: str) -> HistogramChild:
        """The histogram child that times ``operation`` on ``store``."""
        return self.store_duration.labels(store, operation)

    def store_failed(self, store: str, operation: str) -> None:
        self.store_errors.labels(store, operation).inc()

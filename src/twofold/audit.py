"""The audit log: security events, stored (paged by admins) and logged (SECURITY.md O2).

Events name who and what, never a secret: no password, token, session id or key material
goes into ``detail``, and a failed login records the user only when the address belongs
to one (the text typed into the e-mail field is sometimes a password).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from twofold.clock import Clock
from twofold.store.base import AuditStore
from twofold.store.records import AuditEvent

if TYPE_CHECKING:
    # metrics.py names audit event kinds: imported for types only, no cycle at runtime.
    from twofold.metrics import Metrics

log = logging.getLogger("twofold.audit")

LOGIN_SUCCEEDED: Final = "login_succeeded"
LOGIN_FAILED: Final = "login_failed"
LOGOUT: Final = "logout"
REFRESH_REUSE: Final = "refresh_reuse"
PASSWORD_CHANGED: Final = "password_changed"  # noqa: S105 - an event name
REAUTHENTICATION_FAILED: Final = "reauthentication_failed"
ACCOUNT_LOCKED: Final = "account_locked"
ACCOUNT_UNLOCKED: Final = "account_unlocked"
ROLES_CHANGED: Final = "roles_changed"
SESSION_REVOKED: Final = "session_revoked"
KEY_ROTATED: Final = "key_rotated"
KEY_RETIRED: Final = "key_retired"
TOKEN_REVOKED: Final = "token_revoked"  # noqa: S105 - an event name
CLIENT_ADDED: Final = "client_added"
CLIENT_REMOVED: Final = "client_removed"
USER_CREATED: Final = "user_created"
EMAIL_CHANGED: Final = "email_changed"
LOGIN_THROTTLED: Final = "login_throttled"
SCOPED_TOKEN_CREATED: Final = "scoped_token_created"  # noqa: S105 - an event name
SCOPED_TOKEN_REVOKED: Final = "scoped_token_revoked"  # noqa: S105 - an event name

KINDS: Final = frozenset(
    {
        LOGIN_SUCCEEDED,
        LOGIN_FAILED,
        LOGOUT,
        REFRESH_REUSE,
        PASSWORD_CHANGED,
        REAUTHENTICATION_FAILED,
        ACCOUNT_LOCKED,
        ACCOUNT_UNLOCKED,
        ROLES_CHANGED,
        SESSION_REVOKED,
        KEY_ROTATED,
        KEY_RETIRED,
        TOKEN_REVOKED,
        CLIENT_ADDED,
        CLIENT_REMOVED,
        USER_CREATED,
        EMAIL_CHANGED,
        LOGIN_THROTTLED,
        SCOPED_TOKEN_CREATED,
        SCOPED_TOKEN_REVOKED,
    }
)

MAX_PAGE = 500


class AuditLog:
    def __init__(self, store: AuditStore, clock: Clock, *, metrics: Metrics | None = None) -> None:
        self._store = store
        self._clock = clock
        # Every revocation is audited, so counting them here misses none.
        self._metrics = metrics

    async def record(
        self,
        kind: str,
        *,
        user_id: str | None = None,
        actor_id: str | None = None,
        client_address: str | None = None,
        **detail: Any,
    ) -> AuditEvent:
        if kind not in KINDS:
            raise ValueError(f"unknown audit event kind: {kind}")
        event = AuditEvent(
            kind=kind,
            at=self._clock.now(),
            user_id=user_id,
            actor_id=actor_id,
            client_address=client_address,
            detail=detail,
        )
        seq = await self._store.append_audit(event)
        if self._metrics is not None:
            self._metrics.audited(kind, detail)
        log.info(
            kind,
            extra={"audit_seq": seq, "user_id": user_id, "actor_id": actor_id, "detail": detail},
        )
        return replace(event, seq=seq)

    async def page(
        self,
        *,
        before: int | None = None,
        limit: int = 50,
        user_id: str | None = None,
        kind: str | None = None,
    ) -> list[AuditEvent]:
        """Newest first; pass the last event's ``seq`` as ``before`` for the next page."""
        return await self._store.list_audit(
            before=before, limit=max(1, min(limit, MAX_PAGE)), user_id=user_id, kind=kind
        )

"""Devices: a user's sessions and token families as one list, with public handles.

A handle names a session or family without being a credential: for a session it is the
stored SHA-256 of the id (only the cookie's holder knows the id itself), for a family its
id (which access tokens already carry as ``sid``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

from twofold.store.records import RefreshFamily, SessionRecord

DeviceKind = Literal["session", "token_family"]

_SESSION = "s_"
_FAMILY = "f_"


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: DeviceKind
    user_id: str
    created_at: float
    last_seen_at: float
    expires_at: float
    client_address: str | None
    user_agent: str | None
    current: bool = False


def session_handle(id_hash: bytes) -> str:
    return _SESSION + base64.urlsafe_b64encode(id_hash).rstrip(b"=").decode("ascii")


def family_handle(family_id: str) -> str:
    return _FAMILY + family_id


def parse_handle(handle: str) -> tuple[DeviceKind, bytes | str] | None:
    """``("session", id_hash)`` or ``("token_family", family_id)``; None if malformed."""
    if handle.startswith(_SESSION) and len(handle) == 45:
        try:
            return "session", base64.urlsafe_b64decode(handle[2:] + "=")
        except (binascii.Error, ValueError):
            return None
    if handle.startswith(_FAMILY) and 1 < len(handle) <= 66 and handle[2:].isascii():
        return "token_family", handle[2:]
    return None


def from_session(record: SessionRecord, *, current: bool = False) -> Device:
    return Device(
        id=session_handle(record.id_hash),
        kind="session",
        user_id=record.user_id,
        created_at=record.created_at,
        last_seen_at=record.last_seen_at,
        expires_at=min(record.idle_expires_at, record.absolute_expires_at),
        client_address=record.client_address,
        user_agent=record.user_agent,
        current=current,
    )


def from_family(family: RefreshFamily, *, current: bool = False) -> Device:
    return Device(
        id=family_handle(family.id),
        kind="token_family",
        user_id=family.user_id,
        created_at=family.created_at,
        last_seen_at=family.last_used_at,
        expires_at=min(family.idle_expires_at, family.absolute_expires_at),
        client_address=family.client_address,
        user_agent=family.user_agent,
        current=current,
    )

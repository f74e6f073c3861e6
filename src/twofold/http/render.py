"""Core objects as JSON API bodies."""

from __future__ import annotations

import time

from twofold.devices import Device
from twofold.http.schemas import AdminUserOut, DeviceOut, LiveDeviceOut, ScopedTokenOut
from twofold.store.records import ScopedTokenRecord, User


def rfc3339(timestamp: float) -> str:
    # strftime of a struct_time: a third of the cost of a datetime (every /auth/me).
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def device_out(device: Device) -> DeviceOut:
    return DeviceOut(
        id=device.id,
        kind=device.kind,
        created_at=rfc3339(device.created_at),
        last_seen_at=rfc3339(device.last_seen_at),
        expires_at=rfc3339(device.expires_at),
        client_address=device.client_address,
        user_agent=device.user_agent,
        current=device.current,
    )


def live_device_out(device: Device, email: str | None) -> LiveDeviceOut:
    return LiveDeviceOut(**device_out(device).model_dump(), user_id=device.user_id, email=email)


def admin_user_out(user: User) -> AdminUserOut:
    return AdminUserOut(
        id=user.id,
        email=user.email,
        roles=list(user.roles),
        locked=user.locked,
        created_at=rfc3339(user.created_at),
    )


def scoped_token_out(record: ScopedTokenRecord) -> ScopedTokenOut:
    return ScopedTokenOut(
        id=record.id,
        name=record.name,
        scopes=list(record.scopes),
        created_at=rfc3339(record.created_at),
        expires_at=rfc3339(record.expires_at),
        last_used_at=None if record.last_used_at is None else rfc3339(record.last_used_at),
    )

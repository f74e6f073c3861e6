"""Server-rendered pages for people: log in, register, the account, devices, and the
admin's views. No JavaScript; every form posts with a CSRF token (B1), and nothing
changes state on GET.

``router`` holds them all; ``errors`` renders the friendly error pages that
``twofold.http.errors`` answers browsers with.
"""

from __future__ import annotations

from fastapi import APIRouter

from twofold.http.pages import account, admin, credentials, devices, events

router = APIRouter(include_in_schema=False)
for _part in (account, credentials, devices, admin, events):
    router.include_router(_part.router)

__all__ = ["router"]

"""Accounts: registration, password login and password change, without enumeration."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from twofold.clock import Clock
from twofold.emails import normalize_email
from twofold.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidEmail,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    ReauthenticationFailed,
)
from twofold.passwords import PasswordHasher, PasswordPolicy, normalize_password
from twofold.store.base import UserStore
from twofold.store.records import User

ROLE_ADMIN = "admin"
ROLE_USER = "user"
MAX_ROLES = 16
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class Accounts:
    def __init__(
        self, store: UserStore, hasher: PasswordHasher, policy: PasswordPolicy, clock: Clock
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._policy = policy
        self._clock = clock

    async def register(
        self, email: str, password: str, roles: tuple[str, ...] = (ROLE_USER,)
    ) -> User | None:
        """The new user, or None if the address is already registered.

        Callers must answer both outcomes the same way (SECURITY.md P2); the password is
        hashed in both so that the time does not tell them apart either.
        """
        normalized = normalize_email(email)
        roles = check_roles(roles)
        self._policy.check(password, context=_email_words(normalized))
        password_hash = await self._hasher.hash(password)
        if await self._store.get_user_by_email(normalized) is not None:
            return None
        now = self._clock.now()
        user = User(
            id=str(uuid.uuid4()),
            email=normalized,
            password_hash=password_hash,
            roles=roles,
            created_at=now,
            password_changed_at=now,
        )
        try:
            await self._store.add_user(user)
        except Conflict:
            return None  # lost a race with another registration of the same address
        return user

    async def authenticate(self, email: str, password: str) -> User:
        """The user whose credentials these are; ``AuthenticationFailed`` otherwise.

        Unknown address, wrong password and locked account all fail alike and cost one
        Argon2 verification each.
        """
        try:
            normalized = normalize_email(email)
        except InvalidEmail:
            normalized = None
        user = await self._store.get_user_by_email(normalized) if normalized else None
        if user is None:
            await self._hasher.burn(password)
            raise AuthenticationFailed()
        if not await self._hasher.verify(user.password_hash, password):
            raise AuthenticationFailed(user_id=user.id)
        if user.locked:
            raise AuthenticationFailed(user_id=user.id, reason="locked")
        if self._hasher.needs_rehash(user.password_hash):
            new_hash = await self._hasher.hash(password)
            await self._store.rehash_password(user.id, user.password_hash, new_hash)
            user = replace(user, password_hash=new_hash)
        return user

    async def change_password(
        self,
        user_id: str,
        current: str,
        new: str,
        *,
        before_storing: Callable[[], Awaitable[object]] | None = None,
    ) -> User:
        """Replace the password after checking the current one (SECURITY.md P4).

        ``before_storing`` runs once the change is certain, right before it is stored
        (``Authority`` cuts access tokens off there). Ending the user's other sessions is
        the caller's part."""
        user = await self._store.get_user(user_id)
        if user is None or not await self._hasher.verify(user.password_hash, current):
            raise ReauthenticationFailed()
        if normalize_password(current) == normalize_password(new):
            raise InvalidRequest("The new password must differ from the current one.")
        self._policy.check(new, context=_email_words(user.email))
        # Strictly later than the previous change even if the clock stood still: sessions
        # compare this value to tell whether they were proved under the current password.
        now = max(self._clock.now(), user.password_changed_at + 0.001)
        new_hash = await self._hasher.hash(new)
        if before_storing is not None:
            await before_storing()
        await self._store.set_password(user.id, new_hash, now)
        return replace(user, password_hash=new_hash, password_changed_at=now)

    async def change_email(self, user_id: str, current: str, new_email: str) -> User:
        """Move the account to ``new_email`` after checking the password (SECURITY.md P4);
        ``Conflict`` if another account has the address."""
        user = await self._store.get_user(user_id)
        if user is None or not await self._hasher.verify(user.password_hash, current):
            raise ReauthenticationFailed()
        normalized = normalize_email(new_email)
        if normalized != user.email:
            try:
                changed = await self._store.set_email(user.id, normalized)
            except Conflict:
                raise Conflict("That address cannot be used.") from None
            if not changed:
                raise NotAuthenticated("The account no longer exists.")
        return replace(user, email=normalized)

    async def get(self, user_id: str) -> User | None:
        return await self._store.get_user(user_id)

    async def find(self, email: str) -> User | None:
        """The user with this address; None if there is none or it is not an address."""
        try:
            normalized = normalize_email(email)
        except InvalidEmail:
            return None
        return await self._store.get_user_by_email(normalized)

    async def get_by_email(self, email: str) -> User | None:
        """``InvalidEmail`` if ``email`` is not an address at all."""
        return await self._store.get_user_by_email(normalize_email(email))

    async def list(self, limit: int = 100, offset: int = 0) -> list[User]:
        return await self._store.list_users(limit=limit, offset=offset)

    async def set_locked(self, user_id: str, locked: bool) -> None:
        if not await self._store.set_locked(user_id, locked):
            raise NotFound("No such user.")

    async def set_roles(self, user_id: str, roles: Sequence[str]) -> tuple[str, ...]:
        """Replace the roles with ``roles`` (deduplicated, order kept)."""
        unique = check_roles(roles)
        # The store keeps the epoch strictly increasing: sessions compare it.
        if not await self._store.set_roles(user_id, unique, self._clock.now()):
            raise NotFound("No such user.")
        return unique


def _email_words(email: str) -> tuple[str, ...]:
    local, _, domain = email.partition("@")
    return (email, local, domain)


def check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    """``roles`` deduplicated (order kept); ``InvalidRequest`` unless each is a role name."""
    unique: tuple[str, ...] = tuple(dict.fromkeys(roles))
    if len(unique) > MAX_ROLES or not all(
        isinstance(role, str) and _ROLE.fullmatch(role) for role in unique
    ):
        raise InvalidRequest(
            f"Roles are at most {MAX_ROLES} names of 1-32 lower-case letters, digits, "
            "'_' or '-', starting with a letter."
        )
    return unique

"""The core of the server: accounts, sessions and access tokens composed.

It knows nothing of HTTP; routes parse, call it, and map its errors to status codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twofold.accounts import Accounts
from twofold.emails import normalize_email
from twofold.errors import NotAuthenticated
from twofold.jose.jwt import AccessClaims, AccessTokenCodec
from twofold.sessions import IssuedSession, SessionManager
from twofold.store.records import SessionRecord, User

AuthMode = Literal["session", "jwt"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and how they proved it."""

    user_id: str
    email: str
    roles: tuple[str, ...]
    mode: AuthMode
    session: SessionRecord | None = None
    claims: AccessClaims | None = None


@dataclass(frozen=True, slots=True)
class SessionLogin:
    user: User
    session: IssuedSession


@dataclass(frozen=True, slots=True)
class TokenLogin:
    user: User
    access_token: str
    claims: AccessClaims


class Authority:
    def __init__(
        self, accounts: Accounts, sessions: SessionManager, tokens: AccessTokenCodec
    ) -> None:
        self.accounts = accounts
        self.sessions = sessions
        self.tokens = tokens

    async def register(self, email: str, password: str) -> str:
        """Register and return the normalised address; one already taken is not reported
        (SECURITY.md P2)."""
        await self.accounts.register(email, password)
        return normalize_email(email)

    async def login_session(
        self,
        email: str,
        password: str,
        *,
        client_address: str | None,
        user_agent: str | None,
        replacing: str | None,
    ) -> SessionLogin:
        user = await self.accounts.authenticate(email, password)
        issued = await self.sessions.create(
            user.id,
            password_changed_at=user.password_changed_at,
            client_address=client_address,
            user_agent=user_agent,
            replacing=replacing,
        )
        return SessionLogin(user=user, session=issued)

    async def login_token(self, email: str, password: str) -> TokenLogin:
        user = await self.accounts.authenticate(email, password)
        token, claims = self.tokens.issue(user.id, user.roles, extra={"email": user.email})
        return TokenLogin(user=user, access_token=token, claims=claims)

    async def session_principal(self, session_id: str) -> Principal:
        """The user behind a session id; roles, lock state and password changes are read
        fresh every time."""
        record = await self.sessions.resolve(session_id)
        user = await self.accounts.get(record.user_id)
        if user is None or user.locked or user.password_changed_at != record.password_changed_at:
            await self.sessions.end(session_id)
            raise NotAuthenticated("The session is not valid.")
        return Principal(
            user_id=user.id, email=user.email, roles=user.roles, mode="session", session=record
        )

    def token_principal(self, token: str) -> Principal:
        """The user behind an access token: a signature check and claim checks, no store read."""
        claims = self.tokens.verify(token)
        email = claims.extra.get("email")
        return Principal(
            user_id=claims.sub,
            email=email if isinstance(email, str) else "",
            roles=claims.roles,
            mode="jwt",
            claims=claims,
        )

    async def logout_session(self, session_id: str) -> None:
        await self.sessions.end(session_id)

    async def change_password(
        self, principal: Principal, current: str, new: str, *, session_id: str | None
    ) -> IssuedSession | None:
        """Change the password and end every other session of the user.

        Storing the new password is what invalidates the other sessions (each carries the
        password epoch it was proved under), so a failure after it, or a login racing with
        it, leaves no session alive. Deleting their records is clean-up. A
        session-authenticated caller keeps a session under a new id (returned)."""
        user = await self.accounts.change_password(principal.user_id, current, new)
        if session_id is None or principal.session is None:
            await self.sessions.end_all_for_user(user.id)
            return None
        await self.sessions.end_all_for_user(user.id, keep=session_id)
        return await self.sessions.rotate(
            session_id, principal.session, password_changed_at=user.password_changed_at
        )

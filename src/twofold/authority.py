"""The core of the server: accounts, sessions, token families and revocation composed.

It knows nothing of HTTP; routes parse, call it, and map its errors to status codes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from twofold import audit
from twofold.accounts import Accounts
from twofold.audit import AuditLog
from twofold.clock import SystemClock
from twofold.devices import Device, family_handle, from_family, from_session, parse_handle
from twofold.emails import normalize_email
from twofold.errors import (
    AuthenticationFailed,
    Busy,
    Conflict,
    InvalidGrant,
    InvalidToken,
    NotAuthenticated,
    NotFound,
    ReauthenticationFailed,
    StoreUnavailable,
    Throttled,
)
from twofold.jose.b64 import b64url_encode
from twofold.jose.jwt import AccessClaims, AccessTokenCodec
from twofold.jose.verified_tokens import VerifiedTokens
from twofold.metrics import Metrics
from twofold.refresh import IssuedRefresh, RefreshTokens, ReuseDetected
from twofold.revocation import Revoker
from twofold.scoped_tokens import ScopedTokens
from twofold.sessions import IssuedSession, SessionManager, hash_session_id, is_well_formed
from twofold.store.records import SessionRecord, User
from twofold.throttle import Attempt, LoginThrottle

AuthMode = Literal["session", "jwt"]
_T = TypeVar("_T")

#: The scopes every user holds unless configured otherwise (``Settings.scopes``).
DEFAULT_SCOPES = ("read", "write")
#: The ``sid`` of access tokens exchanged from a session starts so (``Authority.session_sid``).
SESSION_SID_PREFIX = "ses_"

#: Seconds an old session id keeps working after its session was renewed at a privilege
#: change, for the requests a browser had already sent with it.
RENEWAL_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and how they proved it."""

    user_id: str
    email: str
    roles: tuple[str, ...]
    mode: AuthMode
    session: SessionRecord | None = None
    claims: AccessClaims | None = None
    #: The session under a new id when this request found the user's privileges changed
    #: (S3); the caller must hand the new id to the client.
    renewed: IssuedSession | None = None
    #: What the caller may do: every configured scope for a session or a login token,
    #: the ``scope`` claim's for a token exchanged for another application.
    scopes: tuple[str, ...] = ()

    @classmethod
    def from_claims(cls, claims: AccessClaims, *, unscoped: tuple[str, ...]) -> Principal:
        """The caller a verified access token names. Its scopes are the ``scope`` claim's,
        or ``unscoped`` for a token without one (a login token: every configured scope
        where the configuration is known, none at a resource server)."""
        email = claims.extra.get("email")
        return cls(
            user_id=claims.sub,
            email=email if isinstance(email, str) else "",
            roles=claims.roles,
            mode="jwt",
            claims=claims,
            scopes=unscoped if claims.scope is None else tuple(claims.scope.split()),
        )

    @property
    def family_id(self) -> str | None:
        return None if self.claims is None else self.claims.sid


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, for the audit log and the devices list."""

    client_address: str | None = None
    user_agent: str | None = None
    #: The known-device cookie, if the client sent one (``throttle.py``).
    known_device: str | None = None


@dataclass(frozen=True, slots=True)
class SessionLogin:
    user: User
    session: IssuedSession


@dataclass(frozen=True, slots=True)
class TokenLogin:
    user: User
    access_token: str
    claims: AccessClaims
    refresh: IssuedRefresh


@dataclass(frozen=True, slots=True)
class EmailChanged:
    """The user under the new address, and the rotated session in session mode."""

    user: User
    session: IssuedSession | None = None


@dataclass(frozen=True, slots=True)
class PasswordChanged:
    """What the caller continues with: a rotated session, or a new token pair."""

    #: The user under the new password (known-device cookies name the password epoch).
    user: User
    session: IssuedSession | None = None
    tokens: TokenLogin | None = None


class Authority:
    def __init__(
        self,
        accounts: Accounts,
        sessions: SessionManager,
        tokens: AccessTokenCodec,
        refresh: RefreshTokens,
        revoker: Revoker,
        audit_log: AuditLog,
        throttle: LoginThrottle,
        *,
        scoped_tokens: ScopedTokens,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        session_sid_key: bytes | None = None,
        metrics: Metrics | None = None,
        verified_tokens: VerifiedTokens | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.throttle = throttle
        self.scoped_tokens = scoped_tokens
        self.scopes = tuple(scopes)
        self._session_sid_key = session_sid_key or secrets.token_bytes(32)
        self.accounts = accounts
        self.sessions = sessions
        self.tokens = tokens
        #: How access tokens are verified on requests: the codec, remembering repeats.
        self.verified_tokens = (
            verified_tokens
            if verified_tokens is not None
            else VerifiedTokens(tokens, SystemClock(), capacity=0)
        )
        self.refresh_tokens = refresh
        self.revoker = revoker
        self.audit = audit_log

    async def register(self, email: str, password: str) -> str:
        """Register and return the normalised address; one already taken is not reported
        (SECURITY.md P2)."""
        await self.accounts.register(email, password)
        return normalize_email(email)

    # -- logging in --------------------------------------------------------------------

    async def _authenticate(
        self, email: str, password: str, mode: AuthMode, origin: Origin
    ) -> User:
        """The user, or ``AuthenticationFailed``; ``Throttled`` (before any password work)
        while the account, the address or the device must wait (P3). Counted by result."""
        try:
            user = await self._check_password(email, password, mode, origin)
        except AuthenticationFailed:
            # One result for a wrong password, an unknown address and a locked account, as
            # the answer is one: a scrape must not tell which addresses have accounts (P2).
            self.metrics.login(mode, "failed")
            raise
        except Throttled:
            self.metrics.login(mode, "throttled")
            raise
        except Busy:
            self.metrics.login(mode, "busy")
            raise
        except StoreUnavailable:
            self.metrics.login(mode, "unavailable")
            raise
        self.metrics.login(mode, "succeeded")
        return user

    async def _check_password(
        self, email: str, password: str, mode: AuthMode, origin: Origin
    ) -> User:
        # The known-device cookie names the account by id: read it only when one came
        # (then for known and unknown addresses alike, P2); API clients send none.
        known = await self.accounts.find(email) if origin.known_device else None
        attempt = self.throttle.attempt(email, origin.client_address, origin.known_device, known)
        async with self.throttle.turn(attempt):
            try:
                user = await self.accounts.authenticate(email, password)
            except AuthenticationFailed as exc:
                await self.audit.record(
                    audit.LOGIN_FAILED,
                    user_id=exc.user_id,
                    client_address=origin.client_address,
                    mode=mode,
                    reason=exc.reason if exc.user_id else "unknown_account",
                )
                await self._count_failure(attempt, exc.user_id, origin)
                raise
            await self.throttle.succeeded(attempt)
        await self.audit.record(
            audit.LOGIN_SUCCEEDED, user_id=user.id, client_address=origin.client_address, mode=mode
        )
        return user

    async def _count_failure(self, attempt: Attempt, user_id: str | None, origin: Origin) -> None:
        for scope in await self.throttle.failed(attempt):
            await self.audit.record(
                audit.LOGIN_THROTTLED,
                user_id=user_id,
                client_address=origin.client_address,
                scope=scope,
            )

    async def _reauthenticate(
        self, principal: Principal, origin: Origin, change: Callable[[], Awaitable[_T]]
    ) -> _T:
        """Run ``change``, which checks the current password (P4), under the login
        throttle: a stolen session must not become a way to guess the password. A refused
        new address counts too: it tells whether an account has it (see ``change_email``)."""
        user = await self.accounts.get(principal.user_id)
        attempt = self.throttle.attempt(
            user.email if user is not None else principal.email,
            origin.client_address,
            origin.known_device,
            user,
        )
        async with self.throttle.turn(attempt):
            try:
                return await change()
            except ReauthenticationFailed:
                await self.audit.record(
                    audit.REAUTHENTICATION_FAILED,
                    user_id=principal.user_id,
                    client_address=origin.client_address,
                )
                await self._count_failure(attempt, principal.user_id, origin)
                raise
            except Conflict:
                await self._count_failure(attempt, principal.user_id, origin)
                raise

    async def login_session(
        self, email: str, password: str, *, origin: Origin, replacing: str | None
    ) -> SessionLogin:
        user = await self._authenticate(email, password, "session", origin)
        issued = await self.sessions.create(
            user.id,
            password_changed_at=user.password_changed_at,
            roles_changed_at=user.roles_changed_at,
            client_address=origin.client_address,
            user_agent=origin.user_agent,
            replacing=replacing,
        )
        return SessionLogin(user=user, session=issued)

    async def login_token(self, email: str, password: str, *, origin: Origin) -> TokenLogin:
        user = await self._authenticate(email, password, "jwt", origin)
        return await self._new_family(user, origin)

    async def _new_family(self, user: User, origin: Origin) -> TokenLogin:
        issued = await self.refresh_tokens.start_family(
            user.id,
            password_changed_at=user.password_changed_at,
            client_address=origin.client_address,
            user_agent=origin.user_agent,
        )
        return self._pair(user, issued)

    def _pair(self, user: User, issued: IssuedRefresh) -> TokenLogin:
        token, claims = self.tokens.issue(
            user.id,
            user.roles,
            extra={"email": user.email},
            sid=issued.family.id,
            jti=self.refresh_tokens.access_jti(issued),
            auth_time=issued.family.created_at,
            not_before=self.revoker.revoked.not_before(user.id),
        )
        return TokenLogin(user=user, access_token=token, claims=claims, refresh=issued)

    async def refresh(self, token: str, *, origin: Origin) -> TokenLogin:
        """Rotate a refresh token into a new pair carrying the user's current roles.

        A spent token ends its family and every access token issued from it (T8)."""
        try:
            issued = await self.refresh_tokens.rotate(token)
        except ReuseDetected as exc:
            self.metrics.refreshed("reuse")
            if not exc.ended_here:
                raise
            self.metrics.reuse_detected()
            await self.revoker.family(exc.family.id)
            await self.audit.record(
                audit.REFRESH_REUSE,
                user_id=exc.family.user_id,
                client_address=origin.client_address,
                device=family_handle(exc.family.id),
            )
            raise
        except InvalidGrant:
            self.metrics.refreshed("refused")
            raise
        except StoreUnavailable:
            self.metrics.refreshed("unavailable")
            raise
        family = issued.family
        user = await self.accounts.get(family.user_id)
        if (
            user is None
            or user.locked
            or user.password_changed_at != family.password_changed_at
            or self.revoker.revoked.family_revoked(family.id)
        ):
            await self.refresh_tokens.end(family.id)
            self.metrics.refreshed("refused")
            raise InvalidGrant()
        # Read again after the spend: a family ended meanwhile (a device revoked, an admin
        # ending the user's logins) issues nothing. Ending cuts tokens off again after the
        # delete, so a pair signed after this read (no await in between) is cut off.
        if await self.refresh_tokens.get_family(family.id) is None:
            self.metrics.refreshed("refused")
            raise InvalidGrant()
        self.metrics.refreshed(issued.outcome.value)
        return self._pair(user, issued)

    # -- who is calling ----------------------------------------------------------------

    async def session_principal(self, session_id: str) -> Principal:
        """The user behind a session id; roles, lock state and password changes are read
        with the session (one store read), or come from the session cache, which the
        revocation stream keeps coherent."""
        try:
            record, user = await self.sessions.resolve(session_id)
        except NotAuthenticated:
            self.metrics.authenticated("session", "invalid")
            raise
        except StoreUnavailable:
            self.metrics.authenticated("session", "unavailable")
            raise
        if user.locked or user.password_changed_at != record.password_changed_at:
            self.metrics.authenticated("session", "revoked")
            await self.sessions.end(session_id)
            raise NotAuthenticated("The session is not valid.")
        self.metrics.authenticated("session")
        renewed = None
        if user.roles_changed_at > record.roles_changed_at:
            # The roles changed since this id was issued: continue under a new id (S3).
            # Of requests racing here one renews; the others are served with the old id,
            # which lives RENEWAL_GRACE seconds more (a browser's parallel requests).
            renewed = await self.sessions.renew(
                record, roles_changed_at=user.roles_changed_at, grace=RENEWAL_GRACE
            )
            if renewed is not None:
                record = renewed.record
        return Principal(
            user_id=user.id,
            email=user.email,
            roles=user.roles,
            mode="session",
            session=record,
            renewed=renewed,
            scopes=self.scopes,
        )

    def token_principal(self, token: str, *, audience: str | None = None) -> Principal:
        """The user behind an access token for ``audience`` (default: Twofold's own): a
        signature check, claim checks and the in-memory revocation check (T9); no store
        read. A token without a ``scope`` claim (a login token) holds every scope."""
        try:
            claims = self.verified_tokens.verify(token, audience=audience)
            # An instance that lost the stream cannot know what was revoked elsewhere (O3).
            self.revoker.ensure_current()
            self.revoker.revoked.check(claims)
        except InvalidToken as exc:
            self.metrics.authenticated("jwt", exc.reason)
            raise
        except StoreUnavailable:
            self.metrics.authenticated("jwt", "unavailable")
            raise
        self.metrics.authenticated("jwt")
        return Principal.from_claims(claims, unscoped=self.scopes)

    def session_sid(self, id_hash: bytes) -> str:
        """The ``sid`` of access tokens exchanged from the session with this id hash: an
        opaque derivation, so neither a token nor the revocation stream carries the hash
        (the session's device handle) or anything that leads back to the id."""
        mac = hmac.new(self._session_sid_key, id_hash, hashlib.sha256).digest()
        return SESSION_SID_PREFIX + b64url_encode(mac)[:22]

    async def _revoke_session_tokens(self, *id_hashes: bytes | None) -> None:
        """Refuse the access tokens exchanged from these sessions, everywhere. Called
        before a session is ended: a failure before the delete leaves them refused."""
        for id_hash in dict.fromkeys(id_hashes):
            if id_hash is not None:
                await self.revoker.family(self.session_sid(id_hash))

    # -- logging out -------------------------------------------------------------------

    async def logout(self, principal: Principal, *, session_id: str | None, origin: Origin) -> None:
        """End the current session, or the current token family and its access tokens."""
        if session_id is not None:
            if is_well_formed(session_id):
                await self._revoke_session_tokens(hash_session_id(session_id))
            await self.sessions.end(session_id)
        else:
            await self._end_token_login(principal)
        await self.audit.record(
            audit.LOGOUT,
            user_id=principal.user_id,
            client_address=origin.client_address,
            mode=principal.mode,
        )

    async def _end_token_login(self, principal: Principal) -> None:
        claims = principal.claims
        assert claims is not None
        if claims.sid is not None:
            await self.end_family(claims.sid)
        else:
            await self.revoke_access_token(claims)

    async def revoke_access_token(self, claims: AccessClaims) -> None:
        """Refuse this token (its ``jti``) until it has expired. A duplicate handed out in
        the refresh grace window shares the ``jti`` but was signed up to the grace later,
        so the entry outlives this copy by that much."""
        grace = self.refresh_tokens.policy.reuse_grace
        await self.revoker.token(claims.jti, claims.exp + self.tokens.policy.leeway + grace)

    async def end_family(self, family_id: str) -> None:
        """End a token family and every access token issued from it. The revocation comes
        first: a crash before the delete leaves its tokens refused, and the family's
        refresh token with it (``refresh`` checks)."""
        await self.revoker.family(family_id)
        await self.refresh_tokens.end(family_id)

    # -- password ----------------------------------------------------------------------

    async def change_password(
        self,
        principal: Principal,
        current: str,
        new: str,
        *,
        session_id: str | None,
        origin: Origin,
    ) -> PasswordChanged:
        """Change the password and end every other session and token family of the user.

        Storing the new password is what invalidates the other sessions and families (each
        carries the password epoch it was proved under), so a failure after it, or a login
        racing with it, leaves nothing alive; access tokens are cut off by a user
        revocation. Deleting the records is clean-up. The caller continues with a rotated
        session or, in JWT mode, a new token pair."""
        # Access tokens are cut off before the new password is stored (a crash in between
        # leaves them cut off, and the old password for a retry) and again after it.
        user = await self._reauthenticate(
            principal,
            origin,
            lambda: self.accounts.change_password(
                principal.user_id,
                current,
                new,
                before_storing=lambda: self.revoker.user(principal.user_id),
            ),
        )
        await self.revoker.user(user.id)
        await self.refresh_tokens.end_all_for_user(user.id)
        # Dead already (bound to the old password; their access tokens cut off above).
        await self.scoped_tokens.end_all_for_user(user.id)
        await self.audit.record(
            audit.PASSWORD_CHANGED, user_id=user.id, client_address=origin.client_address
        )
        if session_id is None or principal.session is None:
            await self.sessions.end_all_for_user(user.id)
            return PasswordChanged(tokens=await self._new_family(user, origin), user=user)
        await self.sessions.end_all_for_user(user.id, keep=session_id)
        rotated = await self.sessions.rotate(
            session_id, principal.session, password_changed_at=user.password_changed_at
        )
        return PasswordChanged(session=rotated, user=user)

    # -- e-mail address ------------------------------------------------------------------

    async def change_email(
        self,
        principal: Principal,
        current_password: str,
        new_email: str,
        *,
        session_id: str | None,
        origin: Origin,
    ) -> EmailChanged:
        """Move the account to ``new_email`` after asking for the password (P4).

        An address another account has is refused (``Conflict``), which tells the caller
        that the account exists: an exception to P2 that only a logged-in user who knows
        the password can ask, counted by the login throttle and audited. (With e-mail
        delivery the answer would always be "check your inbox".)

        Access tokens name the old address, so the user's are cut off (every device
        refreshes into tokens with the new one). In session mode the caller continues under
        a new session id (S3: a new id at re-authentication)."""
        user = await self._reauthenticate(
            principal,
            origin,
            lambda: self.accounts.change_email(principal.user_id, current_password, new_email),
        )
        await self.revoker.user(user.id)
        await self.audit.record(
            audit.EMAIL_CHANGED, user_id=user.id, client_address=origin.client_address
        )
        if session_id is None or principal.session is None:
            return EmailChanged(user=user)
        rotated = await self.sessions.rotate(session_id, principal.session)
        return EmailChanged(user=user, session=rotated)

    # -- devices -----------------------------------------------------------------------

    async def devices(self, principal: Principal) -> list[Device]:
        """The caller's sessions and token families, the current one marked."""
        current_hash = principal.session.id_hash if principal.session is not None else None
        sessions = [
            from_session(record, current=record.id_hash == current_hash)
            for record in await self.sessions.list_for_user(principal.user_id)
        ]
        families = [
            from_family(family, current=family.id == principal.family_id)
            for family in await self.refresh_tokens.list_for_user(principal.user_id)
        ]
        return sorted(sessions + families, key=lambda d: d.last_seen_at, reverse=True)

    async def revoke_device(
        self,
        handle: str,
        *,
        owner: str | None,
        actor: Principal | None,
        origin: Origin,
    ) -> Device:
        """End one session or family. ``owner`` restricts it to that user's devices (a
        user's own revocation); an admin passes None. Unknown or foreign: ``NotFound``."""
        parsed = parse_handle(handle)
        device: Device | None = None
        if parsed is not None and parsed[0] == "session":
            assert isinstance(parsed[1], bytes)
            record = await self.sessions.get_by_hash(parsed[1])
            if record is not None and owner in (None, record.user_id):
                await self._revoke_session_tokens(record.id_hash, record.renewed_to)
                await self.sessions.end_by_hash(record.id_hash)
                device = from_session(record)
        elif parsed is not None:
            assert isinstance(parsed[1], str)
            family = await self.refresh_tokens.get_family(parsed[1])
            if family is not None and owner in (None, family.user_id):
                await self.end_family(family.id)
                device = from_family(family)
        if device is None:
            raise NotFound("No such session or device.")
        await self.audit.record(
            audit.SESSION_REVOKED,
            user_id=device.user_id,
            actor_id=actor.user_id if actor is not None else None,
            client_address=origin.client_address,
            device=device.id,
            device_kind=device.kind,
        )
        return device

    async def revoke_other_devices(
        self, principal: Principal, *, session_id: str | None, origin: Origin
    ) -> int:
        """End every session and family of the caller except the one in use."""
        keep = session_id if session_id is not None and is_well_formed(session_id) else None
        keep_hash = hash_session_id(keep) if keep is not None else None
        # Listed before the delete, so that their exchanged tokens are refused first.
        await self._revoke_session_tokens(
            *(
                record.id_hash
                for record in await self.sessions.list_for_user(principal.user_id)
                if record.id_hash != keep_hash
            )
        )
        ended = await self.sessions.end_all_for_user(principal.user_id, keep=keep)
        # Revoked before the delete (a crash between leaves their tokens refused, as in
        # end_family), and any family that appeared meanwhile after it.
        revoked = {
            family.id
            for family in await self.refresh_tokens.list_for_user(principal.user_id)
            if family.id != principal.family_id
        }
        for family_id in revoked:
            await self.revoker.family(family_id)
        families = await self.refresh_tokens.end_all_for_user(
            principal.user_id, keep=principal.family_id
        )
        for family_id in set(families) - revoked:
            await self.revoker.family(family_id)
        total = ended + len(families)
        await self.audit.record(
            audit.SESSION_REVOKED,
            user_id=principal.user_id,
            actor_id=principal.user_id,
            client_address=origin.client_address,
            device="others",
            ended=total,
        )
        return total

"""What an admin can do: lock and unlock accounts, change roles, see who is logged in,
revoke any session, rotate signing keys and page through the audit log.

Every change takes effect on the next request in both modes: sessions read the user on
every request, and access tokens are cut off by a user revocation (T9).
"""

from __future__ import annotations

from twofold import audit
from twofold.accounts import ROLE_ADMIN
from twofold.authority import Authority, Origin, Principal
from twofold.devices import Device, from_family, from_session
from twofold.errors import InvalidEmail, InvalidRequest, NotFound
from twofold.jose.keyring import KeyRing
from twofold.revocation import EVERYONE
from twofold.signing_keys import Rotation, SigningKeys
from twofold.store.records import User


class Admin:
    def __init__(self, authority: Authority, keys: SigningKeys) -> None:
        self._authority = authority
        self._keys = keys

    async def user(self, user_id: str) -> User:
        user = await self._authority.accounts.get(user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def find_user(self, email_or_id: str) -> User:
        """A user by e-mail address (any spelling that normalises to it) or by id."""
        user: User | None = None
        if "@" in email_or_id:
            try:
                user = await self._authority.accounts.get_by_email(email_or_id)
            except InvalidEmail:
                user = None
        else:
            user = await self._authority.accounts.get(email_or_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def lock(self, user_id: str, *, actor: Principal | None, origin: Origin) -> User:
        """Lock the account and end everything of it at once: sessions, token families,
        scoped tokens and every access token already out (the bank scenario)."""
        if actor is not None and actor.user_id == user_id:
            raise InvalidRequest("You cannot lock your own account.")
        # Locking a locked account ends everything again (a retry after a failure half-way
        # must finish the job) but is audited once.
        was_locked = (await self.user(user_id)).locked
        authority = self._authority
        async with authority.revoker.cutting(user_id):
            await authority.accounts.set_locked(user_id, True)
            await authority.sessions.end_all_for_user(user_id)
            await authority.refresh_tokens.end_all_for_user(user_id)
            await authority.scoped_tokens.end_all_for_user(user_id)
        if not was_locked:
            await self._record(audit.ACCOUNT_LOCKED, user_id, actor, origin)
        return await self.user(user_id)

    async def end_sessions(
        self, user_id: str | None, *, actor: Principal | None, origin: Origin
    ) -> int:
        """End every session, token family and access token of one user (``user_id``) or,
        with None, of everyone (SECURITY.md S8); of one user, their scoped tokens too.
        Returns how many ended; access tokens are cut off by a revocation either way."""
        authority = self._authority
        # Cut access tokens off before the deletes (a crash half-way leaves them cut) and
        # after (a refresh that read its family before the delete signed its token before
        # the second cut, which refuses it).
        if user_id is None:
            async with authority.revoker.cutting(EVERYONE):
                ended = (
                    await authority.sessions.end_everyone()
                    + await authority.refresh_tokens.end_everyone()
                )
        else:
            await self.user(user_id)
            async with authority.revoker.cutting(user_id):
                ended = await authority.sessions.end_all_for_user(user_id)
                ended += len(await authority.refresh_tokens.end_all_for_user(user_id))
                # A scoped token made with a stolen session would outlive it otherwise.
                ended += len(await authority.scoped_tokens.end_all_for_user(user_id))
        await self._record(audit.SESSION_REVOKED, user_id, actor, origin, device="all", ended=ended)
        return ended

    async def unlock(self, user_id: str, *, actor: Principal | None, origin: Origin) -> User:
        if not (await self.user(user_id)).locked:
            return await self.user(user_id)  # nothing to do, nothing to audit
        await self._authority.accounts.set_locked(user_id, False)
        await self._record(audit.ACCOUNT_UNLOCKED, user_id, actor, origin)
        return await self.user(user_id)

    async def set_roles(
        self, user_id: str, roles: list[str], *, actor: Principal | None, origin: Origin
    ) -> User:
        """New roles, in force on the next request: sessions read them fresh, access tokens
        issued before are refused, and the next refresh carries the new roles."""
        before = await self.user(user_id)
        if actor is not None and actor.user_id == user_id and ROLE_ADMIN not in roles:
            raise InvalidRequest("You cannot remove your own admin role.")
        if tuple(dict.fromkeys(roles)) == before.roles:
            return before  # nothing changes: no revocation, no audit event
        async with self._authority.revoker.cutting(user_id):
            after = await self._authority.accounts.set_roles(user_id, roles)
        await self._record(
            audit.ROLES_CHANGED,
            user_id,
            actor,
            origin,
            before=list(before.roles),
            after=list(after),
        )
        return await self.user(user_id)

    async def live_devices(
        self, *, limit: int, offset: int, caller: Principal | None = None
    ) -> list[Device]:
        """Who is logged in now: live sessions and token families of every user, most
        recently active first, the caller's own marked ``current``. Sessions and families
        are paged separately and merged, so a page holds up to ``limit`` of each."""
        authority = self._authority
        current_session = caller.session.id_hash if caller and caller.session else None
        current_family = caller.family_id if caller else None
        sessions = [
            from_session(r, current=r.id_hash == current_session)
            for r in await authority.sessions.list_live(limit, offset)
        ]
        families = [
            from_family(f, current=f.id == current_family)
            for f in await authority.refresh_tokens.list_live(limit, offset)
        ]
        return sorted(sessions + families, key=lambda d: d.last_seen_at, reverse=True)

    async def rotate_keys(
        self, *, compromised: bool, actor: Principal | None, origin: Origin
    ) -> tuple[Rotation, KeyRing]:
        """A new signing key, in use here at once; other instances reload on the stream
        entry. With ``compromised`` the old keys' tokens are refused from the next request."""
        rotation = await self._keys.rotate(compromised=compromised)
        ring = await self._keys.load()
        self._authority.tokens.keyring = ring
        await self._authority.revoker.keys(rotation.kid)
        await self._record(
            audit.KEY_ROTATED,
            None,
            actor,
            origin,
            kid=rotation.kid,
            previous=list(rotation.previous),
            compromised=compromised,
        )
        return rotation, ring

    async def _record(
        self,
        kind: str,
        user_id: str | None,
        actor: Principal | None,
        origin: Origin,
        **detail: object,
    ) -> None:
        await self._authority.audit.record(
            kind,
            user_id=user_id,
            actor_id=actor.user_id if actor is not None else None,
            client_address=origin.client_address,
            **detail,
        )

"""A running Twofold: the store, the keys and the core, built from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass

from twofold.accounts import Accounts
from twofold.authority import Authority
from twofold.clock import Clock, SystemClock
from twofold.config import Settings, prepare_data_dir
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.masterkey import MasterKey
from twofold.passwords import ARGON2_PROFILES, PasswordHasher, PasswordPolicy
from twofold.sessions import SessionManager, SessionPolicy
from twofold.signing_keys import load_keyring
from twofold.store.base import Store
from twofold.store.factory import store_from_url
from twofold.store.migrate import upgrade


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    store: Store
    master_key: MasterKey
    keyring: KeyRing
    hasher: PasswordHasher
    authority: Authority

    @classmethod
    async def start(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        """Open the store (migrating an embedded SQLite database), load keys, build the core."""
        clock = clock or SystemClock()
        prepare_data_dir(settings.data_dir)
        url = settings.effective_database_url
        if url.startswith("sqlite:"):
            # Embedded and owned by this server: bring it to the current schema itself.
            upgrade(url)
        master_key = MasterKey.load_or_create(settings.effective_master_key_file)
        store = store_from_url(url)
        await store.open()
        hasher: PasswordHasher | None = None
        try:
            keyring = await load_keyring(
                store, master_key.sealer(), settings.signing_algorithm, clock
            )
            hasher = PasswordHasher(
                ARGON2_PROFILES[settings.argon2_profile],
                workers=settings.hash_workers,
                max_pending=settings.hash_queue,
            )
            sessions = SessionManager(
                store,
                SessionPolicy(
                    idle_timeout=settings.session_idle_timeout,
                    absolute_lifetime=settings.session_absolute_lifetime,
                    touch_interval=settings.session_touch_interval,
                ),
                clock,
            )
            tokens = AccessTokenCodec(
                keyring,
                TokenPolicy(
                    issuer=settings.effective_issuer,
                    audience=settings.audience,
                    lifetime=settings.access_token_lifetime,
                    leeway=settings.token_leeway,
                ),
                clock,
            )
            accounts = Accounts(store, hasher, PasswordPolicy(), clock)
        except BaseException:
            if hasher is not None:
                hasher.close()
            await store.close()
            raise
        authority = Authority(accounts, sessions, tokens)
        return cls(settings, clock, store, master_key, keyring, hasher, authority)

    async def close(self) -> None:
        self.hasher.close()
        await self.store.close()

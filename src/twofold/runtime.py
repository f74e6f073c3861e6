"""A running Twofold: the store, the keys and the core, built from ``Settings``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from twofold import audit
from twofold.accounts import Accounts
from twofold.admin import Admin
from twofold.audit import AuditLog
from twofold.authority import Authority
from twofold.clients import Clients
from twofold.clock import Clock, SystemClock
from twofold.config import Settings, prepare_data_dir
from twofold.errors import StoreUnavailable
from twofold.exchange import ExchangePolicy, TokenExchange
from twofold.jose.jwt import AccessTokenCodec, TokenPolicy
from twofold.jose.keyring import KeyRing
from twofold.jose.verified_tokens import VerifiedTokens
from twofold.masterkey import MasterKey
from twofold.metrics import Metrics
from twofold.oauth import TokenService
from twofold.passwords import ARGON2_PROFILES, PasswordHasher, PasswordPolicy
from twofold.refresh import RefreshPolicy, RefreshTokens
from twofold.revocation import Revoker
from twofold.scoped_tokens import ScopedTokenPolicy, ScopedTokens
from twofold.session_cache import SessionCache
from twofold.sessions import SessionManager, SessionPolicy
from twofold.signing_keys import SigningKeys
from twofold.store.base import Store
from twofold.store.factory import parse_url, store_from_url
from twofold.store.migrate import upgrade
from twofold.store.timed import timed
from twofold.throttle import LoginThrottle, ThrottlePolicy

log = logging.getLogger("twofold.runtime")

PURGE_BATCH = 1000
#: Batches of one kind per round at most; the rest waits for the next round.
MAX_PURGE_BATCHES = 100


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    store: Store
    #: Where sessions and the revocation stream live: ``store`` itself, or a Redis beside it.
    session_store: Store
    master_key: MasterKey
    keys: SigningKeys
    hasher: PasswordHasher
    authority: Authority
    admin: Admin
    clients: Clients
    oauth: TokenService
    exchange: TokenExchange
    metrics: Metrics = field(default_factory=Metrics)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def keyring(self) -> KeyRing:
        return self.authority.tokens.keyring

    @classmethod
    async def start(
        cls, settings: Settings, *, clock: Clock | None = None, metrics: Metrics | None = None
    ) -> Runtime:
        """Open the store (migrating an embedded SQLite database), load keys and the
        revocation stream, build the core. Background work starts with :meth:`serve`.
        ``metrics`` (the app's, which its middleware shares) is made here when not given."""
        clock = clock or SystemClock()
        metrics = metrics if metrics is not None else Metrics()
        prepare_data_dir(settings.data_dir)
        url = settings.effective_database_url
        if url.startswith("sqlite:"):
            # Embedded and owned by this server: bring it to the current schema itself.
            upgrade(url)
        master_key = MasterKey.load_or_create(settings.effective_master_key_file)
        store = _open_store(url, settings, metrics)
        await store.open()
        session_store = store
        hasher: PasswordHasher | None = None
        try:
            if settings.redis_url is not None:
                session_store = _open_store(settings.redis_url, settings, metrics)
                await session_store.open()
            # An entry of the revocation stream lives as long as the tokens it can refuse.
            horizon = settings.access_token_lifetime + settings.token_leeway
            keys = SigningKeys(
                store, master_key.sealer(), settings.signing_algorithm, clock, retain=horizon
            )
            tokens = AccessTokenCodec(
                await keys.load(),
                TokenPolicy(
                    issuer=settings.effective_issuer,
                    audience=settings.audience,
                    lifetime=settings.access_token_lifetime,
                    leeway=settings.token_leeway,
                ),
                clock,
            )
            revoker = Revoker(session_store, clock, horizon=horizon)
            await revoker.load()
            if keys.created_at_start is not None:
                await revoker.keys(keys.created_at_start)
            cache = None
            if settings.session_cache_ttl > 0:
                cache = SessionCache(settings.session_cache_ttl, revoker.is_current)
                revoker.observe(cache.invalidate)
            hasher = PasswordHasher(
                ARGON2_PROFILES[settings.argon2_profile],
                workers=settings.hash_workers,
                max_pending=settings.hash_queue,
                niceness=settings.hash_niceness,
            )
            sessions = SessionManager(
                session_store,
                SessionPolicy(
                    idle_timeout=settings.session_idle_timeout,
                    absolute_lifetime=settings.session_absolute_lifetime,
                    touch_interval=settings.session_touch_interval,
                ),
                clock,
                users=None if session_store is store else store,
                announce=revoker.sessions,
                cache=cache,
            )
            refresh = RefreshTokens(
                store,
                RefreshPolicy(
                    idle_timeout=settings.refresh_idle_timeout,
                    absolute_lifetime=settings.refresh_absolute_lifetime,
                    reuse_grace=settings.refresh_reuse_grace,
                ),
                clock,
                master_key.derive("refresh-token"),
            )
            accounts = Accounts(store, hasher, PasswordPolicy(), clock)
        except BaseException:
            if hasher is not None:
                hasher.close()
            await _close_stores(store, session_store)
            raise
        throttle = LoginThrottle(
            store,
            ThrottlePolicy(
                per_account=settings.login_failures_per_account,
                per_address=settings.login_failures_per_address,
                max_delay=settings.login_max_delay,
                memory=settings.login_failure_memory,
            ),
            clock,
            master_key.derive("known-device"),
        )
        audit_log = AuditLog(store, clock, metrics=metrics)
        scoped_tokens = ScopedTokens(
            store,
            store,
            revoker,
            audit_log,
            clock,
            ScopedTokenPolicy(
                scopes=tuple(settings.scopes), max_lifetime=settings.scoped_token_max_lifetime
            ),
            metrics=metrics,
        )
        authority = Authority(
            accounts,
            sessions,
            tokens,
            refresh,
            revoker,
            audit_log,
            throttle,
            scoped_tokens=scoped_tokens,
            scopes=settings.scopes,
            session_sid_key=master_key.derive("session-sid"),
            metrics=metrics,
            verified_tokens=VerifiedTokens(
                tokens, clock, capacity=settings.access_token_cache_size
            ),
        )

        async def reload_keys() -> None:
            tokens.keyring = await keys.load()

        revoker.on_keys_changed(reload_keys)
        return cls(
            settings,
            clock,
            store,
            session_store,
            master_key,
            keys,
            hasher,
            authority,
            Admin(authority, keys),
            Clients(store, clock),
            TokenService(authority),
            TokenExchange(
                authority,
                scoped_tokens,
                ExchangePolicy(
                    audiences=tuple(settings.token_audiences),
                    lifetime=settings.exchange_token_lifetime,
                ),
            ),
            metrics=metrics,
        )

    def serve(self) -> None:
        """Start following the revocation stream and the periodic maintenance."""
        follow = self.authority.revoker.follow(
            poll_interval=self.settings.event_poll_interval,
            max_staleness=self.settings.event_max_staleness,
        )
        self._tasks = [asyncio.create_task(follow), asyncio.create_task(self._maintain())]

    async def check_ready(self) -> None:
        """``StoreUnavailable`` unless every store answers and the revocation stream is
        followed (an instance behind on it refuses tokens)."""
        for store in self._stores():
            await store.ping()
        self.authority.revoker.ensure_current()

    async def maintain(self) -> None:
        """One round of upkeep: retire keys whose tokens have all expired (and tell every
        instance), and purge expired sessions, families, scoped tokens and revocation
        entries in bounded batches."""
        now = self.clock.now()
        retired = await self.keys.retire_due()
        if retired:
            self.authority.tokens.keyring = await self.keys.load()
            for kid in retired:
                await self.authority.revoker.keys(kid)
                await self.authority.audit.record(audit.KEY_RETIRED, kid=kid)
        purges: tuple[Callable[[], Awaitable[int]], ...] = (
            lambda: self.session_store.purge_expired_sessions(now, PURGE_BATCH),
            lambda: self.store.purge_expired_families(now, PURGE_BATCH),
            lambda: self.store.purge_expired_scoped_tokens(now, PURGE_BATCH),
            lambda: self.authority.revoker.purge(PURGE_BATCH),
            lambda: self.store.purge_stale_failures(
                now - self.settings.login_failure_memory, PURGE_BATCH
            ),
        )
        for purge in purges:
            # Batch after batch until one comes back short: each batch is one short
            # transaction, and the loop yields between them so requests keep flowing.
            for _ in range(MAX_PURGE_BATCHES):
                if await purge() < PURGE_BATCH:
                    break
                await asyncio.sleep(0)
        self.authority.revoker.prune()

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.settings.maintenance_interval)
            try:
                await self.maintain()
            except StoreUnavailable as exc:
                log.warning("maintenance skipped", extra={"reason": exc.detail})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.hasher.close()
        await _close_stores(*self._stores())

    def _stores(self) -> tuple[Store, ...]:
        return (
            (self.store,) if self.session_store is self.store else (self.store, self.session_store)
        )


def _open_store(url: str, settings: Settings, metrics: Metrics) -> Store:
    """A new store for ``url``, its calls timed when metrics are on."""
    store = store_from_url(url)
    if not settings.metrics_enabled:
        return store
    return timed(store, parse_url(url).get_backend_name(), metrics)


async def _close_stores(*stores: Store) -> None:
    for store in dict.fromkeys(stores):  # once each, in order
        await store.close()

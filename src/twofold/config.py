"""Configuration: defaults < TOML file < ``TWOFOLD_*`` environment < command-line options."""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from twofold.errors import ConfigurationError
from twofold.passwords import ProfileName

#: A scope or audience name: what may appear in a ``scope`` claim and an ``aud``.
SCOPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,63}")
#: An audience of exchanged tokens: a name or a URL (RFC 8707 resource indicators).
AUDIENCE_NAME = re.compile(r"[!-+\--~]{1,255}")

SigningAlgorithm = Literal["ES256", "EdDSA", "RS256", "HS256"]
LogFormat = Literal["json", "text"]

CONFIG_FILE_ENV = "TWOFOLD_CONFIG"


def _default_hash_workers() -> int:
    # Leave a core for the requests that only check a session or a token.
    return max(1, (os.cpu_count() or 2) - 1)


class Settings(BaseSettings):
    """Every option of ``twofold serve``; each is also ``TWOFOLD_<NAME>`` and a TOML key."""

    model_config = SettingsConfigDict(env_prefix="TWOFOLD_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("twofold-data")
    database_url: str | None = Field(
        default=None, description="Defaults to SQLite at DATA_DIR/twofold.db."
    )
    redis_url: str | None = Field(
        default=None,
        description="A Redis for sessions and the revocation stream (with push), beside a "
        "PostgreSQL DATABASE_URL that keeps accounts, token families, keys and the audit log.",
    )
    public_url: str | None = Field(
        default=None,
        description="The URL clients use; defaults to http://HOST:PORT. An https URL makes "
        "cookies Secure with the __Host- prefix.",
    )
    issuer: str | None = Field(default=None, description="JWT iss; defaults to the public URL.")
    tls_cert_file: Path | None = Field(
        default=None,
        description="Serve HTTPS with this PEM certificate (chain); needs TLS_KEY_FILE.",
    )
    tls_key_file: Path | None = Field(
        default=None, description="The certificate's PEM private key."
    )
    tls_self_signed: bool = Field(
        default=False,
        description="Development only: serve HTTPS with a self-signed certificate for "
        "localhost, made once under DATA_DIR/tls.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are believed; from anyone else they are ignored.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) whose pages may call the API with "
        "credentials (CORS). Empty: no cross-origin access.",
    )
    login_failures_per_account: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed logins for one account (from browsers it has not seen log in) "
        "before each further attempt must wait; the wait doubles per failure.",
    )
    login_failures_per_address: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Failed logins from one client address (IPv6: its /64) before the same.",
    )
    login_max_delay: float = Field(
        default=900.0,
        ge=1,
        le=86_400,
        description="The longest wait the login throttle imposes, in seconds.",
    )
    login_failure_memory: float = Field(
        default=3600.0,
        ge=60,
        le=30 * 86_400,
        description="Seconds after which a key's failed logins are forgotten if no new one came.",
    )
    audience: str = Field(default="twofold", min_length=1)
    scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["read", "write"],
        description="The scopes every user holds: sessions and login tokens hold all of "
        "them; tokens exchanged for other applications and scoped tokens hold a subset.",
    )
    token_audiences: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Audiences (other applications) that POST /auth/token may mint "
        "short-lived access tokens for; never AUDIENCE itself. Empty: no exchange.",
    )
    exchange_token_lifetime: float = Field(
        default=120.0,
        ge=1,
        description="Seconds an access token minted by POST /auth/token lives (at most "
        "ACCESS_TOKEN_LIFETIME).",
    )
    scoped_token_max_lifetime: float = Field(
        default=90 * 86_400,
        ge=60,
        le=3650 * 86_400,
        description="The longest expiry a user may give a scoped token (an application's "
        "long-lived credential), in seconds.",
    )
    revocation_feed_public: bool = Field(
        default=True,
        description="Serve the revocation feed to anyone; false: it needs a registered "
        "client's HTTP Basic credentials.",
    )
    signing_algorithm: SigningAlgorithm = "ES256"
    access_token_lifetime: int = Field(default=300, ge=30, le=86_400)
    access_token_cache_size: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="Access tokens remembered as verified, by their exact text, so a repeat "
        "skips the signature check (expiry and revocation are still checked on every "
        "request; forgotten on any key change). 0: off.",
    )
    token_leeway: int = Field(default=30, ge=0, le=300)
    session_idle_timeout: int = Field(default=1800, ge=60)
    session_absolute_lifetime: int = Field(default=43_200, ge=300)
    session_touch_interval: int = Field(default=60, ge=0)
    refresh_idle_timeout: int = Field(
        default=7 * 86_400, ge=60, description="A token family unused this long ends."
    )
    refresh_absolute_lifetime: int = Field(
        default=30 * 86_400, ge=300, description="A token family ends this long after login."
    )
    refresh_reuse_grace: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="Seconds in which a just-spent refresh token presented again gets the "
        "same new pair (a client's racing requests); 0 makes any second use a theft.",
    )
    event_poll_interval: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description="Seconds between reads of the revocation stream for changes made by "
        "other processes, where the store cannot push them (SQLite).",
    )
    event_max_staleness: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Token requests get 503 once the revocation stream has not been read "
        "for this many seconds (an outage): revocations made elsewhere would go unseen.",
    )
    session_cache_ttl: float = Field(
        default=0.0,
        ge=0,
        le=300,
        description="Seconds a session may be served from memory without a store read; "
        "ending it anywhere drops it everywhere through the revocation stream. 0: off.",
    )
    maintenance_interval: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds between purges of expired records and key retirement.",
    )
    argon2_profile: ProfileName = "rfc9106-low-memory"
    hash_workers: int = Field(default_factory=_default_hash_workers, ge=1, le=64)
    hash_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much lower the CPU priority of the password-hashing threads is "
        "than the request loop's (Linux), so logins never starve other requests. 0: equal.",
    )
    hash_queue: int = Field(
        default=32, ge=1, le=10_000, description="Password hashes waiting at most; then 503."
    )
    body_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds a client has to send a request body."
    )
    max_body_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    master_key_file: Path | None = Field(
        default=None, description="Defaults to DATA_DIR/master.key, made on first start."
    )
    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus metrics at GET /metrics (and time requests and store "
        "calls for them); false: /metrics answers 404 and nothing is measured.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="A bearer token that GET /metrics requires (from anywhere). Without "
        "one, only direct loopback clients may scrape: no forwarding headers, no proxy.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: LogFormat = "json"

    @model_validator(mode="after")
    def _touch_within_idle(self) -> Settings:
        if self.session_touch_interval >= self.session_idle_timeout:
            raise ValueError("session_touch_interval must be shorter than session_idle_timeout")
        if self.session_idle_timeout > self.session_absolute_lifetime:
            raise ValueError("session_idle_timeout must not exceed session_absolute_lifetime")
        if self.event_max_staleness < 2 * self.event_poll_interval:
            raise ValueError("event_max_staleness must be at least twice event_poll_interval")
        if self.refresh_idle_timeout > self.refresh_absolute_lifetime:
            raise ValueError("refresh_idle_timeout must not exceed refresh_absolute_lifetime")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_self_signed and self.tls_cert_file is not None:
            raise ValueError("tls_self_signed and tls_cert_file exclude each other")
        if self.audience.casefold() in {name.casefold() for name in self.token_audiences}:
            # Compared without case: a resource server that compares audiences loosely
            # must not take an exchanged token for one of Twofold's own.
            raise ValueError(
                "token_audiences must not contain audience: exchanged tokens would be "
                "accepted by Twofold's own endpoints"
            )
        if self.exchange_token_lifetime > self.access_token_lifetime:
            raise ValueError("exchange_token_lifetime must not exceed access_token_lifetime")
        if self.secure_cookies:
            for origin in self.cors_origins:
                host = urlsplit(origin).hostname
                if origin.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
                    raise ValueError(
                        f"cors_origins: {origin} is plain http: a network attacker could "
                        "use it to call this https server with the user's credentials"
                    )
        return self

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # From the environment a list is written "a, b" (a TOML file gives a real list).
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("scopes", "token_audiences", mode="before")
    @classmethod
    def _separated(cls, value: object) -> object:
        # Names hold no spaces or commas: "read write" and "read, write" both work.
        if isinstance(value, str):
            return value.replace(",", " ").split()
        return value

    @field_validator("scopes")
    @classmethod
    def _scope_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one scope is needed")
        for name in value:
            if not SCOPE_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not a scope name: 1-64 letters, digits, ':', '.', '_' or "
                    "'-', starting with a letter or digit"
                )
        return list(dict.fromkeys(value))

    @field_validator("token_audiences")
    @classmethod
    def _audience_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not AUDIENCE_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an audience: 1-255 visible ASCII characters, no comma"
                )
        return list(dict.fromkeys(value))

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        # Written in canonical form (a network with host bits set is narrowed to its
        # network), since uvicorn silently treats anything it cannot parse as a name.
        checked = []
        for entry in value:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
            if network.prefixlen == 0:
                raise ValueError(f"{entry!r} would trust every address: name the proxies")
            single = network.num_addresses == 1 and "/" not in entry
            checked.append(str(network.network_address) if single else str(network))
            if isinstance(network, ipaddress.IPv4Network):
                # A proxy reaching a dual-stack socket arrives as ::ffff:a.b.c.d.
                mapped = ipaddress.ip_network(
                    f"::ffff:{network.network_address}/{96 + network.prefixlen}"
                )
                checked.append(str(mapped.network_address) if single else str(mapped))
        return checked

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [check_origin(entry) for entry in value]

    @field_validator("public_url", "issuer")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def serves_tls(self) -> bool:
        return self.tls_self_signed or self.tls_cert_file is not None

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url
        scheme = "https" if self.serves_tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def effective_issuer(self) -> str:
        return self.issuer or self.effective_public_url

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'twofold.db'}"

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def secure_cookies(self) -> bool:
        return self.effective_public_url.lower().startswith("https://")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML source reads model_config["toml_file"], set by load_settings.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def normalize_origin(origin: str) -> str:
    """Lower case, without the scheme's default port: the form browsers send."""
    origin = origin.lower()
    for scheme, port in (("https://", ":443"), ("http://", ":80")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin.removesuffix(port)
    return origin


def check_origin(value: str) -> str:
    """A web origin as browsers send it: ``scheme://host[:port]``, nothing more.

    ``*`` and ``null`` are refused: with credentials they would open the API to any page
    (or to sandboxed and file pages, which all send ``null``)."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or value != value.strip()
    ):
        raise ValueError(f"{value!r} is not an origin (scheme://host[:port], no path)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    if parts.hostname.endswith(".") or not parts.hostname.isascii():
        raise ValueError(f"{value!r}: write the host as browsers send it (punycode, no final dot)")
    return normalize_origin(value)


def prepare_data_dir(path: Path) -> None:
    """Create the data directory owner-only, or refuse one that others can enter: it holds
    the master key and the database (password hashes, sealed keys)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"The data directory {path} is open to other users; run: chmod 700 {path}"
        )


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and ``config_file`` (or ``$TWOFOLD_CONFIG``).

    ``overrides`` (command-line options) win; ``None`` values are ignored.
    """
    try:
        return _load(config_file, {k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        # Name the option and the rule, never the value (it may be a secret).
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ConfigurationError(f"Invalid settings: {problems}") from None


def _problem(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {message}" if where else message


def _load(config_file: Path | None, given: dict[str, Any]) -> Settings:
    path = config_file or (
        Path(os.environ[CONFIG_FILE_ENV]) if os.environ.get(CONFIG_FILE_ENV) else None
    )
    if path is None:
        return Settings(**given)
    if not path.is_file():
        raise ConfigurationError(f"The configuration file {path} does not exist.")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        return FileSettings(**given)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            f"The configuration file {path} is not valid TOML: {exc}"
        ) from None

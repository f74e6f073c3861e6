"""Configuration: defaults < TOML file < TWOFOLD_* environment < explicit overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from twofold.config import CONFIG_FILE_ENV, Settings, load_settings
from twofold.errors import ConfigurationError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TWOFOLD_* variable from the runner leaks in; relative paths land in tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("TWOFOLD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults ------------------------------------------------------------------------------


def test_defaults() -> None:
    """Without file or environment: loopback:8000, ES256, plain-http cookies."""
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.signing_algorithm == "ES256"
    assert settings.argon2_profile == "rfc9106-low-memory"
    assert settings.effective_public_url == "http://127.0.0.1:8000"
    assert settings.effective_issuer == "http://127.0.0.1:8000"
    assert settings.secure_cookies is False


def test_database_defaults_to_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    """The default database is DATA_DIR/twofold.db, and the master key sits beside it."""
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/data/twofold.db"
    assert settings.effective_master_key_file == tmp_path / "data" / "master.key"


def test_explicit_database_url_and_key_file_are_kept(tmp_path: Path) -> None:
    """A configured database URL or key file replaces the data-dir default."""
    settings = Settings(
        database_url="postgresql://db.internal/twofold", master_key_file=tmp_path / "k"
    )
    assert settings.effective_database_url == "postgresql://db.internal/twofold"
    assert settings.effective_master_key_file == tmp_path / "k"


@pytest.mark.parametrize(
    ("public_url", "secure"),
    [
        (None, False),
        ("http://auth.example.com", False),
        ("https://auth.example.com", True),
        ("https://auth.example.com:8443/twofold", True),
    ],
    ids=["default", "http", "https", "https-port-path"],
)
def test_secure_cookies_follow_the_public_url_scheme(public_url: str | None, secure: bool) -> None:
    """Cookies are Secure exactly when the public URL is https (S5)."""
    assert Settings(public_url=public_url).secure_cookies is secure


def test_secure_cookies_for_an_upper_case_https_scheme() -> None:
    """An https public URL written in capitals still makes cookies Secure (S5)."""
    assert Settings(public_url="HTTPS://auth.example.com").secure_cookies is True


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://auth.example.com/", "https://auth.example.com"),
        ("https://auth.example.com///", "https://auth.example.com"),
        ("https://example.com/auth/", "https://example.com/auth"),
        ("https://auth.example.com", "https://auth.example.com"),
    ],
    ids=["one-slash", "many-slashes", "path", "none"],
)
def test_trailing_slash_is_stripped_from_public_url_and_issuer(given: str, expected: str) -> None:
    """public_url and issuer lose trailing slashes, so joined paths and iss compare cleanly."""
    settings = Settings(public_url=given, issuer=given)
    assert settings.public_url == expected
    assert settings.issuer == expected
    assert settings.effective_issuer == expected


def test_issuer_defaults_to_the_public_url() -> None:
    """Without an explicit issuer, iss is the public URL."""
    assert Settings(public_url="https://a.example/").effective_issuer == "https://a.example"


# -- environment ---------------------------------------------------------------------------


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """TWOFOLD_<NAME> variables replace the defaults, with type conversion."""
    monkeypatch.setenv("TWOFOLD_HOST", "192.0.2.10")
    monkeypatch.setenv("TWOFOLD_PORT", "9100")
    monkeypatch.setenv("TWOFOLD_SIGNING_ALGORITHM", "EdDSA")
    monkeypatch.setenv("TWOFOLD_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.setenv("TWOFOLD_PUBLIC_URL", "https://auth.example.com/")
    settings = load_settings()
    assert settings.host == "192.0.2.10"
    assert settings.port == 9100
    assert settings.signing_algorithm == "EdDSA"
    assert settings.data_dir == tmp_path / "env-data"
    assert settings.public_url == "https://auth.example.com"
    assert settings.secure_cookies is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWOFOLD_PORT", "not-a-port"),
        ("TWOFOLD_PORT", "70000"),
        ("TWOFOLD_SIGNING_ALGORITHM", "none"),
        ("TWOFOLD_ARGON2_PROFILE", "fast"),
        ("TWOFOLD_SESSION_IDLE_TIMEOUT", "5"),
    ],
    ids=["port-text", "port-range", "alg-none", "unknown-profile", "idle-too-short"],
)
def test_invalid_environment_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """An environment value that breaks a field's rule raises ConfigurationError."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError):
        load_settings()


def test_non_setting_twofold_variables_are_not_mistaken_for_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """TWOFOLD_MASTER_KEY and TWOFOLD_CONFIG share the prefix but are not settings fields."""
    monkeypatch.setenv("TWOFOLD_MASTER_KEY", "A" * 43)
    monkeypatch.setenv(CONFIG_FILE_ENV, str(write_toml(tmp_path / "c.toml", "port = 9001\n")))
    assert load_settings().port == 9001


# -- TOML ----------------------------------------------------------------------------------


def test_toml_file_overrides_defaults(tmp_path: Path) -> None:
    """Keys in the file given to load_settings replace the defaults."""
    path = write_toml(
        tmp_path / "twofold.toml",
        'host = "192.0.2.10"\nport = 9000\nsigning_algorithm = "RS256"\n'
        'public_url = "https://auth.example.com/"\n',
    )
    settings = load_settings(path)
    assert settings.host == "192.0.2.10"
    assert settings.port == 9000
    assert settings.signing_algorithm == "RS256"
    assert settings.public_url == "https://auth.example.com"
    assert settings.secure_cookies is True
    assert isinstance(settings, Settings)


def test_toml_file_from_twofold_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without an explicit path, TWOFOLD_CONFIG names the file."""
    monkeypatch.setenv(CONFIG_FILE_ENV, str(write_toml(tmp_path / "c.toml", "port = 9002\n")))
    assert load_settings().port == 9002


def test_explicit_file_wins_over_twofold_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A path passed to load_settings is read instead of the one in TWOFOLD_CONFIG."""
    monkeypatch.setenv(CONFIG_FILE_ENV, str(write_toml(tmp_path / "env.toml", "port = 9003\n")))
    explicit = write_toml(tmp_path / "explicit.toml", "port = 9004\n")
    assert load_settings(explicit).port == 9004


@pytest.mark.parametrize(
    ("env_port", "toml_port", "override", "expected"),
    [
        (None, None, None, 8000),
        (None, 9000, None, 9000),
        (9100, 9000, None, 9100),
        (9100, 9000, 9200, 9200),
        (None, 9000, 9200, 9200),
        (9100, None, 9200, 9200),
    ],
    ids=[
        "defaults",
        "toml-over-default",
        "env-over-toml",
        "override-over-all",
        "override-over-toml",
        "override-over-env",
    ],
)
def test_precedence_overrides_env_toml_defaults(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env_port: int | None,
    toml_port: int | None,
    override: int | None,
    expected: int,
) -> None:
    """Overrides beat the environment, which beats the TOML file, which beats defaults."""
    if env_port is not None:
        monkeypatch.setenv("TWOFOLD_PORT", str(env_port))
    text = f"port = {toml_port}\n" if toml_port is not None else 'host = "127.0.0.1"\n'
    path = write_toml(tmp_path / "twofold.toml", text)
    assert load_settings(path, port=override).port == expected


def test_sources_merge_field_by_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each field comes from the highest source that sets it; the others still apply."""
    monkeypatch.setenv("TWOFOLD_PORT", "9100")
    path = write_toml(tmp_path / "twofold.toml", 'host = "10.0.0.1"\nport = 9000\naudience = "x"\n')
    settings = load_settings(path, audience="api")
    assert (settings.host, settings.port, settings.audience) == ("10.0.0.1", 9100, "api")


def test_none_overrides_are_ignored(tmp_path: Path) -> None:
    """An override of None (an unset command-line option) does not mask the file."""
    path = write_toml(tmp_path / "twofold.toml", "port = 9000\n")
    assert load_settings(path, port=None, host=None).port == 9000


# -- refusals ------------------------------------------------------------------------------


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    """A misspelt key in the file raises ConfigurationError rather than being ignored."""
    path = write_toml(tmp_path / "twofold.toml", "prot = 9000\n")
    with pytest.raises(ConfigurationError, match="prot"):
        load_settings(path)


def test_unknown_override_is_refused() -> None:
    """An unknown keyword to load_settings raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        load_settings(bogus=1)


def test_invalid_toml_value_is_refused(tmp_path: Path) -> None:
    """A TOML value that breaks a field's rule raises ConfigurationError."""
    path = write_toml(tmp_path / "twofold.toml", 'signing_algorithm = "none"\n')
    with pytest.raises(ConfigurationError):
        load_settings(path)


@pytest.mark.parametrize("where", ["argument", "environment"], ids=["argument", "environment"])
def test_missing_config_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    """A named configuration file that does not exist raises ConfigurationError."""
    missing = tmp_path / "missing.toml"
    if where == "environment":
        monkeypatch.setenv(CONFIG_FILE_ENV, str(missing))
        with pytest.raises(ConfigurationError, match="does not exist"):
            load_settings()
    else:
        with pytest.raises(ConfigurationError, match="does not exist"):
            load_settings(missing)


def test_directory_as_config_file_is_refused(tmp_path: Path) -> None:
    """A directory is not a configuration file."""
    with pytest.raises(ConfigurationError):
        load_settings(tmp_path)


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after they are loaded."""
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_a_data_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    """The data directory holds hashes and keys: one others can enter is refused (O1)."""
    from twofold.config import prepare_data_dir

    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(ConfigurationError, match="chmod 700"):
        prepare_data_dir(open_dir)
    made = tmp_path / "new" / "data"
    prepare_data_dir(made)
    assert made.stat().st_mode & 0o777 == 0o700


def test_touch_interval_must_be_shorter_than_idle_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sliding-expiry write interval as long as the idle timeout would never slide."""
    monkeypatch.setenv("TWOFOLD_SESSION_IDLE_TIMEOUT", "60")
    monkeypatch.setenv("TWOFOLD_SESSION_TOUCH_INTERVAL", "60")
    with pytest.raises(ConfigurationError, match="session_touch_interval"):
        load_settings()


# -- scopes, audiences and tokens for other applications -------------------------------------


def test_token_settings_defaults() -> None:
    """Two scopes, no audience to exchange for, 120 s exchanged tokens, 90-day scoped
    tokens, a public revocation feed."""
    settings = load_settings()
    assert settings.scopes == ["read", "write"]
    assert settings.token_audiences == []
    assert settings.exchange_token_lifetime == 120
    assert settings.scoped_token_max_lifetime == 90 * 86_400
    assert settings.revocation_feed_public is True


@pytest.mark.parametrize(
    "value",
    ["read write admin:all", "read, write, admin:all", "read,write  admin:all read"],
    ids=["spaces", "commas", "mixed-and-repeated"],
)
def test_scopes_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """TWOFOLD_SCOPES is a comma or space separated list; repeats are dropped."""
    monkeypatch.setenv("TWOFOLD_SCOPES", value)
    assert load_settings().scopes == ["read", "write", "admin:all"]


def test_token_settings_from_toml(tmp_path: Path) -> None:
    """A TOML file gives real lists and values."""
    path = write_toml(
        tmp_path / "t.toml",
        'scopes = ["orders.read", "orders.write"]\n'
        'token_audiences = ["https://api.example.com", "reports"]\n'
        "exchange_token_lifetime = 60\nscoped_token_max_lifetime = 86400\n"
        "revocation_feed_public = false\n",
    )
    settings = load_settings(path)
    assert settings.scopes == ["orders.read", "orders.write"]
    assert settings.token_audiences == ["https://api.example.com", "reports"]
    assert settings.exchange_token_lifetime == 60
    assert settings.scoped_token_max_lifetime == 86_400
    assert settings.revocation_feed_public is False


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TWOFOLD_SCOPES", "read wr!te", "scopes: 'wr!te' is not a scope name"),
        ("TWOFOLD_SCOPES", "-read", "scopes: '-read' is not a scope name"),
        ("TWOFOLD_SCOPES", "r" * 65, "is not a scope name"),
        ("TWOFOLD_SCOPES", " , ", "scopes: at least one scope is needed"),
        ("TWOFOLD_TOKEN_AUDIENCES", "twofold", "token_audiences must not contain audience"),
        ("TWOFOLD_TOKEN_AUDIENCES", "a" * 256, "is not an audience"),
        ("TWOFOLD_TOKEN_AUDIENCES", "api.example, ünï", "is not an audience"),
        ("TWOFOLD_EXCHANGE_TOKEN_LIFETIME", "301", "must not exceed access_token_lifetime"),
        ("TWOFOLD_EXCHANGE_TOKEN_LIFETIME", "0", "exchange_token_lifetime"),
        ("TWOFOLD_SCOPED_TOKEN_MAX_LIFETIME", "30", "scoped_token_max_lifetime"),
        ("TWOFOLD_SCOPED_TOKEN_MAX_LIFETIME", str(3651 * 86_400), "scoped_token_max_lifetime"),
        ("TWOFOLD_REVOCATION_FEED_PUBLIC", "perhaps", "revocation_feed_public"),
    ],
    ids=[
        "scope-character",
        "scope-start",
        "scope-length",
        "no-scope",
        "own-audience",
        "audience-length",
        "audience-non-ascii",
        "exchange-above-access",
        "exchange-zero",
        "scoped-too-short",
        "scoped-too-long",
        "feed-not-a-bool",
    ],
)
def test_bad_token_settings_are_refused_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    """A bad scope, audience, lifetime or flag is refused with the setting and rule named."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match="Invalid settings") as caught:
        load_settings()
    assert message in str(caught.value)


def test_the_own_audience_is_refused_whatever_it_is_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exchanged tokens must never be accepted by Twofold itself: a renamed audience is
    checked too."""
    monkeypatch.setenv("TWOFOLD_AUDIENCE", "https://auth.example.com")
    monkeypatch.setenv("TWOFOLD_TOKEN_AUDIENCES", "reports https://auth.example.com")
    with pytest.raises(ConfigurationError, match="token_audiences must not contain audience"):
        load_settings()


def test_the_own_audience_is_refused_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "Twofold" next to the audience "twofold": a resource server comparing audiences
    without case would take an exchanged token for one of Twofold's own."""
    monkeypatch.setenv("TWOFOLD_TOKEN_AUDIENCES", "reports Twofold")
    with pytest.raises(ConfigurationError, match="token_audiences must not contain audience"):
        load_settings()

"""Settings: the only reader of `TELMI_*` environment variables.

Every knob is a row of `SETTINGS` with its default and a help line, so `telmi settings` (and
this file) document themselves. A bad value stops start-up with one line naming the variable.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telmi.vault import Vault, VaultError, parse_keys

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me-in-production"


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def _int(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected an integer") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _auto_bool(raw: str) -> bool | None:
    return None if raw.strip().lower() == "auto" else _bool(raw)


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _env(raw: str) -> str:
    if raw not in {"development", "production"}:
        raise ValueError("expected development or production")
    return raw


def _url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("expected an http(s) URL such as https://telmi.example.fr")
    return raw.rstrip("/")


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        _url(origin)
    return origins


def _urls(scheme: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        urls = tuple(u.strip() for u in raw.split(",") if u.strip())
        for url in urls:
            if not url.startswith((f"{scheme}:", f"{scheme}s:")):
                raise ValueError(f"expected {scheme}: or {scheme}s: URLs")
        return urls

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError("expected " + " or ".join(allowed))
        return raw

    return parse


def _smtp(raw: str) -> str:
    if raw and urlsplit(raw).scheme not in ("smtp", "smtps"):
        raise ValueError("expected smtp://host:port or smtps://host:port")
    return raw


def _timezone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone") from exc
    return raw


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("expected sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
    return raw


def _data_key(raw: str) -> str:
    try:
        parse_keys(raw)
    except VaultError as exc:
        raise ValueError(str(exc)) from None
    return raw.strip()


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


@dataclass(frozen=True)
class Setting:
    field: str
    default: str | None
    help: str
    parse: Callable[[str], Any] = str

    @property
    def env(self) -> str:
        return "TELMI_" + self.field.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "env", "development", "development or production (production refuses unsafe defaults)", _env
    ),
    Setting("data_dir", "var", "directory for the SQLite file, backups and uploads"),
    Setting(
        "database_url",
        None,
        "SQLAlchemy URL; default: SQLite file in the data directory",
        _database_url,
    ),
    Setting(
        "secret_key",
        DEV_SECRET_KEY,
        "signing key for CSRF tokens and join tokens (>= 32 characters)",
    ),
    Setting(
        "data_key",
        "",
        "AES-256 keys for patient identity at rest, id:base64url, first current "
        "(`telmi keys generate`); required in production",
        _data_key,
    ),
    Setting(
        "audit_retention_months",
        "12",
        "access events older than this are deleted by the nightly job",
        _int(1),
    ),
    Setting(
        "public_url",
        "http://127.0.0.1:8080",
        "URL users reach Telmi at; https enables Secure cookies",
        _url,
    ),
    Setting(
        "allowed_origins",
        "",
        "extra origins allowed for WebSocket and form posts, comma separated",
        _origins,
    ),
    Setting("timezone", "Europe/Paris", "local time zone of the region", _timezone),
    Setting("host", "127.0.0.1", "address `telmi serve` listens on"),
    Setting("port", "8080", "port `telmi serve` listens on", _int(1)),
    Setting("session_idle_minutes", "60", "a session unused this long expires", _int(1)),
    Setting(
        "session_max_hours", "12", "a session expires this long after login, used or not", _int(1)
    ),
    Setting("login_window_minutes", "15", "window over which failed logins are counted", _int(1)),
    Setting(
        "login_max_failures_pair",
        "5",
        "failed logins for one account from one address in the window before refusal",
        _int(1),
    ),
    Setting(
        "login_max_failures_account",
        "100",
        "failed logins for one account from all addresses in the window before refusal",
        _int(1),
    ),
    Setting(
        "login_max_failures_address",
        "20",
        "failed logins per address in the window before refusal",
        _int(1),
    ),
    Setting(
        "hold_minutes", "10", "how long a slot stays held while a booking form is filled", _int(1)
    ),
    Setting("slot_horizon_weeks", "8", "how many weeks ahead slots are materialised", _int(1)),
    Setting("max_body_bytes", str(1024 * 1024), "largest request body accepted", _int(1024)),
    Setting(
        "trust_proxy",
        "false",
        "take the client address from X-Forwarded-For (behind a proxy)",
        _bool,
    ),
    Setting("log_level", "INFO", "DEBUG, INFO, WARNING or ERROR", _log_level),
    Setting("stun_urls", "", "STUN server URLs for browsers, comma separated", _urls("stun")),
    Setting("turn_urls", "", "TURN server URLs (coturn), comma separated", _urls("turn")),
    Setting(
        "turn_secret",
        "",
        "coturn static-auth-secret: each participant gets ephemeral TURN credentials",
    ),
    Setting(
        "turn_ttl_seconds", "21600", "lifetime of TURN credentials (refreshed before)", _int(60)
    ),
    Setting("join_token_seconds", "120", "lifetime of a consultation join token", _int(10)),
    Setting(
        "reconnect_grace_seconds",
        "20",
        "a participant whose connection drops keeps their place this long",
        _int(1),
    ),
    Setting(
        "room_opens_minutes", "15", "a consultation room opens this long before its slot", _int(0)
    ),
    Setting(
        "room_grace_minutes",
        "30",
        "a consultation left open is ended this long after its slot",
        _int(0),
    ),
    Setting("max_participants", "5", "participants in one consultation (mesh)", _int(2)),
    Setting("jobs", "true", "run background jobs in this process (telmi serve --no-jobs)", _bool),
    Setting(
        "check_responses",
        "auto",
        "check every API answer against its documented model (auto: everywhere but production)",
        _auto_bool,
    ),
    Setting(
        "leader_retry_seconds",
        "15",
        "how often a process tries to take over the jobs (the leader checks its lock as often)",
        _int(1),
    ),
    Setting("smtp_url", "", "smtp://user:password@host:587?starttls=1 to send mail", _smtp),
    Setting("mail_from", "Telmi <ne-pas-repondre@telmi.local>", "sender of notification mail"),
    Setting(
        "notification_attempts", "5", "delivery attempts before a mail is dead-lettered", _int(1)
    ),
    Setting("backup_keep", "7", "nightly SQLite backups kept", _int(1)),
    Setting(
        "photo_storage",
        "files",
        "files (under the data directory) or database (processes that share no disk)",
        _choice("files", "database"),
    ),
)


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    data_dir: Path = Path("var")
    database_url: str = "sqlite+aiosqlite:///var/telmi.sqlite3"
    secret_key: str = DEV_SECRET_KEY
    data_key: str = ""
    audit_retention_months: int = 12
    public_url: str = "http://127.0.0.1:8080"
    allowed_origins: tuple[str, ...] = ()
    timezone: str = "Europe/Paris"
    host: str = "127.0.0.1"
    port: int = 8080
    session_idle_minutes: int = 60
    session_max_hours: int = 12
    login_window_minutes: int = 15
    login_max_failures_pair: int = 5
    login_max_failures_account: int = 100
    login_max_failures_address: int = 20
    hold_minutes: int = 10
    slot_horizon_weeks: int = 8
    max_body_bytes: int = 1024 * 1024
    trust_proxy: bool = False
    log_level: str = "INFO"
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl_seconds: int = 21600
    join_token_seconds: int = 120
    reconnect_grace_seconds: int = 20
    room_opens_minutes: int = 15
    room_grace_minutes: int = 30
    max_participants: int = 5
    jobs: bool = True
    check_responses: bool | None = None  # None: outside production only
    leader_retry_seconds: int = 15
    smtp_url: str = ""
    mail_from: str = "Telmi <ne-pas-repondre@telmi.local>"
    notification_attempts: int = 5
    backup_keep: int = 7
    photo_storage: str = "files"

    @property
    def responses_checked(self) -> bool:
        """The check costs a tenth of a list's CPU: the tests and development run it, so a
        handler drifting from its model fails there; production trusts them."""
        if self.check_responses is not None:
            return self.check_responses
        return self.env != "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.env, setting.default)
            if raw is None:
                continue
            try:
                values[setting.field] = setting.parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{setting.env}: invalid value {raw!r}: {exc}") from None
        values["data_dir"] = Path(values["data_dir"])
        if "database_url" not in values:
            values["database_url"] = f"sqlite+aiosqlite:///{values['data_dir'] / 'telmi.sqlite3'}"
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Production refuses what is only safe on a developer's machine."""
        if self.env != "production":
            return
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            raise SettingsError(
                "TELMI_SECRET_KEY: required in production, at least 32 random characters"
            )
        if not self.public_url.startswith("https://"):
            raise SettingsError("TELMI_PUBLIC_URL: must be an https:// URL in production")
        if not self.data_key:
            raise SettingsError(
                "TELMI_DATA_KEY: required in production (generate one with `telmi keys generate`)"
            )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @functools.cached_property
    def vault(self) -> Vault:
        return Vault.from_settings(
            self.data_key, self.secret_key, keep_dev=self.env != "production"
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def origins(self) -> frozenset[str]:
        parts = urlsplit(self.public_url)
        return frozenset({f"{parts.scheme}://{parts.netloc}", *self.allowed_origins})

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

"""Typed settings from LAWBOT_* environment variables (and an optional .env).

Nothing is read at import time: call :meth:`Settings.from_env` when the app or a
command is built.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KNOWLEDGE_DIR = REPO_ROOT / "knowledge"
DEFAULT_SQLITE_URL = f"sqlite+aiosqlite:///{REPO_ROOT / 'var' / 'lawbot.sqlite3'}"
WECHAT_MODES = ("safe", "compatible", "plain")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Values an operator forgot to replace (deploy/lawbot.env.example writes CHANGE_ME…): refused in production.
PLACEHOLDER_MARKS = ("change_me", "change-me", "changeme")
_process_secret: list[str] = []


def is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(mark in lowered for mark in PLACEHOLDER_MARKS)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SettingsError(ValueError):
    """A LAWBOT_* value is missing or malformed."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"not a boolean: {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Every knob of the bot. Field ``foo_bar`` is read from ``LAWBOT_FOO_BAR``."""

    env: str = field(
        default="",
        metadata={
            "doc": "development, production or test; the simulator and the dev WeChat API exist only outside "
            "production. Unset: development on 127.0.0.1 only, with a warning at start"
        },
    )
    database_url: str = field(
        default=DEFAULT_SQLITE_URL,
        metadata={"doc": "SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"},
    )
    db_pool_size: int = field(
        default=10,
        metadata={
            "doc": "PostgreSQL connections per `lawbot serve` / `lawbot worker` process (keep processes × this "
            "under the server's max_connections)"
        },
    )
    redis_url: str = field(
        default="",
        metadata={"doc": "redis://host:port/db — optional; when set, the access token and locks live in Redis"},
    )
    wechat_token: str = field(
        default="lawbot-dev-token", metadata={"doc": "the Token set in the WeChat console (URL signature)"}
    )
    wechat_appid: str = field(default="wxlawbotdev0000000", metadata={"doc": "the account's AppID"})
    wechat_secret: str = field(default="dev-secret", metadata={"doc": "the account's AppSecret (access token)"})
    wechat_aes_key: str = field(default="", metadata={"doc": "EncodingAESKey (43 characters); required for safe mode"})
    wechat_mode: str = field(
        default="",
        metadata={
            "doc": "safe, compatible or plain (消息加解密方式 in the WeChat console); default safe when "
            "LAWBOT_WECHAT_AES_KEY is set, else plain. safe refuses plaintext pushes; compatible accepts them "
            "(only while switching over)"
        },
    )
    wechat_api_base: str = field(
        default="https://api.weixin.qq.com",
        metadata={"doc": "WeChat API base URL; tests and `serve --dev` point it at the fake"},
    )
    wechat_account_type: str = field(default="service", metadata={"doc": "service or subscription (broadcast quota)"})
    wechat_template_id: str = field(
        default="", metadata={"doc": "template id of the 'new reply' notification sent outside the 48-hour window"}
    )
    wechat_rate_limits: str = field(
        default="",
        metadata={
            "doc": "override API rate limits, e.g. `mass=60/min, cs=600/min burst 20` (cs, template, mass, tags …)"
        },
    )
    secret_key: str = field(
        default="",
        metadata={
            "doc": "signs back-office sessions and CSRF tokens; required in production (>= 32 characters); "
            "unset elsewhere: a random key per process (sign-ins end at restart)"
        },
    )
    knowledge_dir: str = field(
        default=str(DEFAULT_KNOWLEDGE_DIR), metadata={"doc": "where FAQ, synonyms, texts and laws are read from"}
    )
    host: str = field(default="127.0.0.1", metadata={"doc": "`lawbot serve` bind address"})
    port: int = field(default=8080, metadata={"doc": "`lawbot serve` port"})
    public_url: str = field(
        default="",
        metadata={"doc": "the URL villagers' WeChat reaches us on (printed, used in links); default http://HOST:PORT"},
    )
    timestamp_window: int = field(
        default=300, metadata={"doc": "reject pushes whose timestamp is older than this many seconds (0 disables)"}
    )
    reply_deadline: float = field(
        default=4.0,
        metadata={
            "doc": "seconds a handler may take before the webhook answers `success` (reply then goes via the outbox)"
        },
    )
    max_body_bytes: int = field(default=64 * 1024, metadata={"doc": "largest accepted push body"})
    db_timeout: float = field(
        default=3.0,
        metadata={
            "doc": "longest wait, in seconds, for the database on a villager's push (connecting, a pooled "
            "connection, SQLite's write lock, storing the push); then the villager is told to send it again"
        },
    )
    inprocess_worker: bool = field(
        default=True, metadata={"doc": "run the outbox worker inside `lawbot serve` (the embedded SQLite setup)"}
    )
    first_response_hours: int = field(
        default=24, metadata={"doc": "working hours (Chinese calendar) staff have for a ticket's first response"}
    )
    dispute_report_day: int = field(
        default=25,
        metadata={
            "doc": "day of the month each village's 月排查 report is due (1-28); reminders two days before and on it"
        },
    )
    urgent_response_minutes: int = field(
        default=30,
        metadata={
            "doc": "minutes (clock time, day and night) for an urgent ticket's first response; nobody opening it in "
            "this time alerts every township admin"
        },
    )
    wechat_staff_template_id: str = field(
        default="",
        metadata={
            "doc": "template id of staff alerts (new and urgent tickets) for staff whose WeChat has not written to "
            "the account in 48 hours (customer-service messages cannot reach them then)"
        },
    )
    log_level: str = field(default="INFO", metadata={"doc": "logging level"})
    trust_proxy: bool = field(
        default=False, metadata={"doc": "honour X-Forwarded-Proto/For from nginx (Secure cookies behind TLS)"}
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: bool = True, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default: ``os.environ`` plus ``.env``)."""
        if environ is None:
            if dotenv:
                from dotenv import dotenv_values

                env_file = Path.cwd() / ".env"
                file_values = (
                    {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.exists() else {}
                )
                environ = {**file_values, **os.environ}
            else:
                environ = os.environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f"LAWBOT_{f.name.upper()}"
            if key not in environ:
                continue
            raw = environ[key]
            try:
                if f.type in ("int", int):
                    values[f.name] = int(raw)
                elif f.type in ("float", float):
                    values[f.name] = float(raw)
                elif f.type in ("bool", bool):
                    values[f.name] = _bool(raw)
                else:
                    values[f.name] = raw
            except ValueError as exc:
                raise SettingsError(f"{key}: {exc}") from exc
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def env_name(self) -> str:
        """The environment in effect: LAWBOT_ENV, or development when it is unset."""
        return self.env or "development"

    @property
    def mode(self) -> str:
        """How pushes arrive: safe, compatible or plain (LAWBOT_WECHAT_MODE, default from the AES key)."""
        return self.wechat_mode or ("safe" if self.wechat_aes_key else "plain")

    @property
    def effective_secret_key(self) -> str:
        """LAWBOT_SECRET_KEY, or (outside production) a random key made once per process."""
        if self.secret_key:
            return self.secret_key
        if not _process_secret:
            _process_secret.append(secrets.token_urlsafe(48))
        return _process_secret[0]

    def startup_problems(self) -> tuple[list[str], list[str]]:
        """(refusals, warnings) for `lawbot serve`: an unsafe bind refuses to start, the rest is said loudly."""
        refusals: list[str] = []
        warnings: list[str] = []
        real_key = len(self.secret_key) >= 32 and not is_placeholder(self.secret_key)
        if not self.env:
            warnings.append(
                "LAWBOT_ENV is not set: running as development (simulator on, a throw-away session key). "
                "Set LAWBOT_ENV=production and LAWBOT_SECRET_KEY before going live."
            )
            if not is_loopback(self.host) and not real_key:
                refusals.append(
                    f"refusing to listen on {self.host}: LAWBOT_ENV is not set and LAWBOT_SECRET_KEY is not a real "
                    "key (>= 32 characters). Set them, or listen on 127.0.0.1."
                )
        if not self.production and not self.secret_key:
            warnings.append("LAWBOT_SECRET_KEY is not set: back-office sign-ins use a random key and end at restart.")
        if self.mode == "plain" and self.production:
            warnings.append("LAWBOT_WECHAT_MODE=plain in production: pushes are not encrypted; use safe mode.")
        if self.mode == "compatible":
            warnings.append(
                "LAWBOT_WECHAT_MODE=compatible accepts plaintext pushes: switch WeChat and the bot to safe mode soon."
            )
        return refusals, warnings

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def validate(self) -> None:
        if self.env not in {"", "development", "production", "test"}:
            raise SettingsError(f"LAWBOT_ENV must be development, production or test, not {self.env!r}")
        if self.wechat_aes_key and len(self.wechat_aes_key) != 43:
            raise SettingsError("LAWBOT_WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        if self.wechat_mode and self.wechat_mode not in WECHAT_MODES:
            raise SettingsError(f"LAWBOT_WECHAT_MODE must be safe, compatible or plain, not {self.wechat_mode!r}")
        if self.mode in ("safe", "compatible") and not self.wechat_aes_key:
            raise SettingsError(f"LAWBOT_WECHAT_MODE={self.mode} needs LAWBOT_WECHAT_AES_KEY (the EncodingAESKey)")
        if not 0 < self.db_timeout < 5:
            raise SettingsError("LAWBOT_DB_TIMEOUT must be between 0 and 5 seconds (WeChat waits 5 s)")
        if self.wechat_account_type not in {"service", "subscription"}:
            raise SettingsError("LAWBOT_WECHAT_ACCOUNT_TYPE must be service or subscription")
        if self.production:
            for problem in self.production_problems():
                raise SettingsError(problem)
        if self.wechat_rate_limits:
            from bot.wechat.ratelimit import parse_rates

            try:
                parse_rates(self.wechat_rate_limits)
            except ValueError as exc:
                raise SettingsError(f"LAWBOT_WECHAT_RATE_LIMITS: {exc}") from exc
        if self.first_response_hours <= 0:
            raise SettingsError("LAWBOT_FIRST_RESPONSE_HOURS must be a positive number of working hours")
        if not 1 <= self.dispute_report_day <= 28:
            raise SettingsError("LAWBOT_DISPUTE_REPORT_DAY must be a day of the month from 1 to 28")
        if self.urgent_response_minutes <= 0:
            raise SettingsError("LAWBOT_URGENT_RESPONSE_MINUTES must be a positive number of minutes")
        if self.db_pool_size < 1:
            raise SettingsError("LAWBOT_DB_POOL_SIZE must be at least 1")
        if self.reply_deadline <= 0 or self.reply_deadline >= 5:
            raise SettingsError("LAWBOT_REPLY_DEADLINE must be between 0 and 5 seconds (WeChat waits 5 s)")


    def production_problems(self) -> list[str]:
        """What production refuses: missing keys, the development defaults and the env example's placeholders."""
        problems = []
        if len(self.secret_key) < 32 or is_placeholder(self.secret_key):
            problems.append("LAWBOT_SECRET_KEY must be set to a real key (>= 32 characters) in production")
        if self.wechat_token == Settings.wechat_token or is_placeholder(self.wechat_token):
            problems.append(
                "LAWBOT_WECHAT_TOKEN must be set in production (the Token of the WeChat console, "
                "not the example's placeholder)"
            )
        for name in ("wechat_secret", "wechat_aes_key", "wechat_appid"):
            if is_placeholder(getattr(self, name)):
                problems.append(f"LAWBOT_{name.upper()} is still the example's placeholder (CHANGE_ME)")
        return problems


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) for README and `lawbot settings`."""
    rows = []
    for f in fields(Settings):
        default = f.default if f.default is not None else ""
        rows.append((f"LAWBOT_{f.name.upper()}", str(default), str(f.metadata.get("doc", ""))))
    return rows


def new_secret_key() -> str:
    return secrets.token_urlsafe(48)

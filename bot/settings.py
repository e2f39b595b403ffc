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
DEV_SECRET_KEY = "dev-only-secret-key-change-me-0123456789abcdef"  # noqa: S105 - dev only; production refuses it


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
        default="development",
        metadata={
            "doc": "development, production or test; the simulator and the dev WeChat API exist only outside production"
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
        default="", metadata={"doc": "signs back-office sessions and CSRF tokens; required in production"}
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
    def effective_secret_key(self) -> str:
        return self.secret_key or DEV_SECRET_KEY

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def validate(self) -> None:
        if self.env not in {"development", "production", "test"}:
            raise SettingsError(f"LAWBOT_ENV must be development, production or test, not {self.env!r}")
        if self.wechat_aes_key and len(self.wechat_aes_key) != 43:
            raise SettingsError("LAWBOT_WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        if self.wechat_account_type not in {"service", "subscription"}:
            raise SettingsError("LAWBOT_WECHAT_ACCOUNT_TYPE must be service or subscription")
        if self.production:
            if len(self.secret_key) < 32:
                raise SettingsError("LAWBOT_SECRET_KEY must be set (>= 32 characters) in production")
            if self.wechat_token == Settings.wechat_token:
                raise SettingsError("LAWBOT_WECHAT_TOKEN must be set in production")
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


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, description) for README and `lawbot settings`."""
    rows = []
    for f in fields(Settings):
        default = f.default if f.default is not None else ""
        rows.append((f"LAWBOT_{f.name.upper()}", str(default), str(f.metadata.get("doc", ""))))
    return rows


def new_secret_key() -> str:
    return secrets.token_urlsafe(48)

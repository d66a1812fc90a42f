"""Settings, read from the environment (DIGEST_*) and an optional .env file.

Nothing here does I/O at import: `get_settings()` builds and caches one validated object.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from digest.fetch_allowances import parse_allowance

# The key development mode signs with when none is set. It is public (it is in this file), as
# are the others below: outside development mode none of them signs or verifies anything.
DEV_SECRET = "dev-insecure-secret-change-me"
KNOWN_SECRETS = frozenset(
    {
        DEV_SECRET,
        "change-me-in-production",  # docker-compose.yml's former default
        "change-me",
        "changeme",
        "secret",
    }
)


class SmtpTransportSettings(BaseModel):
    """One SMTP relay of DIGEST_SMTP_TRANSPORTS (a JSON list of these objects)."""

    name: str = ""  # default: host:port; names the relay's rate-limit counters
    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    connections: int = Field(default=4, ge=1, le=256)
    # Share of the messages; 0 makes a standby used only while every weighted relay is down.
    weight: int = Field(default=1, ge=0)
    per_second: int | None = Field(default=None, ge=1)
    per_hour: int | None = Field(default=None, ge=1)
    per_day: int | None = Field(default=None, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGEST_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///digest.db"
    # No broker: the pipeline runs in-process. With one (redis://...), on Celery workers.
    broker_url: str | None = None
    # Development mode (DIGEST_DEV_MODE=1): links may be signed with the public DEV_SECRET and
    # served over plain http. Outside it, whatever signs or reads links refuses a missing or
    # known key (see digest.keys).
    dev_mode: bool = False
    # The key that signs links. DIGEST_SECRET_KEYS holds earlier ones still accepted (oldest
    # first, separated by spaces or commas); with no DIGEST_SECRET_KEY its last one signs.
    secret_key: str | None = None
    secret_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    public_url: str = "http://127.0.0.1:8000"
    # The editor (/editor) and JSON API (/api/v1): users sign in (`digest users add`, or the
    # first-run page of a fresh install). A session lasts this long after sign-in.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 90)
    # Opens the first-run page (/editor/setup) to a browser that is not on this machine while
    # no user exists; `digest serve` makes one and prints the link when none is set.
    setup_token: str | None = None

    # Sender identity; the Message-ID domain is taken from from_email.
    from_email: str = "digest@example.org"
    from_name: str = "Digest"
    unsubscribe_mailbox: str | None = None  # default: unsubscribe@<the list's from domain>
    # Returned mail: each copy's return path is <local>+<delivery>-<mark>@<domain> (VERP).
    return_path_local: str = Field(default="bounces", pattern=r"^[A-Za-z0-9._-]{1,40}$")
    return_path_domain: str | None = None  # default: the list's from domain
    # Soft bounces (mailbox full, expired ...) suppress an address after this many in a window.
    # DKIM signing of each copy (dkimpy): a PEM RSA key or a base64 Ed25519 key, its selector,
    # and the signing domain (default: the list's from domain).
    dkim_key_file: Path | None = None
    dkim_selector: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,63}$")
    dkim_domain: str | None = None
    soft_bounce_limit: int = Field(default=3, ge=1)
    soft_bounce_days: int = Field(default=30, ge=1)
    # Blocks (5.7.x, spam, policy) from one destination domain that pause its deliveries:
    # this many within the window pauses it for domain_pause_minutes; nobody is suppressed.
    domain_block_limit: int = Field(default=10, ge=1)
    domain_block_minutes: int = Field(default=60, ge=1)
    domain_pause_minutes: int = Field(default=60, ge=1)

    transport: Literal["maildir", "smtp"] = "maildir"
    outbox_dir: Path = Path("outbox")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = 30.0
    smtp_connections: int = Field(default=4, ge=1, le=256)
    # Rate limits of the single relay above (DIGEST_SMTP_TRANSPORTS entries carry their own).
    smtp_per_second: int | None = Field(default=None, ge=1)
    smtp_per_hour: int | None = Field(default=None, ge=1)
    smtp_per_day: int | None = Field(default=None, ge=1)
    # Several relays with weights and failover; when set, the smtp_* relay above is not used.
    smtp_transports: list[SmtpTransportSettings] = Field(default_factory=list)
    # Messages in flight to one recipient domain (0: no limit): across every sending process
    # when Redis is there (the rate-limit Redis, else a Redis broker), else per process.
    domain_concurrency: int = Field(default=0, ge=0)
    # Rate-limit counters shared by every process; default: the broker when it is Redis,
    # else counted in-process (embedded mode).
    rate_limit_redis_url: str | None = None
    # Transport errors in a row before an issue pauses itself (0: never).
    pause_after_errors: int = Field(default=50, ge=0)

    batch_size: int = Field(default=500, ge=1, le=100_000)
    # At most this many send_batch tasks chase one issue at once (each re-enqueues itself
    # until done; kicks only fill free slots): match it to the workers' total concurrency.
    send_fanout: int = Field(default=4, ge=1, le=1000)
    # A claim's lease; a batch still working renews it three times a lease, so the lease only
    # says how soon a dead worker's rows are claimed again.
    lease_seconds: int = Field(default=300, ge=5)
    # A batch stops starting messages after this long and gives back the rest untried.
    max_batch_seconds: float = Field(default=150.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    retry_base_seconds: float = Field(default=30.0, ge=0)

    fetch_timeout: float = 20.0
    fetch_max_bytes: int = 10 * 1024 * 1024
    fetch_max_redirects: int = 5
    # Let the collector connect to loopback, private, link-local and other non-public
    # addresses (a feed on the intranet, the tests' servers on 127.0.0.1). Off: a stranger's
    # page or redirect cannot make us read the operator's own network.
    allow_private_fetch: bool = False
    # Or only these (JSON list): "10.0.0.5", "10.0.0.0/8", "10.0.0.5:8080", "[fd00::1]:8080".
    allow_private_fetch_to: list[str] = Field(default_factory=list)
    user_agent: str = "digest/0.1 (+https://example.org/digest-bot)"
    # Requests in flight to one host: for every collecting process together through Redis
    # (as the per-domain sending limit), else per process.
    collect_per_host: int = Field(default=2, ge=1, le=100)
    # Fetches in flight in one collecting process (a worker task, or `digest collect`).
    collect_concurrency: int = Field(default=16, ge=1, le=256)
    # Sources per collect task on the workers: each task reads the recent titles once.
    collect_batch_size: int = Field(default=50, ge=1, le=10_000)

    # A scheduled issue's attempt (collect its list's sources, then compose) that has not
    # finished after this long is taken back by beat and tried again (its task was lost).
    schedule_lease_seconds: int = Field(default=900, ge=1)
    # A failed attempt is tried again after this, doubling up to an hour.
    schedule_retry_seconds: float = Field(default=60.0, ge=0)
    # A scheduled issue still without its issue this long after it was due is overdue.
    schedule_overdue_minutes: int = Field(default=15, ge=0)

    html_size_warning_bytes: int = 100 * 1024

    # Delivery rows and issue events older than this become per-issue totals (digest
    # retention, daily on beat); 0 keeps everything.
    retention_months: int = Field(default=13, ge=0)
    retention_chunk: int = Field(default=5000, ge=1, le=1_000_000)

    # `digest worker` serves /metrics (its own and its pool's) on this port; unset: none.
    # Give each worker on a host its own port. The web app serves /metrics itself.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    # "json": one JSON object per log line (structlog), with issue and delivery ids.
    log_format: Literal["text", "json"] = "text"

    # Sign-up throttles (Redis when there is one, else the database). Throttled posts get the
    # same answer as the others, and no mail.
    # At most one confirmation per address and list per this many minutes ...
    signup_address_minutes: int = Field(default=10, ge=1)
    # ... and this many per address per day, all lists together.
    signup_address_per_day: int = Field(default=5, ge=1)
    # Sign-up posts per client per hour (an IPv6 client is its /64).
    signup_client_per_hour: int = Field(default=30, ge=1)
    # Reverse proxies (IPs or networks) whose X-Forwarded-For names the client; empty: the
    # peer is the client and X-Forwarded-For is ignored.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("DIGEST_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("allow_private_fetch_to")
    @classmethod
    def _allowances(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_allowance(entry)  # a ValueError names the entry
        return value

    @field_validator("broker_url", "secret_key")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return [k for k in re.split(r"[\s,]+", value) if k] if isinstance(value, str) else value

    @property
    def keys(self) -> tuple[str, ...]:
        """Every configured key, oldest first: the last one signs, all of them verify."""
        ordered = [*self.secret_keys, *([self.secret_key] if self.secret_key else [])]
        # A key listed twice counts where it was last put.
        return tuple(k for i, k in enumerate(ordered) if k not in ordered[i + 1 :])

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"DIGEST_TRUSTED_PROXIES: {entry!r} is not an IP or network"
                ) from exc
        return value

    @property
    def shared_redis_url(self) -> str | None:
        """The Redis for counters every process shares: the rate-limit Redis, else a Redis
        broker (None: count in-process or in the database)."""
        if self.rate_limit_redis_url:
            return self.rate_limit_redis_url
        if (self.broker_url or "").startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def sender_domain(self) -> str:
        return self.from_email.rsplit("@", 1)[-1]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()

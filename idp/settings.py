"""Typed settings: a TOML file, brand files beside it, then ``IDP_*`` environment overrides.

Every problem is collected and reported at once (``SettingsError``), so an operator fixes a
broken deployment in one round instead of one restart per typo.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.toml"
ENVIRONMENTS = ("development", "test", "production")
SIGNING_ALGS = ("RS256", "ES256", "EdDSA")


class SettingsError(Exception):
    """Raised with every configuration problem found, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Brand:
    """One white-label brand; the request host picks it."""

    id: str
    #: Display names by language; ``ja`` is required.
    names: Mapping[str, str]
    #: Host (``name[:port]``) users reach over the internet.
    internet_host: str
    #: Host only reachable through the carrier's fibre network (line authentication).
    line_host: str
    #: Upstream connector ids offered on the login page, in order.
    connectors: tuple[str, ...] = ()
    #: Theme variables for templates (``primary``, ``accent``, ...).
    colors: Mapping[str, str] = field(default_factory=dict)

    def name(self, lang: str) -> str:
        return self.names.get(lang) or self.names["ja"]


@dataclass(frozen=True)
class Settings:
    """Everything the provider reads from its configuration; nothing else reads the environment."""

    #: Issuer identifier (OIDC Core §2): https URL, no query or fragment.
    issuer: str
    #: ``development`` (make run), ``test`` (pytest) or ``production``.
    environment: str
    #: SQLAlchemy URL of the durable database.
    database_url: str
    #: Redis URL of the ephemeral store; empty selects the SQL-backed store.
    redis_url: str
    #: SMTP URL (``smtp://user:pass@host:port``, ``smtps://`` for implicit TLS); empty: outbox.
    smtp_url: str
    #: Signs cookies and derives the key-encryption key when ``keys_kek`` is empty.
    secret_key: str
    #: Directory of the signing-key store.
    keys_dir: Path
    #: Key-encryption key for private keys at rest (any string; stretched with HKDF).
    keys_kek: str
    #: Path of the TOML file these settings came from.
    config_path: Path
    #: Brands by id, and the one served on unknown hosts.
    brands: Mapping[str, Brand]
    default_brand: str
    #: Lifetimes in seconds.
    access_token_ttl: int = 3600
    id_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 86400
    code_ttl: int = 60
    login_ttl: int = 1800
    session_ttl: int = 7 * 86400
    #: JWKS Cache-Control max-age; must stay below ``keys_next_min_age``.
    jwks_max_age: int = 300
    #: A ``next`` key is published at least this long before ``rotate`` may make it sign.
    keys_next_min_age: int = 900
    #: Client ids of first-party apps: no consent page.
    first_party_clients: tuple[str, ...] = ()
    #: Dynamic registration needs an initial access token (RFC 7591 §3).
    registration_requires_iat: bool = True
    #: Seconds an RP-facing HTTP fetch (sector_identifier_uri, jwks_uri) may take.
    http_timeout: float = 5.0
    #: Sender address of every mail (the display name is the brand's).
    mail_from: str = "no-reply@localhost"
    #: Seconds the SMTP server may take to accept one message.
    smtp_timeout: float = 10.0
    #: Emailed links (tickets) stay valid this long (SPEC §6: 14 days).
    ticket_ttl: int = 14 * 86400
    #: Consecutive wrong passwords that lock an account (SPEC §4: 10).
    lockout_threshold: int = 10
    #: Window of the rate limits below, in seconds.
    rate_window: int = 900
    #: Failed sign-ins one client address may make per window, over all accounts.
    login_failures_per_address: int = 50
    #: Sign-in attempts per account per window from browsers it never signed in from.
    login_attempts_per_account: int = 30
    #: Self-service mails (password reset) per account and per address per hour.
    mails_per_account: int = 3
    mails_per_address: int = 20
    #: The step-up chain as configured (``[[mfa.chain]]``), validated by ``idp.mfa.open_chain``.
    mfa_chain: tuple[Mapping[str, Any], ...] = ()
    #: Per-factor settings (``[mfa.factors.<type>]``), read by each factor's ``Config``.
    mfa_factors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: "Remember this browser" lasts this many days.
    mfa_remember_days: int = 30
    #: A remembered browser asks again when the user has not signed in for this many days.
    mfa_inactive_days: int = 30
    #: Wrong second-factor codes one user may type per ``rate_window``, over all sign-ins.
    mfa_failures_per_user: int = 10
    #: SMS gateway (``idp.notify.sms``): https URL with optional user:password; empty: the
    #: development SMS outbox (refused in production when the chain sends SMS).
    sms_url: str = ""
    #: Bearer token for the gateway, instead of credentials in the URL.
    sms_token: str = field(default="", repr=False)
    #: Seconds the gateway may take to answer.
    sms_timeout: float = 5.0
    #: Reverse proxies in front of the provider (hops): the client address is taken from
    #: ``X-Forwarded-For`` that many entries from the right, never further.
    trusted_proxies: int = 0
    #: Header in which the carrier's gateway sends the caller's line ID (line hosts only).
    line_id_header: str = "X-Line-Id"
    #: Header naming the carrier's area (``east`` / ``west``) of that line.
    line_carrier_header: str = "X-Line-Carrier"
    #: Addresses (CIDRs) of the gateways allowed to assert those headers.
    line_gateways: tuple[str, ...] = ()
    #: Upstream connectors by id (``[connectors.<id>]``: ``type``, ``enabled`` and the
    #: type's settings, documented on each connector module's ``Config``). Any key can be
    #: set from the environment as ``IDP_CONNECTOR_<ID>_<KEY>`` (secrets belong there).
    connectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def dev(self) -> bool:
        return self.environment != "production"

    @cached_property
    def secure_cookies(self) -> bool:
        # Cached: read by every response's security headers.
        return urlsplit(self.issuer).scheme == "https"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# field -> (TOML section, key). The environment variable is IDP_<FIELD>.
_FIELDS: dict[str, tuple[str, str]] = {
    "issuer": ("server", "issuer"),
    "environment": ("server", "environment"),
    "secret_key": ("server", "secret_key"),
    "database_url": ("database", "url"),
    "redis_url": ("store", "redis_url"),
    "smtp_url": ("mail", "smtp_url"),
    "keys_dir": ("keys", "dir"),
    "keys_kek": ("keys", "kek"),
    "jwks_max_age": ("keys", "jwks_max_age"),
    "keys_next_min_age": ("keys", "next_min_age"),
    "access_token_ttl": ("tokens", "access_token_ttl"),
    "id_token_ttl": ("tokens", "id_token_ttl"),
    "refresh_token_ttl": ("tokens", "refresh_token_ttl"),
    "code_ttl": ("tokens", "code_ttl"),
    "login_ttl": ("sessions", "login_ttl"),
    "session_ttl": ("sessions", "session_ttl"),
    "first_party_clients": ("clients", "first_party"),
    "registration_requires_iat": ("clients", "registration_requires_iat"),
    "http_timeout": ("server", "http_timeout"),
    "default_brand": ("brands", "default"),
    "mail_from": ("mail", "from"),
    "smtp_timeout": ("mail", "timeout"),
    "ticket_ttl": ("accounts", "ticket_ttl"),
    "lockout_threshold": ("accounts", "lockout_threshold"),
    "rate_window": ("accounts", "rate_window"),
    "login_failures_per_address": ("accounts", "login_failures_per_address"),
    "login_attempts_per_account": ("accounts", "login_attempts_per_account"),
    "mails_per_account": ("accounts", "mails_per_account"),
    "mails_per_address": ("accounts", "mails_per_address"),
    "mfa_remember_days": ("mfa", "remember_days"),
    "mfa_inactive_days": ("mfa", "inactive_days"),
    "mfa_failures_per_user": ("mfa", "failures_per_user"),
    "sms_url": ("sms", "url"),
    "sms_token": ("sms", "token"),
    "sms_timeout": ("sms", "timeout"),
    "trusted_proxies": ("server", "trusted_proxies"),
    "line_id_header": ("line", "id_header"),
    "line_carrier_header": ("line", "carrier_header"),
    "line_gateways": ("line", "gateways"),
}
_INT_FIELDS = {f.name for f in dataclasses.fields(Settings) if f.type == "int"}


def _coerce(name: str, raw: Any, problems: list[str]) -> Any:
    """Environment values are strings; TOML values are already typed."""
    if name in _INT_FIELDS:
        try:
            return int(raw)
        except (TypeError, ValueError):
            problems.append(f"{name}: expected an integer, got {raw!r}")
            return 0
    if name in ("http_timeout", "smtp_timeout", "sms_timeout"):
        try:
            return float(raw)
        except (TypeError, ValueError):
            problems.append(f"{name}: expected a number, got {raw!r}")
            return 5.0
    if name == "registration_requires_iat":
        if isinstance(raw, bool):
            return raw
        return str(raw).lower() in ("1", "true", "yes", "on")
    if name in ("first_party_clients", "line_gateways"):
        if isinstance(raw, str):
            return tuple(x.strip() for x in raw.split(",") if x.strip())
        return tuple(raw)
    return raw


def _load_brands(directory: Path, problems: list[str]) -> dict[str, Brand]:
    brands: dict[str, Brand] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"brand file {path}: {exc}")
            continue
        bid = path.stem
        missing = [k for k in ("names", "internet_host", "line_host") if k not in data]
        if missing:
            problems.append(f"brand {bid}: missing {', '.join(missing)}")
            continue
        if "ja" not in data["names"]:
            problems.append(f"brand {bid}: names.ja is required")
            continue
        brands[bid] = Brand(
            id=bid,
            names=dict(data["names"]),
            internet_host=data["internet_host"],
            line_host=data["line_host"],
            connectors=tuple(data.get("connectors", ())),
            colors=dict(data.get("colors", {})),
        )
    return brands


def _connectors(tables: Mapping[str, Any], environ: Mapping[str, str],
                problems: list[str]) -> dict[str, dict[str, Any]]:
    """``[connectors.<id>]`` tables with ``IDP_CONNECTOR_<ID>_<KEY>`` overrides."""
    found: dict[str, dict[str, Any]] = {}
    for cid, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("type"), str):
            problems.append(f"connectors.{cid}: a table with a `type`")
            continue
        values = dict(table)
        prefix = "IDP_CONNECTOR_" + cid.upper().replace("-", "_") + "_"
        for name, raw in environ.items():
            if name.startswith(prefix):
                key = name[len(prefix):].lower()
                current = values.get(key)
                if isinstance(current, bool):
                    values[key] = raw.lower() in ("1", "true", "yes", "on")
                elif isinstance(current, int):
                    try:
                        values[key] = int(raw)
                    except ValueError:
                        problems.append(f"{name}: expected an integer")
                elif isinstance(current, list):
                    values[key] = [x.strip() for x in raw.split(",") if x.strip()]
                else:
                    values[key] = raw
        found[cid] = values
    return found


def _anchor_sqlite(url: str) -> str:
    """A relative SQLite path means the project's, not the current directory's."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
        path = url[len(prefix):].split("?", 1)
        if path[0] and path[0] != ":memory:":
            path[0] = str(PROJECT_ROOT / path[0])
            return prefix + "?".join(path)
    return url


def _dev_secret(instance_dir: Path) -> str:
    """A per-checkout random secret for ``make run``, shared by every local worker."""
    path = instance_dir / "secret_key"
    if not path.exists():
        instance_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build validated settings; raise ``SettingsError`` listing every problem."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    path = Path(config_path or environ.get("IDP_CONFIG") or DEFAULT_CONFIG)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise SettingsError([f"config file {path} not found (IDP_CONFIG)"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"config file {path}: {exc}"]) from None

    values: dict[str, Any] = {}
    if "IDP_ENV" in environ and "IDP_ENVIRONMENT" not in environ:
        # The short name the README and the issue tracker use.
        environ = {**environ, "IDP_ENVIRONMENT": environ["IDP_ENV"]}
    for name, (section, key) in _FIELDS.items():
        if key in data.get(section, {}):
            values[name] = _coerce(name, data[section][key], problems)
        env_name = "IDP_" + name.upper()
        if env_name in environ:
            values[name] = _coerce(name, environ[env_name], problems)
    for name, value in (overrides or {}).items():
        values[name] = value

    mfa = data.get("mfa", {})
    if "mfa_chain" not in values:
        values["mfa_chain"] = tuple(dict(group) for group in mfa.get("chain", ()))
    if "mfa_factors" not in values:
        values["mfa_factors"] = {k: dict(v) for k, v in mfa.get("factors", {}).items()}

    if "connectors" not in values:
        values["connectors"] = _connectors(data.get("connectors", {}), environ, problems)

    base = path.parent
    brands_dir = base / data.get("brands", {}).get("dir", "brands")
    brands = overrides.get("brands") if overrides and "brands" in overrides else None
    if brands is None:
        brands = _load_brands(brands_dir, problems)
    values["brands"] = brands
    if not brands:
        problems.append(f"no brand files in {brands_dir}")
    values.setdefault("default_brand", next(iter(brands), ""))
    if values["default_brand"] not in brands:
        problems.append(f"default brand {values['default_brand']!r} has no brand file")

    env = values.setdefault("environment", "production")
    if env not in ENVIRONMENTS:
        problems.append(f"environment: one of {', '.join(ENVIRONMENTS)}, got {env!r}")

    issuer = values.get("issuer", "")
    parts = urlsplit(issuer)
    if not issuer:
        problems.append("issuer is required (IDP_ISSUER)")
    elif parts.query or parts.fragment or parts.scheme not in ("https", "http"):
        problems.append(f"issuer must be an http(s) URL without query or fragment: {issuer!r}")
    elif parts.scheme == "http" and env == "production":
        problems.append("issuer must use https in production (OIDC Core §2)")
    values["issuer"] = issuer.rstrip("/")

    if not values.get("database_url"):
        problems.append("database_url is required (IDP_DATABASE_URL)")
    else:
        values["database_url"] = _anchor_sqlite(values["database_url"])
    values.setdefault("redis_url", "")
    values.setdefault("smtp_url", "")
    if env == "production" and not values["smtp_url"]:
        problems.append("smtp_url is required in production (IDP_SMTP_URL); the outbox "
                        "is for development only")
    elif values["smtp_url"] and urlsplit(values["smtp_url"]).scheme not in ("smtp", "smtps"):
        problems.append("smtp_url must start with smtp:// or smtps://")
    for name in ("ticket_ttl", "lockout_threshold", "rate_window", "login_failures_per_address",
                 "login_attempts_per_account", "mails_per_account", "mails_per_address",
                 "mfa_remember_days", "mfa_inactive_days", "mfa_failures_per_user"):
        if name in values and values[name] <= 0:
            problems.append(f"{name} must be positive")

    keys_dir = Path(values.get("keys_dir") or "keys")
    values["keys_dir"] = keys_dir if keys_dir.is_absolute() else PROJECT_ROOT / keys_dir

    secret = values.get("secret_key") or ""
    if not secret:
        if env == "production":
            problems.append("secret_key is required in production (IDP_SECRET_KEY)")
        else:
            secret = _dev_secret(PROJECT_ROOT / "instance")
    elif len(secret) < 32:
        problems.append("secret_key must be at least 32 characters")
    values["secret_key"] = secret
    values["keys_kek"] = values.get("keys_kek") or ""
    if env == "production" and not values["keys_kek"]:
        problems.append("keys_kek is required in production (IDP_KEYS_KEK)")

    ttl_names = ("access_token_ttl", "id_token_ttl", "refresh_token_ttl", "code_ttl")
    for name in ttl_names:
        if name in values and values[name] <= 0:
            problems.append(f"{name} must be positive")
    jwks_age = values.get("jwks_max_age", 300)
    next_age = values.get("keys_next_min_age", 900)
    if jwks_age >= next_age and next_age > 0:
        problems.append(
            "jwks_max_age must be shorter than keys_next_min_age, or relying parties could "
            "see a signature before the key that made it"
        )

    for cidr in values.get("line_gateways", ()):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(f"line_gateways: {cidr!r} is not an address or CIDR network")
    if values.get("trusted_proxies", 0) < 0:
        problems.append("trusted_proxies must be 0 or more")

    if problems:
        raise SettingsError(problems)
    values["config_path"] = path
    return Settings(**values)

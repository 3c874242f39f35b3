"""The ``idp`` operator command: schema, signing keys, clients, tokens, accounts, demo data."""

from __future__ import annotations

import functools
import getpass
import json
import os
import re
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from alembic.runtime.migration import MigrationContext
from flask import Flask, current_app
from redis import RedisError
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from . import create_app, migrate
from .accounts import AccountError, create_contract, create_user
from .clients import (
    AUTH_METHODS,
    GRANT_TYPES,
    Policy,
    RegistrationError,
    create_client,
    create_initial_access_token,
    delete_client,
    new_client_id,
    validate_metadata,
)
from .clock import now
from .db import db
from .keys import ALGS, KeyStoreError
from .migrate import MigrateError, head_revision
from .models import AuditEvent, Client, Contract, MailMessage, User
from .models.mail import STATUSES as MAIL_STATUSES
from .notify import mail
from .oauth.grants import ADMIN_CONTRACT_KEY, ADMIN_SCOPE
from .security import hash_password, matches_hash, random_token, sha256_hex, verify_password
from .settings import PROJECT_ROOT, Settings, SettingsError, load_settings

#: Exit status of every refused or failed operator request (same as click's usage errors).
EXIT_ERROR = 2

DEMO_BRAND = "codec"
DEMO_CONTRACT_NAME = "デモ株式会社"
DEMO_OWNER = ("owner@example.com", "Demo-Owner-2026", "デモ 太郎")
DEMO_USER = ("user@example.com", "Demo-User-2026", "デモ 花子")
DEMO_CLIENT_ID = "storage-web"
DEMO_RP_URL = "http://127.0.0.1:5001"
DEMO_RP_FILE = PROJECT_ROOT / "instance" / "demo_rp.json"
DEFAULT_SCOPE = "openid profile email phone offline_access"
DEFAULT_GRANTS = ("authorization_code", "refresh_token")

F = TypeVar("F", bound=Callable[..., Any])


class OperatorError(click.ClickException):
    """A request the command refuses; printed as one line, exit status 2."""

    exit_code = EXIT_ERROR


# -- plumbing ------------------------------------------------------------------------------


@dataclass
class Runtime:
    """Settings and app, built on first use so ``idp --help`` works without a configuration."""

    config: str | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _app: Flask | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    @property
    def app(self) -> Flask:
        if self._app is None:
            self._app = create_app(self.settings)
        return self._app


def _runtime() -> Runtime:
    return click.get_current_context().ensure_object(Runtime)


def in_app(f: F) -> F:
    """Run the command inside the app context (database session, key ring, clock)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _runtime().app.app_context():
            _require_current_schema()
            return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _require_current_schema() -> None:
    # Refuse before changing anything: a key rotated against a database without the audit
    # table would be a change nobody recorded.
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head = head_revision()
    if current != head:
        raise OperatorError(
            f"the database is at revision {current or '(empty)'} but this code expects {head}: "
            "run `idp db upgrade` first"
        )


def _settings() -> Settings:
    return current_app.extensions["idp.settings"]


def _origin() -> str:
    # The CLI has no client IP; who ran it on which host is the useful "from where".
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (containers)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def audit(action: str, target: str = "", *, contract_id: str | None = None,
          commit: bool = True, **details: Any) -> None:
    """Record an operator change; with ``commit=False`` it lands with the caller's commit."""
    db.session.add(AuditEvent(
        at=now(), actor="operator", action=action, target=target, contract_id=contract_id,
        ip="", details={"origin": _origin(), **details},
    ))
    if commit:
        db.session.commit()


def _iso(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [list(map(str, r)) for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in (list(headers), *rows):
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write a secret file readable by its owner only, replacing any old one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the command tree ----------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="TOML settings file (default: $IDP_CONFIG or config/default.toml).")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """Operate the OpenID Connect provider. Settings come from IDP_CONFIG and IDP_* variables."""
    ctx.obj = Runtime(config=config)


# -- db ------------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations shipped in idp/migrations)."""


def _ensure_sqlite_dir(url: str) -> None:
    # A fresh checkout has no instance/ directory yet, and SQLite will not create it.
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema (alembic upgrade head)."""
    url = _runtime().settings.database_url
    _ensure_sqlite_dir(url)
    before = migrate.current_revision(url)
    migrate.upgrade(url)
    after = migrate.current_revision(url)
    if before == after:
        click.echo(f"database already at revision {after}")
        return
    click.echo(f"database upgraded from {before or 'empty'} to revision {after}")
    with _runtime().app.app_context():
        audit("db.upgrade", after or "", **{"from": before, "to": after})


@db_group.command("current")
def db_current() -> None:
    """Print the database's revision and the newest one in this code base."""
    current = migrate.current_revision(_runtime().settings.database_url)
    head = migrate.head_revision()
    state = "up to date" if current == head else "run `idp db upgrade`"
    click.echo(f"database: {current or 'empty'}  code: {head}  ({state})")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
def db_revision(message: str) -> None:
    """Developers: autogenerate a migration from the models against a database at head."""
    path = migrate.revision(_runtime().settings.database_url, message)
    click.echo(f"wrote {path}: review it (names, batch operations, data moves) before committing")


# -- keys ----------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """Signing keys: next -> current -> retired -> pruned."""


def _rotate(force: bool) -> list[str]:
    settings = _settings()
    store = current_app.extensions["idp.keys"].store
    lines = store.rotate(now=now(), next_min_age=settings.keys_next_min_age, force=force)
    audit("keys.rotate", "signing-keys", force=force, changes=lines)
    return lines


@keys.command("rotate")
@click.option("--force", is_flag=True,
              help="Rotate even if the next key is younger than keys_next_min_age "
                   "(a compromised key); RPs with a cached JWKS may fail until they refetch.")
@in_app
def keys_rotate(force: bool) -> None:
    """Promote next keys to current, retire current ones, publish new next keys."""
    for line in _rotate(force):
        click.echo(line)


@keys.command("list")
@in_app
def keys_list() -> None:
    """Show every key in the store with its state and timestamps (UTC)."""
    ring = current_app.extensions["idp.keys"]
    found = ring.store.load()
    if not found:
        click.echo("no signing keys: run `idp keys rotate`")
        return
    state_order = {state: i for i, state in enumerate(("current", "next", "retired"))}
    found.sort(key=lambda k: (ALGS.index(k.alg) if k.alg in ALGS else len(ALGS),
                              state_order.get(k.state, 9), -k.created_at))
    _table(
        ("kid", "alg", "state", "created", "activated", "retired"),
        ((k.kid, k.alg, k.state, _iso(k.created_at), _iso(k.activated_at), _iso(k.retired_at))
         for k in found),
    )


@keys.command("prune")
@in_app
def keys_prune() -> None:
    """Delete retired keys no unexpired token can have been signed with."""
    settings = _settings()
    # A retired key signed its last token at retirement; that token lives at most the longer
    # token lifetime, and an RP may verify it against a JWKS cached jwks_max_age longer.
    keep_for = max(settings.id_token_ttl, settings.access_token_ttl) + settings.jwks_max_age
    lines = current_app.extensions["idp.keys"].store.prune(now=now(), keep_for=keep_for)
    if not lines:
        click.echo(f"nothing to prune: no key retired more than {keep_for}s ago")
        return
    audit("keys.prune", "signing-keys", keep_for=keep_for, changes=lines)
    for line in lines:
        click.echo(line)


# -- clients -------------------------------------------------------------------------------


@cli.group()
def client() -> None:
    """OAuth clients (relying parties)."""


def _client_meta(body: dict[str, Any], *, introspection: bool = False) -> dict[str, Any]:
    """Validate with the same rules as dynamic registration, so both make alike clients."""
    settings = _settings()
    policy = Policy(production=not settings.dev, http_timeout=settings.http_timeout)
    try:
        meta = validate_metadata({k: v for k, v in body.items() if v is not None}, policy)
    except RegistrationError as exc:
        raise OperatorError(exc.description) from None
    if introspection:
        # Not registrable metadata: only an operator may make a resource server.
        meta["introspection"] = True
    return meta


@client.command("create")
@click.option("--name", required=True, help="Name shown on the consent page.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, metavar="URI",
              help="Exact redirect URI (repeatable).")
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True, metavar="URI",
              help="Where RP-initiated logout may return (repeatable).")
@click.option("--auth-method", default="client_secret_basic", show_default=True,
              type=click.Choice(AUTH_METHODS),
              help="Token endpoint authentication (none: public client, PKCE only).")
@click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(GRANT_TYPES),
              help="Allowed grant (repeatable; default authorization_code + refresh_token).")
@click.option("--scope", default=DEFAULT_SCOPE, show_default=True,
              help="Space-separated scopes the client may request.")
@click.option("--first-party", is_flag=True, help="Our own app: no consent page.")
@click.option("--introspection", is_flag=True,
              help="A resource server: may introspect tokens issued to other clients.")
@click.option("--client-id", default=None, help="Fixed client_id (default: random).")
@click.option("--jwks-uri", default=None, help="The client's JWKS (private_key_jwt).")
@click.option("--admin-contract", default=None, metavar="CONTRACT_ID",
              help="An admin API client of this contract: client_credentials, scope admin.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@in_app
def client_create(name: str, redirect_uris: tuple[str, ...], post_logout: tuple[str, ...],
                  auth_method: str, grant_types: tuple[str, ...], scope: str, first_party: bool,
                  introspection: bool, client_id: str | None, jwks_uri: str | None,
                  admin_contract: str | None, as_json: bool) -> None:
    """Register a client; its secret is printed once and only its SHA-256 is stored."""
    if admin_contract is not None:
        # An admin client acts for exactly one contract, with no user: nothing but the
        # client_credentials grant and the admin scope (checked in idp/oauth/grants.py).
        if db.session.get(Contract, admin_contract) is None:
            raise OperatorError(f"no contract {admin_contract!r}")
        if set(grant_types) - {"client_credentials"} or auth_method == "none":
            raise OperatorError("--admin-contract: only the client_credentials grant, with "
                                "client authentication")
        if redirect_uris or post_logout or first_party or introspection:
            raise OperatorError("--admin-contract: no redirect URIs, first-party or "
                                "introspection")
        grant_types = ("client_credentials",)
        scope = "openid"  # validated as usual, then replaced below
    meta = _client_meta({
        "client_name": name,
        "redirect_uris": list(redirect_uris) or None,
        "post_logout_redirect_uris": list(post_logout) or None,
        "token_endpoint_auth_method": auth_method,
        "grant_types": list(dict.fromkeys(grant_types or DEFAULT_GRANTS)),
        "scope": scope,
        "jwks_uri": jwks_uri,
    }, introspection=introspection)
    if admin_contract is not None:
        # Not registrable metadata: only an operator may make an admin client.
        meta["scope"] = ADMIN_SCOPE
        meta[ADMIN_CONTRACT_KEY] = admin_contract
    if client_id is not None and not re.fullmatch(r"[A-Za-z0-9._~-]{1,120}", client_id):
        raise OperatorError("--client-id: 1-120 characters of A-Z a-z 0-9 . _ ~ -")
    client_id = client_id or new_client_id()
    if db.session.get(Client, client_id) is not None:
        raise OperatorError(f"client {client_id!r} already exists")
    # Added before create_client commits, so the client and its audit record land together.
    audit("client.create", client_id, contract_id=admin_contract, commit=False,
          first_party=first_party, meta=meta)
    created, secret = create_client(meta, client_id=client_id, first_party=first_party)
    if as_json:
        out = {"client_id": created.client_id, "client_secret": secret,
               "client_id_issued_at": created.issued_at, "client_secret_expires_at": 0,
               "first_party": first_party, **meta}
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    click.echo(f"client_id:     {created.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")
        click.echo("The secret is shown only this once; only its SHA-256 is stored.")
    else:
        click.echo(f"no client secret ({auth_method})")


@client.command("list")
@in_app
def client_list() -> None:
    """Show every registered client."""
    configured = set(_settings().first_party_clients)
    rows = db.session.scalars(select(Client).order_by(Client.client_id)).all()
    if not rows:
        click.echo("no clients: add one with `idp client create`")
        return

    def party(c: Client) -> str:
        if c.first_party:
            return "yes"
        return "yes (config)" if c.client_id in configured else "no"

    _table(
        ("client_id", "name", "auth method", "first-party", "redirect URIs"),
        ((c.client_id, c.client_name, c.token_endpoint_auth_method, party(c),
          " ".join(c.redirect_uris) or "-") for c in rows),
    )


@client.command("delete")
@click.argument("client_id")
@in_app
def client_delete(client_id: str) -> None:
    """Delete a client, revoke its refresh tokens (and their access tokens), drop consents."""
    found = db.session.get(Client, client_id)
    if found is None:
        raise OperatorError(f"no client {client_id!r}")
    families, consents = delete_client(found, actor="operator", details={"origin": _origin()})
    click.echo(f"deleted client {client_id}: revoked {families} refresh-token "
               f"famil{'y' if families == 1 else 'ies'}, removed {consents} consent(s)")


# -- initial access tokens -----------------------------------------------------------------


@cli.group()
def iat() -> None:
    """Initial access tokens for dynamic client registration (RFC 7591 §3)."""


@iat.command("create")
@click.option("--note", default="", help="Who it is for (kept with the token).")
@click.option("--ttl", type=click.IntRange(min=60), default=7 * 86400, show_default=True,
              help="Lifetime in seconds.")
@click.option("--uses", type=click.IntRange(min=1), default=1, show_default=True,
              help="How many registrations it allows.")
@in_app
def iat_create(note: str, ttl: int, uses: int) -> None:
    """Mint a token for a partner to register a client; printed once, stored hashed."""
    if len(note) > 200:
        raise OperatorError("--note: at most 200 characters")
    token = create_initial_access_token(note=note, ttl=ttl, uses=uses)
    # The digest prefix identifies the token in the log without making it usable.
    audit("iat.create", sha256_hex(token)[:16], note=note, ttl=ttl, uses=uses)
    click.echo(token)
    click.echo(f"valid {ttl}s for {uses} registration(s); shown only this once", err=True)


# -- contracts and users -------------------------------------------------------------------


@cli.group()
def contract() -> None:
    """Contracts (tenants)."""


@contract.command("create")
@click.option("--brand", required=True, help="Brand id (a file in config/brands).")
@click.option("--plan", required=True, type=click.Choice(["basic", "trial"]))
@click.option("--owner-email", required=True, help="The owner's login ID.")
@click.option("--owner-password", default=None,
              help="Omit to leave the owner without a password (invitation mail).")
@click.option("--owner-name", default="", help="The owner's display name.")
@click.option("--name", default="", help="Contract (company) name.")
@click.option("--two-step", type=click.Choice(["on", "off"]), default="on", show_default=True,
              help="Contract-wide 2-step verification for password users (SPEC §8).")
@in_app
def contract_create(brand: str, plan: str, owner_email: str, owner_password: str | None,
                    owner_name: str, name: str, two_step: str) -> None:
    """Create a contract and its owner."""
    created, owner = create_contract(brand=brand, plan=plan, owner_email=owner_email,
                                     owner_password=owner_password, name=name,
                                     owner_name=owner_name, two_step=two_step == "on")
    audit("contract.create", created.id, contract_id=created.id, brand=brand, plan=plan,
          name=name, owner=owner.id, owner_email=owner.email, two_step=two_step)
    click.echo(f"contract: {created.id}")
    click.echo(f"owner:    {owner.id} ({owner.email})")
    if owner_password is None:
        click.echo("The owner has no password yet and cannot sign in until one is set "
                   "(with \"Forgot your password?\" on the login page).")


@cli.group()
def user() -> None:
    """Users of a contract."""


@user.command("create")
@click.option("--contract", "contract_id", required=True, help="Contract id (ctr_...).")
@click.option("--email", required=True, help="Login ID, unique per brand.")
@click.option("--role", required=True, type=click.Choice(["admin", "user"]))
@click.option("--password", default=None, help="Omit to leave the user without a password.")
@click.option("--name", default="", help="Display name.")
@in_app
def user_create(contract_id: str, email: str, role: str, password: str | None,
                name: str) -> None:
    """Add an admin or user to a contract."""
    created = create_user(contract_id=contract_id, email=email, role=role, password=password,
                          name=name)
    audit("user.create", created.id, contract_id=contract_id, email=created.email, role=role)
    click.echo(f"user: {created.id} ({created.email}, {role})")
    if password is None:
        click.echo("The user has no password yet and cannot sign in until one is set.")


# -- mail ----------------------------------------------------------------------------------


@cli.group("mail")
def mail_group() -> None:
    """The outgoing mail queue: retries of messages the mail server did not take."""


def _queue_summary() -> str:
    counts = mail.counts()
    return "queue: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in MAIL_STATUSES)


def _when_next(message: MailMessage, t: int) -> str:
    if message.status == "sent":
        return _iso(message.sent_at)
    if message.status == "pending":
        return "due" if message.next_attempt_at <= t else _iso(message.next_attempt_at)
    return "-"


@mail_group.command("deliver")
@click.option("--loop", "interval", type=click.FloatRange(min=0.1), default=None,
              metavar="SECONDS",
              help="Keep running: deliver due messages every SECONDS until stopped "
                   "(SIGTERM or Ctrl-C), as `make mail-worker` does.")
@in_app
def mail_deliver(interval: float | None) -> None:
    """Deliver queued messages whose (re)try time has come.

    Each request delivers its own mail right after its commit; this retries what the mail
    server did not take then (with a back-off from a minute to six hours) and what a
    crashed process left behind. Messages are given up as `failed` after the last retry.
    """
    if interval is None:
        sent, not_sent = mail.deliver_due(limit=None)
        click.echo(f"sent {sent}, not sent {not_sent}; {_queue_summary()}")
        return
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        # Finish the message in hand rather than leave it leased for two minutes.
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    click.echo(f"delivering due mail every {interval:g}s until stopped; {_queue_summary()}")

    def _report(sent: int, not_sent: int) -> None:
        click.echo(f"{_iso(now())} sent {sent}, not sent {not_sent}; {_queue_summary()}")

    try:
        mail.run_worker(interval=interval, stop=stop, report=_report)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("stopped")


@mail_group.command("list")
@click.option("--status", type=click.Choice(MAIL_STATUSES), default=None,
              help="Only messages in this state (failed: given up after every retry).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many of the newest messages to show.")
@in_app
def mail_list(status: str | None, limit: int) -> None:
    """Show the newest messages of the queue (never their bodies: they hold live links)."""
    found = mail.recent(status=status, limit=limit)
    if not found:
        click.echo("no messages" + (f" with status {status}" if status else ""))
        return
    t = now()
    _table(
        ("id", "status", "tries", "queued", "sent/next", "kind", "brand", "lang", "to",
         "subject", "last error"),
        ((m.id, m.status, m.attempts, _iso(m.created_at), _when_next(m, t), m.kind, m.brand,
          m.lang, m.to, m.subject, _one_line(m.last_error or "-")[:80]) for m in found),
    )
    click.echo(_queue_summary())


# -- demo ----------------------------------------------------------------------------------


def _demo_user(contract_id: str | None, email: str, password: str, name: str,
               role: str) -> tuple[str, list[str]]:
    """Make sure the demo account exists and signs in with its fixed password."""
    found = db.session.scalar(select(User).where(User.brand == DEMO_BRAND, User.email == email))
    if found is None:
        if contract_id is None:
            created, owner = create_contract(brand=DEMO_BRAND, plan="basic", owner_email=email,
                                             owner_password=password, name=DEMO_CONTRACT_NAME,
                                             owner_name=name)
            audit("contract.create", created.id, contract_id=created.id, brand=DEMO_BRAND,
                  plan="basic", name=DEMO_CONTRACT_NAME, owner=owner.id, demo=True)
            return created.id, [f"created contract {created.id} with owner {email}"]
        made = create_user(contract_id=contract_id, email=email, role=role, password=password,
                           name=name)
        audit("user.create", made.id, contract_id=contract_id, email=email, role=role,
              demo=True)
        return contract_id, [f"created {role} {email}"]
    # Someone may have changed the password or locked the account while trying things;
    # the printed credentials must work, so put them back (development only).
    if (found.login_method != "password" or found.status != "active"
            or found.locked_at is not None or not verify_password(password, found.password_hash)):
        found.login_method = "password"
        found.status = "active"
        found.failed_logins = 0
        found.locked_at = None
        found.password_hash = hash_password(password)
        found.updated_at = now()
        audit("user.reset_password", found.id, contract_id=found.contract_id, demo=True)
        return found.contract_id, [f"reset the demo password of {email}"]
    return found.contract_id, []


def _demo_client(rp_file: Path) -> list[str]:
    """The demo RP's client; its secret exists only in ``rp_file``, so keep the two in step."""
    issuer = _settings().issuer
    found = db.session.get(Client, DEMO_CLIENT_ID)
    saved: dict[str, Any] = {}
    if rp_file.exists():
        try:
            saved = json.loads(rp_file.read_text("utf-8"))
        except (OSError, ValueError):
            saved = {}
    if found is None:
        meta = _client_meta({
            "client_name": "Codec Storage (demo)",
            "redirect_uris": [f"{DEMO_RP_URL}/callback"],
            "post_logout_redirect_uris": [f"{DEMO_RP_URL}/"],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": list(DEFAULT_GRANTS),
            "scope": DEFAULT_SCOPE,
        })
        audit("client.create", DEMO_CLIENT_ID, commit=False, first_party=True, meta=meta,
              demo=True)
        _, secret = create_client(meta, client_id=DEMO_CLIENT_ID, first_party=True)
        assert secret is not None
        change = f"created client {DEMO_CLIENT_ID}"
    elif isinstance(saved.get("client_secret"), str) and matches_hash(
            saved["client_secret"], found.secret_hash):
        if saved.get("issuer") == issuer and saved.get("client_id") == DEMO_CLIENT_ID:
            return []
        secret = saved["client_secret"]
        change = f"rewrote {rp_file} for issuer {issuer}"
    else:
        # The secret was shown once and is gone (file missing or from another database):
        # the only way to give the demo RP a working secret is a new one.
        secret = random_token(32)
        found.secret_hash = sha256_hex(secret)
        audit("client.rotate_secret", DEMO_CLIENT_ID, demo=True)
        change = f"issued a new secret for {DEMO_CLIENT_ID}"
    _write_private_json(rp_file, {"issuer": issuer, "client_id": DEMO_CLIENT_ID,
                                  "client_secret": secret})
    return [change, f"wrote {rp_file}"]


@cli.command("demo")
@click.option("--rp-file", type=click.Path(dir_okay=False, path_type=Path),
              default=DEMO_RP_FILE, show_default=True,
              help="Where the demo RP reads its client credentials (mode 0600).")
@in_app
def demo(rp_file: Path) -> None:
    """Create (idempotently) the demo keys, contract, users and RP client for `make run`."""
    settings = _settings()
    if settings.environment == "production":
        raise OperatorError("refusing to create demo data (fixed passwords) in production")
    changes: list[str] = []
    if not current_app.extensions["idp.keys"].store.load():
        changes += _rotate(force=False)
    contract_id, done = _demo_user(None, DEMO_OWNER[0], DEMO_OWNER[1], DEMO_OWNER[2], "owner")
    changes += done
    _, done = _demo_user(contract_id, DEMO_USER[0], DEMO_USER[1], DEMO_USER[2], "user")
    changes += done
    changes += _demo_client(rp_file)
    for line in changes:
        click.echo(line)
    if not changes:
        click.echo("demo data already in place; nothing changed")
    click.echo("")
    click.echo(f"  provider  {settings.issuer}")
    click.echo(f"  demo RP   {DEMO_RP_URL}")
    if settings.environment == "development" and not settings.smtp_url:
        click.echo(f"  mail      {settings.issuer}/dev/outbox (no SMTP server: mail is kept there)")
    if settings.environment == "development" and not settings.sms_url:
        click.echo(f"  2-step    on: the first sign-in enrols a phone; its SMS code is at "
                   f"{settings.issuer}/dev/outbox")
    click.echo(f"  owner     {DEMO_OWNER[0]} / {DEMO_OWNER[1]}")
    click.echo(f"  user      {DEMO_USER[0]} / {DEMO_USER[1]}")
    click.echo(f"  contract  {contract_id} ({DEMO_CONTRACT_NAME}, brand {DEMO_BRAND})")
    click.echo("")


# -- entry point ---------------------------------------------------------------------------


def _fail(message: str, code: int = EXIT_ERROR, *, prefix: str = "idp: ") -> NoReturn:
    click.echo(prefix + message, err=True)
    sys.exit(code)


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console script ``idp``: operator errors are one line on stderr and exit status 2."""
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="idp",
                      standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        sys.exit(EXIT_ERROR)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "idp"
        _fail(f"{where}: {_one_line(exc.format_message())} (see {where} --help)", prefix="")
    except click.ClickException as exc:
        _fail(_one_line(exc.format_message()), exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 1)
    except SettingsError as exc:
        _fail("invalid configuration: " + "; ".join(exc.problems))
    except (AccountError, KeyStoreError, MigrateError) as exc:
        _fail(_one_line(str(exc)))
    except SQLAlchemyError as exc:
        # Operators need the cause (unreachable server, missing table), not the stack.
        cause = _one_line(str(getattr(exc, "orig", None) or exc)).split("; [SQL", 1)[0]
        hint = ""
        if "no such table" in cause or "does not exist" in cause:
            hint = " (run `idp db upgrade`)"
        _fail(f"database error: {cause}{hint}")
    except RedisError as exc:
        _fail(f"ephemeral store (Redis) error: {_one_line(str(exc))}")
    except OSError as exc:
        _fail(_one_line(str(exc)))
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()

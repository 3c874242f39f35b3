"""Client registration rules shared by the operator CLI and dynamic registration.

Metadata follows RFC 7591 §2 and §2.1, OpenID Connect Dynamic Client Registration 1.0 §2
and §5 (sector identifiers, with OIDC Core §8.1) and RP-Initiated Logout 1.0 §3.1; initial
access tokens are RFC 7591 §3 and registration access tokens RFC 7592 §3.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

import requests
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select, update

from .clock import now
from .db import db
from .keys import ALGS
from .models import AuditEvent, Client, Consent, InitialAccessToken, RefreshToken
from .oauth import tokens
from .oauth.claims import SCOPES
from .security import random_token, sha256_hex

SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = (*SECRET_AUTH_METHODS, "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
RESPONSE_TYPES = ("code",)
APPLICATION_TYPES = ("web", "native")
SUBJECT_TYPES = ("public", "pairwise")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Human-readable values that may carry a language tag, ``client_name#ja`` (OIDC Reg §2.1).
LOCALIZABLE = ("client_name", "logo_uri", "client_uri", "policy_uri", "tos_uri")
#: Every metadata name a registration can set; anything else is ignored (RFC 7591 §2).
REGISTRABLE = frozenset({
    "redirect_uris", "post_logout_redirect_uris", "response_types", "grant_types",
    "application_type", "token_endpoint_auth_method", "token_endpoint_auth_signing_alg",
    "jwks", "jwks_uri", "id_token_signed_response_alg", "scope", "subject_type",
    "sector_identifier_uri", "contacts", "default_max_age", "require_auth_time",
    "software_id", "software_version", *LOCALIZABLE,
})
#: Kept in ``meta`` by us, never accepted from or shown to a client.
SERVER_KEYS = frozenset({"sector_identifier"})
#: Metadata asking for response or request formats we do not produce or accept. Silently
#: dropping them would leave the client expecting, say, encrypted ID tokens, so they are
#: refused (OIDC Registration §2, JARM, RFC 9701).
UNSUPPORTED = (
    "id_token_encrypted_response_alg", "id_token_encrypted_response_enc",
    "userinfo_signed_response_alg", "userinfo_encrypted_response_alg",
    "userinfo_encrypted_response_enc", "request_object_signing_alg",
    "request_object_encryption_alg", "request_object_encryption_enc",
    "authorization_signed_response_alg", "authorization_encrypted_response_alg",
    "authorization_encrypted_response_enc", "introspection_signed_response_alg",
    "introspection_encrypted_response_alg", "introspection_encrypted_response_enc",
)
#: Boolean metadata whose ``true`` demands a mechanism we lack (RFC 8705, 9449, 9126, 9101).
UNSUPPORTED_FLAGS = (
    "tls_client_certificate_bound_access_tokens", "dpop_bound_access_tokens",
    "require_pushed_authorization_requests", "require_signed_request_object",
)
_MAX_STRING = 2000
_MAX_ITEMS = 50
_MAX_DOCUMENT = 64 * 1024
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$")
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


# -- errors (RFC 7591 §3.2.2) ----------------------------------------------------------


class RegistrationError(Exception):
    """A registration or update refused with the spec's error code."""

    error = "invalid_request"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidRequest(RegistrationError):
    """The request itself is malformed (not a JSON object, RFC 7592 §2.2 rules broken)."""


class InvalidRedirectURI(RegistrationError):
    error = "invalid_redirect_uri"


class InvalidClientMetadata(RegistrationError):
    error = "invalid_client_metadata"


# -- metadata validation ---------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What this deployment allows a client to register."""

    #: Production insists on https everywhere but loopback redirect URIs.
    production: bool = True
    #: Seconds a fetch of a client's sector_identifier_uri may take.
    http_timeout: float = 5.0
    #: ID token algorithms offered; the key store keeps a current key for each of ALGS.
    signing_algs: tuple[str, ...] = ALGS


@dataclass
class _Draft:
    """A registration request being validated: ``body`` in, ``meta`` built up rule by rule."""

    body: Mapping[str, Any]
    policy: Policy
    meta: dict[str, Any] = field(default_factory=dict)


def _string(d: _Draft, name: str, *, error: type[RegistrationError] = InvalidClientMetadata,
            allow_empty: bool = False) -> str | None:
    value = d.body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_STRING or not (value or allow_empty):
        raise error(f"{name} must be a non-empty string of at most {_MAX_STRING} characters")
    return value


def _strings(d: _Draft, name: str, *,
             error: type[RegistrationError] = InvalidClientMetadata) -> list[str] | None:
    """A JSON array of non-empty strings, duplicates dropped, order kept."""
    value = d.body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > _MAX_ITEMS or not all(
        isinstance(v, str) and v and len(v) <= _MAX_STRING for v in value
    ):
        raise error(f"{name} must be an array of at most {_MAX_ITEMS} non-empty strings")
    return list(dict.fromkeys(value))


def _one_of(d: _Draft, name: str, allowed: tuple[str, ...], default: str) -> None:
    value = _string(d, name)
    if value is None:
        value = default
    if value not in allowed:
        raise InvalidClientMetadata(f"{name} must be one of {', '.join(allowed)}")
    d.meta[name] = value


def _uri_parts(uri: str) -> SplitResult | None:
    """urlsplit, or None for what is not a plain absolute URI (spaces, controls, bad ports)."""
    if any(c <= " " or c == "\x7f" for c in uri):
        return None
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return None
    return parts if parts.scheme else None


def _web_uri_problem(uri: str, policy: Policy) -> str | None:
    """Why ``uri`` is no https URL (http allowed outside production), or None."""
    parts = _uri_parts(uri)
    if parts is None or not parts.hostname:
        return "must be an absolute URL"
    if parts.scheme == "http" and policy.production:
        return "must use https"
    if parts.scheme not in ("https", "http"):
        # Shown as links on our pages: javascript: or data: URLs would be script injection.
        return "must use https"
    if parts.username is not None:
        return "must not carry credentials"
    return None


def redirect_uri_problem(uri: str, policy: Policy, application_type: str = "web") -> str | None:
    """Why ``uri`` cannot be a redirection endpoint (RFC 6749 §3.1.2, RFC 8252 §7), or None."""
    parts = _uri_parts(uri)
    if parts is None:
        return "must be an absolute URI"
    if "#" in uri:
        return "must not contain a fragment"
    scheme = parts.scheme.lower()
    if scheme in ("https", "http"):
        if not parts.hostname:
            return "must name a host"
        if parts.username is not None:
            # https://trusted.example@evil.example/ reads as the first host to a person.
            return "must not carry credentials"
        # Plain http exposes the code in transit; only a loopback listener on the user's
        # own machine (RFC 8252 §7.3) is safe from that, outside development.
        if scheme == "http" and policy.production and parts.hostname not in LOOPBACK_HOSTS:
            return "must use https (http only for localhost, 127.0.0.1 and [::1])"
        return None
    if application_type == "native" and "." in scheme:
        # Private-use scheme of a native app, reverse domain name style (RFC 8252 §7.1).
        return None
    return "must use https"


def refuse_unsupported_features(d: _Draft) -> None:
    for name in UNSUPPORTED:
        if name in d.body:
            raise InvalidClientMetadata(f"{name} is not supported by this provider")
    for name in UNSUPPORTED_FLAGS:
        if d.body.get(name) not in (None, False):
            raise InvalidClientMetadata(f"{name} is not supported by this provider")


def application_type(d: _Draft) -> None:
    _one_of(d, "application_type", APPLICATION_TYPES, "web")


def grant_and_response_types(d: _Draft) -> None:
    """Supported values, consistent with each other (RFC 7591 §2.1)."""
    grants = _strings(d, "grant_types")
    if grants is None:
        grants = ["authorization_code"]
    unknown = [g for g in grants if g not in GRANT_TYPES]
    if unknown or not grants:
        raise InvalidClientMetadata(f"grant_types must be a non-empty subset of "
                                    f"{', '.join(GRANT_TYPES)}")
    responses = _strings(d, "response_types")
    if responses is None:
        # The default "code" (RFC 7591 §2) only where the code grant can redeem it.
        responses = ["code"] if "authorization_code" in grants else []
    if any(r not in RESPONSE_TYPES for r in responses):
        raise InvalidClientMetadata("response_types may only contain code")
    if ("code" in responses) != ("authorization_code" in grants):
        raise InvalidClientMetadata(
            "response_types code and grant_types authorization_code go together"
        )
    if "refresh_token" in grants and "authorization_code" not in grants:
        # Refresh tokens are only ever issued with a user's code grant.
        raise InvalidClientMetadata("grant_types refresh_token needs authorization_code")
    d.meta["grant_types"] = grants
    d.meta["response_types"] = responses


def token_endpoint_auth_method(d: _Draft) -> None:
    _one_of(d, "token_endpoint_auth_method", AUTH_METHODS, "client_secret_basic")
    if d.meta["token_endpoint_auth_method"] == "none" and (
        "client_credentials" in d.meta["grant_types"]
    ):
        # The client is the only party to that grant; it must authenticate (RFC 6749 §4.4).
        raise InvalidClientMetadata("client_credentials needs an authenticated client")


def redirect_uris(d: _Draft) -> None:
    uris = _checked_uris(d, "redirect_uris", InvalidRedirectURI)
    if not uris and "authorization_code" in d.meta["grant_types"]:
        raise InvalidRedirectURI("redirect_uris is required for the authorization code grant")


def post_logout_redirect_uris(d: _Draft) -> None:
    _checked_uris(d, "post_logout_redirect_uris", InvalidClientMetadata)


def _checked_uris(d: _Draft, name: str, error: type[RegistrationError]) -> list[str]:
    """Both URI lists follow the redirect URI rules; each reports with its own error code."""
    uris = _strings(d, name, error=error) or []
    for uri in uris:
        problem = redirect_uri_problem(uri, d.policy, d.meta["application_type"])
        if problem:
            raise error(f"{name[:-1]} {uri!r} {problem}")
    if uris:
        d.meta[name] = uris
    return uris


def _check_public_key_set(jwks: Any) -> None:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not (
        0 < len(jwks["keys"]) <= _MAX_ITEMS
    ):
        raise InvalidClientMetadata("jwks must be a JWK Set with a keys array")
    for key in jwks["keys"]:
        if not isinstance(key, dict):
            raise InvalidClientMetadata("jwks keys must be JSON objects")
        # A private or symmetric key here would be a secret published to us in clear.
        if key.get("kty") == "oct" or any(m in key for m in _PRIVATE_JWK_MEMBERS):
            raise InvalidClientMetadata("jwks must hold public asymmetric keys only")
    try:
        KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidClientMetadata(f"jwks is not a valid JWK Set: {exc}") from None


def client_keys(d: _Draft) -> None:
    """jwks or jwks_uri, never both (RFC 7591 §2); private_key_jwt needs one."""
    jwks_uri = _string(d, "jwks_uri")
    jwks = d.body.get("jwks")
    if jwks_uri is not None and jwks is not None:
        raise InvalidClientMetadata("jwks and jwks_uri must not both be present")
    if jwks_uri is not None:
        problem = _web_uri_problem(jwks_uri, d.policy)
        if problem:
            raise InvalidClientMetadata(f"jwks_uri {problem}")
        d.meta["jwks_uri"] = jwks_uri
    if jwks is not None:
        _check_public_key_set(jwks)
        d.meta["jwks"] = jwks
    if d.meta["token_endpoint_auth_method"] == "private_key_jwt" and not (jwks or jwks_uri):
        raise InvalidClientMetadata("private_key_jwt needs jwks or jwks_uri")


def token_endpoint_auth_signing_alg(d: _Draft) -> None:
    alg = _string(d, "token_endpoint_auth_signing_alg")
    if alg is None:
        return
    # Asymmetric only: client_secret_jwt is not offered, and "none" is never acceptable.
    if alg not in ALGS:
        raise InvalidClientMetadata(f"token_endpoint_auth_signing_alg must be one of "
                                    f"{', '.join(ALGS)}")
    d.meta["token_endpoint_auth_signing_alg"] = alg


def id_token_signed_response_alg(d: _Draft) -> None:
    # "none" would be an unsigned ID token: refused, as the code flow allows it only
    # when the client asked for it, and nobody should (OIDC Core §3.1.3.7).
    _one_of(d, "id_token_signed_response_alg", d.policy.signing_algs, "RS256")


def scope(d: _Draft) -> None:
    value = _string(d, "scope")
    wanted = value.split() if value is not None else list(SCOPES)
    if not wanted or any(s not in SCOPES for s in wanted):
        raise InvalidClientMetadata(f"scope must be a subset of {' '.join(SCOPES)}")
    d.meta["scope"] = " ".join(dict.fromkeys(wanted))


def subject_type(d: _Draft) -> None:
    _one_of(d, "subject_type", SUBJECT_TYPES, "public")


def human_readable(d: _Draft) -> None:
    """client_name and the pages shown to users, each optionally per language (§2.1)."""
    for name in d.body:
        base, hash_sign, tag = name.partition("#")
        if base not in LOCALIZABLE:
            continue
        if hash_sign and not _LANGUAGE_TAG.match(tag):
            raise InvalidClientMetadata(f"{name}: {tag!r} is not a BCP 47 language tag")
        value = _string(d, name)
        if value is None:
            continue
        if base != "client_name":
            problem = _web_uri_problem(value, d.policy)
            if problem:
                raise InvalidClientMetadata(f"{name} {problem}")
        d.meta[name] = value


def contacts(d: _Draft) -> None:
    value = _strings(d, "contacts")
    if value:
        d.meta["contacts"] = value


def authentication_age(d: _Draft) -> None:
    """default_max_age and require_auth_time (OIDC Registration §2)."""
    max_age = d.body.get("default_max_age")
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise InvalidClientMetadata("default_max_age must be a non-negative integer")
        d.meta["default_max_age"] = max_age
    require = d.body.get("require_auth_time")
    if require is not None:
        if not isinstance(require, bool):
            raise InvalidClientMetadata("require_auth_time must be a boolean")
        d.meta["require_auth_time"] = require


def software(d: _Draft) -> None:
    # A software_statement is ignored, as RFC 7591 §3.1.1 allows: none is trusted here.
    for name in ("software_id", "software_version"):
        value = _string(d, name)
        if value is not None:
            d.meta[name] = value


def _refuse_internal_address(host: str) -> None:
    """Keep a client from making us fetch from our own network (SSRF)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        raise InvalidClientMetadata(f"cannot resolve {host}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise InvalidClientMetadata(f"{host} is not a public address")


def fetch_json(uri: str, policy: Policy) -> Any:
    """GET a small JSON document a client points us to; InvalidClientMetadata on failure."""
    host = urlsplit(uri).hostname or ""
    if policy.production:
        _refuse_internal_address(host)
    try:
        # No redirects: each hop would need the same https and address checks.
        with requests.get(uri, timeout=policy.http_timeout, allow_redirects=False, stream=True,
                          headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise InvalidClientMetadata(f"{uri} answered HTTP {response.status_code}")
            body = response.raw.read(_MAX_DOCUMENT + 1, decode_content=True)
    except requests.RequestException as exc:
        raise InvalidClientMetadata(f"cannot fetch {uri}: {type(exc).__name__}") from None
    if len(body) > _MAX_DOCUMENT:
        raise InvalidClientMetadata(f"{uri} is larger than {_MAX_DOCUMENT} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise InvalidClientMetadata(f"{uri} is not JSON") from None


def sector_identifier(d: _Draft) -> None:
    """The pairwise sector: sector_identifier_uri's host, after checking that its JSON
    array lists every redirect_uri (OIDC Registration §5), else the one redirect host
    (OIDC Core §8.1). Fetched last, so a request with cheaper mistakes costs no request."""
    uri = _string(d, "sector_identifier_uri")
    if uri is not None:
        problem = _web_uri_problem(uri, d.policy)
        if problem:
            raise InvalidClientMetadata(f"sector_identifier_uri {problem}")
        listed = fetch_json(uri, d.policy)
        if not isinstance(listed, list):
            raise InvalidClientMetadata("sector_identifier_uri must hold a JSON array")
        missing = [u for u in d.meta.get("redirect_uris", []) if u not in listed]
        if missing:
            raise InvalidClientMetadata(
                f"sector_identifier_uri does not list redirect_uri {missing[0]!r}"
            )
        d.meta["sector_identifier_uri"] = uri
    if d.meta["subject_type"] != "pairwise":
        return
    if uri is not None:
        d.meta["sector_identifier"] = (urlsplit(uri).hostname or "").lower()
        return
    hosts = {(urlsplit(u).hostname or "").lower() for u in d.meta.get("redirect_uris", [])}
    if len(hosts) != 1 or "" in hosts:
        raise InvalidClientMetadata(
            "pairwise subjects need redirect_uris on one host, or a sector_identifier_uri"
        )
    d.meta["sector_identifier"] = hosts.pop()


Rule = Callable[[_Draft], None]

#: Applied in order; later rules read what earlier ones put into ``meta``.
RULES: tuple[Rule, ...] = (
    refuse_unsupported_features,
    application_type,
    grant_and_response_types,
    token_endpoint_auth_method,
    redirect_uris,
    post_logout_redirect_uris,
    client_keys,
    token_endpoint_auth_signing_alg,
    id_token_signed_response_alg,
    scope,
    subject_type,
    human_readable,
    contacts,
    authentication_age,
    software,
    sector_identifier,
)


def validate_metadata(body: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    """Registrable metadata with defaults filled in, plus ``sector_identifier`` for pairwise
    clients; raises ``RegistrationError``. Unknown names are dropped (RFC 7591 §2)."""
    # A JSON null is taken as "not sent", as RFC 7592 §2.2 does for updates.
    draft = _Draft({k: v for k, v in body.items() if v is not None}, policy)
    for rule in RULES:
        rule(draft)
    return draft.meta


def is_registrable(name: str) -> bool:
    return name in REGISTRABLE or name.partition("#")[0] in LOCALIZABLE


def public_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What a client registered, without the values only the server keeps or sets."""
    return {k: v for k, v in meta.items() if is_registrable(k) and k not in SERVER_KEYS}


# -- creating clients ------------------------------------------------------------------


def new_client_id() -> str:
    return "cl_" + secrets.token_urlsafe(16)


def _new_client(meta: dict[str, Any], *, client_id: str | None,
                first_party: bool) -> tuple[Client, str | None]:
    """Add a client to the session without committing."""
    meta = dict(meta)
    meta.setdefault("token_endpoint_auth_method", "client_secret_basic")
    meta.setdefault("grant_types", ["authorization_code"])
    meta.setdefault("response_types", ["code"])
    secret = None
    if meta["token_endpoint_auth_method"] in SECRET_AUTH_METHODS:
        secret = random_token(32)
    client = Client(
        client_id=client_id or new_client_id(),
        secret_hash=sha256_hex(secret) if secret else None,
        meta=meta,
        first_party=first_party,
        issued_at=now(),
        secret_expires_at=0,
    )
    db.session.add(client)
    return client, secret


def create_client(meta: dict[str, Any], *, client_id: str | None = None,
                  first_party: bool = False) -> tuple[Client, str | None]:
    """Store a client; returns it and its secret (shown once, only its SHA-256 is kept)."""
    client, secret = _new_client(meta, client_id=client_id, first_party=first_party)
    db.session.commit()
    return client, secret


def create_initial_access_token(*, note: str = "", ttl: int = 7 * 86400, uses: int = 1) -> str:
    """An initial access token for RFC 7591 registration; returned once, stored hashed."""
    token = random_token(32)
    t = now()
    db.session.add(InitialAccessToken(token_hash=sha256_hex(token), note=note, created_at=t,
                                      expires_at=t + ttl, uses_left=uses))
    db.session.commit()
    return token


# -- dynamic registration (RFC 7591 §3, RFC 7592) ----------------------------------------


class InitialAccessTokenSpent(Exception):
    """The initial access token ran out (or expired) while the request was validated."""


def initial_access_token_usable(token: str) -> bool:
    """Read-only check before validation; ``spend_initial_access_token`` decides."""
    row = db.session.get(InitialAccessToken, sha256_hex(token))
    return row is not None and row.uses_left > 0 and row.expires_at > now()


def spend_initial_access_token(token: str) -> bool:
    """Take one use, in the caller's transaction. A single conditional UPDATE: concurrent
    registrations serialise on the row, and each re-checks ``uses_left > 0``, so a token
    is never spent more often than it allows."""
    won = db.session.execute(
        update(InitialAccessToken)
        .where(
            InitialAccessToken.token_hash == sha256_hex(token),
            InitialAccessToken.uses_left > 0,
            InitialAccessToken.expires_at > now(),
        )
        .values(uses_left=InitialAccessToken.uses_left - 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    return won == 1


def _audit(action: str, client_id: str, *, actor: str, ip: str,
           details: dict[str, Any] | None = None) -> None:
    db.session.add(AuditEvent(at=now(), actor=actor, action=action,
                              target=client_id, ip=ip, details=details or {}))


def register_client(meta: dict[str, Any], *, initial_access_token: str | None,
                    ip: str = "") -> tuple[Client, str | None, str]:
    """Store a validated registration; returns the client, its secret and its registration
    access token (both shown once). Raises ``InitialAccessTokenSpent``."""
    # Dynamically registered clients are never first party: consent is always asked.
    client, secret = _new_client(meta, client_id=None, first_party=False)
    registration_token = random_token(32)
    client.registration_token_hash = sha256_hex(registration_token)
    actor = "anonymous"
    if initial_access_token is not None:
        actor = "iat:" + sha256_hex(initial_access_token)[:16]
        # Spent in the same transaction as the insert: a failed insert costs no use, and
        # the row lock is held only until the commit just below.
        if not spend_initial_access_token(initial_access_token):
            db.session.rollback()
            raise InitialAccessTokenSpent()
    _audit("client.register", client.client_id, actor=actor, ip=ip,
           details={"client_name": meta.get("client_name", "")})
    db.session.commit()
    return client, secret, registration_token


def registered_client(client_id: str, registration_token: str) -> Client | None:
    """The client this registration access token manages, or None (RFC 7592 §2)."""
    client = db.session.get(Client, client_id) if len(client_id) <= 120 else None
    stored = client.registration_token_hash if client is not None else None
    # Compared even for an unknown client, so an unknown id and a wrong token look alike.
    ok = hmac.compare_digest(sha256_hex(registration_token), stored or "0" * 64)
    return client if ok and stored else None


def update_client(client: Client, meta: dict[str, Any], *, ip: str = "") -> str | None:
    """Replace the registered metadata (RFC 7592 §2.2); returns a new secret if the client
    moved to a secret-based method without one."""
    # Settings an operator made (not registrable) survive a client's update.
    kept = {k: v for k, v in client.meta.items()
            if not is_registrable(k) and k not in SERVER_KEYS}
    client.meta = {**kept, **meta}
    secret = None
    if client.token_endpoint_auth_method in SECRET_AUTH_METHODS:
        if client.secret_hash is None:
            secret = random_token(32)
            client.secret_hash = sha256_hex(secret)
    else:
        client.secret_hash = None
    _audit("client.update", client.client_id, actor=f"client:{client.client_id}", ip=ip)
    db.session.commit()
    _forget(client.client_id)
    return secret


def delete_client(client: Client, *, actor: str, ip: str = "",
                  details: dict[str, Any] | None = None) -> tuple[int, int]:
    """Deregister (RFC 7592 §2.3, ``idp client delete``): the client, its consents, and its
    refresh tokens with the access tokens issued beside them, in one transaction with the
    audit record. Returns (refresh-token families revoked, consents removed)."""
    rows = db.session.execute(
        select(RefreshToken.family_id, RefreshToken.access_token_hash, RefreshToken.revoked_at)
        .where(RefreshToken.client_id == client.client_id)
    ).all()
    families = {r.family_id for r in rows if r.revoked_at is None}
    # The store first, before this transaction writes: on SQLite the SQL store writes on its
    # own connection and would wait for our write lock until it timed out.
    tokens.revoke_access_tokens(*(r.access_token_hash for r in rows))
    # Revoked rows are kept, not deleted: a replayed token must still be recognised.
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id.in_(families), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now())
        .execution_options(synchronize_session=False)
    )
    consents = db.session.execute(
        delete(Consent).where(Consent.client_id == client.client_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    _audit("client.delete", client.client_id, actor=actor, ip=ip, details={
        **(details or {}), "revoked_families": len(families), "deleted_consents": consents})
    db.session.delete(client)
    db.session.commit()
    _forget(client.client_id)
    return len(families), consents


def _forget(client_id: str) -> None:
    """Drop this worker's cached copy at once (others see the change within its TTL)."""
    from flask import current_app

    cache = current_app.extensions.get("idp.client_cache")
    if cache is not None:
        cache.invalidate(client_id)

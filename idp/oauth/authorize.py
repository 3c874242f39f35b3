"""Authorization request validation (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2).

Two kinds of failure: before the client and its redirect URI are known to be good the
user sees an error page and is never redirected (RFC 6749 §4.1.2.1); after that, errors go
back to the client with ``state`` and ``iss`` (RFC 9207).

The checks Authlib does not do are an ordered tuple of small named functions, each raising
``AuthorizeError`` with the spec's code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from ..db import db
from ..models import Client
from .claims import SCOPES, parse_claims_request
from .idtoken import read_id_token_hint

PROMPTS = {"none", "login", "consent", "select_account"}
RESPONSE_MODES = ("query", "form_post")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_SINGLE = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "prompt",
    "max_age", "id_token_hint", "login_hint", "ui_locales", "acr_values", "claims",
    "code_challenge", "code_challenge_method", "response_mode", "display",
)


class FatalAuthorizeError(Exception):
    """Shown to the user; the client is unknown or the redirect URI is not trusted."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class AuthorizeError(Exception):
    """Returned to the client's redirect URI."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(description or error)
        self.error = error
        self.description = description


@dataclass
class AuthRequest:
    """A validated authorization request, kept in the login transaction."""

    client_id: str
    redirect_uri: str
    state: str | None = None
    response_mode: str = "query"
    scope: list[str] = field(default_factory=list)
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    id_token_hint_sub: str | None = None
    login_hint: str | None = None
    ui_locales: str | None = None
    acr_values: list[str] = field(default_factory=list)
    claims: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client_and_redirect(params: MultiDict) -> tuple[Client, str]:
    for name in ("client_id", "redirect_uri"):
        if len(params.getlist(name)) > 1:
            raise FatalAuthorizeError("invalid_request", f"{name} is repeated")
    client_id = params.get("client_id")
    if not client_id:
        raise FatalAuthorizeError("invalid_request", "client_id is missing")
    client = db.session.get(Client, client_id) if len(client_id) <= 120 else None
    if client is None:
        raise FatalAuthorizeError("invalid_client", "unknown client_id")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        # OIDC Core §3.1.2.1: redirect_uri is REQUIRED.
        raise FatalAuthorizeError("invalid_request", "redirect_uri is missing")
    if not client.check_redirect_uri(redirect_uri):
        raise FatalAuthorizeError(
            "invalid_request", "redirect_uri is not registered for this client"
        )
    return client, redirect_uri


# -- the ordered checks ----------------------------------------------------------------
Check = Callable[[MultiDict, Client, AuthRequest], None]


def check_single_values(params: MultiDict, client: Client, req: AuthRequest) -> None:
    for name in _SINGLE:
        if len(params.getlist(name)) > 1:
            raise AuthorizeError("invalid_request", f"{name} is repeated")


def check_response_mode(params: MultiDict, client: Client, req: AuthRequest) -> None:
    mode = params.get("response_mode") or "query"
    if mode not in RESPONSE_MODES:
        raise AuthorizeError("invalid_request", "unsupported response_mode")
    req.response_mode = mode


def check_request_objects(params: MultiDict, client: Client, req: AuthRequest) -> None:
    if "request" in params:
        raise AuthorizeError("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise AuthorizeError("request_uri_not_supported", "request_uri is not supported")
    if "registration" in params:
        raise AuthorizeError("registration_not_supported", "registration is not supported")


def check_response_type(params: MultiDict, client: Client, req: AuthRequest) -> None:
    response_type = params.get("response_type")
    if not response_type:
        raise AuthorizeError("invalid_request", "response_type is missing")
    if response_type != "code":
        raise AuthorizeError("unsupported_response_type", "only response_type=code is supported")
    if not client.check_response_type("code"):
        raise AuthorizeError("unauthorized_client", "client may not use response_type=code")
    if not client.check_grant_type("authorization_code"):
        raise AuthorizeError("unauthorized_client", "client may not use the code grant")


def check_scope(params: MultiDict, client: Client, req: AuthRequest) -> None:
    requested = (params.get("scope") or "").split()
    allowed = set(client.scope.split()) & set(SCOPES)
    # Unknown scope values are ignored (OIDC Core §3.1.2.1); none left is an error.
    req.scope = [s for s in dict.fromkeys(requested) if s in allowed]
    if not req.scope:
        raise AuthorizeError("invalid_scope", "no supported scope requested")


def check_pkce(params: MultiDict, client: Client, req: AuthRequest) -> None:
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if not challenge:
        if method:
            raise AuthorizeError("invalid_request", "code_challenge is missing")
        if client.is_public:
            raise AuthorizeError("invalid_request", "PKCE (S256) is required for public clients")
        return
    if method != "S256":
        # Without a method RFC 7636 means "plain", which we refuse.
        raise AuthorizeError("invalid_request", "code_challenge_method must be S256")
    if not _CHALLENGE.match(challenge):
        raise AuthorizeError("invalid_request", "malformed code_challenge")
    req.code_challenge, req.code_challenge_method = challenge, method


def check_nonce(params: MultiDict, client: Client, req: AuthRequest) -> None:
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > 512:
        raise AuthorizeError("invalid_request", "nonce too long")
    req.nonce = nonce or None


def check_prompt(params: MultiDict, client: Client, req: AuthRequest) -> None:
    prompt = (params.get("prompt") or "").split()
    unknown = set(prompt) - PROMPTS
    if unknown:
        raise AuthorizeError("invalid_request", f"unsupported prompt value {sorted(unknown)[0]}")
    if "none" in prompt and len(prompt) > 1:
        raise AuthorizeError("invalid_request", "prompt=none cannot be combined")
    req.prompt = prompt


def check_max_age(params: MultiDict, client: Client, req: AuthRequest) -> None:
    raw = params.get("max_age")
    if raw is None or raw == "":
        # The client's registered default applies when the request names none
        # (OIDC Registration §2, default_max_age).
        default = client.meta.get("default_max_age")
        if isinstance(default, int) and not isinstance(default, bool) and default >= 0:
            req.max_age = default
        return
    if not raw.isdigit():
        raise AuthorizeError("invalid_request", "max_age must be a non-negative integer")
    req.max_age = int(raw)


def check_id_token_hint(params: MultiDict, client: Client, req: AuthRequest) -> None:
    hint = params.get("id_token_hint")
    if not hint:
        return
    try:
        claims = read_id_token_hint(hint)
    except ValueError as exc:
        raise AuthorizeError("invalid_request", str(exc)) from None
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if client.client_id not in aud:
        raise AuthorizeError("invalid_request", "id_token_hint was issued to another client")
    req.id_token_hint_sub = claims["sub"]


def check_claims(params: MultiDict, client: Client, req: AuthRequest) -> None:
    try:
        req.claims = parse_claims_request(params.get("claims"))
    except ValueError as exc:
        raise AuthorizeError("invalid_request", f"malformed claims parameter: {exc}") from None


def check_hints(params: MultiDict, client: Client, req: AuthRequest) -> None:
    req.login_hint = (params.get("login_hint") or "")[:320] or None
    req.ui_locales = (params.get("ui_locales") or "")[:100] or None
    req.acr_values = (params.get("acr_values") or "").split()


CHECKS: tuple[Check, ...] = (
    check_single_values,
    check_response_mode,
    check_request_objects,
    check_response_type,
    check_scope,
    check_pkce,
    check_nonce,
    check_prompt,
    check_max_age,
    check_id_token_hint,
    check_claims,
    check_hints,
)


def parse(params: Mapping[str, Any] | MultiDict) -> AuthRequest:
    """Validate; raise ``FatalAuthorizeError`` or ``AuthorizeError`` (with ``.request``)."""
    params = params if isinstance(params, MultiDict) else MultiDict(params)
    client, redirect_uri = _client_and_redirect(params)
    req = AuthRequest(client_id=client.client_id, redirect_uri=redirect_uri,
                      state=params.get("state"))
    try:
        for check in CHECKS:
            check(params, client, req)
    except AuthorizeError as exc:
        exc.request = req  # type: ignore[attr-defined]
        raise
    return req

"""Which user claims a scope or a ``claims`` request releases (OIDC Core §5.4, §5.5)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from ..models import Client, User

SCOPES = ("openid", "profile", "email", "phone", "offline_access")

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": (
        "name", "family_name", "given_name", "middle_name", "nickname",
        "preferred_username", "profile", "picture", "website", "gender", "birthdate",
        "zoneinfo", "locale", "updated_at",
    ),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
}
#: Our own claims, in every ID token and userinfo response (SPEC §9).
TENANT_CLAIMS = ("contract_id", "role", "login_method")

CLAIMS_SUPPORTED = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash",
    "name", "preferred_username", "locale", "updated_at", "email", "email_verified",
    "phone_number", "phone_number_verified", *TENANT_CLAIMS,
)


def user_claims(user: User) -> dict[str, Any]:
    """Every claim value we hold for ``user``; absent values are left out, never null."""
    values: dict[str, Any] = {
        "preferred_username": user.email,
        "updated_at": user.updated_at,
        "email": user.email,
        "email_verified": bool(user.email_verified),
        "contract_id": user.contract_id,
        "role": user.role,
        "login_method": user.login_method,
    }
    if user.name:
        values["name"] = user.name
    if user.phone_number:
        values["phone_number"] = user.phone_number
        values["phone_number_verified"] = True
    return values


def subject(user_id: str, client: Client, pairwise_secret: bytes) -> str:
    """The ``sub`` for ``client``: the user id, or a pairwise value per sector (OIDC Core §8.1)."""
    if client.subject_type != "pairwise":
        return user_id
    sector = client.meta.get("sector_identifier") or ""
    digest = hashlib.sha256(sector.encode() + b"\0" + user_id.encode() + pairwise_secret).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def parse_claims_request(raw: str | None) -> dict[str, Any] | None:
    """Validate the ``claims`` request parameter; raise ValueError on a malformed one."""
    if not raw:
        return None
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("claims must be a JSON object")
    for member in ("userinfo", "id_token"):
        part = value.get(member)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise ValueError(f"claims.{member} must be a JSON object")
        for name, spec in part.items():
            if spec is not None and not isinstance(spec, dict):
                raise ValueError(f"claims.{member}.{name} must be null or an object")
    return {k: value[k] for k in ("userinfo", "id_token") if isinstance(value.get(k), dict)}


def released_claims(
    user: User, scopes: list[str] | set[str], requested: dict[str, Any] | None
) -> dict[str, Any]:
    """Claims for a scope set plus individually requested ones (never more than we hold)."""
    values = user_claims(user)
    names: set[str] = set(TENANT_CLAIMS)
    for scope in scopes:
        names.update(SCOPE_CLAIMS.get(scope, ()))
    names.update((requested or {}).keys())
    return {n: values[n] for n in names if n in values}

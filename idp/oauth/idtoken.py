"""ID tokens (OIDC Core §2, §3.1.3.6) signed with the client's registered algorithm."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError

from ..clock import now
from ..keys import KeyRing
from ..models import Client, User
from .claims import released_claims, subject

_HALF_HASH = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "EdDSA": hashlib.sha512}


def keyring() -> KeyRing:
    return current_app.extensions["idp.keys"]


def pairwise_secret() -> bytes:
    return current_app.extensions["idp.pairwise_secret"]


def half_hash(value: str, alg: str) -> str:
    """at_hash / c_hash: left half of the hash the signing algorithm uses (EdDSA: SHA-512)."""
    digest = _HALF_HASH[alg](value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def sign(claims: dict[str, Any], alg: str) -> str:
    key = keyring().signing_key(alg)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key.key,
                      algorithms=[alg])


def build_id_token(
    *, client: Client, user: User, grant: dict[str, Any], access_token: str | None,
    include_nonce: bool = True,
) -> str:
    """``grant`` is the authentication context: auth_time, acr, amr, sid, nonce, claims."""
    cfg = current_app.extensions["idp.settings"]
    alg = client.id_token_signed_response_alg
    issued = now()
    claims: dict[str, Any] = {
        "iss": cfg.issuer,
        "sub": subject(user.id, client, pairwise_secret()),
        "aud": client.client_id,
        "exp": issued + cfg.id_token_ttl,
        "iat": issued,
        "auth_time": grant["auth_time"],
    }
    if include_nonce and grant.get("nonce"):
        claims["nonce"] = grant["nonce"]
    for name in ("acr", "amr", "sid"):
        if grant.get(name):
            claims[name] = grant[name]
    if access_token:
        claims["at_hash"] = half_hash(access_token, alg)
    requested = (grant.get("claims") or {}).get("id_token")
    # Tenant claims always; profile claims only when asked for individually, since the
    # code flow releases scope claims from the userinfo endpoint (OIDC Core §5.4).
    claims.update(released_claims(user, [], requested))
    return sign(claims, alg)


def read_id_token_hint(token: str) -> dict[str, Any]:
    """Verify a hint we issued (expired is fine, OIDC Core §3.1.2.1); raise ValueError."""
    cfg = current_app.extensions["idp.settings"]
    ring = keyring()
    try:
        decoded = jwt.decode(token, ring.public_keyset(), algorithms=ring.algorithms)
    except (JoseError, ValueError) as exc:
        raise ValueError("id_token_hint is not an ID token issued here") from exc
    claims = decoded.claims
    if claims.get("iss") != cfg.issuer or not claims.get("sub") or not claims.get("aud"):
        raise ValueError("id_token_hint was not issued by this provider")
    return claims

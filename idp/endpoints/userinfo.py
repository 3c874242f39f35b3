"""UserInfo endpoint (OIDC Core §5.3) with bearer tokens per RFC 6750 §2.1 and §2.2."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request

from ..oauth.claims import released_claims, subject
from ..oauth.client_cache import client_cache
from ..oauth.grants import active_user
from ..oauth.idtoken import pairwise_secret
from ..oauth.tokens import find_access_token
from ..web import csrf

bp = Blueprint("userinfo", __name__)


def _challenge(status: int, error: str | None = None, description: str = "") -> Response:
    realm = current_app.extensions["idp.settings"].issuer
    value = f'Bearer realm="{realm}"'
    body: dict[str, str] = {}
    if error:
        value += f', error="{error}"'
        body["error"] = error
        if description:
            value += f', error_description="{description}"'
            body["error_description"] = description
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["WWW-Authenticate"] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer() -> tuple[str | None, Response | None]:
    """The token from the header or the form body, never both (RFC 6750 §2)."""
    header = request.headers.get("Authorization", "")
    from_header = None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        if not value.strip():
            return None, _challenge(400, "invalid_request", "malformed Authorization header")
        from_header = value.strip()
    # Another scheme (Basic, ...) is no bearer credential at all: the plain challenge
    # below, without an error code (RFC 6750 §3).
    from_body = None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        from_body = request.form.get("access_token")
    if from_header and from_body:
        return None, _challenge(400, "invalid_request", "token sent in more than one way")
    if "access_token" in request.args:
        # RFC 6750 §2.3 URI query tokens leak into logs; we do not accept them.
        return None, _challenge(400, "invalid_request", "tokens in the URL are not accepted")
    token = from_header or from_body
    if not token:
        return None, _challenge(401)
    return token, None


@bp.route("/userinfo", methods=["GET", "POST"])
@csrf.exempt
def userinfo() -> Response:
    token, problem = _bearer()
    if problem is not None:
        return problem
    at = find_access_token(token)
    if at is None or at.user_id is None:
        return _challenge(401, "invalid_token", "the access token is invalid or expired")
    scopes = at.scope.split()
    if "openid" not in scopes:
        return _challenge(403, "insufficient_scope", "the openid scope is required")
    # Disabled, cut off (cancelled contract, ended trial) or revoked by an epoch bump
    # (password reset): the token is no longer valid although it has not expired.
    user = active_user(at.user_id, at.epoch)
    client = client_cache().get(at.client_id)
    if user is None or client is None:
        return _challenge(401, "invalid_token", "the access token is no longer valid")
    claims = {"sub": subject(user.id, client, pairwise_secret())}
    claims.update(released_claims(user, scopes, at.userinfo_claims))
    response = Response(json.dumps(claims, ensure_ascii=False, separators=(",", ":")),
                        mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response

"""The login flow: one state object per sign-in and one ``dispatch`` that picks the next hop.

Primary sign-in, then (later issues) the step-up chain, then consent, then the
authorization response. Under ``prompt=none`` every hop that needs the user becomes the
spec's error instead. Nothing else decides the order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from flask import Response, current_app, g, redirect, request, url_for

from . import session as sessions
from .clock import now
from .db import db
from .models import Client, Consent, User
from .oauth.authorize import AuthRequest
from .oauth.claims import SCOPE_CLAIMS, subject
from .oauth.grants import issue_code
from .oauth.idtoken import pairwise_secret
from .oauth.response import error_to_client, to_client
from .security import random_token, sha256_hex

_PREFIX = "flow:"
ACR_PASSWORD = "urn:idp:loa:1"
ACR_MFA = "urn:idp:loa:2"
ACR_LEVELS = (ACR_PASSWORD, ACR_MFA)
UI_LANGUAGES = ("ja", "en")


@dataclass
class LoginFlow:
    id: str
    browser: str
    request: dict[str, Any]
    created_at: int
    #: The user signed in during this flow (satisfies prompt=login, max_age).
    login_done: bool = False
    consent_done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> AuthRequest:
        return AuthRequest(**self.request)


def _store():
    return current_app.extensions["idp.store"]


def _ttl() -> int:
    return current_app.extensions["idp.settings"].login_ttl


def begin(req: AuthRequest, browser: str) -> LoginFlow:
    flow = LoginFlow(id=random_token(24), browser=sha256_hex(browser), request=req.to_dict(),
                     created_at=now())
    save(flow)
    return flow


def save(flow: LoginFlow) -> None:
    _store().put(_PREFIX + flow.id, asdict(flow), _ttl())


def load(flow_id: str | None, browser: str) -> LoginFlow | None:
    """The flow, only for the browser that began it (a leaked flow id is useless elsewhere)."""
    if not flow_id or len(flow_id) > 64:
        return None
    record = _store().get(_PREFIX + flow_id)
    if record is None or record["browser"] != sha256_hex(browser):
        return None
    return LoginFlow(**record)


def use_ui_locales(flow: LoginFlow | None) -> None:
    """Pages of a flow speak the RP's ``ui_locales`` (OIDC Core §3.1.2.1), which reached
    /authorize only: the login and consent pages have the flow id in their URL instead."""
    if flow is None or not flow.auth.ui_locales or request.values.get("ui_locales"):
        return
    for tag in flow.auth.ui_locales.split():
        lang = tag.split("-")[0].lower()
        if lang in UI_LANGUAGES:
            g.lang = lang  # what idp.web.language() answers for the rest of the request
            return


def is_first_party(client: Client) -> bool:
    return client.first_party or client.client_id in current_app.extensions[
        "idp.settings"
    ].first_party_clients


def _login_reason(flow: LoginFlow, session: sessions.Session | None, client: Client) -> str:
    req = flow.auth
    if session is None:
        return "no session"
    if flow.login_done:
        return ""
    if "login" in req.prompt or "select_account" in req.prompt:
        return "prompt"
    # ">=": auth_time has whole seconds, so one second may have passed while the difference
    # still reads 0; and max_age=0 must force a sign-in like prompt=login (OIDC Core §3.1.2.1).
    if req.max_age is not None and now() - session.auth_time >= req.max_age:
        return "max_age"
    if _hint_names_another_user(req, session, client):
        return "id_token_hint names another user"
    return ""


def _hint_names_another_user(req: AuthRequest, session: sessions.Session, client: Client) -> bool:
    return bool(req.id_token_hint_sub) and req.id_token_hint_sub != subject(
        session.user_id, client, pairwise_secret()
    )


def _unmet_acr(req: AuthRequest, session: sessions.Session) -> bool:
    """An essential ``acr`` request (OIDC Core §5.5.1.1) the session does not reach."""
    spec = ((req.claims or {}).get("id_token") or {}).get("acr") or {}
    if not spec.get("essential"):
        return False
    wanted = spec.get("values") or ([spec["value"]] if spec.get("value") else [])
    if not wanted:
        return False
    reached = ACR_LEVELS.index(session.acr) if session.acr in ACR_LEVELS else -1
    return not any(w in ACR_LEVELS and ACR_LEVELS.index(w) <= reached for w in wanted)


def consent_scopes(req: AuthRequest) -> list[str]:
    """What the user is asked to allow: the requested scopes, plus the scope of every claim
    the ``claims`` parameter asks for one by one (OIDC Core §5.5), so none escapes consent."""
    scopes = list(req.scope)
    for member in (req.claims or {}).values():
        for scope, names in SCOPE_CLAIMS.items():
            if scope not in scopes and any(name in names for name in member):
                scopes.append(scope)
    return scopes


def needs_consent(flow: LoginFlow, user: User, client: Client) -> bool:
    if flow.consent_done or is_first_party(client):
        return False
    if "consent" in flow.auth.prompt:
        return True
    consent = db.session.get(Consent, (user.id, client.client_id))
    return consent is None or not consent.covers(set(consent_scopes(flow.auth)))


def dispatch(flow: LoginFlow) -> Response:
    req = flow.auth
    client = db.session.get(Client, req.client_id)
    if client is None:  # deleted mid-flow
        return error_to_client(req, "invalid_request", "client no longer exists")
    # None also for a user disabled, cut off or signed out everywhere since (session.current).
    session = sessions.current()
    user = db.session.get(User, session.user_id) if session else None

    reason = _login_reason(flow, session, client)
    if reason:
        if "none" in req.prompt:
            return finish_with_error(flow, "login_required", f"sign-in needed: {reason}")
        return redirect(url_for("login.login", flow=flow.id))
    assert session is not None and user is not None
    if _hint_names_another_user(req, session, client):
        # Someone else signed in during this flow: the RP asked for the hinted user only
        # (OIDC Core §3.1.2.1, id_token_hint).
        return finish_with_error(flow, "login_required", "signed in as another user")

    if _unmet_acr(req, session):
        if "none" in req.prompt:
            return finish_with_error(flow, "interaction_required", "a stronger sign-in is needed")
        return finish_with_error(flow, "unmet_authentication_requirements",
                                 "the requested authentication level cannot be reached")

    if needs_consent(flow, user, client):
        if "none" in req.prompt:
            return finish_with_error(flow, "consent_required", "the user has not consented")
        return redirect(url_for("consent.consent", flow=flow.id))

    return finish_with_code(flow, session, user, client)


def finish_with_code(
    flow: LoginFlow, session: sessions.Session, user: User, client: Client
) -> Response:
    req = flow.auth
    code = random_token()
    issue_code(code, {
        "client_id": client.client_id,
        "user_id": user.id,
        "redirect_uri": req.redirect_uri,
        "scope": " ".join(req.scope),
        "code_challenge": req.code_challenge,
        "code_challenge_method": req.code_challenge_method,
        "grant": {
            "auth_time": session.auth_time,
            "acr": session.acr,
            "amr": session.amr,
            "sid": session.sid,
            "nonce": req.nonce,
            "claims": req.claims,
            # Tokens from this code carry the epoch: a later bump (reset, cut-off) voids them.
            "epoch": session.epoch,
        },
    })
    _store().delete(_PREFIX + flow.id)
    sessions.remember_client(client.client_id)
    return to_client(req, {"code": code})


def finish_with_error(flow: LoginFlow, error: str, description: str = "") -> Response:
    _store().delete(_PREFIX + flow.id)
    return error_to_client(flow.auth, error, description)

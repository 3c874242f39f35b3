"""The login flow: one state object per sign-in and one ``dispatch`` that picks the next hop.

Primary sign-in, then the step-up chain, then consent, then the authorization response.
Under ``prompt=none`` every hop that needs the user becomes the spec's error instead.
Nothing else decides the order. A sign-in outside OIDC (the login page with ``next``, the
settings menu) is a flow too, without an authorization request: it passes the same chain.

The browser session starts only when the chain is satisfied: until then the flow holds
the user who typed the right password, and nothing else trusts that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask import Response, current_app, g, redirect, request, url_for

from . import audit, contracts
from . import session as sessions
from .clock import now
from .db import db
from .line_route import INTERNET, LINE
from .line_route import detect as detect_route
from .mfa import remember
from .mfa.chain import MFA_AMR, Chain, Pending
from .mfa.policy import Situation, break_glass, step_up_possible
from .models import Client, Consent, Contract, MailMessage, User
from .notify import mail
from .oauth.authorize import AuthRequest
from .oauth.claims import SCOPE_CLAIMS, subject
from .oauth.grants import issue_code
from .oauth.idtoken import pairwise_secret
from .oauth.response import error_to_client, to_client
from .security import random_token, sha256_hex
from .web import client_address

_PREFIX = "flow:"
ACR_PASSWORD = "urn:idp:loa:1"
ACR_MFA = "urn:idp:loa:2"
#: Levels from weakest to strongest (discovery's ``acr_values_supported``).
ACR_LEVELS = (ACR_PASSWORD, ACR_MFA)
UI_LANGUAGES = ("ja", "en")

#: What a flow ends in: the authorization response, a browser session (``next``), a
#: settings-menu session, or (``link``) no session at all: an upstream account linked.
OIDC, SESSION, SETTINGS, LINK = "oidc", "session", "settings", "link"


@dataclass
class LoginFlow:
    id: str
    browser: str
    #: The authorization request; None for a sign-in outside OIDC.
    request: dict[str, Any] | None
    created_at: int
    purpose: str = OIDC
    #: Where a ``session`` flow goes once signed in (a local path).
    next_url: str | None = None
    #: The session was (re)started by this flow (satisfies prompt=login, max_age).
    login_done: bool = False
    consent_done: bool = False
    #: The user whose password this flow checked (or whose session it steps up).
    user_id: str | None = None
    #: The primary sign-in: ``{"method", "amr", "at"}``.
    primary: dict[str, Any] | None = None
    #: Steps of the chain finished in this flow: ``{"step", "amr", "at"}``.
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: Each step's own state (``StepContext.state``), by step name.
    step_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The step the user is on (they may switch among the alternatives).
    active_step: str | None = None
    #: ``internet`` or ``line`` (SPEC §7), and what the gateway asserted, as seen by the
    #: request that signed in (``idp.line_route``).
    route: str = INTERNET
    line_id: str | None = None
    carrier: str | None = None
    #: The client demanded the multi-factor level (acr_values, essential acr).
    wants_mfa: bool = False
    #: The client demanded a fresh sign-in (prompt=login, max_age passed).
    fresh: bool = False
    #: Raising an existing session's level: no password asked again.
    step_up: bool = False
    #: The user ticked "remember this browser".
    remember: bool = False
    #: A factor was enrolled in this flow (the completion page follows the recovery code).
    enrolled: bool = False
    #: A recovery code to show once, until the user ticks "I saved it".
    recovery_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> AuthRequest:
        assert self.request is not None
        return AuthRequest(**self.request)

    def done_steps(self) -> set[str]:
        return {s["step"] for s in self.steps}


def _store():
    return current_app.extensions["idp.store"]


def ttl() -> int:
    """Seconds a login flow (and what hangs off it) lives."""
    return current_app.extensions["idp.settings"].login_ttl


def chain() -> Chain:
    return current_app.extensions["idp.chain"]


def begin(req: AuthRequest | None, browser: str, *, purpose: str = OIDC,
          next_url: str | None = None) -> LoginFlow:
    flow = LoginFlow(id=random_token(24), browser=sha256_hex(browser),
                     request=req.to_dict() if req is not None else None, created_at=now(),
                     purpose=purpose, next_url=next_url)
    save(flow)
    return flow


def save(flow: LoginFlow) -> None:
    _store().put(_PREFIX + flow.id, asdict(flow), ttl())


def load(flow_id: str | None, browser: str) -> LoginFlow | None:
    """The flow, only for the browser that began it (a leaked flow id is useless elsewhere)."""
    if not flow_id or len(flow_id) > 64:
        return None
    record = _store().get(_PREFIX + flow_id)
    if record is None or record["browser"] != sha256_hex(browser):
        return None
    return LoginFlow(**record)


def discard(flow: LoginFlow) -> None:
    _store().delete(_PREFIX + flow.id)


def use_ui_locales(flow: LoginFlow | None) -> None:
    """Pages of a flow speak the RP's ``ui_locales`` (OIDC Core §3.1.2.1), which reached
    /authorize only: the login and consent pages have the flow id in their URL instead."""
    if flow is None or flow.request is None or not flow.auth.ui_locales \
            or request.values.get("ui_locales"):
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
    if session.route != LINE:
        user = db.session.get(User, session.user_id)
        contract = db.session.get(Contract, user.contract_id) if user is not None else None
        if contract is not None and contract.access_route == "line-only":
            # Signed in over the internet before the contract became line-only: the
            # sign-in must now come over a line (and is refused otherwise).
            return "the contract allows registered lines only"
    return ""


def _hint_names_another_user(req: AuthRequest, session: sessions.Session, client: Client) -> bool:
    return bool(req.id_token_hint_sub) and req.id_token_hint_sub != subject(
        session.user_id, client, pairwise_secret()
    )


# -- authentication levels (acr) ---------------------------------------------------------


#: What ``demanded_acr`` answers for an essential acr naming no level we know.
UNREACHABLE = "unreachable"


def _rank(acr: str | None) -> int:
    if acr == UNREACHABLE:
        return len(ACR_LEVELS)
    return ACR_LEVELS.index(acr) if acr in ACR_LEVELS else -1


def demanded_acr(req: AuthRequest) -> str | None:
    """The weakest level the client accepts, when it names one we know.

    ``acr_values`` lists acceptable levels (OIDC Core §3.1.2.1): the weakest known one is
    what must be reached; unknown values are ignored. An essential ``acr`` claim (§5.5.1.1)
    must be met by one of its values; naming none we know is a level nobody reaches.
    """
    levels: list[int] = []
    known = [_rank(v) for v in req.acr_values if v in ACR_LEVELS]
    if known:
        levels.append(min(known))
    spec = ((req.claims or {}).get("id_token") or {}).get("acr") or {}
    if spec.get("essential"):
        wanted = spec.get("values") or ([spec["value"]] if spec.get("value") else [])
        if wanted:
            ranks = [_rank(w) for w in wanted if w in ACR_LEVELS]
            levels.append(min(ranks) if ranks else len(ACR_LEVELS))
    if not levels:
        return None
    top = max(levels)
    return ACR_LEVELS[top] if top < len(ACR_LEVELS) else UNREACHABLE


def reachable(user: User, acr: str, route: str = INTERNET) -> bool:
    """Can this user's sign-in reach ``acr`` at all?"""
    if acr == ACR_PASSWORD:
        return True
    return acr == ACR_MFA and step_up_possible(user, route)


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


# -- the next hop ------------------------------------------------------------------------


def dispatch(flow: LoginFlow) -> Response:
    if flow.user_id is not None and not flow.login_done:
        return _continue_sign_in(flow)
    if flow.request is None:
        # A sign-in flow outside OIDC whose user is gone: start again.
        discard(flow)
        return redirect(url_for("login.login"))
    req = flow.auth
    client = db.session.get(Client, req.client_id)
    if client is None:  # deleted mid-flow
        return error_to_client(req, "invalid_request", "client no longer exists")
    # None also for a user disabled, cut off or signed out everywhere since (session.current).
    session = sessions.current()
    user = db.session.get(User, session.user_id) if session else None

    demanded = demanded_acr(req)
    reason = _login_reason(flow, session, client)
    if reason:
        if "none" in req.prompt:
            return finish_with_error(flow, "login_required", f"sign-in needed: {reason}")
        flow.fresh = reason in ("prompt", "max_age")
        flow.wants_mfa = demanded is not None and _rank(demanded) >= _rank(ACR_MFA)
        save(flow)
        return redirect(url_for("login.login", flow=flow.id))
    assert session is not None and user is not None
    if _hint_names_another_user(req, session, client):
        # Someone else signed in during this flow: the RP asked for the hinted user only
        # (OIDC Core §3.1.2.1, id_token_hint).
        return finish_with_error(flow, "login_required", "signed in as another user")

    if demanded is not None and _rank(session.acr) < _rank(demanded):
        route = detect_route()
        if demanded not in ACR_LEVELS or not reachable(user, demanded, route.kind):
            return finish_with_error(flow, "unmet_authentication_requirements",
                                     "the requested authentication level cannot be reached")
        if "none" in req.prompt:
            return finish_with_error(flow, "interaction_required",
                                     "a stronger sign-in is needed")
        # Step up the signed-in user through the chain; the password stands.
        flow.user_id, flow.step_up, flow.wants_mfa = user.id, True, True
        flow.route, flow.line_id, flow.carrier = route.kind, route.line_id, route.carrier
        flow.primary = {"method": "session", "amr": list(session.amr),
                        "at": session.auth_time, "epoch": session.epoch}
        save(flow)
        return redirect(url_for("mfa.page", flow=flow.id))

    if needs_consent(flow, user, client):
        if "none" in req.prompt:
            return finish_with_error(flow, "consent_required", "the user has not consented")
        return redirect(url_for("consent.consent", flow=flow.id))

    return finish_with_code(flow, session, user, client)


def primary_done(flow: LoginFlow, user: User, *, method: str, amr: list[str]) -> Response:
    """A sign-in page verified ``user`` (``amr`` of that method): on to the chain."""
    flow.user_id = user.id
    flow.primary = {"method": method, "amr": list(amr), "at": now(),
                    "epoch": user.session_epoch}
    # Nothing of an earlier sign-in in this flow carries over (someone else may have
    # typed a password in this browser since): steps, a recovery code not yet ticked off.
    flow.steps, flow.step_state, flow.active_step = [], {}, None
    flow.step_up, flow.remember, flow.enrolled, flow.recovery_code = False, False, False, None
    # The route of the request that signed in: the line it came over is what counts.
    route = detect_route()
    flow.route, flow.line_id, flow.carrier = route.kind, route.line_id, route.carrier
    save(flow)
    return dispatch(flow)


def situation(flow: LoginFlow, user: User, contract: Contract) -> Situation:
    cfg = current_app.extensions["idp.settings"]
    return Situation(user=user, contract=contract, route=flow.route,
                     remembered=remember.find(user) is not None,
                     last_login_at=user.last_login_at, now=now(),
                     inactive_days=cfg.mfa_inactive_days, demanded=flow.wants_mfa,
                     fresh=flow.fresh, purpose=flow.purpose)


def pending(flow: LoginFlow, user: User, contract: Contract) -> Pending | None:
    return chain().pending(situation(flow, user, contract), flow.done_steps())


def restart(flow: LoginFlow) -> Response:
    """Back to the password: the user of this flow may no longer sign in, or must again."""
    flow.user_id, flow.primary, flow.steps, flow.step_state = None, None, [], {}
    flow.active_step, flow.recovery_code, flow.step_up = None, None, False
    save(flow)
    if flow.purpose == SETTINGS:
        discard(flow)
        return redirect(url_for("settings_menu.login"))
    if flow.purpose == SESSION:
        discard(flow)
        return redirect(url_for("login.login", next=flow.next_url) if flow.next_url
                        else url_for("login.login"))
    return redirect(url_for("login.login", flow=flow.id))


def still_valid(flow: LoginFlow, user: User, contract: Contract) -> bool:
    """Does what this flow proved still count? Not once the user was disabled or cut off,
    signed out everywhere (a password reset bumps the epoch), or, for a step-up, once the
    session being raised has ended."""
    admit_ended = flow.purpose == SETTINGS and user.role == "owner"
    if user.status != "active" or (
            not contracts.usable(contract)
            and not (admit_ended and contracts.state(contract) == "trial_ended")):
        return False
    if (flow.primary or {}).get("epoch") != user.session_epoch:
        return False
    if flow.step_up:
        current = sessions.current()
        return current is not None and current.user_id == user.id
    return True


def _continue_sign_in(flow: LoginFlow) -> Response:
    user = db.session.get(User, flow.user_id)
    contract = db.session.get(Contract, user.contract_id) if user is not None else None
    if user is None or contract is None or not still_valid(flow, user, contract):
        return restart(flow)
    if flow.wants_mfa and not reachable(user, ACR_MFA, flow.route):
        return finish_with_error(flow, "unmet_authentication_requirements",
                                 "the requested authentication level cannot be reached")
    if pending(flow, user, contract) is not None:
        return redirect(url_for("mfa.page", flow=flow.id))
    return _complete(flow, user)


def authentication(flow: LoginFlow) -> tuple[list[str], str]:
    """``amr`` and ``acr`` of what this flow did: the primary method's values, each
    finished step's and ``mfa`` when a step finished (RFC 8176); loa:2 then, else loa:1."""
    amr = list((flow.primary or {}).get("amr") or [])
    for done in flow.steps:
        amr.extend(done["amr"])
    stepped = bool(flow.steps) or MFA_AMR in amr
    if stepped:
        amr.append(MFA_AMR)
    return list(dict.fromkeys(amr)), ACR_MFA if stepped else ACR_PASSWORD


def _complete(flow: LoginFlow, user: User) -> Response:
    """The chain is satisfied: remember the browser if asked, start the session."""
    amr, acr = authentication(flow)
    if flow.wants_mfa and _rank(acr) < _rank(ACR_MFA):
        return finish_with_error(flow, "unmet_authentication_requirements",
                                 "the requested authentication level was not reached")
    row = remember.find(user)
    if flow.remember and flow.steps:
        remember.remember(user)
    elif row is not None:
        remember.seen(row)
    user.last_login_at = now()
    if flow.steps:
        audit.record("mfa.passed", actor=audit.actor_of(user), target=f"user:{user.id}",
                     contract_id=user.contract_id, steps=[s["step"] for s in flow.steps],
                     step_up=flow.step_up, remembered=flow.remember)
    notice = None
    if flow.purpose == SETTINGS:
        audit.record("settings.signed_in", actor=audit.actor_of(user),
                     target=f"user:{user.id}", contract_id=user.contract_id)
        notice = _break_glass(flow, user)
    # Commit before the store writes below: on SQLite the store is another connection
    # that would wait for this session's write lock.
    db.session.commit()
    if flow.purpose == SETTINGS:
        from . import settings_session

        if notice is not None:
            mail.deliver_in_background(notice)
        discard(flow)
        response = redirect(url_for("settings_menu.menu"))
        settings_session.start(response, user)
        return response
    old = sessions.current() if flow.step_up else None
    primary = flow.primary or {}
    sessions.start(user_id=user.id, amr=amr, acr=acr, auth_time=int(primary.get("at", now())),
                   keep=old, route=flow.route)
    flow.login_done = True
    if flow.purpose == SESSION:
        discard(flow)
        return redirect(flow.next_url or url_for("login.done"))
    save(flow)
    return dispatch(flow)


#: The manuals' time zone, for times in mails.
_JST = timezone(timedelta(hours=9))


def _break_glass(flow: LoginFlow, user: User) -> MailMessage | None:
    """The owner of a line-only contract got into the settings menu from the internet
    (SPEC §7): audited, and mailed to the owner, every time. Returns the queued mail."""
    contract = db.session.get(Contract, user.contract_id)
    assert contract is not None
    if break_glass(situation(flow, user, contract)) is None:
        return None
    audit.record("settings.break_glass", actor=audit.actor_of(user), target=f"user:{user.id}",
                 contract_id=user.contract_id, steps=[s["step"] for s in flow.steps])
    at = datetime.fromtimestamp(now(), UTC).astimezone(_JST)
    brand = current_app.extensions["idp.settings"].brands[user.brand]
    return mail.queue("break_glass_signin", to=user.email, brand=brand, lang=user.locale,
                      name=user.name, at=at.strftime("%Y-%m-%d %H:%M (JST)"),
                      address=client_address() or "-")


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
    discard(flow)
    sessions.remember_client(client.client_id)
    return to_client(req, {"code": code})


def finish_with_error(flow: LoginFlow, error: str, description: str = "") -> Response:
    discard(flow)
    if flow.request is None:
        from flask import render_template

        return Response(render_template("error.html", error=error, description=description),
                        status=400)
    return error_to_client(flow.auth, error, description)

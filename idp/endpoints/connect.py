"""Sign-in and linking with upstream accounts (SPEC §5): every connector's round trip.

``start`` sends the browser to the upstream with a fresh ``state`` (only its SHA-256 is
kept, mapped to the login flow, which is bound to the browser that began it) and keeps
what the connector needs for ``finish`` in the flow. The callback takes that state once,
lets the connector verify what came back, and then either signs the linked user in
(primary sign-in done; the step-up chain and the line route follow as for a password) or,
when linking, shows the upstream account for the user to confirm. Connector failures end
on a page in the user's language, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from .. import audit, connectors, linking, settings_session, signin
from .. import flow as flows
from .. import session as sessions
from ..accounts import AccountError
from ..connectors.base import AutoPost, ConnectorError, Started, UpstreamIdentity
from ..db import db
from ..i18n import t
from ..models import Contract, User
from ..notify import mail
from ..oauth.response import auto_post
from ..oauth.tokens import revoke_access_tokens
from ..security import random_token, sha256_hex
from ..tickets import TicketError
from ..web import client_address, csrf
from .login import safe_next

bp = Blueprint("connect", __name__)

_STATE = "upstream-state:"
#: RFC 8176 has no value for "signed in at an upstream identity provider"; ours.
UPSTREAM_AMR = "urn:idp:amr:upstream"
_STATUS = {"unavailable": 502, "denied": 403, "invalid": 400, "expired": 400,
           "credentials": 401}


def _store():
    return current_app.extensions["idp.store"]


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status)


def _failed(kind: str, flow: flows.LoginFlow | None) -> Response:
    return _page("connect/error.html", _STATUS.get(kind, 400),
                 message=t(f"connector_error_{kind}"), retry_url=_retry_url(flow))


def _retry_url(flow: flows.LoginFlow | None) -> str:
    if flow is not None and flow.purpose == flows.OIDC:
        return url_for("login.login", flow=flow.id)
    if flow is not None and flow.purpose == flows.SETTINGS:
        return url_for("settings_menu.login")
    return url_for("login.login")


def _flow_for_start() -> flows.LoginFlow:
    """The sign-in flow this button belongs to, or a new one outside OIDC: into the
    settings menu (``purpose=settings``) or a session for ``next``."""
    browser = sessions.browser_id()
    flow_id = request.values.get("flow")
    flow = flows.load(flow_id, browser) if flow_id else None
    if flow_id and flow is None:
        abort(400)
    if flow is None:
        purpose = flows.SETTINGS if request.values.get("purpose") == "settings" \
            else flows.SESSION
        flow = flows.begin(None, browser, purpose=purpose,
                           next_url=safe_next(request.values.get("next")))
    flows.use_ui_locales(flow)
    return flow


def _go(connector: Any, flow: flows.LoginFlow, *, callback_url: str, link: bool) -> Response:
    """Start the round trip: state and nonce, what to keep, where the browser goes."""
    state, nonce = random_token(), random_token(16)
    try:
        started: Started = connector.start(state=state, nonce=nonce, callback_url=callback_url,
                                           link=link)
    except ConnectorError as exc:
        return _failed(exc.kind, flow)
    flow.extra["upstream"] = {"connector": connector.id, "state": sha256_hex(state),
                              "nonce": nonce, "keep": dict(started.keep),
                              "callback_url": callback_url}
    flows.save(flow)
    # The host the sign-in began on: a cross-site POST back (SAML) continues there.
    _store().put(_STATE + sha256_hex(state), {"flow": flow.id, "host": request.host},
                 flows.ttl())
    if isinstance(started.go, AutoPost):
        response = auto_post(started.go.url, dict(started.go.fields))
    else:
        response = redirect(started.go.url)
    sessions.browser_id(response)
    return response


def _returned(connector_id: str, state: str | None) -> flows.LoginFlow | None:
    """The flow this callback belongs to: its state, taken once, in this browser."""
    if not state or len(state) > 200:
        return None
    record = _store().take(_STATE + sha256_hex(state))
    flow = flows.load(record.get("flow"), sessions.browser_id()) if record else None
    upstream = (flow.extra.get("upstream") or {}) if flow else {}
    if flow is None or upstream.get("connector") != connector_id \
            or upstream.get("state") != sha256_hex(state):
        return None
    flows.use_ui_locales(flow)
    return flow


def _finish(connector: Any, flow: flows.LoginFlow, params: dict[str, str],
            contract: Contract | None = None) -> Response:
    upstream = flow.extra.pop("upstream")
    try:
        identity = connector.finish(params=params, kept=upstream["keep"],
                                    callback_url=upstream["callback_url"])
    except ConnectorError as exc:
        _record_failure(connector.id, exc, contract)
        flows.save(flow)
        return _failed(exc.kind, flow)
    return _identified(connector.id, identity, flow, contract)


def _record_failure(connector_id: str, exc: ConnectorError, contract: Contract | None) -> None:
    # The upstream's reason is for the log; it never holds a secret (ConnectorError).
    audit.record("signin.failure", actor="anonymous", reason=f"upstream_{exc.kind}",
                 connector=connector_id, detail=str(exc)[:200],
                 contract_id=contract.id if contract is not None else None)
    db.session.commit()


def _identified(connector_id: str, identity: UpstreamIdentity, flow: flows.LoginFlow,
                contract: Contract | None) -> Response:
    """A verified upstream account: link it (after confirmation) or sign its user in."""
    if flow.purpose == flows.LINK:
        flow.extra["identity"] = {**asdict(identity), "amr": list(identity.amr)}
        flow.extra["identity_connector"] = connector_id
        flows.save(flow)
        return redirect(url_for("connect.confirm", flow=flow.id))
    user = linking.find_user(connector_id, identity)
    if user is not None and contract is not None and user.contract_id != contract.id:
        user = None
    if user is None:
        audit.record("signin.failure", actor="anonymous", reason="upstream_not_linked",
                     connector=connector_id, upstream_issuer=identity.issuer,
                     contract_id=contract.id if contract is not None else None)
        db.session.commit()
        flows.save(flow)
        return _page("connect/not_linked.html", 403, retry_url=_retry_url(flow),
                     email=identity.email or "", name=identity.name or "")
    audit.record("signin.success", actor=audit.actor_of(user), target=f"user:{user.id}",
                 contract_id=user.contract_id, method=connector_id)
    db.session.commit()
    return flows.primary_done(flow, user, method=connector_id, amr=[UPSTREAM_AMR])


# -- global connectors (Google, Facebook, Microsoft, ...) --------------------------------


@bp.get("/connect/<connector_id>")
def start(connector_id: str) -> Response:
    connector = connectors.get(connector_id)
    if connector is None or not connectors.is_callback(connector):
        abort(404)
    flow = _flow_for_start()
    return _go(connector, flow, callback_url=url_for("connect.callback", connector_id=connector_id,
                                                     _external=True), link=False)


@bp.route("/connect/<connector_id>/callback", methods=["GET", "POST"])
@csrf.exempt  # the upstream's redirect (or form post); the state is the CSRF guard
def callback(connector_id: str) -> Response:
    connector = connectors.get(connector_id)
    if connector is None:
        abort(404)
    params = request.values.to_dict()
    flow = _returned(connector_id, params.get("state") or params.get("RelayState"))
    if flow is None:
        return _failed("expired", None)
    return _finish(connector, flow, params)


# -- the contract's Active Directory, by its connection ID -------------------------------


def _contract(connection_id: str) -> Contract | None:
    if not connection_id.startswith("adfs-") or len(connection_id) > 40:
        return None
    return db.session.scalar(select(Contract).where(Contract.connection_id == connection_id))


@bp.get("/ad")
def ad_entry() -> Response:
    """The AD button without a connection ID in the URL: ask for it (SPEC §5)."""
    typed = (request.args.get("connection_id") or "").strip().lower()
    flow_id = request.args.get("flow")
    next_url = safe_next(request.args.get("next"))
    purpose = "settings" if request.args.get("purpose") == "settings" else None
    if typed:
        if _contract(typed) is not None:
            return redirect(url_for("connect.ad_login", connection_id=typed, flow=flow_id,
                                    next=next_url, purpose=purpose))
        return _page("connect/ad_connection.html", 400, flow_id=flow_id, next_url=next_url,
                     purpose=purpose, typed=typed,
                     error=t("connector_ad_unknown_connection"))
    return _page("connect/ad_connection.html", flow_id=flow_id, next_url=next_url,
                 purpose=purpose, typed="")


def _ad_connector(contract: Contract | None) -> Any:
    """The contract's AD connector; ``ConnectorError`` when its settings cannot be used
    here (the metadata cannot be fetched, say)."""
    return connectors.for_contract(contract)


@bp.route("/ad/<connection_id>/login", methods=["GET", "POST"])
def ad_login(connection_id: str) -> Response:
    contract = _contract(connection_id)
    try:
        connector = _ad_connector(contract)
    except ConnectorError as exc:
        return _failed(exc.kind, None)
    if contract is None or connector is None:
        return _page("connect/ad_connection.html", 404, flow_id=request.values.get("flow"),
                     next_url=None, typed=connection_id,
                     error=t("connector_ad_unknown_connection"))
    flow = _flow_for_start()
    if connectors.is_callback(connector):
        return _go(connector, flow, callback_url=url_for(
            ".ad_acs", connection_id=connection_id, _external=True),
            link=flow.purpose == flows.LINK)
    # LDAP: the directory's user name and password on our page.
    if request.method == "GET":
        return _ad_password_page(flow, connection_id)
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    # The password sign-in's limits, before the directory is asked: per client address
    # (its failures) and per directory account (every attempt), so our page is no
    # guessing oracle against the company's AD (nor a way to lock its accounts out).
    address = client_address()
    by_address, by_account = signin.address_limit(), signin.account_limit()
    account = f"{connection_id}:{username.strip().lower()}"
    limit = by_address if by_address.exceeded(address) else (
        by_account if by_account.hit(account) > by_account.limit else None)
    if limit is not None:
        response = _ad_password_page(flow, connection_id, username=username, status=429,
                                     error=t("signin_rate_limited"))
        response.headers["Retry-After"] = str(limit.retry_after())
        return response
    try:
        identity = connector.authenticate(username, password)
    except ConnectorError as exc:
        if exc.kind == "credentials":
            by_address.hit(address)
            _record_failure(connection_id, exc, contract)
            return _ad_password_page(flow, connection_id, username=username, status=401,
                                     error=t("connector_error_credentials"))
        _record_failure(connection_id, exc, contract)
        return _failed(exc.kind, flow)
    return _identified(connection_id, identity, flow, contract)


def _ad_password_page(flow: flows.LoginFlow, connection_id: str, *, username: str = "",
                      status: int = 200, error: str | None = None) -> Response:
    response = _page("connect/ad_password.html", status, flow_id=flow.id,
                     connection_id=connection_id, username=username, error=error)
    sessions.browser_id(response)  # the flow it names is bound to this browser
    return response


@bp.get("/ad/<connection_id>/saml")
def ad_saml_metadata(connection_id: str) -> Response:
    """Our SP's metadata for the contract (its entity ID is this URL): what the owner
    gives ADFS (a relying party trust from metadata). Nothing secret is in it."""
    contract = _contract(connection_id)
    try:
        connector = _ad_connector(contract)
    except ConnectorError:
        connector = None
    xml = getattr(connector, "sp_metadata_xml", None)
    if xml is None:
        abort(404)
    return Response(xml, mimetype="application/samlmetadata+xml")


_POSTED = "saml-posted:"
_MAX_SAML = 256 * 1024


@bp.post("/ad/<connection_id>/saml/acs")
@csrf.exempt  # the IdP's form post; RelayState is the state, the assertion is signed
def ad_acs(connection_id: str) -> Response:
    """The IdP posts the response cross-site, so the browser withholds our SameSite=Lax
    cookies and the flow cannot be found yet: keep the post (by its state, briefly, once)
    and continue with a top-level GET, which carries them."""
    if _contract(connection_id) is None:
        abort(404)
    relay = request.form.get("RelayState") or ""
    response = request.form.get("SAMLResponse") or ""
    if not relay or not response or len(relay) > 200 or len(response) > _MAX_SAML:
        return _failed("invalid", None)
    _store().put(_POSTED + sha256_hex(relay), {"SAMLResponse": response}, 300)
    # The ACS is one fixed URL per contract (ADFS is told it); the flow's cookies belong
    # to the host where the sign-in began (a brand's host), so continue there.
    started = _store().get(_STATE + sha256_hex(relay)) or {}
    path = url_for("connect.ad_acs_continue", connection_id=connection_id, state=relay)
    host = started.get("host")
    if host and host != request.host and host in _our_hosts():
        return redirect(f"{request.scheme}://{host}{path}", code=303)
    return redirect(path, code=303)


def _our_hosts() -> set[str]:
    cfg = current_app.extensions["idp.settings"]
    hosts = {b.internet_host for b in cfg.brands.values()}
    hosts |= {b.line_host for b in cfg.brands.values()}
    return {h.lower() for h in hosts} | {urlsplit(cfg.issuer).netloc.lower()}


@bp.get("/ad/<connection_id>/saml/continue")
def ad_acs_continue(connection_id: str) -> Response:
    contract = _contract(connection_id)
    try:
        connector = _ad_connector(contract)
    except ConnectorError as exc:
        return _failed(exc.kind, None)
    if contract is None or connector is None:
        abort(404)
    relay = request.args.get("state") or ""
    posted = _store().take(_POSTED + sha256_hex(relay)) if relay else None
    flow = _returned(connection_id, relay) if posted else None
    if flow is None or posted is None:
        return _failed("expired", None)
    return _finish(connector, flow, {"SAMLResponse": posted["SAMLResponse"],
                                     "RelayState": relay}, contract)


# -- linking (invitation, login-method change, the owner's settings) ---------------------


#: The mailed link's ticket, kept in the browser across the upstream round trip: the
#: confirmation spends it, and the server keeps only its SHA-256 (in the flow).
LINK_COOKIE = "idp_link"


def begin_link(*, connector_id: str, kind: str, user: User, ticket: str | None,
               settings_key: str | None = None) -> Response:
    """Start linking ``connector_id`` for ``user`` (called by the invitation, login-method
    and settings pages once they checked the ticket or the settings session, whose store
    key ``settings_key`` must still be alive when the link is confirmed)."""
    response = _begin_link(connector_id=connector_id, kind=kind, user=user, ticket=ticket,
                           settings_key=settings_key)
    if ticket:
        response.set_cookie(LINK_COOKIE, ticket, max_age=flows.ttl(), path="/", httponly=True,
                            secure=current_app.extensions["idp.settings"].secure_cookies,
                            samesite="Lax")
    return response


def begin_link_by_ticket(*, kind: str, open_ticket: Callable[..., tuple[Any, User, Contract]],
                         problem: Callable[..., Response],
                         form: Callable[..., Response]) -> Response:
    """The mailed link's page chose an upstream method: check the link (``open_ticket``;
    ``problem`` answers a dead one), the choice (``form`` shows the page again with why
    not), then start linking. The link itself is only used by the confirmation."""
    from ..web import brand

    token = request.form.get("ticket", "")
    try:
        _, user, contract = open_ticket(token, brand_id=brand().id)
    except TicketError as exc:
        return problem(t(f"ticket_{exc.reason}"))
    except AccountError as exc:
        return problem(t(str(exc)), 403)
    try:
        connector_id = linking.chosen(user, contract, brand().connectors,
                                      request.form.get("method", ""),
                                      request.form.get("connection_id"))
    except AccountError as exc:
        return form(token, user, contract, error=t(str(exc)), status=400)
    return begin_link(connector_id=connector_id, kind=kind, user=user, ticket=token)


def _begin_link(*, connector_id: str, kind: str, user: User, ticket: str | None,
                settings_key: str | None) -> Response:
    flow = flows.begin(None, sessions.browser_id(), purpose=flows.LINK)
    flow.user_id = None  # nobody signs in here
    flow.extra["link"] = {"kind": kind, "user": user.id, "settings": settings_key,
                          "ticket": sha256_hex(ticket) if ticket else None}
    if linking.is_ad(connector_id) or connector_id == connectors.ACTIVE_DIRECTORY:
        contract = db.session.get(Contract, user.contract_id)
        if contract is None or not contract.connection_id:
            abort(404)
        flows.save(flow)
        response = redirect(url_for("connect.ad_login", connection_id=contract.connection_id,
                                    flow=flow.id))
        sessions.browser_id(response)
        return response
    connector = connectors.get(connector_id)
    if connector is None or not connectors.is_callback(connector):
        abort(404)
    return _go(connector, flow, callback_url=url_for("connect.callback", connector_id=connector_id,
                                                     _external=True), link=True)


def _linking(flow: flows.LoginFlow) -> tuple[User, str, UpstreamIdentity] | None:
    raw = flow.extra.get("identity")
    link = flow.extra.get("link") or {}
    user = db.session.get(User, link.get("user")) if link.get("user") else None
    if raw is None or user is None:
        return None
    identity = UpstreamIdentity(**{**raw, "amr": tuple(raw.get("amr") or ())})
    return user, flow.extra["identity_connector"], identity


@bp.route("/connect/confirm", methods=["GET", "POST"])
def confirm() -> Response:
    """The upstream account, shown before it is linked (SPEC §5: no wrong account)."""
    flow = flows.load(request.values.get("flow"), sessions.browser_id())
    found = _linking(flow) if flow is not None and flow.purpose == flows.LINK else None
    if flow is None or found is None:
        return _failed("expired", None)
    user, connector_id, identity = found
    link = flow.extra["link"]
    try:
        linking.check(user, connector_id, identity)
    except AccountError as exc:
        return _page("connect/link_refused.html", 409, message=t(str(exc)))
    if request.method == "GET":
        return _page("connect/confirm.html", flow_id=flow.id, user=user, identity=identity,
                     method=linking_method_name(connector_id), kind=link["kind"])
    token = request.cookies.get(LINK_COOKIE) if link["ticket"] else None
    if link["ticket"] and (not token or sha256_hex(token) != link["ticket"]):
        return _failed("expired", None)
    if link.get("settings") and not settings_session.alive(link["settings"], user.id):
        return _failed("expired", None)  # signed out of the settings menu meanwhile
    try:
        if link["kind"] == "invitation":
            assert token is not None
            done = linking.complete_invitation(token, user, connector_id, identity)
        else:
            done = linking.change_method(user, connector_id, identity, token=token,
                                         via=link["kind"])
    except TicketError as exc:
        return _page("link_problem.html", 400, title=t("connector_link_title"),
                     message=t(f"ticket_{exc.reason}"))
    except AccountError as exc:
        return _page("connect/link_refused.html", 409, message=t(str(exc)))
    flows.discard(flow)
    revoke_access_tokens(*done.digests)
    for message in done.mails:
        mail.deliver(message)
    response = _page("connect/linked.html", method=linking_method_name(connector_id),
                     kind=link["kind"])
    response.delete_cookie(LINK_COOKIE, path="/")
    return response


def linking_method_name(connector_id: str) -> str:
    from ..i18n import method_label

    return method_label(connector_id)


def buttons(*, flow_id: str | None = None, next_url: str | None = None,
            purpose: str | None = None) -> list[tuple[str, str | None]]:
    """The brand's upstream sign-in buttons (SPEC §1): (id, where it goes, or None when
    the operator has not configured it). ``purpose="settings"``: into the settings menu."""
    from ..web import brand

    params: dict[str, str] = {}
    if flow_id:
        params["flow"] = flow_id
    elif next_url:
        params["next"] = next_url
    if purpose:
        params["purpose"] = purpose
    found: list[tuple[str, str | None]] = []
    for cid in brand().connectors:
        if cid == connectors.ACTIVE_DIRECTORY:
            found.append((cid, url_for("connect.ad_entry", **params)))
        elif connectors.get(cid) is not None:
            found.append((cid, url_for("connect.start", connector_id=cid, **params)))
        else:
            found.append((cid, None))
    return found

"""Consent page (OIDC Core §3.1.2.4), and the list where a user revokes what they allowed."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import flow as flows
from .. import session as sessions
from ..clock import now
from ..db import db
from ..i18n import t
from ..models import Client, Consent, RefreshToken, User
from ..oauth import tokens

bp = Blueprint("consent", __name__)


def _current_user() -> User | None:
    session = sessions.current()
    return db.session.get(User, session.user_id) if session else None


@bp.route("/consent", methods=["GET", "POST"])
def consent() -> Response:
    flow = flows.load(request.values.get("flow"), sessions.browser_id())
    flows.use_ui_locales(flow)
    user = _current_user()
    if flow is None or user is None:
        return Response(render_template("error.html", error="invalid_request",
                                        description=t("flow_expired")), status=400)
    client = db.session.get(Client, flow.auth.client_id)
    if request.method == "GET":
        return Response(render_template("consent.html", flow_id=flow.id, client=client,
                                        user=user, scopes=flows.consent_scopes(flow.auth)))
    if request.form.get("decision") != "allow":
        return flows.finish_with_error(flow, "access_denied", "the user denied access")
    row = db.session.get(Consent, (user.id, client.client_id))
    if row is None:
        row = Consent(user_id=user.id, client_id=client.client_id, scope="", granted_at=now())
        db.session.add(row)
    row.scope = " ".join(sorted(set(row.scope.split()) | set(flows.consent_scopes(flow.auth))))
    row.granted_at = now()
    db.session.commit()
    flow.consent_done = True
    flows.save(flow)
    return flows.dispatch(flow)


@bp.get("/consents")
def consents() -> Response:
    user = _current_user()
    if user is None:
        return redirect(url_for("login.login"))
    rows = db.session.execute(
        select(Consent, Client).join(Client, Client.client_id == Consent.client_id)
        .where(Consent.user_id == user.id)
    ).all()
    return Response(render_template("consents.html", consents=rows))


@bp.post("/consents/<client_id>/revoke")
def revoke(client_id: str) -> Response:
    """Withdraw consent and every refresh token the client holds for this user."""
    user = _current_user()
    if user is None:
        abort(401)
    row = db.session.get(Consent, (user.id, client_id))
    if row is not None:
        db.session.delete(row)
    families = db.session.scalars(
        select(RefreshToken.family_id).where(
            RefreshToken.user_id == user.id, RefreshToken.client_id == client_id
        ).distinct()
    ).all()
    for family in families:
        tokens.revoke_family(family)
    db.session.commit()
    return redirect(url_for("consent.consents"))

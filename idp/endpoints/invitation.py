"""Registration by invitation (利用者登録, SPEC §6; manual 1.5 "契約者以外の利用者が初回ログイン").

Opening the mailed link only shows the registration page (mail scanners prefetch links);
the password is checked, then confirmed on a second page, and only that confirmation
uses the ticket. Until then every error leaves the link usable.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from .. import invitations, linking
from ..accounts import AccountError
from ..i18n import t
from ..models import Contract, User
from ..passwords import PolicyViolation
from ..tickets import TicketError
from ..web import brand
from .connect import begin_link_by_ticket

bp = Blueprint("invitation", __name__)


def _problem(message: str, status: int = 400) -> Response:
    return Response(render_template("link_problem.html", title=t("invitation_title"),
                                    message=message), status=status)


def _form(token: str, user: User, contract: Contract, *, error: str | None = None,
          status: int = 200) -> Response:
    body = render_template("invitation/register.html", token=token, user=user,
                           choices=linking.choices(user, contract, brand().connectors),
                           error=error)
    return Response(body, status=status)


@bp.post("/invitation/link")
def link() -> Response:
    """Register with an upstream account: off to it, then its account is shown to confirm
    (``idp.endpoints.connect``); only that confirmation uses the invitation."""
    return begin_link_by_ticket(kind="invitation", open_ticket=invitations.open_ticket,
                                problem=_problem, form=_form)


@bp.route("/invitation", methods=["GET", "POST"])
def register() -> Response:
    token = request.values.get("ticket", "")
    try:
        ticket, user, contract = invitations.open_ticket(token, brand_id=brand().id)
    except TicketError as exc:
        return _problem(t(f"ticket_{exc.reason}"))
    except AccountError as exc:
        return _problem(t(str(exc)), 403)
    if request.method == "GET":
        return _form(token, user, contract)
    try:
        nonce = invitations.stage_password(ticket, user, request.form.get("password", ""),
                                           request.form.get("password_confirmation", ""))
    except PolicyViolation as exc:
        return _form(token, user, contract, error=t(exc.key), status=400)
    return Response(render_template("invitation/confirm.html", token=token, user=user,
                                     nonce=nonce))


@bp.post("/invitation/confirm")
def confirm() -> Response:
    token = request.form.get("ticket", "")
    try:
        ticket, user, contract = invitations.open_ticket(token, brand_id=brand().id)
    except TicketError as exc:
        return _problem(t(f"ticket_{exc.reason}"))
    except AccountError as exc:
        return _problem(t(str(exc)), 403)
    password_hash = invitations.staged_hash(ticket, request.form.get("nonce", ""))
    if password_hash is None:
        # The typed password waited too long (or was replaced in another tab): type again.
        return _form(token, user, contract, error=t("invitation_staged_expired"), status=400)
    try:
        invitations.complete(token, user, password_hash)
    except TicketError as exc:
        return _problem(t(f"ticket_{exc.reason}"))
    return Response(render_template("invitation/done.html"))

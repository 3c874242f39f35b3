"""Confirming an email change from the link mailed to the new address (SPEC §6).

GET only shows the change (mail scanners open links); the 登録 button's POST does it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request

from .. import email_change as email_changes
from ..accounts import AccountError
from ..db import db
from ..i18n import MESSAGES, t
from ..passwords import PolicyViolation
from ..tickets import TicketError

bp = Blueprint("email_change", __name__)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status)


def _refused(key: str) -> Response:
    db.session.rollback()
    return _page("link_problem.html", 400, title=t("email_change_confirm_title"),
                 message=t(key if key in MESSAGES else "ticket_unknown"))


@bp.route("/email/confirm", methods=["GET", "POST"])
def confirm() -> Response:
    token = request.values.get("ticket")
    try:
        change = email_changes.pending(token)
    except TicketError as exc:
        return _refused(f"ticket_{exc.reason}")
    except AccountError as exc:
        return _refused(str(exc))

    if request.method == "GET":
        return _page("email_change/confirm.html", change=change, ticket=token)
    try:
        email_changes.confirm(token, password=request.form.get("password", ""),
                              confirmation=request.form.get("password_confirmation", ""))
    except TicketError as exc:
        return _refused(f"ticket_{exc.reason}")
    except (AccountError, PolicyViolation) as exc:
        db.session.rollback()
        key = exc.key if isinstance(exc, PolicyViolation) else str(exc)
        if key == "email_change_unavailable":
            return _refused(key)
        return _page("email_change/confirm.html", 400, change=change, ticket=token,
                     error=t(key if key in MESSAGES else "ticket_unknown"))
    return _page("email_change/done.html", address=change.new_email,
                 needs_password=change.needs_password)

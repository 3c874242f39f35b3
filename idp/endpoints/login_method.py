"""Login-method change by the link an admin sent (SPEC §6; manual 2.2 (1)).

GET shows the current method and the choices and changes nothing (mail scanners prefetch
links); the password form's POST validates everything, then uses the ticket.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from .. import linking
from .. import login_method_change as changes
from ..accounts import AccountError
from ..i18n import t
from ..models import Contract, User
from ..notify import mail
from ..oauth.tokens import revoke_access_tokens
from ..passwords import PolicyViolation
from ..passwords import check_new as check_new_password
from ..tickets import TicketError
from ..web import brand
from .connect import begin_link_by_ticket

bp = Blueprint("login_method", __name__)


def _problem(message: str, status: int = 400) -> Response:
    return Response(render_template("link_problem.html", title=t("login_method_title"),
                                    message=message), status=status)


def _page(token: str, user: User, contract: Contract, *, error: str | None = None,
          status: int = 200) -> Response:
    body = render_template("login_method/change.html", token=token, user=user,
                           current=changes.method_name(user.login_method),
                           choices=linking.choices(user, contract, brand().connectors),
                           error=error)
    return Response(body, status=status)


@bp.post("/login-method/link")
def link() -> Response:
    """Change to an upstream account: off to it, then its account is shown to confirm;
    only that confirmation uses the link."""
    return begin_link_by_ticket(kind="method", open_ticket=changes.open_ticket,
                                problem=_problem, form=_page)


@bp.route("/login-method", methods=["GET", "POST"])
def change() -> Response:
    token = request.values.get("ticket", "")
    try:
        _, user, contract = changes.open_ticket(token, brand_id=brand().id)
    except TicketError as exc:
        return _problem(t(f"ticket_{exc.reason}"))
    except AccountError as exc:
        return _problem(t(str(exc)), 403)
    if request.method == "GET":
        return _page(token, user, contract)

    password = request.form.get("password", "")
    confirmation = request.form.get("password_confirmation", "")
    try:
        check_new_password(password, confirmation, email=user.email)
    except PolicyViolation as exc:
        # Checked before the ticket is touched: a refused password leaves the link usable.
        return _page(token, user, contract, error=t(exc.key), status=400)
    try:
        changed = changes.change_to_password(token, user, password)
    except TicketError as exc:
        return _problem(t(f"ticket_{exc.reason}"))
    # After the commit: on SQLite the store must not wait for the ORM's write lock.
    revoke_access_tokens(*changed.digests)
    if changed.notice is not None:
        mail.deliver(changed.notice)  # never raises; a mail not sent is retried
    return Response(render_template("login_method/done.html"))

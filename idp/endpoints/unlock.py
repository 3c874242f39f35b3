"""Account unlock by the link mailed at lockout (SPEC §4.2).

Opening the link only shows what will happen: mail scanners open links too. The button
(a POST with the ticket and a CSRF token) unlocks.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from .. import audit, lockout, tickets
from ..db import db
from ..i18n import t
from ..tickets import TicketError
from ..web import brand

bp = Blueprint("unlock", __name__)

KIND = "unlock"


def link_error(exc: TicketError) -> Response:
    """The page for a link that cannot be used, in the reader's language."""
    status = 404 if exc.reason == "unknown" else 410
    return Response(render_template("link_problem.html", title=t("signin_link_error_title"),
                                    message=t(f"ticket_{exc.reason}")), status=status)


@bp.route("/account/unlock", methods=["GET", "POST"])
def unlock() -> Response:
    token = request.values.get("ticket")
    try:
        _, user = tickets.open_link(token, KIND, brand_id=brand().id)
    except TicketError as exc:
        return link_error(exc)
    if request.method == "GET":
        return Response(render_template("unlock.html", done=False, ticket=token,
                                        email=user.email))
    try:
        tickets.use(token, KIND)
    except TicketError as exc:
        return link_error(exc)
    lockout.clear(user)
    audit.record("user.unlocked", actor=audit.actor_of(user), target=f"user:{user.id}",
                 contract_id=user.contract_id, via="unlock_link")
    db.session.commit()
    return Response(render_template("unlock.html", done=True, ticket=None, email=user.email))

"""Forgot password and password reset by ticket (SPEC §6).

``/password/forgot`` answers the same page whether or not the address is registered, and
sends nothing beyond the per-account and per-address limits (mail bombing). The reset page
checks the new password completely before it spends the link, so a typo costs nothing;
the reset then unlocks the account, resets 2-step enrolment (unless the contract's policy
keeps it; ``idp.mfa.enrolment``) and signs the user out everywhere (sessions, access and
refresh tokens).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request
from sqlalchemy import select

from .. import accounts, audit, contracts, lockout, tickets
from ..accounts import normalise_email, valid_email
from ..db import db
from ..i18n import t
from ..mfa import enrolment
from ..models import MailMessage, User
from ..notify import mail
from ..oauth.tokens import revoke_access_tokens
from ..passwords import PolicyViolation
from ..passwords import check as check_policy
from ..passwords import normalise as normalise_password
from ..ratelimit import Limit
from ..tickets import TicketError
from ..web import brand, brand_url, client_address, language
from .unlock import link_error

bp = Blueprint("password_reset", __name__)

KIND = "password_reset"
_HOUR = 3600


def _settings():
    return current_app.extensions["idp.settings"]


def _may_reset(user: User | None) -> bool:
    """Password users who can sign in, locked or not; invited and disabled users cannot."""
    return user is not None and user.status == "active" and user.login_method == "password"


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot() -> Response:
    if request.method == "GET":
        return _forgot_page(email=request.args.get("email", "")[:320])
    typed = normalise_email(request.form.get("email", ""))
    if not valid_email(typed):
        return _forgot_page(email=request.form.get("email", "")[:320],
                            error=t("forgot_email_required"), status=400)
    message = _send_reset_mail(typed)
    if message is not None:
        # The page must not differ for a registered address, neither in what it says nor
        # in how long it takes: delivered beside the response, retried if it fails.
        mail.deliver_in_background(message)
    return Response(render_template("password/forgot.html", sent=True, email=typed))


def _forgot_page(*, email: str, error: str | None = None, status: int = 200) -> Response:
    return Response(render_template("password/forgot.html", sent=False, email=email,
                                    error=error), status=status)


def _send_reset_mail(email: str) -> MailMessage | None:
    """Issue the ticket and queue the mail, committed; None when nothing is sent."""
    s = _settings()
    # Counted for every request, registered address or not: the same work either way.
    if Limit("reset-mails-address", s.mails_per_address, _HOUR).hit(client_address()) \
            > s.mails_per_address:
        return None
    user = db.session.scalar(select(User).where(User.brand == brand().id, User.email == email))
    if not _may_reset(user):
        return None
    assert user is not None
    if Limit("reset-mails-account", s.mails_per_account, _HOUR).hit(user.id) > \
            s.mails_per_account:
        return None
    issued = tickets.issue(KIND, user)
    b = brand()
    lang = language()
    message = mail.queue(KIND, to=user.email, brand=b, lang=lang, name=user.name,
                         url=brand_url(b, "password_reset.reset", ticket=issued.token,
                                       ui_locales=lang))
    audit.record("password.reset_requested", actor="anonymous", target=f"user:{user.id}",
                 contract_id=user.contract_id)
    db.session.commit()
    return message


@bp.route("/password/reset", methods=["GET", "POST"])
def reset() -> Response:
    token = request.values.get("ticket")
    try:
        _, user = tickets.open_link(token, KIND, brand_id=brand().id)
        if not _may_reset(user):
            raise TicketError("unknown")
    except TicketError as exc:
        return link_error(exc)
    # Under the contract's keep policy the pages must not promise a 2-step reset.
    keeps = enrolment.keeps_enrolment(user, "password_reset")
    if request.method == "GET":
        return _reset_form(token, keeps=keeps)

    password = request.form.get("password", "")
    confirmation = request.form.get("password_confirmation", "")
    errors = _problems(password, confirmation, email=user.email)
    if errors:
        # Nothing spent: the same link still works after a typo.
        return _reset_form(token, keeps=keeps, errors=errors, status=400)
    try:
        tickets.use(token, KIND)
    except TicketError as exc:
        return link_error(exc)
    accounts.set_password(user, password)
    lockout.clear(user)
    notice = accounts.reset_two_step(user, reason="password_reset", actor=user)
    tickets.void(user, "unlock")
    # Whoever knew the old password is signed out everywhere.
    digests = contracts.revoke_user_access([user.id])
    audit.record("password.reset", actor=audit.actor_of(user), target=f"user:{user.id}",
                 contract_id=user.contract_id)
    db.session.commit()
    # After the commit: on SQLite the store waits for the ORM's write lock.
    revoke_access_tokens(*digests)
    if notice is not None:
        mail.deliver(notice)  # never raises; a mail not sent stays queued for a retry
    return Response(render_template("password/done.html", keeps_two_step=keeps))


def _problems(password: str, confirmation: str, *, email: str) -> list[str]:
    errors: list[str] = []
    try:
        check_policy(password, email=email)
    except PolicyViolation as exc:
        errors.append(t(exc.key))
    if normalise_password(password) != normalise_password(confirmation):
        errors.append(t("password_mismatch"))
    return errors


def _reset_form(token: str | None, *, keeps: bool, errors: list[str] | None = None,
                status: int = 200) -> Response:
    return Response(render_template("password/reset.html", ticket=token, errors=errors or [],
                                    keeps_two_step=keeps), status=status)

"""Who is in the settings menu and which items they may use (SPEC §2), on every request.

Every item view is wrapped in ``requires(item)``: the menu hides what a person may not do,
and this refuses it server-side (403) whatever URL or form is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import Response, abort, redirect, url_for

from . import contracts, settings_session
from .db import db
from .models import Contract, User
from .settings_session import SettingsSession


@dataclass(frozen=True)
class Caller:
    """The signed-in person of the settings menu, their contract and session."""

    user: User
    contract: Contract
    session: SettingsSession


def may_enter(user: User | None, contract: Contract | None) -> bool:
    """An active user of a usable contract; of an ended trial only its owner (plan change)."""
    if user is None or contract is None or user.status != "active":
        return False
    current = contracts.state(contract)
    return current == "active" or (current == "trial_ended" and user.role == "owner")


#: ``requires(PERSONAL)``: a page about the person's own sign-in (remembered browsers),
#: outside the SPEC §2 table, so the menu's item list stays exactly the table's.
PERSONAL = "personal"


def personal_allowed(contract: Contract) -> bool:
    """Everyone signed in here while the contract is active. An ended trial leaves its
    owner only the plan change (SPEC §2), so nothing personal either."""
    return contracts.usable(contract)


def caller() -> Caller | None:
    """The settings session's user, while the session is live and the user may be here."""
    session = settings_session.current()
    if session is None:
        return None
    user = db.session.get(User, session.user_id)
    contract = db.session.get(Contract, user.contract_id) if user is not None else None
    if user is None or user.session_epoch != session.epoch or not may_enter(user, contract):
        # Revoked (epoch), disabled, cancelled or expired: the session is over for good.
        settings_session.discard()
        return None
    return Caller(user, contract, session)


def requires(item: str | None) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Signed in to the settings menu, and ``contracts.allowed(item, ...)`` (403 otherwise).

    ``item=None`` only asks for a signed-in caller (the menu itself); ``PERSONAL`` asks
    for ``personal_allowed``. The view gets the ``Caller`` as its first argument.
    """

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(*args: object, **kwargs: object) -> Response:
            who = caller()
            if who is None:
                return redirect(url_for("settings_menu.login"))
            if item == PERSONAL:
                if not personal_allowed(who.contract):
                    abort(403)
            elif item is not None and not contracts.allowed(item, who.user, who.contract):
                abort(403)
            return view(who, *args, **kwargs)

        return wrapper

    return decorate

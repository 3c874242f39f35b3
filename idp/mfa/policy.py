"""Conditions of the step-up chain: when a group of steps applies (SPEC §4.3, §9).

A condition is a small named function of the sign-in's ``Situation``; it returns the
reason it holds, for the audit log and the page, or None. ``[[mfa.chain]] when = "..."``
names one of ``CONDITIONS``; an unknown name is a start-up error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..contract_settings import two_step_in_force
from ..line_route import INTERNET, LINE
from ..models import Contract, User


@dataclass(frozen=True)
class Situation:
    """What the conditions may look at, fixed for one evaluation."""

    user: User
    contract: Contract
    #: ``internet`` or ``line`` (line authentication replaces 2-step verification).
    route: str
    #: This browser is remembered for the user (``idp.mfa.remember``).
    remembered: bool
    #: The user's previous completed sign-in (None: never).
    last_login_at: int | None
    now: int
    #: Days without a sign-in after which a remembered browser no longer counts.
    inactive_days: int
    #: The client asked for a level only the chain gives (``acr_values``, essential acr).
    demanded: bool = False
    #: The client demanded a fresh sign-in (``max_age`` passed, ``prompt=login``).
    fresh: bool = False
    #: What the sign-in is for: ``oidc``, ``session`` or ``settings`` (``idp.flow``).
    purpose: str = "oidc"


Condition = Callable[[Situation], str | None]


def always(s: Situation) -> str | None:
    return "always"


def two_step(s: Situation) -> str | None:
    """SPEC §4.3: password users over the internet, when the contract has 2-step on and
    the browser is not remembered or the user has been away ``inactive_days``; and
    whenever the client demands the level (the user enrols if they never did)."""
    if s.user.login_method != "password":
        return None  # an upstream account's MFA is the upstream's business (SPEC §5)
    if s.route != INTERNET:
        return None  # line authentication replaces it (SPEC §7)
    if s.demanded:
        return "requested by the client"
    if not two_step_in_force(s.contract):
        return None
    if s.fresh:
        return "fresh sign-in requested by the client"
    if not s.remembered:
        return "browser not remembered"
    if s.last_login_at is None or s.now - s.last_login_at >= s.inactive_days * 86400:
        return f"no sign-in for {s.inactive_days} days"
    return None


def break_glass(s: Situation) -> str | None:
    """SPEC §7: the owner of a ``line-only`` contract signs in to the settings menu from
    the internet, to switch back after registering a wrong line. Allowed, but only with an
    enrolled factor or the recovery code (its group sets ``enrol = false``)."""
    if s.contract.access_route == "line-only" and s.route == INTERNET \
            and s.purpose == "settings" and s.user.role == "owner":
        return "owner of a line-only contract from the internet"
    return None


def line(s: Situation) -> str | None:
    """SPEC §7: a sign-in over a line host is checked against the contract's lines, and
    under ``line-only`` every sign-in must be one (whatever the login method), except the
    owner's break-glass one."""
    if s.route == LINE:
        return "line route"
    if s.contract.access_route == "line-only" and break_glass(s) is None:
        return "the contract allows registered lines only"
    return None


def step_up_possible(user: User, route: str = INTERNET) -> bool:
    """Can the chain raise this user's sign-in to the multi-factor level at all? A
    password user can enrol a factor; over a line, the line is one."""
    return user.login_method == "password" or route == LINE


CONDITIONS: dict[str, Condition] = {
    "always": always,
    "line": line,
    "two_step": two_step,
    "break_glass": break_glass,
}

"""Conditions of the step-up chain: when a group of steps applies (SPEC §4.3, §9).

A condition is a small named function of the sign-in's ``Situation``; it returns the
reason it holds, for the audit log and the page, or None. ``[[mfa.chain]] when = "..."``
names one of ``CONDITIONS``; an unknown name is a start-up error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..contract_settings import two_step_in_force
from ..models import Contract, User

#: The route a request came by (SPEC §7): the internet host, or the carrier's line host.
INTERNET = "internet"


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


def step_up_possible(user: User) -> bool:
    """Can the chain raise this user's sign-in to the multi-factor level at all?"""
    return user.login_method == "password"


CONDITIONS: dict[str, Condition] = {
    "always": always,
    "two_step": two_step,
}

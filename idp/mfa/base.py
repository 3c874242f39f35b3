"""What a step of the chain is and what it answers (ARCHITECTURE "The step-up chain").

A step never builds a Flask response: ``begin`` and ``verify`` return an outcome and the
blueprint (``idp.endpoints.mfa``) renders it. What a step keeps between its pages lives in
``StepContext.state``, saved with the login flow; nothing trusts a hidden form field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..models import Contract, User
from ..settings import Brand


@dataclass
class StepContext:
    """One step's view of the sign-in in progress."""

    user: User
    contract: Contract
    brand: Brand
    lang: str
    #: The step's own state in the flow (codes sent, the factor being enrolled, ...).
    state: dict[str, Any]
    #: The user has no factor to verify yet: enrollable steps enrol one.
    enrolling: bool
    #: The flow's id, for what a step keys per sign-in.
    flow_id: str
    #: The route of the sign-in (``idp.line_route``): ``internet`` or ``line``, with the
    #: line ID and carrier area a trusted gateway asserted.
    route: str = "internet"
    line_id: str | None = None
    carrier: str | None = None
    #: Run once the step's writes are committed (a mail to deliver): a step must not
    #: act on what a rollback could take back. Dropped with a wrong code's rollback.
    after_commit: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class Done:
    """The step finished; ``amr`` is what it adds to the ID token's ``amr``."""

    amr: tuple[str, ...]
    #: A recovery code this step issued, shown once before the flow goes on.
    recovery_code: str | None = None
    #: The step enrolled a factor (the chain then issues the recovery code).
    enrolled: bool = False


@dataclass(frozen=True)
class Show:
    """A page to show: ``template`` under templates/, with ``context``.

    ``error`` is a message key (idp/messages) shown on the page; ``status`` 400 for a
    refused form, 429 with ``retry_after`` for a limit, 502 for a gateway failure.
    """

    template: str
    context: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    status: int = 200
    retry_after: int | None = None


@dataclass(frozen=True)
class Wrong:
    """A wrong code: counted against the user's limit (``mfa.failures_per_user``)."""

    page: Show


Outcome = Done | Show | Wrong


class Step(Protocol):
    """A factor of the step-up chain: one module in idp/mfa/, one registry line."""

    #: The config ``type`` and the step's name in URLs and flows.
    name: str
    #: Offered when the user has no factor yet (the first enrolment)?
    enrols: bool
    #: Message key of the link that switches to this step ("use the authenticator app").
    label: str

    def usable(self, ctx: StepContext) -> bool:
        """Can this step run for ``ctx.user`` now (enrolled, or able to enrol)?"""
        ...

    def begin(self, ctx: StepContext) -> Outcome:
        """Its first page (and whatever it sends); a silent step answers ``Done`` here."""
        ...

    def verify(self, ctx: StepContext, form: Mapping[str, str]) -> Outcome:
        """Handle a POST of its page."""
        ...


class IssuesAfterEnrolment(Protocol):
    """A step that hands the user something once another step enrolled a factor
    (the recovery code, SPEC §4.4)."""

    def after_enrolment(self, ctx: StepContext) -> str: ...

"""The step-up chain: ordered groups of steps, evaluated for a sign-in before consent.

``[[mfa.chain]]`` in the config is a flat list of groups. A group applies when its named
condition (``idp.mfa.policy``) holds; ``any`` lists alternatives of which one must
finish (SMS or authenticator app or recovery code), ``all`` steps that must each finish.
A misconfigured chain (unknown factor or condition, ``any`` and ``all`` mixed in one
group, a factor without its settings) stops the provider at start-up with every problem
listed. (Keycloak's required/alternative/conditional, without nested sub-flows.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..plugins import config_of
from ..settings import Settings, SettingsError
from .base import Step, StepContext
from .policy import CONDITIONS, Situation

#: What a finished chain adds to ``amr`` besides each step's own values (RFC 8176 §2).
MFA_AMR = "mfa"


@dataclass(frozen=True)
class Group:
    #: Name of the condition in ``policy.CONDITIONS``.
    when: str
    #: ``any``: one step must finish; ``all``: every step must.
    mode: str
    steps: tuple[str, ...]
    #: May a user with nothing enrolled enrol here? (Not for a break-glass sign-in.)
    enrol: bool = True

    def satisfied(self, done: set[str]) -> bool:
        hits = [name in done for name in self.steps]
        return any(hits) if self.mode == "any" else all(hits)


@dataclass(frozen=True)
class Pending:
    """The first group still to satisfy, and why it applies."""

    group: Group
    reason: str


class Chain:
    def __init__(self, groups: Sequence[Group], steps: Mapping[str, Step]):
        self.groups = tuple(groups)
        self.steps = dict(steps)

    def pending(self, situation: Situation, done: set[str]) -> Pending | None:
        """The first applicable group not yet satisfied by the steps ``done``."""
        for group in self.groups:
            reason = CONDITIONS[group.when](situation)
            if reason is not None and not group.satisfied(done):
                return Pending(group, reason)
        return None

    def enrolling(self, group: Group, ctx: StepContext) -> bool:
        """Has the user nothing to verify in this group (first time, or after a reset)?"""
        probe = _with(ctx, enrolling=False)
        enrollable = [self.steps[n] for n in group.steps if self.steps[n].enrols]
        # A group of steps that need no enrolment (an e-mailed code) never enrols.
        return bool(enrollable) and not any(s.usable(probe) for s in enrollable)

    def offered(self, group: Group, ctx: StepContext) -> list[Step]:
        """The group's steps this user can take now, in configured order.

        While enrolling only enrollable steps are offered; for an ``all`` group every step
        is (each must run)."""
        steps = [self.steps[n] for n in group.steps]
        if ctx.enrolling and group.mode == "any":
            steps = [s for s in steps if s.enrols and group.enrol]
        return [s for s in steps if s.usable(ctx)]

    def after_enrolment(self, group: Group, ctx: StepContext) -> str | None:
        """What a step hands over once a factor was enrolled (the recovery code)."""
        for name in group.steps:
            hand_over = getattr(self.steps[name], "after_enrolment", None)
            if hand_over is not None:
                return hand_over(ctx)
        return None


def _with(ctx: StepContext, **changes: Any) -> StepContext:
    import dataclasses

    return dataclasses.replace(ctx, **changes)


def open_chain(settings: Settings) -> Chain:
    """Build the configured chain; ``SettingsError`` lists every problem at once."""
    from . import FACTORS

    problems: list[str] = []
    groups: list[Group] = []
    used: set[str] = set()
    for i, raw in enumerate(settings.mfa_chain):
        where = f"mfa.chain[{i}]"
        unknown = sorted(set(raw) - {"when", "any", "all", "enrol"})
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
        when = raw.get("when", "always")
        if when not in CONDITIONS:
            problems.append(f"{where}: unknown condition {when!r} "
                            f"(one of {', '.join(CONDITIONS)})")
        modes = [m for m in ("any", "all") if m in raw]
        if len(modes) != 1:
            problems.append(f"{where}: give exactly one of `any` (alternatives) or `all` "
                            "(each required), not both or neither")
            continue
        names = raw[modes[0]]
        if not isinstance(names, list) or not names or \
                not all(isinstance(n, str) for n in names):
            problems.append(f"{where}.{modes[0]}: a non-empty list of factor types")
            continue
        if len(set(names)) != len(names):
            problems.append(f"{where}.{modes[0]}: a factor is listed twice")
        for name in names:
            if name not in FACTORS:
                problems.append(f"{where}: unknown factor {name!r} "
                                f"(one of {', '.join(FACTORS)})")
        enrol = raw.get("enrol", True)
        if not isinstance(enrol, bool):
            problems.append(f"{where}.enrol: true or false")
        used.update(names)
        groups.append(Group(when=when, mode=modes[0], steps=tuple(names), enrol=enrol is True))
    for name in sorted(set(settings.mfa_factors) - set(FACTORS)):
        problems.append(f"mfa.factors.{name}: no such factor (one of {', '.join(FACTORS)})")
    steps: dict[str, Step] = {}
    for name in sorted(used & set(FACTORS)):
        module = FACTORS[name]
        config = config_of(module.Config, settings.mfa_factors.get(name, {}),
                           f"mfa.factors.{name}", problems)
        if config is None:
            continue
        try:
            steps[name] = module.open(config, settings)
        except SettingsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return Chain(groups, steps)

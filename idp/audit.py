"""Audit trail: one event per security-relevant action (who, what, whom, when, from where).

``record`` only adds the event to the current transaction, so an action and its audit
event are committed together or not at all.
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context

from .clock import now
from .db import db
from .models import AuditEvent, User


def actor_of(user: User | None) -> str:
    """``user:<id>``; an API client acting for a contract names itself (``audit_actor``,
    ``client:<client_id>``, see ``idp.endpoints.admin_api``)."""
    if user is None:
        return "anonymous"
    return getattr(user, "audit_actor", None) or f"user:{user.id}"


def record(action: str, *, actor: str, target: str = "", contract_id: str | None = None,
           **details: Any) -> AuditEvent:
    """Add an event to the session; the caller's commit writes it with the action."""
    from .web import client_address

    event = AuditEvent(at=now(), actor=actor, action=action, target=target,
                       contract_id=contract_id,
                       ip=client_address() if has_request_context() else "",
                       details=details)
    db.session.add(event)
    return event

"""One contract's audit log as the console shows it (SPEC §10): filters, pages, names.

Every query is bound to the caller's contract, and actors and targets are resolved to
emails only among that contract's users, so the page never reveals another tenant's
people whatever is typed into the filters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import func, or_, select

from .accounts import without_controls
from .db import db
from .models import AuditEvent, User

PAGE_SIZE = 50
#: Console times are Japan time (as the rest of the console).
JST = timezone(timedelta(hours=9))
_MAX_FILTER = 200
_MAX_DETAILS = 2000
#: ``at`` is a 32-bit column on PostgreSQL: day bounds are clamped into its range (no event
#: lies outside it), or a year like 0001 or 2300 would be a database error, not "no rows".
_LOWEST_DAY, _HIGHEST_DAY = 0, 2**31 - 1 - 86400


class FilterError(ValueError):
    """A filter the page cannot read; the message is a catalogue key."""


@dataclass(frozen=True)
class Filters:
    action: str = ""
    user: str = ""
    since: str = ""
    until: str = ""


@dataclass(frozen=True)
class Row:
    when: str
    actor: str
    action: str
    target: str
    ip: str
    details: str


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    total: int
    page: int
    pages: int


def _jst_day(text: str, field: str) -> int | None:
    """Epoch seconds at 00:00 JST of ``YYYY-MM-DD``; None for an empty field."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise FilterError(f"admin_audit_bad_{field}") from exc
    at = int(datetime(day.year, day.month, day.day, tzinfo=JST).timestamp())
    return min(max(at, _LOWEST_DAY), _HIGHEST_DAY)


def jst(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def _user_targets(contract_id: str, text: str) -> list[str]:
    """``user:<id>`` of this contract's users whose id is ``text`` or whose email
    contains it."""
    pattern = "%" + _like_prefix(text)
    ids = db.session.scalars(select(User.id).where(
        User.contract_id == contract_id,
        or_(User.id == text, User.email.ilike(pattern, escape="\\"))))
    return [f"user:{i}" for i in ids]


def conditions(contract_id: str, filters: Filters) -> list:
    """WHERE clauses for ``filters``; raises FilterError for an unreadable date."""
    where = [AuditEvent.contract_id == contract_id]
    action = without_controls(filters.action).strip()[:80]
    if action:
        where.append(AuditEvent.action.like(_like_prefix(action), escape="\\"))
    since = _jst_day(filters.since.strip(), "since")
    until = _jst_day(filters.until.strip(), "until")
    if since is not None:
        where.append(AuditEvent.at >= since)
    if until is not None:
        where.append(AuditEvent.at < until + 86400)  # the whole of the last day
    who = without_controls(filters.user).strip()[:_MAX_FILTER]
    if who:
        where.append(AuditEvent.target.in_(_user_targets(contract_id, who)))
    return where


def _names(contract_id: str, events: list[AuditEvent]) -> dict[str, str]:
    """``user:<id>`` -> email, for the people of this contract named on the page."""
    ids = {ref.removeprefix("user:") for e in events for ref in (e.actor, e.target)
           if ref.startswith("user:")}
    if not ids:
        return {}
    people = db.session.execute(select(User.id, User.email).where(
        User.id.in_(ids), User.contract_id == contract_id))
    return {f"user:{uid}": email for uid, email in people}


def _details(details: object) -> str:
    if not details:
        return ""
    text = json.dumps(details, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      default=str)
    return text if len(text) <= _MAX_DETAILS else text[:_MAX_DETAILS] + "…"


@dataclass(frozen=True)
class Events:
    """One page of raw events (for the JSON API) with the names the console would show."""

    events: list[AuditEvent]
    #: ``user:<id>`` -> email, for this contract's people named on the page only.
    names: dict[str, str]
    total: int
    page: int
    pages: int


def events_of(contract_id: str, filters: Filters, page: int, *,
              per_page: int = PAGE_SIZE) -> Events:
    """One page of the contract's events matching ``filters``, newest first; a page past
    the last is clamped to it (the caller compares ``page``)."""
    where = conditions(contract_id, filters)
    total = db.session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    events = list(db.session.scalars(
        select(AuditEvent).where(*where).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .offset((page - 1) * per_page).limit(per_page)))
    return Events(events, _names(contract_id, events), total, page, pages)


def page_of(contract_id: str, filters: Filters, page: int) -> Page:
    """One page of the contract's events matching ``filters``, newest first."""
    found = events_of(contract_id, filters, page)
    names = found.names
    rows = [Row(when=jst(e.at), actor=names.get(e.actor, e.actor), action=e.action,
                target=names.get(e.target, e.target), ip=e.ip or "",
                details=_details(e.details)) for e in found.events]
    return Page(rows, found.total, found.page, found.pages)

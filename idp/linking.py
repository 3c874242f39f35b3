"""Linking an upstream account to a user (SPEC §5): only in invitation registration, an
admin-sent login-method change, or the owner's own change in the settings menu.

The upstream account is shown to the user (name, e-mail) and linked only once they
confirm. An upstream subject linked to someone else is refused; so is a Facebook user
switching straight to another Facebook account (SPEC §5: change to another method first).
The owner can never choose AD. Each function does its whole change in one transaction,
with the ticket it spends, or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select

from . import accounts, audit, contracts, tickets
from .accounts import AccountError
from .clock import now
from .connectors.base import UpstreamIdentity
from .db import db
from .models import Contract, LinkedIdentity, MailMessage, User
from .notify import mail
from .web import brand_url, language

#: A Facebook account cannot replace another Facebook account directly (SPEC §5).
FACEBOOK = "facebook"


@dataclass(frozen=True)
class Linked:
    user: User
    #: Access-token digests to delete from the store after the commit.
    digests: list[str]
    #: Mails to deliver after the commit (the 2-step reset notice, the AD login notice).
    mails: list[MailMessage]


def is_ad(connector_id: str) -> bool:
    return connector_id.startswith("adfs-")


def check(user: User, connector_id: str, identity: UpstreamIdentity) -> None:
    """Every reason this link may not happen; ``AccountError`` (a message key)."""
    if is_ad(connector_id):
        contract = db.session.get(Contract, user.contract_id)
        if user.role == "owner":
            raise AccountError("link_owner_cannot_use_ad")  # SPEC §3
        if contract is None or contract.connection_id != connector_id:
            raise AccountError("link_ad_other_contract")
    if user.login_method == FACEBOOK and connector_id == FACEBOOK:
        raise AccountError("link_facebook_to_facebook")
    taken = db.session.scalar(select(LinkedIdentity.user_id).where(
        LinkedIdentity.connector == connector_id, LinkedIdentity.issuer == identity.issuer,
        LinkedIdentity.subject == identity.subject))
    if taken is not None and taken != user.id:
        raise AccountError("link_taken")


def _link(user: User, connector_id: str, identity: UpstreamIdentity) -> None:
    # One login method at a time: whatever was linked before goes.
    db.session.execute(delete(LinkedIdentity).where(LinkedIdentity.user_id == user.id)
                       .execution_options(synchronize_session=False))
    db.session.add(LinkedIdentity(user_id=user.id, connector=connector_id,
                                  issuer=identity.issuer, subject=identity.subject,
                                  email=(identity.email or "")[:320],
                                  name=(identity.name or "")[:200], linked_at=now()))
    user.login_method = connector_id
    # A password the user no longer signs in with must not linger as a way in.
    user.password_hash = None
    user.updated_at = now()


def _ad_notice(user: User) -> MailMessage | None:
    """SPEC §5: the AD login URLs and the connection ID, when the method becomes AD."""
    contract = db.session.get(Contract, user.contract_id)
    if contract is None or not contract.connection_id:
        return None
    b = current_app.extensions["idp.settings"].brands[user.brand]
    internet = brand_url(b, "connect.ad_login", connection_id=contract.connection_id)
    line = internet.replace(b.internet_host, b.line_host, 1)
    return mail.queue("ad_login_notice", to=user.email, brand=b, lang=user.locale,
                      name=user.name, internet_url=internet, line_url=line,
                      connection_id=contract.connection_id)


def _commit() -> None:
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()  # nothing half-linked; the ticket stays usable
        raise


def complete_invitation(token: str, user: User, connector_id: str,
                        identity: UpstreamIdentity) -> Linked:
    """Register the invited user with the upstream account (spends the invitation)."""
    check(user, connector_id, identity)
    tickets.use(token, "invitation")
    _link(user, connector_id, identity)
    user.status = "active"
    user.locale = language()
    audit.record("user.registered", actor=f"user:{user.id}", target=f"user:{user.id}",
                 contract_id=user.contract_id, login_method=connector_id,
                 upstream_issuer=identity.issuer)
    mails = [m for m in [_ad_notice(user) if is_ad(connector_id) else None] if m]
    _commit()
    return Linked(user, [], mails)


def change_method(user: User, connector_id: str, identity: UpstreamIdentity, *,
                  token: str | None = None, via: str) -> Linked:
    """Change the user's login method to the upstream account: by the admin's link
    (``token`` spent) or the owner's own settings menu (``token`` None)."""
    check(user, connector_id, identity)
    if token is not None:
        tickets.use(token, "login_method_change")
    previous = user.login_method
    _link(user, connector_id, identity)
    notice = accounts.reset_two_step(user, reason="login_method_change", actor=user)
    digests = contracts.revoke_user_access([user.id])
    audit.record("login_method.changed", actor=f"user:{user.id}", target=f"user:{user.id}",
                 contract_id=user.contract_id, previous=previous, login_method=connector_id,
                 upstream_issuer=identity.issuer, via=via)
    mails = [m for m in (notice, _ad_notice(user) if is_ad(connector_id) else None) if m]
    _commit()
    return Linked(user, digests, mails)


def find_user(connector_id: str, identity: UpstreamIdentity) -> User | None:
    """The user this upstream account signs in as: by (connector, issuer, subject) only,
    and only while it is the user's login method."""
    row = db.session.scalar(select(LinkedIdentity).where(
        LinkedIdentity.connector == connector_id, LinkedIdentity.issuer == identity.issuer,
        LinkedIdentity.subject == identity.subject))
    if row is None:
        return None
    user = db.session.get(User, row.user_id)
    if user is None or user.login_method != connector_id:
        return None
    row.last_used_at = now()
    return user


def choices(user: User, contract: Contract, connector_ids: tuple[str, ...]) -> list[
        tuple[str, bool]]:
    """The brand's upstream methods this user may pick, and whether each is set up: AD
    only once the contract has it, never for the owner (SPEC §3)."""
    from . import connectors

    found: list[tuple[str, bool]] = []
    for cid in connector_ids:
        if cid == connectors.ACTIVE_DIRECTORY:
            if contract.connection_id and user.role != "owner":
                # Set up is enough to offer it; a directory that is down says so when used.
                found.append((cid, (contract.ad_settings or {}).get("type")
                              in connectors.AD_TYPES))
        else:
            found.append((cid, connectors.get(cid) is not None))
    return found


def chosen(user: User, contract: Contract, connector_ids: tuple[str, ...], method: str,
           connection_id: str | None) -> str:
    """The connector id for a choice posted by a page (``choices``); ``AccountError``
    when it is not on offer, or the typed AD connection ID is not the contract's."""
    from . import connectors

    if dict(choices(user, contract, connector_ids)).get(method) is not True:
        raise AccountError("login_method_not_configured")
    if method == connectors.ACTIVE_DIRECTORY:
        if (connection_id or "").strip().lower() != contract.connection_id:
            raise AccountError("connector_ad_unknown_connection")
        return contract.connection_id
    return method

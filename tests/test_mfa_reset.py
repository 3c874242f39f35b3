"""2-step enrolment resets (SPEC §4.6): a password reset, an email change, a login-method
change and an admin's reset remove the enrolment and mail a notice; the contract's keep
policy exempts the password reset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import pytest
from flask import Flask
from sqlalchemy import func, select

from idp.clock import now
from idp.db import db
from idp.mfa import recovery, totp
from idp.models import AuditEvent, Factor, RecoveryCode, RememberedBrowser, User
from idp.notify import mail
from idp.security import sha256_hex
from tests.console_helpers import HOSTS, hidden, submit
from tests.console_helpers import sign_in as console_sign_in
from tests.helpers import csrf_from
from tests.mail import Mailbox
from tests.settings_helpers import (
    Members,
    contract,
    contract_with_members,
    post,
    signed_in,
    text,
    update_contract,
    update_user,
)

CODEC = HOSTS["codec"]
NEW_PASSWORD = "Blue-Lantern-42"
NEW_EMAIL = "moved@example.com"
PHONE = "+819012345678"
SUBJECTS = {"ja": "【コーデックストレージ】2段階認証の登録リセットのお知らせ",
            "en": "【Codec Storage】Your 2-step verification registration has been reset"}
#: What the notice says caused the reset, per reason and language.
CAUSES = {
    "password_reset": {"ja": "パスワードリセットが行われたため",
                       "en": "Your password was reset"},
    "email_change": {"ja": "メールアドレスの変更が行われたため",
                     "en": "Your email address was changed"},
    "login_method_change": {"ja": "ログイン方法の変更が行われたため",
                            "en": "Your sign-in method was changed"},
    "admin": {"ja": "管理者の操作により", "en": "Your administrator has reset"},
}
AGAIN = {"ja": "次回ログイン時に、2段階認証を再登録してください。",
         "en": "register 2-step verification again the next time you sign in"}


@pytest.fixture
def people(app, factory) -> Members:
    members = contract_with_members(app, factory)
    # Signing in is not what these tests are about: with the contract's 2-step setting off
    # the console and settings sign-ins take a password alone, whatever is enrolled.
    # Resets do not depend on the setting.
    update_contract(app, members.contract_id, two_step_enabled=False)
    return members


@pytest.fixture
def stranger(app, factory) -> Members:
    """People of another contract of the same brand."""
    return contract_with_members(app, factory, prefix="other-")


# -- the enrolment, set up and read back straight in the database ------------------------


def enrol(app: Flask, user_id: str, *, factor: str = "sms", confirmed: bool = True,
          browsers: int = 2) -> None:
    """Give the user a factor, a live recovery code and remembered browsers."""
    with app.test_request_context():
        user = db.session.get(User, user_id)
        t = now()
        if factor == "totp":
            row = totp.enrol(user)
        else:
            row = Factor(user_id=user.id, type="sms", phone=PHONE, created_at=t)
            db.session.add(row)
        if confirmed:
            row.confirmed_at = t
            recovery.issue(user)
        for i in range(browsers):
            db.session.add(RememberedBrowser(
                user_id=user.id, token_hash=sha256_hex(f"{user.id}:{i}"), label="Firefox",
                created_at=t, last_seen_at=t, expires_at=t + 30 * 86400))
        db.session.commit()


@dataclass(frozen=True)
class Enrolment:
    factors: int
    recovery_codes: int
    browsers: int
    reset: bool


def enrolment_of(app: Flask, user_id: str) -> Enrolment:
    """What is left of the user's enrolment: factors, live codes, live browsers."""
    def count(model, *where) -> int:
        return db.session.scalar(select(func.count()).select_from(model)
                                 .where(model.user_id == user_id, *where))

    with app.app_context():
        return Enrolment(
            factors=count(Factor),
            recovery_codes=count(RecoveryCode, RecoveryCode.used_at.is_(None),
                                 RecoveryCode.voided_at.is_(None)),
            browsers=count(RememberedBrowser, RememberedBrowser.revoked_at.is_(None)),
            reset=db.session.get(User, user_id).two_step_reset_at is not None)


ENROLLED = Enrolment(factors=1, recovery_codes=1, browsers=2, reset=False)
GONE = Enrolment(factors=0, recovery_codes=0, browsers=0, reset=True)


def events(app: Flask, user_id: str, prefix: str = "mfa.") -> list[tuple[str, str, dict]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.target == f"user:{user_id}")
                                  .order_by(AuditEvent.id))
        return [(e.action, e.actor, dict(e.details)) for e in rows if e.action.startswith(prefix)]


def notices(mailbox: Mailbox, address: str) -> list:
    return [m for m in mailbox.to(address) if m.subject in SUBJECTS.values()]


def headers(lang: str) -> dict[str, str]:
    return {"Accept-Language": lang}


# -- the triggers, each driven as its user does it ----------------------------------------


def _post_link_form(http, link, path: str, lang: str, **fields: str):
    """Open a mailed link's page, then press its button (a POST with CSRF)."""
    base = "http://" + link.host
    page = http.get(link.link, base_url=base, headers=headers(lang))
    assert page.status_code == 200, text(page)[:800]
    html = page.get_data(as_text=True)
    return http.post(path, base_url=base, headers=headers(lang),
                     data={"csrf_token": csrf_from(html), "ticket": hidden(html, "ticket"),
                           **fields})


def by_password_reset(app, people, mailbox, lang) -> str:
    user = people.user
    http = app.test_client()
    page = http.get("/password/forgot", base_url=CODEC, headers=headers(lang))
    http.post("/password/forgot", base_url=CODEC, headers=headers(lang),
              data={"csrf_token": csrf_from(page.get_data(as_text=True)), "email": user.email})
    link = mailbox.last(user.email)
    done = _post_link_form(http, link, "/password/reset", lang, password=NEW_PASSWORD,
                           password_confirmation=NEW_PASSWORD)
    assert done.status_code == 200, text(done)[:800]
    return user.email


def by_email_change(app, people, mailbox, lang) -> str:
    from idp import email_change

    with app.test_request_context(base_url=CODEC):  # what the admin console sends
        user = db.session.get(User, people.user.id)
        message = email_change.request(user, NEW_EMAIL, actor=db.session.get(
            User, people.owner.id), lang=lang)
        db.session.commit()
        assert mail.deliver(message)
    done = _post_link_form(app.test_client(), mailbox.last(NEW_EMAIL), "/email/confirm", lang,
                           password=NEW_PASSWORD, password_confirmation=NEW_PASSWORD)
    assert done.status_code == 200, text(done)[:800]
    return NEW_EMAIL  # the notice follows the account to its new address


def by_login_method_link(app, people, mailbox, lang) -> str:
    from idp import login_method_change

    with app.test_request_context(base_url=CODEC):  # what the admin console sends
        user = db.session.get(User, people.user.id)
        message = login_method_change.request(user, actor=db.session.get(
            User, people.owner.id), lang=lang)
        db.session.commit()
        assert mail.deliver(message)
    done = _post_link_form(app.test_client(), mailbox.last(people.user.email), "/login-method",
                           lang, password=NEW_PASSWORD, password_confirmation=NEW_PASSWORD)
    assert done.status_code == 200, text(done)[:800]
    return people.user.email


def by_owner_in_settings(app, people, mailbox, lang) -> str:
    http = app.test_client()
    signed_in(http, people.owner.email, headers=headers(lang))
    done = post(http, "/settings/login-method", {
        "method": "password", "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD},
        headers=headers(lang))
    assert done.status_code == 200, text(done)[:800]
    return people.owner.email


def by_admin(app, people, mailbox, lang) -> str:
    http = app.test_client()
    console_sign_in(http, email=people.owner.email)
    detail = f"/admin/users/{people.user.id}"
    done = submit(http, detail, detail + "/two-step/reset", ui=lang)
    assert done.status_code == 302, text(done)[:800]
    return people.user.email


@dataclass(frozen=True)
class Trigger:
    reason: str
    run: Callable[..., str]
    #: Whose enrolment it resets.
    role: str = "user"


TRIGGERS = {
    "password-reset": Trigger("password_reset", by_password_reset),
    "email-change": Trigger("email_change", by_email_change),
    "login-method-link": Trigger("login_method_change", by_login_method_link),
    "owner-login-method": Trigger("login_method_change", by_owner_in_settings, role="owner"),
    "admin-reset": Trigger("admin", by_admin),
}


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("trigger", TRIGGERS.values(), ids=TRIGGERS.keys())
def test_every_reset_trigger_removes_the_enrolment_and_mails_a_notice(
        app, people, mailbox, trigger, lang):
    target = people.by_role(trigger.role)
    update_user(app, target.id, locale=lang)
    enrol(app, target.id)
    assert enrolment_of(app, target.id) == ENROLLED

    address = trigger.run(app, people, mailbox, lang)

    assert enrolment_of(app, target.id) == GONE
    [notice] = notices(mailbox, address)
    assert notice.subject == SUBJECTS[lang]
    assert CAUSES[trigger.reason][lang] in notice.body
    assert AGAIN[lang] in notice.body
    assert PHONE not in notice.body and "5678" not in notice.body
    actor = people.owner if trigger.reason == "admin" else target
    assert events(app, target.id) == [("mfa.reset", f"user:{actor.id}", {
        "reason": trigger.reason, "factors": 1, "confirmed_factors": 1, "recovery_codes": 1,
        "browsers": 2, "notified": True})]
    if trigger.reason == "email_change":
        assert notices(mailbox, target.email) == []  # not to the old address


def test_a_totp_enrolment_is_removed_with_its_used_steps(app, people, mailbox):
    enrol(app, people.user.id, factor="totp")
    with app.app_context():
        factor = db.session.scalar(select(Factor).where(Factor.user_id == people.user.id))
        assert totp.verify(factor, pyotp.TOTP(totp.secret_of(factor)).now())
        db.session.commit()
    by_admin(app, people, mailbox, "ja")
    assert enrolment_of(app, people.user.id) == GONE
    with app.app_context():
        from idp.models import UsedTotpStep

        assert db.session.scalar(select(func.count()).select_from(UsedTotpStep)) == 0


# -- nothing enrolled, nothing to tell ---------------------------------------------------


@pytest.mark.parametrize("setup", ["nothing", "unconfirmed-factor"])
def test_no_notice_is_mailed_when_nothing_was_enrolled(app, people, mailbox, setup):
    if setup == "unconfirmed-factor":
        enrol(app, people.user.id, factor="totp", confirmed=False, browsers=0)
    by_password_reset(app, people, mailbox, "ja")
    assert enrolment_of(app, people.user.id) == GONE
    assert notices(mailbox, people.user.email) == []
    [(action, _, details)] = events(app, people.user.id)
    assert action == "mfa.reset" and details["notified"] is False
    assert details["factors"] == (1 if setup == "unconfirmed-factor" else 0)


# -- the contract's keep policy -----------------------------------------------------------


@pytest.mark.parametrize("trigger", TRIGGERS.values(), ids=TRIGGERS.keys())
def test_the_keep_policy_keeps_the_enrolment_on_a_password_reset_only(
        app, people, mailbox, trigger):
    update_contract(app, people.contract_id, two_step_keep_on_reset=True)
    target = people.by_role(trigger.role)
    enrol(app, target.id)

    address = trigger.run(app, people, mailbox, "ja")

    if trigger.reason != "password_reset":
        assert enrolment_of(app, target.id) == GONE
        assert len(notices(mailbox, address)) == 1
        return
    # The factor and the recovery code stay; remembered browsers still go (a reset may
    # mean the password was known to someone else), and nothing changed worth a notice.
    assert enrolment_of(app, target.id) == Enrolment(factors=1, recovery_codes=1, browsers=0,
                                                     reset=False)
    assert notices(mailbox, address) == []
    assert events(app, target.id) == [("mfa.reset_kept", f"user:{target.id}", {
        "reason": "password_reset", "policy": "two_step_keep_on_reset", "browsers": 2})]


def test_under_the_keep_policy_the_reset_pages_say_the_enrolment_is_kept(app, people, mailbox):
    kept = "パスワードリセットでは2段階認証の登録はリセットされません"
    reset = "2段階認証の登録がリセットされます"
    http = app.test_client()
    page = http.get("/password/forgot", base_url=CODEC)
    http.post("/password/forgot", base_url=CODEC,
              data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                    "email": people.user.email})
    link = mailbox.last(people.user.email)
    base = "http://" + link.host
    assert reset in text(http.get(link.link, base_url=base))
    update_contract(app, people.contract_id, two_step_keep_on_reset=True)
    form = http.get(link.link, base_url=base)
    assert kept in text(form) and reset not in text(form)
    done = _post_link_form(http, link, "/password/reset", "ja", password=NEW_PASSWORD,
                           password_confirmation=NEW_PASSWORD)
    assert kept in text(done) and reset not in text(done)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_owner_sets_the_keep_policy_on_the_two_step_page(app, people, lang):
    label = {"ja": "パスワードリセットでは2段階認証の登録をリセットしない（リセットは管理者のみ）",
             "en": "Do not reset 2-step verification on a password reset"}[lang]
    http = app.test_client()
    signed_in(http, people.owner.email, headers=headers(lang))
    page = text(http.get("/settings/two-step", headers=headers(lang)))
    assert label in page
    assert 'name="keep_on_reset" value="yes" >' in page  # not ticked by default

    done = post(http, "/settings/two-step", {"step": "keep_on_reset", "keep_on_reset": "yes"},
                headers=headers(lang))
    assert done.status_code == 200
    assert contract(app, people.contract_id).two_step_keep_on_reset is True
    assert 'name="keep_on_reset" value="yes" checked>' in text(
        http.get("/settings/two-step", headers=headers(lang)))
    # The 2-step setting itself is untouched by the policy's form.
    assert contract(app, people.contract_id).two_step_enabled is False

    post(http, "/settings/two-step", {"step": "keep_on_reset"}, headers=headers(lang))
    assert contract(app, people.contract_id).two_step_keep_on_reset is False
    with app.app_context():
        changes = [(e.actor, dict(e.details)) for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "contract.two_step_keep_on_reset_changed")
            .order_by(AuditEvent.id))]
    owner = f"user:{people.owner.id}"
    assert changes == [(owner, {"old": False, "new": True}), (owner, {"old": True, "new": False})]


@pytest.mark.parametrize("role", ["admin", "user"])
def test_only_the_owner_may_set_the_keep_policy(app, people, role):
    http = app.test_client()
    signed_in(http, people.by_role(role).email)
    refused = post(http, "/settings/two-step", {"step": "keep_on_reset", "keep_on_reset": "yes"})
    assert refused.status_code == 403
    assert contract(app, people.contract_id).two_step_keep_on_reset is False


# -- the admin console ----------------------------------------------------------------------


def test_the_user_page_shows_the_enrolled_factor_without_secrets(app, people):
    enrol(app, people.user.id, factor="sms")
    enrol(app, people.admin.id, factor="totp", browsers=0)
    with app.app_context():
        secret = totp.secret_of(db.session.scalar(
            select(Factor).where(Factor.user_id == people.admin.id)))
    http = app.test_client()
    console_sign_in(http, email=people.owner.email)

    sms = text(http.get(f"/admin/users/{people.user.id}", base_url=CODEC))
    assert "SMS（+81 90-****-5678）" in sms
    assert PHONE not in sms and "9012345678" not in sms
    assert "2段階認証の登録をリセット" in sms
    app_page = text(http.get(f"/admin/users/{people.admin.id}", base_url=CODEC,
                             headers=headers("en")))
    assert "Authenticator app, registered" in app_page
    assert secret not in app_page
    none = text(http.get(f"/admin/users/{people.owner.id}", base_url=CODEC))
    assert "未登録" in none and "/two-step/reset" not in none


def test_an_admin_resets_a_users_enrolment_as_the_actor(app, people, mailbox):
    enrol(app, people.user.id)
    http = app.test_client()
    console_sign_in(http, email=people.admin.email)
    detail = f"/admin/users/{people.user.id}"
    done = submit(http, detail, detail + "/two-step/reset")
    assert done.status_code == 302
    page = text(http.get(done.headers["Location"], base_url=CODEC))
    assert f"{people.user.email} にお知らせメールを送信しました" in page
    assert "未登録" in page
    assert enrolment_of(app, people.user.id) == GONE
    assert [a for a, _, _ in events(app, people.user.id)] == ["mfa.reset"]
    assert events(app, people.user.id)[0][1] == f"user:{people.admin.id}"
    assert len(notices(mailbox, people.user.email)) == 1


def test_an_admin_reset_of_another_contracts_user_is_not_found_and_changes_nothing(
        app, people, stranger, mailbox):
    enrol(app, stranger.user.id)
    http = app.test_client()
    console_sign_in(http, email=people.owner.email)
    assert http.get(f"/admin/users/{stranger.user.id}", base_url=CODEC).status_code == 404
    own = f"/admin/users/{people.user.id}"
    refused = submit(http, own, f"/admin/users/{stranger.user.id}/two-step/reset")
    assert refused.status_code == 404
    assert enrolment_of(app, stranger.user.id) == ENROLLED
    assert events(app, stranger.user.id) == []
    assert notices(mailbox, stranger.user.email) == []


@pytest.mark.parametrize("whom", ["owner", "themself"])
def test_an_admin_cannot_reset_the_owners_nor_their_own_enrolment(app, people, mailbox, whom):
    target = people.owner if whom == "owner" else people.admin
    enrol(app, target.id)
    http = app.test_client()
    console_sign_in(http, email=people.admin.email)
    detail = f"/admin/users/{target.id}"
    assert "/two-step/reset" not in text(http.get(detail, base_url=CODEC))
    # The page offers no button; the POST is made with a token from another page.
    refused = submit(http, f"/admin/users/{people.user.id}", detail + "/two-step/reset")
    assert refused.status_code == 400
    assert enrolment_of(app, target.id) == ENROLLED
    assert notices(mailbox, target.email) == []


def test_an_admin_reset_needs_the_csrf_token(app, people):
    enrol(app, people.user.id)
    http = app.test_client()
    console_sign_in(http, email=people.owner.email)
    refused = http.post(f"/admin/users/{people.user.id}/two-step/reset", base_url=CODEC)
    assert refused.status_code == 400
    assert enrolment_of(app, people.user.id) == ENROLLED

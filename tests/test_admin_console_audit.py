"""The contract console's audit log page, and signing a user out everywhere / forgetting
their remembered browsers from the user detail page."""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime, timedelta, timezone

import pytest

from idp.db import db
from idp.models import AuditEvent, User
from tests.console_helpers import (
    HOSTS,
    error_of,
    fetch,
    fetch_all,
    headers_for,
    hidden,
    live_browsers,
    notices_of,
    plain_text,
    remember_browsers,
    sign_in,
    submit,
    text_of,
)
from tests.helpers import bearer, csrf_from, refresh, tokens_for

CODEC = HOSTS["codec"]
#: A console page with a form, for a CSRF token when the target's page has none.
INVITE = "/admin/users/invite"
JST = timezone(timedelta(hours=9))


def jst(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=JST).timestamp())


def seed(app, contract_id: str | None, action: str, *, at: int, actor: str = "system",
         target: str = "", ip: str = "", **details) -> None:
    with app.app_context():
        db.session.add(AuditEvent(at=at, actor=actor, action=action, target=target,
                                  contract_id=contract_id, ip=ip, details=details))
        db.session.commit()


def seed_many(app, contract_id: str, action: str, count: int, *, start: int) -> None:
    with app.app_context():
        db.session.add_all(AuditEvent(at=start + i, actor="system", action=action, target="",
                                      contract_id=contract_id, ip="", details={"n": i})
                           for i in range(count))
        db.session.commit()




def rows(response) -> list[dict[str, str]]:
    """The log table as read: one dict per event, cells as visible text."""
    html = response.get_data(as_text=True)
    found = []
    for body in re.findall(r'<tr class="audit-event">(.*?)</tr>', html, re.S):
        cells = dict(re.findall(r'<td class="audit-(\w+)">(.*?)</td>', body, re.S))
        found.append({k: html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", v)))
                      .strip() for k, v in cells.items()})
    return found


def audit_page(http, lang: str = "ja", **params: str):
    response = http.get("/admin/audit", base_url=CODEC, query_string=params,
                        headers=headers_for(lang))
    return response


@pytest.fixture
def console(app, basic):
    """The basic contract's admin, signed in to the console."""
    http = app.test_client()
    sign_in(http, email=basic.admin.email)
    return http


# -- the audit log page -------------------------------------------------------------------


def test_the_log_lists_only_the_callers_contract_newest_first_with_people_named(
        app, console, basic, trial):
    seed(app, basic.contract_id, "user.role_changed", at=jst(2026, 1, 5, 10, 0, 0),
         actor=f"user:{basic.owner.id}", target=f"user:{basic.user.id}", ip="203.0.113.7",
         previous="user", role="admin")
    seed(app, basic.contract_id, "mfa.reset", at=jst(2026, 1, 6, 9, 30, 15),
         actor="client:rp-1", target=f"user:{basic.user.id}", note="<script>x</script>")
    seed(app, basic.contract_id, "custom.thing", at=jst(2026, 1, 4), actor="anonymous")
    seed(app, trial.contract_id, "user.disabled", at=jst(2026, 1, 7),
         actor=f"user:{trial.owner.id}", target=f"user:{trial.user.id}")
    seed(app, None, "operator.anything", at=jst(2026, 1, 7))

    response = audit_page(console)
    assert response.status_code == 200
    listed = [r for r in rows(response) if not r["what"].endswith("signin.success")]
    assert [r["when"] for r in listed] == ["2026-01-06 09:30:15", "2026-01-05 10:00:00",
                                           "2026-01-04 00:00:00"]
    newest, role, custom = listed
    assert newest["who"] == "client:rp-1"
    assert newest["what"] == "2段階認証のリセット mfa.reset"
    assert newest["target"] == basic.user.email
    html = response.get_data(as_text=True)
    assert "<script>x</script>" not in html
    assert '{"note":"<script>x</script>"}' in text_of(response)
    assert role == {"when": "2026-01-05 10:00:00", "who": basic.owner.email,
                    "what": "権限変更 user.role_changed", "target": basic.user.email,
                    "ip": "203.0.113.7", "details": '{"previous":"user","role":"admin"}'}
    assert custom["who"] == "anonymous" and custom["what"] == "custom.thing"
    page = text_of(response)
    assert trial.user.email not in page and "operator.anything" not in page
    assert "user.disabled" not in page
    # The admin's own sign-in is in the contract's log, named by email.
    signed_in = [r for r in rows(response) if r["what"].endswith("signin.success")]
    assert signed_in and signed_in[0]["who"] == basic.admin.email


def test_the_log_pages_fifty_events_at_a_time_keeping_the_filters(app, console, basic):
    seed_many(app, basic.contract_id, "user.role_changed", 120, start=jst(2026, 2, 1))

    first = audit_page(console, action="user.role")
    assert "120 件" in plain_text(first)
    assert len(rows(first)) == 50
    assert rows(first)[0]["details"] == '{"n":119}'
    assert "1 / 3 ページ" in plain_text(first)
    next_link = re.search(r'<a rel="next" href="([^"]+)"', first.get_data(as_text=True))
    assert next_link and "action=user.role" in next_link.group(1)

    last = audit_page(console, action="user.role", page="3")
    assert [r["details"] for r in rows(last)] == [f'{{"n":{n}}}' for n in range(19, -1, -1)]
    beyond = audit_page(console, action="user.role", page="99")
    assert rows(beyond) == rows(last)


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"action": "mfa."}, ["mfa.passed", "mfa.failed", "mfa.late"]),
     ({"action": "contract."}, ["contract.line_registered"]),
     ({"user": "basic-codec-user@"}, ["user.disabled", "mfa.failed"]),
     ({"user": "USER-ID"}, ["user.disabled", "mfa.failed"]),
     ({"user": "ADMIN-ID", "action": "mfa."}, ["mfa.passed", "mfa.late"]),
     ({"from": "2026-03-02", "to": "2026-03-02"}, ["mfa.failed", "contract.line_registered"]),
     ({"from": "2026-03-03", "to": "2026-03-31"}, ["user.disabled", "mfa.passed"]),
     ({"from": "2026-02-01", "to": "2026-03-01"}, ["mfa.late"]),
     ({"user": "nobody@example.com"}, [])],
    ids=["action-prefix-mfa", "action-prefix-contract", "user-by-email", "user-by-id",
         "user-and-action", "one-jst-day", "from-a-date", "up-to-a-date", "unknown-user"])
def test_the_log_filters_by_action_target_user_and_jst_dates(app, console, basic, params,
                                                             expected):
    user, admin = f"user:{basic.user.id}", f"user:{basic.admin.id}"
    seed(app, basic.contract_id, "mfa.late", at=jst(2026, 3, 1, 23, 59, 59), target=admin)
    seed(app, basic.contract_id, "contract.line_registered", at=jst(2026, 3, 2, 0, 0, 0))
    seed(app, basic.contract_id, "mfa.failed", at=jst(2026, 3, 2, 23, 59, 59), target=user)
    seed(app, basic.contract_id, "mfa.passed", at=jst(2026, 3, 3, 0, 0, 0), target=admin)
    seed(app, basic.contract_id, "user.disabled", at=jst(2026, 3, 4), target=user)
    params = {k: v.replace("USER-ID", basic.user.id).replace("ADMIN-ID", basic.admin.id)
              for k, v in params.items()}
    response = audit_page(console, **params)
    assert response.status_code == 200
    listed = [r["what"].split()[-1] for r in rows(response)]
    # The admin's own sign-in (now) is in the log too; it is not what is tested here.
    assert [a for a in listed if a != "signin.success"] == expected


def test_an_unreadable_date_is_refused_with_a_message(console):
    response = audit_page(console, lang="en", **{"from": "2026-13-45"})
    assert response.status_code == 400
    assert error_of(response) == "Enter the start date as YYYY-MM-DD."
    assert rows(response) == []


def test_an_owner_and_an_admin_see_the_log_and_a_plain_user_gets_403(app, basic):
    for person, status in ((basic.owner, 200), (basic.admin, 200), (basic.user, 403)):
        http = app.test_client()
        sign_in(http, email=person.email)
        assert audit_page(http).status_code == status, person.email


def test_the_console_nav_links_to_the_log(console):
    html = console.get("/admin/users", base_url=CODEC).get_data(as_text=True)
    assert '<a href="/admin/audit">監査ログ</a>' in html


# -- sign out everywhere ------------------------------------------------------------------


def test_sign_out_everywhere_asks_first_then_ends_every_token_and_is_audited(
        app, console, basic, rp):
    theirs = app.test_client()
    tokens = tokens_for(theirs, rp, basic.user, scope="openid offline_access")
    assert theirs.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    detail = f"/admin/users/{basic.user.id}"

    asked = submit(console, detail, detail + "/sessions/revoke")
    assert asked.status_code == 200
    assert "すべての端末からログアウトさせますか" in text_of(asked)
    assert theirs.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200

    page = asked.get_data(as_text=True)
    done = console.post(detail + "/sessions/revoke", base_url=CODEC, data={
        "csrf_token": csrf_from(page), "confirmed": hidden(page, "confirmed")})
    assert done.status_code == 302 and done.headers["Location"].endswith(detail)
    shown = console.get(detail, base_url=CODEC)
    assert f"{basic.user.email} をすべての端末からログアウトさせました。" in notices_of(shown)

    assert theirs.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    assert refresh(theirs, rp, tokens["refresh_token"]).status_code == 400
    assert fetch(app, User, id=basic.user.id).status == "active"
    events = fetch_all(app, AuditEvent, action="user.sessions_revoked")
    assert [(e.actor, e.target, e.contract_id) for e in events] == [
        (f"user:{basic.admin.id}", f"user:{basic.user.id}", basic.contract_id)]
    assert rows(audit_page(console, action="user.sessions"))[0]["who"] == basic.admin.email


def test_the_revocation_needs_the_pages_csrf_token(app, console, basic):
    epoch = fetch(app, User, id=basic.user.id).session_epoch
    response = console.post(f"/admin/users/{basic.user.id}/sessions/revoke", base_url=CODEC,
                            data={"confirmed": "yes"})
    assert response.status_code in (400, 403)
    assert fetch(app, User, id=basic.user.id).session_epoch == epoch


def test_an_admin_cannot_sign_the_owner_out_but_the_owner_may_sign_themselves_out(
        app, console, basic):
    owner_detail = f"/admin/users/{basic.owner.id}"
    epoch = fetch(app, User, id=basic.owner.id).session_epoch
    assert "/sessions/revoke" not in console.get(owner_detail, base_url=CODEC).get_data(
        as_text=True)
    refused = submit(console, INVITE, owner_detail + "/sessions/revoke", confirmed="yes")
    assert refused.status_code == 400
    refused = submit(console, INVITE, owner_detail + "/browsers/forget", confirmed="yes")
    assert refused.status_code == 400
    assert fetch(app, User, id=basic.owner.id).session_epoch == epoch
    assert fetch_all(app, AuditEvent, action="user.sessions_revoked") == []

    own = app.test_client()
    sign_in(own, email=basic.owner.email)
    done = submit(own, owner_detail, owner_detail + "/sessions/revoke", confirmed="yes")
    assert done.status_code == 302
    assert fetch(app, User, id=basic.owner.id).session_epoch == epoch + 1
    # The owner's own console session ended with the rest: they sign in again.
    again = own.get(owner_detail, base_url=CODEC)
    assert again.status_code == 302 and "/login" in again.headers["Location"]


# -- forget remembered browsers -----------------------------------------------------------


def test_forgetting_remembered_browsers_asks_first_then_counts_none_and_is_audited(
        app, console, basic):
    remember_browsers(app, basic.user, 2)
    detail = f"/admin/users/{basic.user.id}"
    page = console.get(detail, base_url=CODEC)
    assert re.search(r'<dd class="user-browsers">2 台</dd>', page.get_data(as_text=True))

    asked = submit(console, detail, detail + "/browsers/forget")
    assert asked.status_code == 200 and "解除しますか" in text_of(asked)
    assert live_browsers(app, basic.user) == 2
    html = asked.get_data(as_text=True)
    done = console.post(detail + "/browsers/forget", base_url=CODEC, data={
        "csrf_token": csrf_from(html), "confirmed": hidden(html, "confirmed")})
    assert done.status_code == 302

    after = console.get(detail, base_url=CODEC)
    assert "記憶したブラウザを 2 台解除しました。" in notices_of(after)
    assert re.search(r'<dd class="user-browsers">0 台</dd>', after.get_data(as_text=True))
    assert "/browsers/forget" not in after.get_data(as_text=True)
    assert live_browsers(app, basic.user) == 0
    events = fetch_all(app, AuditEvent, action="mfa.browsers_revoked_by_admin")
    assert [(e.actor, e.target, e.details) for e in events] == [
        (f"user:{basic.admin.id}", f"user:{basic.user.id}", {"count": 2})]


# -- tenants ------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["sessions/revoke", "browsers/forget"])
def test_another_contracts_user_is_404_and_nothing_changes(app, console, basic, trial, action):
    remember_browsers(app, trial.user, 1)
    epoch = fetch(app, User, id=trial.user.id).session_epoch
    for confirmed in ("", "yes"):
        response = submit(console, INVITE, f"/admin/users/{trial.user.id}/{action}",
                          confirmed=confirmed)
        assert response.status_code == 404
    assert console.get(f"/admin/users/{trial.user.id}", base_url=CODEC).status_code == 404
    assert fetch(app, User, id=trial.user.id).session_epoch == epoch
    assert live_browsers(app, trial.user) == 1
    with app.app_context():
        assert db.session.query(AuditEvent).filter(AuditEvent.action.in_(
            ["user.sessions_revoked", "mfa.browsers_revoked_by_admin"])).count() == 0


def test_the_log_cannot_be_filtered_onto_another_contracts_user(app, console, basic, trial):
    seed(app, trial.contract_id, "user.disabled", at=jst(2026, 1, 7),
         target=f"user:{trial.user.id}")
    for who in (trial.user.id, trial.user.email):
        response = audit_page(console, user=who)
        assert response.status_code == 200 and rows(response) == []


# -- English --------------------------------------------------------------------------------


def test_the_pages_read_in_english(app, console, basic):
    seed(app, basic.contract_id, "user.disabled", at=jst(2026, 1, 7),
         actor=f"user:{basic.owner.id}", target=f"user:{basic.user.id}")
    log = audit_page(console, lang="en", action="user.")
    words = plain_text(log)
    for text in ("Audit log", "Action (prefix)", "Target user", "When (JST)", "1 events"):
        assert text in words, text
    assert rows(log)[0]["what"] == "User disabled user.disabled"

    remember_browsers(app, basic.user, 1)
    detail = f"/admin/users/{basic.user.id}"
    page = plain_text(console.get(detail, base_url=CODEC, headers=headers_for("en")))
    assert "Remembered browsers 1" in page and "Sign out everywhere" in page
    asked = submit(console, detail, detail + "/browsers/forget", ui="en")
    assert "Forget this user's remembered browsers?" in text_of(asked)


def test_control_characters_in_the_console_filters_are_ignored_not_an_error(app, basic):
    from tests.console_helpers import HOSTS, sign_in

    browser = app.test_client()
    sign_in(browser, email=basic.owner.email)
    base = HOSTS["codec"]
    assert browser.get("/admin/users?q=a%00b", base_url=base).status_code == 200
    assert browser.get("/admin/audit?action=user.%00&user=x%00",
                       base_url=base).status_code == 200

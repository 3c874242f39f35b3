"""Remembered browsers: the signed cookie bound to its user, and the settings-menu page that
lists and revokes them."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient

from idp.db import db
from idp.mfa import remember
from idp.models import AuditEvent, RememberedBrowser, User
from tests.settings_helpers import (
    EN,
    contract_with_members,
    menu_items,
    post,
    signed_in,
    text,
)

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
EDGE = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0"
DAY = 86400
MARK = '<strong class="this-browser">このブラウザ</strong>'


@pytest.fixture
def app(app: Flask) -> Flask:
    """The app plus a test-only page that remembers this browser as 2-step verification
    does: ``remember.remember`` in the request, the cookie set by the app's own hook."""

    def remember_here(user_id: str):
        row = remember.remember(db.session.get(User, user_id))
        db.session.commit()
        return jsonify(id=row.id)

    app.add_url_rule("/_test/remember/<user_id>", "test_remember_here", remember_here)
    return app


def remember_here(client: FlaskClient, user: User, *, agent: str = FIREFOX) -> int:
    """Remember ``client``'s browser for ``user``; the record's id."""
    response = client.get(f"/_test/remember/{user.id}", headers={"User-Agent": agent})
    assert response.status_code == 200
    return response.get_json()["id"]


def cookie_of(client: FlaskClient) -> str:
    cookie = client.get_cookie(remember.COOKIE)
    assert cookie is not None
    return cookie.value


def found(app: Flask, user: User, cookie: str | None) -> int | None:
    """The id of the live record ``remember.find`` sees for ``user`` with this cookie."""
    headers = {"Cookie": f"{remember.COOKIE}={cookie}"} if cookie is not None else {}
    with app.test_request_context(headers=headers):
        row = remember.find(db.session.get(User, user.id))
        return row.id if row is not None else None


def listed(response) -> dict[int, str]:
    """Browser id -> the text of its entry, in page order."""
    return {int(i): body for i, body in
            re.findall(r'<li data-browser="(\d+)">(.*?)</li>', text(response), re.S)}


def audits(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        events = list(db.session.query(AuditEvent).filter_by(action=action)
                      .order_by(AuditEvent.id))
        for event in events:
            db.session.expunge(event)
        return events


def revoked_at(app: Flask, browser_id: int) -> int | None:
    with app.app_context():
        return db.session.get(RememberedBrowser, browser_id).revoked_at


# -- the cookie ---------------------------------------------------------------------------


def test_remembering_sets_a_long_lived_http_only_cookie_for_the_whole_site(app, client, basic):
    response = client.get(f"/_test/remember/{basic.user.id}", headers={"User-Agent": FIREFOX})
    header = next(h for h in response.headers.getlist("Set-Cookie")
                  if h.startswith(remember.COOKIE + "="))
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Path=/" in header
    assert f"Max-Age={30 * DAY}" in header
    assert found(app, basic.user, cookie_of(client)) == response.get_json()["id"]


def test_the_cookie_names_the_user_and_only_a_hash_of_its_token_is_stored(app, client, basic):
    browser = remember_here(client, basic.user)
    with app.app_context():
        row = db.session.get(RememberedBrowser, browser)
        assert row.label == FIREFOX
        assert len(row.token_hash) == 64
        assert row.token_hash not in cookie_of(client)


def test_a_forged_cookie_is_not_remembered(app, client, basic):
    remember_here(client, basic.user)
    cookie = cookie_of(client)
    payload, signature = cookie.rsplit(".", 1)
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert found(app, basic.user, forged) is None
    assert found(app, basic.user, "not-even-a-cookie") is None
    assert found(app, basic.user, None) is None


def test_a_cookie_remembered_for_one_user_does_not_remember_another(app, client, basic):
    remember_here(client, basic.owner)
    cookie = cookie_of(client)
    assert found(app, basic.owner, cookie) is not None
    assert found(app, basic.user, cookie) is None
    assert found(app, basic.admin, cookie) is None


def test_a_token_moved_under_another_users_name_is_not_remembered(app, client, basic):
    # Even a correctly signed cookie that names user B with A's token does not count:
    # the record names its own user. (Only someone with the server's secret could sign it.)
    remember_here(client, basic.owner)
    with app.test_request_context(headers={"Cookie": f"{remember.COOKIE}={cookie_of(client)}"}):
        [[owner_id, token]] = remember._entries()
        assert owner_id == basic.owner.id
        moved = remember._serializer().dumps([[basic.user.id, token]])
    assert found(app, basic.user, moved) is None


def test_one_browser_remembers_a_few_users_each_for_itself(app, client, basic):
    owner_browser = remember_here(client, basic.owner)
    user_browser = remember_here(client, basic.user)
    cookie = cookie_of(client)
    assert found(app, basic.owner, cookie) == owner_browser
    assert found(app, basic.user, cookie) == user_browser
    assert found(app, basic.admin, cookie) is None


def test_a_remembered_browser_ends_when_it_expires(app, client, clock, basic):
    remember_here(client, basic.user)
    cookie = cookie_of(client)
    clock.advance(30 * DAY - 60)
    assert found(app, basic.user, cookie) is not None
    clock.advance(120)
    assert found(app, basic.user, cookie) is None


# -- the settings menu link ---------------------------------------------------------------


@pytest.mark.parametrize(("plan", "role"), [
    ("basic", "owner"), ("basic", "admin"), ("basic", "user"), ("trial", "owner"),
    ("trial", "user"),
], ids=["basic-owner", "basic-admin", "basic-user", "trial-owner", "trial-user"])
def test_everyone_in_the_settings_menu_gets_a_link_to_their_remembered_browsers(
        app, client, factory, plan, role):
    members = contract_with_members(app, factory, plan=plan)
    signed_in(client, members.by_role(role).email)
    menu = client.get("/settings")
    assert 'href="/settings/browsers"' in text(menu)
    assert "記憶したブラウザ" in text(menu)
    assert "browsers" not in menu_items(menu)  # not one of the SPEC §2 items
    assert client.get("/settings/browsers").status_code == 200


def test_the_owner_of_an_ended_trial_has_no_remembered_browsers_page(app, client, clock, trial):
    browser = remember_here(client, trial.owner)
    clock.advance(30 * DAY + 60)
    signed_in(client, trial.owner.email)
    menu = client.get("/settings")
    assert menu_items(menu) == ["plan_change"]
    assert "/settings/browsers" not in text(menu)
    assert client.get("/settings/browsers").status_code == 403
    assert post(client, f"/settings/browsers/{browser}/revoke").status_code == 403
    assert post(client, "/settings/browsers/revoke-all").status_code == 403
    assert revoked_at(app, browser) is None


def test_without_a_settings_session_the_page_sends_you_to_its_sign_in(app, client, basic):
    browser = remember_here(client, basic.user)
    for response in (client.get("/settings/browsers"),
                     post(client, f"/settings/browsers/{browser}/revoke"),
                     post(client, "/settings/browsers/revoke-all")):
        assert response.status_code == 302
        assert response.headers["Location"].endswith("/settings/login")
    assert revoked_at(app, browser) is None


# -- the list -----------------------------------------------------------------------------


def test_the_list_shows_only_the_users_live_browsers(app, client, clock, factory, basic):
    expired = remember_here(app.test_client(), basic.user, agent="Old/1.0")
    clock.advance(29 * DAY)
    live = remember_here(app.test_client(), basic.user, agent=FIREFOX)
    revoked = remember_here(app.test_client(), basic.user, agent="Revoked/1.0")
    with app.app_context():
        assert remember.revoke(db.session.get(User, basic.user.id), revoked)
        db.session.commit()
    others = remember_here(app.test_client(), basic.admin, agent="Admins/1.0")
    clock.advance(2 * DAY)
    newest = remember_here(app.test_client(), basic.user, agent=SAFARI)

    signed_in(client, basic.user.email)
    page = client.get("/settings/browsers")
    assert page.status_code == 200
    entries = listed(page)
    assert list(entries) == [newest, live]  # the most recently used first
    assert "Safari" in entries[newest] and "Firefox" in entries[live]
    for gone, agent in ((expired, "Old/1.0"), (revoked, "Revoked/1.0"), (others, "Admins/1.0")):
        assert gone not in entries
        assert agent not in text(page)


def test_each_browser_shows_when_it_was_remembered_used_and_expires_in_japan_time(
        app, client, basic):
    browser = remember_here(app.test_client(), basic.user)
    with app.app_context():
        row = db.session.get(RememberedBrowser, browser)
        row.created_at = row.last_seen_at = 1_767_225_600  # 2026-01-01 00:00 UTC
        row.expires_at = 2_000_000_000
        db.session.commit()
    signed_in(client, basic.user.email)
    entry = listed(client.get("/settings/browsers"))[browser]
    assert entry.count("2026-01-01 09:00") == 2  # remembered and last used, JST
    assert "2033-05-18 12:33" in entry  # expiry, JST
    for label in ("記憶した日時", "最終利用日時", "有効期限"):
        assert label in entry


def test_the_browser_you_are_using_is_marked(app, client, basic):
    elsewhere = remember_here(app.test_client(), basic.user, agent=SAFARI)
    here = remember_here(client, basic.user, agent=FIREFOX)
    signed_in(client, basic.user.email)
    page = client.get("/settings/browsers")
    entries = listed(page)
    assert MARK in entries[here]
    assert MARK not in entries[elsewhere]
    assert text(page).count(MARK) == 1


def test_another_users_cookie_in_this_browser_marks_nothing(app, client, basic):
    remember_here(client, basic.owner, agent=FIREFOX)
    mine = remember_here(app.test_client(), basic.user, agent=SAFARI)
    signed_in(client, basic.user.email)
    page = client.get("/settings/browsers")
    assert list(listed(page)) == [mine]
    assert 'class="this-browser"' not in text(page)


def test_a_long_or_hostile_user_agent_is_shortened_and_escaped(app, client, basic):
    agent = "<script>alert(1)</script> " + "x" * 150
    browser = remember_here(client, basic.user, agent=agent)
    signed_in(client, basic.user.email)
    page = client.get("/settings/browsers")
    raw = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    shown = re.search(r'<span class="label" title="[^"]*">([^<]*)</span>', raw).group(1)
    assert html.unescape(shown) == agent[:59] + "…"
    assert browser in listed(page)


def test_a_browser_without_user_agent_is_listed_as_unknown(app, client, basic):
    browser = remember_here(client, basic.user, agent="")
    signed_in(client, basic.user.email)
    assert "不明なブラウザ" in listed(client.get("/settings/browsers"))[browser]


def test_with_no_remembered_browser_the_page_says_so(client, basic):
    signed_in(client, basic.user.email)
    page = text(client.get("/settings/browsers"))
    assert "記憶したブラウザはありません。" in page
    assert "すべて解除" not in page


def test_the_page_is_in_english_with_accept_language_en(app, client, basic):
    here = remember_here(client, basic.user)
    signed_in(client, basic.user.email, headers=EN)
    page = client.get("/settings/browsers", headers=EN)
    assert '<html lang="en">' in page.get_data(as_text=True)
    assert "Remembered browsers" in text(page)
    entry = listed(page)[here]
    for words in ("This browser", "Remembered", "Last used", "Expires", "Remove"):
        assert words in entry
    assert "Remove all" in text(page)
    assert "このブラウザ</strong>" not in text(page)
    menu = client.get("/settings", headers=EN)
    assert "Remembered browsers" in text(menu)


# -- revoking -----------------------------------------------------------------------------


def test_revoking_a_browser_ends_it_and_is_audited(app, client, basic):
    here = remember_here(client, basic.user, agent=FIREFOX)
    other = remember_here(app.test_client(), basic.user, agent=SAFARI)
    cookie = cookie_of(client)
    signed_in(client, basic.user.email)
    response = post(client, f"/settings/browsers/{here}/revoke")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/settings/browsers?done=revoked")
    assert found(app, basic.user, cookie) is None
    page = client.get(response.headers["Location"])
    assert "ブラウザの記憶を解除しました。" in text(page)
    assert list(listed(page)) == [other]
    [event] = audits(app, "mfa.browser_revoked")
    assert event.actor == f"user:{basic.user.id}"
    assert event.target == f"user:{basic.user.id}"
    assert event.contract_id == basic.contract_id
    assert event.details == {"browser_id": here, "label": FIREFOX}


def test_revoking_another_users_browser_is_not_found_and_changes_nothing(app, client, basic):
    owners = remember_here(client, basic.owner)
    cookie = cookie_of(client)
    signed_in(client, basic.user.email)
    assert post(client, f"/settings/browsers/{owners}/revoke").status_code == 404
    assert revoked_at(app, owners) is None
    assert found(app, basic.owner, cookie) == owners
    assert audits(app, "mfa.browser_revoked") == []


@pytest.mark.parametrize("browser_id", ["999999", "99999999999999999999"],
                         ids=["unknown", "beyond-any-integer-column"])
def test_revoking_an_unknown_browser_is_not_found(client, basic, browser_id):
    signed_in(client, basic.user.email)
    assert post(client, f"/settings/browsers/{browser_id}/revoke").status_code == 404


def test_revoking_an_already_revoked_browser_is_not_found_and_not_audited_twice(
        app, client, basic):
    browser = remember_here(client, basic.user)
    signed_in(client, basic.user.email)
    assert post(client, f"/settings/browsers/{browser}/revoke").status_code == 302
    assert post(client, f"/settings/browsers/{browser}/revoke").status_code == 404
    assert len(audits(app, "mfa.browser_revoked")) == 1


def test_revoking_takes_a_post_with_the_pages_csrf_token(app, client, basic):
    browser = remember_here(client, basic.user)
    signed_in(client, basic.user.email)
    assert client.get(f"/settings/browsers/{browser}/revoke").status_code == 405
    assert client.post(f"/settings/browsers/{browser}/revoke").status_code == 400
    assert client.post("/settings/browsers/revoke-all").status_code == 400
    assert revoked_at(app, browser) is None


def test_revoke_all_ends_every_browser_of_the_user_and_no_one_elses(app, client, basic):
    here = remember_here(client, basic.user, agent=FIREFOX)
    remember_here(app.test_client(), basic.user, agent=SAFARI)
    admins = remember_here(app.test_client(), basic.admin, agent=EDGE)
    cookie = cookie_of(client)
    signed_in(client, basic.user.email)
    response = post(client, "/settings/browsers/revoke-all")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/settings/browsers?done=revoked_all")
    page = text(client.get(response.headers["Location"]))
    assert "すべてのブラウザの記憶を解除しました。" in page
    assert "記憶したブラウザはありません。" in page
    assert found(app, basic.user, cookie) is None
    with app.app_context():
        assert remember.listing(db.session.get(User, basic.user.id)) == []
        assert [r.id for r in remember.listing(db.session.get(User, basic.admin.id))] == [admins]
    [event] = audits(app, "mfa.browsers_revoked_all")
    assert event.actor == event.target == f"user:{basic.user.id}"
    assert event.details == {"count": 2}
    assert here not in listed(client.get("/settings/browsers"))

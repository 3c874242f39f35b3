"""A cancelled contract or an ended trial cuts its users off: sign-in, sessions, tokens."""

from __future__ import annotations

import pytest

from tests.helpers import (
    PASSWORD,
    authorize,
    bearer,
    endpoint_request,
    query_of,
    refresh,
    tokens_for,
)
from tests.signin_helpers import (
    BRAND_URLS,
    WRONG,
    audit_actions,
    error_texts,
    login,
    page_text,
    signed_in,
    trial_user,
    update_contract,
)

DAY = 86400
OFFLINE = "openid profile offline_access"


def cancel(app, user) -> None:
    update_contract(app, user.contract_id, status="cancelled", cancelled_at=1)


@pytest.mark.parametrize(("brand", "lang"), [("codec", "ja"), ("work", "en")],
                         ids=["codec-ja", "work-en"])
def test_cancelled_contract_refuses_sign_in_with_a_clear_page(app, client, factory, brand,
                                                              lang):
    user = factory.user(email="cancelled@example.com", brand=brand)
    cancel(app, user)
    response = login(client, user.email, base_url=BRAND_URLS[brand], lang=lang)
    assert response.status_code == 403
    assert not signed_in(response)
    text = error_texts(response)[0]
    assert ("解約されている" in text) if lang == "ja" else ("cancelled" in text)
    assert ("contract_cancelled" in repr(audit_actions(app, user.id)))


def test_the_contract_state_is_told_only_to_someone_who_knows_the_password(
        app, client, factory):
    user = factory.user(email="secret@example.com")
    cancel(app, user)
    wrong = login(client, user.email, WRONG)
    unknown = login(client, "nobody@example.com", WRONG)
    assert wrong.status_code == unknown.status_code == 401
    assert error_texts(wrong) == error_texts(unknown)
    assert "解約" not in page_text(wrong)


def test_owner_of_an_ended_trial_is_told_the_plan_can_still_change(app, client, clock):
    owner = trial_user(app, email="trial-owner@example.com")
    assert signed_in(login(client, owner.email))
    clock.advance(30 * DAY)
    response = login(app.test_client(), owner.email)
    assert response.status_code == 403
    html = page_text(response)
    assert "無料トライアルの期間（30日間）が終了" in html
    assert "プラン変更" in html
    assert 'href="/settings/login"' in html
    english = page_text(login(app.test_client(), owner.email, lang="en"))
    assert "change to the basic plan" in english


def test_other_users_of_an_ended_trial_are_asked_to_turn_to_the_owner(app, client, factory,
                                                                       clock):
    owner = trial_user(app, email="trial-owner2@example.com")
    member = factory.user(email="member@example.com", contract_id=owner.contract_id,
                          role="user")
    clock.advance(31 * DAY)
    response = login(client, member.email)
    assert response.status_code == 403
    html = page_text(response)
    assert "契約者の方に" in html
    assert "/settings/login" not in html


def test_a_trial_past_its_plan_change_window_is_simply_over(app, client, clock):
    owner = trial_user(app, email="trial-over@example.com")
    clock.advance(45 * DAY)
    response = login(client, owner.email)
    assert response.status_code == 403
    assert "自動的に解約" in page_text(response)
    assert "/settings/login" not in page_text(response)


def test_existing_sessions_stop_working_when_the_contract_is_cancelled(app, client, factory):
    user = factory.user(email="session@example.com")
    rp = factory.rp(first_party=True)
    assert signed_in(login(client, user.email))
    assert client.get("/signed-in").status_code == 200
    cancel(app, user)
    assert client.get("/signed-in").status_code == 302
    # Silent authentication fails, and an interactive one asks for the password again.
    silent = authorize(client, rp, prompt="none")
    assert query_of(silent.headers["Location"])["error"] == "login_required"
    assert "/login" in authorize(client, rp).headers["Location"]


def test_existing_sessions_stop_working_when_the_trial_ends(app, client, factory):
    owner = trial_user(app, email="trial-session@example.com")
    rp = factory.rp(first_party=True)
    assert signed_in(login(client, owner.email))
    # The trial ends by the clock alone; here we move its end rather than the clock, so the
    # session itself has not expired.
    update_contract(app, owner.contract_id, trial_ends_at=1)
    assert client.get("/signed-in").status_code == 302
    silent = authorize(client, rp, prompt="none")
    assert query_of(silent.headers["Location"])["error"] == "login_required"


@pytest.mark.parametrize("how", ["cancelled", "trial_ended"])
def test_tokens_stop_working_when_the_contract_ends(app, client, factory, how):
    if how == "cancelled":
        user = factory.user(email="tokens@example.com")
    else:
        user = trial_user(app, email="tokens@example.com")
    rp = factory.rp()
    tokens = tokens_for(client, rp, user, scope=OFFLINE)
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    introspected = endpoint_request(client, rp, "/introspect", token=tokens["access_token"])
    assert introspected.json["active"] is True

    if how == "cancelled":
        cancel(app, user)
    else:
        update_contract(app, user.contract_id, trial_ends_at=1)

    response = refresh(client, rp, tokens["refresh_token"])
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"
    info = client.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert info.status_code == 401
    assert 'error="invalid_token"' in info.headers["WWW-Authenticate"]
    for token in (tokens["access_token"], tokens["refresh_token"]):
        body = endpoint_request(client, rp, "/introspect", token=token).json
        assert body == {"active": False}


def test_settings_menu_sign_in_admits_the_owner_of_an_ended_trial_only(app, factory, clock):
    from idp.signin import password_sign_in

    owner = trial_user(app, email="plan@example.com")
    member = factory.user(email="plan-member@example.com", contract_id=owner.contract_id,
                          role="user")
    clock.advance(31 * DAY)
    with app.test_request_context("/settings/login", method="POST"):
        assert password_sign_in(owner.email, PASSWORD).user is None
        assert password_sign_in(owner.email, PASSWORD,
                                admit_ended_trial_owner=True).user is not None
        refused = password_sign_in(member.email, PASSWORD, admit_ended_trial_owner=True)
        assert refused.user is None and refused.status == 403
    clock.advance(15 * DAY)
    with app.test_request_context("/settings/login", method="POST"):
        late = password_sign_in(owner.email, PASSWORD, admit_ended_trial_owner=True)
        assert late.user is None and late.contract_state == "expired"

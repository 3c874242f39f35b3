"""2-step verification at sign-in (SPEC §4.3-4.5): enrolment, verification, remembered
browsers, the 30-day rule, and what the ID token says happened (acr, amr, auth_time)."""

from __future__ import annotations

import pytest

from tests.helpers import (
    PASSWORD,
    authorize,
    consent_if_asked,
    exchange,
    sign_in,
    verify_id_token,
)
from tests.mfa_helpers import (
    E164,
    app_time,
    enrol_sms,
    enrol_totp,
    errors,
    follow,
    location,
    password_then_chain,
    post_step,
    press_sign_in,
    recovery_code_of,
    sms_code,
    step_of,
    text,
    tick_saved,
    totp_code,
)
from tests.signin_helpers import audit_actions, configure, update_contract

LOA1, LOA2 = "urn:idp:loa:1", "urn:idp:loa:2"
DAY = 86400


@pytest.fixture
def user(factory):
    return factory.user(two_step=True)


def id_token_claims(client, rp, response) -> dict:
    response = consent_if_asked(client, response)
    code = location(response)
    assert code.startswith(rp.redirect_uri), code
    from tests.helpers import query_of

    body = exchange(client, rp, query_of(code)["code"])
    assert body.status_code == 200, body.json
    return verify_id_token(client, body.json["id_token"], audience=rp.client_id)[1]


def enrolled_with_sms(client, rp, user, sms, *, remember: bool = False) -> str:
    """Sign in once, enrolling SMS; returns the recovery code shown."""
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    response, code = enrol_sms(client, sms, page, remember=remember)
    id_token_claims(client, rp, response)
    return code


def sign_out(client) -> None:
    client.delete_cookie("idp_session")


# -- the first sign-in: enrolment --------------------------------------------------------


def test_the_first_sign_in_asks_for_a_phone_number_first(client, rp, user):
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    assert page.status_code == 200
    assert step_of(page) == "sms"
    assert "2段階認証の設定" in text(page)
    assert "携帯電話番号" in text(page)
    # ... with the switch to the authenticator app, and no recovery code yet.
    assert 'data-step="totp"' in text(page)
    assert 'data-step="recovery"' not in text(page)


def test_no_session_starts_before_the_second_factor(client, rp, user):
    response = sign_in(client, location(authorize(client, rp)), email=user.email)
    assert location(response).startswith("/mfa?flow=")
    assert not any(h.startswith("idp_session=") for h in response.headers.getlist("Set-Cookie"))
    assert location(client.get("/signed-in")).endswith("/login")


def test_sms_enrolment_sends_a_code_shows_the_recovery_code_once_then_signs_in(
        client, app, rp, user, sms):
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    code_page = post_step(client, page, action="phone", phone="０９０－１２３４－５６７８")
    assert code_page.status_code == 200, text(code_page)[:400]
    [message] = sms.received
    assert message.json["to"] == E164
    assert message.json["sender"] == "codec"
    assert message.json["text"].startswith("【コーデックストレージ】認証コード: ")
    assert "+81 90-****-5678" in text(code_page)

    shown = post_step(client, code_page, action="code", code=sms_code(sms))
    recovery = recovery_code_of(shown)
    assert len(recovery.replace("-", "")) == 20
    # The tick is required: without it the same page (and code) again.
    unticked = tick_saved(client, shown, saved=False)
    assert unticked.status_code == 400
    assert recovery_code_of(unticked) == recovery
    done = tick_saved(client, shown)
    assert "2段階認証完了" in text(done)
    claims = id_token_claims(client, rp, press_sign_in(client, done))
    assert claims["acr"] == LOA2
    assert claims["amr"] == ["pwd", "sms", "mfa"]
    actions = [a for a, _ in audit_actions(app, user.id)]
    assert "mfa.enrolled" in actions and "mfa.passed" in actions
    # Shown once: the flow that held it is gone once the sign-in is complete.
    again = press_sign_in(client, done)
    assert again.status_code == 400
    assert recovery not in text(again)


def test_totp_enrolment_shows_a_server_rendered_qr_code_and_the_secret(client, app, rp, user):
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    totp = client.get(f"{location_of_page(page)}&step=totp")
    assert step_of(totp) == "totp"
    html = text(totp)
    assert 'src="data:image/svg+xml' in html  # rendered here, no third-party QR service
    assert "https://" not in html.split("<main>")[1].split("</main>")[0]
    response, secret, _ = enrol_totp(app, client, page)
    assert len(secret) == 32
    claims = id_token_claims(client, rp, response)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == LOA2


def location_of_page(page) -> str:
    from tests.helpers import form_fields

    return f"/mfa?flow={form_fields(text(page))['flow']}"


def test_a_wrong_enrolment_code_enrols_nothing(client, app, rp, user, sms):
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    code_page = post_step(client, page, action="phone", phone="09012345678")
    wrong = "000000" if sms_code(sms) != "000000" else "111111"
    refused = post_step(client, code_page, action="code", code=wrong)
    assert refused.status_code == 400
    assert errors(refused) == ["認証コードが正しくありません。もう一度入力してください。"]
    from idp.models import Factor
    from tests.signin_helpers import database

    with database(app) as session:
        assert session.query(Factor).filter_by(user_id=user.id).count() == 0


@pytest.mark.parametrize(("typed", "message"), [
    ("03-1234-5678", "SMSを受信できる携帯電話番号（070・080・090で始まる番号）"),
    ("0120-FLOWERS", "携帯電話番号が正しくありません。"),
    ("+1 415 555 2671", "この国・地域の電話番号にはSMSを送信できません。"),
], ids=["fixed-line", "letters", "abroad"])
def test_numbers_that_cannot_get_a_code_are_refused_in_the_users_language(
        client, rp, user, sms, typed, message):
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    refused = post_step(client, page, action="phone", phone=typed)
    assert refused.status_code == 400
    [shown] = errors(refused)
    assert shown.startswith(message)
    assert sms.received == []


# -- later sign-ins: verification --------------------------------------------------------


def test_a_later_sign_in_sends_a_code_to_the_enrolled_number(client, app, rp, user, sms, clock):
    enrolled_with_sms(client, rp, user, sms)
    sign_out(client)
    clock.advance(120)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    assert step_of(page) == "sms"
    assert "2段階認証の設定" not in text(page)
    assert len(sms.received) == 2
    assert 'data-step="recovery"' in text(page)  # "lost my device"
    claims = id_token_claims(client, rp, post_step(client, page, action="code",
                                                   code=sms_code(sms)))
    assert claims["amr"] == ["pwd", "sms", "mfa"]


def test_a_totp_code_cannot_be_used_twice(client, app, rp, user, clock):
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    response, secret, _ = enrol_totp(app, client, page)
    id_token_claims(client, rp, response)
    sign_out(client)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    assert step_of(page) == "totp"
    # The code that enrolled the app, again within its 30 s: refused.
    replay = post_step(client, page, code=totp_code(app, secret))
    assert replay.status_code == 400
    clock.advance(30)
    claims = id_token_claims(client, rp, post_step(client, page, code=totp_code(app, secret)))
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_the_sms_code_expires_after_five_minutes(client, rp, user, sms, clock):
    enrolled_with_sms(client, rp, user, sms)
    sign_out(client)
    clock.advance(120)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    clock.advance(301)
    expired = post_step(client, page, action="code", code=sms_code(sms))
    assert expired.status_code == 400
    assert errors(expired)[0].startswith("認証コードの有効期限が切れました。")


def test_five_wrong_tries_void_the_sms_code(client, rp, user, sms, clock):
    enrolled_with_sms(client, rp, user, sms)
    sign_out(client)
    clock.advance(120)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    right = sms_code(sms)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        assert post_step(client, page, action="code", code=wrong).status_code == 400
    late = post_step(client, page, action="code", code=right)
    assert late.status_code == 400
    assert "規定回数以上間違えた" in errors(late)[0]
    # A new code works.
    clock.advance(61)
    resent = post_step(client, page, action="resend")
    assert resent.status_code == 200
    assert location(post_step(client, page, action="code", code=sms_code(sms)))


def test_a_new_code_waits_60_seconds_and_sends_are_limited_per_hour(client, rp, user, sms, clock):
    # The hourly limit counts in fixed windows of the app clock: start at one's beginning.
    clock.advance(3600 - app_time(client.application) % 3600)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    code_page = post_step(client, page, action="phone", phone="09012345678")
    too_soon = post_step(client, code_page, action="resend")
    assert too_soon.status_code == 429
    assert int(too_soon.headers["Retry-After"]) <= 60
    assert len(sms.received) == 1
    for _ in range(4):
        clock.advance(61)
        assert post_step(client, code_page, action="resend").status_code == 200
    clock.advance(61)
    limited = post_step(client, code_page, action="resend")
    assert limited.status_code == 429
    assert errors(limited)[0].startswith("認証コードの送信回数が上限に達しました。")
    assert len(sms.received) == 5


def test_a_failed_send_says_so_and_lets_the_user_retry_or_switch(client, rp, user, sms, clock):
    sms.status = 503
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    failed = post_step(client, page, action="phone", phone="09012345678")
    assert failed.status_code == 502
    assert errors(failed)[0].startswith("SMSを送信できませんでした。")
    assert 'data-step="totp"' in text(failed)
    sms.status = 202
    retried = post_step(client, failed, action="phone", phone="09012345678")
    assert retried.status_code == 200
    assert "+81 90-****-5678" in text(retried)


def test_wrong_codes_are_limited_per_user_across_sign_ins(client, app, rp, user, clock):
    configure(app, mfa_failures_per_user=3)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    _, secret, _ = enrol_totp(app, client, page)
    sign_out(client)
    clock.advance(60)
    for _ in range(3):
        page = password_then_chain(client, authorize(client, rp), email=user.email)
        wrong = "000000" if totp_code(app, secret) != "000000" else "111111"
        assert post_step(client, page, code=wrong).status_code == 400
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    limited = post_step(client, page, code=totp_code(app, secret))
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers
    assert ("mfa.failed", {"factor": "totp"}) in audit_actions(app, user.id)


# -- recovery code ------------------------------------------------------------------------


def test_the_recovery_code_signs_in_and_is_replaced_by_a_new_one(client, rp, user, sms, clock):
    first = enrolled_with_sms(client, rp, user, sms)
    sign_out(client)
    clock.advance(120)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    lost = client.get(f"{location_of_page(page)}&step=recovery")
    assert step_of(lost) == "recovery"
    # As copied: lower case, spaces for hyphens.
    shown = post_step(client, lost, code=" " + first.lower().replace("-", " ") + " ")
    second = recovery_code_of(shown)
    assert second != first
    assert "これまでのリカバリーコードは使用できなくなりました" in text(shown)
    claims = id_token_claims(client, rp, tick_saved(client, shown))
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    sign_out(client)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    lost = client.get(f"{location_of_page(page)}&step=recovery")
    assert post_step(client, lost, code=first).status_code == 400
    assert location(tick_saved(client, post_step(client, lost, code=second)))


# -- contract setting, remembered browsers and the 30-day rule ---------------------------


def test_no_second_factor_when_the_contract_turned_two_step_off(client, rp, user):
    update_contract(client.application, user.contract_id, two_step_enabled=False)
    response = sign_in(client, location(authorize(client, rp)), email=user.email)
    claims = id_token_claims(client, rp, response)
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == LOA1


def test_a_remembered_browser_is_not_asked_again(client, app, rp, user, sms, clock):
    enrolled_with_sms(client, rp, user, sms, remember=True)
    sign_out(client)
    clock.advance(29 * DAY)
    response = sign_in(client, location(authorize(client, rp)), email=user.email)
    claims = id_token_claims(client, rp, response)
    # Honest: no second factor ran in this sign-in.
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == LOA1


def test_a_remembered_browser_asks_again_after_30_days_without_sign_in(
        client, app, rp, user, sms, clock):
    configure(app, mfa_remember_days=90)
    enrolled_with_sms(client, rp, user, sms, remember=True)
    sign_out(client)
    clock.advance(30 * DAY)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    assert step_of(page) == "sms"


def test_a_browser_not_ticked_to_be_remembered_is_asked_every_time(client, rp, user, sms, clock):
    enrolled_with_sms(client, rp, user, sms, remember=False)
    sign_out(client)
    clock.advance(120)
    password_then_chain(client, authorize(client, rp), email=user.email)


def test_a_remembered_browser_counts_for_its_own_user_only(client, factory, rp, user, sms, clock):
    enrolled_with_sms(client, rp, user, sms, remember=True)
    sign_out(client)
    colleague = factory.user(contract_id=user.contract_id, role="user",
                             email="colleague@example.com")
    page = password_then_chain(client, authorize(client, rp), email=colleague.email)
    assert step_of(page) == "sms"
    assert "2段階認証の設定" in text(page)


def test_the_flow_of_one_browser_is_useless_in_another(app, client, rp, user):
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    other = app.test_client()
    assert other.get(location_of_page(page)).status_code == 400


# -- the client asks for more: acr_values, max_age, prompt ------------------------------


def test_acr_values_loa2_runs_the_chain_even_on_a_remembered_browser(
        client, rp, user, sms, clock):
    enrolled_with_sms(client, rp, user, sms, remember=True)
    sign_out(client)
    clock.advance(120)
    page = password_then_chain(client, authorize(client, rp, acr_values=LOA2), email=user.email)
    claims = id_token_claims(client, rp, post_step(client, page, action="code",
                                                   code=sms_code(sms)))
    assert claims["acr"] == LOA2


def test_acr_values_loa2_enrols_users_of_a_contract_without_two_step(client, rp, factory, sms):
    user = factory.user(two_step=False)
    page = password_then_chain(client, authorize(client, rp, acr_values=LOA2), email=user.email)
    assert "2段階認証の設定" in text(page)
    response, _ = enrol_sms(client, sms, page)
    assert id_token_claims(client, rp, response)["acr"] == LOA2


def test_acr_values_listing_both_levels_accepts_the_weaker(client, rp, factory):
    user = factory.user(two_step=False)
    response = sign_in(client, location(authorize(client, rp, acr_values=f"{LOA1} {LOA2}")),
                       email=user.email)
    assert id_token_claims(client, rp, response)["acr"] == LOA1


def test_a_signed_in_user_steps_up_without_typing_the_password_again(client, rp, factory, sms):
    user = factory.user(two_step=False)
    first = id_token_claims(client, rp, sign_in(client, location(authorize(client, rp)),
                                                email=user.email))
    assert first["acr"] == LOA1
    response = authorize(client, rp, acr_values=LOA2)
    assert location(response).startswith("/mfa?flow=")
    page = follow(client, response)
    after, _ = enrol_sms(client, sms, page)
    second = id_token_claims(client, rp, after)
    assert second["acr"] == LOA2
    assert second["amr"] == ["pwd", "sms", "mfa"]
    # The same sign-in, raised: its session id and time stand.
    assert second["sid"] == first["sid"]
    assert second["auth_time"] == first["auth_time"]


def test_max_age_runs_the_chain_again_on_a_remembered_browser(client, rp, user, sms, clock):
    enrolled_with_sms(client, rp, user, sms, remember=True)
    clock.advance(600)
    response = authorize(client, rp, max_age="300")
    page = password_then_chain(client, response, email=user.email)
    claims = id_token_claims(client, rp, post_step(client, page, action="code",
                                                   code=sms_code(sms)))
    assert claims["acr"] == LOA2
    assert claims["auth_time"] >= claims["iat"] - 5


def test_a_user_of_an_upstream_account_cannot_reach_loa2(client, app, rp, factory):
    from tests.helpers import query_of
    from tests.signin_helpers import update_user

    user = factory.user(two_step=False)
    id_token_claims(client, rp, sign_in(client, location(authorize(client, rp)),
                                        email=user.email))
    update_user(app, user.id, login_method="google")
    refused = query_of(location(authorize(client, rp, acr_values=LOA2)))
    assert refused["error"] == "unmet_authentication_requirements"


# -- other sign-in pages pass the chain too ----------------------------------------------


def test_the_login_page_with_next_passes_the_chain(client, user, sms):
    page = client.get("/login?next=/admin/users")
    from tests.helpers import csrf_from

    response = client.post("/login", data={"csrf_token": csrf_from(text(page)),
                                           "email": user.email, "password": PASSWORD,
                                           "next": "/admin/users"})
    chain = follow(client, response)
    assert step_of(chain) == "sms"
    after, _ = enrol_sms(client, sms, chain)
    assert location(after) == "/admin/users"


def test_the_settings_menu_sign_in_passes_the_chain(client, user, sms):
    from tests.settings_helpers import sign_in as settings_sign_in

    response = settings_sign_in(client, user.email)
    assert location(response).startswith("/mfa?flow=")
    assert client.get("/settings").status_code in (302, 401, 403)
    after, _ = enrol_sms(client, sms, follow(client, response))
    assert location(after) == "/settings"
    assert client.get("/settings").status_code == 200


def test_chain_pages_speak_english(client, rp, user):
    response = sign_in(client, location(authorize(client, rp, ui_locales="en")),
                       email=user.email)
    page = follow(client, response)
    assert "Set up 2-step verification" in text(page)
    assert "Mobile phone number" in text(page)


def test_a_step_up_whose_session_ended_meanwhile_asks_for_the_password(client, rp, factory, sms):
    user = factory.user(two_step=False)
    id_token_claims(client, rp, sign_in(client, location(authorize(client, rp)),
                                        email=user.email))
    page = follow(client, authorize(client, rp, acr_values=LOA2))
    code_page = post_step(client, page, action="phone", phone="09012345678")
    sign_out(client)  # signed out in another tab
    response = post_step(client, code_page, action="code", code=sms_code(sms))
    assert "/login?flow=" in location(response)
    assert "recovery-code" not in text(response)
    assert not any(h.startswith("idp_session=") and not h.startswith("idp_session=;")
                   for h in response.headers.getlist("Set-Cookie"))


def test_signing_out_everywhere_mid_chain_voids_the_typed_password(client, app, rp, user, sms):
    from idp.contracts import revoke_user_access
    from tests.signin_helpers import database

    page = password_then_chain(client, authorize(client, rp), email=user.email)
    code_page = post_step(client, page, action="phone", phone="09012345678")
    with database(app) as session:
        revoke_user_access([user.id])  # e.g. the password was reset meanwhile
        session.commit()
    response = post_step(client, code_page, action="code", code=sms_code(sms))
    assert "/login?flow=" in location(response)
    from idp.models import Factor

    with database(app) as session:
        assert session.query(Factor).filter_by(user_id=user.id).count() == 0


def test_a_recovery_code_left_on_screen_is_not_shown_to_the_next_person_in_the_flow(
        client, rp, factory, sms):
    first = factory.user(two_step=True)
    page = password_then_chain(client, authorize(client, rp), email=first.email)
    code_page = post_step(client, page, action="phone", phone="09012345678")
    shown = post_step(client, code_page, action="code", code=sms_code(sms))
    secret = recovery_code_of(shown)
    # Walked away without ticking; someone else signs in in the same flow.
    second = factory.user(two_step=True, email="second@example.com")
    from tests.helpers import form_fields

    flow_id = form_fields(text(shown))["flow"]
    response = sign_in(client, f"/login?flow={flow_id}", email=second.email)
    nxt = follow(client, response)
    assert secret not in text(nxt)
    assert step_of(nxt) == "sms"

"""Line authentication and the access route (SPEC §7): requests from trusted and untrusted
addresses, on both hosts, under both routes; registered, unregistered, forged and malformed
lines; the West Japan page; the owner's break-glass sign-in; acr/amr in the tokens."""

from __future__ import annotations

import dataclasses

import pytest

from tests.helpers import PASSWORD, authorize, csrf_from, sign_in
from tests.mfa_helpers import (
    enrol_totp,
    follow,
    location,
    password_then_chain,
    post_step,
    step_of,
    text,
    totp_code,
)
from tests.signin_helpers import audit_actions, database, update_contract

LINE_AMR = "urn:idp:amr:line"
LOA1, LOA2 = "urn:idp:loa:1", "urn:idp:loa:2"
GATEWAY = "10.9.0.5"
STRANGER = "203.0.113.5"
EAST_LINE = "CAF1234567890"
WEST_LINE = "COP12345678"
#: The codec brand's internet host (config/brands/codec.toml).
INTERNET = "http://127.0.0.1:5000"


@pytest.fixture
def settings(settings):
    """The test client's own host (localhost) is the codec brand's line host here, and
    10.9.0.0/16 the carrier's gateways."""
    brands = dict(settings.brands)
    brands["codec"] = dataclasses.replace(brands["codec"], line_host="localhost")
    return settings.replace(brands=brands, line_gateways=("10.9.0.0/16",))


class Browser:
    """A test client whose every request goes to one host, from one address, with the
    headers a carrier's gateway would add."""

    def __init__(self, client, *, base_url: str | None = None, address: str = GATEWAY,
                 line_id: str | None = None, carrier: str | None = None):
        self.client = client
        self.base_url = base_url
        environ = client.environ_base
        environ["REMOTE_ADDR"] = address
        if line_id is not None:
            environ["HTTP_X_LINE_ID"] = line_id
        if carrier is not None:
            environ["HTTP_X_LINE_CARRIER"] = carrier

    def _kw(self, kwargs):
        if self.base_url:
            kwargs.setdefault("base_url", self.base_url)
        return kwargs

    def get(self, *args, **kwargs):
        return self.client.get(*args, **self._kw(kwargs))

    def post(self, *args, **kwargs):
        return self.client.post(*args, **self._kw(kwargs))

    def __getattr__(self, name):
        return getattr(self.client, name)


def over_line(app, line_id: str | None = EAST_LINE, **kwargs) -> Browser:
    return Browser(app.test_client(), line_id=line_id, **kwargs)


def over_internet(app, **kwargs) -> Browser:
    return Browser(app.test_client(), base_url=INTERNET, **kwargs)


def register_line(app, contract_id: str, line_id: str) -> None:
    from idp.clock import now
    from idp.models import ContractLine

    with database(app) as session:
        session.add(ContractLine(contract_id=contract_id, line_id=line_id, created_at=now(),
                                 created_by="test"))
        session.commit()


@pytest.fixture
def user(factory, app):
    """A password user of a contract with 2-step verification on and one east line."""
    user = factory.user(two_step=True)
    register_line(app, user.contract_id, EAST_LINE)
    return user


def silent_steps(http, response):
    """Follow the redirects through the chain's silent steps (the line): no page shown."""
    while response.status_code == 302 and location(response).startswith("/mfa?"):
        response = follow(http, response)
    return response


def id_token_claims(http, rp, response) -> dict:
    from tests.helpers import consent_if_asked, exchange, query_of, verify_id_token

    response = consent_if_asked(http, silent_steps(http, response))
    target = location(response)
    assert target.startswith(rp.redirect_uri), target
    body = exchange(http, rp, query_of(target)["code"])
    assert body.status_code == 200, body.json
    return verify_id_token(http, body.json["id_token"], audience=rp.client_id)[1]


def refused_page(response) -> str:
    assert response.status_code == 403, (response.status_code, text(response)[:300])
    page = text(response)
    assert "回線認証エラー" in page
    assert "ご利用の回線番号を正しく登録しているか" in page
    return page


# -- over a line ------------------------------------------------------------------------


def test_a_password_sign_in_over_a_registered_line_needs_no_second_factor(app, rp, user):
    browser = over_line(app)
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    claims = id_token_claims(browser, rp, response)
    assert claims["amr"] == ["pwd", LINE_AMR, "mfa"]
    assert claims["acr"] == LOA2
    assert ("mfa.passed", {"steps": ["line"], "step_up": False, "remembered": False}) in \
        audit_actions(app, user.id)


def test_the_line_meets_a_client_asking_for_level_two(app, rp, factory):
    user = factory.user(two_step=False)
    register_line(app, user.contract_id, EAST_LINE)
    browser = over_line(app)
    response = sign_in(browser, location(authorize(browser, rp, acr_values=LOA2)),
                       email=user.email)
    assert id_token_claims(browser, rp, response)["acr"] == LOA2


def test_an_unregistered_line_is_refused_with_what_the_admin_must_check(app, rp, user):
    browser = over_line(app, line_id="CAF9999999999")
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    page = refused_page(follow(browser, response))
    assert "CAF9999999999" in page  # the admin compares it with what they registered
    assert location(browser.get("/signed-in")).endswith("/login")  # no session
    assert ("signin.line_refused", {"route": "line", "line_id": "CAF9999999999",
                                    "access_route": "line+internet"}) in \
        audit_actions(app, user.id)


def test_a_line_of_another_contract_does_not_count(app, rp, user, factory):
    other = factory.user(two_step=True)
    register_line(app, other.contract_id, "CAF0000000001")
    browser = over_line(app, line_id="CAF0000000001")
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    refused_page(follow(browser, response))


def test_the_refusal_page_speaks_english(app, rp, user):
    browser = over_line(app, line_id="CAF9999999999")
    response = sign_in(browser, location(authorize(browser, rp, ui_locales="en")),
                       email=user.email)
    page = text(follow(browser, response))
    assert "Line authentication failed" in page
    assert "that the line ID of the line you use is registered correctly" in page


# -- forged and malformed headers -------------------------------------------------------


def test_a_line_header_from_an_untrusted_address_is_ignored(app, rp, user, caplog):
    browser = over_line(app, address=STRANGER)  # the registered line's ID, forged
    with caplog.at_level("WARNING", logger="idp.line_route"):
        response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    page = refused_page(follow(browser, response))
    assert EAST_LINE not in page
    assert any("not a configured gateway" in r.getMessage() for r in caplog.records)


def test_a_line_header_on_the_internet_host_is_ignored(app, rp, user, caplog):
    browser = over_internet(app, line_id=EAST_LINE)  # from a gateway address, even
    with caplog.at_level("WARNING", logger="idp.line_route"):
        page = password_then_chain(browser, authorize(browser, rp), email=user.email)
    assert step_of(page) == "sms"  # the internet route: 2-step verification
    assert any("internet host" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("asserted", [
    "CAF123", "caf1234567890", "CAF12345678901", "COP1234567", "XYZ1234567890",
    "CAF12345-7890", "CAF1234567890\r\nX: y", "",
], ids=["short", "lower-case", "long", "cop-short", "prefix", "symbol", "crlf", "empty"])
def test_a_malformed_line_id_from_the_gateway_is_no_line(app, rp, user, asserted):
    # The user's contract registered CAF1234567890: nothing here may be read as it.
    browser = over_line(app, line_id=asserted)
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    page = refused_page(follow(browser, response))
    assert "検出された回線番号" not in page


def test_a_line_request_without_any_line_id_is_refused(app, rp, user):
    browser = over_line(app, line_id=None)
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    refused_page(follow(browser, response))


# -- the access route ----------------------------------------------------------------------


def test_under_line_only_an_internet_sign_in_is_refused(app, rp, user):
    update_contract(app, user.contract_id, access_route="line-only")
    browser = over_internet(app)
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    page = refused_page(follow(browser, response))
    assert "登録された回線以外からはログインできません" in page
    assert "回線認証用のログイン画面" in page


def test_under_line_only_a_registered_line_signs_in_without_two_step(app, rp, user):
    update_contract(app, user.contract_id, access_route="line-only")
    browser = over_line(app)
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    claims = id_token_claims(browser, rp, response)
    assert claims["amr"] == ["pwd", LINE_AMR, "mfa"]


def test_under_line_only_the_login_page_with_next_is_refused_from_the_internet(app, user):
    update_contract(app, user.contract_id, access_route="line-only")
    browser = over_internet(app)
    page = browser.get("/login?next=/admin/users")
    response = browser.post("/login", data={"csrf_token": csrf_from(text(page)),
                                            "email": user.email, "password": PASSWORD,
                                            "next": "/admin/users"})
    refused_page(follow(browser, response))


def test_under_line_and_internet_the_internet_route_asks_for_two_step(app, rp, user):
    browser = over_internet(app)
    page = password_then_chain(browser, authorize(browser, rp), email=user.email)
    assert step_of(page) == "sms"


# -- West Japan -------------------------------------------------------------------------


def test_the_first_sign_in_over_a_west_japan_line_asks_to_notify_line_information(
        app, rp, user):
    register_line(app, user.contract_id, WEST_LINE)
    browser = over_line(app, line_id=WEST_LINE, carrier="west")
    page = password_then_chain(browser, authorize(browser, rp), email=user.email)
    assert "回線情報通知設定" in text(page)
    declined = post_step(browser, page, notify="no")
    assert declined.status_code == 400
    assert "「通知する」を選択してください" in text(declined)
    claims = id_token_claims(browser, rp, post_step(browser, page, notify="yes"))
    assert LINE_AMR in claims["amr"]
    assert ("contract.line_notify_consented", {"line_id": WEST_LINE}) in [
        (a, d) for a, d in audit_actions(app) if a.startswith("contract.line")]
    # Kept per line: the next sign-in over it goes straight through.
    again = over_line(app, line_id=WEST_LINE, carrier="west")
    response = sign_in(again, location(authorize(again, rp)), email=user.email)
    assert LINE_AMR in id_token_claims(again, rp, response)["amr"]


def test_an_east_japan_line_never_shows_the_notify_page(app, rp, user):
    browser = over_line(app, carrier="east")
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    assert location(silent_steps(browser, response)).startswith("/consent?")


# -- break-glass ------------------------------------------------------------------------


def settings_sign_in(browser, email: str):
    page = browser.get("/settings/login")
    return browser.post("/settings/login", data={"csrf_token": csrf_from(text(page)),
                                                 "email": email, "password": PASSWORD})


def test_the_owner_of_a_line_only_contract_gets_into_the_settings_menu_with_a_factor(
        app, rp, user, mailbox, clock):
    # Enrolled while the contract still allowed the internet.
    browser = over_internet(app)
    page = password_then_chain(browser, authorize(browser, rp), email=user.email)
    _, secret, _ = enrol_totp(app, browser, page)
    update_contract(app, user.contract_id, access_route="line-only")
    clock.advance(60)
    owner = over_internet(app)
    response = settings_sign_in(owner, user.email)
    chain = follow(owner, response)
    assert step_of(chain) == "totp"
    assert 'data-step="recovery"' in text(chain)
    after = post_step(owner, chain, code=totp_code(app, secret))
    assert location(after) == "/settings"
    menu = owner.get("/settings")
    assert menu.status_code == 200
    assert "settings.break_glass" in [a for a, _ in audit_actions(app, user.id)]
    mail = mailbox.last(user.email)
    assert "インターネットから" in mail.subject
    # ... and switches back.
    form = owner.get("/settings/access-route")
    assert form.status_code == 200


def test_break_glass_without_an_enrolled_factor_is_refused(app, user):
    update_contract(app, user.contract_id, access_route="line-only")
    owner = over_internet(app)
    response = follow(owner, settings_sign_in(owner, user.email))
    assert response.status_code == 403
    assert "登録済みの2段階認証またはリカバリーコードが必要です" in text(response)
    assert owner.get("/settings").status_code != 200


def test_break_glass_is_the_owners_alone(app, user, factory):
    admin = factory.user(contract_id=user.contract_id, role="admin", email="adm@example.com")
    update_contract(app, user.contract_id, access_route="line-only")
    browser = over_internet(app)
    refused_page(follow(browser, settings_sign_in(browser, admin.email)))


# -- trusted proxies ----------------------------------------------------------------------


def test_behind_a_trusted_proxy_the_gateway_is_read_from_x_forwarded_for(app, rp, user):
    from tests.signin_helpers import configure

    configure(app, trusted_proxies=1)
    browser = over_line(app, address="127.0.0.1")
    browser.client.environ_base["HTTP_X_FORWARDED_FOR"] = GATEWAY
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    assert LINE_AMR in id_token_claims(browser, rp, response)["amr"]


def test_a_forwarded_address_the_client_wrote_itself_is_not_believed(app, rp, user):
    from tests.signin_helpers import configure

    configure(app, trusted_proxies=1)
    browser = over_line(app, address="127.0.0.1")
    # The client sent "10.9.0.5"; the one trusted proxy appended the real address.
    browser.client.environ_base["HTTP_X_FORWARDED_FOR"] = f"{GATEWAY}, {STRANGER}"
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    refused_page(follow(browser, response))


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app, rp, user):
    browser = over_line(app, address=STRANGER)
    browser.client.environ_base["HTTP_X_FORWARDED_FOR"] = GATEWAY
    response = sign_in(browser, location(authorize(browser, rp)), email=user.email)
    refused_page(follow(browser, response))


def test_a_session_from_the_internet_does_not_outlive_a_switch_to_line_only(app, rp, factory):
    user = factory.user(two_step=False)
    register_line(app, user.contract_id, EAST_LINE)
    browser = over_internet(app)
    id_token_claims(browser, rp, sign_in(browser, location(authorize(browser, rp)),
                                         email=user.email))
    assert location(authorize(browser, rp)).startswith(rp.redirect_uri)  # signed in
    update_contract(app, user.contract_id, access_route="line-only")
    assert "/login?flow=" in location(authorize(browser, rp))
    none = authorize(browser, rp, prompt="none")
    assert "error=login_required" in location(none)


@pytest.mark.parametrize("method", ["password", "google", "active_directory"])
def test_the_line_route_applies_whatever_the_login_method(app, user, method):
    from idp.db import db
    from idp.mfa.policy import Situation, line, two_step
    from idp.models import Contract, User

    with app.app_context():
        row = db.session.get(User, user.id)
        row.login_method = method
        contract = db.session.get(Contract, user.contract_id)
        over = Situation(user=row, contract=contract, route="line", remembered=False,
                         last_login_at=None, now=0, inactive_days=30)
        assert line(over) == "line route"
        assert two_step(over) is None  # the line replaces it
        contract.access_route = "line-only"
        internet = dataclasses.replace(over, route="internet")
        assert line(internet) == "the contract allows registered lines only"
        db.session.rollback()


def test_switching_to_line_only_without_lines_warns_the_owner_first(app, factory):
    owner = factory.user(two_step=False)
    browser = over_internet(app)
    assert location(settings_sign_in(browser, owner.email)) == "/settings"

    def confirm_page() -> str:
        page = browser.get("/settings/access-route")
        return text(browser.post("/settings/access-route", data={
            "csrf_token": csrf_from(text(page)), "step": "choose", "route": "line-only"}))

    assert "回線番号がまだ登録されていません" in confirm_page()
    register_line(app, owner.contract_id, EAST_LINE)
    assert "回線番号がまだ登録されていません" not in confirm_page()

"""The contract's Active Directory through the provider's pages (SPEC §5): registration
with the connection ID, the AD login notice, and sign-in by the connection ID, with the
contract's ADFS played by a real pysaml2 IdP (tests/test_connector_saml.py)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from idp import ad_settings
from tests.console_helpers import fetch, invite, sign_in
from tests.signin_helpers import database, update_contract
from tests.test_connector_saml import CONNECTION_ID, Idp, idp_metadata, make_keypair, posted


def text(response) -> str:
    return response.get_data(as_text=True)


def location(response) -> str:
    assert response.status_code in (302, 303), (response.status_code, text(response)[:500])
    return response.headers["Location"]


@pytest.fixture(scope="module")
def idp_keys(tmp_path_factory):
    return make_keypair(tmp_path_factory.mktemp("adfs"), "adfs.corp.example")


@pytest.fixture
def owner(app, factory, idp_keys):
    """The owner of a contract whose ADFS is set up (metadata pasted in the settings)."""
    owner = factory.user(email="owner@corp.example")
    with app.test_request_context():
        adfs = ad_settings.adfs({"type": "adfs", "metadata_xml": idp_metadata(idp_keys)})
    update_contract(app, owner.contract_id, connection_id=CONNECTION_ID, ad_settings=adfs)
    return owner


@pytest.fixture
def idp(app, owner, idp_keys):
    from idp.connectors import saml
    from idp.models import Contract

    with app.app_context():
        with database(app) as session:
            contract = session.get(Contract, owner.contract_id)
            connector = saml.for_contract(contract, app.extensions["idp.settings"])
        return Idp(idp_keys, connector.sp_metadata_xml)


def through_adfs(http, idp, login_url: str):
    """Our AD login URL -> ADFS (the AuthnRequest) -> the signed response posted back to
    our ACS -> the GET that continues with the browser's cookies."""
    to_adfs = location(http.get(login_url))
    request = idp.request_in(to_adfs)
    relay = parse_qs(urlsplit(to_adfs).query)["RelayState"][0]
    posted_back = http.post(f"/ad/{CONNECTION_ID}/saml/acs",
                            data={"SAMLResponse": posted(idp.respond(request.id)),
                                  "RelayState": relay})
    assert posted_back.status_code == 303
    return http.get(location(posted_back))


def register_with_ad(app, owner, idp, mailbox, *, connection_id: str = CONNECTION_ID):
    console = app.test_client()
    sign_in(console, email=owner.email)
    assert invite(console, email="alice@corp.example", name="Alice").status_code == 302
    mail = mailbox.last("alice@corp.example")
    browser = app.test_client()
    page = browser.get(mail.link)
    html = text(page)
    choice = browser.post("/invitation/link", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1),
        "ticket": re.search(r'name="ticket" value="([^"]+)"', html).group(1),
        "method": "active_directory", "connection_id": connection_id})
    return browser, choice


def test_an_invitee_registers_with_the_contracts_ad_and_is_mailed_the_login_urls(
        app, owner, idp, mailbox):
    from idp.models import LinkedIdentity, User

    browser, choice = register_with_ad(app, owner, idp, mailbox)
    confirm = browser.get(location(through_adfs(browser, idp, location(choice))))
    html = text(confirm)
    assert "Alice Example" in html and "alice@mail.corp.example" in html
    done = browser.post("/connect/confirm", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1),
        "flow": re.search(r'name="flow" value="([^"]+)"', html).group(1)})
    assert done.status_code == 200, text(done)[:400]
    user = fetch(app, User, email="alice@corp.example")
    assert (user.status, user.login_method) == ("active", CONNECTION_ID)
    row = fetch(app, LinkedIdentity, user_id=user.id)
    assert row.issuer == "https://adfs.corp.example/adfs/services/trust"
    notice = mailbox.last("alice@corp.example")
    assert "接続ID" in notice.subject
    assert CONNECTION_ID in notice.body
    assert f"/ad/{CONNECTION_ID}/login" in notice.body


def test_a_wrong_connection_id_at_registration_is_refused(app, owner, idp, mailbox):
    _, refused = register_with_ad(app, owner, idp, mailbox,
                                  connection_id="adfs-000000000000000000")
    assert refused.status_code == 400
    assert "接続IDが正しくないか" in text(refused)


def test_an_ad_user_signs_in_by_the_connection_id(app, owner, idp, mailbox):
    browser, choice = register_with_ad(app, owner, idp, mailbox)
    confirm = browser.get(location(through_adfs(browser, idp, location(choice))))
    html = text(confirm)
    browser.post("/connect/confirm", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1),
        "flow": re.search(r'name="flow" value="([^"]+)"', html).group(1)})
    someone = app.test_client()
    # Without the ID in the URL a page asks for it.
    asked = someone.get("/ad")
    assert "接続ID" in text(asked)
    typed = someone.get(f"/ad?connection_id={CONNECTION_ID.upper()}")
    login_url = location(typed)
    assert login_url.startswith(f"/ad/{CONNECTION_ID}/login")
    assert location(through_adfs(someone, idp, login_url)) == "/signed-in"
    assert "ログインしました" in text(someone.get("/signed-in"))


def test_an_adfs_account_linked_to_nobody_is_not_signed_in(app, owner, idp):
    browser = app.test_client()
    refused = through_adfs(browser, idp, f"/ad/{CONNECTION_ID}/login")
    assert refused.status_code == 403
    assert "登録されていません" in text(refused)


def test_a_posted_response_replayed_later_is_refused(app, owner, idp):
    browser = app.test_client()
    to_adfs = location(browser.get(f"/ad/{CONNECTION_ID}/login"))
    request = idp.request_in(to_adfs)
    relay = parse_qs(urlsplit(to_adfs).query)["RelayState"][0]
    form = {"SAMLResponse": posted(idp.respond(request.id)), "RelayState": relay}
    first = browser.post(f"/ad/{CONNECTION_ID}/saml/acs", data=form)
    browser.get(location(first))
    again = browser.post(f"/ad/{CONNECTION_ID}/saml/acs", data=form)
    assert browser.get(location(again)).status_code == 400


def test_the_owner_is_never_offered_ad(app, owner, client):
    from tests.settings_helpers import sign_in as settings_sign_in

    settings_sign_in(client, owner.email)
    page = text(client.get("/settings/login-method"))
    assert 'data-connector="active_directory"' not in page
    from tests.helpers import csrf_from

    refused = client.post("/settings/login-method", data={
        "csrf_token": csrf_from(page), "method": "active_directory",
        "connection_id": CONNECTION_ID})
    assert refused.status_code == 400


def test_the_sp_metadata_for_adfs_is_published_at_its_entity_id(app, owner, client):
    response = client.get(f"/ad/{CONNECTION_ID}/saml")
    assert response.status_code == 200
    assert response.mimetype == "application/samlmetadata+xml"
    xml = text(response)
    assert f'entityID="http://localhost/ad/{CONNECTION_ID}/saml"' in xml
    assert f"/ad/{CONNECTION_ID}/saml/acs" in xml
    assert "PRIVATE KEY" not in xml
    assert client.get("/ad/adfs-000000000000000000/saml").status_code == 404

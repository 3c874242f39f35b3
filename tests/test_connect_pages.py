"""The pages around upstream sign-in that need no upstream: the brand's buttons, the AD
connection-ID page, and what unconfigured or unknown connectors answer."""

from __future__ import annotations

import re

from tests.helpers import csrf_from
from tests.signin_helpers import update_contract

CODEC = "http://localhost"
WORK = "http://work.localhost:5000"


def text(response) -> str:
    return response.get_data(as_text=True)


def test_the_login_page_shows_the_brands_upstream_buttons(client):
    codec = text(client.get("/login", base_url=CODEC))
    work = text(client.get("/login", base_url=WORK))
    for page in (codec, work):
        assert "Googleアカウントでログイン" in page
        assert "Active Directoryアカウントでログイン" in page
    assert "NTT東日本ビジネスIDでログイン" not in codec
    assert "NTT東日本ビジネスIDでログイン" in work
    assert "おまかせログインアカウントでログイン" in work
    # Not configured by the operator: shown, but cannot be used.
    assert 'disabled data-connector="google"' in codec
    # The AD button asks for the connection ID.
    assert 'data-connector="active_directory" href="/ad"' in codec


def test_an_unconfigured_connector_is_not_found(client):
    assert client.get("/connect/google").status_code == 404
    assert client.get("/connect/nonsense").status_code == 404


def test_the_ad_button_asks_for_the_connection_id(client):
    page = client.get("/ad")
    assert page.status_code == 200
    assert "接続ID" in text(page)
    unknown = client.get("/ad?connection_id=adfs-000000000000000000")
    assert unknown.status_code == 400
    assert "接続IDが正しくないか" in text(unknown)
    assert client.get("/ad?connection_id=../../etc").status_code == 400


def test_a_connection_id_without_ad_settings_is_refused(app, client, factory):
    owner = factory.user()
    update_contract(app, owner.contract_id, connection_id="adfs-abcdefghijklmnopqr")
    response = client.get("/ad/adfs-abcdefghijklmnopqr/login")
    assert response.status_code == 404
    assert "接続IDが正しくないか" in text(response)


def test_a_callback_without_a_started_sign_in_is_an_expired_page_not_an_error(client):
    response = client.get("/connect/confirm?flow=nope")
    assert response.status_code == 400
    assert "有効期限が切れたか" in text(response)


def test_the_invitation_refuses_an_upstream_method_that_is_not_configured(app, factory,
                                                                         mailbox):
    from tests.console_helpers import invite, sign_in

    owner = factory.user(email="owner@example.com")
    admin = app.test_client()
    sign_in(admin, email=owner.email)
    assert invite(admin, email="new@example.com").status_code == 302
    mail = mailbox.last("new@example.com")
    invitee = app.test_client()
    page = invitee.get(mail.link, base_url="http://" + mail.host)
    token = re.search(r'name="ticket" value="([^"]+)"', text(page)).group(1)
    refused = invitee.post("/invitation/link", base_url="http://" + mail.host, data={
        "csrf_token": csrf_from(text(page)), "ticket": token, "method": "google"})
    assert refused.status_code == 400
    assert "未設定" in text(refused)

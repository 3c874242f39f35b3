"""The contract's AD over LDAP through the provider's pages (SPEC §5), against the real
slapd of tests/peers/slapd.py: the owner's LDAP settings with the company CA, an invitee
registering by connection ID with the directory password, and sign-in by it."""

from __future__ import annotations

import functools
import re
import secrets

import pytest

from idp import ad_settings
from idp.connectors import ldap as ldap_connector
from tests.console_helpers import fetch, invite, sign_in
from tests.signin_helpers import update_contract
from tests.test_connector_ldap import slapd  # noqa: F401  (module fixture)

CONNECTION_ID = "adfs-ldapldapldapldap00"
DIRECTORY_PASSWORD = "Directory-Pass-2026"


def text(response) -> str:
    return response.get_data(as_text=True)


def location(response) -> str:
    assert response.status_code in (302, 303), (response.status_code, text(response)[:500])
    return response.headers["Location"]


@pytest.fixture
def owner(app, factory, slapd, monkeypatch):  # noqa: F811
    owner = factory.user(email="owner@corp.example")
    with app.test_request_context():
        stored = ad_settings.ldap({
            "type": "ldap", "ldap_url": slapd.ldaps_url, "base_dn": "dc=example,dc=com",
            "bind_dn": slapd.reader_dn, "bind_password": slapd.reader_password,
            "user_attribute": "uid", "ca_pem": slapd.ca_file.read_text()}, None)
    assert "BEGIN CERTIFICATE" in stored["ca_pem"]
    update_contract(app, owner.contract_id, connection_id=CONNECTION_ID, ad_settings=stored)
    # OpenLDAP has no AD objectCategory: the test directory's people are inetOrgPerson.
    monkeypatch.setattr(ldap_connector, "for_contract", functools.partial(
        ldap_connector.for_contract, object_filter="(objectClass=inetOrgPerson)"))
    return owner


@pytest.fixture
def directory_user(slapd):  # noqa: F811
    """A person in the directory (one per test: the directory lives for the module)."""
    uid = "alice-" + secrets.token_hex(4)
    slapd.add_user(uid, DIRECTORY_PASSWORD, mail="alice@corp.example",
                   display_name="Alice Directory")
    return uid


def password_page(http, url: str):
    page = http.get(url)
    assert page.status_code == 200, text(page)[:400]
    return page


def submit(http, page, username: str, password: str):
    html = text(page)
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    return http.post(action, data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1),
        "flow": re.search(r'name="flow" value="([^"]+)"', html).group(1),
        "username": username, "password": password})


def register(app, owner, mailbox, directory_user):
    console = app.test_client()
    sign_in(console, email=owner.email)
    assert invite(console, email="alice@corp.example").status_code == 302
    mail = mailbox.last("alice@corp.example")
    browser = app.test_client()
    html = text(browser.get(mail.link))
    choice = browser.post("/invitation/link", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1),
        "ticket": re.search(r'name="ticket" value="([^"]+)"', html).group(1),
        "method": "active_directory", "connection_id": CONNECTION_ID})
    form = password_page(browser, location(choice))
    assert CONNECTION_ID in text(form)  # shown for confirmation (SPEC §5)
    confirm = browser.get(location(submit(browser, form, directory_user,
                                          DIRECTORY_PASSWORD)))
    html = text(confirm)
    assert "Alice Directory" in html
    done = browser.post("/connect/confirm", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1),
        "flow": re.search(r'name="flow" value="([^"]+)"', html).group(1)})
    assert done.status_code == 200, text(done)[:400]


def test_an_invitee_registers_with_the_directory_and_signs_in_with_it(
        app, owner, mailbox, directory_user):
    from idp.models import User

    register(app, owner, mailbox, directory_user)
    user = fetch(app, User, email="alice@corp.example")
    assert (user.status, user.login_method) == ("active", CONNECTION_ID)
    assert CONNECTION_ID in mailbox.last("alice@corp.example").body  # the AD notice
    browser = app.test_client()
    form = password_page(browser, f"/ad/{CONNECTION_ID}/login")
    assert location(submit(browser, form, directory_user, DIRECTORY_PASSWORD)) == "/signed-in"


@pytest.mark.parametrize("password", ["Wrong-Pass-2026", " ", "*"],
                         ids=["wrong", "blank", "star"])
def test_a_wrong_or_empty_directory_password_is_refused_on_the_page(
        app, owner, mailbox, directory_user, password):
    register(app, owner, mailbox, directory_user)
    browser = app.test_client()
    form = password_page(browser, f"/ad/{CONNECTION_ID}/login")
    refused = submit(browser, form, directory_user, password)
    assert refused.status_code == 401
    assert "ユーザー名またはパスワードが正しくありません" in text(refused)


def test_a_filter_injection_as_the_user_name_signs_in_nobody(app, owner, mailbox,
                                                             directory_user):
    register(app, owner, mailbox, directory_user)
    browser = app.test_client()
    form = password_page(browser, f"/ad/{CONNECTION_ID}/login")
    refused = submit(browser, form, "*)(uid=*", DIRECTORY_PASSWORD)
    assert refused.status_code == 401


def test_the_ldap_settings_keep_only_certificates_from_the_pasted_ca(app, slapd):  # noqa: F811
    form = {"type": "ldap", "ldap_url": slapd.ldaps_url, "base_dn": "dc=example,dc=com",
            "bind_dn": slapd.reader_dn, "bind_password": "x", "user_attribute": "uid"}
    with app.test_request_context():
        with pytest.raises(ad_settings.ADSettingsError) as refused:
            ad_settings.ldap({**form, "ca_pem": "-----BEGIN CERTIFICATE-----\nnope"}, None)
        assert refused.value.key == "settings_ad_ca_invalid"
        pasted = "note: our CA\n" + slapd.ca_file.read_text() + "\nthanks"
        kept = ad_settings.ldap({**form, "ca_pem": pasted}, None)["ca_pem"]
    assert kept.startswith("-----BEGIN CERTIFICATE-----") and "thanks" not in kept


def test_guessing_directory_passwords_through_the_page_is_rate_limited(
        app, owner, mailbox, directory_user):
    from tests.signin_helpers import audit_actions, configure

    configure(app, login_attempts_per_account=3)
    browser = app.test_client()
    form = password_page(browser, f"/ad/{CONNECTION_ID}/login")
    for _ in range(3):
        assert submit(browser, form, directory_user, "Wrong-Pass-2026").status_code == 401
    limited = submit(browser, form, directory_user, DIRECTORY_PASSWORD)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    failures = [d for a, d in audit_actions(app) if a == "signin.failure"]
    assert len(failures) == 3
    assert all((d["reason"], d["connector"]) == ("upstream_credentials", CONNECTION_ID)
               for d in failures)

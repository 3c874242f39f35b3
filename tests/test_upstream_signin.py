"""Sign-in and linking with an upstream account through the provider's own pages (SPEC §5),
with the Facebook connector against the loopback stand-in of Facebook's Graph API: the
buttons, the round trip, finding the user by (connector, issuer, subject) only, the
confirmation before linking, and the refusals."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from tests.helpers import authorize, consent_if_asked, exchange, query_of, verify_id_token
from tests.peers.graph_api import GraphApi
from tests.signin_helpers import audit_actions, database, update_contract, update_user

APP_ID = "1234567890123456"
APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CALLBACK = "http://localhost/connect/facebook/callback"
ISSUER = "https://www.facebook.com"
UPSTREAM_AMR = "urn:idp:amr:upstream"


@pytest.fixture(scope="module")
def graph():
    with GraphApi() as server:
        server.register_app(APP_ID, APP_SECRET, redirect_uris=(CALLBACK,))
        server.add_user("alice", id="10215241773831025", name="Alice Sato",
                        email="alice@example.com")
        server.add_user("mallory", id="10000000000000666", name="Mallory",
                        email="alice@example.com")  # the same address, another account
        yield server


@pytest.fixture
def settings(settings, graph):
    return settings.replace(connectors={"facebook": {
        "type": "facebook", "app_id": APP_ID, "app_secret": APP_SECRET,
        "graph_url": graph.graph_url, "dialog_url": graph.url("/{version}/dialog/oauth")}})


def text(response) -> str:
    return response.get_data(as_text=True)


def location(response) -> str:
    assert response.status_code in (302, 303), (response.status_code, text(response)[:400])
    return response.headers["Location"]


def at_facebook(http, graph, dialog, *, user="alice", deny=False):
    """The user at Facebook's dialog, then back at our callback."""
    assert dialog.startswith(graph.url()), dialog
    query = graph.authorize(dialog, user=user, deny=deny)
    return http.get("/connect/facebook/callback?" + urlencode(query))


def link_facebook(app, user, subject="10215241773831025") -> None:
    from idp.clock import now
    from idp.models import LinkedIdentity

    with database(app) as session:
        session.add(LinkedIdentity(user_id=user.id, connector="facebook", issuer=ISSUER,
                                   subject=subject, email="", name="", linked_at=now()))
        session.commit()
    update_user(app, user.id, login_method="facebook", password_hash=None)


def id_token(http, rp, response) -> dict:
    response = consent_if_asked(http, response)
    target = location(response)
    assert target.startswith(rp.redirect_uri), target
    body = exchange(http, rp, query_of(target)["code"])
    return verify_id_token(http, body.json["id_token"], audience=rp.client_id)[1]


# -- sign-in -------------------------------------------------------------------------------


def test_a_linked_facebook_account_signs_in_through_the_oidc_flow(app, client, rp, factory,
                                                                  graph):
    user = factory.user(two_step=True)  # 2-step is for password users (SPEC §4)
    link_facebook(app, user)
    login = client.get(location(authorize(client, rp)))
    button = re.search(r'href="(/connect/facebook\?flow=[^"]+)"', text(login)).group(1)
    dialog = location(client.get(button.replace("&amp;", "&")))
    assert "auth_type" not in dialog  # only when linking
    claims = id_token(client, rp, at_facebook(client, graph, dialog))
    assert claims["sub"] == user.id
    assert claims["amr"] == [UPSTREAM_AMR]
    assert claims["acr"] == "urn:idp:loa:1"
    assert claims["login_method"] == "facebook"


def test_an_account_linked_to_nobody_is_not_signed_in(app, client, rp, factory, graph):
    user = factory.user()
    link_facebook(app, user)
    dialog = location(client.get("/connect/facebook"))
    refused = at_facebook(client, graph, dialog, user="mallory")  # same e-mail, other account
    assert refused.status_code == 403
    assert "このアカウントでログインできる利用者は登録されていません" in text(refused)
    assert location(client.get("/signed-in")).endswith("/login")


def test_an_account_linked_to_a_user_of_another_method_is_not_signed_in(app, client, factory,
                                                                        graph):
    user = factory.user()
    link_facebook(app, user)
    update_user(app, user.id, login_method="password")  # changed since
    dialog = location(client.get("/connect/facebook"))
    assert at_facebook(client, graph, dialog).status_code == 403


def test_consent_denied_at_facebook_ends_on_a_page_in_the_users_language(client, graph):
    dialog = location(client.get("/connect/facebook", headers={"Accept-Language": "en"}))
    refused = at_facebook(client, graph, dialog, deny=True)
    assert refused.status_code == 403
    assert "cancelled or not allowed" in text(refused) or "許可されませんでした" in text(refused)


def test_a_callback_replayed_or_from_another_browser_is_refused(app, client, factory, graph):
    user = factory.user()
    link_facebook(app, user)
    dialog = location(client.get("/connect/facebook"))
    query = graph.authorize(dialog, user="alice")
    other = app.test_client()
    assert other.get("/connect/facebook/callback?" + urlencode(query)).status_code == 400
    # The state was taken by that attempt: this browser cannot use it either now.
    assert client.get("/connect/facebook/callback?" + urlencode(query)).status_code == 400


def test_facebook_down_is_a_clear_page_not_a_500(app, client, factory, graph):
    user = factory.user()
    link_facebook(app, user)
    dialog = location(client.get("/connect/facebook"))
    query = graph.authorize(dialog, user="alice")
    graph.answer("/oauth/access_token", status=503, body=b"down")
    try:
        response = client.get("/connect/facebook/callback?" + urlencode(query))
    finally:
        graph.canned.clear()
    assert response.status_code == 502
    assert "接続できませんでした" in text(response)


def test_under_line_only_an_upstream_sign_in_from_the_internet_is_refused(app, client, rp,
                                                                          factory, graph):
    user = factory.user()
    link_facebook(app, user)
    update_contract(app, user.contract_id, access_route="line-only")
    login = client.get(location(authorize(client, rp)))
    button = re.search(r'href="(/connect/facebook\?flow=[^"]+)"', text(login)).group(1)
    dialog = location(client.get(button.replace("&amp;", "&")))
    response = at_facebook(client, graph, dialog)
    page = client.get(location(response))
    assert page.status_code == 403
    assert "回線認証エラー" in text(page)


# -- linking ---------------------------------------------------------------------------


def invited(app, factory, mailbox, email="hanako@example.com"):
    from tests.console_helpers import invite, sign_in

    owner = factory.user(email=f"owner-{email}")
    console = app.test_client()
    sign_in(console, email=owner.email)
    assert invite(console, email=email).status_code == 302
    return owner, mailbox.last(email)


def choose(http, page, method: str, action: str):
    html = text(page)
    token = re.search(r'name="ticket" value="([^"]+)"', html).group(1)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    return http.post(action, data={"csrf_token": csrf, "ticket": token, "method": method})


def test_an_invitee_registers_with_facebook_after_seeing_the_account(app, factory, mailbox,
                                                                     graph):
    from idp.models import LinkedIdentity, User
    from tests.console_helpers import fetch

    _, mail = invited(app, factory, mailbox)
    invitee = app.test_client()
    page = invitee.get(mail.link)
    dialog = location(choose(invitee, page, "facebook", "/invitation/link"))
    assert "auth_type=reauthenticate" in dialog  # re-authenticate at Facebook
    confirm = invitee.get(location(at_facebook(invitee, graph, dialog)))
    assert confirm.status_code == 200
    html = text(confirm)
    assert "Alice Sato" in html and "alice@example.com" in html
    assert "hanako@example.com" in html
    # Not linked until confirmed.
    assert fetch(app, User, email="hanako@example.com").status == "invited"
    done = invitee.post("/connect/confirm", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1),
        "flow": re.search(r'name="flow" value="([^"]+)"', html).group(1)})
    assert done.status_code == 200, text(done)[:500]
    user = fetch(app, User, email="hanako@example.com")
    assert (user.status, user.login_method, user.password_hash) == ("active", "facebook", None)
    row = fetch(app, LinkedIdentity, user_id=user.id)
    assert (row.connector, row.issuer, row.subject) == ("facebook", ISSUER, "10215241773831025")
    # The invitation is spent: its link no longer registers anyone.
    assert invitee.get(mail.link).status_code != 200
    # ... and the account signs in.
    browser = app.test_client()
    dialog = location(browser.get("/connect/facebook"))
    assert location(at_facebook(browser, graph, dialog)) == "/signed-in"
    assert ("user.registered", {"login_method": "facebook",
                                "upstream_issuer": ISSUER}) in audit_actions(app, user.id)


def test_an_account_linked_to_someone_else_cannot_be_linked_again(app, factory, mailbox,
                                                                 graph):
    other = factory.user()
    link_facebook(app, other)
    _, mail = invited(app, factory, mailbox)
    invitee = app.test_client()
    dialog = location(choose(invitee, invitee.get(mail.link), "facebook", "/invitation/link"))
    refused = invitee.get(location(at_facebook(invitee, graph, dialog)))
    assert refused.status_code == 409
    assert "すでに別の利用者に登録されています" in text(refused)


def test_a_facebook_user_cannot_switch_straight_to_another_facebook_account(
        app, factory, mailbox, graph):
    from tests.console_helpers import send_email_form, sign_in

    owner = factory.user(email="boss@example.com")
    member = factory.user(contract_id=owner.contract_id, role="user", email="fb@example.com")
    link_facebook(app, member, subject="10000000000000666")
    console = app.test_client()
    sign_in(console, email=owner.email)
    assert send_email_form(console, member.id, member.email).status_code in (200, 302)
    mail = mailbox.last(member.email)
    browser = app.test_client()
    dialog = location(choose(browser, browser.get(mail.link), "facebook", "/login-method/link"))
    refused = browser.get(location(at_facebook(browser, graph, dialog)))
    assert refused.status_code == 409
    assert "別のFacebookアカウントへ直接変更することはできません" in text(refused)


def test_a_facebook_user_signs_in_to_the_settings_menu_with_facebook(app, client, factory,
                                                                     graph):
    user = factory.user()
    link_facebook(app, user)
    page = text(client.get("/settings/login"))
    button = re.search(r'href="(/connect/facebook\?purpose=settings)"', page).group(1)
    dialog = location(client.get(button))
    assert location(at_facebook(client, graph, dialog)) == "/settings"
    menu = client.get("/settings")
    assert menu.status_code == 200
    # No password to change for an upstream user.
    assert "/settings/password" not in text(menu)

"""An upstream OIDC provider through the provider's pages (SPEC §5), the upstream being a
second instance of this provider (tests/test_connector_oidc.py starts it): sign-in into
an OIDC flow, and the owner linking it from the settings menu after seeing the account."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlencode

import pytest

from tests.helpers import authorize, consent_if_asked, exchange, query_of, verify_id_token
from tests.signin_helpers import audit_actions
from tests.test_connector_oidc import browse, upstream  # noqa: F401  (module fixture)

UPSTREAM_AMR = "urn:idp:amr:upstream"


@pytest.fixture
def settings(settings, upstream):  # noqa: F811
    brands = dict(settings.brands)
    brands["codec"] = dataclasses.replace(brands["codec"],
                                          connectors=("upstream", "active_directory"))
    return settings.replace(brands=brands, connectors={"upstream": {
        "type": "oidc", "issuer": upstream.issuer, "client_id": upstream.client_id,
        "client_secret": upstream.secret}})


def text(response) -> str:
    return response.get_data(as_text=True)


def location(response) -> str:
    assert response.status_code in (302, 303), (response.status_code, text(response)[:400])
    return response.headers["Location"]


def back_from_upstream(http, to_upstream: str, email: str):
    params = browse(to_upstream, email=email)
    return http.get("/connect/upstream/callback?" + urlencode(params))


def link(app, user, upstream) -> None:  # noqa: F811
    from idp.clock import now
    from idp.models import LinkedIdentity
    from tests.signin_helpers import database, update_user

    with database(app) as session:
        session.add(LinkedIdentity(user_id=user.id, connector="upstream",
                                   issuer=upstream.issuer, subject=upstream.subject,
                                   email="", name="", linked_at=now()))
        session.commit()
    update_user(app, user.id, login_method="upstream", password_hash=None)


def test_a_linked_upstream_account_signs_in_to_a_relying_party(app, client, rp, factory,
                                                              upstream):  # noqa: F811
    user = factory.user()
    link(app, user, upstream)
    login = client.get(location(authorize(client, rp)))
    button = re.search(r'href="(/connect/upstream\?flow=[^"]+)"', text(login)).group(1)
    to_upstream = location(client.get(button.replace("&amp;", "&")))
    assert to_upstream.startswith(upstream.issuer + "/authorize?")
    assert "code_challenge=" in to_upstream and "nonce=" in to_upstream
    response = consent_if_asked(client, back_from_upstream(client, to_upstream,
                                                           upstream.email))
    target = location(response)
    assert target.startswith(rp.redirect_uri), target
    body = exchange(client, rp, query_of(target)["code"]).json
    claims = verify_id_token(client, body["id_token"], audience=rp.client_id)[1]
    assert claims["sub"] == user.id
    assert claims["amr"] == [UPSTREAM_AMR]
    assert claims["login_method"] == "upstream"


def test_the_owner_links_the_upstream_account_from_the_settings_menu(app, client, factory,
                                                                     upstream):  # noqa: F811
    from idp.models import LinkedIdentity, User
    from tests.console_helpers import fetch
    from tests.helpers import csrf_from
    from tests.settings_helpers import sign_in

    owner = factory.user(email="owner@corp.example")
    sign_in(client, owner.email)
    page = text(client.get("/settings/login-method"))
    assert 'data-connector="upstream"' in page
    assert 'data-connector="active_directory"' not in page  # never for the owner
    to_upstream = location(client.post("/settings/login-method", data={
        "csrf_token": csrf_from(page), "method": "upstream"}))
    assert "prompt=select_account" in to_upstream  # the account chooser, when linking
    confirm = client.get(location(back_from_upstream(client, to_upstream, upstream.email)))
    html = text(confirm)
    assert upstream.name in html and upstream.email in html
    assert fetch(app, User, id=owner.id).login_method == "password"  # not yet
    done = client.post("/connect/confirm", data={
        "csrf_token": csrf_from(html),
        "flow": re.search(r'name="flow" value="([^"]+)"', html).group(1)})
    assert done.status_code == 200, text(done)[:400]
    row = fetch(app, LinkedIdentity, user_id=owner.id)
    assert (row.connector, row.issuer, row.subject) == ("upstream", upstream.issuer,
                                                        upstream.subject)
    assert fetch(app, User, id=owner.id).login_method == "upstream"
    assert ("login_method.changed", {
        "previous": "password", "login_method": "upstream", "upstream_issuer": upstream.issuer,
        "via": "settings"}) in audit_actions(app, owner.id)
    # The settings session that asked for it ended with the change (signed out everywhere).
    assert client.get("/settings").status_code != 200

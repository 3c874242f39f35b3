"""End to end with a real relying-party library against the provider on its production server.

The demo relying party (Authlib's Flask client) signs a user in against granian on a
loopback port, verifying the ID token against the published JWKS, before and after
``idp keys rotate``.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from demo_rp import create_app as create_rp
from tests.conftest import run_idp
from tests.helpers import PASSWORD
from tests.live import live_provider, server_env

RP_CALLBACK = "http://localhost/callback"


@pytest.fixture
def provider(settings):
    with live_provider(settings) as issuer:
        yield issuer


def browser_sign_in(browser: requests.Session, authorize_url: str, email: str) -> str:
    """Play the user's browser until the provider redirects back to the RP."""
    page = browser.get(authorize_url, allow_redirects=True)
    assert page.status_code == 200, page.text[:300]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    flow = re.search(r'name="flow" value="([^"]+)"', page.text).group(1)
    response = browser.post(urlsplit(page.url)._replace(query="").geturl(),
                            data={"csrf_token": csrf, "flow": flow, "email": email,
                                  "password": PASSWORD}, allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    return response.headers["Location"]


def sign_in_through_rp(rp, issuer: str, email: str) -> dict:
    rp_http = rp.test_client()
    start = rp_http.post("/login")
    assert start.status_code == 302 and start.headers["Location"].startswith(issuer + "/authorize")
    callback = browser_sign_in(requests.Session(), start.headers["Location"], email)
    assert callback.startswith(RP_CALLBACK)
    assert f"iss={issuer}".replace(":", "%3A").replace("/", "%2F") in callback
    # Authlib exchanges the code over HTTP and verifies the ID token against the JWKS.
    done = rp_http.get(callback[len("http://localhost"):])
    assert done.status_code == 302, done.get_data(as_text=True)[:500]
    with rp_http.session_transaction() as s:
        return {"claims": s["claims"], "id_token": s["id_token"], "userinfo": s["userinfo"]}


def kid_of(token: str) -> str:
    import base64

    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]


def test_an_authlib_relying_party_signs_in_before_and_after_key_rotation(
    provider, factory, settings, tmp_path
):
    user = factory.user(email="e2e@example.com")
    rp_client = factory.rp(redirect_uri=RP_CALLBACK, first_party=True,
                           scope="openid profile email offline_access")
    conf = tmp_path / "demo_rp.json"
    conf.write_text(json.dumps({"issuer": provider, "client_id": rp_client.client_id,
                                "client_secret": rp_client.secret}))
    rp = create_rp(conf)

    first = sign_in_through_rp(rp, provider, user.email)
    assert first["claims"]["sub"] == user.id
    assert first["claims"]["iss"] == provider
    assert first["claims"]["amr"] == ["pwd"]
    assert first["userinfo"]["email"] == "e2e@example.com"

    rotated = run_idp("keys", "rotate", env=server_env(settings, provider))
    assert rotated.returncode == 0, rotated.stderr
    time.sleep(1.2)  # workers re-read the key store at most once a second

    rp = create_rp(conf)  # a fresh RP, so it fetches the JWKS again
    second = sign_in_through_rp(rp, provider, user.email)
    assert kid_of(second["id_token"]) != kid_of(first["id_token"])
    # The token signed before the rotation still verifies against the JWKS after it.
    jwks = KeySet.import_key_set(requests.get(provider + "/jwks.json", timeout=5).json())
    old = jwt.decode(first["id_token"], jwks, algorithms=["RS256"])
    assert old.claims["sub"] == user.id

"""The generic OIDC connector (idp/connectors/oidc.py) against a real upstream.

The upstream is a second instance of this provider under granian on a loopback port, with
its own database and signing keys; a user signs in on its real login page (``requests``
plays the browser) and the connector finishes with what the upstream's redirect carries.
Microsoft's per-tenant issuers and broken upstreams are played by a small HTTP server on
loopback that serves discovery, JWKS and token answers made here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from flask import Flask
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from idp.clock import Clock
from idp.connectors import oidc
from idp.connectors.base import CallbackConnector, ConnectorError, UpstreamIdentity
from idp.connectors.oidc import Config
from idp.keys import KeyStore
from idp.migrate import upgrade
from idp.settings import SettingsError, load_settings
from tests.conftest import BACKEND, TEST_SECRET, postgres_database, run_idp
from tests.helpers import PASSWORD, query_of
from tests.live import free_port, live_provider, server_env

#: Where the upstream sends the browser back. Never served: the Location's query is enough.
CALLBACK = "http://localhost/connect/upstream/callback"


# -- the upstream: this provider, second instance ---------------------------------------


@dataclass(frozen=True)
class Upstream:
    issuer: str
    env: dict[str, str]
    #: A first-party client (no consent page) registered for the downstream provider.
    client_id: str
    secret: str
    #: A partner client: the upstream asks the user's consent first.
    partner_id: str
    partner_secret: str
    email: str
    subject: str
    name: str


def idp_cli(*args: str, env: dict[str, str]) -> str:
    result = run_idp(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, database_template, redis_url) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("upstream")
    keys = root / "keys"
    KeyStore(keys, TEST_SECRET).rotate(now=0, next_min_age=0)  # its own keys, not the template's
    with ExitStack() as stack:
        if BACKEND == "sqlite":
            shutil.copy(database_template, root / "upstream.sqlite")
            database_url = f"sqlite:///{root / 'upstream.sqlite'}"
        else:
            database_url = stack.enter_context(postgres_database("idp_upstream"))
            upgrade(database_url)
        settings = load_settings(environ={}, overrides={
            "environment": "test", "issuer": "http://127.0.0.1", "database_url": database_url,
            "redis_url": redis_url or "", "secret_key": TEST_SECRET, "keys_dir": str(keys),
            "keys_next_min_age": 0, "jwks_max_age": 0,
        })
        with pytest.MonkeyPatch.context() as mp:
            # Every test signs the same user in from a new browser: lift the per-account
            # limit on unknown browsers (30 per 15 minutes) for this upstream.
            mp.setenv("IDP_LOGIN_ATTEMPTS_PER_ACCOUNT", "1000")
            issuer = stack.enter_context(live_provider(settings, workers=1))
        env = server_env(settings, issuer)
        email, name = f"upstream-{secrets.token_hex(4)}@example.com", "上流 花子"
        owner = idp_cli("contract", "create", "--brand", "codec", "--plan", "basic",
                        "--owner-email", email, "--owner-password", PASSWORD,
                        "--owner-name", name, "--two-step", "off", env=env)
        client = json.loads(idp_cli("client", "create", "--name", "Downstream IdP",
                                    "--redirect-uri", CALLBACK, "--first-party", "--json",
                                    env=env))
        partner = json.loads(idp_cli("client", "create", "--name", "Partner",
                                     "--redirect-uri", CALLBACK, "--json", env=env))
        yield Upstream(
            issuer=issuer, env=env, client_id=client["client_id"],
            secret=client["client_secret"], partner_id=partner["client_id"],
            partner_secret=partner["client_secret"], email=email, name=name,
            subject=re.search(r"owner:\s+(\S+)", owner).group(1),
        )


def connect(app, upstream: Upstream, *, partner: bool = False,
            **changes: Any) -> oidc.OidcConnector:
    config = Config(issuer=upstream.issuer,
                    client_id=upstream.partner_id if partner else upstream.client_id,
                    client_secret=upstream.partner_secret if partner else upstream.secret,
                    **changes)
    return oidc.open("upstream", config, app.extensions["idp.settings"])


def browse(url: str, *, email: str, decision: str = "allow") -> dict[str, str]:
    """Play the user's browser at the upstream: its login page, its consent page if it
    shows one, until it redirects to ``CALLBACK``; returns that redirect's query."""
    browser = requests.Session()
    page = browser.get(url, timeout=10)
    assert page.status_code == 200, page.text[:300]
    response = browser.post(urlsplit(page.url)._replace(query="").geturl(),
                            data={**hidden_fields(page.text), "email": email,
                                  "password": PASSWORD},
                            allow_redirects=False, timeout=10)
    for _ in range(5):
        assert response.status_code in (302, 303), response.text[:300]
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(CALLBACK):
            return query_of(location)
        page = browser.get(location, timeout=10)
        if page.status_code == 200 and "decision" in page.text:
            response = browser.post(urlsplit(page.url)._replace(query="").geturl(),
                                    data={**hidden_fields(page.text), "decision": decision},
                                    allow_redirects=False, timeout=10)
        else:
            response = page
    raise AssertionError("the upstream never sent the browser back")


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="(csrf_token|flow)" value="([^"]+)"', html))


def sign_in(app, connector, upstream: Upstream, *, link: bool = False,
            decision: str = "allow") -> tuple[str, dict[str, Any], dict[str, str]]:
    """Start at the connector, sign in at the upstream. Returns (authorization URL, what
    the flow keeps, the callback's parameters)."""
    with app.app_context():
        started = connector.start(state=secrets.token_urlsafe(16),
                                  nonce=secrets.token_urlsafe(16),
                                  callback_url=CALLBACK, link=link)
    params = browse(started.go.url, email=upstream.email, decision=decision)
    return started.go.url, dict(started.keep), params


def finish(app, connector, keep: dict[str, Any], params: dict[str, str]) -> UpstreamIdentity:
    with app.app_context():
        return connector.finish(params=params, kept=keep, callback_url=CALLBACK)


def refused(app, call: Callable[[], Any]) -> str:
    """The kind of ``ConnectorError`` that ``call`` raises in an app context."""
    with app.app_context(), pytest.raises(ConnectorError) as caught:
        call()
    return caught.value.kind


def raw_id_token(app, connector, upstream: Upstream, *, partner: bool = False) -> tuple[str, str]:
    """A real ID token of the upstream and its nonce: a sign-in whose code the test
    exchanges itself."""
    _, keep, params = sign_in(app, connector, upstream)
    response = requests.post(upstream.issuer + "/token", timeout=10, data={
        "grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK,
        "code_verifier": keep["code_verifier"],
    }, auth=(upstream.partner_id, upstream.partner_secret) if partner
        else (upstream.client_id, upstream.secret))
    assert response.status_code == 200, response.text
    return response.json()["id_token"], keep["nonce"]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- a loopback peer for what this provider cannot play -----------------------------------


class Peer:
    """A loopback HTTP server: ``answers[path] = (status, JSON value)`` for GET and POST,
    or a callable of the request body returning that pair. ``hits`` lists each path asked."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.hits: list[str] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))

            def _answer(self, body: bytes) -> None:
                path = self.path.split("?")[0]
                peer.hits.append(path)
                answer = peer.answers.get(path, (404, {"error": "not_found"}))
                status, value = answer(body) if callable(answer) else answer
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> Peer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def bare(settings) -> Flask:
    """The downstream as the connector sees it: settings and a clock in an app context.
    For the tests against a loopback peer, which need no database (and so none of the
    ``app`` fixture's per-test cleanup)."""
    app = Flask("downstream")
    app.extensions["idp.settings"] = settings
    app.extensions["idp.clock"] = Clock()
    return app


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer() as p:
        yield p


def publish(peer: Peer, *, issuer: str, keys: list[Any], discovery_path: str = "",
            **endpoints: str) -> None:
    """Discovery and JWKS of an upstream served by ``peer``."""
    path = (discovery_path or urlsplit(issuer).path.rstrip("/")) + \
        "/.well-known/openid-configuration"
    peer.answers[path] = (200, {
        "issuer": issuer,
        "authorization_endpoint": peer.base + "/authorize",
        "token_endpoint": peer.base + "/token",
        "jwks_uri": peer.base + "/keys",
        **endpoints,
    })
    peer.answers["/keys"] = (200, {"keys": keys})


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid}, private=True)


def public(key: RSAKey, **members: str) -> dict[str, Any]:
    return {**key.as_dict(private=False), "use": "sig", **members}


def signed(key: RSAKey, claims: dict[str, Any], *, alg: str = "RS256",
           kid: str | None = None) -> str:
    """``claims`` valid for 10 minutes from now; a claim given as None is left out."""
    now = int(time.time())
    claims = {k: v for k, v in {"iat": now, "exp": now + 600, **claims}.items()
              if v is not None}
    return jwt.encode({"alg": alg, "kid": kid or key.kid}, claims, key, algorithms=[alg])


def local_connector(app, peer: Peer, **changes: Any) -> oidc.OidcConnector:
    config = Config(**{"issuer": peer.base, "client_id": "downstream",
                       "client_secret": "s3cret-" + "x" * 20, **changes})
    return oidc.open("local", config, app.extensions["idp.settings"])


# -- signing in --------------------------------------------------------------------------


def test_a_user_signs_in_at_the_upstream_and_comes_back_as_its_issuer_subject_and_email(
    app, upstream
):
    connector = connect(app, upstream)
    assert isinstance(connector, CallbackConnector)
    url, keep, params = sign_in(app, connector, upstream)

    query = query_of(url)
    assert url.startswith(upstream.issuer + "/authorize?")
    assert query["response_type"] == "code" and query["client_id"] == upstream.client_id
    assert query["redirect_uri"] == CALLBACK and query["scope"] == "openid email profile"
    assert query["nonce"] == keep["nonce"] and query["state"] not in json.dumps(keep)
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == b64(hashlib.sha256(keep["code_verifier"].encode()).digest())
    assert "prompt" not in query
    json.dumps(keep)  # the login flow stores it as JSON

    identity = finish(app, connector, keep, params)
    assert identity == UpstreamIdentity(
        connector="upstream", issuer=upstream.issuer, subject=upstream.subject,
        email=upstream.email, email_verified=True, name=upstream.name, amr=("pwd",))


def test_linking_an_account_asks_the_upstream_for_its_account_chooser(app, upstream):
    connector = connect(app, upstream)
    url, keep, params = sign_in(app, connector, upstream, link=True)
    assert query_of(url)["prompt"] == "select_account"
    assert finish(app, connector, keep, params).subject == upstream.subject

    without = connect(app, upstream, link_prompt="")
    with app.app_context():
        started = without.start(state="s", nonce="n", callback_url=CALLBACK, link=True)
    assert "prompt" not in query_of(started.go.url)


def test_a_user_who_declines_consent_at_the_upstream_is_told_so(app, upstream):
    connector = connect(app, upstream, partner=True)
    _, keep, params = sign_in(app, connector, upstream, decision="deny")
    assert params["error"] == "access_denied"
    assert refused(app, lambda: connector.finish(params=params, kept=keep,
                                                 callback_url=CALLBACK)) == "denied"

    # The same partner, allowed: consent is the only difference.
    _, keep, params = sign_in(app, connector, upstream, decision="allow")
    assert finish(app, connector, keep, params).subject == upstream.subject


@pytest.mark.parametrize("change, kind", [
    (lambda keep, params: params.update(state="another-state"), "invalid"),
    (lambda keep, params: params.pop("state"), "invalid"),
    (lambda keep, params: keep.update(nonce="another-nonce"), "invalid"),
    # The upstream answers invalid_grant, as for a used code: "start again".
    (lambda keep, params: keep.update(code_verifier="x" * 64), "expired"),
    (lambda keep, params: params.update(iss="http://127.0.0.1:1"), "invalid"),
    (lambda keep, params: params.pop("iss"), "invalid"),
    (lambda keep, params: params.pop("code"), "invalid"),
    (lambda keep, params: keep.clear(), "invalid"),
], ids=["state-mismatch", "state-missing", "nonce-mismatch", "wrong-pkce-verifier",
        "iss-of-another-upstream", "iss-missing-though-advertised", "no-code", "nothing-kept"])
def test_a_callback_that_does_not_match_its_sign_in_is_refused(app, upstream, change, kind):
    connector = connect(app, upstream)
    _, keep, params = sign_in(app, connector, upstream)
    change(keep, params)
    assert refused(app, lambda: connector.finish(params=params, kept=keep,
                                                 callback_url=CALLBACK)) == kind


def test_a_replayed_callback_is_refused_as_expired(app, upstream):
    connector = connect(app, upstream)
    _, keep, params = sign_in(app, connector, upstream)
    finish(app, connector, keep, params)
    assert refused(app, lambda: connector.finish(params=params, kept=keep,
                                                 callback_url=CALLBACK)) == "expired"


def test_an_id_token_that_expired_before_the_callback_is_refused(app, upstream, clock):
    connector = connect(app, upstream)
    _, keep, params = sign_in(app, connector, upstream)
    lifetime = 3600  # the upstream's id_token_ttl (config/default.toml)
    clock.advance(lifetime + connector.config.leeway + 1)
    assert refused(app, lambda: connector.finish(params=params, kept=keep,
                                                 callback_url=CALLBACK)) == "expired"


@pytest.mark.parametrize("error, kind", [
    ("access_denied", "denied"),
    ("server_error", "unavailable"),
    ("temporarily_unavailable", "unavailable"),
    ("invalid_scope", "invalid"),
    ("login_required", "invalid"),
])
def test_an_error_from_the_upstream_names_its_page(app, upstream, error, kind):
    connector = connect(app, upstream)
    with app.app_context():
        keep = dict(connector.start(state="st", nonce="n", callback_url=CALLBACK,
                                    link=False).keep)
    params = {"state": "st", "iss": upstream.issuer, "error": error}
    assert refused(app, lambda: connector.finish(params=params, kept=keep,
                                                 callback_url=CALLBACK)) == kind


# -- the ID token ------------------------------------------------------------------------


def tamper_signature(token: str, secret: str) -> str:
    head, body, sig = token.split(".")
    raw = bytearray(unb64(sig))
    raw[10] ^= 0x01
    return f"{head}.{body}.{b64(bytes(raw))}"


def tamper_subject(token: str, secret: str) -> str:
    head, body, sig = token.split(".")
    claims = json.loads(unb64(body))
    claims["sub"] = "someone-else"
    return f"{head}.{b64(json.dumps(claims).encode())}.{sig}"


def alg_none(token: str, secret: str) -> str:
    _, body, _ = token.split(".")
    return f"{b64(json.dumps({'alg': 'none'}).encode())}.{body}."


def hmac_with_client_secret(token: str, secret: str) -> str:
    claims = json.loads(unb64(token.split(".")[1]))
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret), algorithms=["HS256"])


def signed_by_another_key(token: str, secret: str) -> str:
    head = json.loads(unb64(token.split(".")[0]))
    claims = json.loads(unb64(token.split(".")[1]))
    return jwt.encode(head, claims, rsa_key(head["kid"]), algorithms=["RS256"])


@pytest.mark.parametrize("tamper", [tamper_signature, tamper_subject, alg_none,
                                    hmac_with_client_secret, signed_by_another_key],
                         ids=lambda f: f.__name__)
def test_a_tampered_id_token_is_refused(app, upstream, tamper):
    connector = connect(app, upstream)
    token, nonce = raw_id_token(app, connector, upstream)
    with app.app_context():
        assert connector.verify_id_token(token, nonce=nonce)["sub"] == upstream.subject
    bad = tamper(token, upstream.secret)
    assert refused(app, lambda: connector.verify_id_token(bad, nonce=nonce)) == "invalid"


def test_an_id_token_issued_to_another_client_is_refused(app, upstream):
    partner = connect(app, upstream, partner=True)
    token, nonce = raw_id_token(app, partner, upstream, partner=True)
    ours = connect(app, upstream)
    assert refused(app, lambda: ours.verify_id_token(token, nonce=nonce)) == "invalid"
    with app.app_context():
        assert partner.verify_id_token(token, nonce=nonce)["aud"] == upstream.partner_id


@pytest.mark.parametrize("claims, kind", [
    ({}, None),
    ({"aud": ["downstream", "another"], "azp": "downstream"}, None),
    ({"aud": ["downstream", "another"]}, "invalid"),
    ({"aud": ["downstream", "another"], "azp": "another"}, "invalid"),
    ({"aud": "another"}, "invalid"),
    ({"iss": "http://127.0.0.1:1"}, "invalid"),
    ({"nonce": "another"}, "invalid"),
    ({"sub": ""}, "invalid"),
    # Times relative to when the test runs (not when it is collected: a long run would
    # turn "30 s ago" into minutes ago).
    ({"exp": -120}, "expired"),
    ({"exp": -30}, None),  # within the leeway
    ({"iat": 600}, "invalid"),
    ({"nbf": 600}, "invalid"),
    ({"exp": None}, "invalid"),
    ({"exp": "soon"}, "invalid"),
], ids=["good", "several-audiences-with-azp", "several-audiences-without-azp",
        "azp-of-another", "other-audience", "other-issuer", "other-nonce", "empty-sub",
        "expired", "expired-within-leeway", "issued-in-the-future", "not-yet-valid",
        "no-exp", "exp-not-a-number"])
def test_id_token_claims_are_checked_as_oidc_core_says(bare, peer, claims, kind):
    key = rsa_key("k1")
    publish(peer, issuer=peer.base, keys=[public(key)])
    connector = local_connector(bare, peer)
    base = {"iss": peer.base, "aud": "downstream", "sub": "u1", "nonce": "n"}
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "iat", "nbf") and isinstance(v, int) else v
              for k, v in claims.items()}
    token = signed(key, {**base, **claims})
    if kind is None:
        with bare.app_context():
            assert connector.verify_id_token(token, nonce="n")["sub"] == "u1"
    else:
        assert refused(bare, lambda: connector.verify_id_token(token, nonce="n")) == kind


def test_algorithms_outside_the_configured_ones_are_refused(bare, peer):
    key = rsa_key("k1")
    publish(peer, issuer=peer.base, keys=[public(key)])
    claims = {"iss": peer.base, "aud": "downstream", "sub": "u1", "nonce": "n"}
    token = signed(key, claims, alg="PS256")
    assert refused(bare, lambda: local_connector(bare, peer).verify_id_token(
        token, nonce="n")) == "invalid"
    with bare.app_context():
        assert local_connector(bare, peer, allowed_algs=("PS256",)).verify_id_token(
            token, nonce="n")["sub"] == "u1"


def test_a_jwks_key_without_kid_verifies_tokens_without_kid(bare, peer):
    """d-account publishes a single RSA key with neither kid nor alg."""
    key = rsa_key("k1")
    kidless = {k: v for k, v in public(key).items() if k != "kid"}
    publish(peer, issuer=peer.base + "/", keys=[kidless])
    connector = local_connector(bare, peer, issuer=peer.base + "/")
    claims = {"iss": peer.base + "/", "aud": "downstream", "sub": "u1", "nonce": "n"}
    token = jwt.encode({"alg": "RS256"}, {**claims, "iat": int(time.time()),
                                          "exp": int(time.time()) + 60}, key,
                       algorithms=["RS256"])
    with bare.app_context():
        assert connector.verify_id_token(token, nonce="n")["iss"] == peer.base + "/"


def test_an_unknown_signing_key_makes_one_jwks_refetch(bare, peer):
    old, new = rsa_key("old"), rsa_key("new")
    publish(peer, issuer=peer.base, keys=[public(old)])
    connector = local_connector(bare, peer, cache_ttl=3600)
    claims = {"iss": peer.base, "aud": "downstream", "sub": "u1", "nonce": "n"}
    with bare.app_context():
        connector.verify_id_token(signed(old, claims), nonce="n")
    assert peer.hits.count("/keys") == 1

    # Not published yet: one refetch per token, then refused.
    assert refused(bare, lambda: connector.verify_id_token(signed(new, claims),
                                                          nonce="n")) == "invalid"
    assert peer.hits.count("/keys") == 2
    peer.answers["/keys"] = (200, {"keys": [public(old), public(new)]})
    with bare.app_context():
        connector.verify_id_token(signed(new, claims), nonce="n")
        connector.verify_id_token(signed(old, claims), nonce="n")
    assert peer.hits.count("/keys") == 3


# -- Microsoft: one discovery, an issuer per tenant --------------------------------------

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
OTHER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@contextmanager
def microsoft(app, peer: Peer, **changes: Any) -> Iterator[tuple[oidc.OidcConnector, RSAKey]]:
    """Discovery of ``/common/v2.0`` naming the ``{tenantid}`` template, as Microsoft's."""
    key = rsa_key("ms1")
    template = peer.base + "/{tenantid}/v2.0"
    publish(peer, issuer=template, keys=[public(key, issuer=template)],
            discovery_path="/common/v2.0")
    yield local_connector(app, peer, issuer=peer.base + "/common/v2.0",
                          multitenant_issuer=template, **changes), key


def microsoft_token(peer: Peer, key: RSAKey, *, tid: str | None, iss_tenant: str,
                    nonce: str) -> str:
    claims = {"iss": f"{peer.base}/{iss_tenant}/v2.0", "aud": "downstream", "sub": "ms-sub",
              "nonce": nonce, "email": "taro@contoso.example", "name": "Taro"}
    if tid is not None:
        claims["tid"] = tid
    return signed(key, claims)


def test_a_microsoft_sign_in_carries_the_issuer_of_the_user_s_tenant(bare, peer):
    with microsoft(bare, peer) as (connector, key):
        with bare.app_context():
            started = connector.start(state="st", nonce="n1", callback_url=CALLBACK, link=True)
        assert started.go.url.startswith(peer.base + "/authorize?")
        assert query_of(started.go.url)["prompt"] == "select_account"
        token = microsoft_token(peer, key, tid=TENANT, iss_tenant=TENANT, nonce="n1")
        peer.answers["/token"] = (200, {"id_token": token, "access_token": "at",
                                        "token_type": "Bearer"})
        identity = finish(bare, connector, dict(started.keep), {"state": "st", "code": "c"})
    assert identity.issuer == f"{peer.base}/{TENANT}/v2.0"
    assert (identity.subject, identity.email, identity.name) == \
        ("ms-sub", "taro@contoso.example", "Taro")
    assert identity.email_verified is False  # Microsoft does not say


@pytest.mark.parametrize("tid, iss_tenant, allowed", [
    (TENANT, OTHER_TENANT, ()),
    (None, TENANT, ()),
    ("{tenantid}", "{tenantid}", ()),
    (OTHER_TENANT, OTHER_TENANT, (TENANT,)),
], ids=["iss-of-another-tenant", "no-tid", "the-template-itself", "tenant-not-allowed"])
def test_a_microsoft_token_whose_issuer_is_not_its_tenant_s_is_refused(
    bare, peer, tid, iss_tenant, allowed
):
    with microsoft(bare, peer, allowed_tenants=allowed) as (connector, key):
        # Keys without Microsoft's ``issuer`` member: the token's own claims must fail.
        peer.answers["/keys"] = (200, {"keys": [public(key)]})
        token = microsoft_token(peer, key, tid=tid, iss_tenant=iss_tenant, nonce="n")
        assert refused(bare, lambda: connector.verify_id_token(token, nonce="n")) == "invalid"


def test_only_allowed_tenants_sign_in_when_a_list_is_configured(bare, peer):
    with microsoft(bare, peer, allowed_tenants=(TENANT,)) as (connector, key):
        token = microsoft_token(peer, key, tid=TENANT, iss_tenant=TENANT, nonce="n")
        with bare.app_context():
            assert connector.verify_id_token(token, nonce="n")["tid"] == TENANT


def test_a_microsoft_key_does_not_vouch_for_another_issuer(bare, peer):
    """Microsoft's JWKS says which issuer each key signs for."""
    with microsoft(bare, peer) as (connector, key):
        peer.answers["/keys"] = (200, {"keys": [public(key, issuer="https://elsewhere/v2.0")]})
        token = microsoft_token(peer, key, tid=TENANT, iss_tenant=TENANT, nonce="n")
        assert refused(bare, lambda: connector.verify_id_token(token, nonce="n")) == "invalid"


def test_discovery_naming_another_issuer_is_not_used(bare, peer):
    # Microsoft's "common" document configured as if it were a single issuer.
    with microsoft(bare, peer):
        plain = local_connector(bare, peer, issuer=peer.base + "/common/v2.0")
        assert refused(bare, lambda: plain.start(state="s", nonce="n", callback_url=CALLBACK,
                                                link=False)) == "unavailable"
    assert "/keys" not in peer.hits


# -- an upstream that is down ------------------------------------------------------------


@contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_an_upstream_that_does_not_answer_is_unavailable(bare):
    nobody = free_port()
    connector = oidc.open("down", Config(issuer=f"http://127.0.0.1:{nobody}", client_id="c",
                                         client_secret="s"), bare.extensions["idp.settings"])
    assert refused(bare, lambda: connector.start(state="s", nonce="n", callback_url=CALLBACK,
                                                link=False)) == "unavailable"


@pytest.mark.parametrize("token_endpoint", ["closed", "silent", "500", "redirect", "garbage"])
def test_a_token_endpoint_that_fails_after_the_user_came_back_is_unavailable(
    bare, peer, token_endpoint
):
    key = rsa_key("k1")
    with silent_port() as silent:
        endpoints = {"closed": f"http://127.0.0.1:{free_port()}/token",
                     "silent": f"http://127.0.0.1:{silent}/token"}
        publish(peer, issuer=peer.base, keys=[public(key)],
                token_endpoint=endpoints.get(token_endpoint, peer.base + "/token"))
        peer.answers["/token"] = {
            "500": (500, {"error": "server_error"}),
            "redirect": (302, {}),
            "garbage": (200, ["not", "an", "object"]),
        }.get(token_endpoint, (404, {}))
        connector = local_connector(bare, peer, http_timeout=1)
        with bare.app_context():
            started = connector.start(state="st", nonce="n", callback_url=CALLBACK, link=False)
        began = time.monotonic()
        assert refused(bare, lambda: connector.finish(
            params={"state": "st", "code": "c"}, kept=dict(started.keep),
            callback_url=CALLBACK)) == "unavailable"
        assert time.monotonic() - began < 5


def test_connector_errors_never_carry_the_code_or_the_client_secret(bare, peer):
    key = rsa_key("k1")
    publish(peer, issuer=peer.base, keys=[public(key)])
    peer.answers["/token"] = (400, {"error": "invalid_client"})
    connector = local_connector(bare, peer)
    with bare.app_context():
        started = connector.start(state="st", nonce="n", callback_url=CALLBACK, link=False)
        with pytest.raises(ConnectorError) as caught:
            connector.finish(params={"state": "st", "code": "the-code-123"},
                             kept=dict(started.keep), callback_url=CALLBACK)
    assert caught.value.kind == "invalid"
    text = str(caught.value) + repr(connector) + repr(connector.config)
    assert "the-code-123" not in text and connector.config.client_secret not in text
    assert started.keep["code_verifier"] not in text


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("changes, problem", [
    ({"issuer": ""}, "issuer is required"),
    ({"client_id": ""}, "client_id is required"),
    ({"scopes": ("email",)}, "openid"),
    ({"allowed_algs": ("RS256", "HS256")}, "HS256"),
    ({"allowed_algs": ("none",)}, "none"),
    ({"multitenant_issuer": "https://login.microsoftonline.com/common/v2.0"}, "{tenantid}"),
    ({"allowed_tenants": ("t",)}, "needs multitenant_issuer"),
    ({"extra_params": {"redirect_uri": "https://evil.example"}}, "redirect_uri"),
    ({"token_auth_method": "private_key_jwt"}, "token_auth_method"),
], ids=["no-issuer", "no-client", "no-openid-scope", "hmac", "alg-none", "template-without-tid",
        "tenants-without-template", "extra-protocol-param", "unknown-auth-method"])
def test_a_misconfigured_connector_is_refused_at_start(changes, problem):
    values = {"issuer": "https://accounts.google.com", "client_id": "c", **changes}
    with pytest.raises(ValueError, match=re.escape(problem)):
        Config(**values)


def test_upstream_urls_must_be_https_except_loopback_outside_production(settings):
    def opened(issuer: str, environment: str) -> bool:
        try:
            oidc.open("x", Config(issuer=issuer, client_id="c"),
                      settings.replace(environment=environment))
        except SettingsError:
            return False
        return True

    assert opened("https://accounts.google.com", "production")
    assert opened("http://127.0.0.1:8080", "test")
    assert not opened("http://127.0.0.1:8080", "production")
    assert not opened("http://upstream.example", "test")
    assert not opened("ftp://upstream.example", "test")


def test_the_client_secret_is_not_in_the_config_repr():
    config = Config(issuer="https://accounts.google.com", client_id="c",
                    client_secret="very-secret-value")
    assert "very-secret-value" not in repr(config)


# -- key rotation at the upstream (last: it changes the module's upstream) --------------


def test_a_key_rotation_at_the_upstream_is_picked_up_without_a_restart(app, upstream):
    oidc.clear_cache()
    connector = connect(app, upstream, cache_ttl=3600)
    _, keep, params = sign_in(app, connector, upstream)
    assert finish(app, connector, keep, params).subject == upstream.subject
    before = {k["kid"] for k in requests.get(upstream.issuer + "/jwks.json",
                                             timeout=5).json()["keys"]}

    # Twice: the first promotes the key already published as "next"; the second signs
    # with one created after the connector read the JWKS.
    for _ in range(2):
        idp_cli("keys", "rotate", env=upstream.env)
    time.sleep(1.2)  # granian workers re-read the key store at most once a second

    token, _ = raw_id_token(app, connector, upstream)
    kid = json.loads(unb64(token.split(".")[0]))["kid"]
    assert kid not in before
    # The connector's JWKS copy (kept an hour) lacks that key: it refetches once.
    _, keep, params = sign_in(app, connector, upstream)
    assert finish(app, connector, keep, params).subject == upstream.subject

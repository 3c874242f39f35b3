"""The contract admin JSON API (/admin/api/v1): both ways in, tenant isolation for every
endpoint, problem details, paging, idempotent invitations and mails, the audit log, the
contract's settings (read-only), and a schemathesis run."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask.testing import FlaskClient

from idp.db import db
from idp.models import (
    AuditEvent,
    Contract,
    ContractLine,
    MailMessage,
    Ticket,
    User,
)
from tests.conftest import run_idp
from tests.console_helpers import (
    HOSTS,
    fetch,
    fetch_all,
    live_browsers,
    remember_browsers,
    sign_in,
    update,
)
from tests.helpers import RP, bearer, refresh, tokens_for

API = "/admin/api/v1"
CODEC = HOSTS["codec"]
LINE_A = "CAF1234567890"
LINE_B = "COP12345678"
JST = timezone(timedelta(hours=9))


@dataclass
class Tenant:
    contract_id: str
    owner: User
    admin: User
    member: User


def _tenant(factory, prefix: str) -> Tenant:
    owner = factory.user(email=f"{prefix}-owner@example.com")
    admin = factory.user(email=f"{prefix}-admin@example.com", role="admin",
                         contract_id=owner.contract_id)
    member = factory.user(email=f"{prefix}-member@example.com", role="user",
                          contract_id=owner.contract_id)
    return Tenant(owner.contract_id, owner, admin, member)


@pytest.fixture
def a(factory) -> Tenant:
    return _tenant(factory, "a")


@pytest.fixture
def b(factory) -> Tenant:
    return _tenant(factory, "b")


def admin_client(factory, contract_id: str) -> RP:
    """What `idp client create --admin-contract` stores (the CLI test checks that)."""
    return factory.rp(grant_types=("client_credentials",), scope="admin",
                      contract_id=contract_id)


def token_of(http: FlaskClient, rp: RP, *, scope: str = "admin") -> str:
    response = http.post("/token", headers=rp.basic,
                         data={"grant_type": "client_credentials", "scope": scope})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["access_token"]


class Api:
    """One way into the API: a bearer token, or a signed-in browser with its CSRF token."""

    def __init__(self, http: FlaskClient, *, token: str | None = None,
                 csrf: str | None = None, actor: str = "") -> None:
        self.http, self.token, self.csrf, self.actor = http, token, csrf, actor

    def __call__(self, method: str, path: str, body: Any = None, *,
                 headers: dict[str, str] | None = None, csrf: bool = True):
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        elif self.csrf and csrf:
            sent["X-CSRF-Token"] = self.csrf
        kwargs: dict[str, Any] = {"headers": sent, "base_url": CODEC}
        if body is not None:
            kwargs["json"] = body
        return self.http.open(API + path, method=method, **kwargs)


def token_api(app, factory, tenant: Tenant) -> Api:
    rp = admin_client(factory, tenant.contract_id)
    http = app.test_client()
    return Api(http, token=token_of(http, rp), actor=f"client:{rp.client_id}")


def session_api(app, user: User) -> Api:
    http = app.test_client()
    sign_in(http, email=user.email)
    csrf = http.get(API + "/csrf-token", base_url=CODEC).json["csrf_token"]
    return Api(http, csrf=csrf, actor=f"user:{user.id}")


@pytest.fixture(params=["token", "session"])
def api(request, app, factory, a) -> Api:
    """Contract A's caller, each way in (the session is A's admin, not its owner)."""
    if request.param == "token":
        return token_api(app, factory, a)
    return session_api(app, a.admin)


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:800]
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status and body["title"] and body["type"] and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


def audit_of(app, target: str) -> list[tuple[str, str]]:
    events = sorted(fetch_all(app, AuditEvent, target=target), key=lambda e: e.id)
    return [(e.action, e.actor) for e in events]


def mails_to(app, address: str) -> int:
    return len(fetch_all(app, MailMessage, to=address))


def jst(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=JST).timestamp())


def seed_event(app, contract_id: str | None, action: str, *, at: int, actor: str = "system",
               target: str = "", **details: Any) -> None:
    with app.app_context():
        db.session.add(AuditEvent(at=at, actor=actor, action=action, target=target,
                                  contract_id=contract_id, ip="192.0.2.1", details=details))
        db.session.commit()




# -- who may call ---------------------------------------------------------------------------


def test_a_call_without_token_or_session_is_a_401_problem_with_a_bearer_challenge(client):
    response = client.get(API + "/users")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_token_is_a_401_invalid_token(client):
    response = client.get(API + "/users", headers={"Authorization": "Bearer nope"})
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_token_without_scope_admin_is_refused(app, client, factory, a):
    rp = admin_client(factory, a.contract_id)
    token = client.post("/token", headers=rp.basic,
                        data={"grant_type": "client_credentials"}).json["access_token"]
    response = client.get(API + "/users", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 403, "insufficient_scope")
    assert 'scope="admin"' in response.headers["WWW-Authenticate"]


def test_a_client_that_is_not_an_admin_client_gets_no_admin_scope_nor_access(client, factory):
    rp = factory.rp(grant_types=("client_credentials",), scope="profile admin")
    refused = client.post("/token", headers=rp.basic,
                          data={"grant_type": "client_credentials", "scope": "admin"})
    assert refused.status_code == 400 and refused.json["error"] == "invalid_scope"
    token = token_of(client, rp, scope="profile")
    response = client.get(API + "/users", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 403, "insufficient_scope")


def test_a_plain_user_session_is_forbidden(app, a):
    http = app.test_client()
    sign_in(http, email=a.member.email)
    assert_problem(http.get(API + "/users", base_url=CODEC), 403, "forbidden")


def test_an_admin_client_of_an_ended_contract_is_refused(app, client, factory, a):
    from idp.models import Contract

    rp = admin_client(factory, a.contract_id)
    token = token_of(client, rp)
    update(app, Contract, a.contract_id, status="cancelled", cancelled_at=1)
    response = client.get(API + "/users", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 403)


def test_session_writes_need_the_csrf_header_and_change_nothing_without_it(app, a):
    api = session_api(app, a.owner)
    for method, path, body in [("POST", f"/users/{a.member.id}/disable", None),
                               ("PATCH", f"/users/{a.member.id}", {"role": "admin"}),
                               ("POST", "/users", {"name": "X", "email": "x@example.com"}),
                               ("POST", "/lines", {"line_id": LINE_A}),
                               ("POST", f"/users/{a.member.id}/email",
                                {"email": "renamed@example.com"}),
                               ("POST", f"/users/{a.member.id}/sessions/revoke", None),
                               ("POST", f"/users/{a.member.id}/browsers/forget", None)]:
        assert_problem(api(method, path, body, csrf=False), 403, "csrf_failed")
        assert_problem(api(method, path, body, headers={"X-CSRF-Token": "forged"},
                           csrf=False), 403, "csrf_failed")
    member = fetch(app, User, id=a.member.id)
    assert (member.status, member.role) == ("active", "user")
    assert fetch(app, User, email="x@example.com") is None
    assert fetch_all(app, ContractLine, contract_id=a.contract_id) == []
    assert member.session_epoch == a.member.session_epoch
    assert fetch_all(app, Ticket, user_id=a.member.id) == []


def test_a_bearer_call_needs_no_csrf_token_and_is_audited_as_the_client(app, factory, a):
    api = token_api(app, factory, a)
    response = api("POST", f"/users/{a.member.id}/disable")
    assert response.status_code == 200, response.json
    assert audit_of(app, f"user:{a.member.id}")[-1] == ("user.disabled", api.actor)


def test_the_cli_makes_an_admin_client_whose_token_works(app, a, settings):
    # What an operator exports (as tests/test_cli.py's ``env``).
    env = {"IDP_CONFIG": str(settings.config_path), "IDP_ENVIRONMENT": "test",
           "IDP_ISSUER": settings.issuer, "IDP_DATABASE_URL": settings.database_url,
           "IDP_REDIS_URL": settings.redis_url, "IDP_SECRET_KEY": settings.secret_key,
           "IDP_KEYS_KEK": settings.keys_kek, "IDP_KEYS_DIR": str(settings.keys_dir)}
    result = run_idp("client", "create", "--name", "HR sync", "--admin-contract",
                     a.contract_id, "--json", env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["scope"] == "admin" and out["contract_id"] == a.contract_id
    assert out["grant_types"] == ["client_credentials"]
    refused = run_idp("client", "create", "--name", "X", "--admin-contract", "ctr_nope",
                      env=env)
    assert refused.returncode != 0 and "no contract" in refused.stderr

    http = app.test_client()
    basic = base64.b64encode(f"{out['client_id']}:{out['client_secret']}".encode()).decode()
    token = http.post("/token", headers={"Authorization": f"Basic {basic}"},
                      data={"grant_type": "client_credentials", "scope": "admin"})
    assert token.status_code == 200, token.json
    response = http.get(API + "/users",
                        headers={"Authorization": f"Bearer {token.json['access_token']}"})
    assert response.status_code == 200
    assert {u["email"] for u in response.json["items"]} == {
        a.owner.email, a.admin.email, a.member.email}


# -- users ----------------------------------------------------------------------------------


def test_the_user_list_pages_and_searches_within_the_contract(api, app, factory, a, b):
    for n in range(5):
        factory.user(email=f"a-extra{n}@example.com", role="user", contract_id=a.contract_id)
    first = api("GET", "/users?per_page=3")
    assert first.status_code == 200
    assert (first.json["total"], first.json["page"], first.json["per_page"]) == (8, 1, 3)
    assert len(first.json["items"]) == 3
    seen = [u["email"] for p in (1, 2, 3) for u in api("GET", f"/users?per_page=3&page={p}")
            .json["items"]]
    assert len(seen) == len(set(seen)) == 8
    assert not any(e.startswith("b-") for e in seen)
    assert api("GET", "/users?per_page=3&page=4").json["items"] == []
    found = api("GET", "/users?q=extra3")
    assert [u["email"] for u in found.json["items"]] == ["a-extra3@example.com"]
    assert api("GET", "/users?q=b-member").json == {"total": 0, "page": 1, "per_page": 20,
                                                     "items": []}


@pytest.mark.parametrize(("query", "field"), [
    ("page=0", "page"), ("page=x", "page"), ("per_page=101", "per_page"),
    ("per_page=-1", "per_page"), ("q=" + "x" * 201, "q"), ("q=a%00", "q"),
], ids=["page-0", "page-text", "per-page-too-big", "per-page-negative", "q-too-long",
        "q-nul"])
def test_bad_paging_is_a_validation_problem(api, query, field):
    body = assert_problem(api("GET", f"/users?{query}"), 400, "validation_failed")
    assert field in body["errors"]


def test_a_user_detail_shows_the_user_and_their_factors(api, a):
    response = api("GET", f"/users/{a.member.id}")
    assert response.status_code == 200
    body = response.json
    assert (body["id"], body["email"], body["role"], body["status"]) == (
        a.member.id, a.member.email, "user", "active")
    assert body["two_step_factors"] == []
    assert_problem(api("GET", "/users/no-such-user"), 404, "not_found")


def test_invite_creates_an_invited_user_and_mails_them(api, app, a):
    response = api("POST", "/users", {"name": "佐藤 花子", "email": "Hanako@Example.com",
                                      "role": "admin", "lang": "en"})
    assert response.status_code == 201, response.json
    user = response.json["user"]
    assert (user["email"], user["role"], user["status"], user["lang"]) == (
        "hanako@example.com", "admin", "invited", "en")
    assert response.json["mail"] in ("sent", "delayed")
    stored = fetch(app, User, id=user["id"])
    assert stored.contract_id == a.contract_id
    assert audit_of(app, f"user:{user['id']}") == [("user.invited", api.actor)]
    assert mails_to(app, "hanako@example.com") == 1


def test_inviting_a_still_invited_address_again_resends_with_200(api, app):
    body = {"name": "佐藤 花子", "email": "hanako@example.com"}
    first = api("POST", "/users", body)
    again = api("POST", "/users", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["user"]["id"] == first.json["user"]["id"]
    assert len(fetch_all(app, User, email="hanako@example.com")) == 1
    assert mails_to(app, "hanako@example.com") == 2


def test_an_idempotency_key_replays_the_same_result_without_a_second_mail(api, app):
    body = {"name": "佐藤 花子", "email": "hanako@example.com"}
    key = {"Idempotency-Key": "invite-42"}
    first = api("POST", "/users", body, headers=key)
    again = api("POST", "/users", body, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["user"]["id"] == first.json["user"]["id"]
    assert again.json["mail"] == "none"
    assert mails_to(app, "hanako@example.com") == 1
    other = api("POST", "/users", {**body, "name": "別人"}, headers=key)
    assert_problem(other, 422, "idempotency_key_reused")


def test_a_failed_invitation_does_not_burn_its_idempotency_key(api, app):
    key = {"Idempotency-Key": "k1"}
    assert_problem(api("POST", "/users", {"name": "X", "email": "bad"}, headers=key), 400)
    ok = api("POST", "/users", {"name": "X", "email": "bad"}, headers=key)
    assert ok.status_code == 400  # re-validated, not replayed


@pytest.mark.parametrize(("body", "fields"), [
    ({}, {"name", "email"}),
    ({"name": "X", "email": "not-an-address"}, {"email"}),
    ({"name": " ", "email": "x@example.com"}, {"name"}),
    ({"name": "X" * 201, "email": "x@example.com"}, {"name"}),
    ({"name": "X", "email": "x@example.com", "role": "owner"}, {"role"}),
    ({"name": "X", "email": "x@example.com", "lang": "fr"}, {"lang"}),
    ({"name": 1, "email": ["x"]}, {"name", "email"}),
], ids=["empty", "bad-email", "blank-name", "long-name", "owner-role", "bad-lang", "types"])
def test_invalid_invitations_are_validation_problems_naming_the_fields(api, app, body, fields):
    problem = assert_problem(api("POST", "/users", body), 400, "validation_failed")
    assert set(problem["errors"]) == fields
    assert fetch(app, User, email="x@example.com") is None


def test_a_body_that_is_not_a_json_object_is_a_400_problem(api):
    for raw in (b"[1, 2]", b"{not json", b'"text"'):
        response = api.http.post(API + "/users", data=raw, base_url=CODEC, headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {api.token}"} if api.token
               else {"X-CSRF-Token": api.csrf})})
        assert_problem(response, 400, "invalid_body")


def test_inviting_an_address_of_another_contract_is_a_conflict(api, b):
    assert_problem(api("POST", "/users", {"name": "X", "email": b.member.email}), 409,
                   "admin_email_taken")


def test_resend_sends_a_new_link_to_an_invited_user_only(api, app, a):
    invited = api("POST", "/users", {"name": "X", "email": "x@example.com"}).json["user"]
    response = api("POST", f"/users/{invited['id']}/resend")
    assert response.status_code == 200 and response.json["user"]["id"] == invited["id"]
    assert mails_to(app, "x@example.com") == 2
    assert audit_of(app, f"user:{invited['id']}")[-1] == ("user.invitation_resent", api.actor)
    assert_problem(api("POST", f"/users/{a.member.id}/resend"), 409, "admin_not_invited")


def test_role_changes_follow_the_console_rules(api, app, a):
    response = api("PATCH", f"/users/{a.member.id}", {"role": "admin"})
    assert response.status_code == 200 and response.json["role"] == "admin"
    assert fetch(app, User, id=a.member.id).role == "admin"
    assert audit_of(app, f"user:{a.member.id}")[-1] == ("user.role_changed", api.actor)
    assert_problem(api("PATCH", f"/users/{a.owner.id}", {"role": "user"}), 409,
                   "admin_owner_fixed")
    bad = assert_problem(api("PATCH", f"/users/{a.member.id}", {"role": "owner"}), 400)
    assert set(bad["errors"]) == {"role"}
    assert set(assert_problem(api("PATCH", f"/users/{a.member.id}", {}), 400)["errors"]) == {
        "role"}
    assert fetch(app, User, id=a.owner.id).role == "owner"


def test_an_admin_cannot_demote_or_disable_themselves_through_their_session(app, a):
    api = session_api(app, a.admin)
    assert_problem(api("PATCH", f"/users/{a.admin.id}", {"role": "user"}), 409,
                   "admin_not_yourself")
    assert_problem(api("POST", f"/users/{a.admin.id}/disable"), 409, "admin_not_yourself")


def test_disable_and_enable(api, app, a):
    response = api("POST", f"/users/{a.member.id}/disable")
    assert response.status_code == 200 and response.json["status"] == "disabled"
    assert_problem(api("POST", f"/users/{a.member.id}/disable"), 409, "admin_not_active")
    response = api("POST", f"/users/{a.member.id}/enable")
    assert response.status_code == 200 and response.json["status"] == "active"
    assert_problem(api("POST", f"/users/{a.member.id}/enable"), 409, "admin_not_disabled")
    assert [x for x, _ in audit_of(app, f"user:{a.member.id}")] == [
        "user.disabled", "user.enabled"]
    assert_problem(api("POST", f"/users/{a.owner.id}/disable"), 409, "admin_owner_fixed")
    assert fetch(app, User, id=a.owner.id).status == "active"


def test_two_step_reset_is_audited(api, app, a):
    response = api("POST", f"/users/{a.member.id}/two-step/reset")
    assert response.status_code == 200, response.json
    assert response.json["mail"] == "none"  # nothing was enrolled: nothing to tell
    assert fetch(app, User, id=a.member.id).two_step_reset_at is not None
    assert audit_of(app, f"user:{a.member.id}")[-1] == ("mfa.reset", api.actor)
    assert_problem(api("POST", f"/users/{a.owner.id}/two-step/reset"), 409,
                   "admin_owner_fixed")


# -- lines ----------------------------------------------------------------------------------


def test_lines_are_listed_registered_and_removed(api, app, a):
    assert api("GET", "/lines").json == {"access_route": "line+internet", "items": []}
    added = api("POST", "/lines", {"line_id": "caf-1234567890"})
    assert added.status_code == 201 and added.json["line_id"] == LINE_A
    assert added.json["created_by"] == api.actor
    assert [r["line_id"] for r in api("GET", "/lines").json["items"]] == [LINE_A]
    assert_problem(api("POST", "/lines", {"line_id": LINE_A}), 409, "line_id_taken")
    bad = assert_problem(api("POST", "/lines", {"line_id": "CAF12"}), 400, "validation_failed")
    assert "line_id" in bad["errors"]
    assert api("DELETE", f"/lines/{LINE_A}").status_code == 204
    assert_problem(api("DELETE", f"/lines/{LINE_A}"), 404)
    assert [x for x, _ in audit_of(app, f"contract:{a.contract_id}")] == [
        "contract.line_registered", "contract.line_removed"]


def test_the_last_line_of_a_line_only_contract_goes_only_when_confirmed(api, app, a):
    from idp.models import Contract

    api("POST", "/lines", {"line_id": LINE_A})
    update(app, Contract, a.contract_id, access_route="line-only")
    assert_problem(api("DELETE", f"/lines/{LINE_A}"), 409, "last_line_of_line_only")
    assert len(fetch_all(app, ContractLine, contract_id=a.contract_id)) == 1
    assert api("DELETE", f"/lines/{LINE_A}?confirm=true").status_code == 204


# -- the email form: email change or login-method change ----------------------------------


def test_a_changed_address_gets_the_email_change_link_at_the_new_address(api, app, a):
    response = api("POST", f"/users/{a.member.id}/email", {"email": "Renamed@Example.com"})
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["link"], body["to"], body["user"]["id"]) == (
        "email_change", "renamed@example.com", a.member.id)
    assert body["mail"] in ("sent", "delayed")
    assert mails_to(app, "renamed@example.com") == 1 and mails_to(app, a.member.email) == 0
    assert fetch(app, User, id=a.member.id).email == a.member.email  # not until confirmed
    assert audit_of(app, f"user:{a.member.id}")[-1] == ("email_change.requested", api.actor)


def test_an_unchanged_address_gets_the_login_method_change_link(api, app, a):
    response = api("POST", f"/users/{a.member.id}/email", {"email": a.member.email.upper()})
    assert response.status_code == 200, response.json
    assert (response.json["link"], response.json["to"]) == (
        "login_method_change", a.member.email)
    assert mails_to(app, a.member.email) == 1
    assert [t.kind for t in fetch_all(app, Ticket, user_id=a.member.id)] == [
        "login_method_change"]
    assert audit_of(app, f"user:{a.member.id}")[-1] == (
        "login_method.change_requested", api.actor)


@pytest.mark.parametrize(("first", "then", "code"), [
    ("renamed@example.com", None, "admin_method_change_while_email_change"),
    (None, "renamed@example.com", "email_change_while_method_change"),
], ids=["email-change-then-method-change", "method-change-then-email-change"])
def test_email_change_and_login_method_change_are_never_both_under_way(api, app, a, first,
                                                                       then, code):
    path = f"/users/{a.member.id}/email"
    assert api("POST", path, {"email": first or a.member.email}).status_code == 200
    sent = len(fetch_all(app, MailMessage))
    assert_problem(api("POST", path, {"email": then or a.member.email}), 409, code)
    assert len(fetch_all(app, MailMessage)) == sent
    assert len(fetch_all(app, Ticket, user_id=a.member.id)) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({}, "email"), ({"email": 7}, "email"), ({"email": "not-an-address"}, "email"),
    ({"email": "x @example.com"}, "email"), ({"email": "a\x00b@example.com"}, "email"),
], ids=["missing", "not-a-string", "not-an-address", "space", "nul"])
def test_an_invalid_address_is_a_validation_problem_and_sends_nothing(api, app, a, body, field):
    problem = assert_problem(api("POST", f"/users/{a.member.id}/email", body), 400,
                             "validation_failed")
    assert set(problem["errors"]) == {field}
    assert fetch_all(app, MailMessage) == [] and fetch_all(app, Ticket) == []


def test_the_email_form_refuses_the_owner_the_invited_and_a_taken_address(api, app, a):
    for email in (a.owner.email, "new-owner@example.com"):
        assert_problem(api("POST", f"/users/{a.owner.id}/email", {"email": email}), 409,
                       "admin_owner_uses_settings")
    invited = api("POST", "/users", {"name": "X", "email": "x@example.com"}).json["user"]
    assert_problem(api("POST", f"/users/{invited['id']}/email", {"email": "y@example.com"}),
                   409, "admin_not_active")
    assert_problem(api("POST", f"/users/{a.member.id}/email", {"email": a.admin.email}), 409,
                   "email_taken")
    assert [m.to for m in fetch_all(app, MailMessage)] == ["x@example.com"]  # the invitation


def test_an_idempotency_key_sends_the_email_link_once(api, app, a):
    path, key = f"/users/{a.member.id}/email", {"Idempotency-Key": "mail-7"}
    first = api("POST", path, {"email": "renamed@example.com"}, headers=key)
    again = api("POST", path, {"email": "renamed@example.com"}, headers=key)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json["mail"] == "none"
    assert (again.json["link"], again.json["to"], again.json["user"]["id"]) == (
        "email_change", "renamed@example.com", a.member.id)
    assert mails_to(app, "renamed@example.com") == 1
    assert_problem(api("POST", path, {"email": "other@example.com"}, headers=key), 422,
                   "idempotency_key_reused")
    assert_problem(api("POST", f"/users/{a.admin.id}/email", {"email": "renamed@example.com"},
                       headers=key), 422, "idempotency_key_reused")


def test_a_refused_email_link_does_not_burn_its_idempotency_key(api, app, a):
    path, key = f"/users/{a.member.id}/email", {"Idempotency-Key": "mail-8"}
    assert_problem(api("POST", path, {"email": a.admin.email}, headers=key), 409, "email_taken")
    assert_problem(api("POST", path, {"email": a.admin.email}, headers=key), 409, "email_taken")


# -- sign out everywhere, forget remembered browsers ------------------------------------------


def test_signing_a_user_out_everywhere_ends_their_tokens_and_is_audited(api, app, a, rp):
    theirs = app.test_client()
    tokens = tokens_for(theirs, rp, a.member, scope="openid offline_access")
    assert theirs.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200
    response = api("POST", f"/users/{a.member.id}/sessions/revoke")
    assert response.status_code == 200, response.json
    assert response.json["user"]["status"] == "active"
    assert fetch(app, User, id=a.member.id).session_epoch == a.member.session_epoch + 1
    assert theirs.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    assert refresh(theirs, rp, tokens["refresh_token"]).status_code == 400
    assert audit_of(app, f"user:{a.member.id}")[-1] == ("user.sessions_revoked", api.actor)


def test_forgetting_remembered_browsers_counts_them_and_is_audited(api, app, a):
    remember_browsers(app, a.member, 2)
    response = api("POST", f"/users/{a.member.id}/browsers/forget")
    assert response.status_code == 200 and response.json["forgotten"] == 2
    assert live_browsers(app, a.member) == 0
    assert api("POST", f"/users/{a.member.id}/browsers/forget").json["forgotten"] == 0
    assert audit_of(app, f"user:{a.member.id}")[-1] == (
        "mfa.browsers_revoked_by_admin", api.actor)


@pytest.mark.parametrize("action", ["sessions/revoke", "browsers/forget"])
def test_the_owners_sessions_and_browsers_are_the_owners_alone(api, app, a, action):
    remember_browsers(app, a.owner, 1)
    assert_problem(api("POST", f"/users/{a.owner.id}/{action}"), 409, "admin_owner_fixed")
    owner = fetch(app, User, id=a.owner.id)
    assert owner.session_epoch == a.owner.session_epoch and live_browsers(app, a.owner) == 1
    assert audit_of(app, f"user:{a.owner.id}") == []


@pytest.mark.parametrize("action", ["sessions/revoke", "browsers/forget"])
def test_the_owner_may_end_their_own_through_their_session(app, a, action):
    remember_browsers(app, a.owner, 1)
    api = session_api(app, a.owner)
    assert api("POST", f"/users/{a.owner.id}/{action}").status_code == 200
    assert audit_of(app, f"user:{a.owner.id}")[-1][1] == f"user:{a.owner.id}"


def test_an_invited_user_has_no_sessions_to_end(api, app):
    invited = api("POST", "/users", {"name": "X", "email": "x@example.com"}).json["user"]
    assert_problem(api("POST", f"/users/{invited['id']}/sessions/revoke"), 409,
                   "admin_not_active")


# -- the audit log ------------------------------------------------------------------------------


@pytest.fixture
def logged(app, a, b):
    """Events of A (and one of B, which A must never see), in Japan time."""
    seed_event(app, a.contract_id, "signin.succeeded", at=jst(2026, 1, 4, 23, 59),
               actor=f"user:{a.member.id}", target=f"user:{a.member.id}")
    seed_event(app, a.contract_id, "user.disabled", at=jst(2026, 1, 5, 0, 0),
               actor=f"user:{a.admin.id}", target=f"user:{a.member.id}")
    seed_event(app, a.contract_id, "user.enabled", at=jst(2026, 1, 6, 23, 59, 59),
               actor="client:someone", target=f"user:{a.member.id}", reason="back")
    seed_event(app, a.contract_id, "mfa.reset", at=jst(2026, 1, 7, 0, 0),
               actor=f"user:{b.admin.id}", target=f"user:{a.admin.id}")
    seed_event(app, b.contract_id, "user.disabled", at=jst(2026, 1, 5, 12, 0),
               actor=f"user:{b.admin.id}", target=f"user:{b.member.id}")


def _actions(response) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    return [e["action"] for e in response.json["items"]]


def test_the_audit_log_lists_the_contracts_events_newest_first_with_names(api, a, logged):
    response = api("GET", "/audit?from=2026-01-01&to=2026-01-31")
    assert _actions(response) == ["mfa.reset", "user.enabled", "user.disabled",
                                  "signin.succeeded"]
    first, _, disabled, _ = response.json["items"]
    # Names only for this contract's people: B's admin stays an id.
    assert (first["actor_email"], first["target_email"]) == (None, a.admin.email)
    assert (disabled["actor_email"], disabled["target_email"]) == (a.admin.email,
                                                                   a.member.email)
    assert disabled["at_jst"] == "2026-01-05 00:00:00" and disabled["ip"] == "192.0.2.1"
    assert response.json["items"][1]["details"] == {"reason": "back"}


@pytest.mark.parametrize(("query", "expected"), [
    ("from=2026-01-05&to=2026-01-06", ["user.enabled", "user.disabled"]),
    ("to=2026-01-04", ["signin.succeeded"]),
    ("action=user.&from=2026-01-01", ["user.enabled", "user.disabled"]),
    ("user=a-admin&from=2026-01-01&to=2026-01-31", ["mfa.reset"]),
    ("user=b-member", []),
    ("action=user.disabled&from=2026-01-01", ["user.disabled"]),
], ids=["jst-days", "until-the-end-of-a-day", "action-prefix", "user-email", "other-contract",
        "action-exact"])
def test_the_audit_log_filters_as_the_console(api, logged, query, expected):
    assert _actions(api("GET", f"/audit?{query}")) == expected


def test_the_audit_log_filters_by_user_id_of_this_contract_only(api, a, b, logged):
    assert _actions(api("GET", f"/audit?user={a.admin.id}&to=2026-01-31")) == ["mfa.reset"]
    assert api("GET", f"/audit?user={b.member.id}").json["total"] == 0


def test_the_audit_log_pages_and_ends_with_an_empty_page(api, logged):
    query = "from=2026-01-01&to=2026-01-31&per_page=3"
    first = api("GET", f"/audit?{query}").json
    assert (first["total"], first["page"], first["per_page"], len(first["items"])) == (4, 1, 3, 3)
    assert _actions(api("GET", f"/audit?{query}&page=2")) == ["signin.succeeded"]
    assert api("GET", f"/audit?{query}&page=3").json["items"] == []


@pytest.mark.parametrize(("query", "field"), [
    ("from=2026-13-01", "from"), ("to=2026-02-30", "to"), ("from=2026/01/01", "from"),
    ("to=20260101", "to"), ("from=yesterday", "from"), ("per_page=101", "per_page"),
    ("page=0", "page"), ("action=" + "x" * 81, "action"), ("user=" + "x" * 201, "user"),
    ("user=a%00b", "user"), ("action=user.%00", "action"),
], ids=["month-13", "feb-30", "slashes", "basic-format", "word", "per-page", "page-0",
        "long-action", "long-user", "nul-user", "nul-action"])
def test_bad_audit_filters_are_validation_problems(api, query, field):
    problem = assert_problem(api("GET", f"/audit?{query}"), 400, "validation_failed")
    assert field in problem["errors"]


@pytest.mark.parametrize("query", ["from=0001-01-01", "to=9999-12-31", "from=2300-01-01",
                                   "to=1900-01-01"], ids=["year-1", "year-9999", "2300", "1900"])
def test_far_away_days_are_no_error_on_either_backend(api, logged, query):
    # ``at`` is 32-bit on PostgreSQL: bounds outside it must not reach the database as such.
    assert api("GET", f"/audit?{query}").status_code == 200


def test_the_api_calls_themselves_appear_in_the_audit_log_with_their_actor(api, a):
    api("POST", f"/users/{a.member.id}/browsers/forget")
    event = api("GET", "/audit?action=mfa.browsers").json["items"][0]
    assert (event["actor"], event["target"]) == (api.actor, f"user:{a.member.id}")


# -- the contract's settings (read-only) --------------------------------------------------------


def test_the_contract_shows_its_settings_but_never_the_ad_bind_password(api, app, a):
    update(app, Contract, a.contract_id, connection_id="adfs-abcdefghijklmnopqr",
           access_route="line-only", two_step_enabled=True, two_step_keep_on_reset=True,
           ad_settings={"type": "ldap", "url": "ldaps://dc.example.com",
                        "bind_dn": "cn=svc", "bind_password_enc": "SEALED-SECRET"})
    response = api("GET", "/contract")
    assert response.status_code == 200
    body = response.json
    assert (body["id"], body["plan"], body["state"], body["access_route"]) == (
        a.contract_id, "basic", "active", "line-only")
    assert body["two_step"] == {"enabled": True, "in_force": False}  # line-only
    assert body["two_step_keep_on_reset"] is True
    assert (body["connection_id"], body["ad_type"]) == ("adfs-abcdefghijklmnopqr", "ldap")
    text = response.get_data(as_text=True)
    assert "SEALED" not in text and "bind" not in text and "ldaps" not in text


def test_a_contract_without_ad_shows_none(api, app, a):
    update(app, Contract, a.contract_id, two_step_enabled=True)
    body = api("GET", "/contract").json
    assert (body["connection_id"], body["ad_type"], body["two_step"]) == (
        None, None, {"enabled": True, "in_force": True})


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_contract_settings_cannot_be_written_through_the_api(api, app, a, method):
    response = api(method, "/contract", {"access_route": "line-only", "two_step": True})
    assert response.status_code in (404, 405)
    contract = fetch(app, Contract, id=a.contract_id)
    assert (contract.access_route, contract.two_step_enabled) == ("line+internet", False)
    assert not [e for e in fetch_all(app, AuditEvent, contract_id=a.contract_id)
                if e.action.startswith("contract.")]


# -- tenant isolation: every endpoint ----------------------------------------------------------

#: (method, path, body) with {user} = contract B's member and {line} = B's line.
CROSS = [
    ("GET", "/users/{user}", None),
    ("PATCH", "/users/{user}", {"role": "admin"}),
    ("POST", "/users/{user}/resend", None),
    ("POST", "/users/{user}/disable", None),
    ("POST", "/users/{user}/enable", None),
    ("POST", "/users/{user}/two-step/reset", None),
    ("POST", "/users/{user}/email", {"email": "a-renames-b@example.com"}),
    ("POST", "/users/{user}/email", {"email": "b-member@example.com"}),
    ("POST", "/users/{user}/sessions/revoke", None),
    ("POST", "/users/{user}/browsers/forget", None),
    ("DELETE", "/lines/{line}", None),
]


@pytest.fixture
def b_state(app, factory, b):
    """Contract B with a line, an invited user and a disabled user, as B's own admin left it."""
    b_api = token_api(app, factory, b)
    assert b_api("POST", "/lines", {"line_id": LINE_B}).status_code == 201
    invited = b_api("POST", "/users", {"name": "B", "email": "b-invited@example.com"})
    b_api("POST", f"/users/{b.admin.id}/disable")
    remember_browsers(app, b.member, 1)
    remember_browsers(app, b.owner, 1)
    return {"invited": invited.json["user"]["id"], "disabled": b.admin.id}


def _snapshot(app, b: Tenant) -> Any:
    users = sorted((u.id, u.email, u.role, u.status, u.updated_at, u.two_step_reset_at,
                    u.session_epoch, live_browsers(app, u))
                   for u in fetch_all(app, User, contract_id=b.contract_id))
    lines = [r.line_id for r in fetch_all(app, ContractLine, contract_id=b.contract_id)]
    mails = len(fetch_all(app, MailMessage))
    events = len(fetch_all(app, AuditEvent, contract_id=b.contract_id))
    tickets = len(fetch_all(app, Ticket))
    return users, lines, mails, events, tickets


@pytest.mark.parametrize(("method", "path", "body"), CROSS,
                         ids=[f"{m} {p}" for m, p, _ in CROSS])
def test_contract_a_gets_404_for_contract_b_and_changes_nothing(api, app, b, b_state, method,
                                                                 path, body):
    before = _snapshot(app, b)
    for user_id in (b.member.id, b.owner.id, b_state["invited"], b_state["disabled"]):
        response = api(method, path.format(user=user_id, line=LINE_B), body)
        assert_problem(response, 404, "not_found")
    assert _snapshot(app, b) == before


def test_contract_a_lists_and_searches_only_its_own(api, b, b_state):
    listed = api("GET", "/users?per_page=100").json["items"]
    assert not {u["id"] for u in listed} & {b.owner.id, b.member.id, b_state["invited"]}
    assert api("GET", "/users?q=b-").json["total"] == 0
    assert api("GET", "/lines").json["items"] == []
    audit = api("GET", "/audit?per_page=100").json
    refs = {ref for e in audit["items"] for ref in (e["actor"], e["target"])}
    assert not refs & {f"user:{b.owner.id}", f"user:{b.member.id}", f"user:{b.admin.id}",
                       f"contract:{b.contract_id}", f"user:{b_state['invited']}"}
    assert api("GET", f"/audit?user={b.member.email}").json["total"] == 0
    assert api("GET", "/contract").json["id"] != b.contract_id


def test_contract_a_cannot_take_or_invite_into_contract_b(api, app, b, b_state):
    before = _snapshot(app, b)
    # B's line is B's: A registering the same ID gets its own row, B's stays.
    assert api("POST", "/lines", {"line_id": LINE_B}).status_code in (201, 409)
    # B's still-invited address is not resent from A.
    assert_problem(api("POST", "/users", {"name": "X", "email": "b-invited@example.com"}),
                   409, "admin_email_taken")
    users, lines, _, events, _ = before
    after = _snapshot(app, b)
    assert (after[0], after[1], after[3]) == (users, lines, events)


def test_an_idempotency_key_of_another_caller_is_not_replayed(app, factory, a, b):
    api_a, api_b = token_api(app, factory, a), token_api(app, factory, b)
    key = {"Idempotency-Key": "same"}
    made = api_b("POST", "/users", {"name": "B", "email": "bx@example.com"}, headers=key)
    assert made.status_code == 201
    mine = api_a("POST", "/users", {"name": "B", "email": "bx@example.com"}, headers=key)
    assert_problem(mine, 409, "admin_email_taken")


# -- the OpenAPI document and a schemathesis run ------------------------------------------------


def test_the_openapi_document_describes_every_endpoint(client):
    response = client.get(API + "/openapi.json")
    assert response.status_code == 200
    doc = response.json
    assert doc["openapi"].startswith("3.1")
    assert set(doc["components"]["securitySchemes"]) == {"adminToken", "adminSession"}
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert operations >= {
        ("GET", "/users"), ("POST", "/users"), ("GET", "/users/{user_id}"),
        ("PATCH", "/users/{user_id}"), ("POST", "/users/{user_id}/resend"),
        ("POST", "/users/{user_id}/disable"), ("POST", "/users/{user_id}/enable"),
        ("POST", "/users/{user_id}/two-step/reset"), ("GET", "/lines"), ("POST", "/lines"),
        ("DELETE", "/lines/{line_id}"), ("POST", "/users/{user_id}/email"),
        ("POST", "/users/{user_id}/sessions/revoke"),
        ("POST", "/users/{user_id}/browsers/forget"), ("GET", "/audit"), ("GET", "/contract")}
    assert not {m for m in doc["paths"]["/contract"]} - {"get"}  # read-only
    assert "settings menu" in doc["paths"]["/contract"]["get"]["description"]


def test_schemathesis_finds_no_server_error(app, factory, a):
    import hypothesis
    import schemathesis
    from schemathesis.checks import not_a_server_error

    api = token_api(app, factory, a)
    auth = {"Authorization": f"Bearer {api.token}"}
    schema = schemathesis.openapi.from_wsgi(API + "/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16
    ids = [a.member.id, a.admin.id, a.owner.id]

    for operation in operations:
        @hypothesis.settings(max_examples=15, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck),
                             phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
        @hypothesis.given(case=operation.as_strategy(), pick=hypothesis.strategies.integers(0, 3))
        def run(case, pick):
            # Real ids now and then, so the generated calls also reach past the 404.
            if case.path_parameters and "user_id" in case.path_parameters and pick < 3:
                case.path_parameters["user_id"] = ids[pick]
            response = case.call(headers=auth)
            case.validate_response(response, checks=[not_a_server_error])

        run()

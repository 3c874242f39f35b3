"""Helpers for the step-up chain tests: walk its pages as a browser would."""

from __future__ import annotations

import html as html_lib
import re
import time
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import PASSWORD, csrf_from, form_fields, query_of, sign_in
from tests.peers.sms_gateway import SmsGateway

PHONE = "090-1234-5678"
E164 = "+819012345678"


def location(response) -> str:
    assert response.status_code in (302, 303), (response.status_code,
                                                response.get_data(as_text=True)[:400])
    return response.headers["Location"]


def text(response) -> str:
    return response.get_data(as_text=True)


def errors(response) -> list[str]:
    return [html_lib.unescape(e) for e in
            re.findall(r'<p class="error" role="alert">([^<]*)</p>', text(response))]


def step_of(response) -> str | None:
    """The step a chain page is for (its forms' hidden ``step``)."""
    return form_fields(text(response)).get("step")


def follow(http: FlaskClient, response, **kwargs: Any):
    """GET the redirect target of ``response``."""
    return http.get(location(response), **kwargs)


def post_step(http: FlaskClient, page, *, lang: str = "ja", **fields: str):
    """Submit the step form of ``page`` (its hidden fields plus ``fields``)."""
    html = text(page)
    data = {k: v for k, v in form_fields(html).items() if k in ("csrf_token", "flow", "step")}
    data.update(fields)
    return http.post("/mfa", data=data, headers={"Accept-Language": lang})


def sms_code(gateway: SmsGateway, *, to: str = E164) -> str:
    """The code of the newest SMS the gateway received for ``to``."""
    for request in reversed(gateway.received):
        body = request.json
        if body["to"] == to:
            return re.search(r"\b(\d{6})\b", body["text"]).group(1)
    raise AssertionError(f"no SMS to {to}: {[r.json for r in gateway.received]}")


def totp_secret(page) -> str:
    match = re.search(r'<code class="totp-secret">([^<]+)</code>', text(page))
    assert match, "no TOTP secret on the page"
    return match.group(1).replace(" ", "")


def app_time(app: Flask) -> int:
    return int(time.time() + app.extensions["idp.clock"].offset)


def totp_code(app: Flask, secret: str, *, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(app_time(app) + 30 * offset_steps)


def recovery_code_of(page) -> str:
    match = re.search(r'<code class="recovery-code">([^<]+)</code>', text(page))
    assert match, "no recovery code on the page"
    return html_lib.unescape(match.group(1))


def tick_saved(http: FlaskClient, page, *, saved: bool = True):
    html = text(page)
    data = {"csrf_token": csrf_from(html), "flow": form_fields(html)["flow"]}
    if saved:
        data["saved"] = "yes"
    return http.post("/mfa/saved", data=data)


def press_sign_in(http: FlaskClient, done_page):
    """The completion page's "sign in" button (after the first enrolment)."""
    html = text(done_page)
    return http.post("/mfa/continue", data={"csrf_token": csrf_from(html),
                                            "flow": form_fields(html)["flow"]})


def enrol_sms(http: FlaskClient, gateway: SmsGateway, chain_page, *, remember: bool = False,
              phone: str = PHONE) -> tuple[Any, str]:
    """From the first chain page of an enrolment: SMS, the recovery code, the completion
    page's button. Returns (the response after it, the recovery code)."""
    assert step_of(chain_page) == "sms", text(chain_page)[:500]
    code_page = post_step(http, chain_page, action="phone", phone=phone)
    assert code_page.status_code == 200, text(code_page)[:500]
    fields = {"action": "code", "code": sms_code(gateway)}
    if remember:
        fields["remember"] = "yes"
    shown = post_step(http, code_page, **fields)
    assert shown.status_code == 200, text(shown)[:500]
    code = recovery_code_of(shown)
    done = tick_saved(http, shown)
    assert done.status_code == 200, text(done)[:500]
    return press_sign_in(http, done), code


def enrol_totp(app: Flask, http: FlaskClient, chain_page, *, remember: bool = False):
    """Switch to the authenticator app and enrol it. Returns (response, secret, code)."""
    page = http.get(f"/mfa?flow={form_fields(text(chain_page))['flow']}&step=totp")
    assert step_of(page) == "totp", text(page)[:500]
    secret = totp_secret(page)
    fields = {"code": totp_code(app, secret)}
    if remember:
        fields["remember"] = "yes"
    shown = post_step(http, page, **fields)
    code = recovery_code_of(shown)
    done = tick_saved(http, shown)
    return press_sign_in(http, done), secret, code


def password_then_chain(http: FlaskClient, authorize_response, *, email: str,
                        password: str = PASSWORD):
    """Follow the authorization response to the login page, sign in; the chain's page."""
    response = sign_in(http, location(authorize_response), email=email, password=password)
    assert location(response).startswith("/mfa?flow="), location(response)
    return follow(http, response)


def code_from(response, redirect_uri: str) -> str:
    target = location(response)
    assert target.startswith(redirect_uri), target
    return query_of(target)["code"]

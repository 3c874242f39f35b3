"""The development outbox: /dev/outbox lists mail and shows bodies, in development only."""

from __future__ import annotations

import re

import pytest

from idp import create_app
from idp.db import db
from idp.models import MailMessage
from idp.notify import mail
from idp.notify.outbox import OutboxSender
from tests.mail_helpers import queue_one, row

WORK = "http://work.localhost:5000"


@pytest.fixture
def dev_app(app, settings):
    """The app as `make run` starts it: development, no SMTP server configured.

    (``app`` is requested for its teardown, which empties the PostgreSQL tables.)"""
    dev = create_app(settings.replace(environment="development", smtp_url=""))
    yield dev
    _dispose(dev)


@pytest.fixture
def dev_client(dev_app):
    return dev_app.test_client()


def _dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _deliver(app, message_id: int) -> None:
    with app.app_context():
        assert mail.deliver_one(message_id) is True


def test_without_a_mail_server_mail_is_kept_in_the_outbox_with_its_body(dev_app, mailbox):
    assert isinstance(dev_app.extensions["idp.mail"], OutboxSender)
    message_id = queue_one(dev_app, url="http://127.0.0.1:5000/password/reset?ticket=abc")
    with dev_app.test_request_context():
        assert mail.deliver(db.session.get(MailMessage, message_id)) is True
    kept = row(dev_app, message_id)
    assert kept.status == "sent" and kept.body_enc is not None
    assert mailbox.messages == []  # nothing went to any SMTP server


def test_the_outbox_lists_mail_newest_first_with_recipient_subject_status_and_time(
        dev_app, dev_client):
    first = queue_one(dev_app, "invitation", to="first@example.com",
                      inviter_email="owner@example.com")
    _deliver(dev_app, first)
    second = queue_one(dev_app, "unlock", to="second@example.com")  # still pending

    page = dev_client.get("/dev/outbox")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "開発用送信箱" in html
    assert html.index("second@example.com") < html.index("first@example.com")
    assert "【コーデックストレージ】アカウントロック" in html
    assert "【コーデックストレージ】利用者登録のご案内" in html
    assert re.search(r'class="status">送信待ち<', html)
    assert re.search(r'class="status">送信済み<', html)
    assert re.search(r"<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>", html)
    assert f'href="/dev/outbox/{second}"' in html and f'href="/dev/outbox/{first}"' in html
    assert page.headers["Cache-Control"] == "no-store"


def test_a_message_page_shows_the_body_with_clickable_links(dev_app, dev_client):
    url = "http://work.localhost:5000/password/reset?ticket=tok-123&x=1"
    message_id = queue_one(dev_app, brand="work", url=url)
    _deliver(dev_app, message_id)

    page = dev_client.get(f"/dev/outbox/{message_id}", base_url=WORK)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "【ワークストレージ】パスワードリセット" in html
    assert "taro@example.com" in html
    assert "平素より、ワークストレージサービスをご利用いただき誠にありがとうございます。" in html
    escaped = url.replace("&", "&amp;")
    assert f'<a href="{escaped}">{escaped}</a>' in html
    assert 'class="brand-work"' in html


def test_the_body_is_shown_as_text_never_as_markup(dev_app, dev_client):
    message_id = queue_one(dev_app, name='<script>alert(1)</script>',
                           url='http://127.0.0.1:5000/r?ticket=a"onmouseover="x')
    _deliver(dev_app, message_id)
    html = dev_client.get(f"/dev/outbox/{message_id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # The link stops at the quote; the rest is text, not an attribute.
    assert '<a href="http://127.0.0.1:5000/r?ticket=a">' in html
    assert 'onmouseover="x' not in html


def test_the_outbox_speaks_english_when_asked(dev_app, dev_client):
    message_id = queue_one(dev_app, lang="en")
    page = dev_client.get("/dev/outbox", headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert "Development outbox" in html and "Pending" in html
    assert "【Codec Storage】Password reset" in html
    detail = dev_client.get(f"/dev/outbox/{message_id}?ui_locales=en").get_data(as_text=True)
    assert "Back to the list" in detail and "Attempts" in detail


def test_a_body_dropped_after_smtp_delivery_is_said_to_be_gone(app, settings, mailbox):
    dev = create_app(settings.replace(environment="development"))  # with an SMTP server
    try:
        message_id = queue_one(dev)
        _deliver(dev, message_id)
        html = dev.test_client().get(f"/dev/outbox/{message_id}").get_data(as_text=True)
        assert "本文は送信後に削除されました" in html
        assert "ticket=T" not in html
    finally:
        _dispose(dev)


def test_an_empty_outbox_says_so_and_an_unknown_message_is_404(dev_client):
    assert "メールはまだありません。" in dev_client.get("/dev/outbox").get_data(as_text=True)
    assert dev_client.get("/dev/outbox/999999").status_code == 404


@pytest.mark.parametrize("environment", ["test", "production"])
def test_the_outbox_does_not_exist_outside_development(app, settings, environment):
    other = create_app(settings.replace(environment=environment))
    try:
        message_id = queue_one(other)
        http = other.test_client()
        for path in ("/dev/outbox", f"/dev/outbox/{message_id}"):
            response = http.get(path)
            assert response.status_code == 404, path
            assert "ticket=T" not in response.get_data(as_text=True)
    finally:
        _dispose(other)


def test_the_outbox_refuses_to_act_on_posts(dev_client):
    assert dev_client.post("/dev/outbox").status_code in (400, 405)


def test_without_an_sms_gateway_codes_are_listed_in_the_outbox(app, settings, sms):
    from tests.helpers import Factory, authorize
    from tests.mfa_helpers import password_then_chain, post_step

    dev = create_app(settings.replace(environment="development", smtp_url="", sms_url=""))
    try:
        factory = Factory(dev)
        user = factory.user(two_step=True)
        rp = factory.rp()
        browser = dev.test_client()
        page = password_then_chain(browser, authorize(browser, rp), email=user.email)
        sent = post_step(browser, page, action="phone", phone="080-1111-2222")
        assert sent.status_code == 200
        assert sms.received == []  # no gateway was asked
        listing = browser.get("/dev/outbox").get_data(as_text=True)
        code = re.search(r"認証コード: (\d{6})", listing).group(1)
        assert "+818011112222" in listing
        done = post_step(browser, sent, action="code", code=code)
        assert done.status_code == 200 and "recovery-code" in done.get_data(as_text=True)
    finally:
        _dispose(dev)

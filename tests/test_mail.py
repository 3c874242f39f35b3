"""Mail: every kind in both languages and brands over real SMTP, retries, sealing, races."""

from __future__ import annotations

import time
from email import message_from_bytes, policy
from email.utils import parseaddr

import pytest
from sqlalchemy import text

from idp.clock import now
from idp.db import db
from idp.models import MailMessage
from idp.notify import MailError, mail
from idp.notify.smtp import SMTPSender
from idp.security import random_token
from idp.web import brand_url
from tests.concurrency import race
from tests.mail_helpers import Recorder, make_tls_material, queue_one, row, smtp_server

BRANDS = {"codec": {"ja": "コーデックストレージ", "en": "Codec Storage"},
          "work": {"ja": "ワークストレージ", "en": "Work Storage"}}

#: (kind, lang) -> (subject after 【brand】, opening of the body after the salutation).
#: Japanese wording from the manuals' mails (000_*.txt, 003_*.txt), with their typos fixed.
MANUAL = {
    ("invitation", "ja"): (
        "利用者登録のご案内",
        "こちらは、{brand}システムです。\nowner@example.comより山田 太郎様が\n"
        "本サービスの利用者として登録されました。\n"
        "本メール受領後、14日以内に下記URLへアクセスして利用者登録を完了してください。\n\n"
        "■利用者登録用URL\n{url}"),
    ("invitation", "en"): (
        "You are invited to register",
        "This is the {brand} system.\nowner@example.com has registered you as a user"),
    ("email_change", "ja"): (
        "メールアドレス変更登録",
        "平素より、{brand}をご利用いただき誠にありがとうございます。下記URLへアクセスし、"
        "ご登録いただきましたメールアドレスへの変更を完了してください。\n\n{url}\n\n"
        "本メール受領後、14日間以内にアクセスが完了しない場合は変更処理がキャンセルとなります"),
    ("email_change", "en"): (
        "Confirm your new email address",
        "Thank you for using {brand}. Open the link below to complete the change"),
    ("login_method_change", "ja"): (
        "ログイン方法の設定変更",
        "平素より、{brand}をご利用いただき誠にありがとうございます。\n"
        "下記URLへアクセスし、ログイン方法の設定変更を完了してください。\n\n{url}"),
    ("login_method_change", "en"): (
        "Change of your sign-in method",
        "Thank you for using {brand}.\nOpen the link below to complete the change of your "
        "sign-in method:\n\n{url}"),
    ("unlock", "ja"): (
        "アカウントロック",
        "平素より、{brand}サービスをご利用いただき誠にありがとうございます。\n"
        "サービスへのログインが規定回数以上失敗したため、アカウントをロックしました。\n\n"
        "下記URLへアクセスすることでロックを解除できます。\n\n{url}\n\n"
        "※有効期限：本メール受領後14日間"),
    ("unlock", "en"): (
        "Your account has been locked",
        "Thank you for using {brand}.\nYour account has been locked because sign-in failed "
        "too many times."),
    ("password_reset", "ja"): (
        "パスワードリセット",
        "平素より、{brand}サービスをご利用いただき誠にありがとうございます。\n"
        "パスワードリセットについて承りました。\n下記URLへアクセスし新しいパスワードを登録ください。"
        "\n\n{url}\n\n本メール受領後、14日間以内に新しいパスワードの登録が完了しない場合は"
        "処理がキャンセルとなりますのでご注意ください。"),
    ("password_reset", "en"): (
        "Password reset",
        "Thank you for using {brand}.\nWe have received a request to reset your password."),
}
SALUTATION = {"ja": "山田 太郎 様\n", "en": "Dear 山田 太郎,\n"}
FOOTER = {"ja": "本メールは「{brand}」のシステムより自動的に送信しております。",
          "en": "This mail was sent automatically by the {brand} system."}


def _text(body: str) -> str:
    """The body with the wire's CRLF line ends as the template's LF."""
    return body.replace("\r\n", "\n")


def _settings(app):
    return app.extensions["idp.settings"]


@pytest.mark.parametrize("brand_id", list(BRANDS))
@pytest.mark.parametrize(("kind", "lang"), list(MANUAL), ids=[f"{k}-{lang}" for k, lang in MANUAL])
def test_every_mail_kind_arrives_with_the_brand_prefix_and_the_manuals_wording(
        app, mailbox, kind, lang, brand_id):
    token = random_token()
    with app.test_request_context():
        brand = _settings(app).brands[brand_id]
        url = brand_url(brand, "login.login", ticket=token)
        message = mail.queue(kind, to="taro@example.com", brand=brand, lang=lang,
                             name="山田 太郎", url=url, inviter_email="owner@example.com")
        db.session.commit()
        assert mail.deliver(message) is True

    got = mailbox.last("taro@example.com")
    body = _text(got.body)
    name = BRANDS[brand_id][lang]
    subject, opening = MANUAL[(kind, lang)]
    assert got.subject == f"【{name}】{subject}"
    assert body.startswith(SALUTATION[lang])
    assert opening.format(brand=name, url=url) in body
    assert FOOTER[lang].format(brand=name) in body
    # The manuals' typos (コワークストレージ, a missing 】) stay fixed.
    assert "コワーク" not in got.subject + body
    # The link is on the brand's own host, whole on one line, and carries the ticket.
    assert got.host == brand.internet_host
    assert got.link == f"/login?ticket={token}"
    assert "14" in got.body
    # The From display name is the brand's, in the mail's language.
    display, address = parseaddr(str(got.message["From"]))
    assert (display, address) == (name, _settings(app).mail_from)
    assert got.message["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_mail_without_a_name_addresses_the_customer_politely(app, mailbox, lang):
    message_id = queue_one(app, "unlock", lang=lang, name="")
    with app.app_context():
        assert mail.deliver_one(message_id)
    body = _text(mailbox.last("taro@example.com").body)
    assert body.startswith({"ja": "お客様\n", "en": "Dear customer,\n"}[lang])


@pytest.mark.parametrize(("locale", "lang"), [("en-US", "en"), ("EN", "en"), ("ja_JP", "ja"),
                                              ("", "ja"), (None, "ja"), ("fr", "ja")])
def test_a_users_stored_locale_picks_the_mail_language_japanese_first(app, mailbox, locale,
                                                                       lang):
    message_id = queue_one(app, "unlock", lang=locale)
    assert row(app, message_id).lang == lang
    with app.app_context():
        assert mail.deliver_one(message_id)
    expected = {"ja": "【コーデックストレージ】アカウントロック",
                "en": "【Codec Storage】Your account has been locked"}[lang]
    assert mailbox.last("taro@example.com").subject == expected


@pytest.mark.parametrize("brand_id", list(BRANDS))
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_active_directory_notice_gives_both_login_urls_and_the_connection_id(
        app, mailbox, lang, brand_id):
    connection_id = "adfs-" + "A1b2C3d4E5f6G7h8I9"
    with app.test_request_context():
        brand = _settings(app).brands[brand_id]
        internet = f"http://{brand.internet_host}/ad/{connection_id}"
        line = f"http://{brand.line_host}/ad/{connection_id}"
        message = mail.queue("ad_login_notice", to="taro@example.com", brand=brand, lang=lang,
                             name="山田 太郎", internet_url=internet, line_url=line,
                             connection_id=connection_id)
        db.session.commit()
        assert mail.deliver(message)
    got = mailbox.last("taro@example.com")
    name = BRANDS[brand_id][lang]
    subject = {"ja": "Active Directoryアカウントのログイン用URL・接続ID通知",
               "en": "Active Directory sign-in URLs and connection ID"}[lang]
    assert got.subject == f"【{name}】{subject}"
    assert got.links == [internet, line]
    assert connection_id in got.body
    if lang == "ja":
        body = _text(got.body)
        assert "・インターネット用: " + internet in body
        assert "・回線認証用: " + line in body
        assert f"{name}へログイン時に、接続IDの入力画面が表示された場合" in body


# -- at rest -------------------------------------------------------------------------------


def _raw_rows(app) -> list[tuple]:
    with app.app_context():
        return [tuple(r) for r in db.session.execute(text("SELECT * FROM mail_messages"))]


def _contains(rows: list[tuple], needle: str) -> bool:
    raw = needle.encode()
    for r in rows:
        for value in r:
            if isinstance(value, memoryview):
                value = value.tobytes()
            if isinstance(value, bytes) and raw in value:
                return True
            if isinstance(value, str) and needle in value:
                return True
    return False


def test_the_ticket_link_is_sealed_in_the_queue_and_dropped_once_sent(app, mailbox):
    token = random_token()
    message_id = queue_one(app, url=f"http://127.0.0.1:5000/password/reset?ticket={token}")

    queued = _raw_rows(app)
    assert len(queued) == 1
    assert not _contains(queued, token)
    assert row(app, message_id).body_enc is not None
    with app.app_context():
        assert token in mail.body_of(db.session.get(MailMessage, message_id))
        assert mail.deliver_one(message_id)

    assert token in mailbox.last("taro@example.com").body
    sent = row(app, message_id)
    assert sent.status == "sent" and sent.body_enc is None
    assert not _contains(_raw_rows(app), token)


# -- retries ------------------------------------------------------------------------------


def test_a_refused_mail_stays_queued_with_a_back_off_and_goes_out_on_a_later_retry(
        app, mailbox, clock):
    mailbox.fail = True
    message_id = queue_one(app)
    with app.test_request_context():
        before = now()
        assert mail.deliver(db.session.get(MailMessage, message_id)) is False
    waiting = row(app, message_id)
    assert waiting.status == "pending" and waiting.attempts == 1
    assert "451" in waiting.last_error
    assert before + 60 <= waiting.next_attempt_at <= before + 62
    assert waiting.body_enc is not None  # kept (sealed) for the retry

    mailbox.fail = False
    with app.app_context():
        assert mail.deliver_due() == (0, 0)  # not due yet
        clock.advance(30)
        assert mail.deliver_due() == (0, 0)
        clock.advance(33)
        assert mail.deliver_due() == (1, 0)
    assert mailbox.last("taro@example.com").subject == "【コーデックストレージ】パスワードリセット"
    done = row(app, message_id)
    assert (done.status, done.attempts, done.last_error, done.body_enc) == ("sent", 2, "", None)


def test_a_mail_refused_every_time_is_given_up_after_the_last_attempt(app, mailbox, clock):
    mailbox.fail = True
    message_id = queue_one(app)
    waits = []
    with app.app_context():
        assert mail.deliver_one(message_id) is False
        for _ in range(2, mail.MAX_ATTEMPTS + 1):
            pending = db.session.get(MailMessage, message_id, populate_existing=True)
            assert pending.status == "pending"
            wait = pending.next_attempt_at - now()
            waits.append(wait)
            clock.advance(wait + 1)
            assert mail.deliver_due() == (0, 1)
        given_up = db.session.get(MailMessage, message_id, populate_existing=True)
        assert given_up.status == "failed"
        assert given_up.attempts == mail.MAX_ATTEMPTS
        assert "451" in given_up.last_error
        clock.advance(7 * 86400)
        assert mail.deliver_due() == (0, 0)  # no attempt after the last
    assert mailbox.to("taro@example.com") == []
    # A minute, doubling, capped at six hours; the whole span about 20 hours (< 14 days).
    expected = [mail.backoff(n) for n in range(1, mail.MAX_ATTEMPTS)]
    assert all(abs(w - e) <= 2 for w, e in zip(waits, expected, strict=True)), waits
    assert expected[:3] == [60, 120, 240] and max(expected) == 6 * 3600
    assert 18 * 3600 < sum(expected) < 24 * 3600


def test_a_recipient_the_server_rejects_for_good_is_given_up_at_once(app):
    with smtp_server(Recorder(refuse="550 5.1.1 no such user")) as server:
        app.extensions["idp.mail"] = SMTPSender.from_url(f"smtp://127.0.0.1:{server.port}",
                                                         timeout=5)
        message_id = queue_one(app, to="nobody@example.com")
        with app.app_context():
            assert mail.deliver_one(message_id) is False
    failed = row(app, message_id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "550" in failed.last_error and "no such user" in failed.last_error


def test_a_mail_whose_sealed_body_cannot_be_opened_is_given_up_not_retried(app, mailbox):
    message_id = queue_one(app)
    with app.app_context():
        db.session.get(MailMessage, message_id).body_enc = b"\x00" * 40
        db.session.commit()
        assert mail.deliver_one(message_id) is False
    failed = row(app, message_id)
    assert failed.status == "failed" and "cannot build the message" in failed.last_error
    assert mailbox.to("taro@example.com") == []


def test_delivery_after_the_commit_never_turns_into_an_error_page(app, mailbox, clock):
    class Broken:
        keeps_bodies = False

        def send(self, message):
            raise RuntimeError("a bug in a sender")

    real = app.extensions["idp.mail"]
    app.extensions["idp.mail"] = Broken()
    message_id = queue_one(app)
    with app.test_request_context():
        assert mail.deliver(db.session.get(MailMessage, message_id)) is False
    waiting = row(app, message_id)
    # Counted as a failed attempt (so a persistent bug still ends in "failed"), retried.
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert "RuntimeError: a bug in a sender" in waiting.last_error

    app.extensions["idp.mail"] = real
    with app.app_context():
        clock.advance(61)
        assert mail.deliver_due() == (1, 0)
    assert mailbox.last("taro@example.com")


def test_a_database_error_while_delivering_is_not_the_users_problem(app, mailbox, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def unavailable(*args, **kwargs):
        raise OperationalError("UPDATE mail_messages", {}, Exception("database is locked"))

    message_id = queue_one(app)
    monkeypatch.setattr(mail, "_claim", unavailable)
    with app.test_request_context():
        assert mail.deliver(db.session.get(MailMessage, message_id)) is False
    monkeypatch.undo()
    assert row(app, message_id).status == "pending"


def test_a_worker_leaves_a_just_queued_mail_to_the_request_that_queued_it(app, mailbox, clock):
    message_id = queue_one(app)
    with app.app_context():
        assert mail.deliver_due() == (0, 0)
        clock.advance(31)  # the request died before delivering: the worker takes over
        assert mail.deliver_due() == (1, 0)
    assert row(app, message_id).status == "sent"


def test_after_a_success_older_due_mail_rides_along(app, mailbox, clock):
    mailbox.fail = True
    old = queue_one(app, to="first@example.com")
    with app.app_context():
        assert mail.deliver_one(old) is False
    mailbox.fail = False
    clock.advance(61)
    new = queue_one(app, to="second@example.com")
    with app.test_request_context():
        assert mail.deliver(db.session.get(MailMessage, new)) is True
    assert [m.to for m in mailbox.messages] == ["second@example.com", "first@example.com"]
    assert row(app, old).status == "sent"


# -- races --------------------------------------------------------------------------------


class SlowSender:
    """The real SMTP sender, slowed so that racing workers overlap for certain."""

    keeps_bodies = False

    def __init__(self, real):
        self.real = real

    def send(self, message):
        time.sleep(0.3)
        self.real.send(message)


def test_two_concurrent_deliveries_of_one_message_send_it_once(app, mailbox):
    message_id = queue_one(app)
    app.extensions["idp.mail"] = SlowSender(app.extensions["idp.mail"])
    results = race(lambda: mail.deliver_one(message_id), lambda: mail.deliver_one(message_id),
                   app=app, timeout=30)
    assert len(mailbox.to("taro@example.com")) == 1
    assert sorted(results) == [False, True]  # the loser saw it in flight, not sent
    done = row(app, message_id)
    assert (done.status, done.attempts) == ("sent", 1)


def test_two_workers_draining_the_queue_at_once_send_every_mail_exactly_once(
        app, mailbox, clock):
    ids = [queue_one(app, to=f"user{i}@example.com") for i in range(8)]
    clock.advance(31)
    app.extensions["idp.mail"] = SlowSender(app.extensions["idp.mail"])
    def worker() -> tuple[int, int]:
        return mail.deliver_due(limit=None)

    totals = race(worker, worker, app=app)
    assert sorted(m.to for m in mailbox.messages) == sorted(f"user{i}@example.com"
                                                            for i in range(8))
    assert all(row(app, i).status == "sent" for i in ids)
    # Each counts only what it sent itself: together every message, once.
    assert [sum(n) for n in zip(*totals, strict=True)] == [8, 0]


# -- SMTP URLs and transport security --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 25, "", "", False, False)),
        ("smtp://mail.example.com:2525/", ("mail.example.com", 2525, "", "", False, False)),
        ("smtps://mail.example.com", ("mail.example.com", 465, "", "", True, False)),
        ("smtp://u:pw@mail.example.com:587?starttls=true",
         ("mail.example.com", 587, "u", "pw", False, True)),
        ("smtp://mail.example.com?starttls=no", ("mail.example.com", 25, "", "", False, False)),
        ("smtps://mailer%40example.com:p%40ss%3Aw%2Frd%25@smtp.example.com:4650",
         ("smtp.example.com", 4650, "mailer@example.com", "p@ss:w/rd%", True, False)),
        ("smtp://relay:secret@127.0.0.1:25", ("127.0.0.1", 25, "relay", "secret", False, False)),
        ("smtp://relay:secret@[::1]:25", ("::1", 25, "relay", "secret", False, False)),
    ],
    ids=["plain", "port", "smtps", "starttls", "starttls-no", "escaped-credentials",
         "loopback-relay-credentials", "ipv6-loopback"],
)
def test_smtp_urls_are_parsed_with_their_tls_mode_and_decoded_credentials(url, expected):
    s = SMTPSender.from_url(url, timeout=3)
    assert (s.host, s.port, s.username, s.password, s.implicit_tls, s.starttls) == expected
    assert s.timeout == 3
    assert "password" not in repr(s)  # a logged sender never shows it


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.com", "smtp:// or smtps://"),
        ("smtp://", "with a host"),
        ("smtp://mail.example.com?starttls=ture", "starttls must be true or false"),
        ("smtp://mail.example.com?tls=1", "unknown parameter(s) tls"),
        ("smtps://mail.example.com?starttls=true", "TLS from the start"),
        ("smtp://u:secret@mail.example.com:587", "credentials need TLS"),
        ("smtp://mail.example.com:99999", "invalid port"),
        ("smtp://mail.example.com/inbox", "no path"),
    ],
    ids=["scheme", "no-host", "starttls-typo", "unknown-param", "smtps-and-starttls",
         "password-in-clear", "bad-port", "path"],
)
def test_a_wrong_smtp_url_is_refused_without_echoing_the_password(url, message):
    with pytest.raises(ValueError) as excinfo:
        SMTPSender.from_url(url)
    assert message in str(excinfo.value)
    assert "secret" not in str(excinfo.value)


def test_credentials_with_escapes_log_in_to_a_real_server(app, mailbox):
    recorder = Recorder()
    with smtp_server(recorder, authenticator=recorder.authenticate,
                     auth_require_tls=False) as server:
        app.extensions["idp.mail"] = SMTPSender.from_url(
            f"smtp://mailer%40example.com:p%40ss%3Aw%2Frd%25@127.0.0.1:{server.port}", timeout=5)
        message_id = queue_one(app)
        with app.app_context():
            assert mail.deliver_one(message_id) is True
    assert recorder.logins == [("mailer@example.com", "p@ss:w/rd%")]
    assert [to for to, _ in recorder.received] == ["taro@example.com"]


def test_wrong_credentials_keep_the_mail_queued_for_a_retry(app):
    recorder = Recorder()
    with smtp_server(recorder, authenticator=recorder.authenticate,
                     auth_require_tls=False) as server:
        app.extensions["idp.mail"] = SMTPSender.from_url(
            f"smtp://mailer%40example.com:wrong@127.0.0.1:{server.port}", timeout=5)
        message_id = queue_one(app)
        with app.app_context():
            assert mail.deliver_one(message_id) is False
    waiting = row(app, message_id)
    assert waiting.status == "pending" and "SMTPAuthenticationError" in waiting.last_error


def test_starttls_is_required_when_asked_for_and_the_server_lacks_it(app, mailbox):
    app.extensions["idp.mail"] = SMTPSender.from_url(
        f"smtp://127.0.0.1:{app.extensions['idp.mail'].port}?starttls=true", timeout=5)
    message_id = queue_one(app)
    with app.app_context():
        assert mail.deliver_one(message_id) is False
    waiting = row(app, message_id)
    assert waiting.status == "pending" and "STARTTLS" in waiting.last_error
    assert mailbox.to("taro@example.com") == []


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_tls_modes_encrypt_and_verify_the_servers_certificate(app, tmp_path, monkeypatch,
                                                              mode):
    tls = make_tls_material(tmp_path)
    recorder = Recorder()
    options = ({"tls_context": tls.server_context(), "require_starttls": True}
               if mode == "starttls" else {"ssl_context": tls.server_context()})
    with smtp_server(recorder, **options) as server:
        url = (f"smtp://127.0.0.1:{server.port}?starttls=true" if mode == "starttls"
               else f"smtps://127.0.0.1:{server.port}")
        app.extensions["idp.mail"] = SMTPSender.from_url(url, timeout=5)

        # Not trusted yet: the certificate is refused and the mail waits for a retry.
        untrusted = queue_one(app)
        with app.app_context():
            assert mail.deliver_one(untrusted) is False
        assert "CERTIFICATE_VERIFY_FAILED" in row(app, untrusted).last_error
        assert recorder.received == []

        # The operator's CA bundle trusts it: delivered over TLS.
        monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))
        trusted = queue_one(app, to="hanako@example.com")
        with app.app_context():
            assert mail.deliver_one(trusted) is True
    assert [to for to, _ in recorder.received] == ["hanako@example.com"]
    received = message_from_bytes(recorder.received[0][1], policy=policy.default)
    assert received["Subject"] == "【コーデックストレージ】パスワードリセット"


def test_a_mail_error_says_whether_a_retry_can_help():
    assert MailError("451 try later").permanent is False
    assert MailError("550 no such user", permanent=True).permanent is True

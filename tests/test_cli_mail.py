"""``idp mail deliver`` / ``idp mail list``: the operator's view of the mail queue, run as
real processes against the test's database and SMTP server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from idp.db import db
from idp.models import MailMessage
from tests.conftest import run_idp
from tests.mail_helpers import queue_one, row

IDP = str(Path(sys.executable).with_name("idp"))
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(settings, smtp_server) -> dict[str, str]:
    """What an operator exports for this test's deployment, mail server included."""
    return {
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "IDP_CONFIG": str(settings.config_path),
        "IDP_ENVIRONMENT": "test",
        "IDP_ISSUER": settings.issuer,
        "IDP_DATABASE_URL": settings.database_url,
        "IDP_REDIS_URL": settings.redis_url,
        "IDP_SECRET_KEY": settings.secret_key,
        "IDP_KEYS_KEK": settings.keys_kek,
        "IDP_KEYS_DIR": str(settings.keys_dir),
        "IDP_SMTP_URL": f"smtp://127.0.0.1:{smtp_server[0].port}",
        "IDP_SMTP_TIMEOUT": "5",
    }


def idp(*args: str, env: dict[str, str], status: int = 0) -> subprocess.CompletedProcess[str]:
    result = run_idp(*args, env=env)
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    if status != 0:
        assert "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result


def _set(app, message_id: int, **values) -> None:
    with app.app_context():
        message = db.session.get(MailMessage, message_id)
        for name, value in values.items():
            setattr(message, name, value)
        db.session.commit()


def now() -> int:
    # The CLI process runs on the wall clock; these tests never move the app's clock.
    return int(time.time())


def _orphan(app, to: str) -> int:
    """A message whose request died before delivering it (queued two minutes ago)."""
    message_id = queue_one(app, to=to)
    _set(app, message_id, created_at=now() - 120)
    return message_id


def _retry_due(app, to: str, *, in_seconds: int = -1) -> int:
    """A message the server refused once; its retry is due ``in_seconds`` from now."""
    message_id = queue_one(app, to=to)
    _set(app, message_id, attempts=1, next_attempt_at=now() + in_seconds,
         created_at=now() - 600, last_error="SMTPRecipientsRefused: 451 try later")
    return message_id


def test_mail_deliver_sends_what_is_due_and_leaves_the_rest(app, env, mailbox):
    orphan = _orphan(app, "orphan@example.com")
    retry = _retry_due(app, "retry@example.com")
    later = _retry_due(app, "later@example.com", in_seconds=3600)
    fresh = queue_one(app, to="fresh@example.com")  # its request is delivering it right now

    result = idp("mail", "deliver", env=env)

    assert "sent 2, not sent 0; queue: 2 pending, 2 sent, 0 failed" in result.stdout
    assert sorted(m.to for m in mailbox.messages) == ["orphan@example.com", "retry@example.com"]
    assert mailbox.last("retry@example.com").subject == "【コーデックストレージ】パスワードリセット"
    assert [row(app, i).status for i in (orphan, retry, later, fresh)] == [
        "sent", "sent", "pending", "pending"]
    assert row(app, retry).attempts == 2 and row(app, retry).body_enc is None


def test_mail_deliver_while_the_server_refuses_keeps_the_mail_for_later(app, env, mailbox):
    message_id = _orphan(app, "taro@example.com")
    mailbox.fail = True

    result = idp("mail", "deliver", env=env)

    assert "sent 0, not sent 1; queue: 1 pending, 0 sent, 0 failed" in result.stdout
    assert "451" in result.stderr  # the operator sees why
    waiting = row(app, message_id)
    assert waiting.status == "pending" and waiting.attempts == 1
    assert waiting.next_attempt_at > now() + 30

    mailbox.fail = False
    again = idp("mail", "deliver", env=env)  # not due yet: the back-off holds
    assert "sent 0, not sent 0" in again.stdout
    assert mailbox.messages == []


def test_mail_list_shows_the_newest_first_and_filters_by_status_without_bodies(app, env):
    sent = queue_one(app, "invitation", to="sent@example.com",
                     url="http://127.0.0.1:5000/invitation?ticket=SECRET-TICKET",
                     inviter_email="owner@example.com")
    _set(app, sent, status="sent", sent_at=now(), attempts=1, body_enc=None)
    failed = queue_one(app, "unlock", to="failed@example.com", lang="en",
                       url="http://127.0.0.1:5000/account/unlock?ticket=SECRET-TICKET")
    _set(app, failed, status="failed", attempts=12,
         last_error="SMTPRecipientsRefused: 550 5.1.1 no such user\nsecond line")
    pending = _retry_due(app, "pending@example.com", in_seconds=600)

    listing = idp("mail", "list", env=env).stdout
    lines = listing.splitlines()
    assert lines[0].split()[:5] == ["id", "status", "tries", "queued", "sent/next"]
    order = [line.split()[0] for line in lines[1:4]]
    assert order == [str(pending), str(failed), str(sent)]
    assert "【Codec Storage】Your account has been locked" in listing
    assert "【コーデックストレージ】利用者登録のご案内" in listing
    assert "550 5.1.1 no such user; second line" in listing
    assert "SECRET-TICKET" not in listing
    assert lines[-1] == "queue: 1 pending, 1 sent, 1 failed"

    only_failed = idp("mail", "list", "--status", "failed", env=env).stdout
    assert "failed@example.com" in only_failed
    assert "sent@example.com" not in only_failed and "pending@example.com" not in only_failed

    limited = idp("mail", "list", "--limit", "1", env=env).stdout.splitlines()
    assert [line.split()[0] for line in limited[1:-1]] == [str(pending)]


def test_mail_list_of_an_empty_queue_and_a_wrong_status(app, env):
    assert idp("mail", "list", env=env).stdout.strip() == "no messages"
    assert "with status failed" in idp("mail", "list", "--status", "failed", env=env).stdout
    wrong = idp("mail", "list", "--status", "lost", env=env, status=2)
    assert "'lost' is not one of 'pending', 'sent', 'failed'" in wrong.stderr


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_mail_deliver_loop_keeps_delivering_until_stopped(app, env, mailbox, stop):
    worker = subprocess.Popen([IDP, "mail", "deliver", "--loop", "0.3"],
                              env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        # Mail that a crashed request left behind while the worker was already running.
        first = _orphan(app, "first@example.com")
        _wait_for(lambda: mailbox.to("first@example.com"), worker)
        second = _retry_due(app, "second@example.com")
        _wait_for(lambda: mailbox.to("second@example.com"), worker)
    finally:
        worker.send_signal(stop)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, (out, err)
    assert "delivering due mail every 0.3s until stopped" in out
    assert out.count("sent 1, not sent 0") == 2
    assert out.rstrip().endswith("stopped")
    assert "Traceback" not in err
    assert row(app, first).status == "sent" and row(app, second).status == "sent"


def _wait_for(condition, worker: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "the worker did not deliver in time"
        time.sleep(0.1)


def test_make_mail_worker_runs_the_delivery_loop_every_30_seconds():
    plan = subprocess.run(["make", "-n", "mail-worker"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    assert plan.splitlines()[-1].endswith("idp mail deliver --loop 30")


def test_a_wrong_smtp_url_stops_the_command_with_one_line_and_no_password(app, env):
    bad = {**env, "IDP_SMTP_URL": "smtp://mailer:s3cret-pw@mail.example.com:587?starttls=ture"}
    result = idp("mail", "deliver", env=bad, status=2)
    assert "invalid configuration: smtp_url: starttls must be true or false" in result.stderr
    assert "s3cret-pw" not in result.stderr


def test_make_run_points_developers_to_the_outbox(app, env, tmp_path):
    dev = {**env, "IDP_ENVIRONMENT": "development", "IDP_SMTP_URL": ""}
    result = idp("demo", "--rp-file", str(tmp_path / "demo_rp.json"), env=dev)
    assert f"{env['IDP_ISSUER']}/dev/outbox (no SMTP server: mail is kept there)" in result.stdout

"""Fixtures: settings -> app -> client, on SQLite or on PostgreSQL + Redis.

``IDP_TEST_BACKEND=postgres`` runs the same suite against the machine's PostgreSQL and
Redis (``make test`` runs both). Under ``CI=true`` a missing service fails the run; it is
never skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from idp import create_app
from idp.keys import KeyStore
from idp.migrate import upgrade
from idp.settings import load_settings
from tests.helpers import Factory

BACKEND = os.environ.get("IDP_TEST_BACKEND", "sqlite")
PG_ADMIN_URL = os.environ.get("IDP_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("IDP_TEST_REDIS", "redis://127.0.0.1:6379/0")
TEST_SECRET = "test-secret-" + "x" * 40


def pytest_report_header(config) -> str:
    return f"idp backend: {BACKEND}"


def _service_missing(what: str, exc: Exception):
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def key_template(tmp_path_factory) -> Path:
    """Keys are slow to generate: made once, copied into each test's own directory."""
    path = tmp_path_factory.mktemp("keys-template")
    KeyStore(path, TEST_SECRET).rotate(now=0, next_min_age=0)
    return path


@pytest.fixture(scope="session")
def database_template(tmp_path_factory) -> Iterator[str]:
    """A migrated database: a SQLite file to copy, or one PostgreSQL database per run."""
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("db-template") / "template.sqlite"
        upgrade(f"sqlite:///{path}")
        yield str(path)
        return
    with postgres_database("idp_test") as url:
        upgrade(url)
        yield url


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any connection failure means "no service"
        _service_missing("PostgreSQL", exc)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    if BACKEND == "sqlite":
        return None
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:
        _service_missing("Redis", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def smtp_server():
    """One real SMTP server (aiosmtpd on loopback) for the whole run."""
    from tests.mail import start_smtp

    controller, box = start_smtp()
    yield controller, box
    controller.stop()


@pytest.fixture
def mailbox(smtp_server):
    """The messages the SMTP server received during this test."""
    _, box = smtp_server
    box.clear()
    box.fail, box.hold = False, None
    yield box
    if box.hold is not None:
        box.hold.set()
    box.fail, box.hold = False, None


@pytest.fixture(scope="session")
def sms_server():
    """One loopback stand-in of the SMS carrier's HTTP gateway for the whole run (the
    carrier is the one peer that cannot run here; the stand-in speaks real HTTP)."""
    from tests.peers.sms_gateway import SmsGateway

    with SmsGateway() as gateway:
        yield gateway


@pytest.fixture
def sms(sms_server):
    """The SMS gateway, emptied for this test."""
    sms_server.received.clear()
    sms_server.status, sms_server.delay = 202, 0.0
    yield sms_server
    sms_server.status, sms_server.delay = 202, 0.0


@pytest.fixture
def settings(tmp_path, key_template, database_template, redis_url, smtp_server, sms_server):
    keys = tmp_path / "keys"
    shutil.copytree(key_template, keys)
    if BACKEND == "sqlite":
        db_path = tmp_path / "idp.sqlite"
        shutil.copy(database_template, db_path)
        database_url = f"sqlite:///{db_path}"
    else:
        database_url = database_template
    return load_settings(
        environ={},
        overrides={
            "environment": "test",
            "issuer": "http://localhost",
            "database_url": database_url,
            "redis_url": redis_url or "",
            "secret_key": TEST_SECRET,
            "keys_dir": str(keys),
            "keys_next_min_age": 0,
            "jwks_max_age": 0,
            "smtp_url": f"smtp://127.0.0.1:{smtp_server[0].port}",
            "smtp_timeout": 5.0,
            "sms_url": sms_server.url(),
            "sms_timeout": 5.0,
        },
    )


@pytest.fixture
def app(settings):
    app = create_app(settings)
    if BACKEND != "sqlite":
        # Each test gets its own Redis key prefix, so runs never see each other's state.
        app.extensions["idp.store"].prefix = f"idptest:{uuid.uuid4().hex}:"
    yield app
    from tests.mail import settle

    settle()  # no mail delivery may outlive the test's database
    with app.app_context():
        from idp.db import db

        if BACKEND != "sqlite":
            tables = ", ".join(t.name for t in reversed(db.metadata.sorted_tables))
            db.session.remove()
            with db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} CASCADE"))
            store = app.extensions["idp.store"]
            keys = list(store.r.scan_iter(store.prefix + "*"))
            if keys:
                store.r.delete(*keys)
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def clock(app):
    return app.extensions["idp.clock"]


@pytest.fixture
def factory(app) -> Factory:
    return Factory(app)


@pytest.fixture
def user(factory):
    """A contract owner who signs in with a password (modules override for specifics)."""
    return factory.user()


@pytest.fixture
def basic(app, factory):
    """A basic contract with its owner, an admin and a user (tests/settings_helpers.py)."""
    from tests.settings_helpers import contract_with_members

    return contract_with_members(app, factory, plan="basic")


@pytest.fixture
def trial(app, factory):
    """A trial contract with its owner, an admin and a user."""
    from tests.settings_helpers import contract_with_members

    return contract_with_members(app, factory, plan="trial")


@pytest.fixture
def rp(factory):
    """A confidential partner app with the code and refresh grants."""
    return factory.rp()


def run_idp(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the operator CLI as an operator would (a real process)."""
    idp = str(Path(sys.executable).with_name("idp"))  # the venv's, whatever PATH says
    return subprocess.run([idp, *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60)

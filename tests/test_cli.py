"""The ``idp`` operator command, run as a real process against the test's database and keys."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from idp.clock import now
from idp.db import db
from idp.keys import ALGS, KeyStore
from idp.migrate import current_revision, head_revision
from idp.models import AuditEvent, Client, Consent, Contract, InitialAccessToken, RefreshToken, User
from idp.oauth.tokens import (
    AccessToken,
    find_access_token,
    revoke_access_tokens,
    save_access_token,
)
from idp.security import random_token, sha256_hex, verify_password
from idp.store import open_store
from tests.conftest import run_idp
from tests.test_migrations import throwaway_database

VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture
def env(settings) -> dict[str, str]:
    """The environment an operator would export for this test's deployment."""
    return {
        # `idp` is the console script of the virtualenv running the tests.
        "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
        "IDP_CONFIG": str(settings.config_path),
        "IDP_ENVIRONMENT": "test",
        "IDP_ISSUER": settings.issuer,
        "IDP_DATABASE_URL": settings.database_url,
        "IDP_REDIS_URL": settings.redis_url,
        "IDP_SECRET_KEY": settings.secret_key,
        "IDP_KEYS_KEK": settings.keys_kek,
        "IDP_KEYS_DIR": str(settings.keys_dir),
        "IDP_KEYS_NEXT_MIN_AGE": "0",
        "IDP_JWKS_MAX_AGE": "0",
    }


@pytest.fixture
def empty_keys(env, tmp_path) -> Path:
    """Point the command at a key store with no keys yet."""
    path = tmp_path / "empty-keys"
    env["IDP_KEYS_DIR"] = str(path)
    return path


def idp(*args: str, env: dict[str, str], status: int = 0) -> subprocess.CompletedProcess[str]:
    result = run_idp(*args, env=env)
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    if status != 0:
        # Operators get one clear line, never a traceback.
        assert "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result


def key_records(path: Path, settings) -> list[dict]:
    store = KeyStore(path, settings.keys_kek or settings.secret_key)
    return sorted((k.record() for k in store.load()), key=lambda r: (r["alg"], r["created_at"]))


def audit_log(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [(e.actor, e.action, e.target) for e in rows]


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (("client", "create", "--bogus"), {}, "No such option"),
        (("keys", "list"), {"IDP_ISSUER": ""}, "issuer is required"),
        (("user", "create", "--contract", "ctr_none", "--email", "a@example.com",
          "--role", "user"), {}, "no contract 'ctr_none'"),
        (("client", "delete", "cl_missing"), {}, "no client 'cl_missing'"),
    ],
    ids=["unknown-option", "missing-issuer", "unknown-contract", "unknown-client"],
)
def test_mistakes_print_one_line_on_stderr_and_exit_2(app, env, args, extra_env, message):
    result = idp(*args, env={**env, **extra_env}, status=2)
    assert message in result.stderr


def test_commands_refuse_a_database_that_was_never_migrated(app, env, tmp_path):
    with throwaway_database(tmp_path) as url:
        result = idp("iat", "create", env={**env, "IDP_DATABASE_URL": url}, status=2)
        assert "run `idp db upgrade`" in result.stderr


# -- db ------------------------------------------------------------------------------------


def test_db_upgrade_migrates_an_empty_database_once_then_reports_it_current(env, tmp_path):
    with throwaway_database(tmp_path) as url:
        env = {**env, "IDP_DATABASE_URL": url}

        first = idp("db", "upgrade", env=env)
        assert current_revision(url) == head_revision()
        assert f"to revision {head_revision()}" in first.stdout

        again = idp("db", "upgrade", env=env)
        assert "already at revision" in again.stdout
        # The schema change is recorded once; the no-op rerun is not a change.
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT actor, action, target FROM audit_events"))
                assert [tuple(r) for r in rows] == [("operator", "db.upgrade", head_revision())]
        finally:
            engine.dispose()
        # Commands that need the newest schema now run.
        assert idp("iat", "create", env=env).stdout.strip()


# -- keys ----------------------------------------------------------------------------------


def test_keys_rotate_on_an_empty_store_creates_a_current_and_a_next_key_per_algorithm(
    app, env, empty_keys, settings
):
    result = idp("keys", "rotate", env=env)

    records = key_records(empty_keys, settings)
    assert sorted((r["alg"], r["state"]) for r in records) == sorted(
        (alg, state) for alg in ALGS for state in ("current", "next")
    )
    for r in records:
        assert r["kid"] in result.stdout
    assert ("operator", "keys.rotate", "signing-keys") in audit_log(app)


def test_keys_rotate_is_refused_while_the_next_key_is_young_unless_forced(
    app, env, empty_keys, settings
):
    env["IDP_KEYS_NEXT_MIN_AGE"] = "3600"
    idp("keys", "rotate", env=env)
    before = key_records(empty_keys, settings)

    refused = idp("keys", "rotate", env=env, status=2)
    assert "--force" in refused.stderr
    assert key_records(empty_keys, settings) == before

    idp("keys", "rotate", "--force", env=env)
    after = {r["kid"]: r["state"] for r in key_records(empty_keys, settings)}
    for r in before:
        expected = {"current": "retired", "next": "current"}[r["state"]]
        assert after[r["kid"]] == expected
    assert sorted(s for s in after.values() if s == "next") == ["next"] * len(ALGS)
    rotations = [a for a in audit_log(app) if a[1] == "keys.rotate"]
    assert len(rotations) == 2  # the refused attempt changed nothing and is not logged


def test_keys_list_shows_each_key_with_state_and_utc_timestamps(app, env, settings):
    result = idp("keys", "list", env=env)

    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["kid", "alg", "state", "created", "activated", "retired"]
    records = key_records(settings.keys_dir, settings)
    assert len(lines) == 1 + len(records)
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    for r in records:
        _, alg, state, created, activated, retired = rows[r["kid"]]
        assert (alg, state) == (r["alg"], r["state"])
        # The key template was made at the epoch (now=0).
        assert created == "1970-01-01T00:00:00Z"
        assert activated == ("1970-01-01T00:00:00Z" if state == "current" else "-")
        assert retired == "-"


def test_keys_prune_deletes_only_retired_keys_older_than_any_token_they_signed(
    app, env, empty_keys, settings
):
    import time

    store = KeyStore(empty_keys, settings.keys_kek or settings.secret_key)
    t = int(time.time())
    store.rotate(now=t - 100_000, next_min_age=0)
    store.rotate(now=t - 99_999, next_min_age=0)  # first keys retire long ago
    old = {r["kid"] for r in key_records(empty_keys, settings) if r["state"] == "retired"}
    store.rotate(now=t - 10, next_min_age=0)  # second keys retire seconds ago
    everything = {r["kid"] for r in key_records(empty_keys, settings)}
    assert len(old) == len(ALGS)

    # keep_for = max(id_token_ttl, access_token_ttl) + jwks_max_age = 3600 + 0
    result = idp("keys", "prune", env=env)

    remaining = {r["kid"] for r in key_records(empty_keys, settings)}
    assert remaining == everything - old
    assert all(kid in result.stdout for kid in old)
    assert ("operator", "keys.prune", "signing-keys") in audit_log(app)

    again = idp("keys", "prune", env=env)
    assert "nothing to prune" in again.stdout


# -- clients -------------------------------------------------------------------------------


def test_client_create_prints_the_secret_once_and_stores_only_its_hash(app, env):
    result = idp(
        "client", "create", "--name", "Partner App",
        "--redirect-uri", "https://rp.example.com/cb", "--redirect-uri", "https://rp.example.com/2",
        "--post-logout-redirect-uri", "https://rp.example.com/bye",
        "--scope", "openid email", "--json", env=env,
    )

    out = json.loads(result.stdout)
    with app.app_context():
        stored = db.session.get(Client, out["client_id"])
        assert stored is not None
        assert stored.secret_hash == sha256_hex(out["client_secret"])
        assert out["client_secret"] not in json.dumps(stored.meta)
        assert stored.redirect_uris == ["https://rp.example.com/cb", "https://rp.example.com/2"]
        assert stored.post_logout_redirect_uris == ["https://rp.example.com/bye"]
        assert stored.grant_types == ["authorization_code", "refresh_token"]
        assert stored.token_endpoint_auth_method == "client_secret_basic"
        assert stored.scope == "openid email"
        assert not stored.first_party
    assert ("operator", "client.create", out["client_id"]) in audit_log(app)


def test_client_create_for_a_public_first_party_app_with_a_fixed_id(app, env):
    result = idp(
        "client", "create", "--name", "Mobile", "--client-id", "mobile-app",
        "--redirect-uri", "http://127.0.0.1:8765/cb", "--auth-method", "none",
        "--first-party", env=env,
    )

    assert "mobile-app" in result.stdout
    assert "client_secret" not in result.stdout
    with app.app_context():
        stored = db.session.get(Client, "mobile-app")
        assert stored.first_party and stored.is_public and stored.secret_hash is None


def test_client_create_for_a_resource_server_that_may_introspect(app, env):
    result = idp(
        "client", "create", "--name", "Files API", "--grant-type", "client_credentials",
        "--introspection", "--json", env=env,
    )

    out = json.loads(result.stdout)
    with app.app_context():
        stored = db.session.get(Client, out["client_id"])
        assert stored.grant_types == ["client_credentials"]
        assert stored.meta["introspection"] is True
        assert stored.redirect_uris == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--redirect-uri", "https://rp.example.com/cb#frag"), "fragment"),
        (("--redirect-uri", "/cb"), "must be an absolute URI"),
        ((), "redirect_uris is required"),
        (("--redirect-uri", "https://rp.example.com/cb", "--auth-method", "private_key_jwt"),
         "private_key_jwt needs jwks"),
        (("--redirect-uri", "https://rp.example.com/cb", "--scope", "openid admin"),
         "scope must be a subset"),
        (("--redirect-uri", "https://rp.example.com/cb", "--client-id", "bad id!"),
         "--client-id"),
    ],
    ids=["fragment", "relative", "no-redirect", "pkjwt-without-jwks", "unknown-scope",
         "bad-client-id"],
)
def test_client_create_refuses_unsafe_or_incomplete_registrations(app, env, args, message):
    result = idp("client", "create", "--name", "X", *args, env=env, status=2)
    assert message in result.stderr
    with app.app_context():
        assert db.session.scalars(select(Client)).all() == []


def test_client_create_refuses_an_existing_client_id(app, env, factory):
    rp = factory.rp()
    result = idp("client", "create", "--name", "Again", "--client-id", rp.client_id,
                 "--redirect-uri", "https://rp.example.com/cb", env=env, status=2)
    assert "already exists" in result.stderr


def test_client_list_shows_every_client_with_its_redirect_uris(app, env, factory):
    partner = factory.rp(client_name="Partner App", redirect_uri="https://p.example.com/cb")
    own = factory.rp(client_name="Own", first_party=True, auth_method="client_secret_post")

    result = idp("client", "list", env=env)

    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["client_id", "name"]
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert set(by_id) == {partner.client_id, own.client_id}
    assert "Partner App" in by_id[partner.client_id]
    assert "https://p.example.com/cb" in by_id[partner.client_id]
    assert "client_secret_basic" in by_id[partner.client_id]
    assert " no " in by_id[partner.client_id]
    assert "client_secret_post" in by_id[own.client_id]
    assert " yes " in by_id[own.client_id]


def test_client_delete_removes_it_revokes_its_tokens_and_forgets_consents(
    app, env, factory, settings
):
    rp, other = factory.rp(), factory.rp()
    person = factory.user()
    access = {client_id: random_token() for client_id in (rp.client_id, other.client_id)}
    with app.app_context():
        # The store as the CLI process sees it (the app fixture gives Redis a test prefix).
        test_store = app.extensions["idp.store"]
        app.extensions["idp.store"] = open_store(settings.redis_url, db.engine, app.extensions[
            "idp.clock"])
        try:
            for n, client_id in enumerate((rp.client_id, rp.client_id, other.client_id)):
                db.session.add(RefreshToken(
                    token_hash=f"{n:064d}", family_id=f"fam{n}", client_id=client_id,
                    user_id=person.id, scope="openid offline_access", grant={}, issued_at=1,
                    expires_at=2**31 - 1, access_token_hash=sha256_hex(access[client_id]),
                ))
                save_access_token(AccessToken(
                    digest=sha256_hex(access[client_id]), client_id=client_id,
                    user_id=person.id, scope="openid", iat=now(), exp=now() + 600,
                    family=f"fam{n}"))
            db.session.add(Consent(user_id=person.id, client_id=rp.client_id, scope="openid",
                                   granted_at=1))
            db.session.add(Consent(user_id=person.id, client_id=other.client_id,
                                   scope="openid", granted_at=1))
            db.session.commit()

            result = idp("client", "delete", rp.client_id, env=env)

            assert "revoked 2 refresh-token families, removed 1 consent" in result.stdout
            assert find_access_token(access[rp.client_id]) is None
            assert find_access_token(access[other.client_id]) is not None
            revoke_access_tokens(sha256_hex(access[other.client_id]))  # leave Redis clean
        finally:
            app.extensions["idp.store"] = test_store
    with app.app_context():
        assert db.session.get(Client, rp.client_id) is None
        assert db.session.get(Client, other.client_id) is not None
        tokens = db.session.scalars(select(RefreshToken)).all()
        assert len(tokens) == 3  # kept, so a replay is still recognised
        assert all(t.revoked_at is not None for t in tokens if t.client_id == rp.client_id)
        assert all(t.revoked_at is None for t in tokens if t.client_id == other.client_id)
        consents = db.session.scalars(select(Consent)).all()
        assert [c.client_id for c in consents] == [other.client_id]
    assert ("operator", "client.delete", rp.client_id) in audit_log(app)


# -- initial access tokens -----------------------------------------------------------------


def test_iat_create_prints_a_token_of_which_only_the_sha256_is_stored(app, env):
    result = idp("iat", "create", "--note", "Partner Inc.", "--ttl", "3600", "--uses", "3",
                 env=env)

    token = result.stdout.strip()
    assert len(token) >= 43 and "\n" not in token
    with app.app_context():
        stored = db.session.scalars(select(InitialAccessToken)).all()
        assert [s.token_hash for s in stored] == [sha256_hex(token)]
        assert stored[0].note == "Partner Inc."
        assert stored[0].uses_left == 3
        assert stored[0].expires_at - stored[0].created_at == 3600
    assert ("operator", "iat.create", sha256_hex(token)[:16]) in audit_log(app)


def test_iat_create_refuses_zero_uses(app, env):
    idp("iat", "create", "--uses", "0", env=env, status=2)


# -- contracts and users -------------------------------------------------------------------


def test_contract_create_makes_a_contract_whose_owner_can_sign_in(app, env):
    result = idp("contract", "create", "--brand", "codec", "--plan", "trial",
                 "--owner-email", "Boss@Example.com", "--owner-password", "Owner-Pass-2026",
                 "--name", "株式会社テスト", env=env)

    with app.app_context():
        created = db.session.scalars(select(Contract)).one()
        owner = db.session.scalars(select(User)).one()
        assert created.id in result.stdout and owner.id in result.stdout
        assert (created.brand, created.plan, created.name) == ("codec", "trial", "株式会社テスト")
        assert created.trial_ends_at == created.created_at + 30 * 86400
        assert (owner.contract_id, owner.role, owner.email) == (created.id, "owner",
                                                               "boss@example.com")
        assert verify_password("Owner-Pass-2026", owner.password_hash)
    assert ("operator", "contract.create", created.id) in audit_log(app)


def test_contract_create_without_a_password_says_the_owner_cannot_sign_in_yet(app, env):
    result = idp("contract", "create", "--brand", "work", "--plan", "basic",
                 "--owner-email", "owner@work.example", env=env)

    assert "no password yet" in result.stdout
    with app.app_context():
        assert db.session.scalars(select(User)).one().password_hash is None


@pytest.mark.parametrize(("option", "enabled"), [((), True), (("--two-step", "on"), True),
                                                 (("--two-step", "off"), False)],
                         ids=["default-on", "on", "off"])
def test_contract_create_sets_the_contract_wide_two_step_setting(app, env, option, enabled):
    idp("contract", "create", "--brand", "codec", "--plan", "basic",
        "--owner-email", "boss@example.com", *option, env=env)
    with app.app_context():
        assert db.session.scalars(select(Contract)).one().two_step_enabled is enabled


def test_contract_create_refuses_an_unknown_brand(app, env):
    result = idp("contract", "create", "--brand", "nope", "--plan", "basic",
                 "--owner-email", "a@example.com", env=env, status=2)
    assert "unknown brand 'nope'" in result.stderr
    with app.app_context():
        assert db.session.scalars(select(Contract)).all() == []


def test_user_create_adds_a_user_and_a_duplicate_email_fails_clearly(app, env, factory):
    owner = factory.user(email="owner@example.com")

    result = idp("user", "create", "--contract", owner.contract_id, "--email", "ann@example.com",
                 "--role", "admin", "--password", "Ann-Pass-2026", "--name", "Ann", env=env)

    with app.app_context():
        made = db.session.scalars(select(User).where(User.email == "ann@example.com")).one()
        assert made.id in result.stdout
        assert (made.contract_id, made.role, made.name) == (owner.contract_id, "admin", "Ann")
        assert verify_password("Ann-Pass-2026", made.password_hash)
    assert ("operator", "user.create", made.id) in audit_log(app)

    duplicate = idp("user", "create", "--contract", owner.contract_id,
                    "--email", "ANN@example.com", "--role", "user", env=env, status=2)
    assert "ann@example.com is already registered for brand codec" in duplicate.stderr
    with app.app_context():
        assert len(db.session.scalars(select(User)).all()) == 2


def test_user_create_cannot_make_a_second_owner(app, env, factory):
    owner = factory.user()
    idp("user", "create", "--contract", owner.contract_id, "--email", "x@example.com",
        "--role", "owner", env=env, status=2)


# -- demo ----------------------------------------------------------------------------------


@pytest.fixture
def rp_file(tmp_path) -> Iterator[Path]:
    yield tmp_path / "instance" / "demo_rp.json"


def demo_state(app) -> dict:
    with app.app_context():
        web = db.session.get(Client, "storage-web")
        return {
            "users": sorted((u.id, u.email, u.role, u.contract_id, u.password_hash)
                            for u in db.session.scalars(select(User))),
            "contracts": sorted((c.id, c.name) for c in db.session.scalars(select(Contract))),
            "client": (web.secret_hash, web.meta, web.first_party) if web else None,
            "audit": len(audit_log(app)),
        }


def test_demo_creates_keys_accounts_that_sign_in_and_the_storage_web_client(
    app, env, empty_keys, settings, rp_file
):
    result = idp("demo", "--rp-file", str(rp_file), env=env)

    assert {r["state"] for r in key_records(empty_keys, settings)} == {"current", "next"}
    with app.app_context():
        owner = db.session.scalars(select(User).where(User.email == "owner@example.com")).one()
        member = db.session.scalars(select(User).where(User.email == "user@example.com")).one()
        contract = db.session.get(Contract, owner.contract_id)
        assert (contract.brand, contract.name) == ("codec", "デモ株式会社")
        assert (owner.role, member.role, member.contract_id) == ("owner", "user", contract.id)
        assert verify_password("Demo-Owner-2026", owner.password_hash)
        assert verify_password("Demo-User-2026", member.password_hash)
        web = db.session.get(Client, "storage-web")
        assert web.first_party
        assert web.token_endpoint_auth_method == "client_secret_basic"
        assert web.redirect_uris == ["http://127.0.0.1:5001/callback"]
        assert web.post_logout_redirect_uris == ["http://127.0.0.1:5001/"]
        assert web.grant_types == ["authorization_code", "refresh_token"]
        assert web.scope == "openid profile email phone offline_access"
        saved = json.loads(rp_file.read_text())
        assert saved["issuer"] == settings.issuer
        assert saved["client_id"] == "storage-web"
        assert web.secret_hash == sha256_hex(saved["client_secret"])
    assert stat.S_IMODE(rp_file.stat().st_mode) == 0o600
    for shown in ("http://127.0.0.1:5001", settings.issuer, "owner@example.com",
                  "Demo-Owner-2026", "user@example.com", "Demo-User-2026"):
        assert shown in result.stdout
    actions = {a[1] for a in audit_log(app)}
    assert {"keys.rotate", "contract.create", "user.create", "client.create"} <= actions


def test_demo_run_twice_changes_nothing_the_second_time(app, env, empty_keys, settings, rp_file):
    idp("demo", "--rp-file", str(rp_file), env=env)
    state, saved = demo_state(app), rp_file.read_text()
    keys_before = key_records(empty_keys, settings)

    again = idp("demo", "--rp-file", str(rp_file), env=env)

    assert "nothing changed" in again.stdout
    assert demo_state(app) == state
    assert rp_file.read_text() == saved
    assert key_records(empty_keys, settings) == keys_before


def test_demo_with_the_secret_file_lost_issues_a_new_secret_for_the_demo_rp(
    app, env, rp_file
):
    idp("demo", "--rp-file", str(rp_file), env=env)
    first = json.loads(rp_file.read_text())["client_secret"]
    rp_file.unlink()

    idp("demo", "--rp-file", str(rp_file), env=env)

    second = json.loads(rp_file.read_text())["client_secret"]
    assert second != first
    with app.app_context():
        assert db.session.get(Client, "storage-web").secret_hash == sha256_hex(second)
    assert ("operator", "client.rotate_secret", "storage-web") in audit_log(app)


def test_demo_puts_back_a_demo_password_someone_changed(app, env, rp_file):
    idp("demo", "--rp-file", str(rp_file), env=env)
    with app.app_context():
        owner = db.session.scalars(select(User).where(User.email == "owner@example.com")).one()
        owner.password_hash = None
        db.session.commit()

    result = idp("demo", "--rp-file", str(rp_file), env=env)

    assert "reset the demo password of owner@example.com" in result.stdout
    with app.app_context():
        owner = db.session.scalars(select(User).where(User.email == "owner@example.com")).one()
        assert verify_password("Demo-Owner-2026", owner.password_hash)


def test_demo_is_refused_in_production(app, env, rp_file):
    env.update(IDP_ENVIRONMENT="production", IDP_ISSUER="https://idp.example.com",
               IDP_KEYS_KEK="k" * 40)

    result = idp("demo", "--rp-file", str(rp_file), env=env, status=2)

    assert "production" in result.stderr
    assert not rp_file.exists()
    with app.app_context():
        assert db.session.scalars(select(User)).all() == []
        assert db.session.get(Client, "storage-web") is None

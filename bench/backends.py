"""A throwaway provider deployment for the benchmark: database, keys, store, seeded data.

``Deployment`` creates a fresh SQLite file (or PostgreSQL database + Redis db), a key store
and the settings the server will run with, and seeds what each scenario consumes, through
the provider's own code (``idp.accounts``, ``idp.clients``, ``idp.oauth.grants.issue_code``
and real token-endpoint and login-page calls through ``app.test_client()``). Everything is
removed again on ``close()``.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from idp import create_app
from idp.accounts import create_contract, create_user
from idp.clients import create_client
from idp.db import db
from idp.keys import KeyStore
from idp.migrate import upgrade
from idp.oauth.grants import issue_code
from idp.security import random_token
from idp.session import COOKIE as SESSION_COOKIE
from idp.settings import DEFAULT_CONFIG, load_settings

PG_ADMIN_URL = os.environ.get(
    "BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_BASE = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
REDIRECT_URI = "https://rp.bench.example/cb"
#: What a typical relying party asks for; offline_access so the exchange issues a refresh
#: token too (the heavier, realistic path).
CODE_SCOPE = "openid profile email offline_access"
PASSWORD = "Bench-Password-42"
#: Codes are pre-issued before a run, so they must outlive it (and the warm-up).
CODE_TTL = 3600
#: Not "production" only because the issuer is http://127.0.0.1; not "test" either, which
#: switches on test-only shortcuts (cheap argon2 parameters) that would flatter the numbers.
ENVIRONMENT = "development"
#: Accounts the password_signin scenario signs in to in turn: real sign-ins are spread over
#: many users, and a single one would queue every request on its own row lock.
SIGNIN_USERS = 8


@dataclass
class Deployment:
    backend: str  # "sqlite" | "postgres"
    port: int
    redis_db: int = 13
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="idp-bench-")))
    database_url: str = ""
    redis_url: str = ""
    pg_name: str = ""
    secret_key: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(40))
    keys_kek: str = field(default_factory=lambda: "bench-kek-" + secrets.token_urlsafe(24))
    client_id: str = ""
    client_secret: str = ""
    user_email: str = "bench-owner@example.com"
    app: Any = None
    contract_id: str = ""
    _signin: list[tuple[str, str]] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def keys_dir(self) -> Path:
        return self.workdir / "keys"

    def open(self) -> Deployment:
        if self.backend == "sqlite":
            self.database_url = f"sqlite:///{self.workdir / 'idp.sqlite'}"
            self.redis_url = ""
        elif self.backend == "postgres":
            self.pg_name = f"idp_bench_{secrets.token_hex(5)}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.pg_name}"'))
            admin.dispose()
            self.database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.pg_name
            self.redis_url = f"{REDIS_BASE}/{self.redis_db}"
            self._flush_redis()
        else:
            raise ValueError(f"unknown backend {self.backend!r}")
        upgrade(self.database_url)
        KeyStore(self.keys_dir, self.keys_kek).rotate(now=int(time.time()), next_min_age=0)
        settings = load_settings(
            environ={},
            overrides={
                "environment": ENVIRONMENT,
                "issuer": self.issuer,
                "database_url": self.database_url,
                "redis_url": self.redis_url,
                "secret_key": self.secret_key,
                "keys_dir": str(self.keys_dir),
                "keys_kek": self.keys_kek,
                "code_ttl": CODE_TTL,
            },
        )
        self.app = create_app(settings)
        self._seed_accounts()
        return self

    def close(self) -> None:
        if self.app is not None:
            with self.app.app_context():
                db.session.remove()
                db.engine.dispose()
            store = self.app.extensions["idp.store"]
            if hasattr(store, "r"):
                store.r.close()
            self.app = None
        if self.backend == "postgres" and self.pg_name:
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
            admin.dispose()
            self._flush_redis()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(f"{REDIS_BASE}/{self.redis_db}")
        client.flushdb()
        client.close()

    def server_env(self) -> dict[str, str]:
        """The ``IDP_*`` variables that make ``wsgi:app`` serve exactly these settings."""
        return {
            "IDP_CONFIG": str(DEFAULT_CONFIG),
            "IDP_ISSUER": self.issuer,
            "IDP_ENVIRONMENT": ENVIRONMENT,
            "IDP_DATABASE_URL": self.database_url,
            "IDP_REDIS_URL": self.redis_url,
            "IDP_SECRET_KEY": self.secret_key,
            "IDP_KEYS_DIR": str(self.keys_dir),
            "IDP_KEYS_KEK": self.keys_kek,
            "IDP_CODE_TTL": str(CODE_TTL),
        }

    # -- seeding -------------------------------------------------------------------------
    def _seed_accounts(self) -> None:
        with self.app.app_context():
            # 2-step off: password_signin measures the password sign-in itself; a second
            # factor is another page and another request.
            contract, user = create_contract(brand="codec", plan="basic",
                                             owner_email=self.user_email,
                                             owner_password=PASSWORD, owner_name="Bench User",
                                             two_step=False)
            self.user_id, self.contract_id = user.id, contract.id
            client, secret = create_client({
                "client_name": "Bench RP",
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "response_types": ["code"],
            })
            self.client_id, self.client_secret = client.client_id, secret or ""

    @property
    def basic_auth(self) -> str:
        raw = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def issue_codes(self, count: int) -> list[str]:
        """Single-use codes, stored exactly as ``idp.flow.finish_with_code`` stores them."""
        codes = []
        with self.app.app_context():
            auth_time = int(time.time())
            for _ in range(count):
                code = random_token()
                issue_code(code, {
                    "client_id": self.client_id,
                    "user_id": self.user_id,
                    "redirect_uri": REDIRECT_URI,
                    "scope": CODE_SCOPE,
                    "code_challenge": None,
                    "code_challenge_method": None,
                    "grant": {
                        "auth_time": auth_time,
                        "acr": "urn:idp:loa:1",
                        "amr": ["pwd"],
                        "sid": random_token(16),
                        "nonce": random_token(12),
                        "claims": None,
                    },
                })
                codes.append(code)
        return codes

    def exchange_codes(self, count: int) -> list[dict[str, Any]]:
        """Token responses of real code exchanges (access, refresh and ID tokens)."""
        codes = self.issue_codes(count)
        http = self.app.test_client()
        out = []
        for code in codes:
            response = http.post(
                "/token",
                data={"grant_type": "authorization_code", "code": code,
                      "redirect_uri": REDIRECT_URI},
                headers={"Authorization": self.basic_auth},
            )
            body = response.get_json()
            if response.status_code != 200 or "refresh_token" not in body:
                raise RuntimeError(f"seeding code exchange failed: {response.status_code} {body}")
            out.append(body)
        return out

    def refresh_tokens(self, count: int) -> list[str]:
        return [t["refresh_token"] for t in self.exchange_codes(count)]

    def access_token(self) -> str:
        return self.exchange_codes(1)[0]["access_token"]

    def signin_requests(self) -> list[tuple[str, str]]:
        """(Cookie header, form body) of ``POST /login`` for each sign-in account, made once.

        What a returning browser sends: the login page's CSRF cookie and token, and the
        device cookie of an earlier sign-in (``idp.known_devices``), with which the
        per-account attempt limit does not apply (OWASP device cookies); not the session
        cookie, so each request is a whole new sign-in. Users are created through
        ``idp.accounts`` with the production argon2id parameters.
        """
        if self._signin is not None:
            return self._signin
        out = []
        with self.app.app_context():
            emails = [f"bench-signin-{i}@example.com" for i in range(SIGNIN_USERS)]
            for email in emails:
                create_user(contract_id=self.contract_id, email=email, role="user",
                            password=PASSWORD, name="Bench Signin")
        for email in emails:
            # A browser of its own per account; cookies are sent by hand, exactly as wrk will.
            browser = self.app.test_client(use_cookies=False)
            page = browser.get("/login", base_url=self.issuer)
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
            if page.status_code != 200 or csrf is None:
                raise RuntimeError(f"login page: {page.status_code} without a CSRF token")
            body = urllib.parse.urlencode({"csrf_token": csrf.group(1), "email": email,
                                           "password": PASSWORD})
            cookies = _set_cookies(page)
            done = browser.post("/login", data=body, base_url=self.issuer,
                                headers={"Cookie": _cookie_header(cookies),
                                         "Content-Type": "application/x-www-form-urlencoded"})
            if done.status_code != 302:
                raise RuntimeError(f"seeding sign-in of {email} failed: {done.status_code} "
                                   f"{done.get_data(as_text=True)[:300]}")
            cookies.update(_set_cookies(done))
            cookies.pop(SESSION_COOKIE, None)
            out.append((_cookie_header(cookies), body))
        self._signin = out
        return out


def _set_cookies(response: Any) -> dict[str, str]:
    """name -> value of the response's Set-Cookie headers (cleared ones left out)."""
    out = {}
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        value = rest.split(";", 1)[0]
        if value:
            out[name.strip()] = value
    return out


def _cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())

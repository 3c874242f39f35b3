"""Run the provider as production does (granian, two workers) on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from idp.settings import PROJECT_ROOT, Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(settings: Settings, issuer: str) -> dict[str, str]:
    return {
        **os.environ,
        "IDP_CONFIG": str(PROJECT_ROOT / "config" / "default.toml"),
        "IDP_ENVIRONMENT": "test",
        "IDP_ISSUER": issuer,
        "IDP_DATABASE_URL": settings.database_url,
        "IDP_REDIS_URL": settings.redis_url,
        "IDP_SMTP_URL": settings.smtp_url,
        "IDP_SECRET_KEY": settings.secret_key,
        "IDP_KEYS_DIR": str(settings.keys_dir),
        "IDP_KEYS_NEXT_MIN_AGE": "0",
        "IDP_JWKS_MAX_AGE": "0",
    }


@contextmanager
def live_provider(settings: Settings, *, workers: int = 2) -> Iterator[str]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    log = Path(settings.keys_dir).parent / "granian.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi",
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "wsgi:app"],
            cwd=PROJECT_ROOT, env=server_env(settings, issuer), stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(issuer + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("provider did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

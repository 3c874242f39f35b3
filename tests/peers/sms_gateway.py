"""A loopback SMS gateway speaking the HTTP API of ``idp.notify.sms``, for tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as the gateway saw it."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw.decode("utf-8"))


class SmsGateway:
    """Records every request and answers ``status`` after ``delay`` seconds.

    Used as a context manager: a daemon thread serves 127.0.0.1 on an ephemeral port.
    ``body`` is sent with the answer (e.g. an error that echoes the request).
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 202
        self.body = b'{"id": "msg-1"}'
        self.delay = 0.0
        self._closing = threading.Event()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                gateway.received.append(Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    raw=self.rfile.read(length),
                ))
                # A slow answer is cut short when the test ends, so shutdown never waits
                # on a sleeper (whose client gave up long ago).
                if gateway.delay and gateway._closing.wait(gateway.delay):
                    return
                self.send_response(gateway.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(gateway.body)))
                self.end_headers()
                self.wfile.write(gateway.body)

            do_POST = do_GET = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: pytest shows failures, not access logs."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll so that shutdown at the end of each test does not wait half a second.
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path: str = "/v1/messages", *, userinfo: str = "") -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{userinfo + '@' if userinfo else ''}{host}:{port}{path}"

    def __enter__(self) -> SmsGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

"""Discovery and JWKS answered before Flask's routing.

They are the most requested, least changing resources: relying parties and resource
servers poll them. Served as precomputed bytes from a thin WSGI layer they cost a dict
lookup instead of a full Flask request (routing, contexts, session, after-request hooks).
The Flask views in endpoints/discovery.py stay as the reference implementation and serve
HEAD and anything this layer declines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from .keys import KeyRing

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_DISCOVERY = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
_COMMON = [
    ("Content-Type", "application/json"),
    ("Access-Control-Allow-Origin", "*"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


class PrecomputedDocuments:
    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.inner = inner
        self.app = app
        self.ring: KeyRing = app.extensions["idp.keys"]
        self.jwks_max_age = f"public, max-age={app.extensions['idp.settings'].jwks_max_age}"
        self.hsts = app.extensions["idp.settings"].secure_cookies

    def _document(self, environ, start_response, body: bytes, etag: str, cache: str):
        headers = [*_COMMON, ("ETag", etag), ("Cache-Control", cache)]
        if self.hsts:
            headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
        if_none_match = environ.get("HTTP_IF_NONE_MATCH", "")
        if if_none_match and (if_none_match.strip() == "*" or etag.strip('"') in {
            t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")
        }):
            start_response("304 Not Modified", headers[1:])
            return [b""]
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            if path == "/jwks.json":
                self.ring.refresh()
                return self._document(environ, start_response, self.ring.jwks_body,
                                      self.ring.jwks_etag, self.jwks_max_age)
            if path in _DISCOVERY:
                body, etag = self.app.extensions["idp.discovery"]
                return self._document(environ, start_response, body, etag,
                                      "public, max-age=3600")
        return self.inner(environ, start_response)


def install(app: Flask) -> None:
    app.wsgi_app = PrecomputedDocuments(app, app.wsgi_app)  # type: ignore[method-assign]

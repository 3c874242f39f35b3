"""Cross-cutting web plumbing: CSRF, security headers, brand and language of a request."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from .settings import Brand, Settings

csrf = CSRFProtect()

# Pages are ours alone: no inline script, no framing, no referrer leaking codes or tickets.
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' *; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def settings() -> Settings:
    return current_app.extensions["idp.settings"]


def brand() -> Brand:
    """The brand the request's host selects; unknown hosts get the default brand."""
    if "brand" not in g:
        cfg = settings()
        host = request.host.lower()
        g.brand = next(
            (b for b in cfg.brands.values() if host in (b.internet_host, b.line_host)),
            cfg.brands[cfg.default_brand],
        )
    return g.brand


def brand_url(brand: Brand, endpoint: str, **values: object) -> str:
    """Absolute URL of ``endpoint`` on the brand's internet host (links in mails)."""
    from urllib.parse import urlsplit

    from flask import url_for

    issuer = urlsplit(settings().issuer)
    return f"{issuer.scheme}://{brand.internet_host}" + url_for(endpoint, **values)


def client_address() -> str:
    """The caller's address as the audit log, rate limits and line gateways see it.

    Behind ``trusted_proxies`` reverse proxies, each appends the address it saw to
    ``X-Forwarded-For``: the client is that many entries from the right. Entries further
    left are whatever the client sent, so they are never read. A request with fewer
    entries did not come through the proxies: its peer address counts.
    """
    if "client_address" not in g:
        hops = settings().trusted_proxies
        address = request.remote_addr or ""
        if hops:
            forwarded = [a.strip() for value in request.headers.getlist("X-Forwarded-For")
                         for a in value.split(",") if a.strip()]
            if len(forwarded) >= hops:
                address = forwarded[-hops]
        g.client_address = address
    return g.client_address


def language() -> str:
    """``ja`` first; ``en`` when ui_locales or Accept-Language prefers it."""
    if "lang" not in g:
        wanted = request.values.get("ui_locales", "").split()
        lang = next((x.split("-")[0] for x in wanted if x.split("-")[0] in ("ja", "en")), None)
        if lang is None:
            lang = request.accept_languages.best_match(["ja", "en"], default="ja")
        g.lang = lang
    return g.lang


def _security_headers(response: Response) -> Response:
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html":
        h.setdefault("Content-Security-Policy", _CSP)
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Cache-Control", "no-store")
    if settings().secure_cookies:
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


_PROTOCOL_PATHS = ("/token", "/userinfo", "/revoke", "/introspect", "/register", "/jwks.json",
                   "/.well-known/")


def _http_error(exc: HTTPException) -> Response:
    """Protocol endpoints answer JSON; pages answer a page in the user's language."""
    if request.path.startswith(_PROTOCOL_PATHS):
        response = jsonify(error="invalid_request", error_description=exc.description)
        response.status_code = exc.code or 400
        return response
    from .i18n import MESSAGES, t  # i18n needs language() from this module

    key = f"http_{exc.code}"
    description = t(key) if key in MESSAGES else exc.description
    return Response(render_template("error.html", error=exc.name, description=description),
                    status=exc.code or 500)


def _csrf_error(exc: CSRFError) -> Response:
    from .i18n import t

    return Response(render_template("error.html", error="csrf", description=t("csrf_failed")),
                    status=400)


def init_web(app: Flask) -> None:
    csrf.init_app(app)
    from . import session as sessions
    from .mfa import remember

    # Cookies a request decided on (a session started, a browser remembered) go out with
    # whatever page it answers, however the flow got there.
    app.after_request(sessions.attach)
    app.after_request(remember.attach)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    from .i18n import method_label, t

    app.jinja_env.globals.update(brand=brand, lang=language, t=t, method_label=method_label)

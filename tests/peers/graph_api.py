"""A loopback stand-in of Facebook's Login dialog and Graph API, for tests.

Facebook is the one upstream that cannot run here (STYLE "Comments and tests"), so this
speaks its HTTP API as documented and as observed, over real HTTP on 127.0.0.1:

- ``/{version}/oauth/access_token``: exchanges a code it issued, checking ``client_id``,
  ``client_secret``, ``redirect_uri`` (identical to the dialog's) and single use;
- ``/{version}/debug_token``: needs the app token ``app_id|app_secret``; reports the
  token's ``app_id``, ``type``, ``user_id``, ``is_valid``, ``scopes``;
- ``/{version}/me``: needs the user token and, for apps that require it (all, by
  default), a correct ``appsecret_proof`` (error code 100 otherwise, as Facebook).

Parameters are read from the query and from a form body, as Graph does. The dialog is
not served: a test passes the URL ``start`` produced to ``authorize``, which plays the
user at Facebook and returns the query the browser would bring back to the callback.
Every request is recorded (``received``), every dialog visit too (``dialogs``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_VERSIONED = re.compile(r"/v[0-9]+\.[0-9]+(/.*)")


@dataclass(frozen=True)
class Received:
    """One Graph request as the stand-in saw it (``path`` without the version)."""

    method: str
    path: str
    version: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class App:
    secret: str
    redirect_uris: tuple[str, ...] = ()
    #: Facebook's "Require App Secret": /me needs an appsecret_proof.
    require_proof: bool = True


@dataclass(frozen=True)
class User:
    """A Facebook account; ``id`` stands for its app-scoped id."""

    id: str
    name: str
    email: str | None = None


@dataclass
class _Grant:
    app_id: str
    user: User
    scopes: tuple[str, ...]
    redirect_uri: str = ""
    used: bool = False
    expired: bool = False


@dataclass(frozen=True)
class Canned:
    """An answer given instead of the real one."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class GraphApi:
    """Used as a context manager: a daemon thread serves 127.0.0.1 on an ephemeral port."""

    def __init__(self, *, version: str = "v25.0") -> None:
        self.version = version
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}
        self.received: list[Received] = []
        self.dialogs: list[dict[str, str]] = []
        #: path (without version) -> the answer to give instead.
        self.canned: dict[str, Canned] = {}
        #: Seconds to wait before answering (cut short when the server stops).
        self.delay = 0.0
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, _Grant] = {}
        self._expire_all = False
        self._lock = threading.Lock()
        self._closing = threading.Event()
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                if "form-urlencoded" in (self.headers.get("Content-Type") or ""):
                    params.update(parse_qsl(raw.decode(), keep_blank_values=True))
                match = _VERSIONED.fullmatch(parts.path)
                path = match.group(1) if match else parts.path
                version = parts.path.split("/")[1] if match else ""
                graph.received.append(Received(
                    method=self.command, path=path, version=version, params=params,
                    headers={k.lower(): v for k, v in self.headers.items()}))
                if graph.delay and graph._closing.wait(graph.delay):
                    return
                canned = graph.canned.get(path)
                if canned is None:
                    status, body = graph._route(self.command, path, params)
                    canned = Canned(status, json.dumps(body).encode())
                self.send_response(canned.status)
                headers = {"Content-Type": "application/json", **canned.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: pytest shows failures, not access logs."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    # -- set-up -----------------------------------------------------------------------

    def register_app(self, app_id: str, secret: str, *, redirect_uris: tuple[str, ...] = (),
                     require_proof: bool = True) -> App:
        self.apps[app_id] = App(secret, tuple(redirect_uris), require_proof)
        return self.apps[app_id]

    def add_user(self, key: str, *, id: str, name: str, email: str | None = None) -> User:
        self.users[key] = User(id=id, name=name, email=email)
        return self.users[key]

    def answer(self, path: str, *, status: int, body: Any = b"",
               headers: dict[str, str] | None = None) -> None:
        """Answer ``path`` (e.g. ``/me``) with this from now on; a non-bytes body is JSON."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.canned[path] = Canned(status, raw, dict(headers or {}))

    def mint_token(self, app_id: str, user: str, *,
                   scopes: tuple[str, ...] = ("email", "public_profile")) -> str:
        """A user access token of ``app_id`` for ``user``, as if issued elsewhere."""
        token = "EAA" + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = _Grant(app_id, self.users[user], scopes)
        return token

    def expire_tokens(self) -> None:
        """Every token issued so far and from now on has expired (OAuthException 190/463)."""
        self._expire_all = True
        with self._lock:
            for grant in self._tokens.values():
                grant.expired = True

    # -- the dialog -------------------------------------------------------------------

    def authorize(self, dialog_url: str, *, user: str, deny: bool = False,
                  decline: tuple[str, ...] = ()) -> dict[str, str]:
        """The user at the Login dialog: signs in as ``user`` and accepts (less the
        permissions in ``decline``), or cancels (``deny``). Returns the callback's query.

        Like Facebook, a dialog for an unknown app or a redirect_uri that is not registered
        shows an error page and never comes back: that is a ``ValueError`` here.
        """
        query = dict(parse_qsl(urlsplit(dialog_url).query, keep_blank_values=True))
        self.dialogs.append(query)
        app = self.apps.get(query.get("client_id", ""))
        if app is None:
            raise ValueError("Facebook dialog: invalid app ID")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            raise ValueError("Facebook dialog: URL blocked (redirect_uri not registered)")
        if query.get("response_type", "code") != "code":
            raise ValueError("Facebook dialog: only the code flow is played here")
        state = {"state": query["state"]} if "state" in query else {}
        if deny:
            return {"error": "access_denied", "error_code": "200",
                    "error_description": "Permissions error", "error_reason": "user_denied",
                    **state}
        asked = tuple(s for s in re.split(r"[ ,]+", query.get("scope", "")) if s)
        scopes = tuple(dict.fromkeys(s for s in ("public_profile", *asked)
                                     if s not in decline))
        code = "AQ" + secrets.token_urlsafe(96)
        with self._lock:
            self._codes[code] = _Grant(query["client_id"], self.users[user], scopes,
                                       redirect_uri=redirect_uri)
        return {"code": code, **state}

    # -- Graph ------------------------------------------------------------------------

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def _route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, Any]:
        if path == "/oauth/access_token":
            return self._access_token(params)
        if path == "/debug_token" and method == "GET":
            return self._debug_token(params)
        if path == "/me" and method == "GET":
            return self._me(params)
        return _error(f"Unknown path components: {path}", 2500)

    def _access_token(self, params: dict[str, str]) -> tuple[int, Any]:
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            return _error("Error validating application. Invalid application ID.", 101)
        if not hmac.compare_digest(params.get("client_secret", ""), app.secret):
            return _error("Error validating client secret.", 1)
        with self._lock:
            grant = self._codes.get(params.get("code", ""))
            if grant is None:
                return _error("Invalid verification code format.", 100)
            if grant.app_id != params["client_id"] or \
                    grant.redirect_uri != params.get("redirect_uri"):
                return _error("Error validating verification code. Please make sure your "
                              "redirect_uri is identical to the one you used in the OAuth "
                              "dialog request", 100, 36008)
            if grant.used:
                return _error("This authorization code has been used.", 100, 36009)
            grant.used = True
            token = "EAA" + secrets.token_urlsafe(48)
            self._tokens[token] = _Grant(grant.app_id, grant.user, grant.scopes,
                                         expired=self._expire_all)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": 5183944}

    def _app_token_ok(self, token: str) -> bool:
        app_id, _, secret = token.partition("|")
        app = self.apps.get(app_id)
        return app is not None and hmac.compare_digest(secret, app.secret)

    def _debug_token(self, params: dict[str, str]) -> tuple[int, Any]:
        if not self._app_token_ok(params.get("access_token", "")):
            return _error("(#100) You must provide an app access token, or a user access "
                          "token that is an owner or developer of the app", 100)
        grant = self._tokens.get(params.get("input_token", ""))
        if grant is None:
            return 200, {"data": {"error": {"code": 190, "message": "Invalid OAuth access "
                                            "token - Cannot parse access token"},
                                  "is_valid": False, "scopes": []}}
        data: dict[str, Any] = {
            "app_id": grant.app_id, "type": "USER", "application": "Stand-in app",
            "data_access_expires_at": 1900000000, "expires_at": 1800000000,
            "is_valid": not grant.expired, "scopes": list(grant.scopes),
            "user_id": grant.user.id,
        }
        if grant.expired:
            data["error"] = {"code": 190, "subcode": 463,
                             "message": "Session has expired on Tuesday, 01-Jan-30."}
        return 200, {"data": data}

    def _me(self, params: dict[str, str]) -> tuple[int, Any]:
        token = params.get("access_token", "")
        grant = self._tokens.get(token)
        if grant is None:
            return _error("Invalid OAuth access token - Cannot parse access token", 190)
        app = self.apps[grant.app_id]
        proof = params.get("appsecret_proof")
        if app.require_proof and proof is None:
            return _error("API calls from the server require an appsecret_proof argument",
                          100, type="GraphMethodException")
        if proof is not None:
            expected = hmac.new(app.secret.encode(), token.encode(),
                                hashlib.sha256).hexdigest()
            if not hmac.compare_digest(proof, expected):
                return _error("Invalid appsecret_proof provided in the API argument", 100,
                              type="GraphMethodException")
        if grant.expired:
            return _error("Error validating access token: Session has expired on "
                          "Tuesday, 01-Jan-30.", 190, 463)
        fields = params.get("fields", "id,name").split(",")
        user = grant.user
        profile = {"id": user.id, "name": user.name}
        if user.email is not None and "email" in grant.scopes:
            profile["email"] = user.email
        return 200, {k: v for k, v in profile.items() if k in fields or k == "id"}

    # -- server -----------------------------------------------------------------------

    def url(self, path: str = "") -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    @property
    def graph_url(self) -> str:
        """For ``Config.graph_url``: the stand-in's root with ``{version}`` left in."""
        return self.url("/{version}")

    def __enter__(self) -> GraphApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _error(message: str, code: int, subcode: int | None = None, *,
           type: str = "OAuthException", status: int = 400) -> tuple[int, Any]:
    error: dict[str, Any] = {"message": message, "type": type, "code": code,
                             "fbtrace_id": "A" + secrets.token_hex(8)}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}

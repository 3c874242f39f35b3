"""Facebook Login connector (type ``facebook``): the OAuth 2.0 code flow and the Graph API.

Facebook's "Manually Build a Login Flow", step by step:

1. ``start``: the browser goes to the Login dialog,
   ``https://www.facebook.com/{version}/dialog/oauth?client_id=&redirect_uri=&state=
   &response_type=code&scope=email,public_profile``, plus ``auth_type=reauthenticate``
   when the user is about to link an account (SPEC §5: Facebook asks for the password of
   the account it is signed in to, so the user sees which account that is).
2. ``finish``: the dialog comes back with ``?code=&state=``, or, when the user cancels,
   ``?error=access_denied&error_reason=user_denied&state=`` (``denied``). Then, server to
   server:

   a. ``POST {graph}/oauth/access_token`` (``client_id``, ``client_secret``,
      ``redirect_uri``, ``code``): the user access token. A POST form rather than the
      documented GET, so that the app secret is never part of a URL that a proxy logs.
   b. ``GET {graph}/debug_token?input_token=<token>&access_token=<app_id>|<app_secret>``
      ("Inspecting access tokens"): the token must be valid, a ``USER`` token, issued to
      *our* ``app_id``, for a user id. This is the one place Facebook states whom a token
      was issued to; without it a token minted for another app (one an attacker runs,
      whose users' tokens it holds) would sign its holder in here as that user.
   c. ``GET {graph}/me?fields=id,name,email&access_token=<token>&appsecret_proof=<hex>``
      where ``appsecret_proof = HMAC-SHA256(app_secret, access_token)`` ("Securing Graph
      API requests"), so the app can switch on "Require App Secret" and a leaked token is
      useless without our secret. ``/me``'s ``id`` must be the ``user_id`` of step b.

   The identity is issuer ``https://www.facebook.com`` and subject the app-scoped user id
   (the same person has another id in another app). Facebook returns ``email`` only when
   the user has a confirmed address and granted the ``email`` permission; a returned
   address counts as verified, a missing one is ``None``.

What is deliberately not used, and why:

- PKCE (``code_challenge``): Facebook documents it only for its "OIDC code flow with
  PKCE" (``scope=openid``, an ID token; marked "still in testing") and for the SDKs'
  Limited Login, not for this Graph API flow. Here the code is redeemable only with the
  app secret and the exact ``redirect_uri``, and the ``state`` the blueprint binds to the
  login flow stops a code being injected into someone else's flow.
- ``nonce``: the Graph flow has none (no ID token). ``auth_nonce`` exists for
  re-authentication, but no current Graph API call reports it back, so it could not be
  checked; a user who strips ``auth_type`` from the URL only skips their own safeguard,
  and the account is shown for confirmation before linking anyway.
- ``auth_type=rerequest`` (ask again for a declined permission): only ``email`` could be
  declined, and users are never found by e-mail, so a refusal is respected.

Errors: Graph answers ``{"error": {"type", "code", "error_subcode", "message"}}``. Code
190 (the access token is expired, revoked, or the user logged out or changed password) and
a replayed code (100/36009) are ``expired``: signing in again helps. Transient errors
(``is_transient``, codes 2, 4, 17, 32, 341, 613), 5xx, 3xx, timeouts, refused connections
and anything that is not a JSON object are ``unavailable``. Everything else is
``invalid``. Log messages name the endpoint and Graph's code, never a URL with its query,
a token, the code or the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from ..netutil import NoNetrc, is_loopback, root_cause
from ..security import matches_hash, sha256_hex
from ..settings import Settings, SettingsError
from .base import ConnectorError, Redirect, Started, UpstreamIdentity

TYPE = "facebook"
#: The ``iss`` of every Facebook identity: app-scoped ids are unique under it per app.
ISSUER = "https://www.facebook.com"
#: The largest Graph answer read (the ones used here are a few hundred bytes).
MAX_BODY = 64 * 1024
#: Graph error codes that say "try later": unknown/temporary service trouble and the
#: app, user and page rate limits.
_TRANSIENT = frozenset({2, 4, 17, 32, 341, 613})
#: ``error_subcode`` of "This authorization code has been used.".
_CODE_USED = 36009
_VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,3}")
_APP_ID = re.compile(r"[0-9]{1,32}")
_SCOPE = re.compile(r"[a-z0-9_]{1,64}")
#: What an opaque value from a callback or Graph may be made of (printable ASCII).
_OPAQUE = re.compile(r"[\x21-\x7e]{1,4096}")


def appsecret_proof(app_secret: str, access_token: str) -> str:
    """``appsecret_proof`` of a Graph call: HMAC-SHA256 of the token keyed with the secret,
    lower-case hex (Facebook's ``hash_hmac('sha256', $token, $secret)``)."""
    return hmac.new(app_secret.encode("utf-8"), access_token.encode("utf-8"),
                    hashlib.sha256).hexdigest()


def _endpoint(name: str, template: str, version: str) -> str:
    """``template`` with ``{version}`` filled in, checked: https (plain http only to a
    loopback address, for a local stand-in), a host, no query, fragment or user info."""
    if not isinstance(template, str):
        raise ValueError(f"{name} must be a URL")
    try:
        url = template.format(version=version).rstrip("/")
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"{name}: the only placeholder allowed is {{version}}: "
                         f"{template!r}") from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{name} must be an https:// URL with a host: {url!r}")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(f"{name} must use https:// (plain http:// only to a loopback "
                         f"address): {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{name} takes no query, fragment or user information: {url!r}")
    return url


@dataclass(frozen=True)
class Config:
    """``[connectors.<id>]`` with ``type = "facebook"``."""

    #: The app's id (App Dashboard > App settings > Basic): digits, quoted in TOML.
    app_id: str
    #: The app secret: authenticates the code exchange, the app token of ``debug_token``
    #: and every ``appsecret_proof``. Kept out of ``repr`` and of every message.
    app_secret: str = field(repr=False)
    #: Graph API version of every URL. Facebook retires a version about two years after
    #: its release; calls to a retired one are served by the oldest live version.
    graph_version: str = "v25.0"
    #: The Login dialog; ``{version}`` is replaced by ``graph_version``.
    dialog_url: str = "https://www.facebook.com/{version}/dialog/oauth"
    #: The Graph API root (``/oauth/access_token``, ``/debug_token``, ``/me`` below it);
    #: tests point it at a loopback stand-in.
    graph_url: str = "https://graph.facebook.com/{version}"
    #: Permissions asked for: ``public_profile`` (id, name) and ``email``. Anything more
    #: needs Facebook's app review and is not used here.
    scopes: tuple[str, ...] = ("email", "public_profile")
    #: Seconds each Graph call may take (to connect, and in all to read the answer).
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.app_id, str) or not _APP_ID.fullmatch(self.app_id):
            raise ValueError("app_id must be the app's numeric id as a string (quote it "
                             "in TOML)")
        if not isinstance(self.app_secret, str) or not _OPAQUE.fullmatch(self.app_secret):
            raise ValueError("app_secret is required (printable ASCII, no spaces)")
        if not isinstance(self.graph_version, str) or not _VERSION.fullmatch(
                self.graph_version):
            raise ValueError(f"graph_version must look like \"v25.0\", got "
                             f"{self.graph_version!r}")
        _endpoint("dialog_url", self.dialog_url, self.graph_version)
        _endpoint("graph_url", self.graph_url, self.graph_version)
        if (not isinstance(self.scopes, tuple) or not self.scopes
                or not all(isinstance(s, str) and _SCOPE.fullmatch(s) for s in self.scopes)):
            raise ValueError("scopes must list Facebook permissions such as \"email\"")
        if (isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float)
                or not 0 < self.timeout <= 60):
            raise ValueError("timeout must be a number of seconds between 0 and 60")

    @property
    def dialog(self) -> str:
        return _endpoint("dialog_url", self.dialog_url, self.graph_version)

    @property
    def graph(self) -> str:
        return _endpoint("graph_url", self.graph_url, self.graph_version)


def open(id: str, config: Config, settings: Settings) -> FacebookConnector:
    """The connector ``id``; plain http to a loopback stand-in is refused in production."""
    if settings.environment == "production":
        problems = [f"connectors.{id}.{name} must use https:// in production"
                    for name, url in (("dialog_url", config.dialog), ("graph_url", config.graph))
                    if urlsplit(url).scheme != "https"]
        if problems:
            raise SettingsError(problems)
    return FacebookConnector(id, config)


class FacebookConnector:
    """A ``CallbackConnector`` for one Facebook app."""

    def __init__(self, id: str, config: Config) -> None:
        self.id = id
        self.config = config

    def __repr__(self) -> str:
        return f"FacebookConnector({self.id!r}, app_id={self.config.app_id!r})"

    def start(self, *, state: str, nonce: str, callback_url: str, link: bool) -> Started:
        query = {
            "client_id": self.config.app_id,
            "redirect_uri": callback_url,
            "state": state,
            "response_type": "code",
            "scope": ",".join(self.config.scopes),
        }
        if link:
            query["auth_type"] = "reauthenticate"
        # ``nonce`` has no place in this flow (see the module docstring). Only the state's
        # digest is kept, as the blueprint keeps it: the flow store never holds a value that
        # would complete someone's callback.
        return Started(go=Redirect(f"{self.config.dialog}?{urlencode(query)}"),
                       keep={"state_sha256": sha256_hex(state)})

    def finish(self, *, params: Mapping[str, str], kept: Mapping[str, Any],
               callback_url: str) -> UpstreamIdentity:
        got = params.get("state")
        # Also checked by the blueprint; repeated here because a connector must not hand out
        # an identity for a callback that does not belong to what it started.
        if not isinstance(got, str) or not matches_hash(got, kept.get("state_sha256")):
            raise ConnectorError("invalid", "Facebook callback: state does not match")
        if any(params.get(k) for k in ("error", "error_reason", "error_code")):
            error, reason = params.get("error", ""), params.get("error_reason", "")
            if error == "access_denied" or reason == "user_denied":
                raise ConnectorError("denied", f"Facebook: the user cancelled "
                                               f"({_clip(reason or error)})")
            raise ConnectorError("invalid", f"Facebook dialog error {_clip(error)!r} "
                                            f"code {_clip(params.get('error_code', ''))!r}")
        code = params.get("code")
        if not isinstance(code, str) or not _OPAQUE.fullmatch(code):
            raise ConnectorError("invalid", "Facebook callback without a usable code")
        # The redirect_uri of the exchange must be the dialog's, byte for byte: the
        # blueprint passes the one it gave ``start``.
        token = self._exchange(code, callback_url)
        user_id = self._inspect(token)
        return self._profile(token, user_id)

    # -- the three Graph calls --------------------------------------------------------

    def _exchange(self, code: str, redirect_uri: str) -> str:
        answer = self._call("POST", "/oauth/access_token", hide=(code,), data={
            "client_id": self.config.app_id,
            "client_secret": self.config.app_secret,
            "redirect_uri": redirect_uri,
            "code": code,
        })
        token = answer.get("access_token")
        if not isinstance(token, str) or not _OPAQUE.fullmatch(token):
            raise ConnectorError("unavailable", "Facebook /oauth/access_token: no access "
                                                "token in the answer")
        return token

    def _inspect(self, token: str) -> str:
        """The user id of ``token``, after checking it is a valid user token of our app."""
        app_token = f"{self.config.app_id}|{self.config.app_secret}"
        answer = self._call("GET", "/debug_token", hide=(token,), params={
            "input_token": token,
            # The app token carries the secret itself: no appsecret_proof needed (Facebook:
            # "require app secret or app secret proof").
            "access_token": app_token,
        })
        data = answer.get("data")
        if not isinstance(data, dict):
            raise ConnectorError("unavailable", "Facebook /debug_token: no data object")
        if data.get("is_valid") is not True:
            error = data.get("error")
            kind = "expired" if isinstance(error, dict) and error.get("code") == 190 \
                else "invalid"
            detail = _describe(error, hide=(token,), secret=self.config.app_secret) \
                if isinstance(error, dict) else "no reason given"
            raise ConnectorError(kind, f"Facebook /debug_token: the token is not valid "
                                       f"({detail})")
        app_id = data.get("app_id")
        if str(app_id) != self.config.app_id:
            raise ConnectorError("invalid", f"Facebook /debug_token: the token was issued "
                                            f"to app {_clip(str(app_id))!r}, not to "
                                            f"{self.config.app_id!r}")
        if data.get("type", "USER") != "USER":
            raise ConnectorError("invalid", f"Facebook /debug_token: a "
                                            f"{_clip(str(data.get('type')))} token, not a "
                                            f"user token")
        user_id = data.get("user_id")
        if not isinstance(user_id, str) or not _APP_ID.fullmatch(user_id):
            raise ConnectorError("invalid", "Facebook /debug_token: no user id")
        return user_id

    def _profile(self, token: str, user_id: str) -> UpstreamIdentity:
        me = self._call("GET", "/me", hide=(token,), params={
            "fields": "id,name,email",
            "access_token": token,
            "appsecret_proof": appsecret_proof(self.config.app_secret, token),
        })
        if me.get("id") != user_id:
            raise ConnectorError("invalid", "Facebook /me: another user than the token's")
        name = me.get("name")
        name = name[:256] if isinstance(name, str) and name.strip() else None
        email = me.get("email")
        if not isinstance(email, str) or "@" not in email or len(email) > 320:
            email = None
        return UpstreamIdentity(connector=self.id, issuer=ISSUER, subject=user_id,
                                email=email, email_verified=email is not None, name=name)

    # -- HTTP -------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, hide: tuple[str, ...],
              params: Mapping[str, str] | None = None,
              data: Mapping[str, str] | None = None) -> dict[str, Any]:
        """One Graph call: the answer's JSON object, or ``ConnectorError``. ``hide``: values
        (besides the secret) that must not appear in a message."""
        where = f"Facebook {path}"
        timeout = self.config.timeout
        deadline = time.monotonic() + timeout
        try:
            # No redirects: Graph never sends one, and following it would carry the query
            # (a token, the app token) to wherever it points. An explicit ``auth`` keeps
            # requests from adding ~/.netrc credentials.
            with requests.request(method, self.config.graph + path, params=params, data=data,
                                  headers={"Accept": "application/json"}, timeout=timeout,
                                  allow_redirects=False, stream=True,
                                  auth=NoNetrc()) as response:
                status = response.status_code
                body = _read(response, where, deadline)
        except requests.Timeout:
            raise ConnectorError("unavailable", f"{where}: no answer within "
                                                f"{timeout:g} s") from None
        except requests.RequestException as exc:
            # ``from None``: requests' own message repeats the URL with its query.
            raise ConnectorError("unavailable", f"{where}: cannot connect "
                                                f"({root_cause(exc)})") from None
        if 300 <= status < 400:
            raise ConnectorError("unavailable", f"{where}: HTTP {status} (redirect)")
        try:
            answer = json.loads(body.decode("utf-8"))
        except ValueError:
            answer = None
        error = answer.get("error") if isinstance(answer, dict) else None
        if status >= 500 or not isinstance(answer, dict):
            raise ConnectorError("unavailable", f"{where}: HTTP {status}"
                                 + ("" if isinstance(answer, dict) else ", not a JSON object"))
        if isinstance(error, dict):
            raise ConnectorError(_kind(error), f"{where}: "
                                 + _describe(error, hide=hide, secret=self.config.app_secret))
        if status != 200:
            raise ConnectorError("unavailable", f"{where}: HTTP {status} without an error")
        return answer


def _read(response: requests.Response, where: str, deadline: float) -> bytes:
    """The body, at most ``MAX_BODY`` bytes (after decompression), within ``deadline``."""
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise ConnectorError("unavailable", f"{where}: answer larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(8192):
        size += len(chunk)
        if size > MAX_BODY:
            raise ConnectorError("unavailable", f"{where}: answer larger than {MAX_BODY} bytes")
        if time.monotonic() > deadline:
            # The read timeout is per chunk: a server dripping bytes is cut off here.
            raise requests.Timeout()
        chunks.append(chunk)
    return b"".join(chunks)


def _kind(error: Mapping[str, Any]) -> str:
    code = error.get("code")
    if error.get("is_transient") is True or code in _TRANSIENT:
        return "unavailable"
    if code == 190 or (code == 100 and error.get("error_subcode") == _CODE_USED):
        return "expired"
    return "invalid"


def _describe(error: Mapping[str, Any], *, hide: tuple[str, ...], secret: str) -> str:
    """``OAuthException 190/463: Session has expired ...`` with every secret value cut out."""
    code, sub = error.get("code"), error.get("error_subcode")
    message = str(error.get("message", ""))
    for value in (*hide, secret):
        if value:
            message = message.replace(value, "[hidden]")
    kind = _clip(str(error.get("type", "error")))
    return f"{kind} {_clip(str(code))}" + (f"/{_clip(str(sub))}" if sub else "") \
        + f": {_clip(message, 200)}"


def _clip(value: object, limit: int = 64) -> str:
    """A value from the upstream, safe to log: printable, short."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= limit else text[:limit] + "..."



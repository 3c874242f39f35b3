"""Generic OpenID Connect connector (type ``oidc``): the code flow of OIDC Core 1.0 §3.1
with PKCE (RFC 7636), Discovery 1.0 §4 and the authorization-response ``iss`` (RFC 9207).

Google, Microsoft, d-account, NTT East Business ID and Omakase are presets of this one
module in config (``[connectors.<id>] type = "oidc"``). What differs between them is data
on ``Config``: the issuer, the ``prompt`` that shows the account chooser when a user links
an account (SPEC §5), Google's second spelling of its issuer, Microsoft's per-tenant
issuers.

Discovery documents and JWKS are cached in process memory for ``cache_ttl`` seconds: it is
only a cache (every worker may fetch its own), and a signing key the cache does not know
makes one refetch, which is how an upstream key rotation shows up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, RSAKey

from .. import clock
from ..netutil import is_loopback
from ..settings import Settings, SettingsError
from .base import ConnectorError, Redirect, Started, UpstreamIdentity

TYPE = "oidc"

#: Signature algorithms an ID token may use. Only asymmetric ones: ``none`` proves nothing,
#: and HMAC with the client secret (OIDC Core §10.1) would let anyone holding that secret
#: (every replica of our config) mint identities.
ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                   "ES256", "ES384", "ES512", "EdDSA")
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

#: Largest answer read from an upstream (discovery, JWKS, token, userinfo). Microsoft's
#: JWKS, the largest of the presets, is about 20 KB.
MAX_BODY = 512 * 1024

#: Authorization request parameters ``extra_params`` may not replace.
_PROTOCOL_PARAMS = frozenset({
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method", "prompt", "request", "request_uri",
    "response_mode",
})
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_TEMPLATE = "{tenantid}"


@dataclass(frozen=True)
class Config:
    """``[connectors.<id>]`` of ``type = "oidc"``."""

    #: The upstream's issuer identifier, spelled exactly as its discovery document and ID
    #: tokens spell it (trailing slash included: d-account's is ``https://conf.uw.docomo.ne.jp/``).
    #: Discovery is read from ``{issuer without a trailing /}/.well-known/openid-configuration``.
    #: For Microsoft's multi-tenant endpoints, the ``common`` / ``organizations`` URL, whose
    #: discovery names ``multitenant_issuer`` instead.
    issuer: str = ""
    #: The client registered at the upstream for this provider.
    client_id: str = ""
    #: Its secret (``client_secret_basic``, or ``_post`` when discovery offers only that);
    #: empty: a public client (PKCE alone). Set it from the environment
    #: (``IDP_CONNECTOR_<ID>_CLIENT_SECRET``), never in a committed file.
    client_secret: str = field(default="", repr=False)
    #: ``client_secret_basic``, ``client_secret_post`` or ``none``; empty: the first of
    #: basic / post that discovery lists (basic when it lists nothing, OIDC Discovery §3).
    token_auth_method: str = ""
    #: Scopes asked for; ``openid`` is required.
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    #: ``prompt`` sent when the user is about to link this upstream account, so the upstream
    #: shows its account chooser instead of silently reusing its session (SPEC §5; Google
    #: and Microsoft ``select_account``). Empty: no prompt.
    link_prompt: str = "select_account"
    #: More authorization request parameters (Google ``hd``, Microsoft ``domain_hint``);
    #: the protocol's own parameters cannot be replaced.
    extra_params: Mapping[str, str] = field(default_factory=dict)
    #: Other spellings of ``issuer`` the upstream puts in ``iss`` (Google also issues
    #: ``accounts.google.com``). Identities always carry ``issuer`` itself, so one account
    #: stays one linked identity whichever spelling a token used.
    issuer_aliases: tuple[str, ...] = ()
    #: Microsoft multi-tenant endpoints: the issuer template their discovery names, such as
    #: ``https://login.microsoftonline.com/{tenantid}/v2.0``. A token's ``iss`` must be the
    #: template with its own ``tid`` claim; identities carry that per-tenant issuer.
    multitenant_issuer: str = ""
    #: With ``multitenant_issuer``: the only tenants (``tid``) accepted; empty: any tenant.
    allowed_tenants: tuple[str, ...] = ()
    #: ID token signature algorithms accepted; asymmetric ones only (``ASYMMETRIC_ALGS``).
    allowed_algs: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    #: Ask the userinfo endpoint when the ID token has no ``email`` or ``name`` (many
    #: upstreams, this provider included, release them only there in the code flow).
    use_userinfo: bool = True
    #: Seconds one HTTP exchange with the upstream may take, from connecting to the last byte.
    http_timeout: int = 10
    #: Seconds discovery and JWKS answers are reused.
    cache_ttl: int = 300
    #: Seconds of clock skew tolerated on ``exp``, ``iat`` and ``nbf``.
    leeway: int = 60

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.issuer:
            problems.append("issuer is required")
        if not self.client_id:
            problems.append("client_id is required")
        if "openid" not in self.scopes:
            problems.append("scopes must include openid")
        bad = [a for a in self.allowed_algs if a not in ASYMMETRIC_ALGS]
        if bad or not self.allowed_algs:
            problems.append(f"allowed_algs: a non-empty list of {', '.join(ASYMMETRIC_ALGS)} "
                            f"(not {', '.join(bad) or 'nothing'})")
        if self.token_auth_method not in ("", "client_secret_basic", "client_secret_post",
                                          "none"):
            problems.append("token_auth_method: client_secret_basic, client_secret_post, none "
                            "or empty (from discovery)")
        elif self.token_auth_method.startswith("client_secret") and not self.client_secret:
            problems.append(f"token_auth_method {self.token_auth_method} needs client_secret")
        if not isinstance(self.extra_params, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.extra_params.items()):
            problems.append("extra_params: a table of strings")
        else:
            taken = sorted(set(self.extra_params) & _PROTOCOL_PARAMS)
            if taken:
                problems.append(f"extra_params cannot set {', '.join(taken)}")
        if self.multitenant_issuer and self.multitenant_issuer.count(_TEMPLATE) != 1:
            problems.append(f"multitenant_issuer must contain {_TEMPLATE} once")
        if self.allowed_tenants and not self.multitenant_issuer:
            problems.append("allowed_tenants needs multitenant_issuer")
        for name in ("http_timeout", "cache_ttl"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.leeway < 0:
            problems.append("leeway must be 0 or more")
        if problems:
            raise ValueError("; ".join(problems))


def open(id: str, config: Config, settings: Settings) -> OidcConnector:
    """The live connector; ``SettingsError`` for URLs the environment does not allow."""
    allow_http = settings.environment != "production"
    problems = [f"connectors.{id}.{name}: {problem}"
                for name in ("issuer", "multitenant_issuer")
                if getattr(config, name)
                and (problem := url_problem(getattr(config, name), allow_http=allow_http))]
    if problems:
        raise SettingsError(problems)
    return OidcConnector(id, config, allow_http=allow_http)


def url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` may not be used to reach an upstream, or None. Always https, except
    plain http to a loopback address outside production (tests and ``make run``)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and allow_http and is_loopback(parts.hostname or ""):
        return None
    if allow_http:
        return f"must be https (or http on a loopback address), not {url!r}"
    return f"must be https, not {url!r}"


class _Cache:
    """Discovery documents and JWKS by URL, each for its own number of seconds."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            item = self._items.get(key)
        if item is None or item[0] <= time.monotonic():
            return None
        return item[1]

    def put(self, key: str, value: Any, ttl: int) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = _Cache()


@dataclass(frozen=True)
class _Jwk:
    raw: Mapping[str, Any]
    key: Any


class OidcConnector:
    """A ``base.CallbackConnector`` for one configured OpenID Provider."""

    def __init__(self, id: str, config: Config, *, allow_http: bool) -> None:
        self.id = id
        self.config = config
        self._allow_http = allow_http

    def __repr__(self) -> str:
        return f"OidcConnector({self.id!r}, issuer={self.config.issuer!r})"

    # -- the interface -------------------------------------------------------------------

    def start(self, *, state: str, nonce: str, callback_url: str, link: bool) -> Started:
        meta = self.discovery()
        # The verifier stays in the server-side login flow; only its hash travels.
        verifier = secrets.token_urlsafe(48)
        challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
        params = {
            **self.config.extra_params,
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": callback_url,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if link and self.config.link_prompt:
            params["prompt"] = self.config.link_prompt
        url = _with_query(meta["authorization_endpoint"], params)
        # The state's hash only, as the blueprint keeps it: the flow need not hold a value
        # that would let a callback be forged for it.
        return Started(Redirect(url), {"state": _digest(state), "nonce": nonce,
                                       "code_verifier": verifier})

    def finish(self, *, params: Mapping[str, str], kept: Mapping[str, Any],
               callback_url: str) -> UpstreamIdentity:
        state, nonce, verifier = (kept.get(k) for k in ("state", "nonce", "code_verifier"))
        if not all(isinstance(v, str) and v for v in (state, nonce, verifier)):
            raise ConnectorError("invalid", "nothing kept for this sign-in")
        if not _same(_digest(params.get("state") or ""), state):
            raise ConnectorError("invalid", "state does not match")
        meta = self.discovery()
        self._check_response_issuer(params.get("iss"), meta)
        if "error" in params:
            raise _authorization_error(params["error"])
        code = params.get("code")
        if not code:
            raise ConnectorError("invalid", "no code in the callback")
        tokens = self._exchange(meta, code, verifier, callback_url)
        claims = self.verify_id_token(tokens["id_token"], nonce=nonce)
        info: Mapping[str, Any] = {}
        if self.config.use_userinfo and not ("email" in claims and "name" in claims):
            info = self._userinfo(meta, tokens, claims["sub"])
        return self._identity(claims, info)

    # -- discovery and keys --------------------------------------------------------------

    def discovery(self) -> Mapping[str, Any]:
        """The upstream's discovery document (OIDC Discovery §4), cached."""
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = _CACHE.get(url)
        if doc is not None:
            return doc
        status, _, body = self._http("GET", url, what="discovery")
        if status != 200:
            raise ConnectorError("unavailable", f"discovery answered HTTP {status}")
        doc = _json_object(body, "discovery")
        # Discovery §4.3: the document must name the issuer it was fetched for, or its
        # endpoints and keys could be someone else's.
        expected = self.config.multitenant_issuer or self.config.issuer
        if doc.get("issuer") != expected:
            raise ConnectorError("unavailable", f"discovery names issuer "
                                 f"{_printable(doc.get('issuer'))}, not {expected}")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            self._check_endpoint(doc.get(name), name)
        if "userinfo_endpoint" in doc:
            self._check_endpoint(doc["userinfo_endpoint"], "userinfo_endpoint")
        _CACHE.put(url, doc, self.config.cache_ttl)
        return doc

    def _jwks(self, meta: Mapping[str, Any], *, fresh: bool = False) -> tuple[_Jwk, ...]:
        url = meta["jwks_uri"]
        keys = None if fresh else _CACHE.get(url)
        if keys is not None:
            return keys
        status, _, body = self._http("GET", url, what="JWKS")
        if status != 200:
            raise ConnectorError("unavailable", f"JWKS answered HTTP {status}")
        keys = _parse_jwks(_json_object(body, "JWKS"))
        _CACHE.put(url, keys, self.config.cache_ttl)
        return keys

    def _signing_keys(self, meta: Mapping[str, Any], kid: Any, alg: str) -> list[_Jwk]:
        found = _candidates(self._jwks(meta), kid, alg)
        if not found and kid is not None:
            # A key published after our copy of the JWKS: the upstream rotated. One refetch.
            found = _candidates(self._jwks(meta, fresh=True), kid, alg)
        return found

    # -- the ID token --------------------------------------------------------------------

    def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of ``id_token`` once OIDC Core §3.1.3.7 holds: signature by a key of
        the upstream's JWKS with an allowed algorithm, ``iss``, ``aud`` / ``azp``, ``exp``,
        ``iat``, ``nbf`` and ``nonce``. ``ConnectorError`` ``invalid``, or ``expired``."""
        meta = self.discovery()
        try:
            header = jws.extract_compact(id_token.encode("ascii")).headers()
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise ConnectorError("invalid", "the ID token is not a signed JWT") from None
        alg = header.get("alg")
        if alg not in self.config.allowed_algs:
            raise ConnectorError("invalid", f"ID token algorithm {_printable(alg)} "
                                 "is not accepted")
        claims: dict[str, Any] | None = None
        signer: _Jwk | None = None
        for jwk in self._signing_keys(meta, header.get("kid"), alg):
            try:
                claims = jwt.decode(id_token, jwk.key, algorithms=[alg]).claims
            except JoseError:
                continue
            signer = jwk
            break
        if claims is None or signer is None:
            raise ConnectorError("invalid", "the ID token signature does not verify with "
                                 "the upstream's keys")
        self._check_issuer(claims, signer)
        self._check_audience(claims)
        self._check_times(claims)
        if not _same(claims.get("nonce"), nonce):
            raise ConnectorError("invalid", "the ID token nonce does not match")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= 255:
            raise ConnectorError("invalid", "the ID token has no valid sub")
        return claims

    def _check_issuer(self, claims: Mapping[str, Any], signer: _Jwk) -> None:
        iss = claims.get("iss")
        if not self.config.multitenant_issuer:
            if iss != self.config.issuer and iss not in self.config.issuer_aliases:
                raise ConnectorError("invalid", f"the ID token issuer {_printable(iss)} is "
                                     f"not {self.config.issuer}")
            return
        tid = claims.get("tid")
        if not isinstance(tid, str) or not _TENANT_ID.fullmatch(tid):
            raise ConnectorError("invalid", "the ID token has no valid tid")
        if self.config.allowed_tenants and tid not in self.config.allowed_tenants:
            raise ConnectorError("invalid", f"tenant {tid} is not allowed")
        if iss != self.config.multitenant_issuer.replace(_TEMPLATE, tid):
            raise ConnectorError("invalid", f"the ID token issuer {_printable(iss)} is not "
                                 f"the issuer of its tenant {tid}")
        # Microsoft marks which issuer a key may sign for (its JWKS ``issuer`` member):
        # a key of one cloud or tenant must not vouch for another's tokens.
        key_issuer = signer.raw.get("issuer")
        if isinstance(key_issuer, str) and key_issuer.replace(_TEMPLATE, tid) != iss:
            raise ConnectorError("invalid", "the signing key is not one of the token's issuer")

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or self.config.client_id not in audiences:
            raise ConnectorError("invalid", "the ID token is not for this client")
        azp = claims.get("azp")
        # Core §3.1.3.7 (4, 5): a token for several audiences must name us as its holder.
        if (len(audiences) > 1 or azp is not None) and azp != self.config.client_id:
            raise ConnectorError("invalid", "the ID token was issued to another party (azp)")

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now, leeway = clock.now(), self.config.leeway
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _number(exp) or not _number(iat) or (nbf is not None and not _number(nbf)):
            raise ConnectorError("invalid", "the ID token lacks a valid exp or iat")
        if now >= exp + leeway:
            raise ConnectorError("expired", "the ID token has expired")
        if iat > now + leeway or (nbf is not None and nbf > now + leeway):
            raise ConnectorError("invalid", "the ID token is not valid yet (clock skew?)")

    # -- the back channel ----------------------------------------------------------------

    def _check_response_issuer(self, iss: str | None, meta: Mapping[str, Any]) -> None:
        """RFC 9207: the authorization response names who sent it (mix-up defence)."""
        if iss is None:
            if meta.get("authorization_response_iss_parameter_supported") is True:
                raise ConnectorError("invalid", "the callback lacks iss (RFC 9207)")
            return
        if self.config.multitenant_issuer:
            prefix, _, suffix = self.config.multitenant_issuer.partition(_TEMPLATE)
            pattern = re.escape(prefix) + "(" + _TENANT_ID.pattern + ")" + re.escape(suffix)
            ok = re.fullmatch(pattern, iss) is not None
        else:
            ok = iss == self.config.issuer or iss in self.config.issuer_aliases
        if not ok:
            raise ConnectorError("invalid", "the callback comes from another issuer")

    def _auth_method(self, meta: Mapping[str, Any]) -> str:
        if self.config.token_auth_method:
            return self.config.token_auth_method
        if not self.config.client_secret:
            return "none"
        offered = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        for method in ("client_secret_basic", "client_secret_post"):
            if method in offered:
                return method
        raise ConnectorError("unavailable", "the upstream offers no client-secret "
                             "authentication at its token endpoint")

    def _exchange(self, meta: Mapping[str, Any], code: str, verifier: str,
                  callback_url: str) -> dict[str, Any]:
        """The token request (OIDC Core §3.1.3.1); never follows a redirect."""
        data = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": callback_url, "code_verifier": verifier}
        headers = {}
        method = self._auth_method(meta)
        if method == "client_secret_basic":
            # RFC 6749 §2.3.1: both parts form-encoded before base64.
            pair = f"{quote(self.config.client_id, safe='')}:" \
                   f"{quote(self.config.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif method == "client_secret_post":
            data.update(client_id=self.config.client_id,
                        client_secret=self.config.client_secret)
        else:
            data["client_id"] = self.config.client_id
        status, _, body = self._http("POST", meta["token_endpoint"], what="token endpoint",
                                     data=data, headers=headers)
        if status >= 500 or status in (408, 429):
            raise ConnectorError("unavailable", f"token endpoint answered HTTP {status}")
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ConnectorError("unavailable", f"token endpoint answered HTTP {status} "
                                 "without a JSON object")
        if status != 200:
            error = doc.get("error")
            # invalid_grant: the code expired or was used already (a replayed callback).
            kind = "expired" if error == "invalid_grant" else "invalid"
            raise ConnectorError(kind, f"token endpoint refused the code: HTTP {status} "
                                 f"{_printable(error)}")
        if not isinstance(doc.get("id_token"), str):
            raise ConnectorError("invalid", "the token response has no ID token")
        return doc

    def _userinfo(self, meta: Mapping[str, Any], tokens: Mapping[str, Any],
                  sub: str) -> Mapping[str, Any]:
        endpoint, access_token = meta.get("userinfo_endpoint"), tokens.get("access_token")
        if not endpoint or not isinstance(access_token, str) or \
                str(tokens.get("token_type", "")).lower() != "bearer":
            return {}
        status, content_type, body = self._http(
            "GET", endpoint, what="userinfo", headers={"Authorization": "Bearer " + access_token})
        if status != 200:
            raise ConnectorError("unavailable", f"userinfo answered HTTP {status}")
        if not content_type.split(";")[0].strip().lower() == "application/json":
            raise ConnectorError("unavailable", "userinfo is not plain JSON (signed or "
                                 "encrypted userinfo is not supported)")
        info = _json_object(body, "userinfo")
        # Core §5.3.2: a userinfo answer about someone else must not be used.
        if info.get("sub") != sub:
            raise ConnectorError("invalid", "userinfo describes another subject")
        return info

    def _identity(self, claims: Mapping[str, Any], info: Mapping[str, Any]) -> UpstreamIdentity:
        # The address and whether it is verified come from the same statement.
        source = claims if isinstance(claims.get("email"), str) else info
        email = source.get("email") if isinstance(source.get("email"), str) else None
        verified = email is not None and source.get("email_verified") in (True, "true")
        name = next((v for v in (claims.get("name"), info.get("name"))
                     if isinstance(v, str) and v), None)
        amr = claims.get("amr")
        issuer = claims["iss"] if self.config.multitenant_issuer else self.config.issuer
        return UpstreamIdentity(
            connector=self.id, issuer=issuer, subject=claims["sub"], email=email,
            email_verified=verified, name=name,
            amr=tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
        )

    # -- HTTP ----------------------------------------------------------------------------

    def _check_endpoint(self, url: Any, name: str) -> None:
        if not isinstance(url, str) or url_problem(url, allow_http=self._allow_http):
            raise ConnectorError("unavailable", f"discovery {name} {_printable(url)} "
                                 "is not an allowed URL")

    def _http(self, method: str, url: str, *, what: str,
              headers: Mapping[str, str] | None = None, **kwargs: Any) -> tuple[int, str, bytes]:
        """One exchange: no redirects, at most ``MAX_BODY`` bytes, about ``http_timeout`` long.
        Failures become ``unavailable`` naming ``what``, never the request (it may carry
        the code or the client secret)."""
        self._check_endpoint(url, what)
        timeout = self.config.http_timeout
        deadline = time.monotonic() + timeout
        # identity: a compressed answer could inflate far beyond MAX_BODY in one chunk.
        sent = {"Accept": "application/json", "Accept-Encoding": "identity",
                **(headers or {})}
        try:
            with requests.request(method, url, headers=sent, timeout=timeout, stream=True,
                                  allow_redirects=False, **kwargs) as response:
                body = bytearray()
                for chunk in response.iter_content(16384):
                    body += chunk
                    if len(body) > MAX_BODY:
                        raise ConnectorError("unavailable", f"{what}: answer too large")
                    if time.monotonic() > deadline:
                        raise ConnectorError("unavailable", f"{what}: answer too slow")
                status = response.status_code
                content_type = response.headers.get("Content-Type", "")
        except requests.RequestException as exc:
            raise ConnectorError("unavailable", f"{what}: {type(exc).__name__}") from None
        if 300 <= status < 400:
            raise ConnectorError("unavailable", f"{what} answered a redirect (HTTP {status}), "
                                 "not followed")
        return status, content_type, bytes(body)


def clear_cache() -> None:
    """Forget every cached discovery document and JWKS (tests, operators' shell)."""
    _CACHE.clear()


def _parse_jwks(doc: Mapping[str, Any]) -> tuple[_Jwk, ...]:
    """The signature keys of a JWKS: asymmetric only, RSA of 2048 bits or more. Keys that
    cannot be read are skipped (RFC 7517 §5), as are symmetric and encryption keys."""
    raw_keys = doc.get("keys")
    if not isinstance(raw_keys, list):
        raise ConnectorError("unavailable", "the JWKS has no keys")
    found = []
    for raw in raw_keys:
        if not isinstance(raw, dict) or raw.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if raw.get("use", "sig") != "sig":
            continue
        try:
            key = JWKRegistry.import_key(raw)
        except (JoseError, ValueError, TypeError):
            continue
        if isinstance(key, RSAKey) and key.raw_value.key_size < 2048:
            continue
        found.append(_Jwk(raw, key))
    return tuple(found)


def _candidates(keys: tuple[_Jwk, ...], kid: Any, alg: str) -> list[_Jwk]:
    """The keys that may have made a signature with ``alg`` (and ``kid``, when the token
    names one; d-account's JWKS has a single key without a kid)."""
    return [k for k in keys
            if (kid is None or k.raw.get("kid") == kid)
            and k.raw.get("alg") in (None, alg)
            and _fits(alg, k.raw)]


def _fits(alg: str, raw: Mapping[str, Any]) -> bool:
    kty = raw.get("kty")
    if alg[:2] in ("RS", "PS"):
        return kty == "RSA"
    if alg in _EC_CURVES:
        return kty == "EC" and raw.get("crv") == _EC_CURVES[alg]
    return alg == "EdDSA" and kty == "OKP" and raw.get("crv") in ("Ed25519", "Ed448")


def _authorization_error(error: str) -> ConnectorError:
    """An error response of the authorization endpoint (RFC 6749 §4.1.2.1)."""
    if error == "access_denied":
        return ConnectorError("denied", "the user declined at the upstream")
    if error in ("server_error", "temporarily_unavailable"):
        return ConnectorError("unavailable", f"the upstream answered {error}")
    return ConnectorError("invalid", f"the upstream answered {_printable(error)}")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ConnectorError("unavailable", f"{what} is not a JSON object")
    return doc


def _same(given: Any, expected: str) -> bool:
    """Constant-time equality of a received string with what we sent."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _printable(value: Any) -> str:
    """An upstream's value for a log line: short, and no control characters."""
    text = value if isinstance(value, str) else repr(value)
    return repr(re.sub(r"[^\x20-\x7e]", "?", text)[:80])


def _digest(value: str) -> str:
    return _b64url(hashlib.sha256(value.encode()).digest())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

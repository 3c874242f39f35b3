"""SAML 2.0 service provider for a contract's ADFS (type ``saml``): the Web Browser SSO
profile (SAML Profiles §4.1), AuthnRequest by HTTP-Redirect and Response by HTTP-POST
(SAML Bindings §3.4, §3.5), with pysaml2 and the ``xmlsec1`` program.

Each contract with ADFS settings is its own service provider: entity ID
``{issuer}/ad/{connection_id}/saml``, Assertion Consumer Service
``{issuer}/ad/{connection_id}/saml/acs`` (``sp_metadata_xml`` is what the owner imports into
ADFS as a relying party trust). ``for_contract`` builds it from ``contract.ad_settings``.

What a Response must be to become an identity (``finish``); pysaml2 checks most of it and
this module checks all of it again on pysaml2's verified objects, because pysaml2 skips
some checks when an element is absent (Recipient, Destination, AudienceRestriction):

- one ``<Assertion>``, signed by a key of the IdP's metadata with SHA-2 (a signed Response
  around an unsigned assertion is refused), no duplicate ``ID`` in the document, no
  assertion or signature anywhere else (signature wrapping), no DTD;
- Issuer the IdP's entity ID; Audience our entity ID (in every AudienceRestriction);
  Destination and the bearer Recipient our ACS; InResponseTo, on the Response and on the
  bearer confirmation, the ID of the AuthnRequest ``start`` sent (no unsolicited
  responses); NotBefore / NotOnOrAfter against the app clock, ``clock_skew`` either way;
- the assertion ID is used once: remembered in the ephemeral store until it expires.

Time: pysaml2 reads the system clock (``saml2.time_util``) and cannot be given another
without patching it for every thread. Its checks stay (with the same skew) and the ones
here use ``idp.clock``, so a test that moves the app clock sees the app's verdict. In
production the two clocks are one.

The identity: issuer = the IdP's entity ID, subject = the assertion's NameID. ADFS must be
configured to send a persistent NameID (a claim rule "Transform an Incoming Claim" to
Name ID, format Persistent Identifier, e.g. from objectGUID); a transient one changes at
every sign-in, so it is refused. No NameIDPolicy is sent: ADFS answers a policy its claim
rules cannot meet with an error instead of the NameID it has. E-mail and name come from
the claims ADFS sends (``email_claims``, ``name_claims``); the e-mail is never
``email_verified``: the directory's administrator asserts it, nobody proved the mailbox.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import re
import socket
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ParseError

import requests
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from flask import current_app

from .. import clock
from ..ad_settings import MAX_XML, parse_metadata
from ..netutil import is_loopback
from ..settings import Settings, SettingsError
from .base import ConnectorError, Redirect, Started, UpstreamIdentity

with warnings.catch_warnings():
    # pysaml2 7.5 names cryptography's CFB mode where cryptography now warns; not used here.
    warnings.filterwarnings("ignore", message="CFB has been moved")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, samlp
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.metadata import entity_descriptor
    from saml2.response import StatusError, authn_response
    from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT, SCM_BEARER
    from saml2.sigver import get_xmlsec_binary
    from saml2.validate import ResponseLifetimeExceed
    from saml2.xmldsig import SIG_RSA_SHA256

TYPE = "saml"

_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
_DS = "http://www.w3.org/2000/09/xmldsig#"

#: The claims ADFS sends as attributes (AD FS claim descriptions).
CLAIM_EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
CLAIM_UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
CLAIM_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
CLAIM_COMMON_NAME = "http://schemas.xmlsoap.org/claims/CommonName"
CLAIM_DISPLAY_NAME = "http://schemas.microsoft.com/identity/claims/displayname"

#: A Response is a few kilobytes (ADFS: one assertion, a dozen claims); the cap bounds the
#: cost of parsing and of the xmlsec1 runs.
MAX_RESPONSE = 256 * 1024

#: Signature and digest algorithms accepted on assertions and Responses: SHA-2 only (ADFS
#: signs with SHA-256 unless a relying party trust is switched to SHA-1, which is broken
#: for signatures).
SIGNATURE_ALGS = frozenset({
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
})
DIGEST_ALGS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
})

#: AuthnContextClassRef -> amr (RFC 8176). Others (Windows integrated, certificates) say
#: nothing an RP could rely on, so they give no amr.
_AMR = {
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport": ("pwd",),
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Password": ("pwd",),
    "http://schemas.microsoft.com/claims/multipleauthn": ("mfa",),
}
#: Top-level or second-level status codes that mean the user did not (or could not) sign
#: in at the IdP: the "denied" page, not "invalid".
_DENIED = frozenset({
    samlp.STATUS_RESPONDER, samlp.STATUS_AUTHN_FAILED, samlp.STATUS_REQUEST_DENIED,
    samlp.STATUS_NO_PASSIVE,
})
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}$")


def entity_id_for(issuer: str, connection_id: str) -> str:
    """Our SP entity ID for a contract's ADFS (the Audience ADFS must name)."""
    return f"{issuer.rstrip('/')}/ad/{connection_id}/saml"


def acs_url_for(issuer: str, connection_id: str) -> str:
    """Our Assertion Consumer Service (HTTP-POST) for a contract's ADFS."""
    return entity_id_for(issuer, connection_id) + "/acs"


@dataclass(frozen=True)
class Config:
    """A SAML 2.0 IdP (ADFS) and this provider as its service provider."""

    #: The IdP's SAML 2.0 metadata: an ``EntityDescriptor`` with an ``IDPSSODescriptor``
    #: (ADFS: ``/FederationMetadata/2007-06/FederationMetadata.xml``). One of this or
    #: ``idp_metadata_url``.
    idp_metadata_xml: str = field(default="", repr=False)
    #: Where to fetch that metadata: https (http only to a loopback address outside
    #: production), no redirects, at most ``ad_settings.MAX_XML`` bytes, cached
    #: ``metadata_cache_ttl`` seconds.
    idp_metadata_url: str = ""
    #: Our SP entity ID: the Audience the IdP must name (``entity_id_for``).
    sp_entity_id: str = ""
    #: Our Assertion Consumer Service URL (HTTP-POST): the Destination and the bearer
    #: Recipient the IdP must name (``acs_url_for``).
    acs_url: str = ""
    #: PEM private key and certificate files to sign AuthnRequests (RSA-SHA256, on the
    #: Redirect URL); both or neither. The certificate is then in ``sp_metadata_xml``.
    #: ADFS does not require signed requests.
    sp_key_file: str = ""
    sp_cert_file: str = ""
    #: Send ``ForceAuthn="true"`` when the user is about to link the account, so ADFS asks
    #: for the credentials instead of reusing its session (SPEC §5).
    force_authn_on_link: bool = True
    #: Seconds of clock difference tolerated on NotBefore / NotOnOrAfter.
    clock_skew: int = 180
    #: Seconds fetched metadata is reused.
    metadata_cache_ttl: int = 300
    #: Seconds fetching the metadata may take, from connecting to the last byte.
    http_timeout: int = 10
    #: Claims read for the e-mail address, first present wins.
    email_claims: tuple[str, ...] = (CLAIM_EMAIL, CLAIM_UPN)
    #: Claims read for the display name, first present wins.
    name_claims: tuple[str, ...] = (CLAIM_DISPLAY_NAME, CLAIM_COMMON_NAME, CLAIM_NAME)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if bool(self.idp_metadata_xml) == bool(self.idp_metadata_url):
            problems.append("one of idp_metadata_xml or idp_metadata_url is required")
        for name in ("sp_entity_id", "acs_url"):
            if not getattr(self, name):
                problems.append(f"{name} is required")
        if bool(self.sp_key_file) != bool(self.sp_cert_file):
            problems.append("sp_key_file and sp_cert_file go together")
        for name in ("metadata_cache_ttl", "http_timeout"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.clock_skew < 0:
            problems.append("clock_skew must be 0 or more")
        if problems:
            raise ValueError("; ".join(problems))


def open(id: str, config: Config, settings: Settings) -> SamlConnector:
    """The live connector; ``SettingsError`` for what this environment cannot use."""
    production = settings.environment == "production"
    problems = []
    if config.idp_metadata_url:
        problem = _url_problem(config.idp_metadata_url, allow_http=not production)
        if problem:
            problems.append(f"{id}.idp_metadata_url {problem}")
    if config.idp_metadata_xml:
        try:
            parse_metadata(config.idp_metadata_xml)
        except ValueError as exc:
            problems.append(f"{id}.idp_metadata_xml: {exc}")
    for name in ("sp_key_file", "sp_cert_file"):
        path = getattr(config, name)
        if path:
            try:
                Path(path).read_bytes()  # ``open`` is this module's; pathlib reads the file
            except OSError as exc:
                problems.append(f"{id}.{name}: cannot read it ({type(exc).__name__})")
    try:
        _xmlsec_binary()
    except Exception:
        problems.append("the xmlsec1 program is not installed (SAML needs it)")
    if problems:
        raise SettingsError(problems)
    return SamlConnector(id, config, production=production)


def for_contract(contract: Any, settings: Settings) -> SamlConnector:
    """The connector of a contract whose ``ad_settings`` are ADFS (``idp.ad_settings``):
    its id is the contract's connection ID. Settings this environment cannot use (an http
    metadata URL in production, XML that no longer parses) are ``unavailable``."""
    ad = contract.ad_settings or {}
    connection_id = contract.connection_id
    if ad.get("type") != "adfs" or not connection_id:
        raise ValueError("the contract has no ADFS settings")
    try:
        config = Config(
            idp_metadata_xml=ad.get("metadata_xml") or "",
            idp_metadata_url=ad.get("metadata_url") or "",
            sp_entity_id=entity_id_for(settings.issuer, connection_id),
            acs_url=acs_url_for(settings.issuer, connection_id),
        )
        return open(connection_id, config, settings)
    except (ValueError, SettingsError) as exc:
        raise ConnectorError("unavailable", f"ADFS settings of {connection_id} unusable: "
                             f"{type(exc).__name__}") from None


@dataclass(frozen=True)
class IdentityProvider:
    """The IdP as its metadata describes it."""

    entity_id: str
    metadata_xml: str = field(repr=False)


class SamlConnector:
    """A ``base.CallbackConnector`` for one SAML 2.0 IdP."""

    def __init__(self, id: str, config: Config, *, production: bool) -> None:
        self.id = id
        self.config = config
        self._production = production

    def __repr__(self) -> str:
        return f"SamlConnector({self.id!r}, entity_id={self.entity_id!r})"

    # -- what the blueprint serves and routes --------------------------------------------

    @property
    def entity_id(self) -> str:
        """Our SP entity ID."""
        return self.config.sp_entity_id

    @property
    def acs_url(self) -> str:
        """Our Assertion Consumer Service URL: where ADFS POSTs ``SAMLResponse``."""
        return self.config.acs_url

    @cached_property
    def sp_metadata_xml(self) -> str:
        """Our SP metadata, for the owner to import into ADFS (a relying party trust):
        entity ID, the ACS (HTTP-POST), ``WantAssertionsSigned``, persistent NameID, and
        the request-signing certificate when there is one."""
        descriptor = entity_descriptor(self._sp_config(None))
        # pysaml2 lists every algorithm xmlsec1 knows (MD5 and SHA-1 included) as
        # "supported"; that would only invite ADFS to use a weak one.
        descriptor.extensions = None
        return descriptor.to_string().decode("utf-8")

    # -- the interface -------------------------------------------------------------------

    def start(self, *, state: str, nonce: str, callback_url: str, link: bool) -> Started:
        """An AuthnRequest to the IdP's HTTP-Redirect SSO endpoint, RelayState ``state``.
        ``callback_url`` is not used: the ACS is fixed per contract (``acs_url``), as the
        relying party trust in ADFS names it."""
        idp = self.idp()
        client = Saml2Client(config=self._sp_config(idp))
        extra = {"force_authn": "true"} if link and self.config.force_authn_on_link else {}
        signs = bool(self.config.sp_key_file)
        try:
            request_id, info = client.prepare_for_authenticate(
                entityid=idp.entity_id, relay_state=state, binding=BINDING_HTTP_REDIRECT,
                sign=signs, sigalg=SIG_RSA_SHA256 if signs else None, **extra)
        except Exception as exc:  # pysaml2 raises bare Exceptions for metadata it lacks
            raise ConnectorError("unavailable", "no HTTP-Redirect SSO endpoint in the IdP "
                                 f"metadata ({type(exc).__name__})") from None
        location = dict(info["headers"]).get("Location", "")
        problem = _url_problem(location, allow_http=not self._production)
        if problem:
            raise ConnectorError("unavailable", f"the IdP's SSO endpoint {problem}")
        return Started(Redirect(location), {"request_id": request_id, "state": state})

    def finish(self, *, params: Mapping[str, str], kept: Mapping[str, Any],
               callback_url: str) -> UpstreamIdentity:
        """Verify the POSTed ``SAMLResponse`` against the request ``start`` kept."""
        request_id, state = kept.get("request_id"), kept.get("state")
        if not (isinstance(request_id, str) and request_id and isinstance(state, str)
                and state):
            raise ConnectorError("invalid", "nothing kept for this sign-in")
        if not _same(params.get("RelayState"), state):
            raise ConnectorError("invalid", "RelayState does not match")
        xml = _decode(params.get("SAMLResponse"))
        _check_shape(_parse(xml))
        idp = self.idp()
        response = self._verified(xml, idp, request_id)
        assertion = response.assertion
        until = self._check(response.response, assertion, idp, request_id)
        identity = self._identity(assertion, idp)
        self._use_once(assertion.id, idp, until)
        return identity

    # -- metadata ------------------------------------------------------------------------

    def idp(self) -> IdentityProvider:
        """The IdP's metadata, parsed safely (no DTD, size-capped); fetched ones cached."""
        url = self.config.idp_metadata_url
        if not url:
            return _idp_of(self.config.idp_metadata_xml)
        cached = _CACHE.get(url)
        if cached is not None:
            return cached
        idp = _idp_of(self._fetch(url))
        _CACHE.put(url, idp, self.config.metadata_cache_ttl)
        return idp

    def _fetch(self, url: str) -> str:
        problem = _url_problem(url, allow_http=not self._production)
        if problem:
            raise ConnectorError("unavailable", f"metadata URL {problem}")
        if self._production:
            # The URL is the contract owner's input: keep it off our own network (SSRF).
            _refuse_internal_address(urlsplit(url).hostname or "")
        timeout = self.config.http_timeout
        deadline = time.monotonic() + timeout
        # identity: a compressed answer could inflate far beyond MAX_XML in one chunk.
        headers = {"Accept": "application/samlmetadata+xml, application/xml, text/xml",
                   "Accept-Encoding": "identity"}
        try:
            # No redirects: each hop would need the same scheme and address checks.
            with requests.get(url, headers=headers, timeout=timeout, stream=True,
                              allow_redirects=False) as answer:
                body = bytearray()
                for chunk in answer.iter_content(16384):
                    body += chunk
                    if len(body) > MAX_XML:
                        raise ConnectorError("unavailable", "metadata: answer too large")
                    if time.monotonic() > deadline:
                        raise ConnectorError("unavailable", "metadata: answer too slow")
                status = answer.status_code
        except requests.RequestException as exc:
            raise ConnectorError("unavailable", f"metadata: {type(exc).__name__}") from None
        if status != 200:
            raise ConnectorError("unavailable", f"metadata answered HTTP {status}")
        try:
            return bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ConnectorError("unavailable", "metadata is not UTF-8") from None

    # -- pysaml2 -------------------------------------------------------------------------

    def _sp_config(self, idp: IdentityProvider | None) -> SPConfig:
        """pysaml2's configuration of our SP, with the IdP's metadata when given."""
        sp: dict[str, Any] = {
            "endpoints": {"assertion_consumer_service": [(self.acs_url, BINDING_HTTP_POST)]},
            "want_assertions_signed": True,
            "want_response_signed": False,
            "authn_requests_signed": bool(self.config.sp_key_file),
            "allow_unsolicited": False,
            # Published in our metadata only: requests carry no NameIDPolicy (module doc).
            "name_id_format": [NAMEID_FORMAT_PERSISTENT],
        }
        values: dict[str, Any] = {
            "entityid": self.entity_id,
            "xmlsec_binary": _xmlsec_binary(),
            "service": {"sp": sp},
            "accepted_time_diff": self.config.clock_skew,
            # Never the certificate a message carries in its own KeyInfo.
            "only_use_keys_in_metadata": True,
            "allow_unknown_attributes": True,
            "delete_tmpfiles": True,
        }
        if self.config.sp_key_file:
            values["key_file"] = self.config.sp_key_file
            values["cert_file"] = self.config.sp_cert_file
        if idp is not None:
            values["metadata"] = {"inline": [idp.metadata_xml]}
        conf = SPConfig()
        try:
            conf.load(values)
        except Exception as exc:  # pysaml2's metadata loader raises anything
            raise ConnectorError("unavailable", "pysaml2 cannot load the IdP metadata "
                                 f"({type(exc).__name__})") from None
        return conf

    def _verified(self, xml: str, idp: IdentityProvider, request_id: str) -> Any:
        """pysaml2's AuthnResponse once it verified signatures, status and conditions.

        pysaml2's log lines may name what it refused; its exception texts can hold the whole
        document, so only their class names reach ours."""
        response = authn_response(
            self._sp_config(idp), [self.acs_url],
            outstanding_queries={request_id: ""}, timeslack=self.config.clock_skew,
            asynchop=True, allow_unsolicited=False, want_assertions_signed=True,
            # Any non-empty conv_info makes pysaml2 compare Recipient with the ACS.
            conv_info={"acs": self.acs_url},
        )
        try:
            response.loads(xml, False, origxml=xml)
            verified = response.verify()
        except StatusError:
            raise _status_error(response.response) from None
        except ResponseLifetimeExceed:
            raise ConnectorError("expired", "the assertion expired") from None
        except Exception as exc:  # signature, wrapping, audience, InResponseTo, schema ...
            raise ConnectorError("invalid", f"pysaml2 refused the response "
                                 f"({type(exc).__name__})") from None
        # verify() answers None, without looking at the assertion, for a wrong Destination
        # or IssueInstant; an assertion is set only when its checks all passed.
        if verified is None or response.assertion is None:
            raise ConnectorError("invalid", "pysaml2 refused the response (Destination, "
                                 "IssueInstant or assertion)")
        return response

    # -- our own checks, on pysaml2's verified objects -----------------------------------

    def _check(self, message: Any, assertion: Any, idp: IdentityProvider,
               request_id: str) -> float:
        """SAML Profiles §4.1.4.3 again, with the app clock; the time until which the
        assertion must not be accepted again."""
        now = clock.now()
        skew = self.config.clock_skew
        if message.destination != self.acs_url:
            raise ConnectorError("invalid", "Destination is not our ACS")
        if message.in_response_to != request_id:
            raise ConnectorError("invalid", "InResponseTo is not our request")
        if message.issuer is not None and _text(message.issuer) != idp.entity_id:
            raise ConnectorError("invalid", "the Response's Issuer is not the IdP")
        if assertion.issuer is None or _text(assertion.issuer) != idp.entity_id:
            raise ConnectorError("invalid", "the assertion's Issuer is not the IdP")
        if assertion.signature is None:
            raise ConnectorError("invalid", "the assertion is not signed")
        _check_algorithms(assertion.signature)
        if message.signature is not None:
            _check_algorithms(message.signature)

        conditions = assertion.conditions
        if conditions is None or not conditions.audience_restriction:
            raise ConnectorError("invalid", "the assertion names no audience")
        # Each AudienceRestriction must be met (SAML Core §2.5.1.4), not just one of them.
        for restriction in conditions.audience_restriction:
            if self.entity_id not in {_text(a) for a in restriction.audience}:
                raise ConnectorError("invalid", "the assertion is for another audience")
        not_before = _instant(conditions.not_before)
        if not_before is not None and now + skew < not_before:
            raise ConnectorError("invalid", "the assertion is not valid yet")
        not_after = _instant(conditions.not_on_or_after)
        if not_after is not None and now - skew >= not_after:
            raise ConnectorError("expired", "the assertion expired (Conditions)")

        if assertion.subject is None:
            raise ConnectorError("invalid", "the assertion has no Subject")
        ours = [sc.subject_confirmation_data for sc in assertion.subject.subject_confirmation
                if sc.method == SCM_BEARER and sc.subject_confirmation_data is not None
                and sc.subject_confirmation_data.recipient == self.acs_url
                and sc.subject_confirmation_data.in_response_to == request_id]
        if not ours:
            raise ConnectorError("invalid", "no bearer confirmation for our ACS and request")
        deadlines = [_instant(data.not_on_or_after) for data in ours]
        if None in deadlines:
            raise ConnectorError("invalid", "a bearer confirmation without NotOnOrAfter")
        confirmed = max(d for d in deadlines if d is not None)
        if now - skew >= confirmed:
            raise ConnectorError("expired", "the assertion expired (SubjectConfirmation)")
        return max(confirmed, not_after or confirmed) + skew

    def _use_once(self, assertion_id: str, idp: IdentityProvider, until: float) -> None:
        """Replay: an assertion is accepted once, whichever worker receives it again."""
        digest = hashlib.sha256(f"{idp.entity_id}\n{assertion_id}".encode()).hexdigest()
        ttl = max(int(until - clock.now()) + 1, 1)
        if not current_app.extensions["idp.store"].add(f"saml:assertion:{digest}", {}, ttl):
            raise ConnectorError("expired", "the assertion was used already")

    def _identity(self, assertion: Any, idp: IdentityProvider) -> UpstreamIdentity:
        name_id = assertion.subject.name_id
        subject = _text(name_id) if name_id is not None else ""
        if not subject or len(subject) > 1024:
            raise ConnectorError("invalid", "the assertion has no usable NameID")
        if name_id.format == NAMEID_FORMAT_TRANSIENT:
            raise ConnectorError("invalid", "a transient NameID cannot identify an account "
                                 "(ADFS must send a persistent one)")
        claims = _claims(assertion)
        email = next((v for c in self.config.email_claims for v in claims.get(c, ())
                      if _EMAIL.match(v)), None)
        name = next((v[:200] for c in self.config.name_claims for v in claims.get(c, ())), None)
        amr: tuple[str, ...] = ()
        for statement in assertion.authn_statement:
            context = statement.authn_context
            if context is not None and context.authn_context_class_ref is not None:
                amr = _AMR.get(_text(context.authn_context_class_ref), ())
        return UpstreamIdentity(connector=self.id, issuer=idp.entity_id, subject=subject,
                                email=email, email_verified=False, name=name, amr=amr)


class _Cache:
    """Fetched IdP metadata by URL, for a few minutes: a cache only (each worker may fetch
    its own), so that every sign-in does not fetch it twice."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, IdentityProvider]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> IdentityProvider | None:
        with self._lock:
            item = self._items.get(key)
        if item is None or item[0] <= time.monotonic():
            return None
        return item[1]

    def put(self, key: str, value: IdentityProvider, ttl: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if v[0] > now}
            self._items[key] = (now + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = _Cache()


def clear_cache() -> None:
    """Forget every fetched metadata document (tests, operators' shell)."""
    _CACHE.clear()


@functools.cache
def _xmlsec_binary() -> str:
    return get_xmlsec_binary()


def _idp_of(xml: str) -> IdentityProvider:
    try:
        # defusedxml without DTDs or entities, size-capped (idp.ad_settings).
        entity_id = parse_metadata(xml)
    except ValueError as exc:
        raise ConnectorError("unavailable", f"IdP metadata unusable: {exc}") from None
    return IdentityProvider(entity_id, xml)


def _url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` may not be used to reach the IdP, or None: https, or plain http to a
    loopback address outside production (tests and ``make run``)."""
    parts = urlsplit(url)
    if parts.username or parts.password or any(c.isspace() for c in url):
        return "must not carry credentials or spaces"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and allow_http and is_loopback(parts.hostname or ""):
        return None
    return "must be https (or http on a loopback address)" if allow_http else "must be https"


def _refuse_internal_address(host: str) -> None:
    try:
        infos = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except OSError:
        raise ConnectorError("unavailable", "metadata host does not resolve") from None
    for info in infos:
        if not ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_global:
            raise ConnectorError("unavailable", "metadata host is not a public address")


def _decode(value: Any) -> str:
    """The POST binding's base64 ``SAMLResponse`` (SAML Bindings §3.5.4), size-capped."""
    if not isinstance(value, str) or not value:
        raise ConnectorError("invalid", "no SAMLResponse")
    if len(value) > MAX_RESPONSE * 4 // 3 + 1024:
        raise ConnectorError("invalid", "SAMLResponse too large")
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise ConnectorError("invalid", "SAMLResponse is not base64 UTF-8 XML") from None


def _parse(xml: str) -> Element:
    """The document, parsed before pysaml2 or xmlsec1 see it: no DTD (so no entity
    expansion and no external fetch by xmlsec1), no entities."""
    try:
        return SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except (ParseError, DefusedXmlException):
        raise ConnectorError("invalid", "SAMLResponse is not acceptable XML") from None


def _check_shape(root: Element) -> None:
    """Against signature wrapping (Somorovsky et al., "On Breaking SAML", 2012): the
    assertion pysaml2 reads must be the element xmlsec1 verified. That holds when the only
    ``Assertion`` in the document is the Response's child, every ``ID`` is unique (xmlsec1
    looks the signed node up by ID) and signatures sit only on the Response or that
    assertion. ADFS never sends anything else; encrypted assertions are not asked for (our
    metadata has no encryption key)."""
    if root.tag != f"{{{_SAMLP}}}Response":
        raise ConnectorError("invalid", "not a SAML Response")
    ids = [element.get("ID") for element in root.iter() if element.get("ID") is not None]
    if len(ids) != len(set(ids)):
        raise ConnectorError("invalid", "duplicate IDs in the response (signature wrapping)")
    if next(root.iter(f"{{{_SAML}}}EncryptedAssertion"), None) is not None:
        raise ConnectorError("invalid", "an encrypted assertion (not supported)")
    assertions = list(root.iter(f"{{{_SAML}}}Assertion"))
    if len(assertions) > 1 or (assertions and not any(c is assertions[0] for c in root)):
        raise ConnectorError("invalid", "an assertion out of place (signature wrapping)")
    signed = (root, *assertions)
    for parent in root.iter():
        for child in parent:
            if child.tag == f"{{{_DS}}}Signature" and not any(parent is s for s in signed):
                raise ConnectorError("invalid", "a signature out of place (signature "
                                     "wrapping)")


def _check_algorithms(signature: Any) -> None:
    info = signature.signed_info
    method = info.signature_method.algorithm if info.signature_method is not None else None
    digests = {ref.digest_method.algorithm if ref.digest_method is not None else None
               for ref in info.reference}
    if method not in SIGNATURE_ALGS or not digests <= DIGEST_ALGS:
        raise ConnectorError("invalid", "signed with a weak or unknown algorithm")


def _status_error(message: Any) -> ConnectorError:
    """A non-success Status (SAML Core §3.2.2.2): the user did not sign in at the IdP
    (``denied``), or the IdP did not accept our request (``invalid``)."""
    status = getattr(message, "status", None)
    top = status.status_code if status is not None else None
    codes = [top.value if top is not None else None,
             top.status_code.value if top is not None and top.status_code is not None
             else None]
    shown = "/".join((c or "-").rsplit(":", 1)[-1][:40] for c in codes)
    if any(c in _DENIED for c in codes):
        return ConnectorError("denied", f"the IdP answered {shown}")
    return ConnectorError("invalid", f"the IdP answered {shown}")


def _claims(assertion: Any) -> dict[str, list[str]]:
    """Attribute name -> its text values, from the (signed) assertion's statements."""
    claims: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement:
        for attribute in statement.attribute:
            values = [_text(v) for v in attribute.attribute_value]
            claims.setdefault(attribute.name, []).extend(v for v in values if v)
    return claims


def _text(element: Any) -> str:
    return (getattr(element, "text", None) or "").strip()


def _instant(value: str | None) -> float | None:
    """An xs:dateTime (``2026-01-02T03:04:05.678Z``) as epoch seconds."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConnectorError("invalid", "a malformed time in the assertion") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _same(given: Any, expected: str) -> bool:
    """Constant-time equality of a received string with what we sent."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())

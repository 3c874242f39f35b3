"""Validating the contract's Active Directory settings (ADFS or LDAP) as the owner enters them.

Connecting to the directory is another issue; this only makes sure what is stored is
well-formed and safe to use later: https metadata URLs, metadata XML parsed without DTDs or
entities, LDAP only over TLS (ldaps:// or StartTLS), and the bind password sealed at rest.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from flask import current_app

from .security import seal, unseal

TYPES = ("adfs", "ldap")
_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
#: Federation metadata of one IdP is a few kilobytes; the cap bounds parsing cost.
MAX_XML = 256 * 1024
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_SEAL_PURPOSE = "ad bind password"


class ADSettingsError(ValueError):
    """What is wrong with one field: ``field`` names the input, ``key`` the message."""

    # A plain class, not a frozen dataclass: contextlib assigns ``__traceback__`` to an
    # exception leaving a ``with`` block, which a frozen instance refuses.
    def __init__(self, field: str, key: str) -> None:
        super().__init__(key)
        self.field = field
        self.key = key


def _clean(value: str | None) -> str:
    return unicodedata.normalize("NFKC", value or "").strip()


def _https_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname) and not parts.username \
        and not any(c.isspace() for c in value) and len(value) <= 2000


def parse_metadata(xml: str) -> str:
    """The ``entityID`` of SAML 2.0 metadata; ``ValueError`` for anything else.

    defusedxml with ``forbid_dtd``: a DOCTYPE is refused outright, so no entity expansion
    (billion laughs), no external entity or DTD fetch, ever.
    """
    if len(xml.encode("utf-8")) > MAX_XML:
        raise ValueError("too large")
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except (ParseError, DefusedXmlException) as exc:
        raise ValueError("not XML") from exc
    if root.tag != f"{{{_MD}}}EntityDescriptor":
        raise ValueError("not an EntityDescriptor")
    entity_id = (root.get("entityID") or "").strip()
    if not entity_id:
        raise ValueError("no entityID")
    if root.find(f"{{{_MD}}}IDPSSODescriptor") is None:
        raise ValueError("no IDPSSODescriptor")
    return entity_id


def adfs(form: dict[str, str]) -> dict[str, Any]:
    """ADFS (SAML 2.0): a https federation-metadata URL, or the metadata XML itself."""
    url = _clean(form.get("metadata_url"))
    xml = (form.get("metadata_xml") or "").strip()
    if url and xml:
        raise ADSettingsError("metadata_url", "settings_ad_metadata_one")
    if url:
        if not _https_url(url):
            raise ADSettingsError("metadata_url", "settings_ad_metadata_url_invalid")
        return {"type": "adfs", "metadata_url": url}
    if xml:
        try:
            entity_id = parse_metadata(xml)
        except ValueError as exc:
            raise ADSettingsError("metadata_xml", "settings_ad_metadata_xml_invalid") from exc
        return {"type": "adfs", "metadata_xml": xml, "entity_id": entity_id}
    raise ADSettingsError("metadata_url", "settings_ad_metadata_missing")


def _dn(value: str, field: str) -> str:
    # An LDAP DN is a comma-separated list of attr=value; a loose check keeps typos out.
    if not value or len(value) > 1024 or "=" not in value \
            or any(unicodedata.category(c) == "Cc" for c in value):
        raise ADSettingsError(field, "settings_ad_dn_invalid")
    return value


def ldap(form: dict[str, str], previous: dict[str, Any] | None) -> dict[str, Any]:
    """LDAP: ldaps:// or ldap:// with StartTLS; never a clear-text bind over the network."""
    url = _clean(form.get("ldap_url"))
    parts = urlsplit(url)
    starttls = form.get("starttls") == "on"
    if parts.scheme not in ("ldaps", "ldap") or not parts.hostname or parts.username \
            or parts.path not in ("", "/") or parts.query or len(url) > 500:
        raise ADSettingsError("ldap_url", "settings_ad_ldap_url_invalid")
    if parts.scheme == "ldap" and not starttls:
        raise ADSettingsError("ldap_url", "settings_ad_ldap_tls_required")
    try:
        parts.port  # noqa: B018 -- raises for a port out of range
    except ValueError as exc:
        raise ADSettingsError("ldap_url", "settings_ad_ldap_url_invalid") from exc
    base_dn = _dn(_clean(form.get("base_dn")), "base_dn")
    bind_dn = _dn(_clean(form.get("bind_dn")), "bind_dn")
    attribute = _clean(form.get("user_attribute"))
    if not _ATTRIBUTE.match(attribute):
        raise ADSettingsError("user_attribute", "settings_ad_attribute_invalid")
    password = form.get("bind_password") or ""
    if password:
        if len(password) > 1024:
            raise ADSettingsError("bind_password", "settings_ad_bind_password_invalid")
        sealed = seal_password(password)
    elif previous and previous.get("type") == "ldap" and previous.get("bind_password_enc"):
        # Left empty on an edit: the stored one stays (it is never shown back).
        sealed = previous["bind_password_enc"]
    else:
        raise ADSettingsError("bind_password", "settings_ad_bind_password_missing")
    values = {"type": "ldap", "url": url, "starttls": parts.scheme == "ldap",
              "base_dn": base_dn, "bind_dn": bind_dn, "bind_password_enc": sealed,
              "user_attribute": attribute}
    ca_pem = (form.get("ca_pem") or "").strip()
    if ca_pem:
        values["ca_pem"] = _certificates(ca_pem)
    return values


def _certificates(pem: str) -> str:
    """The CA certificate(s) the directory's certificate chains to (a company CA), as PEM;
    only certificates, nothing else of what was pasted."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    if len(pem) > 64 * 1024:
        raise ADSettingsError("ca_pem", "settings_ad_ca_invalid")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ADSettingsError("ca_pem", "settings_ad_ca_invalid") from exc
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certs)


def validate(form: dict[str, str], previous: dict[str, Any] | None) -> dict[str, Any]:
    kind = form.get("type")
    if kind == "adfs":
        return adfs(form)
    if kind == "ldap":
        return ldap(form, previous)
    raise ADSettingsError("type", "settings_ad_type_missing")


def _secret() -> str:
    return current_app.extensions["idp.settings"].secret_key


def seal_password(password: str) -> str:
    """The bind password sealed (AES-GCM) for the JSON column; it never rests in clear."""
    return base64.b64encode(seal(password.encode("utf-8"), secret=_secret(),
                                 purpose=_SEAL_PURPOSE)).decode("ascii")


def bind_password(settings: dict[str, Any]) -> str:
    """The clear bind password, for the LDAP connector only."""
    return unseal(base64.b64decode(settings["bind_password_enc"]), secret=_secret(),
                  purpose=_SEAL_PURPOSE).decode("utf-8")


def public_view(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The stored settings as the form shows them back: everything but the password."""
    return {k: v for k, v in (settings or {}).items() if k != "bind_password_enc"}

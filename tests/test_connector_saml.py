"""The SAML 2.0 connector for a contract's ADFS (idp/connectors/saml.py) against a real
pysaml2 IdP: its own RSA key and self-signed certificate, its metadata given to the
contract, responses built by pysaml2's ``Server`` to the AuthnRequest ``start`` produced,
then signed, tampered with, wrapped, replayed and let expire."""

from __future__ import annotations

import base64
import datetime
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from idp import ad_settings
from idp.connectors import saml
from idp.connectors.base import CallbackConnector, ConnectorError, Redirect, Started
from idp.models import Contract
from idp.settings import SettingsError

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="CFB has been moved")
    from saml2 import BINDING_HTTP_REDIRECT, class_name, samlp
    from saml2.config import IdPConfig
    from saml2.metadata import entity_descriptor
    from saml2.saml import (
        NAME_FORMAT_URI,
        NAMEID_FORMAT_PERSISTENT,
        NAMEID_FORMAT_TRANSIENT,
        Audience,
        NameID,
    )
    from saml2.server import Server
    from saml2.sigver import pre_signature_part, signed_instance_factory
    from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

CONNECTION_ID = "adfs-k3y9q2m7x4c8v1b6n0"
ISSUER = "http://localhost"
SP_ENTITY = f"{ISSUER}/ad/{CONNECTION_ID}/saml"
ACS = f"{SP_ENTITY}/acs"
IDP_ENTITY = "https://adfs.corp.example/adfs/services/trust"
SSO_URL = "https://adfs.corp.example/adfs/ls/"
SUBJECT = "Qm9iJ3MgZ3VpZA=="  # what an ADFS persistent NameID from objectGUID looks like
IDENTITY = {
    saml.CLAIM_UPN: ["alice@corp.example"],
    saml.CLAIM_EMAIL: ["alice@mail.corp.example"],
    saml.CLAIM_DISPLAY_NAME: ["Alice Example"],
}
PASSWORD_CONTEXT = {
    "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}


# -- the IdP -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    key_file: str
    cert_file: str
    cert: x509.Certificate


def make_keypair(directory: Path, name: str) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return KeyPair(str(key_file), str(cert_file), cert)


@pytest.fixture(scope="module")
def idp_keys(tmp_path_factory) -> KeyPair:
    """RSA keys are slow to make: one pair for the IdP of every test here."""
    return make_keypair(tmp_path_factory.mktemp("saml-idp"), "adfs.corp.example")


def idp_config(keys: KeyPair, sp_metadata: str | None = None) -> IdPConfig:
    values: dict[str, Any] = {
        "entityid": IDP_ENTITY,
        "key_file": keys.key_file,
        "cert_file": keys.cert_file,
        "service": {"idp": {
            "endpoints": {"single_sign_on_service": [(SSO_URL, BINDING_HTTP_REDIRECT)]},
            "policy": {"default": {"lifetime": {"minutes": 15}, "name_form": NAME_FORMAT_URI}},
        }},
    }
    if sp_metadata:
        values["metadata"] = {"inline": [sp_metadata]}
    config = IdPConfig()
    config.load(values)
    return config


def idp_metadata(keys: KeyPair) -> str:
    """What the owner downloads from ADFS (FederationMetadata.xml) and pastes."""
    return entity_descriptor(idp_config(keys)).to_string().decode()


class Idp:
    """pysaml2's IdP, trusting our SP by the metadata the connector publishes."""

    def __init__(self, keys: KeyPair, sp_metadata: str) -> None:
        self.server = Server(config=idp_config(keys, sp_metadata))

    def request_in(self, location: str) -> samlp.AuthnRequest:
        """The AuthnRequest a Redirect URL carries, as the IdP decodes it."""
        query = parse_qs(urlsplit(location).query)
        return self.server.parse_authn_request(query["SAMLRequest"][0],
                                               BINDING_HTTP_REDIRECT).message

    def respond(self, request_id: str | None, *, identity: dict | None = None,
                name_id_format: str = NAMEID_FORMAT_PERSISTENT,
                sign_assertion: bool = True, sign_response: bool = False,
                tweak: Callable[[Any, Any], None] | None = None,
                sign_alg: str = SIG_RSA_SHA256, digest_alg: str = DIGEST_SHA256) -> str:
        """A Response to ``request_id`` for the SP, as XML. ``tweak(response, assertion)``
        changes it before it is signed, as an IdP (or a stolen key) would have sent it."""
        args = {"identity": IDENTITY if identity is None else identity,
                "in_response_to": request_id, "destination": ACS, "sp_entity_id": SP_ENTITY,
                "name_id": NameID(format=name_id_format, text=SUBJECT),
                "authn": PASSWORD_CONTEXT, "sign_alg": sign_alg, "digest_alg": digest_alg}
        if tweak is None:
            return str(self.server.create_authn_response(
                **args, sign_assertion=sign_assertion, sign_response=sign_response))
        message = samlp.response_from_string(str(self.server.create_authn_response(
            **args, sign_assertion=False, sign_response=False)))
        assertion = message.assertion[0]
        tweak(message, assertion)
        return self.sign(message, sign_assertion=sign_assertion, sign_response=sign_response,
                         sign_alg=sign_alg, digest_alg=digest_alg)

    def sign(self, message: Any, *, sign_assertion: bool, sign_response: bool,
             sign_alg: str = SIG_RSA_SHA256, digest_alg: str = DIGEST_SHA256) -> str:
        cert, to_sign = self.server.sec.my_cert, []
        if sign_assertion:
            assertion = message.assertion[0]
            assertion.signature = pre_signature_part(assertion.id, cert, 2,
                                                     digest_alg=digest_alg, sign_alg=sign_alg)
            to_sign.append((class_name(assertion), assertion.id))
        if sign_response:
            message.signature = pre_signature_part(message.id, cert, 1,
                                                   digest_alg=digest_alg, sign_alg=sign_alg)
            to_sign.append((class_name(message), message.id))
        return str(signed_instance_factory(message, self.server.sec, to_sign))

    def error(self, request_id: str, code: str) -> str:
        """A signed error Response (Status Responder / ``code``), as ADFS sends when the
        user cancels or cannot sign in."""
        return str(self.server.create_error_response(
            request_id, ACS, info=(code, "MSIS7012"), sign=True,
            sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256))


def posted(xml: str) -> str:
    """The HTTP-POST binding's SAMLResponse value."""
    return base64.b64encode(xml.encode()).decode()


# -- the connector -----------------------------------------------------------------------


def contract_with(adfs: dict[str, Any]) -> Contract:
    return Contract(brand="codec", connection_id=CONNECTION_ID, ad_settings=adfs)


@dataclass
class Sso:
    """One contract's connector and its IdP, inside an app context."""

    connector: saml.SamlConnector
    idp: Idp
    app: Any

    def start(self, *, link: bool = False, state: str = "flow-state-1") -> tuple[Started, Any]:
        started = self.connector.start(state=state, nonce="unused", callback_url=ACS,
                                       link=link)
        return started, self.idp.request_in(started.go.url)

    def finish(self, started: Started, xml: str, *, relay_state: str | None = None):
        state = started.keep["state"] if relay_state is None else relay_state
        return self.connector.finish(params={"SAMLResponse": posted(xml), "RelayState": state},
                                     kept=started.keep, callback_url=ACS)

    def refused(self, started: Started, xml: str) -> str:
        with pytest.raises(ConnectorError) as caught:
            self.finish(started, xml)
        assert "<" not in str(caught.value), "no XML in the log message"
        return caught.value.kind


@pytest.fixture
def sso(app, idp_keys) -> Iterator[Sso]:
    with app.app_context():
        settings = app.extensions["idp.settings"]
        adfs = ad_settings.adfs({"type": "adfs", "metadata_xml": idp_metadata(idp_keys)})
        connector = saml.for_contract(contract_with(adfs), settings)
        yield Sso(connector, Idp(idp_keys, connector.sp_metadata_xml), app)


# -- what the blueprint sees -------------------------------------------------------------


def test_the_connector_is_the_contracts_sp_with_its_connection_id(sso):
    connector = sso.connector
    assert isinstance(connector, CallbackConnector)
    assert connector.id == CONNECTION_ID
    assert connector.entity_id == SP_ENTITY == saml.entity_id_for(ISSUER, CONNECTION_ID)
    assert connector.acs_url == ACS == saml.acs_url_for(ISSUER, CONNECTION_ID)
    metadata = connector.sp_metadata_xml
    assert f'entityID="{SP_ENTITY}"' in metadata
    assert f'Location="{ACS}"' in metadata
    assert 'WantAssertionsSigned="true"' in metadata
    assert "md5" not in metadata and "sha1" not in metadata
    # The IdP read it: it knows where our ACS is.
    assert sso.idp.server.metadata.assertion_consumer_service(SP_ENTITY)[0]["location"] == ACS


def test_a_contract_without_adfs_settings_has_no_saml_connector(app):
    settings = app.extensions["idp.settings"]
    with pytest.raises(ValueError):
        saml.for_contract(contract_with({"type": "ldap"}), settings)


def test_start_redirects_to_the_idp_with_an_authn_request_and_keeps_its_id(sso):
    started, request = sso.start()
    assert isinstance(started.go, Redirect)
    assert started.go.url.startswith(SSO_URL + "?")
    query = parse_qs(urlsplit(started.go.url).query)
    assert query["RelayState"] == ["flow-state-1"]
    assert "Signature" not in query
    assert started.keep == {"request_id": request.id, "state": "flow-state-1"}
    assert request.assertion_consumer_service_url == ACS
    assert request.issuer.text == SP_ENTITY
    assert request.destination == SSO_URL
    assert request.name_id_policy is None  # whatever NameID ADFS's claim rules issue
    assert request.force_authn is None


def test_linking_asks_adfs_to_authenticate_again(sso):
    _, request = sso.start(link=True)
    assert request.force_authn == "true"


def test_signed_authn_requests_carry_a_redirect_binding_signature(app, idp_keys, tmp_path):
    sp_keys = make_keypair(tmp_path, "sp")
    with app.app_context():
        config = saml.Config(idp_metadata_xml=idp_metadata(idp_keys), sp_entity_id=SP_ENTITY,
                             acs_url=ACS, sp_key_file=sp_keys.key_file,
                             sp_cert_file=sp_keys.cert_file)
        connector = saml.open(CONNECTION_ID, config, app.extensions["idp.settings"])
        started = connector.start(state="s", nonce="n", callback_url=ACS, link=False)
    assert 'AuthnRequestsSigned="true"' in connector.sp_metadata_xml
    # SAML Bindings §3.4.4.1: the signature covers the query as sent, Signature excluded.
    raw = urlsplit(started.go.url).query
    signed = "&".join(p for p in raw.split("&") if not p.startswith("Signature="))
    signature = next(p for p in raw.split("&") if p.startswith("Signature="))
    assert unquote_plus(dict(p.split("=", 1) for p in raw.split("&"))["SigAlg"]) \
        == SIG_RSA_SHA256
    sp_keys.cert.public_key().verify(base64.b64decode(unquote_plus(signature[10:])),
                                     signed.encode(), padding.PKCS1v15(), hashes.SHA256())


# -- a good response -----------------------------------------------------------------------


def test_a_signed_assertion_for_our_request_is_the_users_identity(sso):
    started, request = sso.start()
    identity = sso.finish(started, sso.idp.respond(request.id))
    assert identity.connector == CONNECTION_ID
    assert identity.issuer == IDP_ENTITY
    assert identity.subject == SUBJECT
    assert identity.email == "alice@mail.corp.example"
    assert identity.email_verified is False
    assert identity.name == "Alice Example"
    assert identity.amr == ("pwd",)


def test_without_an_email_claim_the_upn_is_the_address(sso):
    started, request = sso.start()
    only_upn = {saml.CLAIM_UPN: ["bob@corp.example"]}
    identity = sso.finish(started, sso.idp.respond(request.id, identity=only_upn))
    assert (identity.email, identity.name) == ("bob@corp.example", None)


def test_a_signed_response_around_a_signed_assertion_is_accepted(sso):
    started, request = sso.start()
    xml = sso.idp.respond(request.id, sign_response=True)
    assert sso.finish(started, xml).subject == SUBJECT


ADFS_ROLE = (
    '<ns0:RoleDescriptor xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706" '
    'xsi:type="fed:SecurityTokenServiceType" '
    'protocolSupportEnumeration="http://docs.oasis-open.org/wsfed/federation/200706">'
    '<fed:TokenTypesOffered><fed:TokenType Uri="urn:oasis:names:tc:SAML:2.0:assertion"/>'
    "</fed:TokenTypesOffered></ns0:RoleDescriptor>")


def test_adfs_metadata_with_its_ws_federation_roles_is_understood(app, idp_keys):
    """FederationMetadata.xml puts WS-Federation RoleDescriptors before the SAML IdP."""
    plain = idp_metadata(idp_keys)
    at = plain.index("<ns0:IDPSSODescriptor")
    with app.app_context():
        adfs = ad_settings.adfs({"metadata_xml": plain[:at] + ADFS_ROLE + plain[at:]})
        connector = saml.for_contract(contract_with(adfs), app.extensions["idp.settings"])
        idp = Idp(idp_keys, connector.sp_metadata_xml)
        started = connector.start(state="st", nonce="n", callback_url=ACS, link=False)
        xml = idp.respond(idp.request_in(started.go.url).id)
        identity = connector.finish(params={"SAMLResponse": posted(xml), "RelayState": "st"},
                                    kept=started.keep, callback_url=ACS)
    assert identity.subject == SUBJECT


# -- signatures ----------------------------------------------------------------------------


def test_an_unsigned_assertion_is_refused(sso):
    started, request = sso.start()
    assert sso.refused(started, sso.idp.respond(request.id, sign_assertion=False)) == "invalid"


def test_a_signed_response_with_an_unsigned_assertion_is_refused(sso):
    started, request = sso.start()
    xml = sso.idp.respond(request.id, sign_assertion=False, sign_response=True)
    assert sso.refused(started, xml) == "invalid"


def test_an_assertion_signed_by_another_key_is_refused(sso, tmp_path):
    started, request = sso.start()
    impostor = Idp(make_keypair(tmp_path, "impostor"), sso.connector.sp_metadata_xml)
    xml = impostor.respond(request.id)  # same entity ID, its own key (not in the metadata)
    assert sso.refused(started, xml) == "invalid"


def test_a_sha1_signature_is_refused(sso):
    started, request = sso.start()
    xml = sso.idp.respond(request.id, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    assert sso.refused(started, xml) == "invalid"


def test_an_attribute_changed_after_signing_is_refused(sso):
    started, request = sso.start()
    xml = sso.idp.respond(request.id)
    assert xml.count("alice@mail.corp.example") == 1
    assert sso.refused(started, xml.replace("alice@mail.corp.example",
                                            "boss@mail.corp.example")) == "invalid"


def test_a_nameid_changed_after_signing_is_refused(sso):
    started, request = sso.start()
    xml = sso.idp.respond(request.id)
    assert sso.refused(started, xml.replace(f">{SUBJECT}<", ">someone-else<")) == "invalid"


# Signature wrapping (Somorovsky et al., "On Breaking SAML", USENIX Security 2012): the
# attacker holds one genuinely signed response for their own account and wraps it so that
# the signature still verifies while the SP reads an assertion they wrote.

A_OPEN, A_CLOSE = "<ns1:Assertion ", "</ns1:Assertion>"
SIG_OPEN, SIG_CLOSE = "<ns2:Signature ", "</ns2:Signature>"


def _split(xml: str) -> tuple[str, str, str]:
    """(before, the signed assertion, after) of pysaml2's serialisation."""
    start, end = xml.index(A_OPEN), xml.index(A_CLOSE) + len(A_CLOSE)
    return xml[:start], xml[start:end], xml[end:]


def _signature(assertion: str) -> str:
    return assertion[assertion.index(SIG_OPEN):assertion.index(SIG_CLOSE) + len(SIG_CLOSE)]


def _evil(assertion: str, *, keep_signature: bool, new_id: bool) -> str:
    """The attacker's assertion: the genuine one with another subject and address."""
    evil = assertion.replace(SUBJECT, "the-ceo").replace("alice@", "ceo@")
    if not keep_signature:
        evil = evil.replace(_signature(assertion), "")
    if new_id:
        evil = evil.replace('ID="id-', 'ID="evil-', 1)
    return evil


def xsw_evil_before_signed(xml: str) -> str:  # XSW3
    before, signed, after = _split(xml)
    return before + _evil(signed, keep_signature=False, new_id=True) + signed + after


def xsw_evil_after_signed(xml: str) -> str:
    before, signed, after = _split(xml)
    return before + signed + _evil(signed, keep_signature=False, new_id=True) + after


def xsw_signed_inside_evil(xml: str) -> str:  # XSW4
    before, signed, after = _split(xml)
    evil = _evil(signed, keep_signature=False, new_id=True)
    return before + evil[:-len(A_CLOSE)] + signed + A_CLOSE + after


def xsw_signed_in_extensions_evil_with_its_id(xml: str) -> str:  # XSW7
    before, signed, after = _split(xml)
    hidden = signed.replace(_signature(signed), "")
    issuer_end = before.index("</ns1:Issuer>") + len("</ns1:Issuer>")
    before = (before[:issuer_end] + f"<ns0:Extensions>{hidden}</ns0:Extensions>"
              + before[issuer_end:])
    return before + _evil(signed, keep_signature=True, new_id=False) + after


def xsw_signed_in_evil_signature_object(xml: str) -> str:  # XSW8
    before, signed, after = _split(xml)
    hidden = signed.replace(_signature(signed), "")
    evil = _evil(signed, keep_signature=True, new_id=False)
    evil = evil.replace(SIG_CLOSE, f"<ns2:Object>{hidden}</ns2:Object>{SIG_CLOSE}")
    return before + evil + after


def xsw_signed_twice_evil_first_with_its_id(xml: str) -> str:
    before, signed, after = _split(xml)
    return before + _evil(signed, keep_signature=True, new_id=False) + signed + after


@pytest.mark.parametrize("wrap", [
    xsw_evil_before_signed, xsw_evil_after_signed, xsw_signed_inside_evil,
    xsw_signed_in_extensions_evil_with_its_id, xsw_signed_in_evil_signature_object,
    xsw_signed_twice_evil_first_with_its_id,
], ids=lambda f: f.__name__.removeprefix("xsw_"))
def test_signature_wrapping_is_refused(sso, wrap):
    started, request = sso.start()
    xml = sso.idp.respond(request.id, sign_response=False)
    assert sso.finish(started, xml).subject == SUBJECT  # the genuine one is good ...
    started, request = sso.start()
    wrapped = wrap(sso.idp.respond(request.id))
    assert "the-ceo" in wrapped
    assert sso.refused(started, wrapped) == "invalid"  # ... and its wrapping is not


def test_a_document_type_declaration_is_refused_before_any_parsing(sso):
    started, request = sso.start()
    xml = sso.idp.respond(request.id).replace(
        '<?xml version="1.0"?>',
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
    assert "<!DOCTYPE" in xml
    assert sso.refused(started, xml) == "invalid"


# -- for us, for this request --------------------------------------------------------------


def _audience(response, assertion):
    assertion.conditions.audience_restriction[0].audience = [Audience(text="https://other.example/sp")]


def _extra_audience_restriction(response, assertion):
    restriction = type(assertion.conditions.audience_restriction[0])(
        audience=[Audience(text="https://other.example/sp")])
    assertion.conditions.audience_restriction.append(restriction)


def _no_conditions(response, assertion):
    assertion.conditions = None


def _recipient(response, assertion):
    data = assertion.subject.subject_confirmation[0].subject_confirmation_data
    data.recipient = "https://other.example/acs"


def _destination(response, assertion):
    response.destination = "https://other.example/acs"


def _no_destination(response, assertion):
    response.destination = None


def _issuer(response, assertion):
    assertion.issuer.text = "https://other-adfs.example/adfs/services/trust"


def _confirmation_in_response_to(response, assertion):
    assertion.subject.subject_confirmation[0].subject_confirmation_data.in_response_to = "id-x"


@pytest.mark.parametrize(("tweak", "sign_response"), [
    (_audience, False),
    (_extra_audience_restriction, False),
    (_no_conditions, False),
    (_recipient, False),
    (_destination, True),
    (_no_destination, True),
    (_issuer, False),
    (_confirmation_in_response_to, False),
], ids=["wrong-audience", "second-audience-restriction-not-us", "no-audience",
        "wrong-recipient", "wrong-destination", "no-destination", "another-issuer",
        "confirmation-for-another-request"])
def test_a_signed_assertion_meant_for_someone_else_is_refused(sso, tweak, sign_response):
    started, request = sso.start()
    xml = sso.idp.respond(request.id, tweak=tweak, sign_response=sign_response)
    assert sso.refused(started, xml) == "invalid"


def test_a_response_to_another_of_our_requests_is_refused(sso):
    _, first_request = sso.start()
    second, _ = sso.start()
    assert sso.refused(second, sso.idp.respond(first_request.id)) == "invalid"


def test_an_unsolicited_response_is_refused(sso):
    started, _ = sso.start()
    assert sso.refused(started, sso.idp.respond(None)) == "invalid"


def test_a_relay_state_that_is_not_ours_is_refused(sso):
    started, request = sso.start()
    with pytest.raises(ConnectorError) as caught:
        sso.finish(started, sso.idp.respond(request.id), relay_state="another-flow")
    assert caught.value.kind == "invalid"


def test_a_transient_nameid_cannot_identify_anyone(sso):
    started, request = sso.start()
    xml = sso.idp.respond(request.id, name_id_format=NAMEID_FORMAT_TRANSIENT)
    assert sso.refused(started, xml) == "invalid"


@pytest.mark.parametrize("value", ["", "not base64 !", base64.b64encode(b"<a>").decode(),
                                   base64.b64encode(b"\xff\xfe").decode()],
                         ids=["empty", "not-base64", "not-a-response", "not-utf8"])
def test_garbage_instead_of_a_response_is_invalid(sso, value):
    started, _ = sso.start()
    with pytest.raises(ConnectorError) as caught:
        sso.connector.finish(params={"SAMLResponse": value, "RelayState": "flow-state-1"},
                             kept=started.keep, callback_url=ACS)
    assert caught.value.kind == "invalid"


# -- time and replay -----------------------------------------------------------------------


def test_an_assertion_past_its_not_on_or_after_has_expired(sso, clock):
    started, request = sso.start()
    xml = sso.idp.respond(request.id)  # valid for 15 minutes, with 3 minutes of skew
    clock.advance(15 * 60 + 180 + 1)
    assert sso.refused(started, xml) == "expired"


def test_a_little_clock_skew_is_tolerated(sso, clock):
    started, request = sso.start()
    xml = sso.idp.respond(request.id)
    clock.advance(15 * 60 + 60)
    assert sso.finish(started, xml).subject == SUBJECT


def test_an_assertion_not_valid_yet_is_refused(sso, clock):
    started, request = sso.start()
    xml = sso.idp.respond(request.id)
    clock.advance(-600)
    assert sso.refused(started, xml) == "invalid"


def test_a_replayed_response_has_expired(sso):
    started, request = sso.start()
    xml = sso.idp.respond(request.id)
    assert sso.finish(started, xml).subject == SUBJECT
    assert sso.refused(started, xml) == "expired"


# -- the IdP says no -----------------------------------------------------------------------


@pytest.mark.parametrize("code", [samlp.STATUS_AUTHN_FAILED, samlp.STATUS_REQUEST_DENIED],
                         ids=["authn-failed", "request-denied"])
def test_an_idp_error_status_is_denied(sso, code):
    started, request = sso.start()
    assert sso.refused(started, sso.idp.error(request.id, code)) == "denied"


def test_an_error_status_for_another_request_is_invalid(sso):
    started, _ = sso.start()
    assert sso.refused(started, sso.idp.error("id-other", samlp.STATUS_AUTHN_FAILED)) \
        == "invalid"


# -- metadata from a URL -------------------------------------------------------------------


class MetadataServer:
    """ADFS's FederationMetadata.xml endpoint on a loopback port."""

    def __init__(self, body: bytes, *, status: int = 200) -> None:
        self.body, self.status, self.requests = body, status, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(server.status)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/FederationMetadata/2007-06/FederationMetadata.xml"

    def __enter__(self) -> MetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _fresh_metadata_cache():
    saml.clear_cache()
    yield
    saml.clear_cache()


def test_metadata_from_a_url_is_fetched_once_and_used(app, idp_keys):
    with MetadataServer(idp_metadata(idp_keys).encode()) as server, app.app_context():
        # Stored as the settings page would, but http on loopback (tests only).
        contract = contract_with({"type": "adfs", "metadata_url": server.url})
        connector = saml.for_contract(contract, app.extensions["idp.settings"])
        idp = Idp(idp_keys, connector.sp_metadata_xml)
        started = connector.start(state="st", nonce="n", callback_url=ACS, link=False)
        xml = idp.respond(idp.request_in(started.go.url).id)
        identity = connector.finish(params={"SAMLResponse": posted(xml), "RelayState": "st"},
                                    kept=started.keep, callback_url=ACS)
        assert (identity.issuer, identity.subject) == (IDP_ENTITY, SUBJECT)
        assert server.requests == 1


@pytest.mark.parametrize(("body", "status"), [
    (b"", 404), (b"<html>maintenance</html>", 200), (b"x" * (ad_settings.MAX_XML + 1), 200),
], ids=["not-found", "not-metadata", "too-large"])
def test_metadata_that_cannot_be_had_is_unavailable(app, body, status):
    with MetadataServer(body, status=status) as server, app.app_context():
        contract = contract_with({"type": "adfs", "metadata_url": server.url})
        connector = saml.for_contract(contract, app.extensions["idp.settings"])
        with pytest.raises(ConnectorError) as caught:
            connector.start(state="st", nonce="n", callback_url=ACS, link=False)
    assert caught.value.kind == "unavailable"


def test_an_unreachable_metadata_url_is_unavailable(app):
    with MetadataServer(b"") as server:
        url = server.url  # the port is closed once the server stops
    with app.app_context():
        connector = saml.for_contract(contract_with({"type": "adfs", "metadata_url": url}),
                                      app.extensions["idp.settings"])
        with pytest.raises(ConnectorError) as caught:
            connector.start(state="st", nonce="n", callback_url=ACS, link=False)
    assert caught.value.kind == "unavailable"


def test_production_fetches_metadata_over_https_only(app):
    production = app.extensions["idp.settings"].replace(environment="production")
    contract = contract_with({"type": "adfs", "metadata_url": "http://127.0.0.1:9/md.xml"})
    with pytest.raises(ConnectorError) as caught:
        saml.for_contract(contract, production)
    assert caught.value.kind == "unavailable"
    with pytest.raises(SettingsError):
        saml.open("adfs-x", saml.Config(idp_metadata_url="http://127.0.0.1:9/md.xml",
                                        sp_entity_id=SP_ENTITY, acs_url=ACS), production)


def test_a_config_needs_exactly_one_metadata_source():
    with pytest.raises(ValueError, match="one of idp_metadata_xml or idp_metadata_url"):
        saml.Config(sp_entity_id=SP_ENTITY, acs_url=ACS)
    with pytest.raises(ValueError, match="one of idp_metadata_xml or idp_metadata_url"):
        saml.Config(idp_metadata_xml="<x/>", idp_metadata_url="https://a.example/md",
                    sp_entity_id=SP_ENTITY, acs_url=ACS)

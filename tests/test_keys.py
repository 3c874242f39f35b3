"""Signing keys: lifecycle next -> current -> retired -> pruned, encrypted at rest, JWKS."""

from __future__ import annotations

import json

import pytest
from cryptography.exceptions import InvalidTag
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.keys import ALGS, KeyRing, KeyStore, KeyStoreError
from idp.settings import SettingsError, load_settings

SECRET = "k" * 40


@pytest.fixture
def keystore(tmp_path):
    return KeyStore(tmp_path / "keys", SECRET)


def states(store: KeyStore) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in store.load():
        out.setdefault(k.state, []).append(k.alg)
    return {s: sorted(a) for s, a in out.items()}


def test_rotate_on_an_empty_store_creates_current_and_next_keys_for_every_algorithm(keystore):
    keystore.rotate(now=1000, next_min_age=600)
    assert states(keystore) == {"current": sorted(ALGS), "next": sorted(ALGS)}


def test_rotation_promotes_next_to_current_and_retires_current(keystore):
    keystore.rotate(now=1000, next_min_age=600)
    before = {k.kid: k.state for k in keystore.load()}
    keystore.rotate(now=2000, next_min_age=600)
    after = {k.kid: k.state for k in keystore.load()}
    for kid, state in before.items():
        assert after[kid] == {"current": "retired", "next": "current"}[state]
    assert states(keystore)["next"] == sorted(ALGS)


def test_a_next_key_younger_than_the_publication_window_is_not_promoted(keystore):
    keystore.rotate(now=1000, next_min_age=600)
    with pytest.raises(KeyStoreError, match="--force"):
        keystore.rotate(now=1100, next_min_age=600)
    keystore.rotate(now=1100, next_min_age=600, force=True)


def test_the_key_that_signs_after_rotation_was_published_before_it(keystore):
    keystore.rotate(now=1000, next_min_age=0)
    ring = KeyRing(keystore)
    ring.refresh(force=True)
    published_before = {k["kid"] for k in json.loads(ring.jwks_body)["keys"]}
    keystore.rotate(now=2000, next_min_age=0)
    ring.refresh(force=True)
    assert ring.signing_key("RS256").kid in published_before


def test_a_token_signed_before_rotation_still_verifies_after_it(keystore):
    keystore.rotate(now=1000, next_min_age=0)
    ring = KeyRing(keystore)
    ring.refresh(force=True)
    key = ring.signing_key("RS256")
    token = jwt.encode({"alg": "RS256", "kid": key.kid}, {"sub": "u"}, key.key,
                       algorithms=["RS256"])
    keystore.rotate(now=2000, next_min_age=0)
    ring.refresh(force=True)
    assert ring.signing_key("RS256").kid != key.kid
    jwks = KeySet.import_key_set(json.loads(ring.jwks_body))
    assert jwt.decode(token, jwks, algorithms=["RS256"]).claims == {"sub": "u"}


def test_another_worker_sees_a_rotation_without_restart(keystore):
    keystore.rotate(now=1000, next_min_age=0)
    worker = KeyRing(KeyStore(keystore.dir, SECRET))
    worker.refresh(force=True)
    old = worker.signing_key("ES256").kid
    keystore.rotate(now=2000, next_min_age=0)
    worker._checked = 0.0  # the once-a-second check is due
    assert worker.signing_key("ES256").kid != old


def test_private_keys_are_encrypted_at_rest(keystore):
    keystore.rotate(now=1000, next_min_age=0)
    for path in keystore.dir.glob("*.key.json"):
        raw = path.read_text()
        assert "PRIVATE KEY" not in raw
        assert '"d"' not in raw
        assert (path.stat().st_mode & 0o077) == 0
    with pytest.raises(InvalidTag):
        KeyStore(keystore.dir, "another-kek-" + "z" * 30).load()


def test_prune_keeps_retired_keys_until_their_tokens_expired(keystore):
    keystore.rotate(now=1000, next_min_age=0)
    keystore.rotate(now=2000, next_min_age=0)
    assert keystore.prune(now=2000 + 3599, keep_for=3600) == []
    pruned = keystore.prune(now=2000 + 3600, keep_for=3600)
    assert len(pruned) == len(ALGS)
    assert "retired" not in states(keystore)


def test_jwks_lists_rs256_first_and_public_parts_only(client):
    keys = client.get("/jwks.json").json["keys"]
    assert keys[0]["alg"] == "RS256" and keys[0]["kty"] == "RSA"
    assert {k["alg"] for k in keys} == set(ALGS)
    for k in keys:
        assert k["use"] == "sig" and k["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(k)


def test_jwks_cache_lifetime_must_be_shorter_than_the_next_key_window(settings):
    with pytest.raises(SettingsError, match="jwks_max_age"):
        load_settings(settings.config_path, environ={},
                      overrides={"database_url": "sqlite://", "jwks_max_age": 900,
                                 "keys_next_min_age": 600, "issuer": "http://localhost",
                                 "environment": "test", "secret_key": SECRET})


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_id_tokens_are_signed_with_the_clients_registered_algorithm(client, factory, alg):
    from tests.helpers import exchange, get_code

    user = factory.user()
    rp = factory.rp(id_token_signed_response_alg=alg)
    code, _ = get_code(client, rp, user)
    token = exchange(client, rp, code).json["id_token"]
    header = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == alg
    jwks = KeySet.import_key_set(client.get("/jwks.json").json)
    assert jwt.decode(token, jwks, algorithms=[alg]).claims["aud"] == rp.client_id

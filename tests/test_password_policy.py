"""Password policy (SPEC §3): idp.passwords, as every page that sets a password applies it."""

from __future__ import annotations

import pytest

from idp.passwords import (
    MIN_LENGTH,
    PolicyViolation,
    check,
    classes,
    common_passwords,
    normalise,
)


@pytest.mark.parametrize("password", [
    "Correct-Horse-9", "qwzXVB48", "abc-def-12", "ABC-DEF-12", "Abc-Def-Ghi",
    "パスワードAbc12",
], ids=["all-four", "upper-lower-digit", "lower-digit-symbol", "upper-digit-symbol",
        "upper-lower-symbol", "japanese-with-three"])
def test_eight_characters_of_three_classes_are_accepted(password):
    assert check(password) == normalise(password)


@pytest.mark.parametrize(("password", "key"), [
    ("Ab1-xyz", "password_too_short"),
    ("abcdefghij", "password_classes"),
    ("abcdef1234", "password_classes"),
    ("ABCDEFGH--", "password_classes"),
    ("Password1", "password_common"),
    ("P@ssw0rd", "password_common"),
    ("A" * 257 + "b1", "password_too_long"),
], ids=["seven", "one-class", "two-classes", "upper-symbol-only", "common", "common-leet",
        "too-long"])
def test_weak_passwords_are_refused_with_their_reason(password, key):
    with pytest.raises(PolicyViolation) as caught:
        check(password)
    assert caught.value.key == key
    assert str(caught.value) == key


def test_minimum_length_is_eight():
    assert MIN_LENGTH == 8
    assert check("Ab1-wxyz")
    with pytest.raises(PolicyViolation):
        check("Ab1-wxy")


def test_full_width_input_is_the_same_password_as_its_ascii_form():
    full_width = "Ｃｏｒｒｅｃｔ－Ｈｏｒｓｅ－９"
    assert check(full_width) == "Correct-Horse-9"
    assert classes(normalise(full_width)) == 4


def test_full_width_common_password_is_still_common():
    with pytest.raises(PolicyViolation) as caught:
        check("Ｐａｓｓｗｏｒｄ１")
    assert caught.value.key == "password_common"


def test_long_passphrase_of_128_characters_is_accepted():
    phrase = ("Correct horse battery staple, 7 times over! " * 3)[:128]
    assert len(phrase) == 128
    assert check(phrase) == phrase


def test_passphrase_of_64_characters_is_accepted():
    phrase = "the quick brown fox jumps over the lazy dog, then runs 10 miles"
    phrase += "." * (64 - len(phrase))
    assert len(phrase) == 64 and check(phrase) == phrase


@pytest.mark.parametrize(("password", "email"), [
    ("Taro.Yamada1@example.com", "taro.yamada1@example.com"),
    ("TARO.YAMADA1@EXAMPLE.COM", "taro.yamada1@example.com"),
    ("Taro.Yamada1", "taro.yamada1@example.com"),
    ("Ｔａｒｏ．Ｙａｍａｄａ１＠ｅｘａｍｐｌｅ．ｃｏｍ", "taro.yamada1@example.com"),
], ids=["email", "email-upper", "local-part", "email-full-width"])
def test_the_email_or_its_local_part_is_refused(password, email):
    with pytest.raises(PolicyViolation) as caught:
        check(password, email=email)
    assert caught.value.key == "password_is_email"


def test_common_passwords_are_matched_case_insensitively():
    common = common_passwords()
    assert "password" in common and "123456" in common
    assert all(p == p.lower() for p in common)
    with pytest.raises(PolicyViolation):
        check("P@SSW0RD")


def test_common_list_holds_at_least_100000_passwords():
    assert len(common_passwords()) >= 100_000


def test_a_policy_violation_passes_through_context_managers():
    from contextlib import contextmanager

    @contextmanager
    def block():
        yield

    with pytest.raises(PolicyViolation), block():
        check("short")


def test_every_refusal_has_a_message_in_both_languages():
    from idp.i18n import MESSAGES

    for key in ("password_too_short", "password_too_long", "password_classes",
                "password_is_email", "password_common", "password_mismatch",
                "password_policy"):
        assert MESSAGES[key]["ja"] and MESSAGES[key]["en"]

"""Phone numbers for SMS codes: what people type becomes E.164, or a message key says why not."""

from __future__ import annotations

import pytest

from idp.i18n import MESSAGES
from idp.mfa.phone import mask, normalise

#: (what the user typed, stored E.164)
ACCEPTED = [
    ("090-1234-5678", "+819012345678", "national with hyphens"),
    ("09012345678", "+819012345678", "national digits only"),
    ("090 1234 5678", "+819012345678", "national with spaces"),
    ("(090)1234-5678", "+819012345678", "parentheses"),
    ("090.1234.5678", "+819012345678", "dots"),
    ("０９０－１２３４－５６７８", "+819012345678", "full-width digits and hyphens"),
    ("０９０ー１２３４ー５６７８", "+819012345678", "long-vowel mark from an IME as hyphen"),
    ("＋８１　９０　１２３４　５６７８", "+819012345678", "full-width international"),
    ("  080-1234-5678 ", "+818012345678", "surrounding spaces, 080"),
    ("070-1234-5678", "+817012345678", "070"),
    ("+81 90 1234 5678", "+819012345678", "international with spaces"),
    ("+81-90-1234-5678", "+819012345678", "international with hyphens"),
    ("+819012345678", "+819012345678", "already E.164"),
    ("+1 201-555-0123", "+12015550123", "US fixed line or mobile"),
    ("+44 7400 123456", "+447400123456", "UK mobile"),
]

#: (what the user typed, message key)
REFUSED = [
    ("", "phone_required", "empty"),
    ("   ", "phone_required", "blank"),
    ("03-1234-5678", "phone_not_mobile", "Tokyo fixed line"),
    ("0120-123-456", "phone_not_mobile", "toll free"),
    ("050-1234-5678", "phone_not_mobile", "IP phone"),
    ("020-1234-5678", "phone_not_mobile", "pager"),
    ("+44 20 7946 0000", "phone_not_mobile", "London fixed line"),
    ("090-1234-567", "phone_invalid", "one digit short"),
    ("090-1234-56789", "phone_invalid", "one digit too many"),
    ("+81 70 0000 0000", "phone_invalid", "unallocated range"),
    ("0120-FLOWERS", "phone_invalid", "letters are not keypad digits here"),
    ("090-1234-5678 ext. 12", "phone_invalid", "extension"),
    ("090-1234-5678#", "phone_invalid", "stray symbol"),
    ("090+1234+5678", "phone_invalid", "plus inside"),
    ("+", "phone_invalid", "plus only"),
    ("---", "phone_invalid", "separators only"),
    ("0" * 41, "phone_invalid", "too long"),
]


@pytest.mark.parametrize(("raw", "e164"), [c[:2] for c in ACCEPTED],
                         ids=[c[2] for c in ACCEPTED])
def test_a_typed_mobile_number_is_stored_in_e164(raw, e164):
    assert normalise(raw) == e164


@pytest.mark.parametrize(("raw", "key"), [c[:2] for c in REFUSED], ids=[c[2] for c in REFUSED])
def test_a_number_that_cannot_receive_sms_is_refused_with_a_message(raw, key):
    with pytest.raises(ValueError) as refused:
        normalise(raw)
    assert refused.value.args[0] == key
    assert MESSAGES[key]["ja"] and MESSAGES[key]["en"]


def test_a_national_number_is_read_in_the_given_region():
    assert normalise("07400 123456", region="GB") == "+447400123456"
    with pytest.raises(ValueError, match="phone_not_mobile"):
        normalise("020 7946 0000", region="GB")


@pytest.mark.parametrize(("e164", "shown"), [
    ("+819012345678", "+81 90-****-5678"),
    ("+817012345678", "+81 70-****-5678"),
    ("+12015550123", "+1 201-***-0123"),
    ("+447400123456", "+44 7400 **3456"),
], ids=["jp-090", "jp-070", "us", "uk"])
def test_a_masked_number_shows_the_country_the_first_group_and_the_last_four_digits(e164, shown):
    assert mask(e164) == shown


def test_a_masked_number_hides_the_middle_digits():
    shown = mask(normalise("090-1234-5678"))
    assert "1234" not in shown
    assert shown.endswith("5678")


@pytest.mark.parametrize("value", ["09012345678", "", "+"], ids=["national", "empty", "plus"])
def test_masking_something_that_is_not_e164_is_refused(value):
    with pytest.raises(ValueError, match="phone_invalid"):
        mask(value)

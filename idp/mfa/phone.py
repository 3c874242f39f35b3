"""Phone numbers for SMS codes: what users type, to E.164 (ITU-T E.164) and back for display.

``normalise`` turns what a user typed into the one form we store and send to the SMS
gateway (``+819012345678``); ``mask`` shows a stored number without giving all of it away.
Refusals are ``ValueError`` whose ``args[0]`` is a message key of ``idp/messages/mfa.toml``.
"""

from __future__ import annotations

import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

#: Number types that can receive SMS. ``FIXED_LINE_OR_MOBILE`` is how the metadata types
#: countries whose plans do not tell them apart (the US, Canada). In Japan only mobile
#: numbers (070/080/090) are typed ``MOBILE``; 050 (IP phone), 020 (pager/M2M), fixed lines
#: and 0120 are refused, because a code sent there never arrives and the user is stuck.
SMS_CAPABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})

#: What people type between digits, after NFKC (which folds full-width digits, ``＋``,
#: ``－``, ``（）`` and the ideographic space): hyphens and dashes of every kind, including
#: the katakana long-vowel mark ``ー`` that a Japanese IME often gives for a hyphen.
_SEPARATORS = frozenset(" -.()/‐‑‒–—―−ー─")
_DIGITS = frozenset("0123456789")
#: Longer input is not a phone number; the bound keeps parsing cheap.
_MAX_INPUT = 40


def normalise(raw: str, *, region: str = "JP") -> str:
    """The E.164 form of ``raw``: national form of ``region`` or international with ``+``.

    Raises ``ValueError("phone_required" | "phone_invalid" | "phone_not_mobile")``.
    """
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        raise ValueError("phone_required")
    if len(text) > _MAX_INPUT:
        raise ValueError("phone_invalid")
    body = text[1:] if text.startswith("+") else text
    # phonenumbers is lenient on purpose: it maps letters to keypad digits
    # ("0120-FLOWERS"), reads "ext. 12" as an extension and skips stray text. A number we
    # will send codes to must be exactly what the user meant, so only digits and
    # separators pass.
    if not set(body) <= _DIGITS | _SEPARATORS or not set(body) & _DIGITS:
        raise ValueError("phone_invalid")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        raise ValueError("phone_invalid") from None
    if number.extension or not phonenumbers.is_valid_number(number):
        raise ValueError("phone_invalid")
    if phonenumbers.number_type(number) not in SMS_CAPABLE:
        raise ValueError("phone_not_mobile")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def mask(e164: str) -> str:
    """``+819012345678`` -> ``+81 90-****-5678``: country code, first group, last 4 digits.

    Enough for users to recognise their phone on "we sent a code to ..." without showing
    the whole number to whoever looks at the screen. ``ValueError("phone_invalid")`` when
    ``e164`` is not an E.164 number.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        raise ValueError("phone_invalid") from None
    shown = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    prefix = f"+{number.country_code} "
    if not shown.startswith(prefix):  # metadata without a grouping pattern
        shown = prefix + phonenumbers.national_significant_number(number)
    rest = shown[len(prefix):]
    digits = sum(ch.isdigit() for ch in rest)
    first_group = len(rest) - len(rest.lstrip("0123456789"))
    # Keep the first group only when something in the middle is still hidden.
    keep_head = first_group if digits - first_group > 4 else 0
    out, seen = [], 0
    for ch in rest:
        if ch.isdigit():
            seen += 1
            if keep_head < seen <= digits - 4:
                ch = "*"
        out.append(ch)
    return prefix + "".join(out)

"""Personal and secret data in text: e-mail addresses, phone numbers (the phonenumbers library), card numbers
(Luhn), IBANs (ISO 13616 mod-97) and provider keys (the shapes fto redacts). Each detector returns what it found."""

from __future__ import annotations

import re
from collections.abc import Callable

from fto.orchestrator.secrets import key_shapes

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# A card number as people write it: 13–19 digits in one run, or in groups of four (Amex: 4-6-5).
CARD = re.compile(r"\b(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{5})\b")
RESERVED_DOMAIN = re.compile(r"(^|\.)(example\.(com|org|net)|[^.]+\.(test|invalid|localhost|example))$", re.IGNORECASE)
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
PHONE_HINT = re.compile(r"\+?\d[\d\s().-]{6,}\d")  # only text with a digit run this long can hold a phone number


def emails(text: str) -> list[str]:
    """E-mail addresses (not those at the domains reserved for documentation, such as example.com)."""
    if "@" not in text:  # most text: one fast scan instead of the pattern's
        return []
    return [found for found in EMAIL.findall(text) if not RESERVED_DOMAIN.search(found.rpartition("@")[2])]


def phone_numbers(text: str, region: str = "US") -> list[str]:
    """Valid phone numbers: international ones (+…) anywhere, national ones as numbered in `region` and written
    as phone numbers are (with spaces, dashes, dots or brackets: a bare run of ten digits is more often a number,
    2147483648 say, than a phone)."""
    if _digits(text) < 7 or not PHONE_HINT.search(text):
        return []
    import phonenumbers

    matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    return [m.raw_string for m in matcher if m.raw_string.startswith("+") or re.search(r"[\s().-]", m.raw_string)]


def card_numbers(text: str) -> list[str]:
    """Payment card numbers: 13–19 digits, written as cards are, starting as issuers' do (2–6), that pass the
    Luhn check."""
    found: list[str] = []
    if _digits(text) < 13:
        return found
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and len(set(digits)) > 1 and _luhn(digits):
            found.append(match.group())
    return found


def ibans(text: str) -> list[str]:
    """IBANs whose check digits are right (ISO 13616: the rearranged number mod 97 is 1)."""
    found: list[str] = []
    if _digits(text) < 2:
        return found
    for match in IBAN.finditer(text):
        compact = match.group().replace(" ", "")
        rearranged = compact[4:] + compact[:4]
        number = "".join(str(int(c, 36)) for c in rearranged)
        if int(number) % 97 == 1:
            found.append(match.group())
    return found


def secrets(text: str) -> list[str]:
    """Provider keys, by the shapes fto redacts."""
    return key_shapes(text) if "sk-" in text or "AKIA" in text else []


def find_all(text: str) -> dict[str, int]:
    """How many items of each kind `text` holds (only the kinds it has any of); detectors of numbers run only on
    text with enough digits, the e-mail and key detectors only on text with their marks."""
    digits = _digits(text)
    found = {}
    for code, detect in DETECTORS.items():
        if code in _NUMBERS and digits < _NUMBERS[code]:
            continue
        count = len(detect(text))
        if count:
            found[code] = count
    return found


def _digits(text: str) -> int:
    """How many ASCII digits `text` holds (the detectors of numbers skip text with too few)."""
    return sum(map(text.count, "0123456789"))


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


DETECTORS: dict[str, Callable[[str], list[str]]] = {
    "sensitive_email": emails,
    "sensitive_phone": phone_numbers,
    "sensitive_card": card_numbers,
    "sensitive_iban": ibans,
    "sensitive_secret": secrets,
}
WHAT = {
    "sensitive_email": "e-mail addresses",
    "sensitive_phone": "phone numbers",
    "sensitive_card": "card numbers",
    "sensitive_iban": "IBANs",
    "sensitive_secret": "API keys",
}
_NUMBERS = {"sensitive_phone": 7, "sensitive_card": 13, "sensitive_iban": 2}  # digits each needs at least

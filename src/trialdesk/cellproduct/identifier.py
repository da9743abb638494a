"""Product identifiers in the ISBT 128 structure.

A Donation Identification Number (DIN, ICCBBA ST-001 *ISBT 128 Standard Technical
Specification*, data structure 001) is 13 characters: the facility identification number
(FIN, 5 characters, assigned by ICCBBA — here a site setting), the year (2 digits) and a
sequence number (6 digits) unique within facility and year. Two flag characters follow
(``00`` when unused), and for keyboard entry a check character computed with ISO/IEC 7064
MOD 37-2 over the 13 DIN characters (flags excluded), printed boxed after the flags on the
label. The check character detects every single-character substitution and every adjacent
transposition (ISO/IEC 7064:2003 §1.3), which is why a typed identifier is checked before
anything else.

A product is a DIN plus an ISBT 128 product code (data structure 003: a 5-character product
description code, 1 character for the type of donation, 2 division characters). Every
product derived from one collection keeps the collection's DIN: processing changes the
product description code, splitting into aliquots changes the division (first character
``A``–``Z``, second ``a``–``z``; ``00`` undivided).

The check character comes from python-stdnum's ISO 7064 MOD 37-2 implementation.

>>> din = Din.make("A9999", 15, 1)
>>> din.check, din.text
('M', 'A999915000001 00 M')
>>> parse_din("A9999 15 000001 00 M") == din
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from stdnum.iso7064 import mod_37_2

from trialdesk.errors import TrialdeskError


class IdentifierError(TrialdeskError):
    """A product identifier is malformed or its check character is wrong."""

    code = "identifier_invalid"


_FIN = re.compile(r"^[A-Z][A-Z0-9]{4}$")  # ST-001: alphanumeric, first character a letter
_DESCRIPTION = re.compile(r"^[A-Z][A-Z0-9]{4}$")
_SEPARATORS = re.compile(r"[\s\-/|\[\]]")
_DIVISION_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIVISION_SECOND = "abcdefghijklmnopqrstuvwxyz"


def check_character(din13: str) -> str:
    """The ISO/IEC 7064 MOD 37-2 check character of the 13 DIN characters.

    >>> check_character("G123489654321")  # ISO/IEC 7064 worked example
    'Y'
    """
    if len(din13) != 13 or not (din13.isascii() and din13.isalnum()) or din13 != din13.upper():
        raise IdentifierError("a DIN is 13 letters or digits", where="DIN")
    return str(mod_37_2.calc_check_digit(din13))


@dataclass(frozen=True, order=True)
class Din:
    """An ISBT 128 Donation Identification Number with its flags and check character."""

    facility: str
    year: int
    sequence: int
    flags: str = "00"

    def __post_init__(self) -> None:
        if not _FIN.match(self.facility):
            raise IdentifierError(f"'{self.facility}' is not a facility identification number "
                                  "(5 letters or digits, the first a letter)", where="facility")
        if not 0 <= self.year <= 99:
            raise IdentifierError(f"year {self.year} is not two digits", where="year")
        if not 1 <= self.sequence <= 999_999:
            raise IdentifierError(f"sequence {self.sequence} is not 1–999999", where="sequence")
        if len(self.flags) != 2 or not self.flags.isalnum():
            raise IdentifierError(f"flags '{self.flags}' are not two characters", where="flags")

    @classmethod
    def make(cls, facility: str, year: int, sequence: int, flags: str = "00") -> Din:
        """A DIN; ``year`` may be given in full (2026) or as its last two digits."""
        return cls(facility.upper(), year % 100 if year >= 100 else year, sequence, flags)

    @property
    def din13(self) -> str:
        return f"{self.facility}{self.year:02d}{self.sequence:06d}"

    @property
    def check(self) -> str:
        return check_character(self.din13)

    @property
    def text(self) -> str:
        """The keyboard-entry form: DIN, flags, check character."""
        return f"{self.din13} {self.flags} {self.check}"

    @property
    def spaced(self) -> str:
        """As printed on a label: facility, year, sequence, flags, [check]."""
        return f"{self.facility} {self.year:02d} {self.sequence:06d} {self.flags} [{self.check}]"

    @property
    def barcode(self) -> str:
        """The value the DIN barcode carries (no check character: the symbology checks itself)."""
        return f"{self.din13}{self.flags}"

    def __str__(self) -> str:
        return self.text


def parse_din(text: str, *, require_check: bool = False) -> Din:
    """A DIN typed or scanned: 13 characters, optional flags, and the check character.

    Spaces, hyphens, slashes and brackets are ignored; a leading ISBT 128 data identifier
    ``=`` is dropped. Typed text must carry the check character (15 + 1 or 13 + 1
    characters); a scanned barcode value (13 or 15 characters) has none and is trusted to
    the symbology's own check (``require_check`` refuses it: typed text needs the check
    character). A wrong check character is refused, never corrected.
    """
    raw = _SEPARATORS.sub("", text).upper()
    if raw.startswith("="):
        raw = raw[1:]
    if not (raw.isascii() and raw.replace("*", "").isalnum()):
        raise IdentifierError(f"'{text}' has characters a DIN cannot have", where="product id")
    if len(raw) in (13, 15):
        if require_check:
            raise IdentifierError(f"'{text}' has no check character; type the DIN with its flags "
                                  "and the boxed check character", where="product id")
        body, flags, given = raw[:13], raw[13:] or "00", None
    elif len(raw) in (14, 16):
        body, flags, given = raw[:13], raw[13:-1] or "00", raw[-1]
    else:
        raise IdentifierError(f"'{text}' is {len(raw)} characters; a DIN is 13, with flags 15, "
                              "and 1 more for the check character", where="product id")
    if not (body[5:].isdigit() and _FIN.match(body[:5])):
        raise IdentifierError(f"'{body}' is not facility (5), year (2), sequence (6)",
                              where="product id")
    din = Din(body[:5], int(body[5:7]), int(body[7:]), flags)
    if given is not None and given != din.check:
        raise IdentifierError(f"'{text}': the check character does not match — the identifier "
                              "was mistyped or misread; enter it again", where="product id")
    return din


@dataclass(frozen=True, order=True)
class ProductCode:
    """An ISBT 128 product code: description code, type of donation, division.

    >>> code = ProductCode("S1234", "A")
    >>> code.text, code.divided(0).text, code.divided(1).divided(0).text
    ('S1234A00', 'S1234AA0', 'S1234ABa')
    """

    description: str
    donation_type: str = "0"
    division: str = "00"

    def __post_init__(self) -> None:
        if not _DESCRIPTION.match(self.description):
            raise IdentifierError(f"'{self.description}' is not a product description code "
                                  "(5 letters or digits, the first a letter)", where="product code")
        if len(self.donation_type) != 1 or not self.donation_type.isalnum():
            raise IdentifierError(f"'{self.donation_type}' is not one character",
                                  where="type of donation")
        if not re.match(r"^(00|[A-Z][a-z0])$", self.division):
            raise IdentifierError(f"'{self.division}' is not a division ('00', or A–Z then a–z or 0)",
                                  where="division")

    @property
    def text(self) -> str:
        return f"{self.description}{self.donation_type}{self.division}"

    def divided(self, index: int) -> ProductCode:
        """Part ``index`` (from 0) of a split: an undivided product's parts are A0…Z0; a
        part's own parts keep its letter and add a…z (ST-001 division characters)."""
        if not 0 <= index < 26:
            raise IdentifierError(f"part {index + 1} of 26 at most", where="division")
        if self.division == "00":
            return replace(self, division=_DIVISION_FIRST[index] + "0")
        if self.division[1] == "0":
            return replace(self, division=self.division[0] + _DIVISION_SECOND[index])
        raise IdentifierError(f"{self.text} is already divided twice", where="division")

    def __str__(self) -> str:
        return self.text


def parse_product_code(text: str) -> ProductCode:
    raw = _SEPARATORS.sub("", text)
    if len(raw) != 8:
        raise IdentifierError(f"'{text}' is not an 8-character product code", where="product code")
    return ProductCode(raw[:5].upper(), raw[5].upper(), raw[6].upper() + raw[7])


@dataclass(frozen=True, order=True)
class ProductId:
    """One product: its collection's DIN and its own product code."""

    din: Din
    code: ProductCode

    @property
    def text(self) -> str:
        return f"{self.din.text} {self.code.text}"

    @property
    def barcode(self) -> str:
        """DIN with flags, then the product code, as one Code 128 value."""
        return f"{self.din.barcode}{self.code.text}"

    def __str__(self) -> str:
        return self.text


def parse_product_id(text: str, *, require_check: bool = False) -> ProductId:
    """A product identifier typed (with the DIN's check character) or scanned.

    >>> parse_product_id("A999915000001 00 M S1234A00").code.text
    'S1234A00'
    """
    raw = _SEPARATORS.sub("", text)
    if len(raw) < 9:
        raise IdentifierError(f"'{text}' is too short for a DIN and a product code",
                              where="product id")
    return ProductId(parse_din(raw[:-8], require_check=require_check),
                     parse_product_code(raw[-8:]))

"""Eligibility text split into inclusion and exclusion items.

Registry criteria are free text: markdown bullets in v2 records (``* item``, ``1. item``,
nested lists indented under their parent), hyphen bullets with hard-wrapped lines in classic
XML, and headings that vary ("Inclusion Criteria:", "Key Exclusion Criteria",
"DISEASE CHARACTERISTICS:", "For parent participants:", donor criteria). Each top-level
bullet is one item; nested bullets stay with their parent, in its text. Headings that are
neither inclusion nor exclusion keep the current kind and become the item's ``group``
(a population or sub-study).

>>> items = split_criteria("Inclusion Criteria:\\n\\n* Age \\\\>= 18 years\\n* Consent\\n\\n"
...                        "Exclusion Criteria:\\n\\n* Pregnant\\n  * or lactating")
>>> [(i.kind, i.text) for i in items]
[('inclusion', 'Age >= 18 years'), ('inclusion', 'Consent'), ('exclusion', 'Pregnant\\n- or lactating')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>^~|=])")
_BULLET = re.compile(r"^(\s*)(?:[*\-•·]|\d{1,2}[.)]|[a-zA-Z][.)]|\(\w{1,3}\))\s+(.*)$")
_EMPTY_BULLET = re.compile(r"^\s*[*\-•]\s*$")
_HEADING_WORDS = re.compile(
    r"criteria|characteristics|participants?|patients?|subjects?|donors?|recipients?|therapy|"
    r"population|cohort|sub-?study|part\s+\w+|group",
    re.I,
)


@dataclass(frozen=True)
class Item:
    """One criterion as written: ``kind`` inclusion or exclusion, ``text`` with nested lines."""

    kind: str
    text: str
    group: str | None = None


def unescape(text: str) -> str:
    r"""Undo the registry's markdown escapes (``\>``, ``\<``, ``\^``, ``\[``).

    >>> unescape(r"eGFR \< 30 mL/min/1.73m\^2 \[Schwartz\]")
    'eGFR < 30 mL/min/1.73m^2 [Schwartz]'
    """
    return _ESCAPE.sub(r"\1", text)


_PLAIN = re.compile(r"^(key|main|general|additional)?\s*(inclusion|exclusion)s?(\s+criteria)?$", re.I)
_KIND = re.compile(r"^(?P<who>.*?)\b(?P<kind>inclusion|exclusion)s?\b(?:\s+criteria)?(?P<rest>.*)$", re.I)


def _heading(line: str) -> tuple[str | None, str | None] | None:
    """(kind or None, group or None) when ``line`` is a heading, else None.

    "Exclusion Criteria:" sets the kind; "Donor Inclusion Criteria:" sets the kind and the
    group "Donor"; "For parent participants:" or "DISEASE CHARACTERISTICS:" only the group.
    """
    s = line.strip().strip("*_#").strip()
    if not s or len(s) > 90:
        return None
    title = s.rstrip(":").strip()
    ends = s.endswith(":")
    short = len(s.split()) <= 10
    m = _KIND.match(title)
    if m and short and (_PLAIN.match(title) or ends or "criteria" in title.lower()):
        who = f"{m.group('who')} {m.group('rest')}".strip(" -–,()")
        return m.group("kind").lower(), (who or None) if not _PLAIN.match(title) else None
    if re.match(r"^(eligibility|selection)\s+criteria\b", title, re.I):
        return "inclusion", None
    if ends and (s.isupper() or _HEADING_WORDS.search(s)) and short:
        return None, title
    return None


def split_criteria(text: str | None) -> list[Item]:
    """Split registry eligibility text into items (see the module docstring)."""
    if not text:
        return []
    lines = unescape(text.replace("\r\n", "\n")).split("\n")
    items: list[Item] = []
    kind, group = "inclusion", None
    current: list[str] | None = None  # lines of the item being read
    top: int | None = None  # indent of top-level bullets in this section
    item_indent = 0  # indent of the current item's bullet
    blank_before = False

    def close() -> None:
        nonlocal current
        if current is not None:
            body = "\n".join(current).strip()
            if body:
                items.append(Item(kind, body, group))
        current = None

    for raw in lines:
        line = raw.rstrip()
        if not line.strip() or _EMPTY_BULLET.match(line):
            blank_before = True
            continue
        bullet = _BULLET.match(line)
        indent = len(line) - len(line.lstrip())
        heading = None if bullet else _heading(line)
        if heading is not None and (current is None or indent <= item_indent):
            close()
            found, title = heading
            if found is not None:
                kind, group, top = found, title, None
            else:
                group = title
            blank_before = False
            continue
        if bullet:
            level = len(bullet.group(1))
            if top is None or level <= top or current is None:
                close()
                top = level if top is None or level < top else top
                current, item_indent = [bullet.group(2).strip()], level
            else:  # nested under the current item
                current.append(f"- {bullet.group(2).strip()}")
        elif current is not None and (indent > item_indent or not blank_before):
            current[-1] = f"{current[-1]} {line.strip()}"  # a wrapped line of the last bullet
        elif top is None:
            # Paragraphs in a section without bullets are items themselves; a lead-in
            # sentence before the bullets ("Subjects who meet ...:") is dropped below.
            close()
            current, item_indent = [line.strip()], indent
        else:
            close()  # a note after the list ("Note: other criteria may apply")
        blank_before = False
    close()
    return [i for i in items if not _lead_in(i.text)]


def _lead_in(text: str) -> bool:
    """A sentence introducing a list or closing it, not a criterion."""
    low = text.lower()
    return (low.endswith(":") and "\n" not in text) or low.startswith(
        ("note: other protocol", "the information listed above", "for more information regarding")
    )

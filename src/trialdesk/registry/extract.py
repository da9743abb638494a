"""Rule drafts from criteria text: a rule-based extractor for a person to review.

The extractor finds what the fact dictionary can hold — age bounds, sex, laboratory
thresholds with units or × ULN, performance status with its scale, life expectancy, time
since immunotherapy, pregnancy and consent — and writes a rule in the criteria language
for the whole item, with the matched span, the facts, the unit and a confidence. Every
draft parses and type-checks against the dictionary (:func:`draft_item` drops any that
would not). An item with nothing computable gets no rule: it becomes an investigator
question with its own text. Nothing here decides eligibility; a person accepts, edits or
rejects each draft (:mod:`trialdesk.registry.review`).

>>> d = draft_item("ANC ≥ 750/µL and platelets > 75,000/mm³", "inclusion")
>>> d.rule
'anc >= 750 [/mm3] and platelets > 75000 [/mm3]'
>>> draft_item("Creatinine ≤ 1.5 × ULN or GFR ≥ 70 mL/min/1.73 m²", "inclusion").rule
'creatinine_x_uln <= 1.5 or gfr >= 70 [mL/min/1.73m2]'
>>> draft_item("Able to swallow tablets", "inclusion").rule is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from trialdesk.criteria.parser import parse
from trialdesk.criteria.typecheck import bind
from trialdesk.errors import CriteriaError
from trialdesk.facts.dictionary import BASE
from trialdesk.protocol.model import Draft
from trialdesk.registry.items import unescape

# ---------------------------------------------------------------------------
# Text normalisation

_SUBSTITUTIONS = [
    (
        re.compile(
            r"≥|⩾|=>|>\s*=|\bgreater than or equal to\b|\bequal to or greater than\b|"
            r"\bequal or greater than\b",
            re.I,
        ),
        "≥",
    ),
    (
        re.compile(
            r"≤|⩽|=<|<\s*=|\bless than or equal to\b|\bequal to or less than\b|"
            r"\bequal or less than\b",
            re.I,
        ),
        "≤",
    ),
    (re.compile(r"[µμ]"), "u"),
    (re.compile(r"[³]"), "3"),
    (re.compile(r"[²]"), "2"),
    (re.compile(r"[⁹]"), "9"),
    (re.compile(r"\u2009|\u00a0"), " "),
    (re.compile(r"[–—]"), "-"),
]


def normalise_text(text: str) -> str:
    """One spelling for operators, micro signs and superscripts; same length is not kept.

    >>> normalise_text(r"ANC \\>= 750/μL")
    'ANC ≥ 750/uL'
    """
    out = unescape(text)
    for pattern, repl in _SUBSTITUTIONS:
        out = pattern.sub(repl, out)
    return out


# ---------------------------------------------------------------------------
# Units

_UNIT_SPELLINGS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?:x|×|\*)?\s*10\s*\^?\s*9\s*/\s*l$", re.I), "10^9/L"),
    (re.compile(r"^(?:x|×|\*)?\s*10\s*\^?\s*3\s*/\s*(?:ul|mm3|mm\^3)$", re.I), "10^3/uL"),
    (re.compile(r"^(?:k|thou)\s*/\s*(?:ul|mm3)$", re.I), "10^3/uL"),
    (
        re.compile(
            r"^(?:cells\s*)?/\s*(?:mm3|mm\^3|cu\.?\s*mm|ul|ml)$|^per\s+(?:cu\.?\s*mm|mm3|ul)$"
            r"|^cells\s*/\s*(?:mm3|mm\^3|ul)$|^cells$",
            re.I,
        ),
        "/mm3",
    ),
    (re.compile(r"^g(?:m|r)?\s*/\s*dl$", re.I), "g/dL"),
    (re.compile(r"^g\s*/\s*l$", re.I), "g/L"),
    (re.compile(r"^mg\s*/\s*dl$", re.I), "mg/dL"),
    (re.compile(r"^u(?:mol|M)\s*/\s*l$", re.I), "umol/L"),
    (re.compile(r"^mmol\s*/\s*l$", re.I), "mmol/L"),
    (re.compile(r"^(?:u|iu)\s*/\s*l$", re.I), "U/L"),
    (re.compile(r"^ml\s*/\s*min(?:ute)?\s*/\s*1\.73\s*m\s*\^?\s*2$", re.I), "mL/min/1.73m2"),
    (re.compile(r"^ml\s*/\s*min(?:ute)?$", re.I), "mL/min"),
    (re.compile(r"^%$"), "%"),
    (re.compile(r"^kgs?$", re.I), "kg"),
    (re.compile(r"^(?:pounds|lbs?)$", re.I), "lb"),
    (re.compile(r"^meq\s*/\s*l$", re.I), "mEq/L"),
]
_UNIT = (
    r"(?:x|×|\*)?\s*10\s*\^?\s*[39]\s*/\s*(?:l|ul|mm3|mm\^3)\b|(?:k|thou)\s*/\s*(?:ul|mm3)\b|"
    r"cells\s*/\s*(?:mm3|mm\^3|ul)\b|/\s*(?:mm3|mm\^3|cu\.?\s*mm|ul|ml)\b|per\s+(?:cu\.?\s*mm|mm3|ul)\b|"
    r"g(?:m|r)?\s*/\s*dl\b|g\s*/\s*l\b|mg\s*/\s*dl\b|u(?:mol|M)\s*/\s*l\b|mmol\s*/\s*l\b|"
    r"i?u\s*/\s*l\b|ml\s*/\s*min(?:ute)?(?:\s*/\s*1\.73\s*m\s*\^?\s*2)?|%|cells\b|kgs?\b"
)


def unit_of(text: str | None) -> str | None:
    """The criteria language's spelling of a unit as written (None if not recognised).

    >>> unit_of("cells/mm^3"), unit_of("gm/dl"), unit_of("ml/minute/1.73m2"), unit_of("K/uL")
    ('/mm3', 'g/dL', 'mL/min/1.73m2', '10^3/uL')
    """
    if text is None:
        return None
    t = normalise_text(text).strip()
    for pattern, unit in _UNIT_SPELLINGS:
        if pattern.match(t):
            return unit
    return None


# ---------------------------------------------------------------------------
# Comparisons


_NUM = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+)"
_OPS_BEFORE: list[tuple[str, str]] = [
    (r"≥|\bat least\b|\bno less than\b|\bnot less than\b|\bminimum of\b|\bof at least\b", ">="),
    (
        r"≤|\bno more than\b|\bnot more than\b|\bno greater than\b|\bnot greater than\b|\bup to\b|"
        r"\bmaximum of\b|\bat most\b|\bnot exceeding\b",
        "<=",
    ),
    (r">|\bgreater than\b|\bmore than\b|\babove\b|\bover\b|\bhigher than\b|\bexceeding\b|\bexceeds\b", ">"),
    (r"<|\bless than\b|\bbelow\b|\bunder\b|\blower than\b|\bfewer than\b", "<"),
    (r"=|\bequal to\b", "=="),
]
_OPS_AFTER: list[tuple[str, str]] = [
    (r"or (?:more|greater|higher|above|over)|and (?:above|over|older)", ">="),
    (r"or (?:less|lower|below|fewer|under)|and (?:below|under|younger)", "<="),
]
_OP_BEFORE = re.compile("|".join(f"(?:{p})" for p, _ in _OPS_BEFORE), re.I)
_ULN = (
    r"(?:x|×|times)?\s*(?:the\s+)?(?:institutional\s+)?"
    r"(?:ULN|upper limits?(?: of (?:the\s+)?normal)?|max(?:imum)?\s+normal(?:\s+values?)?|norm(?:al)?\b)"
)


@dataclass(frozen=True)
class Threshold:
    """One comparison found in text: ``fact op value unit`` (a range has ``high``)."""

    fact: str
    op: str  # "<", "<=", ">", ">=", "==", "between"
    value: float
    unit: str | None
    start: int
    end: int
    high: float | None = None

    def literal(self, value: float) -> str:
        number = f"{value:g}" if abs(value) < 1e15 else str(value)
        return f"{number} [{self.unit}]" if self.unit and self.unit != "ULN" else number

    def rule(self) -> str:
        if self.op == "between":
            assert self.high is not None  # a range always has its upper end
            return f"{self.fact} between {self.literal(self.value)} and {self.literal(self.high)}"
        return f"{self.fact} {self.op} {self.literal(self.value)}"


def _op_of(word: str, table: list[tuple[str, str]]) -> str:
    for pattern, op in table:
        if re.fullmatch(pattern, word.strip(), re.I):
            return op
    raise ValueError(word)  # pragma: no cover - the caller matched one of the patterns


def _number(text: str) -> float:
    return float(text.replace(",", ""))


# A unit the extractor does not know is kept as written (a threshold, but never a rule).
_RAW_UNIT = r"meq\s*/\s*l\b|pounds\b|lbs?\b|(?:[a-z]{1,5}\s*/\s*[a-z][a-z0-9.]{0,5})\b"
_COMPARISON = re.compile(
    rf"(?:(?P<between>\bbetween\b)|(?P<op>{_OP_BEFORE.pattern}))?\s*(?:of\s+|is\s+|:\s*)?"
    rf"(?:(?:the\s+)?(?:reference|normal)\s+range\s+)?(?P<a>{_NUM})\s*"
    rf"(?(between)(?:(?P<unit1>{_UNIT})\s*)?)(?:(?P<dash>-|to|and)\s*(?P<b>{_NUM})\s*)?"
    rf"(?P<uln>{_ULN})?\s*(?P<unit>{_UNIT}|{_RAW_UNIT})?\s*(?P<uln2>{_ULN})?\s*"
    rf"(?P<after>{'|'.join(p for p, _ in _OPS_AFTER)})?",
    re.I,
)


Found = tuple[str, float, float | None, str | None, int, int]


def comparisons(text: str, start: int = 0, end: int | None = None) -> list[Found]:
    """(op, value, high, unit, start, end) of each number with an operator in ``text[start:end]``."""
    out: list[Found] = []
    stop = len(text) if end is None else end
    for m in _COMPARISON.finditer(text, start, stop):
        op_word, after = m.group("op"), m.group("after")
        uln = bool(m.group("uln") or m.group("uln2"))
        written = m.group("unit")
        if m.group("unit1") and (m.group("b") is None or written is None):
            written = m.group("unit1")  # "between 9 g/dL and 12": the unit after the first number
        unit = "ULN" if uln else unit_of(written) or (re.sub(r"\s+", "", written) if written else None)
        if m.group("between"):
            # "between 18 and 65", "between 9 and 12 g/dL": a range with both ends
            if m.group("b") is not None:
                a, b = _number(m.group("a")), _number(m.group("b"))
                out.append(("between", min(a, b), max(a, b), unit, m.start("between"), m.end()))
            continue
        if m.group("b") is not None and m.group("dash") in ("-", "to") and not op_word:
            out.append(("between", _number(m.group("a")), _number(m.group("b")), unit, m.start("a"), m.end()))
            continue
        if op_word:
            op = _op_of(op_word, _OPS_BEFORE)
        elif after:
            op = _op_of(after, _OPS_AFTER)
        else:
            continue
        first = m.start("op") if op_word else m.start("a")
        out.append((op, _number(m.group("a")), None, unit, first, m.end()))
    return out


# ---------------------------------------------------------------------------
# What the numbers are about

_LABS: list[tuple[str, str, tuple[str | None, ...]]] = [
    # (fact, name pattern, units the fact may be given in)
    ("gfr", r"\be?GFR\b|glomerular filtration rate|creatinine clearance|\bCrCl\b", ("mL/min/1.73m2",)),
    (
        "anc",
        r"\bANC\b|absolute neutrophil count|neutrophils?(?: count)?|\bAGC\b|absolute granulocyte count",
        ("/mm3", "10^9/L", "10^3/uL"),
    ),
    ("platelets", r"\bplatelets?(?: count)?|\bPLT(?: count)?\b", ("/mm3", "10^9/L", "10^3/uL")),
    ("hemoglobin", r"\bha?emoglobin\b(?!\s*A1c)|\bHg?b\b(?!\s*A1c)|\bHGB\b", ("g/dL", "g/L", "mmol/L")),
    ("creatinine", r"\b(?:serum )?creatinine\b(?! clearance)", ("mg/dL", "umol/L", "ULN")),
    ("bilirubin", r"\b(?:total )?bilirubin\b", ("mg/dL", "umol/L", "ULN")),
    ("ast", r"\bAST\b|\bSGOT\b|aspartate (?:amino)?trans(?:fer|amin)ase", ("U/L", "ULN")),
    ("alt", r"\bALT\b|\bSGPT\b|alanine (?:amino)?trans(?:fer|amin)ase", ("U/L", "ULN")),
    ("alp", r"\bALP\b|alkaline phosphatase", ("U/L", "ULN")),
    ("inr", r"\bINR\b|international normali[sz]ed ratio", (None,)),
    ("weight", r"(?<!birth )(?<!birth)\b(?:body )?weight\b(?! loss| gain| change)", ("kg", "lb")),
    ("lvef", r"\bLVEF\b|ejection fraction", ("%",)),
    ("sodium", r"\bsodium\b", ("mmol/L",)),
    ("potassium", r"\bpotassium\b", ("mmol/L",)),
]
_DURATION = re.compile(r"\s*(?:years?|months?|weeks?|days?|hours?|h)\b", re.I)
_TRANSAMINASES = re.compile(r"\b(?:hepatic )?transaminases\b", re.I)
_ULN_FACTS = {"creatinine", "bilirubin", "ast", "alt", "alp"}
_PERFORMANCE = [
    ("lansky", r"\bLansky\b"),
    ("karnofsky", r"\bKarnofsky\b|\bKPS\b"),
    ("ecog", r"\bECOG\b|\bZubrod\b|\bWHO performance\b|Eastern Cooperative (?:Oncology )?Group"),
]
_AGE = re.compile(
    r"\bage[ds]?\b|\byears? (?:old|of age)\b|\bmonths? (?:old|of age)\b|\bat the time of\b|"
    r"\b(?:men|women|adults?|males?|females?)\b",
    re.I,
)
_AGE_UNIT = re.compile(r"\s*(years?|yrs?|months?|weeks?|days?|hours?)\b", re.I)
_RANGE_UNIT = re.compile(r"\s*(?:to|-)\s*\d+\s*(years?|months?)", re.I)
_SHARED_UNIT = re.compile(rf"\s*(?:or|and)\s*(?:<|>|≤|≥)\s*{_NUM}\s*(years?|months?)\b", re.I)


def _shared_unit(text: str, end: int) -> str | None:
    """ "<30 or >69 years old": the first number takes the unit of the second."""
    m = _SHARED_UNIT.match(text, end)
    return m.group(2) if m else None


_LIFE = re.compile(r"life expectancy|expected survival|expected lifespan|life span", re.I)
_TIME_UNIT = re.compile(r"\s*(years?|months?|weeks?|days?|hours?)\b", re.I)


_LAB_NAMES = [(fact, re.compile(pattern, re.I)) for fact, pattern, _ in _LABS]
_SCALE_NAMES = [(fact, re.compile(pattern, re.I)) for fact, pattern in _PERFORMANCE]


def fact_of_name(name: str) -> str | None:
    """The dictionary fact a test or score name refers to (None when it knows none).

    >>> [fact_of_name(n) for n in ("Absolute neutrophil count", "HbA1c", "ECOG performance status")]
    ['anc', None, 'ecog']
    """
    for fact, pattern in _LAB_NAMES:
        if pattern.search(name):
            return fact
    if _TRANSAMINASES.search(name):
        return "ast"
    for fact, pattern in _SCALE_NAMES:
        if pattern.search(name):
            return fact
    return "life_expectancy" if _LIFE.search(name) else None


@dataclass(frozen=True)
class Atom:
    """One computable piece of an item: a rule fragment and where it was found."""

    rule: str
    facts: tuple[str, ...]
    unit: str | None
    start: int
    end: int
    confidence: float
    method: str
    thresholds: tuple[Threshold, ...] = ()


# Words one of which a fact's name pattern (above) cannot match without, in lower case: a
# pattern is only run on ASCII text holding one of them (other text runs them all).
_LAB_WORDS = {
    "gfr": ("gfr", "glomerular filtration rate", "creatinine clearance", "crcl"),
    "anc": ("anc", "neutrophil", "agc", "absolute granulocyte count"),
    "platelets": ("platelet", "plt"),
    "hemoglobin": ("emoglobin", "hb", "hgb"),
    "creatinine": ("creatinine",),
    "bilirubin": ("bilirubin",),
    "ast": ("ast", "sgot", "aspartate"),
    "alt": ("alt", "sgpt", "alanine"),
    "alp": ("alp", "alkaline phosphatase"),
    "inr": ("inr", "international normali"),
    "weight": ("weight",),
    "lvef": ("lvef", "ejection fraction"),
    "sodium": ("sodium",),
    "potassium": ("potassium",),
}


def _mentions(text: str) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    low = text.lower() if text.isascii() else None
    for fact, pattern in _LAB_NAMES:
        if low is not None and not any(w in low for w in _LAB_WORDS[fact]):
            continue
        found += [(fact, m.start(), m.end()) for m in pattern.finditer(text)]
    for m in _TRANSAMINASES.finditer(text):
        found += [("ast", m.start(), m.end()), ("alt", m.start(), m.end())]
    # "creatinine clearance" is gfr, not creatinine: the lookahead above handles it
    found.sort(key=lambda x: (x[1], x[0]))
    return found


def _lab_atoms(text: str, kind: str) -> list[Atom]:
    atoms: list[Atom] = []
    mentions = _mentions(text)
    allowed = {fact: units for fact, _, units in _LABS}
    i = 0
    while i < len(mentions):
        group = [mentions[i]]
        j = i + 1
        # "ALT or AST", "AST/ALT", "AST and ALT": names sharing one comparison
        while j < len(mentions) and re.fullmatch(
            r"[\s(),/]*(?:\b(?:or|and)\b)?[\s(),/]*", text[group[-1][2] : mentions[j][1]], re.I
        ):
            group.append(mentions[j])
            j += 1
        end_limit = mentions[j][1] if j < len(mentions) else len(text)
        window_end = min(end_limit, group[-1][2] + 60)
        found = comparisons(text, group[-1][2], window_end)
        if found:
            op, value, high, unit, s, e = found[0]
            if unit is None and _DURATION.match(text, e):
                i = j
                continue  # "stable for < 3 months": a duration, not a value of the test
            if re.search(r"[.;]\s", text[group[-1][2] : s]):
                i = j
                continue
            facts = list(dict.fromkeys(fact for fact, _, _ in group))
            pieces = []
            thresholds = []
            unruled: list[Threshold] = []
            for fact in facts:
                name = f"{fact}_x_uln" if unit == "ULN" and fact in _ULN_FACTS else fact
                if unit == "ULN" and fact not in _ULN_FACTS:
                    continue
                t = Threshold(name, op, value, unit, s, e, high)
                if unit not in allowed[fact] and not (unit is None and None in allowed[fact]):
                    unruled.append(t)  # read, but no rule: the unit is missing or unknown
                    continue
                thresholds.append(t)
                pieces.append(t.rule())
            if pieces:
                between = text[group[0][2] : group[-1][1]] if len(group) > 1 else ""
                joiner = (
                    " or "
                    if re.search(r"\bor\b", between) or ("/" in between and kind == "exclusion")
                    else " and "
                )
                rule = joiner.join(pieces)
                rule = f"({rule})" if len(pieces) > 1 else rule
                conf = 0.9 if unit and unit != "ULN" else 0.85
                atoms.append(
                    Atom(
                        rule,
                        tuple(t.fact for t in thresholds),
                        unit,
                        group[0][1],
                        e,
                        conf,
                        "laboratory threshold",
                        tuple(thresholds),
                    )
                )
            if unruled:
                atoms.append(Atom("", (), unit, group[0][1], e, 0.0, "laboratory threshold", tuple(unruled)))
        i = j
    return atoms


def _performance_atoms(text: str) -> list[Atom]:
    scales = [(fact, m) for fact, pattern in _SCALE_NAMES for m in pattern.finditer(text)]
    if not scales:
        return []
    names = sorted({f for f, _ in scales})
    first = min(m.start() for _, m in scales)
    last = max(m.end() for _, m in scales)
    fact = "performance_score" if names == ["karnofsky", "lansky"] else names[0] if len(names) == 1 else None
    if fact is None:
        return []
    rest = text[last : last + 80]
    m = re.search(rf"{_NUM}\s*(?:,\s*{_NUM}\s*)*,?\s*(?:or|and)\s+{_NUM}\b", rest)
    listed = m is not None and not re.search(r"≥|≤|<|>", rest[: m.start()])
    if listed and m is not None:
        values = [float(v) for v in re.findall(r"\d+", m.group(0))]
        op, value, unit = (
            ("<=", max(values), None) if min(values) == 0 and fact == "ecog" else (">=", min(values), None)
        )
        end = last + m.end()
    else:
        found = comparisons(text, last, min(len(text), last + 80))
        if not found:
            return []
        op, value, high, unit, _, end = found[0]
        if op == "between":
            if not (fact == "ecog" and value == 0 and high is not None):
                return []
            # "ECOG 0-1": read as the range it is; on a scale from 0 the rule is "<= 1"
            if unit is not None:
                return []
            threshold = Threshold(fact, op, value, unit, first, end, high)
            return [
                Atom(
                    f"{fact} <= {high:g}", (fact,), None, first, end, 0.85, "performance status", (threshold,)
                )
            ]
    if unit not in (None, "%"):
        return []
    return [
        Atom(
            f"{fact} {op} {value:g}",
            (fact,),
            None,
            first,
            end,
            0.85,
            "performance status",
            (Threshold(fact, op, value, unit, first, end),),
        )
    ]


def _age_atoms(text: str) -> list[Atom]:
    atoms: list[Atom] = []
    if not _AGE.search(text):
        return atoms
    # "aged 18 months to 18 years": each end with its own unit
    for m in re.finditer(
        rf"{_NUM}\s*(years?|months?)\s*(?:to|-|and)\s*{_NUM}\s*(years?|months?)", text, re.I
    ):
        for value, word, op in ((m.group(1), m.group(2), ">="), (m.group(3), m.group(4), "<=")):
            fact = "age_years" if word.lower().startswith("y") else "age_months"
            unit = word.lower().rstrip("s")
            atoms.append(
                Atom(
                    f"{fact} {op} {_number(value):g}",
                    (fact,),
                    unit,
                    m.start(),
                    m.end(),
                    0.9,
                    "age",
                    (Threshold(fact, op, _number(value), unit, m.start(), m.end()),),
                )
            )
    for op, value, high, _unit, s, e in comparisons(text):
        if any(a.start <= s < a.end for a in atoms):
            continue
        if re.search(
            r"\bfor\s+(?:patients|individuals|those|children|subjects|participants|adolescents|adults|"
            r"women|men|females|males)\b[^.;]*$",
            text[max(0, s - 30) : s],
            re.I,
        ):
            continue  # "for patients > 16 years of age": a condition on another part, not a bound
        unit_match = _AGE_UNIT.match(text, e) or _RANGE_UNIT.match(text, e)
        shared = _shared_unit(text, e)
        if unit_match is not None:
            word, end = unit_match.group(1).lower(), unit_match.end()
        elif shared is not None:
            word, end = shared.lower(), e
        elif re.search(r"\bage[ds]?\s*(?:of\s*)?$", text[max(0, s - 10) : s], re.I):
            word, end = "years", e  # "aged 18 - 65": an age without a unit is in years
        else:
            continue
        if re.search(r"gestation", text[max(0, s - 30) : s], re.I):
            continue  # gestational age is not the patient's age
        if not _AGE.search(text[max(0, s - 50) : end + 25]):
            continue
        if _LIFE.search(text[max(0, s - 40) : s]) or re.search(
            r"\b(for|within|since|after|prior)\b\s*$", text[max(0, s - 15) : s], re.I
        ):
            continue
        age_unit = {"y": "year", "m": "month", "w": "week", "d": "day", "h": "hour"}[word[0]]
        age_fact = {"year": "age_years", "month": "age_months"}.get(age_unit)
        threshold = Threshold(age_fact or "age", op, value, age_unit, s, end, high)
        if age_fact is None or (age_fact == "age_years" and (value % 1 or (high or 0) % 1)):
            atoms.append(Atom("", (), age_unit, s, end, 0.0, "age", (threshold,)))
            continue
        rule = (
            f"{age_fact} between {value:g} and {high:g}"
            if op == "between" and high is not None
            else f"{age_fact} {op} {value:g}"
        )
        atoms.append(Atom(rule, (age_fact,), age_unit, s, end, 0.9, "age", (threshold,)))
    # "18 years and older", "over 18 years": the number comes before its unit
    for m in re.finditer(
        rf"{_NUM}\s*(years?|months?)\s*(?:of age\s*|old\s*)?(and|or)\s*(older|over|above)", text, re.I
    ):
        if any(a.start <= m.start() < a.end for a in atoms):
            continue
        fact = "age_years" if m.group(2).lower().startswith("y") else "age_months"
        value = _number(m.group(1))
        atoms.append(
            Atom(
                f"{fact} >= {value:g}",
                (fact,),
                m.group(2).lower().rstrip("s"),
                m.start(),
                m.end(),
                0.9,
                "age",
                (Threshold(fact, ">=", value, m.group(2).lower().rstrip("s"), m.start(), m.end()),),
            )
        )
    return atoms


def _life_atoms(text: str) -> list[Atom]:
    m = _LIFE.search(text)
    if m is None:
        return []
    for op, value, _high, _unit, _s, e in comparisons(text, m.end(), min(len(text), m.end() + 60)):
        u = _TIME_UNIT.match(text, e)
        if u is None or op == "between":
            continue
        unit = u.group(1).lower().rstrip("s")
        end = u.end()
        return [
            Atom(
                f"life_expectancy {op} {value:g} [{unit}]",
                ("life_expectancy",),
                unit,
                m.start(),
                end,
                0.85,
                "life expectancy",
                (Threshold("life_expectancy", op, value, unit, m.start(), end),),
            )
        ]
    return []


_IMMUNO = re.compile(
    r"immunotherap\w*|monoclonal antibod\w*|anti-?PD-?L?1|checkpoint inhibitor\w*|"
    r"anti-?GD2|dinutuximab|rituximab|biologics?\b",
    re.I,
)


def _therapy_atoms(text: str, kind: str) -> list[Atom]:
    """Time since the last immunotherapy (the dictionary holds no other treatment dates)."""
    m = _IMMUNO.search(text)
    if m is None:
        return []
    w = re.search(
        rf"(within|in the (?:last|past)|at least|less than|<|≤)\s*{_NUM}\s*(weeks?|days?|months?)",
        text[max(0, m.start() - 80) : m.end() + 80],
        re.I,
    )
    if w is None:
        return []
    base = max(0, m.start() - 80)
    amount, unit = _number(w.group(2)), w.group(3).lower().rstrip("s")
    since = re.search(r"\bsince\b|\bfrom\b", text[base + w.start() : base + w.end() + 40], re.I)
    within = f"last_immunotherapy_date within {amount:g} [{unit}s]"
    if w.group(1).lower() == "at least" or (since and w.group(1).lower() not in ("within",)):
        rule = f"not ({within})" if kind == "inclusion" else within
    else:
        rule = within if kind == "exclusion" else f"not ({within})"
    start, end = min(m.start(), base + w.start()), max(m.end(), base + w.end())
    return [Atom(rule, ("last_immunotherapy_date",), unit, start, end, 0.6, "time since immunotherapy")]


_PREGNANT = re.compile(r"\bpregnan\w*|\blactating\b|\bbreast-?feeding\b|\bnursing\b", re.I)
_CONTRACEPTION = re.compile(r"contracept\w*|birth control|barrier method|abstinence", re.I)
_NEGATIVE_TEST = re.compile(
    r"negative\s+(?:serum\s+|urine\s+)?(?:\w+\s+)?pregnancy test|non-?pregnant|"
    r"not (?:be )?pregnant",
    re.I,
)
_CONSENT = re.compile(r"(?:informed\s+)?consent", re.I)


def _pregnancy_atoms(text: str, kind: str) -> list[Atom]:
    m = _PREGNANT.search(text)
    if m is None:
        return []
    if kind == "inclusion":
        neg = _NEGATIVE_TEST.search(text)
        return (
            [Atom("not pregnant", ("pregnant",), None, neg.start(), neg.end(), 0.75, "pregnancy")]
            if neg
            else []
        )
    if re.search(r"\bnegative\b", text, re.I):
        return []
    return [Atom("pregnant", ("pregnant",), None, m.start(), m.end(), 0.75, "pregnancy")]


def _consent_atoms(text: str, kind: str) -> list[Atom]:
    m = _CONSENT.search(text)
    if m is None or (re.search(r"\bassent\b", text, re.I) and kind == "exclusion"):
        return []
    low = text.lower()
    consents = r"sign|provide|give|obtain|willing|able|written|document|informed consent|consent form"
    if kind == "inclusion" and re.search(consents, low) and not re.search(r"\bno\b|\bnot\b|\bunable\b", low):
        return [Atom("consent_signed", ("consent_signed",), None, m.start(), m.end(), 0.8, "consent")]
    if kind == "exclusion" and re.search(
        r"\black of\b|\bno\b|\bnot\b|\bunable\b|\brefus|\breject|\binability", low
    ):
        return [Atom("not consent_signed", ("consent_signed",), None, m.start(), m.end(), 0.75, "consent")]
    return []


# Diagnosis names to the dictionary's primary_diagnosis values (trialdesk.facts.dictionary).
_DIAGNOSES = [
    ("ganglioneuroblastoma", r"\bganglioneuroblastoma\b"),
    ("neuroblastoma", r"(?<!ganglio)\bneuroblastoma\b"),
    ("melanoma", r"\bmelanoma\b"),
    ("lung_cancer", r"\bNSCLC\b|non-small[- ]cell lung|small[- ]cell lung|\blung (?:cancer|carcinoma)\b"),
    ("breast_cancer", r"\bbreast (?:cancer|carcinoma)\b"),
    ("colorectal_cancer", r"\bcolorectal (?:cancer|carcinoma)\b"),
    ("renal_cell_carcinoma", r"\brenal cell carcinoma\b"),
    ("gastric_cancer", r"\bgastric (?:cancer|carcinoma)\b"),
    ("ovarian_cancer", r"\bovarian (?:cancer|carcinoma)\b"),
    ("prostate_cancer", r"\bprostate (?:cancer|carcinoma)\b"),
    ("acute_myeloid_leukaemia", r"\bacute myeloid leuka?emia\b|\bAML\b"),
    ("acute_lymphoblastic_leukaemia", r"\bacute lymphoblastic leuka?emia\b|\bB-precursor ALL\b"),
    ("multiple_myeloma", r"\bmultiple myeloma\b"),
    ("myelodysplastic_syndrome", r"\bmyelodysplastic syndrome\b"),
    ("lymphoma", r"(?<!small )\b(?:follicular |hodgkin |non-hodgkin |b-cell )?lymphoma\b"),
]
_DIAGNOSIS_NAMES = [(value, re.compile(pattern, re.I)) for value, pattern in _DIAGNOSES]


def _diagnosis_atoms(text: str) -> list[Atom]:
    """ "Histologically confirmed neuroblastoma": the diagnosis and how it was confirmed.

    Only the first line of an inclusion item is read; an item that names several diagnoses or
    qualifies one (grade, stage, remission) gets a low confidence, for the reviewer to finish.
    """
    first = text.split("\n")[0]
    found = [(value, m) for value, pattern in _DIAGNOSIS_NAMES for m in pattern.finditer(first)]
    if not found or re.search(r"\bhistory of\b|\bprior\b|\bother than\b|\bexcept\b", first, re.I):
        return []
    values = list(dict.fromkeys(v for v, _ in found))
    rule = (
        f"primary_diagnosis == '{values[0]}'"
        if len(values) == 1
        else "primary_diagnosis in [" + ", ".join(f"'{v}'" for v in values) + "]"
    )
    how = [
        c
        for c, p in (("histological", r"histolog|patholog"), ("cytological", r"cytolog"))
        if re.search(p, first, re.I)
    ]
    if len(how) == 1:
        rule += f" and diagnosis_confirmation == '{how[0]}'"
    elif how:
        rule += " and diagnosis_confirmation in [" + ", ".join(f"'{c}'" for c in how) + "]"
    start = min(m.start() for _, m in found)
    end = max(m.end() for _, m in found)
    return [
        Atom(
            rule,
            ("primary_diagnosis",) + (("diagnosis_confirmation",) if how else ()),
            None,
            start,
            end,
            0.6,
            "diagnosis",
        )
    ]


_SEX = re.compile(r"^\s*(?:(?:only\s+)?(women|females?|men|males?)(?:\s+only)?)\b", re.I)


def _sex_atoms(text: str) -> list[Atom]:
    m = _SEX.match(text)
    if m is None or re.match(r"\s*(?:or|and|/)\s*(?:women|females?|men|males?)\b", text[m.end() :], re.I):
        return []
    sex = "female" if m.group(1).lower().startswith(("w", "f")) else "male"
    return [Atom(f"sex == '{sex}'", ("sex",), None, m.start(), m.end(), 0.7, "sex")]


# ---------------------------------------------------------------------------
# Items

_HEDGES = re.compile(
    r"\bunless\b|\bexcept\b|\bexception\b|\bif\b|\bprotocol[- ]specified\b|"
    r"\bper protocol\b|\bdefined per\b|\bin the opinion\b",
    re.I,
)


def thresholds_in(text: str, kind: str = "inclusion") -> list[Threshold]:
    """Every numeric threshold the extractor reads in ``text`` (the benchmark measures these)."""
    t = normalise_text(text)
    found = [th for atom in _atoms(t, kind) for th in atom.thresholds]
    return sorted(found, key=lambda th: th.start)


_EXCEPTION = re.compile(
    r"\bunless\b|\bexcept(?:ion)?s?\b|\bother than\b|\bapart from\b|\bwith the exception of\b", re.I
)
_NEXT_FACT = re.compile(
    "|".join(f"(?:{p})" for _, p, _ in _LABS) + "|" + "|".join(f"(?:{p})" for _, p in _PERFORMANCE), re.I
)


def exception_spans(text: str) -> list[tuple[int, int]]:
    """Where the "unless / except / other than" clauses of ``text`` are (start, end).

    A clause runs from its word to the end of its sentence, its bracket or its line, or to a
    comma or "and" that starts the next test ("..., AST ≤ 3 × ULN"). What it says is an
    exception to the criterion, not the criterion: no threshold is read inside it.

    >>> t = "Bilirubin ≤ 1.5 × ULN (unless Gilbert's syndrome, then ≤ 3 × ULN), ALT ≤ 3 × ULN"
    >>> [t[s:e] for s, e in exception_spans(t)]
    ["unless Gilbert's syndrome, then ≤ 3 × ULN"]
    """
    spans: list[tuple[int, int]] = []
    for m in _EXCEPTION.finditer(text):
        if spans and m.start() < spans[-1][1]:
            continue
        depth = text[: m.start()].count("(") - text[: m.start()].count(")")
        end = len(text)
        for stop in re.finditer(r"[;\n]|\.(?:\s|$)|\)|,\s*|\band\s+", text[m.end() :]):
            at = m.end() + stop.start()
            if stop.group() == ")":
                if depth > 0:
                    end = at
                    break
                continue
            if stop.group().startswith(",") or stop.group().startswith("and"):
                if _NEXT_FACT.match(text, m.end() + stop.end()):
                    end = at
                    break
                continue
            end = at
            break
        spans.append((m.start(), end))
    return spans


def _outside_exceptions(atoms: list[Atom], text: str) -> list[Atom]:
    """The atoms, less any threshold (or thresholdless atom) inside an exception clause."""
    spans = exception_spans(text)
    if not spans:
        return atoms

    def inside(at: int) -> bool:
        return any(s <= at < e for s, e in spans)

    kept: list[Atom] = []
    for a in atoms:
        if not a.thresholds:
            if not inside(a.start):
                kept.append(a)
        elif not any(inside(th.start) for th in a.thresholds):
            kept.append(a)
    return kept


def _atoms(t: str, kind: str) -> list[Atom]:
    atoms = _lab_atoms(t, kind) + _performance_atoms(t) + _age_atoms(t) + _life_atoms(t)
    atoms += _therapy_atoms(t, kind) + _pregnancy_atoms(t, kind) + _consent_atoms(t, kind)
    if kind == "inclusion":  # "Women only"; in an exclusion a sex word qualifies something else
        atoms += _sex_atoms(t) + _diagnosis_atoms(t)
    atoms = _outside_exceptions(atoms, t)
    atoms.sort(key=lambda a: a.start)
    kept: list[Atom] = []
    for a in atoms:  # overlapping finds: keep the first, longer one
        overlaps = bool(kept) and a.start < kept[-1].end and a.method != kept[-1].method
        if overlaps and a.rule and kept[-1].rule and a.method == "age":
            continue
        kept.append(a)
    return kept


@dataclass(frozen=True)
class ItemDraft:
    """The extractor's answer for one item."""

    rule: str | None
    atoms: tuple[Atom, ...] = field(default=())
    confidence: float = 0.0
    text: str = ""  # the item as the extractor read it (escapes undone, operators unified)

    def draft(self) -> Draft:
        """The draft a protocol keeps with the criterion: rule, matched span, facts, units."""
        return Draft(**self.draft_fields())

    def draft_fields(self) -> dict[str, Any]:
        """The draft's fields without the model: ``draft().model_dump(exclude_none=True)``
        (a protocol document takes them as they are and validates them with the rest)."""
        if self.rule is None:
            return {"facts": [], "confidence": 0.0, "method": "none: investigator question"}
        atoms = [a for a in self.atoms if a.rule]
        units = sorted({a.unit for a in atoms if a.unit})
        out: dict[str, Any] = {
            "rule": self.rule,
            "span": self.text[min(a.start for a in atoms) : max(a.end for a in atoms)],
            "facts": list(dict.fromkeys(f for a in atoms for f in a.facts)),
        }
        if units:
            out["unit"] = ", ".join(units)
        out["confidence"] = round(self.confidence, 2)
        out["method"] = ", ".join(dict.fromkeys(a.method for a in atoms))
        return out


def draft_item(text: str, kind: str) -> ItemDraft:
    """A draft rule for one criterion item (``kind`` inclusion or exclusion)."""
    t = normalise_text(text)
    atoms = [
        a for a in _atoms(t.split("\n")[0] if "\n" in t and _nested_alternatives(t) else t, kind) if a.rule
    ]
    if not atoms:
        return ItemDraft(None)
    pieces = []
    for i, a in enumerate(atoms):
        if i:
            between = t[atoms[i - 1].end : a.start]
            pieces.append(
                " or " if re.search(r"\bor\b", between) and not re.search(r"[;.]\s", between) else " and "
            )
        pieces.append(a.rule)
    rule = "".join(pieces)
    if " or " in pieces and " and " in pieces:
        return ItemDraft(None)  # mixed and/or without brackets: a person should write it
    if not rule_checks(rule):
        return ItemDraft(None)
    covered = sum(a.end - a.start for a in atoms)
    words = len(re.findall(r"[A-Za-z]{3,}", t))
    covered_words = sum(len(re.findall(r"[A-Za-z]{3,}", t[a.start : a.end])) for a in atoms)
    coverage = min(1.0, (covered_words + 3) / max(words, 1)) if covered else 0.0
    confidence = min(a.confidence for a in atoms) * (0.5 + 0.5 * coverage)
    if _HEDGES.search(t):
        confidence *= 0.7
    return ItemDraft(rule, tuple(atoms), confidence, t)


@lru_cache(maxsize=16384)
def rule_checks(rule: str) -> bool:
    """Whether a rule parses and type-checks against the base dictionary (kept by its text:
    drafts recur)."""
    try:
        bind(parse(rule), BASE)
    except CriteriaError:
        return False
    return True


def _nested_alternatives(text: str) -> bool:
    """Nested lines that list alternatives (cohorts, "one of the following") are not drafted."""
    return bool(re.search(r"one of the following|any of the following|cohort", text, re.I))

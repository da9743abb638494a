"""Search ranking over registry records: text, condition with synonyms, age, sex, distance.

Pure functions over protocols already loaded; the database full-text index calls the
same filters and distance once it holds the candidates.

>>> round(great_circle_km(55.7558, 37.6173, 59.9343, 30.3351))  # Moscow to St Petersburg
633
>>> fits_age(Age(12, "month"), "6 Months", "12 Months"), fits_age(Age(13, "month"), None, "12 Months")
(True, False)
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trialdesk.errors import RegistryError
from trialdesk.protocol.model import Registry
from trialdesk.registry.gazetteer import Place
from trialdesk.registry.records import age_limit

# Mean Earth radius R1 = 6371.0088 km (IUGG; Moritz, "Geodetic Reference System 1980",
# Bulletin Géodésique 54:395, 1980) for the haversine great-circle distance.
EARTH_RADIUS_KM = 6371.0088

# Condition synonyms the record's own MeSH terms may not carry. Each names its source.
SYNONYMS: dict[str, tuple[tuple[str, ...], str]] = {
    "sepsis": (
        ("septic shock", "severe sepsis", "septicemia", "shock, septic"),
        "MeSH descriptor Sepsis (D018805): narrower descriptor Shock, Septic (D012772); "
        "entry terms Severe Sepsis, Septicemia",
    ),
    "septic shock": (("sepsis", "shock, septic"), "MeSH descriptor Shock, Septic (D012772), under Sepsis"),
    "neuroblastoma": (
        ("ganglioneuroblastoma",),
        "International Neuroblastoma Pathology Classification (Shimada et al., Cancer 1999;86:364): "
        "peripheral neuroblastic tumours are neuroblastoma, ganglioneuroblastoma and ganglioneuroma",
    ),
    "nsclc": (
        ("non-small cell lung cancer", "carcinoma, non-small-cell lung"),
        "MeSH descriptor Carcinoma, Non-Small-Cell Lung (D002289), entry term NSCLC",
    ),
    "all": (
        ("acute lymphoblastic leukemia", "precursor cell lymphoblastic leukemia-lymphoma"),
        "MeSH descriptor Precursor Cell Lymphoblastic Leukemia-Lymphoma (D054198)",
    ),
    "cll": (
        ("chronic lymphocytic leukemia", "leukemia, lymphocytic, chronic, b-cell"),
        "MeSH descriptor Leukemia, Lymphocytic, Chronic, B-Cell (D015451), entry term CLL",
    ),
    "atopic dermatitis": (
        ("eczema, atopic", "dermatitis, atopic"),
        "MeSH descriptor Dermatitis, Atopic (D003876), entry term Atopic Eczema",
    ),
}
_SPELLING = [
    (re.compile(p), r)
    for p, r in (
        (r"leukaem", "leukem"),
        (r"tumour", "tumor"),
        (r"anaem", "anem"),
        (r"haem", "hem"),
        (r"oedema", "edema"),
    )
]


def _norm(text: str) -> str:
    out = text.casefold()
    for pattern, repl in _SPELLING:
        out = pattern.sub(repl, out)
    return out


RADIANS = math.pi / 180  # per degree (what math.radians multiplies by)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a sphere of the mean Earth radius.

    The database measures with the same operations in the same order (SQL in
    :mod:`trialdesk.store.registry`), so both give the same number."""
    p1, p2 = lat1 * RADIANS, lat2 * RADIANS
    s, t = math.sin((p2 - p1) / 2), math.sin((lon2 - lon1) * RADIANS / 2)
    a = s * s + math.cos(p1) * math.cos(p2) * (t * t)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Age:
    """A patient's age in completed units (``unit`` year, month, week, day)."""

    amount: float
    unit: str

    def days(self) -> float:
        return (
            self.amount * {"year": 365.25, "month": 30.4375, "week": 7, "day": 1, "hour": 1 / 24}[self.unit]
        )

    def completed(self, unit: str) -> float:
        """The age in completed ``unit``s (12 months is 1 completed year)."""
        if unit == self.unit:
            return self.amount
        if {unit, self.unit} == {"year", "month"}:
            return self.amount * 12 if unit == "month" else math.floor(self.amount / 12)
        size = Age(1, unit).days()
        return math.floor(self.days() / size + 1e-9)


def parse_age(text: str) -> Age:
    """``6y``, ``18m``, ``3w``, ``10d`` (or ``6 years``) to an :class:`Age`.

    >>> parse_age("6y"), parse_age("18 months")
    (Age(amount=6.0, unit='year'), Age(amount=18.0, unit='month'))
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(y|yr|years?|m|mo|months?|w|weeks?|d|days?)\s*", text, re.I)
    if m is None:
        raise RegistryError(f"not an age like 6y, 18m, 3w or 10d: {text!r}", where="--age")
    unit = {"y": "year", "m": "month", "w": "week", "d": "day"}[m.group(2)[0].lower()]
    return Age(float(m.group(1)), unit)


def fits_age(age: Age, minimum: str | None, maximum: str | None) -> bool:
    """Whether ``age`` lies within the registry limits, both ends included, each compared in
    its own unit (a 12-month-old fits a maximum of "12 Months" and of "1 Year")."""
    low, high = age_limit(minimum), age_limit(maximum)
    if low is not None and age.completed(low[1]) < low[0]:
        return False
    return not (high is not None and age.completed(high[1]) > high[0])


@dataclass(frozen=True)
class Query:
    text: str | None = None
    condition: str | None = None
    status: str | None = None
    phase: str | None = None
    age: Age | None = None
    sex: str | None = None
    near: Place | None = None
    km: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "condition": self.condition,
            "status": self.status,
            "phase": self.phase,
            "age": f"{self.age.amount:g} {self.age.unit}" if self.age else None,
            "sex": self.sex,
            "near": {
                "name": self.near.name,
                "lat": self.near.lat,
                "lon": self.near.lon,
                "source": self.near.source,
            }
            if self.near
            else None,
            "km": self.km,
        }


@dataclass(frozen=True)
class Hit:
    trial_id: str
    title: str
    status: str
    phases: list[str]
    score: float
    km: float | None = None
    site: str | None = None
    matched: list[str] = field(default_factory=list)
    draft: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "title": self.title,
            "status": self.status,
            "phases": self.phases,
            "score": round(self.score, 3),
            "km": None if self.km is None else round(self.km, 1),
            "nearest_site": self.site,
            "matched": self.matched,
            "draft": self.draft,
        }


def condition_terms(condition: str) -> list[str]:
    """The condition and its synonyms from :data:`SYNONYMS`."""
    key = _norm(condition.strip())
    extra = SYNONYMS.get(key, ((), ""))[0]
    return [key, *(_norm(t) for t in extra)]


def concept_token(condition: str) -> str | None:
    """The one index word that stands for a condition of :data:`SYNONYMS` and its synonyms
    (None for other conditions): made from the phrases themselves, so a change to them
    gives a new word that no stored study holds until the index is filled again.

    >>> concept_token("Sepsis") == concept_token(" sepsis"), concept_token("leukemia")
    (True, None)
    """
    key = _norm(condition.strip())
    if key not in SYNONYMS:
        return None
    terms = "\x1f".join(" ".join(tokens(t)) for t in condition_terms(key))
    return "k" + hashlib.sha256(terms.encode("utf-8")).hexdigest()[:20]


def concept_tokens() -> list[str]:
    """The index words of every condition of :data:`SYNONYMS`."""
    return [t for t in map(concept_token, SYNONYMS) if t is not None]


def study_concepts(conditions: str, cells: Iterable[str] = ()) -> str:
    """The index words (:func:`concept_token`) of the :data:`SYNONYMS` conditions a study's
    normalised conditions text holds: one of their phrases occurs in it as whole words, as
    the full-text index matches a phrase (:func:`phrase_count`, diacritics folded). Each
    also comes joined to each of the study's place ``cells`` (one word: the condition at
    that place), after the words alone.

    >>> study_concepts("shock, septic | asthma") == concept_token("sepsis") + " " + (
    ...     concept_token("septic shock") or "")
    True
    >>> study_concepts("antisepsis", ["g1n0e0"])
    ''
    >>> words = study_concepts("sepsis", ["g1n0e0", "g3n0e0"]).split()
    >>> len(words), f"{concept_token('sepsis')}g3n0e0" in words  # septic shock's too
    (6, True)
    """
    folded = fold(conditions)
    found = []
    for key in SYNONYMS:
        if any(phrase_count(folded, [fold(w) for w in tokens(t)]) for t in condition_terms(key)):
            found.append(concept_token(key))
    words = [t for t in found if t]
    places = list(cells)
    return " ".join(words + [w + c for w in words for c in places])


# Listed (``registry_concepts``) once every stored study holds :func:`condition_places`.
PLACE_WORDS = "conditionwordsatcells"
_PLAIN = re.compile(r"[a-z0-9]+")


def condition_places(conditions: str, cells: Iterable[str]) -> str:
    """Each word of a study's normalised conditions text joined to each of its place
    ``cells`` (one index word: that condition word at that place), for the words of plain
    letters a-z and digits after diacritics are folded (the ones the full-text index reads
    the same way).

    >>> condition_places("leukemia, acute | all", ["g9n1e2", "g27n0e0"])
    'leukemiag9n1e2 leukemiag27n0e0 acuteg9n1e2 acuteg27n0e0 allg9n1e2 allg27n0e0'
    """
    places = list(cells)
    words = dict.fromkeys(w for w in re.findall(r"[^\W_]+", fold(conditions))
                          if _PLAIN.fullmatch(w))
    return " ".join(w + c for w in words for c in places)


def place_word(phrase: Sequence[str]) -> str | None:
    """The word of a condition phrase to look up at each place (:func:`condition_places`):
    its longest plain word (None when it has none).

    >>> place_word(["breast", "cancer"]), place_word(["b", "all"]), place_word(["łódź"])
    ('breast', 'all', None)
    """
    plain = [w for w in (fold(t) for t in phrase) if _PLAIN.fullmatch(w)]
    return max(plain, key=len) if plain else None


def _record_conditions(r: Registry) -> list[str]:
    terms = [*r.conditions, *r.keywords]
    if r.mesh is not None:
        terms += [m.term for m in r.mesh.conditions + r.mesh.condition_ancestors]
    return [_norm(t) for t in terms]


def has_word(text: str, needle: str) -> bool:
    """Whether ``needle`` occurs in ``text`` as whole words: neither neighbour is a letter,
    digit or underscore (what ``(?<!\\w)needle(?!\\w)`` finds, without a regular
    expression: ``str.find`` skips ahead in C, the look-behind made the pattern try every
    position).

    >>> has_word("severe sepsis | septic shock", "sepsis"), has_word("antisepsis", "sepsis")
    (True, False)
    >>> has_word("covid-19 vaccine", "covid-19"), has_word("covid-190", "covid-19")
    (True, False)
    """
    size = len(needle)
    at = text.find(needle)
    while at >= 0:
        end = at + size
        if (at == 0 or not _inword(text[at - 1])) and (end == len(text)
                                                        or not _inword(text[end])):
            return True
        at = text.find(needle, at + 1)
    return False


def _inword(char: str) -> bool:
    return char.isalnum() or char == "_"  # what \w matches in a str pattern


# Combining diacritical marks (the blocks at U+0300, U+1AB0, U+1DC0, U+20D0, U+FE20).
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """``text`` without diacritics, as the full-text index's ``remove_diacritics`` reads
    letters that decompose (é, ö, ą; not ł or ø).

    >>> fold("sjögren, wrocław, łódź")
    'sjogren, wrocław, łodz'
    """
    if text.isascii():
        return text
    return _MARKS.sub("", unicodedata.normalize("NFD", text))


def phrase_count(text: str, phrase: Sequence[str]) -> int:
    """How many times the phrase's tokens (see :func:`tokens`) occur in ``text`` one after
    the other as whole words, separated by anything but letters and digits, overlaps
    included: the instances the full-text index finds in a text it split the same way.
    Both are compared as given: :func:`fold` them first to compare without diacritics.

    >>> phrase_count("septic shock | shock, septic | septic-shock", ["septic", "shock"])
    2
    >>> phrase_count("placebo | placebos | placebo_x | pre-placebo", ["placebo"])
    3
    >>> phrase_count("a a a", ["a", "a"]), phrase_count(fold("sjögren"), ["sjogren"])
    (2, 1)
    """
    if not phrase:
        return 0
    first, rest = phrase[0], _rest_pattern(tuple(phrase[1:]))
    size, count = len(first), 0
    at = text.find(first)
    while at >= 0:
        end = at + size
        if at == 0 or not text[at - 1].isalnum():
            if rest is None:
                count += end == len(text) or not text[end].isalnum()
            else:
                count += rest.match(text, end) is not None
        at = text.find(first, at + 1)
    return count


def _rest_pattern(rest: tuple[str, ...]) -> re.Pattern[str] | None:
    """After a phrase's first word: each further word after separators (anything but a
    letter or digit, as the index splits), then a word end."""
    if not rest:
        return None
    found = _RESTS.get(rest)
    if found is None:
        found = _RESTS[rest] = re.compile(
            "".join(r"[\W_]+" + re.escape(t) for t in rest) + r"(?![^\W_])")
    return found


_RESTS: dict[tuple[str, ...], re.Pattern[str]] = {}


@dataclass(frozen=True)
class _Word:
    """A needle found as whole words (the interface of a compiled pattern)."""

    needle: str

    def search(self, text: str) -> bool:
        return has_word(text, self.needle)


def _word(needle: str) -> _Word:
    return _Word(needle)


def nearest_site(r: Registry, lat: float, lon: float) -> tuple[float, str] | None:
    """(km, site) of the site nearest to the point, among sites with a geo point."""
    best: tuple[float, str] | None = None
    for loc in r.contacts_locations.locations:
        if loc.geo is None:
            continue
        d = great_circle_km(lat, lon, loc.geo.lat, loc.geo.lon)
        if best is None or d < best[0]:
            best = (d, ", ".join(x for x in (loc.facility, loc.city, loc.country) if x))
    return best


def _phase(text: str) -> str:
    t = text.strip().upper().replace(" ", "")
    return f"PHASE{t}" if t.isdigit() else t


def normal_phase(text: str) -> str:
    """``2``, ``phase 2`` or ``PHASE2`` as the registry writes it (``PHASE2``)."""
    return _phase(re.sub(r"(?i)^\s*phase\s*", "", text) if text.strip()[-1:].isdigit() else text)


def normal_status(text: str) -> str:
    """``recruiting``, ``Not yet recruiting`` as the registry writes it."""
    return re.sub(r"[\s,-]+", "_", text.strip().upper())


def normal_sex(text: str) -> str:
    """``F``/``female`` or ``M``/``male`` as ``FEMALE`` or ``MALE``."""
    wanted = {"F": "FEMALE", "M": "MALE"}.get(text.strip().upper()[:1])
    if wanted is None:
        raise RegistryError(f"sex must be F or M, not {text!r}", where="--sex")
    return wanted


@dataclass(frozen=True)
class Entry:
    """A trial prepared for search: its registry part and its text fields, normalised once."""

    trial_id: str
    registry: Registry
    draft: bool
    conditions: tuple[str, ...]
    fields: tuple[tuple[float, str, str], ...]  # (weight, field name, normalised text)


def entry(trial_id: str, r: Registry, criteria: Sequence[str] = (), draft: bool = False) -> Entry:
    """Prepare one trial for :func:`search` (title, conditions, interventions, criteria)."""
    ident, arms = r.identification, r.arms_interventions
    conditions = tuple(_record_conditions(r))
    interventions = [i.name for i in arms.interventions] + [
        n for i in arms.interventions for n in i.other_names
    ]
    interventions += [m.term for m in r.mesh.interventions] if r.mesh else []
    fields = (
        (3.0, "title", _norm(f"{ident.brief_title} {ident.official_title or ''} {ident.acronym or ''}")),
        (3.0, "conditions", " | ".join(conditions)),
        (2.0, "interventions", _norm(" | ".join(interventions))),
        (1.0, "criteria", _norm(" | ".join(criteria))),
    )
    return Entry(trial_id, r, draft, conditions, fields)


def index_fields(r: Registry, criteria: Sequence[str] = ()) -> dict[str, str]:
    """The normalised texts a database full-text index holds for one trial: title,
    conditions (with keywords and MeSH terms), interventions, criteria and site places."""
    e = entry("", r, criteria)
    places = [
        " ".join(x for x in (loc.facility, loc.city, loc.state, loc.country) if x)
        for loc in r.contacts_locations.locations
    ]
    out = {name: text for _, name, text in e.fields}
    out["places"] = _norm(" | ".join(dict.fromkeys(places)))
    return out


def tokens(text: str) -> list[str]:
    """The words of a search phrase as a full-text index splits them (letters and digits).

    >>> tokens("Non-small cell; leukaemia")
    ['non', 'small', 'cell', 'leukemia']
    """
    return re.findall(r"[^\W_]+", _norm(text))


def query_words(text: str | None) -> list[str]:
    """The words of a text query, normalised as :func:`search` reads them."""
    return [_norm(x) for x in re.findall(r"[\w-]+", text or "")]


def matched_fields(fields: dict[str, str], words: Sequence[str]) -> list[str]:
    """``'word' in field`` for each query word and each field of :func:`index_fields` holding it."""
    out = []
    for word in words:
        pattern = _word(word)
        out += [f"'{word}' in {name}" for name, text in fields.items() if pattern.search(text)]
    return out


def _text_score(e: Entry, words: list[tuple[str, _Word]]) -> tuple[float, list[str]] | None:
    score, matched = 0.0, []
    for word, pattern in words:
        hits = [(w, name) for w, name, text in e.fields if pattern.search(text)]
        if not hits:
            return None
        score += sum(w for w, _ in hits)
        matched += [f"'{word}' in {name}" for _, name in hits]
    return score, matched


def search(trials: Iterable[Entry | tuple[str, Registry, Sequence[str], bool]], query: Query) -> list[Hit]:
    """Rank trials (:class:`Entry`, or ``(trial id, registry, criteria texts, is draft)``) for ``query``.

    Every given filter must hold; text words must each appear somewhere. With a place,
    results are ordered by distance to the nearest site, else by score.
    """
    words = [(w, _word(w)) for w in (_norm(x) for x in re.findall(r"[\w-]+", query.text or ""))]
    terms = [(t, _word(t)) for t in condition_terms(query.condition)] if query.condition else []
    hits: list[Hit] = []
    for trial in trials:
        e = trial if isinstance(trial, Entry) else entry(*trial)
        trial_id, r, draft = e.trial_id, e.registry, e.draft
        matched: list[str] = []
        score = 0.0
        if query.status and r.status.overall_status != normal_status(query.status):
            continue
        if query.phase and normal_phase(query.phase) not in r.design.phases:
            continue
        if query.sex and r.eligibility.sex not in ("ALL", normal_sex(query.sex)):
            continue
        if query.age and not fits_age(query.age, r.eligibility.minimum_age, r.eligibility.maximum_age):
            continue
        if query.condition:
            found = [t for t, pattern in terms if any(pattern.search(rt) for rt in e.conditions)]
            if not found:
                continue
            score += 3.0
            matched.append(f"condition '{found[0]}'")
        if words:
            text = _text_score(e, words)
            if text is None:
                continue
            score += text[0]
            matched += text[1]
        km = site = None
        if query.near is not None:
            near = nearest_site(r, query.near.lat, query.near.lon)
            if near is not None:
                km, site = near
            if query.km is not None and (km is None or km > query.km):
                continue
        hits.append(
            Hit(
                trial_id,
                r.identification.brief_title,
                r.status.overall_status,
                list(r.design.phases),
                score,
                km,
                site,
                matched,
                draft,
            )
        )
    if query.near is not None:
        hits.sort(key=lambda h: (h.km is None, h.km or 0.0, -h.score, h.trial_id))
    else:
        hits.sort(key=lambda h: (-h.score, h.trial_id))
    return hits

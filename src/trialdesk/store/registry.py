"""Imported registry studies in the database: one row per NCT id with its draft protocol
document, its sites, and full-text search (FTS5 on SQLite, ``tsvector`` on PostgreSQL; see
migration 0008).

A re-import of an NCT id whose document changed updates the row and replaces its sites;
the same document again writes nothing. Every change is audited under record type
``registry_study`` with the NCT id. Search returns candidates the full-text index and the
plain filters let through; the service checks ages in their own units and measures
distances.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, text

import trialdesk.store.models as m
from trialdesk.errors import ConflictError, NotFoundError
from trialdesk.registry.search import (
    EARTH_RADIUS_KM,
    PLACE_WORDS,
    RADIANS,
    concept_tokens,
    condition_places,
    fold,
    great_circle_km,
    phrase_count,
    place_word,
    study_concepts,
)
from trialdesk.store.audit import canonical, digest
from trialdesk.store.base import StoreBase

SEARCH_COLUMNS = ("title", "conditions", "interventions", "criteria", "places")
# Column weights for the rank: title and conditions first, then interventions, criteria
# and places (FTS5 bm25 weights; PostgreSQL setweight A, B, C, D, D in migration 0008).
WEIGHTS = (3.0, 3.0, 2.0, 1.0, 1.0)
_BM25 = f"bm25(registry_fts, {', '.join(map(str, WEIGHTS))})"
# FTS5's bm25 constants (sqlite/ext/fts5/fts5_aux.c), for :func:`bm25`.
BM25_K1, BM25_B = 1.2, 0.75
_CHUNK = 5000
# Grid cells of site points, in degrees: a box is covered by the cells of the finest grid
# that needs at most _MOST_CELLS of them (migration 0011; fewer, larger cells measured
# faster than many small ones: FTS5 pays per OR-ed cell).
GRID = (1, 3, 9, 27)
_MOST_CELLS = 16
# The search texts without the cells, for words that may match in any of them.
_TEXTS = "{" + " ".join(f"search_{n}" for n in SEARCH_COLUMNS) + "}"


@dataclass(frozen=True)
class Site:
    facility: str | None
    city: str | None
    country: str | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class StudyInput:
    """One study as the service prepared it for storing."""

    nct_id: str
    title: str
    status: str
    phases: tuple[str, ...]
    sex: str
    minimum_age: str | None
    maximum_age: str | None
    minimum_age_days: float | None
    maximum_age_days: float | None
    conditions: tuple[str, ...]
    mesh_terms: tuple[str, ...]
    last_update: str | None
    document: Mapping[str, Any]
    format: str
    source: str
    criteria_count: int
    unreviewed: int
    search: Mapping[str, str]  # SEARCH_COLUMNS -> normalised text
    sites: tuple[Site, ...] = ()


@dataclass(frozen=True)
class StudyRecord:
    id: int
    nct_id: str
    title: str
    status: str
    phases: tuple[str, ...]
    sex: str
    minimum_age: str | None
    maximum_age: str | None
    conditions: tuple[str, ...]
    last_update: str | None
    document: dict[str, Any]
    digest: str
    format: str
    source: str
    criteria_count: int
    unreviewed: int
    imported_at: str
    imported_by: str
    updated_at: str
    updated_by: str
    version: int


@dataclass(frozen=True)
class Candidate:
    """A study the index and filters let through, with its full-text rank (higher first)."""

    id: int
    minimum_age: str | None
    maximum_age: str | None
    score: float


@dataclass(frozen=True)
class Listed:
    """What a result line shows of a study."""

    nct_id: str
    title: str
    status: str
    phases: tuple[str, ...]
    unreviewed: int
    texts: Mapping[str, str] = field(default_factory=dict)  # SEARCH_COLUMNS, when asked


@dataclass(frozen=True)
class Filter:
    """What the database can check: full-text words (each a phrase of tokens, all must
    match in any field), condition phrases (any must match in the conditions), plain
    filters, a patient age window in days, a bounding box (south, north, west, east)."""

    words: tuple[tuple[str, ...], ...] = ()
    conditions: tuple[tuple[str, ...], ...] = ()
    status: str | None = None
    phase: str | None = None
    sexes: tuple[str, ...] | None = None
    age_days: tuple[float, float] | None = None  # (lowest maximum, highest minimum)
    box: tuple[float, float, float | None, float | None] | None = None
    # The index word standing for the condition phrases (:func:`concept_token`), when
    # every stored study holds it as its conditions say (:meth:`registry_concept_indexed`):
    # a box search looks up the word joined to each of the box's cells in place of the OR
    # of the phrases and the OR of the cells.
    concept: str | None = None
    # Every stored study holds its condition words at its cells (:func:`condition_places`,
    # listed as PLACE_WORDS): a box search with one condition phrase looks up its
    # :func:`place_word` at each of the box's cells in place of the OR of the cells.
    places: bool = False
    # False: the candidates come without their rank (score 0.0); the caller asks
    # :meth:`RegistryStore.registry_scores` for the few it shows.
    ranked: bool = True


@dataclass(frozen=True)
class Phrase:
    """One phrase of the full-text query: its tokens and the columns it may match in."""

    tokens: tuple[str, ...]
    columns: tuple[str, ...] = SEARCH_COLUMNS

    def fts(self) -> str:
        """The phrase alone as an FTS5 query (``registry_fts``)."""
        quoted = '"' + " ".join(self.tokens) + '"'
        if self.columns == SEARCH_COLUMNS:
            return quoted
        return "{" + " ".join(f"search_{c}" for c in self.columns) + "} : " + quoted


def phrases(f: Filter) -> list[Phrase]:
    """The phrases of :func:`_fts_query` in its order (FTS5 numbers them so): the words in
    any column, then the condition phrases in the conditions."""
    return ([Phrase(p) for p in f.words]
            + [Phrase(p, ("conditions",)) for p in f.conditions])


@dataclass(frozen=True)
class RankTotals:
    """What the rank needs of the whole index: studies indexed and their tokens."""

    rows: int
    tokens: int


def bm25(found: Sequence[Phrase], documents: Sequence[int], totals: RankTotals,
         texts: Mapping[str, str], size: int) -> float:
    """The rank of one study (higher first): FTS5's bm25 with :data:`WEIGHTS`, negated,
    computed as fts5_aux.c computes it, from the same numbers.

    ``documents[i]``: how many studies hold ``found[i]`` (for its IDF, floored at 1e-6);
    ``texts``: the study's search texts by column, where each phrase's instances are
    counted (:func:`phrase_count`; each weighs its column's weight); ``size``: the study's
    tokens in all columns, as the index counted them. Terms are added in phrase order.

    >>> totals = RankTotals(rows=1000, tokens=50_000)  # 50 tokens a study on average
    >>> title = bm25([Phrase(("placebo",))], [100], totals, {"title": "placebo"}, 50)
    >>> criteria = bm25([Phrase(("placebo",))], [100], totals, {"criteria": "placebo"}, 50)
    >>> # IDF log(900.5 / 100.5) = 2.1928 times f (k1 + 1) / (f + k1), f the column's weight
    >>> round(title, 4), round(2.1928 * 3 * 2.2 / (3 + 1.2), 4), round(criteria, 4)
    (3.4458, 3.4458, 2.1928)
    """
    average = totals.tokens / totals.rows
    folded = {c: fold(texts.get(c, "")) for c in {c for p in found for c in p.columns}}
    score = 0.0
    for phrase, hits in zip(found, documents, strict=True):
        idf = math.log((totals.rows - hits + 0.5) / (hits + 0.5))
        if idf <= 0.0:
            idf = 1e-6
        freq = 0.0
        words = [fold(t) for t in phrase.tokens]
        for column in phrase.columns:
            n = phrase_count(folded[column], words)
            freq += WEIGHTS[SEARCH_COLUMNS.index(column)] * n
        score += idf * ((freq * (BM25_K1 + 1.0))
                        / (freq + BM25_K1 * (1 - BM25_B + BM25_B * size / average)))
    return score


def _varints(data: bytes) -> list[int]:
    """The SQLite varints one after another in ``data`` (FTS5's shadow tables)."""
    out, value, count = [], 0, 0
    for byte in data:
        count += 1
        if count == 9:
            out.append((value << 8) | byte)
            value = count = 0
        elif byte & 0x80:
            value = (value << 7) | (byte & 0x7F)
        else:
            out.append((value << 7) | byte)
            value = count = 0
    return out


def _grid(size: int, lat: float, lon: float) -> tuple[int, int]:
    return math.floor((lat + 90.0) / size), math.floor((lon + 180.0) / size)


def site_cells(points: Iterable[tuple[float, float]]) -> str:
    """The grid cells (every size of :data:`GRID`) holding these (lat, lon) points, as the
    words of ``search_cells``."""
    found = list(points)
    return " ".join(dict.fromkeys("g{}n{}e{}".format(size, *_grid(size, lat, lon))
                                  for size in GRID for lat, lon in found))


def box_cells(box: tuple[float, float, float | None, float | None]) -> list[str] | None:
    """The cells covering the box, of the finest grid that needs few; None when the box has
    no longitude limits or is too wide (the search then reads the sites by latitude).

    A point inside the box lies in one of them: cell numbers grow with lat and lon."""
    south, north, west, east = box
    if west is None or east is None:
        return None
    for size in GRID:
        (lat0, lon0), (lat1, lon1) = _grid(size, south, west), _grid(size, north, east)
        if (lat1 - lat0 + 1) * (lon1 - lon0 + 1) <= _MOST_CELLS:
            return [f"g{size}n{a}e{b}" for a in range(lat0, lat1 + 1)
                    for b in range(lon0, lon1 + 1)]
    return None


def _distance_sql(alias: str, lat: float, lon: float, params: dict[str, Any], *,
                  nearest: bool = False) -> str:
    """SQL of the great-circle km from (lat, lon) to the site ``alias``: the steps of
    :func:`trialdesk.registry.search.great_circle_km` in its order, with the place's own
    terms computed here as it computes them, so the database gives the same number.

    ``nearest``: the km of the group's nearest site, an aggregate. The haversine term
    ``a`` grows with the distance, so the km of the smallest ``a`` is the smallest km: only
    ``a`` is computed for each site, the rest once for the group."""
    p1 = lat * RADIANS
    params.update(rad=RADIANS, p1=p1, cos1=math.cos(p1), lon1=lon, two_r=2 * EARTH_RADIUS_KM)
    s = f"sin(({alias}.lat * :rad - :p1) / 2)"
    t = f"sin(({alias}.lon - :lon1) * :rad / 2)"
    a = f"{s} * {s} + :cos1 * cos({alias}.lat * :rad) * ({t} * {t})"
    return f":two_r * asin(min(1.0, sqrt({f'min({a})' if nearest else a})))"


def _phases(text_: str) -> tuple[str, ...]:
    return tuple(p for p in text_.split("|") if p)


def _record(r: m.RegistryStudy) -> StudyRecord:
    return StudyRecord(r.id, r.nct_id, r.title, r.status, _phases(r.phases), r.sex, r.minimum_age,
                       r.maximum_age, tuple(c for c in r.conditions.split(" | ") if c),
                       r.last_update, json.loads(r.document), r.digest, r.format, r.source,
                       r.criteria_count, r.unreviewed, r.imported_at, r.imported_by,
                       r.updated_at, r.updated_by, r.version)


def _site_rows(study_id: int, sites: Sequence[Site]) -> list[dict[str, Any]]:
    return [{"study_id": study_id, "position": i, "facility": x.facility, "city": x.city,
             "country": x.country, "lat": x.lat, "lon": x.lon} for i, x in enumerate(sites)]


def _values(study: StudyInput) -> dict[str, Any]:
    document = canonical(study.document)
    values: dict[str, Any] = {
        "title": study.title, "status": study.status,
        "phases": "|" + "|".join(study.phases) + "|" if study.phases else "",
        "sex": study.sex, "minimum_age": study.minimum_age, "maximum_age": study.maximum_age,
        "minimum_age_days": study.minimum_age_days, "maximum_age_days": study.maximum_age_days,
        "conditions": " | ".join(study.conditions), "mesh_terms": " | ".join(study.mesh_terms),
        "last_update": study.last_update, "document": document,
        "digest": hashlib.sha256(document.encode("utf-8")).hexdigest(), "format": study.format,
        "source": study.source[:500],
        "criteria_count": study.criteria_count, "unreviewed": study.unreviewed,
    }
    for name in SEARCH_COLUMNS:
        values[f"search_{name}"] = study.search.get(name, "")
    values["search_cells"] = site_cells((x.lat, x.lon) for x in study.sites
                                        if x.lat is not None and x.lon is not None)
    values["search_concepts"] = concept_words(study.search.get("conditions", ""),
                                              values["search_cells"])
    return values


def concept_words(conditions: str, cells: str) -> str:
    """``search_concepts``: the study's concept words (alone and at each cell) and its
    condition words at each cell."""
    return " ".join(x for x in (study_concepts(conditions, cells.split()),
                                condition_places(conditions, cells.split())) if x)


def _fts_query(f: Filter) -> str:
    """The FTS5 query of the filter's words and condition (``registry_fts``)."""
    parts = ['"' + " ".join(phrase) + '"' for phrase in f.words]
    if f.conditions:
        parts.append("search_conditions : (" + " OR ".join(
            '"' + " ".join(phrase) + '"' for phrase in f.conditions) + ")")
    return " AND ".join(parts)


def _tsquery(f: Filter) -> str:
    """The PostgreSQL ``tsquery`` of the filter's words and condition (weight B holds the
    conditions, migration 0008)."""
    parts = [" <-> ".join(t for t in phrase) for phrase in f.words]
    if f.conditions:
        parts.append("(" + " | ".join(
            " <-> ".join(f"{t}:B" for t in phrase) for phrase in f.conditions) + ")")
    return " & ".join(f"({p})" for p in parts)


def _fewest(phrases: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The phrases of an OR without those holding another one: a text holding "severe
    sepsis" holds "sepsis", so "sepsis" alone finds the same texts.

    >>> _fewest([("sepsis",), ("septic", "shock"), ("severe", "sepsis"), ("sepsis",)])
    [('sepsis',), ('septic', 'shock')]
    """
    def within(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
        n = len(short)
        return any(long[i:i + n] == short for i in range(len(long) - n + 1))

    unique = list(dict.fromkeys(phrases))
    return [p for p in unique if not any(q != p and within(q, p) for q in unique)]


_AUDITED = ("title", "status", "phases", "sex", "minimum_age", "maximum_age", "last_update",
            "digest", "unreviewed")


class RegistryStore(StoreBase):
    """The registry part of the store (opened on the same engine and clock)."""

    def save_registry_studies(self, studies: Sequence[StudyInput], *, actor: str,
                              reason: str) -> list[tuple[str, str]]:
        """Store studies in one transaction: (NCT id, "created" | "updated" | "unchanged").

        New studies and their sites are inserted in bulk (Core multi-row inserts); a changed
        one is updated and its sites replaced. Each created or updated study gets its audit
        entry, in input order, the batch's entries written together (``Tx.audit_many``)."""
        out: dict[str, str] = {}
        table = m.Base.metadata.tables["registry_studies"]
        sites_table = m.Base.metadata.tables["registry_sites"]
        concepts = m.Base.metadata.tables["registry_concepts"]
        with self._write(actor) as tx:
            s = tx.session
            wanted = [x.nct_id for x in studies]
            audited = [table.c[k] for k in _AUDITED]
            existing = {r[1]: r for r in s.execute(
                select(table.c.id, table.c.nct_id, *audited).where(table.c.nct_id.in_(wanted)))}
            new_rows: list[dict[str, Any]] = []
            new_sites: dict[str, tuple[Site, ...]] = {}
            entries: list[tuple[str, str, str, Mapping[str, Any], str]] = []
            for study in studies:
                values = _values(study)
                old = existing.get(study.nct_id)
                if old is not None and old[2 + _AUDITED.index("digest")] == values["digest"]:
                    out[study.nct_id] = "unchanged"
                    continue
                why = f"{reason} ({study.source})"[:2000]
                if old is None:
                    new_rows.append({"nct_id": study.nct_id, "imported_at": tx.at,
                                     "imported_by": actor, "updated_at": tx.at,
                                     "updated_by": actor, "version": 1, **values})
                    new_sites[study.nct_id] = study.sites
                    changes = {k: {"old": None, "new": values[k]} for k in _AUDITED}
                    out[study.nct_id] = "created"
                    entries.append(("create", "registry_study", study.nct_id, changes, why))
                    continue
                row = s.get(m.RegistryStudy, old[0])
                assert row is not None
                changes = {k: {"old": getattr(row, k), "new": values[k]} for k in _AUDITED
                           if getattr(row, k) != values[k]}
                for k, v in values.items():
                    setattr(row, k, v)
                row.updated_at, row.updated_by = tx.at, actor
                s.execute(delete(sites_table).where(sites_table.c.study_id == row.id))
                s.flush()
                if study.sites:
                    s.execute(insert(sites_table), _site_rows(row.id, study.sites))
                entries.append(("update", "registry_study", study.nct_id, changes, why))
                out[study.nct_id] = "updated"
            if new_rows:
                # Core multi-row inserts: the ORM's bulk path costs more than the rows.
                s.execute(insert(table), new_rows)
                ids = dict(s.execute(select(table.c.nct_id, table.c.id).where(
                    table.c.nct_id.in_(list(new_sites)))).all())
                sites = [r for nct, found in new_sites.items() for r in _site_rows(ids[nct], found)]
                if sites:
                    s.execute(insert(sites_table), sites)
            if new_rows or entries:
                # A concept word no longer made (its phrases changed) is not looked up:
                # the studies written now do not hold it.
                s.execute(delete(concepts).where(
                    concepts.c.token.not_in([*concept_tokens(), PLACE_WORDS])))
            tx.audit_many(entries)
        return [(x.nct_id, out[x.nct_id]) for x in studies]

    def registry_concept_indexed(self, token: str) -> bool:
        """Whether every stored study holds the concept word as its conditions say (see
        :class:`trialdesk.store.models.RegistryConcept`)."""
        with self._read() as s:
            return s.scalar(select(m.RegistryConcept.token).where(
                m.RegistryConcept.token == token)) is not None

    def registry_study(self, nct_id: str) -> StudyRecord:
        with self._read() as s:
            row = s.scalar(select(m.RegistryStudy).where(m.RegistryStudy.nct_id == nct_id))
            if row is None:
                raise NotFoundError(f"no registry study '{nct_id}'")
            return _record(row)

    def registry_documents(self, nct_ids: Sequence[str], *, reviewed_only: bool = False
                           ) -> dict[str, dict[str, Any]]:
        """The stored documents of these NCT ids (only those with a reviewed criterion)."""
        with self._read() as s:
            q = select(m.RegistryStudy.nct_id, m.RegistryStudy.document).where(
                m.RegistryStudy.nct_id.in_(list(nct_ids)))
            if reviewed_only:
                q = q.where(m.RegistryStudy.unreviewed < m.RegistryStudy.criteria_count)
            return {r[0]: json.loads(r[1]) for r in s.execute(q)}

    def registry_count(self) -> int:
        with self._read() as s:
            return int(s.scalar(select(func.count()).select_from(m.RegistryStudy)) or 0)

    def update_registry_document(self, nct_id: str, document: Mapping[str, Any], *,
                                 expected_version: int, unreviewed: int, actor: str,
                                 action: str, changes: Mapping[str, Any], reason: str,
                                 signature: tuple[int, str] | None = None) -> StudyRecord:
        """A reviewed document replaces the stored one (the version it was based on must
        still be the stored one); ``signature`` (user id, meaning) signs it in the same
        transaction."""
        with self._write(actor) as tx:
            row = tx.session.scalar(select(m.RegistryStudy).where(
                m.RegistryStudy.nct_id == nct_id).with_for_update())
            if row is None:
                raise NotFoundError(f"no registry study '{nct_id}'")
            if row.version != expected_version:
                raise ConflictError(f"{nct_id} was changed by {row.updated_by} at "
                                    f"{row.updated_at}; reload it and review again",
                                    where="version")
            row.document = canonical(document)
            row.digest = digest(document)
            row.unreviewed = unreviewed
            row.updated_at, row.updated_by = tx.at, actor
            tx.session.flush()
            tx.audit(action, "registry_study", nct_id, changes, reason)
            if signature is not None:
                self._add_signature(tx, signature[0], signature[1], "registry_study",
                                    f"{nct_id}#{row.version}", row.digest, reason, nct_id)
            return _record(row)

    def registry_site_place(self, city: str) -> tuple[str, str | None, float, float, str] | None:
        """(city, country, lat, lon, NCT id) of a site in ``city`` with a geo point."""
        with self._read() as s:
            found = s.execute(
                select(m.RegistrySite.city, m.RegistrySite.country, m.RegistrySite.lat,
                       m.RegistrySite.lon, m.RegistryStudy.nct_id)
                .join(m.RegistryStudy, m.RegistryStudy.id == m.RegistrySite.study_id)
                .where(func.lower(m.RegistrySite.city) == city.strip().lower(),
                       m.RegistrySite.lat.is_not(None))
                .order_by(m.RegistrySite.id).limit(1)).first()
            if found is None or found[2] is None or found[3] is None:
                return None
            return (found[0] or city, found[1], float(found[2]), float(found[3]), found[4])

    # ------------------------------------------------------------------ search

    def _candidate_sql(self, f: Filter, near: tuple[float, float, float] | None = None
                       ) -> tuple[str, dict[str, Any]]:
        """The candidates' SQL. With a box, one row per site inside it (its point and
        names); with ``near`` (lat, lon, km) as well, one row per study: its nearest site in
        the box, measured in SQL, when within km (SQLite). The tables are joined in the
        order that prunes first (SQLite's CROSS JOIN keeps the order): the full-text
        matches, else the sites by the latitude index."""
        pg = self.backend == "postgresql"
        params: dict[str, Any] = {}
        where: list[str] = []
        tables = ["registry_studies s"]
        head = ""
        score = "0.0"
        if f.words or f.conditions:
            if pg:
                params["tsq"] = _tsquery(f)
                where.append("s.search_vector @@ to_tsquery('simple', :tsq)")
                if f.ranked:
                    score = "ts_rank(s.search_vector, to_tsquery('simple', :tsq))"
            else:
                params["fts"] = _fts_query(f)
                words = ['"' + " ".join(phrase) + '"' for phrase in f.words]
                cells = box_cells(f.box) if f.box is not None else None
                if cells:
                    # Words, condition and place in one index. A condition phrase holding
                    # another one adds nothing to their OR: left out, the index reads less.
                    conditions = _fewest(f.conditions)
                    word = (place_word(conditions[0]) if f.places and len(conditions) == 1
                            else None)
                    if f.concept:
                        # The condition at each place: one short list a cell, not the
                        # long list of each cell and of the condition.
                        place = [f"search_concepts : ({' OR '.join(f.concept + c for c in cells)})"]
                    elif word is not None:
                        # A word of the phrase at each place, and the phrase when it has
                        # more words than that one.
                        place = [f"search_conditions : \"{' '.join(conditions[0])}\""
                                 ] * (len(conditions[0]) > 1) + [
                            f"search_concepts : ({' OR '.join(word + c for c in cells)})"]
                    else:
                        place = ["search_conditions : (" + " OR ".join(
                            '"' + " ".join(phrase) + '"' for phrase in conditions) + ")"
                                 ] * bool(conditions) + [
                            f"search_cells : ({' OR '.join(cells)})"]
                    params["find"] = " AND ".join([f"{_TEXTS} : {w}" for w in words] + place)
                    head = ("WITH f AS MATERIALIZED (SELECT rowid AS id FROM registry_find "
                            "WHERE registry_find MATCH :find) ")
                elif f.ranked:
                    head = (f"WITH f AS MATERIALIZED (SELECT rowid AS id, -{_BM25} AS score "
                            "FROM registry_fts WHERE registry_fts MATCH :fts) ")
                    score = "f.score"
                else:
                    head = ("WITH f AS MATERIALIZED (SELECT rowid AS id FROM registry_fts "
                            "WHERE registry_fts MATCH :fts) ")
                tables = ["f", "registry_studies s INDEXED BY ix_registry_studies_filters"]
                where.append("s.id = f.id")
        if f.status:
            params["status"] = f.status
            where.append("s.status = :status")
        if f.phase:
            params["phase"] = f"%|{f.phase}|%"
            where.append("s.phases LIKE :phase")
        if f.sexes is not None:
            names = []
            for i, sex in enumerate(f.sexes):
                params[f"sex{i}"] = sex
                names.append(f":sex{i}")
            where.append(f"s.sex IN ({', '.join(names)})")
        if f.age_days is not None:
            params["age_lo"], params["age_hi"] = f.age_days
            where.append("(s.minimum_age_days IS NULL OR s.minimum_age_days <= :age_hi)")
            where.append("(s.maximum_age_days IS NULL OR s.maximum_age_days >= :age_lo)")
        columns = f"s.id, s.minimum_age, s.maximum_age, {score} AS score"
        if f.box is not None:
            if head:
                tables.append("registry_sites r INDEXED BY ix_registry_sites_study_point")
            else:
                tables.insert(0, "registry_sites r")
            where.append("r.study_id = s.id")
            where.append(self._box_sql(f.box, "r", params))
            if near is None:
                columns += ", r.id, r.lat, r.lon"
            else:
                # SQLite gives min()'s bare columns (the site) from the row of the minimum.
                km = _distance_sql("r", near[0], near[1], params, nearest=True)
                columns += f", r.id, {km} AS km"
        sql = f"{head}SELECT {columns} FROM {' CROSS JOIN '.join(tables)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if f.box is not None and near is not None:
            params["km"] = near[2]
            sql += " GROUP BY s.id HAVING km <= :km"
        return sql, params

    @staticmethod
    def _box_sql(box: tuple[float, float, float | None, float | None], alias: str,
                 params: dict[str, Any]) -> str:
        south, north, west, east = box
        params.update(south=south, north=north)
        sql = f"{alias}.lat BETWEEN :south AND :north"
        if west is not None and east is not None:
            params.update(west=west, east=east)
            sql += f" AND {alias}.lon BETWEEN :west AND :east"
        return sql

    def registry_candidates(self, f: Filter) -> list[Candidate]:
        """The candidates (without a box in the filter)."""
        sql, params = self._candidate_sql(f)
        with self._read() as s:
            return [Candidate(r[0], r[1], r[2], float(r[3] or 0.0))
                    for r in s.execute(text(sql), params)]

    def registry_candidates_in_box(self, f: Filter
                                   ) -> list[tuple[Candidate, int, float, float]]:
        """(candidate, site id, lat, lon) for every site with a point inside the filter's
        box, read from the sites' (study, lat, lon) index alone (the names of the few sites
        shown come from :meth:`registry_site_names`)."""
        sql, params = self._candidate_sql(f)
        with self._read() as s:
            rows: list[Sequence[Any]] = list(s.execute(text(sql), params))
            if "find" in params and f.ranked:
                scores = self._scores(s, params["fts"], {r[0] for r in rows})
                rows = [(*r[:3], scores[r[0]], *r[4:]) for r in rows]
            return [(Candidate(r[0], r[1], r[2], float(r[3] or 0.0)), int(r[4]), float(r[5]),
                     float(r[6])) for r in rows]

    def registry_nearest_in_box(self, f: Filter, lat: float, lon: float, km: float
                                ) -> list[tuple[Candidate, int, float]]:
        """(candidate, site id, km) for every study with a site inside the filter's box
        within ``km`` of the point: its nearest such site and the distance
        :func:`great_circle_km` gives.

        On SQLite the database measures every site in the box and keeps each study's
        nearest (one row per study comes back, not one per site); elsewhere the sites come
        back and are measured here."""
        if f.box is None:
            raise ValueError("a box is needed")
        if self.backend == "postgresql":
            nearest: dict[int, tuple[Candidate, int, float]] = {}
            for c, site, lat2, lon2 in self.registry_candidates_in_box(f):
                d = great_circle_km(lat, lon, lat2, lon2)
                if d <= km and (c.id not in nearest or d < nearest[c.id][2]):
                    nearest[c.id] = (c, site, d)
            return list(nearest.values())
        sql, params = self._candidate_sql(f, (lat, lon, km))
        with self._read() as s:
            rows: list[Sequence[Any]] = list(s.execute(text(sql), params))
            if "find" in params and f.ranked:
                scores = self._scores(s, params["fts"], {r[0] for r in rows})
                rows = [(*r[:3], scores[r[0]], *r[4:]) for r in rows]
        return [(Candidate(r[0], r[1], r[2], float(r[3] or 0.0)), int(r[4]), float(r[5]))
                for r in rows]

    def registry_scores(self, f: Filter, ids: Iterable[int], *,
                        texts: Mapping[int, Mapping[str, str]] | None = None,
                        documents: Callable[[Phrase], int] | None = None
                        ) -> dict[int, float]:
        """The full-text rank of these studies (found with the filter's words and condition),
        as :meth:`registry_candidates` gives it with ``ranked``.

        On SQLite it is computed here (:func:`bm25`) rather than by FTS5, which counts, for
        each phrase, every study holding it before it ranks any row (the whole list of a
        word as common as "placebo"): the studies holding a phrase come from ``documents``
        (default :meth:`registry_phrase_documents`; a caller may keep them between writes),
        the sizes and totals from the index's own records, the instances from the studies'
        search texts (``texts``, read when not given)."""
        wanted = {int(i) for i in ids}
        if not wanted or not (f.words or f.conditions):
            return dict.fromkeys(wanted, 0.0)
        if self.backend == "postgresql":
            with self._read() as s:
                rows = s.execute(text(
                    "SELECT id, ts_rank(search_vector, to_tsquery('simple', :tsq)) "
                    "FROM registry_studies WHERE id = ANY(:ids)"),
                    {"tsq": _tsquery(f), "ids": sorted(wanted)})
                return {int(r[0]): float(r[1] or 0.0) for r in rows}
        found = phrases(f)
        counts = [(documents or self.registry_phrase_documents)(p) for p in found]
        if texts is None or not wanted <= set(texts):
            texts = {**(texts or {}), **self.registry_search_texts(sorted(wanted))}
        totals, sizes = self.registry_rank_totals(), self.registry_token_counts(wanted)
        if totals.rows <= 0:  # nothing indexed (the studies asked about are gone)
            return dict.fromkeys(wanted, 0.0)
        return {i: bm25(found, counts, totals, texts.get(i, {}), sizes.get(i, 0))
                for i in wanted}

    def registry_phrase_documents(self, phrase: Phrase) -> int:
        """How many studies hold the phrase (in its columns)."""
        with self._read() as s:
            return int(s.execute(text("SELECT count(*) FROM registry_fts WHERE registry_fts "
                                      "MATCH :q"), {"q": phrase.fts()}).scalar() or 0)

    def registry_rank_totals(self) -> RankTotals:
        """Studies indexed and their tokens in all columns, from FTS5's averages record
        (``registry_fts_data`` row 1: varints, the rows then each column's tokens)."""
        with self._read() as s:
            data = s.execute(text("SELECT block FROM registry_fts_data WHERE id = 1")).scalar()
        numbers = _varints(bytes(data or b""))
        return RankTotals(numbers[0] if numbers else 0, sum(numbers[1:]))

    def registry_token_counts(self, ids: Iterable[int]) -> dict[int, int]:
        """Each study's tokens in all columns as FTS5 counted them (``registry_fts_docsize``:
        a varint a column)."""
        wanted = sorted({int(i) for i in ids})
        out: dict[int, int] = {}
        with self._read() as s:
            for start in range(0, len(wanted), _CHUNK):
                listed = ", ".join(str(i) for i in wanted[start:start + _CHUNK])
                rows = s.execute(text(
                    f"SELECT id, sz FROM registry_fts_docsize WHERE id IN ({listed})"))
                out.update((int(r[0]), sum(_varints(bytes(r[1])))) for r in rows)
        return out

    @staticmethod
    def _scores(s: Any, fts: str, ids: set[int]) -> dict[int, float]:
        """The full-text rank of these studies, computed for them alone: FTS5 evaluates the
        rank only for rows that pass the WHERE, and the ``+`` keeps the id list out of the
        index lookup (one lookup per id would recount the corpus statistics each time)."""
        if not ids:
            return {}
        listed = ", ".join(str(int(i)) for i in sorted(ids))
        rows = s.execute(text(
            f"SELECT rowid, -{_BM25} FROM registry_fts WHERE registry_fts MATCH :fts "
            f"AND rowid BETWEEN :lo AND :hi AND +rowid IN ({listed})"),
            {"fts": fts, "lo": min(ids), "hi": max(ids)})
        return {int(r[0]): float(r[1]) for r in rows}

    def registry_site_names(self, site_ids: Iterable[int]) -> dict[int, str]:
        """"facility, city, country" of these sites (the parts they have)."""
        t = m.RegistrySite
        wanted = sorted({int(i) for i in site_ids})
        out: dict[int, str] = {}
        with self._read() as s:
            for start in range(0, len(wanted), _CHUNK):
                rows = s.execute(select(t.id, t.facility, t.city, t.country).where(
                    t.id.in_(wanted[start:start + _CHUNK])))
                out.update((int(r[0]), ", ".join(x for x in r[1:] if x)) for r in rows)
        return out

    def registry_points_of(self, ids: Sequence[int]) -> Iterator[tuple[int, int, float, float]]:
        """(study id, site id, lat, lon) of the sites with a geo point of the given studies,
        from the sites' (study, lat, lon) index alone."""
        with self._read() as s:
            for start in range(0, len(ids), _CHUNK):
                listed = ", ".join(str(int(i)) for i in ids[start:start + _CHUNK])
                rows = s.execute(text(
                    "SELECT study_id, id, lat, lon FROM registry_sites "
                    f"WHERE study_id IN ({listed}) AND lat IS NOT NULL AND lon IS NOT NULL "
                    "ORDER BY study_id, lat, lon, id"))
                yield from ((int(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in rows)

    def registry_listed(self, ids: Sequence[int], *, texts: bool = False) -> dict[int, Listed]:
        """The result lines of a page of studies (with their indexed texts, to say where
        each word matched, when asked)."""
        t = m.RegistryStudy
        cols = [getattr(t, f"search_{n}") for n in SEARCH_COLUMNS] if texts else []
        with self._read() as s:
            rows = s.execute(select(t.id, t.nct_id, t.title, t.status, t.phases, t.unreviewed,
                                    *cols).where(t.id.in_(list(ids))))
            return {r[0]: Listed(r[1], r[2], r[3], _phases(r[4]), r[5],
                                 dict(zip(SEARCH_COLUMNS, r[6:], strict=True)) if texts else {})
                    for r in rows}

    def registry_sites_of(self, ids: Sequence[int],
                          box: tuple[float, float, float | None, float | None] | None = None
                          ) -> Iterator[tuple[int, float, float, str | None, str | None,
                                              str | None]]:
        """(study id, lat, lon, facility, city, country) of the sites with a geo point of
        the given studies (inside the box, when one is given)."""
        t = m.RegistrySite
        base = select(t.study_id, t.lat, t.lon, t.facility, t.city, t.country).where(
            t.lat.is_not(None), t.lon.is_not(None))
        if box is not None:
            south, north, west, east = box
            base = base.where(t.lat.between(south, north))
            if west is not None and east is not None:
                base = base.where(t.lon.between(west, east))
        with self._read() as s:
            for start in range(0, len(ids), _CHUNK):
                rows = s.execute(base.where(t.study_id.in_(list(ids[start:start + _CHUNK]))))
                yield from ((int(r[0]), float(r[1] or 0.0), float(r[2] or 0.0), r[3], r[4], r[5])
                            for r in rows)

    def registry_search_texts(self, ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """The indexed texts of a few studies (to say where each word matched)."""
        cols = [getattr(m.RegistryStudy, f"search_{n}") for n in SEARCH_COLUMNS]
        with self._read() as s:
            rows = s.execute(select(m.RegistryStudy.id, *cols)
                             .where(m.RegistryStudy.id.in_(list(ids))))
            return {r[0]: dict(zip(SEARCH_COLUMNS, r[1:], strict=True)) for r in rows}

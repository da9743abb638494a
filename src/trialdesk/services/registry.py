"""The registry in the database: ClinicalTrials.gov records imported (administrators),
searched (any signed-in user), and their criteria drafts reviewed (investigators, signed).

* Import: every file's studies are read by :mod:`trialdesk.registry.importer`; a malformed
  study fails alone with one line naming file, path and reason; the others of the file are
  stored in one transaction, each audited (record type ``registry_study``). Re-importing an
  NCT id with a changed record updates it; a criterion whose text did not change keeps the
  review it had.
* Search: the database's full-text index (FTS5 / PostgreSQL full-text search) finds the
  candidates for text and condition (with the synonyms of
  :data:`trialdesk.registry.search.SYNONYMS`), status, phase, sex, an age window and a
  bounding box; ages are then checked in their own units and distances measured to the
  nearest site.
* Review: accept, edit or reject a draft, with the reviewer's password (an e-signature).
  A study with unreviewed criteria is a draft: it cannot screen or enrol anyone.
* Open as a trial: once every criterion item is reviewed, whoever may register protocols
  (an administrator) registers the study's document — the protocol document the importer
  built, with the reviewed rules — as the trial's next protocol version, signed with the
  password; the trial is then in the catalogue and screens patients. A re-import with
  changed criteria, reviewed again, opens as the trial's next version.
"""

from __future__ import annotations

import functools
import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from trialdesk.errors import AccessError, ConflictError, NotFoundError, RegistryError, ReviewError
from trialdesk.protocol.model import Registry
from trialdesk.registry import review as core_review
from trialdesk.registry.gazetteer import Place, resolve_place
from trialdesk.registry.importer import Failed, Imported, import_bytes
from trialdesk.registry.records import age_limit
from trialdesk.registry.search import (
    PLACE_WORDS,
    Age,
    Hit,
    Query,
    concept_token,
    condition_terms,
    fits_age,
    great_circle_km,
    index_fields,
    matched_fields,
    normal_phase,
    normal_sex,
    normal_status,
    query_words,
    tokens,
)
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.patients import register_protocol
from trialdesk.services.roles import SIGNATURE_MEANINGS, Permission
from trialdesk.store.base import counter_read_once
from trialdesk.store.registry import (
    Candidate,
    Filter,
    Listed,
    Phrase,
    RegistryStore,
    Site,
    StudyInput,
    StudyRecord,
)

P = Permission
BATCH = 500  # studies stored per transaction
LIMIT = 50  # results shown


def registry_store(ctx: Services) -> RegistryStore:
    """The registry part of the store, on the same database and clock."""
    return RegistryStore(ctx.store.engine, clock=ctx.store.clock)


def _require(who: Principal, permission: Permission, what: str) -> Any:
    user = who.require_user()
    if not who.can_anywhere(permission):
        raise AccessError(f"your role does not allow {what}")
    return user


# ---------------------------------------------------------------------------- import


def _days(text: str | None) -> float | None:
    limit = age_limit(text)
    if limit is None:
        return None
    return Age(*limit).days()


def _criteria(document: dict[str, Any]) -> list[dict[str, Any]]:
    el = document.get("eligibility", {})
    return [*el.get("inclusion", []), *el.get("exclusion", [])]


def _unreviewed(document: dict[str, Any]) -> int:
    return sum((c.get("review") or {}).get("state") == "draft" for c in _criteria(document))


def _keep_reviews(new: dict[str, Any], old: dict[str, Any]) -> None:
    """Criteria whose id and text did not change keep their reviewed rule and review."""
    before = {c["id"]: c for c in _criteria(old)
              if (c.get("review") or {}).get("state") not in (None, "draft")}
    for c in _criteria(new):
        kept = before.get(c["id"])
        if kept is not None and kept.get("text") == c.get("text"):
            c.clear()
            c.update(kept)


def study_input(result: Imported) -> StudyInput:
    """What the store keeps of one imported study."""
    doc = result.document
    r = result.registry if result.registry is not None else Registry.model_validate(doc["registry"])
    texts = [c.get("text", "") for c in _criteria(doc)]
    el = r.eligibility
    sites = tuple(Site(loc.facility, loc.city, loc.country, loc.geo.lat if loc.geo else None,
                       loc.geo.lon if loc.geo else None)
                  for loc in r.contacts_locations.locations)
    mesh = [t.term for t in r.mesh.conditions] if r.mesh else []
    return StudyInput(
        nct_id=result.nct_id, title=r.identification.brief_title,
        status=r.status.overall_status, phases=tuple(r.design.phases), sex=el.sex,
        minimum_age=el.minimum_age, maximum_age=el.maximum_age,
        minimum_age_days=_days(el.minimum_age), maximum_age_days=_days(el.maximum_age),
        conditions=tuple(r.conditions), mesh_terms=tuple(mesh),
        last_update=r.status.last_update_posted, document=doc, format=result.format,
        source=result.where, criteria_count=len(texts), unreviewed=_unreviewed(doc),
        search=index_fields(r, texts), sites=sites)


@dataclass(frozen=True)
class ImportLine:
    """What happened to one study (or a file that could not be read)."""

    result: Imported | Failed
    stored: str | None = None  # created, updated, unchanged

    def to_json(self) -> dict[str, Any]:
        out = self.result.summary()
        if self.stored is not None:
            out["stored"] = self.stored
        return out


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused while one file is imported: parsing and storing a
    file allocates hundreds of thousands of objects that live until the file is stored,
    and each collection on the way would walk them all again (measured: a fifth of the
    import's CPU time). Reference counting still frees what is dropped; the collector runs
    again, once, after the file."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def import_files(ctx: Services, who: Principal, files: Sequence[tuple[str, bytes]],
                 *, reason: str = "imported from a registry file") -> list[ImportLine]:
    """Import every study of the files (name, bytes) into the database."""
    user = _require(who, P.REGISTRY_IMPORT, "importing registry records")
    store = registry_store(ctx)
    lines: list[ImportLine] = []
    pending: dict[str, Imported] = {}

    def flush() -> None:
        if not pending:
            return
        inputs = []
        reviewed = store.registry_documents(list(pending), reviewed_only=True)
        for p in pending.values():
            if p.nct_id in reviewed:
                _keep_reviews(p.document, reviewed[p.nct_id])
            inputs.append(study_input(p))
        outcome = dict(store.save_registry_studies(inputs, actor=user.username, reason=reason))
        lines.extend(ImportLine(p, outcome[p.nct_id]) for p in pending.values())
        pending.clear()

    for name, data in files:
        with _collector_paused():
            for result in import_bytes(data, name=name):
                if isinstance(result, Failed):
                    lines.append(ImportLine(result))
                    continue
                if result.nct_id in pending:
                    flush()  # the same study twice: the later one wins, in order
                pending[result.nct_id] = result
                if len(pending) >= BATCH:
                    flush()
            flush()
    return lines


# ---------------------------------------------------------------------------- search


def _place(store: RegistryStore, text: str) -> Place:
    try:
        return resolve_place(text)
    except RegistryError:
        found = store.registry_site_place(text)
        if found is None:
            raise
        city, country, lat, lon, nct = found
        return Place(", ".join(x for x in (city, country) if x), lat, lon, f"site of {nct}")


def _box(place: Place, km: float) -> tuple[float, float, float | None, float | None]:
    dlat = km / 111.0 * 1.01 + 0.01  # a degree of latitude is at least 110.57 km
    south, north = max(-90.0, place.lat - dlat), min(90.0, place.lat + dlat)
    cos = math.cos(math.radians(max(abs(south), abs(north))))
    if cos < 0.05:
        return south, north, None, None
    dlon = dlat / cos
    west, east = place.lon - dlon, place.lon + dlon
    if west < -180 or east > 180:
        return south, north, None, None
    return south, north, west, east


def search(ctx: Services, who: Principal, *, text: str | None = None,
           condition: str | None = None, status: str | None = None, phase: str | None = None,
           age: Age | None = None, sex: str | None = None, near: str | None = None,
           km: float | None = None, limit: int = LIMIT) -> dict[str, Any]:
    """The studies matching every given filter: by distance to the nearest site when a place
    is given, else by rank. ``total`` counts them all; ``results`` holds the first ``limit``."""
    who.require_user()
    store = registry_store(ctx)
    if km is not None and (not math.isfinite(km) or km <= 0):
        raise RegistryError("give a distance above 0 km", where="--km")
    if km is not None and not near:
        raise RegistryError("a distance needs a place to measure from", where="--near")
    place = _place(store, near) if near else None
    words = [w for w in query_words(text) if tokens(w)]
    terms = [t for t in condition_terms(condition) if tokens(t)] if condition else []
    if condition and not terms:
        raise RegistryError("name a condition in words", where="--condition")
    age_days = age.days() if age else None
    box = _box(place, km) if place is not None and km is not None else None
    concept = concept_token(condition) if condition and box is not None else None
    if concept is not None and not ctx.catalogue.kept(
            ("registry concept indexed", concept),
            functools.partial(store.registry_concept_indexed, concept)):
        concept = None  # the stored studies do not all hold it: the phrases
    places = bool(condition) and box is not None and ctx.catalogue.kept(
        ("registry concept indexed", PLACE_WORDS),
        functools.partial(store.registry_concept_indexed, PLACE_WORDS))
    f = Filter(
        words=tuple(tuple(tokens(w)) for w in words),
        conditions=tuple(tuple(tokens(t)) for t in terms),
        status=normal_status(status) if status else None,
        phase=normal_phase(phase) if phase else None,
        sexes=("ALL", normal_sex(sex)) if sex else None,
        # Completed units: a patient may be up to one unit (a year) older than a maximum.
        age_days=(age_days - 367, age_days + 32) if age_days is not None else None,
        box=box,
        concept=concept,
        places=places,
        # By place, the rank only orders studies at the same distance: it is computed for
        # the page shown (and its ties), not for every match.
        ranked=place is None)
    nearest: dict[int, tuple[float, int]] = {}  # study id -> (km, site id)
    if box is not None and place is not None and km is not None:
        found = []
        for c, site, d in store.registry_nearest_in_box(f, place.lat, place.lon, km):
            found.append(c)
            nearest[c.id] = (d, site)
    else:
        found = store.registry_candidates(f)
    if age is not None:
        fits: dict[tuple[str | None, str | None], bool] = {}
        kept = []
        for c in found:
            key = (c.minimum_age, c.maximum_age)
            if key not in fits:
                fits[key] = fits_age(age, *key)
            if fits[key]:
                kept.append(c)
        found = kept
    if place is not None and box is None:
        for sid, site, lat, lon in store.registry_points_of([c.id for c in found]):
            d = great_circle_km(place.lat, place.lon, lat, lon)
            if sid not in nearest or d < nearest[sid][0]:
                nearest[sid] = (d, site)
    scores = {c.id: c.score for c in found}
    listed: dict[int, Listed] = {}
    if place is not None:
        # (no site with a point, km): each study's place in the order, made once.
        wheres = {c.id: (False, nearest[c.id][0]) if c.id in nearest else (True, 0.0)
                  for c in found}

        def where(c: Candidate) -> tuple[bool, float]:
            return wheres[c.id]

        found.sort(key=lambda c: (*wheres[c.id], c.id))
        # The rank for the page and for the studies at the same place as its last one.
        ranked = found[:limit]
        if ranked and len(found) > limit:
            last = wheres[ranked[-1].id]
            ranked += [c for c in found[limit:] if wheres[c.id] == last]
        listed = store.registry_listed([c.id for c in ranked], texts=bool(words or terms))

        def documents(phrase: Phrase) -> int:  # studies holding it: the same until a write
            return ctx.catalogue.kept(("registry phrase documents", phrase),
                                      lambda: store.registry_phrase_documents(phrase))

        with counter_read_once():  # the write counter read once for all the phrases
            scores.update(store.registry_scores(
                f, [c.id for c in ranked], texts={i: x.texts for i, x in listed.items()},
                documents=documents))
        ranked.sort(key=lambda c: (*where(c), -scores[c.id], c.id))
        page = ranked[:limit]
    else:
        found.sort(key=lambda c: (-c.score, c.id))
        page = found[:limit]
    if not listed:
        listed = store.registry_listed([c.id for c in page], texts=bool(words or terms))
    names = store.registry_site_names(nearest[c.id][1] for c in page if c.id in nearest)
    hits = []
    for c in page:
        shown = listed[c.id]
        fields = dict(shown.texts)
        matched = []
        if terms:
            cond = matched_fields({"conditions": fields["conditions"]}, terms)
            if cond:
                matched.append(f"condition {cond[0].split(' in ')[0]}")
        if words:
            matched += matched_fields(fields, words)
        km_, name = (nearest[c.id][0], names[nearest[c.id][1]]) if c.id in nearest else (
            None, None)
        hits.append(Hit(shown.nct_id, shown.title, shown.status, list(shown.phases),
                        scores[c.id], km_, name, matched, shown.unreviewed > 0))
    query = Query(text=text, condition=condition, status=status, phase=phase, age=age, sex=sex,
                  near=place, km=km)
    return {"query": query.to_json(), "total": len(found), "shown": len(hits),
            "results": [h.to_json() for h in hits]}


# ---------------------------------------------------------------------------- review

REVIEW_STATES = {"draft": "draft, awaiting review", "accepted": "accepted",
                 "edited": "edited by the reviewer", "rejected": "rejected: investigator question"}


def study(ctx: Services, who: Principal, nct_id: str) -> StudyRecord:
    who.require_user()
    return registry_store(ctx).registry_study(nct_id)


def review_page(ctx: Services, who: Principal, nct_id: str) -> dict[str, Any]:
    """A study's criteria with their drafts and review states, for the review page."""
    s = study(ctx, who, nct_id)
    criteria = []
    for kind in ("inclusion", "exclusion"):
        for c in s.document.get("eligibility", {}).get(kind, []):
            review = c.get("review") or {}
            criteria.append({
                "kind": kind, "id": c["id"], "text": c.get("text", ""), "rule": c.get("rule"),
                "question": c.get("attest"), "note": c.get("note"),
                "state": review.get("state", "accepted"),
                "state_label": REVIEW_STATES.get(review.get("state", ""), "reviewed"),
                "by": review.get("by"), "at": review.get("at"),
                "draft": review.get("draft") or {}})
    return {"nct_id": s.nct_id, "title": s.title, "status": s.status, "version": s.version,
            "unreviewed": s.unreviewed, "criteria": criteria, "source": s.source,
            "can_review": who.can_anywhere(P.CRITERIA_REVIEW),
            "can_open": who.can_anywhere(P.TRIAL_MANAGE), "trial": _opened(ctx, nct_id),
            "first_unreviewed": next((c["id"] for c in criteria if c["state"] == "draft"), None),
            "minimum_age": s.minimum_age, "maximum_age": s.maximum_age, "sex": s.sex,
            "phases": s.phases, "conditions": s.conditions, "last_update": s.last_update,
            "updated_at": s.updated_at, "updated_by": s.updated_by}


def review(ctx: Services, who: Principal, nct_id: str, criterion_id: str, *, action: str,
           version: int, password: str, rule: str | None = None, question: str | None = None,
           note: str | None = None) -> dict[str, Any]:
    """Accept, edit or reject one criterion's draft, signed with the reviewer's password."""
    _require(who, P.CRITERIA_REVIEW, "reviewing criteria")
    if action not in ("accept", "edit", "reject"):
        raise ReviewError("choose accept, edit or reject", where="Decision")
    user = ctx.accounts.confirm_password(who, password)
    store = registry_store(ctx)
    s = store.registry_study(nct_id)
    at = ctx.store.now()
    note = (note or "").strip() or None
    old = next((c for c in _criteria(s.document) if c.get("id") == criterion_id), None)
    if old is None:
        raise ReviewError(f"no criterion '{criterion_id}'", where=f"study {nct_id}")
    if action == "accept":
        doc = core_review.accept(s.document, criterion_id, by=user.username, at=at, note=note)
    elif action == "reject":
        doc = core_review.reject(s.document, criterion_id, by=user.username, at=at, note=note)
    else:
        rule = (rule or "").strip() or None
        question = (question or "").strip() or None
        if rule is None and question is None:
            raise ReviewError("write the rule, or the question for the investigator",
                              where="Rule")
        doc = core_review.edit(s.document, criterion_id, by=user.username, at=at,
                               rule=rule, attest=None if rule else question, note=note)
    new = next(c for c in _criteria(doc) if c.get("id") == criterion_id)
    changes = {f"$.eligibility.{criterion_id}.{k}": {"old": old.get(k), "new": new.get(k)}
               for k in ("rule", "attest") if old.get(k) != new.get(k)}
    changes[f"$.eligibility.{criterion_id}.review"] = {
        "old": (old.get("review") or {}).get("state"), "new": new["review"]["state"]}
    meaning = f"{SIGNATURE_MEANINGS[P.CRITERIA_REVIEW]} ({criterion_id}: {new['review']['state']})"
    reason = f"criterion {criterion_id} {new['review']['state']}" + (f": {note}" if note else "")
    saved = store.update_registry_document(
        nct_id, doc, expected_version=version, unreviewed=_unreviewed(doc),
        actor=user.username, action="review", changes=changes, reason=reason,
        signature=(user.id, meaning))
    return {"nct_id": nct_id, "criterion": criterion_id, "state": new["review"]["state"],
            "unreviewed": saved.unreviewed, "version": saved.version}


# ---------------------------------------------------------------------------- open as a trial

OPENED_FROM = "registry study"  # the source of a protocol version opened from the registry


def _opened(ctx: Services, nct_id: str) -> dict[str, Any] | None:
    """The trial a study was opened as: its latest version (None if not opened)."""
    try:
        v = ctx.store.protocol_version(nct_id)
    except NotFoundError:
        return None
    return {"trial_id": v.trial_id, "number": v.number, "label": v.label,
            "created_at": v.created_at, "created_by": v.created_by,
            "from_registry": v.source.startswith(OPENED_FROM)}


def unreviewed_message(unreviewed: int, total: int, nct_id: str) -> str:
    """Why a study cannot be opened yet, in words, with where to review it.

    >>> unreviewed_message(1, 12, "NCT00973089")
    '1 of 12 criteria items still awaits review; review it on /registry/studies/NCT00973089 first'
    """
    items = "1 of {} criteria items still awaits review; review it" if unreviewed == 1 else \
        "{} of {} criteria items still await review; review them"
    text = items.format(total) if unreviewed == 1 else items.format(unreviewed, total)
    return f"{text} on /registry/studies/{nct_id} first"


def open_as_trial(ctx: Services, who: Principal, nct_id: str, *, password: str,
                  reason: str | None = None) -> dict[str, Any]:
    """Register a fully reviewed study as a trial protocol version, signed with the password.

    The first opening creates the trial (its id is the NCT id); a study changed since (a
    re-import, reviewed again) becomes the trial's next version; the same document again
    writes nothing (``unchanged``). A trial of that id registered from a protocol file is
    left alone: amend it as its own protocol."""
    _require(who, P.TRIAL_MANAGE, "registering trial protocols")
    s = study(ctx, who, nct_id)
    if s.unreviewed:
        raise ReviewError(unreviewed_message(s.unreviewed, s.criteria_count, nct_id),
                          where="Open as a trial")
    before = _opened(ctx, nct_id)
    if before is not None and not before["from_registry"]:
        raise ConflictError(f"trial {nct_id} was registered from a protocol file; amend that "
                            "protocol instead", where="Open as a trial")
    signer = ctx.accounts.confirm_password(who, password)
    why = (reason or "").strip() or (f"opened from the reviewed registry study {nct_id} "
                                      f"(study version {s.version})")
    meaning = SIGNATURE_MEANINGS[P.TRIAL_MANAGE]
    v = register_protocol(ctx, s.document, source=f"{OPENED_FROM} {nct_id} version {s.version}",
                          actor=signer.username, reason=why[:2000], where=f"study {nct_id}",
                          signature=(signer.id, meaning))
    unchanged = before is not None and before["number"] == v.number
    return {"trial_id": v.trial_id, "number": v.number, "label": v.label,
            "created": before is None, "unchanged": unchanged, "study_version": s.version}

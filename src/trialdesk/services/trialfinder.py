"""Which trials could this patient enter? One patient screened against every trial.

Every reviewed trial (a draft — imported criteria not yet reviewed — cannot screen and is
named instead) is screened with the same evaluator as one trial. The trials the patient
could enter come first — eligible, or undetermined with what would decide them: the
criteria left unknown and the facts to record —, then the trials the patient cannot enter
with the criteria that exclude. With a place, each group is ordered by the great-circle
distance to the trial's nearest site (trials whose record gives no site location last),
eligible before undetermined at the same distance; without one, eligible, undetermined,
then not eligible, each by trial id.

The command line screens a patient file against protocol files
(:func:`trials_for_record`); the patient page screens the stored patient against every
open trial of the catalogue (:func:`trials_for_patient`). Nothing is stored: a screening of
record is still made for the patient's own trial, with its reason and audit entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from trialdesk.criteria.verdict import Outcome, ScreeningResult, Verdict, screen_record
from trialdesk.facts.patient import PatientRecord
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.registry.gazetteer import Place, resolve_place
from trialdesk.registry.search import great_circle_km
from trialdesk.services.accounts import Principal
from trialdesk.services.catalogue import resolution_hints, status_label
from trialdesk.services.context import Services, screening_moment
from trialdesk.services.patients import load_patient

# Registry statuses of a trial that takes no new patients (ClinicalTrials.gov overall status).
CLOSED = frozenset({"ACTIVE_NOT_RECRUITING", "COMPLETED", "SUSPENDED", "TERMINATED", "WITHDRAWN",
                    "NO_LONGER_AVAILABLE", "TEMPORARILY_NOT_AVAILABLE",
                    "APPROVED_FOR_MARKETING", "WITHHELD"})
NEAR_LABEL = "Trial sites near"
_RANK = {Verdict.ELIGIBLE: 0, Verdict.UNDETERMINED: 1, Verdict.INELIGIBLE: 2}
_VERDICT_WORDS = {Verdict.ELIGIBLE: "eligible", Verdict.UNDETERMINED: "undetermined",
                  Verdict.INELIGIBLE: "not eligible"}


def nearest_site(compiled: CompiledProtocol, place: Place) -> dict[str, Any] | None:
    """The trial's site nearest to ``place`` among those with a geo point (None if none)."""
    best: tuple[float, Any] | None = None
    for loc in compiled.protocol.registry.contacts_locations.locations:
        if loc.geo is None:
            continue
        km = great_circle_km(place.lat, place.lon, loc.geo.lat, loc.geo.lon)
        if best is None or km < best[0]:
            best = (km, loc)
    if best is None:
        return None
    km, loc = best
    return {"facility": loc.facility, "city": loc.city, "country": loc.country,
            "km": round(km, 1)}


def _row(compiled: CompiledProtocol, result: ScreeningResult, place: Place | None
         ) -> dict[str, Any]:
    excluding = [c for c in result.criteria
                 if (c.kind == "inclusion" and c.outcome is Outcome.NOT_MET)
                 or (c.kind == "exclusion" and c.outcome is Outcome.MET)]
    unknown = [c for c in result.criteria if c.outcome is Outcome.UNKNOWN]
    r = compiled.protocol.registry
    row: dict[str, Any] = {
        "trial_id": compiled.id, "title": compiled.protocol.title,
        "protocol_version": result.protocol_version,
        "status": r.status.overall_status, "status_label": status_label(compiled),
        "verdict": result.verdict.value, "verdict_label": _VERDICT_WORDS[result.verdict],
        "arm": result.arm,
        "sites": len(r.contacts_locations.locations),
        "nearest_site": nearest_site(compiled, place) if place is not None else None,
        # what would decide an undetermined trial; why an ineligible one excludes
        "unknown_criteria": [] if result.verdict is Verdict.INELIGIBLE else [
            {"id": c.id, "kind": c.kind, "text": c.text,
             "missing": [m.fact for m in c.missing]} for c in unknown],
        "missing_facts": [] if result.verdict is Verdict.INELIGIBLE else
        resolution_hints(compiled, result.to_json()),
        "excluded_by": [{"id": c.id, "kind": c.kind, "text": c.text} for c in excluding],
    }
    return row


def _order(row: dict[str, Any], place: Place | None) -> tuple[Any, ...]:
    could = 0 if row["verdict"] != Verdict.INELIGIBLE.value else 1
    km = math.inf
    if place is not None and row["nearest_site"] is not None:
        km = row["nearest_site"]["km"]
    return (could, km if place is not None else 0.0, _RANK[Verdict(row["verdict"])],
            row["trial_id"])


def rank(screened: Iterable[tuple[CompiledProtocol, ScreeningResult]],
         place: Place | None = None) -> list[dict[str, Any]]:
    """The screened trials, those the patient could enter first (see the module's text)."""
    rows = [_row(c, r, place) for c, r in screened]
    return sorted(rows, key=lambda row: _order(row, place))


def place_of(near: str | None, protocols: Iterable[CompiledProtocol]) -> Place | None:
    """``near`` (a place name or ``LAT,LON``) through the gazetteer and the trials' sites."""
    if near is None or not near.strip():
        return None
    return resolve_place(near, [c.protocol.registry for c in protocols])


def trials_for_record(protocols: Sequence[CompiledProtocol], record: PatientRecord, *,
                      as_of: datetime, place: Place | None = None) -> dict[str, Any]:
    """A patient file screened against every reviewed protocol given, ranked."""
    reviewed = [c for c in protocols if not c.protocol.unreviewed]
    screened = [(c, screen_record(c, record, as_of=as_of)) for c in reviewed]
    return {
        "patient_id": record.patient_id, "as_of": as_of.isoformat(timespec="minutes"),
        "place": None if place is None else {"name": place.name, "lat": place.lat,
                                             "lon": place.lon, "source": place.source},
        "trials": rank(screened, place),
        "not_screened": [{"trial_id": c.id, "reason": "draft: criteria awaiting review"}
                         for c in sorted(protocols, key=lambda c: c.id)
                         if c.protocol.unreviewed],
    }


def trials_for_patient(ctx: Services, who: Principal, study_number: str, *,
                       near: str | None = None) -> dict[str, Any]:
    """The stored patient screened now against every open, reviewed trial of the catalogue
    (for reading only: nothing is stored). Raises RegistryError for an unknown place."""
    row = load_patient(ctx, who, study_number)
    as_of = screening_moment(ctx, None)  # to the minute

    def screen() -> dict[str, Any]:
        record = PatientRecord.model_validate(row.record)
        entries = [e.compiled for e in ctx.catalogue.trials()]
        open_ = [c for c in entries if c.protocol.registry.status.overall_status not in CLOSED]
        place = place_of(near, entries)
        doc = trials_for_record(open_, record, as_of=as_of, place=place)
        doc["patient_id"] = study_number
        doc["own_trial"] = row.trial_id
        doc["not_screened"] += [
            {"trial_id": c.id, "reason": f"closed ({status_label(c)})"}
            for c in sorted(entries, key=lambda c: c.id) if c not in open_]
        return doc

    # the same record (its version), trials (their protocols' digests), place and minute
    # give the same answer: screened once for them, whatever else is written meanwhile
    trials = tuple((e.record.id, e.record.latest.digest) for e in ctx.catalogue.trials())
    return ctx.catalogue.memo(("trials for", study_number, row.version, near, as_of, trials),
                              screen)

"""A trial's outcomes from what is stored, de-identified: the event table, adverse events,
tumour measurements and exposure built patient by patient, then the outcome cores (the
endpoints with Kaplan–Meier and log-rank, the plots, the DSMB report, SDTM and FHIR).

De-identified means: patients by study number only; no name, hospital number or birth
date (age in years at enrolment instead). Dates stay, as the analyses need them.

What each column of the event table comes from:

* ``enrolment_date`` — the day of enrolment (UTC);
* ``progression_date`` — the first assessment with overall response PD;
  ``first_cr_date`` the first CR; ``relapse_date`` the first PD after a CR;
* ``death_date`` / ``second_malignancy_date`` — the follow-up records;
* ``last_contact_date`` — the latest of a follow-up contact and any dated record
  (administration, adverse event, assessment, body measurement), never guessed;
* ``best_response`` — not derived: neither protocol sets the confirmation rule best
  overall response needs (RECIST 1.1 §4.4), so it is left missing and said so.

A patient without an arm (randomisation pending) or with a fatal adverse event but no
recorded death date is left out, with the reason in ``notes``.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from trialdesk.errors import OutcomeError, TrialdeskError
from trialdesk.outcomes.events import EventTable, validate_event_table
from trialdesk.outcomes.inputs import (
    AdverseEvents,
    Exposure,
    Measurements,
    TrialAdverseEvent,
    validate_exposure,
    validate_measurements,
)
from trialdesk.outcomes.products import BedsideCheck, Infusion, TrialProducts
from trialdesk.outcomes.sdtm_findings import RecordFindings
from trialdesk.outcomes.summary import OutcomeSummary, choose_time_unit, endpoints_for, summarise
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.safety.adverse_event import AdverseEvent
from trialdesk.schedule.plan import EventKind
from trialdesk.services.accounts import Principal
from trialdesk.services.catalogue import age_at
from trialdesk.services.context import Services
from trialdesk.services.exchange import record_findings
from trialdesk.services.journeys import core_journey
from trialdesk.services.roles import Permission
from trialdesk.store.records import JourneyRow

P = Permission
KM_ENDPOINTS = ("OS", "PFS", "EFS", "RFS")


@dataclass(frozen=True, eq=False)
class TrialData:
    """Everything the outcome cores take, built from the store for one trial."""

    compiled: CompiledProtocol
    events: EventTable | None
    aes: AdverseEvents | None
    measurements: Measurements | None
    exposure: Exposure | None
    notes: tuple[str, ...]
    record: RecordFindings | None = None  # treatments, body measurements, lesions (SDTM)

    @property
    def arm_labels(self) -> dict[str, str]:
        return {a.id: a.label for a in self.compiled.protocol.arms}


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def _patient_rows(ctx: Services, j: JourneyRow, notes: list[str]
                  ) -> tuple[dict[str, Any] | None, list[TrialAdverseEvent],
                             list[dict[str, Any]], list[dict[str, Any]]]:
    """One patient's event-table row, adverse events, measurements and exposure."""
    sn = j.study_number
    patient = ctx.store.patient(sn)
    enrolled = _day(j.enrolled_at)
    assert enrolled is not None
    responses = ctx.store.responses(sn)
    follow = ctx.store.follow_ups(sn)
    aes = ctx.store.adverse_events(sn)
    dates: list[date] = [enrolled]
    dates += [d for d in (_day(r.get("at")) for r in j.records) if d]
    dates += [d for d in (_day(b.get("on")) for b in j.body) if d]
    dates += [d for a in aes for d in (_day(a.onset), _day(a.document.get("resolution"))) if d]
    dates += [d for r in responses if (d := _day(r.assessed_on))]
    death = next((f.occurred_on for f in follow if f.kind == "death"), None)
    second = next((f.occurred_on for f in follow if f.kind == "second_malignancy"), None)
    dates += [d for f in follow if (d := _day(f.occurred_on))]
    ae_records = [TrialAdverseEvent(sn, a.course_number, AdverseEvent.model_validate(a.document))
                  for a in aes]
    if j.arm is None:
        notes.append(f"{sn}: no arm yet (randomisation pending); left out")
        return None, [], [], []
    if death is None and any(r.event.fatal for r in ae_records):
        notes.append(f"{sn}: a fatal adverse event but no death date in follow-up; left out "
                     "until the death is recorded")
        return None, [], [], []
    points = [r for r in responses if r.kind == "time_point" and r.overall]
    first_cr = next((r.assessed_on for r in points if r.overall == "CR"), None)
    progression = next((r.assessed_on for r in points if r.overall == "PD"), None)
    relapse = None
    if first_cr is not None:
        relapse = next((r.assessed_on for r in points
                        if r.overall == "PD" and r.assessed_on > first_cr), None)
    row = {"patient_id": sn, "arm": j.arm, "enrolment_date": enrolled.isoformat(),
           "first_cr_date": first_cr, "progression_date": progression, "relapse_date": relapse,
           "second_malignancy_date": second, "death_date": death,
           "last_contact_date": None if death else max(dates).isoformat(),
           "site_id": patient.site, "sex": (patient.record.get("sex") or "")[:1].upper() or None,
           "age_years": age_at(patient.record["birth_date"], enrolled)}
    measurements = []
    for r in responses:
        if r.criteria != "RECIST":
            continue
        total = r.result.get("sum_mm")
        if total is not None:
            measurements.append({"patient_id": sn, "assessment_date": r.assessed_on,
                                 "sum_diameters_mm": str(total),
                                 "overall_response": r.overall or None})
    exposure: list[dict[str, Any]] = []
    if j.start is not None and j.arm is not None and j.records:
        cal = _calendar(ctx, j)
        if cal is not None:
            by_id = {e.id: e for e in cal.events}
            courses: dict[tuple[int, str], list[date]] = {}
            for rec in j.records:
                e = by_id.get(rec["event_id"])
                if e is None or e.dose is None or e.course_number is None or \
                        rec["status"] not in ("given", "partly_given"):
                    continue
                day = _day(rec["at"])
                if day is not None:
                    courses.setdefault((e.course_number, e.dose.agent), []).append(day)
            for (number, agent), days in sorted(courses.items()):
                course_id = next((e.course_id for e in cal.events
                                  if e.course_number == number and e.kind is EventKind.COURSE),
                                 None)
                exposure.append({"patient_id": sn, "course": str(number),
                                 "course_id": course_id, "agent": agent,
                                 "start_date": min(days).isoformat(),
                                 "end_date": max(days).isoformat()})
    return row, ae_records, measurements, exposure


def _calendar(ctx: Services, j: JourneyRow) -> Any:
    enrolment = ctx.store.enrolment(j.study_number)
    if enrolment is None:
        return None
    _, compiled = ctx.catalogue.trial(j.trial_id, enrolment.protocol_version_number)
    from trialdesk.enrolment.journey import journey_calendar

    try:
        return journey_calendar(compiled.protocol, core_journey(j))
    except TrialdeskError:
        return None


def trial_data(ctx: Services, trial_id: str, *, country: str | None = None) -> TrialData:
    """The trial's stored data as the outcome cores' inputs (None where there is nothing).

    ``country`` (ISO 3166-1 alpha-3) is the sites' country when the caller gives it; the
    store does not hold one, so without it the column stays empty.
    """
    _, compiled = ctx.catalogue.trial(trial_id)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    aes: list[TrialAdverseEvent] = []
    measurements: list[dict[str, Any]] = []
    exposure: list[dict[str, Any]] = []
    for j in ctx.store.trial_journeys(trial_id):
        row, patient_aes, patient_measurements, patient_exposure = _patient_rows(ctx, j, notes)
        if row is None:
            continue
        if country:
            row["country"] = country
        rows.append(row)
        aes += patient_aes
        measurements += patient_measurements
        exposure += patient_exposure
    if not rows:
        return TrialData(compiled, None, None, None, None, tuple(notes))
    frame = pd.DataFrame(rows).astype(object).where(pd.DataFrame(rows).notna(), None)
    events = validate_event_table(frame, arms=[a.id for a in compiled.protocol.arms])
    m = None
    if measurements:
        m = validate_measurements(pd.DataFrame(measurements), events)
    x = None
    if exposure:
        x = validate_exposure(pd.DataFrame(exposure), events)
    notes.append("best overall response is not derived: the protocol sets no confirmation rule "
                 "for it (RECIST 1.1 §4.4); time-point responses are in the measurements")
    return TrialData(compiled, events, AdverseEvents(tuple(aes)) if aes else None, m, x,
                     tuple(notes), record_findings(ctx, trial_id))


def _require(who: Principal, trial_id: str) -> None:
    who.require(P.EXPORT_DEIDENTIFIED, trial_id)


def _summary(data: TrialData) -> OutcomeSummary:
    assert data.events is not None
    p = data.compiled.protocol
    registry = p.registry.outcomes
    measures = [o.measure for o in (*registry.primary, *registry.secondary)]
    measures += [p.registry.description.detailed_description or ""]
    return summarise(data.events, endpoints_for(measures), trial=p.id,
                     time_unit=choose_time_unit(data.events))


def _no_patients(data: TrialData) -> OutcomeError:
    return OutcomeError("no enrolled patient with an arm yet; nothing to analyse",
                        where=data.compiled.id)


def stored_inputs(ctx: Services, who: Principal, trial_id: str, *,
                  country: str | None = None) -> TrialData:
    """The trial's stored data for the outcome cores (de-identified), for a caller allowed the
    de-identified export; refused when no patient has an arm yet."""
    _require(who, trial_id)
    data = trial_data(ctx, trial_id, country=country)
    if data.events is None:
        raise _no_patients(data)
    return data


def outcomes_page(ctx: Services, who: Principal, trial_id: str) -> dict[str, Any]:
    """The endpoint tables (per arm), the KM plots available and the notes."""
    _require(who, trial_id)
    data = trial_data(ctx, trial_id)
    out: dict[str, Any] = {"trial_id": trial_id, "title": data.compiled.protocol.title,
                           "notes": list(data.notes), "endpoints": [], "km": [],
                           "patients": 0, "time_unit": None}
    if data.events is None:
        return out
    summary = _summary(data)
    doc = summary.to_json()
    out["patients"] = len(data.events)
    out["time_unit"] = summary.time_unit
    out["endpoints"] = doc["endpoints"]
    out["km"] = [name for name, tte in summary.time_to_event.items()
                 if tte.kaplan_meier is not None]
    out["aes"] = len(data.aes) if data.aes else 0
    out["responses"] = _time_point_responses(ctx, trial_id)
    return out


def _time_point_responses(ctx: Services, trial_id: str) -> list[dict[str, Any]]:
    """Every recorded time-point response of the trial's enrolled patients, as signed
    (shown while the best overall response is not derived)."""
    rows = []
    for j in ctx.store.trial_journeys(trial_id):
        for r in ctx.store.responses(j.study_number):
            if r.kind == "time_point" and r.overall:
                rows.append({"patient_id": j.study_number, "arm": j.arm,
                             "assessed_on": str(r.assessed_on),
                             "criteria": "INRC 2017" if r.criteria == "INRC" else "RECIST 1.1",
                             "response": r.overall})
    return rows


def km_png(ctx: Services, who: Principal, trial_id: str, endpoint: str) -> bytes:
    from trialdesk.outcomes import plots

    _require(who, trial_id)
    data = trial_data(ctx, trial_id)
    if data.events is None:
        raise _no_patients(data)
    summary = _summary(data)
    tte = summary.time_to_event.get(endpoint)
    if tte is None or tte.kaplan_meier is None:
        reason = tte.note if tte is not None and tte.note else (
            f"{endpoint} is not an endpoint of {trial_id}")
        raise OutcomeError(reason, where="endpoint")
    figure = plots.km_figure(tte.kaplan_meier, title=f"{tte.endpoint.name} — {trial_id}",
                             y_label=f"{tte.endpoint.name} probability",
                             time_unit=summary.time_unit, logrank=tte.logrank)
    return plots.render(figure, "png")


def sdtm_zip(ctx: Services, who: Principal, trial_id: str, *, country: str | None) -> bytes:
    """DM, AE, SUPPAE, EX and RS as CSV in one zip, checked against SDTMIG v3.4 first.

    DM.COUNTRY is required by SDTMIG and not stored, so the caller gives the sites' country
    (ISO 3166-1 alpha-3); AE.AEDECOD needs each event's MedDRA term. What is missing is
    refused with every problem listed, never filled in.
    """
    from trialdesk.outcomes.export_sdtm import to_csv

    datasets = sdtm_package_datasets(ctx, who, trial_id, country=country)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, frame in datasets.items():
            info = zipfile.ZipInfo(f"{name.lower()}.csv", date_time=(2026, 1, 1, 0, 0, 0))
            z.writestr(info, to_csv(frame))
    return buffer.getvalue()


def sdtm_package_datasets(ctx: Services, who: Principal, trial_id: str, *,
                          country: str | None) -> dict[str, pd.DataFrame]:
    """The trial's SDTM datasets from the stored record (with the cell products' and the
    biomarker results' datasets), checked against SDTMIG v3.4: what :func:`sdtm_zip` and
    the XPT package write."""
    from trialdesk.outcomes.export_sdtm import require_valid, sdtm_datasets

    _require(who, trial_id)
    if not country:
        raise OutcomeError("give the sites' country (ISO 3166-1 alpha-3, e.g. RUS): SDTM DM "
                           "requires COUNTRY and trialdesk does not hold it", where="country")
    data = trial_data(ctx, trial_id, country=country)
    if data.events is None:
        raise _no_patients(data)
    datasets = sdtm_datasets(trial_id, data.events, arm_labels=data.arm_labels, aes=data.aes,
                             exposure=data.exposure, measurements=data.measurements,
                             protocol=data.compiled.protocol, record=data.record)
    products = trial_products(ctx, trial_id)
    if products is not None:
        from trialdesk.outcomes.sdtm_products import product_datasets

        datasets = product_datasets(trial_id, datasets, products)
    require_valid(datasets)
    return datasets


def fhir_json(ctx: Services, who: Principal, trial_id: str) -> bytes:
    from trialdesk.outcomes.export_fhir import bundle_json, fhir_bundle, parse_bundle

    _require(who, trial_id)
    data = trial_data(ctx, trial_id)
    if data.events is None:
        raise _no_patients(data)
    p = data.compiled.protocol
    bundle = fhir_bundle(trial_id, data.events, title=p.title,
                         nct_id=p.registry.identification.nct_id,
                         conditions=tuple(p.registry.conditions), arm_labels=data.arm_labels,
                         aes=data.aes, measurements=data.measurements, exposure=data.exposure,
                         products=trial_products(ctx, trial_id))
    body = bundle_json(bundle)
    parse_bundle(body)  # what is served must parse back
    return body


def dsmb_pdf(ctx: Services, who: Principal, trial_id: str, *,
             biomarkers: tuple[tuple[tuple[str, pd.DataFrame, str], ...], tuple[str, ...]]
             | None = None) -> bytes:
    from trialdesk.outcomes.report import DsmbInputs, protocol_stopping_status
    from trialdesk.outcomes.report import dsmb_pdf as report

    _require(who, trial_id)
    data = trial_data(ctx, trial_id)
    if data.events is None:
        raise _no_patients(data)
    p = data.compiled.protocol
    stopping = None
    if p.stopping_rules and data.aes is not None:
        stopping = protocol_stopping_status(p.stopping_rules, data.aes, data.events)
    today = ctx.store.now().date()
    return report(DsmbInputs(
        trial=trial_id, title=p.title, events=data.events, summary=_summary(data),
        aes=data.aes, exposure=data.exposure, measurements=data.measurements,
        stopping=stopping, cutoff=today,
        sources=(f"trialdesk database, data as of {today.isoformat()}",),
        products=trial_products(ctx, trial_id), biomarkers=biomarkers))


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _infusion(doc: dict[str, Any], cal: Any) -> Infusion:
    """A stored infusion with its timed event's anchor time from the patient's calendar."""
    start = _at(doc["start"])
    assert start is not None
    anchor, onset = None, None
    if cal is not None:
        found = next((e for e in cal.events if e.id == doc["event"]), None)
        if found is not None and found.anchor is not None:
            anchor, onset = found.anchor, cal.anchors.get(found.anchor)
    return Infusion(str(doc["product"]), str(doc["patient"]), str(doc["event"]), start,
                    doc.get("cells_per_kg"), _at(doc.get("end")), doc.get("volume_ml"),
                    _at(doc.get("deadline")), onset, anchor)


def trial_products(ctx: Services, trial_id: str) -> TrialProducts | None:
    """The trial's stored cell products for the DSMB report (None when the protocol has no
    product types): every product, release decision, bedside check of its patients and
    infusion, with the anchor time (e.g. septic-shock onset) of each timed infusion."""
    from trialdesk.cellproduct.history import (
        decision_from_json,
        handover_from_json,
        product_from_json,
    )

    _, compiled = ctx.catalogue.trial(trial_id)
    protocol = compiled.protocol
    if not protocol.products:
        return None
    rows = ctx.store.cell_products(trial_ids=[trial_id])
    keys = [r.key for r in rows]
    journeys = {j.study_number: j for j in ctx.store.trial_journeys(trial_id)}
    checks = []
    for sn in journeys:
        for v in ctx.store.product_verifications(study_number=sn):
            doc = v.document
            checked = _at(doc["checked_at"])
            assert checked is not None
            checks.append(BedsideCheck(sn, str(doc["event"]), v.product, checked,
                                       bool(doc["accepted"]), tuple(doc.get("verifiers", ())),
                                       tuple((r["code"], r["reason"]) for r in doc["refusals"])))
    calendars: dict[str, Any] = {}
    infusions = []
    for e in ctx.store.product_infusions(keys):
        sn = str(e.document["patient"])
        if sn not in calendars:
            calendars[sn] = _calendar(ctx, journeys[sn]) if sn in journeys else None
        infusions.append(_infusion(e.document, calendars[sn]))
    moves: dict[str, list[Any]] = {}
    for h in ctx.store.product_handovers(keys):
        moves.setdefault(str(h.product), []).append(handover_from_json(h.document))
    return TrialProducts(
        trial_id, {s.id: s for s in protocol.products},
        {r.key: product_from_json(r.document) for r in rows},
        tuple(decision_from_json(e.document) for e in ctx.store.product_releases(keys)),
        tuple(checks), tuple(infusions), moves)


def response_summary(ctx: Services, trial_id: str) -> dict[str, Any]:
    """Latest time-point response per patient, counted by response (for the dashboard)."""
    counts: dict[str, int] = {}
    assessed = 0
    for j in ctx.store.trial_journeys(trial_id):
        points = [r for r in ctx.store.responses(j.study_number)
                  if r.kind == "time_point" and r.overall]
        if points:
            assessed += 1
            latest = points[-1].overall
            assert latest is not None
            counts[latest] = counts.get(latest, 0) + 1
    order = ["CR", "PR", "MR", "SD", "NON-CR/NON-PD", "PD", "NE"]
    return {"assessed": assessed,
            "rows": [{"response": r, "patients": counts[r]} for r in order if r in counts]}

"""The trial's record for the exchange standards: what SDTM's findings and interventions
datasets (CM, PR, VS, TU, TR) take from the store, and the record exchanged as CDISC ODM
1.3.2 (the laboratory results and measurements of the enrolled patients' records, the body
measurements of their calendars and their follow-up facts), out and back in.

Read from the stored record, de-identified like the other outcome inputs (patients by study
number): each enrolled patient's treatment history (the patient record's ``treatments``),
the body measurements of the journey (those copied from the record at enrolment and those
recorded since) and the stored response assessments as recorded (RECIST 1.1 baselines and
time points with their lesions, INRC 2017 time points with their components).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from trialdesk.errors import OutcomeError, TrialdeskError
from trialdesk.outcomes.sdtm_biomarkers import results_from_samples
from trialdesk.outcomes.sdtm_findings import Assessment, BodySize, RecordFindings, Treatment
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.roles import Permission


def record_findings(ctx: Services, trial_id: str) -> RecordFindings:
    """The treatments, body measurements, response assessments and biomarker results (the
    current result of each fact of each sample) of the trial's enrolled patients (the
    caller has checked the permission to export the trial)."""
    treatments: list[Treatment] = []
    body: list[BodySize] = []
    assessments: list[Assessment] = []
    for j in ctx.store.trial_journeys(trial_id):
        sn = j.study_number
        record = ctx.store.patient(sn).record
        for t in record.get("treatments") or []:
            treatments.append(Treatment(sn, t["agent"], t["category"], date.fromisoformat(t["start"]),
                                        date.fromisoformat(t["end"]) if t.get("end") else None))
        for b in j.body:
            body.append(BodySize(sn, date.fromisoformat(b["on"]), b.get("weight_kg"), b.get("height_cm")))
        for r in ctx.store.responses(sn):
            if r.criteria in ("RECIST", "INRC") and r.kind in ("baseline", "time_point"):
                assessments.append(Assessment(sn, r.criteria, r.kind,  # type: ignore[arg-type]
                                              date.fromisoformat(r.assessed_on), r.document, r.overall))
    enrolled = {j.study_number for j in ctx.store.trial_journeys(trial_id)}
    samples = [s for s in ctx.store.biomarker_samples(trial_ids=[trial_id]) if s.study_number in enrolled]
    return RecordFindings(tuple(treatments), tuple(body), tuple(assessments),
                          biomarkers=tuple(results_from_samples(samples)))


# --- ODM: the record out and back in ---------------------------------------------------------

_BODY = ("on", "weight_kg", "height_cm")
_FOLLOW_UP = ("kind", "occurred_on")  # the free-text note stays out (it may identify)


_OBSERVATION = ("name", "value", "unit", "date", "ref_low", "ref_high")
_GROUPS = {"observation": "IG.OBS", "body": "IG.VS", "follow_up": "IG.FU"}


def _stored(ctx: Services, trial_id: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for j in ctx.store.trial_journeys(trial_id):
        record = ctx.store.patient(j.study_number).record
        observations = [{k: o[k] for k in _OBSERVATION if o.get(k) is not None}
                        for o in record.get("observations") or []]
        body = [{k: b.get(k) for k in _BODY if b.get(k) is not None} for b in j.body]
        follow = [{"kind": f.kind, "occurred_on": f.occurred_on}
                  for f in ctx.store.follow_ups(j.study_number)]
        out[j.study_number] = {"observation": observations, "body": body, "follow_up": follow}
    return out


def export_record_odm(ctx: Services, who: Principal, trial_id: str, *,
                      created: datetime | None = None) -> bytes:
    """The enrolled patients' observations, body measurements and follow-up facts as ODM 1.3.2 (patients by
    study number; no names, birth dates or free-text notes), for a caller allowed the
    de-identified export."""
    from trialdesk.outcomes.export_odm import record_odm

    who.require(Permission.EXPORT_DEIDENTIFIED, trial_id)
    _, compiled = ctx.catalogue.trial(trial_id)
    return record_odm(compiled.protocol, _stored(ctx, trial_id), created=created)


@dataclass(frozen=True)
class ImportSummary:
    """What an import stored: records added, and those already stored (skipped)."""

    added: int
    already_stored: int
    patients: tuple[str, ...]


def _key(kind: str, row: dict[str, Any]) -> tuple[Any, ...]:
    fields = {"observation": _OBSERVATION, "body": _BODY, "follow_up": _FOLLOW_UP}[kind]
    return (kind, *(row.get(f) or None for f in fields))


def import_record_odm(ctx: Services, who: Principal, trial_id: str, data: bytes, *,
                      reason: str) -> ImportSummary:
    """Store an ODM file's observations (appended to the patient record, checked as a saved
    record is), body measurements and follow-up facts for the trial's enrolled patients, in
    one transaction with an audit entry per record and per changed patient record. Refused whole, one line
    naming the item and the reason, when the file's metadata differs from the trial's, a
    subject is not an enrolled patient of the trial or a value is impossible. A record
    already stored (same values) is skipped, so importing a file twice adds nothing."""
    from trialdesk.outcomes.export_odm import read_record_odm

    who.require(Permission.PATIENT_WRITE, trial_id)
    user = who.require_user()
    if not reason.strip():
        raise OutcomeError("give the reason for the import (it goes to the audit trail)", where="reason")
    _, compiled = ctx.catalogue.trial(trial_id)
    document = read_record_odm(data, compiled.protocol)
    journeys = {j.study_number: j for j in ctx.store.trial_journeys(trial_id)}
    stored = _stored(ctx, trial_id)
    today = ctx.store.now().date()
    new: dict[str, dict[str, list[dict[str, Any]]]] = {}
    versions: dict[str, int] = {}
    skipped = 0
    for subject, kinds in document.items():
        j = journeys.get(subject)
        if j is None:
            raise OutcomeError(f"{subject} is not an enrolled patient of {trial_id}", where="ODM SubjectKey")
        who.require(Permission.PATIENT_WRITE, trial_id, j.site)
        have = {_key(k, r) for k, rows in stored[subject].items() for r in rows}
        enrolled = date.fromisoformat(j.enrolled_at[:10])
        for kind, rows in kinds.items():
            for n, row in enumerate(rows, 1):
                where = f"{subject} {_GROUPS[kind]} {n}"
                if _key(kind, row) in have:
                    skipped += 1
                    continue
                facts = [*stored[subject]["follow_up"], *new.get(subject, {}).get("follow_up", [])]
                doc = _checked(kind, row, where, today=today, enrolled=enrolled,
                               source=f"ODM import by {user.full_name}",
                               dead=any(f["kind"] == "death" for f in facts))
                have.add(_key(kind, row))
                new.setdefault(subject, {"observation": [], "body": [], "follow_up": []})[kind].append(doc)
                versions[subject] = j.version
    patients = {sn: _with_observations(ctx, sn, kinds["observation"], today)
                for sn, kinds in new.items() if kinds["observation"]}
    added = sum(len(kinds["observation"]) for kinds in new.values())
    if new:
        added += ctx.store.add_imported_records(new, versions=versions, actor=who.username, reason=reason,
                                                patients=patients)
    return ImportSummary(added, skipped, tuple(sorted(new)))


def _with_observations(ctx: Services, study_number: str, observations: list[dict[str, Any]],
                       today: date) -> tuple[int, dict[str, Any]]:
    """The patient record with the imported observations appended, checked as a saved record
    is (facts, units, plausible ranges, no future dates)."""
    from trialdesk.facts.patient import PatientRecord
    from trialdesk.services.catalogue import checked_record

    row = ctx.store.patient(study_number)
    document = dict(row.record)
    document["observations"] = [*(document.get("observations") or []), *observations]
    try:
        record = PatientRecord.model_validate(document)
    except ValueError as exc:
        raise OutcomeError(str(exc).splitlines()[0], where=f"{study_number} IG.OBS") from None
    checked_record(record, today=today, source=f"{study_number} IG.OBS")
    return row.version, record.model_dump(mode="json")


def _checked(kind: str, row: dict[str, Any], where: str, *, today: date, enrolled: date, source: str,
             dead: bool) -> dict[str, Any]:
    """One imported row as the document the store keeps, checked as the forms check it."""
    from trialdesk.outcomes.export_odm import FOLLOW_UP_KINDS
    from trialdesk.schedule.dose import BodyMeasurement

    if kind == "observation":
        if not row.get("name") or "value" not in row or "date" not in row:
            raise OutcomeError("an observation has a name, a value and a date", where=where)
        return {k: row[k] for k in _OBSERVATION if row.get(k) is not None}
    if kind == "body":
        try:
            measured = BodyMeasurement(on=date.fromisoformat(row["on"]), weight_kg=row.get("weight_kg"),
                                       height_cm=row.get("height_cm"), source=source)
        except (TrialdeskError, KeyError, ValueError) as exc:
            raise OutcomeError(str(exc), where=where) from None
        if measured.on > today:
            raise OutcomeError(f"{measured.on.isoformat()} is in the future", where=where)
        return measured.model_dump(mode="json", exclude_none=True)
    if row.get("kind") not in FOLLOW_UP_KINDS or "occurred_on" not in row:
        raise OutcomeError(f"a follow-up fact is one of {', '.join(FOLLOW_UP_KINDS)} with its date",
                           where=where)
    on = date.fromisoformat(row["occurred_on"])
    if on > today or on < enrolled:
        raise OutcomeError(f"{on.isoformat()} is not between the enrolment ({enrolled.isoformat()}) "
                           "and today", where=where)
    if row["kind"] == "death" and dead:
        raise OutcomeError("a different death is already recorded", where=where)
    return {"kind": row["kind"], "occurred_on": row["occurred_on"], "note": ""}

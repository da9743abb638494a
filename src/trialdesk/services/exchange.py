"""The trial's record for the exchange standards: what SDTM's findings and interventions
datasets (CM, PR, VS, TU, TR) take from the store.

Read from the stored record, de-identified like the other outcome inputs (patients by study
number): each enrolled patient's treatment history (the patient record's ``treatments``),
the body measurements of the journey (those copied from the record at enrolment and those
recorded since) and the stored response assessments as recorded (RECIST 1.1 baselines and
time points with their lesions, INRC 2017 time points with their components).
"""

from __future__ import annotations

from datetime import date

from trialdesk.outcomes.sdtm_findings import Assessment, BodySize, RecordFindings, Treatment
from trialdesk.services.context import Services


def record_findings(ctx: Services, trial_id: str) -> RecordFindings:
    """The treatments, body measurements and response assessments of the trial's enrolled
    patients (the caller has checked the permission to export the trial)."""
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
                                              date.fromisoformat(r.assessed_on), r.document))
    return RecordFindings(tuple(treatments), tuple(body), tuple(assessments))

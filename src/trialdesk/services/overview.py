"""The pages that gather a whole picture: a trial's dashboard and a patient's page, built
from the other services (patients, journeys, safety, outcomes)."""

from __future__ import annotations

from typing import Any

from trialdesk.services.accounts import Principal
from trialdesk.services.catalogue import age_at
from trialdesk.services.context import Services
from trialdesk.services.journeys import enrolment_options, journey_summary
from trialdesk.services.outcomes import response_summary
from trialdesk.services.patients import (
    enrolment_view,
    load_patient,
    patient_summary,
    screening_out_of_date,
    screening_view,
)
from trialdesk.services.roles import Permission
from trialdesk.services.safety import term_grade_summary

P = Permission


def dashboard(ctx: Services, who: Principal, trial_id: str) -> dict[str, Any]:
    who.require(P.DASHBOARD_READ, trial_id)
    _, compiled = ctx.catalogue.trial(trial_id)
    arms = [(a.id, a.label) for a in compiled.protocol.arms]
    counts = ctx.store.trial_counts(trial_id, [a for a, _ in arms])
    rows = [{"arm": a, "label": label, **counts.by_arm[a]} for a, label in arms]
    if any(counts.by_arm["unassigned"].values()):
        rows.append({"arm": None, "label": "No arm yet (undetermined, ineligible or randomised "
                     "at enrolment)", **counts.by_arm["unassigned"]})
    return {"trial_id": trial_id, "title": compiled.protocol.title, "screened": counts.screened,
            "eligible": counts.eligible, "enrolled": counts.enrolled, "arms": rows,
            "adverse_events": term_grade_summary(ctx.store.trial_adverse_events(trial_id)),
            "responses": response_summary(ctx, trial_id),
            "can_outcomes": who.can(P.EXPORT_DEIDENTIFIED, trial_id),
            "can_randomise": who.can(P.RANDOMISATION_MANAGE, trial_id)}



def patient_page(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    row = load_patient(ctx, who, study_number)
    record = dict(row.record)
    if not who.can(P.PATIENT_IDENTIFIERS, row.trial_id, row.site):
        record.pop("birth_date", None)
        record["age_years"] = age_at(row.record["birth_date"], ctx.store.now().date())
    stored = ctx.catalogue.kept(("screenings", study_number),
                                lambda: ctx.store.screenings(study_number))
    screenings = [screening_view(ctx, s) for s in stored]
    return {**patient_summary(who, row), "record": record, "screenings": screenings,
            # The latest screening read an older record version: enrolment waits for a new one.
            "screening_out_of_date": screening_out_of_date(row, stored[0]) if stored else None,
            "enrolment": enrolment_view(ctx, study_number),
            "can_edit": who.can(P.PATIENT_WRITE, row.trial_id, row.site),
            "can_screen": who.can(P.SCREENING_RUN, row.trial_id, row.site),
            "can_confirm": who.can(P.ELIGIBILITY_CONFIRM, row.trial_id, row.site),
            "can_audit": who.can(P.AUDIT_READ, row.trial_id, row.site),
            "can_consent": who.can(P.PATIENT_WRITE, row.trial_id, row.site),
            "can_clinical": who.can(P.CLINICAL_READ, row.trial_id, row.site),
            **journey_summary(ctx, who, row),
            "options": enrolment_options(ctx, row.trial_id)}

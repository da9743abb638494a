"""Roles and what each may do, per trial (and site) membership.

Nobody sees another trial's patients: every patient permission is checked against the
memberships of the user for the patient's trial and site. The registry (trials, protocol
versions, lint) and screening a record that is not stored are open to everyone.

Direct identifiers (name, hospital number) are shown only to the roles that work with the
patient in person or verify source data: investigator, coordinator, monitor (ICH E6(R3)
monitoring includes source data verification). Everyone else sees the study number.

The clinical record (calendar with doses, adverse events, responses) is read by the roles
that treat the patient, prepare the doses or verify the data (investigator, coordinator,
pharmacist / cell-therapy lab, monitor); the statistician and the administrator see the
trial's outcomes de-identified instead. The pharmacist records administrations and signs
off doses; the monitor changes no clinical value: it raises data queries on them and
source-verifies forms, which the site answers or corrects.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    INVESTIGATOR = "investigator"
    COORDINATOR = "coordinator"
    PHARMACIST = "pharmacist"  # pharmacy / cell-therapy lab
    MONITOR = "monitor"  # read-only, sees the audit trail
    STATISTICIAN = "statistician"  # read-only, de-identified exports


class Permission(StrEnum):
    PATIENT_READ = "patient.read"
    PATIENT_IDENTIFIERS = "patient.identifiers"
    PATIENT_WRITE = "patient.write"  # facts, consent, calendar settings, body, course delays
    SCREENING_RUN = "screening.run"
    ELIGIBILITY_CONFIRM = "eligibility.confirm"  # e-signature, then enrolment
    CLINICAL_READ = "clinical.read"  # the calendar with doses, adverse events, responses
    ADMINISTRATION_RECORD = "administration.record"  # given / partly given / withheld
    DOSE_SIGN = "dose.sign"  # e-signature on a computed dose
    ADVERSE_EVENT_RECORD = "adverse_event.record"
    TOXICITY_CONFIRM = "toxicity.confirm"  # e-signature on a toxicity action
    RESPONSE_RECORD = "response.record"  # response assessments and follow-up
    PRODUCT_RECORD = "product.record"  # cell products: collection, processing, tests, custody
    PRODUCT_RELEASE = "product.release"  # e-signature of the lab's responsible person
    PRODUCT_COSIGN = "product.cosign"  # the investigator's e-signature on an exceptional release
    RANDOMISATION_MANAGE = "randomisation.manage"  # generate the sealed list
    AUDIT_READ = "audit.read"
    EXPORT_DEIDENTIFIED = "export.deidentified"  # outcomes, SDTM, FHIR, DSMB report
    TRIAL_MANAGE = "trial.manage"  # new protocol versions (amendments)
    DASHBOARD_READ = "dashboard.read"
    QUERY_REVIEW = "query.review"  # open, close and re-open data queries; source-verify forms
    QUERY_ANSWER = "query.answer"  # answer a data query (a correction also needs patient.write)
    RECORD_LOCK = "record.lock"  # lock and unlock a patient's record (database lock)
    SAMPLE_RECORD = "sample.record"  # biomarker samples taken for the calendar's sampling events
    BIOMARKER_RESULT_RECORD = "biomarker.result"  # a sample's results and their corrections
    REGISTRY_IMPORT = "registry.import"  # ClinicalTrials.gov records into the registry
    CRITERIA_REVIEW = "criteria.review"  # e-signature on an imported criterion's draft rule


P = Permission
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: frozenset({P.PATIENT_READ, P.AUDIT_READ, P.TRIAL_MANAGE,
                                   P.DASHBOARD_READ, P.EXPORT_DEIDENTIFIED,
                                   P.RANDOMISATION_MANAGE}),
    Role.INVESTIGATOR: frozenset({P.PATIENT_READ, P.PATIENT_IDENTIFIERS, P.PATIENT_WRITE,
                                  P.SCREENING_RUN, P.ELIGIBILITY_CONFIRM, P.CLINICAL_READ,
                                  P.ADMINISTRATION_RECORD, P.DOSE_SIGN, P.ADVERSE_EVENT_RECORD,
                                  P.TOXICITY_CONFIRM, P.RESPONSE_RECORD, P.DASHBOARD_READ,
                                  P.PRODUCT_COSIGN}),
    Role.COORDINATOR: frozenset({P.PATIENT_READ, P.PATIENT_IDENTIFIERS, P.PATIENT_WRITE,
                                 P.SCREENING_RUN, P.CLINICAL_READ, P.ADMINISTRATION_RECORD,
                                 P.ADVERSE_EVENT_RECORD, P.DASHBOARD_READ}),
    Role.PHARMACIST: frozenset({P.PATIENT_READ, P.CLINICAL_READ, P.ADMINISTRATION_RECORD,
                                P.DOSE_SIGN, P.PRODUCT_RECORD, P.PRODUCT_RELEASE}),
    Role.MONITOR: frozenset({P.PATIENT_READ, P.PATIENT_IDENTIFIERS, P.CLINICAL_READ,
                             P.AUDIT_READ, P.DASHBOARD_READ}),
    Role.STATISTICIAN: frozenset({P.PATIENT_READ, P.EXPORT_DEIDENTIFIED, P.DASHBOARD_READ}),
}
# Data queries and monitoring (issue 11, item 10): the monitor raises and reviews queries and
# source-verifies forms, the site answers them, the administrator locks a patient's record.
for _role, _extra in {Role.MONITOR: {P.QUERY_REVIEW}, Role.INVESTIGATOR: {P.QUERY_ANSWER},
                      Role.COORDINATOR: {P.QUERY_ANSWER},
                      Role.ADMINISTRATOR: {P.RECORD_LOCK}}.items():
    GRANTS[_role] = GRANTS[_role] | _extra
# Samples and their results: the roles that take samples and enter results on the ward.
for _role in (Role.INVESTIGATOR, Role.COORDINATOR):
    GRANTS[_role] |= {P.SAMPLE_RECORD, P.BIOMARKER_RESULT_RECORD}

# The registry: administrators import records; investigators review the imported criteria.
GRANTS[Role.ADMINISTRATOR] |= {P.REGISTRY_IMPORT}
GRANTS[Role.INVESTIGATOR] |= {P.CRITERIA_REVIEW}

SIGNATURE_MEANINGS: dict[Permission, str] = {
    P.ELIGIBILITY_CONFIRM: "I confirm the patient is eligible",
    P.DOSE_SIGN: "I sign off this dose",
    P.TOXICITY_CONFIRM: "I confirm this toxicity action",
    P.PRODUCT_RELEASE: "I release this cell product",
    P.PRODUCT_COSIGN: "I approve the exceptional release of this cell product",
    P.CRITERIA_REVIEW: "I reviewed this eligibility criterion",
    P.TRIAL_MANAGE: "I register this protocol version for screening",
}


def allowed(role: str, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission``.

    >>> allowed("monitor", Permission.AUDIT_READ), allowed("monitor", Permission.PATIENT_WRITE)
    (True, False)
    """
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False

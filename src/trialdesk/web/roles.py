"""Roles and what each may do, per trial (and site) membership.

Nobody sees another trial's patients: every patient permission is checked against the
memberships of the user for the patient's trial and site. The registry (trials, protocol
versions, lint) and screening a record that is not stored are open to everyone.

Direct identifiers (name, hospital number) are shown only to the roles that work with the
patient in person or verify source data: investigator, coordinator, monitor (ICH E6(R3)
monitoring includes source data verification). Everyone else sees the study number.
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
    PATIENT_WRITE = "patient.write"
    SCREENING_RUN = "screening.run"
    ELIGIBILITY_CONFIRM = "eligibility.confirm"  # e-signature, then enrolment
    DOSE_SIGN = "dose.sign"  # e-signature on an administration (schedule/, when it lands)
    TOXICITY_CONFIRM = "toxicity.confirm"  # e-signature on a toxicity action (safety/)
    PRODUCT_RECORD = "product.record"  # cell product custody (cellproduct/, when it lands)
    AUDIT_READ = "audit.read"
    EXPORT_DEIDENTIFIED = "export.deidentified"
    TRIAL_MANAGE = "trial.manage"  # new protocol versions (amendments)
    DASHBOARD_READ = "dashboard.read"


P = Permission
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: frozenset({P.PATIENT_READ, P.AUDIT_READ, P.TRIAL_MANAGE,
                                   P.DASHBOARD_READ, P.EXPORT_DEIDENTIFIED}),
    Role.INVESTIGATOR: frozenset({P.PATIENT_READ, P.PATIENT_IDENTIFIERS, P.PATIENT_WRITE,
                                  P.SCREENING_RUN, P.ELIGIBILITY_CONFIRM, P.DOSE_SIGN,
                                  P.TOXICITY_CONFIRM, P.DASHBOARD_READ}),
    Role.COORDINATOR: frozenset({P.PATIENT_READ, P.PATIENT_IDENTIFIERS, P.PATIENT_WRITE,
                                 P.SCREENING_RUN, P.DASHBOARD_READ}),
    Role.PHARMACIST: frozenset({P.PATIENT_READ, P.DOSE_SIGN, P.PRODUCT_RECORD}),
    Role.MONITOR: frozenset({P.PATIENT_READ, P.PATIENT_IDENTIFIERS, P.AUDIT_READ,
                             P.DASHBOARD_READ}),
    Role.STATISTICIAN: frozenset({P.PATIENT_READ, P.EXPORT_DEIDENTIFIED, P.DASHBOARD_READ}),
}

SIGNATURE_MEANINGS: dict[Permission, str] = {
    P.ELIGIBILITY_CONFIRM: "I confirm the patient is eligible",
    P.DOSE_SIGN: "I sign off this dose",
    P.TOXICITY_CONFIRM: "I confirm this toxicity action",
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

"""Demo data: the seed trials, one log-in per role, and synthetic patients at different
stages (enrolled, eligible awaiting confirmation, undetermined, ineligible, not screened).

The patients are the example files in ``examples/patients/`` (synthetic), screened as of
the same moment as ``trialdesk demo`` so that the verdicts match the command line's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trialdesk.criteria.verdict import screen_record
from trialdesk.facts.patient import patient_from_data
from trialdesk.protocol.load import protocol_from_data, read_document
from trialdesk.store import Store
from trialdesk.store.audit import digest
from trialdesk.web.roles import SIGNATURE_MEANINGS, Permission, Role
from trialdesk.web.security import hash_password
from trialdesk.web.service import study_prefix

DEMO_MOMENT = datetime(2026, 11, 21, 12, 0)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


@dataclass(frozen=True)
class DemoPatient:
    file: str
    trial_id: str
    site: str
    name: str
    stage: str  # "enrolled", "screened" or "registered"


DEMO_PATIENTS = (
    DemoPatient("nb-refractory.json", "NB-NK-2026", "Moscow", "Demo Patient Alpha", "enrolled"),
    DemoPatient("nb-relapsed.json", "NB-NK-2026", "Moscow", "Demo Patient Bravo", "screened"),
    DemoPatient("nb-missing-labs.json", "NB-NK-2026", "Moscow", "Demo Patient Charlie",
                "screened"),
    DemoPatient("rumcess-eligible.json", "RuMCeSS", "Moscow", "Demo Patient Delta", "screened"),
    DemoPatient("refnot-ineligible.json", "REFNOT-R2", "St Petersburg", "Demo Patient Echo",
                "screened"),
    DemoPatient("db-program.json", "DB-POSTCONS", "Utrecht", "Demo Patient Foxtrot",
                "registered"),
)


def demo_logins() -> list[DemoLogin]:
    """One log-in per role; the password is printed when the demo starts."""
    return [DemoLogin(r.value, f"{r.value}-demo", r.value) for r in Role]


def import_protocols(store: Store, directory: Path, *, actor: str = "system") -> list[str]:
    """Store every protocol file in ``directory`` (validated first); returns the trial ids."""
    ids = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        document = read_document(path)
        protocol_from_data(document, source=str(path))
        version = store.import_protocol(document, source=path.name, actor=actor,
                                        reason=f"protocol imported from {path.name}")
        ids.append(version.trial_id)
    return ids


def seed_demo(store: Store, protocols: Path, patients: Path) -> list[DemoLogin]:
    """Load the demo data once (a database that already has users is left alone)."""
    trial_ids = import_protocols(store, protocols)
    logins = demo_logins()
    if store.users():
        return logins
    for login in logins:
        store.add_user(login.username, f"Demo {login.role.title()}",
                       hash_password(login.password), actor="system", reason="demo log-in")
        for trial_id in trial_ids:
            store.add_membership(login.username, trial_id, login.role, actor="system",
                                 reason="demo membership")
    investigator = store.user_by_name(Role.INVESTIGATOR.value)
    assert investigator is not None
    today = store.now().date()
    for demo in DEMO_PATIENTS:
        path = patients / demo.file
        if not path.exists() or demo.trial_id not in trial_ids:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        number = store.next_study_number(demo.trial_id, study_prefix(demo.trial_id))
        record = patient_from_data({**data, "patient_id": number}, today=today, source=str(path))
        row = store.add_patient(number, demo.trial_id, demo.site, record.model_dump(mode="json"),
                                {"name": demo.name, "hospital_number": f"H-{number}"},
                                actor="coordinator", reason="demo patient referred for screening")
        if demo.stage == "registered":
            continue
        version = store.protocol_version(demo.trial_id)
        compiled = protocol_from_data(version.document, source=demo.trial_id)
        result = screen_record(compiled, record, as_of=DEMO_MOMENT).to_json()
        screening = store.add_screening(number, version.id, row.version, result,
                                        actor="investigator", reason="eligibility screening")
        if demo.stage == "enrolled" and screening.verdict == "eligible":
            store.enrol(number, screening.id, investigator.id,
                        meaning=SIGNATURE_MEANINGS[Permission.ELIGIBILITY_CONFIRM],
                        record_digest=digest(screening.result),
                        reason="eligibility confirmed; enrolment")
    return logins

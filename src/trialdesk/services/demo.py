"""Demo data: the seed trials, one log-in per role, and synthetic patients at different
stages (enrolled, eligible awaiting confirmation, undetermined, ineligible, not screened).

The patients are the example files in ``examples/patients/`` (synthetic), screened as of
the same moment as ``trialdesk demo`` so that the verdicts match the command line's. Every
screened patient has the consent of its file recorded. Three are enrolled through the same
operations the pages use (signatures with the demo passwords):

* the NB-NK-2026 refractory patient (arm A by rule): calendar from today, the cell
  collection (and its product, the first DIN of the demo facility) and the first doses
  recorded, a dose signed off by the pharmacist, a catheter
  infection (the protocol proposes supportive care) and a neutropenia graded from its lab;
* the RuMCeSS patient, randomised from a sealed list generated from a recorded seed, the
  MSC infusion timed from the septic-shock onset of the patient file;
* the Refnot R-2 patient, with a RECIST 1.1 baseline and a time point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from trialdesk.criteria.verdict import screen_record
from trialdesk.facts.patient import patient_from_data
from trialdesk.protocol.load import protocol_from_data, read_document
from trialdesk.services import cellproduct, journeys, responses, safety
from trialdesk.services.accounts import Principal, hash_password
from trialdesk.services.catalogue import study_prefix
from trialdesk.services.context import Services
from trialdesk.services.roles import Role
from trialdesk.store import Store

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
    DemoPatient("rumcess-eligible.json", "RuMCeSS", "Moscow", "Demo Patient Delta", "enrolled"),
    DemoPatient("refnot-ineligible.json", "REFNOT-R2", "St Petersburg", "Demo Patient Echo",
                "screened"),
    DemoPatient("db-program.json", "DB-POSTCONS", "Utrecht", "Demo Patient Foxtrot",
                "registered"),
    DemoPatient("refnot-eligible.json", "REFNOT-R2", "St Petersburg", "Demo Patient Golf",
                "enrolled"),
)
DEMO_FACILITY = "A9999"  # an ISBT 128 facility identifier for demo data only (not assigned)
DEMO_SEED = 20130507  # RuMCeSS: the allocation list's recorded seed (synthetic demo data)


def demo_logins() -> list[DemoLogin]:
    """One log-in per role; the password is printed when the demo starts."""
    return [DemoLogin(r.value, f"{r.value}-demo", r.value) for r in Role]


def demo_users_present(store: Store) -> list[str]:
    """The active users that still log in with a demo password (printed by ``serve --demo``)."""
    from trialdesk.services.accounts import password_matches

    found = []
    for login in demo_logins():
        user = store.user_by_name(login.username)
        if user is not None and user.active and password_matches(user.password_hash,
                                                                 login.password):
            found.append(login.username)
    return found


def disable_demo_users(store: Store, usernames: list[str]) -> None:
    """Deactivate the demo log-ins (audited), for a database that goes on without them."""
    for username in usernames:
        store.set_active(username, False, actor="system",
                         reason="demo log-in disabled: served without --demo")


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
    ctx = _context(store)
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
        for c in record.consents:
            if c.trial_id == demo.trial_id and c.signed:
                journeys.record_consent(ctx, _who(store, "coordinator"), number,
                                        version=c.version or "1.0", signed_on=c.date,
                                        signed_by=c.signed_by, assent=c.assent,
                                        reason="signed consent form received")
        row = store.patient(number)
        version = store.protocol_version(demo.trial_id)
        compiled = protocol_from_data(version.document, source=demo.trial_id)
        result = screen_record(compiled, record, as_of=DEMO_MOMENT).to_json()
        screening = store.add_screening(number, version.id, row.version, result,
                                        actor="investigator", reason="eligibility screening")
        if demo.stage == "enrolled" and screening.verdict == "eligible":
            _enrol(ctx, store, demo, number, screening.id)
    return logins


def _context(store: Store) -> Services:
    """The services, for seeding through the same checks as the pages."""
    return Services.open(store)


def _who(store: Store, username: str) -> Principal:
    user = store.user_by_name(username)
    assert user is not None
    return Principal(user, tuple(store.memberships(user.id)))


def _password(role: Role) -> str:
    return f"{role.value}-demo"


def _earlier_today(now: datetime) -> datetime:
    """A moment today before now (halfway since midnight), naive UTC like clinical times."""
    midnight = datetime.combine(now.date(), time(0, 0))
    return (midnight + (now - midnight) / 2).replace(second=0, microsecond=0)


def _enrol(ctx: Services, store: Store, demo: DemoPatient, number: str, screening: int) -> None:
    inv = _who(store, Role.INVESTIGATOR.value)
    today = store.now().date()
    reason = "eligibility confirmed; enrolment"
    if demo.trial_id == "RuMCeSS":
        journeys.generate_allocation_list(ctx, _who(store, Role.ADMINISTRATOR.value),
                                          demo.trial_id, seed=DEMO_SEED, size=None,
                                          reason="sealed allocation list generated")
        journeys.enrol_patient(ctx, inv, number, screening_id=screening,
                               password=_password(Role.INVESTIGATOR), reason=reason,
                               start=today)
    elif demo.trial_id == "REFNOT-R2":
        start = today - timedelta(days=2)
        journeys.enrol_patient(ctx, inv, number, screening_id=screening,
                               password=_password(Role.INVESTIGATOR), reason=reason, start=start)
        responses.record_response(ctx, inv, number, criteria="RECIST", kind="baseline",
                                  assessed_on=start, document=REFNOT_BASELINE,
                                  reason="baseline CT")
        responses.record_response(ctx, inv, number, criteria="RECIST", kind="time_point",
                                  assessed_on=today, document=REFNOT_TIME_POINT,
                                  reason="restaging CT")
    else:
        journeys.enrol_patient(ctx, inv, number, screening_id=screening,
                               password=_password(Role.INVESTIGATOR), reason=reason, start=today)
        _nb_calendar(ctx, store, number)


REFNOT_BASELINE = {
    "targets": [{"id": "L1", "organ": "liver", "kind": "non_nodal", "method": "ct", "size_mm": 42},
                {"id": "P1", "organ": "lung", "kind": "non_nodal", "method": "ct", "size_mm": 18}],
    "non_targets": [{"id": "N1", "organ": "mediastinal node", "kind": "lymph_node",
                     "method": "ct"}]}
REFNOT_TIME_POINT = {"targets": {"L1": 30, "P1": 12}, "non_targets": {"N1": "present"},
                     "new_lesions": False}


def _nb_calendar(ctx: Services, store: Store, number: str) -> None:
    """What happened so far on the NB-NK-2026 patient's calendar."""
    coord, inv = _who(store, Role.COORDINATOR.value), _who(store, Role.INVESTIGATOR.value)
    now = store.now().astimezone(UTC).replace(tzinfo=None)
    page = journeys.calendar_page(ctx, inv, number)
    events = page["calendar"]["events"]
    yesterday = (now - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    for e in events:
        if e["kind"] == "procedure" and e["day"] == -1:
            journeys.record_event(ctx, coord, number, event_id=e["id"], status="done",
                                  at=yesterday, amount=None, unit=None, by="Demo Coordinator",
                                  reason=None, note="cell collection done")
    cellproduct.record_collection(
        ctx, _who(store, Role.PHARMACIST.value), trial_id="NB-NK-2026", spec_id="nk-collection",
        facility=DEMO_FACILITY, code="S0001A", collected_at=yesterday, procedure="peripheral blood",
        patient=number, site="Moscow", volume_ml=40, reason="mononuclear-cell collection")
    first = [e for e in events if e["kind"] == "administration" and e["day"] == 1
             and e["dose"] and e["dose"]["amount"] is not None]
    journeys.sign_dose(ctx, _who(store, Role.PHARMACIST.value), number,
                       event_id=first[0]["id"], password=_password(Role.PHARMACIST),
                       reason="dose checked against the prescription")
    for e in first:
        journeys.record_event(ctx, coord, number, event_id=e["id"], status="given",
                              at=_earlier_today(now), amount=e["dose"]["amount"],
                              unit=e["dose"]["unit"], by="Demo Nurse", reason=None,
                              note="administration recorded")
    onset = now.date()
    safety.record_adverse_event(
        ctx, inv, number, lab=None, course_number=None, reason="adverse event recorded",
        event={"term": "Catheter related infection", "grade": 2, "onset": onset,
               "meddra_term": "Catheter related infection", "attributions": [],
               "seriousness": set()})
    safety.record_adverse_event(
        ctx, inv, number, course_number=None, reason="adverse event graded from the lab",
        lab={"term": "Neutrophil count decreased", "value": 800, "unit": "/mm3", "lln": 1800},
        event={"onset": onset, "meddra_term": "Neutrophil count decreased", "attributions": [
            {"agent": "temozolomide", "attribution": "possible"}]})

"""The patient journey in the store, on SQLite and on a real PostgreSQL server: consents,
calendar inputs, records and delays under the journey's optimistic lock, adverse events
with toxicity actions confirmed under an e-signature, responses, follow-up, and sealed
randomisation lists with their allocations — every change in one transaction with its
audit entry."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from trialdesk.errors import ConflictError, NotFoundError
from trialdesk.protocol.load import default_protocol_dir, read_document
from trialdesk.store import Store

NB_DOC: dict[str, Any] = read_document(default_protocol_dir() / "nb-nk-2026.yaml")
RU_DOC: dict[str, Any] = read_document(default_protocol_dir() / "rumcess.yaml")
PATIENT = {"patient_id": "NBNK-0001", "birth_date": "2019-04-12", "sex": "female"}
CONSENT = {"trial_id": "NB-NK-2026", "patient_id": "NBNK-0001", "version": "1.0",
           "signed_on": "2026-11-18", "signed_by": "parent", "assent": None, "age_years": 7,
           "recorded_by": "coord", "recorded_at": "2026-11-18T10:00:00", "notes": []}


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


@pytest.fixture
def store(database_url: str) -> Any:
    s = Store.open(database_url, clock=Clock())
    yield s
    s.close()


def _raw(store: Store, sql: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql))


def _enrolled(store: Store, *, verdict: str = "eligible", override: bool = False,
              study: str = "NBNK-0001", trial: dict[str, Any] = NB_DOC,
              allocate: Any = None) -> int:
    """A consented patient enrolled with a journey; returns the investigator's user id."""
    if store.user_by_name("inv") is None:
        store.add_user("inv", "Dr Ivanova", "x", actor="admin", reason="new investigator")
    store.import_protocol(trial, source="t.yaml", actor="admin", reason="import")
    trial_id = trial["id"]
    store.add_patient(study, trial_id, "MSK", {**PATIENT, "patient_id": study}, {},
                      actor="coord", reason="new patient")
    consent = store.add_consent(study, {**CONSENT, "trial_id": trial_id, "patient_id": study},
                                actor="coord", reason="consent signed")
    v = store.protocol_version(trial_id)
    sc = store.add_screening(study, v.id, 1, {"as_of": "2026-11-21T12:00:00",
                                              "verdict": verdict, "arm": "A"},
                             actor="inv", reason="screening")
    inv = store.user_by_name("inv")
    assert inv is not None
    journey = {"document": {"trial_id": trial_id, "patient_id": study, "arm": "A"}, "arm": "A",
               "arm_basis": "rule", "consent_id": consent.id, "start": "2026-11-19",
               "anchors": {}}
    if override:
        journey |= {"arm_basis": "override", "override_by": "Dr Ivanova",
                    "override_reason": "LVEF measured by MRI, 58%"}
    if allocate is not None:
        journey |= {"arm": None, "arm_basis": "randomisation"}
    store.enrol(study, sc.id, inv.id, meaning="I confirm the patient is eligible",
                record_digest="d" * 64, reason="enrolment", journey=journey, allocate=allocate,
                randomisation_id="R1" if allocate else None)
    return inv.id


def test_the_new_tables_are_made_by_migration_0002(store: Store) -> None:
    from sqlalchemy import inspect

    from trialdesk.store.db import current_revision, head_revision

    assert head_revision() >= "0014"  # the registry's condition words at place cells
    assert current_revision(store.engine) == head_revision()  # 0002 made the journey tables
    assert {"journeys", "event_records", "allocation_lists", "allocations"} <= set(
        inspect(store.engine).get_table_names())


def test_a_consent_is_stored_with_the_patient_record_in_one_transaction(store: Store) -> None:
    store.import_protocol(NB_DOC, source="t.yaml", actor="admin", reason="import")
    store.add_patient("NBNK-0001", "NB-NK-2026", "MSK", PATIENT, {}, actor="coord",
                      reason="new patient")
    record = {**PATIENT, "consents": [{"trial_id": "NB-NK-2026", "signed": True,
                                       "date": "2026-11-18", "version": "1.0"}]}
    row = store.add_consent("NBNK-0001", CONSENT, patient_record=record,
                            expected_patient_version=1, actor="coord", reason="consent signed")
    assert row.document["signed_by"] == "parent"
    assert store.patient("NBNK-0001").version == 2
    actions = [(e.action, e.record_type) for e in store.audit_entries(record_id="NBNK-0001").items]
    assert actions[:2] == [("consent", "consent"), ("update", "patient")]
    with pytest.raises(ConflictError, match="now version 2"):
        store.add_consent("NBNK-0001", CONSENT, patient_record=record,
                          expected_patient_version=1, actor="coord", reason="again")
    assert len(store.consents("NBNK-0001")) == 1  # the refused one left nothing


def test_enrolment_stores_the_journey_and_refuses_an_undetermined_patient_without_override(
        store: Store) -> None:
    with pytest.raises(ConflictError, match="override"):
        _enrolled(store, verdict="undetermined")
    assert store.enrolment("NBNK-0001") is None and store.journey("NBNK-0001") is None
    assert store.consents("NBNK-0001")  # the consent before it stays
    inv = store.user_by_name("inv")
    assert inv is not None
    sc = store.screenings("NBNK-0001")[0]
    consent = store.consents("NBNK-0001")[0]
    store.enrol("NBNK-0001", sc.id, inv.id, meaning="m", record_digest="d" * 64,
                reason="override", journey={
                    "document": {"x": 1}, "arm": "A", "arm_basis": "override",
                    "consent_id": consent.id, "override_by": "Dr Ivanova",
                    "override_reason": "LVEF by MRI", "anchors": {}})
    j = store.journey("NBNK-0001")
    assert j is not None and (j.arm, j.arm_basis, j.override_by) == ("A", "override", "Dr Ivanova")
    assert j.consents[0]["version"] == "1.0" and j.start is None and j.version == 1
    trail = store.audit_entries(record_id="NBNK-0001").items
    assert trail[0].record_type == "journey"
    assert trail[0].changes["override"]["new"] == "Dr Ivanova: LVEF by MRI"


def test_every_journey_change_names_the_version_it_was_checked_against(store: Store) -> None:
    _enrolled(store)
    j = store.journey("NBNK-0001")
    assert j is not None and j.version == 1
    after = store.add_event_record("NBNK-0001", {
        "event_id": "c1.irinotecan.d1", "status": "given", "at": "2026-11-19T09:00:00",
        "by": "Nurse", "amount": 42.0, "unit": "mg"}, expected_version=1, actor="nurse",
        reason="administration")
    assert after.version == 2 and after.records[0]["amount"] == 42.0
    before = store.audit_entries().total
    with pytest.raises(ConflictError) as exc:
        store.add_course_delay("NBNK-0001", {"course": 2, "days": 7, "reason": "ANC 0.4",
                                             "by": "Dr A", "recorded_on": "2026-11-21"},
                               expected_version=1, actor="inv", reason="delay")
    assert "changed by nurse" in str(exc.value) and "now version 2" in str(exc.value)
    assert store.audit_entries().total == before
    with pytest.raises(ConflictError, match="already recorded"):
        store.add_event_record("NBNK-0001", {
            "event_id": "c1.irinotecan.d1", "status": "withheld", "at": "2026-11-19T09:00:00",
            "by": "Nurse", "reason": "x"}, expected_version=2, actor="nurse", reason="again")
    j2 = store.add_body_measurement("NBNK-0001", {"on": "2026-11-20", "weight_kg": 21.0},
                                    expected_version=2, actor="coord", reason="weighed")
    j3 = store.add_course_delay("NBNK-0001", {"course": 2, "days": 7, "reason": "ANC 0.4",
                                              "by": "Dr A", "recorded_on": "2026-11-21"},
                                expected_version=j2.version, actor="inv", reason="delay")
    j4 = store.update_journey("NBNK-0001", expected_version=j3.version,
                              anchors={"septic_shock_onset": "2026-11-21T06:00"}, actor="inv",
                              reason="onset recorded")
    assert (len(j4.body), len(j4.delays), j4.anchors, j4.version) == (
        1, 1, {"septic_shock_onset": "2026-11-21T06:00"}, 5)
    assert store.verify_audit().ok


def test_an_adverse_event_and_its_confirmed_action_with_the_signature(store: Store) -> None:
    inv_id = _enrolled(store)
    ae = store.add_adverse_event(
        "NBNK-0001", document={"term": "Capillary leak syndrome", "grade": 3,
                               "onset": "2026-12-16"},
        lab=None, check={"rules": []}, course_number=2, course_id="DIT",
        proposals=[{"rule_id": "NBNK-CLS-G3", "kind": "delay_course",
                    "proposal": {"kind": "delay_course"}, "found_on": "2026-12-16"}],
        expected_version=1, actor="inv", reason="AE")
    [action] = ae.actions
    assert (action.status, action.version, action.signature) == ("proposed", 1, None)
    confirmed = store.confirm_action(
        action.id, expected_version=1, journey_version=2, user_id=inv_id,
        meaning="I confirm this toxicity action", record_digest="e" * 64,
        applied={"event_ids": ["c2"]}, delay={"course": 2, "days": 7, "reason": "CLS",
                                                "by": "Dr Ivanova", "recorded_on": "2026-11-21",
                                                "rule_id": "NBNK-CLS-G3"},
        reason="confirmed")
    assert confirmed.status == "confirmed" and confirmed.signature is not None
    assert confirmed.signature.record_digest == "e" * 64
    j = store.journey("NBNK-0001")
    assert j is not None and j.actions == ({"event_ids": ["c2"]},)
    assert j.delays[0]["rule_id"] == "NBNK-CLS-G3"
    with pytest.raises(ConflictError):
        store.confirm_action(action.id, expected_version=confirmed.version,
                             journey_version=j.version, user_id=inv_id, meaning="m",
                             record_digest="e" * 64, applied={}, delay=None, reason="again")
    # A follow-up of the event is optimistically locked.
    updated = store.update_adverse_event(ae.id, {**ae.document, "resolution": "2026-12-20"},
                                         expected_version=1, actor="inv", reason="resolved")
    assert updated.version == 2
    with pytest.raises(ConflictError, match="now version 2"):
        store.update_adverse_event(ae.id, {**ae.document, "outcome": "fatal"},
                                   expected_version=1, actor="coord", reason="stale")
    kinds = [e.record_type for e in store.audit_entries(record_id="NBNK-0001").items[:3]]
    assert kinds == ["adverse_event", "toxicity_action", "toxicity_action"]
    assert store.trial_adverse_events("NB-NK-2026")[0].document["resolution"] == "2026-12-20"


def test_responses_and_follow_up(store: Store) -> None:
    _enrolled(store)
    r = store.add_response("NBNK-0001", criteria="INRC", kind="time_point",
                           assessed_on="2026-12-30", overall="PR", document={"primary": {}},
                           result={"overall": "PR", "reasoning": ["…"]}, expected_version=1,
                           actor="inv", reason="assessment")
    f = store.add_follow_up("NBNK-0001", kind="last_contact", occurred_on="2027-01-05",
                            note="clinic visit", expected_version=2, actor="coord",
                            reason="follow-up")
    assert store.responses("NBNK-0001") == [r] and store.follow_ups("NBNK-0001") == [f]


def _first_free(lst: Mapping[str, Any], log: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    used = {(a["stratum"], a["sequence"]) for a in log}
    entry = next(e for e in lst["entries"] if (e["stratum"], e["sequence"]) not in used)
    return {"stratum": entry["stratum"], "sequence": entry["sequence"], "arm": entry["arm"]}


SEALED = {"entries": [{"stratum": "NRCH", "sequence": n, "arm": arm}
                      for n, arm in enumerate(["SOC", "MSC", "MSC", "SOC"], start=1)]}


def test_a_sealed_list_is_written_once_and_never_changed(store: Store) -> None:
    store.import_protocol(RU_DOC, source="t.yaml", actor="admin", reason="import")
    info = store.create_allocation_list("RuMCeSS", "R1", digest="f" * 64, document=SEALED,
                                        entries=4, actor="admin", reason="generated")
    assert (info.digest, info.entries, info.allocated) == ("f" * 64, 4, 0)
    with pytest.raises(ConflictError, match="never replaced"):
        store.create_allocation_list("RuMCeSS", "R1", digest="0" * 64, document={},
                                     entries=0, actor="admin", reason="again")
    entry = store.audit_entries(record_type="allocation_list").items[0]
    assert "SOC" not in str(entry.changes) and entry.changes["digest"]["new"] == "f" * 64
    for sql in ("UPDATE allocation_lists SET digest = 'x'", "DELETE FROM allocation_lists"):
        with pytest.raises(Exception, match="append-only"):
            _raw(store, sql)


def test_randomisation_takes_the_next_entry_in_the_enrolments_transaction(store: Store) -> None:
    with pytest.raises(ConflictError, match="no sealed allocation list"):
        _enrolled(store, study="RUMCES-0001", trial=RU_DOC, allocate=_first_free)
    assert store.enrolment("RUMCES-0001") is None  # nothing half-written
    store.create_allocation_list("RuMCeSS", "R1", digest="f" * 64, document=SEALED,
                                 entries=4, actor="admin", reason="generated")
    inv = store.user_by_name("inv")
    assert inv is not None
    sc = store.screenings("RUMCES-0001")[0]
    consent = store.consents("RUMCES-0001")[0]
    store.enrol("RUMCES-0001", sc.id, inv.id, meaning="m", record_digest="d" * 64,
                reason="enrolment", journey={"document": {}, "arm": None,
                                             "arm_basis": "randomisation",
                                             "consent_id": consent.id, "anchors": {}},
                allocate=_first_free, randomisation_id="R1")
    j = store.journey("RUMCES-0001")
    assert j is not None and j.arm == "SOC" and j.allocation == {
        "stratum": "NRCH", "sequence": 1, "arm": "SOC"}
    info = store.allocation_list_info("RuMCeSS", "R1")
    assert info is not None and info.allocated == 1
    sealed = store.sealed_allocations("RuMCeSS", "R1")
    assert sealed is not None and len(sealed[1]) == 1
    assert store.trial_counts("RuMCeSS", ["MSC", "SOC"]).by_arm["SOC"]["enrolled"] == 1
    for sql in ("UPDATE allocations SET arm = 'MSC'", "DELETE FROM allocations"):
        with pytest.raises(Exception, match="append-only"):
            _raw(store, sql)


def test_concurrent_randomisations_never_take_the_same_entry(store: Store) -> None:
    store.import_protocol(RU_DOC, source="t.yaml", actor="admin", reason="import")
    store.create_allocation_list("RuMCeSS", "R1", digest="f" * 64, document=SEALED,
                                 entries=4, actor="admin", reason="generated")
    inv = store.add_user("inv", "Dr Ivanova", "x", actor="admin", reason="new investigator")
    v = store.protocol_version("RuMCeSS")
    ready = []
    for n in range(1, 4):
        study = f"RUMCES-{n:04d}"
        store.add_patient(study, "RuMCeSS", "MSK", {**PATIENT, "patient_id": study}, {},
                          actor="coord", reason="new")
        consent = store.add_consent(study, {**CONSENT, "trial_id": "RuMCeSS",
                                            "patient_id": study}, actor="coord", reason="c")
        sc = store.add_screening(study, v.id, 1, {"as_of": "2026-11-21T12:00:00",
                                                  "verdict": "eligible"}, actor="inv",
                                 reason="screening")
        ready.append((study, sc.id, consent.id))
    errors: list[Exception] = []

    def enrol(study: str, screening: int, consent: int) -> None:
        try:
            store.enrol(study, screening, inv.id, meaning="m", record_digest="d" * 64,
                        reason="enrolment", journey={"document": {}, "arm": None,
                                                     "arm_basis": "randomisation",
                                                     "consent_id": consent, "anchors": {}},
                        allocate=_first_free, randomisation_id="R1")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=enrol, args=args) for args in ready]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sealed = store.sealed_allocations("RuMCeSS", "R1")
    assert sealed is not None
    assert sorted(a["sequence"] for a in sealed[1]) == [1, 2, 3]
    assert store.verify_audit().ok


def test_a_journey_that_does_not_exist(store: Store) -> None:
    store.import_protocol(NB_DOC, source="t.yaml", actor="admin", reason="import")
    store.add_patient("NBNK-0001", "NB-NK-2026", "MSK", PATIENT, {}, actor="coord", reason="new")
    assert store.journey("NBNK-0001") is None
    with pytest.raises(NotFoundError, match="not enrolled"):
        store.add_body_measurement("NBNK-0001", {"on": "2026-11-20", "weight_kg": 21.0},
                                   expected_version=1, actor="coord", reason="weighed")

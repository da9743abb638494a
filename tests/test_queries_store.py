"""The data-query tables on SQLite and PostgreSQL: each step audited under the patient,
a stale step refused, one open lock per patient, review statuses with their values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from test_store import Clock, _seeded
from trialdesk.errors import ConflictError
from trialdesk.store import Store
from trialdesk.store.queries import QueryStore


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[Store, QueryStore]]:
    s = _seeded(Store.open(database_url, clock=Clock()))
    yield s, QueryStore(s.engine, clock=s.clock)
    s.close()


def test_a_query_and_its_steps(stores: tuple[Store, QueryStore]) -> None:
    store, qs = stores
    q = qs.open_query("NBNK-0001", form="lab", field="creatinine", field_label="Serum creatinine",
                      value_seen="35 µmol/L", question="check", actor="monitor")
    assert (q.status, q.version, q.site, [s.action for s in q.steps]) == ("open", 1, "MSK",
                                                                           ["open"])
    a = qs.query_step(q.id, expected_version=1, action="answer", text="right", value=None,
                      status="answered", actor="coord")
    assert a.version == 2 and a.status == "answered"
    with pytest.raises(ConflictError, match="changed by coord"):
        qs.query_step(q.id, expected_version=1, action="close", text="ok", value=None,
                      status="closed", actor="monitor")
    assert [x.id for x in qs.data_queries(study_number="NBNK-0001", statuses=("answered",))] \
        == [q.id]
    assert qs.data_queries(trial_ids=["RuMCeSS"]) == []
    entries = store.audit_entries(record_ids=["NBNK-0001"], limit=10).items
    assert [(e.action, e.record_type) for e in entries[:2]] == [
        ("query_answer", "data_query"), ("query_open", "data_query")]
    assert store.verify_audit().ok


def test_the_lock_and_the_review_statuses(stores: tuple[Store, QueryStore]) -> None:
    store, qs = stores
    assert qs.patient_lock("NBNK-0001") is None
    qs.lock_patient("NBNK-0001", actor="admin", reason="database lock")
    with pytest.raises(ConflictError, match="already locked"):
        qs.lock_patient("NBNK-0001", actor="admin", reason="again")
    lock: Any = qs.patient_lock("NBNK-0001")
    assert (lock.locked_by, lock.reason) == ("admin", "database lock")
    qs.unlock_patient("NBNK-0001", actor="admin", reason="late correction")
    assert qs.patient_lock("NBNK-0001") is None
    with pytest.raises(ConflictError, match="not locked"):
        qs.unlock_patient("NBNK-0001", actor="admin", reason="again")
    qs.set_form_review("NBNK-0001", "lab", "complete", values_digest="a" * 64, actor="coord",
                       reason="entered")
    qs.set_form_review("NBNK-0001", "lab", "complete", values_digest="a" * 64, actor="coord",
                       reason="no change")  # nothing to audit
    qs.set_form_review("NBNK-0001", "lab", "verified", values_digest="a" * 64,
                       actor="monitor", reason="SDV")
    assert {k: (v.status, v.updated_by) for k, v in qs.form_reviews("NBNK-0001").items()} == {
        "lab": ("verified", "monitor")}
    qs.set_form_review("NBNK-0001", "lab", None, values_digest="b" * 64, actor="coord",
                       reason="back to incomplete")
    assert qs.form_reviews("NBNK-0001") == {}
    actions = [e.action for e in store.audit_entries(record_ids=["NBNK-0001"], limit=20).items]
    # Newest first: three status changes (the unchanged one not audited), unlock, lock.
    assert actions[:5] == ["form_status", "form_status", "form_status", "unlock", "lock"]

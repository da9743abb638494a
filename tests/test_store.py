"""The store on SQLite and on a real PostgreSQL server: migrations, versioned protocols,
optimistic locking, one transaction per change with its audit entry, the audit chain."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from trialdesk.errors import ConflictError
from trialdesk.protocol.load import default_protocol_dir, read_document
from trialdesk.store import Store
from trialdesk.store.db import current_revision, head_revision

NB_DOC: dict[str, Any] = read_document(default_protocol_dir() / "nb-nk-2026.yaml")
PATIENT = {"patient_id": "NBNK-0001", "birth_date": "2019-04-12", "sex": "female"}


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


def _seeded(store: Store) -> Store:
    store.import_protocol(NB_DOC, source="nb-nk-2026.yaml", actor="admin", reason="initial import")
    store.add_patient("NBNK-0001", "NB-NK-2026", "MSK", PATIENT, {"name": "Anna K."},
                      actor="coord", reason="new patient")
    return store


def _raw(store: Store, sql: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql))


def test_migrations_bring_the_schema_to_head_and_match_the_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from trialdesk.store.models import Base

    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        # The registry's full-text indexes (migrations 0008, 0011) are not ORM tables: the
        # FTS5 tables with their shadow tables on SQLite, a generated tsvector on PostgreSQL.
        def include(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
            return not (name or "").startswith(("registry_fts", "registry_find",
                                                "search_vector"))

        context = MigrationContext.configure(conn, opts={"include_object": include})
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    s = Store.open(f"sqlite:///{tmp_path / 'd' / 'trialdesk.db'}")
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -64 * 1024  # KiB
        assert conn.exec_driver_sql("SELECT round(asin(sqrt(0.5)), 6)").scalar() == 0.785398
    assert (tmp_path / "d" / "trialdesk.db").exists()


def test_an_amendment_is_a_new_version_and_the_same_document_is_not(store: Store) -> None:
    v1 = store.import_protocol(NB_DOC, source="a.yaml", actor="admin", reason="initial import")
    again = store.import_protocol(NB_DOC, source="a.yaml", actor="admin", reason="re-import")
    assert (v1.number, again.number, again.id) == (1, 1, v1.id)
    amended = {**NB_DOC, "version": "1.1", "title": NB_DOC["title"] + " (amended)"}
    v2 = store.import_protocol(amended, source="a.yaml", actor="admin", reason="amendment 1")
    assert (v2.number, v2.label) == (2, "1.1")
    assert [v.number for v in store.protocol_versions("NB-NK-2026")] == [1, 2]
    assert store.protocol_version("NB-NK-2026").number == 2
    assert store.protocol_version("NB-NK-2026", 1).document == NB_DOC
    [trial] = store.trials()
    assert (trial.id, trial.latest.number, trial.version_count) == ("NB-NK-2026", 2, 2)
    actions = [e.action for e in store.audit_entries().items]
    assert actions == ["amend", "create"]


def test_a_save_based_on_a_stale_version_is_refused_with_a_clear_message(store: Store) -> None:
    _seeded(store)
    p = store.patient("NBNK-0001")
    assert p.version == 1
    changed = {**PATIENT, "sex": "male"}
    saved = store.update_patient("NBNK-0001", expected_version=1, record=changed, actor="inv",
                                 reason="sex corrected from birth certificate")
    assert saved.version == 2
    entries_before = store.audit_entries().total
    with pytest.raises(ConflictError) as exc:
        store.update_patient("NBNK-0001", expected_version=1, record=PATIENT, actor="coord",
                             reason="stale edit")
    message = str(exc.value)
    assert "now version 2" in message and "your copy is version 1" in message
    assert "changed by inv" in message
    assert store.patient("NBNK-0001").record["sex"] == "male"
    assert store.audit_entries().total == entries_before  # nothing half-written


def test_every_change_is_audited_with_who_when_old_new_and_reason(store: Store) -> None:
    _seeded(store)
    store.update_patient("NBNK-0001", expected_version=1, record={**PATIENT, "sex": "male"},
                         actor="inv", reason="sex corrected")
    latest = store.audit_entries(record_type="patient", record_id="NBNK-0001").items[0]
    assert (latest.username, latest.action, latest.reason) == ("inv", "update", "sex corrected")
    assert latest.changes == {"$.record.sex": {"old": "female", "new": "male"}}
    assert latest.at.endswith("Z") and latest.at.startswith("2026-11-21T12:00:")
    created = store.audit_entries(record_type="patient", record_id="NBNK-0001").items[1]
    assert created.changes["$.identifiers.name"] == {"old": None, "new": "***"}  # never in clear


def _trail(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM audit_log ORDER BY seq"))]


def test_audit_many_writes_the_entries_audit_writes_one_by_one(database_url: str,
                                                               tmp_path: Path) -> None:
    entries = [("create", "registry_study", f"NCT0000000{i}",
                {"title": {"old": None, "new": f"Study {i} é"}}, f"imported (page {i // 2})")
               for i in range(5)]
    batched = Store.open(database_url, clock=Clock())
    one_by_one = Store.open(f"sqlite:///{tmp_path / 'one-by-one.db'}", clock=Clock())
    try:
        for target in (batched, one_by_one):
            _seeded(target)
        with batched._write("admin") as tx:
            tx.audit_many(entries)
            tx.audit_many([])
        with one_by_one._write("admin") as tx:
            for e in entries:
                tx.audit(*e)
        assert _trail(batched) == _trail(one_by_one)
        assert [r[0] for r in _trail(batched)[-5:]] == list(range(len(_trail(batched)) - 4,
                                                                   len(_trail(batched)) + 1))
        assert batched.verify_audit().ok and one_by_one.verify_audit().ok
        with pytest.raises(ValueError, match="reason"), batched._write("admin") as tx:
            tx.audit_many([*entries[:1], ("update", "x", "y", {}, " ")])
        assert _trail(batched) == _trail(one_by_one)  # nothing of the refused batch is kept
    finally:
        batched.close()
        one_by_one.close()


def test_a_failed_write_leaves_neither_the_change_nor_its_audit_entry(store: Store) -> None:
    _seeded(store)
    before = store.audit_entries().total
    with pytest.raises(ValueError, match="reason"):
        store.update_patient("NBNK-0001", expected_version=1, record={**PATIENT, "sex": "male"},
                             actor="inv", reason="  ")
    assert store.patient("NBNK-0001").record["sex"] == "female"
    assert store.patient("NBNK-0001").version == 1
    assert store.audit_entries().total == before


def test_enrolled_patients_keep_their_protocol_version_and_screening_names_it(store: Store) -> None:
    _seeded(store)
    admin = store.add_user("inv", "Dr Ivanova", "x", actor="admin", reason="new investigator")
    v1 = store.protocol_version("NB-NK-2026")
    result = {"as_of": "2026-11-21T12:00:00", "verdict": "eligible", "arm": "A"}
    sc = store.add_screening("NBNK-0001", v1.id, 1, result, actor="inv", reason="screening")
    assert (sc.protocol_version_number, sc.protocol_version_label) == (1, "1.0")
    enrolment = store.enrol("NBNK-0001", sc.id, admin.id, meaning="eligibility confirmed",
                            record_digest="d" * 64, reason="eligibility confirmed")
    store.import_protocol({**NB_DOC, "version": "2.0"}, source="a.yaml", actor="admin",
                          reason="amendment 2")
    kept = store.enrolment("NBNK-0001")
    assert kept is not None and kept.protocol_version_number == 1 == enrolment.protocol_version_number
    assert kept.signature.manifestation.startswith("Dr Ivanova (inv), 2026-11-21T12:00:")
    assert kept.signature.manifestation.endswith("— eligibility confirmed")
    with pytest.raises(ConflictError, match="already enrolled"):
        store.enrol("NBNK-0001", sc.id, admin.id, meaning="eligibility confirmed",
                    record_digest="d" * 64, reason="again")
    counts = store.trial_counts("NB-NK-2026", ["A", "B"])
    assert (counts.screened, counts.eligible, counts.enrolled) == (1, 1, 1)
    assert counts.by_arm["A"] == {"screened": 1, "eligible": 1, "enrolled": 1}


def test_an_ineligible_screening_cannot_be_confirmed(store: Store) -> None:
    _seeded(store)
    inv = store.add_user("inv", "Dr Ivanova", "x", actor="admin", reason="new investigator")
    v1 = store.protocol_version("NB-NK-2026")
    sc = store.add_screening("NBNK-0001", v1.id, 1,
                             {"as_of": "2026-11-21T12:00:00", "verdict": "undetermined"},
                             actor="inv", reason="screening")
    with pytest.raises(ConflictError, match="undetermined"):
        store.enrol("NBNK-0001", sc.id, inv.id, meaning="eligibility confirmed",
                    record_digest="d" * 64, reason="confirm")
    assert store.enrolment("NBNK-0001") is None


def test_the_audit_trail_is_append_only_in_the_database(store: Store) -> None:
    _seeded(store)
    for sql in ("UPDATE audit_log SET reason = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            _raw(store, sql)
    assert store.verify_audit().ok


def _without_triggers(store: Store) -> None:
    if store.backend == "postgresql":
        _raw(store, "ALTER TABLE audit_log DISABLE TRIGGER USER")
    else:
        _raw(store, "DROP TRIGGER audit_log_no_update")
        _raw(store, "DROP TRIGGER audit_log_no_delete")


@pytest.mark.parametrize(("tamper", "expected"), [
    ("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 2",
     "entry 2: its content does not match its hash (edited)"),
    ("DELETE FROM audit_log WHERE seq = 2", "entries 2–2 are missing (deleted)"),
    ("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)",
     "the trail ends at entry 3 but its head records entry 4"),
    ("UPDATE audit_head SET hash = 'x'", "the trail ends at entry 4 but its head records entry 4"),
])
def test_verify_detects_every_edited_or_deleted_entry(store: Store, tamper: str,
                                                      expected: str) -> None:
    _seeded(store)
    store.update_patient("NBNK-0001", expected_version=1, record={**PATIENT, "sex": "male"},
                         actor="inv", reason="corrected")
    assert store.verify_audit().ok and store.verify_audit().entries == 3
    store.add_user("mon", "M. Monitor", "x", actor="admin", reason="new monitor")
    _without_triggers(store)
    _raw(store, tamper)
    report = store.verify_audit()
    assert not report.ok
    assert any(p.startswith(expected) for p in report.problems), report.problems


def test_concurrent_writers_never_fork_the_chain(store: Store) -> None:
    _seeded(store)
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                store.add_user(f"u{n}_{i}", f"User {n}.{i}", "x", actor="admin", reason="bulk")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = store.verify_audit()
    assert report.ok, report.problems
    assert report.entries == 2 + 15


def test_failed_log_ins_are_audited_with_where_they_came_from(store: Store) -> None:
    store.add_user("inv", "Dr Ivanova", "x", actor="admin", reason="new investigator")
    for _ in range(3):
        store.login_failed("inv", address="192.0.2.1", user_agent="ua", reason="wrong password")
    store.login_failed("nobody", address="192.0.2.2", user_agent="ua", reason="unknown user")
    store.login_succeeded("inv", address="192.0.2.1", user_agent="ua")
    assert store.user_by_name("inv").locked_until is None  # no lock a stranger can set
    attempts = store.login_attempts("inv", datetime(2026, 1, 1, tzinfo=UTC))
    assert [a.action for a in attempts] == ["login_failed"] * 3 + ["login"]
    assert attempts[0].changes["address"] == {"old": None, "new": "192.0.2.1"}
    [unknown] = store.login_attempts("nobody", datetime(2026, 1, 1, tzinfo=UTC))
    assert unknown.reason == "unknown user"

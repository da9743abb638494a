"""The stored record as CDISC ODM 1.3.2 into the database: export from one demo database,
import into a fresh one through the services (audited, one transaction), export again and
get the same file; a second import adds nothing; a file whose metadata differs, a subject
who is not enrolled or an impossible value is refused whole, with one line."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import WebApp
from trialdesk.cli import app
from trialdesk.errors import AccessError, ConflictError, OutcomeError, TrialdeskError
from trialdesk.outcomes.export_odm import check_odm
from trialdesk.services import journeys, responses
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.exchange import export_record_odm, import_record_odm

CREATED = datetime(2026, 11, 21, 12, 0)


def _who(store: Any, name: str) -> Principal:
    user = store.user_by_name(name)
    return Principal(user, tuple(store.memberships(user.id)))


@pytest.fixture
def fresh(tmp_path: Path, demo_database: Path) -> Any:
    """A second, untouched copy of the demo database."""
    target = tmp_path / "fresh.db"
    shutil.copyfile(demo_database, target)
    w = WebApp(f"sqlite:///{target}", seed=False)
    yield w
    w.store.close()


def _nb(store: Any) -> str:
    return store.trial_journeys("NB-NK-2026")[0].study_number


def _record_more(web: WebApp) -> Services:
    """A new laboratory result in the record, two body measurements and a last contact for
    the NB-NK-2026 demo patient."""
    from trialdesk.facts.patient import PatientRecord
    from trialdesk.services.patients import update_patient

    ctx = Services.open(web.store)
    who = _who(web.store, "investigator")
    sn = _nb(web.store)
    row = web.store.patient(sn)
    record = dict(row.record)
    record["observations"] = [*record["observations"],
                              {"name": "alt", "value": 52.0, "unit": "U/L", "date": "2026-11-20"}]
    update_patient(ctx, who, sn, version=row.version, record=PatientRecord.model_validate(record),
                   identifiers=None, reason="new ALT")
    journeys.record_body(ctx, who, sn, on=date(2026, 11, 20), weight_kg=21.0, height_cm=118.5, reason="ward")
    journeys.record_body(ctx, who, sn, on=date(2026, 11, 21), weight_kg=20.8, height_cm=None, reason="ward")
    responses.record_follow_up(ctx, who, sn, kind="last_contact", occurred_on=date(2026, 11, 21),
                               note="clinic visit", reason="follow-up")
    return ctx


def test_export_import_export_is_equal(web: WebApp, fresh: WebApp) -> None:
    ctx = _record_more(web)
    data = export_record_odm(ctx, _who(web.store, "statistician"), "NB-NK-2026", created=CREATED)
    assert check_odm(data) == []
    assert b"clinic visit" not in data  # free-text notes stay out of the de-identified file
    target = Services.open(fresh.store)
    before = fresh.store.audit_entries().total
    summary = import_record_odm(target, _who(fresh.store, "investigator"), "NB-NK-2026", data,
                                reason="records from the other site's ODM export")
    # In both databases (skipped): the 9 observations of examples/patients/nb-refractory.json
    # and the body measurement taken from it at enrolment; new: the ALT, the two ward
    # measurements and the last contact.
    assert (summary.added, summary.already_stored) == (4, 10)
    assert summary.patients == (_nb(web.store),)
    entries = fresh.store.audit_entries(limit=10)
    assert entries.total == before + 4  # one for the patient record, one per calendar record
    assert {(e.username, e.record_type, e.reason) for e in entries.items[:4]} == {
        ("investigator", "patient", "records from the other site's ODM export"),
        ("investigator", "body", "records from the other site's ODM export"),
        ("investigator", "follow_up", "records from the other site's ODM export")}
    alt = [o for o in fresh.store.patient(_nb(fresh.store)).record["observations"] if o["name"] == "alt"]
    assert [o["value"] for o in alt][-1] == 52.0
    assert fresh.store.verify_audit().ok
    again = export_record_odm(target, _who(fresh.store, "statistician"), "NB-NK-2026", created=CREATED)
    assert again == data
    # A second import of the same file adds nothing.
    second = import_record_odm(target, _who(fresh.store, "investigator"), "NB-NK-2026", data, reason="again")
    assert (second.added, second.already_stored) == (0, 14)
    assert fresh.store.audit_entries().total == before + 4


def _changed(data: bytes, old: str, new: str) -> bytes:
    text = data.decode()
    assert old in text
    return text.replace(old, new, 1).encode()


def test_a_file_with_other_metadata_is_refused(web: WebApp) -> None:
    ctx = Services.open(web.store)
    data = export_record_odm(ctx, _who(web.store, "statistician"), "NB-NK-2026", created=CREATED)
    who = _who(web.store, "investigator")
    cases = {
        _changed(data, 'Name="weight_kg" DataType="float"', 'Name="weight_kg" DataType="text"'):
            "IT.VS.weight_kg: the file has item 'weight_kg' of type text, the trial has item 'weight_kg' "
            "of type float",
        _changed(data, '<EnumeratedItem CodedValue="death" />', ''):
            "CL.FU.kind: the file has codelist ['last_contact', 'second_malignancy'], the trial has codelist "
            "['last_contact', 'death', 'second_malignancy']",
        _changed(data, 'MetaDataVersion OID="MDV.NB-NK-2026.', 'MetaDataVersion OID="MDV.NB-NK-2025.'):
            "ODM MetaDataVersion OID: the file's metadata version is MDV.NB-NK-2025.",
    }
    for file, message in cases.items():
        with pytest.raises(OutcomeError) as caught:
            import_record_odm(ctx, who, "NB-NK-2026", file, reason="import")
        assert str(caught.value).startswith(message)
        assert "\n" not in str(caught.value)
    refused = r"^ODM Study OID: the file holds ST\.NB-NK-2026, not ST\.REFNOT-R2$"
    with pytest.raises(OutcomeError, match=refused):
        import_record_odm(ctx, who, "REFNOT-R2", data, reason="import")


def test_nothing_is_half_written(web: WebApp) -> None:
    ctx = _record_more(web)
    data = export_record_odm(ctx, _who(web.store, "statistician"), "NB-NK-2026", created=CREATED)
    sn = _nb(web.store)
    who = _who(web.store, "investigator")
    body_before = len(web.store.trial_journeys("NB-NK-2026")[0].body)
    # A new plausible measurement and an impossible one: the whole file is refused.
    extra = ('<ItemGroupData ItemGroupOID="IG.VS" ItemGroupRepeatKey="9"><ItemData ItemOID="IT.VS.on" '
             'Value="2026-11-19"/><ItemData ItemOID="IT.VS.weight_kg" Value="21.1"/></ItemGroupData>'
             '<ItemGroupData ItemGroupOID="IG.VS" ItemGroupRepeatKey="10"><ItemData ItemOID="IT.VS.on" '
             'Value="2026-11-18"/><ItemData ItemOID="IT.VS.weight_kg" Value="400"/></ItemGroupData>')
    bad = _changed(data, '<ItemGroupData ItemGroupOID="IG.FU"', extra + '<ItemGroupData ItemGroupOID="IG.FU"')
    refused = rf"^{sn} IG\.VS 5: weight_kg: 400\.0 kg is above the plausibility"
    with pytest.raises(OutcomeError, match=refused):
        import_record_odm(ctx, who, "NB-NK-2026", bad, reason="import")
    assert len(web.store.trial_journeys("NB-NK-2026")[0].body) == body_before
    wrong_unit = ('<ItemGroupData ItemGroupOID="IG.OBS" ItemGroupRepeatKey="99">'
                  '<ItemData ItemOID="IT.OBS.name" Value="alt"/><ItemData ItemOID="IT.OBS.value" Value="40"/>'
                  '<ItemData ItemOID="IT.OBS.unit" Value="kg"/>'
                  '<ItemData ItemOID="IT.OBS.date" Value="2026-11-19"/></ItemGroupData>')
    vs = '<ItemGroupData ItemGroupOID="IG.VS"'
    bad = _changed(data, vs, wrong_unit + vs)
    with pytest.raises(TrialdeskError, match=rf"^{sn} IG\.OBS: \$\.observations\[10\]"):
        import_record_odm(ctx, who, "NB-NK-2026", bad, reason="import")
    assert len(web.store.patient(sn).record["observations"]) == 10
    stranger = _changed(data, f'SubjectKey="{sn}"', 'SubjectKey="NBNK-9999"')
    refused = r"^ODM SubjectKey: NBNK-9999 is not an enrolled patient of NB-NK-2026$"
    with pytest.raises(OutcomeError, match=refused):
        import_record_odm(ctx, who, "NB-NK-2026", stranger, reason="import")
    # The store writes the records of every patient in one transaction: a conflict on the
    # second patient leaves the first one's records unwritten too.
    refnot = web.store.trial_journeys("REFNOT-R2")[0]
    nb = web.store.trial_journeys("NB-NK-2026")[0]
    records = {sn: {"body": [{"on": "2026-11-19", "weight_kg": 21.1}], "follow_up": []},
               refnot.study_number: {"body": [{"on": "2026-11-19", "weight_kg": 81.0}], "follow_up": []}}
    with pytest.raises(ConflictError):
        web.store.add_imported_records(records, actor="investigator", reason="import",
                                       versions={sn: nb.version, refnot.study_number: refnot.version + 7})
    assert len(web.store.trial_journeys("NB-NK-2026")[0].body) == body_before
    # The statistician may export but not write patients' records.
    with pytest.raises(AccessError):
        import_record_odm(ctx, _who(web.store, "statistician"), "NB-NK-2026", data, reason="import")


def test_command_line_export_and_import(web: WebApp, tmp_path: Path) -> None:
    _record_more(web)
    url = str(web.store.engine.url)
    runner = CliRunner()
    out = tmp_path / "record.xml"
    result = runner.invoke(app, ["odm", "export", "--trial", "NB-NK-2026", "--by", "statistician",
                                 "--out", str(out), "--database", url])
    assert result.exit_code == 0, result.output
    assert check_odm(out.read_bytes()) == []
    result = runner.invoke(app, ["import", "odm", str(out), "--trial", "NB-NK-2026", "--by", "investigator",
                                 "--reason", "re-import", "--database", url])
    assert result.exit_code == 0, result.output
    assert "imported 0 record(s) for 0 patient(s); 14 already stored" in result.output
    result = runner.invoke(app, ["import", "odm", str(out), "--trial", "NB-NK-2026", "--database", url])
    assert result.exit_code == 2


def test_the_round_trip_into_postgresql(web: WebApp, postgres_url: str) -> None:
    """From the SQLite demo database into a freshly seeded PostgreSQL one, and back out equal;
    a conflict half-way through the store's transaction leaves nothing written there too."""
    ctx = _record_more(web)
    data = export_record_odm(ctx, _who(web.store, "statistician"), "NB-NK-2026", created=CREATED)
    pg = WebApp(postgres_url)
    try:
        target = Services.open(pg.store)
        summary = import_record_odm(target, _who(pg.store, "investigator"), "NB-NK-2026", data,
                                    reason="records from the SQLite site")
        assert (summary.added, summary.already_stored) == (4, 10)
        again = export_record_odm(target, _who(pg.store, "statistician"), "NB-NK-2026", created=CREATED)
        assert again == data
        sn = _nb(pg.store)
        nb, refnot = pg.store.trial_journeys("NB-NK-2026")[0], pg.store.trial_journeys("REFNOT-R2")[0]
        before = (len(nb.body), pg.store.audit_entries().total)
        records = {sn: {"body": [{"on": "2026-11-19", "weight_kg": 21.1}]},
                   refnot.study_number: {"body": [{"on": "2026-11-19", "weight_kg": 81.0}]}}
        with pytest.raises(ConflictError):
            pg.store.add_imported_records(records, actor="investigator", reason="import",
                                          versions={sn: nb.version, refnot.study_number: refnot.version + 7})
        assert (len(pg.store.trial_journeys("NB-NK-2026")[0].body), pg.store.audit_entries().total) == before
    finally:
        pg.store.close()

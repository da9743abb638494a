"""Biomarker samples and results on the record: the store (SQLite and PostgreSQL), the
services (a result becomes the patient's fact where screening reads it), the API, the
pages and the command line.

The demo database's clock stands at 2026-11-21 12:00 UTC; the RuMCeSS demo patient
(RUMCES-0001) is enrolled with day 1 today, the NB-NK-2026 patient (NBNK-0001) too.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from trialdesk.errors import ConflictError, FactError, ScheduleError
from trialdesk.facts.biomarkers import Gd2Threshold
from trialdesk.facts.normalise import normalise
from trialdesk.facts.patient import PatientRecord
from trialdesk.protocol.model import LookBack

RU = "RUMCES-0001"
NB = "NBNK-0001"
NOW = datetime(2026, 11, 21, 12, 0)


def _ctx(web: Any, username: str = "coordinator") -> tuple[Any, Any]:
    from trialdesk.services.demo import _who

    return web.app.state.ctx, _who(web.store, username)


def _facts(web: Any, study: str, gd2: Gd2Threshold | None = None) -> Any:
    record = PatientRecord.model_validate(web.store.patient(study).record)
    return normalise(record, trial_id=web.store.patient(study).trial_id,
                     lookback=LookBack(default_days=30, source="test"), as_of=NOW, gd2=gd2)


def _first_sampling(web: Any, study: str, wanted: str = "") -> str:
    from trialdesk.services import biomarkers

    ctx, who = _ctx(web)
    page = biomarkers.calendar_page(ctx, who, study)
    return str(next(e["id"] for e in page["calendar"]["events"]
                    if e["kind"] == "sampling" and wanted in e["name"]))


def test_an_il6_result_becomes_the_patients_fact_and_a_correction_replaces_it(web: Any) -> None:
    from trialdesk.services import biomarkers

    ctx, who = _ctx(web)
    event = _first_sampling(web, RU, "IL-6")
    before = web.store.patient(RU).version
    sample = biomarkers.record_sample(ctx, who, RU, event_id=event, sample_id="RU-0001-S1",
                                      collected_at=datetime(2026, 11, 21, 9, 5),
                                      processing="centrifuged", storage="-80 C box 3")
    assert sample["specimen"] == "serum"  # the protocol's specimen for this event
    # 450 ng/L = 450 pg/mL (1 ng/L = 1 pg/mL): entered as typed, read in the fact's unit.
    saved = biomarkers.record_result(ctx, who, "RU-0001-S1", fact="il6", value="450",
                                     unit="ng/L", method="ELISA")
    assert saved["results"][0]["canonical_value"] == 450.0
    assert saved["results"][0]["code"] == "LOINC 26881-3"
    facts = _facts(web, RU)
    assert facts["il6"].value == 450.0 and facts["il6"].observed == date(2026, 11, 21)
    assert web.store.patient(RU).version == before + 1
    # A second first result for the same fact is refused: it must be a correction.
    with pytest.raises(ConflictError) as err:
        biomarkers.record_result(ctx, who, "RU-0001-S1", fact="il6", value="1", unit="pg/mL")
    assert err.value.where == "fact"
    with pytest.raises(FactError) as no_reason:
        biomarkers.record_result(ctx, who, "RU-0001-S1", fact="il6", value="45", unit="pg/mL",
                                 corrects=1)
    assert no_reason.value.where == "reason"
    fixed = biomarkers.record_result(ctx, who, "RU-0001-S1", fact="il6", value="45",
                                     unit="pg/mL", corrects=1, reason="transcription error")
    assert [r["value"] for r in fixed["results"]] == [45.0]
    assert [r["value"] for r in fixed["corrections"]] == [450.0]
    record = web.store.patient(RU).record
    assert [o["value"] for o in record["observations"] if o["name"] == "il6"] == [45.0]
    assert _facts(web, RU)["il6"].value == 45.0
    with pytest.raises(ConflictError):  # revision 1 is no longer the latest
        biomarkers.record_result(ctx, who, "RU-0001-S1", fact="il6", value="40",
                                 unit="pg/mL", corrects=1, reason="again")
    trail = web.store.audit_entries(record_ids=[RU], limit=200).items
    actions = [(e.record_type, e.action) for e in trail]
    assert ("biomarker_sample", "create") in actions
    assert ("biomarker_result", "result") in actions
    correction = next(e for e in trail if (e.record_type, e.action) == ("biomarker_result",
                                                                          "correct"))
    assert correction.reason == "transcription error"
    assert correction.changes["$.sample.RU-0001-S1.il6.value"] == {"old": 450.0, "new": 45.0}
    assert web.store.verify_audit().ok


@pytest.mark.parametrize(("change", "where", "words"), [
    ({"value": "abc"}, "value", "not a number"),
    ({"value": "2e7"}, "value", "impossible"),
    ({"unit": "mmol/L"}, "unit", "choose a unit"),
    ({"fact": "septic_shock"}, "fact", "not a laboratory value"),
    ({"reported_at": datetime(2026, 11, 21, 8, 0)}, "reported_at", "before the sample"),
    ({"reported_at": datetime(2026, 11, 22, 8, 0)}, "reported_at", "in the future"),
])
def test_bad_results_are_refused_naming_the_field_and_nothing_is_stored(
        web: Any, change: dict[str, Any], where: str, words: str) -> None:
    from trialdesk.services import biomarkers

    ctx, who = _ctx(web)
    biomarkers.record_sample(ctx, who, RU, event_id=_first_sampling(web, RU, "IL-6"),
                             sample_id="S-1", collected_at=datetime(2026, 11, 21, 9, 0))
    version = web.store.patient(RU).version
    args: dict[str, Any] = {"fact": "il6", "value": "12", "unit": "pg/mL", **change}
    with pytest.raises(FactError) as err:
        biomarkers.record_result(ctx, who, "S-1", **args)
    assert err.value.where == where and words in err.value.reason
    assert web.store.biomarker_sample("S-1").results == ()
    assert web.store.patient(RU).version == version


def test_samples_are_refused_off_the_sampling_events_and_in_the_future(web: Any) -> None:
    from trialdesk.services import biomarkers

    ctx, who = _ctx(web)
    event = _first_sampling(web, RU)
    with pytest.raises(ScheduleError) as not_sampling:
        biomarkers.record_sample(ctx, who, RU, event_id="28-day-mortality.d28", sample_id="S-2",
                                 collected_at=datetime(2026, 11, 21, 9))
    assert not_sampling.value.where == "event_id"
    with pytest.raises(FactError) as future:
        biomarkers.record_sample(ctx, who, RU, event_id=event, sample_id="S-2",
                                 collected_at=datetime(2026, 11, 22, 9))
    assert future.value.where == "collected_at"
    biomarkers.record_sample(ctx, who, RU, event_id=event, sample_id="S-2",
                             collected_at=datetime(2026, 11, 21, 9))
    with pytest.raises(ConflictError) as twice:
        biomarkers.record_sample(ctx, who, RU, event_id=event, sample_id="S-2",
                                 collected_at=datetime(2026, 11, 21, 9))
    assert twice.value.where == "sample_id"
    # The first sample recorded the sampling event done on the calendar, at collection.
    done = next(e for e in biomarkers.calendar_page(ctx, who, RU)["calendar"]["events"]
                if e["id"] == event)
    assert done["status"] == "done"
    with pytest.raises(ScheduleError) as before_consent:  # consent signed 2026-11-21
        biomarkers.record_sample(ctx, who, RU, event_id=_first_sampling(web, RU, "oxygen"),
                                 sample_id="S-4", collected_at=datetime(2026, 11, 20, 9))
    assert before_consent.value.where == "collected_at"


def test_gd2_from_two_lesions_gives_the_status_by_the_threshold_and_heterogeneity(web: Any) -> None:
    """Seed 001: GD2 per lesion and how it was confirmed. With a threshold of ≥ 50% by
    immunohistochemistry (a test threshold, not a clinical one), 60% in the primary and
    20% in a liver lesion on the same day are discordant and heterogeneous; 50% exactly
    is positive (≥)."""
    from trialdesk.services import biomarkers

    ctx, who = _ctx(web)
    event = _first_sampling(web, NB, "GD2")
    rule = Gd2Threshold("ihc", 50.0)
    for sample_id, site, percent in (("NB-GD2-1", "primary, left adrenal", "50"),
                                     ("NB-GD2-2", "liver", "20")):
        biomarkers.record_sample(ctx, who, NB, event_id=event, sample_id=sample_id,
                                 collected_at=datetime(2026, 11, 20, 10, 0))
        if site == "liver":
            facts = _facts(web, NB, rule)
            assert facts["gd2_status"].value == "positive"
            assert facts["gd2_heterogeneous"].value is False
        with pytest.raises(FactError) as no_site:
            biomarkers.record_result(ctx, who, sample_id, fact="gd2_ihc_percent", value=percent,
                                     unit="%")
        assert no_site.value.where == "site"
        biomarkers.record_result(ctx, who, sample_id, fact="gd2_ihc_percent", value=percent,
                                 unit="%", site=site)
    facts = _facts(web, NB, rule)
    assert facts["gd2_status"].value == "discordant"
    assert facts["gd2_heterogeneous"].value is True
    specimens = web.store.patient(NB).record["gd2_specimens"]
    assert {(s["site"], s["percent_positive"], s["specimen_id"]) for s in specimens} == {
        ("primary, left adrenal", 50.0, "NB-GD2-1"), ("liver", 20.0, "NB-GD2-2")}


def test_genotype_and_adcc_results_are_a_finding_and_a_cytotoxicity_assay(web: Any) -> None:
    from trialdesk.services import biomarkers

    ctx, who = _ctx(web)
    biomarkers.record_sample(ctx, who, NB, event_id=_first_sampling(web, NB, "FCGR"),
                             sample_id="NB-DNA-1", collected_at=datetime(2026, 11, 20, 10))
    with pytest.raises(FactError) as bad:
        biomarkers.record_result(ctx, who, "NB-DNA-1", fact="fcgr3a_genotype", value="V/X")
    assert bad.value.where == "value" and "V/V, V/F, F/F" in bad.value.reason
    biomarkers.record_result(ctx, who, "NB-DNA-1", fact="fcgr3a_genotype", value="V/F")
    assert _facts(web, NB)["fcgr3a_genotype"].value == "V/F"
    biomarkers.record_sample(ctx, who, NB, event_id=_first_sampling(web, NB, "ADCC"),
                             sample_id="NB-PB-1", collected_at=datetime(2026, 11, 21, 8))
    with pytest.raises(FactError) as ratio:
        biomarkers.record_result(ctx, who, "NB-PB-1", fact="adcc_lysis", value="35", unit="%")
    assert ratio.value.where == "effector_target_ratio"
    biomarkers.record_result(ctx, who, "NB-PB-1", fact="adcc_lysis", value="35", unit="%",
                             effector_target_ratio="10:1")
    fact = _facts(web, NB)["adcc_lysis"]
    assert fact.value == 35.0 and "E:T 10:1" in fact.source


def test_a_sample_is_corrected_under_its_version(web: Any) -> None:
    from trialdesk.services import biomarkers

    ctx, who = _ctx(web)
    biomarkers.record_sample(ctx, who, RU, event_id=_first_sampling(web, RU), sample_id="S-3",
                             collected_at=datetime(2026, 11, 21, 9), storage="box 1")
    moved = biomarkers.correct_sample(ctx, who, "S-3", version=1, storage="box 2",
                                      reason="moved to another freezer")
    assert moved["storage"] == "box 2" and moved["version"] == 2
    with pytest.raises(ConflictError):
        biomarkers.correct_sample(ctx, who, "S-3", version=1, storage="box 3", reason="stale")


def test_the_store_keeps_revisions_on_both_backends(database_url: str) -> None:
    from trialdesk.store import Store

    store = Store.open(database_url)
    store.import_protocol({"id": "T1", "version": "1.0"}, source="t", actor="system",
                          reason="import")
    store.add_patient("T1-0001", "T1", "Moscow", {"patient_id": "T1-0001",
                                                 "birth_date": "2000-01-01"}, {},
                      actor="system", reason="patient")
    store.add_biomarker_sample("T1-0001", {"sample_id": "A", "event_id": "s1.d1",
                                           "collected_at": "2026-11-21T09:00"},
                               actor="nurse", reason="taken")

    def change(record: dict[str, Any], old: Any) -> dict[str, Any]:
        return {**record, "note_count": (record.get("note_count") or 0) + 1}

    store.add_biomarker_result("A", {"fact": "il6", "value": 1.0}, corrects=None,
                               patient_change=change, actor="lab", reason="result")
    store.add_biomarker_result("A", {"fact": "il6", "value": 2.0}, corrects=1,
                               patient_change=change, actor="lab", reason="corrected")
    with pytest.raises(ConflictError):
        store.add_biomarker_result("A", {"fact": "il6", "value": 3.0}, corrects=1,
                                   patient_change=change, actor="lab", reason="stale")
    row = store.biomarker_sample("A")
    assert row is not None
    assert [(r.revision, r.document["value"]) for r in row.results] == [(1, 1.0), (2, 2.0)]
    assert row.current()["il6"].revision == 2
    assert store.patient("T1-0001").record["note_count"] == 2  # the stale one changed nothing
    assert store.verify_audit().ok
    store.close()


def test_api_records_a_sample_and_a_result_and_names_refused_fields(web: Any) -> None:
    c = web.client("coordinator")
    h = {"x-csrf-token": c.csrf}
    event = _first_sampling(web, RU, "IL-6")
    r = c.post(f"/api/patients/{RU}/samples", headers=h,
               json={"event_id": event, "sample_id": "API-1", "collected_at": "2026-11-21T09:30"})
    assert r.status_code == 201, r.text
    bad = c.post("/api/samples/API-1/results", headers=h,
                 json={"fact": "crp", "value": 4000, "unit": "mg/L"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "$.body.value"
    ok = c.post("/api/samples/API-1/results", headers=h,
                json={"fact": "crp", "value": 12.5, "unit": "mg/L"})
    assert ok.status_code == 201 and ok.json()["results"][0]["value"] == 12.5
    listed = c.get(f"/api/patients/{RU}/samples").json()["items"]
    assert [s["sample_id"] for s in listed] == ["API-1"]
    assert c.get("/api/samples/API-1").json()["results"][0]["fact"] == "crp"
    field = c.get("/api/facts/il6/result-field").json()
    assert field["label"] == "Interleukin-6" and [u["value"] for u in field["units"]] == [
        "pg/mL", "ng/L"]
    pharmacist = web.client("pharmacist")
    refused = pharmacist.post("/api/samples/API-1/results", headers={"x-csrf-token":
                                                                        pharmacist.csrf},
                              json={"fact": "il10", "value": 1, "unit": "pg/mL"})
    assert refused.status_code == 403


def test_calendar_and_forms_show_status_and_errors_by_label(web: Any) -> None:
    c = web.client("coordinator")
    event = _first_sampling(web, RU, "IL-6")
    page = c.get(f"/patients/{RU}/calendar")
    assert "Sample: not taken" in page.text
    assert f"/patients/{RU}/samples/new?event={event}" in page.text
    form = c.get(f"/patients/{RU}/samples/new?event={event}")
    assert form.status_code == 200 and 'value="serum"' in form.text
    bad = c.post(f"/patients/{RU}/samples", data={"csrf_token": c.csrf, "event_id": event,
                                                  "sample_id": "bad id",
                                                  "collected_at": "2026-11-21T09:00"})
    assert bad.status_code == 422 and "Sample identifier" in bad.text
    done = c.post(f"/patients/{RU}/samples", data={"csrf_token": c.csrf, "event_id": event,
                                                   "sample_id": "P-1",
                                                   "collected_at": "2026-11-21T09:00"},
                  follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith(f"#ev-{event}")
    choose = c.get("/samples/P-1/results/new")
    assert "Measured at this sampling event" in choose.text
    typed = c.get("/samples/P-1/results/new?fact=il6")
    assert "Interleukin-6" in typed.text and "ng/L" in typed.text
    wrong = c.post("/samples/P-1/results", data={"csrf_token": c.csrf, "fact": "il6",
                                                 "value": "lots", "unit": "pg/mL"})
    assert wrong.status_code == 422
    assert "<code>Interleukin-6</code>: &#39;lots&#39; is not a number" in wrong.text
    c.post("/samples/P-1/results", data={"csrf_token": c.csrf, "fact": "il6", "value": "88",
                                         "unit": "pg/mL"})
    after = c.get(f"/patients/{RU}/calendar")
    assert "Sample: taken, 1 result(s)" in after.text and "Interleukin-6 88 pg/mL" in after.text


def test_command_line_records_and_lists_on_the_database(web: Any) -> None:
    from typer.testing import CliRunner

    from trialdesk.cli import app

    url = str(web.store.engine.url)
    event = _first_sampling(web, RU, "IL-6")
    run = CliRunner().invoke
    made = run(app, ["sample", "record", RU, "--event", event, "--sample-id", "CLI-1",
                     "--at", "2026-11-21T09:00", "--by", "coordinator", "--database", url])
    assert made.exit_code == 0, made.output
    res = run(app, ["biomarkers", "result", "record", "CLI-1", "--fact", "il6", "--value", "450",
                    "--unit", "pg/mL", "--by", "coordinator", "--database", url])
    assert res.exit_code == 0, res.output
    bad = run(app, ["biomarkers", "result", "record", "CLI-1", "--fact", "il10", "--value", "x",
                    "--by", "coordinator", "--database", url])
    assert bad.exit_code == 1 and "not a number" in bad.output
    refused = run(app, ["sample", "list", RU, "--by", "statistician", "--database", url])
    assert refused.exit_code == 1
    listed = run(app, ["sample", "list", RU, "--by", "monitor", "--database", url])
    assert listed.exit_code == 0 and "CLI-1" in listed.output and "il6 450" in listed.output

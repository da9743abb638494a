"""Biomarker analyses from the stored record: RuMCeSS IL-6 by arm over study days from
samples and results entered through the services, checked against scipy and statsmodels
run directly on the same values; missing values counted; the outcomes page, its API and
the DSMB report carry the section.

Five RuMCeSS patients (the demo's and four more from the example file, randomised from the
demo's sealed list): IL-6 on study days 1 and 2, one patient without a day-2 value. The
values are test data, not clinical ones.
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest

RU = "RUMCES-0001"
# study number -> IL-6 (pg/mL) on day 1 and day 2 (None: no sample that day)
IL6 = {"RUMCES-0001": (820.0, 610.0), "RUMCES-0002": (1450.0, 400.0),
       "RUMCES-0003": (990.0, 210.0), "RUMCES-0004": (1210.0, None),
       "RUMCES-0005": (760.0, 690.0)}


def _enrol_more(web: Any, n: int) -> None:
    from trialdesk.facts.patient import PatientRecord
    from trialdesk.protocol.load import default_protocol_dir
    from trialdesk.services import journeys, patients
    from trialdesk.services.demo import _who

    ctx = web.app.state.ctx
    coord, inv = _who(web.store, "coordinator"), _who(web.store, "investigator")
    data = json.loads((default_protocol_dir().parent / "examples" / "patients" /
                       "rumcess-eligible.json").read_text(encoding="utf-8"))
    for _ in range(n):
        row = patients.create_patient(ctx, coord, trial_id="RuMCeSS", site="Moscow",
                                      record=PatientRecord.model_validate(data), identifiers={},
                                      reason="referred")
        journeys.record_consent(ctx, coord, row.study_number, version="1.0",
                                signed_on=date(2026, 11, 21), signed_by="legal_representative",
                                assent=None, reason="consent")
        sc = patients.screen_patient(ctx, inv, row.study_number,
                                     as_of=datetime(2026, 11, 21, 12), reason="screening")
        journeys.enrol_patient(ctx, inv, row.study_number, screening_id=sc["id"],
                               password="investigator-demo", reason="enrolment",
                               start=date(2026, 11, 21))


@pytest.fixture
def trial(web: Any) -> Any:
    from trialdesk.services import biomarkers
    from trialdesk.services.demo import _who

    _enrol_more(web, 4)
    ctx, who = web.app.state.ctx, _who(web.store, "coordinator")
    for day in (1, 2):
        for number, values in IL6.items():
            if values[day - 1] is None:
                continue
            event = next(e["id"] for e in biomarkers.calendar_page(ctx, who, number)
                         ["calendar"]["events"] if e["kind"] == "sampling" and "IL-6" in e["name"])
            sample = f"{number}-D{day}"
            biomarkers.record_sample(ctx, who, number, event_id=event, sample_id=sample,
                                     collected_at=datetime(2026, 11, 20 + day, 8, 0))
            biomarkers.record_result(ctx, who, sample, fact="il6", value=values[day - 1],
                                     unit="pg/mL")
        web.clock.advance(days=1)
    return web


def _arms(web: Any) -> dict[str, str]:
    return {n: str(web.store.journey(n).arm) for n in IL6}


def test_il6_by_arm_matches_scipy_and_statsmodels_and_counts_the_missing(trial: Any) -> None:
    import statsmodels.formula.api as smf
    from scipy.stats import mannwhitneyu

    from trialdesk.services.biomarkers import outcomes_section
    from trialdesk.services.demo import _who

    section = outcomes_section(trial.app.state.ctx, _who(trial.store, "statistician"),
                               "RuMCeSS")
    by_title = {t["title"]: t for t in section["tables"]}
    arms = _arms(trial)
    assert sorted(set(arms.values())) == ["MSC", "SOC"]
    summary = pd.DataFrame(by_title["il6 by arm and study day (pg/mL)"]["rows"])
    missing_arm = arms["RUMCES-0004"]
    day2 = summary[(summary["day"] == 2) & (summary["arm"] == missing_arm)].iloc[0]
    assert day2["missing"] == 1  # RUMCES-0004 has no day-2 value: counted, not imputed
    assert day2["n"] == sum(1 for n, a in arms.items() if a == missing_arm) - 1
    tests = pd.DataFrame(by_title["il6: Mann–Whitney U per day"]["rows"])
    for day in (1, 2):
        x = [v[day - 1] for n, v in IL6.items() if arms[n] == "MSC" and v[day - 1] is not None]
        y = [v[day - 1] for n, v in IL6.items() if arms[n] == "SOC" and v[day - 1] is not None]
        direct = mannwhitneyu(x, y, alternative="two-sided")
        row = tests[tests["day"] == day].iloc[0]
        assert row["U"] == pytest.approx(direct.statistic)
        assert row["p"] == pytest.approx(direct.pvalue, abs=1e-4)
    long = pd.DataFrame([{"patient_id": n, "arm": arms[n], "day": d, "value": v[d - 1]}
                         for n, v in IL6.items() for d in (1, 2) if v[d - 1] is not None])
    fit = smf.mixedlm("value ~ C(arm) * day", long, groups=long["patient_id"]).fit(reml=True)
    mixed = pd.DataFrame(by_title["il6: linear mixed model value ~ C(arm) * day"]["rows"])
    for term, coef in fit.fe_params.items():
        assert mixed.set_index("term").loc[term, "coef"] == pytest.approx(coef, rel=1e-3)
    assert any("organ-support episodes not recorded" in n for n in section["notes"])


def test_outcomes_page_api_and_dsmb_report_carry_the_biomarker_section(trial: Any) -> None:
    from pypdf import PdfReader

    c = trial.client("statistician")
    page = c.get("/trials/RuMCeSS/outcomes")
    assert page.status_code == 200
    assert "Biomarkers" in page.text and "il6: Mann–Whitney U per day" in page.text
    api = c.get("/api/trials/RuMCeSS/outcomes").json()
    assert any(t["title"].startswith("il6 by arm") for t in api["biomarkers"]["tables"])
    pdf = c.get("/api/trials/RuMCeSS/reports/dsmb.pdf")
    assert pdf.status_code == 200
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Biomarkers 1. il6 by arm and study day" in text
    assert "Biomarkers: missing data" in text
    from trialdesk.outcomes.export_fhir import unresolved_references

    bundle = c.get("/api/trials/RuMCeSS/exports/fhir.json").json()
    il6 = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] ==
           "Observation" and any(x.get("code") == "26881-3" for x in
                                 e["resource"]["code"].get("coding", []))]
    assert len(il6) == 9  # five day-1 and four day-2 results
    assert unresolved_references(bundle) == []
    first = next(o for o in il6 if o["identifier"][0]["value"] == "RUMCES-0002-D1")
    assert first["valueQuantity"] == {"value": 1450.0, "unit": "pg/mL"}
    assert first["effectiveDateTime"] == "2026-11-21T08:00:00Z"
    from typer.testing import CliRunner

    from trialdesk.cli import app

    url = str(trial.store.engine.url)
    printed = CliRunner().invoke(app, ["biomarkers", "stored", "--trial", "RuMCeSS", "--by",
                                       "statistician", "--database", url, "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output)["tables"][0]["title"].startswith("il6 by arm")
    coordinator = trial.client("coordinator")
    assert coordinator.get("/trials/RuMCeSS/outcomes").status_code == 403


def test_biomarker_rows_use_the_current_revision_and_study_days() -> None:
    from trialdesk.services.biomarkers import biomarker_rows
    from trialdesk.store.biomarkers import ResultRow, SampleRow

    def result(rev: int, fact: str, value: Any, unit: str | None) -> ResultRow:
        return ResultRow(rev, "S", fact, rev, {"fact": fact, "canonical_value": value,
                                               "canonical_unit": unit}, "", "")

    sample = SampleRow(1, "S", "P1", "T", "Moscow", "s1.d1", "2026-11-20T08:00", {}, "", "", "",
                       "", 1, (result(1, "pao2", 80.0, "mmHg"), result(1, "fio2", 40.0, "%"),
                               result(1, "il6", 10.0, "pg/mL"), result(2, "il6", 12.0, "pg/mL"),
                               result(1, "fcgr3a_genotype", "V/F", None)))
    rows, notes = biomarker_rows([sample], {"P1": date(2026, 11, 21)})
    got = {(r["biomarker"], r["day"]): r["value"] for r in rows}
    # The day before enrolment is day -1; PaO2 80 mmHg on FiO2 0.40 gives 200 (issue 17).
    assert got[("il6", -1)] == 12.0 and got[("pao2_fio2", -1)] == 200.0
    assert got[("fcgr3a_genotype", None)] == "V/F" and notes == []


def test_a_genotype_observation_has_the_genomics_shape() -> None:
    from trialdesk.outcomes.fhir_biomarkers import GENOTYPE_PROFILE, biomarker_observations

    obs = biomarker_observations("NB-NK-2026", [
        {"patient_id": "NBNK-0001", "sample_id": "DNA-1", "fact": "fcgr3a_genotype",
         "value": "V/F", "unit": None, "collected_at": "2026-11-20T10:00", "method": "PCR"},
        {"patient_id": "NBNK-0001", "sample_id": "B-1", "fact": "gd2_ihc_percent",
         "value": 60.0, "unit": "%", "collected_at": "2026-11-20T10:00",
         "site": "primary, left adrenal"}])
    genotype = obs[0].model_dump(mode="json", exclude_none=True)
    assert genotype["meta"]["profile"] == [GENOTYPE_PROFILE]
    assert genotype["valueCodeableConcept"]["text"] == "FCGR3A V/F"
    assert genotype["component"][0]["code"]["coding"][0]["code"] == "48018-6"
    gd2 = obs[1].model_dump(mode="json", exclude_none=True)
    assert "coding" not in gd2["code"]  # no LOINC term fits GD2 % (the dictionary has none)
    assert gd2["bodySite"]["text"] == "primary, left adrenal"

"""Cell products in the DSMB report: the tables from a hand-built RuMCeSS product tree with
known answers, then the stored chain (release failure, exceptional release, a refused and an
accepted bedside check, an MSC infusion timed from septic-shock onset) through the service
into the PDF (text read back with pypdf, as tests/test_report.py does).

The MSC dose range 1–2 ×10⁶/kg and the 10-hour deadline are seed 004's (RuMCeSS registry
record); release limits in the stored chain are the TEST FIXTURE values of
tests/test_cellproduct.py, not clinical limits.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader

from test_cellproduct_store import Lab, _msc_patient
from test_export_fhir import _schema_errors
from trialdesk.cellproduct.identifier import Din, ProductCode, ProductId
from trialdesk.cellproduct.product import Counts, Donor, collect, derive
from trialdesk.cellproduct.release import Signature, TestResult, decide, exceptional_release
from trialdesk.outcomes.export_fhir import full_url, unresolved_references
from trialdesk.outcomes.products import (
    UNASSIGNED,
    BedsideCheck,
    Infusion,
    TrialProducts,
    deadline_compliance,
    deadline_table,
    exceptional_table,
    infusions_table,
    products_table,
    refusals_table,
    release_failures_table,
)
from trialdesk.protocol.load import default_protocol_dir, load_protocol
from trialdesk.services import cellproduct as cp
from trialdesk.services import journeys
from trialdesk.services import outcomes as so

RUMCESS = load_protocol(default_protocol_dir() / "rumcess.yaml").protocol
ONSET = datetime(2026, 3, 1, 6, 0)  # septic-shock onset; seed 004: MSC within 10 h
LAB = Signature("lab-head", "lab_responsible", datetime(2026, 3, 3, 9), "release")
INV = Signature("dr-inv", "investigator", datetime(2026, 3, 3, 9, 30), "co-sign")


def _hand_built(patients: tuple[str, str, str] = ("P1", "P2", "P3")) -> TrialProducts:
    """One third-party MSC donation → lot (not released, then released by exceptional
    release) → three aliquots → a dose each for P1, P2, P3, infused 4, 12 and 6 h after
    onset at 1.5, 2.5 ×10⁶/kg and an unknown dose; one refused check of P2."""
    donation = collect(ProductId(Din.make("A9999", 2026, 7), ProductCode("S0101", "A")),
                       spec_id="msc-donation", trial_id="RuMCeSS",
                       donor=Donor("MSC-BANK-17", "third_party"), recipient=None,
                       collected_at=datetime(2026, 2, 1, 9), procedure="bone marrow",
                       operator="lab1")
    lot = derive(donation, "msc-lot", stage="processing", code=ProductCode("S0102", "A"),
                 prepared_at=datetime(2026, 2, 2, 9), operator="lab1")
    spec = RUMCESS.product("msc-lot")
    # The shipped RuMCeSS limits are not set (not in seed 004): every test is unknown.
    results = [TestResult("sterility", "no growth", datetime(2026, 3, 2, 9), "lab1")]
    refused = decide(lot, spec, results, LAB)
    exceptional = exceptional_release(lot, spec, results, "no other treatment of refractory "
                                      "septic shock", [LAB, INV])
    products = [donation, lot]
    infusions = []
    for index, (patient, hours, per_kg) in enumerate(
            zip(patients, (4, 12, 6), (1.5e6, 2.5e6, None), strict=True)):
        aliquot = derive(lot, "msc-aliquot", stage="aliquot", code=ProductCode("S0103", "A"),
                         division=index, prepared_at=datetime(2026, 2, 3, 9), operator="lab1")
        dose = derive(aliquot, "msc-dose", stage="dose", code=ProductCode("S0104", "A"),
                      recipient=patient, prepared_at=ONSET, operator="lab1",
                      counts=Counts(viable_cells=3e7))
        products += [aliquot, dose]
        infusions.append(Infusion(dose.key, patient, "msc-infusion", ONSET + timedelta(hours=hours),
                                  per_kg, deadline=ONSET + timedelta(hours=10), onset=ONSET,
                                  anchor="septic_shock_onset"))
    checks = [BedsideCheck(patients[1], "msc-infusion", products[-3].key, ONSET + timedelta(hours=11),
                           False, ("nurse1", "nurse1"),
                           (("one_person", "two different people must verify at the bedside "
                                           "(1 given)"),)),
              BedsideCheck(patients[0], "msc-infusion", products[3].key, ONSET + timedelta(hours=4),
                           True, ("nurse1", "dr-inv"))]
    return TrialProducts("RuMCeSS", {s.id: s for s in RUMCESS.products},
                         {p.key: p for p in products}, (refused, exceptional), tuple(checks),
                         tuple(infusions))


def test_products_per_patient() -> None:
    table = products_table(_hand_built()).set_index("patient")
    assert list(table.index) == ["P1", "P2", "P3", UNASSIGNED, "all"]
    assert table.loc["P1"].tolist() == [0, 1, 0, 0, 0, 0, 1]
    # donation + lot + 3 aliquots are bank stock; the lot's latest decision is exceptional
    assert table.loc[UNASSIGNED].tolist() == [1, 4, 1, 1, 0, 0, 0]
    assert table.loc["all"].tolist() == [1, 7, 1, 1, 0, 0, 3]


def test_release_failures_and_exceptional_release() -> None:
    data = _hand_built()
    failures = release_failures_table(data)
    assert failures["decision"].tolist() == ["not released", "exceptional release"]
    # 5 MSC lot tests; sterility met, the other 4 unknown (no limit set in the protocol)
    first = failures["failed tests"].iloc[0]
    assert first.count("unknown") == 4 and "Sterility" not in first
    assert "Viability: unknown (no result, limit not set (%) [unconfirmed]; the protocol sets " \
           "no limit for this test)" in first
    exceptional = exceptional_table(data).iloc[0]
    assert exceptional["justification"] == "no other treatment of refractory septic shock"
    assert exceptional["lab's responsible person"] == "lab-head (2026-03-03 09:00)"
    assert exceptional["investigator"] == "dr-inv (2026-03-03 09:30)"
    assert exceptional["patient"] == UNASSIGNED


def test_refusals_infusions_and_deadline() -> None:
    data = _hand_built()
    refusals = refusals_table(data)
    assert len(refusals) == 1  # the accepted check is not listed
    assert refusals.iloc[0]["reasons"].startswith("one_person: two different people")
    infusions = infusions_table(data).set_index("patient")
    # seed 004: 1–2 ×10⁶/kg; 1.5 in range, 2.5 above, no count = unknown
    assert infusions["in range"].tolist() == ["yes", "unknown", "no"]  # by start: 4 h, 6 h, 12 h
    assert infusions.loc["P1", "protocol range"] == "1e+06–2e+06 cells/kg"
    assert infusions.loc["P2", ["h from onset", "deadline met"]].tolist() == ["12.0", "no"]
    [c] = deadline_compliance(data)
    # within 10 h: P1 (4 h) and P3 (6 h), not P2 (12 h); median of 4, 6, 12 = 6
    assert (c.met, c.total, c.within_hours, c.median) == (2, 3, (10.0,), 6.0)
    row = deadline_table(data).iloc[0]
    assert row["infusions within deadline"] == "2 / 3 (67%)"
    assert row["h from onset, median (range)"] == "6.0 (4.0–12.0)"
    assert row["timed from"] == "septic shock onset" and row["deadline"] == "within 10 h"


def test_stored_chain_in_the_dsmb_report(tmp_path: Path) -> None:
    lab = Lab(f"sqlite:///{tmp_path / 'td.db'}", tmp_path, start="2026-11-21T12:30:00+00:00",
              rumcess=True)
    patient = _msc_patient(lab)
    pharm = lab.who("pharmacist")
    event = next(e for e in journeys.calendar_page(lab.ctx, lab.who("investigator"),
                                                   patient)["calendar"]["events"]
                 if e["cell_product"])
    donation = cp.record_collection(
        lab.ctx, pharm, trial_id="RuMCeSS", spec_id="msc-donation", facility="A9999",
        code="S0101A", collected_at=datetime(2026, 11, 1, 9), procedure="bone marrow",
        donor="MSC-BANK-17", reason="bank donation")["id"]
    lot = cp.derive_product(lab.ctx, pharm, donation, spec_id="msc-lot", code="S0102A",
                            prepared_at=datetime(2026, 11, 2, 9), reason="expanded")["id"]
    # viability 50 % against the TEST FIXTURE minimum 70 %: not released
    for test_id, value, unit in [("viability", 50, "%"), ("msc_identity", 97, "% of viable cells"),
                                 ("sterility", "no growth", None), ("endotoxin", 0.2, "EU/mL"),
                                 ("mycoplasma", "negative", None)]:
        cp.record_test_result(lab.ctx, pharm, lot, test_id=test_id, value=value, unit=unit,
                              tested_at=datetime(2026, 11, 3, 9), reason="QC")
    assert not cp.release_product(lab.ctx, pharm, lot, password="pharmacist-demo",
                                  reason="release")["released"]
    cp.exceptional_release(lab.ctx, pharm, "pharmacist-demo", lab.who("investigator"),
                           "investigator-demo", lot, justification="refractory shock, no "
                           "other lot available", reason="exceptional release")
    aliquot = cp.derive_product(lab.ctx, pharm, lot, spec_id="msc-aliquot", code="S0103A",
                                division=0, prepared_at=datetime(2026, 11, 4, 9),
                                reason="banked")["id"]
    weight = lab.weight(patient)
    dose = cp.derive_product(lab.ctx, pharm, aliquot, spec_id="msc-dose", code="S0104A",
                             recipient=patient, prepared_at=datetime(2026, 11, 21, 13),
                             counts=Counts(viable_cells=1.5e6 * weight), reason="thawed")["id"]
    row = lab.store.cell_product(dose)
    assert row is not None
    cp.hand_over(lab.ctx, pharm, dose, expected_version=row.version, to="coordinator",
                 location="ICU 2", at=datetime(2026, 11, 21, 13, 10), temperature_c=21.5,
                 condition="intact", reason="to the ICU")
    lab.at(datetime(2026, 11, 21, 13, 30))
    assert not lab.verify(dose, event["id"], patient=patient, second="coordinator")["accepted"]
    lab.at(datetime(2026, 11, 21, 14, 0))  # onset 06:00 (the patient file): 8 h later
    checked = lab.verify(dose, event["id"], patient=patient)
    cp.record_infusion(lab.ctx, lab.who("coordinator"), patient, verification=checked["id"],
                       start=datetime(2026, 11, 21, 14, 0), end=None, volume_ml=20,
                       reason="infused")

    data = so.trial_products(lab.ctx, "RuMCeSS")
    assert data is not None
    assert len(data.products) == 4 and len(data.infusions) == 1
    [infusion] = data.infusions
    assert infusion.onset == datetime(2026, 11, 21, 6, 0)
    assert infusion.deadline == datetime(2026, 11, 21, 16, 0) and infusion.deadline_met
    assert infusion.cells_per_kg == pytest.approx(1.5e6)
    assert [c.accepted for c in data.checks] == [False, True]
    assert len(data.decisions) == 2

    pdf = so.dsmb_pdf(lab.ctx, lab.who("statistician"), "RuMCeSS")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    for needle in (
        "11a. Cell products per patient", f"{patient} 0 1 0 0 0 0 1",
        f"{UNASSIGNED} 1 2 1 1 0 0 0",
        "11b. Release failures", "Viability: not met (50 %", "exceptional release",
        "11c. Exceptional releases", "refractory shock, no other lot available",
        "pharmacist (2026-11-21", "investigator (2026-11-21",
        "11d. Refused bedside verifications", "one_person:",
        "11e. Cell-product infusions", "1.5e+06", "1e+06–2e+06 cells/kg", "8.0 yes",
        "11f. Timed infusions: deadline compliance", "1 / 1 (100%)", "8.0 (8.0–8.0)",
    ):
        assert needle in text, needle


    # the same stored chain in the FHIR R5 Bundle: valid, every reference resolving
    bundle = json.loads(so.fhir_json(lab.ctx, lab.who("statistician"), "RuMCeSS"))
    assert _schema_errors(bundle) == [] and unresolved_references(bundle) == []
    resources = [e["resource"] for e in bundle["entry"]]
    products = {r["identifier"][1]["value"]: r for r in resources
                if r["resourceType"] == "BiologicallyDerivedProduct"}
    assert set(products) == set(data.products)
    temperature = [p for p in products[dose]["property"]
                   if p["type"]["coding"][0]["code"] == "storage-temperature"]
    assert temperature[0]["valueQuantity"] == {"value": 21.5, "unit": "°C",
                                               "system": "http://unitsofmeasure.org",
                                               "code": "Cel"}
    # the hand-over to the ICU as Provenance: product, time, giver and new custodian, place
    [moved] = [r for r in resources if r["resourceType"] == "Provenance"]
    urls = {e["resource"]["id"]: e["fullUrl"] for e in bundle["entry"]}
    assert moved["target"][0]["reference"] == urls[products[dose]["id"]]
    assert moved["occurredDateTime"] == "2026-11-21T13:10:00Z"
    assert moved["activity"]["text"] == "hand-over (21.5 °C; received intact)"
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert [(a["type"]["coding"][0]["code"], by_url[a["who"]["reference"]]["identifier"][0]["value"])
            for a in moved["agent"]] == [("performer", "pharmacist"), ("custodian", "coordinator")]
    assert by_url[moved["location"]["reference"]]["name"] == "ICU 2"
    [infusion] = [r for r in resources if r["resourceType"] == "Procedure"]
    assert infusion["subject"]["reference"] == full_url("Patient", f"RuMCeSS-{patient}")
    assert infusion["occurrencePeriod"]["start"] == "2026-11-21T14:00:00Z"


def test_sdtm_exrefid_be_and_relspec(tmp_path: Path) -> None:
    """One NB-NK-2026 NK-cell infusion (course 1 day 7, seed 000) through the services, then
    the SDTM datasets: EXREFID on the NK EX record, the product line in BE and RELSPEC, both
    in define.xml and read back from XPT."""
    import zipfile

    from test_cellproduct_store import _day
    from trialdesk.outcomes.export_sdtm import require_valid, sdtm_datasets
    from trialdesk.outcomes.sdtm_package import check_define, define_xml, read_xpt, to_xpt
    from trialdesk.outcomes.sdtm_products import product_datasets

    lab = Lab(f"sqlite:///{tmp_path / 'td.db'}", tmp_path)
    event = lab.nk_events[0]
    batch = lab.expand(lab.collect())
    dose = lab.thaw(lab.aliquot(batch, 0), _day(event["date"], 8), cells=1.0e7 * lab.weight())
    row = lab.store.cell_product(dose)
    assert row is not None
    cp.hand_over(lab.ctx, lab.who("pharmacist"), dose, expected_version=row.version,
                 to="coordinator", location="ward 3", at=_day(event["date"], 8),
                 temperature_c=20.0, condition="intact", reason="to the ward")
    lab.at(_day(event["date"], 9))
    checked = lab.verify(dose, event["id"])
    cp.record_infusion(lab.ctx, lab.who("coordinator"), lab.patient, verification=checked["id"],
                       start=_day(event["date"], 9), end=_day(event["date"], 10), volume_ml=50,
                       reason="infused")

    stat = lab.who("statistician")
    z = zipfile.ZipFile(io.BytesIO(so.sdtm_zip(lab.ctx, stat, "NB-NK-2026", country="RUS")))
    assert {"be.csv", "relspec.csv", "ex.csv"} <= set(z.namelist())
    data = so.stored_inputs(lab.ctx, stat, "NB-NK-2026", country="RUS")
    products = so.trial_products(lab.ctx, "NB-NK-2026")
    assert products is not None
    datasets = product_datasets("NB-NK-2026", sdtm_datasets(
        "NB-NK-2026", data.events, arm_labels=data.arm_labels, aes=data.aes,
        exposure=data.exposure, measurements=data.measurements,
        protocol=data.compiled.protocol), products)
    require_valid(datasets)
    subject = f"NB-NK-2026-{lab.patient}"
    ex = datasets["EX"]
    nk = ex[(ex["USUBJID"] == subject) & ex["EXREFID"].notna()]
    assert nk["EXREFID"].tolist() == [dose]
    assert nk["EXSTDTC"].tolist() == [event["date"]]
    be = datasets["BE"]
    mine = be[be["USUBJID"] == subject]
    # the demo's collection, then this line: collection, expansion, aliquot, dose, hand-over
    assert mine["BETERM"].tolist() == ["Collecting", "Collecting", "Processing", "Aliquoting",
                                       "Preparing dose", "Transferring"]
    assert mine["BESEQ"].tolist() == [1, 2, 3, 4, 5, 6]
    assert mine["BEREFID"].iloc[-1] == dose
    assert mine["BESTDTC"].iloc[-1] == f"{event['date']}T08:00"
    relspec = datasets["RELSPEC"].set_index("REFID")
    assert relspec.loc[dose, "LEVEL"] == 4  # collection 1, expansion 2, aliquot 3, dose 4
    assert relspec.loc[relspec.loc[dose, "PARENT"], "LEVEL"] == 3
    document = define_xml("NB-NK-2026", datasets, title="t", created=datetime(2026, 12, 1))
    assert check_define(document) == []
    text = document.decode()
    for name in ("BE", "RELSPEC"):
        assert f'OID="IG.{name}"' in text and f'href="{name.lower()}.xpt"' in text
    assert 'OID="IT.EX.EXREFID"' in text and 'OID="IT.BE.BEREFID"' in text
    back, labels = read_xpt(to_xpt("BE", datasets["BE"]))
    assert back["BETERM"].tolist() == datasets["BE"]["BETERM"].tolist()
    assert labels["BETERM"] == "Reported Term for the Biospecimen Event"


def test_command_line_exports_carry_the_products(tmp_path: Path) -> None:
    """`export fhir|sdtm --by` on the stored trial carry the products as the web's do."""
    from typer.testing import CliRunner

    from test_cellproduct_store import _day
    from trialdesk.cli import app

    url = f"sqlite:///{tmp_path / 'td.db'}"
    lab = Lab(url, tmp_path)
    event = lab.nk_events[0]
    dose = lab.thaw(lab.aliquot(lab.expand(lab.collect()), 0), _day(event["date"], 8),
                    cells=1.0e7 * lab.weight())
    runner = CliRunner()
    env = {"TRIALDESK_DATABASE_URL": url}
    common = ["--trial", "NB-NK-2026", "--by", "statistician"]
    result = runner.invoke(app, ["export", "fhir", *common, "--out", str(tmp_path / "fhir")], env=env)
    assert result.exit_code == 0, result.output
    bundle = json.loads((tmp_path / "fhir" / "bundle.json").read_text())
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("BiologicallyDerivedProduct") >= 4  # collection, batch, aliquot, dose
    assert dose in json.dumps(bundle)
    result = runner.invoke(app, ["export", "sdtm", *common, "--country", "RUS", "--format", "csv",
                                 "--out", str(tmp_path / "sdtm")], env=env)
    assert result.exit_code == 0, result.output
    be = (tmp_path / "sdtm" / "be.csv").read_text()
    assert dose in be and "Preparing dose" in be

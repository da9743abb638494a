"""Stored biomarker results in the SDTM package: LB for counts and chemistry, IS for
anti-drug antibodies, PC for the drug concentration, GF for genotypes, MI for GD2 by
immunohistochemistry; each record names its sample (--REFID), specimen and method; the
XPT files read back as written and define.xml lists the datasets and variables.

Samples and results are entered through the services on the demo database (clock at
2026-11-21 12:00 UTC; the RuMCeSS and NB-NK-2026 demo patients are enrolled on that day,
study day 1). The values are test data, not clinical ones.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

import pandas as pd
import pytest

from trialdesk.outcomes.export_sdtm import SPEC, validate_sdtm
from trialdesk.outcomes.sdtm_package import check_define, define_xml, read_xpt, reviewers_guide, to_xpt

RU = "RUMCES-0001"
NB = "NBNK-0001"
ODM_NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}


def _event(ctx: Any, who: Any, study: str, wanted: str) -> str:
    from trialdesk.services import biomarkers

    page = biomarkers.calendar_page(ctx, who, study)
    return str(next(e["id"] for e in page["calendar"]["events"]
                    if e["kind"] == "sampling" and wanted in e["name"]))


def _sample(ctx: Any, who: Any, study: str, wanted: str, sample: str, at: datetime,
            *results: dict[str, Any]) -> None:
    from trialdesk.services import biomarkers

    biomarkers.record_sample(ctx, who, study, event_id=_event(ctx, who, study, wanted),
                             sample_id=sample, collected_at=at)
    for r in results:
        biomarkers.record_result(ctx, who, sample, **r)


def _package(web: Any, trial: str) -> dict[str, pd.DataFrame]:
    from trialdesk.services.demo import _who
    from trialdesk.services.outcomes import sdtm_package_datasets

    return sdtm_package_datasets(web.app.state.ctx, _who(web.store, "statistician"), trial,
                                 country="RUS")


@pytest.fixture
def stored(web: Any) -> Any:
    from trialdesk.services.demo import _who

    ctx, who = web.app.state.ctx, _who(web.store, "coordinator")
    # RuMCeSS: cytokines and CRP in serum, PaO2 and FiO2 in arterial blood (study day 1).
    _sample(ctx, who, RU, "IL-6", "RU-S1", datetime(2026, 11, 21, 9, 5),
            {"fact": "il6", "value": "450", "unit": "ng/L", "method": "ELISA"},
            {"fact": "crp", "value": 12.5, "unit": "mg/L"})
    _sample(ctx, who, RU, "oxygen", "RU-ABG1", datetime(2026, 11, 21, 9, 10),
            {"fact": "pao2", "value": 80, "unit": "mmHg"},
            {"fact": "fio2", "value": 40, "unit": "%"})
    # NB-NK-2026: GD2 of the primary by IHC and the FCGR genotypes on day -1; the immune
    # profile, anti-drug antibodies and the dinutuximab beta level on day 1.
    _sample(ctx, who, NB, "GD2", "NB-GD2-1", datetime(2026, 11, 20, 10, 0),
            {"fact": "gd2_ihc_percent", "value": 60, "unit": "%", "site": "primary, left adrenal"})
    _sample(ctx, who, NB, "FCGR", "NB-DNA-1", datetime(2026, 11, 20, 10, 30),
            {"fact": "fcgr3a_genotype", "value": "V/F"}, {"fact": "fcgr2a_genotype", "value": "H/R"})
    _sample(ctx, who, NB, "ADCC", "NB-PB-1", datetime(2026, 11, 21, 8, 0),
            {"fact": "alc", "value": 1200, "unit": "/mm3"}, {"fact": "sodium", "value": 138},
            {"fact": "lvef", "value": 60, "unit": "%"},
            {"fact": "adcc_lysis", "value": 35, "unit": "%", "effector_target_ratio": "10:1"})
    _sample(ctx, who, NB, "dinutuximab", "NB-SER-1", datetime(2026, 11, 21, 8, 30),
            {"fact": "anti_drug_antibodies", "value": "positive"},
            {"fact": "dinutuximab_beta_level", "value": 12.3, "unit": "ug/mL", "method": "ELISA"})
    return web


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[list[Any]]:
    return [[None if pd.isna(v) else v for v in row] for row in frame[columns].values.tolist()]


def test_rumcess_cytokines_and_blood_gas_are_lb_records_linked_to_their_samples(stored: Any) -> None:
    package = _package(stored, "RuMCeSS")
    assert validate_sdtm(package) == []
    lb = package["LB"]
    assert list(lb.columns) == [v.name for v in SPEC["LB"]]
    subject = lb[lb["USUBJID"] == f"RuMCeSS-{RU}"]
    # 450 ng/L entered = 450 pg/mL in the fact's unit (1 ng/L = 1 pg/mL).
    assert _rows(subject, ["LBTESTCD", "LBORRES", "LBORRESU", "LBSTRESN", "LBSTRESU", "LBREFID",
                           "LBLOINC", "LBSPEC", "LBMETHOD", "LBDTC", "LBDY"]) == [
        ["CRP", "12.5", "mg/L", 12.5, "mg/L", "RU-S1", "1988-5", "SERUM", None,
         "2026-11-21T09:05", 1],
        ["INTLK6", "450", "ng/L", 450.0, "pg/mL", "RU-S1", "26881-3", "SERUM", "ELISA",
         "2026-11-21T09:05", 1],
        ["FIO2", "40", "%", 40.0, "%", "RU-ABG1", "3150-0", "ARTERIAL BLOOD", None,
         "2026-11-21T09:10", 1],
        ["PO2", "80", "mmHg", 80.0, "mmHg", "RU-ABG1", "2703-7", "ARTERIAL BLOOD", None,
         "2026-11-21T09:10", 1],
    ]
    assert subject["LBSEQ"].tolist() == [1, 2, 3, 4]
    # The derived PaO2/FiO2 ratio (200) is left to the analysis datasets.
    assert "PO2FIO2" not in set(lb["LBTESTCD"]) and not (lb["LBSTRESN"] == 200).any()
    assert not {"IS", "PC", "GF", "MI"} & set(package)


def test_nbnk_results_go_to_lb_is_pc_gf_and_mi(stored: Any) -> None:
    package = _package(stored, "NB-NK-2026")
    assert validate_sdtm(package) == []
    subject = "NB-NK-2026-" + NB
    lb = package["LB"][package["LB"]["USUBJID"] == subject]
    assert _rows(lb, ["LBTESTCD", "LBORRES", "LBORRESU", "LBSTRESN", "LBREFID", "LBLOINC",
                      "LBSPEC", "LBDY"]) == [
        ["ADCCLYS", "35", "%", 35.0, "NB-PB-1", None, "PERIPHERAL BLOOD", 1],
        ["LYM", "1200", "/mm3", 1200.0, "NB-PB-1", "731-0", "PERIPHERAL BLOOD", 1],
        ["SODIUM", "138", "mmol/L", 138.0, "NB-PB-1", "2951-2", "PERIPHERAL BLOOD", 1],
    ]  # any other laboratory fact under its name; LVEF (a measurement, not a specimen) left out
    assert lb["LBTEST"].tolist()[-1] == "Serum sodium"
    assert _rows(package["IS"], ["USUBJID", "ISSEQ", "ISREFID", "ISTESTCD", "ISTEST", "ISBDAGNT",
                                 "ISCAT", "ISORRES", "ISSTRESC", "ISSTRESN", "ISSPEC", "ISDTC",
                                 "ISDY"]) == [
        [subject, 1, "NB-SER-1", "ADA_BAB", "Binding Antidrug Antibody", "DINUTUXIMAB BETA",
         "ANTIDRUG ANTIBODIES", "positive", "POSITIVE", None, "SERUM", "2026-11-21T08:30", 1]]
    assert _rows(package["PC"], ["PCREFID", "PCTESTCD", "PCTEST", "PCCAT", "PCORRES", "PCORRESU",
                                 "PCSTRESN", "PCSTRESU", "PCSPEC", "PCMETHOD", "PCDY"]) == [
        ["NB-SER-1", "DINUBETA", "Dinutuximab Beta", "ANALYTE", "12.3", "ug/mL", 12.3, "ug/mL",
         "SERUM", "ELISA", 1]]
    # Genotypes: the gene in GFSYM, germline; collected the day before enrolment (day -1).
    assert _rows(package["GF"], ["GFSEQ", "GFREFID", "GFTESTCD", "GFTSTDTL", "GFSYM", "GFSYMTYP",
                                 "GFORRES", "GFSTRESC", "GFINHERT", "GFGENREF", "GFDTC",
                                 "GFDY"]) == [
        [1, "NB-DNA-1", "SNV", "GENOTYPE", "FCGR2A", "GENE WITH PROTEIN PRODUCT", "H/R", "H/R",
         "GERMLINE VARIATION", None, "2026-11-20T10:30", -1],
        [2, "NB-DNA-1", "SNV", "GENOTYPE", "FCGR3A", "GENE WITH PROTEIN PRODUCT", "V/F", "V/F",
         "GERMLINE VARIATION", None, "2026-11-20T10:30", -1]]
    # MILOBXFL: the last GD2 value on or before the first study treatment (day 1).
    assert _rows(package["MI"], ["MIREFID", "MITESTCD", "MITSTDTL", "MIORRES", "MIORRESU",
                                 "MISTRESN", "MISPEC", "MILOC", "MIMETHOD", "MILOBXFL", "MIDY"]) == [
        ["NB-GD2-1", "GD2", "PERCENT POSITIVE CELL", "60", "%", 60.0, "TISSUE",
         "PRIMARY, LEFT ADRENAL", "IHC", "Y", -1]]
    for name in ("LB", "IS", "PC", "GF", "MI"):
        assert list(package[name].columns) == [v.name for v in SPEC[name]], name
    # The CDISC codelists of the new variables are checked like the others.
    broken = {**package, "GF": package["GF"].assign(GFINHERT="GERMLINE")}
    assert {str(f) for f in validate_sdtm(broken)} == {
        "GF.GFINHERT row 1: 'GERMLINE' is not in codelist GFINHERT",
        "GF.GFINHERT row 2: 'GERMLINE' is not in codelist GFINHERT"}


def test_biomarker_xpt_files_read_back_and_define_xml_lists_them(stored: Any) -> None:
    package = _package(stored, "NB-NK-2026")
    for name in ("LB", "IS", "PC", "GF", "MI"):
        frame = package[name]
        back, labels = read_xpt(to_xpt(name, frame))
        assert labels == {v.name: v.label for v in SPEC[name]}, name
        for v in SPEC[name]:
            if v.type == "Num":
                written = pd.to_numeric(frame[v.name]).astype(float).tolist()
                assert back[v.name].tolist() == pytest.approx(written, nan_ok=True), (name, v.name)
            else:
                assert back[v.name].tolist() == [("" if x is None else x) for x in frame[v.name]]
    data = define_xml("NB-NK-2026", package, title="NB-NK-2026", created=datetime(2026, 12, 1, 9))
    assert check_define(data) == []
    mdv = ET.fromstring(data).find("odm:Study/odm:MetaDataVersion", ODM_NS)
    assert mdv is not None
    groups = {str(g.get("Name")): g for g in mdv.findall("odm:ItemGroupDef", ODM_NS)}
    assert {"IS", "PC", "GF", "MI"} <= set(groups)
    codelists = {str(c.get("OID")): [e.get("CodedValue") for e in c.findall("odm:EnumeratedItem", ODM_NS)]
                 for c in mdv.findall("odm:CodeList", ODM_NS)}
    assert codelists["CL.GFINHERT"] == ["GERMLINE VARIATION"]
    assert codelists["CL.MITSTDTL"] == ["H SCORE TOTAL SCORE", "PERCENT POSITIVE CELL"]
    refs = [r.get("ItemOID") for r in groups["LB"].findall("odm:ItemRef", ODM_NS)]
    assert {"IT.LB.LBREFID", "IT.LB.LBLOINC", "IT.LB.LBSPEC", "IT.LB.LBMETHOD"} <= set(refs)
    assert [r.get("ItemOID") for r in groups["GF"].findall("odm:ItemRef", ODM_NS)] == [
        f"IT.GF.{v.name}" for v in SPEC["GF"]]
    guide = reviewers_guide("NB-NK-2026", package)
    assert "gf.xpt (2 records)" in guide and "mi.xpt (1 records)" in guide
    assert "LB INTLK6 (C74834)" in guide and "LB PCT (C103430)" in guide and "LB CRP (C64548)" in guide
    assert "Sponsor-defined: LB ADCCLYS, LB GD2POS, IS ADA_BAB, PC DINUBETA" in guide
    assert "places in CP" in guide


def test_lb_without_samples_keeps_its_sample_variables_empty(web: Any) -> None:
    from examplekit import nbnk
    from trialdesk.outcomes.export_sdtm import sdtm_datasets

    package = _package(web, "NB-NK-2026")  # the stored trial: no sample recorded yet
    assert not {"LB", "IS", "PC", "GF", "MI"} & set(package)
    assert "Biomarker test codes" not in reviewers_guide("NB-NK-2026", package)
    inputs = nbnk()  # laboratory results from a file: LB has the sample variables, empty
    p = inputs.compiled.protocol
    lb = sdtm_datasets(p.id, inputs.events, labs=inputs.labs, protocol=p)["LB"]
    assert len(lb) and list(lb.columns) == [v.name for v in SPEC["LB"]]
    assert lb[["LBREFID", "LBLOINC", "LBSPEC", "LBMETHOD"]].isna().all().all()


def test_command_line_writes_the_biomarker_datasets_from_the_database(stored: Any, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from trialdesk.cli import app

    out = tmp_path / "sdtm"
    done = CliRunner().invoke(app, ["export", "sdtm", "--trial", "NB-NK-2026", "--by", "statistician",
                                    "--database", str(stored.store.engine.url), "--country", "RUS",
                                    "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert {"lb.xpt", "is.xpt", "pc.xpt", "gf.xpt", "mi.xpt", "define.xml"} <= {p.name for p in out.iterdir()}
    gf, _ = read_xpt((out / "gf.xpt").read_bytes())
    assert gf[["GFREFID", "GFSYM", "GFORRES"]].values.tolist() == [
        ["NB-DNA-1", "FCGR2A", "H/R"], ["NB-DNA-1", "FCGR3A", "V/F"]]
    define = (out / "define.xml").read_bytes()
    assert check_define(define) == [] and b'Name="PC"' in define and b"IT.LB.LBREFID" in define
    assert "Biomarker test codes" in (out / "reviewers-guide.md").read_text(encoding="utf-8")


def test_biomarker_lb_records_follow_each_subjects_laboratory_results() -> None:
    from examplekit import nbnk
    from trialdesk.outcomes.export_sdtm import sdtm_datasets
    from trialdesk.outcomes.sdtm_biomarkers import BiomarkerResult
    from trialdesk.outcomes.sdtm_findings import RecordFindings

    inputs = nbnk()
    p = inputs.compiled.protocol
    record = RecordFindings(biomarkers=(
        BiomarkerResult("NB-01", "S2", "il6", "2026-03-02T10:00", 45, "pg/mL", 45.0, "pg/mL",
                        "serum", code="LOINC 26881-3"),
        BiomarkerResult("NB-01", "S1", "gd2_ihc_h_score", "2026-03-01T10:00", 150, None, 150.0,
                        None, "tumour biopsy", "ihc", "liver"),
        BiomarkerResult("NB-01", "S3", "weight", "2026-03-01T10:00", 20, "kg", 20.0, "kg")))
    package = sdtm_datasets(p.id, inputs.events, labs=inputs.labs, exposure=inputs.exposure,
                            protocol=p, record=record)
    assert validate_sdtm(package) == []
    lb = package["LB"]
    nb01 = lb[lb["USUBJID"] == "NB-NK-2026-NB-01"]
    # examples/outcomes/nb-nk-2026-labs.csv: five NEUT results of NB-01 (LBSEQ 1-5); the IL-6
    # of sample S2 is LBSEQ 6, next to them, at NB-01's course 1 visit (first dose 2026-03-02).
    assert _rows(nb01, ["LBSEQ", "LBTESTCD", "LBREFID", "LBDTC", "VISITNUM"])[-2:] == [
        [5, "NEUT", None, "2026-05-25", 6], [6, "INTLK6", "S2", "2026-03-02T10:00", 2]]
    assert list(nb01.index) == list(range(nb01.index[0], nb01.index[0] + 6))
    # An H-score has no unit; the weight (a body measurement) is not a biomarker record.
    assert _rows(package["MI"], ["MIREFID", "MITSTDTL", "MIORRES", "MIORRESU", "MISTRESN", "MILOC",
                                 "MILOBXFL", "MIDY"]) == [
        ["S1", "H SCORE TOTAL SCORE", "150", None, 150.0, "LIVER", "Y", 1]]
    assert "S3" not in set(lb["LBREFID"].dropna())

"""The SDTM-IG 3.4 package of the NB-NK-2026 example trial: trial design and subject
paths, deaths told the same way in DM, DS and AE, XPT v5 files that read back as written,
and a define.xml that passes odmlib's Define-XML 2.1 checks and lists every variable."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

import pandas as pd
import pytest

from examplekit import Inputs, nbnk
from trialdesk.outcomes.export_sdtm import SPEC, sdtm_datasets, validate_sdtm
from trialdesk.outcomes.inputs import validate_exposure
from trialdesk.outcomes.sdtm_design import ascii_text
from trialdesk.outcomes.sdtm_package import check_define, define_xml, read_xpt, reviewers_guide, to_xpt

ODM_NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return nbnk()


def _package(inputs: Inputs, **changes: object) -> dict[str, pd.DataFrame]:
    given: dict[str, object] = {"aes": inputs.aes, "exposure": inputs.exposure, "labs": inputs.labs,
                                "measurements": inputs.measurements, **changes}
    p = inputs.compiled.protocol
    return sdtm_datasets(p.id, inputs.events, arm_labels={a.id: a.label for a in p.arms},
                         protocol=p, **given)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def package(inputs: Inputs) -> dict[str, pd.DataFrame]:
    return _package(inputs)


def _row(frame: pd.DataFrame, **where: object) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column] == value
    return frame[mask]


def test_the_example_trial_is_a_complete_valid_package(package: dict[str, pd.DataFrame]) -> None:
    assert list(package) == ["DM", "AE", "SUPPAE", "EX", "RS", "TR", "LB", "DS", "SE", "SV",
                             "TS", "TA", "TE", "TV", "TI"]
    assert validate_sdtm(package) == []
    for name, frame in package.items():
        assert list(frame.columns) == [v.name for v in SPEC[name]], name
    # FDA technical rejection criteria: TS with the study start date parameter (here null
    # with a reason: the registry record gives no start date).
    ts = package["TS"].set_index("TSPARMCD")
    assert ts.loc["SSTDTC", "TSVALNF"] == "UNK"
    assert ts.loc["REGID", "TSVAL"] == "NCT07375563"
    assert ts.loc["AGEMIN", "TSVAL"] == "P18M"  # registry "18 Months"


def test_trial_arms_follow_the_protocol_plan(package: dict[str, pd.DataFrame]) -> None:
    # nb-nk-2026.yaml: arm A = IT + 4 x DIT, arm B = IT + 5 x DIT.
    ta = package["TA"]
    assert _row(ta, ARMCD="A")["ETCD"].tolist() == ["SCRN", "IT", "DIT", "DIT", "DIT", "DIT", "FU"]
    assert _row(ta, ARMCD="B")["ETCD"].tolist() == ["SCRN", "IT", *["DIT"] * 5, "FU"]
    te = package["TE"].set_index("ETCD")
    assert te.loc["DIT", "TEDUR"] == "P21D"  # course length 21 days (protocol file, seed 000)
    assert len(package["TI"]) == 23 and set(package["TI"]["IECAT"]) == {"INCLUSION", "EXCLUSION"}


def test_epoch_known_answers(package: dict[str, pd.DataFrame]) -> None:
    # NB-01: enrolled 2026-03-01, first dose 2026-03-02, course 5 starts 2026-05-25 and is
    # 21 days long, so treatment ends 2026-06-15; died 2027-04-23.
    se = _row(package["SE"], USUBJID="NB-NK-2026-NB-01")
    assert se[["ETCD", "SESTDTC", "SEENDTC", "EPOCH"]].values.tolist()[0] == [
        "SCRN", "2026-03-01", "2026-03-02", "SCREENING"]
    assert se[["ETCD", "SESTDTC", "SEENDTC", "EPOCH"]].values.tolist()[-2:] == [
        ["DIT", "2026-05-25", "2026-06-15", "TREATMENT"], ["FU", "2026-06-15", "2027-04-23", "FOLLOW-UP"]]
    ae = _row(package["AE"], USUBJID="NB-NK-2026-NB-01", AESTDTC="2026-03-08")
    assert ae["EPOCH"].tolist() == ["TREATMENT"]
    assert _row(package["DS"], USUBJID="NB-NK-2026-NB-01")["EPOCH"].tolist() == ["FOLLOW-UP"]


def test_visit_known_answers(package: dict[str, pd.DataFrame]) -> None:
    # NB-01's course 2 starts 2026-03-23: the lab that day is at visit 3 "COURSE 2"; the
    # response assessment on 2026-04-12 falls between course visits: unscheduled 3.01.
    lb = _row(package["LB"], USUBJID="NB-NK-2026-NB-01", LBDTC="2026-03-23")
    assert lb[["VISITNUM", "VISIT"]].values.tolist() == [[3, "COURSE 2"]]
    rs = _row(package["RS"], USUBJID="NB-NK-2026-NB-01", RSDTC="2026-04-12")
    assert rs[["VISITNUM", "VISIT"]].values.tolist() == [[3.01, "UNSCHEDULED 3.01"]]
    # Tumour sums (examples/outcomes/nb-nk-2026-tumour.csv): the baseline scan of 2026-02-26
    # is before enrolment (screening, no visit); 85 mm on 2026-04-12 is at the same visit as RS.
    tr = _row(package["TR"], USUBJID="NB-NK-2026-NB-01")
    assert tr[["TRTESTCD", "TRSTRESN", "TRSTRESU", "EPOCH"]].values.tolist()[:2] == [
        ["SUMDIAM", 83.0, "mm", "SCREENING"], ["SUMDIAM", 85.0, "mm", "TREATMENT"]]
    assert pd.isna(tr["VISITNUM"].iloc[0]) and tr["VISITNUM"].iloc[1] == 3.01
    sv = _row(package["SV"], USUBJID="NB-NK-2026-NB-01")
    assert sv["VISITNUM"].tolist()[:4] == [1, 2, 3, 3.01]


def test_actual_arm_from_what_was_given(inputs: Inputs, package: dict[str, pd.DataFrame]) -> None:
    dm = package["DM"].set_index("SUBJID")
    assert (dm["ACTARMCD"] == dm["ARMCD"]).all()  # every example patient received treatment
    frame = inputs.exposure.frame
    without_nb02 = validate_exposure(frame[frame["patient_id"] != "NB-02"].astype(object), inputs.events)
    dm2 = _package(inputs, exposure=without_nb02)["DM"].set_index("SUBJID")
    assert dm2.loc["NB-02", ["ARMCD", "ACTARMCD", "ARMNRS"]].tolist() == ["A", None, "ASSIGNED, NOT TREATED"]
    assert dm2.loc["NB-01", "ARMNRS"] is None


def test_deaths_agree_across_dm_ds_and_ae(package: dict[str, pd.DataFrame]) -> None:
    dm, ds, ae = package["DM"], package["DS"], package["AE"]
    dead = dict(zip(_row(dm, DTHFL="Y")["USUBJID"], _row(dm, DTHFL="Y")["DTHDTC"], strict=True))
    assert len(dead) == 7  # examples/outcomes/nb-nk-2026-events.csv: seven death dates
    deaths = _row(ds, DSDECOD="DEATH")
    assert dict(zip(deaths["USUBJID"], deaths["DSSTDTC"], strict=True)) == dead
    # NB-06's fatal sepsis has no resolution date; it ends on the death date 2027-05-19.
    fatal = _row(ae, AEOUT="FATAL")
    assert fatal[["USUBJID", "AEENDTC"]].values.tolist() == [["NB-NK-2026-NB-06", "2027-05-19"]]
    assert dead["NB-NK-2026-NB-06"] == "2027-05-19"


def test_cross_domain_checks_catch_disagreement(package: dict[str, pd.DataFrame]) -> None:
    broken = {name: frame.copy() for name, frame in package.items()}
    broken["DS"] = broken["DS"].iloc[1:]  # drop NB-01's death
    broken["AE"].loc[broken["AE"]["AEOUT"] == "FATAL", "AEENDTC"] = None
    broken["LB"].loc[0, "EPOCH"] = "RUN-IN"
    messages = {str(f) for f in validate_sdtm(broken)}
    assert messages == {
        "DS.DSDECOD: NB-NK-2026-NB-01: DM.DTHFL is Y but DS has no DEATH on 2027-04-23",
        f"AE.AEENDTC row {int(package['AE'].index[package['AE']['AEOUT'] == 'FATAL'][0]) + 1}: "
        "NB-NK-2026-NB-06: a fatal AE ends on the death date 2027-05-19",
        "LB.EPOCH row 1: 'RUN-IN' is not in codelist EPOCH",
        "LB.EPOCH row 1: 'RUN-IN' is not an epoch of TA",
    }


def test_each_xpt_reads_back_as_written(package: dict[str, pd.DataFrame]) -> None:
    for name, frame in package.items():
        data = to_xpt(name, frame)
        assert data.startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!")  # SAS XPORT v5
        back, labels = read_xpt(data)
        assert labels == {v.name: v.label for v in SPEC[name]}, name
        assert list(back.columns) == list(frame.columns), name
        for v in SPEC[name]:
            if v.type == "Num":
                written = pd.to_numeric(frame[v.name]).astype(float).tolist()
                assert back[v.name].tolist() == pytest.approx(written, nan_ok=True), (name, v.name)
            else:
                written = [("" if x is None else x) for x in frame[v.name]]
                assert back[v.name].tolist() == written, (name, v.name)


def test_xpt_refuses_what_v5_cannot_hold(package: dict[str, pd.DataFrame]) -> None:
    dm = package["DM"].copy()
    dm.loc[0, "ACTARMUD"] = "x" * 201
    with pytest.raises(Exception, match=r"DM.ACTARMUD.*at most 200 bytes"):
        to_xpt("DM", dm)
    assert ascii_text("ANC ≥ 0.75 × 10⁹/L") == "ANC >= 0.75 x 10^9/L"


def test_define_xml_passes_odmlib_and_lists_every_variable(package: dict[str, pd.DataFrame]) -> None:
    data = define_xml("NB-NK-2026", package, title="NB-NK-2026", created=datetime(2026, 12, 1, 9, 0))
    assert check_define(data) == []
    root = ET.fromstring(data)
    mdv = root.find("odm:Study/odm:MetaDataVersion", ODM_NS)
    assert mdv is not None
    groups = mdv.findall("odm:ItemGroupDef", ODM_NS)
    assert [g.get("Name") for g in groups] == list(package)
    for g in groups:
        refs = [r.get("ItemOID") for r in g.findall("odm:ItemRef", ODM_NS)]
        assert refs == [f"IT.{g.get('Name')}.{v.name}" for v in SPEC[str(g.get("Name"))]]
        leaf = g.find("def:leaf", ODM_NS)
        assert leaf is not None
        assert leaf.get("{http://www.w3.org/1999/xlink}href") == f"{g.get('Name', '').lower()}.xpt"
    assert len(mdv.findall("odm:ItemDef", ODM_NS)) == sum(len(SPEC[n]) for n in package)
    # The checks are real: an ItemRef to an ItemDef that is not there is reported.
    broken = data.replace(b'<ItemRef ItemOID="IT.DM.SEX"', b'<ItemRef ItemOID="IT.DM.NOSUCH"')
    assert any("NOSUCH" in problem for problem in check_define(broken))


def test_reviewers_guide_says_what_stays_empty(package: dict[str, pd.DataFrame]) -> None:
    guide = reviewers_guide("NB-NK-2026", package)
    assert "AEHLT, AEHLTCD, AEHLGT and AEHLGTCD are empty: they need a licensed MedDRA" in guide
    assert "ts.xpt (17 records)" in guide and "there is no TU" in guide
    assert "cdisc" in guide.lower() and "rules engine" in guide


def test_without_exposure_no_element_is_guessed() -> None:
    from examplekit import EXAMPLES, read_csv
    from trialdesk.outcomes.events import validate_event_table
    from trialdesk.protocol.load import default_protocol_dir, load_protocol

    protocol = load_protocol(default_protocol_dir() / "rumcess.yaml").protocol
    events = validate_event_table(read_csv(EXAMPLES / "rumcess-events.csv"), arms=["MSC", "SOC"])
    package = sdtm_datasets(protocol.id, events, protocol=protocol)
    assert validate_sdtm(package) == []
    assert package["SE"].empty and package["DS"]["EPOCH"].isna().all()
    assert package["DM"]["ACTARMCD"].isna().all() and package["DM"]["ARMNRS"].isna().all()
    # rumcess.yaml: the MSC arm's one treatment is the timed MSC infusion; SOC has none.
    ta = package["TA"]
    assert _row(ta, ARMCD="MSC")["ETCD"].tolist() == ["SCRN", "TMSCINFU", "FU"]
    assert _row(ta, ARMCD="SOC")["ETCD"].tolist() == ["SCRN", "FU"]


def test_lbtoxgr_from_the_ctcae_grading(inputs: Inputs) -> None:
    from trialdesk.errors import OutcomeError
    from trialdesk.outcomes.inputs import validate_labs

    def labs(value: str, grade: str | None, lln: str | None = None) -> pd.DataFrame:
        return pd.DataFrame({"patient_id": ["NB-01"], "date": ["2026-03-02"], "test_code": ["NEUT"],
                             "test": ["Neutrophils"], "value": [value], "unit": ["10^9/L"],
                             "lower_limit": [lln], "upper_limit": [None], "toxicity_grade": [grade]})

    def grade(frame: pd.DataFrame) -> object:
        return _package(inputs, labs=validate_labs(frame, inputs.events))["LB"]["LBTOXGR"].iloc[0]

    # CTCAE v5.0 Neutrophil count decreased: grade 4 <0.5 x 10^9/L; grade 1 <LLN - 1.5.
    assert grade(labs("0.3", None)) == "4"  # derived: the value decides it
    assert grade(labs("2.5", None)) is None  # needs the LLN: unknown, not guessed
    assert grade(labs("2.5", None, lln="1.8")) == "0"  # at or above the LLN
    assert grade(labs("1.2", "2")) == "2"  # recorded and consistent
    refused = r"recorded CTCAE grade 3, the CTCAE v5\.0 grade of the value is 4"
    with pytest.raises(OutcomeError, match=refused):
        grade(labs("0.3", "3"))


def test_every_variable_fits_xport_v5() -> None:
    # SAS XPORT v5 (FDA Study Data Technical Conformance Guide): names of at most 8
    # characters, labels of at most 40, in ASCII.
    for name, variables in SPEC.items():
        assert len(name) <= 8
        for v in variables:
            assert len(v.name) <= 8 and v.name.isascii() and v.name.isupper(), (name, v.name)
            assert len(v.label) <= 40 and v.label.isascii(), (name, v.label)

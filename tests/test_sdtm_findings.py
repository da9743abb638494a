"""CM, PR, VS, TU, TR and RELREC of the SDTM package: known answers for a constructed
record on the NB-NK-2026 example trial (INRC 2017) and a RECIST 1.1 series, the checks
that catch what breaks them, XPT read-back, define.xml (with the controlled terminology
standard), and the same datasets from the stored demo record."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime

import pandas as pd
import pytest

from examplekit import Inputs, nbnk
from trialdesk.outcomes.export_sdtm import SPEC, sdtm_datasets, validate_sdtm
from trialdesk.outcomes.sdtm_findings import Assessment, BodySize, RecordFindings, Treatment
from trialdesk.outcomes.sdtm_package import CT_VERSION, check_define, define_xml, read_xpt, to_xpt

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}
NB01 = "NB-NK-2026-NB-01"
# INRC 2017 time point (the shape of trialdesk.response.documents, example of the response page).
INRC_POINT = {"primary": {"baseline_mm": 60, "nadir_mm": 60, "current_mm": 40},
              "soft_tissue": "not_involved",
              "bone": {"mibg": {"scale": "curie", "baseline_score": 12, "current_score": 4}},
              "marrow": {"baseline_pct": 30, "current_pct": 3},
              "new_lesions": {"soft_tissue": False, "mibg_bone_site": True}}
RECIST_BASELINE = {"targets": [{"id": "L1", "organ": "liver", "kind": "non_nodal", "method": "ct",
                                "size_mm": 42},
                               {"id": "N2", "organ": "axillary node", "kind": "lymph_node", "method": "mri",
                                "size_mm": 18}],
                   "non_targets": [{"id": "B1", "organ": "bone", "kind": "non_nodal", "method": "other"}]}


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return nbnk()


def _record() -> RecordFindings:
    # NB-01 (examples/outcomes): enrolled 2026-03-01, first dose 2026-03-02, course 2 on 2026-03-23.
    # NB-02: enrolled 2026-03-21.
    return RecordFindings(
        treatments=(
            Treatment("NB-01", "GPOH N5/N6 induction", "chemotherapy", date(2025, 9, 20), date(2026, 1, 30)),
            Treatment("NB-01", "tandem autologous transplant", "stem_cell_transplant", date(2025, 12, 1),
                      date(2025, 12, 20)),
            Treatment("NB-01", "gabapentin", "other", date(2026, 3, 2)),
            Treatment("NB-99", "not in the package", "other", date(2026, 3, 2)),
        ),
        body=(BodySize("NB-01", date(2026, 3, 1), 16.0, 100.0),
              BodySize("NB-01", date(2026, 3, 2), 15.8, None),
              BodySize("NB-01", date(2026, 3, 23), 15.5, None)),
        assessments=(
            Assessment("NB-01", "INRC", "time_point", date(2026, 4, 12), INRC_POINT, "PD"),
            Assessment("NB-02", "RECIST", "baseline", date(2026, 3, 18), RECIST_BASELINE),
            Assessment("NB-02", "RECIST", "time_point", date(2026, 5, 2),
                       {"day": 40, "targets": {"L1": 30, "N2": None}, "non_targets": {"B1": "present"},
                        "new_lesions": False}),
            Assessment("NB-02", "RECIST", "time_point", date(2026, 6, 13),
                       {"day": 82, "targets": {"L1": 35, "N2": 12},
                        "non_targets": {"B1": "unequivocal_progression"}, "new_lesions": True}),
        ))


@pytest.fixture(scope="module")
def package(inputs: Inputs) -> dict[str, pd.DataFrame]:
    p = inputs.compiled.protocol
    return sdtm_datasets(p.id, inputs.events, arm_labels={a.id: a.label for a in p.arms}, aes=inputs.aes,
                         exposure=inputs.exposure, labs=inputs.labs, measurements=inputs.measurements,
                         protocol=p, record=_record())


def _rows(frame: pd.DataFrame, columns: list[str], **where: object) -> list[list[object]]:
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column] == value
    return [[None if (not isinstance(v, str) and pd.isna(v)) else v for v in row]
            for row in frame.loc[mask, columns].values.tolist()]


def test_the_package_with_the_record_is_valid(package: dict[str, pd.DataFrame]) -> None:
    assert {"CM", "PR", "VS", "TU", "TR", "RELREC"} <= set(package)
    assert validate_sdtm(package) == []
    for name in ("CM", "PR", "VS", "TU", "TR", "RELREC"):
        assert list(package[name].columns) == [v.name for v in SPEC[name]], name
    # NB-99 is not a subject of the package: left out, never a CM record without DM.
    assert set(package["CM"]["USUBJID"]) == {NB01}


def test_treatment_history_known_answers(package: dict[str, pd.DataFrame]) -> None:
    # Started before the first study treatment (2026-03-02) is PRIOR; on that day CONCOMITANT.
    # Study day before RFSTDTC 2026-03-01 has no day 0: 2025-09-20 is day -162.
    assert _rows(package["CM"], ["CMTRT", "CMCAT", "CMSCAT", "EPOCH", "CMSTDY", "CMENDTC"]) == [
        ["GPOH N5/N6 induction", "CHEMOTHERAPY", "PRIOR", None, -162, "2026-01-30"],
        ["gabapentin", "OTHER", "CONCOMITANT", "TREATMENT", 2, None]]
    # A transplant is a procedure (SDTMIG v3.4 6.1): PR, not CM.
    assert _rows(package["PR"], ["PRTRT", "PRCAT", "PRSCAT", "PRSTDTC"]) == [
        ["tandem autologous transplant", "STEM CELL TRANSPLANT", "PRIOR", "2025-12-01"]]


def test_body_measurement_known_answers(package: dict[str, pd.DataFrame]) -> None:
    vs = _rows(package["VS"], ["VSTESTCD", "VSORRES", "VSORRESU", "VSSTRESN", "VSLOBXFL", "VSDRVFL",
                                "VISITNUM", "VISIT", "EPOCH", "VSDTC"])
    assert vs == [
        ["WEIGHT", "16", "kg", 16.0, None, None, 1, "ENROLMENT", "SCREENING", "2026-03-01"],
        ["HEIGHT", "100", "cm", 100.0, "Y", None, 1, "ENROLMENT", "SCREENING", "2026-03-01"],
        # Mosteller (NEJM 1987;317:1098), the protocol's formula: sqrt(100 x 16 / 3600) = 0.667 m2,
        # rounded to the protocol's 2 places.
        ["BSA", "0.67", "m2", 0.67, "Y", "Y", 1, "ENROLMENT", "SCREENING", "2026-03-01"],
        # The weight of the first dose day (2026-03-02) is the last one before exposure.
        ["WEIGHT", "15.8", "kg", 15.8, "Y", None, 2, "COURSE 1", "TREATMENT", "2026-03-02"],
        ["WEIGHT", "15.5", "kg", 15.5, None, None, 3, "COURSE 2", "TREATMENT", "2026-03-23"]]


def test_inrc_components_are_locations_of_interest(package: dict[str, pd.DataFrame]) -> None:
    tu = _rows(package["TU"], ["TULNKID", "TUORRES", "TULOC", "TUMETHOD", "TUDTC"], USUBJID=NB01)
    assert tu == [["PRIMARY", "LOCATION OF INTEREST", "PRIMARY TUMOR", None, "2026-04-12"],
                  ["MARROW", "LOCATION OF INTEREST", "BONE MARROW", None, "2026-04-12"],
                  ["MIBG", "LOCATION OF INTEREST", "BONE", "MIBG SCINTIGRAPHY", "2026-04-12"],
                  ["NEW01", "NEW", "BONE", "MIBG SCINTIGRAPHY", "2026-04-12"]]
    tr = _rows(package["TR"], ["TRLNKID", "TRTESTCD", "TRSTRESC", "TRSTRESU", "TRLOBXFL", "TRDTC",
                               "VISITNUM"], USUBJID=NB01)
    # Baselines come without a date (one undated record, TRLOBXFL Y); 2026-04-12 is the
    # unscheduled visit 3.01 (between course 2 on 2026-03-23 and course 3).
    assert tr == [["PRIMARY", "DIAMETER", "60", "mm", "Y", None, None],
                  ["MARROW", "TUMINFPC", "30", "%", "Y", None, None],
                  ["MIBG", "CURIESC", "12", None, "Y", None, None],
                  ["PRIMARY", "DIAMETER", "40", "mm", None, "2026-04-12", 3.01],
                  ["MARROW", "TUMINFPC", "3", "%", None, "2026-04-12", 3.01],
                  ["MIBG", "CURIESC", "4", None, None, "2026-04-12", 3.01],
                  ["NEW01", "TUMSTATE", "PRESENT", None, None, "2026-04-12", 3.01]]


def test_recist_lesions_known_answers(package: dict[str, pd.DataFrame]) -> None:
    # NB-02 (examples/outcomes): enrolled 2026-03-21, first dose 2026-03-22; the last course
    # (DIT, 21 days) starts 2026-04-12, so 2026-06-13 is in follow-up.
    nb02 = "NB-NK-2026-NB-02"
    columns = ["TULNKID", "TUORRES", "TULOC", "TUMETHOD", "TULOBXFL", "EPOCH"]
    assert _rows(package["TU"], columns, USUBJID=nb02) == [
        ["L1", "TARGET", "LIVER", "CT SCAN", "Y", "SCREENING"],
        ["N2", "TARGET", "AXILLARY NODE", "MRI", "Y", "SCREENING"],
        ["B1", "NON-TARGET", "BONE", None, "Y", "SCREENING"],
        ["NEW01", "NEW", None, None, None, "FOLLOW-UP"]]
    tr = _rows(package["TR"], ["TRGRPID", "TRLNKID", "TRTESTCD", "TRORRES", "TRSTRESN", "TRSTAT", "TRMETHOD",
                               "TRDTC"], USUBJID=nb02)
    assert tr == [
        ["TARGET", "L1", "DIAMETER", "42", 42.0, None, "CT SCAN", "2026-03-18"],
        ["TARGET", "N2", "DIAMETER", "18", 18.0, None, "MRI", "2026-03-18"],
        ["NON-TARGET", "B1", "TUMSTATE", "PRESENT", None, None, None, "2026-03-18"],
        ["TARGET", "L1", "DIAMETER", "30", 30.0, None, "CT SCAN", "2026-05-02"],
        ["TARGET", "N2", "DIAMETER", None, None, "NOT DONE", "MRI", "2026-05-02"],
        ["NON-TARGET", "B1", "TUMSTATE", "PRESENT", None, None, None, "2026-05-02"],
        ["TARGET", "L1", "DIAMETER", "35", 35.0, None, "CT SCAN", "2026-06-13"],
        ["TARGET", "N2", "DIAMETER", "12", 12.0, None, "MRI", "2026-06-13"],
        ["NON-TARGET", "B1", "TUMSTATE", "UNEQUIVOCAL PROGRESSION", None, None, None, "2026-06-13"],
        ["NEW", "NEW01", "TUMSTATE", "PRESENT", None, None, None, "2026-06-13"]]
    # No derived sums in TR (SDTMIG v3.4 TR assumption 3).
    assert "SUMDIAM" not in set(package["TR"]["TRTESTCD"])
    assert _rows(package["RELREC"], ["RDOMAIN", "IDVAR", "RELTYPE", "RELID"]) == [
        ["TU", "TULNKID", "ONE", "TUTR"], ["TR", "TRLNKID", "MANY", "TUTR"]]


def test_inrc_responses_in_rs_once(package: dict[str, pd.DataFrame]) -> None:
    # examples/outcomes/nb-nk-2026-tumour.csv already gives NB-01's response of 2026-04-12:
    # the record's assessment of the same day is not added a second time.
    rs = package["RS"]
    same_day = rs[(rs["USUBJID"] == NB01) & (rs["RSDTC"] == "2026-04-12") & (rs["RSTESTCD"] == "OVRLRESP")]
    assert len(same_day) == 1
    assert not rs.duplicated(["USUBJID", "RSSEQ"]).any()


def test_checks_catch_broken_findings(package: dict[str, pd.DataFrame]) -> None:
    broken = {name: frame.copy() for name, frame in package.items()}
    broken["TR"].loc[0, "TRLNKID"] = "T99"
    broken["VS"].loc[0, "VSTESTCD"] = "WT-KG"
    broken["CM"].loc[0, "CMSTDTC"] = "20/09/2025"
    broken["RELREC"].loc[0, "IDVAR"] = "TUREFID"
    messages = {str(f) for f in validate_sdtm(broken)}
    assert messages == {
        f"TR.TRLNKID row 1: T99 of {NB01} is not identified in TU",
        "VS.VSTESTCD row 1: 'WT-KG' is not in codelist VSTESTCD",
        "VS.VSTESTCD row 1: a test code has at most 8 letters, digits or underscores and does not "
        "start with a digit",
        "CM.CMSTDTC row 1: '20/09/2025' is not ISO 8601",
        "RELREC.IDVAR row 1: TUREFID is not a variable of TU",
    }


def test_findings_read_back_from_xpt(package: dict[str, pd.DataFrame]) -> None:
    for name in ("CM", "PR", "VS", "TU", "TR", "RELREC"):
        frame = package[name]
        back, labels = read_xpt(to_xpt(name, frame))
        assert labels == {v.name: v.label for v in SPEC[name]}, name
        for v in SPEC[name]:
            if v.type == "Num":
                written = pd.to_numeric(frame[v.name]).astype(float).tolist()
                assert back[v.name].tolist() == pytest.approx(written, nan_ok=True), (name, v.name)
            else:
                written = [("" if x is None else x) for x in frame[v.name]]
                assert back[v.name].tolist() == written, (name, v.name)


def test_define_lists_the_findings_and_the_ct_standard(package: dict[str, pd.DataFrame]) -> None:
    data = define_xml("NB-NK-2026", package, title="NB-NK-2026", created=datetime(2026, 11, 21, 12))
    assert check_define(data) == []
    root = ET.fromstring(data)
    groups = {g.get("Name"): g for g in root.iter(f"{{{NS['odm']}}}ItemGroupDef")}
    assert {"CM", "PR", "VS", "TU", "TR", "RELREC"} <= set(groups)
    assert len(groups["TU"].findall("odm:ItemRef", NS)) == len(SPEC["TU"])
    standards = {s.get("OID"): s.attrib for s in root.iter(f"{{{NS['def']}}}Standard")}
    assert standards["STD.CT.SDTM"] == {"OID": "STD.CT.SDTM", "Name": "CDISC/NCI", "Type": "CT",
                                        "PublishingSet": "SDTM", "Version": CT_VERSION, "Status": "Final"}
    assert standards["STD.SDTMIG"]["Version"] == "3.4"
    codelists = list(root.iter(f"{{{NS['odm']}}}CodeList"))
    assert {c.get("Name") for c in codelists} >= {"VSTESTCD", "UNIT", "TUMIDENT", "RELTYPE", "NY", "EPOCH"}
    assert {c.get(f"{{{NS['def']}}}StandardOID") for c in codelists} == {"STD.CT.SDTM"}
    # Another package date is stated when a site validates against it.
    other = ET.fromstring(define_xml("NB-NK-2026", package, title="NB-NK-2026",
                                     created=datetime(2026, 11, 21, 12), ct_version="2025-03-28"))
    assert [s.get("Version") for s in other.iter(f"{{{NS['def']}}}Standard") if s.get("Type") == "CT"] == [
        "2025-03-28"]


def test_from_the_stored_record(web: object) -> None:
    """The demo database: the Refnot R-2 patient's treatment history, body measurements and
    RECIST 1.1 lesions (services/demo.py), and an INRC time point recorded for the NB-NK-2026
    patient through the response service, exported by the statistician."""
    import io
    import zipfile

    from trialdesk.services import outcomes, responses
    from trialdesk.services.accounts import Principal
    from trialdesk.services.context import Services

    store = web.store  # type: ignore[attr-defined]
    ctx = Services.open(store)

    def who(name: str) -> Principal:
        user = store.user_by_name(name)
        return Principal(user, tuple(store.memberships(user.id)))

    nb = next(j for j in store.trial_journeys("NB-NK-2026"))
    responses.record_response(ctx, who("investigator"), nb.study_number, criteria="INRC", kind="time_point",
                              assessed_on=date(2026, 11, 21), document=INRC_POINT, reason="restaging")

    def package(trial: str) -> dict[str, pd.DataFrame]:
        data = outcomes.sdtm_zip(ctx, who("statistician"), trial, country="RUS")
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {n[:-4].upper(): pd.read_csv(io.BytesIO(z.read(n)), dtype=str, keep_default_na=False)
                    for n in z.namelist()}

    refnot = package("REFNOT-R2")
    # examples/patients/refnot-eligible.json: four treatments, the excision is a procedure.
    assert refnot["CM"]["CMTRT"].tolist() == ["nivolumab", "ipilimumab + nivolumab", "dacarbazine"]
    assert refnot["PR"][["PRTRT", "PRCAT"]].values.tolist() == [
        ["wide local excision and sentinel node biopsy", "SURGERY"]]
    # 81.5 kg, 178 cm on 2026-11-16: Mosteller sqrt(178 x 81.5 / 3600) = 2.007 -> 2.01 m2.
    assert refnot["VS"][["VSTESTCD", "VSSTRESC", "VSSTRESU"]].values.tolist() == [
        ["WEIGHT", "81.5", "kg"], ["HEIGHT", "178", "cm"], ["BSA", "2.01", "m2"]]
    # services/demo.py REFNOT_BASELINE and REFNOT_TIME_POINT.
    assert refnot["TU"][["TULNKID", "TUORRES", "TULOC"]].values.tolist() == [
        ["L1", "TARGET", "LIVER"], ["P1", "TARGET", "LUNG"], ["N1", "NON-TARGET", "MEDIASTINAL NODE"]]
    assert refnot["TR"][["TRLNKID", "TRSTRESC"]].values.tolist() == [
        ["L1", "42"], ["P1", "18"], ["N1", "PRESENT"], ["L1", "30"], ["P1", "12"], ["N1", "PRESENT"]]
    assert set(refnot["RELREC"]["RDOMAIN"]) == {"TU", "TR"}
    nbnk_package = package("NB-NK-2026")
    assert nbnk_package["TR"][["TRLNKID", "TRTESTCD", "TRSTRESC", "TRDTC"]].values.tolist()[-4:] == [
        ["PRIMARY", "DIAMETER", "40", "2026-11-21"], ["MARROW", "TUMINFPC", "3", "2026-11-21"],
        ["MIBG", "CURIESC", "4", "2026-11-21"], ["NEW01", "TUMSTATE", "PRESENT", "2026-11-21"]]
    assert nbnk_package["CM"][["CMTRT", "CMSCAT"]].values.tolist() == [["GPOH N5/N6 induction", "PRIOR"]]
    # The INRC 2017 time point's overall response in RS: a new lesion at a MIBG-avid bone site
    # is progressive disease (INRC 2017, Park et al., J Clin Oncol 2017;35:2580).
    rs = nbnk_package["RS"]
    assert rs[["RSTESTCD", "RSCAT", "RSSTRESC", "RSDTC", "RSSEQ"]].values.tolist() == [
        ["OVRLRESP", "INRC 2017", "PD", "2026-11-21", "1"]]

"""CDISC ODM 1.3.2: the NB-NK-2026 example trial exported passes odmlib's ODM 1.3.2 checks,
its metadata follows the protocol, and its clinical data read back equal what went in."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from examplekit import EXAMPLES, Inputs, nbnk, read_csv
from trialdesk.cli import app
from trialdesk.errors import OutcomeError
from trialdesk.outcomes.events import validate_event_table
from trialdesk.outcomes.export_odm import check_odm, eligibility_facts, odm_xml, read_odm
from trialdesk.outcomes.inputs import (
    validate_adverse_events,
    validate_exposure,
    validate_labs,
    validate_measurements,
)

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3"}


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    return nbnk()


@pytest.fixture(scope="module")
def document(inputs: Inputs) -> bytes:
    return odm_xml(inputs.compiled.protocol, inputs.events, facts=eligibility_facts(inputs.compiled.rules),
                   aes=inputs.aes, labs=inputs.labs, measurements=inputs.measurements,
                   exposure=inputs.exposure, created=datetime(2026, 12, 1, 9, 0))


def test_the_file_passes_odmlibs_odm_132_checks(document: bytes) -> None:
    assert check_odm(document) == []
    broken = document.replace(b'FormOID="F.AE"', b'FormOID="F.NOSUCH"', 1)
    assert any("F.NOSUCH" in problem for problem in check_odm(broken))


def test_metadata_follows_the_protocol(document: bytes) -> None:
    root = ET.fromstring(document)
    events = {e.get("OID"): e.get("Repeating") for e in root.iterfind(".//odm:StudyEventDef", NS)}
    # nb-nk-2026.yaml: courses IT and DIT; response assessed every two courses.
    assert events == {"SE.SCREENING": "No", "SE.ENROL": "No", "SE.COURSE.IT": "Yes", "SE.COURSE.DIT": "Yes",
                      "SE.ASSESS": "Yes", "SE.LOG": "No"}
    elig = [i.get("Name") for i in root.iterfind(".//odm:ItemDef", NS)
            if str(i.get("OID")).startswith("IT.ELIG.")]
    assert "age_years" in elig and len(elig) == len(set(elig)) > 5
    subjects = [s.get("SubjectKey") for s in root.iterfind(".//odm:SubjectData", NS)]
    assert subjects == [f"NB-{n:02d}" for n in range(1, 13)]
    nb01_courses = [(e.get("StudyEventOID"), e.get("StudyEventRepeatKey"))
                    for e in root.iterfind(".//odm:SubjectData[@SubjectKey='NB-01']/odm:StudyEventData", NS)
                    if str(e.get("StudyEventOID")).startswith("SE.COURSE")]
    assert nb01_courses == [("SE.COURSE.IT", "1"), *[("SE.COURSE.DIT", str(n)) for n in range(2, 6)]]


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, dtype=object)


def test_export_import_round_trip_is_equal(inputs: Inputs, document: bytes) -> None:
    back = read_odm(document, trial="NB-NK-2026")
    events = validate_event_table(_frame(back["events"]), arms=["A", "B"])
    pd.testing.assert_frame_equal(events.frame[inputs.events.frame.columns], inputs.events.frame)
    pairs = [(validate_exposure(_frame(back["exposure"]), events).frame, inputs.exposure.frame),
             (validate_labs(_frame(back["labs"]), events).frame, inputs.labs.frame),
             (validate_measurements(_frame(back["tumour"]), events).frame, inputs.measurements.frame)]
    for got, want in pairs:
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    aes = validate_adverse_events(back["adverse_events"], events)
    assert [(r.patient_id, r.course, r.event) for r in aes.records] == [
        (r.patient_id, r.course, r.event) for r in inputs.aes.records]
    assert len(aes.records) == 99


def test_another_trials_file_is_refused(document: bytes) -> None:
    with pytest.raises(OutcomeError, match=r"not ST\.RuMCeSS"):
        read_odm(document, trial="RuMCeSS")
    with pytest.raises(OutcomeError, match="not a readable ODM"):
        read_odm(b"<ODM", trial="NB-NK-2026")


def test_cli_export_then_import_gives_the_same_inputs(tmp_path: Path) -> None:
    runner = CliRunner()
    files = ["--events", EXAMPLES / "nb-nk-2026-events.csv", "--aes", EXAMPLES / "nb-nk-2026-aes.json",
             "--exposure", EXAMPLES / "nb-nk-2026-exposure.csv", "--labs", EXAMPLES / "nb-nk-2026-labs.csv"]
    result = runner.invoke(app, [str(a) for a in ["export", "odm", "--trial", "NB-NK-2026", *files,
                                                  "--out", tmp_path / "odm"]])
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(app, ["import", "odm", str(tmp_path / "odm" / "nb-nk-2026-odm.xml"),
                                 "--trial", "NB-NK-2026", "--out", str(tmp_path / "in")])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["aes.json", "events.csv", "exposure.csv",
                                                                   "labs.csv"]
    original = validate_event_table(read_csv(EXAMPLES / "nb-nk-2026-events.csv"), arms=["A", "B"]).frame
    again = validate_event_table(read_csv(tmp_path / "in" / "events.csv"), arms=["A", "B"]).frame
    pd.testing.assert_frame_equal(again[original.columns], original)

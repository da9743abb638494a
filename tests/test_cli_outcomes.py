"""The outcome commands: outcomes, plot, report dsmb, export; bad input as one block with
exit 1 and nothing written; the example files are what make_examples.py writes."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from pypdf import PdfReader
from typer.testing import CliRunner

from trialdesk.cli import app, write_atomic
from trialdesk.outcomes.events import read_event_table
from trialdesk.outcomes.export_fhir import parse_bundle
from trialdesk.outcomes.summary import endpoints_for, summarise
from trialdesk.protocol.load import default_protocol_dir

runner = CliRunner()
EXAMPLES = default_protocol_dir().parent / "examples" / "outcomes"
NB_EVENTS = EXAMPLES / "nb-nk-2026-events.csv"
NB_AES = EXAMPLES / "nb-nk-2026-aes.json"
NB_TUMOUR = EXAMPLES / "nb-nk-2026-tumour.csv"
NB_EXPOSURE = EXAMPLES / "nb-nk-2026-exposure.csv"
NB_LABS = EXAMPLES / "nb-nk-2026-labs.csv"
RU_EVENTS = EXAMPLES / "rumcess-events.csv"
BAD_EVENTS = (
    "patient_id,arm,enrolment_date,death_date,last_contact_date\n"
    "P1,A,2026-01-10,2026-01-05,\n"
    "P1,C,2026-01-10,,2026-02-01\n"
    "P3,B,2026/01/10,,2026-03-01\n"
)


def run(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def bad_events(tmp_path: Path) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_EVENTS, encoding="utf-8")
    return path


# --- outcomes -------------------------------------------------------------------------------


def test_outcomes_json_for_nb_nk_2026() -> None:
    code, out, _ = run("outcomes", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "trialdesk.outcomes/1"
    assert doc["time_unit"] == "months" and doc["landmark_times"] == [24.0, 60.0]
    assert [e["key"] for e in doc["endpoints"]] == ["ORR", "OS", "PFS", "RFS"]
    # The numbers are those of the library functions on the same file.
    events = read_event_table(NB_EVENTS, arms=["A", "B"])
    expected = summarise(events, endpoints_for(["ORR", "OS", "PFS", "RFS"]), trial="NB-NK-2026")
    orr = doc["endpoints"][0]
    assert [(s["arm"], s["count"], s["denominator"]) for s in orr["summary"]] == [
        (arm, int(row["count"]), int(row["denominator"]))
        for arm, row in expected.proportions["ORR"].summary.iterrows()
    ]
    os_doc = doc["endpoints"][1]
    assert len(os_doc["patients"]) == len(events)
    assert os_doc["logrank"]["p_value"] == pytest.approx(expected.time_to_event["OS"].logrank.p_value)
    km = expected.time_to_event["OS"].kaplan_meier
    assert km is not None
    assert [k["events"] for k in os_doc["kaplan_meier"]] == km.summary["events"].tolist()


def test_outcomes_for_rumcess_give_28_day_mortality_in_days() -> None:
    code, out, _ = run("outcomes", "--trial", "RuMCeSS", "--events", RU_EVENTS, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["time_unit"] == "days" and doc["landmark_times"] == [28.0]
    mortality = next(e for e in doc["endpoints"] if e["key"] == "MORTALITY")
    assert mortality["name"] == "28-day mortality"
    total = mortality["summary"][-1]
    assert total["arm"] == "all" and total["patients"] == 30
    # Two patients were lost before day 28: not evaluable, out of the denominator.
    assert total["denominator"] == 28
    assert sum(not p["in_denominator"] for p in mortality["patients"]) == 2


def test_outcomes_text_shows_derivations_and_statistics() -> None:
    code, out, _ = run(
        "outcomes",
        "--trial",
        "NB-NK-2026",
        "--events",
        NB_EVENTS,
        "--endpoints",
        "OS,EFS",
        "--landmark",
        "12",
    )
    assert code == 0
    for text in (
        "OS",
        "EFS",
        "Per patient",
        "Totals",
        "Kaplan–Meier median",
        "Landmark survival",
        "log-rank A, B",
        "censored at last contact",
        "NB-12",
    ):
        assert text in out, text


# --- bad input --------------------------------------------------------------------------------


def test_bad_event_table_is_one_block_exit_1_and_nothing_written(bad_events: Path, tmp_path: Path) -> None:
    target = tmp_path / "km.png"
    code, out, err = run("plot", "km", "--trial", "NB-NK-2026", "--events", bad_events, "--out", target)
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == f"error: {bad_events}: 5 problems; nothing was written:"
    assert lines[1:] == [
        "  row 1, patient P1, patient_id: duplicate patient (rows 1, 2)",
        "  row 1, patient P1, death_date: 2026-01-05 is before enrolment_date 2026-01-10",
        "  row 2, patient P1, patient_id: duplicate patient (rows 1, 2)",
        "  row 2, patient P1, arm: unknown arm 'C' (allowed: A, B)",
        "  row 3, patient P3, enrolment_date: not an ISO 8601 date: '2026/01/10'",
    ]
    assert not target.exists()
    assert list(tmp_path.iterdir()) == [bad_events]


def test_a_failed_run_leaves_the_previous_file_untouched(bad_events: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.pdf"
    target.write_bytes(b"previous report")
    code, _, _ = run("report", "dsmb", "--trial", "NB-NK-2026", "--events", bad_events, "--out", target)
    assert code == 1
    assert target.read_bytes() == b"previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "report.pdf"]


def test_bad_adverse_events_file_lists_every_record(tmp_path: Path) -> None:
    aes = tmp_path / "aes.json"
    aes.write_text(
        json.dumps(
            {
                "adverse_events": [
                    {"patient_id": "NB-99", "term": "Pain", "grade": 2, "onset": "2027-01-01"},
                    {"patient_id": "NB-01", "term": "Pain", "grade": 7, "onset": "2027-01-01"},
                ]
            }
        )
    )
    code, _, err = run(
        "plot",
        "ae-heatmap",
        "--trial",
        "NB-NK-2026",
        "--events",
        NB_EVENTS,
        "--aes",
        aes,
        "--out",
        tmp_path / "hm.png",
    )
    assert code == 1
    assert err.startswith(f"error: {aes}: 2 problems; nothing was written:")
    assert "row 1, patient NB-99, patient_id: patient 'NB-99' is not in the event table" in err
    assert "row 2, patient NB-01, grade:" in err
    assert not (tmp_path / "hm.png").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert (
        run("plot", "pie", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--out", tmp_path / "x.png")[0]
        == 2
    )
    assert (
        run("plot", "km", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--out", tmp_path / "x.gif")[0] == 2
    )
    assert run("plot", "ae-heatmap", "--trial", "NB-NK-2026", "--out", tmp_path / "x.png")[0] == 2
    assert (
        run("report", "dsmb", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--out", tmp_path / "r.docx")[0]
        == 2
    )
    assert run("export", "xml", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--out", tmp_path)[0] == 2
    assert run("outcomes", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--landmark", "two")[0] == 2
    code, _, err = run("outcomes", "--trial", "NB-NK-2027", "--events", NB_EVENTS)
    assert code == 1 and "did you mean NB-NK-2026?" in err


def test_write_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


# --- plots, report, export -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("km", ["--events", NB_EVENTS, "--endpoint", "PFS"]),
        ("swimmer", ["--events", NB_EVENTS, "--exposure", NB_EXPOSURE, "--tumour", NB_TUMOUR]),
        ("waterfall", ["--events", NB_EVENTS, "--tumour", NB_TUMOUR]),
        ("ae-heatmap", ["--aes", NB_AES]),
    ],
)
def test_each_plot_as_png_and_svg(kind: str, extra: list[object], tmp_path: Path) -> None:
    png, svg = tmp_path / f"{kind}.png", tmp_path / f"{kind}.svg"
    for target in (png, svg):
        code, out, err = run("plot", kind, "--trial", "NB-NK-2026", *extra, "--out", target)
        assert code == 0, err
        assert out == f"wrote {target}\n"
    image = Image.open(io.BytesIO(png.read_bytes()))
    assert image.format == "PNG" and image.width > 800 and image.height > 400
    text = svg.read_text(encoding="utf-8")
    assert text.startswith("<?xml") and "NB-NK-2026" in text


def test_km_plot_of_rumcess_in_days(tmp_path: Path) -> None:
    target = tmp_path / "km.svg"
    assert run("plot", "km", "--trial", "RuMCeSS", "--events", RU_EVENTS, "--out", target)[0] == 0
    text = target.read_text(encoding="utf-8")
    for label in ("Days since enrolment", "At risk", "Arm MSC (n=15)", "Arm SOC (n=15)", "log-rank p = "):
        assert label in text, label


def test_dsmb_report_for_nb_nk_2026(tmp_path: Path) -> None:
    target = tmp_path / "dsmb.pdf"
    code, _, err = run(
        "report",
        "dsmb",
        "--trial",
        "NB-NK-2026",
        "--events",
        NB_EVENTS,
        "--aes",
        NB_AES,
        "--responses",
        NB_TUMOUR,
        "--exposure",
        NB_EXPOSURE,
        "--stopping",
        EXAMPLES / "nb-nk-2026-stopping.json",
        "--cutoff",
        "2028-06-30",
        "--out",
        target,
    )
    assert code == 0, err
    reader = PdfReader(io.BytesIO(target.read_bytes()))
    assert len(reader.pages) == 17
    text = "\n".join(p.extract_text() for p in reader.pages)
    for needle in (
        "NB-NK-2026: report to the Data and Safety Monitoring Board",
        "Data cut-off: 2028-06-30",
        "2. Exposure",
        "dinutuximab beta",
        "5. Serious adverse events",
        "7. Stopping rules",
        "NBNK-STOP-TRD",
        "placeholder (protocol rule not public)",
        "[unconfirmed]",
        "RFS — NB-NK-2026",
        "Best change in tumour size — NB-NK-2026",
    ):
        assert needle in text, needle


def test_export_sdtm_writes_valid_csv_datasets(tmp_path: Path) -> None:
    out = tmp_path / "sdtm"
    code, stdout, err = run(
        "export",
        "sdtm",
        "--trial",
        "NB-NK-2026",
        "--events",
        NB_EVENTS,
        "--aes",
        NB_AES,
        "--tumour",
        NB_TUMOUR,
        "--exposure",
        NB_EXPOSURE,
        "--labs",
        NB_LABS,
        "--format",
        "csv",
        "--out",
        out,
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        f"{n}.csv" for n in sorted(["ae", "dm", "ds", "ex", "lb", "rs", "se", "suppae", "sv", "ta", "te",
                                    "ti", "tr", "ts", "tv"])
    ]
    dm = pd.read_csv(out / "dm.csv", dtype=str, keep_default_na=False)
    assert len(dm) == 12 and set(dm["DOMAIN"]) == {"DM"}
    assert dm.loc[0, "ARM"] == "Arm A: patients with a refractory disease"
    ae = pd.read_csv(out / "ae.csv", dtype=str, keep_default_na=False)
    assert set(ae["AETOXGR"]) <= {"1", "2", "3", "4", "5"}
    assert "wrote" in stdout


def test_export_sdtm_writes_an_xpt_package_with_define_xml(tmp_path: Path) -> None:
    from trialdesk.outcomes.sdtm_package import check_define, read_xpt

    out = tmp_path / "sdtm"
    code, _, err = run("export", "sdtm", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--aes", NB_AES,
                       "--exposure", NB_EXPOSURE, "--out", out)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ae.xpt", "define.xml", "dm.xpt", "ds.xpt", "ex.xpt", "reviewers-guide.md", "rs.xpt",
                     "se.xpt", "suppae.xpt", "sv.xpt", "ta.xpt", "te.xpt", "ti.xpt", "ts.xpt", "tv.xpt"]
    assert check_define((out / "define.xml").read_bytes()) == []
    dm, labels = read_xpt((out / "dm.xpt").read_bytes())
    assert len(dm) == 12 and labels["ACTARM"] == "Description of Actual Arm"
    code, _, err = run("export", "sdtm", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--format", "sas",
                       "--out", tmp_path / "x")
    assert code == 2 and "choose xpt or csv" in err


def test_export_sdtm_refuses_uncoded_events_and_writes_nothing(tmp_path: Path) -> None:
    aes = tmp_path / "aes.json"
    aes.write_text(json.dumps([{"patient_id": "NB-01", "term": "Pain", "grade": 2, "onset": "2026-03-10"}]))
    out = tmp_path / "sdtm"
    code, _, err = run(
        "export", "sdtm", "--trial", "NB-NK-2026", "--events", NB_EVENTS, "--aes", aes, "--out", out
    )
    assert code == 1
    assert "SDTMIG v3.4: 1 SDTM conformance problem(s):" in err
    assert "AE.AEDECOD row 1: Req variable has no value" in err
    assert not out.exists()


def test_export_fhir_bundle_parses_back(tmp_path: Path) -> None:
    out = tmp_path / "fhir"
    code, _, err = run(
        "export",
        "fhir",
        "--trial",
        "NB-NK-2026",
        "--events",
        NB_EVENTS,
        "--aes",
        NB_AES,
        "--tumour",
        NB_TUMOUR,
        "--out",
        out,
    )
    assert code == 0, err
    bundle = parse_bundle((out / "bundle.json").read_bytes())
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds.count("ResearchSubject") == 12
    assert kinds.count("AdverseEvent") == len(json.loads(NB_AES.read_text())["adverse_events"])


# --- examples ---------------------------------------------------------------------------------


def test_examples_are_what_the_generator_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in (".csv", ".json"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name

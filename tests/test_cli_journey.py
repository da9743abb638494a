"""The patient journey on the command line: consent, enrol, randomise, calendar, record.

Every refusal is one line on stderr with exit code 1, and leaves every file as it was.
Dates are fixed and lie before the day the suite runs (the example patients are dated up
to 2026-11-21; nothing may be recorded in the future).
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar as ICalendar
from typer.testing import CliRunner

from trialdesk.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "patients"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def refused(data: Path, *args: str, message: str) -> str:
    """Run a command that must be refused: one line, exit 1, no file changed."""
    before = snapshot(data) if data.exists() else {}
    code, out, err = run(*args)
    assert code == 1, (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert (snapshot(data) if data.exists() else {}) == before
    return err


def patient_file(tmp: Path, name: str, change: Any = None) -> Path:
    data = json.loads((EXAMPLES / f"{name}.json").read_text())
    if change:
        change(data)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    path = tmp / f"{name}-{digest}.json"
    path.write_text(json.dumps(data))
    return path


def consent_nb(data: Path, patient: Path = EXAMPLES / "nb-refractory.json") -> None:
    code, out, err = run("consent", patient, "--trial", "NB-NK-2026", "--version", "1.0",
                         "--signed-on", "2026-11-18", "--signed-by", "parent", "--by",
                         "coordinator", "--on", "2026-11-18T10:00", "--data", data)
    assert code == 0, err
    assert "consent v1.0 signed 2026-11-18 by parent recorded for NB-001 (age 7)" in out


def enrol_nb(data: Path, *extra: str) -> str:
    consent_nb(data)
    code, out, err = run("enrol", EXAMPLES / "nb-refractory.json", "--trial", "NB-NK-2026",
                         "--by", "Dr Investigator", "--on", "2026-11-21T12:00", "--data", data,
                         *extra)
    assert code == 0, err
    return out


def calendar_json(data: Path, patient: str, trial: str, as_of: str) -> dict[str, Any]:
    code, out, err = run("calendar", patient, "--trial", trial, "--as-of", as_of, "--json",
                         "--data", data)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def event(doc: dict[str, Any], event_id: str) -> dict[str, Any]:
    return next(e for e in doc["events"] if e["id"] == event_id)


# ---------------------------------------------------------------------------- NB-NK-2026


def test_nb_journey_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = enrol_nb(data, "--start", "2026-11-19")
    assert "arm A by the protocol's assignment rule" in out
    journey = json.loads((data / "NB-NK-2026" / "journeys" / "NB-001.json").read_text())
    assert journey["schema_version"] == "trialdesk.journey/1"
    assert journey["enrolment"]["screening"]["document"]["verdict"] == "eligible"
    assert journey["body"][0] == {"on": "2026-11-16", "weight_kg": 21.4, "height_cm": 118.0,
                                  "source": str(EXAMPLES / "nb-refractory.json")}
    # Start 2026-11-19: day −1 = 11-18 (the consent day), course 2 on day 22 = 2026-12-10.
    doc = calendar_json(data, "NB-001", "NB-NK-2026", "2026-11-21T12:00")
    assert (doc["arm"], doc["start"]) == ("A", "2026-11-19")
    assert event(doc, "mononuclear-cell-collection")["date"] == "2026-11-18"
    assert event(doc, "c2")["date"] == "2026-12-10"
    assert event(doc, "c1.irinotecan.d1")["dose"]["shown"] == "42.0 mg/day"
    assert event(doc, "c1.irinotecan.d1")["status"] == "missed"
    assert event(doc, "c1.irinotecan.d3")["status"] == "due"
    # What happened: day 1 given on time, day 2 given a day late, temozolomide withheld.
    for args in (("c1.irinotecan.d1", "--status", "given", "--dose", "42", "--at",
                  "2026-11-19T09:00"),
                 ("c1.irinotecan.d2", "--status", "given", "--dose", "40", "--at",
                  "2026-11-21T09:00"),
                 ("c1.temozolomide.d1", "--status", "withheld", "--reason", "vomiting",
                  "--at", "2026-11-19T09:30")):
        code, out, err = run("record", "event", "NB-001", *args, "--trial", "NB-NK-2026",
                             "--by", "nurse", "--data", data)
        assert code == 0, err
    doc = calendar_json(data, "NB-001", "NB-NK-2026", "2026-11-21T12:00")
    assert event(doc, "c1.irinotecan.d1")["status"] == "given"
    late = event(doc, "c1.irinotecan.d2")
    assert late["status"] == "given" and late["out_of_window"]
    assert "actual 40 mg" in late["status_note"] and "planned 42.0 mg/day" in late["status_note"]
    assert event(doc, "c1.temozolomide.d1")["status"] == "withheld"
    # Course 2 delayed 7 days: 2026-12-10 → 12-17, NK day 7 → 12-23, course 5 (day 85 =
    # 2027-02-11) → 2027-02-18; day −1 and course 1 stay.
    code, out, err = run("record", "delay", "NB-001", "--trial", "NB-NK-2026", "--course", "2",
                         "--days", "7", "--reason", "neutrophils not recovered", "--by",
                         "Dr Investigator", "--on", "2026-11-21", "--data", data)
    assert code == 0, err
    doc = calendar_json(data, "NB-001", "NB-NK-2026", "2026-11-21T12:00")
    assert [event(doc, f"c{n}")["date"] for n in (1, 2, 5)] == [
        "2026-11-19", "2026-12-17", "2027-02-18"]
    assert event(doc, "c2.autologous-nk-cells.d7")["date"] == "2026-12-23"
    assert event(doc, "c2.autologous-nk-cells.d7")["dose"]["shown"] == "not set (cells/kg) [unconfirmed]"
    # Weight falls to 19.0 kg (−11.2%) before course 3: from course 3, BSA 0.79 m²,
    # irinotecan 39.5 mg; course 2 keeps 42.0 mg.
    code, _, err = run("record", "body", "NB-001", "--trial", "NB-NK-2026", "--on", "2026-11-21",
                       "--weight", "19.0", "--data", data)
    assert code == 0, err
    doc = calendar_json(data, "NB-001", "NB-NK-2026", "2026-11-21T12:00")
    assert event(doc, "c2.irinotecan.d1")["dose"]["amount"] == 39.5
    assert event(doc, "c1.irinotecan.d4")["dose"]["amount"] == 42.0
    assert any("doses recomputed, weight 21.4 → 19 kg (-11.2%" in n for n in doc["dose_notes"])


def test_nb_calendar_table_and_ics(tmp_path: Path) -> None:
    data = tmp_path / "data"
    enrol_nb(data, "--start", "2026-11-19")
    ics = tmp_path / "nb.ics"
    code, out, err = run("calendar", "NB-001", "--trial", "NB-NK-2026", "--as-of", "2026-11-21",
                         "--ics", ics, "--data", data)
    assert code == 0, err
    for text in ("NB-NK-2026 v1.0", "arm A", "Dose working", "c2.autologous-nk-cells.d7",
                 "not set (cells/kg)", "Unconfirmed values used", "42.0 mg/day", "missed",
                 f"iCalendar written to {ics}"):
        assert text in out, text
    parsed = ICalendar.from_ical(ics.read_bytes())
    summaries = [str(e["SUMMARY"]) for e in parsed.walk("VEVENT")]
    assert len(summaries) == 1 + 5 + 25 + 25 + 20 + 4 + 2  # day −1, courses, doses, assessments
    assert any("course 2: autologous NK cells IV — not set" in s for s in summaries)


def test_override_is_kept_and_shown(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lvef_50 = patient_file(tmp_path, "nb-refractory", lambda d: d["observations"].append(
        {"name": "lvef", "value": 50, "unit": "%", "date": "2026-11-17"}))
    consent_nb(data, lvef_50)
    refused(data, "enrol", lvef_50, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
            "2026-11-21T12:00", "--data", data,
            message="the screening verdict is ineligible; enrolment needs an investigator's "
                    "override with a reason")
    code, out, err = run("enrol", lvef_50, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
                         "2026-11-21T12:00", "--override-by", "Dr B", "--override-reason",
                         "repeat echo 58%", "--start", "2026-11-19", "--data", data)
    assert code == 0, err
    assert "ENROLLED BY OVERRIDE of a ineligible screening: Dr B: repeat echo 58%" in out
    code, out, _ = run("calendar", "NB-001", "--trial", "NB-NK-2026", "--as-of", "2026-11-21",
                       "--data", data)
    assert "ENROLLED BY OVERRIDE" in out
    doc = calendar_json(data, "NB-001", "NB-NK-2026", "2026-11-21")
    assert doc["notes"][0].startswith("ENROLLED BY OVERRIDE")


# ---------------------------------------------------------------------------- RuMCeSS


def enrol_rumcess(data: Path, patient: Path = EXAMPLES / "rumcess-eligible.json") -> str:
    code, _, err = run("consent", patient, "--trial", "RuMCeSS", "--version", "1.0",
                       "--signed-on", "2026-11-21", "--signed-by", "legal_representative",
                       "--by", "icu", "--on", "2026-11-21T07:30", "--data", data)
    assert code == 0, err
    code, out, err = run("enrol", patient, "--trial", "RuMCeSS", "--by", "Dr ICU", "--on",
                         "2026-11-21T08:00", "--start", "2026-11-21", "--data", data)
    assert code == 0, err
    return out


def generate(data: Path, seed: str = "20130507") -> str:
    code, out, err = run("randomisation", "generate", "RuMCeSS", "--seed", seed, "--data", data)
    assert code == 0, err
    return out


def test_randomisation_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    one, two, other = tmp_path / "one", tmp_path / "two", tmp_path / "other"
    generate(one)
    generate(two)
    generate(other, "20130508")
    path = Path("RuMCeSS") / "randomisation" / "R1.list.json"
    assert (one / path).read_bytes() == (two / path).read_bytes()
    first = json.loads((one / path).read_text())
    assert first["seed"] == 20130507 and first["size_per_stratum"] == 30  # registry: 30
    assert json.loads((other / path).read_text())["digest"] != first["digest"]
    # The same patients randomised in the same order get the same arms in both.
    arms = []
    for data in (one, two):
        for n in (1, 2, 3):
            patient = patient_file(tmp_path, "rumcess-eligible",
                                   lambda d, n=n: d.update(patient_id=f"RU-00{n}"))
            enrol_rumcess(data, patient)
            code, _, err = run("randomise", f"RU-00{n}", "--trial", "RuMCeSS", "--at",
                               f"2026-11-21T09:0{n}+03:00", "--data", data)
            assert code == 0, err
        log = json.loads((data / "RuMCeSS" / "randomisation" / "R1.log.json").read_text())
        arms.append([a["arm"] for a in log["allocations"]])
    assert arms[0] == arms[1] == [e["arm"] for e in first["entries"][:3]]


def test_randomisation_is_concealed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = generate(data)
    assert "MSC" not in out and "SOC" not in out  # no entry is shown
    listed = data / "RuMCeSS" / "randomisation" / "R1.list.json"
    assert stat.S_IMODE(listed.stat().st_mode) == 0o600
    lst = json.loads(listed.read_text())
    refused(data, "randomisation", "generate", "RuMCeSS", "--seed", "1", "--data", data,
            message="a sealed list is never replaced")
    enrol_rumcess(data)
    code, out, err = run("randomise", "RU-001", "--trial", "RuMCeSS", "--at",
                         "2026-11-21T09:00+03:00", "--data", data)
    assert code == 0, err
    arm = lst["entries"][0]["arm"]
    other = "SOC" if arm == "MSC" else "MSC"
    assert f"randomised to arm {arm}" in out and other not in out
    assert "block" not in out
    # Verification of a list edited in an entry not yet allocated does not reveal its arm.
    entries = lst["entries"]
    entries[5]["arm"] = "SOC" if entries[5]["arm"] == "MSC" else "MSC"
    listed.write_text(json.dumps(lst))
    code, out, _ = run("randomisation", "verify", "RuMCeSS", "--data", data)
    assert code == 1
    line = next(x for x in out.splitlines() if "entry 6" in x)
    assert line.endswith("entry differs from the seed") and "MSC" not in line


def test_verify_detects_a_tampered_list_and_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(data)
    enrol_rumcess(data)
    code, _, err = run("randomise", "RU-001", "--trial", "RuMCeSS", "--at",
                       "2026-11-21T09:00+03:00", "--data", data)
    assert code == 0, err
    code, out, _ = run("randomisation", "verify", "RuMCeSS", "--data", data)
    assert code == 0 and "OK: the list is the one generated from its seed" in out
    assert "32 entries, 1 allocations checked" in out  # whole blocks ≥ 30
    rand = data / "RuMCeSS" / "randomisation"
    good_list, good_log = (rand / "R1.list.json").read_bytes(), (rand / "R1.log.json").read_bytes()
    # 1. an entry swapped in the list
    lst = json.loads(good_list)
    lst["entries"][0]["arm"] = "SOC" if lst["entries"][0]["arm"] == "MSC" else "MSC"
    (rand / "R1.list.json").write_text(json.dumps(lst))
    code, out, _ = run("randomisation", "verify", "RuMCeSS", "--data", data)
    assert code == 1 and "digest mismatch" in out
    # 2. the same, with the digest recomputed to match: regeneration from the seed finds it
    from trialdesk.enrolment.randomisation import AllocationList, _digest_of

    forged = AllocationList.model_validate(lst)
    forged = forged.model_copy(update={"digest": _digest_of(forged)})
    (rand / "R1.list.json").write_text(forged.model_dump_json())
    code, out, _ = run("randomisation", "verify", "RuMCeSS", "--data", data)
    assert code == 1 and "entry 1: entry differs from the seed" in out
    # 3. the list intact, the logged arm edited
    (rand / "R1.list.json").write_bytes(good_list)
    log = json.loads(good_log)
    log["allocations"][0]["arm"] = "SOC" if log["allocations"][0]["arm"] == "MSC" else "MSC"
    (rand / "R1.log.json").write_text(json.dumps(log))
    code, out, _ = run("randomisation", "verify", "RuMCeSS", "--data", data)
    assert code == 1 and "patient RU-001" in out and "differs from the list" in out
    # ... and no one can be randomised from a log that does not verify
    other = patient_file(tmp_path, "rumcess-eligible", lambda d: d.update(patient_id="RU-002"))
    enrol_rumcess(data, other)
    refused(data, "randomise", "RU-002", "--trial", "RuMCeSS", "--at", "2026-11-21T10:00+03:00",
            "--data", data, message="the allocation log does not match the list")


def test_rumcess_calendar_after_randomisation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(data)
    arm = json.loads((data / "RuMCeSS" / "randomisation" / "R1.list.json").read_text(
        ))["entries"][0]["arm"]
    enrol_rumcess(data)
    code, _, err = run("randomise", "RU-001", "--trial", "RuMCeSS", "--at",
                       "2026-11-21T09:00+03:00", "--data", data)
    assert code == 0, err
    doc = calendar_json(data, "RU-001", "RuMCeSS", "2026-11-21T12:00")
    assert doc["arm"] == arm
    assert doc["anchors"] == {"septic_shock_onset": "2026-11-21T06:00"}  # from the patient file
    assert event(doc, "28-day-mortality.d28")["date"] == "2026-12-19"  # day 0 = 2026-11-21
    if arm == "MSC":
        msc = event(doc, "msc-infusion")
        assert msc["deadline"] == "2026-11-21T16:00" and msc["status"] == "due"
        assert msc["dose"]["shown"] == "71 × 10⁶ – 142 × 10⁶ cells"


# ---------------------------------------------------------------------------- bad input


def test_bad_input_is_refused_with_one_line_and_nothing_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    nb = EXAMPLES / "nb-refractory.json"
    # randomising a patient who is not enrolled (and a trial without randomisation)
    generate(data)
    refused(data, "randomise", "RU-001", "--trial", "RuMCeSS", "--data", data,
            message="patient RU-001: is not enrolled in RuMCeSS; enrol before randomising")
    # enrolment before consent
    refused(data, "enrol", nb, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
            "2026-11-21T12:00", "--data", data, message="no consent recorded for NB-001")
    consent_nb(data)
    # a start date before consent (2026-11-18), and one whose day −1 falls before it
    refused(data, "enrol", nb, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
            "2026-11-21T12:00", "--start", "2026-11-10", "--data", data,
            message="start: 2026-11-10 is before consent (2026-11-18)")
    refused(data, "enrol", nb, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
            "2026-11-21T12:00", "--start", "2026-11-18", "--data", data,
            message="would fall on 2026-11-17, before consent (2026-11-18)")
    code, _, err = run("enrol", nb, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
                       "2026-11-21T12:00", "--data", data)
    assert code == 0, err
    refused(data, "record", "start", "NB-001", "--trial", "NB-NK-2026", "--on", "2026-11-01",
            "--data", data, message="start: 2026-11-01 is before consent (2026-11-18)")
    # a second enrolment of the same patient in the same trial
    refused(data, "enrol", nb, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
            "2026-11-21T13:00", "--data", data,
            message="patient NB-001: is already enrolled in NB-NK-2026 (since 2026-11-21 12:00")
    # a weight of 0 or 400 kg
    refused(data, "record", "body", "NB-001", "--trial", "NB-NK-2026", "--on", "2026-11-20",
            "--weight", "0", "--data", data, message="weight_kg: must be greater than 0 kg")
    refused(data, "record", "body", "NB-001", "--trial", "NB-NK-2026", "--on", "2026-11-20",
            "--weight", "400", "--data", data,
            message="weight_kg: 400.0 kg is above the plausibility limit of 350 kg")
    # randomising a patient of a trial that assigns arms by rule
    refused(data, "randomise", "NB-001", "--trial", "NB-NK-2026", "--data", data,
            message="NB-NK-2026 assigns arms by rule, not by randomisation")
    # a course delay of zero days, an unknown event
    code, _, err = run("record", "start", "NB-001", "--trial", "NB-NK-2026", "--on",
                       "2026-11-19", "--data", data)
    assert code == 0, err
    refused(data, "record", "delay", "NB-001", "--trial", "NB-NK-2026", "--course", "2",
            "--days", "0", "--reason", "x", "--by", "y", "--data", data,
            message="delay.days: Input should be greater than or equal to 1")
    refused(data, "record", "event", "NB-001", "c1.irinotecan.d9", "--trial", "NB-NK-2026",
            "--status", "given", "--dose", "42", "--by", "nurse", "--at", "2026-11-19T09:00",
            "--data", data, message="no event 'c1.irinotecan.d9' on the calendar (did you mean")
    refused(data, "record", "event", "NB-001", "c1.irinotecan.d1", "--trial", "NB-NK-2026",
            "--status", "given", "--dose", "42", "--by", "nurse", "--at", "2026-12-19T09:00",
            "--data", data, message="is after the time it was recorded")


def test_height_missing_for_a_bsa_dose(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # No height (the GFR comes from a measured GFR instead of bedside Schwartz).
    no_height = patient_file(tmp_path, "nb-refractory", lambda d: d.update(observations=[
        o for o in d["observations"] if o["name"] != "height"] + [
        {"name": "measured_gfr", "value": 110, "unit": "mL/min/1.73m2", "date": "2026-11-16"}]))
    consent_nb(data, no_height)
    refused(data, "enrol", no_height, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
            "2026-11-21T12:00", "--start", "2026-11-19", "--data", data,
            message="height_cm: no height recorded; irinotecan is dosed 50 mg/m²")
    journey = json.loads((data / "NB-NK-2026" / "journeys" / "NB-001.json").read_text())
    assert journey["enrolment"] is None  # nothing half-written
    code, _, err = run("enrol", no_height, "--trial", "NB-NK-2026", "--by", "Dr A", "--on",
                       "2026-11-21T12:00", "--data", data)
    assert code == 0, err
    refused(data, "calendar", "NB-001", "--trial", "NB-NK-2026", "--start", "2026-11-19",
            "--data", data, message="no height recorded")
    # A height measured after course 1 starts does not dose course 1 ...
    code, _, err = run("record", "body", "NB-001", "--trial", "NB-NK-2026", "--on",
                       "2026-11-20", "--height", "118", "--data", data)
    assert code == 0, err
    refused(data, "calendar", "NB-001", "--trial", "NB-NK-2026", "--start", "2026-11-19",
            "--data", data, message="(course 1 starting 2026-11-19)")
    # ... one measured before it does.
    code, _, err = run("record", "body", "NB-001", "--trial", "NB-NK-2026", "--on",
                       "2026-11-18", "--height", "118", "--data", data)
    assert code == 0, err
    code, out, err = run("calendar", "NB-001", "--trial", "NB-NK-2026", "--start", "2026-11-19",
                         "--as-of", "2026-11-21", "--json", "--data", data)
    assert code == 0, err
    assert event(json.loads(out), "c1.irinotecan.d1")["dose"]["amount"] == 42.0


@pytest.mark.parametrize("args", [
    ("enrol", "--help"), ("randomise", "--help"), ("calendar", "--help"),
    ("randomisation", "verify", "--help"), ("record", "event", "--help")])
def test_help(args: tuple[str, ...]) -> None:
    code, out, _ = run(*args)
    assert code == 0 and "Usage" in out

"""One record of the trial: the command line works on the database the web application
uses, through the same services, as a database user, with one audit trail.

Command line then web, web then command line (on SQLite and on the test PostgreSQL server),
permissions on the command line, journal files brought over once, and every refusal one
line on stderr with exit code 1 and nothing written.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import WebApp
from trialdesk.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "patients"
JOURNAL = Path(__file__).resolve().parent / "data" / "journal"
runner = CliRunner()


class Cli:
    """The command line on one database."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.env = {"TRIALDESK_DATABASE_URL": url, "TRIALDESK_DATA_DIR": str(tmp / "data"),
                    "TRIALDESK_PASSWORD": "", "TRIALDESK_USER": ""}

    def __call__(self, *args: Any, password: str | None = None) -> tuple[int, str, str]:
        env = dict(self.env)
        if password is not None:
            env["TRIALDESK_PASSWORD"] = password
        result = runner.invoke(app, [str(a) for a in args], env=env)
        return result.exit_code, result.stdout, result.stderr

    def ok(self, *args: Any, password: str | None = None) -> str:
        code, out, err = self(*args, password=password)
        assert code == 0, (args, out, err)
        return out


def audit_count(w: WebApp) -> int:
    return w.store.verify_audit().entries


def refused(cli: Cli, w: WebApp, *args: Any, message: str, password: str | None = None) -> str:
    """A refusal: exit 1, one line on stderr naming the reason, nothing written."""
    before = audit_count(w)
    code, out, err = cli(*args, password=password)
    assert code == 1, (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert audit_count(w) == before
    return err


def registered(out: str) -> str:
    found = re.search(r"registered as (\S+) in", out)
    assert found, out
    return found.group(1)


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> tuple[WebApp, Cli]:
    """The demo application on SQLite or PostgreSQL with its clock at the real time, and the
    command line on the same database."""
    w = WebApp(database_url)
    w.clock.at = datetime.now(UTC)
    return w, Cli(database_url, tmp_path)


def test_command_line_then_web(live: tuple[WebApp, Cli]) -> None:
    w, cli = live
    today = datetime.now(UTC).date().isoformat()
    nb = registered(cli.ok("patients", "import", EXAMPLES / "nb-refractory.json", "--trial",
                           "NB-NK-2026", "--site", "Moscow", "--by", "coordinator",
                           "--name", "Cli Patient", "--hospital-number", "H-77"))
    cli.ok("consent", nb, "--version", "1.0", "--signed-on", "2026-11-18", "--signed-by",
           "parent", "--by", "coordinator")
    out = cli.ok("enrol", nb, "--by", "investigator", "--on", "2026-11-21T12:00", "--start",
                 "2026-11-23", password="investigator-demo")
    assert "eligible, arm A" in out and "arm A by the protocol's assignment rule" in out
    cli.ok("record", "event", nb, "c1.irinotecan.d1", "--status", "given", "--dose", "42",
           "--at", "2026-11-23T10:00", "--by", "pharmacist")
    ae = cli.ok("ae", "record", nb, "--term", "Neutrophil count decreased", "--onset", today,
                "--lab-value", "400", "--lab-unit", "/mm3", "--lln", "1800", "--by",
                "coordinator")
    assert "Neutrophil count decreased grade 4" in ae
    ru = registered(cli.ok("patients", "import", EXAMPLES / "rumcess-eligible.json", "--trial",
                           "RuMCeSS", "--site", "Moscow", "--by", "coordinator"))
    cli.ok("consent", ru, "--version", "2.0", "--signed-on", "2026-11-21", "--signed-by",
           "legal_representative", "--by", "coordinator")
    cli.ok("enrol", ru, "--by", "investigator", "--on", "2026-11-21T12:00",
           password="investigator-demo")
    shown = cli.ok("randomise", ru, "--by", "coordinator")
    arm = re.search(r"randomised to arm (\S+) at", shown)
    assert arm, shown

    # The web application sees the same patients, calendar, allocation and adverse event.
    c: Any = w.client("coordinator")
    page = c.get(f"/api/patients/{nb}").json()
    assert page["enrolment"]["arm"] == "A"
    assert page["identifiers"]["hospital_number"] == "H-77"
    calendar = c.get(f"/api/patients/{nb}/calendar").json()
    given = {e["id"]: e for e in calendar["calendar"]["events"]}["c1.irinotecan.d1"]
    assert given["status"] == "given"
    aes = c.get(f"/api/patients/{nb}/adverse-events").json()["items"]
    assert [(a["term"], a["grade"]) for a in aes] == [("Neutrophil count decreased", 4)]
    assert aes[0]["recorded_by"] == "coordinator"
    web_alloc = c.get(f"/api/patients/{ru}").json()["journey"]["allocation"]
    assert web_alloc["arm"] == arm.group(1)
    html = c.get(f"/patients/{nb}")
    assert html.status_code == 200 and nb in html.text
    # One audit trail, with the command line's entries in it, intact.
    monitor: Any = w.client("monitor")
    trail = monitor.get(f"/api/patients/{nb}/audit?limit=200").json()["items"]
    assert {"coordinator", "investigator", "pharmacist"} <= {e["user"] for e in trail}
    assert "audit trail intact" in cli.ok("audit", "verify")


def test_a_dose_corrected_on_the_command_line(web: WebApp, tmp_path: Path) -> None:
    """NBNK-0001's day-1 irinotecan is recorded as given in the demo (42.0 mg/day planned)."""
    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    out = cli.ok("record", "correct-dose", "NBNK-0001", "c1.irinotecan.d1", "--dose", "40",
                 "--lot", "IRI-7", "--reason", "pump log says 40 mg", "--by", "coordinator")
    assert "c1.irinotecan.d1 corrected: given, 40 mg" in out
    record = next(r for r in web.store.journey("NBNK-0001").records
                  if r["event_id"] == "c1.irinotecan.d1")
    assert (record["amount"], record["details"]["lot"], record["by"]) == (40.0, "IRI-7",
                                                                       "Demo Nurse")
    refused(cli, web, "record", "correct-dose", "NBNK-0001", "c1.irinotecan.d1", "--status",
            "partly_given", "--dose", "42", "--why", "reaction", "--reason", "x", "--by",
            "coordinator",
            message="Actual dose: a partly given dose is below the planned")
    refused(cli, web, "record", "correct-dose", "NBNK-0001", "c1.irinotecan.d3", "--dose",
            "40", "--reason", "x", "--by", "coordinator", message="is not recorded yet")


def test_web_then_command_line(live: tuple[WebApp, Cli]) -> None:
    w, cli = live
    c: Any = w.client("pharmacist")
    doc = json.loads(cli.ok("calendar", "NBNK-0001", "--by", "coordinator", "--json"))
    planned = [e for e in doc["events"] if e["id"].startswith("c1.irinotecan.d")
               and e["status"] != "given"]
    target = planned[0]["id"]
    r = c.post("/api/patients/NBNK-0001/records", headers={"x-csrf-token": c.csrf},
               json={"event_id": target, "status": "given", "at": "2026-11-26T09:00:00",
                     "amount": 42, "unit": "mg", "reason": "given on the ward"})
    assert r.status_code == 201, r.text
    doc = json.loads(cli.ok("calendar", "NBNK-0001", "--by", "coordinator", "--json"))
    assert {e["id"]: e["status"] for e in doc["events"]}[target] == "given"
    listed = json.loads(cli.ok("ae", "list", "NBNK-0001", "--by", "investigator", "--json"))
    web_aes = w.client("investigator").get(  # type: ignore[attr-defined]
        "/api/patients/NBNK-0001/adverse-events").json()["items"]
    assert [a["id"] for a in listed] == [a["id"] for a in web_aes] and listed
    patients = json.loads(cli.ok("patients", "list", "--by", "monitor", "--json"))
    assert "NBNK-0001" in {p["study_number"] for p in patients["items"]}
    assert "audit trail intact" in cli.ok("audit", "verify")


def test_outcomes_and_exports_of_the_stored_trial(web: WebApp, tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    out = cli.ok("outcomes", "--trial", "NB-NK-2026", "--by", "statistician", "--json")
    summary = json.loads(out)
    assert summary["trial"] == "NB-NK-2026"
    pdf = tmp_path / "dsmb.pdf"
    cli.ok("report", "dsmb", "--trial", "NB-NK-2026", "--out", pdf, "--by", "statistician")
    assert pdf.read_bytes().startswith(b"%PDF")
    cli.ok("export", "fhir", "--trial", "NB-NK-2026", "--out", tmp_path / "fhir", "--by",
           "statistician")
    assert json.loads((tmp_path / "fhir" / "bundle.json").read_text())["resourceType"] == "Bundle"
    # The coordinator is not allowed the de-identified analyses.
    refused(cli, web, "outcomes", "--trial", "NB-NK-2026", "--by", "coordinator",
            message="does not allow export.deidentified")


def test_a_toxicity_action_confirmed_on_the_command_line_changes_the_calendar(
        web: WebApp, tmp_path: Path) -> None:
    """Capillary leak syndrome grade 4 during a DIT course: the protocol proposes to
    discontinue dinutuximab beta; the investigator confirms it with an e-signature and the
    later dinutuximab beta doses are discontinued on the calendar (web and command line)."""
    web.clock.at = datetime.now(UTC)
    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    today = datetime.now(UTC).date()
    start = today.fromordinal(today.toordinal() - 25)  # course 2 (DIT) began on day 22
    record = json.loads((EXAMPLES / "nb-refractory.json").read_text())
    for obs in record["observations"]:
        if obs["name"] in ("weight", "height"):  # measured before course 1
            obs["date"] = start.fromordinal(start.toordinal() - 3).isoformat()
    patient = tmp_path / "nb.json"
    patient.write_text(json.dumps(record))
    nb = registered(cli.ok("patients", "import", patient, "--trial", "NB-NK-2026", "--site",
                           "Moscow", "--by", "coordinator"))
    signed = start.fromordinal(start.toordinal() - 3)  # before the day -1 cell collection
    cli.ok("consent", nb, "--version", "1.0", "--signed-on", signed.isoformat(), "--signed-by",
           "parent", "--by", "coordinator")
    cli.ok("enrol", nb, "--by", "investigator", "--on", "2026-11-21T12:00", "--start",
           start.isoformat(), password="investigator-demo")
    out = cli.ok("ae", "record", nb, "--term", "Capillary leak syndrome", "--grade", "4",
                 "--onset", today.isoformat(), "--serious", "life_threatening", "--by",
                 "investigator", "--json")
    ae = json.loads(out)
    assert ae["course_number"] == 2
    proposed = [a for a in ae["actions"] if a["status"] == "proposed"
                and a["requires_confirmation"]]
    assert [a["kind"] for a in proposed] == ["discontinue_agent"], ae["actions"]
    action = str(proposed[0]["id"])
    refused(cli, web, "safety", "apply", nb, action, "--by", "investigator",
            password="investigator-demo", message="accept_unconfirmed")
    refused(cli, web, "safety", "apply", nb, action, "--by", "coordinator",
            password="coordinator-demo", message="does not allow toxicity.confirm")
    out = cli.ok("safety", "apply", nb, action, "--by", "investigator", "--accept-unconfirmed",
                 password="investigator-demo")
    assert "confirmed and applied" in out
    doc = json.loads(cli.ok("calendar", nb, "--by", "coordinator", "--json"))
    # "for the rest of the course": course 2's dinutuximab beta from the onset (day 5 =
    # today) on; course 3's doses stay planned.
    status = {e["id"]: e["status"] for e in doc["events"]}
    later = [e for e in doc["events"] if e["id"] == "c2.dinutuximab-beta.d5"]
    assert "changed: c2.dinutuximab-beta.d5" in out
    assert status["c2.dinutuximab-beta.d5"] == "discontinued"
    assert status["c3.dinutuximab-beta.d1"] == "planned"
    c: Any = web.client("investigator")
    web_events = {e["id"]: e for e in c.get(f"/api/patients/{nb}/calendar").json()[
        "calendar"]["events"]}
    assert {web_events[e["id"]]["status"] for e in later} == {"discontinued"}
    code, _, err = cli("safety", "apply", nb, action, "--by", "investigator",
                       "--accept-unconfirmed", password="investigator-demo")
    assert code == 1 and "already" in err


def test_permissions_on_the_command_line(web: WebApp, tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    web.add_user("outsider", "coordinator", "REFNOT-R2")
    web.add_user("leaver", "coordinator", "NB-NK-2026")
    web.store.set_active("leaver", False, actor="test", reason="left the trial")
    args = ("record", "body", "NBNK-0001", "--on", "2026-11-21", "--weight", "20")
    refused(cli, web, *args, "--by", "outsider", message="no patient 'NBNK-0001'")
    refused(cli, web, *args, "--by", "leaver", message="user 'leaver' is not active")
    refused(cli, web, *args, "--by", "nobody", message="no user 'nobody'")
    refused(cli, web, *args, "--by", "statistician", message="does not allow")
    # A wrong signature password signs nothing; the failed attempt itself is audited.
    signed = len(web.store.signatures_for("dose", "NBNK-0001/"))
    code, _, err = cli("record", "sign", "NBNK-0001", "c2.irinotecan.d1", "--by", "pharmacist",
                       password="wrong password")
    assert code == 1 and "the password is wrong; nothing was signed" in err
    assert len(web.store.signatures_for("dose", "NBNK-0001/")) == signed
    refused(cli, web, "randomisation", "generate", "RuMCeSS", "--by", "coordinator",
            message="does not allow randomisation.manage")
    # Usage errors are exit 2 before anything is opened.
    code, _, err = cli("record", "event", "NBNK-0001", "c1.irinotecan.d1", "--status", "eaten",
                       "--by", "pharmacist")
    assert code == 2 and "--status" in err


def test_journal_files_are_imported_once(tmp_path: Path) -> None:
    w = WebApp(f"sqlite:///{tmp_path / 'trialdesk.db'}")
    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    args = ("db", "import-journal", JOURNAL, "--patients", EXAMPLES, "--site", "Moscow",
            "--by", "administrator")
    # The demo record already allocated the same list's first entry to its own patient: the
    # file's allocation of that entry is refused before anything is written.
    refused(cli, w, *args, message="entry 1 (stratum site=NRCH) was allocated to RU-001 in "
                                   "the file but to RUMCES-0001 in the record")


def test_journal_import_into_a_new_record(tmp_path: Path) -> None:
    w = WebApp(f"sqlite:///{tmp_path / 'trialdesk.db'}", seed=False)
    from trialdesk.protocol.load import default_protocol_dir
    from trialdesk.services.demo import import_protocols

    import_protocols(w.store, default_protocol_dir())
    for trial in ("NB-NK-2026", "RuMCeSS"):
        w.add_user(f"admin-{trial}", "administrator", trial)
    w.store.add_membership("admin-NB-NK-2026", "RuMCeSS", "administrator", actor="test",
                           reason="test")
    w.add_user("nurse", "coordinator", "NB-NK-2026")
    w.store.add_membership("nurse", "RuMCeSS", "coordinator", actor="test", reason="test")
    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    args = ("db", "import-journal", JOURNAL, "--patients", EXAMPLES, "--site", "Moscow",
            "--by", "admin-NB-NK-2026")
    out = cli.ok(*args)
    assert "NB-001 → NBNK-0001" in out and "RU-001 → RUMCES-0001" in out
    before = audit_count(w)
    again = cli.ok(*args)
    assert "patients imported 0, already present 1" in again
    assert audit_count(w) == before  # nothing imported twice
    # The imported journeys are whole: the record, the delay, the allocation.
    doc = json.loads(cli.ok("calendar", "NBNK-0001", "--by", "nurse", "--json"))
    assert {e["id"]: e["status"] for e in doc["events"]}["c1.irinotecan.d1"] == "given"
    assert [(d["course"], d["days"], d["reason"]) for d in doc["delays"]] == [(2, 7, "ANC 0.4")]
    assert "randomised to arm SOC" in cli.ok("randomise", "RUMCES-0001", "--by", "nurse")
    assert "OK: the list is the one generated" in cli.ok(
        "randomisation", "verify", "RuMCeSS", "--by", "admin-NB-NK-2026")
    imported = [e for e in w.store.audit_entries(limit=1000).items
                if e.username == "admin-NB-NK-2026"]
    assert len(imported) > 10
    assert all("imported from" in e.reason for e in imported)
    assert "audit trail intact" in cli.ok("audit", "verify")


def test_a_tampered_allocation_list_is_refused_naming_the_entry(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    shutil.copytree(JOURNAL / "RuMCeSS", journal / "RuMCeSS")
    path = journal / "RuMCeSS" / "randomisation" / "R1.list.json"
    doc = json.loads(path.read_text())
    entry = doc["entries"][4]
    entry["arm"] = "MSC" if entry["arm"] != "MSC" else "SOC"
    path.write_text(json.dumps(doc))
    w = WebApp(f"sqlite:///{tmp_path / 'trialdesk.db'}", seed=False)
    from trialdesk.protocol.load import default_protocol_dir
    from trialdesk.services.demo import import_protocols

    import_protocols(w.store, default_protocol_dir())
    w.add_user("admin", "administrator", "RuMCeSS")
    cli = Cli(f"sqlite:///{tmp_path / 'trialdesk.db'}", tmp_path)
    err = refused(cli, w, "db", "import-journal", journal, "--patients", EXAMPLES, "--site",
                  "Moscow", "--by", "admin", message="nothing of RuMCeSS was imported")
    assert "R1" in err
    assert w.store.allocation_list_info("RuMCeSS", "R1") is None


@pytest.mark.parametrize("args", [
    ("patients", "--help"), ("consent", "--help"), ("enrol", "--help"), ("calendar", "--help"),
    ("record", "--help"), ("randomisation", "--help"), ("journey", "export", "--help"),
    ("ae", "record", "--help"), ("safety", "apply", "--help"), ("response", "record", "--help"),
    ("db", "import-journal", "--help"),
])
def test_help(args: tuple[str, ...]) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0 and "Usage" in result.stdout

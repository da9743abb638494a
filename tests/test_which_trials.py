"""Which trials could this patient enter? `trialdesk screen PATIENT --all-trials [--near]` and
the patient page's section: every reviewed trial screened, those the patient could enter first
(eligible, or undetermined with what would decide them), then those that exclude; with a place,
ordered by the distance to each trial's nearest site.

Verdicts are those of the shipped protocols for the example patients on 2026-11-21 12:00
(examples/patients/nb-relapsed.json: NB-NK-2026 eligible, arm B; DB-POSTCONS undetermined on
its attestation I3 and I4 and the consent; REFNOT-R2 not met I10, "18 to 75 years old";
RuMCeSS not met I4, "Patients ≥17 years").
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from test_trial_page import CTGOV, _km
from trialdesk.cli import app
from trialdesk.protocol.load import default_protocol_dir

EXAMPLES = default_protocol_dir().parent / "examples" / "patients"
RELAPSED = str(EXAMPLES / "nb-relapsed.json")
ON = ["--on", "2026-11-21T12:00"]
HTML = {"accept": "text/html"}
# Test sites (not from the records, which list none): coordinates of the city centres.
MOSCOW = (55.75222, 37.61556)
ST_PETERSBURG = (59.93863, 30.31413)
UTRECHT = (52.09083, 5.12222)


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, ["screen", *args])


def _with_sites(tmp_path: Path) -> Path:
    """The shipped protocols, with a test site added to three of them."""
    folder = tmp_path / "protocols"
    shutil.copytree(default_protocol_dir(), folder)
    for name, city, country, (lat, lon) in (
        ("nb-nk-2026.yaml", "St Petersburg", "Russian Federation", ST_PETERSBURG),
        ("dinutuximab-beta-program.yaml", "Moscow", "Russian Federation", MOSCOW),
        ("rumcess.yaml", "Utrecht", "Netherlands", UTRECHT),
    ):
        path = folder / name
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["registry"].setdefault("contacts_locations", {})["locations"] = [
            {"facility": f"Test site {city}", "city": city, "country": country,
             "geo": {"lat": lat, "lon": lon}}]
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return folder


def test_every_trial_ranked_could_enter_first_with_what_would_decide() -> None:
    r = _run(RELAPSED, "--all-trials", *ON, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = doc["trials"]
    assert [(t["trial_id"], t["verdict"]) for t in rows] == [
        ("NB-NK-2026", "eligible"), ("DB-POSTCONS", "undetermined"),
        ("REFNOT-R2", "ineligible"), ("RuMCeSS", "ineligible")]
    assert rows[0]["arm"] == "B" and rows[0]["unknown_criteria"] == []
    undetermined = rows[1]
    assert [c["id"] for c in undetermined["unknown_criteria"]] == ["I3", "I4"]
    assert [h["fact"] for h in undetermined["missing_facts"]] == ["attest.i3", "consent_signed"]
    assert rows[2]["excluded_by"] == [
        {"id": "I10", "kind": "inclusion", "text": "18 to 75 years old"}]
    assert [c["id"] for c in rows[3]["excluded_by"]] == ["I4"]
    assert doc["place"] is None and doc["not_screened"] == []


def test_the_human_list_says_what_would_decide() -> None:
    r = _run(RELAPSED, "--all-trials", *ON)
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert out.index("1. NB-NK-2026 eligible, arm B") < out.index("2. DB-POSTCONS undetermined")
    assert "would decide: I3" in out and "consent_signed" in out
    assert "3. REFNOT-R2 not eligible" in out and "not met: I10 18 to 75 years old" in out


def test_near_orders_each_group_by_the_nearest_site(tmp_path: Path) -> None:
    folder = _with_sites(tmp_path)
    near = f"{MOSCOW[0]},{MOSCOW[1]}"
    r = _run(RELAPSED, "--all-trials", *ON, "--near", near, "--protocols", str(folder), "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["trials"]
    # could enter: DB-POSTCONS (undetermined, Moscow, 0 km) before NB-NK-2026 (eligible, St
    # Petersburg); then the trials that exclude: RuMCeSS (Utrecht) before REFNOT-R2 (no site)
    assert [t["trial_id"] for t in rows] == ["DB-POSTCONS", "NB-NK-2026", "RuMCeSS", "REFNOT-R2"]
    km = {t["trial_id"]: t["nearest_site"] and t["nearest_site"]["km"] for t in rows}
    assert km["DB-POSTCONS"] == 0
    assert abs(km["NB-NK-2026"] - _km(MOSCOW, ST_PETERSBURG)) < 0.5  # ≈ 634 km
    assert abs(km["RuMCeSS"] - _km(MOSCOW, UTRECHT)) < 0.5  # ≈ 2,150 km
    assert km["REFNOT-R2"] is None
    named = _run(RELAPSED, "--all-trials", *ON, "--near", "St Petersburg", "--protocols",
                 str(folder))
    assert named.exit_code == 0, named.stderr
    assert "nearest sites to Saint Petersburg, RU" in named.stdout
    assert named.stdout.index("1. NB-NK-2026") < named.stdout.index("2. DB-POSTCONS")
    assert "no site location in the record" in named.stdout  # REFNOT-R2


def test_a_draft_is_named_not_screened(tmp_path: Path) -> None:
    folder = tmp_path / "protocols"
    shutil.copytree(default_protocol_dir(), folder)
    made = CliRunner().invoke(app, ["registry", "import", str(CTGOV / "NCT04431453.json"),
                                    "--out", str(folder)])
    assert made.exit_code == 0, made.stderr
    r = _run(RELAPSED, "--all-trials", *ON, "--protocols", str(folder), "--json")
    doc = json.loads(r.stdout)
    assert "NCT04431453" not in [t["trial_id"] for t in doc["trials"]]
    assert doc["not_screened"] == [{"trial_id": "NCT04431453",
                                    "reason": "draft: criteria awaiting review"}]


def test_usage_and_place_errors() -> None:
    assert _run(RELAPSED, "--near", "Moscow").exit_code == 2
    assert _run(RELAPSED, "--all-trials", "--trial", "RuMCeSS").exit_code == 2
    bad = _run(RELAPSED, "--all-trials", "--near", "Qqzxv")
    assert bad.exit_code == 1
    assert "--near: unknown place 'Qqzxv'" in bad.stderr and "Traceback" not in bad.stderr


def test_the_patient_page_lists_every_open_trial(web: Any) -> None:
    # NBNK-0002 is the demo's nb-relapsed patient; REFNOT-R2 is completed: not screened
    c = web.client("coordinator")
    html = c.get("/patients/NBNK-0002", headers=HTML).text
    section = html[html.index('id="which-trials"'):html.index("</section>",
                                                               html.index('id="which-trials"'))]
    order = [section.index(f'href="/trials/{t}"') for t in ("NB-NK-2026", "DB-POSTCONS", "RuMCeSS")]
    assert order == sorted(order)
    assert 'href="/trials/REFNOT-R2"' not in section
    assert "REFNOT-R2 (closed (Completed))" in section
    assert "What would decide it (2 criteria unknown)" in section
    assert "(this patient's trial)" in section
    bad = c.get("/patients/NBNK-0002", params={"near": "Qqzxv"}, headers=HTML)
    assert bad.status_code == 422
    assert "Trial sites near: unknown place &#39;Qqzxv&#39;" in bad.text
    near = c.get("/patients/NBNK-0002", params={"near": "Moscow"}, headers=HTML)
    assert near.status_code == 200 and "No site location in the record" in near.text

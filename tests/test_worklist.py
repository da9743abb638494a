"""The worklist per role on the demo data (tests/conftest.py WebApp: clock 2026-11-21 12:00
UTC; demo patients and what happened to them: trialdesk.services.demo)."""

from __future__ import annotations

from typing import Any

HTML = {"accept": "text/html"}


def _sections(web: Any, user: str) -> dict[str, list[dict[str, Any]]]:
    r = web.client(user).get("/api/worklist")
    assert r.status_code == 200, r.text
    return {s["id"]: s["lines"] for s in r.json()["sections"]}


def test_pharmacist_sees_the_unsigned_doses_of_the_next_14_days(web: Any) -> None:
    lines = _sections(web, "pharmacist")["doses"]
    # NB-NK-2026 patient enrolled with day 1 = 2026-11-21: day-1 doses were signed or given
    # by the demo, days 2-5 of irinotecan and temozolomide remain (8 doses); the REFNOT-R2
    # patient (day 1 = 2026-11-19) has 7 Refnot doses planned up to 2026-12-05 (day 17).
    nb = [x for x in lines if x["study_number"] == "NBNK-0001"]
    refnot = [x for x in lines if x["study_number"] == "REFNOT-0002"]
    assert len(nb) == 8 and len(refnot) == 7 and len(lines) == 15
    assert {x["what"] for x in nb} == {"Sign the dose: irinotecan IV",
                                       "Sign the dose: temozolomide PO"}
    assert min(x["when"] for x in nb) == "2026-11-22"
    assert max(x["when"] for x in lines) <= "2026-12-05"  # 14 days from 2026-11-21
    assert nb[0]["link"].startswith("/patients/NBNK-0001/calendar#ev-c1.")
    # The signed day-1 dose is not on the list.
    assert not any(x["link"].endswith("d1") for x in nb)


def test_investigator_sees_eligibility_awaiting_sign_off(web: Any) -> None:
    s = _sections(web, "investigator")
    # NBNK-0002 (nb-relapsed.json) is screened eligible and not enrolled; NBNK-0001 is
    # enrolled, NBNK-0003 (missing labs) undetermined.
    assert [(x["study_number"], x["link"]) for x in s["eligibility"]] == [
        ("NBNK-0002", "/patients/NBNK-0002#enrolment")]
    # The demo's adverse events propose no action that awaits confirmation.
    assert s["actions"] == [] and s["queries-site"] == []


def test_investigator_sees_a_proposed_action(web: Any) -> None:
    from trialdesk.services.context import Services
    from trialdesk.services.demo import _who
    from trialdesk.services.safety import record_adverse_event

    ctx = Services.open(web.store)
    # Course 2 (DIT, 21 days after day 1, protocols/nb-nk-2026.yaml) starts 2026-12-12; a
    # grade 2 infusion-related reaction in it triggers NBNK-HYPERSENSITIVITY-G1-2 (slow the
    # dinutuximab beta infusion by 50 %), an action a clinician confirms.
    web.clock.advance(days=22)
    ae = record_adverse_event(ctx, _who(web.store, "investigator"), "NBNK-0001", lab=None,
                              course_number=None, reason="test",
                              event={"term": "Infusion related reaction", "grade": 2,
                                     "onset": web.store.now().date(), "attributions": [],
                                     "seriousness": set()})
    proposed = [a for a in ae["actions"] if a["status"] == "proposed"]
    lines = _sections(web, "investigator")["actions"]
    assert proposed and len(lines) == len(proposed)
    assert lines[0]["link"] == f"/patients/NBNK-0001/adverse-events#action-{proposed[0]['id']}"
    assert "Infusion related reaction, grade 2" in lines[0]["note"]


def test_coordinator_sees_assessments_due_and_overdue_events(web: Any) -> None:
    s = _sections(web, "coordinator")
    # RuMCeSS samplings on days 0, 1, 2, 7 and 14 (three each) fall from 2026-11-21 to
    # 2026-12-05; the NB-NK-2026 and REFNOT-R2 patients have no assessment in that span.
    assert len(s["assessments"]) == 15
    assert {x["study_number"] for x in s["assessments"]} == {"RUMCES-0001"}
    assert all("2026-11-21" <= x["when"] <= "2026-12-05" for x in s["assessments"])
    # Overdue: REFNOT-R2 day 1 (2026-11-19) not recorded; the NB-NK-2026 day -1 samplings
    # (2026-11-20) not recorded.
    overdue = sorted((x["study_number"], x["link"].split("#ev-")[1]) for x in s["overdue"])
    assert overdue == [("NBNK-0001", "s3.d-1"), ("NBNK-0001", "s4.d-1"),
                       ("REFNOT-0002", "c1.refnot.d1")]


def test_roles_without_tasks_and_the_home_page(web: Any) -> None:
    assert _sections(web, "statistician") == {}
    assert _sections(web, "monitor") == {"queries-monitor": [], "queries-open": []}
    home = web.client("pharmacist").get("/", headers=HTML)
    assert home.status_code == 200
    assert "Doses to sign" in home.text and "/patients/NBNK-0001/calendar#ev-c1." in home.text
    assert "Worklist of Demo Pharmacist" in home.text
    anonymous = web.client().get("/", headers=HTML, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/trials"
    assert web.client().get("/api/worklist").status_code == 401


def test_the_worklist_follows_what_happens(web: Any) -> None:
    c = web.client("pharmacist")
    first = _sections(web, "pharmacist")["doses"][0]
    event_id = first["link"].split("#ev-")[1]
    r = c.post(f"/api/patients/{first['study_number']}/dose-signatures",
               headers={"x-csrf-token": c.csrf},
               json={"event_id": event_id, "password": "pharmacist-demo",
                     "reason": "checked"})
    assert r.status_code in (200, 201), r.text
    after = _sections(web, "pharmacist")["doses"]
    assert len(after) == 14 and first not in after

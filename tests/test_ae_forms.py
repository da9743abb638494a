"""Adverse events by CTCAE v5.0 term and the decisions on what the protocol proposes, on the
page and through the API: the term typed and found among all 837 terms with its MedDRA code
and SOC stored; the grade texts shown before recording; the course derived from the onset;
corrections with a reason (audited, old value kept); alternatives of which one is accepted
and a proposal declined, each signed; errors named by the field's label, nothing stored."""

from __future__ import annotations

import re
from typing import Any

from test_web_journey_pages import HTML, enrol_on_the_page, form_token, post
from trialdesk.clinical import ctcae, ctcae_codes
from trialdesk.services import safety_forms

PAGE = "/patients/NBNK-0001/adverse-events"
NEURALGIA = {"term": "Neuralgia", "meddra_code": "10029223",
             "soc": "Nervous system disorders", "soc_code": "10029205"}


def in_course_2(web: Any) -> Any:
    """NBNK-0001 on 2026-12-13: course 2 (DIT) runs from 2026-12-12 to 2027-01-01."""
    web.clock.advance(days=22)
    return web.client("investigator")


def latest(web: Any, patient: str = "NBNK-0001") -> Any:
    return web.store.adverse_events(patient)[-1]


# ---------------------------------------------------------------------------- the term list


def test_every_ctcae_term_is_known_with_codes_and_grade_texts() -> None:
    terms = ctcae.all_terms()
    assert len(terms) == 837 and len(set(terms)) == 837
    found = safety_forms.search_terms("neuralgia")
    assert found[0] == NEURALGIA
    assert [t["term"] for t in safety_forms.search_terms("sensory neuro")] == \
        ["Peripheral sensory neuropathy"]
    assert safety_forms.search_terms("zzz") == []
    # a term without its own grading table: its grades are the sheet's ("-" grades absent)
    card = safety_forms.term_card("hiccups")
    assert card is not None and card["term"] == "Hiccups"
    assert [g["grade"] for g in card["grades"]] == [1, 2, 3]
    assert ctcae.validate_grade("Hiccups", 3) == 3
    assert ctcae_codes.grade_texts("Neuralgia") == {
        1: "Mild pain", 2: "Moderate pain; limiting instrumental ADL",
        3: "Severe pain; limiting self care ADL"}
    # a term with its own table keeps it (Sepsis has grades 3-5 only)
    assert ctcae.term_definition("Sepsis").allowed_grades == (3, 4, 5)


def test_the_term_list_api(web: Any) -> None:
    c = web.client("coordinator")
    items = c.get("/api/ctcae/terms?q=neuralg").json()["items"]
    assert items[0] == NEURALGIA
    card = c.get("/api/ctcae/terms/neuralgia").json()
    assert card["grades"][2] == {"grade": 3, "text": "Severe pain; limiting self care ADL",
                                 "allowed": True}
    assert c.get("/api/ctcae/terms/Headache soup").status_code == 404
    assert web.client().get("/api/ctcae/terms?q=pain").status_code == 401


# ---------------------------------------------------------------------------- recording


def test_typing_neuralgia_finds_the_term_shows_its_grades_and_stores_its_codes(
        web: Any) -> None:
    c = in_course_2(web)
    html = c.get(PAGE, headers=HTML).text
    assert html.count('<option value="') >= 837 and '<option value="Neuralgia">' in html
    before = len(web.store.adverse_events("NBNK-0001"))
    # part of the term: the terms found are offered, nothing is stored
    found = post(c, PAGE, PAGE, {"action": "preview", "term": "neuralg", "grade": "3",
                                 "onset": "2026-12-12"})
    assert found.status_code == 200
    assert re.search(r'<input type="radio" name="term" value="Neuralgia"', found.text)
    # the term chosen: its CTCAE grade texts and the course of the onset are shown
    shown = post(c, PAGE, PAGE, {"action": "preview", "term": "Neuralgia", "grade": "3",
                                 "onset": "2026-12-12"})
    assert "MedDRA LLT 10029223; SOC Nervous system disorders (10029205)" in shown.text
    assert "<strong>Grade 3</strong>: Severe pain; limiting self care ADL" in shown.text
    assert "<strong>Grade 1</strong>: Mild pain" in shown.text
    assert "Course: <strong>course 2 (DIT, 2026-12-12 → 2027-01-01)</strong>" in shown.text
    assert len(web.store.adverse_events("NBNK-0001")) == before
    # recorded with the term typed in lower case: the CTCAE term, its codes and SOC stored
    done = post(c, PAGE, PAGE, {"action": "record", "term": "neuralgia", "grade": "3",
                                "onset": "2026-12-12", "reason": "AE"})
    assert done.status_code == 200
    row = latest(web)
    assert row.term == "Neuralgia" and row.grade == 3
    assert {k: row.document[k] for k in NEURALGIA if k != "term"} == \
        {k: v for k, v in NEURALGIA.items() if k != "term"}
    assert row.document["meddra_term"] == "Neuralgia"
    assert row.course_number == 2 and row.course_id == "DIT"
    assert "Grade 3: Severe pain; limiting self care ADL" in done.text
    assert "Course 2 (DIT, 2026-12-12 → 2027-01-01)" in done.text
    assert "MedDRA: Neuralgia (LLT 10029223) · SOC Nervous system disorders (10029205)" \
        in done.text


def test_the_course_is_derived_from_the_onset_and_an_onset_outside_is_said(web: Any) -> None:
    c, _ = enrol_on_the_page(web, start="2026-11-23")  # enrolled 2026-11-21, course 1 later
    page = "/patients/NBNK-0002/adverse-events"
    html = c.get(page, headers=HTML).text
    assert 'name="course_number"' not in html and "found from the onset date" in html
    r = post(c, page, page, {"term": "Fever", "grade": "1", "onset": "2026-11-21",
                             "reason": "AE"})
    assert r.status_code == 200
    assert "Outside any course: 2026-11-21 is before course 1, which starts 2026-11-23" \
        in r.text
    assert latest(web, "NBNK-0002").course_number is None
    # the API may name the course only as a check: a wrong one is refused, nothing stored
    api = web.client("coordinator")
    before = len(web.store.adverse_events("NBNK-0002"))
    bad = api.post("/api/patients/NBNK-0002/adverse-events", headers={
        "x-csrf-token": api.csrf}, json={"term": "Fever", "grade": 1, "onset": "2026-11-21",
                                         "course_number": 1, "reason": "AE"})
    assert bad.status_code == 422 and "derived from the onset" in bad.text
    assert len(web.store.adverse_events("NBNK-0002")) == before


def test_bad_values_are_named_by_their_label_and_nothing_is_stored(web: Any) -> None:
    c = in_course_2(web)
    before = len(web.store.adverse_events("NBNK-0001"))
    cases = [
        ({"term": "Neuralgia", "grade": "4", "onset": "2026-12-12"},
         "Grade: grade 4 does not exist for &#39;Neuralgia&#39;"),
        ({"term": "Neuralgia", "grade": "3", "onset": "12/12/2026"},
         "Onset date: enter a date such as 2026-11-21"),
        ({"term": "Neuralgia", "grade": "three", "onset": "2026-12-12"},
         "Grade: enter a whole number"),
        ({"term": "Neuralgia", "grade": "3", "onset": "2027-01-01"},
         "Onset date: 2027-01-01 is in the future"),
        ({"term": "Neuralgia", "grade": "3"}, "Onset date: fill it in"),
        ({"term": "Odd rash", "grade": "2", "onset": "2026-12-12"}, "MedDRA term: "),
        ({"onset": "2026-12-12", "lab_term": "Anemia", "lab_value": "NaN", "lab_unit": "g/dL"},
         "Lab value: enter a finite number"),
    ]
    for data, words in cases:
        r = post(c, PAGE, PAGE, {**data, "reason": "AE"})
        assert r.status_code == 422, (data, r.status_code)
        assert words in r.text, (words, re.findall(r'<li>[^<]*</li>', r.text)[:3])
        assert "$." not in r.text.split("<main", 1)[1].split("</ul>", 1)[0]
    assert len(web.store.adverse_events("NBNK-0001")) == before


def _overtaken(web: Any, times: int) -> list[int]:
    """Each of the next ``times`` saves of an adverse event is overtaken by another one
    (another coordinator's fever, recorded the moment before, as another server process
    would): the save was checked against a calendar version that is no longer current."""
    save = web.store.add_adverse_event
    others: list[int] = []

    def overtaken(study_number: str, **kw: Any) -> Any:
        if len(others) < times:
            web.clock.advance(seconds=1)  # a later moment: the calendar's version moves on
            current = web.store.journey(study_number).version
            others.append(save(study_number, **{
                **kw, "document": {**kw["document"], "term": "Fever", "grade": 1},
                "lab": None, "proposals": [], "expected_version": current,
                "actor": "coordinator", "reason": "recorded at the same time"}).id)
        return save(study_number, **kw)

    web.store.add_adverse_event = overtaken
    return others


def test_two_events_recorded_at_the_same_time_both_land(web: Any) -> None:
    """The second save finds the calendar changed by the first: it is checked again against
    the calendar as it is now and stored, rather than refused."""
    c = in_course_2(web)
    before = len(web.store.adverse_events("NBNK-0001"))
    others = _overtaken(web, 1)
    r = post(c, PAGE, PAGE, {"term": "Neuralgia", "grade": "3", "onset": "2026-12-12",
                             "reason": "AE"})
    assert r.status_code == 200, re.findall(r"<li>[^<]*</li>", r.text)[:3]
    stored = web.store.adverse_events("NBNK-0001")
    assert len(stored) == before + 2 and len(others) == 1
    assert [(e.term, e.grade) for e in stored[-2:]] == [("Fever", 1), ("Neuralgia", 3)]
    ae = stored[-1]
    assert ae.course_number == 2 and ae.course_id == "DIT"  # derived on the recheck
    assert {a.rule_id for a in ae.actions} == {"NBNK-PAIN-UNCONTROLLED", "NBNK-PAIN-REFRACTORY"}
    assert "2026-12-12" in r.text and "Neuralgia" in r.text


def test_a_calendar_changed_on_every_recheck_is_refused_clearly(web: Any) -> None:
    """A conflict that does not go away (every recheck overtaken) is still reported: 409,
    what happened and what to do, and nothing of this event stored."""
    from trialdesk.services.safety import RECHECKS

    c = in_course_2(web)
    before = len(web.store.adverse_events("NBNK-0001"))
    others = _overtaken(web, RECHECKS)
    r = post(c, PAGE, PAGE, {"term": "Neuralgia", "grade": "3", "onset": "2026-12-12",
                             "reason": "AE"})
    assert r.status_code == 409, (others, re.findall(r"<li>[^<]*</li>", r.text)[:3])
    assert (f"Version: the adverse event was checked {RECHECKS} times against the calendar "
            "of NBNK-0001 and each time another save changed the calendar first") in r.text
    assert "nothing was stored — submit the event again" in r.text
    stored = web.store.adverse_events("NBNK-0001")
    assert len(others) == RECHECKS and len(stored) == before + RECHECKS
    assert {e.term for e in stored[before:]} == {"Fever"}
    # through the API: the same conflict in the one error shape
    others.clear()
    api = web.client("coordinator")
    refused = api.post("/api/patients/NBNK-0001/adverse-events", headers={
        "x-csrf-token": api.csrf}, json={"term": "Neuralgia", "grade": 3,
                                         "onset": "2026-12-12", "reason": "AE"})
    assert refused.status_code == 409 and f"checked {RECHECKS} times" in refused.json()["error"]


# ---------------------------------------------------------------------------- corrections


def test_a_correction_needs_a_reason_and_the_audit_keeps_the_old_value(web: Any) -> None:
    c = in_course_2(web)
    post(c, PAGE, PAGE, {"term": "Neuralgia", "grade": "2", "onset": "2026-12-12",
                         "reason": "AE"})
    row = latest(web)
    url = f"{PAGE[:-len('/adverse-events')]}/adverse-events/{row.id}/correction"
    data = {"version": str(row.version), "term": "Peripheral sensory neuropathy",
            "grade": "2", "onset": "2026-11-21"}
    listing = c.get(PAGE, headers=HTML).text
    assert f'href="{url}">Correct this event</a>' in listing  # a link, not a form per event
    assert f'action="{url}"' not in listing
    shown = c.get(url, headers=HTML)
    assert shown.status_code == 200 and f'action="{url}"' in shown.text
    assert re.search(r'id="c-term-\d+" name="term"[^>]* value="Neuralgia"', shown.text)
    assert re.search(r'<option value="2" selected>2</option>', shown.text)
    refused = post(c, PAGE, url, {**data, "reason": ""})
    assert refused.status_code == 422 and "Reason: fill it in" in refused.text
    assert f'action="{url}"' in refused.text  # the correction page again, what was typed kept
    assert 'value="Peripheral sensory neuropathy"' in refused.text
    other = web.client("coordinator").get(f"/patients/NBNK-0001/adverse-events/{row.id + 999}"
                                          "/correction", headers=HTML)
    assert other.status_code == 404
    assert web.store.adverse_event(row.id).version == row.version  # nothing stored
    done = post(c, PAGE, url, {**data, "reason": "wrong term and onset entered"})
    assert done.status_code == 200
    fixed = web.store.adverse_event(row.id)
    assert fixed.term == "Peripheral sensory neuropathy" and fixed.version == row.version + 1
    assert fixed.document["meddra_code"] == "10034620"  # the codes follow the term
    assert fixed.course_number == 1 and fixed.course_id == "IT"  # the course follows the onset
    # the DIT rule no longer applies in course 1: its proposals awaiting a decision withdrawn
    assert {a.rule_id: a.status for a in fixed.actions} == {
        "NBNK-PAIN-UNCONTROLLED": "withdrawn"}
    audit = web.client("monitor").get("/api/trials/NB-NK-2026/audit?limit=200").json()
    entry = next(e for e in audit["items"] if e["action"] == "update"
                 and e["record_type"] == "adverse_event")
    assert entry["reason"] == "wrong term and onset entered"
    assert entry["changes"]["$.adverse_event.term"] == {
        "old": "Neuralgia", "new": "Peripheral sensory neuropathy"}
    assert entry["changes"]["$.adverse_event.onset"]["old"] == "2026-12-12"
    assert entry["changes"]["$.adverse_event.course"] == {"old": "2 (DIT)", "new": "1 (IT)"}
    # through the API: a reason of blanks is refused by its label
    api = web.client("coordinator")
    blank = api.post(f"/api/patients/NBNK-0001/adverse-events/{row.id}/correction",
                     headers={"x-csrf-token": api.csrf},
                     json={"version": fixed.version, "grade": 1, "reason": "   "})
    assert blank.status_code == 422 and web.store.adverse_event(row.id).grade == 2


def test_a_corrected_grade_brings_the_rules_new_proposals(web: Any) -> None:
    in_course_2(web)
    api = web.client("investigator")
    headers = {"x-csrf-token": api.csrf}
    ae = api.post("/api/patients/NBNK-0001/adverse-events", headers=headers, json={
        "term": "Neuralgia", "grade": 2, "onset": "2026-12-12", "reason": "AE"}).json()
    assert {a["rule_id"] for a in ae["actions"]} == {"NBNK-PAIN-UNCONTROLLED"}
    r = api.post(f"/api/patients/NBNK-0001/adverse-events/{ae['id']}/correction",
                 headers=headers, json={"version": ae["version"], "grade": 3,
                                        "reason": "grade 3 on review"})
    assert r.status_code == 200, r.text
    actions = {(a["rule_id"], a["kind"]): a["status"] for a in r.json()["actions"]}
    assert actions[("NBNK-PAIN-REFRACTORY", "discontinue_agent")] == "proposed"
    assert actions[("NBNK-PAIN-UNCONTROLLED", "slow")] == "proposed"
    assert len(actions) == 3  # the supportive care advice kept, not repeated


def test_a_lab_graded_event_keeps_the_labs_grade(web: Any) -> None:
    c = web.client("coordinator")
    row = next(a for a in web.store.adverse_events("NBNK-0001") if a.lab)
    url = f"/patients/NBNK-0001/adverse-events/{row.id}/correction"
    r = post(c, PAGE, url, {"version": str(row.version), "term": row.term, "grade": "2",
                            "onset": row.onset, "reason": "lower"})
    assert r.status_code == 422 and "Grade: the lab grades 3" in r.text
    assert web.store.adverse_event(row.id).grade == row.grade


# ---------------------------------------------------------------------------- decisions


def _decision_form(html: str) -> tuple[str, dict[str, str], list[str]]:
    action = re.search(r'action="(/patients/NBNK-0001/adverse-events/\d+/decisions)"', html)
    assert action, "no decision form"
    form = html[html.index(action.group(0)):]
    form = form[:form.index("</form>")]
    group = re.search(r'name="group" value="(\d+)"', form)
    assert group
    data = {"group": group.group(1)}
    data.update({f"version_{i}": v for i, v in
                 re.findall(r'name="version_(\d+)" value="(\d+)"', form)})
    options = re.findall(r'name="choice" value="(\d+)"', form)
    return action.group(1), data, options


def test_alternatives_ask_their_condition_and_one_is_accepted_the_other_declined(
        web: Any) -> None:
    c = in_course_2(web)
    r = post(c, PAGE, PAGE, {"term": "Neuralgia", "grade": "3", "onset": "2026-12-12",
                             "reason": "AE"})
    assert "Alternatives: choose one, or decline them all" in r.text
    assert ("Does this hold: pain is not controlled by gabapentin, morphine and non-opioid "
            "analgesics?") in r.text
    assert "Does this hold: the pain is refractory to analgesia?" in r.text
    url, data, options = _decision_form(r.text)
    row = latest(web)
    by_kind = {a.kind: a.id for a in row.actions}
    assert sorted(map(int, options)) == sorted([by_kind["slow"], by_kind["discontinue_agent"]])
    slow = by_kind["slow"]
    assert f'name="percent_{slow}"' in r.text  # the rule sets no percentage: asked, optional
    signed = {**data, "choice": str(slow), "password": "investigator-demo",
              "reason": "pain uncontrolled on the analgesic schedule"}
    # the condition answered no: refused by its label, nothing signed or applied
    no = post(c, PAGE, url, {**signed, f"condition_{slow}": "no"})
    assert no.status_code == 422 and "Does the condition hold: the proposal applies only if" \
        in no.text
    wrong = post(c, PAGE, url, {**signed, f"condition_{slow}": "yes", "password": "nope"})
    assert wrong.status_code == 401
    assert all(a.status == "proposed" for a in latest(web).actions if a.kind != "supportive_care")
    done = post(c, PAGE, url, {**signed, f"condition_{slow}": "yes"})
    assert done.status_code == 200, re.findall(r"<li>[^<]*</li>", done.text)[:3]
    actions = {a.kind: a for a in latest(web).actions}
    assert actions["slow"].status == "confirmed" and actions["slow"].signature is not None
    declined = actions["discontinue_agent"]
    assert declined.status == "declined" and declined.signature is not None
    assert declined.signature.meaning == "I decline this proposed toxicity action"
    assert declined.applied is not None and declined.applied["instead"].startswith(
        "slow the infusion of dinutuximab beta")
    assert "Declined in favour of: slow the infusion of dinutuximab beta" in done.text
    assert "Accepted: <strong>Demo Investigator</strong>" in done.text
    audit = web.client("monitor").get("/api/trials/NB-NK-2026/audit?limit=200").json()["items"]
    steps = [(e["action"], e["changes"].get("rule_id", {}).get("new")) for e in audit
             if e["record_type"] == "toxicity_action"]
    assert ("accept", "NBNK-PAIN-UNCONTROLLED") in steps
    assert ("decline", "NBNK-PAIN-REFRACTORY") in steps
    signs = [e for e in audit if e["action"] == "sign" and e["record_type"] == "toxicity_action"]
    assert len(signs) >= 2


def test_a_proposal_is_declined_with_a_signature_and_a_reason(web: Any) -> None:
    c = in_course_2(web)
    r = post(c, PAGE, PAGE, {"term": "Anaphylaxis", "grade": "3", "onset": "2026-12-12",
                             "seriousness": "life_threatening", "reason": "AE"})
    url, data, options = _decision_form(r.text)
    assert len(options) == 1 and "Accept or decline this proposal" in r.text
    calendar_before = web.store.journey("NBNK-0001").actions
    no_reason = post(c, PAGE, url, {**data, "choice": "none", "password": "investigator-demo",
                                    "reason": ""})
    assert no_reason.status_code == 422 and "Reason: fill it in" in no_reason.text
    coordinator = web.client("coordinator")
    refused = coordinator.post(url, headers=HTML, data={
        "csrf_token": form_token(coordinator.get(PAGE, headers=HTML).text), **data,
        "choice": "none", "password": "coordinator-demo", "reason": "not mine"})
    assert refused.status_code == 403
    done = post(c, PAGE, url, {**data, "choice": "none", "password": "investigator-demo",
                               "reason": "reaction resolved at once; the family declines"})
    assert done.status_code == 200
    action = latest(web).actions[0]
    assert action.status == "declined"
    assert action.applied is not None and action.applied["reason"] == \
        "reaction resolved at once; the family declines"
    assert web.store.journey("NBNK-0001").actions == calendar_before  # calendar unchanged
    assert "Declined: <strong>Demo Investigator</strong>" in done.text


def test_the_decision_api(web: Any) -> None:
    in_course_2(web)
    api = web.client("investigator")
    headers = {"x-csrf-token": api.csrf}
    ae = api.post("/api/patients/NBNK-0001/adverse-events", headers=headers, json={
        "term": "Neuralgia", "grade": 3, "onset": "2026-12-12", "reason": "AE"}).json()
    pending = [a for a in ae["actions"] if a["requires_confirmation"]]
    assert {a["question"] for a in pending} == {
        "Does this hold: pain is not controlled by gabapentin, morphine and non-opioid "
        "analgesics?", "Does this hold: the pain is refractory to analgesia?"}
    group = min(a["id"] for a in pending)
    refractory = next(a["id"] for a in pending if a["kind"] == "discontinue_agent")
    url = f"/api/patients/NBNK-0001/adverse-events/{ae['id']}/decisions"
    body = {"group": group, "choice": refractory, "conditions": {str(refractory): True},
            "password": "investigator-demo", "reason": "refractory", "accept_unconfirmed": True}
    other = api.post(url, headers=headers, json={**body, "group": 999999})
    assert other.status_code == 404
    r = api.post(url, headers=headers, json=body)
    assert r.status_code == 201, r.text
    decided = {d["kind"]: d["status"] for d in r.json()["decisions"]}
    assert decided == {"discontinue_agent": "confirmed", "slow": "declined"}
    again = api.post(url, headers=headers, json=body)
    assert again.status_code == 404  # nothing left to decide
    spec = web.client().get("/api/openapi.json").json()["paths"]
    assert "/api/patients/{study_number}/adverse-events/{ae_id}/decisions" in spec
    assert "/api/ctcae/terms" in spec

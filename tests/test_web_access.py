"""Every endpoint × every role × membership (member of the trial, member of another trial
only, member at another site, anonymous) gets the answer the role table says.

A new route fails this test until it is given its row in ``EXPECTED``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from trialdesk.facts.patient import PatientRecord
from trialdesk.forms.build import patient_form
from trialdesk.forms.fill import form_values
from trialdesk.protocol.load import default_protocol_dir, load_protocol
from trialdesk.services.roles import Role

TRIAL = "NB-NK-2026"
PATIENT = "NBNK-0002"  # eligible, not enrolled, site Moscow
JOURNEY = "NBNK-0001"  # enrolled with a calendar, site Moscow
# Routes about an enrolled patient's calendar, safety and response use JOURNEY.
JOURNEY_ROUTES = ("/calendar", "/body", "/records", "/delays", "/dose", "/doses",
                  "/adverse-events", "/actions", "/responses", "/follow-ups", "/bedside",
                  "/infusions", "/events/", "/samples", "/courses/", "/product-actions")
RECORDED_DOSE = "c1.irinotecan.d1"  # given in the demo (services/demo.py)
LOTS = itertools.count(1)
RECORD = json.loads((default_protocol_dir().parent / "examples" / "patients" /
                     "nb-relapsed.json").read_text())
ROLES = [r.value for r in Role]
# The same record typed into the trial's form (field name -> text).
FORM = form_values(patient_form(load_protocol(default_protocol_dir() / "nb-nk-2026.yaml")),
                   PatientRecord.model_validate(RECORD), TRIAL)

# Who asks: (label, role or None for anonymous, membership)
# membership: "member" (trial, every site), "site" (trial, another site), "other" (other trial).
CALLERS: list[tuple[str, str | None, str]] = [("anonymous", None, "none")]
CALLERS += [(f"{r}-member", r, "member") for r in ROLES]
CALLERS += [(f"{r}-other", r, "other") for r in ROLES]
CALLERS += [("coordinator-site", "coordinator", "site"), ("monitor-site", "monitor", "site")]

Rule = Callable[[str | None, str], int]


def public(ok: int = 200) -> Rule:
    return lambda role, membership: ok


def logged_in(ok: int = 200) -> Rule:
    return lambda role, membership: 401 if role is None else ok


def trial_level(roles: set[str], ok: int = 200) -> Rule:
    """A trial-wide view: needs the role in this trial (any site)."""
    def rule(role: str | None, membership: str) -> int:
        if role is None:
            return 401
        return ok if role in roles and membership in ("member", "site") else 403
    return rule


def anywhere(roles: set[str], ok: int = 200) -> Rule:
    """Needs the role in any trial."""
    return lambda role, membership: 401 if role is None else ok if role in roles else 403


def patient_level(roles: set[str], ok: int = 200) -> Rule:
    """A patient's record: others' patients do not exist (404); the role decides (403)."""
    def rule(role: str | None, membership: str) -> int:
        if role is None:
            return 401
        if membership != "member":
            return 404
        return ok if role in roles else 403
    return rule


def create_rule(ok: int) -> Rule:
    def rule(role: str | None, membership: str) -> int:
        if role is None:
            return 401
        return ok if role in {"investigator", "coordinator"} and membership == "member" else 403
    return rule


ALL = set(ROLES)
WRITERS = {"investigator", "coordinator"}
AUDIT = {"administrator", "monitor"}
DASH = {"administrator", "investigator", "coordinator", "monitor", "statistician"}
CLINICAL = {"investigator", "coordinator", "pharmacist", "monitor"}  # not the statistician
GIVERS = {"investigator", "coordinator", "pharmacist"}
DOSE = {"investigator", "pharmacist"}
INVESTIGATOR = {"investigator"}
OUTCOMES = {"administrator", "statistician"}  # de-identified
LAB = {"pharmacist"}  # the cell-therapy lab

# (method, path template) -> (rule, request maker)
EXPECTED: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): public(),
    ("GET", "/api/openapi.json"): public(),
    ("GET", "/api/docs"): public(),
    ("GET", "/api/me"): logged_in(),
    ("GET", "/api/trials"): public(),
    ("GET", "/api/trials/{trial_id}"): public(),
    ("GET", "/api/trials/{trial_id}/versions"): public(),
    ("GET", "/api/trials/{trial_id}/versions/{number}"): public(),
    ("POST", "/api/trials/{trial_id}/versions"): trial_level({"administrator"}, 201),
    ("GET", "/api/trials/{trial_id}/dashboard"): trial_level(DASH),
    ("GET", "/api/trials/{trial_id}/export.csv"): trial_level({"administrator", "statistician"}),
    ("GET", "/api/trials/{trial_id}/audit"): trial_level(AUDIT),
    ("GET", "/api/audit/verify"): anywhere(AUDIT),
    ("POST", "/api/screen"): public(),
    ("GET", "/api/patients"): logged_in(),
    ("POST", "/api/patients"): create_rule(201),
    ("GET", "/api/patients/{study_number}"): patient_level(ALL),
    ("PUT", "/api/patients/{study_number}"): patient_level(WRITERS),
    ("GET", "/api/patients/{study_number}/screenings"): patient_level(ALL),
    ("POST", "/api/patients/{study_number}/screenings"): patient_level(WRITERS, 201),
    ("POST", "/api/patients/{study_number}/enrolment"): patient_level({"investigator"}, 201),
    ("GET", "/api/patients/{study_number}/audit"): patient_level(AUDIT),
    ("POST", "/api/patients/{study_number}/consents"): patient_level(WRITERS, 201),
    ("GET", "/api/patients/{study_number}/calendar"): patient_level(CLINICAL),
    ("GET", "/api/patients/{study_number}/calendar.ics"): patient_level(CLINICAL),
    ("PUT", "/api/patients/{study_number}/calendar"): patient_level(WRITERS),
    ("POST", "/api/patients/{study_number}/body"): patient_level(WRITERS, 201),
    ("POST", "/api/patients/{study_number}/records"): patient_level(GIVERS, 201),
    ("POST", "/api/patients/{study_number}/delays"): patient_level(WRITERS, 201),
    ("POST", "/api/patients/{study_number}/dose-signatures"): patient_level(DOSE, 201),
    ("GET", "/api/patients/{study_number}/calendar/doses/{dose_id}"): patient_level(GIVERS),
    ("POST", "/api/patients/{study_number}/calendar/doses/{dose_id}/preview"):
        patient_level(GIVERS),
    ("POST", "/api/patients/{study_number}/calendar/doses/{dose_id}"): patient_level(GIVERS, 201),
    ("PUT", "/api/patients/{study_number}/calendar/doses/{dose_id}"): patient_level(GIVERS),
    ("GET", "/api/patients/{study_number}/courses/{number}/sign-off"): patient_level(CLINICAL),
    ("POST", "/api/patients/{study_number}/courses/{number}/signatures"):
        patient_level(DOSE, 201),
    ("GET", "/api/patients/{study_number}/adverse-events"): patient_level(CLINICAL),
    ("POST", "/api/patients/{study_number}/adverse-events"): patient_level(WRITERS, 201),
    ("PUT", "/api/patients/{study_number}/adverse-events/{ae_id}"): patient_level(WRITERS),
    ("POST", "/api/patients/{study_number}/actions/{action_id}/confirmation"):
        patient_level(INVESTIGATOR, 201),
    ("GET", "/api/patients/{study_number}/responses"): patient_level(CLINICAL),
    ("POST", "/api/patients/{study_number}/responses"): patient_level(INVESTIGATOR, 201),
    ("POST", "/api/patients/{study_number}/follow-ups"): patient_level(WRITERS, 201),
    ("GET", "/api/trials/{trial_id}/form"): public(),
    ("POST", "/api/trials/{trial_id}/form"): create_rule(201),
    ("GET", "/api/trials/{trial_id}/randomisation"): trial_level(AUDIT),
    # NB-NK-2026 assigns arms by rule: an administrator passes the role check and is then
    # refused on the content (422); everyone else is refused first.
    ("POST", "/api/trials/{trial_id}/randomisation"): trial_level({"administrator"}, 422),
    ("GET", "/api/trials/{trial_id}/outcomes"): trial_level(OUTCOMES),
    ("GET", "/api/trials/{trial_id}/outcomes/km.png"): trial_level(OUTCOMES),
    ("GET", "/api/trials/{trial_id}/exports/sdtm.zip"): trial_level(OUTCOMES),
    ("GET", "/api/trials/{trial_id}/exports/fhir.json"): trial_level(OUTCOMES),
    ("GET", "/api/trials/{trial_id}/reports/dsmb.pdf"): trial_level(OUTCOMES),
    ("GET", "/"): lambda role, membership: 303 if role is None else 200,  # the worklist
    ("GET", "/login"): public(),
    ("GET", "/trials"): public(),
    ("GET", "/trials/{trial_id}"): public(),
    ("GET", "/trials/{trial_id}/dashboard"): trial_level(DASH),
    ("GET", "/trials/{trial_id}/audit"): trial_level(AUDIT),
    ("GET", "/screen"): public(),
    ("POST", "/screen"): public(),
    ("GET", "/patients"): logged_in(),
    ("GET", "/patients/new"): anywhere(WRITERS),
    ("POST", "/patients"): create_rule(303),
    ("GET", "/patients/{study_number}"): patient_level(ALL),
    ("GET", "/patients/{study_number}/edit"): patient_level(WRITERS),
    ("GET", "/trials/{trial_id}/patients/new"): trial_level(WRITERS),
    ("POST", "/trials/{trial_id}/patients"): create_rule(303),
    ("GET", "/patients/{study_number}/form"): patient_level(WRITERS),
    ("POST", "/patients/{study_number}/form"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/edit"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/screen"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/enrol"): patient_level({"investigator"}, 303),
    ("POST", "/patients/{study_number}/consent"): patient_level(WRITERS, 303),
    ("GET", "/patients/{study_number}/calendar"): patient_level(CLINICAL),
    ("POST", "/patients/{study_number}/calendar/settings"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/body"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/records"): patient_level(GIVERS, 303),
    ("POST", "/patients/{study_number}/delays"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/doses/sign"): patient_level(DOSE, 303),
    ("GET", "/patients/{study_number}/calendar/doses/{dose_id}"): patient_level(GIVERS),
    ("POST", "/patients/{study_number}/calendar/doses/{dose_id}"): patient_level(GIVERS, 303),
    ("POST", "/patients/{study_number}/calendar/doses/{dose_id}/correction"):
        patient_level(GIVERS, 303),
    ("GET", "/patients/{study_number}/courses/{number}/sign-off"): patient_level(CLINICAL),
    ("POST", "/patients/{study_number}/courses/{number}/sign-off"): patient_level(DOSE, 303),
    ("GET", "/patients/{study_number}/adverse-events"): patient_level(CLINICAL),
    ("POST", "/patients/{study_number}/adverse-events"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/adverse-events/{ae_id}"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/actions/{action_id}/confirm"):
        patient_level(INVESTIGATOR, 303),
    ("GET", "/patients/{study_number}/responses"): patient_level(CLINICAL),
    ("POST", "/patients/{study_number}/responses"): patient_level(INVESTIGATOR, 303),
    ("POST", "/patients/{study_number}/follow-ups"): patient_level(WRITERS, 303),
    ("GET", "/trials/{trial_id}/outcomes"): trial_level(OUTCOMES),
    ("POST", "/trials/{trial_id}/randomisation"): trial_level({"administrator"}, 422),
    ("GET", "/api/lab"): anywhere(LAB),
    ("GET", "/lab"): anywhere(LAB),
    ("GET", "/api/products/{product_id}"): trial_level(CLINICAL),
    ("GET", "/products/{product_id}"): trial_level(CLINICAL),
    ("GET", "/api/products/{product_id}/history.pdf"): trial_level(CLINICAL),
    ("GET", "/api/products/{product_id}/label.pdf"): trial_level(LAB),
    ("GET", "/api/patients/{study_number}/events/{event_id}/product"): patient_level(CLINICAL),
    ("GET", "/patients/{study_number}/bedside"): patient_level(GIVERS),
    # A bedside check of an unknown product is a refusal, recorded (201 / the page, 200).
    ("POST", "/api/patients/{study_number}/bedside-verifications"): patient_level(GIVERS, 201),
    ("POST", "/patients/{study_number}/bedside"): patient_level(GIVERS),
    # No such verification: the infusion is refused naming the field (422).
    ("POST", "/api/patients/{study_number}/infusions"): patient_level(GIVERS, 404),
    ("POST", "/patients/{study_number}/infusions"): patient_level(GIVERS, 404),
    # The cell lab's records, on the demo collection. It has no release tests: a test result
    # is refused naming the test (422), the signed decision is "not released", and an
    # exceptional release with the investigator's signature is recorded. A caller who does
    # not hold it cannot hand it over (422, naming the hand-over).
    ("GET", "/lab/collections/new"): anywhere(LAB),
    ("POST", "/lab/collections"): trial_level(LAB, 303),
    ("POST", "/api/lab/collections"): trial_level(LAB, 201),
    ("GET", "/products/{product_id}/record"): trial_level(LAB),
    ("POST", "/products/{product_id}/derived"): trial_level(LAB, 303),
    ("POST", "/api/products/{product_id}/derived"): trial_level(LAB, 201),
    ("POST", "/products/{product_id}/tests"): trial_level(LAB, 422),
    ("POST", "/api/products/{product_id}/tests"): trial_level(LAB, 422),
    ("POST", "/products/{product_id}/release"): trial_level(LAB, 303),
    ("POST", "/api/products/{product_id}/release"): trial_level(LAB, 201),
    ("POST", "/products/{product_id}/exceptional-release"): trial_level(LAB, 303),
    ("POST", "/api/products/{product_id}/exceptional-release"): trial_level(LAB, 201),
    ("POST", "/products/{product_id}/handovers"): trial_level(LAB, 422),
    ("POST", "/api/products/{product_id}/handovers"): trial_level(LAB, 422),
    # Worklist, data queries and monitoring (a fresh query on PATIENT for each call; a
    # fresh query is open, so re-opening it is refused naming the step, 422).
    ("GET", "/api/worklist"): logged_in(),
    ("GET", "/api/patients/{study_number}/monitoring"): patient_level(ALL),
    ("GET", "/patients/{study_number}/monitoring"): patient_level(ALL),
    ("POST", "/api/patients/{study_number}/queries"): patient_level({"monitor"}, 201),
    ("POST", "/patients/{study_number}/queries"): patient_level({"monitor"}, 303),
    ("GET", "/api/queries/{query_id}"): patient_level(ALL),
    ("GET", "/queries/{query_id}"): patient_level(ALL),
    ("POST", "/api/queries/{query_id}/answer"): patient_level(WRITERS),
    ("POST", "/api/queries/{query_id}/correct"): patient_level(WRITERS),
    ("POST", "/api/queries/{query_id}/close"): patient_level({"monitor"}),
    ("POST", "/api/queries/{query_id}/reopen"): patient_level({"monitor"}, 422),
    ("POST", "/queries/{query_id}/{step}"): patient_level({"monitor"}, 303),
    ("POST", "/api/patients/{study_number}/forms/{form_id}/status"): patient_level(WRITERS),
    ("POST", "/patients/{study_number}/forms/{form_id}/status"): patient_level(WRITERS, 303),
    ("POST", "/api/patients/{study_number}/lock"): patient_level({"administrator"}),
    ("POST", "/patients/{study_number}/lock"): patient_level({"administrator"}, 303),
    # Biomarker samples and results (on the enrolled patient; a sample of that patient).
    ("GET", "/api/patients/{study_number}/samples"): patient_level(CLINICAL),
    ("POST", "/api/patients/{study_number}/samples"): patient_level(WRITERS, 201),
    ("GET", "/api/samples/{sample_id}"): patient_level(CLINICAL),
    ("POST", "/api/samples/{sample_id}/corrections"): patient_level(WRITERS),
    ("POST", "/api/samples/{sample_id}/results"): patient_level(WRITERS, 201),
    ("GET", "/api/facts/{fact}/result-field"): public(),
    ("GET", "/patients/{study_number}/samples/new"): patient_level(WRITERS),
    ("POST", "/patients/{study_number}/samples"): patient_level(WRITERS, 303),
    ("GET", "/samples/{sample_id}/results/new"): patient_level(WRITERS),
    ("POST", "/samples/{sample_id}/results"): patient_level(WRITERS, 303),
    # Typed response forms: the form, the preview (nothing stored) and the signed record.
    ("GET", "/patients/{study_number}/responses/{criteria}/form"): patient_level(INVESTIGATOR),
    ("POST", "/patients/{study_number}/responses/{criteria}/form"): patient_level(INVESTIGATOR),
    ("GET", "/api/patients/{study_number}/responses/{criteria}/form"):
        patient_level(INVESTIGATOR),
    ("POST", "/api/patients/{study_number}/responses/{criteria}/preview"):
        patient_level(INVESTIGATOR),
    ("POST", "/api/patients/{study_number}/responses/{criteria}/form"):
        patient_level(INVESTIGATOR, 201),
    # Adverse events by CTCAE term: the term list, the preview (nothing stored), corrections
    # with a reason, and the signed decisions on proposals (accept one, decline the others).
    ("GET", "/api/ctcae/terms"): logged_in(),
    ("GET", "/api/ctcae/terms/{term}"): logged_in(),
    ("POST", "/api/patients/{study_number}/adverse-events/preview"): patient_level(WRITERS),
    ("POST", "/api/patients/{study_number}/adverse-events/{ae_id}/correction"):
        patient_level(WRITERS),
    ("GET", "/patients/{study_number}/adverse-events/{ae_id}/correction"):
        patient_level(CLINICAL),
    ("POST", "/patients/{study_number}/adverse-events/{ae_id}/correction"):
        patient_level(WRITERS, 303),
    ("POST", "/api/patients/{study_number}/adverse-events/{ae_id}/decisions"):
        patient_level(INVESTIGATOR, 201),
    ("POST", "/patients/{study_number}/adverse-events/{ae_id}/decisions"):
        patient_level(INVESTIGATOR, 303),
    # The same decisions on the action proposed for a cell product not released.
    ("POST", "/api/patients/{study_number}/product-actions/decisions"):
        patient_level(INVESTIGATOR, 201),
    ("POST", "/patients/{study_number}/product-actions/decisions"):
        patient_level(INVESTIGATOR, 303),
    # The registry: any signed-in user searches and reads a study; administrators upload
    # registry files; investigators sign their review of a criterion's draft.
    ("GET", "/registry"): logged_in(),
    ("GET", "/registry/import"): anywhere({"administrator"}),
    ("POST", "/registry/import"): anywhere({"administrator"}),
    ("GET", "/registry/studies/{nct_id}"): logged_in(),
    ("POST", "/registry/studies/{nct_id}/criteria/{criterion_id}"): anywhere(INVESTIGATOR, 303),
    ("POST", "/registry/studies/{nct_id}/open"): anywhere({"administrator"}, 303),
}
# Log-in and log-out are the same for every role; tests in test_web_api.py and
# test_web_pages.py cover them.
EXEMPT = {("POST", "/api/login"), ("POST", "/api/logout"), ("POST", "/login"),
          ("POST", "/logout")}


def routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route, looking inside included routers."""
    found = set()
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        inner = getattr(route, "original_router", None)  # FastAPI's included-router wrapper
        if inner is not None:
            pending += list(inner.routes)
            continue
        if isinstance(route, APIRoute) or getattr(route, "methods", None):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((method, route.path))
    return found


def test_every_route_has_a_row(web: Any) -> None:
    assert routes(web.app) - EXEMPT == set(EXPECTED)


def _call(web: Any, client: Any, method: str, path: str) -> Any:
    patient = JOURNEY if any(r in path for r in JOURNEY_ROUTES) else PATIENT
    url = path.replace("{trial_id}", TRIAL).replace("{study_number}", patient).replace(
        "{number}", "1")
    if "{ae_id}/decisions" in url:
        url = url.replace("{ae_id}", str(web.store.toxicity_action(
            _confirmable_action(web))[1].adverse_event_id))
    if "{ae_id}" in url:
        url = url.replace("{ae_id}", str(web.store.adverse_events(JOURNEY)[0].id))
    url = url.replace("{term}", "Neuralgia")
    if url.endswith("/ctcae/terms"):
        url += "?q=neuralg"
    if "{action_id}" in url:
        url = url.replace("{action_id}", str(_confirmable_action(web)))
    if "{product_id}" in url:
        url = url.replace("{product_id}", web.store.cell_products()[0].key.replace(" ", ""))
    if "{event_id}" in url:
        url = url.replace("{event_id}", _nk_event(web))
    dose: dict[str, Any] = {}
    correction = "{dose_id}" in path and (method == "PUT" or path.endswith("/correction"))
    if correction:  # a dose recorded in the demo, its lot changed at each call
        record = next(r for r in web.store.journey(JOURNEY).records
                      if r["event_id"] == RECORDED_DOSE)
        url = url.replace("{dose_id}", RECORDED_DOSE)
        values = {"status": record["status"], "amount": f"{record['amount']:g}",
                  "at": record["at"][:16], "by": record["by"], "lot": f"L{next(LOTS)}"}
    elif "{dose_id}" in url:
        dose = _next_dose(web)
        url = url.replace("{dose_id}", dose["id"])
    url = url.replace("{criteria}", "inrc")
    if url.endswith("/sdtm.zip"):
        url += "?country=RUS"
    if "{query_id}" in url or "{form_id}" in url:
        url = url.replace("{query_id}", str(_fresh_query(web))).replace(
            "{form_id}", "lab").replace("{step}", "close")
    if "{sample_id}" in url:
        url = url.replace("{sample_id}", _sample(web))
    url = url.replace("{fact}", "il6")
    if "{nct_id}" in url:
        nct, criterion, study_version = _registry_study(web)
        url = url.replace("{nct_id}", nct).replace("{criterion_id}", criterion)
    if path == "/patients/{study_number}/samples/new":
        url += f"?event={_sampling_event(web)}"
    api = url.startswith("/api")
    headers = {"x-csrf-token": client.csrf or ""} if api else {"accept": "text/html"}
    form = {"csrf_token": client.csrf or ""}
    kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    key = (method, path)
    if key == ("POST", "/api/trials/{trial_id}/versions"):
        doc = web.store.protocol_version(TRIAL, 1).document
        kwargs["json"] = {"document": doc, "reason": "re-import"}
    elif key == ("POST", "/api/screen"):
        kwargs["json"] = {"patient": RECORD, "as_of": "2026-11-21T12:00:00"}
    elif key == ("POST", "/api/patients"):
        kwargs["json"] = {"trial_id": TRIAL, "site": "Moscow", "record": RECORD,
                          "reason": "new patient"}
    elif key == ("PUT", "/api/patients/{study_number}"):
        version = web.store.patient(PATIENT).version
        kwargs["json"] = {"version": version, "record": RECORD,
                          "reason": "edit"}
    elif key == ("POST", "/api/patients/{study_number}/screenings"):
        kwargs["json"] = {"as_of": "2026-11-21T12:00:00", "reason": "screening"}
    elif key == ("POST", "/api/patients/{study_number}/enrolment"):
        kwargs["json"] = {"screening_id": _eligible_screening(web),
                          "password": web.logins.get(client.username, "x"), "reason": "enrol"}
    elif key == ("POST", "/screen"):
        kwargs["data"] = {**form, "record_json": json.dumps(RECORD), "trial_id": TRIAL,
                          "as_of": "2026-11-21T12:00"}
    elif key == ("POST", "/patients"):
        kwargs["data"] = {**form, "trial_id": TRIAL, "site": "Moscow", "reason": "new",
                          "record_json": json.dumps(RECORD)}
    elif key == ("POST", "/patients/{study_number}/edit"):
        version = web.store.patient(PATIENT).version
        kwargs["data"] = {**form, "version": str(version), "reason": "edit",
                          "record_json": json.dumps(RECORD)}
    elif key == ("POST", "/api/trials/{trial_id}/form"):
        kwargs["json"] = {"site": "Moscow", "values": FORM, "reason": "new patient"}
    elif key == ("POST", "/trials/{trial_id}/patients"):
        kwargs["data"] = {**form, **FORM, "site": "Moscow", "action": "draft"}
    elif key == ("POST", "/patients/{study_number}/form"):
        version = web.store.patient(PATIENT).version
        kwargs["data"] = {**form, **FORM, "version": str(version), "reason": "form edit",
                          "action": "draft"}
    elif key == ("POST", "/patients/{study_number}/screen"):
        kwargs["data"] = {**form, "reason": "screening"}
    elif key == ("POST", "/patients/{study_number}/enrol"):
        kwargs["data"] = {**form, "screening_id": str(_eligible_screening(web)),
                          "password": web.logins.get(client.username, "x"), "reason": "enrol"}
    elif key in LAB_BODIES:
        body = LAB_BODIES[key](web, client)
        if api:
            kwargs["json"] = body
        else:
            kwargs["data"] = {**form, **{k: str(v) for k, v in body.items()}}
    elif correction:
        if api:
            kwargs["json"] = {"values": values, "reason": "lot number from the label"}
        else:
            kwargs["data"] = {**form, **values, "reason": "lot number from the label"}
    elif "{dose_id}" in path and method == "POST":
        values = {"status": "given", "amount": str(dose["amount"]), "at": "2026-11-21T11:00",
                  "by": "Nurse K"}
        if api:
            kwargs["json"] = {"values": values}
        else:
            kwargs["data"] = {**form, **values}
    elif "/courses/{number}/" in path and method == "POST":
        password = web.logins.get(client.username, "x")
        if api:
            kwargs["json"] = {"password": password, "reason": "course signed"}
        else:
            kwargs["data"] = {**form, "scope": "course", "password": password}
    elif key in MONITORING_BODIES:
        body = MONITORING_BODIES[key](url)
        if api:
            kwargs["json"] = body
        else:
            kwargs["data"] = {**form, **{k: str(v) for k, v in body.items()}}
        try:
            return client.request(method, url, **kwargs)
        finally:
            _unlock(web)
    elif "/responses/{criteria}/" in path and method == "POST":
        values = {"assessed_on": "2026-11-21", "marrow.status": "involved",
                  "marrow.baseline_aspirate_pct": "30", "marrow.current_aspirate_pct": "0"}
        if api:
            signed = {"password": web.logins.get(client.username, "x")} \
                if path.endswith("/form") else {}
            kwargs["json"] = {"values": values, **signed}
        else:
            kwargs["data"] = {**form, **values, "action": "preview"}
    elif path.startswith(("/api/patients/", "/patients/")) and method in ("POST", "PUT"):
        body = _journey_body(web, client, path)
        if api:
            kwargs["json"] = body
        else:
            kwargs["data"] = {**form, **{k: ("yes" if v is True else str(v))
                                         for k, v in body.items()
                                         if not isinstance(v, (dict, list))}}
            if isinstance(body.get("document"), dict):
                kwargs["data"]["document"] = json.dumps(body["document"])
    elif path.startswith(("/api/samples/", "/samples/")) and method == "POST":
        body = _sample_body(web, path)
        if api:
            kwargs["json"] = body
        else:
            kwargs["data"] = {**form, **{k: str(v) for k, v in body.items()}}
    elif key == ("POST", "/registry/import"):
        kwargs["data"] = form
        kwargs["files"] = [("files", (REGISTRY_FILE.name, REGISTRY_FILE.read_bytes()))]
    elif key == ("POST", "/registry/studies/{nct_id}/criteria/{criterion_id}"):
        kwargs["data"] = {**form, "version": str(study_version), "action": "accept",
                          "password": web.logins.get(client.username, "x")}
    elif key == ("POST", "/registry/studies/{nct_id}/open"):
        _reviewed(web, nct)
        kwargs["data"] = {**form, "password": web.logins.get(client.username, "x")}
    elif key in (("POST", "/api/trials/{trial_id}/randomisation"),
                 ("POST", "/trials/{trial_id}/randomisation")):
        body = {"seed": 7, "reason": "generate"}
        if api:
            kwargs["json"] = body
        else:
            kwargs["data"] = {**form, "seed": "7", "reason": "generate"}
    return client.request(method, url, **kwargs)


def _new_code(web: Any) -> str:
    """A product code not used yet under the demo collection's DIN (each call a new one)."""
    return f"S{len(web.store.cell_products()) + 10:04d}A"


LAB_BODIES: dict[tuple[str, str], Callable[[Any, Any], dict[str, Any]]] = {
    ("POST", "/lab/collections"): lambda web, c: {
        "collection": f"{TRIAL}/nk-collection", "patient": JOURNEY,
        "collected_at": "2026-11-21T08:00", "procedure": "peripheral blood", "code": "S0001A",
        "volume_ml": 40},
    ("POST", "/products/{product_id}/derived"): lambda web, c: {
        "spec_id": "nk-expansion", "prepared_at": "2026-11-22T08:00", "code": _new_code(web)},
    ("POST", "/products/{product_id}/tests"): lambda web, c: {
        "test_id": "viability", "value": "92", "tested_at": "2026-11-22T09:00"},
    ("POST", "/products/{product_id}/release"): lambda web, c: {
        "password": web.logins.get(c.username, "x")},
    ("POST", "/products/{product_id}/exceptional-release"): lambda web, c: {
        "justification": "no other option", "password": web.logins.get(c.username, "x"),
        "investigator": "investigator", "investigator_password": "investigator-demo"},
    ("POST", "/products/{product_id}/handovers"): lambda web, c: {
        "version": web.store.cell_products()[0].version, "to": "coordinator",
        "location": "ward 3", "at": "2026-11-22T10:00", "condition": "intact"},
}
LAB_BODIES[("POST", "/api/lab/collections")] = lambda web, c: {
    "trial_id": TRIAL, "product_type": "nk-collection", "patient": JOURNEY,
    "collected_at": "2026-11-21T08:00", "procedure": "peripheral blood", "code": "S0001A"}
LAB_BODIES[("POST", "/api/products/{product_id}/derived")] = lambda web, c: {
    "product_type": "nk-expansion", "prepared_at": "2026-11-22T08:00", "code": _new_code(web)}
for _path in ("/tests", "/release", "/exceptional-release", "/handovers"):
    LAB_BODIES[("POST", "/api/products/{product_id}" + _path)] = \
        LAB_BODIES[("POST", "/products/{product_id}" + _path)]


MONITORING_BODIES: dict[tuple[str, str], Callable[[str], dict[str, Any]]] = {
    ("POST", "/api/patients/{study_number}/queries"): lambda url: {
        "field": "creatinine", "question": "please check"},
    ("POST", "/patients/{study_number}/queries"): lambda url: {
        "field": "creatinine", "question": "please check"},
    ("POST", "/api/queries/{query_id}/answer"): lambda url: {"version": 1, "answer": "right"},
    ("POST", "/api/queries/{query_id}/correct"): lambda url: {
        "version": 1, "value": f"0.{300 + int(url.split('/')[3])}", "reason": "typo"},
    ("POST", "/api/queries/{query_id}/close"): lambda url: {"version": 1, "note": "fine"},
    ("POST", "/api/queries/{query_id}/reopen"): lambda url: {"version": 1, "note": "again"},
    ("POST", "/queries/{query_id}/{step}"): lambda url: {"version": 1, "note": "fine"},
    ("POST", "/api/patients/{study_number}/forms/{form_id}/status"): lambda url: {
        "status": "complete", "reason": "entered"},
    ("POST", "/patients/{study_number}/forms/{form_id}/status"): lambda url: {
        "status": "complete", "reason": "entered"},
    ("POST", "/api/patients/{study_number}/lock"): lambda url: {"locked": True,
                                                                "reason": "lock"},
    ("POST", "/patients/{study_number}/lock"): lambda url: {"reason": "lock"},
}


def _fresh_query(web: Any) -> int:
    from trialdesk.store.queries import QueryStore

    q = QueryStore(web.store.engine, clock=web.store.clock).open_query(
        PATIENT, form="lab", field="creatinine", field_label="Serum creatinine",
        value_seen="(test)", question="test query", actor="monitor")
    return q.id


def _unlock(web: Any) -> None:
    """Each lock call starts from an unlocked record (test set-up only)."""
    from trialdesk.store.queries import QueryStore

    qs = QueryStore(web.store.engine, clock=web.store.clock)
    if qs.patient_lock(PATIENT) is not None:
        qs.unlock_patient(PATIENT, actor="test", reason="test set-up")


INRC = json.loads((default_protocol_dir().parent / "examples" / "response" /
                   "inrc-pr.json").read_text())


def _investigator(web: Any) -> Any:
    from trialdesk.services.accounts import Principal

    user = web.store.user_by_name("investigator")
    return Principal(user, tuple(web.store.memberships(user.id)))


def _calendar(web: Any) -> dict[str, Any]:
    from trialdesk.services.journeys import calendar_page

    page: dict[str, Any] = calendar_page(web.app.state.ctx, _investigator(web), JOURNEY)
    return page


def _journey_body(web: Any, client: Any, path: str) -> dict[str, Any]:
    """A valid body for each journey route (each call a new record where it must be)."""
    tail = path.split("{study_number}", 1)[1]
    password = web.logins.get(client.username, "x")
    if tail == "/consents" or tail == "/consent":
        return {"version": "1.0", "signed_on": "2026-11-18", "signed_by": "parent",
                "reason": "consent"}
    if tail in ("/calendar", "/calendar/settings"):
        return {"version": web.store.journey(JOURNEY).version, "start": "2026-11-21",
                "reason": "settings"}
    if tail == "/body":
        return {"on": "2026-11-21", "weight_kg": 21.0, "reason": "weighed"}
    if tail == "/records":
        dose = _next_dose(web)
        return {"event_id": dose["id"], "status": "given", "at": "2026-11-21T11:00",
                "amount": dose["amount"], "unit": dose["unit"], "reason": "given"}
    if tail == "/delays":
        return {"course": 5, "days": 1, "why": "count recovery", "reason": "delay"}
    if tail in ("/dose-signatures", "/doses/sign"):
        event = next(e for e in _calendar(web)["calendar"]["events"] if e["signable"])
        return {"event_id": event["id"], "password": password, "reason": "sign-off"}
    if tail == "/adverse-events":
        return {"term": "Fever", "grade": 1, "onset": "2026-11-21", "meddra_term": "Fever",
                "reason": "AE"}
    if tail == "/adverse-events/{ae_id}":
        ae = web.store.adverse_events(JOURNEY)[0]
        return {"version": ae.version, "resolution": "2026-11-21", "reason": "resolved"}
    if tail == "/adverse-events/preview":
        return {"term": "neuralgia", "grade": 3, "onset": "2026-11-21"}
    if tail == "/adverse-events/{ae_id}/correction":
        ae = web.store.adverse_events(JOURNEY)[0]
        return {"version": ae.version, "term": ae.term, "grade": ae.grade, "onset": ae.onset,
                "reason": "corrected"}
    if tail == "/adverse-events/{ae_id}/decisions":
        action = _confirmable_action(web)
        _, row = web.store.toxicity_action(action)
        # declined (nothing applied to the calendar, so every call can decide a new one)
        return {"group": action, "choice": None if path.startswith("/api") else "none",
                "password": password, "reason": "decided"}
    if tail == "/product-actions/decisions":
        # declined, as above: every call decides a new one
        return {"group": _product_action(web),
                "choice": None if path.startswith("/api") else "none",
                "password": password, "reason": "decided"}
    if tail.startswith("/actions/"):
        _, row = web.store.toxicity_action(_confirmable_action(web))
        return {"version": row.version, "password": password, "accept_unconfirmed": True,
                "reason": "confirm"}
    if tail == "/responses":
        return {"criteria": "INRC", "assessed_on": "2026-11-21", "document": INRC,
                "reason": "assessment"}
    if tail in ("/bedside", "/bedside-verifications"):
        return {"event_id": _nk_event(web), "product": "A999926999999 00 X S0004AA0",
                "wristband": JOURNEY, "second_verifier": "investigator",
                "second_password": "investigator-demo"}
    if tail == "/infusions":
        return {"verification": 999999, "start": "2026-11-21T11:00", "reason": "infused"}
    if tail == "/samples":
        return {"event_id": _sampling_event(web), "collected_at": "2026-11-21T11:00",
                "sample_id": f"T-{len(web.store.biomarker_samples()) + 1}", "reason": "taken"}
    if tail == "/follow-ups":
        return {"kind": "last_contact", "occurred_on": "2026-11-21", "reason": "seen"}
    raise AssertionError(f"no request maker for {path}")


def _next_dose(web: Any) -> dict[str, Any]:
    """The first dose of JOURNEY's calendar not yet recorded (not a cell product)."""
    events = {e["id"]: e for e in _calendar(web)["calendar"]["events"]}
    event = next(events[r["id"]] for r in _calendar(web)["recordable"]
                 if r["administration"] and not events[r["id"]]["cell_product"]
                 and events[r["id"]]["dose"]["amount"] is not None)
    return {"id": event["id"], "amount": event["dose"]["amount"], "unit": event["dose"]["unit"]}


def _nk_event(web: Any) -> str:
    """The first cell-product event of JOURNEY's calendar."""
    return str(next(e["id"] for e in _calendar(web)["calendar"]["events"] if e["cell_product"]))


def _sampling_event(web: Any) -> str:
    """The first sampling event of JOURNEY's calendar."""
    return str(next(e["id"] for e in _calendar(web)["calendar"]["events"]
                    if e["kind"] == "sampling"))


REGISTRY_FILE = next(p / "shared" / "ctgov" / "NCT00973089.json"
                     for p in (Path(__file__).resolve().parents[2], Path("/work"))
                     if (p / "shared" / "ctgov").is_dir())


def _registry_study(web: Any) -> tuple[str, str, int]:
    """(NCT id, first criterion, version) of a registry study (imported once per database)."""
    from trialdesk.services import registry
    from trialdesk.services.accounts import Principal
    from trialdesk.services.context import Services
    from trialdesk.services.roles import Role as R
    from trialdesk.store.records import MembershipRecord

    store = registry.RegistryStore(web.store.engine, clock=web.store.clock)
    if store.registry_count() == 0:
        admin = web.store.user_by_name("administrator")
        who = Principal(admin, (MembershipRecord(TRIAL, None, R.ADMINISTRATOR.value),))
        registry.import_files(Services.open(web.store), who,
                              [(REGISTRY_FILE.name, REGISTRY_FILE.read_bytes())])
    study = store.registry_study("NCT00973089")
    first = study.document["eligibility"]["inclusion"][0]["id"]
    return study.nct_id, first, study.version


def _reviewed(web: Any, nct: str) -> None:
    """Every criterion of the study accepted (set up in the store), so it can be opened."""
    from trialdesk.registry import review
    from trialdesk.services import registry

    store = registry.RegistryStore(web.store.engine, clock=web.store.clock)
    study = store.registry_study(nct)
    if not study.unreviewed:
        return
    doc = study.document
    for kind in ("inclusion", "exclusion"):
        for c in study.document["eligibility"][kind]:
            doc = review.accept(doc, c["id"], by="investigator", at=web.store.now())
    store.update_registry_document(nct, doc, expected_version=study.version, unreviewed=0,
                                   actor="investigator", action="review", changes={},
                                   reason="test set-up: every criterion accepted")


def _sample(web: Any) -> str:
    """A sample of JOURNEY (made once per test database)."""
    found = web.store.biomarker_samples(study_number=JOURNEY)
    if found:
        return str(found[0].sample_id)
    row = web.store.add_biomarker_sample(JOURNEY, {
        "sample_id": "T-0", "event_id": _sampling_event(web), "collected_at": "2026-11-21T10:00",
        "specimen": "serum", "by": "test"}, actor="test", reason="test set-up")
    return str(row.sample_id)


def _sample_body(web: Any, path: str) -> dict[str, Any]:
    """A valid body for each sample route (a correction of the latest where one exists)."""
    row = web.store.biomarker_sample(_sample(web))
    if path.endswith("/corrections"):
        return {"version": row.version, "storage": f"box {row.version}", "reason": "moved"}
    current = row.current().get("il6")
    body: dict[str, Any] = {"fact": "il6", "value": "12", "unit": "pg/mL",
                            "reason": "re-measured"}
    if current is not None:
        body["corrects"] = current.revision
    return body


def _product_action(web: Any) -> int:
    """A proposed action of JOURNEY's: an NK-cell batch made from the demo collection with
    no release test results, signed "not released" (a manufacturing failure) anew whenever
    the last proposal is decided."""
    from datetime import UTC

    from trialdesk.services import cellproduct
    from trialdesk.services.accounts import principal_for
    from trialdesk.services.context import Services

    for a in web.store.product_actions(JOURNEY):
        if a.status == "proposed":
            return int(a.id)
    ctx, lab = Services.open(web.store), principal_for(web.store, "pharmacist")
    batch = next((p.key for p in web.store.cell_products()
                  if p.recipient == JOURNEY and p.spec_id == "nk-expansion"), None)
    if batch is None:
        collection = next(p for p in web.store.cell_products() if p.recipient == JOURNEY)
        batch = cellproduct.derive_product(
            ctx, lab, collection.key, spec_id="nk-expansion", code=_new_code(web),
            prepared_at=web.store.now().astimezone(UTC).replace(tzinfo=None, microsecond=0),
            reason="expansion")["id"]
    decision = cellproduct.release_product(ctx, lab, batch, password="pharmacist-demo",
                                           reason="release")
    assert decision["manufacturing_failure"]["proposed_actions"], decision
    return _product_action(web)


def _confirmable_action(web: Any) -> int:
    """A proposed, confirmable action of JOURNEY (made once per test database)."""
    for ae in web.store.adverse_events(JOURNEY):
        for a in ae.actions:
            if a.status == "proposed" and a.proposal["requires_confirmation"] and \
                    a.kind == "discontinue_agent":
                return int(a.id)
    from trialdesk.safety.rules import ProposedAction

    done = sum(1 for ae in web.store.adverse_events(JOURNEY) for a in ae.actions
               if a.status == "confirmed")
    agent = ("dinutuximab beta", "temozolomide", "irinotecan")[done]  # a new action each time
    proposal = ProposedAction(
        kind="discontinue_agent", agent=agent, scope="permanent",
        reason="Anaphylaxis grade 3", rule_id="NBNK-ANAPHYLAXIS", source="test",
        unconfirmed=True, requires_confirmation=True)
    j = web.store.journey(JOURNEY)
    row = web.store.add_adverse_event(
        JOURNEY, document={"term": "Anaphylaxis", "grade": 3, "onset": "2026-11-21"},
        lab=None, check={"rules": []}, course_number=1, course_id="IT",
        proposals=[{"rule_id": proposal.rule_id, "kind": proposal.kind.value,
                    "proposal": proposal.model_dump(mode="json"), "found_on": "2026-11-21"}],
        expected_version=j.version, actor="test", reason="test set-up")
    return int(row.actions[0].id)


def _eligible_screening(web: Any) -> int:
    """A fresh eligible screening of PATIENT (and no enrolment yet)."""
    from datetime import datetime

    from trialdesk.criteria.verdict import screen_record
    from trialdesk.facts.patient import PatientRecord

    version = web.store.protocol_version(TRIAL)
    compiled = web.app.state.ctx.catalogue.compile(version)
    row = web.store.patient(PATIENT)
    result = screen_record(compiled, PatientRecord.model_validate(row.record),
                           as_of=datetime(2026, 11, 21, 12, 0)).to_json()
    assert result["verdict"] == "eligible"
    sc = web.store.add_screening(PATIENT, version.id, row.version, result, actor="test",
                                 reason="test screening")
    return int(sc.id)


@pytest.fixture
def access_web(web: Any) -> Any:
    for label, role, membership in CALLERS:
        if role is None:
            continue
        trial, site = {"member": (TRIAL, None), "other": ("REFNOT-R2", None),
                       "site": (TRIAL, "St Petersburg")}[membership]
        web.add_user(label, role, trial, site)
    return web


def callers_clients(web: Any) -> dict[str, Any]:
    """A logged-in client per caller (anonymous: not logged in)."""
    clients = {}
    for label, role, _ in CALLERS:
        c = web.client(None if role is None else label)
        c.username = label
        clients[label] = c
    return clients


def test_every_endpoint_for_every_role_and_membership(access_web: Any) -> None:
    web = access_web
    clients = callers_clients(web)
    wrong: list[str] = []
    for (method, path), rule in sorted(EXPECTED.items()):
        for label, role, membership in CALLERS:
            if "enrol" in path and web.store.enrolment(PATIENT) is not None:
                _unenrol(web)
            expected = rule(role, membership)
            r = _call(web, clients[label], method, path)
            if r.status_code != expected:
                wrong.append(f"{method} {path} as {label}: {r.status_code}, expected {expected}"
                             f" ({r.text[:120]!r})")
            elif r.status_code >= 400 and path.startswith("/api"):
                body = r.json()
                assert body["ok"] is False and body["status"] == r.status_code
    assert wrong == [], "\n".join(wrong)


def _unenrol(web: Any) -> None:
    """Start the next enrolment case from a patient who is not enrolled (test set-up only)."""
    from sqlalchemy import text

    with web.store.engine.begin() as conn:
        ids = "SELECT id FROM journeys WHERE patient_id = (SELECT id FROM patients WHERE " \
              f"study_number = '{PATIENT}')"
        conn.execute(text(f"DELETE FROM body_measurements WHERE journey_id IN ({ids})"))
        conn.execute(text(f"DELETE FROM journeys WHERE id IN ({ids})"))
        conn.execute(text("DELETE FROM enrolments WHERE patient_id = (SELECT id FROM patients "
                          f"WHERE study_number = '{PATIENT}')"))


def test_nobody_sees_another_trials_patients(access_web: Any) -> None:
    web = access_web
    for label in ("investigator-other", "monitor-other", "statistician-other"):
        c = web.client(label)
        listed = c.get("/api/patients").json()
        assert all(p["trial_id"] == "REFNOT-R2" for p in listed["items"]), label
        assert c.get(f"/api/patients/{PATIENT}").status_code == 404
    site = web.client("coordinator-site").get("/api/patients").json()
    assert site["total"] == 0  # every demo patient of NB-NK-2026 is at Moscow
    member = web.client("coordinator-member").get("/api/patients").json()
    assert {p["trial_id"] for p in member["items"]} == {TRIAL} and member["total"] == 3


def test_the_monitor_sees_the_audit_trail_of_the_trial_only(access_web: Any) -> None:
    trail = access_web.client("monitor-member").get(f"/api/trials/{TRIAL}/audit?limit=200").json()
    record_ids = {e["record_id"] for e in trail["items"]}
    assert record_ids and all(r.startswith(("NBNK-", f"{TRIAL}#")) for r in record_ids)

"""Every endpoint × every role × membership (member of the trial, member of another trial
only, member at another site, anonymous) gets the answer the role table says.

A new route fails this test until it is given its row in ``EXPECTED``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.routing import APIRoute

from trialdesk.protocol.load import default_protocol_dir
from trialdesk.web.roles import Role

TRIAL = "NB-NK-2026"
PATIENT = "NBNK-0002"  # eligible, not enrolled, site Moscow
RECORD = json.loads((default_protocol_dir().parent / "examples" / "patients" /
                     "nb-relapsed.json").read_text())
ROLES = [r.value for r in Role]

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
    ("GET", "/"): public(303),
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
    ("POST", "/patients/{study_number}/edit"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/screen"): patient_level(WRITERS, 303),
    ("POST", "/patients/{study_number}/enrol"): patient_level({"investigator"}, 303),
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
    url = path.replace("{trial_id}", TRIAL).replace("{study_number}", PATIENT).replace(
        "{number}", "1")
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
        kwargs["json"] = {"version": version, "record": {**RECORD, "sex": "female"},
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
                          "record_json": json.dumps({**RECORD, "sex": "female"})}
    elif key == ("POST", "/patients/{study_number}/screen"):
        kwargs["data"] = {**form, "reason": "screening"}
    elif key == ("POST", "/patients/{study_number}/enrol"):
        kwargs["data"] = {**form, "screening_id": str(_eligible_screening(web)),
                          "password": web.logins.get(client.username, "x"), "reason": "enrol"}
    return client.request(method, url, **kwargs)


def _eligible_screening(web: Any) -> int:
    """A fresh eligible screening of PATIENT (and no enrolment yet)."""
    version = web.store.protocol_version(TRIAL)
    row = web.store.patient(PATIENT)
    sc = web.store.add_screening(PATIENT, version.id, row.version, {
        "as_of": "2026-11-21T12:00:00", "verdict": "eligible", "arm": "B"},
        actor="test", reason="test screening")
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


def test_every_endpoint_for_every_role_and_membership(access_web: Any) -> None:
    web = access_web
    clients = {}
    for label, role, _ in CALLERS:
        c = web.client(None if role is None else label)
        c.username = label
        clients[label] = c
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
        conn.execute(text("DELETE FROM enrolments"))


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

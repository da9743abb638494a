"""A manufacturing failure as a protocol action: a cell product signed "not released"
stores the protocol's proposal (rule NBNK-NK-PRODUCT-FAILURE) as an action of the
patient's journey, awaiting an investigator's decision, in the same transaction as the
release decision. The investigator accepts it (signed with the password, audited) on the
adverse-events page, through the API or with ``trialdesk safety apply``, and the NK-cell
infusion is discontinued (omitted) on the calendar for the rest of that DIT course, the
rule named; a declined proposal leaves the infusion where it was; any other role is
refused and nothing changes.

The protocol is the shipped NB-NK-2026 with TEST FIXTURE limits (``test_cellproduct_store``);
they are not clinical limits.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from test_cellproduct_web import PHONE, Ward, _log_in, ward_server
from trialdesk.services import cellproduct as cp
from trialdesk.services import worklist

RULE = "NBNK-NK-PRODUCT-FAILURE"
__all__ = ["ward_server"]


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    return Ward(tmp_path)


def _fail(ward: Ward) -> dict[str, Any]:
    """A second NK batch that fails sterility, signed "not released"."""
    lab = ward.lab
    batch = lab.expand(lab.collect(), release=None)
    cp.record_test_result(lab.ctx, lab.who("pharmacist"), batch, test_id="sterility",
                          value="growth", unit=None, tested_at=datetime(2026, 11, 23, 9, 30),
                          reason="QC result")
    decision = cp.release_product(lab.ctx, lab.who("pharmacist"), batch,
                                  password="pharmacist-demo", reason="release")
    assert decision["released"] is False
    return {"batch": batch, "decision": decision}


def _event(ward: Ward, event_id: str) -> dict[str, Any]:
    page = cp.calendar_page(ward.lab.ctx, ward.lab.who("investigator"), ward.lab.patient)
    return next(e for e in page["calendar"]["events"] if e["id"] == event_id)


def _form(c: Any, group: int, choice: int | str, **extra: str) -> dict[str, str]:
    return {"csrf_token": c.csrf, "group": str(group), "choice": str(choice),
            "reason": "no NK-cell product for this course", "password": "investigator-demo",
            "accept_unconfirmed": "yes", **extra}


def test_the_failure_is_stored_as_a_pending_action_with_the_release(ward: Ward) -> None:
    lab = ward.lab
    audited = lab.audit_count()
    failed = _fail(ward)
    action, = lab.store.product_actions(lab.patient)
    assert (action.rule_id, action.kind, action.status) == (RULE, "discontinue_agent", "proposed")
    assert action.adverse_event_id is None and action.product == failed["batch"]
    release = lab.store.product_releases([failed["batch"]])[-1]
    assert action.release_id == release.id  # kept with the release decision
    # in effect from the infusion it concerns, in that infusion's course
    failure = failed["decision"]["manufacturing_failure"]
    assert action.found_on == failure["event_date"] > lab.clock.at.date().isoformat()
    assert action.proposal["course_number"] == failure["course_number"]
    assert lab.audit_count() > audited
    entry = next(e for e in lab.store.audit_entries(limit=500).items
                 if e.action == "release" and e.record_id == failed["batch"])
    assert entry.changes["proposed_actions"]["new"] == [f"{RULE}: discontinue_agent"]
    # the calendar event links to the decision, the investigator's worklist lists it
    event = _event(ward, failed["decision"]["manufacturing_failure"]["event"])
    shown, = event["product_actions"]
    assert shown["status"] == "proposed" and shown["link"].endswith(f"#action-{action.id}")
    assert event["product_failure"] == [shown["shown"]]
    work = worklist.worklist(lab.ctx, lab.who("investigator"))
    lines = next(s for s in work["sections"] if s["id"] == "actions")["lines"]
    line = next(x for x in lines if x["link"].endswith(f"#action-{action.id}"))
    assert line["study_number"] == lab.patient and failed["batch"] in line["note"]
    # the adverse-events page offers the decision; the calendar page links to it
    c = ward.client("investigator")
    page = c.get(f"/patients/{lab.patient}/adverse-events")
    assert page.status_code == 200 and "Cell products not released" in page.text
    assert f'action="/patients/{lab.patient}/product-actions/decisions"' in page.text
    assert f'href="/patients/{lab.patient}/adverse-events#action-{action.id}"' in \
        c.get(f"/patients/{lab.patient}/calendar").text


def test_investigator_accepts_and_the_nk_infusion_is_omitted_with_the_rule(ward: Ward) -> None:
    lab = ward.lab
    failed = _fail(ward)
    event_id = failed["decision"]["manufacturing_failure"]["event"]
    action, = lab.store.product_actions(lab.patient)
    c = ward.client("investigator")
    journey_before = lab.store.journey(lab.patient)
    assert journey_before is not None
    # refusals first: nothing stored, each named by its label
    wrong = c.post(f"/patients/{lab.patient}/product-actions/decisions",
                   data=_form(c, action.id, action.id, password="nope"))
    assert wrong.status_code == 401 and "nothing was signed" in wrong.text
    # the refused signature password is itself audited (a failed sign-in), nothing else
    refused_entry = lab.store.audit_entries(limit=1).items[0]
    assert "signature password refused" in refused_entry.reason
    trail = lab.audit_count()
    unaccepted = _form(c, action.id, action.id)
    del unaccepted["accept_unconfirmed"]
    refused = c.post(f"/patients/{lab.patient}/product-actions/decisions", data=unaccepted)
    assert refused.status_code == 422 and "Unconfirmed source accepted" in refused.text
    no_reason = c.post(f"/patients/{lab.patient}/product-actions/decisions",
                       data=_form(c, action.id, action.id, reason=""))
    assert no_reason.status_code == 422 and "Reason: fill it in" in no_reason.text
    assert lab.store.product_actions(lab.patient)[0].status == "proposed"
    assert lab.audit_count() == trail
    # accepted: signed, audited, applied
    done = c.post(f"/patients/{lab.patient}/product-actions/decisions",
                  data=_form(c, action.id, action.id), follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"].endswith("/adverse-events#product-actions")
    saved, = lab.store.product_actions(lab.patient)
    assert saved.status == "confirmed" and saved.signature is not None
    assert saved.signature.username == "investigator"
    assert saved.signature.meaning == "I confirm this toxicity action"
    assert event_id in (saved.applied or {})["event_ids"]
    entry = next(e for e in lab.store.audit_entries(limit=500).items if e.action == "accept")
    assert entry.record_type == "toxicity_action" and entry.changes["rule_id"]["new"] == RULE
    assert entry.reason == "no NK-cell product for this course"
    # the calendar: the NK event of that course is discontinued, the rule named; the
    # first (covered, earlier course) one stays
    event = _event(ward, event_id)
    assert event["status"] == "discontinued" and RULE in (event["status_note"] or "")
    first = _event(ward, ward.event["id"])
    assert first["status"] != "discontinued"
    calendar = c.get(f"/patients/{lab.patient}/calendar").text
    assert RULE in calendar
    # decided: no longer offered, shown as decided with the signature; not twice
    page = c.get(f"/patients/{lab.patient}/adverse-events").text
    assert f'action="/patients/{lab.patient}/product-actions/decisions"' not in page
    assert "bound to the decision" in page
    again = c.post(f"/patients/{lab.patient}/product-actions/decisions",
                   data=_form(c, action.id, action.id))
    assert again.status_code == 404
    assert lab.store.verify_audit().ok


def test_decline_keeps_the_infusion_and_keeps_the_signed_decision(ward: Ward) -> None:
    lab = ward.lab
    failed = _fail(ward)
    event_id = failed["decision"]["manufacturing_failure"]["event"]
    action, = lab.store.product_actions(lab.patient)
    c = ward.client("investigator")
    r = c.post(f"/api/patients/{lab.patient}/product-actions/decisions",
               headers={"x-csrf-token": c.csrf},
               json={"group": action.id, "choice": None, "password": "investigator-demo",
                     "reason": "a second expansion is planned before day 7"})
    assert r.status_code == 201, r.text
    decision, = r.json()["decisions"]
    assert decision["status"] == "declined" and decision["signature"]["valid"]
    saved, = lab.store.product_actions(lab.patient)
    assert saved.status == "declined" and saved.applied is not None
    assert saved.applied["reason"] == "a second expansion is planned before day 7"
    event = _event(ward, event_id)
    assert event["status"] == "planned"
    assert event["product_failure"] == [] and event["product_actions"][0]["status"] == "declined"
    assert lab.store.journey(lab.patient).actions == ()  # type: ignore[union-attr]


@pytest.mark.parametrize("role", ["coordinator", "pharmacist"])
def test_other_roles_cannot_decide(ward: Ward, role: str) -> None:
    lab = ward.lab
    _fail(ward)
    action, = lab.store.product_actions(lab.patient)
    c = ward.client(role)
    trail = lab.audit_count()
    page = c.post(f"/patients/{lab.patient}/product-actions/decisions",
                  data={**_form(c, action.id, action.id), "password": f"{role}-demo"})
    api = c.post(f"/api/patients/{lab.patient}/product-actions/decisions",
                 headers={"x-csrf-token": c.csrf},
                 json={"group": action.id, "choice": action.id, "password": f"{role}-demo",
                       "reason": "r", "accept_unconfirmed": True})
    assert page.status_code == 403 and api.status_code == 403
    assert lab.store.product_actions(lab.patient)[0].status == "proposed"
    assert lab.audit_count() == trail


def test_an_exceptional_release_withdraws_the_pending_action(ward: Ward) -> None:
    lab = ward.lab
    failed = _fail(ward)
    cp.exceptional_release(lab.ctx, lab.who("pharmacist"), "pharmacist-demo",
                           lab.who("investigator"), "investigator-demo", failed["batch"],
                           justification="no other treatment option", reason="exceptional")
    action, = lab.store.product_actions(lab.patient)
    assert action.status == "withdrawn"
    entry = next(e for e in lab.store.audit_entries(limit=500).items if e.action == "release")
    assert entry.changes["withdrawn_actions"]["old"] == [f"{RULE}: discontinue_agent"]


def test_safety_apply_on_the_command_line(ward: Ward) -> None:
    from typer.testing import CliRunner

    from trialdesk.cli import app

    lab = ward.lab
    failed = _fail(ward)
    event_id = failed["decision"]["manufacturing_failure"]["event"]
    action, = lab.store.product_actions(lab.patient)
    url = lab.store.engine.url.render_as_string(hide_password=False)
    listed = CliRunner().invoke(app, ["ae", "list", lab.patient, "--by", "investigator"],
                                env={"TRIALDESK_DATABASE_URL": url})
    assert listed.exit_code == 0, listed.stderr
    assert f"cell product {failed['batch']} not released: action {action.id} (proposed)" in \
        " ".join(listed.stdout.split())
    result = CliRunner().invoke(app, [
        "safety", "apply", lab.patient, str(action.id), "--by", "investigator",
        "--accept-unconfirmed", "--reason", "no NK-cell product"],
        env={"TRIALDESK_DATABASE_URL": url, "TRIALDESK_PASSWORD": "investigator-demo"})
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert f"action {action.id}" in result.stdout and event_id in result.stdout
    saved, = lab.store.product_actions(lab.patient)
    assert saved.status == "confirmed" and saved.signature is not None
    assert _event(ward, event_id)["status"] == "discontinued"


# --------------------------------------------------------------------------- the schema


def _migrate(store: Any, revision: str, *, down: bool = False) -> None:
    from alembic import command

    from trialdesk.store.db import alembic_config

    config = alembic_config(store.engine)
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_migration_0010_keeps_the_adverse_event_actions_and_checks_the_origin(
        database_url: str, tmp_path: Path) -> None:
    from sqlalchemy import text

    from test_cellproduct_store import Lab
    from trialdesk.store.db import current_revision

    lab = Lab(database_url, tmp_path)
    with lab.store.engine.connect() as conn:
        ae_actions = conn.execute(text(
            "SELECT id, adverse_event_id FROM toxicity_actions ORDER BY id")).all()
    assert ae_actions and all(a.adverse_event_id for a in ae_actions)  # the demo's
    # down to 0009 and up again: the adverse events' actions are kept as they were
    _migrate(lab.store, "0009", down=True)
    assert current_revision(lab.store.engine) == "0009"
    _migrate(lab.store, "head")
    with lab.store.engine.connect() as conn:
        assert conn.execute(text(
            "SELECT id, adverse_event_id FROM toxicity_actions ORDER BY id")).all() == ae_actions
    # a product's action: exactly one origin, and the downgrade refuses to lose it
    batch = lab.expand(lab.collect(), release=None)
    cp.record_test_result(lab.ctx, lab.who("pharmacist"), batch, test_id="sterility",
                          value="growth", unit=None, tested_at=datetime(2026, 11, 23, 9, 30),
                          reason="QC result")
    cp.release_product(lab.ctx, lab.who("pharmacist"), batch, password="pharmacist-demo",
                       reason="release")
    action, = lab.store.product_actions(lab.patient)
    for change in (f"UPDATE toxicity_actions SET product_id = NULL WHERE id = {action.id}",
                   f"UPDATE toxicity_actions SET adverse_event_id = {ae_actions[0].id} "
                   f"WHERE id = {action.id}"):
        with pytest.raises(Exception, match=r"(?i)check|constraint"), \
                lab.store.engine.begin() as conn:
            conn.execute(text(change))
    with pytest.raises(RuntimeError, match="1 product action"):
        _migrate(lab.store, "0009", down=True)
    assert current_revision(lab.store.engine) != "0009"
    assert lab.store.product_actions(lab.patient)[0].id == action.id


# --------------------------------------------------------------------------- browser


def test_from_the_calendar_to_the_signed_decision_on_a_phone(
        chromium: Any, ward_server: tuple[Ward, str], output_dir: Path) -> None:
    from test_browser_forms import _no_axe_violations, _no_overflow

    ward, base = ward_server
    failed = _fail(ward)
    event_id = failed["decision"]["manufacturing_failure"]["event"]
    patient = ward.lab.patient
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        _log_in(page, base, "investigator", f"/patients/{patient}/calendar")
        action, = ward.lab.store.product_actions(patient)
        link = page.locator(f'a[href$="/adverse-events#action-{action.id}"]')
        # the event's course is folded: open it, as a person does
        page.locator("details.course-group", has=link).locator("> summary").click()
        assert "Manufacturing failure — proposed for an investigator to decide" in \
            page.locator("details.course-group", has=link).inner_text()
        link.click()
        page.wait_for_url("**/adverse-events#action-*")
        section = page.locator("#product-actions")
        assert "not released" in section.inner_text()
        _no_overflow(page)
        _no_axe_violations(page)
        page.screenshot(path=str(output_dir / "product-action-390.png"), full_page=True)
        section.get_by_role("radio", name="Accept:", exact=False).check()
        section.get_by_label("I accept that the rule of the proposal I accept is not "
                             "confirmed against its source").check()
        section.get_by_label("Reason for the decision").fill("no NK-cell product this course")
        section.get_by_label("Your password (electronic signature)").fill("investigator-demo")
        page.once("dialog", lambda dialog: dialog.accept())  # "Sign electronically?"
        section.get_by_role("button", name="Sign the decision").click()
        page.wait_for_url("**/adverse-events#product-actions")
        assert "bound to the decision" in page.locator("#product-actions").inner_text()
        _no_overflow(page)
        _no_axe_violations(page)
        page.goto(f"{base}/patients/{patient}/calendar")
        assert _event(ward, event_id)["status"] == "discontinued"
        row = " ".join((page.locator(f'[id="ev-{event_id}"]').text_content() or "").split())
        assert "discontinued" in row.casefold() and RULE in row, row
        _no_overflow(page)
    finally:
        context.close()

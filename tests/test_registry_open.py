"""A reviewed registry study opened as a trial: refused while items await review (the count in
words, a link to the review), registered as a signed, audited protocol version once every
item is reviewed, a new version after a re-import with a changed criterion, and screened on
a stored patient's "Which trials could this patient enter?".

The study is NCT03281889 from ../shared/ctgov/ (recruiting, ages 3 to 18 years; 6 inclusion
and 5 exclusion items; NCT03281889.json is a search response holding the one study). The
demo patient NBNK-0002 (a child with relapsed neuroblastoma, examples/patients/nb-relapsed.json)
is screened against it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from test_browser import serve_app
from test_browser_forms import _no_axe_violations, _no_overflow
from trialdesk.cli import app
from trialdesk.errors import AccessError, ConflictError, NotFoundError, ReviewError
from trialdesk.services import registry as reg
from trialdesk.services.accounts import principal_for
from trialdesk.services.context import Services
from trialdesk.services.trialfinder import trials_for_patient

CTGOV = Path(__file__).resolve().parents[2] / "shared" / "ctgov"
if not CTGOV.is_dir():
    CTGOV = Path("/work/shared/ctgov")
NCT = "NCT03281889"
ITEMS = 11  # I-age (the registry's own limits), I1-I5, E1-E5
PATIENT = "NBNK-0002"
HTML = {"accept": "text/html"}


def _record(changed: bool = False) -> bytes:
    doc = json.loads((CTGOV / f"{NCT}.json").read_text())
    if changed:  # a re-import whose record changed one criterion's text
        eligibility = doc["studies"][0]["protocolSection"]["eligibilityModule"]
        eligibility["eligibilityCriteria"] = eligibility["eligibilityCriteria"].replace(
            "Life expectancy ≥ 12 months", "Life expectancy ≥ 6 months")
    return json.dumps(doc).encode()


def _ctx(web: Any) -> Services:
    return Services.open(web.store)


def _import(web: Any, changed: bool = False) -> None:
    lines = reg.import_files(_ctx(web), principal_for(web.store, "administrator"),
                             [(f"{NCT}.json", _record(changed))])
    assert [x.stored for x in lines] == ["updated" if changed else "created"]


def _review_all(web: Any) -> int:
    """The investigator accepts every draft, each signed; returns how many were signed."""
    ctx, inv = _ctx(web), principal_for(web.store, "investigator")
    page = reg.review_page(ctx, inv, NCT)
    version, signed = page["version"], 0
    for c in page["criteria"]:
        if c["state"] != "draft":
            continue
        version = reg.review(ctx, inv, NCT, c["id"], action="accept", version=version,
                             password="investigator-demo")["version"]
        signed += 1
    return signed


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_open_refused_until_reviewed_then_signed_audited_and_versioned(web: Any) -> None:
    ctx = _ctx(web)
    admin = principal_for(web.store, "administrator")
    _import(web)
    with pytest.raises(ReviewError) as refused:
        reg.open_as_trial(ctx, admin, NCT, password="administrator-demo")
    assert refused.value.reason == (f"{ITEMS} of {ITEMS} criteria items still await review; "
                                    f"review them on /registry/studies/{NCT} first")
    with pytest.raises(NotFoundError):
        web.store.protocol_version(NCT)  # nothing registered

    assert _review_all(web) == ITEMS
    # Who may register protocols (the administrator's trial.manage): not the investigator.
    with pytest.raises(AccessError) as denied:
        reg.open_as_trial(ctx, principal_for(web.store, "investigator"), NCT,
                          password="investigator-demo")
    assert denied.value.status == 403 and "registering trial protocols" in denied.value.reason
    with pytest.raises(AccessError) as wrong:
        reg.open_as_trial(ctx, admin, NCT, password="not-my-password")
    assert wrong.value.status == 401
    with pytest.raises(NotFoundError):
        web.store.protocol_version(NCT)

    opened = reg.open_as_trial(ctx, admin, NCT, password="administrator-demo")
    assert (opened["trial_id"], opened["number"], opened["created"]) == (NCT, 1, True)
    v = web.store.protocol_version(NCT)
    stored = reg.registry_store(ctx).registry_study(NCT)
    assert v.document == stored.document and v.source == f"registry study {NCT} version " \
        f"{stored.version}"
    entry = next(e for e in ctx.catalogue.trials() if e.record.id == NCT)
    assert not entry.compiled.protocol.is_draft and len(entry.compiled.protocol.criteria) == ITEMS
    audit = web.store.audit_entries(record_type="protocol", limit=20).items
    mine = [e for e in audit if e.record_id.startswith(NCT)]
    assert sorted((e.action, e.record_id, e.username) for e in mine) == [
        ("create", f"{NCT}#1", "administrator"), ("sign", NCT, "administrator")]
    sign = next(e for e in mine if e.action == "sign")
    assert "I register this protocol version for screening" in sign.changes["signature"]["new"]
    assert sign.changes["record_digest"]["new"] == v.digest

    again = reg.open_as_trial(ctx, admin, NCT, password="administrator-demo")
    assert again["unchanged"] and again["number"] == 1
    assert len([e for e in web.store.audit_entries(record_type="protocol", limit=50).items
                if e.record_id.startswith(NCT)]) == 2  # nothing written

    # A re-import with one changed criterion: that item awaits review again, then opens as
    # the trial's second protocol version (the same trial, not a second one).
    _import(web, changed=True)
    with pytest.raises(ReviewError) as one_left:
        reg.open_as_trial(ctx, admin, NCT, password="administrator-demo")
    assert one_left.value.reason.startswith(f"1 of {ITEMS} criteria items still awaits review")
    assert _review_all(web) == 1
    second = reg.open_as_trial(ctx, admin, NCT, password="administrator-demo")
    assert (second["number"], second["created"], second["unchanged"]) == (2, False, False)
    assert [t.id for t in web.store.trials()].count(NCT) == 1
    assert [x.number for x in web.store.protocol_versions(NCT)] == [1, 2]
    texts = [c.text for _, c in ctx.catalogue.trial(NCT)[1].protocol.criteria]
    assert "Life expectancy ≥ 6 months." in texts
    amend = [e for e in web.store.audit_entries(record_type="protocol", limit=50).items
             if e.record_id == f"{NCT}#2"]
    assert [e.action for e in amend] == ["amend"]


def test_a_trial_from_a_protocol_file_is_not_replaced(web: Any) -> None:
    ctx = _ctx(web)
    _import(web)
    _review_all(web)
    web.store.import_protocol({**reg.registry_store(ctx).registry_study(NCT).document},
                              source="nct03281889.yaml", actor="system", reason="file")
    with pytest.raises(ConflictError) as refused:
        reg.open_as_trial(ctx, principal_for(web.store, "administrator"), NCT,
                          password="administrator-demo")
    assert "registered from a protocol file" in refused.value.reason


def test_a_stored_patient_is_screened_against_the_opened_trial(web: Any) -> None:
    ctx = _ctx(web)
    inv = principal_for(web.store, "investigator")
    _import(web)
    before = trials_for_patient(ctx, inv, PATIENT)
    assert NCT not in [t["trial_id"] for t in before["trials"]]
    _review_all(web)
    reg.open_as_trial(ctx, principal_for(web.store, "administrator"), NCT,
                      password="administrator-demo")
    found = trials_for_patient(ctx, inv, PATIENT)
    row = next(t for t in found["trials"] if t["trial_id"] == NCT)
    # A child of 3 to 18 with facts on record for some items only: the questions the record
    # cannot answer (histology, prior radiation, ...) leave the verdict undetermined.
    assert row["verdict"] == "undetermined" and row["verdict_label"] == "undetermined"
    assert row["protocol_version"] == web.store.protocol_version(NCT).label
    assert {"I2", "E1"} <= {c["id"] for c in row["unknown_criteria"]}
    page = _text(web.client("investigator").get(f"/patients/{PATIENT}", headers=HTML).text)
    assert f"{NCT} undetermined" in page


def test_open_on_the_study_page(web: Any) -> None:
    _import(web)
    admin = web.client("administrator")
    url = f"/registry/studies/{NCT}"
    page = admin.get(url)
    assert "Open as a trial" in page.text
    assert 'href="#criterion-I-age"' in page.text
    assert f"{ITEMS} of {ITEMS} criteria items still await review" in _text(page.text)
    refused = admin.post(f"{url}/open", data={"csrf_token": admin.csrf,
                                             "password": "administrator-demo"}, headers=HTML)
    assert refused.status_code == 400  # a refusal of the review state, as on the review forms
    assert (f"Open as a trial: {ITEMS} of {ITEMS} criteria items still await review"
            in _text(refused.text))
    # Only who may register protocols sees the form; others are refused.
    assert "Open as a trial" not in web.client("investigator").get(url).text
    inv = web.client("investigator")
    assert inv.post(f"{url}/open", data={"csrf_token": inv.csrf, "password": "investigator-demo"},
                    headers=HTML).status_code == 403

    _review_all(web)
    wrong = admin.post(f"{url}/open", data={"csrf_token": admin.csrf, "password": "nope"},
                       headers=HTML)
    assert wrong.status_code == 401 and "Password: the password is wrong" in _text(wrong.text)
    done = admin.post(f"{url}/open", data={"csrf_token": admin.csrf, "reason": "site approved",
                                          "password": "administrator-demo"},
                      headers=HTML, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/trials/{NCT}"
    assert NCT in admin.get(f"/trials/{NCT}").text
    assert f"/trials/{NCT}" in admin.get("/trials").text
    after = _text(admin.get(url).text)
    assert f"Opened as trial {NCT} : protocol version 1 (registry " in after
    created = next(e for e in web.store.audit_entries(record_type="protocol", limit=50).items
                   if e.record_id == f"{NCT}#1")
    assert created.reason == "site approved"


def test_open_on_the_command_line(web: Any) -> None:
    _import(web)
    url = str(web.store.engine.url)
    base = ["registry", "open", NCT, "--by", "administrator", "--database", url]
    refused = CliRunner().invoke(app, [*base, "--password", "administrator-demo"])
    assert refused.exit_code == 1
    lines = refused.stderr.strip().splitlines()
    assert lines == [f"error: Open as a trial: {ITEMS} of {ITEMS} criteria items still await review; "
                     f"review them on /registry/studies/{NCT} first"]
    _review_all(web)
    done = CliRunner().invoke(app, [*base, "--password", "administrator-demo"])
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith(f"{NCT}: opened as a trial, protocol version 1")
    again = CliRunner().invoke(app, [*base, "--password", "administrator-demo"])
    assert again.exit_code == 0 and "unchanged since protocol version 1" in again.stdout


def test_open_in_a_phone_browser(chromium: Any, tmp_path: Path, demo_database: Path,
                                 output_dir: Path) -> None:
    with serve_app(tmp_path, demo_database) as (server, web):
        _import(web)
        context = chromium.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            page.goto(f"{server}/login?next=/registry/studies/{NCT}")
            page.get_by_label("User name").fill("administrator")
            page.get_by_label("Password").fill("administrator-demo")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"**/registry/studies/{NCT}")
            _no_overflow(page)
            _no_axe_violations(page)
            opening = page.locator("section[aria-labelledby=open-h]")
            opening.get_by_label("Password").fill("administrator-demo")
            opening.get_by_role("button", name="Open as a trial").click()
            page.wait_for_selector(f"text=Open as a trial: {ITEMS} of {ITEMS} criteria items")
            _no_overflow(page)
            _no_axe_violations(page)
            page.screenshot(path=str(output_dir / "registry-open-refused-390.png"),
                            full_page=True)
            page.get_by_role("link", name="review them first").click()
            assert page.url.endswith("#criterion-I-age")
            _review_all(web)
            page.goto(f"{server}/registry/studies/{NCT}")
            opening.get_by_label("Password").fill("administrator-demo")
            opening.get_by_role("button", name="Open as a trial").click()
            page.wait_for_url(f"**/trials/{NCT}")
            _no_overflow(page)
            assert "Histologically proven malignancy" in page.content()
        finally:
            context.close()

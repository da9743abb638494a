"""Cell products on the web: the pages and the API on the record, and in a real browser
(Debian's chromium, headless, Playwright) the bedside verification on a 390 px phone by
typing the values, and the cell lab's list. Screenshots go to ``out/tests/``.

The protocol is the shipped NB-NK-2026 with TEST FIXTURE limits (see
``test_cellproduct_store.py``); they are not clinical limits.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from test_cellproduct_store import Lab, _day

PHONE = {"width": 390, "height": 844}


class Ward:
    """A released NK-cell dose thawed for the patient's first NK event, the clock at 09:00
    of that day, and the web application on the same database."""

    def __init__(self, tmp: Path) -> None:
        from trialdesk.web.app import create_app
        from trialdesk.web.settings import Settings

        self.lab = Lab(f"sqlite:///{tmp / 'td.db'}", tmp)
        self.event = self.lab.nk_events[0]
        batch = self.lab.expand(self.lab.collect())
        self.dose = self.lab.thaw(self.lab.aliquot(batch, 0), _day(self.event["date"], 8),
                                  cells=1.0e7 * self.lab.weight())
        self.lab.at(_day(self.event["date"], 9))
        self.other = self.lab.store.patients([("NB-NK-2026", None)]).items[1].study_number
        settings = Settings(database_url=f"sqlite:///{tmp / 'td.db'}", secret_key="t" * 40,
                            max_upload_bytes=64 * 1024, facility="A9999")
        self.app = create_app(settings, self.lab.store)

    def client(self, username: str) -> Any:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from fastapi.testclient import TestClient

        c = TestClient(self.app, base_url="https://testserver")
        r = c.post("/api/login", json={"username": username, "password": f"{username}-demo"})
        assert r.status_code == 200, r.text
        c.csrf = c.cookies.get("td_csrf")  # type: ignore[attr-defined]
        return c


@pytest.fixture
def ward(tmp_path: Path) -> Ward:
    return Ward(tmp_path)


def test_bedside_page_refuses_in_words_then_accepts_and_records_the_infusion(ward: Ward) -> None:
    c = ward.client("coordinator")
    patient = ward.lab.patient
    page = c.get(f"/patients/{patient}/bedside")
    assert page.status_code == 200
    assert "Released product available" in page.text and ward.dose in page.text
    calendar = c.get(f"/patients/{patient}/calendar")
    assert "Released product available" in calendar.text
    assert "No released product" not in calendar.text
    form = {"csrf_token": c.csrf, "event_id": ward.event["id"], "product": ward.dose,
            "wristband": patient, "second_verifier": "investigator",
            "second_password": "investigator-demo"}
    missing = c.post(f"/patients/{patient}/bedside", data={**form, "wristband": ""})
    assert missing.status_code == 422
    assert "Patient identifier on the wristband" in missing.text  # the field by its label
    wrong = c.post(f"/patients/{patient}/bedside", data={**form, "wristband": ward.other})
    assert wrong.status_code == 200 and "Refused — do not infuse" in wrong.text
    assert f"the wristband reads &#39;{ward.other}&#39;" in wrong.text
    bad_password = c.post(f"/patients/{patient}/bedside",
                          data={**form, "second_password": "wrong"})
    assert bad_password.status_code == 401 and "password is wrong" in bad_password.text
    ok = c.post(f"/patients/{patient}/bedside", data=form)
    assert ok.status_code == 200 and "Accepted." in ok.text
    checks = ward.lab.store.product_verifications(study_number=patient)
    assert [v.document["accepted"] for v in checks] == [False, True]
    early = c.post(f"/patients/{patient}/infusions",
                   data={"csrf_token": c.csrf, "verification": str(checks[-1].id),
                         "start": f"{ward.event['date']}T09:10"})
    assert early.status_code == 422 and "Infusion start" in early.text  # not yet 09:10
    ward.lab.at(_day(ward.event["date"], 9).replace(minute=30))
    c = ward.client("coordinator")  # the clock moved past the idle timeout: log in again
    done = c.post(f"/patients/{patient}/infusions", follow_redirects=False,
                  data={"csrf_token": c.csrf, "verification": str(checks[-1].id),
                        "start": f"{ward.event['date']}T09:10", "volume_ml": "50"})
    assert done.status_code == 303, done.text
    cal = c.get(f"/api/patients/{patient}/calendar").json()
    given = next(e for e in cal["calendar"]["events"] if e["id"] == ward.event["id"])
    assert given["status"] == "given"
    # The only released dose is given: the later NK-cell events have no released product.
    calendar = c.get(f"/patients/{patient}/calendar")
    assert "No released product" in calendar.text
    assert "Released product available" not in calendar.text
    api = c.get(f"/api/products/{ward.dose.replace(' ', '')}").json()
    assert api["infusion"]["verification"] == checks[-1].id
    assert c.get(f"/api/products/{ward.dose.replace(' ', '')}/history.pdf").content[:4] == b"%PDF"


def test_lab_view_and_api(ward: Ward) -> None:
    c = ward.client("pharmacist")
    lab = c.get("/api/lab").json()
    in_process = [i["product"] for i in lab["in_process"]]
    assert ward.dose in in_process
    # the 4 h fixture shelf life ends at 12:00 today: expiring within the next 24 h
    assert [i["product"] for i in lab["expiring"]] == [ward.dose]
    assert c.get("/lab").status_code == 200
    label = c.get(f"/api/products/{ward.dose.replace(' ', '')}/label.pdf")
    assert label.headers["content-type"] == "application/pdf"
    verify = c.post(f"/api/patients/{ward.lab.patient}/bedside-verifications",
                    headers={"x-csrf-token": c.csrf},
                    json={"event_id": ward.event["id"], "product": ward.dose[:-1] + "1",
                          "wristband": ward.lab.patient, "second_verifier": "coordinator",
                          "second_password": "coordinator-demo"})
    assert verify.status_code == 201
    body = verify.json()
    assert not body["accepted"] and {r["code"] for r in body["refusals"]} >= {"identifier"}


# ---------------------------------------------------------------------------- browser


@pytest.fixture
def ward_server(ward: Ward) -> Iterator[tuple[Ward, str]]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(ward.app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield ward, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _log_in(page: Any, base: str, username: str, then: str) -> None:
    page.goto(f"{base}/login?next={then}")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(f"{username}-demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{then}")


def _no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px phone"


def test_bedside_verification_on_a_phone_by_typing(chromium: Any, ward_server: tuple[Ward, str],
                                                   output_dir: Path) -> None:
    ward, base = ward_server
    patient = ward.lab.patient
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        _log_in(page, base, "coordinator", f"/patients/{patient}/bedside")
        _no_horizontal_scroll(page)

        def type_values(wristband: str) -> None:
            page.get_by_label("Product identifier").press_sequentially(ward.dose)
            page.get_by_label("Patient identifier on the wristband").press_sequentially(wristband)
            page.get_by_label("Second verifier's user name").press_sequentially("investigator")
            page.get_by_label("Second verifier's password").press_sequentially("investigator-demo")
            page.get_by_role("button", name="Verify").click()

        type_values(ward.other)  # the wrong child's wristband
        alert = page.get_by_role("alert")
        assert "Refused — do not infuse" in alert.inner_text()
        assert f"the wristband reads '{ward.other}'" in alert.inner_text()
        _no_horizontal_scroll(page)
        page.screenshot(path=str(output_dir / "bedside-refused-390.png"), full_page=True)
        page.get_by_label("Product identifier").fill("")
        page.get_by_label("Patient identifier on the wristband").fill("")
        page.get_by_label("Second verifier's user name").fill("")
        type_values(patient)
        assert "Accepted." in page.get_by_role("status").inner_text()
        _no_horizontal_scroll(page)
        page.screenshot(path=str(output_dir / "bedside-accepted-390.png"), full_page=True)
        start = datetime.fromisoformat(f"{ward.event['date']}T09:00")
        page.get_by_label("Infusion start").fill(start.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_label("Volume infused (mL)").press_sequentially("50")
        page.get_by_role("button", name="Record the infusion").click()
        page.wait_for_load_state()
        assert page.url.endswith(f"/patients/{patient}/calendar"), page.inner_text("main")
        assert ward.lab.store.product_infusions([ward.dose])[0].document["volume_ml"] == 50
    finally:
        context.close()


def test_cell_lab_view_in_the_browser(chromium: Any, ward_server: tuple[Ward, str],
                                      output_dir: Path) -> None:
    ward, base = ward_server
    context = chromium.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        _log_in(page, base, "pharmacist", "/lab")
        expiring = page.get_by_role("region", name="Expiring within 24 hours (1)")
        assert ward.dose in expiring.inner_text()
        page.get_by_role("link", name=ward.dose).first.click()
        page.wait_for_url("**/products/**")
        assert page.get_by_role("heading", name=f"Product {ward.dose}").is_visible()
        assert "released" in page.get_by_role("region", name="Release decisions").inner_text()
        page.screenshot(path=str(output_dir / "cell-lab.png"), full_page=True)
    finally:
        context.close()

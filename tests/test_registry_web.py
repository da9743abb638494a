"""The registry pages: an administrator uploads registry files (one study that cannot be
read fails alone, named with its file, path and reason), a signed-in user searches by
condition, age and place, an investigator reviews a draft with the password; in a real
browser at 390 px the pages have no horizontal overflow and no axe-core violations.

The upload limit of the test application is 64 KiB, so NCT02552212 is uploaded with its
Russian sites only (Moscow and Saint Petersburg, 18 locations) and without its results.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from test_browser import live_server  # noqa: F401  (the fixture)
from test_browser_forms import _no_axe_violations, _no_overflow

CTGOV = Path(__file__).resolve().parents[2] / "shared" / "ctgov"
if not CTGOV.is_dir():
    CTGOV = Path("/work/shared/ctgov")


def _russian_sites() -> bytes:
    d = json.loads((CTGOV / "NCT02552212.json").read_text())
    cl = d["protocolSection"]["contactsLocationsModule"]
    cl["locations"] = [x for x in cl["locations"] if x.get("country") == "Russian Federation"]
    d.pop("resultsSection", None)
    d.pop("documentSection", None)
    return json.dumps(d).encode()


def _bad_page() -> bytes:
    good = json.loads((CTGOV / "NCT00973089.json").read_text())
    bad = {"protocolSection": {"identificationModule": {"nctId": "NCT09999903"},
                               "statusModule": {"overallStatus": 5}}}
    return json.dumps({"studies": [good, bad]}).encode()


FILES = [("NCT02552212.json", _russian_sites()),
         ("NCT03245528.xml", (CTGOV / "NCT03245528.xml").read_bytes()),
         ("page.json", _bad_page())]


def _upload(client: Any, files: list[tuple[str, bytes]]) -> Any:
    return client.post("/registry/import", data={"csrf_token": client.csrf},
                       files=[("files", (name, data)) for name, data in files],
                       headers={"accept": "text/html"})


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_upload_search_and_review_pages(web: Any) -> None:
    admin = web.client("administrator")
    assert "Registry files" in admin.get("/registry/import").text
    r = _upload(admin, FILES)
    assert r.status_code == 200, r.text
    page = _text(r.text)
    assert "3 studies imported, 1 failed" in page
    assert ("Failed: page.json: $.studies[1]: $.protocolSection.identificationModule.briefTitle: "
            "required field is missing") in page
    assert "NCT02552212 — new" in page and "Criteria items:" in page and "Modules:" in page
    again = _text(_upload(admin, FILES[:1]).text)
    assert "NCT02552212 — unchanged (already imported)" in again
    # Only an administrator uploads; an empty upload is named by the field's label.
    assert web.client("investigator").get("/registry/import").status_code == 403
    empty = admin.post("/registry/import", data={"csrf_token": admin.csrf},
                       headers={"accept": "text/html"})
    assert empty.status_code == 422 and "Registry files: choose one or more files" in empty.text

    coord = web.client("coordinator")
    found = _text(coord.get("/registry", params={"condition": "sepsis"}).text)
    assert "1 trial found" in found and "NCT03245528" in found
    near = _text(coord.get("/registry", params={"near": "Moscow", "km": "50",
                                                "age": "30", "age_unit": "year"}).text)
    assert "1 trial found" in near and "Moscow, Russian Federation, 0.1 km" in near
    infant = _text(coord.get("/registry", params={"age": "12", "age_unit": "month"}).text)
    assert "0 trials found" in infant  # every uploaded study starts at 5 or 18 years
    bad = coord.get("/registry", params={"near": "Moscow", "km": "far"})
    assert bad.status_code == 422 and "Distance (km): enter a number of kilometres" in bad.text
    nowhere = coord.get("/registry", params={"near": "Nowhere-upon-nothing"})
    assert nowhere.status_code == 422 and "Place: unknown place" in nowhere.text
    assert web.client().get("/registry", follow_redirects=False).status_code in (303, 401)

    study = coord.get("/registry/studies/NCT03245528")
    assert "Draft:" in study.text and "Sign the decision" not in study.text
    inv = web.client("investigator")
    html = inv.get("/registry/studies/NCT03245528").text
    version = re.search(r'name="version" value="(\d+)"', html).group(1)  # type: ignore[union-attr]
    first = re.search(r'id="criterion-([^"]+)"', html).group(1)  # type: ignore[union-attr]
    wrong = inv.post(f"/registry/studies/NCT03245528/criteria/{first}",
                     data={"csrf_token": inv.csrf, "version": version, "action": "accept",
                           "password": "nope"}, headers={"accept": "text/html"})
    assert wrong.status_code == 401 and f"{first}: Password: the password is wrong" in wrong.text
    done = inv.post(f"/registry/studies/NCT03245528/criteria/{first}",
                    data={"csrf_token": inv.csrf, "version": version, "action": "accept",
                          "password": "investigator-demo"},
                    headers={"accept": "text/html"}, follow_redirects=False)
    assert done.status_code == 303
    after = _text(inv.get("/registry/studies/NCT03245528").text)
    assert f"{first} (inclusion) — accepted by investigator" in after


def test_registry_pages_in_a_phone_browser(chromium: Any, live_server: str,  # noqa: F811
                                           output_dir: Path, tmp_path: Path) -> None:
    server = live_server
    paths = []
    for name, data in FILES[:2]:
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(str(path))
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        for user in ("administrator", "investigator"):
            page.goto(f"{server}/login?next=/registry")
            page.get_by_label("User name").fill(user)
            page.get_by_label("Password").fill(f"{user}-demo")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/registry")
            if user == "administrator":
                page.get_by_role("link", name="Import registry files").click()
                page.wait_for_url("**/registry/import")
                _no_overflow(page)
                _no_axe_violations(page)
                page.get_by_label("Registry files").set_input_files(paths)
                page.get_by_role("button", name="Import").click()
                page.wait_for_selector("text=2 studies imported, 0 failed")
                _no_overflow(page)
                _no_axe_violations(page)
                page.screenshot(path=str(output_dir / "registry-import-390.png"), full_page=True)
                context.clear_cookies()
        page.get_by_label("Place").fill("Moscow")
        page.get_by_label("Distance (km)").fill("700")
        page.get_by_role("button", name="Search").click()
        page.wait_for_selector("text=1 trial found")
        assert "0.1 km" in page.content()
        _no_overflow(page)
        _no_axe_violations(page)
        page.screenshot(path=str(output_dir / "registry-search-390.png"), full_page=True)
        page.goto(f"{server}/registry/studies/NCT03245528")
        _no_overflow(page)
        _no_axe_violations(page)
        first = page.locator("li[id^=criterion-]").first
        first.get_by_label("Password").fill("investigator-demo")
        first.get_by_role("button").click()
        page.wait_for_url("**/registry/studies/NCT03245528**")
        assert "accepted by investigator" in page.content()
        page.screenshot(path=str(output_dir / "registry-review-390.png"), full_page=True)
    finally:
        context.close()

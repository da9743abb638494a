"""In a real browser on a phone (390 px): the trial page of an imported record with 1,200
sites, ordered from a place — no horizontal overflow, no axe-core violations, a short page.
Screenshots go to the tests' output directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_browser import live_server  # noqa: F401  (the fixture)
from test_browser_forms import _no_axe_violations, _no_overflow, phone
from test_trial_page import big_study, store_record


class _Into:
    """What :func:`store_record` needs: the live server's own database."""

    def __init__(self, path: Path) -> None:
        from trialdesk.store import Store

        self.store = Store.open(f"sqlite:///{path}")


def test_a_thousand_sites_on_a_phone(chromium: Any, live_server: str,  # noqa: F811
                                     tmp_path: Path, output_dir: Path) -> None:
    into = _Into(tmp_path / "trialdesk.db")  # the copy the live server runs on
    try:
        trial_id = store_record(into, big_study())
    finally:
        into.store.close()
    with phone(chromium) as page:
        page.goto(f"{live_server}/trials/{trial_id}")
        page.get_by_label("Nearest sites to").fill("Moscow")
        page.get_by_role("button", name="Order by distance").click()
        page.wait_for_url("**near=Moscow*")
        main = page.inner_text("main")
        assert "Data sourced from ClinicalTrials.gov, NCT02552212" in main
        assert "1,200 sites in 9 countries; the 10 nearest to Moscow, RU shown." in main
        assert page.locator("ol.sites > li").count() == 10
        page.get_by_text("Sites per country").click()  # the collapsible list opens
        # 18 Russian sites in each of 11 full copies; the last, partial copy's 45 sites are not
        assert page.get_by_text("Russian Federation: 198").is_visible()
        _no_overflow(page)
        _no_axe_violations(page)
        # a page of a few screens, not of 1,200 sites
        height = page.evaluate("document.documentElement.scrollHeight")
        assert height < 40_000, height
        page.screenshot(path=str(output_dir / "trial-page-phone.png"), full_page=True)

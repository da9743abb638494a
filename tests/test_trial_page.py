"""The trial page like the registry's: key dates, sponsor and collaborators, contacts and
locations (nearest first with the distance when a place is given), outcome measures with
time frames, references and the "data sourced from" line — for an imported record, a record
with 1,200 sites, and a seed protocol that carries few registry modules.

Known answers are read from the record file ../shared/ctgov/NCT02552212.json.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from trialdesk.registry.importer import Imported, import_bytes

CTGOV = Path(__file__).resolve().parents[2] / "shared" / "ctgov"
if not CTGOV.is_dir():  # the worktree sits beside the shared folder one level further up
    CTGOV = Path("/work/shared/ctgov")
HTML = {"accept": "text/html"}
BIRMINGHAM = (33.52066, -86.80249)  # the record's site "As0006 125", Birmingham, Alabama


def _study(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CTGOV / name).read_text(encoding="utf-8"))
    return data


def _document(study: dict[str, Any]) -> dict[str, Any]:
    [result] = import_bytes(json.dumps(study).encode(), name="record.json")
    assert isinstance(result, Imported), result
    return result.document


def store_record(web: Any, study: dict[str, Any]) -> str:
    document = _document(study)
    web.store.import_protocol(document, source="test", actor="test", reason="test record")
    return str(document["id"])


def big_study() -> dict[str, Any]:
    """NCT02552212 with its 105 sites repeated to 1,200 (each with its geo point)."""
    study = copy.deepcopy(_study("NCT02552212.json"))
    module = study["protocolSection"]["contactsLocationsModule"]
    module["locations"] = (module["locations"] * 12)[:1200]
    return study


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance by the spherical law of cosines (R = 6371.0088 km)."""
    (la1, lo1), (la2, lo2) = [(math.radians(x), math.radians(y)) for x, y in (a, b)]
    c = math.sin(la1) * math.sin(la2) + math.cos(la1) * math.cos(la2) * math.cos(lo2 - lo1)
    return 6371.0088 * math.acos(max(-1.0, min(1.0, c)))


def test_an_imported_record_shows_what_the_registry_shows(web: Any) -> None:
    trial_id = store_record(web, _study("NCT02552212.json"))
    html = web.client().get(f"/trials/{trial_id}", headers=HTML).text
    assert "Data sourced from ClinicalTrials.gov, NCT02552212" in html
    dates = html[html.index('id="dates"'):html.index("</section>", html.index('id="dates"'))]
    # statusModule: start 2015-09, primary completion 2018-05, completion 2020-05 (all
    # ACTUAL), first posted 2015-09-17 (ESTIMATED, not a study date), last update 2022-08-18
    for label, value in (("Study start", "2015-09"), ("Primary completion", "2018-05"),
                         ("Study completion", "2020-05"), ("First posted", "2015-09-17"),
                         ("Last update posted", "2022-08-18")):
        assert re.search(rf"<dt>{label}</dt><dd>{value}</dd>", dates), label
    assert "UCB BIOSCIENCES GmbH" in html and "Sponsor and collaborators" in html
    assert "Time frame: Week 52" in html  # the primary outcome's time frame
    # its long description is collapsible, its markdown escapes undone ("\\>= 2.0")
    assert "<summary>Description</summary><small>This variable was considered" in html
    assert "(improvement) &gt;= 2.0" in html and "\\&gt;=" not in html
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/35296532/"' in html  # the first reference
    assert "105 sites in 9 countries; the first 10 shown." in html
    assert "Russian Federation: 18" in html  # sites per country, in a collapsible list
    # beside what trialdesk adds
    for text in ("Inclusion criteria", "Arms and regimens", "Protocol lint findings"):
        assert text in html


def test_sites_nearest_first_with_their_distance(web: Any) -> None:
    trial_id = store_record(web, big_study())
    c = web.client()
    html = c.get(f"/trials/{trial_id}", params={"near": "33.52066,-86.80249"}, headers=HTML).text
    # 1,200 sites, the page lists ten: a thousand sites do not make a thousand-item page
    assert "1,200 sites in 9 countries; the 10 nearest to 33.52066,-86.80249 shown." in html
    sites = html[html.index('<ol class="sites">'):html.index("</ol>", html.index('<ol class="sites">'))]
    assert sites.count("<li>") == 10
    shown = [int(km.replace(",", "")) for km in re.findall(r'class="distance">([\d,]+) km', sites)]
    assert shown == sorted(shown) and shown[0] == 0  # Birmingham itself, twelve times over
    assert "As0006 125" in sites.split("</li>")[0]
    # Moscow by name (gazetteer): the nearest sites are Russian, at hand-computed distances
    moscow = c.get(f"/trials/{trial_id}", params={"near": "Moscow"}, headers=HTML).text
    first = moscow[moscow.index('<ol class="sites">'):].split("</li>")[0]
    assert "Russian Federation" in first
    site = next(loc for loc in _study("NCT02552212.json")["protocolSection"]
                ["contactsLocationsModule"]["locations"] if loc["facility"] in first)
    hand = _km((55.75222, 37.61556), (site["geoPoint"]["lat"], site["geoPoint"]["lon"]))
    [km] = re.findall(r'class="distance">([\d,]+) km', first)
    assert abs(int(km.replace(",", "")) - hand) <= 2, (km, hand)
    assert "nearest to Moscow, RU" in moscow


def test_an_unknown_place_is_named_by_its_label(web: Any) -> None:
    trial_id = store_record(web, _study("NCT02552212.json"))
    r = web.client().get(f"/trials/{trial_id}", params={"near": "Qqzxv"}, headers=HTML)
    assert r.status_code == 422
    assert "Nearest sites to: unknown place &#39;Qqzxv&#39;" in r.text
    assert "105 sites in 9 countries; the first 10 shown." in r.text  # the page still shows
    assert "--near" not in r.text


@pytest.mark.parametrize("trial_id", ["NB-NK-2026", "RuMCeSS"])
def test_a_seed_protocol_shows_the_modules_it_has(web: Any, trial_id: str) -> None:
    html = web.client().get(f"/trials/{trial_id}", headers=HTML).text
    nct = {"NB-NK-2026": "NCT07375563", "RuMCeSS": "NCT01849237"}[trial_id]
    assert f"Data sourced from ClinicalTrials.gov, {nct}" in html
    assert "Contacts and locations" in html and "1 site; the record lists no addresses." in html
    assert 'id="dates"' not in html  # the seed records carry no dates: no empty section
    assert 'id="refs"' not in html


def test_refnot_has_no_registry_id_and_says_no_source_line(web: Any) -> None:
    html = web.client().get("/trials/REFNOT-R2", headers=HTML).text
    assert "Data sourced from ClinicalTrials.gov" not in html
    assert "Sponsor and collaborators" in html


def test_ordering_an_older_version_keeps_the_version(web: Any) -> None:
    study = _study("NCT02552212.json")
    trial_id = store_record(web, study)
    newer = _document(study)
    newer["version"] = f"{newer.get('version', '')} amended"
    web.store.import_protocol(newer, source="test", actor="test", reason="an amendment")
    c = web.client()
    older = c.get(f"/trials/{trial_id}", params={"version": 1}, headers=HTML).text
    assert '<input type="hidden" name="version" value="1">' in older
    latest = c.get(f"/trials/{trial_id}", headers=HTML).text
    assert 'name="version"' not in latest

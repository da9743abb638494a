"""The registry in the database, on SQLite (FTS5) and PostgreSQL (tsvector): every shared
record imported through the service, searched by text, condition, age, sex and distance,
re-imported (updated and audited), and its criteria reviewed with a signature.

Known answers from ../shared/ctgov/ (read from the records):
* sepsis: NCT03245528 (distributive shock; its MeSH conditions hold "Shock, Septic");
* sites in Moscow: NCT02552212 (with geo points 55.75222 N 37.61556 E), NCT01207388 and
  NCT01642004 (classic XML, sites without geo points);
* no shared record has a "12 Months" limit: a copy of NCT00973089 with a maximum age of
  "12 Months" and no minimum is added for the age boundary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.errors import AccessError, ConflictError, RegistryError, ReviewError
from trialdesk.registry.search import Age, great_circle_km
from trialdesk.services import registry as reg
from trialdesk.services.accounts import hash_password, principal_for
from trialdesk.services.context import Services
from trialdesk.store import Store

CTGOV = Path(__file__).resolve().parents[2] / "shared" / "ctgov"
if not CTGOV.is_dir():
    CTGOV = Path("/work/shared/ctgov")
FILES = sorted(CTGOV.glob("NCT*"))
MOSCOW = (55.75204, 37.61781)  # GeoNames 524901


def _infant_record() -> bytes:
    doc = json.loads((CTGOV / "NCT00973089.json").read_text())
    doc["protocolSection"]["identificationModule"]["nctId"] = "NCT09999901"
    eligibility = doc["protocolSection"]["eligibilityModule"]
    eligibility.pop("minimumAge", None)
    eligibility["maximumAge"] = "12 Months"
    return json.dumps(doc).encode()


@pytest.fixture
def ctx(database_url: str) -> Any:
    store = Store.open(database_url)
    store.import_protocol({"id": "T1", "version": "1"}, source="t", actor="t", reason="t")
    for name, role in (("admin", "administrator"), ("inv", "investigator"),
                       ("coord", "coordinator")):
        store.add_user(name, f"Dr {name}", hash_password(f"{name}-pass"), actor="t", reason="t")
        store.add_membership(name, "T1", role, None, actor="t", reason="t")
    services = Services.open(store)
    lines = reg.import_files(services, principal_for(store, "admin"),
                             [(p.name, p.read_bytes()) for p in FILES]
                             + [("infant.json", _infant_record())])
    assert [x.stored for x in lines] == ["created"] * 21
    yield services
    store.close()


def _ids(found: dict[str, Any]) -> list[str]:
    return [h["trial_id"] for h in found["results"]]


def _who(ctx: Any, name: str) -> Any:
    return principal_for(ctx.store, name)


def test_every_shared_record_is_stored_with_its_sites(ctx: Any) -> None:
    store = reg.registry_store(ctx)
    assert store.registry_count() == 21
    s = store.registry_study("NCT02552212")
    assert (s.status, s.phases, s.minimum_age, s.sex) == ("COMPLETED", ("PHASE3",), "18 Years", "ALL")
    assert s.document["registry"]["identification"]["nct_id"] == "NCT02552212"
    assert s.unreviewed == s.criteria_count > 0  # an import is a draft until reviewed
    entries = [e for e in ctx.store.audit_entries(record_type="registry_study", limit=100).items]
    assert len(entries) == 21 and {e.action for e in entries} == {"create"}


def test_condition_search_uses_synonyms(ctx: Any) -> None:
    who = _who(ctx, "coord")
    found = reg.search(ctx, who, condition="sepsis")
    assert _ids(found) == ["NCT03245528"]
    assert found["results"][0]["matched"] == ["condition 'sepsis'"]
    assert found["results"][0]["draft"] is True
    assert _ids(reg.search(ctx, who, condition="septic shock")) == ["NCT03245528"]
    assert reg.search(ctx, who, condition="neuroblastoma")["total"] == 0


def test_text_search_finds_places_and_words_in_every_field(ctx: Any) -> None:
    who = _who(ctx, "coord")
    assert sorted(_ids(reg.search(ctx, who, text="Moscow"))) == [
        "NCT01207388", "NCT01642004", "NCT02552212"]
    nivolumab = reg.search(ctx, who, text="nivolumab docetaxel")
    assert _ids(nivolumab) == ["NCT01642004"]
    assert "'nivolumab' in title" in nivolumab["results"][0]["matched"]
    assert reg.search(ctx, who, text="nivolumab melanoma-free-words")["total"] == 0


def test_near_moscow_measures_to_the_nearest_site(ctx: Any) -> None:
    who = _who(ctx, "coord")
    found = reg.search(ctx, who, near="Moscow", km=100)
    assert _ids(found) == ["NCT02552212"]
    hit = found["results"][0]
    # 55.75204 N 37.61781 E to the site at 55.75222 N 37.61556 E: 0.142 km.
    assert hit["km"] == pytest.approx(0.1, abs=0.05) and "Moscow" in hit["nearest_site"]
    # From the Saint Petersburg sites, Moscow's are 634 km away: outside 600 km, inside 700.
    spb = "59.93863,30.31413"
    assert _ids(reg.search(ctx, who, near=spb, km=1))[:1] == ["NCT02552212"]
    assert "NCT02552212" in _ids(reg.search(ctx, who, near=spb, km=700))


def test_distance_ordering_against_great_circle_distances(ctx: Any) -> None:
    who = _who(ctx, "coord")
    found = reg.search(ctx, who, near=f"{MOSCOW[0]},{MOSCOW[1]}", limit=100)
    kms = [h["km"] for h in found["results"] if h["km"] is not None]
    # 16 of the 21 studies have a site with a geo point (three XML records have none, two
    # have no sites).
    assert kms == sorted(kms) and len(kms) == 16
    # Each distance is the nearest of the record's own geo points, measured independently.
    for h in found["results"][:6]:
        study = reg.registry_store(ctx).registry_study(h["trial_id"])
        points = [loc["geo"] for loc in study.document["registry"]
                  ["contacts_locations"]["locations"] if "geo" in loc]
        nearest = min(great_circle_km(*MOSCOW, p["lat"], p["lon"]) for p in points)
        assert h["km"] == pytest.approx(nearest, abs=0.051)


def test_age_at_the_boundaries_and_sex(ctx: Any) -> None:
    who = _who(ctx, "coord")
    twelve = _ids(reg.search(ctx, who, age=Age(12, "month"), limit=100))
    assert "NCT09999901" in twelve  # 12 months against a maximum of "12 Months"
    assert "NCT09999901" not in _ids(reg.search(ctx, who, age=Age(13, "month"), limit=100))
    assert "NCT00734539" not in twelve  # maximum "5 Days"
    assert "NCT00734539" in _ids(reg.search(ctx, who, age=Age(5, "day"), limit=100))
    # "21 Years" maximum (NCT01339988, males only): 21 years and 11 months is still 21.
    assert "NCT01339988" in _ids(reg.search(ctx, who, age=Age(263, "month"), sex="M"))
    assert "NCT01339988" not in _ids(reg.search(ctx, who, age=Age(22, "year"), sex="M"))
    assert "NCT01339988" not in _ids(reg.search(ctx, who, age=Age(10, "year"), sex="F"))
    assert "NCT06388018" in _ids(reg.search(ctx, who, age=Age(40, "year"), sex="F",
                                            limit=100))


def test_status_and_phase_filters_and_bad_filters(ctx: Any) -> None:
    who = _who(ctx, "coord")
    phase3 = reg.search(ctx, who, phase="3", status="completed", limit=100)
    assert "NCT02552212" in _ids(phase3)
    assert all("PHASE3" in h["phases"] and h["status"] == "COMPLETED" for h in phase3["results"])
    with pytest.raises(RegistryError, match="unknown place"):
        reg.search(ctx, who, near="Nowhere-upon-nothing")
    with pytest.raises(RegistryError, match="needs a place"):
        reg.search(ctx, who, km=10)
    with pytest.raises(AccessError):
        reg.search(ctx, principal_for(ctx.store, "coord").__class__(None), text="x")


def test_reimport_updates_the_index_and_is_audited(ctx: Any) -> None:
    doc = json.loads((CTGOV / "NCT00184067.json").read_text())
    doc["protocolSection"]["identificationModule"]["briefTitle"] = "Zanzibarine vaccine study"
    lines = reg.import_files(ctx, _who(ctx, "admin"), [("changed.json", json.dumps(doc).encode()),
                                                       (FILES[1].name, FILES[1].read_bytes())])
    assert [x.stored for x in lines] == ["updated", "unchanged"]
    assert _ids(reg.search(ctx, _who(ctx, "coord"), text="zanzibarine")) == ["NCT00184067"]
    updates = [e for e in ctx.store.audit_entries(record_type="registry_study", limit=100).items
               if e.action == "update"]
    assert len(updates) == 1 and updates[0].record_id == "NCT00184067"
    assert updates[0].changes["title"]["new"] == "Zanzibarine vaccine study"
    assert reg.registry_store(ctx).registry_count() == 21


def test_a_malformed_study_fails_alone(ctx: Any) -> None:
    good = json.loads((CTGOV / "NCT00973089.json").read_text())
    good["protocolSection"]["identificationModule"]["nctId"] = "NCT09999902"
    bad = {"protocolSection": {"identificationModule": {"nctId": "NCT09999903"},
                               "statusModule": {"overallStatus": 5}}}
    lines = reg.import_files(ctx, _who(ctx, "admin"),
                             [("page.json", json.dumps({"studies": [bad, good]}).encode())])
    failed = [x.to_json() for x in lines if x.stored is None]
    assert len(failed) == 1 and failed[0]["source"].startswith("page.json: $.studies[0]")
    assert [x.stored for x in lines if x.stored] == ["created"]


def test_only_administrators_import(ctx: Any) -> None:
    with pytest.raises(AccessError, match="importing registry records"):
        reg.import_files(ctx, _who(ctx, "inv"), [(FILES[0].name, FILES[0].read_bytes())])


def test_review_is_signed_audited_and_kept_on_reimport(ctx: Any) -> None:
    inv = _who(ctx, "inv")
    page = reg.review_page(ctx, inv, "NCT03245528")
    first, second, third = page["criteria"][:3]
    assert page["unreviewed"] == len(page["criteria"]) and first["state"] == "draft"
    with pytest.raises(AccessError, match="password is wrong"):
        reg.review(ctx, inv, "NCT03245528", first["id"], action="accept",
                   version=page["version"], password="nope")
    with pytest.raises(AccessError):
        reg.review(ctx, _who(ctx, "admin"), "NCT03245528", first["id"], action="accept",
                   version=page["version"], password="admin-pass")
    done = reg.review(ctx, inv, "NCT03245528", first["id"], action="accept",
                      version=page["version"], password="inv-pass")
    assert done["state"] == "accepted" and done["unreviewed"] == page["unreviewed"] - 1
    with pytest.raises(ConflictError):  # the page's version is stale now
        reg.review(ctx, inv, "NCT03245528", second["id"], action="reject",
                   version=page["version"], password="inv-pass")
    with pytest.raises(ReviewError, match="does not check"):
        reg.review(ctx, inv, "NCT03245528", second["id"], action="edit",
                   version=done["version"], rule="no_such_fact > 3", password="inv-pass")
    edited = reg.review(ctx, inv, "NCT03245528", second["id"], action="edit",
                        version=done["version"], rule="age_years >= 18", password="inv-pass")
    rejected = reg.review(ctx, inv, "NCT03245528", third["id"], action="reject",
                          version=edited["version"], password="inv-pass", note="too vague")
    after = reg.review_page(ctx, inv, "NCT03245528")
    states = {c["id"]: (c["state"], c["by"]) for c in after["criteria"]}
    assert states[first["id"]] == ("accepted", "inv")
    assert states[second["id"]] == ("edited", "inv")
    assert states[third["id"]] == ("rejected", "inv") and rejected["unreviewed"] == after["unreviewed"]
    signed = ctx.store.signatures_for("registry_study", "NCT03245528")
    assert len(signed) == 3 and all(s.username == "inv" for s in signed)
    reviews = [e for e in ctx.store.audit_entries(record_type="registry_study", limit=100).items
               if e.action == "review"]
    assert len(reviews) == 3
    # The same record again: unchanged, reviews kept; a draft remains a draft.
    path = CTGOV / "NCT03245528.xml"
    again = reg.import_files(ctx, _who(ctx, "admin"), [(path.name, path.read_bytes())])
    assert [x.stored for x in again] == ["unchanged"]
    assert reg.review_page(ctx, inv, "NCT03245528")["unreviewed"] == after["unreviewed"]


def test_cli_imports_into_the_database_and_searches_it(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'trialdesk.db'}")
    store.import_protocol({"id": "T1", "version": "1"}, source="t", actor="t", reason="t")
    store.add_user("admin", "Admin", hash_password("admin-pass"), actor="t", reason="t")
    store.add_membership("admin", "T1", "administrator", None, actor="t", reason="t")
    store.close()
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path), "--by", "admin"]
    done = runner.invoke(app, ["registry", "import", str(CTGOV), *base, "--json"])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    assert len(doc["imported"]) == 20 and {d["stored"] for d in doc["imported"]} == {"created"}
    found = runner.invoke(app, ["registry", "search", "--condition", "sepsis", *base, "--json"])
    assert found.exit_code == 0, found.output
    assert [r["trial_id"] for r in json.loads(found.output)["results"]] == ["NCT03245528"]
    near = runner.invoke(app, ["registry", "search", "--near", "Moscow", "--km", "50", *base])
    assert near.exit_code == 0 and "NCT02552212" in near.output and "1 trials found" in near.output
    both = runner.invoke(app, ["registry", "import", str(CTGOV), "--out", str(tmp_path), *base])
    assert both.exit_code != 0

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

import gc
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.errors import AccessError, ConflictError, RegistryError, ReviewError
from trialdesk.registry.search import Age, great_circle_km, tokens
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


@pytest.mark.parametrize("python_math", [False, True])
def test_the_database_measures_as_great_circle_km_does(python_math: bool) -> None:
    """The SQL distance (registry search by place on SQLite) gives the same double as
    :func:`great_circle_km`, with SQLite's math functions and with Python's stand-ins."""
    import random
    import sqlite3

    from trialdesk.store.db import math_functions
    from trialdesk.store.registry import _distance_sql

    conn = sqlite3.connect(":memory:")
    math_functions(conn, replace=python_math)
    conn.execute("CREATE TABLE r (lat REAL, lon REAL)")
    rng = random.Random(11)
    points = [(rng.uniform(-89, 89), rng.uniform(-179.9, 179.9)) for _ in range(500)]
    points += [(55.75222, 37.61556), (55.75204, 37.61781), (-55.75204, -142.38219)]
    conn.executemany("INSERT INTO r VALUES (?, ?)", points)
    for lat, lon in [*points[:20], (55.75204, 37.61781), (0.0, 0.0), (89.9, 179.9)]:
        params: dict[str, Any] = {}
        sql = f"SELECT {_distance_sql('r', lat, lon, params)} FROM r ORDER BY rowid"
        measured = [row[0] for row in conn.execute(sql, params)]
        assert measured == [great_circle_km(lat, lon, a, b) for a, b in points]
        params = {}
        sql = f"SELECT {_distance_sql('r', lat, lon, params, nearest=True)} FROM r"
        assert conn.execute(sql, params).fetchone()[0] == min(measured)
    # Moscow's GeoNames point to the site of NCT02552212: 0.142 km (as the test below).
    assert great_circle_km(*MOSCOW, 55.75222, 37.61556) == pytest.approx(0.142, abs=0.001)


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


def test_a_batch_import_writes_the_audit_entries_of_one_study_at_a_time(
        tmp_path: Path) -> None:
    """The studies of a file are stored and audited together (one multi-row insert); the
    trail holds the entries importing them one file at a time writes, in the same order,
    chained (the reason and the document's digest name where each study was read)."""
    fixed = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    page: dict[str, list[Any]] = {"studies": []}
    for p in FILES:
        if p.suffix == ".json":
            doc = json.loads(p.read_text())
            page["studies"] += doc.get("studies", [doc])
    together = [("page.json", json.dumps(page).encode())] + [
        (p.name, p.read_bytes()) for p in FILES if p.suffix != ".json"]
    alone = [(p.name, p.read_bytes()) for p in FILES if p.suffix == ".json"] + [
        (p.name, p.read_bytes()) for p in FILES if p.suffix != ".json"]
    trails = []
    for name, batches in (("batch", [together]), ("single", [[f] for f in alone])):
        store = Store.open(f"sqlite:///{tmp_path / name}.db", clock=lambda: fixed)
        store.import_protocol({"id": "T1", "version": "1"}, source="t", actor="t", reason="t")
        store.add_user("admin", "Dr admin", hash_password("admin-pass"), actor="t", reason="t")
        store.add_membership("admin", "T1", "administrator", None, actor="t", reason="t")
        services = Services.open(store)
        for files in batches:
            reg.import_files(services, principal_for(store, "admin"), files, reason="imported")
            assert gc.isenabled()  # paused while a file is imported, running again after
        assert store.verify_audit().ok
        with store.engine.connect() as conn:
            trails.append([tuple(r) for r in conn.exec_driver_sql(
                "SELECT seq, at, username, action, record_type, record_id, changes, reason "
                "FROM audit_log WHERE record_type = 'registry_study' ORDER BY seq")])
        store.close()
    batch, single = trails
    assert len(page["studies"]) > 10 and len(batch) == len(single) == len(FILES)
    assert [r[:6] for r in batch] == [r[:6] for r in single]

    def changed(row: tuple[Any, ...]) -> dict[str, Any]:  # the document names its file
        return {k: v for k, v in json.loads(row[6]).items() if k != "digest"}

    assert [changed(r) for r in batch] == [changed(r) for r in single]
    assert all(r[7].startswith(f"imported ({n}") for r, (n, _) in zip(single, alone, strict=True))
    assert [r[7] for r in batch] == [f"imported (page.json: $.studies[{i}])" for i in range(
        len(page["studies"]))] + [f"imported ({p.name})" for p in FILES if p.suffix != ".json"]


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


# ------------------------------------------------------------------ search by place at scale

VARIED_CONDITIONS = ["Sepsis", "Acute Lymphoblastic Leukemia", "Melanoma", "Asthma",
                     "Breast Cancer", "Neuroblastoma", "Chronic Lymphocytic Leukemia"]


def _varied(n: int, seed: int = 20261205) -> bytes:
    """``n`` copies of the shared v2 records with new NCT ids, conditions and sites moved by
    up to 3 degrees (some onto the same points, for ties in distance)."""
    import random

    rng = random.Random(seed)
    base = [json.loads(p.read_text()) for p in FILES if p.suffix == ".json"]
    base = [b for b in base if "protocolSection" in b]
    studies = []
    for i in range(n):
        doc = json.loads(json.dumps(base[i % len(base)]))
        ps = doc["protocolSection"]
        ps["identificationModule"]["nctId"] = f"NCT{91000000 + i:08d}"
        ps.setdefault("conditionsModule", {})["conditions"] = rng.sample(VARIED_CONDITIONS, 2)
        shift = (0.0, 0.0) if i % 7 == 0 else (rng.uniform(-3, 3), rng.uniform(-3, 3))
        for loc in ps.get("contactsLocationsModule", {}).get("locations", []):
            if loc.get("geoPoint"):
                loc["geoPoint"]["lat"] = max(-89.0, min(89.0, loc["geoPoint"]["lat"] + shift[0]))
                loc["geoPoint"]["lon"] = max(-179.9, min(179.9, loc["geoPoint"]["lon"] + shift[1]))
        studies.append(doc)
    return json.dumps({"studies": studies}).encode()


@pytest.fixture
def varied(tmp_path: Path) -> Any:
    store = Store.open(f"sqlite:///{tmp_path / 'varied.db'}")
    store.import_protocol({"id": "T1", "version": "1"}, source="t", actor="t", reason="t")
    store.add_user("admin", "Admin", hash_password("admin-pass"), actor="t", reason="t")
    store.add_membership("admin", "T1", "administrator", None, actor="t", reason="t")
    services = Services.open(store)
    lines = reg.import_files(services, principal_for(store, "admin"),
                             [(p.name, p.read_bytes()) for p in FILES]
                             + [("varied.json", _varied(240))])
    assert all(x.stored == "created" for x in lines) and len(lines) == 260
    yield services
    store.close()


def _queries(n: int) -> list[dict[str, Any]]:
    import random

    rng = random.Random(7)
    places = ["48.8566,2.3522", "55.75204,37.61781", "41.88,-87.63", "40.42,-3.70",
              "31.23,121.47", "39.95,-75.16", "32.08,34.78"]
    out = []
    for _ in range(n):
        q: dict[str, Any] = {"near": rng.choice(places),
                             "km": rng.choice([30.0, 300.0, 800.0, 1500.0, 2500.0, 7000.0])}
        shape = rng.randrange(3)
        if shape != 1:
            q["text"] = rng.choice(["placebo", "phase", "children", "randomized", "years",
                                    "informed consent", "cancer"])
        if shape != 0:
            q["condition"] = rng.choice(["sepsis", "leukemia", "melanoma", "asthma",
                                         "breast cancer", "ALL", "neuroblastoma"])
        if rng.random() < 0.6:
            q["age"] = Age(rng.choice([3, 12, 30, 50, 70]), "year")
        out.append(q)
    return out


def _has(field: str, phrase: list[str]) -> bool:
    words = tokens(field)
    return any(words[i:i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1))


def test_search_by_place_finds_what_a_brute_force_filter_finds_in_the_same_order(
        varied: Any) -> None:
    """The grid-cell path (words, condition and cells in one index, the rank afterwards)
    against (1) every study checked one by one in Python, (2) the path without cells."""
    from sqlalchemy import text as sql

    import trialdesk.store.registry as store_registry

    box_cells = store_registry.box_cells
    who = principal_for(varied.store, "admin")
    store = reg.registry_store(varied)
    with varied.store.engine.connect() as conn:
        ids = dict(conn.execute(sql("SELECT id, nct_id FROM registry_studies")).all())
    texts = store.registry_search_texts(list(ids))
    sites: dict[int, list[tuple[float, float]]] = {}
    for sid, lat, lon, *_ in store.registry_sites_of(list(ids)):
        sites.setdefault(sid, []).append((lat, lon))
    ages = {i: store.registry_study(n) for i, n in ids.items()}
    used_cells = matched = 0
    for q in _queries(60):
        place = [float(x) for x in q["near"].split(",")]
        found = reg.search(varied, who, limit=1000, **q)
        box = reg._box(reg.resolve_place(q["near"]), q["km"])
        used_cells += box_cells(box) is not None
        expected = {}
        for i, fields in texts.items():
            if "text" in q and not all(any(_has(f, tokens(w)) for f in fields.values())
                                       for w in reg.query_words(q["text"])):
                continue
            if "condition" in q and not any(_has(fields["conditions"], tokens(t))
                                            for t in reg.condition_terms(q["condition"])):
                continue
            if "age" in q and not reg.fits_age(q["age"], ages[i].minimum_age,
                                               ages[i].maximum_age):
                continue
            near = min((great_circle_km(*place, lat, lon) for lat, lon in sites.get(i, [])),
                       default=None)
            if near is not None and near <= q["km"]:
                expected[ids[i]] = near
        assert found["total"] == len(expected), q
        matched += bool(expected)
        got = [(h["trial_id"], h["km"]) for h in found["results"]]
        assert sorted(got) == sorted((k, round(v, 1)) for k, v in expected.items()), q
        assert [km for _, km in got] == sorted(km for _, km in got), q
        # The same studies, in the same order, with the same ranks, without the cells.
        try:
            store_registry.box_cells = lambda box: None  # type: ignore[assignment]
            assert reg.search(varied, who, limit=1000, **q) == found, q
        finally:
            store_registry.box_cells = box_cells
    assert used_cells >= 40  # the cell path was the one tested, but for the widest boxes
    assert matched >= 30, matched  # and most queries found something


def test_the_place_query_reads_indexes_only(varied: Any) -> None:
    """EXPLAIN QUERY PLAN of the search by place: the full-text index first, then each
    study's filter columns and its sites' points from their covering indexes (no table
    scan), for the words-and-condition path with cells and without them."""
    from sqlalchemy import text as sql

    import trialdesk.store.registry as store_registry
    from trialdesk.store.registry import Filter

    store = reg.registry_store(varied)
    place = reg.resolve_place("Utrecht")
    f = Filter(words=(("placebo",),), conditions=(("sepsis",), ("septic", "shock")),
               age_days=(18000.0, 18400.0), box=reg._box(place, 1000.0), ranked=False)
    box_cells = store_registry.box_cells
    try:
        for cells in (True, False):
            if not cells:
                store_registry.box_cells = lambda box: None  # type: ignore[assignment]
            query, params = store._candidate_sql(f, (place.lat, place.lon, 1000.0))
            with varied.store.engine.connect() as conn:
                plan = [r[3] for r in conn.execute(sql("EXPLAIN QUERY PLAN " + query), params)]
            assert plan[:2] == ["MATERIALIZE f", "SCAN registry_find VIRTUAL TABLE INDEX 0:M7"
                                if cells else "SCAN registry_fts VIRTUAL TABLE INDEX 0:M5"], plan
            assert "SEARCH s USING COVERING INDEX ix_registry_studies_filters (id=?)" in plan
            assert ("SEARCH r USING COVERING INDEX ix_registry_sites_study_point "
                    "(study_id=? AND lat>? AND lat<?)") in plan
            assert not [step for step in plan if step.startswith("SCAN") and "VIRTUAL" not in step
                        and step != "SCAN f"], plan
    finally:
        store_registry.box_cells = box_cells


def _fts5_ranks(store: Any, f: Any) -> dict[int, float]:
    """FTS5's own rank of every study the filter's words and condition find."""
    from sqlalchemy import text as sql

    import trialdesk.store.registry as store_registry

    with store.engine.connect() as conn:
        return {int(r[0]): float(r[1]) for r in conn.execute(sql(
            f"SELECT rowid, -{store_registry._BM25} FROM registry_fts "
            "WHERE registry_fts MATCH :q"), {"q": store_registry._fts_query(f)})}


def test_the_rank_is_the_bm25_fts5_gives(varied: Any) -> None:
    """The rank by place is computed outside FTS5 (its bm25 counts every study holding a
    common word on each query): the same numbers as FTS5's bm25, for words in any column,
    phrases of several words, and conditions with their synonyms."""
    from trialdesk.store.registry import Filter

    store = reg.registry_store(varied)
    asked = [("placebo", None), ("informed consent", None), ("phase", "leukemia"),
             ("children years", "neuroblastoma"), (None, "sepsis"), (None, "ALL"),
             ("randomized placebo-controlled", "asthma"), ("moscow", None), ("wrocław", None)]
    checked = 0
    for words, condition in asked:
        f = Filter(words=tuple(tuple(tokens(w)) for w in reg.query_words(words)),
                   conditions=tuple(tuple(tokens(t)) for t in reg.condition_terms(condition))
                   if condition else ())
        expected = _fts5_ranks(store, f)
        assert expected, (words, condition)
        got = store.registry_scores(f, expected)
        assert got == expected, (words, condition)
        checked += len(expected)
    assert checked > 400


def test_studies_at_the_same_place_are_ranked_by_where_the_word_is(ctx: Any) -> None:
    """Three copies of NCT00973089 at its one site (Jerusalem), each with one more word,
    "quokkamab", in a different field: the same length, so the column weights decide
    (title 3, interventions 2, criteria 1): title first, then interventions, then criteria.
    Rank = IDF x f (k1 + 1) / (f + k1 (1 - b + b D / avgdl)), increasing with f."""
    def copy(nct: str, where: str) -> bytes:
        doc = json.loads((CTGOV / "NCT00973089.json").read_text())
        ps = doc["protocolSection"]
        ps["identificationModule"]["nctId"] = nct
        if where == "title":
            ps["identificationModule"]["briefTitle"] += " quokkamab"
        elif where == "interventions":
            ps["armsInterventionsModule"]["interventions"][0]["otherNames"].append("quokkamab")
        else:
            ps["eligibilityModule"]["eligibilityCriteria"] = ps["eligibilityModule"][
                "eligibilityCriteria"].replace("* Healthy children", "* Healthy children quokkamab")
        return json.dumps(doc).encode()

    order = {"NCT09999923": "criteria", "NCT09999921": "title", "NCT09999922": "interventions"}
    reg.import_files(ctx, _who(ctx, "admin"), [(f"{n}.json", copy(n, w)) for n, w in order.items()])
    found = reg.search(ctx, _who(ctx, "coord"), text="quokkamab", near="31.76904,35.21633", km=5)
    assert [h["km"] for h in found["results"]] == [0.0, 0.0, 0.0]
    assert _ids(found) == ["NCT09999921", "NCT09999922", "NCT09999923"]
    scores = [h["score"] for h in found["results"]]
    assert scores[0] > scores[1] > scores[2] > 0
    assert [h["matched"] for h in found["results"]] == [
        ["'quokkamab' in title"], ["'quokkamab' in interventions"], ["'quokkamab' in criteria"]]


def test_a_page_by_place_is_the_start_of_the_whole_ordering(varied: Any) -> None:
    """By place the rank is computed for the page shown and the studies at the same distance
    as its last one: every page is the start of the full list, ranks included, also when
    equal distances straddle the page's end (copies of a record on the same points)."""
    who = principal_for(varied.store, "admin")
    straddled = 0
    queries = _queries(30) + [{k: v for k, v in q.items() if k != "km"} for q in _queries(8)]
    for q in queries:
        full = reg.search(varied, who, limit=1000, **q)
        for limit in (1, 2, 5, 10):
            part = reg.search(varied, who, limit=limit, **q)
            assert part["total"] == full["total"], q
            assert part["results"] == full["results"][:limit], (q, limit)
            shown = full["results"]
            straddled += len(shown) > limit and shown[limit - 1]["km"] == shown[limit]["km"]
    assert straddled >= 5, straddled


def test_the_place_index_follows_a_reimport_that_moves_the_sites(varied: Any) -> None:
    admin = principal_for(varied.store, "admin")
    paris = {"text": "placebo", "near": "48.8566,2.3522", "km": 300.0}
    doc = json.loads(_varied(1, seed=3))["studies"][0]
    ps = doc["protocolSection"]
    ps["identificationModule"]["nctId"] = "NCT09999911"
    ps["conditionsModule"]["conditions"] = ["Sepsis"]
    ps["identificationModule"]["briefTitle"] = "Placebo-controlled study"
    ps["contactsLocationsModule"] = {"locations": [
        {"facility": "Hopital", "city": "Paris", "country": "France",
         "geoPoint": {"lat": 48.85, "lon": 2.35}}]}
    reg.import_files(varied, admin, [("p.json", json.dumps(doc).encode())])
    assert "NCT09999911" in _ids(reg.search(varied, admin, limit=1000, **paris))
    ps["contactsLocationsModule"]["locations"][0].update(
        city="Lima", country="Peru", geoPoint={"lat": -12.05, "lon": -77.04})
    lines = reg.import_files(varied, admin, [("p.json", json.dumps(doc).encode())])
    assert [x.stored for x in lines] == ["updated"]
    assert "NCT09999911" not in _ids(reg.search(varied, admin, limit=1000, **paris))
    lima = reg.search(varied, admin, text="placebo", near="-12.05,-77.04", km=10)
    assert _ids(lima) == ["NCT09999911"]


def test_migration_0011_gives_the_stored_studies_their_cells(ctx: Any) -> None:
    from alembic import command
    from sqlalchemy import text as sql

    from trialdesk.store.db import alembic_config, current_revision, head_revision

    who = _who(ctx, "coord")
    queries = [{"text": "placebo", "near": "Moscow", "km": 1500.0},
               {"condition": "sepsis", "near": "48.85,2.35", "km": 3000.0},
               {"text": "phase", "near": "41.88,-87.63", "km": 800.0, "age": Age(30, "year")}]
    before = [reg.search(ctx, who, **q) for q in queries]
    assert any(b["total"] for b in before)
    engine = ctx.store.engine
    cells = "SELECT nct_id, search_cells FROM registry_studies ORDER BY nct_id"
    with engine.connect() as conn:
        imported = conn.execute(sql(cells)).all()
    config = alembic_config(engine)
    for revision, down in (("0010", True), ("head", False)):
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        migrated = conn.execute(sql(cells)).all()
    assert migrated == imported  # the cells the import wrote, made again from the sites
    stored = dict(migrated)
    assert stored["NCT02552212"].startswith("g1n") and "g27n" in stored["NCT02552212"]
    assert stored["NCT01207388"] == ""  # classic XML: sites without geo points
    assert [reg.search(ctx, who, **q) for q in queries] == before


def test_migrations_0012_to_0014_give_the_stored_studies_their_concept_words(ctx: Any) -> None:
    """Down to 0011 (no concept words: the box search looks up the phrases and the cells)
    and up again: the words made from the stored conditions texts and cells are the ones
    the import wrote, every concept and the condition words at places are listed, and the
    searches give what they gave."""
    from alembic import command
    from sqlalchemy import text as sql

    from trialdesk.registry.search import PLACE_WORDS, concept_token, concept_tokens
    from trialdesk.store.db import alembic_config, current_revision, head_revision

    who = _who(ctx, "coord")
    # NCT02210780 (atopic dermatitis) has sites in the United States, NCT05147467 (CLL)
    # in China; NCT03245528 (sepsis) has none with a geo point.
    queries = [{"condition": "atopic dermatitis", "near": "37.0,-93.7", "km": 2500.0},
               {"condition": "CLL", "near": "28.3,113.8", "km": 1500.0},
               {"condition": "Atopic Dermatitis", "text": "placebo", "near": "41.88,-87.63",
                "km": 1500.0, "age": Age(30, "year")},
               {"condition": "sepsis", "near": "48.85,2.35", "km": 3000.0},
               {"condition": "skin diseases", "near": "37.0,-93.7", "km": 800.0}]
    before = [reg.search(ctx, who, **q) for q in queries]
    assert [b["total"] > 0 for b in before] == [True, True, True, False, True]
    engine = ctx.store.engine
    words = "SELECT nct_id, search_concepts FROM registry_studies ORDER BY nct_id"
    with engine.connect() as conn:
        imported = conn.execute(sql(words)).all()
    stored = dict(imported)
    sepsis = concept_token("sepsis")
    assert sepsis is not None and sepsis in stored["NCT03245528"].split()  # "Shock, Septic"
    assert sum(bool(set(w.split()) & set(concept_tokens())) for w in stored.values()) == 5
    assert "dermatitisg9n14e9" in stored["NCT02210780"].split()  # a condition word at a place
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0011")
    with engine.connect() as conn:
        columns = [r[1] for r in conn.execute(sql("PRAGMA table_info(registry_studies)"))] \
            if engine.dialect.name == "sqlite" else list(conn.execute(sql(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'registry_studies'")).scalars())
    assert "search_concepts" not in columns
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(sql(words)).all() == imported
        listed = set(conn.execute(sql("SELECT token FROM registry_concepts")).scalars())
    assert listed == {*concept_tokens(), PLACE_WORDS}
    again = Services.open(ctx.store)  # a process started after the migration
    assert [reg.search(again, who, **q) for q in queries] == before


def test_the_concept_word_finds_what_the_condition_phrases_find(varied: Any) -> None:
    """Each study holds a concept's word exactly when one of its phrases occurs in its
    conditions (checked word by word here), that word at each of its cells, and each of its
    condition words at each of its cells; a box search with the concept, or with a
    condition word, at each cell gives the same page, order, distances and ranks as with
    the phrases and the cells; a word not listed in ``registry_concepts`` (the synonyms
    changed since the studies were given their words, or the studies lack their words at
    their places) is not used."""
    from sqlalchemy import text as sql

    import trialdesk.store.registry as store_registry
    from trialdesk.registry.search import (
        PLACE_WORDS,
        SYNONYMS,
        concept_token,
        condition_places,
        condition_terms,
        place_word,
    )

    who = principal_for(varied.store, "admin")
    store = reg.registry_store(varied)
    with varied.store.engine.connect() as conn:
        rows = conn.execute(sql("SELECT search_conditions, search_cells, search_concepts "
                                "FROM registry_studies")).all()
    held = 0
    for conditions, cells, words in rows:
        expected = {concept_token(k) or "" for k in SYNONYMS
                    if any(_has(conditions, tokens(t)) for t in condition_terms(k))}
        at = {w + c for w in expected for c in cells.split()}  # the concept at each place
        plain = {w + c for w in tokens(conditions) if w.isascii() and w.isalnum()
                 for c in cells.split()}  # each condition word at each place
        assert set(words.split()) == expected | at | plain, conditions
        assert set(condition_places(conditions, cells.split()).split()) == plain
        held += bool(words)
        assert len(at) == len(expected) * len(cells.split())
    assert held >= 100

    finds: list[str] = []
    original = store_registry.RegistryStore._candidate_sql

    def spy(self: Any, f: Any, near: Any = None) -> Any:
        out = original(self, f, near)
        finds.append(out[1].get("find", ""))
        return out

    queries = [{"condition": c, "near": p, "km": km, **extra}
               for c in ("sepsis", "Septic Shock", "ALL", "neuroblastoma", "CLL", "leukemia",
                         "breast cancer", "Lymphoblastic Leukaemia", "melanoma")
               for p, km in (("48.8566,2.3522", 800.0), ("55.75204,37.61781", 1500.0),
                             ("41.88,-87.63", 2500.0))
               for extra in ({}, {"text": "placebo"}, {"age": Age(30, "year")})]
    store_registry.RegistryStore._candidate_sql = spy  # type: ignore[method-assign]
    try:
        found = 0
        for q in queries:
            finds.clear()
            with_word = reg.search(varied, who, limit=1000, **q)
            phrase = tokens(q["condition"])
            word = concept_token(q["condition"]) or place_word(phrase)
            listed = concept_token(q["condition"]) or PLACE_WORDS
            assert word is not None and f"search_concepts : ({word}g" in finds[-1], finds
            assert "search_cells" not in finds[-1]
            # a phrase of more words than the one looked up is checked as well
            assert (f'search_conditions : "{" ".join(phrase)}"' in finds[-1]) == (
                len(phrase) > 1 and listed == PLACE_WORDS), finds
            with varied.store.engine.begin() as conn:  # the word no longer listed
                conn.execute(sql("DELETE FROM registry_concepts WHERE token = :t"),
                             {"t": listed})
            finds.clear()  # a process started now (what it keeps was read before)
            assert reg.search(Services.open(varied.store), who, limit=1000, **q) == with_word, q
            assert "search_concepts" not in finds[-1] and "search_conditions" in finds[-1]
            with varied.store.engine.begin() as conn:
                conn.execute(sql("INSERT INTO registry_concepts (token) VALUES (:t)"),
                             {"t": listed})
            found += with_word["total"] > 0
        assert found >= 40, found
    finally:
        store_registry.RegistryStore._candidate_sql = original  # type: ignore[method-assign]
    assert store.registry_concept_indexed(concept_token("sepsis") or "")

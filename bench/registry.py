"""Registry benchmark, core only: import throughput and in-memory search latency.

    python bench/registry.py [--records 5000] [--queries 200]

Makes ``--records`` study records by varying the shared real v2 records (NCT ids, site
positions, dates, conditions; fixed seed), imports each through the core
(:func:`trialdesk.registry.importer.import_study`: parse, split, draft, validate, type-check),
then runs ``--queries`` searches (text + condition + age + distance) over the imported
registries in memory, and prints records per second, search p50/p95 and peak memory.

The database part of the issue's benchmark (500,000 records in SQLite with a full-text
index, database size, indexed search p95 ≤ 50 ms) needs the store wiring and is not
measured here; the in-memory scan below is the per-record cost that wiring will prune.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from trialdesk.protocol.model import Registry
from trialdesk.registry.gazetteer import resolve_place
from trialdesk.registry.importer import Failed, import_study
from trialdesk.registry.records import Study, studies_in
from trialdesk.registry.search import Query, entry, parse_age, search

ROOT = Path(__file__).resolve().parents[1]
SHARED = next(
    (p / "shared" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared").is_dir()), Path("/work/shared")
)
CONDITIONS = [
    "Sepsis",
    "Septic Shock",
    "Neuroblastoma",
    "Melanoma",
    "Atopic Dermatitis",
    "COVID-19",
    "Acute Lymphoblastic Leukemia",
    "Endometrial Cancer",
    "Follicular Lymphoma",
    "Dysphagia",
]
QUERIES = [
    ("shock", "sepsis", "40y", "Moscow"),
    ("vaccine", "melanoma", "30y", "Utrecht"),
    ("remdesivir", None, "6y", "Saint Petersburg"),
    (None, "neuroblastoma", "3y", "Birmingham"),
]


def seeds(directory: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(directory.glob("NCT*.json")):
        out += [
            dict(s.record) for s in studies_in(json.loads(path.read_text(encoding="utf-8")), source=str(path))
        ]
    return out


def vary(seed: dict[str, Any], i: int, rng: random.Random) -> dict[str, Any]:
    study = copy.deepcopy(seed)
    ps = study["protocolSection"]
    ps["identificationModule"]["nctId"] = f"NCT{90000000 + i:08d}"
    ps.setdefault("conditionsModule", {})["conditions"] = rng.sample(CONDITIONS, 2)
    start = ps.get("statusModule", {}).get("startDateStruct")
    if start:
        start["date"] = f"{rng.randint(2000, 2025)}-{rng.randint(1, 12):02d}"
    for loc in ps.get("contactsLocationsModule", {}).get("locations", []):
        point = loc.get("geoPoint")
        if point:
            point["lat"] = max(-89.0, min(89.0, point["lat"] + rng.uniform(-5, 5)))
            point["lon"] = (point["lon"] + rng.uniform(-20, 20) + 180) % 360 - 180
    return study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ctgov", type=Path, default=SHARED / "ctgov")
    args = parser.parse_args(argv)
    rng = random.Random(20261204)
    base = seeds(args.ctgov)
    records = [vary(base[i % len(base)], i, rng) for i in range(args.records)]

    started = time.perf_counter()
    trials = []
    for i, record in enumerate(records):
        result = import_study(Study(record, f"record {i}", "v2"))
        if isinstance(result, Failed):
            continue
        registry = Registry.model_validate(result.document["registry"])
        texts = [c["text"] for k in ("inclusion", "exclusion") for c in result.document["eligibility"][k]]
        trials.append(entry(result.nct_id, registry, texts, True))
    import_seconds = time.perf_counter() - started
    resolve_place("Moscow")  # load the gazetteer once, outside the timings

    places = {q[3]: resolve_place(q[3]) for q in QUERIES}
    timings = []
    hits = 0
    for n in range(args.queries):
        text, condition, age, place = QUERIES[n % len(QUERIES)]
        query = Query(text=text, condition=condition, age=parse_age(age), near=places[place], km=3000)
        t0 = time.perf_counter()
        hits += len(search(trials, query))
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"records imported: {len(trials)} of {len(records)} in {import_seconds:.1f} s "
        f"({len(trials) / import_seconds:.0f} records/s through the core)"
    )
    print(
        f"in-memory search over {len(trials)} records, {args.queries} queries "
        f"(text + condition + age + distance): p50 {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, "
        f"{hits / args.queries:.1f} hits per query"
    )
    print(
        f"  per record: {p95 / len(trials) * 1000:.1f} µs at p95; a 500,000-record scan would take "
        f"about {p95 / len(trials) * 500_000 / 1000:.1f} s: the database index must prune first"
    )
    print(f"peak memory: {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The output of a population screening: layout, manifest, summary, compact rows.

An output directory holds::

    manifest.json                  the run: date, engine, trials with their bit indexes, summary
    screening/<trial>/*.parquet    one row per patient × trial (the compact form below)
    summary.json                   counts per trial and arm, and the facts whose absence
                                   leaves the most pairs undetermined
    state/persons.parquet          per patient: data fingerprint and how long the result holds
                                   (written by --incremental runs)

A row of ``screening`` has ``person_id``, ``trial_id``, ``verdict`` (eligible, ineligible,
undetermined), ``arm`` (the arm by the protocol's assignment rule, or null), and three
bitmasks: ``met`` and ``unknown`` (bit *i* = criterion *i* of the trial, inclusion first
in protocol order; neither bit = not met) and ``absent_facts`` (bit *j* = fact *j* of the
trial's fact list has no value for this patient). ``manifest.json`` gives the indexes.

A run writes everything into a sibling staging directory and moves it into place at the
end, so an interrupted run leaves the previous output (or none) — never a half-written one
that looks complete. A directory is complete when its ``manifest.json`` exists.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trialdesk.criteria.ast import facts_of
from trialdesk.criteria.verdict import Outcome, Verdict
from trialdesk.errors import NotFoundError, ScreeningError
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.screening.plan import TrialPlan

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
SCREENING = "screening"
STATE = "state"
SCHEMA = "trialdesk.population/1"


def trial_dir(root: Path, trial_id: str) -> Path:
    return root / SCREENING / trial_id


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a complete output directory, or None."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ScreeningError(f"unreadable manifest: {exc}", where=str(path)) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ScreeningError("not a trialdesk population output", where=str(path))
    return data


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh staging directory beside ``out``, moved into place when the block succeeds.

    The previous output, if any, stays readable during the run (an incremental run reads
    it) and is replaced in two renames at the end.
    """
    out = out.resolve()
    if out.exists() and not (out.is_dir() and ((out / MANIFEST).exists()
                                               or not any(out.iterdir()))):
        raise ScreeningError("exists and is not a trialdesk population output; choose another "
                          "directory or empty it", where=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    stage = out.parent / f".{out.name}.partial-{token}"
    stage.mkdir()
    try:
        yield stage
        (stage / MANIFEST).stat()  # the run wrote its manifest last
        old = out.parent / f".{out.name}.previous-{token}"
        if out.exists():
            os.replace(out, old)
        os.replace(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Summary


@dataclass(frozen=True)
class TrialIndex:
    """A trial's bit indexes, as the manifest keeps them."""

    trial_id: str
    version: str
    fingerprint: str
    criteria: tuple[tuple[str, str], ...]
    facts: tuple[str, ...]
    arms: tuple[str, ...]
    randomised: bool
    criterion_facts: tuple[int, ...]  # per criterion: bitmask of the facts it names

    @classmethod
    def of(cls, plan: TrialPlan, compiled: CompiledProtocol) -> TrialIndex:
        masks = []
        for cid, _ in plan.criteria:
            names = facts_of(compiled.rules[cid])
            masks.append(sum(1 << plan.facts.index(n) for n in set(names)))
        return cls(plan.trial_id, plan.version, plan.fingerprint, plan.criteria, plan.facts,
                   plan.arms, plan.randomised, tuple(masks))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TrialIndex:
        return cls(doc["trial_id"], doc["version"], doc["fingerprint"],
                   tuple((c["id"], c["kind"]) for c in doc["criteria"]),
                   tuple(f["fact"] for f in doc["facts"]), tuple(doc["arms"]),
                   bool(doc["randomised"]), tuple(c["facts_mask"] for c in doc["criteria"]))

    def to_json(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "version": self.version,
                "fingerprint": self.fingerprint,
                "criteria": [{"bit": i, "id": c, "kind": k, "facts_mask": m}
                             for i, ((c, k), m) in enumerate(zip(self.criteria,
                                                                 self.criterion_facts,
                                                                 strict=True))],
                "facts": [{"bit": j, "fact": f} for j, f in enumerate(self.facts)],
                "arms": list(self.arms), "randomised": self.randomised}

    def missing_mask(self, unknown: int, absent: int) -> int:
        """Facts without a value that some unknown criterion names (what would decide it)."""
        named = 0
        for i, mask in enumerate(self.criterion_facts):
            if unknown >> i & 1:
                named |= mask
        return absent & named

    def outcomes(self, met: int, unknown: int) -> list[tuple[str, str, Outcome]]:
        """(criterion id, kind, outcome) decoded from the two bitmasks."""
        out = []
        for i, (cid, kind) in enumerate(self.criteria):
            outcome = (Outcome.UNKNOWN if unknown >> i & 1 else
                       Outcome.MET if met >> i & 1 else Outcome.NOT_MET)
            out.append((cid, kind, outcome))
        return out

    def fact_names(self, mask: int) -> list[str]:
        return [f for j, f in enumerate(self.facts) if mask >> j & 1]


def summarise(trials: Sequence[TrialIndex],
              counts: Iterable[tuple[str, str, str | None, int]],
              undetermined: Iterable[tuple[str, int, int, int]],
              *, top: int = 10) -> dict[str, Any]:
    """The summary document.

    ``counts``: (trial, verdict, arm, pairs); ``undetermined``: (trial, unknown mask,
    absent-facts mask, pairs) over the undetermined pairs.
    """
    by_id = {t.trial_id: t for t in trials}
    doc: dict[str, Any] = {"trials": {}}
    for t in trials:
        doc["trials"][t.trial_id] = {"version": t.version,
                                     "verdicts": {v.value: 0 for v in Verdict},
                                     "arms": {}, "missing_facts": []}
    for trial, verdict, arm, n in counts:
        entry = doc["trials"][trial]
        entry["verdicts"][verdict] += n
        label = arm if arm is not None else (
            "by randomisation" if by_id[trial].randomised else "no arm")
        entry["arms"].setdefault(label, {v.value: 0 for v in Verdict})[verdict] += n
    per_fact: dict[str, dict[str, list[int]]] = {t.trial_id: {} for t in trials}
    overall: dict[str, list[int]] = {}
    rows: dict[str, list[tuple[int, int, int]]] = {}
    for trial, unknown, absent, n in undetermined:
        rows.setdefault(trial, []).append((unknown, absent, n))
    for trial, found in rows.items():
        # Per fact, over all (unknown, absent) masks of the trial at once.
        index = by_id[trial]
        unknowns, absents, weights = (np.array(c, dtype=np.int64)
                                      for c in zip(*found, strict=True))
        named = np.zeros_like(unknowns)
        for i, facts_mask in enumerate(index.criterion_facts):
            named |= np.where((unknowns >> i) & 1 == 1, facts_mask, 0)
        missing = absents & named
        alone = (missing & (missing - 1)) == 0  # at most one fact missing
        for j, name in enumerate(index.facts):
            has = (missing >> j) & 1 == 1
            if not has.any():
                continue
            pairs, only = int(weights[has].sum()), int(weights[has & alone].sum())
            for bucket in (per_fact[trial], overall):
                counters = bucket.setdefault(name, [0, 0])
                counters[0] += pairs
                counters[1] += only
    for t in trials:  # arms in protocol order, then the rest
        arms = doc["trials"][t.trial_id]["arms"]
        order = [*t.arms, "by randomisation", "no arm"]
        doc["trials"][t.trial_id]["arms"] = {k: arms[k] for k in sorted(
            arms, key=lambda a: (order.index(a) if a in order else len(order), a))}
    for trial, facts in per_fact.items():
        doc["trials"][trial]["missing_facts"] = _ranked(facts, top)
    doc["missing_facts"] = _ranked(overall, top)
    doc["totals"] = {v.value: sum(e["verdicts"][v.value] for e in doc["trials"].values())
                     for v in Verdict}
    return doc


def _ranked(facts: Mapping[str, list[int]], top: int) -> list[dict[str, Any]]:
    ordered = sorted(facts.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:top]
    return [{"fact": name, "undetermined_pairs": a, "only_missing_fact": b}
            for name, (a, b) in ordered]


def trial_index(manifest: Mapping[str, Any], trial_id: str) -> TrialIndex:
    for doc in manifest["trials"]:
        if doc["trial_id"] == trial_id:
            return TrialIndex.from_json(doc)
    known = ", ".join(d["trial_id"] for d in manifest["trials"])
    raise NotFoundError(f"trial '{trial_id}' was not screened in this run; screened: {known}")


__all__ = [
    "MANIFEST",
    "SCHEMA",
    "SCREENING",
    "STATE",
    "SUMMARY",
    "TrialIndex",
    "read_manifest",
    "staged",
    "summarise",
    "trial_dir",
    "trial_index",
    "write_json",
]

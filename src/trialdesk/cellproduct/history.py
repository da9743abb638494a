"""A product's whole history in one value: its line back to the donor and collection, the
release decisions on that line, every hand-over, the products made from it, and the
bedside checks — what the history page, the PDF report and the exports show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from trialdesk.cellproduct.bedside import Verification
from trialdesk.cellproduct.custody import Handover, custody
from trialdesk.cellproduct.identifier import parse_product_id
from trialdesk.cellproduct.product import Counts, Donor, Product, children, lineage
from trialdesk.cellproduct.release import Outcome, ReleaseDecision, Signature, TestResult, Verdict


def _moment(value: datetime | None) -> str | None:
    return value.isoformat(timespec="minutes") if value else None


def product_json(p: Product) -> dict[str, Any]:
    return {
        "id": p.key, "barcode": p.id.barcode, "din": p.id.din.din13, "flags": p.id.din.flags,
        "product_code": p.id.code.text,
        "type": p.spec_id, "stage": p.stage, "trial": p.trial_id,
        "donor": {"id": p.donor.id, "kind": p.donor.kind}, "recipient": p.recipient,
        "parent": p.parent.text if p.parent else None, "prepared_at": _moment(p.prepared_at),
        "operator": p.operator, "procedure": p.procedure, "site": p.site, "volume_ml": p.volume_ml,
        "counts": {k: v for k, v in asdict(p.counts).items() if v is not None},
        "expires_at": _moment(p.expires_at), "storage": p.storage,
    }


def _decision_json(d: ReleaseDecision) -> dict[str, Any]:
    return {
        "product": d.product, "released": d.released, "exceptional": d.exceptional,
        "decided_at": _moment(d.decided_at), "justification": d.justification,
        "signatures": [{"signer": s.signer, "role": s.role, "signed_at": _moment(s.signed_at),
                        "meaning": s.meaning} for s in d.signatures],
        "tests": [{"test": v.test_id, "label": v.label, "outcome": v.outcome.value,
                   "limit": v.limit, "result": v.result, "reason": v.reason,
                   "unconfirmed": v.unconfirmed} for v in d.verdicts],
    }


def _handover_json(h: Handover) -> dict[str, Any]:
    return {"from": h.giver, "to": h.receiver, "location": h.location, "at": _moment(h.at),
            "temperature_c": h.temperature_c, "condition": h.condition, "storage": h.storage}


def history(products: Mapping[str, Product], key: str, *,
            decisions: Sequence[ReleaseDecision] = (),
            handovers: Mapping[str, Sequence[Handover]] | None = None,
            verifications: Sequence[Verification] = ()) -> dict[str, Any]:
    """The history of product ``key`` as a JSON-ready document (``trialdesk.product-history/1``).

    ``handovers`` maps a product key to its hand-overs in order; each product's custody is
    replayed, so a broken chain is an error here as everywhere.
    """
    chain = lineage(products, key)
    keys = {p.key for p in chain}
    moves = handovers or {}
    line = []
    for p in chain:
        held = custody(p.operator, p.prepared_at, moves.get(p.key, ()))
        line.append({**product_json(p),
                     "custody": {"holder": held.holder, "location": held.location,
                                 "storage": held.storage, "since": _moment(held.since),
                                 "notes": list(held.notes),
                                 "handovers": [_handover_json(h) for h in held.history]}})
    return {
        "schema": "trialdesk.product-history/1",
        "product": key,
        "donor": {"id": chain[0].donor.id, "kind": chain[0].donor.kind},
        "collection": chain[0].key,
        "line": line,
        "releases": [_decision_json(d) for d in sorted(decisions, key=lambda d: d.decided_at)
                     if d.product in keys],
        "derived": [product_json(c) for c in children(products.values(), key)],
        "bedside": [v.to_json() for v in verifications if v.product == key],
    }


# ---------------------------------------------------------------------------- back from JSON


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def product_from_json(doc: Mapping[str, Any]) -> Product:
    """The product :func:`product_json` wrote (a stored product rebuilt).

    >>> from trialdesk.cellproduct.identifier import Din, ProductCode, ProductId
    >>> from trialdesk.cellproduct.product import collect
    >>> p = collect(ProductId(Din.make("A9999", 2026, 1), ProductCode("S0001", "A")),
    ...             spec_id="c", trial_id="T", donor=Donor("P-1", "autologous"), recipient="P-1",
    ...             collected_at=datetime(2026, 3, 1, 9), procedure="apheresis", operator="lab1")
    >>> product_from_json(product_json(p)) == p
    True
    """
    prepared = _at(doc["prepared_at"])
    assert prepared is not None  # a product is always prepared at a time
    return Product(
        parse_product_id(doc["id"], require_check=True), doc["type"], doc["stage"], doc["trial"],
        Donor(doc["donor"]["id"], doc["donor"]["kind"]), doc.get("recipient"), prepared,
        doc["operator"],
        parent=parse_product_id(doc["parent"], require_check=True) if doc.get("parent") else None,
        procedure=doc.get("procedure"), site=doc.get("site"), volume_ml=doc.get("volume_ml"),
        counts=Counts(**doc.get("counts", {})), expires_at=_at(doc.get("expires_at")),
        storage=doc.get("storage"))


def decision_json(d: ReleaseDecision) -> dict[str, Any]:
    return _decision_json(d)


def decision_from_json(doc: Mapping[str, Any]) -> ReleaseDecision:
    decided = _at(doc["decided_at"])
    assert decided is not None
    return ReleaseDecision(
        doc["product"], doc["released"], doc["exceptional"],
        tuple(Verdict(t["test"], t["label"], Outcome(t["outcome"]), t["limit"], t["result"],
                      t["reason"], t["unconfirmed"]) for t in doc["tests"]),
        tuple(Signature(s["signer"], s["role"], datetime.fromisoformat(s["signed_at"]),
                        s["meaning"]) for s in doc["signatures"]),
        decided, doc.get("justification"))


def handover_json(h: Handover) -> dict[str, Any]:
    return _handover_json(h)


def handover_from_json(doc: Mapping[str, Any]) -> Handover:
    at = _at(doc["at"])
    assert at is not None
    return Handover(doc["from"], doc["to"], doc["location"], at, doc.get("temperature_c"),
                    doc["condition"], doc.get("storage"))


def result_json(r: TestResult) -> dict[str, Any]:
    return {"test": r.test_id, "value": r.value, "unit": r.unit, "by": r.by,
            "tested_at": _moment(r.tested_at)}


def result_from_json(doc: Mapping[str, Any]) -> TestResult:
    at = _at(doc["tested_at"])
    assert at is not None
    return TestResult(doc["test"], doc["value"], at, doc["by"], doc.get("unit"))

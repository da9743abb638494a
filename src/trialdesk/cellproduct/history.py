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
from trialdesk.cellproduct.product import Product, children, lineage
from trialdesk.cellproduct.release import ReleaseDecision


def _moment(value: datetime | None) -> str | None:
    return value.isoformat(timespec="minutes") if value else None


def product_json(p: Product) -> dict[str, Any]:
    return {
        "id": p.key, "barcode": p.id.barcode, "din": p.id.din.din13, "product_code": p.id.code.text,
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

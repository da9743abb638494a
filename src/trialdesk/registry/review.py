"""Review of imported criteria: accept, edit or reject a draft, signed with who and when.

Each function takes a protocol document and returns a new one (the input is not changed);
a signed review page in the web app and the service that audits it call these.

>>> doc = {"eligibility": {"inclusion": [{"id": "I1", "text": "Age >= 18 years",
...        "rule": "age_years >= 18", "review": {"state": "draft"}}], "exclusion": []}}
>>> from datetime import datetime
>>> new = accept(doc, "I1", by="dr.ivanova", at=datetime(2026, 12, 1, 9, 30))
>>> [d["eligibility"]["inclusion"][0]["review"]["state"] for d in (new, doc)]
['accepted', 'draft']
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from trialdesk.criteria.parser import parse
from trialdesk.criteria.typecheck import bind
from trialdesk.errors import CriteriaError, ReviewError
from trialdesk.facts.dictionary import BASE


def _find(doc: dict[str, Any], criterion_id: str) -> dict[str, Any]:
    eligibility = doc.get("eligibility", {})
    for kind in ("inclusion", "exclusion"):
        for c in eligibility.get(kind, []):
            if c.get("id") == criterion_id:
                return c
    raise ReviewError(f"no criterion '{criterion_id}'", where=f"trial {doc.get('id', '?')}")


def _signed(
    doc: dict[str, Any], criterion_id: str, by: str, at: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    if not by.strip():
        raise ReviewError("a review must name who signed it", where=f"criterion {criterion_id}")
    new = copy.deepcopy(doc)
    criterion = _find(new, criterion_id)
    review = criterion.setdefault("review", {})
    return new, review


def _stamp(review: dict[str, Any], state: str, by: str, at: datetime, note: str | None) -> None:
    review.update({"state": state, "by": by, "at": at.isoformat()})
    if note:
        review["note"] = note


def accept(
    doc: dict[str, Any], criterion_id: str, *, by: str, at: datetime, note: str | None = None
) -> dict[str, Any]:
    """Accept the criterion as drafted (its rule, or its investigator question)."""
    new, review = _signed(doc, criterion_id, by, at)
    _stamp(review, "accepted", by, at, note)
    return new


def edit(
    doc: dict[str, Any],
    criterion_id: str,
    *,
    by: str,
    at: datetime,
    rule: str | None = None,
    attest: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Replace the draft by the reviewer's rule (which must type-check) or question."""
    if (rule is None) == (attest is None):
        raise ReviewError("give exactly one of a rule or a question", where=f"criterion {criterion_id}")
    if rule is not None:
        try:
            bind(parse(rule), BASE)
        except CriteriaError as exc:
            raise ReviewError(
                f"the rule does not check: {exc.reason}", where=f"criterion {criterion_id}"
            ) from None
    new, review = _signed(doc, criterion_id, by, at)
    criterion = _find(new, criterion_id)
    criterion.pop("rule", None)
    criterion.pop("attest", None)
    criterion["rule" if rule is not None else "attest"] = rule if rule is not None else attest
    _stamp(review, "edited", by, at, note)
    return new


def reject(
    doc: dict[str, Any], criterion_id: str, *, by: str, at: datetime, note: str | None = None
) -> dict[str, Any]:
    """Set the draft rule aside: the criterion becomes an investigator question with its text."""
    new, review = _signed(doc, criterion_id, by, at)
    criterion = _find(new, criterion_id)
    criterion.pop("rule", None)
    criterion["attest"] = criterion["text"]
    _stamp(review, "rejected", by, at, note)
    return new

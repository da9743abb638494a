"""Cell products in the DSMB report: what was collected and made per patient, which release
decisions failed and on which tests, which products were released by exceptional release
(justification and both signers), which bedside verifications refused and why, each
infusion's dose against the protocol's range, and how many timed infusions met their
deadline (RuMCeSS: MSC within 10 h of septic-shock onset, seed 004).

Pure functions of :class:`TrialProducts` (the cell-product cores' own values plus the
bedside checks and infusions as stored); each table is a DataFrame a test can check.

>>> empty = TrialProducts("T", specs={}, products={})
>>> products_table(empty).empty, deadline_table(empty).empty
(True, True)
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from trialdesk.cellproduct.custody import Handover
from trialdesk.cellproduct.product import Product
from trialdesk.cellproduct.release import ReleaseDecision, Signature
from trialdesk.protocol.model import ProductSpec

UNASSIGNED = "not assigned (third-party stock)"


@dataclass(frozen=True)
class BedsideCheck:
    """One stored bedside verification: accepted, or refused with (code, reason) pairs."""

    patient: str
    event: str
    product: str | None
    checked_at: datetime
    accepted: bool
    verifiers: tuple[str, ...] = ()
    refusals: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Infusion:
    """One infusion as stored; a timed event's ``deadline`` and its anchor's time
    (``onset``, e.g. septic-shock onset) when the calendar has them (None = not recorded)."""

    product: str
    patient: str
    event: str
    start: datetime
    cells_per_kg: float | None = None
    end: datetime | None = None
    volume_ml: float | None = None
    deadline: datetime | None = None
    onset: datetime | None = None
    anchor: str | None = None

    @property
    def deadline_met(self) -> bool | None:
        return None if self.deadline is None else self.start <= self.deadline


@dataclass(frozen=True)
class TrialProducts:
    """A trial's cell products: the protocol's product types, every product by key, the
    release decisions, the bedside checks, the infusions and each product's hand-overs in
    order (for the exports' storage temperature and location)."""

    trial: str
    specs: Mapping[str, ProductSpec]
    products: Mapping[str, Product]
    decisions: Sequence[ReleaseDecision] = ()
    checks: Sequence[BedsideCheck] = ()
    infusions: Sequence[Infusion] = ()
    handovers: Mapping[str, Sequence[Handover]] = field(default_factory=dict)

    def latest(self) -> dict[str, ReleaseDecision]:
        """The latest release decision of each product (the one that counts)."""
        out: dict[str, ReleaseDecision] = {}
        for d in sorted(self.decisions, key=lambda d: d.decided_at):
            out[d.product] = d
        return out

    def type_name(self, key: str | None) -> str:
        product = self.products.get(key or "")
        if product is None:
            return "—"
        spec = self.specs.get(product.spec_id)
        return spec.name if spec else product.spec_id

    def patient_of(self, key: str) -> str:
        product = self.products.get(key)
        if product is None:
            return "—"
        return owner(product)


def owner(product: Product) -> str:
    """Whose product it is: the recipient, the autologous donor, else third-party stock."""
    if product.recipient:
        return product.recipient
    return product.donor.id if product.autologous else UNASSIGNED


def _minute(at: datetime | None) -> str:
    return "—" if at is None else at.strftime("%Y-%m-%d %H:%M")


PRODUCT_COLUMNS = ["patient", "collections", "derived", "released", "of which exceptional",
                   "not released", "awaiting release", "doses infused"]


def products_table(data: TrialProducts) -> pd.DataFrame:
    """Per patient (recipient or autologous donor; third-party stock apart): collections,
    derived products, and on the products that have a release decision or need one (a
    type with release tests) — released (latest decision), of which by exceptional release,
    not released, awaiting a decision; then doses infused. A last row sums all."""
    latest = data.latest()
    infused = {i.product for i in data.infusions}
    rows: dict[str, dict[str, int]] = {}
    for key, p in data.products.items():
        row = rows.setdefault(owner(p), dict.fromkeys(PRODUCT_COLUMNS[1:], 0))
        row["collections" if p.stage == "collection" else "derived"] += 1
        spec = data.specs.get(p.spec_id)
        decision = latest.get(key)
        if decision is not None:
            row["released" if decision.released else "not released"] += 1
            row["of which exceptional"] += int(decision.released and decision.exceptional)
        elif spec is not None and spec.release_tests:
            row["awaiting release"] += 1
        row["doses infused"] += int(key in infused)
    order = sorted(rows, key=lambda k: (k == UNASSIGNED, k))
    out = [{"patient": k, **rows[k]} for k in order]
    if out:
        out.append({"patient": "all", **{c: sum(r[c] for r in rows.values())
                                         for c in PRODUCT_COLUMNS[1:]}})
    return pd.DataFrame(out, columns=PRODUCT_COLUMNS)


def release_failures_table(data: TrialProducts) -> pd.DataFrame:
    """Every release decision with a test not met or unknown (out of specification): the
    decision (not released, or released by exceptional release) and each failed test with
    its result, the limit and why."""
    rows = []
    for d in sorted(data.decisions, key=lambda d: (d.decided_at, d.product)):
        if not d.failures:
            continue
        tests = "; ".join(f"{v.label}: {v.outcome.value} ({v.result or 'no result'}, limit "
                          f"{v.limit or 'not set'}; {v.reason})" for v in d.failures)
        rows.append({"product": d.product, "type": data.type_name(d.product),
                     "patient": data.patient_of(d.product), "decided": _minute(d.decided_at),
                     "decision": "exceptional release" if d.exceptional else "not released",
                     "failed tests": tests})
    return pd.DataFrame(rows, columns=["product", "type", "patient", "decided", "decision",
                                       "failed tests"])


def _signer(signatures: Sequence[Signature], role: str) -> str:
    found = [f"{s.signer} ({_minute(s.signed_at)})" for s in signatures if s.role == role]
    return ", ".join(found) or "—"


def exceptional_table(data: TrialProducts) -> pd.DataFrame:
    """Every exceptional release: the clinical justification and both signatures."""
    rows = [{"product": d.product, "type": data.type_name(d.product),
             "patient": data.patient_of(d.product), "released": _minute(d.decided_at),
             "justification": d.justification or "—",
             "lab's responsible person": _signer(d.signatures, "lab_responsible"),
             "investigator": _signer(d.signatures, "investigator")}
            for d in sorted(data.decisions, key=lambda d: (d.decided_at, d.product))
            if d.exceptional]
    return pd.DataFrame(rows, columns=["product", "type", "patient", "released", "justification",
                                       "lab's responsible person", "investigator"])


def refusals_table(data: TrialProducts) -> pd.DataFrame:
    """Every refused bedside verification with its reasons (nothing was infused on it)."""
    rows = [{"checked": _minute(c.checked_at), "patient": c.patient, "event": c.event,
             "product": c.product or "not identified", "verifiers": ", ".join(c.verifiers) or "—",
             "reasons": "; ".join(f"{code}: {reason}" for code, reason in c.refusals) or "—"}
            for c in sorted(data.checks, key=lambda c: (c.checked_at, c.patient))
            if not c.accepted]
    return pd.DataFrame(rows, columns=["checked", "patient", "event", "product", "verifiers",
                                       "reasons"])


def _in_range(value: float | None, spec: ProductSpec | None) -> str:
    limit = spec.dose_per_kg if spec else None
    if value is None or limit is None or (limit.minimum is None and limit.maximum is None):
        return "unknown"
    ok = (limit.minimum is None or value >= limit.minimum) and (
        limit.maximum is None or value <= limit.maximum)
    return "yes" if ok else "no"


def _hours(delta: timedelta) -> float:
    return delta / timedelta(hours=1)


def infusions_table(data: TrialProducts) -> pd.DataFrame:
    """Every infusion: the dose in viable cells/kg against the protocol's range for the
    product type, and for a timed event the hours from its anchor and whether the deadline
    was met."""
    rows = []
    for i in sorted(data.infusions, key=lambda i: (i.start, i.patient)):
        product = data.products.get(i.product)
        spec = data.specs.get(product.spec_id) if product else None
        limit = spec.dose_per_kg if spec else None
        met = i.deadline_met
        rows.append({
            "patient": i.patient, "event": i.event, "product": i.product,
            "start": _minute(i.start),
            "cells/kg": "—" if i.cells_per_kg is None else f"{i.cells_per_kg:.3g}",
            "protocol range": limit.shown() if limit else "not set",
            "in range": _in_range(i.cells_per_kg, spec),
            "h from onset": "—" if i.onset is None else f"{_hours(i.start - i.onset):.1f}",
            "deadline met": "—" if met is None else ("yes" if met else "no"),
        })
    return pd.DataFrame(rows, columns=["patient", "event", "product", "start", "cells/kg",
                                       "protocol range", "in range", "h from onset",
                                       "deadline met"])


@dataclass(frozen=True)
class DeadlineCompliance:
    """Timed infusions of one anchor: ``met`` of ``total`` within the deadline; hours from
    the anchor (median, minimum, maximum) over those whose anchor time is recorded."""

    anchor: str
    within_hours: tuple[float, ...]
    met: int
    total: int
    hours: tuple[float, ...]

    @property
    def median(self) -> float | None:
        return statistics.median(self.hours) if self.hours else None


def deadline_compliance(data: TrialProducts) -> list[DeadlineCompliance]:
    """Per anchor (e.g. septic-shock onset): how many timed infusions met their deadline."""
    groups: dict[str, list[Infusion]] = {}
    for i in data.infusions:
        if i.deadline is not None:
            groups.setdefault(i.anchor or "anchor", []).append(i)
    out = []
    for anchor, items in sorted(groups.items()):
        spans = sorted({round(_hours(i.deadline - i.onset), 2) for i in items
                        if i.deadline is not None and i.onset is not None})
        out.append(DeadlineCompliance(
            anchor, tuple(spans), sum(bool(i.deadline_met) for i in items), len(items),
            tuple(_hours(i.start - i.onset) for i in items if i.onset is not None)))
    return out


def deadline_table(data: TrialProducts) -> pd.DataFrame:
    """Deadline compliance as a table: within the deadline n/N (%), hours from the anchor."""
    rows = []
    for c in deadline_compliance(data):
        within = " or ".join(f"{h:g} h" for h in c.within_hours) or "not known"
        rows.append({
            "timed from": c.anchor.replace("_", " "), "deadline": f"within {within}",
            "infusions within deadline": f"{c.met} / {c.total} ({c.met / c.total:.0%})",
            "h from onset, median (range)": "—" if c.median is None else
            f"{c.median:.1f} ({min(c.hours):.1f}–{max(c.hours):.1f})",
            "onset not recorded": c.total - len(c.hours)})
    return pd.DataFrame(rows, columns=["timed from", "deadline", "infusions within deadline",
                                       "h from onset, median (range)", "onset not recorded"])

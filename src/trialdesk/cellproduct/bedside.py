"""Bedside verification: the right product, for the right patient, on the right event.

Before a cell product is infused, two different people verify the product identifier
(scanned, or typed with its check character) and the patient identifier (wristband), and
the system checks the chain of identity (the dose is this patient's: autologous donor =
patient, or a third-party dose assigned to them), release, expiry, the protocol event
(agent, course and day, not already given) and the dose in viable cells/kg against the
protocol's range for today's weight (FACT-JACIE International Standards for Hematopoietic
Cellular Therapy, 8th ed., D11 "administration", not checked). Every failed check is a
refusal with its reason; one refusal and nothing is infused.

A timed event (RuMCeSS: MSC within 10 h of septic-shock onset, seed 004) reports the time
left to its deadline and whether it is met. Missing the deadline is a protocol deviation
recorded with the infusion, not a refusal: whether to give the cells late is the
investigator's decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from trialdesk.cellproduct.identifier import IdentifierError, parse_product_id
from trialdesk.cellproduct.product import Product, ProductError, lineage
from trialdesk.cellproduct.release import ReleaseDecision, release_status
from trialdesk.protocol.model import Protocol, SpecLimit
from trialdesk.schedule.plan import Event, EventKind, EventStatus


@dataclass(frozen=True)
class Refusal:
    code: str
    reason: str


@dataclass(frozen=True)
class Verification:
    """What the bedside check found: ``accepted`` only with no refusal."""

    product: str | None
    patient: str
    event_id: str
    verifiers: tuple[str, ...]
    checked_at: datetime
    refusals: tuple[Refusal, ...]
    cells_per_kg: float | None = None
    weight_kg: float | None = None
    deadline: datetime | None = None
    time_left: timedelta | None = None
    deadline_met: bool | None = None
    warnings: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.refusals

    def to_json(self) -> dict[str, object]:
        return {
            "accepted": self.accepted, "product": self.product, "patient": self.patient,
            "event": self.event_id, "verifiers": list(self.verifiers),
            "checked_at": self.checked_at.isoformat(timespec="minutes"),
            "refusals": [{"code": r.code, "reason": r.reason} for r in self.refusals],
            "cells_per_kg": self.cells_per_kg, "weight_kg": self.weight_kg,
            "deadline": self.deadline.isoformat(timespec="minutes") if self.deadline else None,
            "minutes_left": self.time_left // timedelta(minutes=1) if self.time_left is not None
            else None,
            "deadline_met": self.deadline_met, "warnings": list(self.warnings),
            "chain": list(self.chain),
        }


def _verifiers(verifiers: Sequence[str]) -> list[Refusal]:
    people = {v.strip().casefold() for v in verifiers if v.strip()}
    if len(people) < 2:
        return [Refusal("one_person", "two different people must verify at the bedside "
                                      f"({len(people)} given)")]
    return []


def verify(protocol: Protocol, products: Mapping[str, Product], decisions: Sequence[ReleaseDecision],
           *, entered: str, scanned: bool, wristband: str, patient_id: str, event: Event,
           verifiers: Sequence[str], now: datetime, weight_kg: float | None) -> Verification:
    """The bedside check of one product for one planned event of ``patient_id``.

    ``entered`` is the product identifier as scanned or typed (typed needs the DIN's check
    character); ``wristband`` the patient identifier read from the wristband; ``weight_kg``
    today's weight. ``products`` is the product tree by key, ``decisions`` its release
    decisions.
    """
    refusals = _verifiers(verifiers)
    base: dict[str, Any] = {"patient": patient_id, "event_id": event.id, "verifiers": tuple(verifiers),
            "checked_at": now}
    deadline_fields = _deadline(event, now)
    if wristband.strip() != patient_id:
        refusals.append(Refusal("wrong_patient", f"the wristband reads {wristband.strip()!r}, "
                                                 f"this is {patient_id}'s event"))
    try:
        pid = parse_product_id(entered, require_check=not scanned)
    except IdentifierError as exc:
        refusals.append(Refusal("identifier", exc.reason))
        return Verification(None, refusals=tuple(refusals), **base, **deadline_fields)
    product = products.get(pid.text)
    if product is None:
        refusals.append(Refusal("unknown_product", f"no product {pid.text}"))
        return Verification(pid.text, refusals=tuple(refusals), **base, **deadline_fields)
    try:
        chain = lineage(products, product.key)
    except ProductError as exc:
        refusals.append(Refusal("broken_chain", str(exc)))
        return Verification(pid.text, refusals=tuple(refusals), **base, **deadline_fields)
    refusals += _identity(protocol, product, patient_id)
    released, why = release_status(chain, {s.id: s for s in protocol.products}, decisions)
    if not released:
        refusals.append(Refusal("not_released", why))
    if product.expires_at is None:
        refusals.append(Refusal("expiry_unknown", "the product has no expiry recorded"))
    elif now >= product.expires_at:
        refusals.append(Refusal("expired", f"expired {product.expires_at:%Y-%m-%d %H:%M}"))
    refusals += _event(protocol, product, event, now)
    per_kg, dose_refusals = _dose(protocol, product, weight_kg)
    refusals += dose_refusals
    warnings = []
    if deadline_fields.get("deadline_met") is False:
        warnings.append(f"the deadline {event.deadline:%Y-%m-%d %H:%M} has passed: a protocol "
                        "deviation to record with the infusion")
    return Verification(product.key, refusals=tuple(refusals), cells_per_kg=per_kg,
                        weight_kg=weight_kg, warnings=tuple(warnings),
                        chain=tuple(p.key for p in chain), **base, **deadline_fields)


def _deadline(event: Event, now: datetime) -> dict[str, Any]:
    if event.kind is not EventKind.TIMED:
        return {}
    if event.deadline is None:
        return {"deadline": None}
    left = event.deadline - now
    return {"deadline": event.deadline, "time_left": left, "deadline_met": left >= timedelta(0)}


def _identity(protocol: Protocol, product: Product, patient_id: str) -> list[Refusal]:
    out = []
    if product.trial_id != protocol.id:
        out.append(Refusal("wrong_trial", f"the product is for {product.trial_id}, not {protocol.id}"))
    if product.stage != "dose":
        out.append(Refusal("not_a_dose", f"{product.key} is a {product.stage}, not a dose "
                                         "prepared for infusion"))
    if product.recipient is None:
        out.append(Refusal("not_assigned", "the dose is assigned to no patient"))
    elif product.recipient != patient_id:
        out.append(Refusal("wrong_patient", f"the product belongs to {product.recipient}, not "
                                            f"{patient_id}"))
    elif product.autologous and product.donor.id != patient_id:
        out.append(Refusal("wrong_patient", f"autologous cells of {product.donor.id}, not "
                                            f"{patient_id}"))
    return out


def _event(protocol: Protocol, product: Product, event: Event, now: datetime) -> list[Refusal]:
    spec = next((s for s in protocol.products if s.id == product.spec_id), None)
    agent = spec.agent if spec else None
    given_as = event.dose.agent if event.dose else None
    out = []
    if agent is None or given_as is None or agent.casefold() != given_as.casefold():
        out.append(Refusal("wrong_event", f"{event.name} ({event.id}) is not an event for "
                                          f"{agent or product.spec_id}"))
    if event.status in (EventStatus.GIVEN, EventStatus.PARTLY_GIVEN):
        out.append(Refusal("already_given", f"{event.id} is already recorded as given"))
    if event.kind is EventKind.TIMED:
        if event.date is None:
            out.append(Refusal("wrong_day", "the event's anchor is not recorded: no date"))
        return out
    if event.date is None or event.earliest is None or event.latest is None:
        out.append(Refusal("wrong_day", f"{event.id} has no date"))
    elif not event.earliest <= now.date() <= event.latest:
        course = f"course {event.course_number} day {event.course_day}" if event.course_number \
            else "the event"
        window = f" ± {event.window_days} d" if event.window_days else ""
        out.append(Refusal("wrong_day", f"{course} is {event.date.isoformat()}{window}, "
                                        f"today is {now.date().isoformat()}"))
    return out


def _dose(protocol: Protocol, product: Product,
          weight_kg: float | None) -> tuple[float | None, list[Refusal]]:
    spec = next((s for s in protocol.products if s.id == product.spec_id), None)
    limit = spec.dose_per_kg if spec else None
    cells = product.counts.viable_cells
    if limit is None or (limit.minimum is None and limit.maximum is None):
        return None, [Refusal("dose_unknown", "the protocol sets no dose range in viable cells/kg "
                                              "for this product")]
    if cells is None:
        return None, [Refusal("dose_unknown", "the product's viable-cell count is not recorded")]
    if weight_kg is None or weight_kg <= 0:
        return None, [Refusal("dose_unknown", "today's weight is not recorded")]
    per_unit = spec.dose_per_unit if spec else None
    if per_unit is not None and not _within(cells, per_unit):
        return None, [Refusal("dose_out_of_range", f"{cells:.3g} viable cells outside the "
                                                   f"protocol's {per_unit.shown()} per dose")]
    per_kg = cells / weight_kg
    shown = f"{per_kg:.3g} cells/kg ({cells:.3g} cells at {weight_kg:g} kg)"
    if not _within(per_kg, limit):
        side = "below" if limit.minimum is not None and per_kg < limit.minimum else "above"
        return per_kg, [Refusal("dose_out_of_range", f"{shown} is {side} the protocol's "
                                                     f"{limit.shown()}")]
    return per_kg, []


def _within(value: float, limit: SpecLimit) -> bool:
    return (limit.minimum is None or value >= limit.minimum) and (
        limit.maximum is None or value <= limit.maximum)

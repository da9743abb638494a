"""Cell products on the record: collection, derived products, release tests, the signed
release (and the exceptional release two people sign), hand-overs, the two-person bedside
verification and the infusion, the product's history (JSON and PDF) and its label.

Every operation rebuilds the core values from the store, lets :mod:`trialdesk.cellproduct`
check the change, and asks the store to save it with its audit entry. Who may do what
(:mod:`trialdesk.services.roles`): the cell-therapy lab (pharmacist role) records products,
tests and hand-overs and signs the release as the lab's responsible person; the
investigator co-signs an exceptional release; the roles that give doses verify at the
bedside and record the infusion, which also records the calendar event as given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from trialdesk.cellproduct.bedside import verify
from trialdesk.cellproduct.custody import Handover, accept, custody
from trialdesk.cellproduct.history import (
    decision_from_json,
    decision_json,
    handover_from_json,
    handover_json,
    history,
    product_from_json,
    product_json,
    result_from_json,
    result_json,
)
from trialdesk.cellproduct.identifier import (
    Din,
    IdentifierError,
    ProductCode,
    ProductId,
    parse_product_code,
    parse_product_id,
)
from trialdesk.cellproduct.label import LabelFields, PatientPolicy, render
from trialdesk.cellproduct.product import (
    Counts,
    Donor,
    Product,
    ProductError,
    collect,
    derive,
    lineage,
    shelf_life_expiry,
)
from trialdesk.cellproduct.release import (
    ReleaseDecision,
    Signature,
    TestResult,
    decide,
    evaluate,
    release_status,
)
from trialdesk.cellproduct.release import exceptional_release as core_exceptional
from trialdesk.errors import AccessError, ConflictError, NotFoundError, TrialdeskError
from trialdesk.protocol.model import ProductSpec, Protocol
from trialdesk.safety.rules import (
    ProposedAction,
    Status,
    check_product_failure,
    proposed_actions,
)
from trialdesk.schedule.plan import Event
from trialdesk.schedule.records import EventRecord, RecordStatus
from trialdesk.services.accounts import Principal, principal_for
from trialdesk.services.context import Services
from trialdesk.services.journeys import calendar_page as journey_calendar_page
from trialdesk.services.journeys import load_journey, now, plain, renamed
from trialdesk.services.patients import load_patient, signature_view
from trialdesk.services.roles import SIGNATURE_MEANINGS, Permission
from trialdesk.store.audit import digest
from trialdesk.store.records import CellProductRow

P = Permission


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


# ---------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Tree:
    """One collection's products (everything under one DIN) as stored and as core values."""

    rows: dict[str, CellProductRow]
    products: dict[str, Product]
    protocol: Protocol

    def row(self, key: str) -> CellProductRow:
        return self.rows[key]

    def spec(self, key: str) -> ProductSpec:
        return self.protocol.product(self.products[key].spec_id)


def _protocol(ctx: Services, trial_id: str, recipient: str | None) -> Protocol:
    """The protocol version the recipient is enrolled under, else the trial's current one."""
    number = None
    if recipient is not None:
        enrolment = ctx.store.enrolment(recipient)
        number = enrolment.protocol_version_number if enrolment else None
    return ctx.catalogue.trial(trial_id, number)[1].protocol


def _spec(protocol: Protocol, spec_id: str) -> ProductSpec:
    try:
        return protocol.product(spec_id)
    except KeyError:
        known = ", ".join(s.id for s in protocol.products) or "none"
        raise ProductError(f"'{spec_id}' is not a product type of {protocol.id}; types: {known}",
                           where="type") from None


def _product_key(text: str) -> str:
    """A typed product identifier as stored (its check character checked)."""
    return parse_product_id(text, require_check=True).text


def load_tree(ctx: Services, who: Principal, key: str,
              *permissions: Permission) -> Tree:
    """The product ``key`` with every product of its collection; ``who`` needs one of
    ``permissions`` (default: recording products) in the product's trial."""
    key = _product_key(key)
    wanted = permissions or (P.PRODUCT_RECORD,)
    who.require_user()
    row = ctx.store.cell_product(key)
    if row is None:
        raise NotFoundError(f"no product {key}", where="product")
    if not any(who.can(p, row.trial_id) for p in wanted):
        who.require(wanted[0], row.trial_id)
    rows = {r.key: r for r in ctx.store.cell_products(din13=row.document["din"])}
    products = {k: product_from_json(r.document) for k, r in rows.items()}
    return Tree(rows, products, _protocol(ctx, row.trial_id, row.recipient))


def _decisions(ctx: Services, keys: Sequence[str]) -> list[ReleaseDecision]:
    return [decision_from_json(e.document) for e in ctx.store.product_releases(keys)]


def _handovers(ctx: Services, key: str) -> list[Handover]:
    return [handover_from_json(e.document) for e in ctx.store.product_handovers([key])]


def _weight(ctx: Services, study_number: str | None, on: date) -> tuple[float | None, str | None]:
    """The latest recorded weight on or before ``on`` (kg, and the date it was measured)."""
    if study_number is None:
        return None, None
    journey = ctx.store.journey(study_number)
    found = [b for b in (journey.body if journey else ()) if b.get("weight_kg") is not None
             and date.fromisoformat(str(b["on"])) <= on]
    if not found:
        return None, None
    last = max(found, key=lambda b: str(b["on"]))
    return float(last["weight_kg"]), str(last["on"])


def _view(tree: Tree, key: str) -> dict[str, Any]:
    row = tree.row(key)
    return {**row.document, "holder": row.holder, "location": row.location,
            "storage": row.storage, "version": row.version, "updated_at": row.updated_at,
            "updated_by": row.updated_by}


def _code(text: str) -> ProductCode:
    """A product code as typed: description and type of donation (6 characters), or with the
    division (8)."""
    raw = "".join(text.split())
    if len(raw) == 6:
        return ProductCode(raw[:5].upper(), raw[5].upper())
    return parse_product_code(raw)


# ---------------------------------------------------------------------------- the lab


def record_collection(ctx: Services, who: Principal, *, trial_id: str, spec_id: str,
                      facility: str, code: str, collected_at: datetime, procedure: str,
                      patient: str | None = None, donor: str | None = None,
                      site: str | None = None, volume_ml: float | None = None,
                      counts: Counts = Counts(), reason: str) -> dict[str, Any]:
    """A collection under the next DIN of the facility (a site setting) for its year.

    Autologous: ``patient`` (a study number of the trial) is donor and recipient.
    Third party (RuMCeSS MSC): ``donor`` is the donor's or bank product's own identity."""
    who.require(P.PRODUCT_RECORD, trial_id)
    protocol = _protocol(ctx, trial_id, patient)
    spec = _spec(protocol, spec_id)
    if spec.stage != "collection":
        raise ProductError(f"{spec.name} is a {spec.stage}, not a collection", where="type")
    if spec.origin == "autologous":
        if not patient:
            raise ProductError("an autologous collection names the patient", where="patient")
        found = load_patient(ctx, who, patient, P.PATIENT_READ)
        if found.trial_id != trial_id:
            raise ProductError(f"{patient} is a patient of {found.trial_id}, not {trial_id}",
                               where="patient")
        giver, recipient = Donor(patient, "autologous"), patient
    else:
        if not donor or not donor.strip():
            raise ProductError("a third-party collection names its donor's identity",
                               where="donor")
        if patient:
            raise ProductError("a third-party collection is assigned to a patient only as a "
                               "dose", where="patient")
        giver, recipient = Donor(donor.strip(), "third_party"), None
    product_code = _code(code)
    at = _minute(collected_at)
    Din.make(facility, at.year, 1)  # the facility identifier is checked before any DIN is taken

    def build(sequence: int) -> Mapping[str, Any]:
        pid = ProductId(Din.make(facility, at.year, sequence), product_code)
        return product_json(collect(pid, spec_id=spec_id, trial_id=trial_id, donor=giver,
                                    recipient=recipient, collected_at=at, procedure=procedure,
                                    operator=who.username, site=site, volume_ml=volume_ml,
                                    counts=counts))

    row = ctx.store.add_collection(Din.make(facility, at.year, 1).facility, at.year % 100, build,
                                   actor=who.username, reason=reason)
    return {**row.document, "holder": row.holder, "version": row.version}


def derive_product(ctx: Services, who: Principal, parent: str, *, spec_id: str,
                   prepared_at: datetime, code: str | None = None, division: int | None = None,
                   recipient: str | None = None, volume_ml: float | None = None,
                   counts: Counts = Counts(), expires_at: datetime | None = None,
                   storage: str | None = None, reason: str) -> dict[str, Any]:
    """A product made from ``parent`` (processing, an aliquot, a thawed dose); a dose's
    expiry is the protocol's shelf life from its preparation unless given."""
    tree = load_tree(ctx, who, parent)
    key = _product_key(parent)
    spec = _spec(tree.protocol, spec_id)
    if spec.parent != tree.products[key].spec_id:
        raise ProductError(f"{spec.name} is made from {spec.parent}, not from "
                           f"{tree.products[key].spec_id}", where="type")
    if recipient is not None:
        load_patient(ctx, who, recipient, P.PATIENT_READ)
    at = _minute(prepared_at)
    product = derive(tree.products[key], spec_id, stage=spec.stage, prepared_at=at,
                     operator=who.username, code=_code(code) if code else None,
                     division=division, recipient=recipient, volume_ml=volume_ml, counts=counts,
                     expires_at=expires_at or shelf_life_expiry(spec, at), storage=storage)
    row = ctx.store.add_derived_product(key, product_json(product), actor=who.username,
                                        reason=reason)
    return {**row.document, "holder": row.holder, "version": row.version}


def record_test_result(ctx: Services, who: Principal, key: str, *, test_id: str,
                       value: float | str, unit: str | None, tested_at: datetime,
                       reason: str) -> dict[str, Any]:
    tree = load_tree(ctx, who, key)
    key = _product_key(key)
    result = TestResult(test_id, value, _minute(tested_at), who.username, unit)
    evaluate(tree.spec(key), [result])  # an unknown test is refused naming the known ones
    ctx.store.add_product_test(key, result_json(result), actor=who.username, reason=reason)
    return result_json(result)


def _results(ctx: Services, key: str) -> list[TestResult]:
    return [result_from_json(e.document) for e in ctx.store.product_tests([key])]


def _save_decision(ctx: Services, key: str, decision: ReleaseDecision,
                   signers: Sequence[tuple[int, str]], actor: str, reason: str,
                   failure: Mapping[str, Any] | None = None) -> dict[str, Any]:
    doc = decision_json(decision)
    proposals = []
    if failure is not None:
        doc["manufacturing_failure"] = dict(failure)
        # The actions take effect from the infusion the failure concerns (in its course).
        found_on = failure["event_date"] or now(ctx).date().isoformat()
        proposals = [{"rule_id": a["rule_id"], "kind": a["kind"], "proposal": a["proposal"],
                      "found_on": found_on} for a in failure["proposed_actions"]]
    entry = ctx.store.add_product_release(key, doc, signers=signers, record_digest=digest(doc),
                                          actor=actor, reason=reason, proposals=proposals)
    sigs = ctx.store.signatures("product_release", f"{key}#{entry.id}")
    return {**doc, "e_signatures": [signature_view(s) for s in sigs]}


def manufacturing_failure(ctx: Services, who: Principal, tree: Tree, key: str,
                          decision: ReleaseDecision) -> dict[str, Any] | None:
    """What a product not released means for its patient: the protocol's product-failure
    rules (:func:`trialdesk.safety.rules.check_product_failure`) for the course of the first
    infusion of the agent the product was made for that no released dose covers. The
    actions are proposals, kept with the release decision, for an investigator to confirm;
    None when the product has no patient yet (a third-party lot) or no infusion is waiting."""
    product = tree.products[key]
    if product.recipient is None or ctx.store.journey(product.recipient) is None:
        return None
    protocol = tree.protocol
    specs = {s.id: s for s in protocol.products}
    below, agents = {product.spec_id}, set()
    while below:  # the product types made from this one, down to the dose and its agent
        agents |= {a.casefold() for s in below if (a := specs[s].agent)}
        below = {s.id for s in protocol.products if s.parent in below}
    loaded = load_journey(ctx, who, product.recipient, P.PRODUCT_RECORD)
    cal = loaded.calendar_or_none(now(ctx))
    waiting = [e for e in (cal.events if cal else ()) if e.dose is not None
               and e.dose.agent.casefold() in agents and e.record is None]
    if not waiting:
        return None
    # The released doses not yet infused cover the next infusions; the failure concerns the
    # first one they do not cover.
    covered = len(released_product_for(ctx, who, product.recipient, waiting[0].id)["released"])
    if covered >= len(waiting):
        return None
    event = waiting[covered]
    why = "; ".join(f"{v.label}: {v.outcome.value}" for v in decision.failures) or "not released"
    outcomes = check_product_failure(protocol.toxicity_rules, product.spec_id, why,
                                     course=event.course_id, course_number=event.course_number)
    actions = proposed_actions(outcomes)
    return {"patient": product.recipient, "event": event.id, "event_name": event.name,
            "event_date": event.date.isoformat() if event.date else None,
            "course": event.course_id, "course_number": event.course_number, "reason": why,
            "rules": [o.rule_id for o in outcomes if o.status is Status.TRIGGERED],
            "proposed_actions": [{"rule_id": a.rule_id, "kind": a.kind.value,
                                  "shown": a.shown(), "unconfirmed": a.unconfirmed,
                                  "source": a.source, "proposal": a.model_dump(mode="json")}
                                 for a in actions]}


def release_product(ctx: Services, who: Principal, key: str, *, password: str,
                    reason: str) -> dict[str, Any]:
    """The release decision the lab's responsible person signs (the password again): released
    only when every release test is met."""
    tree = load_tree(ctx, who, key, P.PRODUCT_RELEASE)
    key = _product_key(key)
    product = tree.products[key]
    signer = ctx.accounts.confirm_password(who, password)
    weight, _ = _weight(ctx, product.recipient, now(ctx).date())
    signature = Signature(signer.username, "lab_responsible", _minute(now(ctx)),
                          SIGNATURE_MEANINGS[P.PRODUCT_RELEASE])
    decision = decide(product, tree.spec(key), _results(ctx, key), signature, weight_kg=weight)
    failure = None if decision.released else manufacturing_failure(ctx, who, tree, key, decision)
    return _save_decision(ctx, key, decision, [(signer.id, signature.meaning)], signer.username,
                          reason, failure)


def exceptional_release(ctx: Services, lab: Principal, lab_password: str,
                        investigator: Principal, investigator_password: str, key: str, *,
                        justification: str, reason: str) -> dict[str, Any]:
    """Release out of specification: the clinical justification, signed by the lab's
    responsible person and the investigator (two people, each with their password)."""
    tree = load_tree(ctx, lab, key, P.PRODUCT_RELEASE)
    key = _product_key(key)
    investigator.require(P.PRODUCT_COSIGN, tree.row(key).trial_id)
    product = tree.products[key]
    lab_user = ctx.accounts.confirm_password(lab, lab_password)
    inv_user = ctx.accounts.confirm_password(investigator, investigator_password)
    at = _minute(now(ctx))
    signatures = (Signature(lab_user.username, "lab_responsible", at,
                            SIGNATURE_MEANINGS[P.PRODUCT_RELEASE]),
                  Signature(inv_user.username, "investigator", at,
                            SIGNATURE_MEANINGS[P.PRODUCT_COSIGN]))
    weight, _ = _weight(ctx, product.recipient, at.date())
    decision = core_exceptional(product, tree.spec(key), _results(ctx, key), justification,
                                signatures, weight_kg=weight)
    return _save_decision(ctx, key, decision, [(lab_user.id, signatures[0].meaning),
                                               (inv_user.id, signatures[1].meaning)],
                          lab_user.username, reason)


def hand_over(ctx: Services, who: Principal, key: str, *, expected_version: int, to: str,
              location: str, at: datetime, temperature_c: float | None, condition: str,
              storage: str | None = None, reason: str) -> dict[str, Any]:
    """A hand-over from ``who`` (the current holder) to ``to``, checked against the product
    version the caller saw: of two hand-overs at once one wins, the other is a conflict."""
    tree = load_tree(ctx, who, key)
    key = _product_key(key)
    product = tree.products[key]
    if ctx.store.user_by_name(to) is None:
        raise NotFoundError(f"no user '{to}'", where="to")
    moves = _handovers(ctx, key)
    # Read after the hand-overs: a hand-over committed meanwhile shows as a newer version here
    # (or, committed later, fails the store's compare-and-swap) — never as a wrong holder.
    row = ctx.store.cell_product(key) or tree.row(key)
    if row.version != expected_version:
        raise ConflictError(f"product {key} was changed by {row.updated_by} at {row.updated_at} "
                            f"(it is now version {row.version}; your copy is version "
                            f"{expected_version}); reload it and record the hand-over again",
                            where="version")
    handover = Handover(who.username, to, location, _minute(at), temperature_c, condition,
                        storage)
    accept(custody(product.operator, product.prepared_at, moves), handover)
    saved = ctx.store.add_product_handover(key, handover_json(handover),
                                           expected_version=expected_version,
                                           actor=who.username, reason=reason)
    return {"product": key, "holder": saved.holder, "location": saved.location,
            "storage": saved.storage, "version": saved.version, "handover": handover_json(handover)}


# ---------------------------------------------------------------------------- the bedside


def _event(ctx: Services, who: Principal, study_number: str, event_id: str,
           permission: Permission) -> tuple[Any, Event]:
    loaded = load_journey(ctx, who, study_number, permission)
    cal = loaded.calendar_or_none(now(ctx))
    if cal is None:
        raise ProductError("the calendar has no start date or no arm yet", where="event")
    try:
        return loaded, cal.event(event_id)
    except TrialdeskError as exc:
        raise plain(exc, "event") from None


def _second_verifier(ctx: Services, who: Principal, username: str, password: str) -> str:
    """The second person at the bedside confirms with their own password; the same person
    twice is left to the check, which refuses a one-person verification."""
    name = username.strip()
    if not name or name.casefold() == who.username.casefold():
        return name
    try:
        second = principal_for(ctx.store, name)
    except AccessError:
        raise AccessError(f"no user '{name}'", where="second verifier", status=401) from None
    ctx.accounts.confirm_password(second, password)
    return second.username


def verify_at_bedside(ctx: Services, who: Principal, study_number: str, *, event_id: str,
                      entered: str, wristband: str, second_verifier: str,
                      second_password: str, scanned: bool = False,
                      reason: str = "bedside verification") -> dict[str, Any]:
    """The two-person bedside check of a product for one calendar event; every result —
    accepted or refused, with its reasons — is stored and audited."""
    loaded, event = _event(ctx, who, study_number, event_id, P.ADMINISTRATION_RECORD)
    second = _second_verifier(ctx, who, second_verifier, second_password)
    moment = _minute(now(ctx))
    try:
        din13 = parse_product_id(entered, require_check=not scanned).din.din13
    except IdentifierError:
        din13 = None
    rows = {r.key: r for r in ctx.store.cell_products(din13=din13)} if din13 else {}
    products = {k: product_from_json(r.document) for k, r in rows.items()}
    weight, weighed_on = _weight(ctx, study_number, moment.date())
    result = verify(loaded.protocol, products, _decisions(ctx, list(products)), entered=entered,
                    scanned=scanned, wristband=wristband, patient_id=study_number, event=event,
                    verifiers=(who.username, second), now=moment, weight_kg=weight)
    doc = {**result.to_json(), "entered": entered, "scanned": scanned,
           "wristband": wristband, "weighed_on": weighed_on}
    entry = ctx.store.add_product_verification(
        study_number, result.product if result.product in rows else None, doc,
        actor=who.username, reason=reason)
    return {**doc, "id": entry.id, "recorded_at": entry.recorded_at}


def record_infusion(ctx: Services, who: Principal, study_number: str, *, verification: int,
                    start: datetime, end: datetime | None, volume_ml: float | None,
                    reactions: Sequence[int] = (), observations: str = "",
                    reason: str) -> dict[str, Any]:
    """The infusion after an accepted bedside verification; the calendar event is recorded
    as given in the same transaction. ``reactions`` are adverse events already recorded
    (graded with CTCAE through the safety path), linked by id."""
    load_journey(ctx, who, study_number, P.ADMINISTRATION_RECORD)  # permission first
    found = [v for v in ctx.store.product_verifications(study_number=study_number)
             if v.id == verification]
    if not found:
        raise NotFoundError(f"no bedside verification {verification} of {study_number}",
                            where="verification")
    check = found[0]
    if not check.document["accepted"] or check.product is None:
        reasons = "; ".join(r["reason"] for r in check.document["refusals"])
        raise ProductError(f"verification {verification} was refused: {reasons}; nothing may "
                           "be infused", where="verification")
    key = check.product
    loaded, event = _event(ctx, who, study_number, check.document["event"],
                           P.ADMINISTRATION_RECORD)
    user = who.require_user()
    product = product_from_json(ctx.store.cell_product(key).document)  # type: ignore[union-attr]
    begin = _minute(start)
    if begin < datetime.fromisoformat(check.document["checked_at"]):
        raise ProductError("the infusion starts before the bedside verification", where="start")
    if product.expires_at is not None and begin >= product.expires_at:
        raise ProductError(f"{key} expired {product.expires_at:%Y-%m-%d %H:%M}", where="start")
    if end is not None and end < begin:
        raise ProductError("the infusion ends before it starts", where="end")
    if volume_ml is not None and volume_ml <= 0:
        raise ProductError("must be above 0", where="volume")
    known = {ae.id for ae in ctx.store.adverse_events(study_number)}
    unknown = [r for r in reactions if r not in known]
    if unknown:
        raise NotFoundError(f"no adverse event {', '.join(map(str, unknown))} of {study_number}; "
                            "record the reaction as an adverse event first", where="reactions")
    # The amount given is the verified dose: viable cells per kg of today's weight, or,
    # when the calendar's dose is in cells (a per-kg dose worked out for the weight), the
    # viable cells infused (per kg × the weight the check used).
    unit = event.dose.unit if event.dose else None
    amount = check.document.get("cells_per_kg")
    weight = check.document.get("weight_kg")
    if amount is not None and weight and unit is not None and "/kg" not in unit:
        amount = float(amount) * float(weight)
    try:
        record = EventRecord(event_id=event.id, status=RecordStatus.GIVEN, at=begin,
                             by=user.full_name, amount=amount, unit=unit,
                             reason=None, recorded_at=now(ctx))
        loaded.journey.with_record(loaded.protocol, record)
    except TrialdeskError as exc:
        raise renamed(exc, {"at": "start", "event_id": "event"}) from None
    deadline = check.document.get("deadline")
    doc = {"product": key, "patient": study_number, "event": event.id,
           "verification": verification, "start": begin.isoformat(timespec="minutes"),
           "end": _minute(end).isoformat(timespec="minutes") if end else None,
           "volume_ml": volume_ml, "reactions": list(reactions), "observations": observations,
           "cells_per_kg": check.document.get("cells_per_kg"), "deadline": deadline,
           "deadline_met": None if deadline is None
           else begin <= datetime.fromisoformat(deadline)}
    ctx.store.add_product_infusion(key, study_number, verification, doc,
                                   event_record=record.model_dump(mode="json"),
                                   expected_version=loaded.version, actor=user.username,
                                   reason=reason)
    return doc


# ---------------------------------------------------------------------------- views


def _released(tree: Tree, decisions: Sequence[ReleaseDecision], key: str) -> tuple[bool, str]:
    specs = {s.id: s for s in tree.protocol.products}
    return release_status(lineage(tree.products, key), specs, decisions)


def released_product_for(ctx: Services, who: Principal, study_number: str,
                         event_id: str) -> dict[str, Any]:
    """The doses assigned to the patient for the event's agent, released and not infused:
    what the calendar shows beside a cell-product event ("no released product" if none)."""
    loaded, event = _event(ctx, who, study_number, event_id, P.CLINICAL_READ)
    return _released_for(ctx, loaded, event, study_number)


def _released_for(ctx: Services, loaded: Any, event: Event, study_number: str,
                  read: dict[Any, Any] | None = None) -> dict[str, Any]:
    """``read``: what was already read for another event of the same page (the patient's
    products, their infusions and releases, the product trees), read once per page."""
    read = {} if read is None else read

    def once(key: Any, load: Callable[[], Any]) -> Any:
        if key not in read:
            read[key] = load()
        return read[key]

    agent = event.dose.agent.casefold() if event.dose else None
    specs = [s.id for s in loaded.protocol.products if s.agent and s.agent.casefold() == agent]
    out: dict[str, Any] = {"event": event.id, "cell_product": bool(specs), "released": [],
                           "status": None}
    if not specs:
        return out
    own = once("own", lambda: ctx.store.cell_products(recipient=study_number))
    doses = [r for r in own if r.spec_id in specs]
    infused = once("infused", lambda: {e.product for e in ctx.store.product_infusions(
        [r.key for r in own])})
    for r in doses:
        if r.key in infused:
            continue
        din = r.document["din"]
        tree_rows = once(("tree", din), lambda: {
            x.key: x for x in ctx.store.cell_products(din13=din)})  # noqa: B023 (called now)
        tree = Tree(tree_rows, {k: product_from_json(x.document) for k, x in tree_rows.items()},
                    loaded.protocol)
        decisions = once(("decisions", din),
                         lambda: _decisions(ctx, list(tree_rows)))  # noqa: B023 (called now)
        ok, why = _released(tree, decisions, r.key)
        if ok:
            out["released"].append({"product": r.key, "release": why,
                                    "expires_at": r.document.get("expires_at")})
    out["status"] = "released product available" if out["released"] else "no released product"
    releases = once("releases", lambda: ctx.store.product_releases([r.key for r in own]))
    out["manufacturing_failure"] = [
        {**e.document["manufacturing_failure"], "product": e.product, "release_id": e.id}
        for e in releases
        if (e.document.get("manufacturing_failure") or {}).get("event") == event.id]
    if event.deadline is not None:
        left = event.deadline - now(ctx)
        out["deadline"] = event.deadline.isoformat(timespec="minutes")
        out["minutes_left"] = left // timedelta(minutes=1)
    return out


def calendar_page(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    """The calendar page (:func:`trialdesk.services.journeys.calendar_page`) with each cell-
    product event not yet given marked "released product available" or "no released
    product" (and, for a timed infusion, the minutes left to its deadline)."""
    page = journey_calendar_page(ctx, who, study_number)
    pending = [e for e in (page.get("calendar") or {}).get("events", [])
               if e.get("cell_product") and e.get("status") not in (
                   "given", "partly_given", "cancelled", "discontinued")]
    if not pending:
        return page
    # The manufacturing failure's actions as decided so far (release id → actions).
    actions: dict[int | None, list[Any]] = {}
    for a in ctx.catalogue.kept(("product actions", study_number),
                                lambda: ctx.store.product_actions(study_number)):
        actions.setdefault(a.release_id, []).append(a)
    # the journey and its calendar read once for all the page's cell-product events
    loaded = load_journey(ctx, who, study_number, P.CLINICAL_READ)
    cal = loaded.calendar_or_none(now(ctx))
    read: dict[Any, Any] = {}
    for e in pending:
        if cal is None:
            break
        found = _released_for(ctx, loaded, cal.event(e["id"]), study_number, read)
        e["product_status"] = found["status"]
        mine = [a for f in found.get("manufacturing_failure", [])
                for a in actions.get(f["release_id"], ())]
        e["product_failure"] = [
            ProposedAction.model_validate(a.proposal).shown() for a in mine
            if a.status == "proposed"]
        e["product_actions"] = [
            {"id": a.id, "status": a.status, "rule_id": a.rule_id,
             "shown": ProposedAction.model_validate(a.proposal).shown(),
             "link": f"/patients/{study_number}/adverse-events#action-{a.id}"}
            for a in mine]
        if "minutes_left" in found:
            e["product_minutes_left"] = found["minutes_left"]
    return page


def product_history(ctx: Services, who: Principal, key: str) -> dict[str, Any]:
    """The product's whole history (``trialdesk.product-history/1``) with its infusion."""
    tree = load_tree(ctx, who, key, P.PRODUCT_RECORD, P.CLINICAL_READ)
    key = _product_key(key)
    keys = list(tree.products)
    moves: dict[str, list[Handover]] = {}
    for e in ctx.store.product_handovers(keys):
        moves.setdefault(str(e.product), []).append(handover_from_json(e.document))
    doc = history(tree.products, key, decisions=_decisions(ctx, keys), handovers=moves)
    doc["bedside"] = [{**v.document, "id": v.id, "recorded_by": v.recorded_by}
                      for v in ctx.store.product_verifications(keys=[key])]
    doc["infusion"] = next((e.document for e in ctx.store.product_infusions([key])), None)
    doc["tests"] = [e.document for e in ctx.store.product_tests([p["id"] for p in doc["line"]])]
    doc["current"] = _view(tree, key)
    doc["manufacturing_failures"] = [
        {**e.document["manufacturing_failure"], "product": e.product}
        for e in ctx.store.product_releases(keys) if e.document.get("manufacturing_failure")]
    return doc


def product_history_pdf(ctx: Services, who: Principal, key: str) -> bytes:
    """The history as a PDF report (reportlab): the line, releases, custody, bedside checks."""
    from io import BytesIO
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    doc = product_history(ctx, who, key)
    styles = getSampleStyleSheet()
    story: list[Any] = [Paragraph(escape(f"Cell product {doc['product']}"), styles["Title"]),
                        Paragraph(escape(f"Donor {doc['donor']['id']} ({doc['donor']['kind']}), "
                                         f"collection {doc['collection']}"), styles["Normal"])]

    def para(text: str, style: str = "Normal") -> None:
        story.append(Paragraph(escape(text), styles[style]))

    para("Line from the collection", "Heading2")
    for p in doc["line"]:
        para(f"{p['id']} — {p['type']} ({p['stage']}), prepared {p['prepared_at']} by "
             f"{p['operator']}; expires {p['expires_at'] or 'not recorded'}")
        for h in p["custody"]["handovers"]:
            para(f"  hand-over {h['at']}: {h['from']} → {h['to']} at {h['location']}, "
                 f"{h['temperature_c'] if h['temperature_c'] is not None else 'no'} °C, "
                 f"{h['condition']}")
    para("Release decisions", "Heading2")
    for d in doc["releases"]:
        kind = "exceptional release" if d["exceptional"] else (
            "released" if d["released"] else "not released")
        para(f"{d['product']}: {kind} {d['decided_at']} — signed by "
             + ", ".join(f"{s['signer']} ({s['role']})" for s in d["signatures"]))
        for t in d["tests"]:
            para(f"  {t['label']}: {t['outcome']} ({t['result'] or 'no result'}; limit "
                 f"{t['limit'] or 'not set'}{' [unconfirmed]' if t['unconfirmed'] else ''})")
    para("Bedside verifications", "Heading2")
    for v in doc["bedside"]:
        verdict = "accepted" if v["accepted"] else "refused: " + "; ".join(
            r["reason"] for r in v["refusals"])
        para(f"{v['checked_at']} {v['event']} by {', '.join(v['verifiers'])}: {verdict}")
    if doc["infusion"]:
        i = doc["infusion"]
        para("Infusion", "Heading2")
        para(f"{i['event']}: {i['start']} to {i['end'] or '—'}, {i['volume_ml'] or '—'} mL"
             + ("" if i["deadline_met"] is None else
                f"; deadline {'met' if i['deadline_met'] else 'missed'}"))
    story.append(Spacer(1, 12))
    out = BytesIO()
    SimpleDocTemplate(out, pagesize=A4, title=f"Cell product {doc['product']}").build(story)
    return out.getvalue()


def product_label(ctx: Services, who: Principal, key: str) -> bytes:
    """The product's label (PDF, Code 128 barcode): only the study number is printed."""
    tree = load_tree(ctx, who, key)
    key = _product_key(key)
    p = tree.products[key]
    spec = tree.spec(key)
    collected = tree.products[lineage(tree.products, key)[0].key].prepared_at.date()
    label = render(LabelFields(p.id, spec.name, collected, p.expires_at, p.autologous,
                               trial_id=p.trial_id,
                               patient=PatientPolicy().shown(
                                   {"patient_id": p.recipient} if p.recipient else {})))
    return label.pdf


def lab_view(ctx: Services, who: Principal, *, hours_ahead: int = 24) -> dict[str, Any]:
    """The cell lab's list: products in process (not yet infused), release tests pending
    (a product type with release tests and no decision), and products expiring within
    ``hours_ahead`` hours (a view setting, not a clinical limit)."""
    who.require_user()
    if not who.can_anywhere(P.PRODUCT_RECORD):
        raise AccessError("the cell lab's list is for the cell-therapy lab (pharmacist role)")
    trials = sorted({t for t, _ in who.scopes(P.PRODUCT_RECORD)})
    rows = ctx.store.cell_products(trial_ids=trials)
    keys = [r.key for r in rows]
    infused = {e.product for e in ctx.store.product_infusions(keys)}
    decided = {e.product for e in ctx.store.product_releases(keys)}
    moment = now(ctx)
    protocols: dict[str, Protocol] = {}
    in_process, pending, expiring = [], [], []
    for r in rows:
        if r.key in infused:
            continue
        protocol = protocols.setdefault(r.trial_id, _protocol(ctx, r.trial_id, None))
        spec = next((s for s in protocol.products if s.id == r.spec_id), None)
        item = {"product": r.key, "type": spec.name if spec else r.spec_id, "stage": r.stage,
                "trial": r.trial_id, "recipient": r.recipient, "holder": r.holder,
                "location": r.location, "storage": r.storage,
                "expires_at": r.document.get("expires_at"), "version": r.version}
        in_process.append(item)
        if spec is not None and spec.release_tests and r.key not in decided:
            pending.append(item)
        expires = r.document.get("expires_at")
        if expires and moment <= datetime.fromisoformat(expires) <= moment + timedelta(
                hours=hours_ahead):
            expiring.append(item)
    return {"as_of": moment.isoformat(sep=" ", timespec="minutes"), "trials": trials,
            "in_process": in_process, "tests_pending": pending, "expiring": expiring,
            "hours_ahead": hours_ahead}


# ---------------------------------------------------------------------------- the lab's forms

# The collection procedures the forms offer (FACT-JACIE: apheresis, marrow; the NB-NK-2026
# day −1 collection is peripheral blood, seed 000); "other" is described in words.
PROCEDURES = ("apheresis", "bone marrow", "peripheral blood", "other")


def _enrolled(ctx: Services, who: Principal, trial_id: str) -> list[str]:
    """The study numbers of the trial's enrolled patients the caller may read."""
    scopes = [s for s in who.scopes(P.PATIENT_READ) if s[0] == trial_id]
    page = ctx.store.patients(scopes, trial_id=trial_id, limit=10_000)
    return [p.study_number for p in page.items if ctx.store.enrolment(p.study_number)]


def collection_form(ctx: Services, who: Principal) -> dict[str, Any]:
    """What the collection form offers: per trial the caller records products in, its
    collection types and its enrolled patients (the donors of an autologous collection)."""
    who.require_user()
    if not who.can_anywhere(P.PRODUCT_RECORD):
        raise AccessError("recording a collection is for the cell-therapy lab (pharmacist role)")
    trials = []
    for trial_id in sorted({t for t, _ in who.scopes(P.PRODUCT_RECORD)}):
        protocol = _protocol(ctx, trial_id, None)
        types = [{"id": s.id, "name": s.name, "origin": s.origin}
                 for s in protocol.products if s.stage == "collection"]
        if types:
            trials.append({"id": trial_id, "types": types,
                           "patients": _enrolled(ctx, who, trial_id)})
    return {"trials": trials, "procedures": list(PROCEDURES), "operator": who.username}


def test_unit(spec: ProductSpec, test_id: str) -> str | None:
    """The unit a number is recorded in for the test (a per-kg limit: the product's total,
    divided by the recipient's weight at release); None for a qualitative test."""
    test = next((t for t in spec.release_tests if t.id == test_id), None)
    if test is None:
        known = ", ".join(t.label for t in spec.release_tests) or "none"
        raise ProductError(f"'{test_id}' is not a release test of {spec.name}; tests: {known}",
                           where="test")
    unit = test.limit.unit
    if test.limit.expected is not None or unit is None:
        return None
    return unit.removesuffix("/kg") if test.per_kg else unit


def product_forms(ctx: Services, who: Principal, key: str) -> dict[str, Any]:
    """What the product's lab forms offer: the product types made from it, its release tests
    (label, unit, limit, latest result), the people it can be handed to, the patients a
    third-party product can be assigned to, and whether it may be released by the caller."""
    tree = load_tree(ctx, who, key)
    key = _product_key(key)
    product, spec, row = tree.products[key], tree.spec(key), tree.row(key)
    latest = {r.test_id: r for r in sorted(_results(ctx, key), key=lambda r: r.tested_at)}
    tests = []
    for t in spec.release_tests:
        r = latest.get(t.id)
        tests.append({"id": t.id, "label": t.label, "unit": test_unit(spec, t.id),
                      "expected": t.limit.expected, "limit": t.limit.shown(),
                      "unconfirmed": t.limit.unconfirmed, "per_kg": t.per_kg,
                      "result": None if r is None else
                      f"{r.value:g}" if isinstance(r.value, float) else str(r.value)})
    derivable = [{"id": s.id, "name": s.name, "stage": s.stage}
                 for s in tree.protocol.products if s.parent == spec.id]
    third_party = not product.autologous and product.recipient is None
    decisions = [d for d in _decisions(ctx, [key])]
    return {"product": key, "compact": key.replace(" ", ""), "type": spec.name,
            "stage": product.stage, "trial": product.trial_id, "recipient": product.recipient,
            "holder": row.holder, "location": row.location, "version": row.version,
            "derivable": derivable, "tests": tests,
            "recipients": _enrolled(ctx, who, product.trial_id) if third_party else [],
            "people": [u.username for u in ctx.store.users()
                       if u.active and u.username != row.holder and any(
                           m.trial_id == product.trial_id for m in ctx.store.memberships(u.id))],
            "can_release": bool(spec.release_tests) and who.can(P.PRODUCT_RELEASE,
                                                                product.trial_id),
            "decided": [{"released": d.released, "exceptional": d.exceptional,
                         "decided_at": d.decided_at.isoformat(sep=" ", timespec="minutes")}
                        for d in decisions]}


def record_test_entry(ctx: Services, who: Principal, key: str, *, test_id: str, text: str,
                      tested_at: datetime, reason: str) -> dict[str, Any]:
    """A release-test result as entered on the form: a number in the test's unit (the unit
    is the protocol's, not typed), or the word of a qualitative test (no growth)."""
    tree = load_tree(ctx, who, key)
    unit = test_unit(tree.spec(_product_key(key)), test_id)
    value: float | str = text.strip()
    if not value:
        raise ProductError("enter the result", where="value")
    if unit is not None:
        try:
            value = float(str(value).replace(",", "."))
        except ValueError:
            raise ProductError(f"enter a number in {unit}", where="value") from None
        if not 0 <= value < float("inf"):
            raise ProductError(f"enter a number of 0 or more in {unit}", where="value")
    return record_test_result(ctx, who, key, test_id=test_id, value=value, unit=unit,
                              tested_at=tested_at, reason=reason)


def exceptional_release_named(ctx: Services, lab: Principal, lab_password: str,
                              investigator: str, investigator_password: str, key: str, *,
                              justification: str, reason: str) -> dict[str, Any]:
    """:func:`exceptional_release` with the co-signing investigator named by user name (the
    web forms and the API): an unknown name is a wrong log-in (401), a user who may not
    co-sign in the product's trial is refused naming the field."""
    tree = load_tree(ctx, lab, key, P.PRODUCT_RELEASE)
    trial = tree.row(_product_key(key)).trial_id
    try:
        cosigner = principal_for(ctx.store, investigator)
    except AccessError:
        raise AccessError(f"no user '{investigator}'", where="investigator",
                          status=401) from None
    if not cosigner.can(P.PRODUCT_COSIGN, trial):
        raise ProductError(f"{investigator} is not an investigator of {trial}",
                           where="investigator")
    return exceptional_release(ctx, lab, lab_password, cosigner, investigator_password, key,
                               justification=justification, reason=reason)


def procedure_named(procedure: str, other: str | None) -> str:
    """The collection procedure chosen from :data:`PROCEDURES`; "other" is described."""
    if procedure != "other":
        return procedure
    if not other or not other.strip():
        raise ProductError("describe the procedure", where="procedure_other")
    return other.strip()

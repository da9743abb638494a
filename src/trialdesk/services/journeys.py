"""The patient journey on the web: consent, enrolment (arm by rule, randomisation from the
sealed list, or an investigator's override), the calendar with its doses, what happened
(administrations, course delays, body measurements) and dose sign-off.

Every operation rebuilds the core values from the store (:func:`load_journey`), lets the
core check the change against the patient's calendar
(:class:`~trialdesk.enrolment.journey.Journey`), and asks the store to save it under the
journey version it was checked against, so a change based on a calendar someone else has
changed meanwhile is refused. Field names in errors are the names of the input fields.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from trialdesk.enrolment.allocation import Allocation, verify_allocations
from trialdesk.enrolment.consent import ConsentRecord
from trialdesk.enrolment.consent import record_consent as core_consent
from trialdesk.enrolment.enrol import (
    Enrolment,
    Override,
    allocate,
    randomisation_of,
    scheme_of,
)
from trialdesk.enrolment.enrol import enrol as core_enrol
from trialdesk.enrolment.journey import Journey, journey_calendar, journey_plan
from trialdesk.enrolment.randomisation import AllocationList, generate_list
from trialdesk.errors import (
    AccessError,
    ConflictError,
    EnrolmentError,
    FactError,
    NotFoundError,
    ScheduleError,
    TrialdeskError,
)
from trialdesk.facts.patient import Consent, PatientRecord, canonical_value
from trialdesk.protocol.model import Protocol, TimedStep
from trialdesk.schedule.actions import AppliedAction
from trialdesk.schedule.dose import BodyMeasurement
from trialdesk.schedule.export import to_ics
from trialdesk.schedule.plan import Calendar, Event, EventKind, optional_agents
from trialdesk.schedule.records import CourseDelay, EventRecord, RecordStatus
from trialdesk.schedule.status import allowed_statuses
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.patients import (
    checked_record,
    enrolment_of,
    load_patient,
    screen_now,
    screening_out_of_date,
    signature_view,
)
from trialdesk.services.roles import SIGNATURE_MEANINGS, Permission
from trialdesk.store.audit import digest
from trialdesk.store.records import EnrolmentRow, JourneyRow, PatientRecordRow

P = Permission
_PREFIXES = ("record.", "delay.", "consent.", "enrolment.", "body.", "adverse_event.",
             "allocation.")


def plain(exc: TrialdeskError, default: str | None = None) -> TrialdeskError:
    """The same error with ``where`` as the input field's name (``record.amount`` → ``amount``)."""
    where = exc.where or default
    if where:
        for prefix in _PREFIXES:
            if where.startswith(prefix):
                where = where[len(prefix):]
    if isinstance(exc, AccessError) or where == exc.where:
        return exc
    return type(exc)(exc.reason, where=where)


def renamed(exc: TrialdeskError, names: Mapping[str, str]) -> TrialdeskError:
    """The error with its field renamed to the input's name (the core's ``reason`` is the
    form's ``why``)."""
    exc = plain(exc)
    where = exc.where
    if where is not None and where in names and not isinstance(exc, AccessError):
        return type(exc)(exc.reason, where=names[where])
    return exc


def now(ctx: Services) -> datetime:
    """The store's clock as naive UTC, to the second (clinical times are naive)."""
    return ctx.store.now().astimezone(UTC).replace(tzinfo=None, microsecond=0)


def anchor_names(protocol: Protocol) -> list[str]:
    return sorted({s.anchor for a in protocol.arms for s in a.plan if isinstance(s, TimedStep)})


# ---------------------------------------------------------------------------- loading


def core_journey(row: JourneyRow) -> Journey:
    """The core journey rebuilt from what the store holds."""
    enrolment = Enrolment.model_validate(row.document)
    enrolment = enrolment.model_copy(update={"anchors": {
        k: datetime.fromisoformat(v) for k, v in row.anchors.items()}})
    return Journey(
        trial_id=row.trial_id, patient_id=row.study_number,
        consents=tuple(ConsentRecord.model_validate(c) for c in row.consents),
        enrolment=enrolment,
        allocation=Allocation.model_validate(row.allocation) if row.allocation else None,
        start=date.fromisoformat(row.start) if row.start else None,
        body=tuple(BodyMeasurement.model_validate(b) for b in row.body),
        records=tuple(EventRecord.model_validate(r) for r in row.records),
        delays=tuple(CourseDelay.model_validate(d) for d in row.delays),
        actions=tuple(AppliedAction.model_validate(a) for a in row.actions))


#: the key of a journey's plan among its calendars (see :attr:`Loaded.calendars`)
PLAN = "plan"


@dataclass(frozen=True)
class Loaded:
    """An enrolled patient with everything the core needs."""

    patient: PatientRecordRow
    row: JourneyRow
    enrolment: EnrolmentRow
    journey: Journey
    protocol: Protocol
    #: calendars laid out for this journey, by their moment, and its plan (key ``PLAN``),
    #: kept with the journey until the next write (see :func:`load_journey`; a calendar is
    #: immutable)
    calendars: dict[datetime | str | None, Calendar] = field(default_factory=dict,
                                                             compare=False, repr=False)

    @property
    def version(self) -> int:
        return self.row.version

    def calendar(self, as_of: datetime | None = None) -> Calendar:
        """The calendar (a ScheduleError names what is missing: the start date, the arm)."""
        found = self.calendars.get(as_of)
        if found is None:
            # the plan is the same at every moment: laid out once, each moment's statuses
            # on it (pages ask for the calendar as of their second)
            planned = self.calendars.get(PLAN)
            if planned is None:
                planned = journey_plan(self.protocol, self.journey)
            found = journey_calendar(self.protocol, self.journey, as_of, planned=planned)
            if len(self.calendars) >= 8:
                self.calendars.clear()
            self.calendars[PLAN] = planned
            self.calendars[as_of] = found
        return found

    def calendar_or_none(self, as_of: datetime | None = None) -> Calendar | None:
        if self.journey.start is None or self.journey.arm is None:
            return None
        return self.calendar(as_of)


def enrolled_journey(ctx: Services, study_number: str
                     ) -> tuple[JourneyRow, EnrolmentRow, Journey, dict[Any, Calendar]] | None:
    """The patient's journey, enrolment, rebuilt core journey and the calendars laid out
    from it so far (None: not enrolled), kept until the next write."""

    def load() -> tuple[JourneyRow, EnrolmentRow, Journey, dict[Any, Calendar]] | None:
        enrolment = enrolment_of(ctx, study_number)
        journey = ctx.store.journey(study_number) if enrolment is not None else None
        if journey is None or enrolment is None:
            return None
        return journey, enrolment, core_journey(journey), {}

    return ctx.catalogue.kept(("journey", study_number), load)


def read_journeys(ctx: Services, study_numbers: Sequence[str]) -> None:
    """The journeys of these patients read together (not one by one as their pages read
    them), kept as :func:`enrolled_journey` keeps them."""
    wanted = [n for n in study_numbers if not ctx.catalogue.has(("journey", n))
              and enrolment_of(ctx, n) is not None]
    for n, journey in ctx.store.journeys(wanted).items():
        enrolment = enrolment_of(ctx, n)
        ctx.catalogue.remember(("journey", n), None if journey is None or enrolment is None
                               else (journey, enrolment, core_journey(journey), {}))


def load_journey(ctx: Services, who: Principal, study_number: str,
                 permission: Permission = P.CLINICAL_READ) -> Loaded:
    row = load_patient(ctx, who, study_number, permission)
    # The journey, its enrolment and the rebuilt core journey (and the calendars laid out
    # from it) are kept until the next write to the database, in any process.
    kept = enrolled_journey(ctx, study_number)
    if kept is None:
        raise NotFoundError(f"patient {study_number} is not enrolled with a calendar; "
                            "record the consent and enrol first")
    journey, enrolment, core, calendars = kept
    _, compiled = ctx.catalogue.trial(journey.trial_id, enrolment.protocol_version_number)
    return Loaded(row, journey, enrolment, core, compiled.protocol, calendars)


# ---------------------------------------------------------------------------- consent


def record_consent(ctx: Services, who: Principal, study_number: str, *, version: str,
                   signed_on: date, signed_by: str, assent: bool | None,
                   reason: str) -> dict[str, Any]:
    """A signed consent, checked against the protocol's consent rules; the patient's record
    gets the consent too (so screening sees it), in the same transaction."""
    row = load_patient(ctx, who, study_number, P.PATIENT_WRITE)
    user = who.require_user()
    _, compiled = ctx.catalogue.trial(row.trial_id)
    try:
        consent = core_consent(
            compiled.protocol.consent, trial_id=row.trial_id, patient_id=study_number,
            birth_date=date.fromisoformat(row.record["birth_date"]), version=version,
            signed_on=signed_on, signed_by=signed_by, assent=assent,
            recorded_by=user.full_name, recorded_at=now(ctx))
    except TrialdeskError as exc:
        raise plain(exc) from None
    fact = Consent(trial_id=row.trial_id, signed=True, date=signed_on, version=consent.version,
                   signed_by=consent.signed_by.value, assent=assent).model_dump(mode="json")
    record = dict(row.record)
    record["consents"] = [c for c in record.get("consents") or []
                          if c.get("trial_id") != row.trial_id] + [fact]
    checked_record(PatientRecord.model_validate(record), today=ctx.store.now().date(),
                   source="record")
    saved = ctx.store.add_consent(study_number, consent.model_dump(mode="json"),
                                  patient_record=record, expected_patient_version=row.version,
                                  actor=user.username, reason=reason)
    return consent_view(saved.document, saved.recorded_at)


def consent_view(doc: Mapping[str, Any], recorded_at: str | None = None) -> dict[str, Any]:
    return {"version": doc["version"], "signed_on": doc["signed_on"],
            "signed_by": str(doc["signed_by"]).replace("_", " "), "assent": doc.get("assent"),
            "age_years": doc.get("age_years"), "recorded_by": doc.get("recorded_by"),
            "recorded_at": recorded_at or doc.get("recorded_at"), "notes": doc.get("notes") or []}


# ---------------------------------------------------------------------------- enrolment


def _anchors_from(record: PatientRecord, names: Sequence[str]) -> dict[str, datetime]:
    """Anchor times the protocol counts from, as the patient's record gives them."""
    out: dict[str, datetime] = {}
    for entry in sorted(record.disease_status, key=lambda s: s.date):
        for name in names:
            value = getattr(entry, name, None)
            if isinstance(value, datetime):
                out[name] = value.replace(tzinfo=None)
    return out


def _body_from(record: PatientRecord) -> list[dict[str, Any]]:
    """Weights and heights of the patient's record, one measurement per day."""
    found: dict[date, dict[str, float]] = {}
    for i, obs in enumerate(record.observations):
        if obs.name in ("weight", "height"):
            value = canonical_value(obs.name, obs.value, obs.unit,
                                    where=f"record.observations[{i}].unit")
            key = "weight_kg" if obs.name == "weight" else "height_cm"
            found.setdefault(obs.date, {})[key] = value
    return [BodyMeasurement(on=day, source="patient record", **values).model_dump(mode="json")
            for day, values in sorted(found.items())]


def enrol_patient(ctx: Services, who: Principal, study_number: str, *, screening_id: int,
                  password: str, reason: str, start: date | None = None,
                  override_reason: str | None = None, override_arm: str | None = None,
                  variants: Mapping[str, str] | None = None, optional: Sequence[str] = (),
                  anchors: Mapping[str, datetime] | None = None,
                  factors: Mapping[str, str] | None = None) -> EnrolmentRow:
    """Confirm eligibility with an e-signature (the password again) and enrol.

    The screening the investigator reviewed is reproduced from what it used (protocol
    version, record version, moment) and must give the same result; it is frozen into the
    core enrolment. The arm is the protocol rule's; a randomised trial takes the next
    entry of its sealed list in the same transaction; an ineligible or undetermined
    patient needs ``override_reason`` (the signer is the overriding investigator).
    """
    row = load_patient(ctx, who, study_number, P.ELIGIBILITY_CONFIRM)
    signer = ctx.accounts.confirm_password(who, password)
    sc = ctx.store.screening(screening_id)
    if sc.study_number != row.study_number:
        raise NotFoundError(f"no screening {screening_id} of patient {study_number}",
                            where="screening_id")
    consents = [c for c in ctx.store.consents(study_number) if c.trial_id == row.trial_id]
    if not consents:
        raise EnrolmentError("no consent recorded for this trial; record the signed consent "
                             "first", where="consent")
    consent = consents[-1]
    _, compiled = ctx.catalogue.trial(sc.trial_id, sc.protocol_version_number)
    protocol = compiled.protocol
    if (stale := screening_out_of_date(row, sc)) is not None:
        raise ConflictError(f"{stale} before enrolling (enrolment confirms a screening of "
                            "the current record)", where="screening_id")
    record = PatientRecord.model_validate(row.record)
    result = screen_now(compiled, record, datetime.fromisoformat(sc.as_of))
    if digest(result.to_json()) != digest(sc.result):
        raise ConflictError(f"screening {screening_id} cannot be reproduced from the record and "
                            "protocol it used; screen again", where="screening_id")
    override = None
    if override_reason:
        override = Override(investigator=signer.full_name, reason=override_reason,
                            arm=override_arm or None)
    elif override_arm:
        raise EnrolmentError("an arm is chosen only with an override and its reason",
                             where="override_arm")
    names = anchor_names(protocol)
    unknown = [n for n in (anchors or {}) if n not in names]
    if unknown:
        raise EnrolmentError(f"the protocol times nothing from '{unknown[0]}'; anchors: "
                             f"{', '.join(names) or 'none'}", where=f"anchors.{unknown[0]}")
    moments = _anchors_from(record, names) | dict(anchors or {})
    at = now(ctx)
    try:
        enrolment = core_enrol(
            protocol, result, ConsentRecord.model_validate(consent.document), enrolled_at=at,
            enrolled_by=signer.full_name, override=override, variants=variants,
            optional=optional, anchors=moments)
        journey = Journey(trial_id=protocol.id, patient_id=study_number,
                          consents=(ConsentRecord.model_validate(consent.document),),
                          enrolment=enrolment)
        if start is not None:
            journey = journey.with_start(start)
        body = _body_from(record)
        journey = journey.model_copy(update={"body": tuple(
            BodyMeasurement.model_validate(b) for b in body)})
        if journey.start is not None and journey.arm is not None:
            journey_calendar(protocol, journey)  # the calendar must lay out before it is stored
    except TrialdeskError as exc:
        raise renamed(exc, {"override.arm": "override_arm", "arm": "override_arm",
                            "override": "override_reason",
                            "screening": "screening_id"}) from None
    randomisation = randomisation_of(protocol)
    alloc = None
    if randomisation is not None:
        scheme = scheme_of(protocol)
        unknown_factors = [f for f in (factors or {}) if f not in scheme.balancing_factors]
        if unknown_factors:
            raise EnrolmentError(f"'{unknown_factors[0]}' is not a stratification factor of "
                                 f"{randomisation.id}", where=f"factors.{unknown_factors[0]}")

        def alloc(list_doc: Mapping[str, Any], log: Sequence[Mapping[str, Any]]
                  ) -> Mapping[str, Any]:
            made = allocate(AllocationList.model_validate(list_doc),
                            [Allocation.model_validate(d) for d in log],
                            patient_id=study_number, factors=dict(factors or {}), enrolled=True,
                            at=ctx.store.now().astimezone(UTC))
            return made.model_dump(mode="json")

    return ctx.store.enrol(
        study_number, screening_id, signer.id,
        meaning=SIGNATURE_MEANINGS[P.ELIGIBILITY_CONFIRM], record_digest=digest(sc.result),
        reason=reason, allocate=alloc,
        randomisation_id=randomisation.id if randomisation is not None else None,
        journey={"document": enrolment.model_dump(mode="json"), "arm": enrolment.arm,
                 "arm_basis": enrolment.arm_basis, "consent_id": consent.id,
                 "override_by": override.investigator if override else None,
                 "override_reason": override.reason if override else None,
                 "start": start.isoformat() if start else None,
                 "anchors": {k: v.isoformat(timespec="minutes") for k, v in moments.items()},
                 "body": body})


def enrolment_options(ctx: Services, trial_id: str) -> dict[str, Any]:
    """What an enrolment form offers for this trial: variants, optional agents, anchors,
    stratification factors, and whether a sealed list exists."""
    _, compiled = ctx.catalogue.trial(trial_id)
    p = compiled.protocol
    randomisation = randomisation_of(p)
    factors: dict[str, list[str]] = {}
    listed = None
    if randomisation is not None:
        factors = {k: list(v) for k, v in scheme_of(p).balancing_factors.items() if len(v) > 1}
        listed = ctx.store.allocation_list_info(trial_id, randomisation.id)
    return {"variants": {n: {"choices": list(v.choices), "default": v.default}
                         for n, v in p.variants.items()},
            "optional": optional_agents(p), "anchors": anchor_names(p),
            "randomised": randomisation is not None,
            "randomisation_id": randomisation.id if randomisation else None,
            "factors": factors, "list_ready": listed is not None,
            "arms": [{"id": a.id, "label": a.label} for a in p.arms]}


# ---------------------------------------------------------------------------- randomisation


def generate_allocation_list(ctx: Services, who: Principal, trial_id: str, *,
                             seed: int | None, size: int | None, reason: str) -> dict[str, Any]:
    """Generate the trial's sealed list from a seed (a random one when not given) and store
    it once; only its digest and size are ever shown."""
    who.require(P.RANDOMISATION_MANAGE, trial_id)
    _, compiled = ctx.catalogue.trial(trial_id)
    p = compiled.protocol
    try:
        scheme = scheme_of(p)
    except EnrolmentError as exc:
        raise EnrolmentError(exc.reason, where="trial_id") from None
    if size is None:
        enrollment = p.registry.design.enrollment
        if enrollment is None or enrollment.count < 1:
            raise EnrolmentError("the registry gives no enrolment count; give the size",
                                 where="size")
        size = enrollment.count
    lst = generate_list(scheme, secrets.randbits(62) if seed is None else seed, size)
    info = ctx.store.create_allocation_list(
        trial_id, scheme.id, digest=lst.digest, document=lst.model_dump(mode="json"),
        entries=len(lst.entries), actor=who.username, reason=reason)
    return {"trial_id": trial_id, "randomisation_id": scheme.id, "digest": info.digest,
            "entries": info.entries, "allocated": info.allocated,
            "created_at": info.created_at, "created_by": info.created_by}


def randomisation_status(ctx: Services, who: Principal, trial_id: str) -> dict[str, Any]:
    """The sealed list's digest and size and a verification of every allocation made; an
    entry not yet allocated is never described."""
    who.require_user()
    if not (who.can(P.RANDOMISATION_MANAGE, trial_id) or who.can(P.AUDIT_READ, trial_id)):
        raise AccessError(f"your role in {trial_id} does not allow {P.AUDIT_READ.value}")
    _, compiled = ctx.catalogue.trial(trial_id)
    randomisation = randomisation_of(compiled.protocol)
    if randomisation is None:
        return {"trial_id": trial_id, "randomised": False, "list": None}
    info = ctx.store.allocation_list_info(trial_id, randomisation.id)
    sealed = ctx.store.sealed_allocations(trial_id, randomisation.id)
    if info is None or sealed is None:
        return {"trial_id": trial_id, "randomised": True, "randomisation_id": randomisation.id,
                "list": None}
    lst = AllocationList.model_validate(sealed[0])
    log = [Allocation.model_validate(d) for d in sealed[1]]
    report = verify_allocations(lst, log)
    allocated = {(a.stratum, a.sequence) for a in log}
    problems = []
    for d in report.discrepancies:
        text = d.problem
        if d.patient_id is None and d.sequence is not None and (d.stratum, d.sequence) \
                not in allocated:
            text = text.split(":")[0]  # an entry not yet allocated stays concealed
        problems.append(text)
    return {"trial_id": trial_id, "randomised": True, "randomisation_id": randomisation.id,
            "list": {"digest": info.digest, "entries": info.entries,
                     "allocated": info.allocated, "created_at": info.created_at,
                     "created_by": info.created_by},
            "verified": report.ok, "problems": problems}


# ---------------------------------------------------------------------------- the calendar


def dose_content(study_number: str, e: Event) -> dict[str, Any]:
    """What a dose sign-off is bound to: the event, its date and the computed dose."""
    dose = e.dose
    assert dose is not None
    return {"study_number": study_number, "event_id": e.id,
            "date": e.date.isoformat() if e.date else None, "agent": dose.agent,
            "amount": dose.amount, "amount_max": dose.amount_max, "each": dose.each,
            "divided_into": dose.divided_into, "unit": dose.unit, "per": dose.per,
            "working": dose.working, "unconfirmed": list(dose.unconfirmed)}


def cell_product_event(protocol: Protocol, e: Event) -> bool:
    """Whether the event gives a cell product of the protocol (its agent is a dose's)."""
    agent = e.dose.agent.casefold() if e.dose else None
    return agent is not None and any(s.agent and s.agent.casefold() == agent
                                     for s in protocol.products)


def _signable(e: Event) -> bool:
    return e.dose is not None and not e.dose.not_set and e.kind in (EventKind.ADMINISTRATION,
                                                                    EventKind.TIMED)


def calendar_page(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    """The calendar as the page and the API show it: the events with their doses, working,
    [unconfirmed] marks and statuses; the courses as a timeline; the dose sign-offs."""
    loaded = load_journey(ctx, who, study_number, P.CLINICAL_READ)
    row = loaded.row
    trial, site = row.trial_id, row.site
    moment = now(ctx)
    cal = loaded.calendar_or_none(moment)
    out: dict[str, Any] = {
        "study_number": study_number, "trial_id": trial, "version": row.version,
        "header": loaded.journey.header(), "arm": loaded.journey.arm,
        "start": row.start, "anchors": row.anchors, "anchor_names": anchor_names(loaded.protocol),
        "protocol_version": {"number": loaded.enrolment.protocol_version_number,
                             "label": loaded.enrolment.protocol_version_label},
        "as_of": moment.isoformat(sep=" ", timespec="minutes"), "calendar": None,
        "courses": [], "recordable": [], "statuses": [s.value for s in RecordStatus],
        "can_record": who.can(P.ADMINISTRATION_RECORD, trial, site),
        "can_write": who.can(P.PATIENT_WRITE, trial, site),
        "can_sign": who.can(P.DOSE_SIGN, trial, site),
        "missing": None if cal is not None else (
            "no arm yet (randomisation pending)" if loaded.journey.arm is None
            else "no start date (day 1) recorded yet"),
    }
    if cal is None:
        return out
    signatures: dict[str, Any] = {}
    for s in ctx.catalogue.kept(("dose signatures", study_number),
                                lambda: ctx.store.signatures_for("dose", f"{study_number}/")):
        signatures.setdefault(s.record_id.split("/", 1)[1], []).append(s)
    doc = cal.to_json()
    recorded = {r.event_id for r in loaded.journey.records}
    for e, ej in zip(cal.events, doc["events"], strict=True):
        ej["allowed"] = [s.value for s in allowed_statuses(e)]
        ej["signable"] = _signable(e)
        ej["cell_product"] = cell_product_event(loaded.protocol, e)
        ej["signatures"] = []
        if _signable(e):
            content = digest(dose_content(study_number, e))
            ej["signatures"] = [{**signature_view(s), "valid": s.record_digest == content}
                                for s in signatures.get(e.id, [])]
        if ej["allowed"] and e.id not in recorded and e.status.value not in (
                "cancelled", "discontinued"):
            out["recordable"].append({"id": e.id, "name": e.name,
                                      "date": ej["date"] or ej["deadline"],
                                      "allowed": ej["allowed"],
                                      "unit": e.dose.unit if e.dose else None,
                                      "administration": ej["allowed"][0] == "given"})
        if e.kind is EventKind.COURSE:
            out["courses"].append({"id": e.id, "name": e.name, "number": e.course_number,
                                   "course_id": e.course_id, "date": ej["date"],
                                   "end": ej["end"], "status": ej["status"],
                                   "shifted_days": e.shifted_days})
    out["calendar"] = doc
    return out


def calendar_ics(ctx: Services, who: Principal, study_number: str) -> bytes:
    loaded = load_journey(ctx, who, study_number, P.CLINICAL_READ)
    cal = loaded.calendar_or_none(now(ctx))
    if cal is None:
        raise ScheduleError("the calendar cannot be laid out yet: no start date or no arm",
                            where="start")
    return to_ics(cal, ctx.store.now().astimezone(UTC))


def calendar_json(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    page = calendar_page(ctx, who, study_number)
    return {k: page[k] for k in ("study_number", "trial_id", "version", "header", "arm", "start",
                                 "anchors", "as_of", "missing", "calendar", "courses")}


# ---------------------------------------------------------------------------- changes


def _checked(loaded: Loaded, change: Any) -> Journey:
    try:
        journey = change(loaded.journey)
        if journey.start is not None and journey.arm is not None:
            journey_calendar(loaded.protocol, journey)  # it must still lay out
        return journey
    except TrialdeskError as exc:
        raise plain(exc) from None


def update_settings(ctx: Services, who: Principal, study_number: str, *, version: int,
                    start: date | None, anchors: Mapping[str, datetime] | None,
                    reason: str) -> dict[str, Any]:
    """Set the calendar's start (day 1) and the clinical anchor times."""
    loaded = load_journey(ctx, who, study_number, P.PATIENT_WRITE)
    names = anchor_names(loaded.protocol)
    for name in anchors or {}:
        if name not in names:
            raise ScheduleError(f"the protocol times nothing from '{name}'; anchors: "
                                f"{', '.join(names) or 'none'}", where=f"anchors.{name}")
    if version != loaded.version:
        raise ConflictError(f"the calendar of {study_number} was changed by "
                            f"{loaded.row.updated_by} at {loaded.row.updated_at} (it is now "
                            f"version {loaded.version}; your copy is version {version}); reload "
                            "it and apply your change again", where="version")
    merged = {k: datetime.fromisoformat(v) for k, v in loaded.row.anchors.items()}
    merged |= dict(anchors or {})

    def change(j: Journey) -> Journey:
        if start is not None:
            j = j.with_start(start)
        assert j.enrolment is not None
        return j.model_copy(update={"enrolment": j.enrolment.model_copy(
            update={"anchors": merged})})

    _checked(loaded, change)
    ctx.store.update_journey(
        study_number, expected_version=version,
        start=start.isoformat() if start else None,
        anchors={k: v.isoformat(timespec="minutes") for k, v in merged.items()}
        if anchors else None, actor=who.username, reason=reason)
    return calendar_json(ctx, who, study_number)


def record_body(ctx: Services, who: Principal, study_number: str, *, on: date,
                weight_kg: float | None, height_cm: float | None, reason: str) -> dict[str, Any]:
    loaded = load_journey(ctx, who, study_number, P.PATIENT_WRITE)
    if on > ctx.store.now().date():
        raise ScheduleError(f"{on.isoformat()} is in the future", where="on")
    try:
        measured = BodyMeasurement(on=on, weight_kg=weight_kg, height_cm=height_cm,
                                   source=f"recorded by {who.require_user().full_name}")
    except TrialdeskError as exc:
        raise plain(exc, "weight_kg") from None
    _checked(loaded, lambda j: j.with_body(measured))
    ctx.store.add_body_measurement(study_number, measured.model_dump(mode="json"),
                                   expected_version=loaded.version, actor=who.username,
                                   reason=reason)
    return calendar_json(ctx, who, study_number)


def record_event(ctx: Services, who: Principal, study_number: str, *, event_id: str,
                 status: str, at: datetime, amount: float | None, unit: str | None,
                 by: str | None, reason: str | None, note: str) -> dict[str, Any]:
    """What happened to one calendar event; administrations by the roles that give doses,
    other events (procedures, assessments, decisions) by investigators and coordinators."""
    loaded = load_journey(ctx, who, study_number, P.ADMINISTRATION_RECORD)
    user = who.require_user()
    cal = loaded.calendar_or_none()
    if cal is None:
        raise ScheduleError("the calendar has no start date or no arm yet", where="event_id")
    try:
        event = cal.event(event_id)
    except TrialdeskError as exc:
        raise plain(exc, "event_id") from None
    dosed = RecordStatus.GIVEN in allowed_statuses(event)
    if status in (RecordStatus.GIVEN.value, RecordStatus.PARTLY_GIVEN.value) and \
            cell_product_event(loaded.protocol, event):
        raise ScheduleError(f"{event.name} is a cell product: it is recorded as given by its "
                            "infusion, after a released product and the two-person bedside "
                            "verification (trialdesk product verify, then product infuse)",
                            where="status")
    if not dosed:
        load_patient(ctx, who, study_number, P.PATIENT_WRITE)
    if amount is not None and unit is None and event.dose is not None:
        unit = event.dose.unit
    try:
        record = EventRecord(event_id=event_id, status=RecordStatus(status), at=at,
                             by=by or user.full_name, amount=amount, unit=unit,
                             reason=reason or None, recorded_at=now(ctx))
        _checked(loaded, lambda j: j.with_record(loaded.protocol, record))
    except TrialdeskError as exc:
        raise renamed(exc, {"reason": "why"}) from None
    ctx.store.add_event_record(study_number, record.model_dump(mode="json"),
                               expected_version=loaded.version, actor=user.username,
                               reason=note)
    return calendar_json(ctx, who, study_number)


def record_delay(ctx: Services, who: Principal, study_number: str, *, course: int, days: int,
                 why: str, by: str | None, reason: str) -> dict[str, Any]:
    loaded = load_journey(ctx, who, study_number, P.PATIENT_WRITE)
    user = who.require_user()
    try:
        delay = CourseDelay(course=course, days=days, reason=why, by=by or user.full_name,
                            recorded_on=ctx.store.now().date())
        _checked(loaded, lambda j: j.with_delay(loaded.protocol, delay))
    except TrialdeskError as exc:
        raise renamed(exc, {"reason": "why"}) from None
    ctx.store.add_course_delay(study_number, delay.model_dump(mode="json"),
                               expected_version=loaded.version, actor=user.username,
                               reason=reason)
    return calendar_json(ctx, who, study_number)


def sign_dose(ctx: Services, who: Principal, study_number: str, *, event_id: str,
              password: str, reason: str) -> dict[str, Any]:
    """Sign off a computed dose (the password again), bound to the digest of the dose."""
    loaded = load_journey(ctx, who, study_number, P.DOSE_SIGN)
    cal = loaded.calendar_or_none()
    if cal is None:
        raise ScheduleError("the calendar has no start date or no arm yet", where="event_id")
    try:
        event = cal.event(event_id)
    except TrialdeskError as exc:
        raise plain(exc, "event_id") from None
    if not _signable(event):
        raise ScheduleError(f"{event_id} has no computed dose to sign off", where="event_id")
    record_id = f"{study_number}/{event_id}"
    if len(record_id) > 64:
        raise FactError("the event id is too long to sign", where="event_id")
    signer = ctx.accounts.confirm_password(who, password)
    sig = ctx.store.sign(signer.id, SIGNATURE_MEANINGS[P.DOSE_SIGN], "dose", record_id,
                         digest(dose_content(study_number, event)), reason=reason,
                         audit_id=study_number)
    return {**signature_view(sig), "valid": True, "event_id": event_id}


def journey_summary(ctx: Services, who: Principal, row: PatientRecordRow) -> dict[str, Any]:
    """For the patient page: consents, how the patient was enrolled, the allocation."""
    consents = [consent_view(c.document, c.recorded_at)
                for c in ctx.catalogue.kept(("consents", row.study_number),
                                            lambda: ctx.store.consents(row.study_number))
                if c.trial_id == row.trial_id]
    kept = enrolled_journey(ctx, row.study_number)
    out: dict[str, Any] = {"consents": consents, "journey": None}
    if kept is not None:
        j, core = kept[0], kept[2]
        out["journey"] = {"header": core.header(), "arm": j.arm, "arm_basis": j.arm_basis,
                          "override_by": j.override_by, "override_reason": j.override_reason,
                          "start": j.start, "version": j.version,
                          "allocation": None if j.allocation is None else {
                              k: j.allocation[k] for k in ("arm", "stratum", "sequence",
                                                           "allocated_at", "list_digest")}}
    return out

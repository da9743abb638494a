"""Samples: a sampling event as it happened, and the results that later attach to it.

A :class:`Sample` is taken for one sampling event of the calendar (its identifier, when it
was collected, the specimen and tube, how it was processed and where it is stored). Its
results arrive later (:func:`attach_result`) and become dated patient-file entries
(:func:`patient_entries`): the date of a result is the collection date, not the report
date, so a criterion's look-back window counts from when the sample was taken.

>>> from datetime import date, datetime
>>> from trialdesk.protocol.load import load_protocol, default_protocol_dir
>>> from trialdesk.schedule.plan import plan
>>> p = load_protocol(default_protocol_dir() / "rumcess.yaml").protocol
>>> cal = plan(p, "SOC", date(2026, 11, 21))
>>> s = check_sample(cal, Sample(sample_id="RU-01-S1", patient_id="RU-01", event_id="s1.d1",
...     collected_at=datetime(2026, 11, 21, 8, 5), specimen="serum", by="nurse"))
>>> s = attach_result(s, SampleResult(fact="il6", value=0.45, unit="ng/mL",
...     reported_at=datetime(2026, 11, 22, 10), by="lab"))
>>> [(o.name, o.value, o.unit, o.date.isoformat()) for o in patient_entries(s)[0]]
[('il6', 0.45, 'ng/mL', '2026-11-21')]
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from trialdesk.errors import FactError, ScheduleError
from trialdesk.facts.dictionary import FACTS, FactKind
from trialdesk.facts.patient import Finding, Observation, canonical_value
from trialdesk.schedule.plan import Calendar, EventKind
from trialdesk.schedule.records import EventRecord, RecordStatus

__all__ = ["Sample", "SampleResult", "attach_result", "check_sample", "patient_entries",
           "sample_record"]


class SampleResult(BaseModel):
    """One result of a sample: a fact of the dictionary, its value and unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fact: str
    value: float | str
    unit: str | None = None
    reported_at: datetime
    by: str = Field(min_length=1)


class Sample(BaseModel):
    """A sample taken for a sampling event, with its processing, storage and results."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    patient_id: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    collected_at: datetime
    specimen: str = Field(min_length=1)
    tube: str | None = None
    processing: str | None = None  # e.g. "centrifuged 1500 g × 10 min, serum in 3 aliquots"
    storage: str | None = None  # e.g. "−80 °C, box 3, position 14"
    by: str = Field(min_length=1)
    results: tuple[SampleResult, ...] = ()


def check_sample(calendar: Calendar, sample: Sample) -> Sample:
    """The sample, once its event is a sampling event of ``calendar`` (refused otherwise)."""
    try:
        event = calendar.event(sample.event_id)
    except ScheduleError as exc:
        raise ScheduleError(exc.reason, where="sample.event_id") from None
    if event.kind is not EventKind.SAMPLING:
        raise ScheduleError(f"'{sample.event_id}' is a {event.kind.value} event, not a sampling "
                            "event", where="sample.event_id")
    return sample


def sample_record(sample: Sample) -> EventRecord:
    """The event record that marks the sampling event done (status and window checks are
    :mod:`trialdesk.schedule.status`'s)."""
    return EventRecord(event_id=sample.event_id, status=RecordStatus.DONE, at=sample.collected_at,
                       by=sample.by)


def attach_result(sample: Sample, result: SampleResult) -> Sample:
    """``sample`` with ``result`` attached; refused: an unknown fact, a fact that is not a
    laboratory value, measurement or finding, a unit that does not fit, an impossible value,
    a report before collection, a second result for the same fact."""
    where = f"sample {sample.sample_id}: result {result.fact}"
    fact = FACTS.get(result.fact)
    if fact is None or fact.kind not in (FactKind.LAB, FactKind.MEASUREMENT, FactKind.FINDING):
        raise FactError(f"'{result.fact}' is not a laboratory value, measurement or finding",
                        where=f"{where}.fact")
    if result.reported_at < sample.collected_at:
        raise ScheduleError(f"reported {result.reported_at:%Y-%m-%d %H:%M}, before the sample "
                            f"was collected ({sample.collected_at:%Y-%m-%d %H:%M})",
                            where=f"{where}.reported_at")
    if any(r.fact == result.fact for r in sample.results):
        raise ScheduleError("this sample already has a result for it", where=where)
    if fact.is_numeric:
        if isinstance(result.value, str):
            raise FactError(f"{result.fact} must be a number", where=f"{where}.value")
        value = canonical_value(result.fact, result.value, result.unit, where=f"{where}.unit")
        if (fact.minimum is not None and value < fact.minimum) or (
                fact.maximum is not None and value > fact.maximum):
            raise FactError(f"{result.fact} = {result.value:g} is impossible",
                            where=f"{where}.value")
    elif fact.values is not None and result.value not in fact.values:
        raise FactError(f"{result.fact} must be one of {', '.join(fact.values)}",
                        where=f"{where}.value")
    return sample.model_copy(update={"results": (*sample.results, result)})


def patient_entries(sample: Sample) -> tuple[list[Observation], list[Finding]]:
    """The sample's results as patient-file observations and findings, dated on collection."""
    on = sample.collected_at.date()
    observations: list[Observation] = []
    findings: list[Finding] = []
    for r in sample.results:
        if FACTS[r.fact].kind is FactKind.FINDING:
            findings.append(Finding(name=r.fact, value=r.value, unit=r.unit, date=on))
        else:
            observations.append(Observation(name=r.fact, value=float(r.value), unit=r.unit,
                                            date=on))
    return observations, findings

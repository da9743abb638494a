"""The administration form: what happened to one dose on the calendar (given, partly given
or withheld), typed into labelled fields and read into the values of an event record.

Every problem names the field by its label and says what to do; nothing is stored unless
the whole form is right (the caller stores only what :func:`read_administration` returns).

>>> try:
...     read_administration({"status": "given", "at": "2026-11-20T09:00", "amount": "4x"},
...                         unit="mg", today=dt.date(2026, 11, 21))
... except FormError as exc:
...     print(exc.problems[0])
Actual dose: enter a number such as 12.5 (digits only, not '4x')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from trialdesk.facts.dictionary import FACTS
from trialdesk.forms.build import FormField, Widget
from trialdesk.forms.parse import FormError, _Reader, unit_text

STATUSES = ("given", "partly_given", "withheld")
ROUTES = ("IV", "SC", "PO", "IM", "IT")  # the routes a protocol administration may name
# Bounds against typing errors, not clinical limits: no infusion of one calendar dose runs
# longer than 31 days, and no rate or volume typed here reaches 10 litres.
MAX_HOURS = 744.0
MAX_ML = 10_000.0


def _f(name: str, label: str, widget: str, **kw: Any) -> FormField:
    return FormField(name, label, "administration", widget, **kw)


FIELDS: tuple[FormField, ...] = (
    _f("status", "What happened", Widget.CHOICE, choices=STATUSES, required=True),
    _f("amount", "Actual dose", Widget.NUMBER, minimum=0,
       hint="the amount given; for partly given, less than planned"),
    _f("at", "Start time", Widget.DATETIME, required=True,
       hint="when the dose was started (or, if withheld, decided)"),
    _f("stopped_at", "Stop time", Widget.DATETIME, hint="when the infusion ended"),
    _f("duration_hours", "Infusion duration", Widget.NUMBER, unit="h", units=("h",),
       minimum=0, maximum=MAX_HOURS),
    _f("rate_ml_h", "Infusion rate", Widget.NUMBER, unit="mL/h", units=("mL/h",), minimum=0,
       maximum=MAX_ML),
    _f("volume_ml", "Infusion volume", Widget.NUMBER, unit="mL", units=("mL",), minimum=0,
       maximum=MAX_ML),
    _f("route", "Route", Widget.CHOICE, choices=ROUTES),
    _f("lot", "Lot number", Widget.TEXT, hint="as printed on the product"),
    _f("by", "Given by", Widget.TEXT, hint="who gave it (or decided to withhold it)"),
    _f("weight_kg", "Weight on the day", Widget.NUMBER, fact="weight", unit="kg",
       units=("kg",), minimum=FACTS["weight"].minimum, maximum=FACTS["weight"].maximum),
    _f("height_cm", "Height on the day", Widget.NUMBER, fact="height", unit="cm",
       units=("cm",), minimum=FACTS["height"].minimum, maximum=FACTS["height"].maximum),
    _f("measured_on", "Date weight and height were measured", Widget.DATE),
    _f("why", "Reason", Widget.TEXT, hint="needed when withheld or partly given"),
)
BY_NAME = {f.name: f for f in FIELDS}
# The core's field names (ScheduleError.where without its "record." prefix) as labels.
LABELS = {**{f.name: f.label for f in FIELDS}, "reason": "Reason", "unit": "Actual dose",
          "event_id": "Dose", "body": "Weight on the day"}


def label_of(where: str | None) -> str:
    """The label of the field a core error names (``record.stopped_at`` → "Stop time")."""
    key = (where or "").removeprefix("record.").removeprefix("details.")
    return LABELS.get(key, key.replace("_", " ").capitalize() if key else "Form")


def _number(r: _Reader, name: str) -> float | None:
    f = BY_NAME[name]
    value = r.number(name, f.label)
    if value is None:
        return None
    unit = f" {unit_text(f.unit)}" if f.unit else ""
    low, high = f.minimum or 0.0, f.maximum
    if value <= 0 or value < low or (high is not None and value > high):
        r.bad(f.label, f"enter a value above 0 and at most {high:g}{unit}" if not low
              else f"{value:g}{unit} is outside what is possible ({low:g}–{high:g}{unit}); "
                   "check the value and its unit")
        return None
    return value


def read_administration(values: Mapping[str, Any], *, unit: str | None, today: dt.date,
                        now: dt.datetime | None = None) -> dict[str, Any]:
    """The typed values of one administration record; :class:`FormError` lists every
    problem. ``unit`` is the planned dose's unit (the only unit a dose is entered in);
    ``now`` refuses a start or stop time later today."""
    r = _Reader(values, today)
    status = r.choice("status", BY_NAME["status"])
    if status is None and not r.text("status"):
        r.bad("What happened", "choose given, partly given or withheld")
    amount = r.number("amount", "Actual dose")
    typed_unit = r.text("amount.unit") or unit
    if amount is not None and amount <= 0:
        r.bad("Actual dose", "enter an amount above 0")
        amount = None
    if amount is not None and unit and typed_unit != unit:
        r.bad("Actual dose", f"this dose is prescribed in {unit_text(unit)}; enter it in "
                             f"{unit_text(unit)}, not {unit_text(typed_unit)}")
        amount = None
    if status in ("given", "partly_given") and amount is None and not r.text("amount"):
        r.bad("Actual dose", f"enter the amount given in {unit_text(unit)}")
    if status == "withheld" and amount is not None:
        r.bad("Actual dose", "a withheld dose has no amount; clear it or choose given")
    started = r.datetime("at", "Start time")
    if started is None and not r.text("at"):
        r.bad("Start time", "enter the date and time, such as 2026-11-20T14:30")
    stopped = r.datetime("stopped_at", "Stop time")
    for moment, label in ((started, "Start time"), (stopped, "Stop time")):
        if moment is not None and now is not None and moment > now:
            r.bad(label, f"{moment:%Y-%m-%d %H:%M} is in the future; enter when it happened")
    if started is not None and stopped is not None and stopped < started:
        r.bad("Stop time", f"{stopped:%Y-%m-%d %H:%M} is before the start time "
                           f"{started:%Y-%m-%d %H:%M}")
    details: dict[str, Any] = {
        "stopped_at": stopped,
        "duration_hours": _number(r, "duration_hours"),
        "rate_ml_h": _number(r, "rate_ml_h"),
        "volume_ml": _number(r, "volume_ml"),
        "route": r.choice("route", BY_NAME["route"]),
        "lot": r.text("lot") or None,
        "weight_kg": _number(r, "weight_kg"),
        "height_cm": _number(r, "height_cm"),
        "measured_on": r.date("measured_on", "Date weight and height were measured"),
    }
    if status == "withheld":
        for key in ("stopped_at", "duration_hours", "rate_ml_h", "volume_ml", "lot"):
            if r.text(key):
                r.bad(BY_NAME[key].label, "a withheld dose was not infused; clear this field")
    body = details["weight_kg"] is not None or details["height_cm"] is not None
    if body and details["measured_on"] is None and not r.text("measured_on"):
        r.bad("Date weight and height were measured", "enter the date of the measurement")
    if details["measured_on"] is not None and started is not None and \
            details["measured_on"] > started.date():
        r.bad("Date weight and height were measured",
              f"{details['measured_on']} is after the start time; enter the day they were "
              "measured, on or before the dose")
    for key, most in (("lot", 64), ("by", 200), ("why", 1000)):
        if len(r.text(key)) > most:
            r.bad(BY_NAME[key].label, f"shorten it to {most} characters or fewer")
    why = r.text("why") or None
    if status in ("withheld", "partly_given") and why is None:
        r.bad("Reason", f"say why the dose was {status.replace('_', ' ')}")
    if r.problems:
        raise FormError(r.problems)
    return {"status": status, "amount": amount, "unit": unit if amount is not None else None,
            "at": started, "by": r.text("by") or None, "reason": why,
            "details": {k: v for k, v in details.items() if v is not None}}

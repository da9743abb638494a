"""The calendar page as people read it: grouped by course (the current course first open),
with a "today and the next 7 days" view, each dose's row with its own actions (given,
partly given, withheld, delayed) and each dose shown as signed when a dose signature or a
course signature still matches it.

The events themselves, their doses and statuses are :func:`trialdesk.services.biomarkers.
calendar_page`'s; this adds only how they are grouped and what can be done from each row.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from trialdesk.services.accounts import Principal
from trialdesk.services.biomarkers import calendar_page as event_page
from trialdesk.services.context import Services
from trialdesk.services.course_signoff import signature_marks
from trialdesk.services.journeys import now
from trialdesk.services.roles import Permission

P = Permission
WEEK_DAYS = 7
_CLOSED = ("cancelled", "discontinued")
_ACTIONS = (("given", "Given"), ("partly_given", "Partly given"), ("withheld", "Withheld"))


def _day(e: dict[str, Any]) -> date | None:
    text = e.get("date") or (e.get("deadline") or "")[:10]
    return date.fromisoformat(text) if text else None


def _actions(page: dict[str, Any], e: dict[str, Any], started: set[int]) -> list[dict[str, str]]:
    """The row's own buttons: what happened to a dose not yet recorded."""
    if not page["can_record"] or e.get("record") or e.get("status") in _CLOSED:
        return []
    allowed = e.get("allowed") or []
    if not allowed or allowed[0] != "given":
        return []
    base = f"/patients/{page['study_number']}/calendar/doses/{e['id']}?status="
    out = [{"status": s, "label": label, "href": base + s} for s, label in _ACTIONS
           if not (e.get("cell_product") and s != "withheld")]
    number = e.get("course_number")
    if page["can_write"] and number is not None and number not in started:
        out.append({"status": "delayed", "label": "Delayed",
                    "href": f"/patients/{page['study_number']}/calendar?delay={number}#delay"})
    return out


def _current(courses: list[dict[str, Any]], today: date) -> int | None:
    """The course running today, else the next one, else the last."""
    for k in courses:
        if k["date"] and k["end"] and date.fromisoformat(k["date"]) <= today <= \
                date.fromisoformat(k["end"]):
            return int(k["number"])
    later = [k for k in courses if k["date"] and date.fromisoformat(k["date"]) > today]
    if later:
        return int(later[0]["number"])
    return int(courses[-1]["number"]) if courses else None


def calendar_page(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    """The calendar page (see the module docstring): ``groups`` (one per course, then the
    events outside the courses) and ``week`` (the events from today to 7 days ahead)."""
    page = event_page(ctx, who, study_number)
    page["groups"], page["week"] = [], []
    cal = page.get("calendar")
    if not cal:
        return page
    events = cal["events"]
    by_event, by_course = signature_marks(ctx, study_number, events)
    today = now(ctx).date()
    started = {int(e["course_number"]) for e in events
               if e.get("record") and e.get("course_number") is not None}
    for e in events:
        e["signatures"] = list(e.get("signatures") or []) + by_event.get(e["id"], [])
        e["signed"] = any(s["valid"] for s in e["signatures"])
        e["actions"] = _actions(page, e, started)
    current = _current(page["courses"], today)
    for k in page["courses"]:
        mine = [e for e in events if e.get("course_number") == k["number"]]
        doses = [e for e in mine if e.get("signable")]
        page["groups"].append({
            "number": k["number"], "name": k["name"], "course_id": k["course_id"],
            "date": k["date"], "end": k["end"], "open": k["number"] == current,
            "events": mine, "doses": len(doses), "signed": sum(1 for e in doses if e["signed"]),
            "signatures": by_course.get(k["number"], [])})
    outside = [e for e in events if e.get("course_number") is None]
    if outside:
        page["groups"].append({"number": None, "name": "Outside the courses", "open":
                               not page["courses"], "events": outside, "doses": 0, "signed": 0,
                               "signatures": []})
    end = today + timedelta(days=WEEK_DAYS)
    page["week"] = [e for e in events if e["kind"] != "course" and (d := _day(e)) is not None
                    and today <= d <= end]
    page["today"], page["week_end"] = today.isoformat(), end.isoformat()
    return page

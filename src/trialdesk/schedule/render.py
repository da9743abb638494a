"""The calendar as rich renderables for the command line (nothing is printed here)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from trialdesk.schedule.plan import Calendar, Event, EventKind, EventStatus

__all__ = ["calendar_view"]

_STATUS_STYLE = {
    EventStatus.GIVEN: "green", EventStatus.DONE: "green", EventStatus.CONTINUE: "green",
    EventStatus.PARTLY_GIVEN: "yellow", EventStatus.WITHHELD: "red",
    EventStatus.NOT_DONE: "red", EventStatus.STOP: "red", EventStatus.MISSED: "bold red",
    EventStatus.DUE: "bold yellow", EventStatus.CANCELLED: "dim", EventStatus.PLANNED: "",
    EventStatus.DISCONTINUED: "red",
    EventStatus.UNSCHEDULED: "yellow", EventStatus.NONE: "",
}


def _when(e: Event) -> str:
    if e.kind is EventKind.TIMED:
        if e.deadline is None:
            return "deadline unknown"
        return f"{e.deadline.date().isoformat()} by {e.deadline.strftime('%H:%M')}"
    if e.date is None:
        return "—"
    text = e.date.isoformat()
    if e.end is not None and e.end != e.date:
        text += f" → {e.end.isoformat()}"
    if e.window_days:
        text += f" ±{e.window_days} d"
    return text


def _status(e: Event) -> Text:
    text = Text(e.status.value.replace("_", " "), style=_STATUS_STYLE[e.status])
    if e.out_of_window:
        text.append(" (out of window)", style="bold red")
    if e.status_note:
        text.append(f"\n{e.status_note}", style="dim")
    return text


def calendar_view(calendar: Calendar) -> RenderableType:
    """The title and notes (an enrolment override first), the delays and the confirmed
    toxicity actions, the table of events, the dose working and the list of unconfirmed
    values used."""
    title = Text.assemble(
        (f"{calendar.trial_id} v{calendar.protocol_version}", "bold"),
        f"  patient {calendar.patient_id or '—'}  arm {calendar.arm_id} ({calendar.arm_label})"
        f"  start {calendar.start.isoformat()}",
        f"  as of {calendar.as_of.isoformat(sep=' ', timespec='minutes')}" if calendar.as_of
        else "")
    parts: list[RenderableType] = [title]
    for line in calendar.notes:
        parts.append(Text(line, style="bold magenta" if "OVERRIDE" in line else ""))
    for variant, value in calendar.variants.items():
        parts.append(Text(f"variant {variant}: {value}"))
    if calendar.optional:
        parts.append(Text(f"optional agents included: {', '.join(calendar.optional)}"))
    for d in calendar.delays:
        rule = f" (rule {d.rule_id})" if d.rule_id and d.rule_id not in d.reason else ""
        parts.append(Text(f"course {d.course} delayed {d.days} d on {d.recorded_on.isoformat()} "
                          f"by {d.by}: {d.reason}{rule}", style="yellow"))
    if calendar.actions:
        parts.append(Text("Toxicity actions confirmed by a clinician", style="bold"))
        for a in calendar.actions:
            changed = f" ({len(a.event_ids)} event{'s' if len(a.event_ids) != 1 else ''})"
            parts.append(Text(f"  {a.text}{changed}", style="bold yellow" if a.unconfirmed
                              else "yellow"))
            parts.append(Text(f"    because: {a.reason}", style="dim"))
            parts.append(Text(f"    source: {a.source}", style="dim"))
    table = Table(show_lines=False, expand=False, header_style="bold")
    for column in ("Date", "Day", "Id", "Event", "Dose", "Status"):
        table.add_column(column, overflow="fold", no_wrap=column in ("Date", "Id", "Dose"),
                         min_width=24 if column == "Event" else None)
    working: dict[str, list[int]] = {}
    for e in calendar.events:
        day = "" if e.day is None else str(e.day)
        if e.shifted_days:
            day += f" (+{e.shifted_days})"
        name = Text(e.name, style="bold" if e.kind is EventKind.COURSE else "")
        if e.unconfirmed:
            name.append(" [unconfirmed]", style="yellow")
        dose = Text("")
        if e.dose is not None:
            dose = Text(e.dose.shown(), style="yellow" if e.dose.not_set else "")
            if e.dose.unconfirmed and not e.dose.not_set:
                dose.append(" [unconfirmed]", style="yellow")
            for m in e.modifications:
                if m.kind == "reduce" and m.percent is not None:
                    dose.append(f" (reduced to {m.percent:g}%)", style="bold yellow")
            marks = f" [unconfirmed: {'; '.join(e.dose.unconfirmed)}]" if e.dose.unconfirmed \
                else ""
            courses = working.setdefault(f"{e.dose.agent}: {e.dose.working}{marks}", [])
            if e.course_number and e.course_number not in courses:
                courses.append(e.course_number)
        table.add_row(_when(e), day, Text(e.id, style="dim"), name, dose, _status(e))
    parts.append(table)
    if working:
        parts.append(Text("Dose working", style="bold"))
        for line, courses in working.items():
            where = f"course{'s' if len(courses) > 1 else ''} {_numbers(courses)} " \
                if courses else ""
            parts.append(Text(f"  {where}{line}"))
    for note in calendar.dose_notes:
        parts.append(Text(f"  {note}", style="cyan"))
    if calendar.unconfirmed:
        parts.append(Text("Unconfirmed values used: " + "; ".join(calendar.unconfirmed),
                          style="yellow"))
    return Group(*parts)


def _numbers(values: list[int]) -> str:
    """1, 2, 3, 5 → "1–3, 5"."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)

"""The worklist: what is waiting for the person logged in, by the roles they hold, each
line linking to the page where it is done (issue 11, item 9).

* pharmacist: computed doses not yet signed off, planned in the next
  :data:`HORIZON_DAYS` days (or due now);
* investigator: toxicity actions a protocol rule proposed that await a clinician's
  decision, and patients screened eligible whose eligibility is not yet signed
  (confirmation and enrolment are one signature);
* coordinator: calendar assessments (and samplings) due in the next
  :data:`HORIZON_DAYS` days, and overdue events (their window passed without a record,
  or due and past their date);
* monitor: data queries the site answered, waiting to be closed or re-opened, and the
  open ones still waiting for the site;
* site roles (investigator, coordinator): data queries opened or re-opened by a monitor,
  waiting for an answer or a correction.

Everything is read from the one database as of the store's clock; a line is listed once
per role that owns it, in date order.

>>> HORIZON_DAYS
14
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from trialdesk.errors import NotFoundError
from trialdesk.services import queries
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.course_signoff import signature_marks
from trialdesk.services.journeys import calendar_page, read_journeys
from trialdesk.services.patients import enrolment_of
from trialdesk.services.roles import Role
from trialdesk.services.safety import action_view, adverse_events_of, product_actions_of
from trialdesk.store.records import PatientRecordRow

HORIZON_DAYS = 14  # issue 11 item 9: "assessments due in the next 14 days" (a working horizon)
_OPEN = ("planned", "due")
_ASSESSMENTS = ("assessment", "sampling")


@dataclass(frozen=True)
class Line:
    """One thing to do: what, for which patient, by when, and where it is done."""

    study_number: str
    trial_id: str
    what: str
    when: str | None
    link: str
    note: str = ""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    role: str
    empty: str
    lines: tuple[Line, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "role": self.role, "empty": self.empty,
                "lines": [asdict(x) for x in self.lines]}


class _Patients:
    """The patients of one role's memberships, with their calendars read once."""

    def __init__(self, ctx: Services, who: Principal, role: Role) -> None:
        self.ctx, self.who = ctx, who
        scopes = list(dict.fromkeys((m.trial_id, m.site) for m in who.memberships
                                    if m.role == role.value))
        self.rows: list[PatientRecordRow] = (
            ctx.store.patients(scopes, limit=1_000_000).items if scopes else [])
        # read together for all of them, kept as the pages read them one by one
        enrolments = ctx.store.enrolments([r.study_number for r in self.rows])
        for row in self.rows:
            ctx.catalogue.remember(("patient", row.study_number), row)
            ctx.catalogue.remember(("enrolment", row.study_number),
                                   enrolments[row.study_number])
        read_journeys(ctx, [r.study_number for r in self.rows])
        # the dose and course sign-offs their calendars show, read together too
        enrolled = [n for n, e in enrolments.items() if e is not None]
        doses = ctx.store.signatures_under("dose", [f"{n}/" for n in enrolled])
        for n, signoffs in ctx.store.course_signoffs_of(enrolled).items():
            ctx.catalogue.remember(("dose signatures", n), doses[f"{n}/"])
            ctx.catalogue.remember(("course signoffs", n), signoffs)
        self._calendars: dict[str, dict[str, Any] | None] = {}

    def calendar(self, study_number: str) -> dict[str, Any] | None:
        if study_number not in self._calendars:
            try:
                page: dict[str, Any] | None = calendar_page(self.ctx, self.who, study_number)
            except NotFoundError:  # not enrolled: no calendar
                page = None
            if page and page["calendar"]:  # a dose signed with its whole course is signed
                marks, _ = signature_marks(self.ctx, study_number, page["calendar"]["events"])
                for e in page["calendar"]["events"]:
                    e["signatures"] = list(e.get("signatures") or []) + marks.get(e["id"], [])
            self._calendars[study_number] = page if page and page["calendar"] else None
        return self._calendars[study_number]

    def events(self) -> list[tuple[PatientRecordRow, dict[str, Any]]]:
        out = []
        for row in self.rows:
            page = self.calendar(row.study_number)
            if page is not None:
                out += [(row, e) for e in page["calendar"]["events"]]
        return out


def _event_line(row: PatientRecordRow, e: dict[str, Any], what: str, note: str = "") -> Line:
    return Line(row.study_number, row.trial_id, what, e["date"],
                f"/patients/{row.study_number}/calendar#ev-{e['id']}", note)


def _sorted(lines: list[Line]) -> tuple[Line, ...]:
    return tuple(sorted(lines, key=lambda x: (x.when or "9999", x.study_number, x.what)))


def doses_to_sign(patients: _Patients, today: date) -> list[Line]:
    until = (today + timedelta(days=HORIZON_DAYS)).isoformat()
    out = []
    for row, e in patients.events():
        if (e["signable"] and e["status"] in _OPEN and e["date"] and e["date"] <= until
                and not any(s["valid"] for s in e["signatures"])):
            dose = e["dose"] or {}
            amount = f"{dose.get('amount'):g} {dose.get('unit') or ''}".strip() \
                if dose.get("amount") is not None else ""
            out.append(_event_line(row, e, f"Sign the dose: {e['name']}", amount))
    return out


def actions_to_decide(ctx: Services, patients: _Patients) -> list[Line]:
    out = []
    for row in patients.rows:
        for ae in adverse_events_of(ctx, row.study_number):
            for a in ae.actions:
                view = action_view(a)
                if view["status"] == "proposed":
                    out.append(Line(row.study_number, row.trial_id,
                                    f"Decide: {view['shown']}",
                                    view["found_on"] or ae.onset,
                                    f"/patients/{row.study_number}/adverse-events#action-{a.id}",
                                    f"{ae.term}, grade {ae.grade}"))
        for a in product_actions_of(ctx, row.study_number):
            view = action_view(a)
            if view["status"] == "proposed":
                out.append(Line(row.study_number, row.trial_id, f"Decide: {view['shown']}",
                                view["found_on"],
                                f"/patients/{row.study_number}/adverse-events"
                                f"#action-{a.id}",
                                f"cell product {a.product} not released"))
    return out


def eligibility_to_sign(ctx: Services, patients: _Patients) -> list[Line]:
    out = []
    for row in patients.rows:
        screenings = ctx.catalogue.kept(("screenings", row.study_number),
                                        lambda: ctx.store.screenings(row.study_number))  # noqa: B023
        if (screenings and screenings[0].verdict == "eligible"
                and enrolment_of(ctx, row.study_number) is None):
            sc = screenings[0]
            out.append(Line(row.study_number, row.trial_id,
                            "Confirm eligibility (e-signature) and enrol", sc.created_at[:10],
                            f"/patients/{row.study_number}#enrolment",
                            f"screening {sc.id}, protocol version {sc.protocol_version_label}"))
    return out


def assessments_due(patients: _Patients, today: date) -> list[Line]:
    first, until = today.isoformat(), (today + timedelta(days=HORIZON_DAYS)).isoformat()
    return [_event_line(row, e, e["name"], e["status"])
            for row, e in patients.events()
            if e["kind"] in _ASSESSMENTS and e["status"] in _OPEN and e["date"]
            and first <= e["date"] <= until]


def overdue_events(patients: _Patients, today: date) -> list[Line]:
    out = []
    for row, e in patients.events():
        if e["status"] == "missed":
            out.append(_event_line(row, e, e["name"], "its window passed without a record"))
        elif e["status"] == "due" and e["date"] and e["date"] < today.isoformat() \
                and e["kind"] not in ("course", "milestone"):
            out.append(_event_line(row, e, e["name"], "due and past its date; record it"))
    return out


def _query_lines(ctx: Services, who: Principal, role: Role, waiting: str) -> list[Line]:
    out = []
    for q in queries.open_queries(ctx, who, role=role.value, waiting_for=waiting):
        out.append(Line(q["study_number"], q["trial_id"],
                        f"{q['form_title']} — {q['field_label']}: {q['question']}",
                        q["updated_at"][:10], f"/queries/{q['id']}",
                        f"query {q['id']}, {q['status_label']}"))
    return out


Builder = Callable[[Services, Principal, _Patients, date], list[Line]]

#: Per role: (section id, title, what an empty section says, how its lines are found).
SECTIONS: dict[Role, tuple[tuple[str, str, str, Builder], ...]] = {
    Role.PHARMACIST: (
        ("doses", "Doses to sign", "No dose awaits your sign-off in the next 14 days.",
         lambda ctx, who, p, today: doses_to_sign(p, today)),),
    Role.INVESTIGATOR: (
        ("actions", "Toxicity actions awaiting a decision", "No proposed action awaits a "
         "decision.", lambda ctx, who, p, today: actions_to_decide(ctx, p)),
        ("eligibility", "Eligibility awaiting sign-off", "No eligible patient awaits "
         "sign-off.", lambda ctx, who, p, today: eligibility_to_sign(ctx, p)),
        ("queries-site", "Data queries to answer", "No open data query.",
         lambda ctx, who, p, today: _query_lines(ctx, who, Role.INVESTIGATOR, "site"))),
    Role.COORDINATOR: (
        ("assessments", "Assessments due in the next 14 days", "No assessment is due in "
         "the next 14 days.", lambda ctx, who, p, today: assessments_due(p, today)),
        ("overdue", "Overdue events", "No event is overdue.",
         lambda ctx, who, p, today: overdue_events(p, today)),
        ("queries-site", "Data queries to answer", "No open data query.",
         lambda ctx, who, p, today: _query_lines(ctx, who, Role.COORDINATOR, "site"))),
    Role.MONITOR: (
        ("queries-monitor", "Answered data queries to review", "No answered query awaits "
         "review.", lambda ctx, who, p, today: _query_lines(ctx, who, Role.MONITOR,
                                                             "monitor")),
        ("queries-open", "Your open data queries, waiting for the site", "No query waits "
         "for the site.", lambda ctx, who, p, today: _query_lines(ctx, who, Role.MONITOR,
                                                                   "site"))),
}


def worklist(ctx: Services, who: Principal) -> dict[str, Any]:
    """The caller's worklist: one section per task of each role they hold (a role
    without tasks, such as the statistician's, gives none)."""
    user = who.require_user()
    today = ctx.store.now().date()
    held = {m.role for m in who.memberships}
    sections = []
    for role, specs in SECTIONS.items():
        if role.value not in held:
            continue
        patients = _Patients(ctx, who, role)
        for sid, title, empty, build in specs:
            sections.append(Section(sid, title, role.value, empty,
                                    _sorted(build(ctx, who, patients, today))))
    return {"user": user.full_name, "today": today.isoformat(), "horizon_days": HORIZON_DAYS,
            "roles": sorted(held), "sections": [s.to_json() for s in sections],
            "total": sum(len(s.lines) for s in sections)}

"""Rich renderings for the command line: trial list, registry page, screening reports."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from trialdesk.criteria.ast import to_text
from trialdesk.criteria.verdict import Outcome, ScreeningResult, Verdict
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.protocol.model import CourseStep, MilestoneStep, ProcedureStep, Protocol, TimedStep

OUTCOME_STYLE = {Outcome.MET: "green", Outcome.NOT_MET: "red", Outcome.UNKNOWN: "yellow"}
VERDICT_STYLE = {Verdict.ELIGIBLE: "bold green", Verdict.INELIGIBLE: "bold red",
                 Verdict.UNDETERMINED: "bold yellow"}
OUTCOME_LABEL = {Outcome.MET: "met", Outcome.NOT_MET: "not met", Outcome.UNKNOWN: "unknown"}


def phases(p: Protocol) -> str:
    return ", ".join(x.replace("PHASE", "Phase ") for x in p.registry.design.phases) or "—"


def trials_table(protocols: list[CompiledProtocol]) -> Table:
    t = Table(title="Registered trials", show_lines=True)
    for col in ("Trial", "Title", "Phase", "Status", "Conditions", "Arms"):
        t.add_column(col, overflow="fold")
    for c in protocols:
        p = c.protocol
        t.add_row(p.id, p.title, phases(p), p.registry.status.display_status
                  or p.registry.status.overall_status.replace("_", " ").title(),
                  "\n".join(p.registry.conditions), "\n".join(a.label for a in p.arms))
    return t


def _section(title: str, body: str | Text | Table | Group) -> Panel:
    return Panel(body, title=f"[bold]{title}", title_align="left", expand=True)


def regimen_lines(p: Protocol, arm_id: str) -> list[str]:
    """The plan of one arm as readable lines (doses with their unconfirmed marks)."""
    arm = p.arm(arm_id)
    lines: list[str] = []
    for step in arm.plan:
        if isinstance(step, ProcedureStep):
            lines.append(f"Day {step.procedure.day}: {step.procedure.name}")
        elif isinstance(step, CourseStep):
            course = p.course(step.course)
            times = f" × {step.repeats}" if step.repeats > 1 else ""
            cond = f" (if {step.condition})" if step.condition else ""
            length = course.length_days
            mark = " [unconfirmed]" if length.unconfirmed else ""
            lines.append(f"{course.name}{times}, {length.value}-day courses{mark}{cond}")
            for adm in course.administrations:
                variant = f" [{adm.variant}]" if adm.variant else ""
                optional = " (optional)" if adm.optional else ""
                days = ", ".join(str(d) for d in adm.days)
                lines.append(f"    {adm.agent}{variant}{optional}: {adm.dose.shown()} {adm.route}, "
                             f"days {days}")
            for proc in course.procedures:
                lines.append(f"    day {proc.day}: {proc.name}")
        elif isinstance(step, TimedStep):
            lines.append(f"{step.timed}: within {step.within_hours.shown()} of {step.anchor}")
            if step.administration is not None:
                lines.append(f"    {step.administration.agent}: {step.administration.dose.shown()} "
                             f"{step.administration.route}")
        elif isinstance(step, MilestoneStep):
            to = f"–{step.to_day}" if step.to_day is not None else ""
            lines.append(f"Day {step.from_day}{to}: {step.milestone}")
    for a in arm.assessments:
        when = f"every {a.every_courses} courses" if a.every_courses else f"day {a.day}"
        crit = f" ({a.criteria})" if a.criteria else ""
        lines.append(f"Assessment: {a.name}{crit}, {when}")
    for s in arm.sampling:
        mark = " [unconfirmed]" if s.unconfirmed else ""
        moments = [f"days {', '.join(str(d) for d in s.days)}"] if s.days else []
        moments += [f"before each {c} course" for c in s.before_courses]
        moments += [f"before the {s.before}"] if s.before else []
        moments += [f"at {s.at_event}"] if s.at_event else []
        lines.append(f"Sampling: {s.what()}, {'; '.join(moments)}{mark}")
    return lines


def registry_page(console: Console, compiled: CompiledProtocol) -> None:
    """The trial laid out like the seed registry pages."""
    p = compiled.protocol
    r = p.registry
    console.print(Text(p.title, style="bold"))
    console.print(r.sponsor.lead_sponsor.name)
    ident = r.identification
    ids = [x for x in (ident.nct_id, ident.org_study_id, *ident.secondary_ids) if x]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    status = r.status.display_status or r.status.overall_status.replace("_", " ").title()
    facts.add_row("Status and phase", f"{status}; {phases(p)}")
    facts.add_row("Conditions", "\n".join(r.conditions))
    facts.add_row("Treatments", "\n".join(f"{i.type.replace('_', ' ').title()}: {i.name}"
                                          for i in r.arms_interventions.interventions))
    facts.add_row("Study type", r.design.study_type.title())
    if r.sponsor.funder_type:
        facts.add_row("Funder types", r.sponsor.funder_type)
    facts.add_row("Identifiers", "\n".join(ids) or "—")
    facts.add_row("Protocol version", p.version)
    console.print(facts)
    console.print(_section("About", Text(r.description.brief_summary)))
    if r.description.detailed_description:
        console.print(_section("Full description", Text(r.description.detailed_description)))
    e = r.eligibility
    details = Table.grid(padding=(0, 2))
    details.add_column(style="bold")
    details.add_column()
    if r.design.enrollment:
        details.add_row("Enrollment", f"{r.design.enrollment.count} "
                                      f"{r.design.enrollment.type.lower()} patients")
    details.add_row("Sex", e.sex.title())
    details.add_row("Ages", f"{e.minimum_age or '—'} to {e.maximum_age or '—'} old")
    details.add_row("Volunteers", "Healthy volunteers" if e.healthy_volunteers
                    else "No Healthy Volunteers")
    console.print(details)
    for title, criteria in (("Inclusion criteria", p.eligibility.inclusion),
                            ("Exclusion criteria", p.eligibility.exclusion)):
        t = Table(show_header=True, show_lines=True, expand=True)
        t.add_column("#", no_wrap=True)
        t.add_column("Criterion", ratio=3)
        t.add_column("Rule", ratio=2, style="cyan")
        for c in criteria:
            t.add_row(c.id, Text(c.text), Text(f"investigator attests: {c.attest}" if c.attest
                                               else to_text(compiled.rules[c.id])))
        console.print(_section(title, t))
    d = r.design
    design = Table.grid(padding=(0, 2))
    design.add_column(style="bold")
    design.add_column()
    design.add_row("Primary purpose", (d.primary_purpose or "—").title())
    design.add_row("Allocation", d.allocation.replace("_", "-").title())
    design.add_row("Interventional model", (d.intervention_model or "—").title())
    design.add_row("Masking", d.masking_description or d.masking.title())
    console.print(_section("Trial design", design))
    for arm in p.arms:
        rule = compiled.arm_rules.get(arm.id)
        how = (f"assigned when: {to_text(rule)}" if rule is not None
               else f"by randomisation {arm.assignment.randomisation}")
        body = "\n".join([f"{arm.type.replace('_', ' ').title()} group; {how}",
                          *([arm.description] if arm.description else []),
                          *regimen_lines(p, arm.id)])
        console.print(_section(arm.label, Text(body)))


def screening_report(console: Console, r: ScreeningResult) -> None:
    head = Text.assemble((f"{r.trial_id} v{r.protocol_version}", "bold"), "  patient ",
                         (r.patient_id, "bold"), "  ", (r.verdict.value.upper(),
                                                        VERDICT_STYLE[r.verdict]),
                         f"  arm: {r.arm or '—'} ({r.arm_note})")
    console.print(head)
    t = Table(show_lines=True, expand=True)
    t.add_column("#", no_wrap=True)
    t.add_column("Kind", no_wrap=True)
    t.add_column("Outcome", no_wrap=True)
    t.add_column("Criterion", ratio=3)
    t.add_column("Evidence / missing", ratio=3)
    for c in r.criteria:
        ev = [f"{e.fact} = {e.value}{' ' + e.unit if e.unit else ''}"
              f"{' (' + e.observed.isoformat() + ')' if e.observed else ''}" for e in c.evidence]
        ev += [f"missing {m.fact}: {m.reason}" for m in c.missing]
        t.add_row(c.id, c.kind, Text(OUTCOME_LABEL[c.outcome], style=OUTCOME_STYLE[c.outcome]),
                  Text(c.text if len(c.text) < 160 else c.text[:157] + "…"),
                  Text("\n".join(ev) or "—"))
    console.print(t)
    if r.missing_facts:
        console.print(f"To resolve the unknowns, record: {', '.join(r.missing_facts)}",
                      highlight=False)
    if r.arm is None and r.arm_missing_facts:
        console.print(f"To decide the arm, record: {', '.join(r.arm_missing_facts)}", highlight=False)
    console.print()


def screening_matrix(rows: list[tuple[str, list[ScreeningResult]]], trial_ids: list[str]) -> Table:
    t = Table(title="Verdict per patient and trial (arm; unknown criteria)", show_lines=True)
    t.add_column("Patient file")
    for tid in trial_ids:
        t.add_column(tid)
    for name, results in rows:
        cells = []
        for r in results:
            unknown = [c.id for c in r.criteria if c.outcome is Outcome.UNKNOWN]
            failed = [c.id for c in r.criteria
                      if (c.kind == "inclusion" and c.outcome is Outcome.NOT_MET)
                      or (c.kind == "exclusion" and c.outcome is Outcome.MET)]
            detail = []
            if r.arm:
                detail.append(f"arm {r.arm}")
            if failed:
                detail.append("fails " + ", ".join(failed))
            if unknown and r.verdict is not Verdict.INELIGIBLE:
                detail.append("unknown " + ", ".join(unknown))
            cells.append(Text.assemble((r.verdict.value, VERDICT_STYLE[r.verdict]),
                                       "\n" + "; ".join(detail) if detail else ""))
        t.add_row(name, *cells)
    return t

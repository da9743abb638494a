"""The DSMB report: enrolment, exposure, toxicity, deaths, stopping rules, response, plots.

The tables are pure functions of the inputs (each returns a DataFrame a test can check);
:func:`dsmb_pdf` lays them out on A4 landscape pages with matplotlib's PDF backend
(``PdfPages``) and returns the bytes. Nothing here reads a file or the clock: the data
cut-off is given, or it is the latest date found in the data.

Stopping rules come from two places: the protocol's own (``stopping_rules:`` in the
protocol file, checked by :mod:`trialdesk.safety.stopping`) and, when given, a simple
count-based status file (:class:`CountRule`: patients with a qualifying adverse event,
deaths, related deaths, against a threshold).
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import matplotlib as mpl
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.events import EventTable
from trialdesk.outcomes.inputs import AdverseEvents, Exposure, Measurements
from trialdesk.outcomes.plots import (
    _RC,
    ae_heatmap_figure,
    km_figure,
    swimmer_figure,
    waterfall_figure,
)
from trialdesk.outcomes.products import (
    TrialProducts,
    deadline_table,
    exceptional_table,
    infusions_table,
    products_table,
    refusals_table,
    release_failures_table,
)
from trialdesk.outcomes.summary import OutcomeSummary, format_time
from trialdesk.safety.stopping import ReportedEvent, check_stopping
from trialdesk.safety.stopping import StoppingRule as ProtocolStoppingRule

PAGE = (11.69, 8.27)  # A4 landscape, inches
ROWS_PER_PAGE = 26
GRADES = (1, 2, 3, 4, 5)
RESPONSES = ("CR", "PR", "MR", "SD", "PD", "NE")


# --- stopping rules ------------------------------------------------------------------------


class CountRule(BaseModel):
    """A count-based stopping rule: how many patients (or deaths) against a threshold.

    ``count`` is ``patients_with_ae`` (patients with at least one adverse event matching
    ``terms``/``min_grade``/``serious_only``/``related_only``), ``deaths`` (deaths in the
    event table) or ``deaths_related`` (patients with a fatal adverse event suspected to
    be related to a study agent). The rule is met when the count reaches ``threshold``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1)
    count: Literal["patients_with_ae", "deaths", "deaths_related"]
    threshold: int = Field(ge=1)
    terms: tuple[str, ...] = ()
    min_grade: int = Field(default=1, ge=1, le=5)
    serious_only: bool = False
    related_only: bool = False
    source: str = Field(min_length=1)
    unconfirmed: bool = False

    @field_validator("terms")
    @classmethod
    def _tidy(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(" ".join(t.split()) for t in value)


def parse_stopping_rules(data: Any, *, where: str = "stopping rules") -> tuple[CountRule, ...]:
    """Stopping rules from parsed JSON: ``{"rules": [...]}`` or a bare list.

    >>> [r.name for r in parse_stopping_rules({"rules": [{"name": "Deaths", "count": "deaths",
    ...     "threshold": 2, "source": "protocol §9"}]})]
    ['Deaths']
    """
    rules = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(rules, list):
        raise OutcomeError("expected a list of rules (or an object with 'rules')", where=where)
    parsed = []
    for index, raw in enumerate(rules, start=1):
        try:
            parsed.append(CountRule.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            field_name = ".".join(str(p) for p in first["loc"]) or "rule"
            raise OutcomeError(first["msg"], where=f"{where}: rule {index}: {field_name}") from None
    return tuple(parsed)


STOPPING_COLUMNS = ["rule", "count", "threshold", "status", "patients", "source"]


def protocol_stopping_status(
    rules: Sequence[ProtocolStoppingRule], aes: AdverseEvents, events: EventTable
) -> pd.DataFrame:
    """The protocol's own stopping rules (``stopping_rules:`` in the protocol file) run by
    :func:`trialdesk.safety.stopping.check_stopping` on the trial's adverse events."""
    arms = _arm_of(events)
    reported = [ReportedEvent(r.patient_id, r.event, arms.get(r.patient_id)) for r in aes.records]
    rows = []
    for result in check_stopping(rules, reported):
        patients = sorted({label.split(":", 1)[0] for label in result.counted})
        rows.append({
            "rule": f"{result.rule_id}: {result.title}" + (" [unconfirmed]" if result.unconfirmed else ""),
            "count": result.count,
            "threshold": "—" if result.threshold is None else f"{result.threshold:g}",
            "status": result.status.value.replace("_", " ")
            + (f" ({result.open_count} open)" if result.open_count else ""),
            "patients": ", ".join(patients) or "—",
            "source": result.source,
        })
    return pd.DataFrame(rows, columns=STOPPING_COLUMNS)


def stopping_status(
    rules: Sequence[CountRule], events: EventTable, aes: AdverseEvents | None
) -> pd.DataFrame:
    """Each count rule with its count, threshold, status and the patients counted."""
    rows = []
    for rule in rules:
        patients: set[str] = set()
        if rule.count == "deaths":
            patients = set(events.frame.loc[events.frame["death_date"].notna(), "patient_id"])
        elif aes is not None:
            wanted = {t.casefold() for t in rule.terms}
            for record in aes.records:
                ae = record.event
                if rule.count == "deaths_related":
                    if ae.fatal and ae.suspected_related:
                        patients.add(record.patient_id)
                    continue
                if wanted and ae.term.casefold() not in wanted:
                    continue
                if ae.grade < rule.min_grade or (rule.serious_only and not ae.serious):
                    continue
                if rule.related_only and not ae.suspected_related:
                    continue
                patients.add(record.patient_id)
        count = len(patients)
        met = count >= rule.threshold
        rows.append({
            "rule": rule.name + (" [unconfirmed]" if rule.unconfirmed else ""),
            "count": count,
            "threshold": rule.threshold,
            "status": "triggered" if met else "not triggered",
            "patients": ", ".join(sorted(patients)) or "—",
            "source": rule.source,
        })
    return pd.DataFrame(rows, columns=STOPPING_COLUMNS)


# --- tables --------------------------------------------------------------------------------


def _arm_of(events: EventTable) -> dict[str, str]:
    return dict(zip(events.frame["patient_id"], events.frame["arm"], strict=True))


def enrolment_table(events: EventTable) -> pd.DataFrame:
    """Per arm and overall: patients, first and last enrolment, deaths, alive, follow-up.

    Follow-up is the median time from enrolment to last contact among patients alive
    (months, days / (365.25 / 12)).
    """
    frame = events.frame
    rows = []
    for arm in (*events.arms, "all"):
        part = frame if arm == "all" else frame[frame["arm"] == arm]
        alive = part[part["death_date"].isna()]
        follow = (alive["last_contact_date"] - alive["enrolment_date"]).dt.days / (365.25 / 12)
        rows.append({
            "arm": arm, "patients": len(part),
            "first enrolment": _date(part["enrolment_date"].min()),
            "last enrolment": _date(part["enrolment_date"].max()),
            "deaths": int(part["death_date"].notna().sum()), "alive": len(alive),
            "median follow-up of alive (mo)": f"{follow.median():.1f}" if len(alive) else "—",
        })
    return pd.DataFrame(rows)


def exposure_table(exposure: Exposure, events: EventTable) -> pd.DataFrame:
    """Per arm and agent: patients exposed, courses given, courses per patient (median, range)."""
    arms = _arm_of(events)
    frame = exposure.frame.assign(arm=exposure.frame["patient_id"].map(arms))
    rows = []
    for arm in events.arms:
        part = frame[frame["arm"] == arm]
        agents = ["any agent", *sorted(part["agent"].unique())]
        for agent in agents:
            sub = part if agent == "any agent" else part[part["agent"] == agent]
            per_patient = sub.groupby("patient_id")["course"].nunique()
            rows.append({
                "arm": arm, "agent": agent, "patients": int(per_patient.size),
                "courses given": int(per_patient.sum()),
                "courses per patient, median (range)": _median_range(per_patient),
            })
    return pd.DataFrame(rows, columns=["arm", "agent", "patients", "courses given",
                                       "courses per patient, median (range)"])


def _median_range(values: pd.Series) -> str:
    if values.empty:
        return "—"
    return f"{values.median():g} ({values.min():g}–{values.max():g})"


def ae_grade_table(aes: AdverseEvents, events: EventTable) -> pd.DataFrame:
    """Patients by term and worst grade, per arm (each patient once per term, worst grade).

    Columns: ``term``, then for each arm ``<arm> G1`` … ``<arm> G5``, ``<arm> any``,
    ``<arm> ≥G3``. A last row counts patients with any adverse event.
    """
    arms = _arm_of(events)
    frame = aes.frame.assign(arm=aes.frame["patient_id"].map(arms))
    worst = frame.groupby(["term", "arm", "patient_id"])["grade"].max().reset_index()
    terms = worst.groupby("term")["patient_id"].nunique().sort_values(ascending=False, kind="stable")
    rows = []
    for term in (*terms.index, "Any adverse event"):
        if term == "Any adverse event":
            part = frame.groupby(["arm", "patient_id"])["grade"].max().reset_index()
        else:
            part = worst[worst["term"] == term]
        row: dict[str, Any] = {"term": term}
        for arm in events.arms:
            mine = part[part["arm"] == arm]
            for grade in GRADES:
                row[f"{arm} G{grade}"] = int((mine["grade"] == grade).sum())
            row[f"{arm} any"] = len(mine)
            row[f"{arm} ≥G3"] = int((mine["grade"] >= 3).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def ae_relation_table(aes: AdverseEvents) -> pd.DataFrame:
    """Events by term and agent: how many were suspected to be related to that agent.

    Related = possible, probable or definite; not related = unrelated or unlikely (NCI
    CTEP attribution scale). An event with no attribution recorded for an agent is
    counted under ``not assessed`` for it.
    """
    agents = sorted({a.agent for r in aes.records for a in r.event.attributions})
    terms = pd.Series([r.event.term for r in aes.records]).value_counts(sort=True)
    rows = []
    for term in terms.index:
        records = [r for r in aes.records if r.event.term == term]
        for agent in agents:
            given = [a for r in records for a in r.event.attributions if a.agent == agent]
            related = sum(a.attribution.suspected for a in given)
            if not given:
                continue
            rows.append({"term": term, "agent": agent, "events": len(records),
                         "related": related, "not related": len(given) - related,
                         "not assessed": len(records) - len(given)})
    return pd.DataFrame(rows, columns=["term", "agent", "events", "related", "not related",
                                       "not assessed"])


def sae_listing(aes: AdverseEvents, events: EventTable) -> pd.DataFrame:
    """Every serious adverse event (any ICH E2A criterion), by patient and onset."""
    arms = _arm_of(events)
    rows = []
    for r in aes.records:
        ae = r.event
        if not ae.serious:
            continue
        rows.append({
            "patient": r.patient_id, "arm": arms.get(r.patient_id, "—"),
            "course": "—" if r.course is None else str(r.course), "term": ae.term,
            "grade": ae.grade, "onset": ae.onset.isoformat(),
            "criteria": ", ".join(sorted(s.value.replace("_", " ") for s in ae.seriousness)),
            "outcome": ae.outcome.value.replace("_", " ") if ae.outcome else "—",
            "suspected agents": ", ".join(a.agent for a in ae.attributions if a.attribution.suspected)
            or "none",
        })
    frame = pd.DataFrame(rows, columns=["patient", "arm", "course", "term", "grade", "onset",
                                        "criteria", "outcome", "suspected agents"])
    return frame.sort_values(["patient", "onset"], kind="stable").reset_index(drop=True)


def death_listing(events: EventTable, aes: AdverseEvents | None) -> pd.DataFrame:
    """Every death: date, study day, whether after progression or relapse, fatal AE terms."""
    fatal: dict[str, list[str]] = {}
    if aes is not None:
        for r in aes.records:
            if r.event.fatal:
                fatal.setdefault(r.patient_id, []).append(r.event.term)
    rows = []
    for record in events.frame.to_dict(orient="records"):
        death = record["death_date"]
        if pd.isna(death):
            continue
        disease = [d for d in (record["progression_date"], record["relapse_date"]) if not pd.isna(d)]
        rows.append({
            "patient": record["patient_id"], "arm": record["arm"], "death date": _date(death),
            "study day": int((death - record["enrolment_date"]).days),
            "after progression/relapse": "yes" if disease and min(disease) <= death else "no",
            "fatal AE (grade 5)": ", ".join(fatal.get(record["patient_id"], [])) or "none recorded",
        })
    return pd.DataFrame(rows, columns=["patient", "arm", "death date", "study day",
                                       "after progression/relapse", "fatal AE (grade 5)"])


def response_table(events: EventTable) -> pd.DataFrame:
    """Best overall response counts per arm (with criteria), and patients not assessed."""
    rows = []
    for arm in (*events.arms, "all"):
        part = events.frame if arm == "all" else events.frame[events.frame["arm"] == arm]
        row: dict[str, Any] = {"arm": arm, "patients": len(part)}
        for response in RESPONSES:
            row[response] = int((part["best_response"] == response).sum())
        row["not assessed"] = int(part["best_response"].isna().sum())
        criteria = sorted({c for c in part["response_criteria"] if isinstance(c, str)})
        row["criteria"] = ", ".join(criteria) or "—"
        rows.append(row)
    return pd.DataFrame(rows)


def proportion_table(summary: OutcomeSummary) -> pd.DataFrame:
    """ORR and short-term mortality per arm: count / denominator, rate and exact CI."""
    rows = []
    for prop in summary.proportions.values():
        level = f"{prop.confidence_level:.0%}"
        for arm, s in prop.summary.iterrows():
            derived = bool(s["derived"]) or not s["patients"]
            rows.append({
                "endpoint": prop.name, "arm": arm, "count / denominator":
                f"{int(s['count'])} / {int(s['denominator'])}" if derived else "not derived",
                "rate": _pct(s["rate"]), f"{level} CI (exact)":
                f"{_pct(s['ci_lower'])}–{_pct(s['ci_upper'])}" if s["denominator"] else "—",
                "not in denominator": int(s["patients"] - s["denominator"]),
            })
    return pd.DataFrame(rows)


def survival_table(summary: OutcomeSummary) -> pd.DataFrame:
    """Per time-to-event endpoint and arm: n, events, median (CI), landmark survival, log-rank p."""
    rows = []
    unit = summary.time_unit
    for tte in summary.time_to_event.values():
        km = tte.kaplan_meier
        if km is None:
            rows.append({"endpoint": tte.endpoint.name, "arm": "—", "n": 0, "events": 0,
                         "median (95% CI)": tte.note or "—"})
            continue
        marks = tte.landmarks
        for group, s in km.summary.iterrows():
            row: dict[str, Any] = {
                "endpoint": tte.endpoint.name, "arm": group, "n": int(s["n"]),
                "events": int(s["events"]),
                "median (95% CI)": f"{format_time(s['median'], unit)} "
                f"({format_time(s['median_lower'], unit)}–{format_time(s['median_upper'], unit)})",
            }
            for t in summary.landmark_times:
                hit = marks[(marks["group"] == group) & (marks["time"] == t)]
                label = f"at {t:g} {'d' if unit == 'days' else 'mo'}"
                row[label] = "—" if hit.empty or pd.isna(hit["survival"].iloc[0]) else \
                    f"{_pct(hit['survival'].iloc[0])} ({_pct(hit['lower'].iloc[0])}–" \
                    f"{_pct(hit['upper'].iloc[0])})"
            row["log-rank p"] = "—" if tte.logrank is None else f"{tte.logrank.p_value:.3f}"
            rows.append(row)
    return pd.DataFrame(rows)


def _pct(value: float) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def _date(value: Any) -> str:
    return "—" if pd.isna(value) else pd.Timestamp(value).date().isoformat()


def data_cutoff(events: EventTable, aes: AdverseEvents | None = None) -> date:
    """The latest date in the data: last contact, death or adverse-event onset."""
    dates = [d for c in ("last_contact_date", "death_date") for d in events.frame[c].dropna()]
    if aes is not None:
        dates += [pd.Timestamp(r.event.onset) for r in aes.records]
    return max(dates).date()


# --- the document --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DsmbInputs:
    """Everything the DSMB report is made from; only the event table is required."""

    trial: str
    title: str
    events: EventTable
    summary: OutcomeSummary
    aes: AdverseEvents | None = None
    exposure: Exposure | None = None
    measurements: Measurements | None = None
    stopping: pd.DataFrame | None = None
    cutoff: date | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)
    products: TrialProducts | None = None
    # Biomarker analyses: (title, table, note) per table, and the notes on missing data.
    biomarkers: tuple[tuple[tuple[str, pd.DataFrame, str], ...], tuple[str, ...]] | None = None


def dsmb_pdf(inputs: DsmbInputs) -> bytes:
    """The DSMB report as PDF bytes (A4 landscape; the same inputs give the same bytes).

    The cover's contents list exactly the sections and figures that follow it.
    """
    cutoff = inputs.cutoff or data_cutoff(inputs.events, inputs.aes)
    buffer = io.BytesIO()
    with mpl.rc_context(_RC):
        metadata = {"Title": f"{inputs.trial} DSMB report, data cut-off {cutoff.isoformat()}",
                    "CreationDate": None, "Creator": "trialdesk"}
        with PdfPages(buffer, metadata=metadata) as pdf:
            pages = _Pages(inputs.trial, cutoff, pdf)
            sections = _sections(inputs)
            _cover(pages, inputs, cutoff, [title for title, _ in sections])
            for _, draw in sections:
                draw(pages)
    return buffer.getvalue()


Section = tuple[str, Callable[["_Pages"], None]]


def _sections(inputs: DsmbInputs) -> list[Section]:
    """The report's sections and figures in order: (contents line, how to draw it)."""
    out: list[Section] = []

    def table(title: str, frame: pd.DataFrame, note: str = "", empty: str = "No rows.") -> None:
        out.append((title, lambda pages: pages.table(title, frame, note, empty=empty)))

    def note(title: str, text: str, listed: str) -> None:
        out.append((listed, lambda pages: pages.note(title, text)))

    def figure(title: str, make: Callable[[], Figure]) -> None:
        out.append((f"Figure: {title}", lambda pages: pages.figure(make())))

    table("1. Enrolment", enrolment_table(inputs.events),
          "Patients per arm as in the event table; deaths from any cause.")
    if inputs.exposure is not None:
        table("2. Exposure", exposure_table(inputs.exposure, inputs.events),
              "Courses started per agent (one row per agent per course in the exposure file).")
    else:
        note("2. Exposure", "No exposure file was given.", "2. Exposure (no file given)")
    aes = inputs.aes if inputs.aes is not None and len(inputs.aes) else None
    if aes is not None:
        version = aes.records[0].event.ctcae_version
        table("3. Adverse events by term and worst grade", ae_grade_table(aes, inputs.events),
              f"Patients, counted once per term at their worst grade (CTCAE v{version}). "
              "≥G3: grade 3 or worse.")
        table("4. Adverse events by relation to each agent", ae_relation_table(aes),
              "Events; related = possible, probable or definite (NCI CTEP attribution "
              "scale); not related = unrelated or unlikely.")
        table("5. Serious adverse events", sae_listing(aes, inputs.events),
              "Serious by any ICH E2A criterion.", empty="No serious adverse event.")
    else:
        note("3-5. Adverse events", "No adverse-event file was given.",
             "3-5. Adverse events (no file given)")
    table("6. Deaths", death_listing(inputs.events, inputs.aes),
          "Deaths from the event table; fatal AE terms from the adverse-event file.", empty="No death.")
    if inputs.stopping is not None:
        table("7. Stopping rules", inputs.stopping,
              "Each rule's count against its threshold. [unconfirmed] marks a rule or "
              "threshold not confirmed from the protocol document.")
    else:
        note("7. Stopping rules", "No stopping-rule status file was given.",
             "7. Stopping rules (no file given)")
    if inputs.events.frame["best_response"].notna().any():
        table("8. Best overall response", response_table(inputs.events),
              "Best overall response as recorded in the event table.")
    else:
        note("8. Best overall response", "No best overall response is recorded.",
             "8. Best overall response (none recorded)")
    summary = inputs.summary
    if summary.proportions:
        table("9. Response and mortality rates", proportion_table(summary),
              "; ".join(f"{p.name}: {p.definition}" for p in summary.proportions.values()))
    if summary.time_to_event:
        definitions = "; ".join(f"{t.endpoint.name}: {t.endpoint.definition}"
                                for t in summary.time_to_event.values())
        table("10. Survival", survival_table(summary),
              f"Kaplan–Meier (lifelines); CI log-log. {definitions}.")
    if inputs.products is not None:
        out += _product_sections(inputs.products)
    for name, tte in summary.time_to_event.items():
        if tte.kaplan_meier is not None:
            figure(f"Kaplan–Meier, {tte.endpoint.name}", functools.partial(
                km_figure, tte.kaplan_meier, title=f"{tte.endpoint.name} — {inputs.trial}",
                y_label=f"{name} probability", time_unit=summary.time_unit, logrank=tte.logrank))
    figure("swimmer (time on study)", functools.partial(
        swimmer_figure, inputs.events, exposure=inputs.exposure, measurements=inputs.measurements,
        time_unit=summary.time_unit, title=f"Time on study — {inputs.trial}"))
    if inputs.measurements is not None:
        figure("waterfall (best change in tumour size)", functools.partial(
            waterfall_figure, inputs.measurements, inputs.events,
            title=f"Best change in tumour size — {inputs.trial}"))
    if aes is not None:
        figure("adverse-event heat-map", functools.partial(ae_heatmap_figure, aes))
    out += biomarker_sections(inputs)
    return out


def _product_sections(data: TrialProducts) -> list[Section]:
    """Section 11, cell products: per patient, release failures, exceptional releases,
    refused bedside checks, infusions and deadline compliance."""
    parts = [
        ("11a. Cell products per patient", products_table(data),
         "Products by recipient (autologous: the donor); released / not released by the latest "
         "signed release decision; awaiting: a type with release tests and no decision yet.",
         "No cell product recorded."),
        ("11b. Release failures", release_failures_table(data),
         "Release decisions with a test not met or unknown (unknown is never taken as met).",
         "No release decision out of specification."),
        ("11c. Exceptional releases", exceptional_table(data),
         "Out of specification, released with a clinical justification signed by the lab's "
         "responsible person and the investigator (FACT-JACIE 8th ed. D7).",
         "No exceptional release."),
        ("11d. Refused bedside verifications", refusals_table(data),
         "Two-person bedside checks that refused the product; nothing was infused on them.",
         "No refused bedside verification."),
        ("11e. Cell-product infusions", infusions_table(data),
         "Dose in viable cells/kg of the day's weight, against the protocol's range for the "
         "product type; hours from the timed event's anchor (e.g. septic-shock onset).",
         "No infusion recorded."),
        ("11f. Timed infusions: deadline compliance", deadline_table(data),
         "Infusions given by their deadline (the protocol's hours from the anchor), of all "
         "timed infusions recorded.", "No timed infusion recorded."),
    ]
    out: list[Section] = []
    for title, frame, note, empty in parts:
        out.append((title, functools.partial(_table_page, title, frame, note, empty)))
    return out


def _table_page(title: str, frame: pd.DataFrame, note: str, empty: str, pages: _Pages) -> None:
    pages.table(title, frame, note, empty=empty)
def biomarker_sections(inputs: DsmbInputs) -> list[Section]:
    """The biomarker section: each analysis table on its pages, then the notes on what is
    missing (never imputed); one note page when no biomarker input was given."""
    if inputs.biomarkers is None:
        return []
    tables, notes = inputs.biomarkers
    out: list[Section] = []
    for index, (title, frame, note) in enumerate(tables, start=1):
        heading = f"Biomarkers {index}. {title}"
        out.append((heading, functools.partial(_biomarker_table, heading, frame, note)))
    text = "\n".join(textwrap.fill(n, 150) for n in notes) or "Nothing missing."
    out.append(("Biomarkers: missing data", lambda pages: pages.note(
        "Biomarkers: missing data (counted, not imputed)", text)))
    return out


def _biomarker_table(title: str, frame: pd.DataFrame, note: str, pages: _Pages) -> None:
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "—" if pd.isna(v) else f"{v:.4g}")
    pages.table(title, shown, note)


class _Pages:
    """Adds numbered A4 pages with a running header to a ``PdfPages``."""

    def __init__(self, trial: str, cutoff: date, pdf: PdfPages) -> None:
        self.trial = trial
        self.cutoff = cutoff
        self.number = 0
        self.pdf = pdf

    def _page(self) -> Figure:
        self.number += 1
        figure = Figure(figsize=PAGE)
        figure.text(0.04, 0.965, f"{self.trial} — DSMB report — data cut-off {self.cutoff.isoformat()}",
                    fontsize=8, color="#555555")
        figure.text(0.96, 0.965, "CONFIDENTIAL", fontsize=8, color="#555555", ha="right")
        figure.text(0.96, 0.02, f"page {self.number}", fontsize=8, color="#555555", ha="right")
        return figure

    def _save(self, figure: Figure) -> None:
        self.pdf.savefig(figure)

    def note(self, title: str, text: str) -> None:
        figure = self._page()
        figure.text(0.04, 0.90, title, fontsize=14, fontweight="bold")
        figure.text(0.04, 0.85, text, fontsize=10)
        self._save(figure)

    def table(self, title: str, frame: pd.DataFrame, note: str = "", *, empty: str = "No rows.") -> None:
        chunks = [frame.iloc[i:i + ROWS_PER_PAGE] for i in range(0, len(frame), ROWS_PER_PAGE)] or [frame]
        for index, chunk in enumerate(chunks):
            figure = self._page()
            suffix = f" (continued, {index + 1}/{len(chunks)})" if index else ""
            figure.text(0.04, 0.90, title + suffix, fontsize=14, fontweight="bold")
            if note:
                figure.text(0.04, 0.865, note, fontsize=8.5, color="#333333", wrap=True)
            if chunk.empty:
                figure.text(0.04, 0.80, empty, fontsize=10)
            else:
                _draw_table(figure, chunk)
            self._save(figure)

    def figure(self, figure: Figure) -> None:
        self.number += 1
        figure.text(0.99, 0.005, f"{self.trial} — page {self.number}", fontsize=7, color="#555555",
                    ha="right")
        self.pdf.savefig(figure, bbox_inches="tight")


def _draw_table(figure: Figure, frame: pd.DataFrame) -> None:
    """Draw ``frame`` as a table under the page title; long cells wrap onto more lines."""
    ax = figure.add_axes((0.04, 0.06, 0.92, 0.78))
    ax.axis("off")
    columns = [str(c) for c in frame.columns]
    raw = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    limits = _column_limits(columns, raw)
    header = [textwrap.fill(c, max(limits[i], 4)) for i, c in enumerate(columns)]
    text = [[textwrap.fill(v, limits[i]) if len(v) > limits[i] else v for i, v in enumerate(row)]
            for row in raw]
    widths = [n + 3 for n in limits]  # room for padding and wide capitals
    table = ax.table(cellText=text, colLabels=header, colWidths=[n / sum(widths) for n in widths],
                     cellLoc="left", colLoc="left", loc="upper left")
    table.auto_set_font_size(False)
    size = 8 if len(columns) <= 10 else 7
    table.set_fontsize(size)
    line = 0.021 if size == 8 else 0.019
    heights = [max(cell.count("\n") + 1 for cell in row) for row in [header, *text]]
    for (row, _), cell in table.get_celld().items():
        cell.set_height(line * heights[row] + 0.008)
        cell.PAD = 0.03
        cell.set_edgecolor("#BBBBBB")
        cell.set_linewidth(0.4)
        if row == 0:
            cell.set_facecolor("#E8EEF4")
            cell.get_text().set_fontweight("bold")
        elif row % 2 == 0:
            cell.set_facecolor("#F7F7F7")


def _column_limits(columns: list[str], rows: list[list[str]]) -> list[int]:
    """Characters per line for each column: its longest cell, within 4 to 40."""
    limits = []
    for index, column in enumerate(columns):
        longest_cell = max((len(r[index]) for r in rows), default=0)
        longest_word = max((len(w) for w in column.split()), default=1)
        limits.append(min(max(longest_cell, longest_word, 5), 40))
    return limits


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value)


def _cover(pages: _Pages, inputs: DsmbInputs, cutoff: date, contents: list[str]) -> None:
    figure = pages._page()
    figure.text(0.04, 0.86, f"{inputs.trial}: report to the Data and Safety Monitoring Board",
                fontsize=18, fontweight="bold")
    figure.text(0.04, 0.81, inputs.title, fontsize=11, wrap=True)
    lines = [f"Data cut-off: {cutoff.isoformat()}",
             f"Patients: {len(inputs.events)} in {len(inputs.events.arms)} arm(s) "
             f"({', '.join(inputs.events.arms)})",
             f"Adverse events: {len(inputs.aes) if inputs.aes is not None else 'no file given'}",
             f"Endpoints: {', '.join(e['name'] for e in inputs.summary.to_json()['endpoints'])}",
             "", "Made from:", *[f"  {s}" for s in inputs.sources]]
    figure.text(0.04, 0.72, "\n".join(lines), fontsize=10, va="top", linespacing=1.6)
    figure.text(0.60, 0.72, "Contents\n" + "\n".join(contents), fontsize=10, va="top", linespacing=1.6)
    pages._save(figure)

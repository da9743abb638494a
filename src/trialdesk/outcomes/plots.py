"""Trial plots: Kaplan–Meier with numbers at risk, swimmer, waterfall and AE heat-map.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot's global
state (no window, no backend switch), and :func:`render` turns it into PNG, SVG or PDF
bytes. Text stays text in SVG and PDF, so a reader can search it and tests can read it.
Writing the bytes to a file is the caller's job.

>>> import pandas as pd
>>> from trialdesk.outcomes.survival import kaplan_meier
>>> km = kaplan_meier(pd.DataFrame({"t": [1, 2, 2, 5], "e": [1, 0, 1, 1], "arm": "A"}),
...                   duration_col="t", event_col="e")
>>> render(km_figure(km, title="OS"), "svg")[:5]
b'<?xml'
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, Literal

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.events import EventTable
from trialdesk.outcomes.inputs import AdverseEvents, Exposure, Measurements
from trialdesk.outcomes.survival import KaplanMeierResult, LogRankResult
from trialdesk.response.recist import PD_INCREASE, PR_DECREASE

Format = Literal["png", "svg", "pdf"]
FORMATS: tuple[str, ...] = ("png", "svg", "pdf")

# Colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008).
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                            "#F0E442", "#000000")
RESPONSE_COLOURS: dict[str, str] = {
    "CR": "#009E73", "PR": "#56B4E9", "MR": "#CC79A7", "SD": "#E69F00",
    "NON-CR/NON-PD": "#E69F00", "PD": "#D55E00", "NE": "#999999", "none": "#BBBBBB",
}
_DAYS_PER_MONTH = 365.25 / 12
_RC: Any = {  # typed loosely: matplotlib types rcParams keys as literals
    "svg.fonttype": "none",  # keep text as <text> in SVG
    "svg.hashsalt": "trialdesk",  # stable element ids: the same input gives the same file
    "pdf.fonttype": 42,  # TrueType: text in a PDF can be searched and extracted
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 10,
}


def render(figure: Figure, fmt: str) -> bytes:
    """The figure as PNG (150 dpi), SVG or PDF bytes; the same figure gives the same bytes."""
    if fmt not in FORMATS:
        raise OutcomeError(f"unknown format {fmt!r} (expected {', '.join(FORMATS)})", where="format")
    metadata: dict[str, str | None] = {"Software": None} if fmt == "png" else {"Date": None} \
        if fmt == "svg" else {"CreationDate": None}
    buffer = io.BytesIO()
    with mpl.rc_context(_RC):
        figure.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    with mpl.rc_context(_RC):
        return Figure(figsize=(width, height), layout=None)


def _time_ticks(longest: float, unit: str) -> list[float]:
    """Round tick positions covering ``longest``: weekly in days, 6- or 12-monthly in months."""
    if unit == "days":
        step = 7.0 if longest <= 63 else 14.0 if longest <= 126 else 30.0
    else:
        step = 3.0 if longest <= 18 else 6.0 if longest <= 48 else 12.0
    count = max(1, math.ceil(longest / step))
    return [step * i for i in range(count + 1)]


def unit_label(unit: str) -> str:
    return "Days since enrolment" if unit == "days" else "Months since enrolment"


# --- Kaplan–Meier --------------------------------------------------------------------------


def km_figure(
    km: KaplanMeierResult,
    *,
    title: str,
    y_label: str = "Survival probability",
    time_unit: str = "months",
    logrank: LogRankResult | None = None,
    show_ci: bool = True,
) -> Figure:
    """Kaplan–Meier curves per arm with censoring marks and a numbers-at-risk table.

    The table under the plot gives, at each tick, the patients still at risk at the end of
    that instant (KMunicate layout, Morris TP et al., BMJ Open 2019;9:e030215), except at
    time 0, where every patient of the arm is at risk (as R's ``survival`` counts it): an
    arm whose patients have no follow-up yet shows its size there, not 0, and says "no
    follow-up yet" instead of drawing an empty curve. A log-rank p-value is printed when given.
    """
    fitters = list(km.fitters_.values())
    n_groups = len(fitters)
    figure = _figure(8.0, 5.2 + 0.3 * n_groups)
    with mpl.rc_context(_RC):
        ax = figure.add_axes((0.14, 0.20 + 0.05 * n_groups, 0.82, 0.70 - 0.05 * n_groups))
        longest = max(float(f.durations.max()) for f in fitters)
        ticks = _time_ticks(longest, time_unit)
        for index, (group, fitter) in enumerate(km.fitters_.items()):
            n = int(fitter.event_table["removed"].sum())
            waiting = float(fitter.durations.max()) <= 0
            fitter.plot_survival_function(
                ax=ax, ci_show=show_ci, show_censors=True, color=PALETTE[index % len(PALETTE)],
                label=f"{_arm_name(group)} (n={n}{', no follow-up yet' if waiting else ''})",
                ci_alpha=0.15, censor_styles={"marker": "|", "ms": 9, "mew": 1.5},
            )
        if longest <= 0:
            ax.text(0.5, 0.5, "No follow-up yet: every patient's time is 0,\n"
                    "so there is no curve to draw", transform=ax.transAxes, ha="center", va="center",
                    color="#555555")
        ax.set_xlim(0, ticks[-1])
        ax.set_ylim(0, 1.02)
        ax.set_xticks(ticks)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.yaxis.set_major_formatter(mpl.ticker.PercentFormatter(xmax=1.0, decimals=0))
        ax.set_xlabel(unit_label(time_unit))
        ax.set_ylabel(y_label)
        ax.set_title(title, loc="left", fontweight="bold")
        ax.grid(True, color="#DDDDDD", linewidth=0.6)
        ax.legend(loc="lower left", frameon=False)
        if logrank is not None:
            ax.text(0.98, 0.96, f"log-rank p = {_p(logrank.p_value)}", transform=ax.transAxes,
                    ha="right", va="top")
        _at_risk_rows(ax, km, ticks)
    return figure


def _at_risk_rows(ax: Any, km: KaplanMeierResult, ticks: Sequence[float]) -> None:
    """The numbers-at-risk table under the x axis: one row per arm, a number under each tick."""
    under_ticks = mpl.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    top = -0.24
    ax.text(-0.02, top, "At risk", transform=ax.transAxes, ha="right", va="center", fontweight="bold")
    for row, (group, counts) in enumerate(at_risk_text(km, ticks).iterrows(), start=1):
        y = top - 0.08 * row
        ax.text(-0.02, y, _arm_name(str(group)), transform=ax.transAxes, ha="right", va="center")
        for tick, count in counts.items():
            ax.text(float(tick), y, str(count), transform=under_ticks, ha="center", va="center")


def _arm_name(group: str) -> str:
    return group if group.lower().startswith("arm") or len(group) > 3 else f"Arm {group}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


# --- swimmer -------------------------------------------------------------------------------


def swimmer_figure(
    events: EventTable,
    *,
    exposure: Exposure | None = None,
    measurements: Measurements | None = None,
    time_unit: str = "months",
    title: str = "Time on study",
) -> Figure:
    """One bar per patient from enrolment to death or last contact, with what happened.

    Course starts (from exposure) are ticks on the bar; time-point responses (from tumour
    measurements) are coloured dots; the first CR, progression, relapse and death are
    marked; an arrow means the patient was alive at last contact.
    """
    frame = events.frame.copy()
    scale = 1.0 if time_unit == "days" else _DAYS_PER_MONTH

    def at(when: pd.Timestamp, start: pd.Timestamp) -> float:
        return float((when - start).days) / scale

    ends = []
    for record in frame.to_dict(orient="records"):
        end = record["death_date"] if not pd.isna(record["death_date"]) else record["last_contact_date"]
        ends.append(at(end, record["enrolment_date"]))
    frame["_end"] = ends
    order = {arm: i for i, arm in enumerate(events.arms)}
    frame["_arm_order"] = frame["arm"].map(order)
    frame = frame.sort_values(["_arm_order", "_end"], ascending=[False, True], kind="stable")
    frame = frame.reset_index(drop=True)
    height = max(3.5, 0.38 * len(frame) + 1.8)
    figure = _figure(10.0, height)
    with mpl.rc_context(_RC):
        ax = figure.add_axes((0.12, 1.1 / height, 0.62, 1 - 1.7 / height))
        marks = (("first_cr_date", "*", "#009E73", 11), ("progression_date", "v", "#D55E00", 8),
                 ("relapse_date", "v", "#E69F00", 8), ("second_malignancy_date", "s", "#CC79A7", 7),
                 ("death_date", "X", "#000000", 9))
        arm_colours = {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(events.arms)}
        courses = exposure.courses() if exposure is not None else None
        for y, record in enumerate(frame.to_dict(orient="records")):
            start = record["enrolment_date"]
            ax.barh(y, record["_end"], height=0.55, color=arm_colours[record["arm"]], alpha=0.35,
                    edgecolor=arm_colours[record["arm"]])
            if courses is not None:
                mine = courses[courses["patient_id"] == record["patient_id"]]
                for c in mine.to_dict(orient="records"):
                    x = at(c["start_date"], start)
                    ax.plot([x, x], [y - 0.3, y + 0.3], color="#333333", linewidth=1.2)
            if measurements is not None:
                rows = measurements.frame[(measurements.frame["patient_id"] == record["patient_id"])
                                          & ~measurements.frame["baseline"]]
                for m in rows.to_dict(orient="records"):
                    if m["overall_response"]:
                        ax.plot(at(m["assessment_date"], start), y, "o", ms=6, mec="white",
                                color=RESPONSE_COLOURS.get(m["overall_response"], "#999999"))
            for column, marker, colour, size in marks:
                if not pd.isna(record[column]):
                    ax.plot(at(record[column], start), y, marker, color=colour, ms=size, mec="white",
                            mew=0.6, zorder=5)
            if pd.isna(record["death_date"]):
                ax.annotate("", xy=(record["_end"] + 0.04 * max(1.0, frame["_end"].max()), y),
                            xytext=(record["_end"], y),
                            arrowprops={"arrowstyle": "->", "color": "#333333", "lw": 1.2})
        ax.set_yticks(range(len(frame)))
        ax.set_yticklabels([f"{p} ({a})" for p, a in zip(frame["patient_id"], frame["arm"], strict=True)])
        ax.set_ylim(-0.7, len(frame) - 0.3)
        longest = float(frame["_end"].max()) if len(frame) else 1.0
        ticks = _time_ticks(longest * 1.06, time_unit)
        ax.set_xticks(ticks)
        ax.set_xlim(0, ticks[-1])
        ax.set_xlabel(unit_label(time_unit))
        ax.set_title(title, loc="left", fontweight="bold")
        ax.grid(True, axis="x", color="#DDDDDD", linewidth=0.6)
        handles: list[Patch | Line2D] = [Patch(color=arm_colours[a], alpha=0.5, label=_arm_name(a))
                                         for a in events.arms]
        names = {"first_cr_date": "First CR", "progression_date": "Progression",
                 "relapse_date": "Relapse", "second_malignancy_date": "Second malignancy",
                 "death_date": "Death"}
        handles += [Line2D([], [], marker=marker, color=colour, ls="", ms=min(size, 10),
                           label=names[column])
                    for column, marker, colour, size in marks if frame[column].notna().any()]
        if frame["death_date"].isna().any():
            handles.append(Line2D([], [], marker=r"$\rightarrow$", color="#333333", ls="", ms=12,
                                  label="Alive at last contact"))
        if courses is not None:
            handles.append(Line2D([], [], marker="|", color="#333333", ls="", ms=10,
                                  label="Course start"))
        if measurements is not None:
            seen = [r for r in ("CR", "PR", "MR", "SD", "NON-CR/NON-PD", "PD", "NE")
                    if (measurements.frame["overall_response"] == r).any()]
            handles += [Line2D([], [], marker="o", color=RESPONSE_COLOURS[r], ls="", ms=7,
                               label=f"Response {r}") for r in seen]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                  fontsize=8)
    return figure


# --- waterfall -----------------------------------------------------------------------------


def waterfall_figure(
    measurements: Measurements,
    events: EventTable | None = None,
    *,
    title: str = "Best change in tumour size",
) -> Figure:
    """Bars of each patient's best % change in the sum of target diameters, largest first.

    Bars are coloured by the best overall response recorded in the event table. The
    dashed lines mark the RECIST 1.1 thresholds on the sum (Eisenhauer 2009): −30% for
    PR, +20% for PD (PD also needs a 5 mm absolute increase, which a % axis cannot show).
    Patients without a post-baseline measurement are listed under the plot.
    """
    best = measurements.best_change()
    shown = best[best["best_pct_change"].notna()].sort_values("best_pct_change", ascending=False,
                                                              kind="stable")
    missing = best[best["best_pct_change"].isna()]
    responses: dict[str, str] = {}
    arms: dict[str, str] = {}
    if events is not None:
        for record in events.frame.to_dict(orient="records"):
            responses[record["patient_id"]] = record["best_response"] or "none"
            arms[record["patient_id"]] = record["arm"]
    figure = _figure(max(6.0, 0.45 * len(shown) + 3.0), 5.0)
    with mpl.rc_context(_RC):
        ax = figure.add_axes((0.12, 0.24, 0.66, 0.66))
        x = np.arange(len(shown))
        colours = [RESPONSE_COLOURS.get(responses.get(p, "none"), "#999999") for p in shown["patient_id"]]
        values = shown["best_pct_change"].to_numpy(dtype=float)
        ax.bar(x, values, color=colours, edgecolor="#333333", linewidth=0.5)
        for xi, value in zip(x, values, strict=True):
            ax.text(float(xi), value + (2 if value >= 0 else -2), f"{value:.0f}%", ha="center",
                    va="bottom" if value >= 0 else "top", fontsize=7)
        pd_line, pr_line = float(PD_INCREASE) * 100, -float(PR_DECREASE) * 100
        ax.axhline(pd_line, color="#D55E00", linestyle="--", linewidth=1)
        ax.axhline(pr_line, color="#0072B2", linestyle="--", linewidth=1)
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.text(1.005, pd_line, f"+{pd_line:.0f}% (RECIST 1.1 PD)", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8, color="#D55E00")
        ax.text(1.005, pr_line, f"{pr_line:.0f}% (RECIST 1.1 PR)", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8, color="#0072B2")
        labels = [f"{p}" + (f" ({arms[p]})" if p in arms else "") for p in shown["patient_id"]]
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        low = min(-100.0, float(values.min()) - 10 if len(values) else -100.0)
        high = max(40.0, float(values.max()) + 15 if len(values) else 40.0)
        ax.set_ylim(low, high)
        ax.set_xlim(-0.7, max(len(shown), 1) - 0.3)
        ax.set_ylabel("Best change from baseline,\nsum of target diameters (%)")
        ax.set_title(title, loc="left", fontweight="bold")
        ax.grid(True, axis="y", color="#DDDDDD", linewidth=0.6)
        if events is not None:
            present = [r for r in ("CR", "PR", "MR", "SD", "PD", "NE", "none")
                       if r in {responses.get(p, "none") for p in shown["patient_id"]}]
            ax.legend(handles=[Patch(color=RESPONSE_COLOURS[r],
                                     label="no BOR recorded" if r == "none" else f"BOR {r}")
                               for r in present],
                      loc="upper right", frameon=True, framealpha=0.9, fontsize=8,
                      title="Best overall response", title_fontsize=8)
        if len(missing):
            listed = "; ".join(f"{p}: {r}" for p, r in zip(missing["patient_id"], missing["reason"],
                                                            strict=True))
            figure.text(0.01, 0.01, f"Not shown — {listed}", fontsize=7, wrap=True)
    return figure


# --- AE heat-map ---------------------------------------------------------------------------


def ae_heatmap_table(aes: AdverseEvents) -> pd.DataFrame:
    """Patients by term (rows) and (course, worst grade) (columns).

    Each patient counts once per term and course, at the worst grade of that term in
    that course. Events without a course are in the course ``"n/a"``.

    >>> from trialdesk.outcomes.inputs import validate_adverse_events
    >>> aes = validate_adverse_events([
    ...     {"patient_id": "P1", "course": 1, "term": "Pain", "grade": 2, "onset": "2026-01-02"},
    ...     {"patient_id": "P1", "course": 1, "term": "Pain", "grade": 3, "onset": "2026-01-04"},
    ...     {"patient_id": "P2", "course": 1, "term": "Pain", "grade": 3, "onset": "2026-01-05"}])
    >>> table = ae_heatmap_table(aes)
    >>> int(table.loc["Pain", ("1", 3)]), int(table.loc["Pain", ("1", 2)])
    (2, 0)
    """
    frame = aes.frame
    versions = sorted(set(frame["ctcae_version"]))
    if len(versions) > 1:
        raise OutcomeError(
            f"grades from CTCAE versions {', '.join(versions)} cannot be counted together",
            where="adverse events",
        )
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(course=frame["course"].map(lambda c: "n/a" if pd.isna(c) else str(int(c))))
    worst = frame.groupby(["term", "course", "patient_id"], sort=False)["grade"].max().reset_index()
    counts = worst.groupby(["term", "course", "grade"]).size()
    course_names = sorted({c for c in worst["course"] if c != "n/a"}, key=int)
    if (worst["course"] == "n/a").any():
        course_names.append("n/a")
    columns = pd.MultiIndex.from_tuples([(c, g) for c in course_names for g in range(1, 6)],
                                        names=["course", "grade"])
    totals = worst.groupby("term")["patient_id"].nunique().sort_values(ascending=False, kind="stable")
    table = pd.DataFrame(0, index=pd.Index(totals.index, name="term"), columns=columns)
    for (term, course, grade), n in counts.items():
        table.loc[term, (course, int(grade))] = int(n)
    return table


def ae_heatmap_figure(aes: AdverseEvents, *, title: str | None = None) -> Figure:
    """Heat-map of patients by AE term × CTCAE grade × course (see :func:`ae_heatmap_table`)."""
    table = ae_heatmap_table(aes)
    if table.empty:
        raise OutcomeError("no adverse events to draw", where="adverse events")
    version = str(aes.records[0].event.ctcae_version)
    courses = list(dict.fromkeys(table.columns.get_level_values("course")))
    n_rows, n_cols = table.shape
    width = max(7.0, 0.32 * n_cols + 4.5)
    height = max(3.0, 0.36 * n_rows + 2.2)
    figure = _figure(width, height)
    with mpl.rc_context(_RC):
        ax = figure.add_axes((3.4 / width, 1.0 / height, 1 - 4.3 / width, 1 - 2.0 / height))
        values = table.to_numpy(dtype=float)
        shown = np.where(values > 0, values, np.nan)
        cmap = mpl.colormaps["YlOrRd"].with_extremes(bad="#F4F4F4")
        image = ax.imshow(shown, cmap=cmap, aspect="auto", vmin=0, vmax=max(1.0, float(values.max())),
                          interpolation="nearest")
        for (row, col), value in np.ndenumerate(values):
            if value > 0:
                dark = value > 0.6 * values.max()
                ax.text(col, row, f"{int(value)}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "#222222")
        for boundary in range(5, n_cols, 5):
            ax.axvline(boundary - 0.5, color="white", linewidth=3)
        ax.set_xticks(range(n_cols))
        ax.set_xticklabels([f"G{g}" for _, g in table.columns], fontsize=7)
        ax.set_yticks(range(n_rows))
        ax.set_yticklabels(table.index, fontsize=9)
        ax.tick_params(length=0)
        top = ax.secondary_xaxis("top")
        top.set_xticks([5 * i + 2 for i in range(len(courses))])
        top.set_xticklabels([f"Course {c}" if c != "n/a" else "Course n/a" for c in courses],
                            fontsize=9)
        top.tick_params(length=0)
        ax.set_xlabel(f"Worst grade in the course (CTCAE v{version})")
        ax.set_title(title or "Adverse events: patients by term, grade and course", loc="left",
                     fontweight="bold", pad=24)
        bar = figure.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
        bar.set_label("Patients")
    return figure


def at_risk_text(km: KaplanMeierResult, ticks: Sequence[float]) -> pd.DataFrame:
    """Numbers at risk per group at ``ticks``, at the end of each instant (KMunicate), except
    at time 0, where every patient is at risk.

    This is what :func:`km_figure` prints under the curves; it equals
    :meth:`KaplanMeierResult.at_risk` except at a tick after 0 where someone's time is
    exactly the tick, who counts there as no longer at risk.
    """
    rows = {}
    for group, fitter in km.fitters_.items():
        table = fitter.event_table
        counts = []
        for tick in ticks:
            upto = table.loc[:tick]
            counts.append(int(upto["at_risk"].iloc[-1] - upto["removed"].iloc[-1]) if len(upto) and tick > 0
                          else int(table["at_risk"].iloc[0]))
        rows[group] = counts
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(ticks))

"""Biomarker plots: forest plot, spaghetti plot, mean ± CI by arm over study days.

Built like :mod:`trialdesk.outcomes.plots` (no pyplot state; :func:`~trialdesk.outcomes.plots.render`
gives the bytes).

>>> import pandas as pd
>>> from trialdesk.outcomes.biomarkers import Forest
>>> rows = pd.DataFrame([{"subgroup": "all patients", "level": "", "n": 30, "events": 12,
...                       "estimate": 0.6, "lower": 0.3, "upper": 1.2, "note": ""}])
>>> fig = forest_figure(Forest("hazard ratio", rows, pd.DataFrame(), "SOC", "MSC"))
>>> len(fig.axes)
1
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from trialdesk.outcomes.biomarkers import Forest, Longitudinal
from trialdesk.outcomes.plots import PALETTE, _figure


def _p_text(p: float) -> str:
    return "p not estimable" if math.isnan(p) else "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def forest_figure(forest: Forest, *, title: str | None = None) -> Figure:
    """One row per subgroup level (and arm, for response rates): estimate and CI, n, and
    the interaction p-value beside each subgroup's name."""
    rows = forest.rows.reset_index(drop=True)
    fig = _figure(8.0, 1.2 + 0.35 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    hr = forest.measure == "hazard ratio"
    p_of = ({r["subgroup"]: r["p"] for _, r in forest.interaction.iterrows()}
            if not forest.interaction.empty else {})
    labels = []
    for i, row in rows.iterrows():
        y = len(rows) - 1 - int(str(i))
        arm = f" [{row['arm']}]" if row.get("arm") else ""
        level = f"  {row['level']}{arm}" if row["level"] else f"{row['subgroup']}{arm}"
        count = f"n={row['n']}" + (f", {row['events']} events" if hr else
                                   f", {row['responders']} resp.")
        labels.append((y, f"{level} ({count})"))
        if not math.isnan(row["estimate"]):
            colour = PALETTE[0] if not row.get("arm") or row["arm"] == forest.reference \
                else PALETTE[1]
            ax.errorbar(row["estimate"], y, xerr=[[row["estimate"] - row["lower"]],
                                                  [row["upper"] - row["estimate"]]],
                        fmt="s", color=colour, capsize=3)
        else:
            ax.text(1.0 if hr else 0.5, y, row["note"] or "not estimable", ha="center",
                    va="center", fontsize=8, color="#777777")
    # Subgroup headings with their interaction test.
    first = rows.groupby("subgroup", sort=False).head(1)
    for i, row in first.iterrows():
        if row["subgroup"] in p_of:
            top = len(rows) - 1 - int(str(i)) + 0.45
            ax.text(0.0, top, f"{row['subgroup']} — interaction {_p_text(float(p_of[row['subgroup']]))}",
                    transform=ax.get_yaxis_transform(), fontsize=8, fontweight="bold")
    ax.set_yticks([y for y, _ in labels], [text for _, text in labels])
    if hr:
        ax.set_xscale("log")
        ax.axvline(1.0, color="#555555", linewidth=0.8, linestyle="--")
        ax.set_xlabel(f"Hazard ratio, {forest.compared} vs {forest.reference} (95% CI)")
    else:
        ax.set_xlim(0, 1)
        ax.set_xlabel("Response rate (95% exact CI)")
    ax.set_ylim(-0.8, len(rows) - 0.2)
    ax.set_title(title or f"Forest plot: {forest.measure} by subgroup")
    return fig


def spaghetti_figure(result: Longitudinal, *, title: str | None = None) -> Figure:
    """One line per patient, coloured by arm; missing days are gaps, not joined guesses."""
    fig = _figure(8.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    arms = sorted(result.values["arm"].unique())
    days = sorted(result.summary["day"].unique())
    for i, arm in enumerate(arms):
        part = result.values[result.values["arm"] == arm]
        for j, (_, patient) in enumerate(part.groupby("patient_id")):
            series = patient.set_index("day")["value"].reindex(days)
            ax.plot(days, series.to_numpy(dtype=float), marker="o", markersize=3, linewidth=0.9,
                    color=PALETTE[i % len(PALETTE)], alpha=0.7, label=arm if j == 0 else None)
    _axes(ax, result, title or f"{result.biomarker}: each patient")
    return fig


def mean_ci_figure(result: Longitudinal, *, title: str | None = None) -> Figure:
    """Mean and t-based CI per arm and day, with the per-day Mann–Whitney p-values."""
    fig = _figure(8.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    summary = result.summary
    arms = sorted(summary["arm"].unique())
    offset = np.linspace(-0.15, 0.15, len(arms)) if len(arms) > 1 else [0.0]
    for i, arm in enumerate(arms):
        part = summary[summary["arm"] == arm]
        x = part["day"].to_numpy(dtype=float) + offset[i]
        mean = part["mean"].to_numpy(dtype=float)
        err = np.vstack([mean - part["lower"].to_numpy(dtype=float),
                         part["upper"].to_numpy(dtype=float) - mean])
        ax.errorbar(x, mean, yerr=err, marker="o", capsize=3, color=PALETTE[i % len(PALETTE)],
                    label=f"{arm} (mean ± 95% CI)")
    if not result.comparison.empty:
        top = ax.get_ylim()[1]
        for _, row in result.comparison.iterrows():
            if not math.isnan(row["p"]):
                ax.text(row["day"], top, _p_text(float(row["p"])), ha="center", va="bottom",
                        fontsize=7)
    _axes(ax, result, title or f"{result.biomarker}: mean ± 95% CI by arm")
    return fig


def _axes(ax: Axes, result: Longitudinal, title: str) -> None:
    missing = int(result.summary["missing"].sum())
    ax.set_xlabel(f"Study day ({missing} missing values, not imputed)")
    ax.set_ylabel(f"log10 {result.biomarker}" if result.log10 else result.biomarker)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)


__all__ = ["forest_figure", "mean_ci_figure", "spaghetti_figure"]

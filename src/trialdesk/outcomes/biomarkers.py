"""Biomarker analysis: subgroups, Cox covariates, forest tables, longitudinal markers, free days.

Every estimate comes from a library: lifelines (Kaplan–Meier, log-rank, Cox and its
proportional-hazards test), scipy (Mann–Whitney U, Fisher's exact test, chi-square,
t quantiles), statsmodels (logistic regression for the response interaction, linear mixed
models). This module joins biomarker values to patients, says which are missing, and
shapes the results; it never fills a missing value in.

The biomarker table (``docs/biomarkers.md``) is long: one row per patient, biomarker and
study day (day 1 = enrolment; empty for a time-invariant finding such as a genotype).
A patient's *baseline* value is the one on the latest day ≤ 1 (or the undated one).

Conventions:

* a numeric biomarker enters a subgroup analysis only through a cut point the analysis
  plan gives (``cut``): levels ``< cut`` and ``≥ cut``; trialdesk never chooses one;
* the treatment-by-subgroup interaction is a likelihood-ratio test of the model with
  the interaction terms against the model without them (Cox for hazard ratios,
  logistic regression for response); with one arm only, the test is of equal rates
  across the subgroup's levels (Fisher's exact test for 2×2, else chi-square);
* confidence intervals of means are t-based; of proportions exact (Clopper–Pearson).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.endpoints import TimeToEvent, clopper_pearson
from trialdesk.outcomes.survival import CoxResult, cox_ph, kaplan_meier, logrank

BIOMARKER_COLUMNS = ("patient_id", "biomarker", "day", "value")


# --- the biomarker table -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BiomarkerTable:
    """A validated long biomarker table: ``patient_id``, ``biomarker``, ``day``, ``value``
    (float or text), ``unit``."""

    frame: pd.DataFrame

    def names(self) -> list[str]:
        return sorted(self.frame["biomarker"].unique())

    def baseline(self, biomarker: str) -> pd.Series:
        """Each patient's baseline value (latest day ≤ 1, or undated), by patient id."""
        rows = self.frame[self.frame["biomarker"] == biomarker]
        if rows.empty:
            raise OutcomeError(f"no rows for this biomarker; known: {', '.join(self.names())}",
                               where=biomarker)
        rows = rows[rows["day"].isna() | (rows["day"] <= 1)]
        rows = rows.assign(_order=rows["day"].fillna(-math.inf)).sort_values(["patient_id",
                                                                               "_order"])
        return rows.groupby("patient_id")["value"].last()


def validate_biomarkers(frame: pd.DataFrame, *, where: str = "biomarkers") -> BiomarkerTable:
    """Check a biomarker table; one :class:`OutcomeError` naming the rows and the reason."""
    missing = [c for c in BIOMARKER_COLUMNS if c not in frame.columns]
    if missing:
        raise OutcomeError(f"missing column(s): {', '.join(missing)}", where=where)
    out = frame.copy()
    if "unit" not in out.columns:
        out["unit"] = None
    for column in ("patient_id", "biomarker"):
        bad = out.index[out[column].isna() | (out[column].astype(str).str.strip() == "")]
        if len(bad):
            raise OutcomeError(f"empty in rows {_row_numbers(bad)}", where=f"{where}: {column}")
        out[column] = out[column].astype(str).str.strip()
    day = pd.to_numeric(out["day"], errors="coerce")
    bad = out.index[(out["day"].notna() & day.isna()) | (day.notna() & (day % 1 != 0))
                    | (day == 0)]
    if len(bad):
        raise OutcomeError(f"not a whole study day (no day 0) in rows {_row_numbers(bad)}",
                           where=f"{where}: day")
    out["day"] = day
    dupes = out.duplicated(["patient_id", "biomarker", "day"], keep=False)
    if dupes.any():
        raise OutcomeError(f"two values for one patient, biomarker and day in rows "
                           f"{_row_numbers(out.index[dupes])}", where=where)
    numbers = pd.to_numeric(out["value"], errors="coerce")
    out["value"] = [n if not math.isnan(n) else (None if pd.isna(v) else str(v).strip())
                    for n, v in zip(numbers, out["value"], strict=True)]
    return BiomarkerTable(out.reset_index(drop=True))


def _row_numbers(index: Any) -> str:
    # Data rows counted from 1 after the header, as a spreadsheet shows them (+1).
    return ", ".join(str(int(i) + 2) for i in index)


@dataclass(frozen=True, eq=False)
class Joined:
    """Patients with their baseline biomarker values; ``missing`` lists who has none."""

    table: pd.DataFrame
    missing: Mapping[str, tuple[str, ...]]  # biomarker → patient ids without a value

    def missing_text(self) -> list[str]:
        return [f"{name}: no baseline value for {len(ids)} patient(s): {', '.join(ids)}"
                for name, ids in self.missing.items() if ids]


def join_baseline(data: TimeToEvent | pd.DataFrame, biomarkers: BiomarkerTable,
                  names: Sequence[str], *, cuts: Mapping[str, float] | None = None) -> Joined:
    """Add each biomarker's baseline value (cut into two levels where ``cuts`` says) as a
    column; patients without a value are kept out of that biomarker's analyses and named."""
    table = (data.table if isinstance(data, TimeToEvent) else data).copy()
    cuts = dict(cuts or {})
    missing: dict[str, tuple[str, ...]] = {}
    for name in names:
        values = table["patient_id"].map(biomarkers.baseline(name))
        numeric = pd.to_numeric(values, errors="coerce")
        if name in cuts:
            if (values.notna() & numeric.isna()).any():
                raise OutcomeError("a cut point needs numbers, the values are text", where=name)
            cut = cuts[name]
            values = pd.Series([None if math.isnan(n) else f"≥ {cut:g}" if n >= cut
                                else f"< {cut:g}" for n in numeric], index=table.index)
        elif values.notna().any() and numeric[values.notna()].notna().all():
            values = numeric
        table[name] = values
        missing[name] = tuple(table.loc[table[name].isna(), "patient_id"].astype(str))
    return Joined(table, missing)


# --- subgroup survival and Cox ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SubgroupSurvival:
    biomarker: str
    km: Any  # KaplanMeierResult per biomarker level
    logrank: Any  # LogRankResult across levels
    missing: tuple[str, ...]


def subgroup_survival(joined: Joined, biomarker: str, *, duration_col: str = "time_months",
                      event_col: str = "event") -> SubgroupSurvival:
    """Kaplan–Meier per level of ``biomarker`` and the log-rank test across levels."""
    frame = _complete(joined, [biomarker])
    if pd.api.types.is_numeric_dtype(frame[biomarker]):
        raise OutcomeError("a numeric biomarker needs a cut point for subgroups", where=biomarker)
    km = kaplan_meier(frame, duration_col=duration_col, event_col=event_col, group_col=biomarker)
    test = logrank(frame, duration_col=duration_col, event_col=event_col, group_col=biomarker)
    return SubgroupSurvival(biomarker, km, test, joined.missing.get(biomarker, ()))


def _complete(joined: Joined, columns: Sequence[str]) -> pd.DataFrame:
    frame = joined.table.dropna(subset=list(columns))
    if frame.empty:
        raise OutcomeError("no patient has a value", where=", ".join(columns))
    return frame


@dataclass(frozen=True, eq=False)
class CoxWithCheck:
    """A Cox model and its proportional-hazards test (scaled Schoenfeld residuals)."""

    cox: CoxResult
    ph_test: pd.DataFrame  # per term: test_statistic, p
    missing: tuple[str, ...]

    @property
    def ph_violations(self) -> list[str]:
        return [t for t, p in self.ph_test["p"].items() if p < 0.05]


def ph_test(result: CoxResult, *, transform: str = "km") -> pd.DataFrame:
    """Grambsch–Therneau test per term (R: ``cox.zph(fit, transform = "km")``)."""
    from lifelines.statistics import proportional_hazard_test

    if result.design_ is None:
        raise OutcomeError("the model keeps no design data", where="ph_test")
    test = proportional_hazard_test(result.fitter_, result.design_, time_transform=transform)
    summary = test.summary[["test_statistic", "p"]].copy()
    summary.index = [str(i[0] if isinstance(i, tuple) else i) for i in summary.index]
    summary = summary.reindex(result.hazard_ratios_.index)  # the model's term order
    summary.index.name = "term"
    return summary


def cox_with_biomarkers(joined: Joined, covariates: Sequence[str], *,
                        duration_col: str = "time_months", event_col: str = "event",
                        group_col: str | None = "arm", strata: Sequence[str] = (),
                        alpha: float = 0.05) -> CoxWithCheck:
    """Cox model of the arm (if several) and biomarker covariates on the patients with every
    value, with the proportional-hazards test; who was left out is in ``missing``."""
    frame = _complete(joined, [*covariates, *strata])
    groups = frame[group_col].nunique() if group_col else 0
    result = cox_ph(frame, duration_col=duration_col, event_col=event_col,
                    group_col=group_col if groups > 1 else None, covariates=covariates,
                    strata=strata, alpha=alpha)
    left_out = sorted({p for c in [*covariates, *strata] for p in joined.missing.get(c, ())})
    return CoxWithCheck(result, ph_test(result), tuple(left_out))


# --- forest tables ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Forest:
    """Rows for a forest plot and the interaction test per subgroup variable.

    ``rows``: ``subgroup``, ``level``, ``n``, ``events`` (or ``responders``),
    ``estimate``, ``lower``, ``upper`` (NaN where the estimate cannot be made, with
    ``note``). ``interaction``: per subgroup, ``test``, ``statistic``, ``df``, ``p``.
    """

    measure: str  # "hazard ratio" or "response rate"
    rows: pd.DataFrame
    interaction: pd.DataFrame
    reference: str | None = None
    compared: str | None = None
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n")[0].split(". ")[0]


def _lr_test(full: float, reduced: float, df: int) -> tuple[float, float]:
    from scipy.stats import chi2

    statistic = max(0.0, 2 * (full - reduced))
    return statistic, float(chi2.sf(statistic, df))


def forest_hazard_ratios(joined: Joined, subgroups: Sequence[str], *, group_col: str = "arm",
                         reference: str | None = None, duration_col: str = "time_months",
                         event_col: str = "event", alpha: float = 0.05) -> Forest:
    """Hazard ratio of the arm within every level of every subgroup, and overall, with
    the arm × subgroup interaction (likelihood-ratio test of Cox models)."""
    arms = sorted(joined.table[group_col].astype(str).unique())
    if len(arms) != 2:
        raise OutcomeError(f"a hazard-ratio forest compares two arms, found {len(arms)}",
                           where=group_col)
    base = reference or arms[0]
    other = next(a for a in arms if a != base)
    term = f"{group_col}: {other} vs {base}"
    rows = [_hr_row(joined.table, "all patients", "", term, duration_col, event_col, group_col,
                    base, alpha)]
    tests = []
    for sub in subgroups:
        frame = _complete(joined, [sub])
        for level in sorted(frame[sub].astype(str).unique()):
            rows.append(_hr_row(frame[frame[sub].astype(str) == level], sub, level, term,
                                duration_col, event_col, group_col, base, alpha))
        tests.append(_cox_interaction(frame, sub, group_col, base, other, duration_col,
                                      event_col))
    return Forest("hazard ratio", pd.DataFrame(rows), pd.DataFrame(tests), base, other,
                  {s: joined.missing.get(s, ()) for s in subgroups})


def _hr_row(frame: pd.DataFrame, sub: str, level: str, term: str, duration_col: str,
            event_col: str, group_col: str, base: str, alpha: float) -> dict[str, Any]:
    row: dict[str, Any] = {"subgroup": sub, "level": level, "n": len(frame),
                           "events": int(frame[event_col].sum()), "estimate": math.nan,
                           "lower": math.nan, "upper": math.nan, "note": ""}
    events_by_arm = frame.groupby(frame[group_col].astype(str))[event_col].sum()
    if len(events_by_arm) < 2 or (events_by_arm == 0).any():
        # One arm without events gives a monotone likelihood: no finite estimate.
        row["note"] = "not estimable: an arm with no patients or no events"
        return row
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = cox_ph(frame, duration_col=duration_col, event_col=event_col,
                         group_col=group_col, reference=base, alpha=alpha)
        except OutcomeError as exc:
            row["note"] = f"not estimable: {exc.reason}"
            return row
    hr = fit.hazard_ratios_.loc[term]
    if not all(math.isfinite(float(hr[c])) for c in ("hazard_ratio", "lower", "upper")):
        row["note"] = "not estimable: no finite confidence interval"
        return row
    if caught:
        row["note"] = "convergence warning: " + str(caught[0].message).strip().split("\n")[0]
    row.update(estimate=float(hr["hazard_ratio"]), lower=float(hr["lower"]),
               upper=float(hr["upper"]))
    return row


def _cox_interaction(frame: pd.DataFrame, sub: str, group_col: str, base: str, other: str,
                     duration_col: str, event_col: str) -> dict[str, Any]:
    from lifelines import CoxPHFitter

    levels = sorted(frame[sub].astype(str).unique())
    design = pd.DataFrame({"_t": pd.to_numeric(frame[duration_col]),
                           "_e": frame[event_col].astype(bool),
                           "arm": (frame[group_col].astype(str) == other).astype(int)})
    for level in levels[1:]:
        design[f"lvl_{level}"] = (frame[sub].astype(str) == level).astype(int)
        design[f"arm_x_{level}"] = design["arm"] * design[f"lvl_{level}"]
    inter = [c for c in design.columns if c.startswith("arm_x_")]
    out: dict[str, Any] = {"subgroup": sub, "test": "Cox likelihood ratio, arm × subgroup",
                           "statistic": math.nan, "df": len(inter), "p": math.nan, "note": ""}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            full = CoxPHFitter().fit(design, "_t", "_e")
            reduced = CoxPHFitter().fit(design.drop(columns=inter), "_t", "_e")
        except Exception as exc:  # lifelines raises several kinds on a degenerate subgroup
            out["note"] = f"not estimable: {_first_line(exc)}"
            return out
    if caught:
        out["note"] = "convergence warning: " + str(caught[0].message).strip().split("\n")[0]
    out["statistic"], out["p"] = _lr_test(full.log_likelihood_, reduced.log_likelihood_,
                                          len(inter))
    return out


def forest_response_rates(joined: Joined, subgroups: Sequence[str], *,
                          response_col: str = "responder", group_col: str | None = "arm",
                          confidence_level: float = 0.95) -> Forest:
    """Response rate (exact CI) in every level of every subgroup, per arm when there are
    two, with the interaction test (see the module docstring)."""
    table = joined.table
    arms = sorted(table[group_col].astype(str).unique()) if group_col else []
    two_arms = len(arms) == 2
    rows = []
    tests = []
    for sub in ["", *subgroups]:
        frame = table if not sub else _complete(joined, [sub])
        levels = [""] if not sub else sorted(frame[sub].astype(str).unique())
        for level in levels:
            part = frame if not sub else frame[frame[sub].astype(str) == level]
            for arm in (arms if two_arms else [None]):
                cell = part if arm is None else part[part[group_col].astype(str) == arm]
                n, k = len(cell), int(cell[response_col].sum())
                low, high = clopper_pearson(k, n, confidence_level)
                rows.append({"subgroup": sub or "all patients", "level": level,
                             "arm": arm or "", "n": n, "responders": k,
                             "estimate": k / n if n else math.nan, "lower": low,
                             "upper": high, "note": "" if n else "no patients"})
        if sub:
            tests.append(_response_interaction(frame, sub, response_col, group_col, two_arms))
    return Forest("response rate", pd.DataFrame(rows), pd.DataFrame(tests),
                  arms[0] if two_arms else None, arms[1] if two_arms else None,
                  {s: joined.missing.get(s, ()) for s in subgroups})


def _response_interaction(frame: pd.DataFrame, sub: str, response_col: str,
                          group_col: str | None, two_arms: bool) -> dict[str, Any]:
    from scipy.stats import chi2_contingency, fisher_exact

    y = frame[response_col].astype(int)
    levels = sorted(frame[sub].astype(str).unique())
    out: dict[str, Any] = {"subgroup": sub, "test": "", "statistic": math.nan,
                           "df": len(levels) - 1, "p": math.nan, "note": ""}
    if two_arms and group_col:
        import statsmodels.api as sm

        base = pd.DataFrame({"arm": pd.factorize(frame[group_col].astype(str), sort=True)[0]},
                            index=frame.index)
        for level in levels[1:]:
            base[f"lvl_{level}"] = (frame[sub].astype(str) == level).astype(int)
        full = base.copy()
        for level in levels[1:]:
            full[f"arm_x_{level}"] = full["arm"] * full[f"lvl_{level}"]
        out["test"] = "logistic likelihood ratio, arm × subgroup"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                f = sm.Logit(y, sm.add_constant(full, has_constant="add")).fit(disp=0)
                r = sm.Logit(y, sm.add_constant(base, has_constant="add")).fit(disp=0)
            except Exception as exc:  # perfect separation, singular matrix
                out["note"] = f"not estimable: {_first_line(exc)}"
                return out
        if caught:
            out["note"] = "warning: " + str(caught[0].message).strip().split("\n")[0]
        out["statistic"], out["p"] = _lr_test(f.llf, r.llf, len(levels) - 1)
        return out
    counts = pd.crosstab(frame[sub].astype(str), y).reindex(columns=[0, 1], fill_value=0)
    if counts.shape == (2, 2):
        out["test"] = "Fisher's exact test, equal rates across levels"
        out["statistic"], p = fisher_exact(counts.to_numpy())
        out["p"] = float(p)
    elif len(levels) > 1:
        out["test"] = "chi-square, equal rates across levels"
        result = chi2_contingency(counts.to_numpy())
        out["statistic"], out["p"] = float(result.statistic), float(result.pvalue)
    else:
        out["test"] = "none: one level"
    return out


# --- longitudinal --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Longitudinal:
    """One biomarker over study days by arm.

    ``summary``: per day and arm ``n`` (values), ``missing`` (patients of the arm without
    a value that day), ``mean``, ``lower``/``upper`` (t-based CI), ``median``.
    ``comparison``: per day the Mann–Whitney U test between two arms. ``mixed``: the
    linear mixed model's fixed effects (coef, lower, upper, p) or None with ``mixed_note``.
    """

    biomarker: str
    values: pd.DataFrame  # patient_id, arm, day, value (only observed values)
    summary: pd.DataFrame
    comparison: pd.DataFrame
    mixed: pd.DataFrame | None
    mixed_note: str
    log10: bool


def longitudinal(biomarkers: BiomarkerTable, arms: Mapping[str, str], biomarker: str, *,
                 days: Sequence[int] | None = None, log10: bool = False,
                 confidence_level: float = 0.95) -> Longitudinal:
    """Summaries, per-day Mann–Whitney and a mixed model for ``biomarker`` by arm.

    ``arms`` maps every analysed patient to an arm (the event table): a patient of the
    arm with no value on a day counts as missing that day, never as a value. ``days``
    limits the analysis (default: every day with a value). With ``log10`` values are
    analysed on the log10 scale (values ≤ 0 are refused).
    """
    from scipy.stats import mannwhitneyu
    from scipy.stats import t as student

    rows = biomarkers.frame[(biomarkers.frame["biomarker"] == biomarker)
                            & biomarkers.frame["day"].notna()]
    if rows.empty:
        raise OutcomeError("no dated values", where=biomarker)
    unknown = sorted(set(rows["patient_id"]) - set(arms))
    if unknown:
        raise OutcomeError(f"patients not in the event table: {', '.join(unknown)}",
                           where=biomarker)
    values = pd.to_numeric(rows["value"], errors="coerce")
    if values.isna().any():
        raise OutcomeError("values must be numbers for a longitudinal analysis", where=biomarker)
    data = pd.DataFrame({"patient_id": rows["patient_id"], "arm": rows["patient_id"].map(arms),
                         "day": rows["day"].astype(int), "value": values})
    if days is not None:
        data = data[data["day"].isin(days)]
    if log10:
        if (data["value"] <= 0).any():
            raise OutcomeError("log10 needs values above 0", where=biomarker)
        data["value"] = np.log10(data["value"])
    arm_names = sorted(set(arms.values()))
    all_days = sorted(days) if days is not None else sorted(data["day"].unique())
    summary = []
    for day in all_days:
        for arm in arm_names:
            v = data[(data["day"] == day) & (data["arm"] == arm)]["value"]
            n = len(v)
            enrolled = sum(1 for a in arms.values() if a == arm)
            mean = float(v.mean()) if n else math.nan
            if n >= 2:
                half = float(student.ppf((1 + confidence_level) / 2, n - 1) * v.std(ddof=1)
                             / math.sqrt(n))
            else:
                half = math.nan
            summary.append({"day": day, "arm": arm, "n": n, "missing": enrolled - n,
                            "mean": mean, "lower": mean - half, "upper": mean + half,
                            "median": float(v.median()) if n else math.nan})
    comparison = []
    if len(arm_names) == 2:
        a, b = arm_names
        for day in all_days:
            x = data[(data["day"] == day) & (data["arm"] == a)]["value"]
            y = data[(data["day"] == day) & (data["arm"] == b)]["value"]
            row: dict[str, Any] = {"day": day, "n_" + a: len(x), "n_" + b: len(y),
                                   "U": math.nan, "p": math.nan}
            if len(x) and len(y):
                test = mannwhitneyu(x, y, alternative="two-sided")
                row.update(U=float(test.statistic), p=float(test.pvalue))
            comparison.append(row)
    mixed, note = _mixed_model(data) if len(arm_names) == 2 else (None, "needs two arms")
    return Longitudinal(biomarker, data.reset_index(drop=True), pd.DataFrame(summary),
                        pd.DataFrame(comparison), mixed, note, log10)


def mixed_model_formula() -> str:
    """The fixed effects of the mixed model; a random intercept per patient."""
    return "value ~ C(arm) * day"


def _mixed_model(data: pd.DataFrame) -> tuple[pd.DataFrame | None, str]:
    import statsmodels.formula.api as smf

    if data["patient_id"].nunique() < 3:
        return None, "too few patients for a mixed model"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = smf.mixedlm(mixed_model_formula(), data, groups=data["patient_id"]).fit(
                reml=True)
        except Exception as exc:  # singular designs raise LinAlgError or ValueError
            return None, f"the mixed model could not be fitted: {exc}"
    ci = fit.conf_int()
    fixed = [n for n in fit.fe_params.index]
    table = pd.DataFrame({"coef": fit.fe_params, "lower": ci.loc[fixed, 0],
                          "upper": ci.loc[fixed, 1], "p": fit.pvalues.loc[fixed]})
    table.index.name = "term"
    notes = sorted({str(w.message).split("\n")[0] for w in caught})
    converged = "converged" if fit.converged else "did not converge"
    return table, f"REML, random intercept per patient; {converged}" + (
        f"; warnings: {'; '.join(notes)}" if notes else "")


# --- free days -----------------------------------------------------------------------

SUPPORT_KINDS = {"rrt": ("rrt",), "ventilation": ("invasive_ventilation",
                                                  "non_invasive_ventilation"),
                 "invasive_ventilation": ("invasive_ventilation",)}


def free_days_table(events: pd.DataFrame, episodes: pd.DataFrame, support: str, *,
                    window: int = 28) -> pd.DataFrame:
    """Free days per patient (see :func:`trialdesk.clinical.sepsis.free_days`).

    ``events`` is the event table (``patient_id``, ``arm``, ``enrolment_date``,
    ``death_date``, ``last_contact_date``); ``episodes`` has ``patient_id``, ``kind``,
    ``start_date``, ``end_date``. A patient alive but last seen before the window's last
    day has unknown free days (``free_days`` empty, ``note`` says why), never a guess.
    """
    from trialdesk.clinical.sepsis import free_days

    if support not in SUPPORT_KINDS:
        raise OutcomeError(f"unknown support '{support}'; one of {', '.join(SUPPORT_KINDS)}",
                           where="support")
    kinds = SUPPORT_KINDS[support]
    _check_episodes(episodes)
    rows = []
    for _, e in events.iterrows():
        start = _as_date(e["enrolment_date"])
        death = _as_date(e.get("death_date"))
        last = _as_date(e.get("last_contact_date"))
        mine = episodes[(episodes["patient_id"] == e["patient_id"])
                        & episodes["kind"].isin(kinds)]
        spans = [(_as_date(r["start_date"]), _as_date(r["end_date"])) for _, r in mine.iterrows()]
        end_of_window = date.fromordinal(start.toordinal() + window - 1)  # type: ignore[union-attr]
        row: dict[str, Any] = {"patient_id": e["patient_id"], "arm": e["arm"],
                               "free_days": None, "note": ""}
        if death is None and (last is None or last < end_of_window):
            row["note"] = f"alive at last contact {last} before day {window}: unknown"
        else:
            row["free_days"] = free_days(start, spans, death=death, window=window)  # type: ignore[arg-type]
            row["note"] = "died within the window: 0" if death and death <= end_of_window else ""
        rows.append(row)
    out = pd.DataFrame(rows, columns=["patient_id", "arm", "free_days", "note"])
    out["free_days"] = out["free_days"].astype("Int64")  # whole days; unknown stays <NA>
    return out


EPISODE_KINDS = ("rrt", "invasive_ventilation", "non_invasive_ventilation")


def _check_episodes(episodes: pd.DataFrame, where: str = "episodes") -> None:
    missing = [c for c in ("patient_id", "kind", "start_date", "end_date")
               if c not in episodes.columns]
    if missing:
        raise OutcomeError(f"missing column(s): {', '.join(missing)}", where=where)
    bad = episodes.index[~episodes["kind"].isin(EPISODE_KINDS)]
    if len(bad):
        raise OutcomeError(f"kind must be one of {', '.join(EPISODE_KINDS)}; rows "
                           f"{_row_numbers(bad)}", where=f"{where}: kind")
    starts = pd.to_datetime(episodes["start_date"], errors="coerce", format="ISO8601")
    ends = pd.to_datetime(episodes["end_date"], errors="coerce", format="ISO8601")
    for column, parsed, required in (("start_date", starts, True), ("end_date", ends, False)):
        given = episodes[column].notna() if not required else pd.Series(True, episodes.index)
        bad = episodes.index[parsed.isna() & given]
        if len(bad):
            raise OutcomeError(f"not an ISO date in rows {_row_numbers(bad)}",
                               where=f"{where}: {column}")
    bad = episodes.index[ends.notna() & (ends < starts)]
    if len(bad):
        raise OutcomeError(f"ends before it starts in rows {_row_numbers(bad)}", where=where)


def compare_free_days(table: pd.DataFrame) -> dict[str, Any]:
    """Median (IQR) per arm and the Mann–Whitney U test between two arms (Yehya 2019
    discusses the rank-sum test for free days); unknown values are counted, not used."""
    from scipy.stats import mannwhitneyu

    known = table.dropna(subset=["free_days"])
    out: dict[str, Any] = {"arms": {}, "unknown": int(table["free_days"].isna().sum())}
    for arm, part in known.groupby("arm"):
        v = part["free_days"].astype(float)
        out["arms"][str(arm)] = {"n": len(v), "median": float(v.median()),
                                 "q1": float(v.quantile(0.25)), "q3": float(v.quantile(0.75))}
    arms = sorted(out["arms"])
    if len(arms) == 2:
        a = known[known["arm"] == arms[0]]["free_days"].astype(float)
        b = known[known["arm"] == arms[1]]["free_days"].astype(float)
        test = mannwhitneyu(a, b, alternative="two-sided")
        out["mann_whitney"] = {"U": float(test.statistic), "p": float(test.pvalue)}
    return out


def _as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, str):
        return date.fromisoformat(value) if value.strip() else None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.date()
    return value if isinstance(value, date) else None


__all__ = [
    "BiomarkerTable",
    "CoxWithCheck",
    "Forest",
    "Joined",
    "Longitudinal",
    "SubgroupSurvival",
    "compare_free_days",
    "cox_with_biomarkers",
    "forest_hazard_ratios",
    "forest_response_rates",
    "free_days_table",
    "join_baseline",
    "longitudinal",
    "ph_test",
    "subgroup_survival",
    "validate_biomarkers",
]

"""Survival statistics on lifelines: Kaplan–Meier, median and landmark survival,
log-rank test and Cox proportional hazards.

Nothing here is computed by hand: every estimate comes from lifelines, and this module
only shapes its input (one row per patient) and its output (frozen results holding
DataFrames). Each function takes either a :class:`~trialdesk.outcomes.endpoints.TimeToEvent`
or any DataFrame with a duration, an event and (optionally) a group column; the
defaults read a ``TimeToEvent.table`` in months, arm by arm.

Conventions, matching R's ``survival`` package where it has one:

* Kaplan–Meier confidence intervals are lifelines' exponential Greenwood intervals,
  which are R's ``survfit(..., conf.type = "log-log")`` (R's default is ``"log"``).
* The number at risk at time *t* counts patients whose time is ≥ *t*, as R's
  ``summary(survfit, times = t)$n.risk`` does.
* A median that is not reached is ``inf``; so is a confidence limit that is not reached.
  The median is the first time at which survival is ≤ 0.5; where the curve is flat at
  exactly 0.5, R reports the midpoint of that flat stretch instead.
* Cox models use Efron's method for ties, R's ``coxph`` default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from lifelines.statistics import logrank_test, multivariate_logrank_test
from lifelines.utils import median_survival_times

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.endpoints import TimeToEvent

SurvivalData: TypeAlias = TimeToEvent | pd.DataFrame

ONE_GROUP = "all"
"""Group label used when no group column is given."""


# --- Kaplan–Meier --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class KaplanMeierResult:
    """Kaplan–Meier estimates, one lifelines fitter per group (arm).

    ``survival_function_`` is long: ``group``, ``time``, ``survival``, ``lower``,
    ``upper``, one row per time of each group's step function. ``median_survival_`` is
    indexed by group with ``median``, ``lower``, ``upper``. ``fitters_`` keeps the
    lifelines objects (for plots).
    """

    alpha: float
    fitters_: Mapping[str, KaplanMeierFitter]
    survival_function_: pd.DataFrame
    median_survival_: pd.DataFrame

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.fitters_)

    @property
    def summary(self) -> pd.DataFrame:
        """Per group: n, events, censored, median and its confidence interval."""
        rows = {}
        for group, fitter in self.fitters_.items():
            n = int(fitter.event_table["removed"].sum())
            events = int(fitter.event_table["observed"].sum())
            median = self.median_survival_.loc[group]
            rows[group] = {
                "n": n,
                "events": events,
                "censored": n - events,
                "median": median["median"],
                "median_lower": median["lower"],
                "median_upper": median["upper"],
            }
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index.name = "group"
        return frame

    def at_risk(self, times: Sequence[float]) -> pd.DataFrame:
        """Numbers at risk at each of ``times`` (rows: groups, columns: times).

        >>> km = kaplan_meier(pd.DataFrame({"t": [1, 2, 2, 5], "e": [1, 0, 1, 1]}),
        ...                   duration_col="t", event_col="e", group_col=None)
        >>> km.at_risk([0, 2, 3, 6]).loc["all"].tolist()
        [4, 3, 1, 0]
        """
        frame = pd.DataFrame(
            {t: [_at_risk(f, t) for f in self.fitters_.values()] for t in times},
            index=pd.Index(self.groups, name="group"),
        )
        frame.columns.name = "time"
        return frame

    def landmark(self, times: float | Sequence[float]) -> pd.DataFrame:
        """Survival with its confidence interval at fixed times (e.g. 2-year EFS).

        Beyond a group's last follow-up time the estimate is undefined (NaN), unless the
        curve has already reached 0.

        >>> km = kaplan_meier(pd.DataFrame({"t": [1, 2, 2, 5], "e": [1, 0, 1, 1]}),
        ...                   duration_col="t", event_col="e", group_col=None)
        >>> km.landmark(3)[["group", "time", "survival", "at_risk"]].values.tolist()
        [['all', 3.0, 0.5, 1]]
        """
        wanted = [float(times)] if isinstance(times, int | float | np.number) else list(times)
        rows = []
        for group, fitter in self.fitters_.items():
            last = float(fitter.durations.max())
            reached_zero = float(fitter.survival_function_.iloc[-1, 0]) == 0.0
            for t in wanted:
                if t < 0:
                    raise OutcomeError(f"landmark time {t} is negative", where="landmark")
                survival = lower = upper = np.nan
                if t <= last or reached_zero:
                    survival = float(fitter.survival_function_at_times(t).iloc[0])
                    band = fitter.confidence_interval_.loc[:t].iloc[-1]
                    lower, upper = float(band.iloc[0]), float(band.iloc[1])
                rows.append(
                    {
                        "group": group,
                        "time": t,
                        "survival": survival,
                        "lower": lower,
                        "upper": upper,
                        "at_risk": _at_risk(fitter, t),
                    }
                )
        return pd.DataFrame(rows)


def kaplan_meier(
    data: SurvivalData,
    *,
    duration_col: str = "time_months",
    event_col: str = "event",
    group_col: str | None = "arm",
    alpha: float = 0.05,
) -> KaplanMeierResult:
    """Fit a Kaplan–Meier curve per group with (1 - ``alpha``) confidence intervals.

    >>> km = kaplan_meier(pd.DataFrame({"t": [1, 2, 2, 5], "e": [1, 0, 1, 1]}),
    ...                   duration_col="t", event_col="e", group_col=None)
    >>> km.survival_function_["survival"].round(3).tolist()
    [1.0, 0.75, 0.5, 0.0]
    >>> km.summary.loc["all", ["n", "events", "median"]].tolist()
    [4.0, 3.0, 2.0]
    """
    frame, groups = _prepare(data, duration_col, event_col, group_col)
    fitters: dict[str, KaplanMeierFitter] = {}
    curves = []
    medians = {}
    for group in groups:
        rows = frame[frame["_group"] == group]
        fitter = KaplanMeierFitter(alpha=alpha).fit(
            rows["_duration"], event_observed=rows["_event"], label=group
        )
        fitters[group] = fitter
        band = fitter.confidence_interval_
        curves.append(
            pd.DataFrame(
                {
                    "group": group,
                    "time": fitter.survival_function_.index.to_numpy(),
                    "survival": fitter.survival_function_.iloc[:, 0].to_numpy(),
                    "lower": band.iloc[:, 0].to_numpy(),
                    "upper": band.iloc[:, 1].to_numpy(),
                }
            )
        )
        # The CI of the median is where the survival CI band crosses 0.5.
        limits = median_survival_times(band)
        medians[group] = {
            "median": float(fitter.median_survival_time_),
            "lower": float(limits.iloc[0, 0]),
            "upper": float(limits.iloc[0, 1]),
        }
    median_frame = pd.DataFrame.from_dict(medians, orient="index")
    median_frame.index.name = "group"
    return KaplanMeierResult(
        alpha=alpha,
        fitters_=fitters,
        survival_function_=pd.concat(curves, ignore_index=True),
        median_survival_=median_frame,
    )


def _at_risk(fitter: KaplanMeierFitter, t: float) -> int:
    table = fitter.event_table
    later = table.loc[table.index >= t, "at_risk"]
    return int(later.iloc[0]) if len(later) else 0


# --- log-rank ------------------------------------------------------------------------


@dataclass(frozen=True)
class LogRankResult:
    """A log-rank test between groups: chi-square statistic, its df and p-value."""

    test_statistic: float
    p_value: float
    degrees_of_freedom: int
    groups: tuple[str, ...]

    @property
    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "groups": ", ".join(self.groups),
                    "test_statistic": self.test_statistic,
                    "degrees_of_freedom": self.degrees_of_freedom,
                    "p": self.p_value,
                }
            ]
        )


def logrank(
    data: SurvivalData,
    *,
    duration_col: str = "time_months",
    event_col: str = "event",
    group_col: str = "arm",
) -> LogRankResult:
    """Log-rank test of equal survival across groups (R: ``survdiff(..., rho = 0)``).

    Two groups use ``lifelines.statistics.logrank_test``, more use
    ``multivariate_logrank_test``; both give the same answer for two groups.

    >>> result = logrank(pd.DataFrame({"t": [10, 20, 30, 10, 20, 50],
    ...                                "e": [1, 0, 1, 1, 0, 1],
    ...                                "arm": ["B", "B", "B", "A", "A", "A"]}),
    ...                  duration_col="t", event_col="e")
    >>> round(result.p_value, 6), result.degrees_of_freedom
    (0.535143, 1)
    """
    frame, groups = _prepare(data, duration_col, event_col, group_col)
    if len(groups) < 2:
        raise OutcomeError(
            f"the log-rank test needs at least two groups, found {len(groups)}",
            where=group_col,
        )
    if len(groups) == 2:
        a = frame[frame["_group"] == groups[0]]
        b = frame[frame["_group"] == groups[1]]
        result = logrank_test(
            a["_duration"],
            b["_duration"],
            event_observed_A=a["_event"],
            event_observed_B=b["_event"],
        )
    else:
        result = multivariate_logrank_test(frame["_duration"], frame["_group"], frame["_event"])
    return LogRankResult(
        test_statistic=float(result.test_statistic),
        p_value=float(result.p_value),
        degrees_of_freedom=int(result.degrees_of_freedom),
        groups=groups,
    )


# --- Cox proportional hazards ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CoxResult:
    """A fitted Cox model.

    ``hazard_ratios_`` is indexed by model term with ``hazard_ratio``, ``lower``,
    ``upper`` (the (1 - ``alpha``) CI), ``coef``, ``se``, ``z`` and ``p``. Arm terms
    read ``"arm: B vs A"``; categorical covariates likewise. ``fitter_`` is the lifelines
    ``CoxPHFitter``.
    """

    alpha: float
    strata: tuple[str, ...]
    n: int
    events: int
    fitter_: CoxPHFitter
    hazard_ratios_: pd.DataFrame
    concordance_: float
    log_likelihood_: float
    # The encoded data the model was fitted on (``_duration``, ``_event``, the terms and
    # strata): what residual-based checks such as the proportional-hazards test need.
    design_: pd.DataFrame | None = None

    @property
    def summary(self) -> pd.DataFrame:
        return self.hazard_ratios_


def cox_ph(
    data: SurvivalData,
    *,
    duration_col: str = "time_months",
    event_col: str = "event",
    group_col: str | None = "arm",
    reference: str | None = None,
    covariates: Sequence[str] = (),
    strata: Sequence[str] = (),
    alpha: float = 0.05,
) -> CoxResult:
    """Fit a Cox proportional-hazards model (lifelines ``CoxPHFitter``).

    The group (arm) enters as one indicator per non-reference group, so its hazard
    ratio reads "group vs ``reference``" (default: the first group). ``covariates`` are
    further columns; text columns become indicators against their first level.
    ``strata`` columns (e.g. ``fcgr_genotype``) get their own baseline hazard and no
    coefficient, as R's ``strata()`` term.

    >>> from lifelines.datasets import load_rossi
    >>> result = cox_ph(load_rossi(), duration_col="week", event_col="arrest",
    ...                 group_col=None, covariates=["fin", "age", "prio"])
    >>> result.hazard_ratios_["hazard_ratio"].round(3).tolist()
    [0.707, 0.935, 1.102]
    """
    frame, groups = _prepare(data, duration_col, event_col, group_col)
    design = pd.DataFrame({"_duration": frame["_duration"], "_event": frame["_event"]})
    if group_col is not None and len(groups) > 1:
        base = reference if reference is not None else groups[0]
        if base not in groups:
            raise OutcomeError(
                f"reference {base!r} is not one of the groups ({', '.join(groups)})",
                where=group_col,
            )
        for group in groups:
            if group != base:
                design[f"{group_col}: {group} vs {base}"] = (frame["_group"] == group).astype(int)
    _require_complete(frame, [*covariates, *strata])
    for column in covariates:
        design = design.join(_encode(frame[column], column))
    for column in strata:
        design[column] = frame[column].to_numpy()
    terms = [c for c in design.columns if c not in ("_duration", "_event", *strata)]
    if not terms:
        raise OutcomeError("nothing to model: no second group and no covariates", where="cox_ph")

    fitter = CoxPHFitter(alpha=alpha, strata=list(strata) or None)
    try:
        fitter.fit(design, duration_col="_duration", event_col="_event")
    except ConvergenceError as exc:
        raise OutcomeError(f"the Cox model did not converge: {exc}", where="cox_ph") from exc
    bounds = np.exp(fitter.confidence_intervals_)
    hazard_ratios = pd.DataFrame(
        {
            "hazard_ratio": np.exp(fitter.params_),
            "lower": bounds.iloc[:, 0],
            "upper": bounds.iloc[:, 1],
            "coef": fitter.params_,
            "se": fitter.standard_errors_,
            "z": fitter.summary["z"],
            "p": fitter.summary["p"],
        }
    )
    hazard_ratios.index.name = "term"
    return CoxResult(
        alpha=alpha,
        strata=tuple(strata),
        n=len(design),
        events=int(design["_event"].sum()),
        fitter_=fitter,
        hazard_ratios_=hazard_ratios,
        concordance_=float(fitter.concordance_index_),
        log_likelihood_=float(fitter.log_likelihood_),
        design_=design,
    )


def _encode(values: pd.Series, column: str) -> pd.DataFrame:
    """Numbers enter as they are; anything else as indicators against its first level."""
    if pd.api.types.is_bool_dtype(values):
        return pd.DataFrame({column: values.astype(int)})
    if pd.api.types.is_numeric_dtype(values):
        return pd.DataFrame({column: values})
    levels = sorted(values.astype(str).unique())
    text = values.astype(str)
    return pd.DataFrame(
        {f"{column}: {level} vs {levels[0]}": (text == level).astype(int) for level in levels[1:]}
    )


# --- input ---------------------------------------------------------------------------


def _prepare(
    data: SurvivalData, duration_col: str, event_col: str, group_col: str | None
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Check the input and return it with ``_duration``, ``_event`` and ``_group`` added."""
    source = data.table if isinstance(data, TimeToEvent) else data
    where = data.name if isinstance(data, TimeToEvent) else "survival data"
    needed = [duration_col, event_col] + ([group_col] if group_col else [])
    missing = [c for c in needed if c not in source.columns]
    if missing:
        raise OutcomeError(f"missing column(s): {', '.join(missing)}", where=where)
    if source.empty:
        raise OutcomeError("no patients to analyse", where=where)

    durations = pd.to_numeric(source[duration_col], errors="coerce")
    bad = source.index[~np.isfinite(durations.to_numpy(dtype=float)) | (durations < 0)]
    if len(bad):
        raise OutcomeError(
            f"durations must be finite and non-negative; bad rows: {_rows(source, bad)}",
            where=f"{where}: {duration_col}",
        )
    events = source[event_col]
    bad = source.index[~events.isin([0, 1, True, False])]
    if len(bad):
        raise OutcomeError(
            f"events must be 0/1 or true/false; bad rows: {_rows(source, bad)}",
            where=f"{where}: {event_col}",
        )
    frame = source.copy()
    frame["_duration"] = durations.astype(float)
    frame["_event"] = events.astype(bool)
    if group_col is None:
        frame["_group"] = ONE_GROUP
        return frame, (ONE_GROUP,)
    _require_complete(frame, [group_col])
    frame["_group"] = frame[group_col].astype(str)
    present = set(frame["_group"])
    if isinstance(data, TimeToEvent) and group_col == "arm":
        groups = tuple(a for a in data.arms if a in present)
    else:
        groups = tuple(sorted(present))
    return frame, groups


def _require_complete(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    for column in columns:
        if column not in frame.columns:
            raise OutcomeError("no such column", where=column)
        bad = frame.index[frame[column].isna()]
        if len(bad):
            raise OutcomeError(f"missing values in rows: {_rows(frame, bad)}", where=column)


def _rows(frame: pd.DataFrame, index: Any) -> str:
    """Name bad rows by patient when the table has patient ids, else by index label."""
    if "patient_id" in frame.columns:
        return ", ".join(str(p) for p in frame.loc[index, "patient_id"])
    return ", ".join(str(i) for i in index)

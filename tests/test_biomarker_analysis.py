"""Biomarker analysis against lifelines, statsmodels and scipy computed here on the same data.

One fixed synthetic data set (numpy seed 20261204): 60 patients in two arms, a binary
genotype-like marker, a numeric marker, a response, survival times, and a biomarker
measured on days 1, 3, 7 with some values missing. Known answers from R's ``survival``
come from lifelines' own test suite, which states the R code and its output.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_rossi
from lifelines.statistics import logrank_test, proportional_hazard_test
from scipy import stats

from trialdesk.errors import OutcomeError
from trialdesk.outcomes.biomarker_plots import forest_figure, mean_ci_figure, spaghetti_figure
from trialdesk.outcomes.biomarkers import (
    compare_free_days,
    cox_with_biomarkers,
    forest_hazard_ratios,
    forest_response_rates,
    free_days_table,
    join_baseline,
    longitudinal,
    ph_test,
    subgroup_survival,
    validate_biomarkers,
)
from trialdesk.outcomes.plots import render
from trialdesk.outcomes.survival import cox_ph

SEED = 20261204


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per patient, long biomarker table) from a fixed seed."""
    rng = np.random.default_rng(SEED)
    n = 60
    ids = [f"P{i:02d}" for i in range(n)]
    arm = np.where(np.arange(n) % 2 == 0, "A", "B")
    genotype = rng.choice(["V/V", "F carrier"], size=n)
    marker = rng.lognormal(3, 1, size=n)
    hazard = 0.05 * np.where(arm == "B", 0.6, 1.0) * np.where(genotype == "V/V", 0.7, 1.2)
    time = rng.exponential(1 / hazard)
    censor = rng.uniform(5, 40, size=n)
    patients = pd.DataFrame({
        "patient_id": ids, "arm": arm, "time_months": np.minimum(time, censor).round(2),
        "event": time <= censor,
        "responder": rng.random(n) < np.where(genotype == "V/V", 0.55, 0.3),
    })
    rows = []
    for i, pid in enumerate(ids):
        if i % 10 != 9:  # every tenth patient has no genotype recorded
            rows.append({"patient_id": pid, "biomarker": "fcgr3a", "day": None,
                         "value": genotype[i]})
        rows.append({"patient_id": pid, "biomarker": "nk_cells", "day": 1,
                     "value": round(float(marker[i]), 2)})
        for day in (1, 3, 7):
            if rng.random() < 0.1:
                continue  # a missed sample
            base = 40 if arm[i] == "A" else 30
            rows.append({"patient_id": pid, "biomarker": "il6", "day": day,
                         "value": round(float(base * math.exp(-0.1 * day) + rng.normal(0, 8)
                                              + 20), 1)})
    return patients, pd.DataFrame(rows)


# --- the table -------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "where", "reason"), [
    ([{"patient_id": "P1", "biomarker": "il6", "value": 3}], "biomarkers", "day"),
    ([{"patient_id": "P1", "biomarker": "il6", "day": 0, "value": 3}], "biomarkers: day",
     "no day 0"),
    ([{"patient_id": "P1", "biomarker": "il6", "day": 1.5, "value": 3}], "biomarkers: day",
     "rows 2"),
    ([{"patient_id": "P1", "biomarker": "il6", "day": 1, "value": 3},
      {"patient_id": "P1", "biomarker": "il6", "day": 1, "value": 4}], "biomarkers",
     "rows 2, 3"),
    ([{"patient_id": "", "biomarker": "il6", "day": 1, "value": 3}], "biomarkers: patient_id",
     "empty"),
])
def test_bad_biomarker_tables_are_refused(rows: list[dict[str, object]], where: str,
                                          reason: str) -> None:
    with pytest.raises(OutcomeError) as err:
        validate_biomarkers(pd.DataFrame(rows))
    assert err.value.where == where and reason in err.value.reason


def test_baseline_is_the_latest_value_on_or_before_day_1() -> None:
    table = validate_biomarkers(pd.DataFrame([
        {"patient_id": "P1", "biomarker": "il6", "day": -2, "value": 10},
        {"patient_id": "P1", "biomarker": "il6", "day": 1, "value": 12},
        {"patient_id": "P1", "biomarker": "il6", "day": 3, "value": 99},
        {"patient_id": "P2", "biomarker": "il6", "day": 2, "value": 50},
        {"patient_id": "P1", "biomarker": "fcgr3a", "day": None, "value": "V/F"},
    ]))
    assert table.baseline("il6").to_dict() == {"P1": 12.0}  # P2 has no baseline
    assert table.baseline("fcgr3a").to_dict() == {"P1": "V/F"}
    joined = join_baseline(pd.DataFrame({"patient_id": ["P1", "P2"]}), table, ["il6"],
                           cuts={"il6": 12})
    assert joined.table["il6"].tolist() == ["≥ 12", None]
    assert joined.missing_text() == ["il6: no baseline value for 1 patient(s): P2"]
    with pytest.raises(OutcomeError, match="needs numbers"):
        join_baseline(pd.DataFrame({"patient_id": ["P1"]}), table, ["fcgr3a"],
                      cuts={"fcgr3a": 1})


# --- subgroups, Cox, PH check ------------------------------------------------------------


def test_subgroup_km_and_logrank_equal_lifelines(cohort: tuple[pd.DataFrame, pd.DataFrame]
                                                 ) -> None:
    patients, long = cohort
    joined = join_baseline(patients, validate_biomarkers(long), ["fcgr3a"])
    result = subgroup_survival(joined, "fcgr3a")
    assert result.missing == tuple(f"P{i:02d}" for i in range(9, 60, 10))
    data = patients[~patients["patient_id"].isin(result.missing)].merge(
        long[long["biomarker"] == "fcgr3a"][["patient_id", "value"]], on="patient_id")
    a, b = (data[data["value"] == g] for g in ("F carrier", "V/V"))
    expected = logrank_test(a["time_months"], b["time_months"], a["event"], b["event"])
    assert result.logrank.p_value == pytest.approx(expected.p_value, rel=1e-12)
    kmf = KaplanMeierFitter().fit(b["time_months"], b["event"])
    assert result.km.summary.loc["V/V", "median"] == pytest.approx(kmf.median_survival_time_)


def test_cox_with_biomarker_covariates_equals_lifelines(
        cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, long = cohort
    joined = join_baseline(patients, validate_biomarkers(long), ["fcgr3a", "nk_cells"])
    result = cox_with_biomarkers(joined, ["fcgr3a", "nk_cells"])
    assert len(result.missing) == 6 and result.cox.n == 54
    # The same model straight from lifelines.
    data = joined.table.dropna(subset=["fcgr3a", "nk_cells"])
    design = pd.DataFrame({"t": data["time_months"], "e": data["event"],
                           "arm": (data["arm"] == "B").astype(int),
                           "g": (data["fcgr3a"] == "V/V").astype(int),
                           "nk": data["nk_cells"].astype(float)})
    direct = CoxPHFitter().fit(design, "t", "e")
    npt.assert_allclose(result.cox.hazard_ratios_["coef"].to_numpy(), direct.params_.to_numpy(),
                        rtol=1e-6)
    assert result.cox.hazard_ratios_.index.tolist() == [
        "arm: B vs A", "fcgr3a: V/V vs F carrier", "nk_cells"]
    expected = proportional_hazard_test(direct, design, time_transform="km").summary
    npt.assert_allclose(result.ph_test["test_statistic"].to_numpy(),
                        expected["test_statistic"].to_numpy(), rtol=1e-6)
    assert result.ph_test.index.tolist() == result.cox.hazard_ratios_.index.tolist()
    assert result.ph_violations == [t for t, p in zip(result.ph_test.index, expected["p"],
                                                      strict=True) if p < 0.05]


def test_known_answers_from_r_survival() -> None:
    # R coxph on the Rossi recidivism data (lifelines tests/test_estimation.py
    # ::test_coef_output_against_R_super_accurate): fin and prio entered as biomarkers.
    rossi = load_rossi().assign(patient_id=lambda d: [f"R{i}" for i in d.index])
    long = pd.concat([pd.DataFrame({"patient_id": rossi["patient_id"], "biomarker": name,
                                    "day": None, "value": rossi[name]}) for name in
                      ("fin", "age", "race", "wexp", "mar", "paro", "prio")])
    covariates = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    joined = join_baseline(rossi[["patient_id", "week", "arrest"]], validate_biomarkers(long),
                           covariates)
    result = cox_with_biomarkers(joined, covariates, duration_col="week", event_col="arrest",
                                 group_col=None)
    npt.assert_array_almost_equal(
        result.cox.hazard_ratios_["coef"],
        [-0.3794222, -0.0574377, 0.3138998, -0.1497957, -0.4337039, -0.0848711, 0.0914971],
        decimal=6)
    # R: cox.zph(coxph(Surv(T, E) ~ var1), transform = "km") gives chisq 0.00971
    # (lifelines tests/test_statistics.py::test_proportional_hazard_test_with_kmf).
    small = pd.DataFrame({"var1": [0.209325, 0.693919, 0.443804, 0.065636, 0.386294],
                          "T": [5.269797, 6.601666, 7.335846, 11.684092, 12.678458],
                          "E": [1, 1, 1, 1, 1]})
    fit = cox_ph(small, duration_col="T", event_col="E", group_col=None, covariates=["var1"])
    assert ph_test(fit).loc["var1", "test_statistic"] == pytest.approx(0.00971, rel=1e-3)


# --- forest tables -------------------------------------------------------------------------


def test_forest_hazard_ratios_and_interaction(cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, long = cohort
    joined = join_baseline(patients, validate_biomarkers(long), ["fcgr3a", "nk_cells"],
                           cuts={"nk_cells": 20})
    forest = forest_hazard_ratios(joined, ["fcgr3a", "nk_cells"])
    rows = forest.rows.set_index(["subgroup", "level"])
    assert list(rows.index) == [("all patients", ""), ("fcgr3a", "F carrier"), ("fcgr3a", "V/V"),
                                ("nk_cells", "< 20"), ("nk_cells", "≥ 20")]
    data = joined.table.dropna(subset=["fcgr3a"])
    part = data[data["fcgr3a"] == "V/V"]
    direct = CoxPHFitter().fit(pd.DataFrame({"t": part["time_months"], "e": part["event"],
                                             "arm": (part["arm"] == "B").astype(int)}), "t", "e")
    assert rows.loc[("fcgr3a", "V/V"), "estimate"] == pytest.approx(
        math.exp(direct.params_["arm"]), rel=1e-6)
    assert rows.loc[("fcgr3a", "V/V"), "n"] == len(part)
    # Interaction: likelihood-ratio test of Cox models with and without arm × subgroup.
    design = pd.DataFrame({"t": data["time_months"], "e": data["event"],
                           "arm": (data["arm"] == "B").astype(int),
                           "g": (data["fcgr3a"] == "V/V").astype(int)})
    full = CoxPHFitter().fit(design.assign(x=design["arm"] * design["g"]), "t", "e")
    reduced = CoxPHFitter().fit(design, "t", "e")
    statistic = 2 * (full.log_likelihood_ - reduced.log_likelihood_)
    test = forest.interaction.set_index("subgroup").loc["fcgr3a"]
    assert test["statistic"] == pytest.approx(statistic, rel=1e-6)
    assert test["p"] == pytest.approx(stats.chi2.sf(statistic, 1), rel=1e-6)
    svg = render(forest_figure(forest), "svg").decode()
    assert "interaction p = " in svg and "Hazard ratio, B vs A" in svg


def test_forest_response_rates_and_interaction(cohort: tuple[pd.DataFrame, pd.DataFrame]
                                               ) -> None:
    patients, long = cohort
    joined = join_baseline(patients, validate_biomarkers(long), ["fcgr3a"])
    forest = forest_response_rates(joined, ["fcgr3a"])
    data = joined.table.dropna(subset=["fcgr3a"])
    cell = data[(data["fcgr3a"] == "V/V") & (data["arm"] == "B")]
    row = forest.rows[(forest.rows["level"] == "V/V") & (forest.rows["arm"] == "B")].iloc[0]
    k, n = int(cell["responder"].sum()), len(cell)
    ci = stats.binomtest(k, n).proportion_ci(method="exact")
    assert (row["n"], row["responders"]) == (n, k)
    assert (row["lower"], row["upper"]) == pytest.approx((ci.low, ci.high))
    # Interaction: logistic regression with and without arm × genotype (statsmodels).
    x = pd.DataFrame({"arm": (data["arm"] == "B").astype(int),
                      "g": (data["fcgr3a"] == "V/V").astype(int)})
    y = data["responder"].astype(int)
    full = sm.Logit(y, sm.add_constant(x.assign(i=x["arm"] * x["g"]))).fit(disp=0)
    reduced = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    test = forest.interaction.iloc[0]
    assert test["statistic"] == pytest.approx(2 * (full.llf - reduced.llf), rel=1e-6)
    # One arm only: Fisher's exact test of equal rates across the genotype levels.
    single = join_baseline(patients[patients["arm"] == "A"], validate_biomarkers(long),
                           ["fcgr3a"])
    one_arm = forest_response_rates(single, ["fcgr3a"], group_col=None).interaction.iloc[0]
    a = single.table.dropna(subset=["fcgr3a"])
    table = pd.crosstab(a["fcgr3a"], a["responder"].astype(int)).to_numpy()
    assert one_arm["p"] == pytest.approx(stats.fisher_exact(table)[1])
    assert "Fisher" in one_arm["test"]
    assert "Response rate" in render(forest_figure(forest), "svg").decode()


# --- longitudinal --------------------------------------------------------------------------


def test_longitudinal_summary_mann_whitney_and_mixed_model(
        cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    patients, long = cohort
    arms = dict(zip(patients["patient_id"], patients["arm"], strict=True))
    result = longitudinal(validate_biomarkers(long), arms, "il6")
    il6 = long[long["biomarker"] == "il6"].assign(arm=lambda d: d["patient_id"].map(arms))
    for day in (1, 3, 7):
        a = il6[(il6["day"] == day) & (il6["arm"] == "A")]["value"].astype(float)
        b = il6[(il6["day"] == day) & (il6["arm"] == "B")]["value"].astype(float)
        row = result.summary.set_index(["day", "arm"]).loc[(day, "A")]
        assert row["n"] == len(a) and row["missing"] == 30 - len(a)
        low, high = stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=stats.sem(a))
        assert (row["lower"], row["upper"]) == pytest.approx((low, high))
        test = stats.mannwhitneyu(a, b, alternative="two-sided")
        got = result.comparison.set_index("day").loc[day]
        assert (got["U"], got["p"]) == pytest.approx((test.statistic, test.pvalue))
    assert result.summary["missing"].sum() == 180 - len(il6) > 0  # missing said, not imputed
    data = il6.assign(value=il6["value"].astype(float), day=il6["day"].astype(int))
    direct = smf.mixedlm("value ~ C(arm) * day", data, groups=data["patient_id"]).fit(reml=True)
    assert result.mixed is not None
    npt.assert_allclose(result.mixed["coef"].to_numpy(), direct.fe_params.to_numpy(), rtol=1e-6)
    npt.assert_allclose(result.mixed["p"].to_numpy(), direct.pvalues[direct.fe_params.index],
                        rtol=1e-6)
    assert "random intercept per patient" in result.mixed_note
    spaghetti = render(spaghetti_figure(result), "svg").decode()
    assert "missing values, not imputed" in spaghetti
    assert "mean ± 95% CI" in render(mean_ci_figure(result), "svg").decode()


def test_longitudinal_refuses_unknown_patients_and_log_of_zero() -> None:
    table = validate_biomarkers(pd.DataFrame([
        {"patient_id": "P1", "biomarker": "crp", "day": 1, "value": 0}]))
    with pytest.raises(OutcomeError, match="not in the event table: P1"):
        longitudinal(table, {"P2": "A"}, "crp")
    with pytest.raises(OutcomeError, match="log10 needs values above 0"):
        longitudinal(table, {"P1": "A"}, "crp", log10=True)


# --- free days -------------------------------------------------------------------------------


def test_free_days_per_patient_and_by_arm() -> None:
    d1 = date(2026, 3, 1)

    def day(n: int) -> str:
        return (d1 + timedelta(days=n - 1)).isoformat()

    events = pd.DataFrame([
        {"patient_id": "a", "arm": "MSC", "enrolment_date": day(1), "death_date": None,
         "last_contact_date": day(60)},
        {"patient_id": "b", "arm": "MSC", "enrolment_date": day(1), "death_date": day(10),
         "last_contact_date": None},
        {"patient_id": "c", "arm": "SOC", "enrolment_date": day(1), "death_date": None,
         "last_contact_date": day(20)},
        {"patient_id": "d", "arm": "SOC", "enrolment_date": day(1), "death_date": None,
         "last_contact_date": day(90)},
    ])
    episodes = pd.DataFrame([
        {"patient_id": "a", "kind": "invasive_ventilation", "start_date": day(1),
         "end_date": day(20)},
        {"patient_id": "d", "kind": "non_invasive_ventilation", "start_date": day(3),
         "end_date": day(4)},
        {"patient_id": "d", "kind": "rrt", "start_date": day(2), "end_date": day(6)},
    ])
    vfd = free_days_table(events, episodes, "ventilation").set_index("patient_id")
    # a: on support days 1–20, alive on day 28 → 8; b: died on day 10 → 0;
    # c: lost on day 20 alive → unknown; d: 2 days of non-invasive ventilation → 26.
    assert vfd["free_days"].fillna(-1).to_dict() == {"a": 8, "b": 0, "c": -1, "d": 26}
    assert vfd.loc["c", "free_days"] is pd.NA
    assert "unknown" in vfd.loc["c", "note"]
    assert free_days_table(events, episodes, "invasive_ventilation").set_index(
        "patient_id").loc["d", "free_days"] == 28
    assert free_days_table(events, episodes, "rrt").set_index(
        "patient_id").loc["d", "free_days"] == 23
    summary = compare_free_days(vfd.reset_index())
    assert summary["unknown"] == 1
    assert summary["arms"]["MSC"]["median"] == 4.0
    expected = stats.mannwhitneyu([8, 0], [26], alternative="two-sided")
    assert summary["mann_whitney"]["p"] == pytest.approx(expected.pvalue)
    with pytest.raises(OutcomeError) as err:
        free_days_table(events, episodes, "ecmo")
    assert err.value.where == "support"

"""Kidney function and organ-failure scores: Schwartz, Cockcroft–Gault, RIFLE, SOFA.

Creatinine is in mg/dL throughout; convert µmol/L first with
:func:`creatinine_umol_to_mg_dl`.

>>> round(schwartz_bedside(120, 0.5), 2)
99.12
>>> rifle_class(0.5, 1.1).category
<RifleClass.INJURY: 'injury'>
>>> sofa_score(platelets_10e3_ul=80, gcs=15).missing
('respiration', 'liver', 'cardiovascular', 'renal')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum

from trialdesk.clinical.body import check_height_cm, check_weight_kg
from trialdesk.errors import ClinicalError

# Creatinine: 1 mg/dL = 88.4 µmol/L (molar mass 113.12 g/mol; Schwartz JASN 2009;20:629
# and the bedside-Schwartz literature divide µmol/L by 88.4).
CREATININE_UMOL_PER_MG_DL = 88.4

# Bedside Schwartz constant, height in cm and IDMS-traceable enzymatic creatinine in mg/dL
# (Schwartz GJ et al., JASN 2009;20:629, abstract and "bedside" formula).
SCHWARTZ_K = 0.413
# The CKiD cohort behind the 2009 equation: children aged 1 to 16 years (same source).
SCHWARTZ_MIN_AGE_YEARS = 1.0
SCHWARTZ_MAX_AGE_YEARS = 16.0

# Oldest verified human: Jeanne Calment, 122 years 164 days. A plausibility guard only.
AGE_MAX_YEARS = 123.0


# --- input checks --------------------------------------------------------------------


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClinicalError(f"must be a number, got {value!r}", where=field)
    number = float(value)
    if not math.isfinite(number):
        raise ClinicalError(f"must be a finite number, got {value!r}", where=field)
    return number


def _positive(value: object, field: str) -> float:
    number = _number(value, field)
    if number <= 0:
        raise ClinicalError(f"must be greater than 0, got {value!r}", where=field)
    return number


def _non_negative(value: object, field: str) -> float:
    number = _number(value, field)
    if number < 0:
        raise ClinicalError(f"must not be negative, got {value!r}", where=field)
    return number


def _optional_non_negative(value: object, field: str) -> float | None:
    return None if value is None else _non_negative(value, field)


def _optional_gfr_fall(value: object) -> float | None:
    if value is None:
        return None
    fall = _number(value, "gfr_fall_fraction")
    if fall > 1:
        raise ClinicalError(
            f"is a fraction of baseline GFR (0.30 for 30%), at most 1; got {value!r}",
            where="gfr_fall_fraction",
        )
    return fall


def _age(value: object) -> float:
    age = _non_negative(value, "age_years")
    if age > AGE_MAX_YEARS:
        raise ClinicalError(
            f"{value!r} years is above the oldest verified human age", where="age_years"
        )
    return age


def _is_female(sex: object) -> bool:
    key = sex.strip().lower() if isinstance(sex, str) else None
    if key in ("female", "f"):
        return True
    if key in ("male", "m"):
        return False
    raise ClinicalError(f"must be 'male' or 'female', got {sex!r}", where="sex")


# --- unit conversion ---------------------------------------------------------------------


def creatinine_umol_to_mg_dl(value: float) -> float:
    """Serum creatinine µmol/L → mg/dL (÷ 88.4).

    >>> creatinine_umol_to_mg_dl(88.4)
    1.0
    """
    return _positive(value, "creatinine_umol_l") / CREATININE_UMOL_PER_MG_DL


def creatinine_mg_dl_to_umol(value: float) -> float:
    """Serum creatinine mg/dL → µmol/L (× 88.4).

    >>> creatinine_mg_dl_to_umol(0.5)
    44.2
    """
    return _positive(value, "creatinine_mg_dl") * CREATININE_UMOL_PER_MG_DL


# --- GFR and creatinine clearance -------------------------------------------------------


def schwartz_bedside(height_cm: float, creatinine_mg_dl: float) -> float:
    """Bedside Schwartz eGFR in mL/min/1.73 m²: 0.413 × height (cm) / SCr (mg/dL).

    Source: Schwartz GJ, Muñoz A, Schneider MF et al. New equations to estimate GFR in
    children with CKD. JASN 2009;20:629–37.

    Validity: only with IDMS-traceable enzymatic creatinine; derived in the CKiD cohort of
    children aged 1–16 years with chronic kidney disease (see :func:`schwartz_applicable`);
    not for adults, and not for acute kidney injury, where creatinine is not at steady
    state.

    >>> round(schwartz_bedside(120, 0.5), 2)
    99.12
    """
    height = check_height_cm(height_cm)
    creatinine = _positive(creatinine_mg_dl, "creatinine_mg_dl")
    return SCHWARTZ_K * height / creatinine


def schwartz_applicable(age_years: float) -> bool:
    """Whether the bedside Schwartz equation was derived for a child of this age.

    The CKiD cohort of Schwartz et al. (JASN 2009;20:629) were children "aged 1 to 16 yr".
    Age in years is read as completed years, so a child is covered from the first
    birthday until the seventeenth (16.9 years old is "16").

    >>> schwartz_applicable(0.5), schwartz_applicable(8), schwartz_applicable(16.5)
    (False, True, True)
    >>> schwartz_applicable(17)
    False
    """
    age = _age(age_years)
    return SCHWARTZ_MIN_AGE_YEARS <= age < SCHWARTZ_MAX_AGE_YEARS + 1.0


def cockcroft_gault(
    age_years: float,
    weight_kg: float,
    creatinine_mg_dl: float,
    sex: str,
) -> float:
    """Creatinine clearance in mL/min by Cockcroft–Gault.

    CrCl = (140 − age) × weight (kg) / (72 × SCr mg/dL), × 0.85 if female.
    Source: Cockcroft DW, Gault MH. Prediction of creatinine clearance from serum
    creatinine. Nephron 1976;16:31–41. The result is absolute (mL/min), not normalised
    to 1.73 m². The equation was derived in adults; use Schwartz for children.

    >>> round(cockcroft_gault(40, 70, 1.0, "male"), 2)
    97.22
    >>> round(cockcroft_gault(40, 70, 1.0, "female"), 2)
    82.64
    """
    age = _age(age_years)
    weight = check_weight_kg(weight_kg)
    creatinine = _positive(creatinine_mg_dl, "creatinine_mg_dl")
    female = _is_female(sex)
    # Cockcroft & Gault 1976: (140 − age) × kg / (72 × SCr); women × 0.85.
    clearance = (140.0 - age) * weight / (72.0 * creatinine)
    return clearance * 0.85 if female else clearance


# --- RIFLE ---------------------------------------------------------------------------


class RifleClass(StrEnum):
    """RIFLE classes (Bellomo R et al., ADQI. Crit Care 2004;8:R204), mildest first."""

    RISK = "risk"
    INJURY = "injury"
    FAILURE = "failure"
    LOSS = "loss"
    ESKD = "eskd"


_RIFLE_ORDER = tuple(RifleClass)

# Bellomo 2004, Figure 1 (ADQI RIFLE). "Increased SCr × 1.5" is read as a current value of
# at least 1.5 times baseline (likewise × 2 and × 3); GFR falls must exceed the percentage.
RIFLE_SCR_RATIO = {RifleClass.RISK: 1.5, RifleClass.INJURY: 2.0, RifleClass.FAILURE: 3.0}
RIFLE_GFR_FALL = {RifleClass.RISK: 0.25, RifleClass.INJURY: 0.50, RifleClass.FAILURE: 0.75}
RIFLE_FAILURE_SCR_MG_DL = 4.0  # SCr ≥ 4 mg/dL (≥ 354 µmol/L) …
RIFLE_FAILURE_ACUTE_RISE_MG_DL = 0.5  # … with an acute rise of ≥ 0.5 mg/dL
RIFLE_UO_LOW = 0.5  # mL/kg/h, Risk for 6 h, Injury for 12 h
RIFLE_UO_RISK_HOURS = 6.0
RIFLE_UO_INJURY_HOURS = 12.0
RIFLE_UO_FAILURE = 0.3  # mL/kg/h for 24 h
RIFLE_UO_FAILURE_HOURS = 24.0
RIFLE_ANURIA_HOURS = 12.0
# Loss: persistent acute renal failure, complete loss of kidney function > 4 weeks;
# ESKD: > 3 months. Three months are counted as 3 × 365.25 / 12 days.
RIFLE_LOSS_DAYS = 28.0
RIFLE_ESKD_DAYS = 3 * 365.25 / 12


@dataclass(frozen=True)
class RifleResult:
    """A RIFLE class with the criteria that produced it.

    ``category`` is None when no criterion is met. ``by_creatinine`` and
    ``by_urine_output`` are the classes each criterion gives on its own (None when it is
    not met or was not given); ``category`` is the worse of the two unless a duration of
    persistent failure makes it Loss or ESKD.
    """

    category: RifleClass | None
    reason: str
    by_creatinine: RifleClass | None = None
    by_urine_output: RifleClass | None = None


def rifle_class(
    baseline_creatinine: float,
    current_creatinine: float,
    *,
    gfr_fall_fraction: float | None = None,
    urine_output_ml_kg_h: float | None = None,
    urine_hours: float | None = None,
    anuria_hours: float | None = None,
    failure_duration_days: float | None = None,
) -> RifleResult:
    """Classify acute kidney injury by RIFLE (Bellomo R et al., Crit Care 2004;8:R204).

    Creatinine values are serum creatinine in mg/dL. Criteria, the worse one decides:

    ========  ==============================================  ============================
    class     creatinine / GFR                                urine output
    ========  ==============================================  ============================
    Risk      SCr ≥ 1.5 × baseline, or GFR fall > 25%          < 0.5 mL/kg/h for ≥ 6 h
    Injury    SCr ≥ 2 × baseline, or GFR fall > 50%            < 0.5 mL/kg/h for ≥ 12 h
    Failure   SCr ≥ 3 × baseline, GFR fall > 75%, or           < 0.3 mL/kg/h for ≥ 24 h,
              SCr ≥ 4 mg/dL with an acute rise ≥ 0.5 mg/dL     or anuria for ≥ 12 h
    ========  ==============================================  ============================

    ``gfr_fall_fraction`` is a fraction (0.30 for a 30% fall). ``urine_output_ml_kg_h`` is
    the mean rate over the last ``urine_hours`` hours; give both or neither. A rate of 0
    counts as anuria for those hours.

    Loss (> 4 weeks) and ESKD (> 3 months) are defined by how long complete loss of kidney
    function has persisted, which no single set of values shows: pass that duration as
    ``failure_duration_days`` (4 weeks or less leaves the class to the criteria above).
    Bellomo also requires the change to be abrupt (1–7 days) and sustained (> 24 h);
    judging that is left to the caller.

    >>> rifle_class(0.5, 0.8).category
    <RifleClass.RISK: 'risk'>
    >>> r = rifle_class(0.5, 0.8, urine_output_ml_kg_h=0.2, urine_hours=24)
    >>> r.category, r.by_creatinine, r.by_urine_output
    (<RifleClass.FAILURE: 'failure'>, <RifleClass.RISK: 'risk'>, <RifleClass.FAILURE: 'failure'>)
    """
    baseline = _positive(baseline_creatinine, "baseline_creatinine")
    current = _positive(current_creatinine, "current_creatinine")
    gfr_fall = _optional_gfr_fall(gfr_fall_fraction)
    if (urine_output_ml_kg_h is None) != (urine_hours is None):
        missing = "urine_hours" if urine_hours is None else "urine_output_ml_kg_h"
        raise ClinicalError(
            "urine output needs both the rate (urine_output_ml_kg_h) and the hours it "
            "covers (urine_hours)",
            where=missing,
        )
    uo_rate = _optional_non_negative(urine_output_ml_kg_h, "urine_output_ml_kg_h")
    uo_hours = None if urine_hours is None else _positive(urine_hours, "urine_hours")
    anuria = _optional_non_negative(anuria_hours, "anuria_hours")
    failure_days = _optional_non_negative(failure_duration_days, "failure_duration_days")

    by_scr, scr_reason = _rifle_by_creatinine(baseline, current, gfr_fall)
    by_uo, uo_reason = _rifle_by_urine(uo_rate, uo_hours, anuria)

    if failure_days is not None and failure_days > RIFLE_LOSS_DAYS:
        persistent = RifleClass.ESKD if failure_days > RIFLE_ESKD_DAYS else RifleClass.LOSS
        limit = "> 3 months" if persistent is RifleClass.ESKD else "> 4 weeks"
        reason = f"complete loss of kidney function for {failure_days:g} days ({limit})"
        return RifleResult(persistent, reason, by_scr, by_uo)

    worst = max((by_scr, by_uo), key=_rifle_rank)
    if worst is None:
        return RifleResult(None, f"no RIFLE criterion met ({scr_reason}; {uo_reason})")
    if by_scr == by_uo:
        reason = f"{worst} by both criteria: {scr_reason}; {uo_reason}"
    elif worst == by_scr:
        reason = f"{worst} by creatinine/GFR: {scr_reason} (urine output: {uo_reason})"
    else:
        reason = f"{worst} by urine output: {uo_reason} (creatinine/GFR: {scr_reason})"
    return RifleResult(worst, reason, by_scr, by_uo)


def _rifle_rank(value: RifleClass | None) -> int:
    return -1 if value is None else _RIFLE_ORDER.index(value)


def _rifle_by_creatinine(
    baseline: float, current: float, gfr_fall: float | None
) -> tuple[RifleClass | None, str]:
    ratio = current / baseline
    found: RifleClass | None = None
    because = f"SCr {current:g} mg/dL is {ratio:.2f} × baseline {baseline:g}"
    for cls in (RifleClass.FAILURE, RifleClass.INJURY, RifleClass.RISK):
        if ratio >= RIFLE_SCR_RATIO[cls]:
            found, because = cls, f"{because} (≥ {RIFLE_SCR_RATIO[cls]:g})"
            break
    rise = current - baseline
    if (
        found is not RifleClass.FAILURE
        and current >= RIFLE_FAILURE_SCR_MG_DL
        and rise >= RIFLE_FAILURE_ACUTE_RISE_MG_DL
    ):
        found = RifleClass.FAILURE
        because = f"SCr {current:g} mg/dL ≥ 4 with an acute rise of {rise:.2f} mg/dL (≥ 0.5)"
    if gfr_fall is not None:
        for cls in (RifleClass.FAILURE, RifleClass.INJURY, RifleClass.RISK):
            if gfr_fall > RIFLE_GFR_FALL[cls]:
                if _rifle_rank(cls) > _rifle_rank(found):
                    found = cls
                    because = f"GFR fell {gfr_fall:.0%} (> {RIFLE_GFR_FALL[cls]:.0%})"
                break
    return found, because


def _rifle_by_urine(
    rate: float | None, hours: float | None, anuria: float | None
) -> tuple[RifleClass | None, str]:
    if rate is None and anuria is None:
        return None, "urine output not given"
    if anuria is not None and anuria >= RIFLE_ANURIA_HOURS:
        return RifleClass.FAILURE, f"anuria for {anuria:g} h (≥ 12 h)"
    if rate is not None and hours is not None:
        described = f"{rate:g} mL/kg/h for {hours:g} h"
        if rate == 0 and hours >= RIFLE_ANURIA_HOURS:
            return RifleClass.FAILURE, f"anuria for {hours:g} h (≥ 12 h)"
        if rate < RIFLE_UO_FAILURE and hours >= RIFLE_UO_FAILURE_HOURS:
            return RifleClass.FAILURE, f"{described} (< 0.3 for ≥ 24 h)"
        if rate < RIFLE_UO_LOW and hours >= RIFLE_UO_INJURY_HOURS:
            return RifleClass.INJURY, f"{described} (< 0.5 for ≥ 12 h)"
        if rate < RIFLE_UO_LOW and hours >= RIFLE_UO_RISK_HOURS:
            return RifleClass.RISK, f"{described} (< 0.5 for ≥ 6 h)"
        return None, f"{described} meets no urine criterion"
    return None, f"anuria for {anuria:g} h (< 12 h) meets no urine criterion"


# --- SOFA ----------------------------------------------------------------------------

SOFA_COMPONENTS = ("respiration", "coagulation", "liver", "cardiovascular", "cns", "renal")


@dataclass(frozen=True)
class Vasopressors:
    """Catecholamine doses in µg/kg/min given for at least 1 h (Sepsis-3 Table 1 note).

    ``Vasopressors()`` states that none is given. Pass ``None`` instead of this object to
    :func:`sofa_score` when it is not known whether any is given.

    >>> Vasopressors(noradrenaline=0.05).any_given
    True
    """

    dopamine: float = 0.0
    dobutamine: float = 0.0
    adrenaline: float = 0.0
    noradrenaline: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            _non_negative(getattr(self, f.name), f"vasopressors.{f.name}")

    @property
    def any_given(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))


NO_VASOPRESSORS = Vasopressors()


@dataclass(frozen=True)
class SofaComponent:
    """One organ system's SOFA points, or ``score=None`` when it cannot be scored."""

    name: str
    score: int | None
    reason: str


@dataclass(frozen=True)
class SofaResult:
    """SOFA per organ system, with the systems that could not be scored.

    A missing system is never counted as 0. ``total`` sums the scored systems only, so it
    is the true total when ``complete`` and a lower bound otherwise; ``upper_bound``
    counts each missing system as 4. "Total SOFA ≥ 2" is therefore certainly true when
    ``total ≥ 2``, certainly false when ``upper_bound < 2``, and unknown in between.
    """

    components: tuple[SofaComponent, ...]

    @property
    def scores(self) -> dict[str, int | None]:
        return {c.name: c.score for c in self.components}

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components if c.score is None)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def total(self) -> int:
        return sum(c.score for c in self.components if c.score is not None)

    @property
    def upper_bound(self) -> int:
        return self.total + 4 * len(self.missing)


def sofa_score(
    *,
    pao2_fio2_mmhg: float | None = None,
    respiratory_support: bool | None = None,
    platelets_10e3_ul: float | None = None,
    bilirubin_mg_dl: float | None = None,
    map_mmhg: float | None = None,
    vasopressors: Vasopressors | None = None,
    gcs: int | None = None,
    creatinine_mg_dl: float | None = None,
    urine_output_ml_day: float | None = None,
) -> SofaResult:
    """Sequential (sepsis-related) Organ Failure Assessment score.

    Sources: Vincent JL et al., Intensive Care Med 1996;22:707 (Table 1); the same table
    as adapted in Singer M et al., Sepsis-3, JAMA 2016;315:801, Table 1.

    Every input is optional; a system without enough data is listed in
    ``SofaResult.missing`` and not counted (never as 0). Units: PaO₂/FiO₂ in mmHg,
    platelets ×10³/µL, bilirubin and creatinine in mg/dL, MAP in mmHg, urine output in
    mL/day, vasopressors in µg/kg/min.

    - Respiration: scores 3 and 4 need respiratory support, so a ratio < 200 is only
      scored when ``respiratory_support`` is stated (< 200 without support scores 2).
    - Cardiovascular: MAP alone scores 0 or 1 only if no vasopressor is given, so it needs
      ``vasopressors`` (use ``NO_VASOPRESSORS`` for none); any vasopressor scores ≥ 2
      whatever the MAP.
    - Renal: the table scores creatinine *or* urine output; with both, the worse counts.

    >>> r = sofa_score(pao2_fio2_mmhg=250, platelets_10e3_ul=120, bilirubin_mg_dl=0.8,
    ...                map_mmhg=65, vasopressors=NO_VASOPRESSORS, gcs=14,
    ...                creatinine_mg_dl=1.0)
    >>> r.total, r.complete
    (5, True)
    """
    return SofaResult(
        (
            _sofa_respiration(pao2_fio2_mmhg, respiratory_support),
            _sofa_coagulation(platelets_10e3_ul),
            _sofa_liver(bilirubin_mg_dl),
            _sofa_cardiovascular(map_mmhg, vasopressors),
            _sofa_cns(gcs),
            _sofa_renal(creatinine_mg_dl, urine_output_ml_day),
        )
    )


def _sofa_respiration(ratio: float | None, support: bool | None) -> SofaComponent:
    name = "respiration"
    if ratio is None:
        return SofaComponent(name, None, "PaO2/FiO2 not given")
    value = _positive(ratio, "pao2_fio2_mmhg")
    if support is not None and not isinstance(support, bool):
        raise ClinicalError(f"must be true or false, got {support!r}", where="respiratory_support")
    # Vincent 1996 / Sepsis-3: ≥400 → 0; <400 → 1; <300 → 2; <200 and <100 score 3 and 4
    # only "with respiratory support". Without support the table gives no higher row, so
    # the ratio keeps the highest score it does meet, 2 (< 300): the usual reading.
    if value >= 400:
        return SofaComponent(name, 0, f"PaO2/FiO2 {value:g} ≥ 400")
    if value >= 300:
        return SofaComponent(name, 1, f"PaO2/FiO2 {value:g} < 400")
    if value >= 200:
        return SofaComponent(name, 2, f"PaO2/FiO2 {value:g} < 300")
    if support is None:
        return SofaComponent(
            name, None, f"PaO2/FiO2 {value:g} < 200 but respiratory support not stated"
        )
    if not support:
        return SofaComponent(name, 2, f"PaO2/FiO2 {value:g} < 200 without respiratory support")
    if value >= 100:
        return SofaComponent(name, 3, f"PaO2/FiO2 {value:g} < 200 with respiratory support")
    return SofaComponent(name, 4, f"PaO2/FiO2 {value:g} < 100 with respiratory support")


def _sofa_coagulation(platelets: float | None) -> SofaComponent:
    name = "coagulation"
    if platelets is None:
        return SofaComponent(name, None, "platelets not given")
    value = _non_negative(platelets, "platelets_10e3_ul")
    # Vincent 1996 / Sepsis-3: ≥150 → 0; <150 → 1; <100 → 2; <50 → 3; <20 → 4 (×10³/µL).
    for limit, score in ((20, 4), (50, 3), (100, 2), (150, 1)):
        if value < limit:
            return SofaComponent(name, score, f"platelets {value:g} < {limit}")
    return SofaComponent(name, 0, f"platelets {value:g} ≥ 150")


def _sofa_liver(bilirubin: float | None) -> SofaComponent:
    name = "liver"
    if bilirubin is None:
        return SofaComponent(name, None, "bilirubin not given")
    value = _non_negative(bilirubin, "bilirubin_mg_dl")
    # Vincent 1996 / Sepsis-3, mg/dL: <1.2 → 0; 1.2–1.9 → 1; 2.0–5.9 → 2; 6.0–11.9 → 3;
    # >12.0 → 4. The table is written to one decimal, so each band runs up to, not
    # including, the next band's lower bound: 1.95 → 1, 5.95 → 2, and exactly 12.0 → 4
    # (12.0 mg/dL ≈ 205 µmol/L, above the table's ">204 µmol/L").
    return SofaComponent(name, _band(value, (1.2, 2.0, 6.0, 12.0)), f"bilirubin {value:g} mg/dL")


def _sofa_cardiovascular(map_mmhg: float | None, drugs: Vasopressors | None) -> SofaComponent:
    name = "cardiovascular"
    mean_pressure = None if map_mmhg is None else _positive(map_mmhg, "map_mmhg")
    if drugs is not None and not isinstance(drugs, Vasopressors):
        raise ClinicalError(
            f"must be a Vasopressors value or None, got {drugs!r}", where="vasopressors"
        )
    if drugs is not None and drugs.any_given:
        # Vincent 1996 Table 1: dopamine ≤5 or dobutamine (any dose) → 2; dopamine >5, or
        # adrenaline ≤0.1, or noradrenaline ≤0.1 → 3; dopamine >15, or adrenaline >0.1, or
        # noradrenaline >0.1 → 4. Sepsis-3 writes "<5" and "5.1–15", which leaves 5.0
        # unassigned; the original "≤5" is used, so dopamine 5.0 → 2 and 5.05 → 3.
        doses = ", ".join(
            f"{f.name} {getattr(drugs, f.name):g}" for f in fields(drugs) if getattr(drugs, f.name)
        )
        if drugs.dopamine > 15 or drugs.adrenaline > 0.1 or drugs.noradrenaline > 0.1:
            rule = "dopamine > 15, or adrenaline or noradrenaline > 0.1"
            score = 4
        elif drugs.dopamine > 5 or drugs.adrenaline > 0 or drugs.noradrenaline > 0:
            rule = "dopamine > 5, or adrenaline or noradrenaline ≤ 0.1"
            score = 3
        else:
            rule = "dopamine ≤ 5 or dobutamine (any dose)"
            score = 2
        return SofaComponent(name, score, f"{doses} µg/kg/min: {rule}")
    if drugs is None:
        why = "vasopressor use not stated" if mean_pressure is not None else "MAP not given"
        return SofaComponent(name, None, why)
    if mean_pressure is None:
        return SofaComponent(name, None, "MAP not given (no vasopressors)")
    # Vincent 1996 / Sepsis-3: MAP ≥70 mmHg → 0; <70 → 1.
    if mean_pressure < 70:
        return SofaComponent(name, 1, f"MAP {mean_pressure:g} < 70 mmHg, no vasopressors")
    return SofaComponent(name, 0, f"MAP {mean_pressure:g} ≥ 70 mmHg, no vasopressors")


def _sofa_cns(gcs: int | None) -> SofaComponent:
    name = "cns"
    if gcs is None:
        return SofaComponent(name, None, "Glasgow Coma Scale not given")
    if isinstance(gcs, bool) or not isinstance(gcs, int) or not 3 <= gcs <= 15:
        raise ClinicalError(f"must be a whole number from 3 to 15, got {gcs!r}", where="gcs")
    # Vincent 1996 / Sepsis-3: 15 → 0; 13–14 → 1; 10–12 → 2; 6–9 → 3; <6 → 4.
    score = 0 if gcs == 15 else 1 if gcs >= 13 else 2 if gcs >= 10 else 3 if gcs >= 6 else 4
    return SofaComponent(name, score, f"GCS {gcs}")


def _sofa_renal(creatinine: float | None, urine_ml_day: float | None) -> SofaComponent:
    name = "renal"
    if creatinine is None and urine_ml_day is None:
        return SofaComponent(name, None, "creatinine and urine output not given")
    by_scr: int | None = None
    by_uo: int | None = None
    parts = []
    if creatinine is not None:
        value = _positive(creatinine, "creatinine_mg_dl")
        # Vincent 1996 / Sepsis-3, mg/dL: <1.2 → 0; 1.2–1.9 → 1; 2.0–3.4 → 2; 3.5–4.9 → 3;
        # >5.0 → 4. As for bilirubin, each band runs up to the next lower bound: 4.95 → 3
        # and exactly 5.0 → 4 (5.0 mg/dL = 442 µmol/L, above the table's ">440 µmol/L").
        by_scr = _band(value, (1.2, 2.0, 3.5, 5.0))
        parts.append(f"creatinine {value:g} mg/dL → {by_scr}")
    if urine_ml_day is not None:
        volume = _non_negative(urine_ml_day, "urine_output_ml_day")
        # Vincent 1996 / Sepsis-3: urine output <500 mL/day → 3; <200 mL/day → 4.
        by_uo = 4 if volume < 200 else 3 if volume < 500 else 0
        parts.append(f"urine output {volume:g} mL/day → {by_uo}")
    if by_scr is None:
        parts.append("creatinine not given")
    if by_uo is None:
        parts.append("urine output not given")
    score = max(s for s in (by_scr, by_uo) if s is not None)
    return SofaComponent(name, score, "; ".join(parts))


def _band(value: float, lower_bounds: tuple[float, ...]) -> int:
    """Number of band lower bounds ≤ value: 0 below the first, len() at or above the last."""
    return sum(1 for bound in lower_bounds if value >= bound)

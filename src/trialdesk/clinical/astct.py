"""ASTCT consensus grading of cytokine release syndrome (CRS) and ICANS.

Source: Lee DW, Santomasso BD, Locke FL, et al. ASTCT Consensus Grading for Cytokine
Release Syndrome and Neurologic Toxicity Associated with Immune Effector Cells.
Biol Blood Marrow Transplant 2019;25(4):625-638, doi:10.1016/j.bbmt.2018.12.758.
The adult tables are as reproduced in PMC8403007 Table 4, PMC7990806 Table 2 and
PMC9327779 Table 2.

Each domain is graded on its own and the syndrome takes the worst domain. An input left
as None is "not assessed": if it could still change the grade, the result is unknown and
names it, with the grades still possible.

>>> grade_crs(True, Hypotension.NONE, Hypoxia.LOW_FLOW).grade
2
>>> grade_icans(30, ice_score=5, consciousness=Consciousness.ALERT, seizure=Seizure.NONE,
...             motor_weakness=False, cerebral_oedema=CerebralOedema.NONE).grade
2
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import product
from typing import Final, TypeVar

from trialdesk.errors import ClinicalError

SOURCE: Final = "ASTCT consensus grading (Lee DW et al., Biol Blood Marrow Transplant 2019;25:625)"


# --------------------------------------------------------------------------- CRS


class Hypotension(StrEnum):
    """Hypotension as graded by ASTCT CRS (Lee 2019)."""

    NONE = "none"
    NOT_REQUIRING_VASOPRESSORS = "not_requiring_vasopressors"
    ONE_VASOPRESSOR = "one_vasopressor"  # with or without vasopressin
    MULTIPLE_VASOPRESSORS = "multiple_vasopressors"  # excluding vasopressin


class Hypoxia(StrEnum):
    """Oxygen support needed for hypoxia, as graded by ASTCT CRS (Lee 2019)."""

    NONE = "none"
    LOW_FLOW = "low_flow"  # nasal cannula <=6 L/min, or blow-by
    HIGH_FLOW = "high_flow"  # nasal cannula >6 L/min, face mask, non-rebreather, Venturi
    POSITIVE_PRESSURE = "positive_pressure"  # CPAP, BiPAP, intubation and ventilation


# ASTCT CRS: grade 2 = hypotension without vasopressors and/or low-flow O2; grade 3 = one
# vasopressor (± vasopressin) and/or high-flow O2; grade 4 = several vasopressors
# (excluding vasopressin) and/or positive pressure.
_HYPOTENSION_GRADE: Final = {
    Hypotension.NONE: 0,
    Hypotension.NOT_REQUIRING_VASOPRESSORS: 2,
    Hypotension.ONE_VASOPRESSOR: 3,
    Hypotension.MULTIPLE_VASOPRESSORS: 4,
}
_HYPOXIA_GRADE: Final = {
    Hypoxia.NONE: 0,
    Hypoxia.LOW_FLOW: 2,
    Hypoxia.HIGH_FLOW: 3,
    Hypoxia.POSITIVE_PRESSURE: 4,
}
LOW_FLOW_MAX_L_MIN: Final = 6.0  # ASTCT: low-flow nasal cannula is <=6 L/min


class OxygenDevice(StrEnum):
    NONE = "none"
    NASAL_CANNULA = "nasal_cannula"
    BLOW_BY = "blow_by"
    FACE_MASK = "face_mask"
    NON_REBREATHER = "non_rebreather"
    VENTURI_MASK = "venturi_mask"
    CPAP = "cpap"
    BIPAP = "bipap"
    MECHANICAL_VENTILATION = "mechanical_ventilation"


_DEVICE_CATEGORY: Final = {
    OxygenDevice.NONE: Hypoxia.NONE,
    OxygenDevice.BLOW_BY: Hypoxia.LOW_FLOW,
    OxygenDevice.FACE_MASK: Hypoxia.HIGH_FLOW,
    OxygenDevice.NON_REBREATHER: Hypoxia.HIGH_FLOW,
    OxygenDevice.VENTURI_MASK: Hypoxia.HIGH_FLOW,
    OxygenDevice.CPAP: Hypoxia.POSITIVE_PRESSURE,
    OxygenDevice.BIPAP: Hypoxia.POSITIVE_PRESSURE,
    OxygenDevice.MECHANICAL_VENTILATION: Hypoxia.POSITIVE_PRESSURE,
}


def hypoxia_category(device: OxygenDevice | str, flow_l_min: float | None = None) -> Hypoxia:
    """The ASTCT hypoxia category of the oxygen support a patient needs.

    A nasal cannula needs its flow: up to 6 L/min is low-flow, above is high-flow.

    >>> hypoxia_category("nasal_cannula", 6).value
    'low_flow'
    >>> hypoxia_category(OxygenDevice.NASAL_CANNULA, 8).value
    'high_flow'
    """
    device = _member(OxygenDevice, device, "device")
    if device is not OxygenDevice.NASAL_CANNULA:
        return _DEVICE_CATEGORY[device]
    if flow_l_min is None or isinstance(flow_l_min, bool) or flow_l_min <= 0:
        raise ClinicalError(
            f"a nasal cannula needs its flow in L/min above 0, got {flow_l_min!r}",
            where="flow_l_min",
        )
    return Hypoxia.LOW_FLOW if flow_l_min <= LOW_FLOW_MAX_L_MIN else Hypoxia.HIGH_FLOW


@dataclass(frozen=True)
class CrsGrade:
    """ASTCT CRS grade (0 = no CRS), or None with the grades still possible."""

    grade: int | None
    possible_grades: tuple[int, ...]
    rule: str
    missing: tuple[str, ...] = ()
    source: str = SOURCE

    @property
    def known(self) -> bool:
        return self.grade is not None


def _crs_grades(fever: bool, hypotension: Hypotension, hypoxia: Hypoxia, masked: bool) -> set[int]:
    organ = max(_HYPOTENSION_GRADE[hypotension], _HYPOXIA_GRADE[hypoxia])
    if fever:
        return {max(1, organ)}  # fever alone is grade 1
    if not masked:
        return {0}  # ASTCT requires fever (>=38.0 °C) for CRS
    # After antipyretics or anti-cytokine therapy (tocilizumab, steroids) fever is no
    # longer needed: hypotension and hypoxia drive the grade. Without either, whether a
    # masked grade 1 persists is a clinical call.
    return {organ} if organ else {0, 1}


def grade_crs(
    fever: bool | None,
    hypotension: Hypotension | str | None,
    hypoxia: Hypoxia | str | None,
    antipyretics_or_anticytokine_given: bool = False,
) -> CrsGrade:
    """Grade CRS by ASTCT consensus: fever, then the worse of hypotension and hypoxia.

    ``fever`` means a temperature >=38.0 °C not attributable to another cause.

    >>> grade_crs(True, "one_vasopressor", "low_flow").grade
    3
    >>> grade_crs(True, None, Hypoxia.NONE).missing
    ('hypotension',)
    """
    if fever is not None and not isinstance(fever, bool):
        raise ClinicalError(f"must be true, false or not given, got {fever!r}", where="fever")
    masked = bool(antipyretics_or_anticytokine_given)
    hypot = None if hypotension is None else _member(Hypotension, hypotension, "hypotension")
    hypox = None if hypoxia is None else _member(Hypoxia, hypoxia, "hypoxia")
    # Each input not assessed is tried at every value it could take.
    fevers = (True, False) if fever is None else (fever,)
    hypots = tuple(Hypotension) if hypot is None else (hypot,)
    hypoxs = tuple(Hypoxia) if hypox is None else (hypox,)
    grades = tuple(
        sorted({g for f, p, x in product(fevers, hypots, hypoxs) for g in _crs_grades(f, p, x, masked)})
    )
    inputs = (("fever", fever), ("hypotension", hypot), ("hypoxia", hypox))
    missing = tuple(name for name, value in inputs if value is None)
    if len(grades) == 1:
        return CrsGrade(grades[0], grades, _crs_rule(grades[0], fever, hypot, hypox, masked))
    if not missing:
        rule = (
            "grade is one of 0, 1: fever is masked by antipyretic or anti-cytokine therapy "
            "and there is no hypotension or hypoxia; clinical judgement decides"
        )
        return CrsGrade(None, grades, rule)
    rule = f"grade is one of {_join(grades)}: {', '.join(missing)} not assessed"
    return CrsGrade(None, grades, rule, missing)


def _crs_rule(
    grade: int,
    fever: bool | None,
    hypotension: Hypotension | None,
    hypoxia: Hypoxia | None,
    masked: bool,
) -> str:
    if grade == 0:
        return "no CRS: no fever >=38.0 °C (required unless masked by treatment)"
    parts = []
    if fever:
        parts.append("fever >=38.0 °C")
    elif masked:
        parts.append("fever masked by antipyretic or anti-cytokine therapy")
    if hypotension is not None and _HYPOTENSION_GRADE[hypotension] == grade:
        parts.append(f"hypotension: {hypotension.value.replace('_', ' ')}")
    if hypoxia is not None and _HYPOXIA_GRADE[hypoxia] == grade:
        parts.append(f"hypoxia needing {hypoxia.value.replace('_', ' ')} oxygen support")
    return f"CRS grade {grade}: " + "; ".join(parts)


# --------------------------------------------------------------------------- ICANS


class Consciousness(StrEnum):
    """Depressed level of consciousness not attributable to another cause."""

    ALERT = "alert"  # not depressed
    AWAKENS_SPONTANEOUSLY = "awakens_spontaneously"
    AWAKENS_TO_VOICE = "awakens_to_voice"
    AWAKENS_TO_TACTILE_STIMULUS = "awakens_to_tactile_stimulus"
    UNAROUSABLE = "unarousable"  # or needs vigorous/repetitive tactile stimuli; stupor, coma


class Seizure(StrEnum):
    NONE = "none"
    # Any clinical seizure, focal or generalised, that resolves rapidly, or non-convulsive
    # seizures on EEG that resolve with intervention.
    RESOLVES_RAPIDLY = "resolves_rapidly"
    # Life-threatening prolonged seizure (>5 min), or repetitive clinical or electrical
    # seizures without return to baseline in between.
    PROLONGED_OR_REPETITIVE = "prolonged_or_repetitive"


class CerebralOedema(StrEnum):
    """Elevated intracranial pressure / cerebral oedema (intracranial haemorrhage excluded)."""

    NONE = "none"
    FOCAL = "focal"  # focal/local oedema on neuroimaging
    # Diffuse oedema on neuroimaging; decerebrate or decorticate posturing; cranial nerve
    # VI palsy; papilloedema; or Cushing's triad.
    DIFFUSE = "diffuse"


# Lee 2019, ICANS table: domain finding -> grade.
_CONSCIOUSNESS_GRADE: Final = {
    Consciousness.ALERT: 0,
    Consciousness.AWAKENS_SPONTANEOUSLY: 1,
    Consciousness.AWAKENS_TO_VOICE: 2,
    Consciousness.AWAKENS_TO_TACTILE_STIMULUS: 3,
    Consciousness.UNAROUSABLE: 4,
}
_SEIZURE_GRADE: Final = {
    Seizure.NONE: 0,
    Seizure.RESOLVES_RAPIDLY: 3,
    Seizure.PROLONGED_OR_REPETITIVE: 4,
}
_OEDEMA_GRADE: Final = {CerebralOedema.NONE: 0, CerebralOedema.FOCAL: 3, CerebralOedema.DIFFUSE: 4}
_MOTOR_GRADE: Final = {False: 0, True: 4}  # deep focal motor weakness (hemi-/paraparesis)

# ICE (10 points) for age >12; CAPD for children aged 12 or younger. The cut-off follows
# the NCIt ICANS grade definitions (e.g. C188936: "ICE ... for adults and children over
# 12", "CAPD ... for children 12 and under").
ICE_MIN_AGE_EXCLUSIVE: Final = 12
ICE_MAX: Final = 10  # orientation 4, naming 3, command 1, writing 1, attention 1 (Lee 2019)
CAPD_MAX: Final = 32  # 8 items scored 0-4 (Traube C et al., Crit Care Med 2014;42:656)


def _ice_grade(score: int) -> int:
    # ICE 7-9 -> 1, 3-6 -> 2, 0-2 -> 3; 10 is normal. ICE 0 is grade 4 only when the
    # patient is unarousable, which the consciousness domain carries.
    if score >= 10:
        return 0
    if score >= 7:
        return 1
    if score >= 3:
        return 2
    return 3


# CAPD thresholds for children. CAPD <9 fits grades 1-2 (NCIt C188936); grades 1 and 2
# are then told apart by the level of consciousness, so CAPD <9 adds nothing on its own.
# CAPD >=9 -> grade 3 and "unable to perform CAPD" -> grade 4 are reported from Lee 2019
# by mdedge.com ("Group proposes new grading systems for CRS, neurotoxicity"); the
# paper's own paediatric table has not been read, so results resting on them carry
# ``unconfirmed=True``.
CAPD_DELIRIUM_THRESHOLD: Final = 9


def _capd_grade(score: int) -> int:
    return 3 if score >= CAPD_DELIRIUM_THRESHOLD else 0


@dataclass(frozen=True)
class IcansGrade:
    """ASTCT ICANS grade (0 = none), the grade of each domain, and what is missing.

    ``unconfirmed`` is True when the grade rests on a CAPD threshold that has not been
    checked against the primary source (CAPD >=9 -> 3; unable to perform CAPD -> 4).
    """

    grade: int | None
    possible_grades: tuple[int, ...]
    instrument: str
    domains: tuple[tuple[str, int], ...]
    rule: str
    missing: tuple[str, ...] = ()
    unconfirmed: bool = False
    source: str = SOURCE

    @property
    def known(self) -> bool:
        return self.grade is not None


def grade_icans(
    age_years: float,
    *,
    ice_score: int | None = None,
    capd_score: int | None = None,
    capd_unable_to_perform: bool = False,
    consciousness: Consciousness | str | None = None,
    seizure: Seizure | str | None = None,
    motor_weakness: bool | None = None,
    cerebral_oedema: CerebralOedema | str | None = None,
) -> IcansGrade:
    """Grade ICANS by ASTCT consensus: the most severe of its domains.

    Patients older than 12 are assessed with the ICE score (0-10); children aged 12 or
    younger with the CAPD (0-32), or ``capd_unable_to_perform``. Findings must not be
    attributable to another cause (e.g. sedation). Grade 5 (death) is not graded here.

    >>> r = grade_icans(6, capd_score=12, consciousness="awakens_to_voice", seizure="none",
    ...                 motor_weakness=False, cerebral_oedema="none")
    >>> r.grade, r.unconfirmed
    (3, True)
    """
    if isinstance(age_years, bool) or not isinstance(age_years, int | float):
        raise ClinicalError(f"must be a number, got {age_years!r}", where="age_years")
    if not 0 <= age_years < 130:
        raise ClinicalError(f"must be between 0 and 130, got {age_years!r}", where="age_years")
    child = age_years <= ICE_MIN_AGE_EXCLUSIVE
    instrument = "CAPD" if child else "ICE"

    # Every domain maps to the grades it could give: one if assessed, all if not.
    options: dict[str, tuple[int, ...]] = {}
    if child:
        if ice_score is not None:
            raise ClinicalError(
                "ICE is for patients older than 12; give capd_score for this child",
                where="ice_score",
            )
        if capd_unable_to_perform and capd_score is not None:
            raise ClinicalError("give a CAPD score or 'unable to perform', not both", where="capd_score")
        if capd_unable_to_perform:
            options["capd_score"] = (4,)
        elif capd_score is not None:
            options["capd_score"] = (_capd_grade(_score(capd_score, CAPD_MAX, "capd_score")),)
        else:
            options["capd_score"] = (0, 3, 4)
    else:
        if capd_score is not None or capd_unable_to_perform:
            raise ClinicalError(
                "CAPD is for children aged 12 or younger; give ice_score for this patient",
                where="capd_score",
            )
        if ice_score is None:
            options["ice_score"] = (0, 1, 2, 3)
        else:
            options["ice_score"] = (_ice_grade(_score(ice_score, ICE_MAX, "ice_score")),)
    options["consciousness"] = _domain(Consciousness, consciousness, "consciousness", _CONSCIOUSNESS_GRADE)
    options["seizure"] = _domain(Seizure, seizure, "seizure", _SEIZURE_GRADE)
    if motor_weakness is None:
        options["motor_weakness"] = (0, 4)
    elif isinstance(motor_weakness, bool):
        options["motor_weakness"] = (_MOTOR_GRADE[motor_weakness],)
    else:
        raise ClinicalError(
            f"must be true, false or not given, got {motor_weakness!r}", where="motor_weakness"
        )
    options["cerebral_oedema"] = _domain(CerebralOedema, cerebral_oedema, "cerebral_oedema", _OEDEMA_GRADE)

    grades = tuple(sorted({max(combo) for combo in product(*options.values())}))
    known = tuple((name, v[0]) for name, v in options.items() if len(v) == 1)
    missing = tuple(name for name, v in options.items() if len(v) > 1)
    # The result rests on an unconfirmed CAPD threshold when CAPD alone gives its floor.
    capd = dict(known).get("capd_score", 0)
    others = max((g for name, g in known if name != "capd_score"), default=0)
    unconfirmed = capd > others
    if len(grades) == 1:
        worst = ", ".join(name for name, g in known if g == grades[0] and g > 0)
        rule = f"ICANS grade {grades[0]} ({instrument}): " + (
            f"worst domain {worst}" if worst else "no domain abnormal"
        )
        return IcansGrade(grades[0], grades, instrument, known, rule, unconfirmed=unconfirmed)
    rule = f"grade is one of {_join(grades)}: {', '.join(missing)} not assessed"
    return IcansGrade(None, grades, instrument, known, rule, missing, unconfirmed)


# --------------------------------------------------------------------------- helpers


E = TypeVar("E", bound=StrEnum)


def _member(enum: type[E], value: E | str, where: str) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ClinicalError(f"{value!r} is not one of: {allowed}", where=where) from None


def _domain(enum: type[E], value: E | str | None, where: str, grades: Mapping[E, int]) -> tuple[int, ...]:
    if value is None:
        return tuple(sorted(set(grades.values())))
    return (grades[_member(enum, value, where)],)


def _score(value: int, maximum: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ClinicalError(f"must be a whole number from 0 to {maximum}, got {value!r}", where=where)
    return value


def _join(grades: Iterable[int]) -> str:
    return ", ".join(map(str, grades))

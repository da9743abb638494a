"""A trial's patient form: the fields its criteria read, typed from the fact dictionary.

>>> from trialdesk.protocol.load import default_protocol_dir, load_protocol
>>> form = patient_form(load_protocol(default_protocol_dir() / "nb-nk-2026.yaml"))
>>> creatinine = form.field("creatinine")
>>> creatinine.label, creatinine.units, creatinine.section
('Serum creatinine', ('umol/L', 'mg/dL'), 'lab')
>>> [s.id for s in form.sections]  # doctest: +NORMALIZE_WHITESPACE
['identity', 'diagnosis', 'disease', 'lab', 'performance', 'findings', 'body',
 'consent', 'questions']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from trialdesk.clinical import units
from trialdesk.criteria.ast import facts_of
from trialdesk.errors import NotFoundError
from trialdesk.facts.course import COURSE_FACTS
from trialdesk.facts.dictionary import FACTS, THERAPY_CATEGORIES, FactDef, FactKind, FactType
from trialdesk.facts.patient import CHEMOTHERAPY_PHASES, DISEASE_SITES, RESPONSE_SYSTEMS
from trialdesk.protocol.load import CompiledProtocol

#: Sections in the order a clinician reads a patient file (issue 11, item 1).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("identity", "Identity and demographics"),
    ("diagnosis", "Diagnosis"),
    ("disease", "Disease course"),
    ("lab", "Laboratory results"),
    ("performance", "Performance status"),
    ("findings", "Clinical findings and measurements"),
    ("body", "Weight and height"),
    ("treatment", "Prior and current treatment"),
    ("consent", "Consent"),
    ("questions", "The investigator's questions"),
)
SECTION_TITLES = dict(SECTIONS)

KIND_SECTION = {
    FactKind.DEMOGRAPHIC: "identity", FactKind.DIAGNOSIS: "diagnosis",
    FactKind.DISEASE: "disease", FactKind.LAB: "lab", FactKind.MEASUREMENT: "findings",
    FactKind.PERFORMANCE: "performance", FactKind.FINDING: "findings",
    FactKind.TREATMENT: "treatment", FactKind.CONSENT: "consent",
    FactKind.ATTESTATION: "questions",
}

# The units a value may be entered in, per canonical unit; only those the unit library
# converts for the fact are offered (creatinine µmol/L through its molar mass).
_ENTRY_UNITS: dict[str, tuple[str, ...]] = {
    "/mm3": ("/uL", "/mm3", "10^9/L"),
    "mg/dL": ("umol/L", "mg/dL"),
    "g/dL": ("g/dL", "g/L"),
    "U/L": ("U/L",),
    "mmol/L": ("mmol/L",),
    "kg": ("kg",),
    "cm": ("cm",),
    "week": ("week", "month"),
    "ug/mL": ("ug/mL", "mg/L"),
    "pg/mL": ("pg/mL", "ng/L"),
    "ng/mL": ("ng/mL", "ug/L"),
    "mg/L": ("mg/L", "mg/dL"),
    "mmHg": ("mmHg", "kPa"),
}
UNIT_TEXT = {"/uL": "/µL", "/mm3": "/mm³", "10^9/L": "×10⁹/L", "umol/L": "µmol/L",
             "ug/mL": "µg/mL", "ug/L": "µg/L", "mL/min/1.73m2": "mL/min/1.73 m²",
             "week": "weeks", "month": "months", "s": "seconds"}

# A derived fact is entered through the facts it is derived from (facts/normalise.py).
_INPUTS: dict[str, tuple[str, ...]] = {
    "age_years": ("birth_date",), "age_months": ("birth_date",),
    "diagnosis_category": ("primary_diagnosis",), "oncohaematological": ("primary_diagnosis",),
    "pregnant": ("sex", "childbearing_potential", "pregnancy_test"),
    "gfr": ("measured_gfr", "height", "creatinine"),
    "performance_score": ("lansky", "karnofsky"),
    "hours_since_septic_shock_onset": ("septic_shock", "septic_shock_onset"),
    "pao2_fio2": ("pao2", "fio2"),
    **{f"{lab}_x_uln": (lab,) for lab in ("alt", "ast", "alp", "bilirubin", "creatinine")},
}


class Widget:
    DATE = "date"
    DATETIME = "datetime"
    NUMBER = "number"
    YESNO = "yesno"
    CHOICE = "choice"
    TEXT = "text"
    SITES = "sites"  # one yes/no box per site: ``<name>.<site>``


@dataclass(frozen=True)
class FormField:
    """One field: ``name`` is the form key (the fact's name where there is one)."""

    name: str
    label: str
    section: str
    widget: str
    fact: str | None = None
    unit: str | None = None  # the fact's canonical unit
    units: tuple[str, ...] = ()  # units a value may be entered in (first is the default)
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    dated: bool = False  # the value has its own date (sample, examination, answer)
    reference_range: bool = False  # a laboratory result with the lab's own range
    required: bool = False
    hint: str = ""
    row: str = ""  # the repeatable group of the disease course the field belongs to

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    fields: tuple[FormField, ...]
    criteria: tuple[str, ...]  # criterion ids (and "arm:<id>") decided by these fields


@dataclass(frozen=True)
class PatientForm:
    trial_id: str
    sections: tuple[Section, ...]
    not_in_form: tuple[str, ...]  # facts the criteria read that this form cannot enter yet

    @property
    def fields(self) -> tuple[FormField, ...]:
        return tuple(f for s in self.sections for f in s.fields)

    def field(self, name: str) -> FormField:
        for f in self.fields:
            if f.name == name:
                return f
        raise NotFoundError(f"no field '{name}' in the {self.trial_id} form")

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def to_json(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "not_in_form": list(self.not_in_form),
                "sections": [{"id": s.id, "title": s.title, "criteria": list(s.criteria),
                              "fields": [f.to_json() for f in s.fields]} for s in self.sections]}


def label_of(text: str) -> str:
    """A description as a label: first letter upper case.

    >>> label_of("serum creatinine")
    'Serum creatinine'
    """
    return text[:1].upper() + text[1:]


def entry_units(fact: FactDef) -> tuple[str, ...]:
    """The units a value of ``fact`` may be entered in (convertible to its unit).

    >>> entry_units(FACTS["platelets"])
    ('/uL', '/mm3', '10^9/L')
    """
    if fact.unit is None or fact.unit == "ULN":
        return ()
    candidates = _ENTRY_UNITS.get(fact.unit, (fact.unit,))
    ok = tuple(u for u in candidates
               if u == fact.unit or units.compatible(u, fact.unit, substance=fact.substance))
    return ok or (fact.unit,)


def _special(name: str) -> FormField | None:
    """Fields that are not facts of the dictionary but feed them."""
    return {
        "birth_date": FormField("birth_date", "Date of birth", "identity", Widget.DATE,
                                required=True),
        "pregnancy_test": FormField("pregnancy_test", "Pregnancy test positive", "findings",
                                    Widget.YESNO, dated=True,
                                    hint="only for patients who can become pregnant"),
        "septic_shock_onset": FormField("septic_shock_onset", "Onset of septic shock",
                                        "disease", Widget.DATETIME),
    }.get(name)


def _field(name: str) -> FormField | None:
    special = _special(name)
    if special is not None:
        return special
    fact = FACTS.get(name)
    if fact is None or fact.kind is FactKind.DERIVED:
        return None
    section = KIND_SECTION[fact.kind]
    if name == "childbearing_potential":
        section = "identity"
    label = label_of(fact.description)
    if fact.question is not None:  # a finding the investigator answers, once per patient
        return FormField(name, fact.question, "questions", Widget.YESNO, fact=name, dated=True,
                         hint=f"{label}: one answer for every trial that asks it")
    if fact.kind is FactKind.PERFORMANCE:
        return FormField(name, label, section, Widget.NUMBER, fact=name, minimum=fact.minimum,
                         maximum=fact.maximum, integer=True, dated=True,
                         hint="0–5" if name == "ecog" else "0–100 in steps of 10")
    if fact.type is FactType.BOOLEAN:
        return FormField(name, label, section, Widget.YESNO, fact=name,
                         dated=fact.kind in (FactKind.FINDING,) and fact.dated)
    if fact.type is FactType.STRING and fact.values:
        return FormField(name, label, section, Widget.CHOICE, fact=name, choices=fact.values,
                         dated=fact.kind is FactKind.FINDING and fact.dated)
    if fact.type is FactType.STRING:
        return FormField(name, label, section, Widget.TEXT, fact=name)
    if fact.is_numeric:
        return FormField(name, label, section, Widget.NUMBER, fact=name, unit=fact.unit,
                         units=entry_units(fact), minimum=fact.minimum, maximum=fact.maximum,
                         integer=fact.type is FactType.INTEGER,
                         dated=fact.kind in (FactKind.LAB, FactKind.MEASUREMENT,
                                             FactKind.FINDING),
                         reference_range=fact.kind is FactKind.LAB)
    return None


def _inputs(name: str) -> Iterable[str]:
    if name in _INPUTS:
        for inner in _INPUTS[name]:
            yield from _inputs(inner)
    else:
        yield name


_ALWAYS = ("birth_date", "sex")
# Asked in every form, whether or not a criterion reads them: the calendar computes the
# doses from the latest weight and height of the record (copied at enrolment).
_BODY = {"weight": "Weight", "height": "Height"}
_BODY_HINT = "optional; the doses are computed from the latest weight and height"


def _body_field(name: str) -> FormField:
    f = _field(name)
    assert f is not None and f.dated  # both are dated measurements of the dictionary
    return replace(f, label=_BODY[name], section="body", hint=_BODY_HINT)
# Entered as rows of a treatment list, not one field per fact.
_TREATMENT_FACTS = frozenset(n for n, f in FACTS.items() if f.kind is FactKind.TREATMENT)
TREATMENT_ROWS = 4


def _treatment_fields() -> tuple[FormField, ...]:
    out = [FormField("treatment.none", "No treatment before screening", "treatment",
                     Widget.YESNO, hint="answer yes only when the history is known to be "
                                        "empty; leave the rows empty and this unanswered "
                                        "when the history is not known")]
    for i in range(1, TREATMENT_ROWS + 1):
        out += [FormField(f"treatment{i}.agent", f"Treatment {i}: agent or regimen",
                          "treatment", Widget.TEXT),
                FormField(f"treatment{i}.category", f"Treatment {i}: category", "treatment",
                          Widget.CHOICE, choices=THERAPY_CATEGORIES),
                FormField(f"treatment{i}.start", f"Treatment {i}: start", "treatment",
                          Widget.DATE),
                FormField(f"treatment{i}.end", f"Treatment {i}: end", "treatment", Widget.DATE),
                FormField(f"treatment{i}.chronic", f"Treatment {i}: chronic and ongoing",
                          "treatment", Widget.YESNO)]
    return tuple(out)


#: The repeatable rows of the disease course: group, title, empty rows shown at first.
COURSE_GROUPS: tuple[tuple[str, str, int], ...] = (
    ("chemo", "Chemotherapy blocks", 3),
    ("assessment", "Response assessments", 2),
    ("progression", "Relapses and progressions", 1),
)
MAX_COURSE_ROWS = 30
_ROW_TITLES = {"chemo": "Chemotherapy block", "assessment": "Response assessment",
               "progression": "Relapse or progression"}


def course_row(group: str, i: int) -> tuple[FormField, ...]:
    """The fields of row ``i`` (from 1) of a disease-course group.

    >>> [f.label.partition(": ")[2] for f in course_row("assessment", 2)]
    ['date', 'criteria', 'overall response']
    >>> course_row("assessment", 2)[0].label
    'Response assessment 2: date'
    """
    title = f"{_ROW_TITLES[group]} {i}"

    def f(key: str, label: str, widget: str, **kw: Any) -> FormField:
        return FormField(f"{group}{i}.{key}", f"{title}: {label}", "disease", widget, row=group,
                         **kw)

    if group == "chemo":
        return (f("regimen", "regimen", Widget.TEXT, hint="as the protocol names it, e.g. N5"),
                f("phase", "phase", Widget.CHOICE, choices=CHEMOTHERAPY_PHASES),
                f("cycles", "cycles", Widget.NUMBER, minimum=1, maximum=30, integer=True),
                f("start", "first day", Widget.DATE),
                f("end", "last day", Widget.DATE, hint="empty while the block is being given"))
    if group == "assessment":
        return (f("date", "date", Widget.DATE),
                f("criteria", "criteria", Widget.CHOICE, choices=tuple(RESPONSE_SYSTEMS)),
                f("category", "overall response", Widget.CHOICE,
                  choices=RESPONSE_SYSTEMS["INRC 1993"]))
    return (f("date", "date", Widget.DATE),
            f("sites", "sites", Widget.SITES, choices=DISEASE_SITES,
              hint="leave all unticked when the sites are not known"))


def course_rows(values: Mapping[str, str], *, add: str | None = None
                ) -> dict[str, list[tuple[FormField, ...]]]:
    """The disease-course rows to show for ``values``: every filled row and at least one
    empty one (the group's first count at least); ``add`` names a group to give one more
    empty row ("add another", without JavaScript). ``<group>.rows`` in ``values`` is the
    number shown before."""
    out: dict[str, list[tuple[FormField, ...]]] = {}
    for group, _, first in COURSE_GROUPS:
        used = course_indexes(values, group)
        shown = values.get(f"{group}.rows", "")
        n = max(first, (max(used) + 1) if used else 0,
                int(shown) if shown.isdigit() else 0)
        if add == group:
            n += 1
        out[group] = [course_row(group, i) for i in range(1, min(n, MAX_COURSE_ROWS) + 1)]
    return out


def course_indexes(values: Mapping[str, str], group: str) -> list[int]:
    """The row numbers of ``group`` with something filled in, in order."""
    found: set[int] = set()
    for key, value in values.items():
        head, dot, _ = key.partition(".")
        if (dot and head.startswith(group) and head[len(group):].isdigit()
                and isinstance(value, str) and value.strip()):
            i = int(head[len(group):])
            if 1 <= i <= MAX_COURSE_ROWS:
                found.add(i)
    return sorted(found)


def _question(fact: str, question: str) -> FormField:
    return FormField(fact, question, "questions", Widget.YESNO, fact=fact, dated=True)


def patient_form(compiled: CompiledProtocol) -> PatientForm:
    """The form of exactly the facts ``compiled``'s criteria and arm rules read."""
    rules = [(cid, expr) for cid, expr in compiled.rules.items()]
    rules += [(f"arm:{aid}", expr) for aid, expr in compiled.arm_rules.items()]
    asked = [c.attestation for _, c in compiled.protocol.criteria]
    asked += list(compiled.protocol.eligibility.attestations)
    questions = {a.fact_name: a.question for a in asked if a is not None}
    fields: dict[str, FormField] = {}
    decides: dict[str, list[str]] = {}
    missing: list[str] = []
    treatment = False
    for name in _ALWAYS:
        f = _field(name)
        assert f is not None  # both are in the dictionary or special
        fields[name] = f
    fields.update({name: _body_field(name) for name in _BODY})
    for cid, expr in rules:
        for fact in facts_of(expr):
            for name in _inputs(fact):
                if name in _TREATMENT_FACTS:
                    treatment = True
                    decides.setdefault("treatment", []).append(cid)
                    continue
                f = (_question(name, questions.get(name, name)) if name.startswith("attest.")
                     else fields.get(name) or _field(name))
                if f is None:
                    if fact not in missing:
                        missing.append(fact)
                    continue
                fields.setdefault(name, f)
                decides.setdefault(f.section, []).append(cid)
    if "consent_signed" in fields:
        c = fields["consent_signed"]
        fields["consent_signed"] = FormField(c.name, "Informed consent signed for this trial",
                                             "consent", Widget.YESNO, fact=c.fact, dated=True)
    if "primary_diagnosis" in fields:
        fields["diagnosis_date"] = FormField("diagnosis_date", "Date of diagnosis",
                                             "diagnosis", Widget.DATE)
    if any(f.section == "disease" and f.name != "septic_shock_onset" for f in fields.values()):
        fields = {"disease_date": FormField("disease_date", "Date of this disease assessment",
                                            "disease", Widget.DATE,
                                            hint="the date the disease course below was "
                                                 "assessed"), **fields}
    if any(f.name in COURSE_FACTS for f in fields.values()):
        # The disease course as events (facts.course derives the disease facts from them),
        # beginning with the diagnosis and its stage.
        stage = _field("stage")
        if "primary_diagnosis" in fields and stage is not None:
            fields.setdefault("stage", FormField(
                "stage", "Stage at diagnosis", "diagnosis", Widget.TEXT, fact="stage",
                hint="with its system, e.g. INSS 4 or INRGSS M"))
        fields.update({f.name: f for group, _, first in COURSE_GROUPS
                       for i in range(1, first + 1) for f in course_row(group, i)})
    all_fields = list(fields.values()) + (list(_treatment_fields()) if treatment else [])
    sections = tuple(
        Section(sid, title, tuple(f for f in all_fields if f.section == sid),
                tuple(dict.fromkeys(decides.get(sid, []))))
        for sid, title in SECTIONS if any(f.section == sid for f in all_fields))
    return PatientForm(compiled.id, sections, tuple(missing))

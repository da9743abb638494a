"""Response-assessment forms: INRC 2017 and RECIST 1.1 findings typed into labelled fields
and read into the documents the response cores assess (:mod:`trialdesk.response.documents`).

Every problem names the field by its label and says what to do. A field left empty was not
assessed: the cores then say what is missing (NE) rather than guess.

INRC 2017 (Park JR et al., J Clin Oncol 2017;35:2580): the primary tumour (longest
diameter by CT or MRI), metastatic soft tissue (RECIST-measured) and bone (MIBG Curie or
SIOPEN score, or FDG-PET lesions), bone marrow (% tumour infiltration) and new lesions.
RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228): target lesions (organ, nodal or
not, method, size in mm), non-target lesions, new lesions.

>>> doc = inrc_document({"marrow.status": "involved", "marrow.baseline_aspirate_pct": "30",
...                      "marrow.current_aspirate_pct": "3", "marrow.current_biopsy_pct": "4"})
>>> doc["marrow"]
{'baseline_pct': 30.0, 'current_pct': 4.0}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from trialdesk.forms.build import FormField, Widget
from trialdesk.forms.parse import FormError, _Reader
from trialdesk.response.inrc import MIBG_SCALE_MAX, MibgScale
from trialdesk.response.recist import LesionKind, Method, NonTargetStatus

# Plausibility bounds for typed sizes (a typing error, not a clinical threshold): no lesion
# or sum of lesions in a patient measures more than a metre.
MAX_MM = 1000.0
_STATUS = ("involved", "not_involved")
_FAR = dt.date.max  # the forms read no dates; the service checks the assessment date
_COMPONENTS = {"primary": "Primary tumour", "soft": "Metastatic soft tissue",
               "bone": "Bone metastases", "marrow": "Bone marrow", "new": "New lesions"}


def _f(name: str, label: str, widget: str, **kw: Any) -> FormField:
    section = name.partition(".")[0]
    return FormField(name, f"{_COMPONENTS.get(section, '')}: {label}".lstrip(": "), section,
                     widget, **kw)


def _mm(name: str, label: str, hint: str = "") -> FormField:
    return _f(name, label, Widget.NUMBER, unit="mm", units=("mm",), minimum=0, maximum=MAX_MM,
              hint=hint)


def _pct(name: str, label: str) -> FormField:
    return _f(name, label, Widget.NUMBER, unit="%", units=("%",), minimum=0, maximum=100)


_DISEASE_HINT = "empty: not assessed at this time point"
INRC_FIELDS: tuple[FormField, ...] = (
    _f("primary.status", "disease at baseline", Widget.CHOICE, choices=_STATUS,
       hint=_DISEASE_HINT),
    _mm("primary.baseline_mm", "longest diameter at baseline (CT or MRI)"),
    _mm("primary.nadir_mm", "smallest longest diameter on study before now",
        "empty: the smallest of the baseline and the earlier assessments"),
    _mm("primary.current_mm", "longest diameter now (CT or MRI)"),
    _f("primary.uptake_resolved", "MIBG or FDG uptake at the primary site resolved",
       Widget.YESNO),
    _f("soft.status", "disease at baseline", Widget.CHOICE, choices=_STATUS, hint=_DISEASE_HINT),
    _mm("soft.baseline_sum_mm", "sum of target-lesion diameters at baseline"),
    _mm("soft.nadir_sum_mm", "smallest sum on study before now",
        "empty: the smallest of the baseline and the earlier assessments"),
    _mm("soft.current_sum_mm", "sum of target-lesion diameters now"),
    _f("soft.node_short_axes_mm", "short axes of the target lymph nodes now, mm", Widget.TEXT,
       hint="separated by commas, e.g. 8, 12"),
    _f("soft.lesion_diameters_mm", "diameters of the other lesions now, mm", Widget.TEXT,
       hint="separated by commas, e.g. 4, 9"),
    _f("soft.uptake_resolved", "MIBG or FDG uptake of the lesions resolved", Widget.YESNO),
    _f("bone.status", "disease at baseline", Widget.CHOICE, choices=_STATUS, hint=_DISEASE_HINT),
    _f("bone.method", "imaging", Widget.CHOICE, choices=("mibg", "fdg"),
       hint="FDG-PET only for an MIBG-non-avid tumour"),
    _f("bone.mibg_scale", "MIBG score", Widget.CHOICE, choices=tuple(s.value for s in MibgScale),
       hint="Curie 0–30, SIOPEN 0–72"),
    _f("bone.baseline_score", "MIBG score at baseline", Widget.NUMBER, minimum=0, maximum=72),
    _f("bone.current_score", "MIBG score now", Widget.NUMBER, minimum=0, maximum=72),
    _f("bone.fdg_baseline_lesions", "FDG-avid bone lesions at baseline", Widget.NUMBER,
       minimum=0, maximum=1000, integer=True),
    _f("bone.fdg_current_lesions", "FDG-avid bone lesions now", Widget.NUMBER, minimum=0,
       maximum=1000, integer=True),
    _f("marrow.status", "disease at baseline", Widget.CHOICE, choices=_STATUS,
       hint=_DISEASE_HINT),
    _pct("marrow.baseline_aspirate_pct", "tumour infiltration at baseline, aspirate"),
    _pct("marrow.baseline_biopsy_pct", "tumour infiltration at baseline, biopsy"),
    _pct("marrow.current_aspirate_pct", "tumour infiltration now, aspirate"),
    _pct("marrow.current_biopsy_pct", "tumour infiltration now, biopsy"),
    _f("new.soft_tissue", "a new MIBG- or FDG-avid or biopsy-proven soft-tissue lesion",
       Widget.YESNO),
    _f("new.mibg_bone_site", "a new MIBG-avid bone site", Widget.YESNO),
    _f("new.fdg_bone_site", "a new FDG-avid bone site", Widget.YESNO),
)
INRC_SECTIONS = tuple((k, v) for k, v in _COMPONENTS.items())
_BY_NAME = {f.name: f for f in INRC_FIELDS}


def _number(r: _Reader, f: FormField) -> float | None:
    value = r.number(f.name, f.label, integer=f.integer)
    if value is None:
        return None
    if (f.minimum is not None and value < f.minimum) or (f.maximum is not None
                                                         and value > f.maximum):
        r.bad(f.label, f"enter a value from {f.minimum:g} to {f.maximum:g}"
                       + (f" {f.unit}" if f.unit else ""))
        return None
    return int(value) if f.integer else value


def _numbers(r: _Reader, f: FormField) -> list[float] | None:
    text = r.text(f.name)
    if not text:
        return None
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            r.bad(f.label, f"enter sizes in mm separated by commas, such as 8, 12 (not '{part}')")
            return None
        if not 0 <= value <= MAX_MM:  # also refuses NaN and infinity
            r.bad(f.label, f"enter sizes from 0 to {MAX_MM:g} mm, not '{part}'")
            return None
        out.append(value)
    return out


def _component(r: _Reader, prefix: str) -> str | None:
    """``involved``, ``not_involved`` or None (not assessed); values typed with no status
    count as involved, values typed for a component not involved are refused."""
    status = r.choice(f"{prefix}.status", _BY_NAME[f"{prefix}.status"])
    typed = [f for f in INRC_FIELDS if f.section == prefix and not f.name.endswith(".status")
             and r.text(f.name)]
    if status == "not_involved" and typed:
        r.bad(typed[0].label, f"{_COMPONENTS[prefix].lower()} is marked not involved at "
                              "baseline; clear this value or choose involved")
    if status is None and typed:
        return "involved"
    return status


def inrc_document(values: Mapping[str, Any], *,
                  earlier: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The INRC 2017 time point the typed ``values`` describe; ``earlier`` are the patient's
    earlier INRC documents, from which an empty nadir is taken (the smallest of the baseline
    and the earlier values). :class:`FormError` lists every problem."""
    r = _Reader(values, today=_FAR)
    doc: dict[str, Any] = {}
    for prefix, (base, nadir, now) in (("primary", ("baseline_mm", "nadir_mm", "current_mm")),
                                       ("soft", ("baseline_sum_mm", "nadir_sum_mm",
                                                 "current_sum_mm"))):
        status = _component(r, prefix)
        key = "primary" if prefix == "primary" else "soft_tissue"
        if status == "not_involved":
            doc[key] = "not_involved"
        elif status == "involved":
            part: dict[str, Any] = {k: _number(r, _BY_NAME[f"{prefix}.{k}"])
                                    for k in (base, nadir, now)}
            part["uptake_resolved"] = r.yesno(f"{prefix}.uptake_resolved",
                                              _BY_NAME[f"{prefix}.uptake_resolved"].label)
            if prefix == "soft":
                for k in ("node_short_axes_mm", "lesion_diameters_mm"):
                    part[k] = _numbers(r, _BY_NAME[f"soft.{k}"])
            if part[nadir] is None and part[base] is not None:
                seen = [e[key][now] for e in earlier if isinstance(e.get(key), dict)
                        and isinstance(e[key].get(now), (int, float))]
                part[nadir] = min([part[base], *seen])
            doc[key] = part
    bone = _component(r, "bone")
    if bone == "not_involved":
        doc["bone"] = "not_involved"
    elif bone == "involved":
        method = r.choice("bone.method", _BY_NAME["bone.method"]) or "mibg"
        if method == "mibg":
            scale = r.choice("bone.mibg_scale", _BY_NAME["bone.mibg_scale"])
            scores = {k: _number(r, _BY_NAME[f"bone.{k}"])
                      for k in ("baseline_score", "current_score")}
            if scale is None:
                r.bad(_BY_NAME["bone.mibg_scale"].label, "choose Curie or SIOPEN")
            else:
                top = MIBG_SCALE_MAX[MibgScale(scale)]  # Curie 0–30, SIOPEN 0–72 (NCI PDQ)
                for k, v in scores.items():
                    if v is not None and v > top:
                        r.bad(_BY_NAME[f"bone.{k}"].label,
                              f"a {scale.capitalize()} score is 0 to {top}; check the score "
                              "and the scale")
                doc["bone"] = {"mibg": {"scale": scale, **scores}}
        else:
            doc["bone"] = {"fdg": {
                "baseline_lesions": _number(r, _BY_NAME["bone.fdg_baseline_lesions"]),
                "current_lesions": _number(r, _BY_NAME["bone.fdg_current_lesions"])}}
    marrow = _component(r, "marrow")
    if marrow == "not_involved":
        doc["marrow"] = "not_involved"
    elif marrow == "involved":
        # The highest infiltration of the samples taken at one time point counts.
        pcts = {k: _number(r, _BY_NAME[f"marrow.{k}"]) for k in (
            "baseline_aspirate_pct", "baseline_biopsy_pct", "current_aspirate_pct",
            "current_biopsy_pct")}
        doc["marrow"] = {
            when: max((v for k, v in pcts.items() if k.startswith(prefix) and v is not None),
                      default=None)
            for when, prefix in (("baseline_pct", "baseline"), ("current_pct", "current"))}
    answers = {k: r.yesno(f"new.{k}", _BY_NAME[f"new.{k}"].label)
               for k in ("soft_tissue", "mibg_bone_site", "fdg_bone_site")}
    given = {k: v for k, v in answers.items() if v is not None}
    if given and len(given) < len(answers):
        missing = next(k for k, v in answers.items() if v is None)
        r.bad(_BY_NAME[f"new.{missing}"].label, "answer yes or no (or leave all three new-lesion "
                                                "questions empty when not assessed)")
    elif given:
        doc["new_lesions"] = given
    if r.problems:
        raise FormError(r.problems)
    if not doc:
        raise FormError(["Assessment: enter the findings of at least one component"])
    return doc


# --------------------------------------------------------------------------- RECIST 1.1

TARGET_ROWS = 5  # RECIST 1.1: at most 5 target lesions, 2 per organ (Eisenhauer 2009)
NON_TARGET_ROWS = 6
_KINDS = tuple(k.value for k in LesionKind)
_METHODS = tuple(m.value for m in Method)
NON_TARGET_STATUSES = tuple(s.value for s in NonTargetStatus)


def recist_baseline_fields() -> tuple[FormField, ...]:
    out: list[FormField] = []
    for i in range(1, TARGET_ROWS + 1):
        t = f"Target lesion T{i}"
        out += [FormField(f"target{i}.organ", f"{t}: organ or site", "targets", Widget.TEXT),
                FormField(f"target{i}.kind", f"{t}: nodal or not", "targets", Widget.CHOICE,
                          choices=_KINDS),
                FormField(f"target{i}.method", f"{t}: method", "targets", Widget.CHOICE,
                          choices=_METHODS),
                FormField(f"target{i}.size_mm", f"{t}: size at baseline", "targets",
                          Widget.NUMBER, unit="mm", units=("mm",), minimum=0, maximum=MAX_MM,
                          hint="longest diameter; short axis for a lymph node")]
    for i in range(1, NON_TARGET_ROWS + 1):
        n = f"Non-target lesion N{i}"
        out += [FormField(f"nontarget{i}.organ", f"{n}: organ or site", "non_targets",
                          Widget.TEXT),
                FormField(f"nontarget{i}.kind", f"{n}: nodal or not", "non_targets",
                          Widget.CHOICE, choices=_KINDS),
                FormField(f"nontarget{i}.method", f"{n}: method", "non_targets", Widget.CHOICE,
                          choices=_METHODS)]
    return tuple(out)


def recist_baseline(values: Mapping[str, Any]) -> dict[str, Any]:
    """The RECIST 1.1 baseline document the typed rows describe."""
    r = _Reader(values, today=_FAR)
    fields = {f.name: f for f in recist_baseline_fields()}
    doc: dict[str, list[dict[str, Any]]] = {"targets": [], "non_targets": []}
    for group, key, rows, prefix in (("target", "targets", TARGET_ROWS, "T"),
                                     ("nontarget", "non_targets", NON_TARGET_ROWS, "N")):
        for i in range(1, rows + 1):
            organ = r.text(f"{group}{i}.organ")
            kind = r.choice(f"{group}{i}.kind", fields[f"{group}{i}.kind"])
            method = r.choice(f"{group}{i}.method", fields[f"{group}{i}.method"])
            size = (_number(r, fields[f"{group}{i}.size_mm"]) if group == "target" else None)
            if not (organ or kind or method or size is not None):
                continue
            title = fields[f"{group}{i}.organ"].label.partition(":")[0]
            if not (organ and kind and method) or (group == "target" and size is None):
                r.bad(title, "give the organ or site, nodal or not, the method"
                             + (" and the size in mm" if group == "target" else ""))
                continue
            lesion: dict[str, Any] = {"id": f"{prefix}{i}", "organ": organ[:100], "kind": kind,
                                      "method": method}
            if group == "target":
                lesion["size_mm"] = size
            doc[key].append(lesion)
    if r.problems:
        raise FormError(r.problems)
    if not doc["targets"] and not doc["non_targets"]:
        raise FormError(["Target lesion T1: enter at least one lesion"])
    return doc


def recist_time_point_fields(baseline: Mapping[str, Any]) -> tuple[FormField, ...]:
    """The fields of a time point: each baseline lesion's size or status, and new lesions."""
    out = [FormField(f"target.{t['id']}", f"Target lesion {t['id']} ({t['organ']}, "
                     f"{t['method']}): size now", "targets", Widget.NUMBER, unit="mm",
                     units=("mm",), minimum=0, maximum=MAX_MM,
                     hint="empty: not measured; 0 when it has disappeared")
           for t in baseline.get("targets", [])]
    out += [FormField(f"nontarget.{n['id']}", f"Non-target lesion {n['id']} ({n['organ']}): "
                      "now", "non_targets", Widget.CHOICE, choices=NON_TARGET_STATUSES)
            for n in baseline.get("non_targets", [])]
    out.append(FormField("new_lesions", "New lesions", "new", Widget.YESNO, required=True))
    return tuple(out)


def recist_time_point(values: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """The RECIST 1.1 time-point document (without its day) the typed values describe."""
    r = _Reader(values, today=_FAR)
    fields = recist_time_point_fields(baseline)
    doc: dict[str, Any] = {"targets": {}, "non_targets": {}}
    for f in fields:
        if f.name.startswith("target."):
            doc["targets"][f.name.removeprefix("target.")] = _number(r, f)
        elif f.name.startswith("nontarget."):
            status = r.choice(f.name, f)
            if status is not None:
                doc["non_targets"][f.name.removeprefix("nontarget.")] = status
    new = r.yesno("new_lesions", "New lesions")
    if new is None and "New lesions: choose yes, no or not assessed" not in r.problems:
        r.bad("New lesions", "answer yes or no")
    doc["new_lesions"] = bool(new)
    if r.problems:
        raise FormError(r.problems)
    return doc


def field_label(where: str) -> str | None:
    """The label of the INRC field a core error's location names (``primary.nadir_mm``)."""
    tail = where.rpartition(": ")[2].removeprefix("document").lstrip("$.")
    tail = tail.replace("soft_tissue.", "soft.")
    f = _BY_NAME.get(tail)
    return f.label if f else None

"""The disease facts derived from the disease course, with the derivation as evidence.

The clinician records what happened — chemotherapy blocks, response assessments, relapses
and progressions (:class:`~trialdesk.facts.patient.ChemotherapyBlock`,
:class:`~trialdesk.facts.patient.ResponseAssessment`,
:class:`~trialdesk.facts.patient.Progression`) — and the facts eligibility rules read are
derived here: ``induction_cycles_completed``, ``end_induction_response``,
``disease_status`` and ``cns_involvement``.

Definitions, with their sources:

* **Refractory** (seed 000, NB-NK-2026 I3, arm A): "patients who have completed the
  induction phase of therapy (6 cycles of N5/N6) with a poor response to therapy (MR, SD),
  with the exception of PD". How many cycles complete induction and which categories are a
  poor response are the protocol's (:class:`CourseRules`, protocol ``disease_course``).
* **Relapsed / progressive** (seed 000 I3, arm B): "any new tumor lesions (after having
  previously achieved CR), or any new tumor lesion; an increase of >25% in any previously
  existing measurable lesion; or newly detected bone marrow involvement". A recorded
  relapse or progression, or an assessment whose overall response is PD (INRC 2017, Park JR
  et al., J Clin Oncol 2017;35:2580: PD is an overall response category), is a relapse
  when a complete response (CR) was recorded before it, otherwise a progression.
* **CNS involvement** (seed 000 E5: "central nervous system involvement and/or
  leptomeningeal involvement"): a relapse or progression with a CNS or leptomeningeal site.
* **Cycles completed**: the cycles of induction blocks that have ended; a block still being
  given is not counted.
* **End-of-induction response**: neither the seed nor INRC 2017 says when it is assessed;
  here it is the first assessment on or after the last day of induction, before any later
  block begins (a derivation rule; the evidence shows which assessment it was).

A fact the events cannot give is missing with the reason; nothing is guessed.

>>> from datetime import date
>>> from trialdesk.facts.patient import ChemotherapyBlock, ResponseAssessment
>>> course = derive_course(
...     [ChemotherapyBlock(regimen="N5", phase="induction", cycles=3, start=date(2026, 4, 1),
...                        end=date(2026, 7, 1)),
...      ChemotherapyBlock(regimen="N6", phase="induction", cycles=3, start=date(2026, 7, 2),
...                        end=date(2026, 10, 1))],
...     [ResponseAssessment(date=date(2026, 10, 20), category="SD")], [],
...     on=date(2026, 11, 21), rules=CourseRules(induction_cycles=6,
...                                              poor_response=frozenset({"MR", "SD"})))
>>> course.values["disease_status"].evidence
'refractory: 6 cycles N5/N6 completed 2026-10-01, end-of-induction response SD on 2026-10-20'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from trialdesk.facts.model import Value
from trialdesk.facts.patient import ChemotherapyBlock, Progression, ResponseAssessment

#: The facts this module derives.
COURSE_FACTS = ("induction_cycles_completed", "end_induction_response", "disease_status",
                "cns_involvement")
_CNS_SITES = frozenset({"cns", "leptomeningeal"})


@dataclass(frozen=True)
class CourseRules:
    """The protocol's reading of the disease course (protocol ``disease_course``).

    ``induction_cycles``: the cycles that complete induction (NB-NK-2026: 6, seed 000 I3);
    ``poor_response``: the end-of-induction categories that make disease refractory
    (NB-NK-2026: MR, SD, seed 000 I3).
    """

    induction_cycles: int
    poor_response: frozenset[str]
    source: str = ""
    unconfirmed: bool = False


@dataclass(frozen=True)
class Derived:
    """A derived fact: its value, the date it rests on, and the derivation in words."""

    name: str
    value: Value
    observed: date
    evidence: str


@dataclass(frozen=True)
class CourseFacts:
    values: dict[str, Derived] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Event:
    """A relapse or progression: a recorded one, or an assessment of overall PD."""

    on: date
    sites: tuple[str, ...] | None  # None: not recorded
    what: str


def _regimens(blocks: Sequence[ChemotherapyBlock]) -> str:
    return "/".join(dict.fromkeys(b.regimen for b in blocks))


def _sites(sites: Sequence[str]) -> str:
    return ", ".join(s.replace("_", " ").replace("cns", "CNS") for s in sites)


def _events(progressions: Sequence[Progression], assessments: Sequence[ResponseAssessment],
            on: date) -> list[_Event]:
    recorded = {p.date for p in progressions}
    out = [_Event(p.date, tuple(p.sites) or None,
                  f"({_sites(p.sites)})" if p.sites else "(sites not recorded)")
           for p in progressions if p.date <= on]
    # An assessment of PD on a day a relapse or progression is recorded is that event.
    out += [_Event(a.date, None, f"(PD by {a.criteria})") for a in assessments
            if a.category == "PD" and a.date <= on and a.date not in recorded]
    return sorted(out, key=lambda e: e.on)


def derive_course(chemotherapy: Sequence[ChemotherapyBlock],
                  assessments: Sequence[ResponseAssessment],
                  progressions: Sequence[Progression], *, on: date,
                  rules: CourseRules | None) -> CourseFacts:
    """The disease facts the events recorded up to ``on`` give (see the module docstring)."""
    values: dict[str, Derived] = {}
    missing: dict[str, str] = {}

    def put(name: str, value: Value, observed: date, evidence: str) -> None:
        values[name] = Derived(name, value, observed, evidence)

    blocks = sorted((b for b in chemotherapy if b.start <= on), key=lambda b: b.start)
    seen = sorted((a for a in assessments if a.date <= on), key=lambda a: a.date)
    induction = [b for b in blocks if b.phase == "induction"]
    done = [b for b in induction if b.end is not None and b.end <= on]
    running = [b for b in induction if b not in done]
    induction_end = max((b.end for b in done if b.end is not None), default=None)
    cycles = sum(b.cycles for b in done)
    cycles_text = ""
    if not blocks:
        missing["induction_cycles_completed"] = "no chemotherapy block recorded"
    elif induction_end is None:
        put("induction_cycles_completed", 0, blocks[0].start,
            f"no induction block completed ({len(blocks)} block(s) recorded)")
    else:
        cycles_text = f"{cycles} cycles {_regimens(done)} completed {induction_end}"
        if running:
            cycles_text += (f" ({_regimens(running)} from {running[0].start} still being given, "
                            "not counted)")
        put("induction_cycles_completed", cycles, induction_end, cycles_text)

    # End-of-induction response.
    end_response: ResponseAssessment | None = None
    if running:
        missing["end_induction_response"] = (f"induction still being given "
                                             f"({_regimens(running)} from {running[0].start})")
    elif induction_end is None:
        missing["end_induction_response"] = ("no completed induction block recorded" if blocks
                                             else "no chemotherapy block recorded")
    else:
        later = [b.start for b in blocks if b.phase != "induction" and b.start > induction_end]
        until = min(later, default=None)
        after = [a for a in seen if a.date >= induction_end and (until is None or a.date < until)]
        if after:
            end_response = after[0]
            put("end_induction_response", end_response.category, end_response.date,
                f"end-of-induction response {end_response.category} ({end_response.criteria}) "
                f"on {end_response.date}, the first assessment after induction ended "
                f"{induction_end}")
        else:
            missing["end_induction_response"] = (
                f"no response assessment recorded after induction ended {induction_end}"
                + (f" and before the next block began {until}" if until else ""))

    # Relapse or progression, and CNS involvement.
    events = _events(progressions, seen, on)
    status: tuple[str, date, str] | None = None
    if events:
        last = events[-1]
        crs = [a for a in seen if a.category == "CR" and a.date < last.on]
        during = (" during induction" if induction and induction[0].start <= last.on and (
            running or (induction_end is not None and last.on <= induction_end)) else "")
        if crs:
            status = ("relapsed", last.on, f"relapse on {last.on} {last.what}{during}, after CR "
                                           f"({crs[-1].criteria}) on {crs[-1].date}")
        else:
            status = ("progressive", last.on, f"progression on {last.on} {last.what}{during}, "
                                              "no complete response recorded before it")
        cns = [e for e in events if e.sites and _CNS_SITES & set(e.sites)]
        unknown = [e for e in events if e.sites is None]
        if cns:
            e = cns[-1]
            put("cns_involvement", True, e.on,
                f"{_sites([s for s in e.sites or () if s in _CNS_SITES])} site at the relapse or "
                f"progression on {e.on}")
        elif unknown:
            missing["cns_involvement"] = (f"the sites of the relapse or progression on "
                                          f"{unknown[-1].on} are not recorded")
        else:
            put("cns_involvement", False, last.on,
                f"no CNS or leptomeningeal site at any relapse or progression (last on {last.on}: "
                f"{_sites(last.sites or ())})")
    else:
        missing["cns_involvement"] = "no relapse or progression recorded"

    # Refractory, or still on first-line therapy.
    if end_response is not None and cycles_text and (status is None
                                                      or end_response.date > status[1]):
        response_text = f"end-of-induction response {end_response.category} on {end_response.date}"
        if rules is None:
            missing["disease_status"] = ("the protocol sets no rule for refractory disease "
                                         "(disease_course)")
            status = None
        elif end_response.category in rules.poor_response and cycles >= rules.induction_cycles:
            status = ("refractory", end_response.date, f"refractory: {cycles_text}, "
                                                       f"{response_text}")
        elif end_response.category != "PD":
            why = (f"{cycles} of the {rules.induction_cycles} induction cycles"
                   if cycles < rules.induction_cycles
                   else f"{end_response.category} is not a poor response "
                        f"({', '.join(sorted(rules.poor_response))})")
            status = ("on_first_line_therapy", end_response.date,
                      f"not refractory: {cycles_text}, {response_text}; {why}")
    elif running and status is None:
        status = ("on_first_line_therapy", running[0].start,
                  f"induction {_regimens(running)} being given since {running[0].start}")
    if status is not None:
        put("disease_status", status[0], status[1], status[2])
    else:
        missing.setdefault("disease_status", "no completed induction with its end-of-induction "
                                             "response, and no relapse or progression recorded")
    return CourseFacts(values, missing)

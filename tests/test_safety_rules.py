"""Protocol toxicity rules, DSMB stopping rules and the adverse-event document check.

Every toxicity and stopping rule of every seed protocol is triggered and not triggered;
boundaries (a count exactly at the protocol's minimum, a threshold reached exactly) are
checked on both sides.
"""

from __future__ import annotations

import copy
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from trialdesk.clinical import ctcae
from trialdesk.errors import ProtocolError, SafetyError
from trialdesk.protocol.lint import lint
from trialdesk.protocol.load import default_protocol_dir, load_directory, protocol_from_data
from trialdesk.protocol.model import Protocol
from trialdesk.safety.adverse_event import AdverseEvent
from trialdesk.safety.check import check_document, check_trial_events, reporting_for
from trialdesk.safety.rules import (
    ActionKind,
    ActionScope,
    EventTrigger,
    Finding,
    LabValue,
    RecoveryTrigger,
    Status,
    ToxicityRule,
    check_course_start,
    evaluate_findings,
    proposed_actions,
)
from trialdesk.safety.stopping import ReportedEvent, StoppingRule, check_stopping

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "safety"
PROTOCOLS = load_directory(default_protocol_dir())
NB = PROTOCOLS["NB-NK-2026"].protocol
DB = PROTOCOLS["DB-POSTCONS"].protocol
ONSET = date(2026, 3, 2)

TOXICITY_RULES = [(p.id, r) for c in PROTOCOLS.values() for p in [c.protocol] for r in p.toxicity_rules]
EVENT_RULES = [(pid, r) for pid, r in TOXICITY_RULES if isinstance(r.when, EventTrigger)]
RECOVERY_RULES = [(pid, r) for pid, r in TOXICITY_RULES if isinstance(r.when, RecoveryTrigger)]
STOPPING_RULES = [(c.protocol, r) for c in PROTOCOLS.values() for r in c.protocol.stopping_rules]


def finding(term: str, grade: int, *grades: int) -> Finding:
    return Finding(term, (grade, *grades), ONSET, "test")


def rule(data: dict[str, Any]) -> ToxicityRule:
    base = {"id": "R1", "title": "test rule", "source": "test", "actions": [{"kind": "pause", "agent": "x"}]}
    return ToxicityRule.model_validate({**base, **data})


def one(outcomes: tuple[Any, ...], rule_id: str) -> Any:
    found = [o for o in outcomes if o.rule_id == rule_id]
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------- seed rules


def test_seed_protocols_declare_rules() -> None:
    assert len(NB.toxicity_rules) == 15  # with NBNK-NK-PRODUCT-FAILURE (a product failure)
    assert len(DB.toxicity_rules) == 13
    assert [r.id for r in NB.stopping_rules] == ["NBNK-STOP-TRD", "NBNK-STOP-G5"]
    assert len(STOPPING_RULES) == 5  # one per protocol, two for NB-NK-2026
    # Every rule names its source; those resting on recalled label text are marked.
    assert all(r.source for _, r in TOXICITY_RULES)
    confirmed = {r.id for _, r in TOXICITY_RULES if not r.is_unconfirmed}
    assert confirmed == {"NBNK-PAIN-UNCONTROLLED", "NBNK-FEVER", "NBNK-LINE-INFECTION",
                         "DB-PAIN-UNCONTROLLED", "DB-FEVER", "DB-LINE-INFECTION"}


@pytest.mark.parametrize(("trial", "toxicity_rule"), EVENT_RULES, ids=lambda x: getattr(x, "id", x))
def test_each_seed_event_rule_triggered_and_not(trial: str, toxicity_rule: ToxicityRule) -> None:
    trigger = toxicity_rule.when
    assert isinstance(trigger, EventTrigger)
    course = toxicity_rule.courses[0] if toxicity_rule.courses else None
    rules = PROTOCOLS[trial].protocol.toxicity_rules
    for term in trigger.terms:
        firing = trigger.grades_for(term)
        # Triggered at every grade that fires it, with one proposal per declared action.
        for grade in sorted(firing):
            outcome = one(evaluate_findings(rules, [finding(term, grade)], course=course, course_number=2),
                          toxicity_rule.id)
            assert outcome.status is Status.TRIGGERED
            assert [a.kind for a in outcome.actions] == [a.kind for a in toxicity_rule.actions]
            assert all(a.unconfirmed == toxicity_rule.is_unconfirmed for a in outcome.actions)
            assert all(a.requires_confirmation == (a.kind is not ActionKind.SUPPORTIVE_CARE)
                       for a in outcome.actions)
            assert {a.course for a in outcome.actions} == {course}
        # Not triggered at the other grades of the term...
        held = ctcae.canonical_term(term) is not None
        allowed = ctcae.term_definition(term).allowed_grades if held else (1, 2, 3, 4, 5)
        for grade in sorted(set(allowed) - firing):
            outcome = one(evaluate_findings(rules, [finding(term, grade)], course=course), toxicity_rule.id)
            assert outcome.status is Status.NOT_TRIGGERED
            assert outcome.actions == ()
    # ... nor by another term at a grade that would fire it.
    outcome = one(evaluate_findings(rules, [finding("Diarrhea", 3)], course=course), toxicity_rule.id)
    assert outcome.status is Status.NOT_TRIGGERED
    # ... nor outside its courses.
    others = [c.id for c in PROTOCOLS[trial].protocol.courses if c.id not in toxicity_rule.courses]
    if toxicity_rule.courses and others:
        term = trigger.terms[0]
        grade = max(trigger.grades_for(term))
        outcome = one(evaluate_findings(rules, [finding(term, grade)], course=others[0]), toxicity_rule.id)
        assert outcome.status is Status.NOT_TRIGGERED
        assert "only" in outcome.reason


@pytest.mark.parametrize(("trial", "toxicity_rule"), RECOVERY_RULES, ids=lambda x: getattr(x, "id", x))
def test_each_seed_recovery_rule_triggered_and_not(trial: str, toxicity_rule: ToxicityRule) -> None:
    trigger = toxicity_rule.when
    assert isinstance(trigger, RecoveryTrigger)
    rules = PROTOCOLS[trial].protocol.toxicity_rules
    at_minimum = {n: LabValue(n, t.value or 0, t.unit or "") for n, t in trigger.minimums.items()}
    for course in toxicity_rule.courses:
        ok = one(check_course_start(rules, course, at_minimum, course_number=2), toxicity_rule.id)
        assert ok.status is Status.NOT_TRIGGERED
        for name, t in trigger.minimums.items():
            assert t.value is not None
            below = {**at_minimum, name: LabValue(name, t.value - 1, t.unit or "")}
            held = one(check_course_start(rules, course, below, course_number=2), toxicity_rule.id)
            assert held.status is Status.TRIGGERED
            assert [a.kind for a in held.actions] == [ActionKind.DELAY_COURSE]
            assert held.actions[0].course == course and held.actions[0].course_number == 2
            missing = {k: v for k, v in at_minimum.items() if k != name}
            open_ = one(check_course_start(rules, course, missing), toxicity_rule.id)
            assert open_.status is Status.UNKNOWN
            assert open_.missing == (name,)


@pytest.mark.parametrize(("anc", "unit", "status"), [
    (750, "/uL", Status.NOT_TRIGGERED),  # exactly the minimum: recovered
    (749, "/uL", Status.TRIGGERED),
    (0.75, "10^9/L", Status.NOT_TRIGGERED),  # same count in another unit
    (0.749, "10^9/L", Status.TRIGGERED),
    (750, "/mm3", Status.NOT_TRIGGERED),
])
def test_nbnk_count_recovery_boundary_and_units(anc: float, unit: str, status: Status) -> None:
    labs = {"anc": LabValue("anc", anc, unit), "platelets": LabValue("platelets", 75, "10^9/L")}
    outcome = one(check_course_start(NB.toxicity_rules, "DIT", labs, course_number=3), "NBNK-COUNT-RECOVERY")
    assert outcome.status is status
    assert outcome.unconfirmed  # the thresholds are protocol settings not yet confirmed


def test_nbnk_cls_grade_3_known_answer() -> None:
    outcomes = evaluate_findings(NB.toxicity_rules, [finding("capillary leak syndrome", 3)],
                                 course="DIT", course_number=2)
    actions = proposed_actions(outcomes)
    assert [(a.kind, a.agent, a.scope, a.percent, a.after) for a in actions] == [
        (ActionKind.PAUSE, "dinutuximab beta", ActionScope.UNTIL_RESOLVED, None, None),
        (ActionKind.SUPPORTIVE_CARE, None, None, None, None),
        (ActionKind.SLOW, "dinutuximab beta", None, 50, "after the capillary leak resolves"),
    ]
    assert all(a.unconfirmed and a.rule_id == "NBNK-CLS-G3" for a in actions)
    assert actions[2].shown() == ("after the capillary leak resolves: slow the infusion of dinutuximab "
                                  "beta to 50% [unconfirmed]")
    assert "PMC7523913" in actions[0].source


def test_db_cls_grade_4_stops_antibody_and_il2() -> None:
    actions = proposed_actions(evaluate_findings(DB.toxicity_rules, [finding("Capillary leak syndrome", 4)],
                                                 course="DB", course_number=1))
    stops = [(a.agent, a.scope) for a in actions if a.kind is ActionKind.DISCONTINUE_AGENT]
    assert stops == [("dinutuximab beta", ActionScope.REST_OF_COURSE),
                     ("interleukin-2 (aldesleukin)", ActionScope.REST_OF_COURSE),
                     ("interleukin-2 (aldesleukin)", ActionScope.FOLLOWING_COURSES)]


def test_pain_rule_is_confirmed_from_barone_and_carries_its_condition() -> None:
    actions = proposed_actions(evaluate_findings(NB.toxicity_rules, [finding("Pain", 2)], course="DIT"))
    assert [a.kind for a in actions] == [ActionKind.SUPPORTIVE_CARE, ActionKind.SLOW]
    slow = actions[1]
    assert not slow.unconfirmed and slow.percent is None
    assert "PMC8563639" in slow.source
    assert slow.shown() == ("slow the infusion of dinutuximab beta (if pain is not controlled by "
                            "gabapentin, morphine and non-opioid analgesics)")


def test_lab_with_open_grade_is_unknown_until_decided() -> None:
    r = rule({"when": {"terms": ["Hyponatremia"], "grades": [3]}})
    open_grade = ctcae.grade_lab("Hyponatremia", 127, "mmol/L", lln=135)  # grade 2 or 3
    outcome = one(evaluate_findings([r], [Finding.from_lab(open_grade, ONSET)]), "R1")
    assert outcome.status is Status.UNKNOWN and outcome.missing == ("grade",)
    assert outcome.actions  # shown as what would follow
    assert proposed_actions([outcome]) == ()  # but not proposed
    decided = ctcae.grade_lab("Hyponatremia", 127, "mmol/L", lln=135, symptomatic=True)
    assert one(evaluate_findings([r], [Finding.from_lab(decided)]), "R1").status is Status.TRIGGERED
    decided = ctcae.grade_lab("Hyponatremia", 127, "mmol/L", lln=135, symptomatic=False)
    assert one(evaluate_findings([r], [Finding.from_lab(decided)]), "R1").status is Status.NOT_TRIGGERED


def test_repeated_findings_propose_each_action_once() -> None:
    outcomes = evaluate_findings(NB.toxicity_rules, [finding("Fever", 1), finding("Fever", 2)], course="DIT")
    assert [o.status for o in outcomes if o.rule_id == "NBNK-FEVER"] == [Status.TRIGGERED] * 2
    assert len([a for a in proposed_actions(outcomes) if a.rule_id == "NBNK-FEVER"]) == 1


def test_course_not_known_keeps_every_rule() -> None:
    outcome = one(evaluate_findings(NB.toxicity_rules, [finding("Anaphylaxis", 3)]), "NBNK-ANAPHYLAXIS")
    assert outcome.status is Status.TRIGGERED


# --------------------------------------------------------------------------- rule validation


@pytest.mark.parametrize(("when", "fragment"), [
    ({"terms": ["Pain"], "grades": [4]}, "grade 4 does not exist for 'Pain'"),
    ({"terms": ["Capillary leak syndrome"], "grades": [1]}, "grade 1 does not exist"),
    ({"terms": ["Sepsis"], "grades": [6]}, "grade 6 does not exist"),
    ({"terms": ["Pain"], "grade_at_least": 4}, "no grade 4 or above"),
    ({"terms": ["Pain"], "grades": [1], "grade_at_least": 1}, "exactly one of"),
    ({"terms": ["Pain"]}, "exactly one of"),
    ({"terms": ["Pain", "pain"], "grades": [1]}, "listed twice"),
    ({"minimums": {"hb": {"value": 8, "unit": "g/dL", "source": "s"}}}, "not a lab"),
    ({"minimums": {"anc": {"value": 8, "unit": "g/dL", "source": "s"}}}, "does not convert"),
    ({"minimums": {"anc": {"value": 8, "source": "s"}}}, "needs a unit"),
])
def test_impossible_triggers_are_refused(when: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        rule({"when": when})


@pytest.mark.parametrize(("action", "fragment"), [
    ({"kind": "slow"}, "must name its agent"),
    ({"kind": "pause", "agent": "x", "percent": 50}, "'percent' is for slow or reduce"),
    ({"kind": "delay_course", "agent": "x"}, "whole course"),
    ({"kind": "supportive_care"}, "needs its 'advice'"),
    ({"kind": "reduce", "agent": "x", "percent": 120}, "less than 100"),
])
def test_inconsistent_actions_are_refused(action: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        rule({"when": {"terms": ["Pain"], "grades": [3]}, "actions": [action]})


def test_recovery_rule_only_holds_the_course() -> None:
    with pytest.raises(ValueError, match="'pause' does not fit"):
        rule({"when": {"minimums": {"anc": {"value": 750, "unit": "/uL", "source": "s"}}}})


def test_free_text_terms_take_grades_1_to_5() -> None:
    r = rule({"when": {"terms": ["Peripheral motor neuropathy"], "grade_at_least": 2}})
    assert r.when.grades_for("Peripheral motor neuropathy") == {2, 3, 4, 5}  # type: ignore[union-attr]


def _nb_data() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((default_protocol_dir() / "nb-nk-2026.yaml").read_text())


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda d: d["toxicity_rules"][6]["when"].update(grades=[1]), "$.toxicity_rules[6].when"),
    (lambda d: d["toxicity_rules"][0].update(courses=["XYZ"]), "unknown course 'XYZ'"),
    (lambda d: d["toxicity_rules"][0]["actions"][1].update(agent="rituximab"), "'rituximab' is not an agent"),
    (lambda d: d["stopping_rules"][0].update(id="NBNK-FEVER"), "safety rule ids repeated: NBNK-FEVER"),
    (lambda d: d["stopping_rules"][0].update(arms=["C"]), "unknown arm 'C'"),
])
def test_protocol_load_names_the_broken_rule(change: Any, fragment: str) -> None:
    data = copy.deepcopy(_nb_data())
    change(data)
    with pytest.raises(ProtocolError) as err:
        protocol_from_data(data, source="nb.yaml")
    assert fragment in str(err.value)
    assert str(err.value).startswith("nb.yaml: $")


def test_lint_lists_every_unconfirmed_rule_and_threshold() -> None:
    findings = [f for f in lint(PROTOCOLS["NB-NK-2026"]) if f.code == "unconfirmed"]
    wheres = {f.where.split(": ", 1)[1] for f in findings}
    unconfirmed = {f"toxicity_rules.{r.id}" for r in NB.toxicity_rules if r.unconfirmed}
    assert unconfirmed <= wheres
    assert "toxicity_rules.NBNK-COUNT-RECOVERY.when.minimums.anc" in wheres
    assert "stopping_rules.NBNK-STOP-TRD.threshold" in wheres
    assert "toxicity_rules.NBNK-FEVER" not in wheres


def test_protocol_without_rules_still_loads() -> None:
    assert Protocol.model_fields["toxicity_rules"].default == []
    assert PROTOCOLS["REFNOT-R2"].protocol.toxicity_rules == []


# --------------------------------------------------------------------------- confirmation


def test_confirming_an_action() -> None:
    slow, = [a for a in proposed_actions(evaluate_findings(
        NB.toxicity_rules, [finding("Allergic reaction", 2)], course="DIT"))]
    assert slow.requires_confirmation and slow.unconfirmed and not slow.confirmed
    with pytest.raises(SafetyError, match="not confirmed against its source"):
        slow.confirm("Dr Petrova", datetime(2026, 3, 2, 10, 0))
    done = slow.confirm(" Dr Petrova ", datetime(2026, 3, 2, 10, 0), accept_unconfirmed=True)
    assert done.confirmed and done.confirmed_by == "Dr Petrova"
    assert done.confirmed_at == datetime(2026, 3, 2, 10, 0)
    assert not slow.confirmed  # frozen: the proposal itself is unchanged
    with pytest.raises(SafetyError, match="already confirmed"):
        done.confirm("Dr Ivanov", datetime(2026, 3, 2, 11, 0), accept_unconfirmed=True)
    with pytest.raises(SafetyError, match="must be named"):
        slow.confirm("  ", datetime(2026, 3, 2, 10, 0), accept_unconfirmed=True)


def test_supportive_care_needs_no_confirmation() -> None:
    advice, = proposed_actions(evaluate_findings(NB.toxicity_rules, [finding("Fever", 1)], course="DIT"))
    assert advice.kind is ActionKind.SUPPORTIVE_CARE and not advice.requires_confirmation
    assert not advice.changes_calendar
    with pytest.raises(SafetyError, match="needs no confirmation"):
        advice.confirm("Dr Petrova", datetime(2026, 3, 2, 10, 0))


def test_off_protocol_action() -> None:
    r = rule({"when": {"terms": ["Anaphylaxis"], "grades": [4]},
              "actions": [{"kind": "off_protocol_treatment"}]})
    action, = proposed_actions(evaluate_findings([r], [finding("Anaphylaxis", 4)]))
    assert action.shown() == "take the patient off protocol treatment"
    assert action.model_dump(mode="json")["kind"] == "off_protocol_treatment"


# --------------------------------------------------------------------------- stopping


def death(*attributions: tuple[str, str], term: str = "Sepsis",
          onset: date = date(2026, 4, 1)) -> AdverseEvent:
    return AdverseEvent(term=term, grade=5, onset=onset, seriousness={"death"}, outcome="fatal",
                        attributions=[{"agent": a, "attribution": b} for a, b in attributions])


def stop(**changes: Any) -> StoppingRule:
    base: dict[str, Any] = {"id": "S1", "title": "t", "threshold": {"value": 2, "source": "s"}, "source": "s"}
    return StoppingRule.model_validate({**base, **changes})


@pytest.mark.parametrize(("protocol", "stopping_rule"), STOPPING_RULES, ids=lambda x: getattr(x, "id", x))
def test_each_seed_stopping_rule_triggered_and_not(protocol: Protocol, stopping_rule: StoppingRule) -> None:
    agent = stopping_rule.agents[0] if stopping_rule.agents else protocol.toxicity_rules[0].agents[0] \
        if protocol.toxicity_rules else _first_agent(protocol)
    related = ReportedEvent("P1", death((agent, "probable")), arm=protocol.arms[0].id)
    unrelated = ReportedEvent("P2", death((agent, "unrelated")), arm=protocol.arms[0].id)
    severe = ReportedEvent("P3", AdverseEvent(term="Sepsis", grade=4, onset=date(2026, 4, 1),
                                              attributions=[{"agent": agent, "attribution": "definite"}]))
    fired, = check_stopping([stopping_rule], [related])
    assert fired.status is Status.TRIGGERED and fired.alert and fired.count == 1
    assert fired.unconfirmed  # the seeds give no stopping rule: protocol settings
    quiet, = check_stopping([stopping_rule], [severe])
    assert quiet.status is Status.NOT_TRIGGERED and not quiet.alert and quiet.count == 0
    other, = check_stopping([stopping_rule], [unrelated])
    expected = Status.NOT_TRIGGERED if stopping_rule.related_only else Status.TRIGGERED
    assert other.status is expected


def _first_agent(protocol: Protocol) -> str:
    for course in protocol.courses:
        for adm in course.administrations:
            return adm.agent
    for arm in protocol.arms:
        for step in arm.plan:
            administration = getattr(step, "administration", None)
            if administration is not None:
                return str(administration.agent)
    raise AssertionError("no agent")


def test_stopping_threshold_boundary_and_counting() -> None:
    r = stop(related_only=True)
    one_death = [ReportedEvent("P1", death(("irinotecan", "possible")))]
    assert check_stopping([r], one_death)[0].status is Status.NOT_TRIGGERED
    two = [*one_death, ReportedEvent("P2", death(("temozolomide", "definite")))]
    result, = check_stopping([r], two)
    assert result.status is Status.TRIGGERED and result.count == 2
    assert result.message == "ALERT the DSMB: 2 patients counted, threshold 2"
    # Two grade-4 events of one patient: one patient, two events.
    grade4 = [ReportedEvent("P1", AdverseEvent(term="Sepsis", grade=4, onset=date(2026, 4, d),
                                               attributions=[{"agent": "x", "attribution": "probable"}]))
              for d in (1, 9)]
    assert check_stopping([stop(min_grade=4)], grade4)[0].count == 1
    assert check_stopping([stop(min_grade=4, count="events")], grade4)[0].status is Status.TRIGGERED


def test_missing_attribution_is_unknown_not_unrelated() -> None:
    r = stop(related_only=True, threshold={"value": 1, "source": "s"})
    result, = check_stopping([r], [ReportedEvent("P1", death())])
    assert result.status is Status.UNKNOWN and result.count == 0 and result.open_count == 1
    assert "attribution or arm not recorded" in result.message
    unrelated, = check_stopping([r], [ReportedEvent("P1", death(("central line", "unrelated")))])
    assert unrelated.status is Status.NOT_TRIGGERED


def test_stopping_filters_terms_arms_agents() -> None:
    rumcess = PROTOCOLS["RuMCeSS"].protocol.stopping_rules[0]
    antibiotic = ReportedEvent(
        "P1", death(("meropenem", "probable"), ("mesenchymal stromal cells", "unrelated")))
    assert check_stopping([rumcess], [antibiotic])[0].status is Status.NOT_TRIGGERED
    msc = ReportedEvent("P1", death(("mesenchymal stromal cells", "possible")))
    assert check_stopping([rumcess], [msc])[0].status is Status.TRIGGERED
    armed = stop(arms=["A"], threshold={"value": 1, "source": "s"})
    assert check_stopping([armed], [ReportedEvent("P1", death(), arm="B")])[0].status is Status.NOT_TRIGGERED
    assert check_stopping([armed], [ReportedEvent("P1", death(), arm=None)])[0].status is Status.UNKNOWN
    termed = stop(terms=["sepsis"], threshold={"value": 1, "source": "s"})
    assert termed.terms == ["Sepsis"]
    assert check_stopping([termed], [ReportedEvent("P1", death(term="Diarrhea"))])[0].count == 0


def test_stopping_without_threshold_cannot_decide() -> None:
    result, = check_stopping([stop(threshold={"source": "DSMB charter", "unconfirmed": True})],
                             [ReportedEvent("P1", death())])
    assert result.status is Status.UNKNOWN and result.count == 1 and result.unconfirmed
    assert "no threshold" in result.message


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"threshold": {"value": 0, "source": "s"}}, "count of at least 1"),
    ({"threshold": {"value": 1.5, "source": "s"}}, "count of at least 1"),
    ({"agents": ["x"]}, "set related_only"),
    ({"min_grade": 6}, "less than or equal to 5"),
])
def test_impossible_stopping_rules_are_refused(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        stop(**changes)


# --------------------------------------------------------------------------- documents


def _doc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return data


def test_example_document_known_answer() -> None:
    result = check_document(_doc("nb-dit-cls.json"), NB, source="nb-dit-cls.json")
    assert [(e.term, e.grade) for e in result.events] == [("Capillary leak syndrome", 3), ("Fever", 2)]
    assert [g.grade.grade for g in result.labs] == [4, None]
    assert result.labs[1].grade.possible_grades == (2, 3)
    triggered = {o.rule_id for o in (*result.outcomes, *result.recovery) if o.status is Status.TRIGGERED}
    assert triggered == {"NBNK-FEVER", "NBNK-CLS-G3", "NBNK-COUNT-RECOVERY"}
    delay, = [a for a in result.actions if a.kind is ActionKind.DELAY_COURSE]
    assert (delay.course, delay.course_number) == ("DIT", 3)
    assert [r.required for r in result.reporting] == [False, False]  # expected; not serious
    doc = result.to_json()
    assert doc["schema"] == "trialdesk.ae-check/1"
    assert {a["rule_id"] for a in doc["proposed_actions"]} == triggered
    assert json.loads(json.dumps(doc)) == doc


def test_susar_example_has_its_deadline() -> None:
    result = check_document(_doc("db-myelitis.json"), DB)
    rep, = result.reporting
    assert rep.required is True and rep.deadline is not None
    assert rep.deadline.calendar_days == 15 and rep.deadline.due == date(2026, 6, 26)
    assert [a.kind for a in result.actions] == [ActionKind.DISCONTINUE_AGENT]


@pytest.mark.parametrize(("event", "required", "days"), [
    ({}, False, None),  # not serious
    ({"seriousness": ["hospitalisation"]}, None, 15),  # attribution and expectedness not recorded
    ({"seriousness": ["hospitalisation"], "expectedness": "unexpected",
      "attributions": [{"agent": "x", "attribution": "unlikely"}]}, False, None),
    ({"seriousness": ["life_threatening"], "expectedness": "unexpected",
      "attributions": [{"agent": "x", "attribution": "definite"}]}, True, 7),
    ({"seriousness": ["hospitalisation"], "expectedness": "expected",
      "attributions": [{"agent": "x", "attribution": "definite"}]}, False, None),
])
def test_reporting_from_the_record(event: dict[str, Any], required: bool | None, days: int | None) -> None:
    ae = AdverseEvent.model_validate({"term": "Sepsis", "grade": 4, "onset": "2026-05-01",
                                      "sponsor_aware_on": "2026-05-02", **event})
    rep = reporting_for(ae)
    assert rep.required is required
    assert (rep.deadline.calendar_days if rep.deadline else None) == days


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda d: d["events"][0].update(grade=1), "$.events[0] (adverse_event.grade): grade 1 does not exist"),
    (lambda d: d["events"][1].update(ctcae_version="6.0"), "$.events[1] (adverse_event.ctcae_version)"),
    (lambda d: d.update(trial="DB-POSTCONS"), "$.trial: the document is for DB-POSTCONS"),
    (lambda d: d.update(course="XYZ"), "$.course: NB-NK-2026 has no course 'XYZ'"),
    (lambda d: d.update(arm="Z"), "$.arm"),
    (lambda d: d["labs"][0].update(unit="mg"), "$.labs[0].unit"),
    (lambda d: d["next_course"]["labs"][0].update(unit="g/dL"), "$.next_course.labs.anc"),
    (lambda d: d.update(extra=1), "$.extra: unknown field"),
])
def test_document_errors_name_the_path(change: Any, fragment: str) -> None:
    data = _doc("nb-dit-cls.json")
    change(data)
    with pytest.raises(SafetyError) as err:
        check_document(data, NB, source="ae.json")
    assert fragment in str(err.value)
    assert str(err.value).startswith("ae.json")


def test_trial_events_document() -> None:
    results = check_trial_events(_doc("nbnk-trial-events.json"), NB)
    assert [(r.rule_id, r.status) for r in results] == [
        ("NBNK-STOP-TRD", Status.TRIGGERED), ("NBNK-STOP-G5", Status.TRIGGERED)]
    assert results[0].counted == ("NB-B-002: Sepsis grade 5 (2026-04-12)",)
    data = _doc("nbnk-trial-events.json")
    data["events"][1]["event"]["grade"] = 4  # grade 4 with seriousness "death": refused
    with pytest.raises(SafetyError, match=r"\$\.events\[1\]\.event"):
        check_trial_events(data, NB, source="events.json")
    data = _doc("nbnk-trial-events.json")
    data["events"][0]["arm"] = "C"
    with pytest.raises(SafetyError, match="has no arm 'C'"):
        check_trial_events(data, NB)


@pytest.mark.parametrize(("celsius", "hours", "grades", "fever_rule"), [
    (39.5, None, (2,), Status.TRIGGERED),
    (40.2, None, (3, 4), Status.TRIGGERED),  # open between 3 and 4, both fire the rule
    (40.2, 30, (4,), Status.TRIGGERED),
    (37.2, None, (0,), Status.NOT_TRIGGERED),
])
def test_temperatures_are_graded_as_fever(celsius: float, hours: float | None, grades: tuple[int, ...],
                                          fever_rule: Status) -> None:
    data = {"patient_id": "P1", "course": "DIT",
            "temperatures": [{"celsius": celsius, "hours_above_40": hours, "date": "2026-03-03"}]}
    result = check_document(data, NB)
    assert result.labs[0].grade.term == "Fever" and result.labs[0].grade.possible_grades == grades
    assert one(result.outcomes, "NBNK-FEVER").status is fever_rule


def test_impossible_temperature_is_refused() -> None:
    with pytest.raises(SafetyError, match=r"t\.json: \$\.temperatures\[0\]\.temperature_c"):
        check_document({"patient_id": "P1", "temperatures": [{"celsius": 104}]}, NB, source="t.json")

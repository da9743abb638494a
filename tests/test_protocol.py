"""Protocol loading, validation errors and lint findings on crafted protocols."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from trialdesk.errors import ProtocolError
from trialdesk.protocol.lint import lint
from trialdesk.protocol.load import (
    default_protocol_dir,
    load_directory,
    load_protocol,
    protocol_from_data,
)

MINIMAL: dict[str, Any] = {
    "id": "T-1",
    "version": "1",
    "title": "Test trial",
    "registry": {
        "source": "test",
        "identification": {"brief_title": "Test trial"},
        "status": {"overall_status": "RECRUITING"},
        "sponsor": {"lead_sponsor": {"name": "Test sponsor"}},
        "description": {"brief_summary": "A trial for tests."},
        "conditions": ["Test"],
        "design": {"study_type": "INTERVENTIONAL"},
    },
    "eligibility": {
        "source": "test",
        "lookback": {"default_days": 28, "source": "test"},
        "inclusion": [{"id": "I1", "text": "LVEF ≥ 55%", "rule": "lvef >= 55 [%]"}],
        "exclusion": [],
    },
    "arms": [{"id": "A", "label": "Arm A", "assignment": {"rule": "lvef >= 55 [%]"}}],
}


def make(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return data


def test_bundled_protocols_load() -> None:
    protocols = load_directory(default_protocol_dir())
    assert "NB-NK-2026" in protocols
    nb = protocols["NB-NK-2026"]
    assert len(nb.protocol.eligibility.inclusion) == 12
    assert len(nb.protocol.eligibility.exclusion) == 11
    assert {a.id for a in nb.protocol.arms} == {"A", "B"}


def test_minimal_protocol_compiles() -> None:
    compiled = protocol_from_data(make())
    assert compiled.rules["I1"].value.canonical == 55.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "where", "reason"),
    [
        ({"colour": "blue"}, "$.colour", "unknown field"),
        ({"registry__status__overall_status": "OPEN"}, "$.registry.status.overall_status",
         "Input should be"),
        ({"eligibility__inclusion": [{"id": "I1", "text": "x"}]}, "$.eligibility.inclusion[0]",
         "exactly one of 'rule' or 'attest'"),
        ({"eligibility__inclusion": [{"id": "I1", "text": "x", "rule": "a", "attest": "q?"}]},
         "$.eligibility.inclusion[0]", "exactly one"),
        ({"arms": [{"id": "A", "label": "A", "assignment": {}}]}, "$.arms[0].assignment",
         "exactly one of 'rule' or 'randomisation'"),
        ({"eligibility__lookback__default_days": -1}, "$.eligibility.lookback.default_days",
         "greater than or equal to 0"),
    ],
)
def test_model_errors_name_the_json_path(changes: dict[str, Any], where: str,
                                         reason: str) -> None:
    with pytest.raises(ProtocolError) as err:
        protocol_from_data(make(**changes), source="t.yaml")
    assert str(err.value).startswith(f"t.yaml: {where}: ")
    assert reason in str(err.value)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("lvef >= 55", "give the value's unit"),
        ("lvf >= 55 [%]", "unknown fact 'lvf' (did you mean 'lvef'?)"),
        ("lvef >= [%]", "syntax error at line 1, column 9"),
    ],
)
def test_rule_errors_name_the_criterion(rule: str, fragment: str) -> None:
    data = make(eligibility__inclusion=[{"id": "I7", "text": "t", "rule": rule}])
    with pytest.raises(ProtocolError) as err:
        protocol_from_data(data, source="t.yaml")
    assert str(err.value).startswith("t.yaml: inclusion criterion I7: ")
    assert fragment in str(err.value)


def test_unknown_course_and_duplicate_ids() -> None:
    arm = {"id": "A", "label": "A", "assignment": {"rule": "lvef >= 55 [%]"},
           "plan": [{"course": "X"}]}
    with pytest.raises(ProtocolError, match="unknown course 'X'"):
        protocol_from_data(make(arms=[arm]))
    dup = [{"id": "I1", "text": "a", "rule": "consent_signed"}] * 2
    with pytest.raises(ProtocolError, match="criterion ids repeated: I1"):
        protocol_from_data(make(eligibility__inclusion=dup))


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: T\nversion: [1\n", encoding="utf-8")
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    assert str(err.value).startswith(f"{path}:3:")
    assert "malformed YAML" in str(err.value)


def test_duplicate_trial_ids_in_a_directory(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump(make()), encoding="utf-8")
    with pytest.raises(ProtocolError, match="trial id T-1 also defined"):
        load_directory(tmp_path)


# --- lint ---------------------------------------------------------------------


def codes(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f.level, f.code) for f in lint(protocol_from_data(data))]


def test_lint_flags_the_seed_lvef_overlap() -> None:
    nb = load_directory(default_protocol_dir())["NB-NK-2026"]
    overlaps = [f for f in lint(nb) if f.code == "overlap"]
    assert len(overlaps) == 1
    assert overlaps[0].where.endswith("I10 / E9")
    assert "lvef = 55 %" in overlaps[0].message


@pytest.mark.parametrize(
    ("inclusion", "exclusion", "overlap"),
    [
        ("lvef >= 55 [%]", "lvef <= 55 [%]", True),
        ("lvef >= 55 [%]", "lvef < 55 [%]", False),
        ("lvef > 55 [%]", "lvef <= 55 [%]", False),
        ("lvef >= 50 [%]", "lvef <= 55 [%]", True),
        ("age_years >= 17", "age_years > 75", False),  # same direction: not complements
        ("alt_x_uln < 5", "not (alt_x_uln < 5)", False),
    ],
)
def test_lint_overlap(inclusion: str, exclusion: str, overlap: bool) -> None:
    data = make(eligibility__inclusion=[{"id": "I1", "text": "i", "rule": inclusion}],
                eligibility__exclusion=[{"id": "E1", "text": "e", "rule": exclusion}])
    assert (("warning", "overlap") in codes(data)) is overlap


@pytest.mark.parametrize(
    ("rule", "never"),
    [
        ("lvef > 60 [%] and lvef < 50 [%]", True),
        ("lvef > 60 [%] and lvef < 61 [%]", False),
        ("pregnant and not pregnant", True),
        ("disease_status == 'relapsed' and disease_status == 'refractory'", True),
        ("age_years > 18 and age_years < 19", True),  # whole years
        ("count(prior_therapy_categories) > 2 and count(prior_therapy_categories) < 2", True),
        ("lvef >= 55 [%] and consent_signed", False),
    ],
)
def test_lint_never_met(rule: str, never: bool) -> None:
    data = make(eligibility__inclusion=[{"id": "I1", "text": "i", "rule": rule}])
    assert (("error", "never-met") in codes(data)) is never


def test_lint_arm_overlap_and_gap() -> None:
    overlapping = make(arms=[
        {"id": "A", "label": "A", "assignment": {"rule": "lvef >= 55 [%]"}},
        {"id": "B", "label": "B", "assignment": {"rule": "lvef >= 60 [%]"}},
    ])
    assert ("error", "arm-overlap") in codes(overlapping)
    gap = make(arms=[
        {"id": "A", "label": "A", "assignment": {"rule": "disease_status == 'refractory'"}},
        {"id": "B", "label": "B", "assignment": {"rule": "disease_status == 'relapsed'"}},
    ])
    assert ("warning", "arm-gap") in codes(gap)
    # The seed protocol's inclusion rule closes the gap (only refractory/relapsed/progressive).
    nb = load_directory(default_protocol_dir())["NB-NK-2026"]
    assert not [f for f in lint(nb) if f.code.startswith("arm-")]


def test_lint_unreached_and_unconfirmed() -> None:
    data = make()
    data["eligibility"]["attestations"] = [{"id": "unused", "question": "Unused?"}]
    data["eligibility"]["lookback"]["unconfirmed"] = True
    found = codes(data)
    assert ("warning", "unreached") in found
    assert ("warning", "unconfirmed") in found
    nb = load_directory(default_protocol_dir())["NB-NK-2026"]
    nb_codes = [f.code for f in lint(nb)]
    assert "dose-not-set" in nb_codes  # the NK-cell dose is not public
    assert nb_codes.count("unconfirmed") >= 5


def test_lint_registry_age_not_enforced() -> None:
    data = make()
    data["registry"]["eligibility"] = {"minimum_age": "18 Years", "maximum_age": "75 Years"}
    assert ("warning", "registry-age") in codes(data)
    data["eligibility"]["inclusion"].append({"id": "I2", "text": "Adults", "rule": "age_years >= 18"})
    assert ("warning", "registry-age") not in codes(data)
    for compiled in load_directory(default_protocol_dir()).values():
        assert "registry-age" not in [f.code for f in lint(compiled)], compiled.id

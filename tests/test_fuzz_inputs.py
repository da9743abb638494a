"""Fuzzing the ways in: valid patient and protocol documents, mutated.

Each example starts from a bundled document (examples/patients/*.json, protocols/*.yaml)
and changes one to three things in it — a value's type, a non-finite or huge number,
deep nesting, a duplicate key, an unknown or missing field — or re-encodes the whole
text (UTF-16, Latin-1, truncated, stray bytes). The document then goes the whole way a
file goes: bytes → reader → model → (patient) screening against every protocol, or
(protocol) compile, lint and every arm's calendar. The only acceptable endings are a
:class:`~trialdesk.errors.TrialdeskError` or a valid result holding no non-finite number.

The examples are derandomised (the same every run) and bounded, so the test is quick.
"""

from __future__ import annotations

import copy
import json
import math
import os
from datetime import date, datetime, timedelta
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from trialdesk.criteria.verdict import screen_record
from trialdesk.documents import decode, parse_json, parse_yaml, read_document
from trialdesk.errors import FactError, ProtocolError, TrialdeskError
from trialdesk.facts.patient import patient_from_data
from trialdesk.protocol.lint import lint
from trialdesk.protocol.load import default_protocol_dir, load_directory, protocol_from_data
from trialdesk.schedule.dose import BodyMeasurement
from trialdesk.schedule.plan import plan

PROTOCOLS = load_directory(default_protocol_dir())
PATIENT_FILES = sorted((default_protocol_dir().parent / "examples" / "patients").glob("*.json"))
PATIENTS = [read_document(p, FactError, as_json=True) for p in PATIENT_FILES]
PROTOCOL_DOCS = [read_document(p) for p in sorted(default_protocol_dir().glob("*.yaml"))]
TODAY = date(2026, 11, 21)
SCREENED = datetime(2026, 11, 21, 12, 0)
# More examples for a longer local run: TRIALDESK_FUZZ_EXAMPLES=3000.
FUZZ = settings(max_examples=int(os.environ.get("TRIALDESK_FUZZ_EXAMPLES", "120")), deadline=None,
                derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Replacement values: wrong types, non-finite and huge numbers, empty and odd containers.
ODD_VALUES = st.sampled_from([
    math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 10**30, -(10**30), 2**63, 2**53,
    0, -1, 1, 0.5, True, False, None, "", "x", "NaN", "Infinity", "2026-02-30", "1970-01-01",
    "2026-11-21T25:00", "٣", "\u0000", "\ud800", [], {}, [1, 2], {"a": 1}, [[[[[[[[[[]]]]]]]]]],
]).map(copy.deepcopy)  # a fresh container each time: documents are changed in place


def _paths(node: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [loc]
    if len(loc) > 12:  # documents nest about 8 levels; deeper is a nesting already added
        return out
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*loc, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*loc, i))
    return out


FACTORS = [0, 0.1, 0.5, 0.99, 1.01, 2, 10, 1e6, -1]


def _perturbed(value: Any, factor: float) -> Any:
    """A plausible change that often stays valid: a number scaled, a flag flipped, a date moved."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return value * factor
    if isinstance(value, int):
        return int(value * factor)  # whole numbers stay whole
    if isinstance(value, str) and len(value) == 10 and value[4:5] == "-":
        try:
            return (date.fromisoformat(value) + timedelta(days=int(factor * 30))).isoformat()
        except (ValueError, OverflowError):
            return value
    return value


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def mutated(draw: st.DrawFn, documents: list[Any]) -> Any:
    """A document with one to three changes at drawn places."""
    doc = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        loc = draw(st.sampled_from(paths))
        parent: Any = doc
        for key in loc[:-1]:
            parent = parent[key]
        how = draw(st.sampled_from(["perturb", "perturb", "replace", "replace", "delete", "extra",
                                    "nest"]))
        if how == "perturb":
            parent[loc[-1]] = _perturbed(parent[loc[-1]], draw(st.sampled_from(FACTORS)))
        elif how == "replace":
            parent[loc[-1]] = draw(ODD_VALUES)
        elif how == "delete":
            del parent[loc[-1]]
        elif how == "extra" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["unknown_field", "value", "date", "__proto__"]))] = draw(ODD_VALUES)
        elif how == "nest":
            parent[loc[-1]] = _nested(draw(st.sampled_from([3, 70, 120])))
    return doc


@st.composite
def as_bytes(draw: st.DrawFn, document: Any, yaml_text: bool) -> bytes:
    """The document as file bytes, sometimes damaged: encodings, duplicate keys, truncation."""
    try:
        text = (yaml.safe_dump(document, allow_unicode=True) if yaml_text
                else json.dumps(document, ensure_ascii=draw(st.booleans())))
    except (RecursionError, ValueError):
        text = "[" * 5000 + "]" * 5000
    damage = draw(st.sampled_from(["none", "none", "utf-16", "latin-1", "truncate", "bytes",
                                   "duplicate", "bigint", "bom"]))
    if damage == "utf-16":
        return text.encode("utf-16", errors="surrogatepass")
    data = text.encode("utf-8", errors="surrogatepass")
    if damage == "latin-1":
        return text.encode("latin-1", errors="replace") + "é".encode("latin-1")
    if damage == "truncate":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if damage == "bytes":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"\x00", b"\xff\xfe", b"\xc3", b"\x80\x80"])) + data[at:]
    if damage == "duplicate" and isinstance(document, dict) and document:
        key = draw(st.sampled_from(sorted(document)))
        extra = (f"{key}: 1\n" if yaml_text else f'{{"{key}": 1, ').encode()
        return extra + data if yaml_text else extra + data[1:]
    if damage == "bigint":
        return data.replace(b"1", b"1" + b"7" * 5000, 1)
    if damage == "bom":
        return b"\xef\xbb\xbf" + data
    return data


def _finite_everywhere(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, float):
        assert math.isfinite(value), value
    elif isinstance(value, dict):
        for v in value.values():
            _finite_everywhere(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _finite_everywhere(v)


@FUZZ
@given(data=st.data())
def test_mutated_patient_files_end_in_a_clean_error_or_a_valid_screening(data: st.DataObject) -> None:
    document = data.draw(mutated(PATIENTS))
    raw = data.draw(as_bytes(document, yaml_text=False))
    try:
        parsed = parse_json(decode(raw, FactError, where="p.json"), FactError, where="p.json")
        record = patient_from_data(parsed, today=TODAY, source="p.json")
        results = [screen_record(c, record, as_of=SCREENED) for c in PROTOCOLS.values()]
    except TrialdeskError as exc:
        assert exc.reason  # the command line prints it as one line
        event(f"refused: {type(exc).__name__}")
        return
    event("accepted")
    _finite_everywhere(record)
    for result in results:
        _finite_everywhere(result.to_json())


@FUZZ
@given(data=st.data())
def test_mutated_protocol_files_end_in_a_clean_error_or_a_valid_protocol(data: st.DataObject) -> None:
    document = data.draw(mutated(PROTOCOL_DOCS))
    yaml_text = data.draw(st.booleans())
    raw = data.draw(as_bytes(document, yaml_text=yaml_text))
    body = [BodyMeasurement(on=TODAY, weight_kg=21.4, height_cm=118)]
    try:
        text = decode(raw, ProtocolError, where="p")
        parsed = parse_yaml(text, where="p.yaml") if yaml_text else parse_json(text, where="p.json")
        compiled = protocol_from_data(parsed, source="p")
        lint(compiled)
        calendars = [plan(compiled.protocol, arm.id, TODAY, body=body) for arm in compiled.protocol.arms]
    except TrialdeskError as exc:
        assert exc.reason  # the command line prints it as one line
        event(f"refused: {type(exc).__name__}")
        return
    event("accepted")
    _finite_everywhere(compiled.protocol)
    for calendar in calendars:
        for planned in calendar.events:
            if planned.dose is not None:
                _finite_everywhere(planned.dose.model_dump() if isinstance(planned.dose, BaseModel)
                                   else vars(planned.dose))


def test_the_fuzz_corpus_is_the_bundled_documents() -> None:
    assert len(PATIENTS) >= 8 and len(PROTOCOL_DOCS) >= 4
    assert all(isinstance(p, dict) for p in PATIENTS + PROTOCOL_DOCS)


def test_untouched_documents_pass_the_same_path() -> None:
    for document in PATIENTS:
        record = patient_from_data(document, today=TODAY)
        _finite_everywhere(record)
    for document in PROTOCOL_DOCS:
        assert protocol_from_data(document).protocol.arms

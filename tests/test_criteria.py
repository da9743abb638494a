"""The criteria language: parser, canonical text, binding, Kleene evaluation, SQL parity."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trialdesk.criteria.ast import (
    And,
    Between,
    Compare,
    Contains,
    Expr,
    In,
    Known,
    Literal,
    Not,
    Or,
    Truthy,
    Within,
    to_text,
)
from trialdesk.criteria.evaluate import evaluate
from trialdesk.criteria.parser import parse
from trialdesk.criteria.sql import to_sql
from trialdesk.criteria.typecheck import bind
from trialdesk.errors import CriteriaError
from trialdesk.facts.model import FactSet, FactValue

AS_OF = datetime(2026, 11, 21, 12, 0)


def facts(**values: object) -> FactSet:
    return FactSet(AS_OF, {k.replace("__", "."): FactValue(k, v) for k, v in values.items()})  # type: ignore[arg-type]


# --- parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("consent_signed", Truthy("consent_signed")),
        ("lvef >= 55 [%]", Compare("lvef", ">=", Literal(55.0, "%"))),
        ("18 <= age_years", Compare("age_years", ">=", Literal(18.0))),
        ("pti between 70 [%] and 120 [%]", Between("pti", Literal(70.0, "%"), Literal(120.0, "%"))),
        (
            "disease_status in ['relapsed', 'progressive']",
            In("disease_status", (Literal("relapsed"), Literal("progressive"))),
        ),
        (
            "prior_therapy_categories contains 'immunotherapy'",
            Contains("prior_therapy_categories", Literal("immunotherapy")),
        ),
        (
            "count(prior_therapy_categories) >= 2",
            Compare("prior_therapy_categories", ">=", Literal(2.0), count=True),
        ),
        (
            "last_immunotherapy_date within 6 [weeks]",
            Within("last_immunotherapy_date", 6.0, "weeks"),
        ),
        ("pregnant is known", Known("pregnant")),
        ("pregnant is unknown", Known("pregnant", negated=True)),
        ("attest.e11", Truthy("attest.e11")),
        ("a or b and c", Or((Truthy("a"), And((Truthy("b"), Truthy("c")))))),
        ("not a and b", And((Not(Truthy("a")), Truthy("b")))),
        ("not (a and b)", Not(And((Truthy("a"), Truthy("b"))))),
        (
            "android and notable or inx",
            Or((And((Truthy("android"), Truthy("notable"))), Truthy("inx"))),
        ),
        ("anc <= 1.5e3 [/mm3]", Compare("anc", "<=", Literal(1500.0, "/mm3"))),
    ],
)
def test_parse(text: str, expected: Expr) -> None:
    assert parse(text) == expected
    assert parse(to_text(parse(text))) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("lvef >=", "line 1, column 8"),
        ("x >> 3", "expected one of"),
        ("x in []", "a number"),
        ("(a and b", ")"),
        ("a and", "unexpected end of expression"),
    ],
)
def test_syntax_errors_name_the_position(text: str, fragment: str) -> None:
    with pytest.raises(CriteriaError) as err:
        parse(text)
    assert "syntax error" in str(err.value)
    assert fragment in str(err.value)


# --- binding ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("anc <= 1 [10^9/L]", 1000.0),
        ("anc > 2000 [/mm3]", 2000.0),
        ("platelets > 150 [x10^9/L]", 150000.0),
        ("creatinine <= 88.4 [umol/L]", 0.999980),
        ("gfr > 60 [mL/min/1.73m2]", 60.0),
        ("life_expectancy >= 3 [months]", 13.0446428571),
        ("hours_since_septic_shock_onset <= 10 [hours]", 10.0),
        ("alt_x_uln < 5", 5.0),
        ("alt_x_uln < 5 [ULN]", 5.0),
    ],
)
def test_bind_converts_literals_to_the_fact_unit(text: str, canonical: float) -> None:
    bound = bind(parse(text))
    assert isinstance(bound, Compare)
    assert bound.value.canonical == pytest.approx(canonical, rel=1e-6)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("anc > 2000", "give the value's unit"),
        ("anc > 2 [mg]", "does not fit 'anc'"),
        ("alt_x_ulm < 5", "did you mean 'alt_x_uln'"),
        ("disease_status == 'relapse'", "did you mean 'relapsed'"),
        ("disease_status > 'relapsed'", "only == and != apply"),
        ("lvef", "not yes/no"),
        ("pregnant == 1", "true or false"),
        ("age_years < 5 [%]", "has no unit"),
        ("lvef between 60 [%] and 50 [%]", "empty range"),
        ("last_immunotherapy_date within 1.5 [days]", "whole number of days"),
        ("last_immunotherapy_date within 2 [mg]", "not a length of time"),
        ("lvef within 2 [days]", "needs a date fact"),
        ("count(lvef) > 1", "needs a set fact"),
        ("prior_therapy_categories == 'x'", "use 'contains'"),
        ("prior_therapy_categories contains 'magic'", "not a value"),
    ],
)
def test_bind_errors(text: str, fragment: str) -> None:
    with pytest.raises(CriteriaError) as err:
        bind(parse(text), where="nb.yaml: inclusion I7")
    assert fragment in str(err.value)
    assert str(err.value).startswith("nb.yaml: inclusion I7, line 1, column ")


# --- three-valued logic ----------------------------------------------------

TRI = [True, False, None]


def _kleene_and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _kleene_or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


@pytest.mark.parametrize(("a", "b"), list(itertools.product(TRI, TRI)))
def test_kleene_truth_tables(a: bool | None, b: bool | None) -> None:
    values = {k: v for k, v in (("pregnant", a), ("consent_signed", b)) if v is not None}
    fs = facts(**values)
    assert evaluate(bind(parse("pregnant and consent_signed")), fs) is _kleene_and(a, b)
    assert evaluate(bind(parse("pregnant or consent_signed")), fs) is _kleene_or(a, b)
    assert evaluate(bind(parse("not pregnant")), fs) is (None if a is None else not a)
    assert evaluate(bind(parse("pregnant is known")), fs) is (a is not None)


def test_missing_fact_is_unknown_never_false() -> None:
    assert evaluate(bind(parse("lvef >= 55 [%]")), facts()) is None
    assert evaluate(bind(parse("lvef < 55 [%]")), facts()) is None


def test_within_counts_days_before_the_screening_date() -> None:
    rule = bind(parse("last_immunotherapy_date within 6 [weeks]"))
    on = AS_OF.date()
    assert evaluate(rule, facts(last_immunotherapy_date=on - timedelta(days=42))) is True
    assert evaluate(rule, facts(last_immunotherapy_date=on - timedelta(days=43))) is False
    assert evaluate(rule, facts(last_immunotherapy_date=on)) is True
    assert evaluate(rule, facts(last_immunotherapy_date=on + timedelta(days=1))) is False


# --- evaluator and SQL agree ---------------------------------------------------

NUMERIC = {
    "lvef": ("%", [0.0, 54.99, 55.0, 55.01, 100.0]),
    "alt_x_uln": (None, [0.0, 2.9, 3.0, 4.999, 5.0, 5.001, 40.0]),
    "age_years": (None, [0, 1, 17, 18, 19, 75, 76]),
}
STRINGS = {"disease_status": ["refractory", "relapsed", "progressive", "remission"]}
BOOLEANS = ["pregnant", "consent_signed"]
SETS = {"prior_therapy_categories": ["chemotherapy", "immunotherapy", "surgery"]}
DATES = ["last_immunotherapy_date"]
ALL_FACTS = [*NUMERIC, *STRINGS, *BOOLEANS, *SETS, *DATES]


def _num_literal(name: str) -> st.SearchStrategy[Literal]:
    unit, values = NUMERIC[name]
    return st.sampled_from(values).map(lambda v: Literal(float(v), unit))


@st.composite
def atoms(draw: st.DrawFn) -> Expr:
    kind = draw(
        st.sampled_from(
            ["cmp", "between", "in", "str", "bool", "contains", "count", "within", "known"]
        )
    )
    if kind == "cmp":
        name = draw(st.sampled_from(list(NUMERIC)))
        return Compare(
            name,
            draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="])),
            draw(_num_literal(name)),
        )
    if kind == "between":
        name = draw(st.sampled_from(list(NUMERIC)))
        lo, hi = sorted(
            [draw(_num_literal(name)), draw(_num_literal(name))], key=lambda lit: float(lit.value)
        )
        return Between(name, lo, hi)
    if kind in ("in", "str"):
        values = STRINGS["disease_status"]
        if kind == "str":
            return Compare(
                "disease_status",
                draw(st.sampled_from(["==", "!="])),
                Literal(draw(st.sampled_from(values))),
            )
        chosen = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True))
        return In("disease_status", tuple(Literal(v) for v in chosen))
    if kind == "bool":
        return Truthy(draw(st.sampled_from(BOOLEANS)))
    if kind == "contains":
        return Contains(
            "prior_therapy_categories",
            Literal(draw(st.sampled_from(SETS["prior_therapy_categories"]))),
        )
    if kind == "count":
        return Compare(
            "prior_therapy_categories",
            draw(st.sampled_from(["<", ">=", "=="])),
            Literal(float(draw(st.integers(0, 3)))),
            count=True,
        )
    if kind == "within":
        return Within("last_immunotherapy_date", float(draw(st.integers(0, 10))), "days")
    return Known(draw(st.sampled_from(ALL_FACTS)), negated=draw(st.booleans()))


expressions = st.recursive(
    atoms(),
    lambda inner: st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)


@st.composite
def patients(draw: st.DrawFn) -> dict[str, object]:
    row: dict[str, object] = {}
    for name, (_, values) in NUMERIC.items():
        row[name] = draw(st.none() | st.sampled_from(values))
    row["disease_status"] = draw(st.none() | st.sampled_from(STRINGS["disease_status"]))
    for name in BOOLEANS:
        row[name] = draw(st.none() | st.booleans())
    row["prior_therapy_categories"] = draw(
        st.none() | st.lists(st.sampled_from(SETS["prior_therapy_categories"]), unique=True)
    )
    row["last_immunotherapy_date"] = draw(
        st.none() | st.integers(-2, 12).map(lambda d: AS_OF.date() - timedelta(days=d))
    )
    return row


def _factset(row: dict[str, object]) -> FactSet:
    values = {}
    for k, v in row.items():
        if v is None:
            continue
        if isinstance(v, list):
            v = frozenset(v)
        values[k] = FactValue(k, v)  # type: ignore[arg-type]
    return FactSet(AS_OF, values)


_COLUMNS = ", ".join(
    [
        "lvef DOUBLE",
        "alt_x_uln DOUBLE",
        "age_years INTEGER",
        "disease_status VARCHAR",
        "pregnant BOOLEAN",
        "consent_signed BOOLEAN",
        "prior_therapy_categories VARCHAR[]",
        "last_immunotherapy_date DATE",
        "i INTEGER",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions, rows=st.lists(patients(), min_size=1, max_size=8))
def test_evaluator_and_sql_agree(expr: Expr, rows: list[dict[str, object]]) -> None:
    bound = bind(parse(to_text(expr)))  # round-trips through the text form too
    assert parse(to_text(expr)) == expr
    con = duckdb.connect()
    con.execute(f"CREATE TABLE facts ({_COLUMNS})")
    for i, row in enumerate(rows):
        con.execute(
            "INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                row["lvef"],
                row["alt_x_uln"],
                row["age_years"],
                row["disease_status"],
                row["pregnant"],
                row["consent_signed"],
                row["prior_therapy_categories"],
                row["last_immunotherapy_date"],
                i,
            ],
        )
    sql = to_sql(bound, as_of=AS_OF.date())
    got = dict(con.execute(f"SELECT i, {sql} FROM facts").fetchall())
    for i, row in enumerate(rows):
        assert got[i] is evaluate(bound, _factset(row)), (to_text(expr), row, sql)


def test_sql_shows_the_compiled_rule() -> None:
    sql = to_sql(bind(parse("anc <= 1 [10^9/L] and not pregnant")))
    assert sql == '(("anc" <= 1000.0e0) AND (NOT "pregnant"))'


def test_within_needs_a_date_for_sql() -> None:
    with pytest.raises(ValueError):
        to_sql(bind(parse("last_immunotherapy_date within 3 [days]")))


def test_dates_module_constant() -> None:
    assert AS_OF.date() == date(2026, 11, 21)

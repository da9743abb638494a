"""Incremental runs: which patients' results may have changed since the last run.

A patient is screened again when their data changed (a fingerprint over all their rows)
or when the date alone may change a result (:func:`change_sql`); a trial is screened
again for everyone when its protocol changed (:func:`trialdesk.screening.plan.fingerprint`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from trialdesk.criteria.ast import And, Expr, Not, Or, Within
from trialdesk.protocol.load import CompiledProtocol
from trialdesk.screening.flavour import Flavour, date_sql
from trialdesk.screening.plan import PopulationPlan


def fingerprint_sql(f: Flavour, tables: Mapping[str, Sequence[str]]) -> str:
    """Per person, a fingerprint of every row of theirs in every table (``tables``: table →
    its columns). A patient whose fingerprint is unchanged has the same data."""
    parts = [f"SELECT person_id, {f.row_hash([f.q(c) for c in columns])} AS h FROM src_{name}"
             for name, columns in tables.items()]
    return (f"SELECT person_id, {f.hash_total('h')} AS fingerprint FROM ("
            + " UNION ALL ".join(parts) + ") x GROUP BY person_id")


def change_sql(plan: PopulationPlan, protocols: Sequence[CompiledProtocol],
               tables: Iterable[str]) -> list[tuple[str, str]]:
    """Statements ending in ``td_state(person_id, fingerprint, change_days)``.

    ``change_days``: the number of days after the screening date on which a result may
    first differ although the data did not change — a birthday (age in completed months),
    a value growing older than a look-back window, a dated row coming into range, a
    treatment ending, a ``within`` window closing. 0 means the result holds only for the
    very same screening moment (hours since septic shock onset change by the hour).
    Conservative: earlier than needed is allowed, later never.
    """
    f, q, on = plan.flavour, plan.flavour.q, plan.on
    on_sql = date_sql(on)
    tables = set(tables)
    steps: list[tuple[str, str]] = []
    dates = {"measurement": "measurement_date", "observation": "observation_date",
             "condition_occurrence": "condition_start_date",
             "drug_exposure": "drug_exposure_start_date"}
    future = [f"SELECT person_id, {d} AS d FROM src_{t} WHERE {d} > {on_sql}"
              for t, d in dates.items() if t in tables]
    if future:
        steps.append(("td_future", "SELECT person_id, min(d) AS first FROM ("
                      + " UNION ALL ".join(future) + ") x GROUP BY person_id"))
    if "drug_exposure" in tables:
        start, end = "drug_exposure_start_date", "drug_exposure_end_date"
        steps.append(("td_drugtime", (
            "SELECT person_id, min(CASE WHEN therapy_category IN ('corticosteroid', "
            f"'immunosuppressant') AND coalesce(chronic, FALSE) AND {start} <= {on_sql} "
            f"AND {end} >= {on_sql} THEN {end} END) AS chronic_end, "
            f"bool_or(therapy_category = 'immunotherapy' AND {start} <= {on_sql} AND "
            f"({end} IS NULL OR {end} > {on_sql})) AS immuno_ongoing "
            "FROM src_drug_exposure GROUP BY person_id")))
    # Age in completed months changes on the birth day-of-month (or on the 1st when the
    # month is shorter); age in years only changes with it.
    this_last = (_month_start(on, 1) - on).days + on.day - 1
    next_first = _month_start(on, 1)
    next_last = (_month_start(on, 2) - next_first).days
    after_next = _month_start(on, 2)
    dom = f"day(t.{q('@birth')})"
    change_date = (
        f"CASE WHEN {on.day} < {dom} THEN (CASE WHEN {dom} <= {this_last} "
        f"THEN make_date({on.year}, {on.month}, {dom}) ELSE {date_sql(next_first)} END) "
        f"ELSE (CASE WHEN {dom} <= {next_last} THEN make_date({next_first.year}, "
        f"{next_first.month}, {dom}) ELSE {date_sql(after_next)} END) END")
    ks = [f.days(change_date, on_sql)]
    for fact, windows in sorted(plan.dated.items()):
        age = q(fact + "@age")
        ks += [f"CASE WHEN t.{age} <= {w} THEN {w} - t.{age} + 1 END" for w in windows]
    within = sorted({w.days for c in protocols for w in _withins(c)
                     if w.fact == "last_immunotherapy_date" and w.days is not None})
    last = q("last_immunotherapy_date")
    for n in within:
        ks.append(f"CASE WHEN {f.days(on_sql, f't.{last}')} <= {n} "
                  f"THEN {n} - {f.days(on_sql, f't.{last}')} + 1 END")
    joins = ["LEFT JOIN td_fingerprint fp ON fp.person_id = t.person_id"]
    if future:
        joins.append("LEFT JOIN td_future fu ON fu.person_id = t.person_id")
        ks.append(f.days("fu.first", on_sql))
    if "drug_exposure" in tables:
        joins.append("LEFT JOIN td_drugtime dt ON dt.person_id = t.person_id")
        ks.append(f"{f.days('dt.chronic_end', on_sql)} + 1")
        ks.append("CASE WHEN dt.immuno_ongoing THEN 1 END")
    if plan_has(plan, "septic_shock_onset"):
        ks.append(f"CASE WHEN t.{q('septic_shock_onset')} IS NOT NULL THEN 0 END")
    change = "least(" + ", ".join(ks) + ")" if len(ks) > 1 else ks[0]
    steps.append(("td_state", (
        f"SELECT t.person_id, fp.fingerprint, CAST({change} AS INT) AS change_days "
        f"FROM td_facts t {' '.join(joins)}")))
    return steps


def plan_has(plan: PopulationPlan, column: str) -> bool:
    """Whether ``td_facts`` has a column."""
    return f" AS {plan.flavour.q(column)}" in plan.steps[-1][1]


def _month_start(d: date, months: int) -> date:
    index = d.year * 12 + (d.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def _withins(compiled: CompiledProtocol) -> list[Within]:
    found: list[Within] = []

    def walk(node: Expr) -> None:
        if isinstance(node, Within):
            found.append(node)
        elif isinstance(node, Not):
            walk(node.operand)
        elif isinstance(node, (And, Or)):
            for child in node.operands:
                walk(child)

    for expr in [*compiled.rules.values(), *compiled.arm_rules.values()]:
        walk(expr)
    return found


__all__ = ["change_sql", "fingerprint_sql"]

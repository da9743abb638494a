"""Criteria extraction benchmark: numeric thresholds against human annotations, drafts on real records.

    python bench/criteria_extraction.py [--lct DIR] [--ctgov DIR] [--errors]

Prints:

* precision and recall of the numeric thresholds (operator, value, unit) the extractor
  reads (:func:`trialdesk.registry.extract.thresholds_in`) against the LCT corpus
  annotations (Leaf Clinical Trials corpus, UW Bio-NLP, MIT licence; brat files in
  ``../shared/criteria-annotated/lct/``), for the comparisons whose subject is a fact type
  the dictionary knows (age, the laboratory tests, performance scales, life expectancy);
  a threshold counts when the same line holds an annotated comparison of the same fact
  type with the same operator, value(s) and unit (where the annotators marked no unit, or only
  its numerator, "g" of "g/dL", the unit is not held against the extractor); the unit is read
  from the annotated comparison's own text where that names a known unit ("> 1.5 * 109/L" is
  10^9/L although only "L" is marked as its unit); a comparison of a laboratory test in a time
  unit ("within 6 months") is the test's look-back window, not a threshold of its value, and is
  not counted; the figures are given twice: with the annotation's links as they are, and with
  comparisons the annotators left unlinked attached to the observation just before them on the
  same line; ``--errors`` lists every false positive (extracted, not annotated) and false
  negative (annotated, not extracted) with its file, line and sentence;
* the share of criteria items of the shared ClinicalTrials.gov records that get a draft.

Targets: precision ≥ 0.95, recall ≥ 0.80. Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trialdesk.registry.extract import fact_of_name, thresholds_in, unit_of
from trialdesk.registry.importer import Imported, import_bytes

ROOT = Path(__file__).resolve().parents[1]
SHARED = next(
    (p / "shared" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared").is_dir()), Path("/work/shared")
)
TARGET_PRECISION = 0.95
TARGET_RECALL = 0.80
_OPS = {"LT": "<", "LTEQ": "<=", "GT": ">", "GTEQ": ">=", "EQ": "==", "BETWEEN": "between"}


@dataclass(frozen=True)
class Gold:
    line: int
    kind: str  # fact type
    op: str
    value: float
    high: float | None
    unit: str | None
    text: str


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None


def _unit(text: str | None) -> str | None:
    if text is None:
        return None
    if re.search(r"uln|upper limit|normal", text, re.I):
        return "ULN"
    if re.fullmatch(r"\s*(?:mm3|mm\^3|mm³|[uµμ]l)\s*", text, re.I):
        return "/mm3"  # the annotators marked "mm3" of "/mm3": a count per volume
    known = unit_of(text)
    if known is not None:
        return known
    word = text.strip().lower().rstrip("s")
    return {
        "yr": "year",
        "year": "year",
        "month": "month",
        "week": "week",
        "day": "day",
        "hour": "hour",
        "hr": "hour",
    }.get(word, text.strip())


def _operator(text: str) -> str | None:
    """The operator of an annotated operator span that carries no operator attribute."""
    t = text.strip().lower()
    return {
        "≥": ">=",
        ">=": ">=",
        "≤": "<=",
        "<=": "<=",
        ">": ">",
        "<": "<",
        "over": ">",
        "above": ">",
        "under": "<",
        "below": "<",
        "less than": "<",
        "greater than": ">",
        "more than": ">",
        "at least": ">=",
    }.get(t)


_TIME_UNITS = {"year", "month", "week", "day", "hour"}


def _unit_in_comparison(text: str, value: str) -> str | None:
    """The known unit written after the value in an annotated comparison's text, if any.

    >>> _unit_in_comparison("> 1.5 * 109/L", "1.5"), _unit_in_comparison("≤30 mL/min", "30")
    ('10^9/L', 'mL/min')
    """
    at = text.find(value)
    if at < 0:
        return None
    rest = text[at + len(value) :].strip()
    return unit_of(rest) if rest else None


def _leading_operator(text: str) -> str | None:
    m = re.match(
        r"\s*(≥|≤|>=|<=|>|<|over|above|under|below|less than|greater than|more than|at least)", text, re.I
    )
    return _operator(m.group(1)) if m else None


def _same_unit(predicted: object, gold: str | None) -> bool:
    """Equal units, or the annotators marked only the numerator ("IU" of "IU/mL", "g" of "g/dL")."""
    if gold is None or predicted == gold:
        return True
    return isinstance(predicted, str) and predicted.lower().startswith(gold.lower() + "/")


def _type(fact: str) -> str:
    """A predicted fact's type: ``alt_x_uln`` is alt, ``age_months`` is age."""
    if fact.startswith("age"):
        return "age"
    return fact.removesuffix("_x_uln")


def _key(name: str) -> str:
    """ "Numeric-Filter2", "Unit2", "Per2" are more of the same argument; "Value2" is a range's end."""
    base = name.rstrip("0123456789")
    return base if base in ("Numeric-Filter", "Unit", "Per") else name


def _attach_unlinked(
    events: dict[str, list[tuple[str, str]]],
    spans: dict[str, tuple[str, int, int, str]],
    line_of: Callable[[int], int],
) -> None:
    """Give each comparison no event points to the observations just before it on its line.

    Some annotated comparisons are not linked to the observation they qualify ("Serum
    Creatinine > 2.0 mg/dL" with both marked but no Numeric-Filter between them). Such a
    comparison is attached to every observation without a comparison of its own that lies on
    the same line after the previous comparison.
    """
    referenced = {v for pairs in events.values() for _, v in pairs if v.startswith("E")}
    comparisons = {e: spans[p[0][1]] for e, p in events.items() if p and p[0][0] == "Eq-Comparison"}
    for comparison, (_, start, _, _) in comparisons.items():
        if comparison in referenced:
            continue
        line = line_of(start)
        before = [c[2] for c in comparisons.values() if line_of(c[1]) == line and c[2] <= start]
        floor = max(before, default=-1)
        for pairs in events.values():
            if pairs[0][0] != "Observation" or any(k == "Numeric-Filter" for k, _ in pairs):
                continue
            trigger = spans[pairs[0][1]]
            if line_of(trigger[1]) == line and floor <= trigger[1] and trigger[2] <= start:
                pairs.append(("Numeric-Filter", comparison))


def read_gold(ann: Path, text: str, *, attach_unlinked: bool = False) -> list[Gold]:
    spans: dict[str, tuple[str, int, int, str]] = {}
    events: dict[str, list[tuple[str, str]]] = {}
    attrs: dict[str, str] = {}
    for raw in ann.read_text(encoding="utf-8").splitlines():
        parts = raw.split("\t")
        if parts[0].startswith("T") and len(parts) >= 3:
            kind, *offsets = parts[1].split()
            start, end = int(offsets[0]), int(offsets[-1])
            spans[parts[0]] = (kind, start, end, parts[2])
        elif parts[0].startswith("E"):
            # a list, not a dict: an event may have several Numeric-Filter arguments
            events[parts[0]] = [(_key(k), v) for k, v in (a.split(":", 1) for a in parts[1].split())]
        elif parts[0].startswith("A"):
            bits = parts[1].split()
            if len(bits) == 3:
                attrs[bits[1]] = bits[2]
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset: int) -> int:
        return max(i for i, s in enumerate(line_starts) if s <= offset)

    if attach_unlinked:
        _attach_unlinked(events, spans, line_of)
    gold: list[Gold] = []
    for pairs in events.values():
        head = pairs[0][0]
        args = dict(pairs)
        filters = [v for k, v in pairs if k == "Numeric-Filter"]
        if head not in ("Observation", "Age") or not filters:
            continue
        if head == "Age":
            kind: str | None = "age"
        else:
            name = spans.get(args.get("Name", ""), ("", 0, 0, ""))[3]
            kind = fact_of_name(name)
        if kind is None:
            continue
        for comparison in filters:
            c = dict(events.get(comparison, []))
            trigger = (
                spans[c["Eq-Comparison"]] if "Eq-Comparison" in c else spans[comparison.replace("E", "T")]
            )
            # The operator attribute, else the operator span's text, else the comparison's own
            # first words (some comparisons carry no operator annotation: "> 2.0 mg/dL").
            op = (
                _OPS.get(attrs.get(c.get("Operator", ""), ""))
                or _operator(spans.get(c.get("Operator", ""), ("", 0, 0, ""))[3])
                or _leading_operator(trigger[3])
            )
            value_text = spans.get(c.get("Value", ""), ("", 0, 0, ""))[3]
            value = _number(value_text)
            if op is None or value is None:
                continue
            # a second value only makes a range ("10^9" is sometimes marked as one)
            high = _number(spans.get(c.get("Value2", ""), ("", 0, 0, ""))[3]) if op == "between" else None
            parts = [spans[v][3] for k, v in events.get(comparison, []) if k == "Unit" and v in spans]
            parts += [spans[v][3] for k, v in events.get(comparison, []) if k == "Per" and v in spans]
            unit_text = "/".join(p.strip().strip("/") for p in parts) if parts else None
            if unit_text is None and "Temporal-Unit" in c:
                unit_text = attrs.get(c["Temporal-Unit"], spans[c["Temporal-Unit"]][3])
            unit = (None if op == "between" else _unit_in_comparison(trigger[3], value_text)) or _unit(
                unit_text
            )
            if kind not in ("age", "life_expectancy") and unit in _TIME_UNITS:
                continue  # "ANC ... within 6 months": when the test was done, not its value
            gold.append(Gold(line_of(trigger[1]), kind, op, value, high, unit, trigger[3]))
    return gold


def _kinds(text: str) -> list[str]:
    """Inclusion or exclusion for each line, from the section headings."""
    kind, out = "inclusion", []
    for line in text.split("\n"):
        if re.match(r"\s*exclusion", line, re.I):
            kind = "exclusion"
        elif re.match(r"\s*inclusion", line, re.I):
            kind = "inclusion"
        out.append(kind)
    return out


def lct(directory: Path, errors: bool, *, attach_unlinked: bool = False) -> tuple[int, int, int, int]:
    """(true positives among predictions, predictions, gold found, gold) over the corpus.

    With ``errors``, each line where the answers differ is printed with its false positives
    (extracted, not annotated) and false negatives (annotated, not extracted).
    """
    tp = predicted = found = total = 0
    for ann in sorted(directory.rglob("*.ann")):
        text = ann.with_suffix(".txt").read_text(encoding="utf-8")
        gold = read_gold(ann, text, attach_unlinked=attach_unlinked)
        lines, kinds = text.split("\n"), _kinds(text)
        gold_by_line: dict[int, list[Gold]] = {}
        for g in gold:
            gold_by_line.setdefault(g.line, []).append(g)
        total += len(gold)
        for i, line in enumerate(lines):
            golds = gold_by_line.get(i, [])
            preds = [(_type(t.fact), t.op, t.value, t.high, t.unit) for t in thresholds_in(line, kinds[i])]
            # Where the annotators marked no unit, any unit counts (the operator and value must agree).
            resolved = [
                next(
                    (
                        p
                        for p in preds
                        if p[:4] == (g.kind, g.op, g.value, g.high) and _same_unit(p[4], g.unit)
                    ),
                    None,
                )
                for g in golds
            ]
            want = Counter(
                r if r is not None else (g.kind, g.op, g.value, g.high, None)
                for r, g in zip(resolved, golds, strict=True)
            )
            got = Counter(preds)
            hit = got & want
            tp += sum(hit.values())
            predicted += sum(got.values())
            found += sum(hit.values())
            if errors and (got - want or want - got):
                print(f"  {ann.parent.name}/{ann.stem}.txt:{i + 1}: {line.strip()[:160]}")
                for extra in got - want:
                    print(f"      false positive  {_shown(extra)}")
                for missed in want - got:
                    print(f"      false negative  {_shown(missed)}")
    return tp, predicted, found, total


def _shown(answer: tuple[str, str, float, float | None, str | None]) -> str:
    kind, op, value, high, unit = answer
    number = f"{value:g} and {high:g}" if high is not None else f"{value:g}"
    return f"{kind} {op} {number}" + (f" [{unit}]" if unit else "")


def ctgov(directory: Path) -> tuple[int, int]:
    """(items with a draft, items) over the shared registry records."""
    drafted = items = 0
    for path in sorted(directory.glob("NCT*")):
        for result in import_bytes(path.read_bytes(), name=str(path)):
            if isinstance(result, Imported):
                drafted += result.drafts
                items += result.inclusion + result.exclusion
    return drafted, items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lct", type=Path, default=SHARED / "criteria-annotated" / "lct")
    parser.add_argument("--ctgov", type=Path, default=SHARED / "ctgov")
    parser.add_argument(
        "--errors",
        "--show",
        action="store_true",
        help="list the false positives and false negatives, each with its file, line and sentence",
    )
    args = parser.parse_args(argv)

    def verdict(value: float, target: float) -> str:
        return f"target ≥ {target}: {'met' if value >= target else 'missed'}"

    for label, attach in (
        ("links as annotated", False),
        ("unlinked comparisons attached to the observation before them", True),
    ):
        print(f"LCT numeric thresholds, dictionary fact types ({label}):")
        tp, predicted, found, total = lct(args.lct, args.errors, attach_unlinked=attach)
        precision = tp / predicted if predicted else 0.0
        recall = found / total if total else 0.0
        print(f"  {total} annotated, {predicted} extracted, {tp} correct")
        print(f"  precision {precision:.3f} ({verdict(precision, TARGET_PRECISION)})")
        print(f"  recall    {recall:.3f} ({verdict(recall, TARGET_RECALL)})")
    drafted, items = ctgov(args.ctgov)
    share = drafted / items if items else 0.0
    print(f"ClinicalTrials.gov records: {drafted} of {items} criteria items have a draft ({share:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Synthetic trial variants for scale tests: the seed protocols with shifted thresholds and
different look-back windows.

A variant is a copy of a seed protocol document with a new id (``<seed>.vNNN``), a title
and summary that say it is synthetic, no registry number, every numeric threshold of its
rules multiplied by a factor between 0.8 and 1.25 (whole numbers stay whole), and its
look-back windows scaled by ½, ¾, 1½ or 2. Attestations, arms and everything else are the
seed's. Variants are for measuring the engine, never for screening patients.

>>> from trialdesk.protocol.load import default_protocol_dir, read_document
>>> seed = read_document(default_protocol_dir() / "rumcess.yaml")
>>> v = make_variants([seed], 1, seed=0)[0]
>>> v["id"], v["registry"]["identification"]["nct_id"] is None
('RuMCeSS.v001', True)
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from typing import Any

from trialdesk.criteria.ast import (
    And,
    Between,
    Compare,
    Expr,
    Literal,
    Not,
    Or,
    Within,
    to_text,
)
from trialdesk.criteria.parser import parse
from trialdesk.facts.dictionary import FACTS, FactType

WINDOW_FACTORS = (0.5, 0.75, 1.5, 2.0)


def _shift(lit: Literal, factor: float, whole: bool) -> Literal:
    if isinstance(lit.value, bool) or not isinstance(lit.value, float):
        return lit
    value = lit.value * factor
    value = float(round(value)) if whole else float(f"{value:.3g}")
    return Literal(value, lit.unit)


def shift_thresholds(expr: Expr, factor: float) -> Expr:
    """``expr`` with every numeric literal multiplied by ``factor``."""
    match expr:
        case Compare(fact=name, op=op, value=lit, count=count):
            whole = count or (name in FACTS and FACTS[name].type is FactType.INTEGER)
            return Compare(name, op, _shift(lit, factor, whole), count)
        case Between(fact=name, low=lo, high=hi):
            whole = name in FACTS and FACTS[name].type is FactType.INTEGER
            return Between(name, _shift(lo, factor, whole), _shift(hi, factor, whole))
        case Within(fact=name, amount=amount, unit=unit):
            return Within(name, float(max(1, round(amount * factor))), unit)
        case Not(operand=o):
            return Not(shift_thresholds(o, factor))
        case And(operands=ops):
            return And(tuple(shift_thresholds(o, factor) for o in ops))
        case Or(operands=ops):
            return Or(tuple(shift_thresholds(o, factor) for o in ops))
    return expr


def make_variants(seeds: Sequence[dict[str, Any]], count: int, *, seed: int = 0
                  ) -> list[dict[str, Any]]:
    """``count`` variant documents, cycling through ``seeds`` (protocol documents)."""
    out = []
    for k in range(count):
        base = seeds[k % len(seeds)]
        rng = random.Random(seed * 1_000_003 + k)
        doc = copy.deepcopy(base)
        number = k + 1
        doc["id"] = f"{base['id']}.v{number:03d}"
        doc["title"] = f"{base['title']} (synthetic variant {number:03d})"
        registry = doc["registry"]
        ident = registry["identification"]
        ident["nct_id"] = None
        ident["brief_title"] = f"[synthetic variant {number:03d}] {ident['brief_title']}"
        registry["description"]["brief_summary"] = (
            f"Synthetic variant {number:03d} of {base['id']} for scale tests: thresholds "
            "shifted and look-back windows changed. Not a real trial.")
        eligibility = doc["eligibility"]
        scale = rng.choice(WINDOW_FACTORS)
        lookback = eligibility["lookback"]
        lookback["default_days"] = max(1, round(lookback["default_days"] * scale))
        for key in ("by_kind", "by_fact"):
            if lookback.get(key):
                lookback[key] = {k2: max(1, round(v * scale)) for k2, v in lookback[key].items()}
        lookback["source"] = f"synthetic variant: the seed's windows × {scale:g}"
        factor = rng.uniform(0.8, 1.25)
        for kind in ("inclusion", "exclusion"):
            for criterion in eligibility.get(kind, []):
                if criterion.get("rule"):
                    criterion["rule"] = to_text(shift_thresholds(parse(criterion["rule"]), factor))
        out.append(doc)
    return out


__all__ = ["WINDOW_FACTORS", "make_variants", "shift_thresholds"]

"""Release: test results against the protocol's specification, and the signed decision.

Each release test of the product's specification (``products:`` in the protocol file) is
*met*, *not met* or *unknown* (no result, a limit that is not set, a per-kg limit without a
weight, a unit that does not match) — unknown is never taken as met. A product is released
when every test is met and the laboratory's responsible person signs. Otherwise it is not
released, unless an exceptional release is signed by both the investigator and the lab's
responsible person — two different people — with a clinical justification (FACT-JACIE
International Standards for Hematopoietic Cellular Therapy, 8th ed., D7 "release of
products that do not meet release criteria", and EU GMP Part IV for ATMPs §11.5, not
checked). Signatures are values here; the service layer binds them to logged-in users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from trialdesk.cellproduct.product import Product, ProductError
from trialdesk.protocol.model import ProductSpec, ReleaseTest


class Outcome(StrEnum):
    MET = "met"
    NOT_MET = "not met"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TestResult:
    """One result of a release test (``value`` a number in ``unit``, or a word such as
    'no growth'); the latest result of a test counts."""

    __test__ = False  # not a pytest class

    test_id: str
    value: float | str
    tested_at: datetime
    by: str
    unit: str | None = None


@dataclass(frozen=True)
class Verdict:
    test_id: str
    label: str
    outcome: Outcome
    limit: str
    result: str
    reason: str
    unconfirmed: bool


Role = Literal["lab_responsible", "investigator"]


@dataclass(frozen=True)
class Signature:
    """An electronic signature as a value: who, in what role, when, meaning what."""

    signer: str
    role: Role
    signed_at: datetime
    meaning: str


@dataclass(frozen=True)
class ReleaseDecision:
    product: str
    released: bool
    exceptional: bool
    verdicts: tuple[Verdict, ...]
    signatures: tuple[Signature, ...]
    decided_at: datetime
    justification: str | None = None

    @property
    def failures(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.outcome is not Outcome.MET)


def _latest(results: Sequence[TestResult]) -> dict[str, TestResult]:
    out: dict[str, TestResult] = {}
    for r in sorted(results, key=lambda r: r.tested_at):
        out[r.test_id] = r
    return out


def _judge(test: ReleaseTest, result: TestResult | None, weight_kg: float | None) -> tuple[Outcome, str, str]:
    limit = test.limit
    if not limit.is_set:
        return Outcome.UNKNOWN, "", "the protocol sets no limit for this test"
    if result is None:
        return Outcome.UNKNOWN, "", "no result recorded"
    if limit.expected is not None:
        shown = str(result.value)
        ok = isinstance(result.value, str) and result.value.strip().casefold() == limit.expected.casefold()
        return (Outcome.MET, shown, "as expected") if ok else (
            Outcome.NOT_MET, shown, f"expected {limit.expected}")
    if isinstance(result.value, str):
        return Outcome.UNKNOWN, result.value, "a number is needed"
    value = float(result.value)
    wanted_unit = limit.unit.removesuffix("/kg") if (test.per_kg and limit.unit) else limit.unit
    if (result.unit or None) != (wanted_unit or None):
        return Outcome.UNKNOWN, f"{value:g} {result.unit or ''}".strip(), \
            f"recorded in {result.unit or 'no unit'}; the limit needs {wanted_unit}"
    shown = f"{value:g} {result.unit or ''}".strip()
    if test.per_kg:
        if weight_kg is None or weight_kg <= 0:
            return Outcome.UNKNOWN, shown, "the recipient's weight is not known"
        value = value / weight_kg
        shown += f" = {value:.3g} {limit.unit} at {weight_kg:g} kg"
    if limit.minimum is not None and value < limit.minimum:
        return Outcome.NOT_MET, shown, f"below {limit.minimum:g}"
    if limit.maximum is not None and value > limit.maximum:
        return Outcome.NOT_MET, shown, f"above {limit.maximum:g}"
    return Outcome.MET, shown, "within the limit"


def evaluate(spec: ProductSpec, results: Sequence[TestResult], *,
             weight_kg: float | None = None) -> tuple[Verdict, ...]:
    """Each release test of ``spec`` judged on its latest result.

    >>> from trialdesk.protocol.model import SpecLimit
    >>> spec = ProductSpec(id="x", name="x", stage="collection", origin="autologous", source="s",
    ...     release_tests=[ReleaseTest(id="sterility", label="Sterility", kind="sterility",
    ...         limit=SpecLimit(expected="no growth", source="s"))])
    >>> [v.outcome.value for v in evaluate(spec, [])]
    ['unknown']
    """
    known = {t.id for t in spec.release_tests}
    for r in results:
        if r.test_id not in known:
            raise ProductError(f"'{r.test_id}' is not a release test of {spec.name}; tests: "
                               f"{', '.join(sorted(known)) or 'none'}", where="test")
    latest = _latest(results)
    out = []
    for test in spec.release_tests:
        outcome, shown, reason = _judge(test, latest.get(test.id), weight_kg)
        out.append(Verdict(test.id, test.label, outcome, test.limit.shown(), shown, reason,
                           test.limit.unconfirmed))
    return tuple(out)


def _same_spec(product: Product, spec: ProductSpec) -> None:
    if spec.id != product.spec_id:
        raise ProductError(f"product {product.key} is a {product.spec_id}, not a {spec.id}",
                           where="specification")


def _signed_after(product: Product, results: Sequence[TestResult], signed_at: datetime) -> None:
    last = max((r.tested_at for r in results), default=product.prepared_at)
    if signed_at < last:
        raise ProductError(f"signed {signed_at:%Y-%m-%d %H:%M}, before the last result "
                           f"({last:%Y-%m-%d %H:%M})", where="signature")


def decide(product: Product, spec: ProductSpec, results: Sequence[TestResult],
           signature: Signature, *, weight_kg: float | None = None) -> ReleaseDecision:
    """The release decision the lab's responsible person signs: released only if every test
    is met (a specification without tests releases nothing on its own)."""
    if signature.role != "lab_responsible":
        raise ProductError("the release is signed by the laboratory's responsible person",
                           where="signature")
    _same_spec(product, spec)
    _signed_after(product, results, signature.signed_at)
    verdicts = evaluate(spec, results, weight_kg=weight_kg)
    released = bool(verdicts) and all(v.outcome is Outcome.MET for v in verdicts)
    return ReleaseDecision(product.key, released, False, verdicts, (signature,),
                           signature.signed_at)


def exceptional_release(product: Product, spec: ProductSpec, results: Sequence[TestResult],
                        justification: str, signatures: Sequence[Signature], *,
                        weight_kg: float | None = None) -> ReleaseDecision:
    """Release out of specification: a clinical justification and two signatures — the
    investigator and the lab's responsible person, two different people."""
    if not justification.strip():
        raise ProductError("an exceptional release needs the clinical justification",
                           where="justification")
    roles = {s.role: s for s in signatures}
    missing = [r for r in ("investigator", "lab_responsible") if r not in roles]
    if missing or len(signatures) != 2:
        raise ProductError("an exceptional release is signed by the investigator and the lab's "
                           f"responsible person{' (missing: ' + ', '.join(missing) + ')' if missing else ''}",
                           where="signatures")
    if roles["investigator"].signer == roles["lab_responsible"].signer:
        raise ProductError("the two signatures must be two different people", where="signatures")
    _same_spec(product, spec)
    for s in signatures:
        _signed_after(product, results, s.signed_at)
    verdicts = evaluate(spec, results, weight_kg=weight_kg)
    if verdicts and all(v.outcome is Outcome.MET for v in verdicts):
        raise ProductError("the product meets its specification: release it normally",
                           where="exceptional release")
    return ReleaseDecision(product.key, True, True, verdicts, tuple(signatures),
                           max(s.signed_at for s in signatures), justification.strip())


def release_status(chain: Sequence[Product], specs: Mapping[str, ProductSpec],
                   decisions: Sequence[ReleaseDecision]) -> tuple[bool, str]:
    """Whether the last product of ``chain`` (collection first) may be given: every product
    in its line whose specification has release tests — or the product itself when none
    has — carries a positive release decision (the latest decision counts)."""
    latest: dict[str, ReleaseDecision] = {}
    for d in sorted(decisions, key=lambda d: d.decided_at):
        latest[d.product] = d
    unknown = [p.key for p in chain if p.spec_id not in specs]
    if unknown:
        return False, f"{', '.join(unknown)}: not a product type of this protocol"
    needed = [p for p in chain if specs[p.spec_id].release_tests] or [chain[-1]]
    for p in needed:
        found = latest.get(p.key)
        if found is None:
            return False, f"{p.key} ({specs[p.spec_id].name}) has no release decision"
        if not found.released:
            failed = ", ".join(f"{v.label}: {v.outcome.value}" for v in found.failures) or "no tests"
            return False, f"{p.key} ({specs[p.spec_id].name}) was not released ({failed})"
    kinds = ["exceptional" if latest[p.key].exceptional else "released" for p in needed]
    return True, "released" if "exceptional" not in kinds else "released by exceptional release"

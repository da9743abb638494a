"""Randomisation: sealed permuted-block lists, minimisation, concealed allocation, verification.

A protocol declares a :class:`RandomisationScheme`. Before the first patient, the trial
statistician generates an :class:`AllocationList` from the scheme and a recorded seed; the
list carries a SHA-256 digest over its canonical serialisation, so it can be sealed, stored
and later verified. At randomisation, an :class:`Allocator` reveals one allocation at a
time to an enrolled patient; every allocation is an :class:`Allocation` record the caller
appends to the audit trail. :func:`verify_allocations` checks those records against the
list (or, for minimisation, replays the algorithm). Nothing here reads a clock, a file or
a database: the caller passes the time and persists what is returned.

Methods and their sources:

- Permuted blocks within strata, block sizes chosen at random from a declared set so that
  the end of a block cannot be guessed: Matts JP, Lachin JM. Properties of permuted-block
  randomization in clinical trials. Control Clin Trials 1988;9:327–44.
- Minimisation: Pocock SJ, Simon R. Sequential treatment assignment with balancing for
  prognostic factors in the controlled clinical trial. Biometrics 1975;31:103–15.

Random numbers: every stream is ``numpy.random.PCG64`` seeded through
``numpy.random.SeedSequence(seed, spawn_key=...)`` and read only through
``PCG64.random_raw()``. NumPy guarantees that a fixed seed gives PCG64 the same integer
stream in every version; ``Generator`` methods carry no such promise, so integers and coin
flips are derived here from the raw 64-bit words with exact integer arithmetic (rejection
sampling, no floating point). The same scheme and seed therefore give the identical list
on every platform and NumPy version; ``ALGORITHM`` names these rules and is stored in
every list so that a future change cannot silently reinterpret an old one.

RuMCeSS (NCT01849237) in miniature: 1:1, MSC + standard therapy vs standard therapy.

>>> scheme = RandomisationScheme(
...     id="rumcess", arms={"MSC": 1, "SOC": 1}, method="permuted_blocks",
...     block_sizes=(2, 4), strata={"site": ("MSK-01", "MSK-02")})
>>> lst = generate_list(scheme, seed=20130507, size_per_stratum=16)
>>> verify_list(lst).ok
True
>>> allocator = Allocator(lst)
>>> at = datetime.fromisoformat("2013-05-07T09:30:00+00:00")
>>> first, state = allocator.next_allocation(
...     allocator.start(), "P001", {"site": "MSK-01"}, enrolled=True, at=at)
>>> (first.stratum, first.sequence, first.arm in scheme.arms)
('site=MSK-01', 1, True)
>>> verify_allocations(lst, [first]).ok
True
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal, Self

from numpy.random import PCG64, SeedSequence
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StrictInt,
    ValidationError,
    model_validator,
)

from trialdesk.errors import EnrolmentError

__all__ = [
    "ALGORITHM",
    "Allocation",
    "AllocationEntry",
    "AllocationList",
    "AllocationState",
    "Allocator",
    "Discrepancy",
    "RandomisationScheme",
    "VerificationReport",
    "generate_list",
    "imbalance_scores",
    "stratum_key",
    "stratum_keys",
    "verify_allocations",
    "verify_list",
]

ALGORITHM = "trialdesk-randomisation/1"

# Stream keys keep the block streams and the per-patient minimisation streams apart.
_BLOCK_STREAM = 0
_MINIMISATION_STREAM = 1
_TWO_64 = 1 << 64

_FACTOR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Stratum keys are "factor=level|factor=level"; these characters would make them ambiguous.
_KEY_CHARS = ("|", "=")
UNSTRATIFIED = "all"

Counts = dict[str, dict[str, dict[str, int]]]


# ---------------------------------------------------------------------------- scheme


class RandomisationScheme(BaseModel):
    """How a protocol randomises: arms with their ratio and one of two methods.

    ``permuted_blocks`` uses ``block_sizes`` (total block sizes, each a multiple of the
    ratio sum, one chosen at random per block) and optional ``strata`` (factor → levels;
    one list per combination of levels). ``minimisation`` uses ``factors`` (factor →
    levels), optional ``factor_weights``, ``imbalance`` ("range" or "variance") and
    ``preferred_probability`` (the chance of giving the arm that minimises imbalance).
    Fields of the other method must be left out. A bad definition raises
    :class:`EnrolmentError` whose ``where`` names the field.

    >>> RandomisationScheme(id="x", arms={"A": 2, "B": 1}, method="permuted_blocks",
    ...                     block_sizes=(3, 6)).ratio_sum
    3
    >>> RandomisationScheme(id="x", arms={"A": 1, "B": 0}, method="permuted_blocks",
    ...                     block_sizes=(2,))
    Traceback (most recent call last):
    ...
    trialdesk.errors.EnrolmentError: randomisation.arms.B: ratio must be a whole number ≥ 1, got 0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    arms: dict[str, StrictInt]
    method: Literal["permuted_blocks", "minimisation"]
    block_sizes: tuple[StrictInt, ...] = ()
    strata: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    factors: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    factor_weights: dict[str, float] = Field(default_factory=dict)
    imbalance: Literal["range", "variance"] | None = None
    preferred_probability: float | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_with_field(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # Type errors (a ratio of "one", an unknown key) become the same EnrolmentError
        # as rule errors, so every bad scheme is reported one way, with its field.
        try:
            return handler(data)
        except ValidationError as exc:
            first, *rest = exc.errors()
            where = "randomisation." + ".".join(str(p) for p in first["loc"])
            more = f" (and {len(rest)} more problem(s))" if rest else ""
            raise EnrolmentError(first["msg"] + more, where=where) from None

    @model_validator(mode="after")
    def _check(self) -> Self:
        def refuse(field: str, reason: str) -> EnrolmentError:
            return EnrolmentError(reason, where=f"randomisation.{field}")

        if not self.id.strip():
            raise refuse("id", "must not be empty")
        if len(self.arms) < 2:
            raise refuse("arms", f"needs at least two arms, got {len(self.arms)}")
        for arm, ratio in self.arms.items():
            if not arm.strip():
                raise refuse("arms", "arm names must not be empty")
            if ratio < 1:
                raise refuse(f"arms.{arm}", f"ratio must be a whole number ≥ 1, got {ratio}")
        if self.method == "permuted_blocks":
            own = "strata"
            for field in ("factors", "factor_weights", "imbalance", "preferred_probability"):
                if getattr(self, field):
                    raise refuse(field, "applies only to method 'minimisation'")
            self._check_blocks(refuse)
        else:
            own = "factors"
            for field in ("strata", "block_sizes"):
                if getattr(self, field):
                    raise refuse(field, "applies only to method 'permuted_blocks'")
            self._check_minimisation(refuse)
        for factor, levels in getattr(self, own).items():
            _check_factor(own, factor, levels, refuse)
        return self

    def _check_blocks(self, refuse: Any) -> None:
        if not self.block_sizes:
            raise refuse("block_sizes", "permuted blocks need at least one block size")
        if len(set(self.block_sizes)) != len(self.block_sizes):
            # A repeated size would silently make that size more likely than declared.
            raise refuse("block_sizes", f"sizes repeat: {list(self.block_sizes)}")
        for i, size in enumerate(self.block_sizes):
            if size < 1 or size % self.ratio_sum:
                raise refuse(
                    f"block_sizes.{i}",
                    f"block size {size} is not a positive multiple of the ratio sum "
                    f"{self.ratio_sum} ({_ratio_text(self.arms)})",
                )

    def _check_minimisation(self, refuse: Any) -> None:
        if not self.factors:
            raise refuse("factors", "minimisation needs at least one factor")
        if self.imbalance is None:
            raise refuse("imbalance", "minimisation needs an imbalance measure: range or variance")
        p = self.preferred_probability
        if p is None:
            raise refuse("preferred_probability", "minimisation needs a probability, e.g. 0.8")
        # Pocock & Simon (1975) require p > 1/N: otherwise the 'preferred' arm is no
        # more likely than any other and the method does not balance at all.
        if not (math.isfinite(p) and 1 / len(self.arms) < p <= 1):
            raise refuse(
                "preferred_probability",
                f"must be above 1/{len(self.arms)} and at most 1, got {p}",
            )
        for factor, weight in self.factor_weights.items():
            if factor not in self.factors:
                raise refuse(f"factor_weights.{factor}", "is not one of the factors")
            if not (math.isfinite(weight) and weight > 0):
                raise refuse(f"factor_weights.{factor}", f"must be above 0, got {weight}")

    @property
    def ratio_sum(self) -> int:
        """Sum of the allocation ratios: the smallest balanced block."""
        return sum(self.arms.values())

    @property
    def balancing_factors(self) -> dict[str, tuple[str, ...]]:
        """The strata (permuted blocks) or the minimisation factors."""
        return self.strata if self.method == "permuted_blocks" else self.factors


def _check_factor(field: str, factor: str, levels: Sequence[str], refuse: Any) -> None:
    if not _FACTOR_NAME.match(factor):
        raise refuse(f"{field}.{factor}", "factor names are letters, digits and _")
    if not levels:
        raise refuse(f"{field}.{factor}", "needs at least one level")
    if len(set(levels)) != len(levels):
        raise refuse(f"{field}.{factor}", f"levels repeat: {list(levels)}")
    for level in levels:
        if not level.strip() or level != level.strip() or any(c in level for c in _KEY_CHARS):
            raise refuse(
                f"{field}.{factor}",
                f"level {level!r} must be non-empty, without outer spaces, '|' or '='",
            )


def _ratio_text(arms: Mapping[str, int]) -> str:
    return ":".join(str(r) for r in arms.values()) + " for " + "/".join(arms)


def stratum_keys(scheme: RandomisationScheme) -> tuple[str, ...]:
    """Every stratum of a scheme, in list order (the cartesian product of levels).

    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="permuted_blocks",
    ...     block_sizes=(2,), strata={"site": ("S1", "S2"), "sex": ("F", "M")})
    >>> stratum_keys(s)
    ('site=S1|sex=F', 'site=S1|sex=M', 'site=S2|sex=F', 'site=S2|sex=M')
    """
    factors = scheme.balancing_factors
    combos = itertools.product(*factors.values())
    return tuple(_key(dict(zip(factors, combo, strict=True))) for combo in combos)


def stratum_key(scheme: RandomisationScheme, values: Mapping[str, str]) -> str:
    """The stratum of a patient, refusing a missing, unknown or extra factor or level.

    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="permuted_blocks",
    ...     block_sizes=(2,), strata={"site": ("MSK-01", "MSK-02")})
    >>> stratum_key(s, {"site": "MSK-02"})
    'site=MSK-02'
    >>> stratum_key(s, {"site": "MSK-03"})
    Traceback (most recent call last):
    ...
    trialdesk.errors.EnrolmentError: strata.site: unknown level 'MSK-03'; expected one of \
MSK-01, MSK-02 (did you mean 'MSK-02'?)
    """
    factors = scheme.balancing_factors
    field = "strata" if scheme.method == "permuted_blocks" else "factors"
    for name in values:
        if name not in factors:
            raise EnrolmentError(
                f"unknown factor {name!r}; the scheme declares {', '.join(factors) or 'none'}",
                where=f"{field}.{name}",
            )
    for name, levels in factors.items():
        if name not in values:
            raise EnrolmentError("missing: the scheme needs this factor", where=f"{field}.{name}")
        if values[name] not in levels:
            near = difflib.get_close_matches(str(values[name]), levels, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise EnrolmentError(
                f"unknown level {values[name]!r}; expected one of {', '.join(levels)}{hint}",
                where=f"{field}.{name}",
            )
    return _key({name: values[name] for name in factors})


def _key(levels: Mapping[str, str]) -> str:
    return "|".join(f"{f}={v}" for f, v in levels.items()) or UNSTRATIFIED


# ---------------------------------------------------------------------------- random source


class _Draws:
    """Exact integers and coin flips from one PCG64 stream (see the module docstring)."""

    def __init__(self, seed: int, key: tuple[int, ...]) -> None:
        self._bits = PCG64(SeedSequence(seed, spawn_key=key))

    def _word(self) -> int:
        return int(self._bits.random_raw())

    def below(self, n: int) -> int:
        """Uniform on 0..n-1; rejection sampling keeps it unbiased for any n."""
        limit = _TWO_64 - _TWO_64 % n
        while (word := self._word()) >= limit:
            pass
        return word % n

    def chance(self, p: float) -> bool:
        """True with probability p, compared exactly (53-bit uniform vs the float p)."""
        return Fraction(self._word() >> 11, 1 << 53) < Fraction(p)

    def weighted(self, choices: Sequence[str], weights: Mapping[str, int]) -> str:
        """One of ``choices`` with probability proportional to its integer weight."""
        draw = self.below(sum(weights[c] for c in choices))
        for choice in choices:
            draw -= weights[choice]
            if draw < 0:
                return choice
        raise AssertionError("unreachable: draw is below the weight total")


# ---------------------------------------------------------------------------- the list


class AllocationEntry(BaseModel):
    """One line of a permuted-block list; ``sequence`` and ``block`` count from 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stratum: str
    sequence: int
    block: int
    block_size: int
    arm: str


class AllocationList(BaseModel):
    """A generated list, sealed by ``digest`` (SHA-256 over scheme, seed, size and entries).

    For minimisation there are no entries: the seed drives the random choices and
    ``size_per_stratum`` is the most patients the list may randomise. ``entries`` is kept
    out of ``repr`` so that logging a list never prints the allocations.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: str
    scheme: RandomisationScheme
    seed: int
    size_per_stratum: int
    entries: tuple[AllocationEntry, ...] = Field(repr=False)
    digest: str


def _canonical(
    algorithm: str,
    scheme: RandomisationScheme,
    seed: int,
    size: int,
    entries: Sequence[AllocationEntry],
) -> bytes:
    # Key order is kept, not sorted: arm, factor and level order decide the list, so a
    # reordered scheme must give a different digest. JSON floats use Python's shortest
    # round-trip repr, which is the same on every platform.
    body = {
        "algorithm": algorithm,
        "scheme": scheme.model_dump(mode="json"),
        "seed": seed,
        "size_per_stratum": size,
        "entries": [e.model_dump(mode="json") for e in entries],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _digest_of(lst: AllocationList) -> str:
    canonical = _canonical(lst.algorithm, lst.scheme, lst.seed, lst.size_per_stratum, lst.entries)
    return hashlib.sha256(canonical).hexdigest()


def generate_list(scheme: RandomisationScheme, seed: int, size_per_stratum: int) -> AllocationList:
    """Generate and seal the list; the same scheme and seed always give the same list.

    Each stratum gets its own stream (``SeedSequence(seed, spawn_key=(0, stratum index))``),
    filled with whole blocks until it holds at least ``size_per_stratum`` entries: a
    truncated last block would be unbalanced (Matts & Lachin 1988). Each block's size is
    drawn uniformly from ``scheme.block_sizes``; its arms are the ratio repeated and
    shuffled (Fisher–Yates).

    >>> s = RandomisationScheme(id="x", arms={"A": 2, "B": 1}, method="permuted_blocks",
    ...                         block_sizes=(3, 6))
    >>> lst = generate_list(s, seed=7, size_per_stratum=10)
    >>> len(lst.entries) >= 10 and lst == generate_list(s, seed=7, size_per_stratum=10)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise EnrolmentError(f"must be a whole number ≥ 0, got {seed!r}", where="seed")
    if isinstance(size_per_stratum, bool) or not isinstance(size_per_stratum, int):
        raise EnrolmentError(f"must be a whole number, got {size_per_stratum!r}",
                             where="size_per_stratum")
    if size_per_stratum < 1:
        raise EnrolmentError(f"must be ≥ 1, got {size_per_stratum}", where="size_per_stratum")
    entries: list[AllocationEntry] = []
    if scheme.method == "permuted_blocks":
        for index, key in enumerate(stratum_keys(scheme)):
            entries.extend(_stratum_blocks(scheme, seed, index, key, size_per_stratum))
    canonical = _canonical(ALGORITHM, scheme, seed, size_per_stratum, entries)
    return AllocationList(
        algorithm=ALGORITHM,
        scheme=scheme,
        seed=seed,
        size_per_stratum=size_per_stratum,
        entries=tuple(entries),
        digest=hashlib.sha256(canonical).hexdigest(),
    )


def _stratum_blocks(
    scheme: RandomisationScheme, seed: int, index: int, key: str, size: int
) -> list[AllocationEntry]:
    draws = _Draws(seed, (_BLOCK_STREAM, index))
    unit = [arm for arm, ratio in scheme.arms.items() for _ in range(ratio)]
    out: list[AllocationEntry] = []
    block = 0
    while len(out) < size:
        block += 1
        block_size = scheme.block_sizes[draws.below(len(scheme.block_sizes))]
        arms = unit * (block_size // scheme.ratio_sum)
        for i in range(len(arms) - 1, 0, -1):
            j = draws.below(i + 1)
            arms[i], arms[j] = arms[j], arms[i]
        start = len(out)
        out.extend(
            AllocationEntry(
                stratum=key, sequence=start + n, block=block, block_size=block_size, arm=arm
            )
            for n, arm in enumerate(arms, start=1)
        )
    return out


# ---------------------------------------------------------------------------- minimisation


def imbalance_scores(
    scheme: RandomisationScheme, counts: Mapping[str, Mapping[str, Mapping[str, int]]],
    levels: Mapping[str, str],
) -> dict[str, Fraction]:
    """Pocock & Simon's total imbalance G_k if the next patient went to arm k.

    For each factor i, take the counts of patients already allocated at the new
    patient's level, add the patient to arm k, divide each arm's count by its ratio
    (so a 2:1 trial is balanced at 2:1), and measure the spread d_ik ("range": max − min;
    "variance": population variance). G_k = Σ_i w_i · d_ik (Pocock & Simon 1975, §3).
    Exact fractions, so ties are ties on every platform.

    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="minimisation",
    ...     factors={"sex": ("F", "M")}, imbalance="range", preferred_probability=0.8)
    >>> scores = imbalance_scores(s, {"sex": {"F": {"A": 3, "B": 1}}}, {"sex": "F"})
    >>> {arm: int(g) for arm, g in scores.items()}
    {'A': 3, 'B': 1}
    """
    scores: dict[str, Fraction] = {}
    for arm in scheme.arms:
        total = Fraction(0)
        for factor, level in levels.items():
            row = counts.get(factor, {}).get(level, {})
            adjusted = [
                Fraction(row.get(a, 0) + (a == arm), ratio) for a, ratio in scheme.arms.items()
            ]
            if scheme.imbalance == "variance":
                mean = sum(adjusted, Fraction(0)) / len(adjusted)
                spread = sum(((x - mean) ** 2 for x in adjusted), Fraction(0)) / len(adjusted)
            else:
                spread = max(adjusted) - min(adjusted)
            total += Fraction(scheme.factor_weights.get(factor, 1.0)) * spread
        scores[arm] = total
    return scores


def _minimise(lst: AllocationList, index: int, counts: Counts, levels: Mapping[str, str]) -> str:
    # One stream per patient (by allocation order), so the draws one patient uses cannot
    # shift those of the next and a replay needs only the seed and the logged factors.
    scheme = lst.scheme
    draws = _Draws(lst.seed, (_MINIMISATION_STREAM, index))
    scores = imbalance_scores(scheme, counts, levels)
    best = min(scores.values())
    tied = [arm for arm in scheme.arms if scores[arm] == best]
    # Ties (always the first patient) are broken at random, weighted by the ratio so
    # that early patients follow the declared allocation ratio.
    preferred = draws.weighted(tied, scheme.arms)
    if len(tied) == len(scheme.arms):
        return preferred
    assert scheme.preferred_probability is not None  # guaranteed by the scheme check
    if draws.chance(scheme.preferred_probability):
        return preferred
    # Pocock & Simon's simplest rule: the other arms share 1 − p equally.
    others = [arm for arm in scheme.arms if arm != preferred]
    return others[draws.below(len(others))]


def _counted(counts: Counts, levels: Mapping[str, str], arm: str) -> Counts:
    new = {factor: {lv: dict(row) for lv, row in by_level.items()}
           for factor, by_level in counts.items()}
    for factor, level in levels.items():
        row = new.setdefault(factor, {}).setdefault(level, {})
        row[arm] = row.get(arm, 0) + 1
    return new


# ---------------------------------------------------------------------------- allocation


class Allocation(BaseModel):
    """One randomisation, as written to the audit trail.

    Block number and size are left out on purpose: a site that sees block boundaries
    can predict the last allocations of each block (Matts & Lachin 1988).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    patient_id: str
    stratum: str
    sequence: int
    arm: str
    factors: dict[str, str]
    allocated_at: datetime
    list_digest: str


class AllocationState(BaseModel):
    """What has been used so far: never the entries still to come.

    The caller persists it with each allocation and passes it back for the next one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    list_digest: str
    allocated: int = 0
    used: dict[str, int] = Field(default_factory=dict)
    patients: frozenset[str] = frozenset()
    factor_counts: Counts = Field(default_factory=dict)
    last_at: datetime | None = None


class Allocator:
    """Reveals the next allocation of a verified list, one enrolled patient at a time.

    The list is held privately and nothing public returns an entry before it is
    allocated: the only ways out are :meth:`next_allocation` (this patient's allocation)
    and :meth:`start` (an empty state). Construction refuses a list that fails
    :func:`verify_list`.

    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="permuted_blocks",
    ...                         block_sizes=(2,))
    >>> allocator = Allocator(generate_list(s, seed=1, size_per_stratum=2))
    >>> at = datetime.fromisoformat("2024-01-01T00:00:00+00:00")
    >>> a1, state = allocator.next_allocation(allocator.start(), "P1", {}, enrolled=True, at=at)
    >>> a2, state = allocator.next_allocation(state, "P2", {}, enrolled=True, at=at)
    >>> sorted([a1.arm, a2.arm])
    ['A', 'B']
    """

    __slots__ = ("_entries", "_list")

    def __init__(self, allocation_list: AllocationList) -> None:
        report = verify_list(allocation_list)
        if not report.ok:
            raise EnrolmentError(
                f"allocation list failed verification with {len(report.discrepancies)} "
                f"problem(s); first: {report.discrepancies[0].problem}",
                where=f"allocation list {allocation_list.digest[:12]}",
            )
        self._list = allocation_list
        self._entries: dict[str, list[AllocationEntry]] = {}
        for entry in allocation_list.entries:
            self._entries.setdefault(entry.stratum, []).append(entry)

    def __repr__(self) -> str:
        return f"Allocator(scheme={self._list.scheme.id!r}, list_digest={self.list_digest!r})"

    @property
    def list_digest(self) -> str:
        """The digest of the list in use, recorded in every allocation."""
        return self._list.digest

    def start(self) -> AllocationState:
        """The state before the first patient."""
        return AllocationState(list_digest=self._list.digest)

    def next_allocation(
        self,
        state: AllocationState,
        patient_id: str,
        factors: Mapping[str, str],
        *,
        enrolled: bool,
        at: datetime,
    ) -> tuple[Allocation, AllocationState]:
        """Randomise one enrolled patient; return the allocation and the new state.

        ``factors`` gives the patient's level of every stratification (or minimisation)
        factor; ``at`` is the time of randomisation (timezone-aware, not earlier than the
        previous allocation). Refused: a patient who is not enrolled, a patient already
        randomised, an unknown factor or level, a state from another list, and a
        stratum whose list is used up.
        """
        scheme = self._list.scheme
        where = f"patient {patient_id}"
        if state.list_digest != self._list.digest:
            raise EnrolmentError(
                f"state belongs to list {state.list_digest[:12]}, not {self._list.digest[:12]}",
                where="state.list_digest",
            )
        if not patient_id.strip():
            raise EnrolmentError("must not be empty", where="patient_id")
        if not enrolled:
            raise EnrolmentError("is not enrolled; only enrolled patients are randomised",
                                 where=where)
        if patient_id in state.patients:
            raise EnrolmentError("is already randomised; a patient is randomised once",
                                 where=where)
        if at.tzinfo is None or at.utcoffset() is None:
            raise EnrolmentError("time of randomisation needs a timezone", where="at")
        if state.last_at is not None and at < state.last_at:
            raise EnrolmentError(
                f"{at.isoformat()} is before the previous allocation "
                f"({state.last_at.isoformat()})", where="at")
        key = stratum_key(scheme, factors)
        levels = {name: factors[name] for name in scheme.balancing_factors}
        updates: dict[str, Any] = {
            "allocated": state.allocated + 1,
            "patients": state.patients | {patient_id},
            "last_at": at,
        }
        if scheme.method == "permuted_blocks":
            used = state.used.get(key, 0)
            entries = self._entries.get(key, [])
            if used >= len(entries):
                raise EnrolmentError(
                    f"the allocation list for stratum {key} is used up ({len(entries)} "
                    f"entries); a further list must be generated and verified",
                    where=where)
            arm, sequence = entries[used].arm, used + 1
            updates["used"] = {**state.used, key: sequence}
        else:
            if state.allocated >= self._list.size_per_stratum:
                raise EnrolmentError(
                    f"the minimisation list is used up ({self._list.size_per_stratum} "
                    f"patients); a further list must be generated and verified",
                    where=where)
            arm = _minimise(self._list, state.allocated, state.factor_counts, levels)
            sequence = state.allocated + 1
            updates["factor_counts"] = _counted(state.factor_counts, levels, arm)
        allocation = Allocation(
            patient_id=patient_id, stratum=key, sequence=sequence, arm=arm, factors=levels,
            allocated_at=at, list_digest=self._list.digest,
        )
        return allocation, state.model_copy(update=updates)


# ---------------------------------------------------------------------------- verification


class Discrepancy(BaseModel):
    """One problem found by verification; ``patient_id`` is set for allocation problems."""

    model_config = ConfigDict(frozen=True)

    problem: str
    patient_id: str | None = None
    stratum: str | None = None
    sequence: int | None = None


class VerificationReport(BaseModel):
    """The outcome of :func:`verify_list` or :func:`verify_allocations`."""

    model_config = ConfigDict(frozen=True)

    list_digest: str
    entries_checked: int
    allocations_checked: int = 0
    discrepancies: tuple[Discrepancy, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.discrepancies


def verify_list(allocation_list: AllocationList) -> VerificationReport:
    """Recompute the digest and regenerate the list from its seed; report every difference.

    The digest catches any change to scheme, seed or entries; regeneration also catches a
    list whose digest was recomputed after an edit, and says which entry differs.

    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="permuted_blocks",
    ...                         block_sizes=(2,))
    >>> lst = generate_list(s, seed=1, size_per_stratum=4)
    >>> verify_list(lst.model_copy(update={"seed": 2})).ok
    False
    """
    lst = allocation_list
    found: list[Discrepancy] = []
    if lst.algorithm != ALGORITHM:
        found.append(Discrepancy(problem=f"unknown algorithm {lst.algorithm!r}; this "
                                         f"version regenerates {ALGORITHM!r} only"))
    recomputed = _digest_of(lst)
    if recomputed != lst.digest:
        found.append(Discrepancy(
            problem=f"digest mismatch: recorded {lst.digest}, recomputed {recomputed}; "
                    f"the list was changed after it was generated"))
    if lst.algorithm == ALGORITHM:
        found.extend(_regeneration_problems(lst))
    return VerificationReport(
        list_digest=lst.digest, entries_checked=len(lst.entries), discrepancies=tuple(found)
    )


def _regeneration_problems(lst: AllocationList) -> list[Discrepancy]:
    try:
        # Re-validate the scheme: a stored list may have been edited into an invalid one.
        scheme = RandomisationScheme.model_validate(lst.scheme.model_dump())
        expected = generate_list(scheme, lst.seed, lst.size_per_stratum).entries
    except EnrolmentError as exc:
        return [Discrepancy(problem=f"cannot regenerate the list: {exc}")]
    want = {(e.stratum, e.sequence): e for e in expected}
    have: dict[tuple[str, int], AllocationEntry] = {}
    found: list[Discrepancy] = []
    for e in lst.entries:
        key = (e.stratum, e.sequence)
        if key in have:
            found.append(Discrepancy(problem="entry appears more than once",
                                     stratum=e.stratum, sequence=e.sequence))
        elif key not in want:
            found.append(Discrepancy(problem="entry is not produced by the seed",
                                     stratum=e.stratum, sequence=e.sequence))
        elif e != want[key]:
            w = want[key]
            found.append(Discrepancy(
                problem=f"entry differs from the seed: arm {e.arm}, block {e.block} of "
                        f"{e.block_size}; expected arm {w.arm}, block {w.block} of {w.block_size}",
                stratum=e.stratum, sequence=e.sequence))
        have.setdefault(key, e)
    for key in want.keys() - have.keys():
        found.append(Discrepancy(problem="entry is missing", stratum=key[0], sequence=key[1]))
    if not found and [(e.stratum, e.sequence) for e in lst.entries] != list(want):
        found.append(Discrepancy(problem="entries are out of order"))
    return sorted(found, key=lambda d: (d.stratum or "", d.sequence or 0))


def verify_allocations(
    allocation_list: AllocationList, log_entries: Sequence[Allocation]
) -> VerificationReport:
    """Check every logged allocation, in log order, against the list (or replay).

    Permuted blocks: each allocation must take the next unused entry of its stratum
    (no entry skipped or reused), its stratum must follow from its factors, and its arm
    must equal the list. Minimisation: the algorithm is replayed from the seed and the
    logged factors; each logged arm must equal the replayed one. The replay continues
    with the replayed arm, so an edited record is reported alone. Every record must carry
    the list's digest; the list itself is checked with :func:`verify_list`.

    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="permuted_blocks",
    ...                         block_sizes=(2,))
    >>> lst = generate_list(s, seed=1, size_per_stratum=2)
    >>> allocator = Allocator(lst)
    >>> at = datetime.fromisoformat("2024-01-01T00:00:00+00:00")
    >>> a1, _ = allocator.next_allocation(allocator.start(), "P1", {}, enrolled=True, at=at)
    >>> report = verify_allocations(lst, [a1.model_copy(update={"sequence": 2})])
    >>> [d.problem[:31] for d in report.discrepancies]
    ['claims entry 2; the next unused', 'arm A differs from the list (B)']
    """
    lst = allocation_list
    found = list(verify_list(lst).discrepancies)
    scheme = lst.scheme
    by_key = {(e.stratum, e.sequence): e for e in lst.entries}
    next_free: dict[str, int] = {}
    taken: dict[tuple[str, int], str] = {}
    seen: set[str] = set()
    counts: Counts = {}
    previous_at: datetime | None = None
    for position, rec in enumerate(log_entries, start=1):
        def note(problem: str, rec: Allocation = rec) -> None:
            found.append(Discrepancy(problem=problem, patient_id=rec.patient_id,
                                     stratum=rec.stratum, sequence=rec.sequence))

        if rec.list_digest != lst.digest:
            note(f"made from list {rec.list_digest[:12]}, not {lst.digest[:12]}")
        if rec.patient_id in seen:
            note("patient randomised more than once")
        seen.add(rec.patient_id)
        if previous_at is not None and rec.allocated_at < previous_at:
            note("allocation time is earlier than the previous allocation")
        previous_at = rec.allocated_at
        try:
            key = stratum_key(scheme, rec.factors)
        except EnrolmentError as exc:
            note(f"factors do not fit the scheme: {exc}")
            continue
        if key != rec.stratum:
            note(f"logged stratum {rec.stratum} but the factors give {key}")
        if scheme.method == "permuted_blocks":
            expected = next_free.get(rec.stratum, 0) + 1
            other = taken.get((rec.stratum, rec.sequence))
            if other is not None:
                note(f"entry {rec.sequence} was already used by patient {other}")
            elif rec.sequence != expected:
                note(f"claims entry {rec.sequence}; the next unused entry was {expected}"
                     + (" (entries skipped)" if rec.sequence > expected else ""))
            taken.setdefault((rec.stratum, rec.sequence), rec.patient_id)
            next_free[rec.stratum] = max(next_free.get(rec.stratum, 0), rec.sequence)
            entry = by_key.get((rec.stratum, rec.sequence))
            if entry is None:
                note(f"the list has no entry {rec.sequence} in stratum {rec.stratum}")
            elif entry.arm != rec.arm:
                note(f"arm {rec.arm} differs from the list ({entry.arm})")
        else:
            if rec.sequence != position:
                note(f"sequence {rec.sequence} but this is allocation {position} in the log")
            if position > lst.size_per_stratum:
                note(f"beyond the list's {lst.size_per_stratum} patients")
            levels = {name: rec.factors[name] for name in scheme.factors}
            arm = _minimise(lst, position - 1, counts, levels)
            if arm != rec.arm:
                note(f"arm {rec.arm} differs from the replayed minimisation ({arm})")
            counts = _counted(counts, levels, arm)
    return VerificationReport(
        list_digest=lst.digest,
        entries_checked=len(lst.entries),
        allocations_checked=len(log_entries),
        discrepancies=tuple(found),
    )

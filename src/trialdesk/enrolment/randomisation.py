"""Randomisation schemes and sealed allocation lists: permuted blocks and minimisation.

A protocol declares a :class:`RandomisationScheme`. Before the first patient, the trial
statistician generates an :class:`AllocationList` from the scheme and a recorded seed; the
list carries a SHA-256 digest over its canonical serialisation, so it can be sealed,
stored and later checked with :func:`verify_list`, which also regenerates it from the
seed. Allocating from the list, one enrolled patient at a time, and auditing the
allocations made is :mod:`trialdesk.enrolment.allocation`. Nothing here reads a clock,
a file or a database: the caller persists what is returned.

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
sampling, exact fractions). The same scheme and seed therefore give the identical list on
every platform and NumPy version; ``ALGORITHM`` names these rules and is stored in every
list so that a future change cannot silently reinterpret an old one.

RuMCeSS (NCT01849237) in miniature: 1:1, MSC + standard therapy vs standard therapy.

>>> scheme = RandomisationScheme(
...     id="rumcess", arms={"MSC": 1, "SOC": 1}, method="permuted_blocks",
...     block_sizes=(2, 4), strata={"site": ("MSK-01", "MSK-02")})
>>> lst = generate_list(scheme, seed=20130507, size_per_stratum=16)
>>> verify_list(lst).ok
True
>>> verify_list(lst.model_copy(update={"seed": 1})).ok
False
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
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
    "AllocationEntry",
    "AllocationList",
    "Counts",
    "Discrepancy",
    "RandomisationScheme",
    "VerificationReport",
    "generate_list",
    "imbalance_scores",
    "minimisation_arm",
    "stratum_key",
    "stratum_keys",
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

# Patients allocated so far, factor → level → arm → number: all minimisation needs to know.
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

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

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
        if not self.id.strip():
            raise _refuse("id", "must not be empty")
        if len(self.arms) < 2:
            raise _refuse("arms", f"needs at least two arms, got {len(self.arms)}")
        for arm, ratio in self.arms.items():
            if not arm.strip():
                raise _refuse("arms", "arm names must not be empty")
            if ratio < 1:
                raise _refuse(f"arms.{arm}", f"ratio must be a whole number ≥ 1, got {ratio}")
        if self.method == "permuted_blocks":
            own = "strata"
            for field in ("factors", "factor_weights", "imbalance", "preferred_probability"):
                if getattr(self, field):
                    raise _refuse(field, "applies only to method 'minimisation'")
            self._check_blocks()
        else:
            own = "factors"
            for field in ("strata", "block_sizes"):
                if getattr(self, field):
                    raise _refuse(field, "applies only to method 'permuted_blocks'")
            self._check_minimisation()
        for factor, levels in getattr(self, own).items():
            _check_factor(own, factor, levels)
        return self

    def _check_blocks(self) -> None:
        if not self.block_sizes:
            raise _refuse("block_sizes", "permuted blocks need at least one block size")
        if len(set(self.block_sizes)) != len(self.block_sizes):
            # A repeated size would silently make that size more likely than declared.
            raise _refuse("block_sizes", f"sizes repeat: {list(self.block_sizes)}")
        for i, size in enumerate(self.block_sizes):
            if size < 1 or size % self.ratio_sum:
                raise _refuse(
                    f"block_sizes.{i}",
                    f"block size {size} is not a positive multiple of the ratio sum "
                    f"{self.ratio_sum} ({_ratio_text(self.arms)})",
                )

    def _check_minimisation(self) -> None:
        if not self.factors:
            raise _refuse("factors", "minimisation needs at least one factor")
        if self.imbalance is None:
            raise _refuse("imbalance", "minimisation needs an imbalance measure: range or variance")
        p = self.preferred_probability
        if p is None:
            raise _refuse("preferred_probability", "minimisation needs a probability, e.g. 0.8")
        # Pocock & Simon (1975) require p > 1/N: otherwise the 'preferred' arm is no
        # more likely than any other and the method does not balance at all.
        if not (math.isfinite(p) and 1 / len(self.arms) < p <= 1):
            raise _refuse(
                "preferred_probability",
                f"must be above 1/{len(self.arms)} and at most 1, got {p}",
            )
        for factor, weight in self.factor_weights.items():
            if factor not in self.factors:
                raise _refuse(f"factor_weights.{factor}", "is not one of the factors")
            if not (math.isfinite(weight) and weight > 0):
                raise _refuse(f"factor_weights.{factor}", f"must be above 0, got {weight}")

    @property
    def ratio_sum(self) -> int:
        """Sum of the allocation ratios: the smallest balanced block."""
        return sum(self.arms.values())

    @property
    def balancing_factors(self) -> dict[str, tuple[str, ...]]:
        """The strata (permuted blocks) or the minimisation factors."""
        return self.strata if self.method == "permuted_blocks" else self.factors


def _refuse(field: str, reason: str) -> EnrolmentError:
    return EnrolmentError(reason, where=f"randomisation.{field}")


def _check_factor(field: str, factor: str, levels: Sequence[str]) -> None:
    if not _FACTOR_NAME.match(factor):
        raise _refuse(f"{field}.{factor}", "factor names are letters, digits and _")
    if not levels:
        raise _refuse(f"{field}.{factor}", "needs at least one level")
    if len(set(levels)) != len(levels):
        raise _refuse(f"{field}.{factor}", f"levels repeat: {list(levels)}")
    for level in levels:
        if not level.strip() or level != level.strip() or any(c in level for c in _KEY_CHARS):
            raise _refuse(
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

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

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

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

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

    Permuted blocks: each stratum gets its own PCG64 stream
    (``SeedSequence(seed, spawn_key=(0, stratum index))``), filled with whole blocks until
    it holds at least ``size_per_stratum`` entries: a truncated last block would be
    unbalanced (Matts & Lachin 1988). Each block's size is drawn uniformly from
    ``scheme.block_sizes``; its arms are the ratio repeated and shuffled (Fisher–Yates).
    Minimisation: the list has no entries, only the seed, and ``size_per_stratum`` is the
    number of patients it may randomise. The seed is a secret of the trial statistician:
    whoever has it can compute the list.

    >>> s = RandomisationScheme(id="x", arms={"A": 2, "B": 1}, method="permuted_blocks",
    ...                         block_sizes=(3, 6))
    >>> lst = generate_list(s, seed=7, size_per_stratum=10)
    >>> len(lst.entries) >= 10 and lst == generate_list(s, seed=7, size_per_stratum=10)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise EnrolmentError(f"must be a whole number ≥ 0, got {seed!r}", where="seed")
    if isinstance(size_per_stratum, bool) or not isinstance(size_per_stratum, int):
        raise EnrolmentError(
            f"must be a whole number, got {size_per_stratum!r}", where="size_per_stratum"
        )
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
    scheme: RandomisationScheme,
    counts: Mapping[str, Mapping[str, Mapping[str, int]]],
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


def minimisation_arm(
    allocation_list: AllocationList,
    index: int,
    counts: Mapping[str, Mapping[str, Mapping[str, int]]],
    levels: Mapping[str, str],
) -> str:
    """The arm minimisation gives the patient at 0-based position ``index``.

    ``counts`` are the patients allocated before (factor → level → arm → number) and
    ``levels`` the patient's level of every factor. The arm with the lowest
    :func:`imbalance_scores` is preferred; ties, and so the first patient, are broken at
    random (weighted by the ratio); the preferred arm is given with probability
    ``preferred_probability`` and otherwise one of the other arms, equally likely
    (Pocock & Simon 1975, §3). The random draws come from the list's seed and ``index``
    only, so the same seed and the same patients in the same order give the same arms.
    Callers allocate through :class:`trialdesk.enrolment.allocation.Allocator`; this
    function is public so that an allocation history can be replayed.

    With unequal ratios the counts are divided by the ratio; the overall ratio then stays
    close to the declared one but is not guaranteed at every allocation (Kuznetsova OM,
    Tymofyeyev Y. Stat Med 2012;31:701–23).

    >>> s = RandomisationScheme(id="x", arms={"A": 1, "B": 1}, method="minimisation",
    ...     factors={"sex": ("F", "M")}, imbalance="range", preferred_probability=1.0)
    >>> lst = generate_list(s, seed=1, size_per_stratum=10)
    >>> minimisation_arm(lst, 5, {"sex": {"F": {"A": 3, "B": 1}}}, {"sex": "F"})
    'B'
    """
    # One stream per patient (by allocation order), so the draws one patient uses cannot
    # shift those of the next and a replay needs only the seed and the logged factors.
    lst = allocation_list
    scheme = lst.scheme
    p = scheme.preferred_probability
    if scheme.method != "minimisation" or p is None:
        raise EnrolmentError("the list is not a minimisation list", where="scheme.method")
    draws = _Draws(lst.seed, (_MINIMISATION_STREAM, index))
    scores = imbalance_scores(scheme, counts, levels)
    best = min(scores.values())
    tied = [arm for arm in scheme.arms if scores[arm] == best]
    # Ties (always the first patient) are broken at random, weighted by the ratio so
    # that early patients follow the declared allocation ratio.
    preferred = draws.weighted(tied, scheme.arms)
    if len(tied) == len(scheme.arms):
        return preferred
    if draws.chance(p):
        return preferred
    # Pocock & Simon's simplest rule: the other arms share 1 − p equally.
    others = [arm for arm in scheme.arms if arm != preferred]
    return others[draws.below(len(others))]


# ---------------------------------------------------------------------------- verification


class Discrepancy(BaseModel):
    """One problem found by verification; ``patient_id`` is set for allocation problems."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    problem: str
    patient_id: str | None = None
    stratum: str | None = None
    sequence: int | None = None


class VerificationReport(BaseModel):
    """The outcome of :func:`verify_list` or
    :func:`trialdesk.enrolment.allocation.verify_allocations`."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

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
        found.append(
            Discrepancy(
                problem=f"unknown algorithm {lst.algorithm!r}; this "
                f"version regenerates {ALGORITHM!r} only"
            )
        )
    recomputed = _digest_of(lst)
    if recomputed != lst.digest:
        found.append(
            Discrepancy(
                problem=f"digest mismatch: recorded {lst.digest}, recomputed {recomputed}; "
                f"the list was changed after it was generated"
            )
        )
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
            found.append(
                Discrepancy(
                    problem="entry appears more than once", stratum=e.stratum, sequence=e.sequence
                )
            )
        elif key not in want:
            found.append(
                Discrepancy(
                    problem="entry is not produced by the seed",
                    stratum=e.stratum,
                    sequence=e.sequence,
                )
            )
        elif e != want[key]:
            w = want[key]
            found.append(
                Discrepancy(
                    problem=f"entry differs from the seed: arm {e.arm}, block {e.block} of "
                    f"{e.block_size}; expected arm {w.arm}, block {w.block} of {w.block_size}",
                    stratum=e.stratum,
                    sequence=e.sequence,
                )
            )
        have.setdefault(key, e)
    for key in want.keys() - have.keys():
        found.append(Discrepancy(problem="entry is missing", stratum=key[0], sequence=key[1]))
    if not found and [(e.stratum, e.sequence) for e in lst.entries] != list(want):
        found.append(Discrepancy(problem="entries are out of order"))
    return sorted(found, key=lambda d: (d.stratum or "", d.sequence or 0))

"""Concealed allocation from a sealed list, and verification of the allocations made.

An :class:`Allocator` holds a verified :class:`~trialdesk.enrolment.randomisation.AllocationList`
and reveals one allocation at a time, to an enrolled patient, at the moment of
randomisation. Each call returns the :class:`Allocation` (the audit record, with the
list's digest and the time the caller gives) and a new :class:`AllocationState` that the
caller persists with it; nothing here reads a clock or stores anything.
:func:`verify_allocations` checks a whole allocation history against the list, or for
minimisation replays Pocock & Simon (Biometrics 1975;31:103–15) from the seed.

RuMCeSS (NCT01849237) in miniature: 1:1, MSC + standard therapy vs standard therapy.

>>> from trialdesk.enrolment.randomisation import RandomisationScheme, generate_list
>>> scheme = RandomisationScheme(
...     id="rumcess", arms={"MSC": 1, "SOC": 1}, method="permuted_blocks",
...     block_sizes=(2, 4), strata={"site": ("MSK-01", "MSK-02")})
>>> lst = generate_list(scheme, seed=20130507, size_per_stratum=16)
>>> allocator = Allocator(lst)
>>> at = datetime.fromisoformat("2013-05-07T09:30:00+03:00")
>>> first, state = allocator.next_allocation(
...     allocator.start(), "P001", {"site": "MSK-01"}, enrolled=True, at=at)
>>> (first.stratum, first.sequence, first.arm in scheme.arms)
('site=MSK-01', 1, True)
>>> verify_allocations(lst, [first]).ok
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trialdesk.enrolment.randomisation import (
    AllocationEntry,
    AllocationList,
    Counts,
    Discrepancy,
    VerificationReport,
    minimisation_arm,
    stratum_key,
    verify_list,
)
from trialdesk.errors import EnrolmentError

__all__ = ["Allocation", "AllocationState", "Allocator", "verify_allocations"]


class Allocation(BaseModel):
    """One randomisation, as written to the audit trail.

    ``sequence`` is the list entry used within ``stratum`` (permuted blocks), or the
    patient's position in the allocation order (minimisation, where ``stratum`` is just
    the patient's combination of factor levels). Block number and size are left out on
    purpose: a site that sees block boundaries can predict the last allocations of each
    block (Matts & Lachin 1988).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

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

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

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
    :func:`~trialdesk.enrolment.randomisation.verify_list`.

    Each state may be used once: the caller randomises one patient at a time per list and
    stores the allocation and the new state together. Two allocations made from the same
    old state would take the same entry; :func:`verify_allocations` reports that.

    >>> from trialdesk.enrolment.randomisation import RandomisationScheme, generate_list
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
            raise EnrolmentError(
                "is not enrolled; only enrolled patients are randomised", where=where
            )
        if patient_id in state.patients:
            raise EnrolmentError("is already randomised; a patient is randomised once", where=where)
        if at.tzinfo is None or at.utcoffset() is None:
            raise EnrolmentError("time of randomisation needs a timezone", where="at")
        if state.last_at is not None and at < state.last_at:
            raise EnrolmentError(
                f"{at.isoformat()} is before the previous allocation ({state.last_at.isoformat()})",
                where="at",
            )
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
                    where=where,
                )
            arm, sequence = entries[used].arm, used + 1
            updates["used"] = {**state.used, key: sequence}
        else:
            if state.allocated >= self._list.size_per_stratum:
                raise EnrolmentError(
                    f"the minimisation list is used up ({self._list.size_per_stratum} "
                    f"patients); a further list must be generated and verified",
                    where=where,
                )
            arm = minimisation_arm(self._list, state.allocated, state.factor_counts, levels)
            sequence = state.allocated + 1
            updates["factor_counts"] = _counted(state.factor_counts, levels, arm)
        allocation = Allocation(
            patient_id=patient_id,
            stratum=key,
            sequence=sequence,
            arm=arm,
            factors=levels,
            allocated_at=at,
            list_digest=self._list.digest,
        )
        return allocation, state.model_copy(update=updates)


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

    >>> from trialdesk.enrolment.randomisation import RandomisationScheme, generate_list
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
            found.append(
                Discrepancy(
                    problem=problem,
                    patient_id=rec.patient_id,
                    stratum=rec.stratum,
                    sequence=rec.sequence,
                )
            )

        if rec.list_digest != lst.digest:
            note(f"made from list {rec.list_digest[:12]}, not {lst.digest[:12]}")
        if rec.patient_id in seen:
            note("patient randomised more than once")
        seen.add(rec.patient_id)
        if rec.allocated_at.utcoffset() is None:
            note("allocation time has no timezone")
        elif previous_at is not None and rec.allocated_at < previous_at:
            note("allocation time is earlier than the previous allocation")
        else:
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
                note(
                    f"claims entry {rec.sequence}; the next unused entry was {expected}"
                    + (" (entries skipped)" if rec.sequence > expected else "")
                )
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
            try:
                arm = minimisation_arm(lst, position - 1, counts, levels)
            except EnrolmentError as exc:  # a list edited beyond replay; verify_list says how
                note(f"cannot replay: {exc}")
                break
            if arm != rec.arm:
                note(f"arm {rec.arm} differs from the replayed minimisation ({arm})")
            counts = _counted(counts, levels, arm)
    return VerificationReport(
        list_digest=lst.digest,
        entries_checked=len(lst.entries),
        allocations_checked=len(log_entries),
        discrepancies=tuple(found),
    )


def _counted(counts: Counts, levels: Mapping[str, str], arm: str) -> Counts:
    new = {
        factor: {lv: dict(row) for lv, row in by_level.items()}
        for factor, by_level in counts.items()
    }
    for factor, level in levels.items():
        row = new.setdefault(factor, {}).setdefault(level, {})
        row[arm] = row.get(arm, 0) + 1
    return new

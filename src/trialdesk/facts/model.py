"""Fact values: what the evaluator and the explanations work with."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

Value = float | int | str | bool | date | frozenset[str]


@dataclass(frozen=True)
class FactValue:
    """One known fact: its value in the dictionary's canonical unit, and its evidence.

    ``observed`` is the date the underlying observation was made (a lab draw, an
    echocardiogram), ``source`` says where the value came from in the record.
    """

    name: str
    value: Value
    unit: str | None = None
    observed: date | None = None
    source: str = ""


@dataclass(frozen=True)
class FactSet(Mapping[str, FactValue]):
    """The facts of one patient at one screening moment.

    Facts that are absent are unknown; ``missing`` says why for those the
    normaliser looked for (not recorded, older than the look-back window, ...).
    """

    as_of: datetime
    values: Mapping[str, FactValue] = field(default_factory=dict)  # type: ignore[assignment]
    missing: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> FactValue:
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def on(self) -> date:
        return self.as_of.date()

    def why_missing(self, name: str) -> str:
        return self.missing.get(name, "not recorded")

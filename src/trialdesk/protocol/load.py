"""Load protocol files (YAML or JSON), validate them and compile their rules.

Every problem is one :class:`~trialdesk.errors.ProtocolError` naming the file, the
JSON path of the offending value and the reason; a rule that does not type-check names
the criterion and the position inside the rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trialdesk.criteria.ast import Expr
from trialdesk.criteria.parser import parse
from trialdesk.criteria.typecheck import bind
from trialdesk.documents import json_path, read_document, validate
from trialdesk.errors import CriteriaError, NotFoundError, ProtocolError
from trialdesk.protocol.model import Criterion, Protocol
from trialdesk.protocol.paths import default_protocol_dir as default_protocol_dir

__all__ = [
    "CompiledProtocol",
    "compile_protocol",
    "default_protocol_dir",
    "json_path",
    "load_directory",
    "load_protocol",
    "protocol_from_data",
    "read_document",
]


@dataclass(frozen=True)
class CompiledProtocol:
    """A validated protocol with every rule parsed and bound to the fact dictionary."""

    protocol: Protocol
    rules: Mapping[str, Expr]
    arm_rules: Mapping[str, Expr]
    path: str | None = None
    kinds: Mapping[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.protocol.id

    def criterion(self, criterion_id: str) -> Criterion:
        for _, c in self.protocol.criteria:
            if c.id == criterion_id:
                return c
        raise NotFoundError(f"no criterion '{criterion_id}' in {self.id}")


def compile_protocol(protocol: Protocol, *, source: str = "<protocol>") -> CompiledProtocol:
    """Parse and type-check every rule of ``protocol``."""
    dictionary = protocol.dictionary
    rules: dict[str, Expr] = {}
    kinds: dict[str, str] = {}
    for kind, criterion in protocol.criteria:
        where = f"{source}: {kind} criterion {criterion.id}"
        try:
            rules[criterion.id] = bind(parse(criterion.expression), dictionary)
        except CriteriaError as exc:
            raise ProtocolError(exc.reason, where=where) from None
        kinds[criterion.id] = kind
    arm_rules: dict[str, Expr] = {}
    for arm in protocol.arms:
        if arm.assignment.rule is None:
            continue
        try:
            arm_rules[arm.id] = bind(parse(arm.assignment.rule), dictionary)
        except CriteriaError as exc:
            raise ProtocolError(exc.reason, where=f"{source}: arm {arm.id} assignment") from None
    return CompiledProtocol(protocol, rules, arm_rules, source, kinds)


def protocol_from_data(data: Any, *, source: str = "<protocol>") -> CompiledProtocol:
    if not isinstance(data, dict):
        raise ProtocolError("a protocol must be a mapping at the top level", where=source)
    protocol = validate(Protocol, data, ProtocolError, where=source)
    return compile_protocol(protocol, source=source)


def load_protocol(path: str | os.PathLike[str]) -> CompiledProtocol:
    """Load one protocol file.

    >>> p = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml")
    >>> p.id
    'NB-NK-2026'
    """
    p = Path(path)
    return protocol_from_data(read_document(p), source=str(p))


def load_directory(directory: str | os.PathLike[str]) -> dict[str, CompiledProtocol]:
    """Load every ``*.yaml``/``*.yml``/``*.json`` protocol in a directory, by trial id."""
    d = Path(directory)
    if not d.is_dir():
        raise ProtocolError("not a directory", where=str(d))
    found: dict[str, CompiledProtocol] = {}
    for path in sorted(d.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        compiled = load_protocol(path)
        if compiled.id in found:
            raise ProtocolError(
                f"trial id {compiled.id} also defined in {found[compiled.id].path}",
                where=str(path),
            )
        found[compiled.id] = compiled
    return found



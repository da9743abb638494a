"""Load protocol files (YAML or JSON), validate them and compile their rules.

Every problem is one :class:`~trialdesk.errors.ProtocolError` naming the file, the
JSON path of the offending value and the reason; a rule that does not type-check names
the criterion and the position inside the rule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from trialdesk.criteria.ast import Expr
from trialdesk.criteria.parser import parse
from trialdesk.criteria.typecheck import bind
from trialdesk.errors import CriteriaError, NotFoundError, ProtocolError, TrialdeskError
from trialdesk.protocol.model import Criterion, Protocol
from trialdesk.protocol.paths import default_protocol_dir as default_protocol_dir


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


def json_path(loc: Iterable[int | str]) -> str:
    """Format a pydantic error location as a JSON path: ``$.arms[0].plan``."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _pydantic_reason(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # Union members show up as extra path parts ("CourseStep", "function-after[...]").
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))


def validation_error(source: str, exc: ValidationError) -> ProtocolError:
    errors = exc.errors()
    # For unions pydantic reports every member's failure; keep the most specific one.
    first = max(errors, key=lambda e: len(_clean_loc(e["loc"])))
    path = json_path(_clean_loc(first["loc"]))
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ProtocolError(f"{_pydantic_reason(first)}{more}", where=f"{source}: {path}")


def read_document(path: Path, error: type[TrialdeskError] = ProtocolError, *,
                  as_json: bool | None = None) -> Any:
    """Read a YAML or JSON document (JSON by suffix unless ``as_json`` says);
    unreadable or malformed input is one ``error`` line naming the file and position."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", where=str(path)) from None
    try:
        if as_json or (as_json is None and path.suffix == ".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise error(f"malformed JSON: {exc.msg}", where=f"{path}:{exc.lineno}:{exc.colno}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"malformed YAML: {problem}", where=loc) from None


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
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as exc:
        raise validation_error(source, exc) from None
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



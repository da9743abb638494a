"""Documents coming in: JSON and YAML read strictly, then validated strictly against a model.

Everything a file or a request body brings in passes here, so one set of rules holds:

* text is UTF-8 (a UTF-8 byte-order mark is allowed); UTF-16, other encodings and binary
  files are refused with one line saying so;
* a key appears once in an object (JSON) or mapping (YAML); a duplicate is an error naming it;
* numbers are finite (no ``NaN``, ``Infinity``, ``.nan``, ``.inf``, ``1e400``) and integers
  lie within ±(2**53 − 1), the range every JSON reader represents exactly (I-JSON, RFC 7493
  §2.2); nesting is at most :data:`MAX_DEPTH` levels deep;
* YAML dates stay text, as in JSON, so a YAML and a JSON document mean the same;
* validation is pydantic's strict mode over the JSON data model: a boolean must be ``true``
  or ``false`` (``0`` is not false), a date must be an ISO date text (``0`` is not 1970-01-01),
  a number must be a number (``"5"`` is not 5).

Every problem is one :class:`~trialdesk.errors.TrialdeskError` (of the caller's class) whose
``where`` names the file and the field, as a JSON path.

>>> parse_json('{"a": 1, "a": 2}', where="x.json")
Traceback (most recent call last):
...
trialdesk.errors.ProtocolError: x.json: duplicate key 'a'
>>> parse_json('{"alt": NaN}', where="x.json")
Traceback (most recent call last):
...
trialdesk.errors.ProtocolError: x.json: $.alt: not a finite number (NaN)
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from trialdesk.errors import ProtocolError, TrialdeskError

MAX_DEPTH = 64  # far deeper than any trialdesk document (protocols nest about 8 levels)
MAX_NODES = 1_000_000  # values in one document, aliases counted each time they are used
MAX_INTEGER = 2**53 - 1  # I-JSON (RFC 7493 §2.2): integers exactly representable everywhere

_TOO_MANY_DIGITS = f"a number has more than {sys.get_int_max_str_digits()} digits"

M = TypeVar("M", bound=BaseModel)
ErrorType = type[TrialdeskError]


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def json_path(loc: Iterable[int | str]) -> str:
    """Format a location as a JSON path: ``$.arms[0].plan``.

    >>> json_path(("arms", 0, "plan"))
    '$.arms[0].plan'
    """
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


# ----------------------------------------------------------------------------------- reading


def decode(data: bytes, error: ErrorType = ProtocolError, *, where: str) -> str:
    """``data`` as UTF-8 text, or one ``error`` saying what the file is instead."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error("the file is UTF-16 text; save it as UTF-8", where=where)
    if b"\x00" in data:
        raise error("not a text file (it contains NUL bytes)",
                    where=where)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                    "save the file as UTF-8", where=where) from None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _parsed(load: Callable[[], Any], error: ErrorType, where: str) -> Any:
    """``load()``, with the failures JSON and YAML parsers share turned into one ``error``."""
    try:
        data = load()
    except RecursionError:
        raise error(f"nested more than {MAX_DEPTH} levels deep", where=where) from None
    except ValueError:  # an integer of more digits than Python converts
        raise error(_TOO_MANY_DIGITS, where=where) from None
    check_values(data, error, where=where)
    return data


def parse_json(text: str, error: ErrorType = ProtocolError, *, where: str) -> Any:
    """Parse JSON text strictly (see the module docstring)."""

    def load() -> Any:
        try:
            return json.loads(text, object_pairs_hook=_pairs)
        except json.JSONDecodeError as exc:
            raise error(f"malformed JSON: {exc.msg}", where=f"{where}:{exc.lineno}:{exc.colno}") from None
        except _Duplicate as exc:
            raise error(f"duplicate key '{exc.key}'", where=where) from None

    return _parsed(load, error, where)


#: libyaml's parser (C) when PyYAML was built with it: about four times faster than the pure
#: Python one, with the same safe constructor and resolver on top.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _YamlLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate keys and leaves dates as text (as JSON has them)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the constructor below explains it
                break
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str, error: ErrorType = ProtocolError, *, where: str) -> Any:
    """Parse YAML text strictly (see the module docstring)."""

    def load() -> Any:
        try:
            return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            loc = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
            problem = getattr(exc, "problem", None) or str(exc)
            if "maximum nesting depth" in problem:  # libyaml's own limit (1000 levels)
                raise error(f"nested more than {MAX_DEPTH} levels deep", where=where) from None
            raise error(f"malformed YAML: {problem}", where=loc) from None

    return _parsed(load, error, where)


def read_document(path: Path, error: ErrorType = ProtocolError, *, as_json: bool | None = None) -> Any:
    """Read a YAML or JSON document (JSON by suffix unless ``as_json`` says);
    unreadable or malformed input is one ``error`` line naming the file and position."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror}", where=str(path)) from None
    text = decode(data, error, where=str(path))
    if as_json or (as_json is None and path.suffix == ".json"):
        return parse_json(text, error, where=str(path))
    return parse_yaml(text, error, where=str(path))


# ---------------------------------------------------------------------------------- checking


def check_values(data: Any, error: ErrorType = ProtocolError, *, where: str) -> None:
    """Refuse non-finite numbers, integers beyond :data:`MAX_INTEGER`, text that is not
    Unicode, nesting deeper than :data:`MAX_DEPTH` and documents of more than
    :data:`MAX_NODES` values; the error names the field.

    >>> check_values({"dose": [1, float("inf")]}, where="p.yaml")
    Traceback (most recent call last):
    ...
    trialdesk.errors.ProtocolError: p.yaml: $.dose[1]: not a finite number (inf)
    """
    count = 0
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise error(f"more than {MAX_NODES:,} values in one document", where=where)
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:  # "\ud800" in JSON: a lone surrogate, not a character
                    raise error("text that is not valid Unicode (a lone surrogate)",
                                where=f"{where}: {json_path(loc)}") from None
            continue
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                shown = "NaN" if math.isnan(value) else ("-" if value < 0 else "") + "inf"
                raise error(f"not a finite number ({shown})", where=f"{where}: {json_path(loc)}")
            continue
        if isinstance(value, int):
            if abs(value) > MAX_INTEGER:
                raise error(f"integer too large (beyond ±{MAX_INTEGER})",
                            where=f"{where}: {json_path(loc)}")
            continue
        if isinstance(value, Mapping | list | tuple):
            if len(loc) >= MAX_DEPTH:
                raise error(f"nested more than {MAX_DEPTH} levels deep",
                            where=f"{where}: {json_path(loc[:8])}…")
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            stack.extend((v, (*loc, k if isinstance(k, int | str) else str(k))) for k, v in items)


# -------------------------------------------------------------------------------- validation


def _iso(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # Union members show up as extra path parts ("CourseStep", "function-after[...]").
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))


_EXPECTED = {
    "bool_type": "must be true or false",
    "date_type": "must be a date, YYYY-MM-DD",
    "date_parsing": "must be a date, YYYY-MM-DD",
    "date_from_datetime_parsing": "must be a date, YYYY-MM-DD",
    "datetime_type": "must be a date and time, YYYY-MM-DDThh:mm",
    "datetime_parsing": "must be a date and time, YYYY-MM-DDThh:mm",
    "datetime_from_date_parsing": "must be a date and time, YYYY-MM-DDThh:mm",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be text",
}


def plain_reason(err: Mapping[str, Any]) -> str:
    """A pydantic error's reason in plain words ("must be true or false, got 0")."""
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] in _EXPECTED:
        shown = json.dumps(err.get("input"), default=str, ensure_ascii=False)
        return f"{_EXPECTED[err['type']]}, got {shown if len(shown) <= 40 else shown[:39] + '…'}"
    return str(err["msg"]).removeprefix("Value error, ")


def validation_error(exc: ValidationError, error: ErrorType = ProtocolError, *,
                     where: str) -> TrialdeskError:
    """One ``error`` for a pydantic failure: the most specific problem, its field as a JSON path."""
    errors = exc.errors()
    # For unions pydantic reports every member's failure; keep the most specific one.
    first = max(errors, key=lambda e: len(_clean_loc(e["loc"])))
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return error(f"{plain_reason(first)}{more}", where=f"{where}: {json_path(_clean_loc(first['loc']))}")


def validate(model: type[M], data: Any, error: ErrorType = ProtocolError, *, where: str) -> M:
    """``data`` (a parsed JSON or YAML document, or a request body) as ``model``, strictly.

    >>> from pydantic import BaseModel
    >>> class Status(BaseModel):
    ...     pregnant: bool
    >>> validate(Status, {"pregnant": False}, where="p.json")
    Status(pregnant=False)
    >>> validate(Status, {"pregnant": 0}, where="p.json")
    Traceback (most recent call last):
    ...
    trialdesk.errors.ProtocolError: p.json: $.pregnant: must be true or false, got 0
    """
    try:
        return model.model_validate_json(as_json_text(data, error, where=where), strict=True)
    except ValidationError as exc:
        raise validation_error(exc, error, where=where) from None


def as_json_text(data: Any, error: ErrorType = ProtocolError, *, where: str) -> str:
    """``data`` checked (:func:`check_values`) and written as JSON, for pydantic's strict JSON
    mode (``model_validate_json(text, strict=True)``): there a boolean is only ``true`` or
    ``false`` and a date only an ISO date text, yet enums, tuples and dates still read
    from their JSON forms. Dates already parsed (YAML, Python callers) become ISO texts."""
    check_values(data, error, where=where)
    try:
        return json.dumps(data, default=_iso, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise error(f"not a JSON document: {exc}", where=where) from None

"""A registry record becomes a draft protocol document: registry modules, criteria items
with rule drafts, and what was taken in.

The core reads bytes it is given and returns documents; reading and writing files is the
command line's job. Every criterion of an imported protocol carries a ``review`` in state
``draft``: the protocol cannot screen until a person has reviewed each one
(:func:`trialdesk.criteria.verdict.require_reviewed`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from trialdesk.criteria.parser import parse
from trialdesk.criteria.typecheck import bind
from trialdesk.documents import validation_error
from trialdesk.errors import CriteriaError, ProtocolError, RegistryError
from trialdesk.facts.dictionary import Attestation, with_attestations
from trialdesk.protocol.load import compile_protocol
from trialdesk.protocol.model import Protocol, Registry
from trialdesk.registry.extract import draft_item, rule_checks
from trialdesk.registry.items import split_criteria
from trialdesk.registry.records import Study, age_limit, parse_xml, registry_from_v2, studies_in, version_of

# The look-back window is a protocol setting the registry does not hold. Until the
# investigator sets it at review, 0 days counts only data from the screening day itself:
# nothing older is taken as current (missing data stays unknown, never guessed).
_LOOKBACK = {
    "default_days": 0,
    "unconfirmed": True,
    "source": "not in the registry record; set the look-back windows at review "
    "(0 days: only data from the screening day counts)",
}


@dataclass(frozen=True)
class Imported:
    """One study taken in: its protocol document and what it held."""

    nct_id: str
    where: str
    format: str
    document: dict[str, Any]
    modules: list[str]
    inclusion: int
    exclusion: int
    drafts: int
    problems: list[str] = field(default_factory=list)
    # The registry part of the document as the protocol model validated it (spares a
    # second validation when the study is stored).
    registry: Registry | None = field(default=None, compare=False, repr=False)

    @property
    def questions(self) -> int:
        return self.inclusion + self.exclusion - self.drafts

    def summary(self) -> dict[str, Any]:
        return {
            "nct_id": self.nct_id,
            "source": self.where,
            "format": self.format,
            "modules": self.modules,
            "inclusion": self.inclusion,
            "exclusion": self.exclusion,
            "drafts": self.drafts,
            "questions": self.questions,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class Failed:
    """A study (or file) that could not be imported: one line naming file, path, reason."""

    where: str
    reason: str

    def summary(self) -> dict[str, Any]:
        return {"source": self.where, "error": self.reason}


def read_studies(data: bytes, *, name: str) -> Iterator[Study | Failed]:
    """The studies in one file's bytes (v2 JSON, a v2 search response, or classic XML)."""
    head = data.lstrip()[:1]
    try:
        if head == b"<":
            yield parse_xml(data, where=name)
            return
        try:
            document = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"malformed JSON: {exc}", where=name) from None
        yield from studies_in(document, source=name)
    except RegistryError as exc:
        yield Failed(exc.where or name, exc.reason)


def import_bytes(data: bytes, *, name: str) -> list[Imported | Failed]:
    """Import every study of one file; a malformed study fails alone."""
    out: list[Imported | Failed] = []
    for study in read_studies(data, name=name):
        if isinstance(study, Failed):
            out.append(study)
            continue
        try:
            out.append(import_study(study))
        except (RegistryError, ProtocolError) as exc:
            out.append(Failed(exc.where or study.where, exc.reason))
    return out


def _modules(study: Study) -> list[str]:
    sections = [study.record.get("protocolSection", {}), study.record.get("derivedSection", {})]
    return [
        name
        for section in sections
        if isinstance(section, dict)
        for name in section
        if name.endswith("Module") and name not in ("miscInfoModule", "ipdSharingStatementModule")
    ]


def _registry_criteria(registry: Registry) -> tuple[list[dict[str, Any]], list[str]]:
    """Criteria from the registry's structured age and sex limits."""
    el = registry.eligibility
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    bounds = []
    questions = []
    units: set[str] = set()
    for text, op in ((el.minimum_age, ">="), (el.maximum_age, "<=")):
        limit = age_limit(text)
        if limit is None:
            continue
        value, unit = limit
        units.add(unit)
        fact = {"year": "age_years", "month": "age_months"}.get(unit)
        if fact is None or value % 1:
            questions.append(text)
            problems.append(f"age limit '{text}' has no draft: the dictionary holds age in years and months")
        else:
            bounds.append(f"{fact} {op} {value:g}")
    if el.minimum_age or el.maximum_age:
        text = f"Registry age limits: minimum {el.minimum_age or 'none'}, maximum {el.maximum_age or 'none'}"
        if bounds and not questions:
            out.append(
                _criterion(
                    "I-age",
                    text,
                    " and ".join(bounds),
                    draft={
                        "rule": " and ".join(bounds),
                        "span": text,
                        "facts": sorted({b.split()[0] for b in bounds}),
                        "unit": ", ".join(sorted(units)),
                        "confidence": 0.95,
                        "method": "registry age limits",
                    },
                )
            )
        else:
            out.append(_criterion("I-age", text, None))
    if el.sex != "ALL":
        rule = f"sex == '{el.sex.lower()}'"
        out.append(
            _criterion(
                "I-sex",
                f"Registry sex: {el.sex}",
                rule,
                draft={
                    "rule": rule,
                    "span": el.sex,
                    "facts": ["sex"],
                    "confidence": 0.95,
                    "method": "registry sex",
                },
            )
        )
    return out, problems


def _criterion(
    cid: str, text: str, rule: str | None, *, draft: dict[str, Any] | None = None, note: str | None = None
) -> dict[str, Any]:
    c: dict[str, Any] = {"id": cid, "text": text}
    if rule is None:
        c["attest"] = text
    else:
        c["rule"] = rule
    if note:
        c["note"] = note
    c["review"] = {"state": "draft", "draft": draft or {"method": "none: investigator question"}}
    return c


@lru_cache(maxsize=4096)
def _attestation_checks(attestation_id: str) -> bool:
    a = Attestation(attestation_id, "")
    try:
        bind(parse(a.fact_name), with_attestations([a]))
    except CriteriaError:
        return False
    return True


def _known_to_compile(protocol: Protocol) -> bool:
    """Whether every criterion of an imported protocol is known to parse and type-check, by
    checks kept per rule text and attestation id (the same rules and ids recur across
    records). When not, the protocol is compiled in full, which names what fails."""
    if protocol.arms or protocol.eligibility.attestations:
        return False
    for _, c in protocol.criteria:
        a = c.attestation
        if not (rule_checks(c.rule) if c.rule is not None else a is not None and _attestation_checks(a.id)):
            return False
    return True


def import_study(study: Study) -> Imported:
    """One study (v2-shaped) to a draft protocol document."""
    registry = registry_from_v2(study.record, where=study.where)
    nct = registry.identification.nct_id or ""
    items = split_criteria(registry.eligibility.criteria_text)
    registry_criteria, problems = _registry_criteria(registry)
    inclusion = [c for c in registry_criteria if c["id"].startswith("I")]
    exclusion: list[dict[str, Any]] = []
    drafts = 0  # drafts for the text items; the registry's own limits are counted apart
    for item in items:
        target = inclusion if item.kind == "inclusion" else exclusion
        prefix = "I" if item.kind == "inclusion" else "E"
        cid = f"{prefix}{sum(1 for c in target if c['id'][1:].isdigit()) + 1}"
        answer = draft_item(item.text, item.kind)
        drafts += answer.rule is not None
        target.append(
            _criterion(
                cid,
                item.text,
                answer.rule,
                draft=answer.draft_fields(),
                note=f"group: {item.group}" if item.group else None,
            )
        )
    if not items:
        problems.append("no eligibility criteria text")
    located = registry.contacts_locations.locations
    without = sum(loc.geo is None for loc in located)
    if without:
        problems.append(f"{without} of {len(located)} locations without a geo point")
    document: dict[str, Any] = {
        "id": nct,
        "version": version_of(registry),
        "title": registry.identification.brief_title,
        "registry": registry.model_dump(mode="json", by_alias=True, exclude_none=True),
        "eligibility": {
            "source": f"ClinicalTrials.gov {nct}: eligibility criteria text, split into items "
            "with rule drafts for review",
            "lookback": _LOOKBACK,
            "inclusion": inclusion,
            "exclusion": exclusion,
        },
        "arms": [],
    }
    try:
        # the registry model is already validated: it goes in as it is, not as its dump again
        protocol = Protocol.model_validate({**document, "registry": registry})
    except ValidationError as exc:  # a record value the model refuses
        raise validation_error(exc, RegistryError, where=study.where) from None
    if not _known_to_compile(protocol):
        compile_protocol(protocol, source=study.where)  # every draft parses and type-checks
    n_inc = sum(c["id"][1:].isdigit() for c in inclusion)
    return Imported(
        nct, study.where, study.format, document, _modules(study), n_inc, len(exclusion), drafts, problems,
        registry=protocol.registry,
    )

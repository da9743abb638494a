"""The audit chain: how an entry is hashed and how a whole trail is verified.

Each entry records who, when (UTC), which record, the old → new value of every changed
field and the reason (21 CFR 11.10(e); ICH E6(R3) on audit trails). Its ``hash`` is the
SHA-256 of the previous entry's hash followed by the entry's canonical JSON, so editing or
deleting any entry breaks every later link; the head row (last sequence number and hash)
catches a deleted last entry.

>>> e1 = entry_hash(GENESIS, {"seq": 1, "action": "create"})
>>> e2 = entry_hash(e1, {"seq": 2, "action": "update"})
>>> trail = [AuditLink(1, GENESIS, e1, {"seq": 1, "action": "create"}),
...          AuditLink(2, e1, e2, {"seq": 2, "action": "update"})]
>>> verify_chain(trail, head=(2, e2)).ok
True
>>> tampered = [trail[0], AuditLink(2, e1, e2, {"seq": 2, "action": "delete"})]
>>> verify_chain(tampered, head=(2, e2)).problems[0]
'entry 2: its content does not match its hash (edited)'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 kept (what is stored and hashed).

    >>> canonical({"b": 1, "a": [1, "é"]})
    '{"a":[1,"é"],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()


def entry_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """The chained hash of one entry."""
    return hashlib.sha256((prev_hash + canonical(dict(content))).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditLink:
    """One stored entry as the verifier sees it: sequence, stored hashes and content."""

    seq: int
    prev_hash: str
    hash: str
    content: Mapping[str, Any]


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_hash: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(links: Iterable[AuditLink], *, head: tuple[int, str] | None) -> ChainReport:
    """Check every link: content against hash, hash against the next entry, no gaps, head.

    ``head`` is the stored (last sequence, last hash); ``None`` when no head row exists.
    """
    problems: list[str] = []
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    last_hash = GENESIS
    for link in links:
        count += 1
        if link.seq != expected_seq:
            problems.append(f"entries {expected_seq}–{link.seq - 1} are missing (deleted)"
                            if link.seq > expected_seq else f"entry {link.seq}: out of order")
        if link.prev_hash != expected_prev:
            problems.append(f"entry {link.seq}: does not link to the entry before it "
                            "(an earlier entry was edited or deleted)")
        if entry_hash(link.prev_hash, link.content) != link.hash:
            problems.append(f"entry {link.seq}: its content does not match its hash (edited)")
        expected_prev = link.hash
        expected_seq = link.seq + 1
        last_hash = link.hash
    last_seq = expected_seq - 1
    if head is None:
        if count:
            problems.append("the trail's head record is missing")
    else:
        head_seq, head_hash = head
        if head_seq != last_seq or head_hash != last_hash:
            problems.append(
                f"the trail ends at entry {last_seq} but its head records entry {head_seq} "
                "(entries at the end were deleted or the head was changed)")
    return ChainReport(count, last_hash, problems)

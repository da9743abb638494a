"""The parameter and body types shared by the API's routers and the pages, and the
contexts that name a refused input by its JSON path."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import Depends, Header, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from trialdesk.errors import AccessError, TrialdeskError
from trialdesk.outcomes.events import EventTableError
from trialdesk.services.accounts import Principal
from trialdesk.web.deps import principal
from trialdesk.web.errors import status_of

# Row ids, version numbers: a 4-byte integer column (PostgreSQL INTEGER), so nothing larger
# reaches the database (SQLite refuses integers past 2**63 - 1 with an overflow).
INT32 = 2_147_483_647
TrialId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
StudyNumber = Annotated[str, Path(pattern=r"^[A-Z0-9][A-Z0-9-]{0,63}$")]


def plain_text(value: str) -> str:
    """Text kept in the audit trail: stripped (with Python's notion of white space, which
    counts the separators U+001C–U+001F), not empty, without control characters.

    >>> plain_text("  dose recorded late ")
    'dose recorded late'
    >>> plain_text("\x1c")
    Traceback (most recent call last):
    ...
    ValueError: must not be empty
    >>> plain_text("a\x07b")
    Traceback (most recent call last):
    ...
    ValueError: contains the control character U+0007
    """
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    bad = next((c for c in value if c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cs")),
               None)
    if bad is not None:
        raise ValueError(f"contains the control character U+{ord(bad):04X}")
    return value


Reason = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(plain_text)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                             max_length=255, pattern=r"^[\x21-\x7e]+$")]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Limit = Annotated[int, Query(ge=1, le=200)]
Who = Annotated[Principal, Depends(principal)]
StatusCode = Literal[
    "NOT_YET_RECRUITING", "RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING",
    "COMPLETED", "SUSPENDED", "TERMINATED", "WITHDRAWN", "UNKNOWN", "AVAILABLE"]
Phase = Literal["EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA"]
Site = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


@contextmanager
def body_fields() -> Iterator[None]:
    """Name a refused input field as its JSON path in the request body."""
    try:
        yield
    except TrialdeskError as exc:
        where = exc.where
        if (isinstance(exc, (AccessError, EventTableError)) or status_of(exc) != 422
                or not where or where.startswith("$")):
            raise
        raise type(exc)(exc.reason, where=f"$.body.{where}") from None


@contextmanager
def query_fields() -> Iterator[None]:
    """Name a refused query parameter as its JSON path."""
    try:
        yield
    except TrialdeskError as exc:
        if isinstance(exc, (AccessError, EventTableError)) or status_of(exc) != 422 or \
                not exc.where or exc.where.startswith("$") or " " in exc.where:
            raise
        raise type(exc)(exc.reason, where=f"$.query.{exc.where}") from None

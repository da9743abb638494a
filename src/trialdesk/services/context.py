"""What every service works with: the store, the compiled protocols, and the accounts that
check signatures. One :class:`Services` serves the web application and the command line
alike, so both read and change the same records through the same rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from trialdesk.services.accounts import Accounts
from trialdesk.services.catalogue import Catalogue
from trialdesk.store import Store


@dataclass(frozen=True)
class Services:
    store: Store
    catalogue: Catalogue
    accounts: Accounts

    @classmethod
    def open(cls, store: Store, *, lockout_threshold: int = 5,
             lockout_minutes: int = 15) -> Services:
        return cls(store, Catalogue(store), Accounts(store, lockout_threshold, lockout_minutes))


def screening_moment(ctx: Services, as_of: datetime | None) -> datetime:
    """The screening moment: as given (naive or converted to UTC), else now in UTC."""
    if as_of is None:
        return ctx.store.now().astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0)
    return as_of.astimezone(UTC).replace(tzinfo=None) if as_of.tzinfo else as_of

"""Chain of custody: who held a product, where, when, at what temperature.

A product's custody starts with the operator who prepared it; every hand-over names who
gives it (the current holder — nobody else can), who receives it, the location, the time
(after the previous hand-over), the storage or shipping temperature and the condition on
receipt (FACT-JACIE International Standards for Hematopoietic Cellular Therapy, 8th ed.,
D10 "transportation and shipping", not checked). :func:`custody` replays the hand-overs and
returns the current holder and location, or refuses naming the first wrong hand-over.

>>> from datetime import datetime
>>> h = Handover("lab1", "courier", "cell lab", datetime(2026, 3, 2, 9), -150.0, "intact")
>>> custody("lab1", datetime(2026, 3, 1, 9), [h]).holder
'courier'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from trialdesk.cellproduct.product import ProductError


@dataclass(frozen=True)
class Handover:
    """One hand-over; ``temperature_c`` as measured or as the shipper records (None = not
    recorded); ``condition`` as found on receipt (e.g. 'intact', 'bag leaking')."""

    giver: str
    receiver: str
    location: str
    at: datetime
    temperature_c: float | None
    condition: str
    storage: str | None = None  # a storage position, e.g. "LN2 tank 2 / rack C / box 4 / A1"


@dataclass(frozen=True)
class Custody:
    holder: str
    location: str | None
    storage: str | None
    since: datetime
    history: tuple[Handover, ...]
    notes: tuple[str, ...] = ()


_ACCEPTABLE = {"intact", "ok", "acceptable", "as expected"}


def custody(first_holder: str, prepared_at: datetime, handovers: Sequence[Handover]) -> Custody:
    """Replay the hand-overs in order; refuse one from a non-holder or out of time order.

    Conditions other than an acceptable one (intact, ok, …) are kept as notes for the lab
    to act on; they do not break the chain."""
    holder, location, storage, since = first_holder, None, None, prepared_at
    notes: list[str] = []
    for i, h in enumerate(handovers, start=1):
        where = f"hand-over {i}"
        if h.giver != holder:
            raise ProductError(f"{h.giver} does not hold the product ({holder} does)", where=where)
        if h.receiver == h.giver:
            raise ProductError("giver and receiver are the same person", where=where)
        if h.at < since:
            raise ProductError(f"at {h.at:%Y-%m-%d %H:%M}, before the previous custody event "
                               f"({since:%Y-%m-%d %H:%M})", where=where)
        if not h.location.strip():
            raise ProductError("the location is missing", where=where)
        if h.condition.strip().casefold() not in _ACCEPTABLE:
            notes.append(f"{where}: received '{h.condition}' by {h.receiver}")
        holder, location, storage, since = h.receiver, h.location, h.storage, h.at
    return Custody(holder, location, storage, since, tuple(handovers), tuple(notes))


def accept(current: Custody, handover: Handover) -> Custody:
    """Add one hand-over to a replayed custody (the check the store repeats under a lock:
    of two hand-overs from the same holder at once, only the first finds the giver holding)."""
    first = current.history[0].giver if current.history else current.holder
    return custody(first, _start(current), (*current.history, handover))


def _start(current: Custody) -> datetime:
    return current.history[0].at if current.history else current.since

"""What the catalogue keeps between writes: never a value read before a write given after it,
whichever thread of the server read it."""

from __future__ import annotations

from typing import Any, cast

from trialdesk.services.catalogue import Catalogue
from trialdesk.store import Store


class Counter:
    """A store's write counter and nothing else (all :meth:`Catalogue.kept` reads)."""

    def __init__(self) -> None:
        self.count = 0

    def writes(self) -> int:
        return self.count


def catalogue() -> tuple[Catalogue, Counter]:
    counter = Counter()
    return Catalogue(cast(Store, counter)), counter


def test_kept_until_the_next_write() -> None:
    cat, counter = catalogue()
    loads: list[int] = []

    def load() -> int:
        loads.append(counter.count)
        return counter.count

    assert cat.kept("k", load) == 0
    assert cat.kept("k", load) == 0
    assert loads == [0]
    assert cat.has("k")
    counter.count = 1
    assert not cat.has("k")
    assert cat.kept("k", load) == 1
    assert loads == [0, 1]


def test_a_value_read_while_a_write_lands_is_not_given_after_it() -> None:
    # Request A reads the counter (0), then loads; meanwhile a write lands (1) and request B,
    # on another thread, reads the new state. A's value, read from the old state, must not be
    # kept as the state of counter 1.
    cat, counter = catalogue()
    state = {"dose": "old"}

    def slow_load() -> dict[str, Any]:
        seen = dict(state)
        state["dose"] = "new"  # the write commits while A's value is on its way
        counter.count = 1
        assert cat.kept("dose", lambda: dict(state)) == {"dose": "new"}  # request B
        return seen

    assert cat.kept("dose", slow_load) == {"dose": "old"}  # A answers what it read
    assert cat.kept("dose", lambda: dict(state)) == {"dose": "new"}  # and no one after it

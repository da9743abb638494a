"""Cell products as a tree: collection → processing → aliquots → doses.

Every product carries its donor and its intended recipient, so a dose traces to its donor
and collection without a lookup (chain of identity, FACT-JACIE International Standards for
Hematopoietic Cellular Therapy, 8th ed., part D "Process controls" and part E "Labels",
not checked). An autologous product's donor is the patient; a third-party product (RuMCeSS
MSC from a bank) has a donor identity of its own and gets a recipient only when a dose is
assigned. Functions here only build and check values; the store keeps them.

>>> from datetime import datetime, timedelta
>>> col = collect(ProductId(Din.make("A9999", 2026, 1), ProductCode("S0001", "A")),
...               spec_id="nk-collection", trial_id="NB-NK-2026",
...               donor=Donor("P-001", "autologous"), recipient="P-001",
...               collected_at=datetime(2026, 3, 1, 9, 0), procedure="peripheral blood",
...               operator="lab1")
>>> batch = derive(col, "nk-expansion", stage="processing", code=ProductCode("S0002", "A"),
...                prepared_at=datetime(2026, 3, 2, 10, 0), operator="lab1")
>>> [p.spec_id for p in lineage({p.key: p for p in (col, batch)}, batch.key)]
['nk-collection', 'nk-expansion']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from trialdesk.cellproduct.identifier import Din, ProductCode, ProductId
from trialdesk.errors import TrialdeskError
from trialdesk.protocol.model import ProductSpec


class ProductError(TrialdeskError):
    """A cell product, its derivation or its history is invalid."""

    code = "cellproduct_invalid"


Stage = Literal["collection", "processing", "aliquot", "dose"]
_ORDER: tuple[Stage, ...] = ("collection", "processing", "aliquot", "dose")


@dataclass(frozen=True)
class Donor:
    """Who the cells came from: the patient (autologous) or a third party with its own id."""

    id: str
    kind: Literal["autologous", "third_party"]
    note: str | None = None


@dataclass(frozen=True)
class Counts:
    """Counts measured on a product (None = not measured): total nucleated and mononuclear
    cells, viable cells, viability in %."""

    tnc: float | None = None
    mnc: float | None = None
    viable_cells: float | None = None
    viability_percent: float | None = None


@dataclass(frozen=True)
class Product:
    """One product: identity, stage, derivation, donor, recipient, times, counts."""

    id: ProductId
    spec_id: str
    stage: Stage
    trial_id: str
    donor: Donor
    recipient: str | None
    prepared_at: datetime
    operator: str
    parent: ProductId | None = None
    procedure: str | None = None
    site: str | None = None
    volume_ml: float | None = None
    counts: Counts = Counts()
    expires_at: datetime | None = None
    storage: str | None = None

    @property
    def key(self) -> str:
        return self.id.text

    @property
    def autologous(self) -> bool:
        return self.donor.kind == "autologous"


def collect(pid: ProductId, *, spec_id: str, trial_id: str, donor: Donor, recipient: str | None,
            collected_at: datetime, procedure: str, operator: str, site: str | None = None,
            volume_ml: float | None = None, counts: Counts = Counts()) -> Product:
    """A collection: the root of a tree. Autologous means donor and recipient are one person."""
    if donor.kind == "autologous" and recipient != donor.id:
        raise ProductError(f"an autologous collection is for its donor {donor.id}, not "
                           f"{recipient}", where="recipient")
    if volume_ml is not None and volume_ml <= 0:
        raise ProductError("must be above 0", where="volume")
    return Product(pid, spec_id, "collection", trial_id, donor, recipient, collected_at, operator,
                   procedure=procedure, site=site, volume_ml=volume_ml, counts=counts)


def derive(parent: Product, spec_id: str, *, stage: Stage, prepared_at: datetime, operator: str,
           code: ProductCode | None = None, division: int | None = None,
           recipient: str | None = None, volume_ml: float | None = None,
           counts: Counts = Counts(), expires_at: datetime | None = None,
           storage: str | None = None) -> Product:
    """A product made from ``parent``: same DIN, a later stage, its own product code.

    ``code`` gives the new product description and type of donation (processing, thawing;
    its division is ignored); ``division`` splits the code into parts (aliquots), from 0.
    A third-party product gets its recipient here (a dose assigned to a patient); an
    autologous one keeps its donor's.
    """
    if _ORDER.index(stage) <= _ORDER.index(parent.stage) and not (stage == "aliquot" == parent.stage):
        raise ProductError(f"{stage} cannot be made from {parent.stage} {parent.key}",
                           where="stage")
    if prepared_at < parent.prepared_at:
        raise ProductError(f"prepared {prepared_at:%Y-%m-%d %H:%M}, before its parent "
                           f"({parent.prepared_at:%Y-%m-%d %H:%M})", where="prepared at")
    if parent.expires_at is not None and prepared_at > parent.expires_at:
        raise ProductError(f"the parent {parent.key} expired {parent.expires_at:%Y-%m-%d %H:%M}",
                           where="parent")
    # A new description (processing, thawing) keeps the parent's division: the thawed dose of
    # aliquot A0 is still part A0.
    base = ProductCode(code.description, code.donation_type, parent.id.code.division) \
        if code is not None else parent.id.code
    new_code = base.divided(division) if division is not None else base
    pid = ProductId(parent.id.din, new_code)
    if pid == parent.id:
        raise ProductError("a derived product needs its own product code or division",
                           where="product code")
    who = parent.recipient
    if recipient is not None and recipient != who:
        if parent.autologous:
            raise ProductError(f"an autologous product is only for {parent.donor.id}",
                               where="recipient")
        if who is not None:
            raise ProductError(f"already assigned to {who}", where="recipient")
        who = recipient
    return Product(pid, spec_id, stage, parent.trial_id, parent.donor, who, prepared_at,
                   operator, parent=parent.id, volume_ml=volume_ml, counts=counts,
                   expires_at=expires_at, storage=storage)


def lineage(products: Mapping[str, Product], key: str) -> tuple[Product, ...]:
    """The product and its ancestors, collection first; a broken link is an error."""
    chain: list[Product] = []
    seen: set[str] = set()
    current: str | None = key
    while current is not None:
        if current in seen:
            raise ProductError("the derivation loops", where=current)
        seen.add(current)
        product = products.get(current)
        if product is None:
            raise ProductError("no such product in the tree", where=current)
        chain.append(product)
        current = product.parent.text if product.parent else None
    chain.reverse()
    if chain[0].stage != "collection":
        raise ProductError("the tree does not start at a collection", where=chain[0].key)
    return tuple(chain)


def children(products: Iterable[Product], key: str) -> tuple[Product, ...]:
    return tuple(sorted((p for p in products if p.parent and p.parent.text == key),
                        key=lambda p: p.id))


def shelf_life_expiry(spec: ProductSpec, prepared_at: datetime) -> datetime | None:
    """Expiry from the protocol's shelf life (its maximum hours from preparation, e.g. after
    thaw); None when the protocol sets none — unknown, and a dose without expiry is refused
    at the bedside."""
    limit = spec.shelf_life_hours
    if limit is None or limit.maximum is None:
        return None
    return prepared_at + timedelta(hours=limit.maximum)


def with_expiry(product: Product, expires_at: datetime) -> Product:
    if expires_at < product.prepared_at:
        raise ProductError("expires before it was prepared", where="expiry")
    return replace(product, expires_at=expires_at)


__all__ = ["Counts", "Din", "Donor", "Product", "ProductCode", "ProductError", "ProductId",
           "Stage", "children", "collect", "derive", "lineage", "shelf_life_expiry",
           "with_expiry"]

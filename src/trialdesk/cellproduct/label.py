"""Product labels as PDF: a Code 128 barcode and the human-readable fields.

The label carries the product identifier (DIN with flags and its boxed check character,
then the product code) as a Code 128 barcode and as text, the product type, the collection
date, the expiry, "For autologous use only" on autologous products, and only the patient
identifiers the site's policy allows (ICCBBA ST-001 and the ISBT 128 labelling of cellular
therapy products; FACT-JACIE International Standards, 8th ed., part E "Labels", not
checked). The barcode carries DIN, flags and product code without the check character:
Code 128 has its own check symbol. reportlab draws the barcode and writes the PDF in
memory; the caller stores or writes the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from trialdesk.cellproduct.identifier import ProductId
from trialdesk.cellproduct.product import ProductError

AUTOLOGOUS_TEXT = "FOR AUTOLOGOUS USE ONLY"


@dataclass(frozen=True)
class PatientPolicy:
    """Which patient identifiers the site allows on a label (names as the chart keys them)."""

    allowed: frozenset[str] = frozenset({"patient_id"})

    def shown(self, identifiers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in identifiers.items() if k in self.allowed and v)


@dataclass(frozen=True)
class LabelFields:
    product_id: ProductId
    product_type: str
    collected_on: date
    expires_at: datetime | None
    autologous: bool
    trial_id: str | None = None
    facility: str | None = None
    patient: tuple[tuple[str, str], ...] = ()
    extra: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Label:
    pdf: bytes
    barcode_value: str
    codewords: tuple[int, ...]  # Code 128 symbol values: start, data, check symbol, stop


_MM = 72 / 25.4
_SIZE_MM = 100.0  # ISBT 128 base label 100 mm × 100 mm (ST-001 labelling), not checked


def render(fields: LabelFields) -> Label:
    """The label as PDF bytes, with the barcode value and its Code 128 symbol values."""
    from io import BytesIO

    from reportlab.graphics.barcode.code128 import Code128
    from reportlab.pdfgen.canvas import Canvas

    if not fields.product_type.strip():
        raise ProductError("the product type is missing", where="product type")
    value = fields.product_id.barcode
    size = _SIZE_MM * _MM
    buffer = BytesIO()
    canvas = Canvas(buffer, pagesize=(size, size), invariant=True)
    canvas.setTitle(f"Cell product label {fields.product_id.text}")
    barcode = Code128(value, barHeight=14 * _MM, barWidth=0.25 * _MM, humanReadable=False,
                      quiet=True)
    barcode.drawOn(canvas, 5 * _MM, size - 22 * _MM)
    y = size - 28 * _MM
    din = fields.product_id.din
    head = f"{din.facility} {din.year:02d} {din.sequence:06d} {din.flags}"
    canvas.setFont("Helvetica-Bold", 12)
    canvas.drawString(5 * _MM, y, head)
    # The check character is printed boxed after the flags (ST-001 keyboard entry).
    x = 5 * _MM + canvas.stringWidth(head, "Helvetica-Bold", 12) + 3 * _MM
    canvas.rect(x - 1, y - 2.5, 10, 13, stroke=1, fill=0)
    canvas.drawString(x + 1, y, din.check)
    y -= 6 * _MM
    body: list[tuple[str, float, str]] = [
        ("Helvetica", 10, f"Product code: {fields.product_id.code.text}"),
        ("Helvetica-Bold", 11, fields.product_type),
        ("Helvetica", 10, f"Collected: {fields.collected_on.isoformat()}"),
        ("Helvetica", 10, "Expires: " + (fields.expires_at.strftime("%Y-%m-%d %H:%M")
                                         if fields.expires_at else "not set")),
    ]
    if fields.trial_id:
        body.append(("Helvetica", 10, f"Clinical trial: {fields.trial_id}"))
    if fields.facility:
        body.append(("Helvetica", 9, fields.facility))
    body += [("Helvetica", 10, f"{_label(k)}: {v}") for k, v in fields.patient]
    body += [("Helvetica", 9, text) for text in fields.extra]
    if fields.autologous:
        body.append(("Helvetica-Bold", 13, AUTOLOGOUS_TEXT))
    for font, points, text in body:
        canvas.setFont(font, points)
        canvas.drawString(5 * _MM, y, text)
        y -= (points + 4)
    if y < 3 * _MM:
        raise ProductError("too many fields for one label", where="label")
    canvas.showPage()
    canvas.save()
    barcode.validate()
    barcode.encode()
    return Label(buffer.getvalue(), value, tuple(int(v) for v in barcode.encoded))


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize().replace(" id", " ID")

"""Cell-product identifiers and labels: product din, check, label (no database)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trialdesk.cli.common import JsonOpt, _console, _say, app, domain_errors, write_atomic

product_app = typer.Typer(
    help="Cell products: ISBT 128 identifiers with their check character, and labels.",
    no_args_is_help=True)
app.add_typer(product_app, name="product")

FacilityOpt = Annotated[str, typer.Option(
    "--facility", envvar="TRIALDESK_FACILITY",
    help="Facility identification number (5 characters, assigned by ICCBBA); a site setting.")]


@product_app.command("din")
@domain_errors
def product_din(
    facility: FacilityOpt,
    year: Annotated[int, typer.Option("--year", help="Year of collection (2026 or 26).")],
    seq: Annotated[int, typer.Option("--seq", help="Sequence number within facility and year.")],
    flags: Annotated[str, typer.Option("--flags", help="Two flag characters.")] = "00",
    as_json: JsonOpt = False,
) -> None:
    """Make a Donation Identification Number with its ISO 7064 Mod 37-2 check character."""
    from trialdesk.cellproduct.identifier import Din

    din = Din.make(facility, year, seq, flags)
    if as_json:
        typer.echo(json.dumps({"din": din.din13, "flags": din.flags, "check": din.check,
                               "text": din.text, "barcode": din.barcode}))
        return
    console = _console()
    _say(console, din.text, "bold")
    _say(console, f"on the label: {din.spaced}")


@product_app.command("check")
@domain_errors
def product_check(
    identifier: Annotated[str, typer.Argument(
        help="A DIN with flags and check character, optionally followed by the product code.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate a typed identifier's check character; exit 1 if it is wrong."""
    from trialdesk.cellproduct.identifier import parse_din, parse_product_id

    raw = "".join(identifier.split())
    if len(raw) > 16:
        product = parse_product_id(identifier, require_check=True)
        din, code = product.din, product.code.text
    else:
        din, code = parse_din(identifier, require_check=True), None
    if as_json:
        typer.echo(json.dumps({"valid": True, "din": din.din13, "flags": din.flags,
                               "check": din.check, "product_code": code}))
        return
    _say(_console(), f"valid: {din.text}" + (f" {code}" if code else ""), "green")


@product_app.command("label")
@domain_errors
def product_label(
    identifier: Annotated[str, typer.Option(
        "--id", help="Product identifier: DIN, flags, check character and product code.")],
    product_type: Annotated[str, typer.Option("--type", help="Product type, as printed.")],
    collected: Annotated[str, typer.Option("--collected", help="Collection date (ISO).")],
    out: Annotated[Path, typer.Option("--out", help="PDF file to write.")],
    expires: Annotated[str | None, typer.Option("--expires", help="Expiry date-time (ISO).")] = None,
    autologous: Annotated[bool, typer.Option(
        "--autologous/--third-party", help="Print 'For autologous use only'.")] = True,
    trial: Annotated[str | None, typer.Option("--trial", help="Clinical trial id.")] = None,
    patient: Annotated[list[str] | None, typer.Option(
        "--patient", help="Patient identifier as NAME=VALUE (repeat); printed only if --allow "
                          "names it.")] = None,
    allow: Annotated[list[str] | None, typer.Option(
        "--allow", help="Patient identifiers the site's policy allows on labels "
                        "(default: patient_id).")] = None,
) -> None:
    """Write a product label (PDF) with a Code 128 barcode and the human-readable fields."""
    from datetime import date, datetime

    from trialdesk.cellproduct.identifier import parse_product_id
    from trialdesk.cellproduct.label import LabelFields, PatientPolicy, render

    pid = parse_product_id(identifier, require_check=True)
    try:
        collected_on = date.fromisoformat(collected)
        expires_at = datetime.fromisoformat(expires) if expires else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--collected/--expires") from None
    identifiers: dict[str, str] = {}
    for item in patient or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"'{item}' is not NAME=VALUE", param_hint="--patient")
        identifiers[name.strip()] = value.strip()
    policy = PatientPolicy(frozenset(allow) if allow else PatientPolicy().allowed)
    label = render(LabelFields(pid, product_type, collected_on, expires_at, autologous,
                               trial_id=trial, patient=policy.shown(identifiers)))
    write_atomic(out, label.pdf)
    _say(_console(), f"wrote {out} (barcode {label.barcode_value})")

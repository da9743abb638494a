"""Cell products: identifiers and labels (din, check, label: no database), and the product
record on the database through the services (collect, derive, test, release, transfer,
verify, infuse, history, lab), acting as ``--by USER``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trialdesk.cli.common import JsonOpt, _console, _say, app, domain_errors, write_atomic
from trialdesk.cli.patients import StudyArg, iso_moment
from trialdesk.cli.session import (
    DEFAULT_DATA_DIR,
    DatabaseOpt,
    DataDirOpt,
    PasswordOpt,
    ReasonOpt,
    UserOpt,
    acting,
    open_services,
    reason_given,
)

if TYPE_CHECKING:
    from trialdesk.cellproduct.product import Counts
    from trialdesk.services.accounts import Principal
    from trialdesk.services.context import Services

product_app = typer.Typer(
    help="Cell products: ISBT 128 identifiers and labels; collection to infusion on the record.",
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


# ---------------------------------------------------------------------------- on the record

ProductArg = Annotated[str, typer.Argument(
    help="Product identifier: DIN, flags, check character and product code, e.g. "
         "'A999926000001 00 4 S0001A00'.")]
AtOpt = Annotated[str, typer.Option("--at", help="When (ISO date-time).")]
CodeOpt = Annotated[str | None, typer.Option(
    "--code", help="ISBT 128 product code: description code and type of donation, e.g. S0002A.")]


def _session(by: str, data_dir: Path, database: str | None) -> tuple[Services, Principal]:
    ctx = open_services(data_dir, database)
    return ctx, acting(ctx, by)


def _counts(tnc: float | None, mnc: float | None, viable: float | None,
            viability: float | None) -> Counts:
    from trialdesk.cellproduct.product import Counts

    return Counts(tnc=tnc, mnc=mnc, viable_cells=viable, viability_percent=viability)


def _show(doc: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    _say(_console(), line, "bold")


TncOpt = Annotated[float | None, typer.Option("--tnc", help="Total nucleated cells.")]
MncOpt = Annotated[float | None, typer.Option("--mnc", help="Mononuclear cells.")]
ViableOpt = Annotated[float | None, typer.Option("--viable-cells", help="Viable cells.")]
ViabilityOpt = Annotated[float | None, typer.Option("--viability", help="Viability in %.")]
VolumeOpt = Annotated[float | None, typer.Option("--volume", help="Volume in mL.")]


@product_app.command("collect")
@domain_errors
def product_collect(
    trial: Annotated[str, typer.Option("--trial", help="Trial id, e.g. NB-NK-2026.")],
    product_type: Annotated[str, typer.Option(
        "--type", help="Product type of the protocol, e.g. nk-collection.")],
    code: Annotated[str, typer.Option(
        "--code", help="ISBT 128 product code: description code and type of donation, e.g. "
                       "S0001A.")],
    at: AtOpt,
    procedure: Annotated[str, typer.Option(
        "--procedure", help="Apheresis, bone marrow, peripheral blood …")],
    facility: FacilityOpt,
    by: UserOpt,
    patient: Annotated[str | None, typer.Option(
        "--patient", help="Study number (autologous: the donor and recipient).")] = None,
    donor: Annotated[str | None, typer.Option(
        "--donor", help="Third-party donor or bank product identity (RuMCeSS MSC).")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Collection site.")] = None,
    volume: VolumeOpt = None, tnc: TncOpt = None, mnc: MncOpt = None,
    viable: ViableOpt = None, viability: ViabilityOpt = None,
    reason: ReasonOpt = "collection recorded",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record a collection; it gets the next DIN of the facility with its check character."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    doc = cellproduct.record_collection(
        ctx, who, trial_id=trial, spec_id=product_type, facility=facility, code=code,
        collected_at=iso_moment(at, "--at"), procedure=procedure, patient=patient, donor=donor,
        site=site, volume_ml=volume, counts=_counts(tnc, mnc, viable, viability),
        reason=reason_given(reason))
    _show(doc, as_json, f"collected {doc['id']}")


@product_app.command("derive")
@domain_errors
def product_derive(
    parent: ProductArg,
    product_type: Annotated[str, typer.Option("--type", help="Product type, e.g. nk-dose.")],
    at: AtOpt,
    by: UserOpt,
    code: CodeOpt = None,
    division: Annotated[int | None, typer.Option(
        "--division", help="Part number of a split (aliquots), from 0.")] = None,
    recipient: Annotated[str | None, typer.Option(
        "--recipient", help="Study number a third-party dose is assigned to.")] = None,
    volume: VolumeOpt = None, viable: ViableOpt = None, viability: ViabilityOpt = None,
    storage: Annotated[str | None, typer.Option("--storage", help="Storage position.")] = None,
    reason: ReasonOpt = "product prepared",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record a product made from PARENT (processing, aliquot, thawed dose)."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    doc = cellproduct.derive_product(
        ctx, who, parent, spec_id=product_type, prepared_at=iso_moment(at, "--at"), code=code,
        division=division, recipient=recipient, volume_ml=volume,
        counts=_counts(None, None, viable, viability), storage=storage,
        reason=reason_given(reason))
    _show(doc, as_json, f"prepared {doc['id']} from {parent}; expires "
                        f"{doc['expires_at'] or 'not set'}")


@product_app.command("test")
@domain_errors
def product_test(
    product: ProductArg,
    test: Annotated[str, typer.Option("--test", help="Release test id of the protocol.")],
    value: Annotated[str, typer.Option("--value", help="A number, or a word (no growth).")],
    at: AtOpt,
    by: UserOpt,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit of a number.")] = None,
    reason: ReasonOpt = "release test result",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record a release-test result."""
    from trialdesk.services import cellproduct

    try:
        number: float | str = float(value)
    except ValueError:
        number = value
    ctx, who = _session(by, data_dir, database)
    doc = cellproduct.record_test_result(ctx, who, product, test_id=test, value=number,
                                         unit=unit, tested_at=iso_moment(at, "--at"),
                                         reason=reason_given(reason))
    _show(doc, as_json, f"{test}: {value} {unit or ''}".strip())


def _show_release(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    console = _console()
    kind = "exceptional release" if doc["exceptional"] else (
        "released" if doc["released"] else "NOT released")
    _say(console, f"{doc['product']}: {kind}", "bold green" if doc["released"] else "bold red")
    for t in doc["tests"]:
        mark = " [unconfirmed]" if t["unconfirmed"] else ""
        _say(console, f"  {t['label']}: {t['outcome']} — {t['result'] or 'no result'} "
                      f"(limit {t['limit'] or 'not set'}; {t['reason']}){mark}")


@product_app.command("release")
@domain_errors
def product_release(
    product: ProductArg,
    by: UserOpt,
    password: PasswordOpt,
    reason: ReasonOpt = "release decision",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Sign the release decision (the lab's responsible person; your password again)."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    _show_release(cellproduct.release_product(ctx, who, product, password=password,
                                              reason=reason_given(reason)), as_json)


@product_app.command("exceptional-release")
@domain_errors
def product_exceptional_release(
    product: ProductArg,
    by: UserOpt,
    password: PasswordOpt,
    investigator: Annotated[str, typer.Option("--investigator", help="The co-signing "
                                              "investigator's user name.")],
    investigator_password: Annotated[str, typer.Option(
        "--investigator-password", envvar="TRIALDESK_COSIGNER_PASSWORD", prompt=True,
        hide_input=True, help="The investigator's password (their e-signature).")],
    justification: Annotated[str, typer.Option("--justification",
                                               help="The clinical justification.")],
    reason: ReasonOpt = "exceptional release",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Release out of specification: signed by you (the lab) and the investigator."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    _show_release(cellproduct.exceptional_release(
        ctx, who, password, acting(ctx, investigator), investigator_password, product,
        justification=justification, reason=reason_given(reason)), as_json)


@product_app.command("transfer")
@domain_errors
def product_transfer(
    product: ProductArg,
    to: Annotated[str, typer.Option("--to", help="Who receives it (a user name).")],
    location: Annotated[str, typer.Option("--location", help="Where it is handed over.")],
    version: Annotated[int, typer.Option("--version", help="The product version you saw "
                                         "(a hand-over based on an older one is refused).")],
    at: AtOpt,
    by: UserOpt,
    temperature: Annotated[float | None, typer.Option(
        "--temperature", help="Storage or shipping temperature, °C.")] = None,
    condition: Annotated[str, typer.Option("--condition", help="Condition on receipt.")] = "intact",
    storage: Annotated[str | None, typer.Option("--storage", help="Storage position.")] = None,
    reason: ReasonOpt = "hand-over",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Hand the product over (you must hold it)."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    doc = cellproduct.hand_over(ctx, who, product, expected_version=version, to=to,
                                location=location, at=iso_moment(at, "--at"),
                                temperature_c=temperature, condition=condition, storage=storage,
                                reason=reason_given(reason))
    _show(doc, as_json, f"{doc['product']} now held by {doc['holder']} at {doc['location']} "
                        f"(version {doc['version']})")


@product_app.command("verify")
@domain_errors
def product_verify(
    study_number: StudyArg,
    event: Annotated[str, typer.Option("--event", help="Calendar event id.")],
    product: Annotated[str, typer.Option("--product", help="The product identifier as "
                                         "typed from the bag, with its check character.")],
    wristband: Annotated[str, typer.Option("--wristband", help="The patient identifier on "
                                           "the wristband.")],
    second: Annotated[str, typer.Option("--second", help="The second verifier's user name.")],
    second_password: Annotated[str, typer.Option(
        "--second-password", envvar="TRIALDESK_SECOND_PASSWORD", prompt=True, hide_input=True,
        help="The second verifier's password.")],
    by: UserOpt,
    scanned: Annotated[bool, typer.Option("--scanned", help="The identifier was scanned "
                                          "(no check character).")] = False,
    reason: ReasonOpt = "bedside verification",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The two-person bedside check; a refusal is recorded with its reasons (exit 1)."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    doc = cellproduct.verify_at_bedside(ctx, who, study_number, event_id=event, entered=product,
                                        wristband=wristband, second_verifier=second,
                                        second_password=second_password, scanned=scanned,
                                        reason=reason_given(reason))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        console = _console()
        if doc["accepted"]:
            _say(console, f"verification {doc['id']}: accepted — {doc['product']} for "
                          f"{study_number}, {doc['event']}", "bold green")
        else:
            _say(console, f"verification {doc['id']}: REFUSED — do not infuse", "bold red")
            for r in doc["refusals"]:
                _say(console, f"  {r['reason']}")
        if doc.get("minutes_left") is not None:
            _say(console, f"  {doc['minutes_left']} minutes left to the deadline {doc['deadline']}")
    if not doc["accepted"]:
        raise typer.Exit(1)


@product_app.command("infuse")
@domain_errors
def product_infuse(
    study_number: StudyArg,
    verification: Annotated[int, typer.Option("--verification", help="The accepted "
                                              "bedside verification's number.")],
    start: Annotated[str, typer.Option("--start", help="Infusion start (ISO date-time).")],
    by: UserOpt,
    end: Annotated[str | None, typer.Option("--end", help="Infusion end.")] = None,
    volume: VolumeOpt = None,
    reaction: Annotated[list[int] | None, typer.Option(
        "--reaction", help="Adverse event id of a reaction (recorded with `ae record`).")] = None,
    observations: Annotated[str, typer.Option("--observations", help="Observations.")] = "",
    reason: ReasonOpt = "infusion recorded",
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Record the infusion after an accepted verification; the calendar event becomes given."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    doc = cellproduct.record_infusion(
        ctx, who, study_number, verification=verification, start=iso_moment(start, "--start"),
        end=iso_moment(end, "--end") if end else None, volume_ml=volume,
        reactions=reaction or [], observations=observations, reason=reason_given(reason))
    met = "" if doc["deadline_met"] is None else (
        "; deadline met" if doc["deadline_met"] else "; DEADLINE MISSED (protocol deviation)")
    _show(doc, as_json, f"{doc['product']} infused to {study_number} ({doc['event']}){met}")


@product_app.command("history")
@domain_errors
def product_history(
    product: ProductArg,
    by: UserOpt,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Also write the PDF report.")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The product's whole history: its line to the donor, releases, custody, bedside."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    doc = cellproduct.product_history(ctx, who, product)
    if pdf is not None:
        write_atomic(pdf, cellproduct.product_history_pdf(ctx, who, product))
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    console = _console()
    _say(console, f"{doc['product']} — donor {doc['donor']['id']} ({doc['donor']['kind']})", "bold")
    for p in doc["line"]:
        c = p["custody"]
        _say(console, f"  {p['id']} {p['type']} ({p['stage']}) prepared {p['prepared_at']}; held "
                      f"by {c['holder']} at {c['location'] or '—'}")
    for d in doc["releases"]:
        kind = "exceptional release" if d["exceptional"] else (
            "released" if d["released"] else "not released")
        _say(console, f"  {d['product']}: {kind} {d['decided_at']}")
    for v in doc["bedside"]:
        _say(console, f"  bedside {v['checked_at']}: "
                      f"{'accepted' if v['accepted'] else 'refused'}")
    if doc["infusion"]:
        _say(console, f"  infused {doc['infusion']['start']} ({doc['infusion']['event']})")


@product_app.command("lab")
@domain_errors
def product_lab(
    by: UserOpt,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """The cell lab's list: products in process, release tests pending, expiring soon."""
    from trialdesk.services import cellproduct

    ctx, who = _session(by, data_dir, database)
    doc = cellproduct.lab_view(ctx, who)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    console = _console()
    for title, items in (("in process", doc["in_process"]), ("tests pending", doc["tests_pending"]),
                         (f"expiring within {doc['hours_ahead']} h", doc["expiring"])):
        _say(console, f"{title}: {len(items)}", "bold")
        for i in items:
            _say(console, f"  {i['product']} {i['type']} — {i['holder']} at {i['location'] or '—'}"
                          f"; expires {i['expires_at'] or 'not set'}")

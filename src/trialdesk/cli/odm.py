"""ODM in and out: ``trialdesk import odm FILE --trial ID (--out DIR | --by USER)`` and
``trialdesk odm export --trial ID --by USER --out FILE``.

With ``--out``, reads the clinical data of a CDISC ODM 1.3.2 file written for the trial
(``trialdesk export odm``) back into the outcome input files (event table, exposure, labs,
tumour measurements as CSV; adverse events as JSON), each checked by the same validators as
when given on the command line. With ``--by``, stores the record a ``trialdesk odm export``
file holds (observations of the patient records, body measurements and follow-up facts of
the enrolled patients) in the database
through the services, in one transaction with its audit entries; a file whose metadata
differs from the trial's is refused, and what is already stored is not added again.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated

import typer

from trialdesk.cli.common import ProtocolsOpt, TrialOpt, _protocols, _trial, app, write_atomic
from trialdesk.cli.outcomes import outcome_errors
from trialdesk.cli.session import DEFAULT_DATA_DIR, DatabaseOpt, DataDirOpt

import_app = typer.Typer(help="Clinical data in from standard exchange files (CDISC ODM).",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")
odm_app = typer.Typer(help="The stored record as CDISC ODM 1.3.2.", no_args_is_help=True)
app.add_typer(odm_app, name="odm")
ByOpt = Annotated[str | None, typer.Option("--by", envvar="TRIALDESK_USER", help="Your user name.")]


def _read(file: Path) -> bytes:
    from trialdesk.errors import OutcomeError

    try:
        return file.read_bytes()
    except OSError as exc:
        raise OutcomeError(f"cannot read file: {exc.strerror}", where=str(file)) from None


@odm_app.command("export")
@outcome_errors
def export_record_cmd(
    trial: TrialOpt,
    by: Annotated[str, typer.Option("--by", envvar="TRIALDESK_USER", help="Your user name.")],
    out: Annotated[Path, typer.Option("--out", help="The ODM 1.3.2 XML file to write.")],
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Write the enrolled patients' observations, body measurements and follow-up facts as ODM 1.3.2."""
    from trialdesk.cli.session import acting, open_services
    from trialdesk.services.exchange import export_record_odm

    ctx = open_services(data_dir, database)
    write_atomic(out, export_record_odm(ctx, acting(ctx, by), trial))
    typer.echo(f"wrote {out}")


@import_app.command("odm")
@outcome_errors
def import_odm_cmd(
    file: Annotated[Path, typer.Argument(help="An ODM 1.3.2 XML file.")],
    trial: TrialOpt,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the outcome input files (created if missing).")] = None,
    protocols: ProtocolsOpt = None,
    by: ByOpt = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")] = "ODM import",
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Read an ODM file's clinical data back as the trial's outcome input files (--out), or
    store the record it holds in the database (--by), checked."""
    if (out is None) == (by is None):
        raise typer.BadParameter("give --out (outcome input files) or --by (store in the database)",
                                 param_hint="--out")
    if by is not None:
        from trialdesk.cli.session import acting, open_services
        from trialdesk.services.exchange import import_record_odm

        ctx = open_services(data_dir, database)
        summary = import_record_odm(ctx, acting(ctx, by), trial, _read(file), reason=reason)
        typer.echo(f"imported {summary.added} record(s) for {len(summary.patients)} patient(s); "
                   f"{summary.already_stored} already stored")
        return
    assert out is not None
    import pandas as pd

    from trialdesk.outcomes.events import validate_event_table
    from trialdesk.outcomes.export_odm import read_odm
    from trialdesk.outcomes.inputs import (
        validate_adverse_events,
        validate_exposure,
        validate_labs,
        validate_measurements,
    )

    compiled = _trial(_protocols(protocols), trial)
    document = read_odm(_read(file), trial=compiled.id)
    frames = {k: pd.DataFrame(document[k], dtype=object) for k in ("events", "exposure", "labs", "tumour")}
    events = validate_event_table(frames["events"], arms=[a.id for a in compiled.protocol.arms])
    checks = {"exposure": validate_exposure, "labs": validate_labs, "tumour": validate_measurements}
    for name, check in checks.items():
        if len(frames[name]):
            check(frames[name], events, where=f"{file}: {name}")
    if document["adverse_events"]:
        validate_adverse_events(document["adverse_events"], events, where=f"{file}: adverse events")
    files: dict[str, bytes] = {}
    for name, frame in frames.items():
        if len(frame):
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False, lineterminator="\n")
            files[f"{name}.csv"] = buffer.getvalue().encode("utf-8")
    if document["adverse_events"]:
        files["aes.json"] = json.dumps({"trial": compiled.id, "adverse_events": document["adverse_events"]},
                                       indent=1, ensure_ascii=False).encode("utf-8")
    out.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        write_atomic(out / name, body)
        typer.echo(f"wrote {out / name}")

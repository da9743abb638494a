"""ODM in: ``trialdesk import odm FILE --trial ID --out DIR``.

Reads the clinical data of a CDISC ODM 1.3.2 file written for the trial (``trialdesk export
odm``) back into the outcome input files (event table, exposure, labs, tumour measurements
as CSV; adverse events as JSON), each checked by the same validators as when given on the
command line. Nothing is stored in the database: the files are the way in for now.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated

import typer

from trialdesk.cli.common import ProtocolsOpt, TrialOpt, _protocols, _trial, app, write_atomic
from trialdesk.cli.outcomes import outcome_errors

import_app = typer.Typer(help="Clinical data in from standard exchange files (CDISC ODM).",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("odm")
@outcome_errors
def import_odm_cmd(
    file: Annotated[Path, typer.Argument(help="An ODM 1.3.2 XML file.")],
    trial: TrialOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the input files (created if missing).")],
    protocols: ProtocolsOpt = None,
) -> None:
    """Read an ODM file's clinical data back as the trial's outcome input files, checked."""
    import pandas as pd

    from trialdesk.errors import OutcomeError
    from trialdesk.outcomes.events import validate_event_table
    from trialdesk.outcomes.export_odm import read_odm
    from trialdesk.outcomes.inputs import (
        validate_adverse_events,
        validate_exposure,
        validate_labs,
        validate_measurements,
    )

    compiled = _trial(_protocols(protocols), trial)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise OutcomeError(f"cannot read file: {exc.strerror}", where=str(file)) from None
    document = read_odm(data, trial=compiled.id)
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

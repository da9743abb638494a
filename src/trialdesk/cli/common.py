"""The command line's shared pieces: the typer app, option types, error handling, helpers."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from trialdesk.errors import FactError, NotFoundError, TrialdeskError

if TYPE_CHECKING:
    from trialdesk.protocol.load import CompiledProtocol

app = typer.Typer(
    name="trialdesk",
    help="Run interventional clinical trials from a machine-readable protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

P = ParamSpec("P")
R = TypeVar("R")

ProtocolsOpt = Annotated[
    Path | None,
    typer.Option("--protocols", help="Directory of protocol files (default: bundled protocols)."),
]


def _console() -> Console:
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 120)


def _err(message: str) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)


def domain_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a TrialdeskError into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TrialdeskError as exc:
            _err(str(exc).replace("\n", " "))
            raise typer.Exit(1) from None

    return wrapper


def _protocols(directory: Path | None) -> dict[str, CompiledProtocol]:
    """The protocols of a folder (default: the bundled ones), compiled once per file content
    (see :mod:`trialdesk.cli.protocol_cache`)."""
    from trialdesk.cli.protocol_cache import load_directory_cached
    from trialdesk.protocol.paths import default_protocol_dir

    return load_directory_cached(directory or default_protocol_dir())


def _trial(protocols: dict[str, CompiledProtocol], trial_id: str) -> CompiledProtocol:
    if trial_id in protocols:
        return protocols[trial_id]
    lowered = {k.lower(): k for k in protocols}
    if trial_id.lower() in lowered:
        return protocols[lowered[trial_id.lower()]]
    import difflib

    close = difflib.get_close_matches(trial_id, list(protocols), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise NotFoundError(f"no trial '{trial_id}'{hint}; known: {', '.join(sorted(protocols))}")


def parse_moment(text: str | None) -> datetime:
    """``--on``: an ISO date (taken at 00:00) or date-time; default now, to the minute."""
    if text is None:
        return datetime.now().replace(second=0, microsecond=0)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time())
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not an ISO date or date-time",
                                 param_hint="--on") from None
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


def read_patient_file(path: Path) -> Any:
    """A patient file is JSON whatever its name; errors are FactErrors naming the file."""
    from trialdesk.protocol.load import read_document

    return read_document(path, FactError, as_json=True)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document.")]
TrialOpt = Annotated[str, typer.Option("--trial", help="Trial id, e.g. NB-NK-2026.")]


def _say(console: Console, text: str, style: str | None = None) -> None:
    console.print(Text(text, style=style or ""), highlight=False, soft_wrap=True)


def _mark(unconfirmed: bool) -> str:
    return " [unconfirmed]" if unconfirmed else ""


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    import os
    import tempfile

    from trialdesk.errors import OutcomeError

    target = path.resolve()
    if not target.parent.is_dir():
        raise OutcomeError("the folder does not exist", where=str(path.parent))
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as an ordinary new file, not 0600
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


DataOpt = Annotated[Path, typer.Option("--data", envvar="TRIALDESK_DATA",
                                       help="Directory of journey and randomisation files.")]
_DEFAULT_DATA = Path("trialdesk-data")


def main() -> None:
    """Console entry point."""
    app()

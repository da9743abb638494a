"""Outcomes, plots, reports and export: outcomes, plot, report, export."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from trialdesk.cli.common import (
    JsonOpt,
    P,
    ProtocolsOpt,
    R,
    TrialOpt,
    _console,
    _err,
    _protocols,
    _say,
    _trial,
    app,
    write_atomic,
)
from trialdesk.cli.session import DEFAULT_DATA_DIR, DatabaseOpt, DataDirOpt
from trialdesk.errors import TrialdeskError

# --------------------------------------------------------------------------- outcomes, plots, reports
# Endpoints and survival from an event table; trial plots; the DSMB report; SDTM and FHIR
# export. Bad input files are refused with every bad row listed in one block (exit 1);
# output files are written to a temporary file first and renamed, so none is half-written.

report_app = typer.Typer(help="Reports: the DSMB report (PDF).", no_args_is_help=True)
app.add_typer(report_app, name="report")

EventsOpt = Annotated[Path | None, typer.Option(
    "--events", help="Event table (CSV or Parquet); without it, the trial's stored record "
                     "(with --by).")]
StoredByOpt = Annotated[str | None, typer.Option(
    "--by", envvar="TRIALDESK_USER", help="Your user name, to analyse the stored trial record.")]
AesOpt = Annotated[Path | None, typer.Option("--aes", help="Adverse events (JSON).")]
TumourOpt = Annotated[Path | None, typer.Option(
    "--tumour", "--responses", help="Tumour measurements and time-point responses (CSV).")]
ExposureOpt = Annotated[Path | None, typer.Option("--exposure", help="Agents given per course (CSV).")]
LabsOpt = Annotated[Path | None, typer.Option("--labs", help="Laboratory results (CSV).")]
TimeUnitOpt = Annotated[str, typer.Option("--time-unit", help="days, months or auto.")]
EndpointsOpt = Annotated[str | None, typer.Option(
    "--endpoints", help="e.g. ORR,OS,PFS,RFS or 28-day-mortality (default: the protocol's).")]


def outcome_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Like :func:`domain_errors`, but a refused input file prints every problem, one per line."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from rich.markup import escape

        from trialdesk.outcomes.events import EventTableError

        try:
            return fn(*args, **kwargs)
        except EventTableError as exc:
            count = len(exc.problems)
            lines = "\n".join(f"  {p}" for p in exc.problems)
            _err(escape(f"{exc.where}: {count} problem{'s' if count != 1 else ''}; nothing was written:"
                        f"\n{lines}"))
            raise typer.Exit(1) from None
        except TrialdeskError as exc:
            _err(escape(str(exc)))
            raise typer.Exit(1) from None

    return wrapper


def _read_table(path: Path) -> Any:
    """A CSV (every cell as text, empty = missing) or Parquet file as a DataFrame."""
    import io

    import pandas as pd

    from trialdesk.documents import decode
    from trialdesk.errors import OutcomeError

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            text = decode(path.read_bytes(), OutcomeError, where=str(path))
            return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as exc:
        raise OutcomeError(f"cannot read file: {exc}", where=str(path)) from None
    raise OutcomeError("expected a .csv or .parquet file", where=str(path))


def _read_json(path: Path) -> Any:
    from trialdesk.documents import read_document
    from trialdesk.errors import OutcomeError

    return read_document(path, OutcomeError, as_json=True)


class _OutcomeInputs:
    """The protocol and every given input file, validated (nothing is used half-read)."""

    @classmethod
    def stored(cls, trial: str, by: str | None, data_dir: Path, database: str | None, *,
               country: str | None = None) -> _OutcomeInputs:
        """The trial's stored record as the outcome inputs, de-identified (the statistician's
        view): the same data the web application's outcomes page analyses."""
        from trialdesk.cli.session import acting, open_services
        from trialdesk.services import outcomes

        if by is None:
            raise typer.BadParameter("give --events (a file) or --by (your user name) to analyse "
                                     "the stored trial", param_hint="--events")
        ctx = open_services(data_dir, database)
        data = outcomes.stored_inputs(ctx, acting(ctx, by), trial, country=country)
        self = cls.__new__(cls)
        self.compiled = data.compiled
        self.protocol = data.compiled.protocol
        assert data.events is not None  # stored_inputs refuses a trial without patients
        self.events = data.events
        self.aes, self.measurements, self.exposure = data.aes, data.measurements, data.exposure
        self.labs = None
        self.record = data.record
        self.sources = (f"trialdesk database, trial {data.compiled.id}",)
        self.notes = data.notes
        self.products = outcomes.trial_products(ctx, data.compiled.id)
        return self

    @classmethod
    def given(cls, trial: str, events: Path | None, protocols: Path | None, by: str | None,
              data_dir: Path, database: str | None, *, country: str | None = None,
              **files: Path | None) -> _OutcomeInputs:
        """From the files when an event table is given, else from the stored trial."""
        if events is None:
            if any(v is not None for v in files.values()):
                raise typer.BadParameter("input files go with --events; the stored trial brings "
                                         "its own", param_hint="--events")
            return cls.stored(trial, by, data_dir, database, country=country)
        return cls(trial, events, protocols, **files)

    def __init__(self, trial: str, events: Path, protocols: Path | None, *, aes: Path | None = None,
                 tumour: Path | None = None, exposure: Path | None = None,
                 labs: Path | None = None) -> None:
        from trialdesk.outcomes.events import EventTableError, validate_event_table
        from trialdesk.outcomes.inputs import (
            validate_adverse_events,
            validate_exposure,
            validate_labs,
            validate_measurements,
        )

        self.compiled = _trial(_protocols(protocols), trial)
        self.protocol = self.compiled.protocol
        arm_ids = [a.id for a in self.protocol.arms]
        try:
            self.events = validate_event_table(_read_table(events), arms=arm_ids)
        except EventTableError as exc:
            raise EventTableError(exc.problems, where=str(events)) from None
        self.aes = None if aes is None else validate_adverse_events(_read_json(aes), self.events,
                                                                    where=str(aes))
        self.measurements = None if tumour is None else validate_measurements(
            _read_table(tumour), self.events, where=str(tumour))
        self.exposure = None if exposure is None else validate_exposure(
            _read_table(exposure), self.events, where=str(exposure))
        self.labs = None if labs is None else validate_labs(_read_table(labs), self.events,
                                                            where=str(labs))
        self.notes: tuple[str, ...] = ()
        self.products: Any = None  # cell products come with the stored trial only
        self.record: Any = None
        self.sources = tuple(f"{kind}: {path}" for kind, path in (
            ("protocol", self.compiled.path or self.compiled.id), ("events", events), ("adverse events", aes),
            ("tumour measurements", tumour), ("exposure", exposure), ("labs", labs)) if path is not None)

    @property
    def arm_labels(self) -> dict[str, str]:
        return {a.id: a.label for a in self.protocol.arms}

    def summary(self, endpoints: str | None, time_unit: str, landmarks: str | None = None) -> Any:
        from trialdesk.outcomes.summary import choose_time_unit, endpoints_for, parse_endpoints, summarise

        registry = self.protocol.registry.outcomes
        measures = [o.measure for o in (*registry.primary, *registry.secondary)]
        measures += [self.protocol.registry.description.detailed_description or ""]
        choice = parse_endpoints(endpoints) if endpoints else endpoints_for(measures)
        unit = choose_time_unit(self.events, time_unit)
        times = None
        if landmarks:
            try:
                times = [float(t) for t in landmarks.split(",") if t.strip()]
            except ValueError:
                raise typer.BadParameter(f"{landmarks!r} is not a list of numbers",
                                         param_hint="--landmark") from None
        return summarise(self.events, choice, trial=self.compiled.id, time_unit=unit, landmarks=times)


def _fmt(value: Any, digits: int = 1) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "not reached"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if hasattr(value, "date") and not isinstance(value, str):
        return value.date().isoformat()
    return str(value)


def _frame_table(frame: Any, title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*[_fmt(v, 3 if isinstance(v, float) and abs(v) < 1 else 1) for v in row])
    return table


@app.command("outcomes")
@outcome_errors
def outcomes_cmd(
    trial: TrialOpt,
    events: EventsOpt = None,
    endpoints: EndpointsOpt = None,
    time_unit: TimeUnitOpt = "auto",
    landmark: Annotated[str | None, typer.Option(
        "--landmark", help="Landmark times in the time unit, e.g. 24,60 (default 2 and 5 years).")] = None,
    as_json: JsonOpt = False,
    protocols: ProtocolsOpt = None,
    by: StoredByOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Endpoints patient by patient (ORR, OS, PFS, EFS, RFS, N-day mortality) with totals,
    Kaplan–Meier medians, landmark survival and the log-rank test between arms."""
    inputs = _OutcomeInputs.given(trial, events, protocols, by, data_dir, database)
    summary = inputs.summary(endpoints, time_unit, landmark)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
        return
    console = _console()
    unit = summary.time_unit
    for prop in summary.proportions.values():
        console.rule(f"[bold]{prop.name}")
        _say(console, prop.definition, "dim")
        console.print(_frame_table(prop.table.drop(columns=["response_criteria"], errors="ignore"),
                                   "Per patient"))
        console.print(_frame_table(prop.summary.reset_index(), "Totals"))
    for tte in summary.time_to_event.values():
        endpoint = tte.endpoint
        console.rule(f"[bold]{endpoint.name}")
        _say(console, endpoint.definition, "dim")
        columns = ["patient_id", "arm", "start_date", "end_date", "event", "reason", "time_days",
                   "time_months"]
        console.print(_frame_table(endpoint.table[columns], "Per patient"))
        if len(endpoint.excluded):
            console.print(_frame_table(endpoint.excluded, "Not in the population"))
        console.print(_frame_table(endpoint.summary.reset_index(), "Totals"))
        if tte.kaplan_meier is not None:
            km = tte.kaplan_meier.summary.reset_index()
            console.print(_frame_table(km, f"Kaplan–Meier median ({unit}, 95% CI)"))
        if len(tte.landmarks):
            console.print(_frame_table(tte.landmarks, f"Landmark survival (time in {unit})"))
        if tte.logrank is not None:
            lr = tte.logrank
            _say(console, f"log-rank {', '.join(lr.groups)}: χ² = {lr.test_statistic:.3f}, "
                 f"df = {lr.degrees_of_freedom}, p = {lr.p_value:.4f}")
        elif tte.note:
            _say(console, tte.note, "dim")


PLOT_KINDS = ("km", "swimmer", "waterfall", "ae-heatmap")


@app.command("plot")
@outcome_errors
def plot_cmd(
    kind: Annotated[str, typer.Argument(help="km, swimmer, waterfall or ae-heatmap.")],
    trial: TrialOpt,
    out: Annotated[Path, typer.Option("--out", help="Output file: .png, .svg or .pdf.")],
    events: Annotated[Path | None, typer.Option("--events", help="Event table (CSV or Parquet).")] = None,
    aes: AesOpt = None,
    tumour: TumourOpt = None,
    exposure: ExposureOpt = None,
    endpoint: Annotated[str, typer.Option("--endpoint", help="For km: OS, PFS, EFS or RFS.")] = "OS",
    time_unit: TimeUnitOpt = "auto",
    protocols: ProtocolsOpt = None,
) -> None:
    """Draw a Kaplan–Meier (with numbers at risk), swimmer, waterfall or AE heat-map plot."""
    from trialdesk.outcomes import plots

    if kind not in PLOT_KINDS:
        raise typer.BadParameter(f"choose one of {', '.join(PLOT_KINDS)}", param_hint="KIND")
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in plots.FORMATS:
        raise typer.BadParameter("the file must end in .png, .svg or .pdf", param_hint="--out")
    needs = {"km": ("--events", events), "swimmer": ("--events", events), "waterfall": ("--tumour", tumour),
             "ae-heatmap": ("--aes", aes)}
    option, given = needs[kind]
    if given is None:
        raise typer.BadParameter(f"{kind} needs {option}", param_hint=option)
    if events is None:
        # The AE heat-map and the waterfall can be drawn without an event table.
        from trialdesk.outcomes.inputs import validate_adverse_events, validate_measurements

        _trial(_protocols(protocols), trial)
        if kind == "ae-heatmap" and aes is not None:
            figure = plots.ae_heatmap_figure(validate_adverse_events(_read_json(aes), where=str(aes)),
                                             title=f"Adverse events by term, grade and course — {trial}")
        elif tumour is not None:
            figure = plots.waterfall_figure(validate_measurements(_read_table(tumour), where=str(tumour)),
                                            title=f"Best change in tumour size — {trial}")
        write_atomic(out, plots.render(figure, fmt))
        typer.echo(f"wrote {out}")
        return
    inputs = _OutcomeInputs(trial, events, protocols, aes=aes, tumour=tumour, exposure=exposure)
    name = inputs.compiled.id
    if kind == "km":
        wanted = endpoint.upper()
        if wanted not in ("OS", "PFS", "EFS", "RFS"):
            raise typer.BadParameter("choose OS, PFS, EFS or RFS", param_hint="--endpoint")
        summary = inputs.summary(wanted, time_unit)
        tte = summary.time_to_event[wanted]
        if tte.kaplan_meier is None:
            from trialdesk.errors import OutcomeError

            raise OutcomeError(tte.note or "nothing to draw", where=wanted)
        figure = plots.km_figure(tte.kaplan_meier, title=f"{tte.endpoint.name} — {name}",
                                 y_label=f"{tte.endpoint.name} probability", time_unit=summary.time_unit,
                                 logrank=tte.logrank)
    elif kind == "swimmer":
        from trialdesk.outcomes.summary import choose_time_unit

        figure = plots.swimmer_figure(inputs.events, exposure=inputs.exposure,
                                      measurements=inputs.measurements,
                                      time_unit=choose_time_unit(inputs.events, time_unit),
                                      title=f"Time on study — {name}")
    elif kind == "waterfall" and inputs.measurements is not None:
        figure = plots.waterfall_figure(inputs.measurements, inputs.events,
                                        title=f"Best change in tumour size — {name}")
    elif inputs.aes is not None:
        figure = plots.ae_heatmap_figure(inputs.aes,
                                         title=f"Adverse events by term, grade and course — {name}")
    write_atomic(out, plots.render(figure, fmt))
    typer.echo(f"wrote {out}")


@report_app.command("dsmb")
@outcome_errors
def report_dsmb_cmd(
    trial: TrialOpt,
    out: Annotated[Path, typer.Option("--out", help="Output PDF file.")],
    events: EventsOpt = None,
    aes: AesOpt = None,
    tumour: TumourOpt = None,
    exposure: ExposureOpt = None,
    stopping: Annotated[Path | None, typer.Option(
        "--stopping", help="Count-based stopping-rule status (JSON).")] = None,
    cutoff: Annotated[str | None, typer.Option("--cutoff", help="Data cut-off date (ISO).")] = None,
    endpoints: EndpointsOpt = None,
    time_unit: TimeUnitOpt = "auto",
    protocols: ProtocolsOpt = None,
    by: StoredByOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Write the DSMB report (PDF): enrolment, exposure, AEs by term, grade and relation,
    SAEs, deaths, stopping rules, response, survival and the plots."""
    import pandas as pd

    from trialdesk.outcomes.report import (
        DsmbInputs,
        dsmb_pdf,
        parse_stopping_rules,
        protocol_stopping_status,
        stopping_status,
    )

    if out.suffix.lower() != ".pdf":
        raise typer.BadParameter("the report is a .pdf file", param_hint="--out")
    day = None
    if cutoff is not None:
        try:
            day = date.fromisoformat(cutoff)
        except ValueError:
            raise typer.BadParameter(f"'{cutoff}' is not an ISO date", param_hint="--cutoff") from None
    inputs = _OutcomeInputs.given(trial, events, protocols, by, data_dir, database, aes=aes,
                                  tumour=tumour, exposure=exposure)
    tables = []
    rules = getattr(inputs.protocol, "stopping_rules", [])
    if rules and inputs.aes is not None:
        tables.append(protocol_stopping_status(rules, inputs.aes, inputs.events))
    if stopping is not None:
        count_rules = parse_stopping_rules(_read_json(stopping), where=str(stopping))
        tables.append(stopping_status(count_rules, inputs.events, inputs.aes))
    pdf = dsmb_pdf(DsmbInputs(
        trial=inputs.compiled.id, title=inputs.protocol.title, events=inputs.events,
        summary=inputs.summary(endpoints, time_unit), aes=inputs.aes, exposure=inputs.exposure,
        measurements=inputs.measurements, cutoff=day,
        stopping=pd.concat(tables, ignore_index=True) if tables else None,
        sources=inputs.sources + ((f"stopping rules: {stopping}",) if stopping else ()),
        products=inputs.products,
    ))
    write_atomic(out, pdf)
    typer.echo(f"wrote {out}")


@app.command("export")
@outcome_errors
def export_cmd(
    kind: Annotated[str, typer.Argument(help="sdtm (SDTM package), fhir (R5 Bundle) or odm (ODM 1.3.2).")],
    trial: TrialOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder (created if missing).")],
    events: EventsOpt = None,
    aes: AesOpt = None,
    tumour: TumourOpt = None,
    exposure: ExposureOpt = None,
    labs: LabsOpt = None,
    protocols: ProtocolsOpt = None,
    by: StoredByOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
    country: Annotated[str | None, typer.Option(
        "--country", help="The sites' country for SDTM DM.COUNTRY (ISO 3166-1 alpha-3), with "
                          "the stored trial.")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="SDTM datasets as xpt (SAS XPORT v5 with define.xml) or csv.")] = "xpt",
) -> None:
    """Export an SDTM-IG 3.4 package (XPT v5 datasets, define.xml, reviewer's notes; or CSV),
    FHIR R5 resources or CDISC ODM 1.3.2, validated before anything is written."""
    if kind not in ("sdtm", "fhir", "odm"):
        raise typer.BadParameter("choose sdtm, fhir or odm", param_hint="KIND")
    if fmt not in ("xpt", "csv"):
        raise typer.BadParameter("choose xpt or csv", param_hint="--format")
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file, not a folder", param_hint="--out")
    if kind == "sdtm" and events is None and not country:
        raise typer.BadParameter("SDTM DM requires COUNTRY and the record does not hold it: give "
                                 "the sites' country (ISO 3166-1 alpha-3, e.g. RUS)",
                                 param_hint="--country")
    inputs = _OutcomeInputs.given(trial, events, protocols, by, data_dir, database,
                                  country=country, aes=aes, tumour=tumour, exposure=exposure,
                                  labs=labs)
    files: dict[str, bytes] = {}
    if kind == "sdtm":
        files = _sdtm_files(inputs, fmt)
    elif kind == "odm":
        from datetime import UTC, datetime

        from trialdesk.outcomes.export_odm import eligibility_facts, odm_xml

        files = {f"{inputs.compiled.id.lower()}-odm.xml": odm_xml(
            inputs.protocol, inputs.events, facts=eligibility_facts(inputs.compiled.rules),
            aes=inputs.aes, labs=inputs.labs, measurements=inputs.measurements, exposure=inputs.exposure,
            created=datetime.now(UTC).replace(microsecond=0, tzinfo=None))}
    else:
        from trialdesk.outcomes.export_fhir import bundle_json, fhir_bundle, parse_bundle

        ident = inputs.protocol.registry.identification
        bundle = fhir_bundle(inputs.compiled.id, inputs.events, title=inputs.protocol.title,
                             nct_id=ident.nct_id, conditions=tuple(inputs.protocol.registry.conditions),
                             arm_labels=inputs.arm_labels, aes=inputs.aes, measurements=inputs.measurements,
                             labs=inputs.labs, exposure=inputs.exposure, products=inputs.products)
        data = bundle_json(bundle)
        parse_bundle(data)  # what is written must parse back
        files = {"bundle.json": data}
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_atomic(out / name, data)
        typer.echo(f"wrote {out / name}")


def _sdtm_files(inputs: _OutcomeInputs, fmt: str) -> dict[str, bytes]:
    """The SDTM package's files, checked before any is written."""
    from datetime import UTC, datetime

    from trialdesk.outcomes.export_sdtm import require_valid, sdtm_datasets, to_csv

    datasets = sdtm_datasets(inputs.compiled.id, inputs.events, arm_labels=inputs.arm_labels,
                             aes=inputs.aes, exposure=inputs.exposure,
                             measurements=inputs.measurements, labs=inputs.labs, protocol=inputs.protocol,
                             record=inputs.record)
    if inputs.products is not None:
        from trialdesk.outcomes.sdtm_products import product_datasets

        datasets = product_datasets(inputs.compiled.id, datasets, inputs.products)
    require_valid(datasets)
    if fmt == "csv":
        return {f"{name.lower()}.csv": to_csv(frame) for name, frame in datasets.items()}
    from trialdesk.outcomes.sdtm_package import define_xml, reviewers_guide, to_xpt

    files = {f"{name.lower()}.xpt": to_xpt(name, frame) for name, frame in datasets.items()}
    guide = reviewers_guide(inputs.compiled.id, datasets)
    files["define.xml"] = define_xml(inputs.compiled.id, datasets, title=inputs.protocol.title,
                                     created=datetime.now(UTC).replace(microsecond=0, tzinfo=None))
    files["reviewers-guide.md"] = guide.encode("utf-8")
    return files

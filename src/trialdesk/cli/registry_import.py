"""The registry import and search commands: ClinicalTrials.gov records in, trials found.

``trialdesk registry import`` reads files (no network) and either stores every study in the
database (``--by USER``, an administrator; the same database as ``trialdesk serve``) or
writes one draft protocol file per study (``--out DIR``). ``trialdesk registry search``
searches the database (``--by USER``) or protocol files (``--protocols DIR``, the default)
by text, condition, age, sex and distance. ``trialdesk registry open NCT… --by USER`` opens a
fully reviewed study of the database as a trial (signed with the password).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from trialdesk.cli.common import JsonOpt, ProtocolsOpt, _console, _say, app, domain_errors, write_atomic
from trialdesk.cli.session import (
    DEFAULT_DATA_DIR,
    DatabaseOpt,
    DataDirOpt,
    PasswordOpt,
    UserOpt,
    acting,
    open_services,
)

ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by",
        envvar="TRIALDESK_USER",
        help="Your user name: use the database (default: files, --out / --protocols).",
    ),
]

registry_app = typer.Typer(
    help="ClinicalTrials.gov records: import them as draft protocols, search them.", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".xml"))
        else:
            found.append(path)
    return found


@registry_app.command("import")
@domain_errors
def import_cmd(
    paths: Annotated[
        list[Path], typer.Argument(help="Record files or folders (v2 JSON, search responses, XML).")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the protocol files (one per NCT id).")
    ] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Import registry records into the database (--by) or as protocol files (--out); print
    what each study held. Exit 1 if any failed."""
    import yaml

    from trialdesk.errors import RegistryError
    from trialdesk.registry.importer import Failed, import_bytes

    if (out is None) == (by is None):
        raise typer.BadParameter("give --by USER (the database) or --out DIR (files)", param_hint="--by")
    if out is not None and not out.is_dir():
        raise RegistryError("the output folder does not exist", where=str(out))
    results: list[Any] = []
    stored: dict[int, str] = {}
    files: list[tuple[str, bytes]] = []
    for path in _files(paths):
        try:
            files.append((str(path), path.read_bytes()))
        except OSError as exc:
            results.append(Failed(str(path), f"cannot read file: {exc.strerror}"))
    if by is not None:
        from trialdesk.services import registry

        ctx = open_services(data_dir, database)
        for line in registry.import_files(ctx, acting(ctx, by), files):
            results.append(line.result)
            if line.stored is not None:
                stored[id(line.result)] = line.stored
        files = []
    for name, data in files:
        assert out is not None
        for result in import_bytes(data, name=name):
            if not isinstance(result, Failed):
                text = yaml.safe_dump(result.document, sort_keys=False, allow_unicode=True, width=100)
                header = (
                    f"# {result.nct_id}: imported from {result.where} ({result.format}).\n"
                    "# Draft: every criterion needs an investigator's review before it can screen.\n"
                )
                write_atomic(out / f"{result.nct_id}.yaml", (header + text).encode("utf-8"))
            results.append(result)
    failed = [r for r in results if isinstance(r, Failed)]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "imported": [
                        {**r.summary(), **({"stored": stored[id(r)]} if id(r) in stored else {})}
                        for r in results
                        if not isinstance(r, Failed)
                    ],
                    "failed": [r.summary() for r in failed],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        console = _console()
        for r in results:
            if isinstance(r, Failed):
                _say(console, f"failed   {r.where}: {r.reason}", "bold red")
                continue
            target = f"database ({stored.get(id(r))})" if out is None else out / (r.nct_id + ".yaml")
            _say(console, f"imported {r.nct_id} ({r.format}) -> {target}", "bold")
            _say(console, f"  modules: {', '.join(r.modules)}")
            _say(
                console,
                f"  criteria items: {r.inclusion} inclusion, {r.exclusion} exclusion; "
                f"drafts: {r.drafts}; investigator questions: {r.questions}",
            )
            for problem in r.problems:
                _say(console, f"  problem: {problem}", "yellow")
        _say(console, f"{len(results) - len(failed)} studies imported, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@registry_app.command("open")
@domain_errors
def open_cmd(
    nct_id: Annotated[str, typer.Argument(help="The study's NCT id, e.g. NCT03281889.")],
    by: UserOpt,
    password: PasswordOpt,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the audit trail).")
    ] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Open a fully reviewed registry study of the database as a trial (its next protocol
    version if it changed since it was opened); an e-signature. Exit 1 while items await review."""
    from trialdesk.services import registry

    ctx = open_services(data_dir, database)
    opened = registry.open_as_trial(ctx, acting(ctx, by), nct_id.strip().upper(), password=password,
                                    reason=reason)
    if opened["unchanged"]:
        typer.echo(f"{opened['trial_id']}: unchanged since protocol version {opened['number']} "
                   f"({opened['label']}); nothing was written")
    else:
        what = "opened as a trial" if opened["created"] else "new protocol version"
        typer.echo(f"{opened['trial_id']}: {what}, protocol version {opened['number']} "
                   f"({opened['label']}), signed by {by}")


@registry_app.command("search")
@domain_errors
def search_cmd(
    text: Annotated[
        str | None,
        typer.Argument(help="Words to find in title, conditions, keywords, interventions and criteria."),
    ] = None,
    condition: Annotated[
        str | None, typer.Option("--condition", help="A condition (MeSH terms and synonyms count).")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="e.g. RECRUITING.")] = None,
    phase: Annotated[str | None, typer.Option("--phase", help="e.g. PHASE2 or 2.")] = None,
    age: Annotated[str | None, typer.Option("--age", help="Patient age: 6y, 18m, 10d.")] = None,
    sex: Annotated[str | None, typer.Option("--sex", help="F or M.")] = None,
    near: Annotated[str | None, typer.Option("--near", help="A place name or LAT,LON.")] = None,
    km: Annotated[
        float | None, typer.Option("--km", help="Only trials with a site within this distance.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many (database).")] = 50,
    as_json: JsonOpt = False,
    protocols: ProtocolsOpt = None,
    by: ByOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    database: DatabaseOpt = None,
) -> None:
    """Search trials by text, condition, status, phase, age, sex and distance to the nearest site:
    the registry studies in the database (--by USER), else the protocol files."""
    from trialdesk.cli.common import _protocols
    from trialdesk.registry.gazetteer import resolve_place
    from trialdesk.registry.search import Hit, Query, parse_age, search

    if by is not None:
        from trialdesk.services import registry

        ctx = open_services(data_dir, database)
        found = registry.search(
            ctx, acting(ctx, by), text=text, condition=condition, status=status, phase=phase,
            age=parse_age(age) if age else None, sex=sex, near=near, km=km, limit=limit,
        )
        if as_json:
            typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
            return
        near_json = found["query"]["near"]
        hits = [
            Hit(h["trial_id"], h["title"], h["status"], h["phases"], h["score"], h["km"],
                h["nearest_site"], h["matched"], h["draft"])
            for h in found["results"]
        ]
        _show_hits(near_json, hits, f"{found['total']} trials found, {found['shown']} shown")
        return
    compiled = _protocols(protocols)
    registries = [c.protocol.registry for c in compiled.values()]
    point = resolve_place(near, registries) if near else None
    query = Query(
        text=text,
        condition=condition,
        status=status,
        phase=phase,
        age=parse_age(age) if age else None,
        sex=sex,
        near=point,
        km=km,
    )
    hits = search(
        [
            (c.id, c.protocol.registry, [x.text for _, x in c.protocol.criteria], c.protocol.is_draft)
            for c in compiled.values()
        ],
        query,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {"query": query.to_json(), "results": [h.to_json() for h in hits]},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    _show_hits(query.to_json()["near"], hits, f"{len(hits)} trials found")


def _show_hits(point: dict[str, Any] | None, hits: list[Any], last: str) -> None:
    console = _console()
    if point is not None:
        where = f"{point['lat']:.4f}, {point['lon']:.4f}; {point['source']}"
        _say(console, f"near {point['name']} ({where})", "dim")
    for h in hits:
        distance = f"{h.km:.0f} km ({h.site})" if h.km is not None else ""
        draft = " [draft]" if h.draft else ""
        _say(console, f"{h.trial_id}{draft}  {h.status}  {', '.join(h.phases) or '-'}  {distance}", "bold")
        _say(console, f"  {h.title}")
        if h.matched:
            _say(console, f"  matched: {', '.join(h.matched)}", "dim")
    _say(console, last)

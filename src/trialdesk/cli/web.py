"""The web application and its database: serve, db, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from trialdesk.cli.common import (
    ProtocolsOpt,
    _err,
    app,
    domain_errors,
)
from trialdesk.cli.session import DatabaseOpt, DataDirOpt, UserOpt, acting, open_services
from trialdesk.protocol.paths import default_protocol_dir

# ---------------------------------------------------------------------------
# The web application and its database: serve, db, audit.

db_app = typer.Typer(help="The database: migrations, protocols, users.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")

def _web_settings(data_dir: Path, database_url: str | None, **kwargs: Any) -> Any:
    import os

    from trialdesk.web.settings import Settings

    return Settings.for_data_dir(data_dir, database_url=database_url,
                                 secret_key=os.environ.get("TRIALDESK_SECRET_KEY"), **kwargs)


def _open_store(data_dir: Path, database_url: str | None, synchronous: str = "NORMAL") -> Any:
    from trialdesk.store import Store, sqlite_url

    return Store.open(database_url or sqlite_url(data_dir), synchronous=synchronous)


@app.command()
@domain_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
    data_dir: DataDirOpt = Path("data"),
    database_url: DatabaseOpt = None,
    demo_data: Annotated[bool, typer.Option("--demo", help="Load the demo trials, log-ins and "
                                                           "patients (once).")] = False,
    protocols: ProtocolsOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Prepare everything, print the address "
                                                        "and log-ins, but do not serve.")] = False,
    disable_demo: Annotated[bool, typer.Option(
        "--disable-demo-users", help="Deactivate the demo log-ins of an earlier --demo run "
                                     "(audited) and serve without them.")] = False,
    synchronous: Annotated[str | None, typer.Option(
        "--synchronous", envvar="TRIALDESK_SQLITE_SYNCHRONOUS",
        help="SQLite durability: FULL (a committed change survives a power failure; the "
             "default) or NORMAL (faster; the last commits can be lost on power failure; the "
             "default with --demo).")] = None,
    idle_minutes: Annotated[float, typer.Option(
        "--idle-minutes", envvar="TRIALDESK_IDLE_MINUTES", min=1,
        help="Log a session out after this many minutes without a request.")] = 30.0,
    facility: Annotated[str | None, typer.Option(
        "--facility", envvar="TRIALDESK_FACILITY",
        help="ISBT 128 facility identification number (5 characters) of the collections the "
             "cell lab records on the web; with --demo the demo facility A9999.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", envvar="TRIALDESK_WORKERS", min=1, max=64,
        help="Server processes answering requests (default: the number of CPUs). They "
             "share the database, the secret key and the log-in sessions.")] = None,
) -> None:
    """Start the web application (registry, screening, patients, audit trail)."""
    from trialdesk.errors import SettingsError
    from trialdesk.services.demo import (
        demo_users_present,
        disable_demo_users,
        import_protocols,
        seed_demo,
    )
    from trialdesk.web.app import create_app

    synchronous = (synchronous or ("NORMAL" if demo_data else "FULL")).upper()
    if facility is None and demo_data:
        from trialdesk.services.demo import DEMO_FACILITY

        facility = DEMO_FACILITY
    settings = _web_settings(data_dir, database_url, idle_minutes=idle_minutes,
                             facility=facility)
    store = _open_store(data_dir, settings.database_url, synchronous)
    protocol_dir = protocols or default_protocol_dir()
    if demo_data:
        logins = seed_demo(store, protocol_dir, protocol_dir.parent / "examples" / "patients")
    else:
        demo_users = demo_users_present(store)
        if demo_users and not disable_demo:
            raise SettingsError(
                f"this database has the demo log-ins ({', '.join(demo_users)}), whose passwords "
                "are public: serve it with --demo, or with --disable-demo-users to deactivate "
                "them", where="--demo")
        if demo_users:
            disable_demo_users(store, demo_users)
            typer.echo(f"demo log-ins deactivated: {', '.join(demo_users)}")
        import_protocols(store, protocol_dir)
        logins = []
    application = create_app(settings, store)
    url = f"http://{host if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{port}/"
    typer.echo(f"trialdesk web application: {url}")
    typer.echo(f"database: {store.backend} ({settings.database_url.split('@')[-1]})"
               + (f", synchronous={synchronous}" if store.backend == "sqlite" else ""))
    if logins:
        typer.echo("demo log-ins (user name / password):")
        for login in logins:
            typer.echo(f"  {login.username:<14} {login.password}")
    elif not store.users():
        typer.echo("no users yet: add one with `trialdesk db add-user`")
    workers = workers or default_workers()
    typer.echo(f"server processes: {workers}")
    if check:
        return
    import uvicorn

    if workers == 1:
        from trialdesk.web.app import warm_up

        warm_up(application)
        uvicorn.run(application, host=host, port=port, log_level="info")
        return
    # Each process builds its own application from the same settings (the database is
    # already migrated and the secret key already in the data directory: nothing raced).
    import json
    import os

    from trialdesk.web.settings import SERVE_ENV

    store.close()
    os.environ[SERVE_ENV] = json.dumps({
        "data_dir": str(data_dir), "database_url": settings.database_url,
        "synchronous": synchronous, "idle_minutes": idle_minutes, "facility": facility})
    uvicorn.run("trialdesk.web.app:app_from_environment", factory=True, workers=workers,
                host=host, port=port, log_level="info")


def default_workers() -> int:
    """The server processes ``serve`` starts without ``--workers``: one per CPU."""
    import os

    return max(1, os.cpu_count() or 1)


@db_app.command("upgrade")
@domain_errors
def db_upgrade(data_dir: DataDirOpt = Path("data"), database_url: DatabaseOpt = None) -> None:
    """Create the database or bring its schema to the newest migration."""
    from trialdesk.store.db import current_revision

    store = _open_store(data_dir, database_url)
    typer.echo(f"database schema at revision {current_revision(store.engine)} ({store.backend})")


@db_app.command("import-protocols")
@domain_errors
def db_import_protocols(data_dir: DataDirOpt = Path("data"), database_url: DatabaseOpt = None,
                        protocols: ProtocolsOpt = None) -> None:
    """Store the protocol files; a changed file becomes the trial's next protocol version."""
    from trialdesk.services.demo import import_protocols

    store = _open_store(data_dir, database_url)
    for trial_id in import_protocols(store, protocols or default_protocol_dir()):
        v = store.protocol_version(trial_id)
        typer.echo(f"{trial_id}: version {v.number} ({v.label})")


@db_app.command("add-user")
@domain_errors
def db_add_user(
    username: Annotated[str, typer.Argument(help="Log-in name.")],
    name: Annotated[str, typer.Option("--name", help="Full name, shown with signatures.")],
    trial: Annotated[list[str], typer.Option("--trial", help="Trial id (repeatable).")],
    role: Annotated[str, typer.Option("--role", help="administrator, investigator, coordinator, "
                                                     "pharmacist, monitor or statistician.")],
    password: Annotated[str, typer.Option("--password", prompt=True, hide_input=True,
                                          confirmation_prompt=True,
                                          envvar="TRIALDESK_NEW_PASSWORD")],
    site: Annotated[str | None, typer.Option("--site", help="Only this site.")] = None,
    data_dir: DataDirOpt = Path("data"),
    database_url: DatabaseOpt = None,
) -> None:
    """Add a user with a role in one or more trials."""
    from trialdesk.services.accounts import hash_password
    from trialdesk.services.roles import Role

    if role not in {r.value for r in Role}:
        raise typer.BadParameter(f"unknown role '{role}'", param_hint="--role")
    if len(password) < 12:
        raise typer.BadParameter("use at least 12 characters", param_hint="--password")
    store = _open_store(data_dir, database_url)
    for trial_id in trial:
        store.protocol_version(trial_id)  # every trial exists before anything is written
    store.add_user(username, name, hash_password(password), actor="cli",
                   reason="user added from the command line")
    for trial_id in trial:
        store.add_membership(username, trial_id, role, site, actor="cli",
                             reason="membership granted from the command line")
    typer.echo(f"added {username} as {role} in {', '.join(trial)}")


@audit_app.command("verify")
@domain_errors
def audit_verify(data_dir: DataDirOpt = Path("data"), database_url: DatabaseOpt = None) -> None:
    """Recompute the audit chain; exit 1 if any entry was edited or deleted."""
    store = _open_store(data_dir, database_url)
    report = store.verify_audit()
    if report.ok:
        typer.echo(f"audit trail intact: {report.entries} entries, head {report.head_hash}")
        return
    for problem in report.problems:
        _err(problem)
    typer.echo(f"audit trail BROKEN: {len(report.problems)} problems in {report.entries} entries")
    raise typer.Exit(1)


@db_app.command("import-journal")
@domain_errors
def db_import_journal(
    directory: Annotated[Path, typer.Argument(help="The journal directory (the former --data).")],
    patients: Annotated[Path, typer.Option(
        "--patients", help="Folder of the patient files the journeys were enrolled with.")],
    site: Annotated[str, typer.Option("--site", help="The site of the imported patients.")],
    by: UserOpt,
    data_dir: DataDirOpt = Path("data"),
    database_url: DatabaseOpt = None,
) -> None:
    """Bring journey and randomisation files into the database, once (a second run imports
    nothing); allocation lists are verified against their digests first."""
    import json

    from trialdesk.cli.common import read_patient_file
    from trialdesk.errors import EnrolmentError
    from trialdesk.facts.patient import patient_from_data
    from trialdesk.services.journal import JournalFiles, check_journal, import_journal

    if not directory.is_dir():
        raise EnrolmentError("is not a directory", where=str(directory))

    def doc(path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EnrolmentError(f"cannot read it: {exc}", where=str(path)) from None

    ctx = open_services(data_dir, database_url)
    who = acting(ctx, by)
    today = ctx.store.now().date()
    records = {}
    for path in sorted(patients.glob("*.json")):
        record = patient_from_data(read_patient_file(path), today=today, source=str(path))
        records[record.patient_id] = record
    plans = []
    for trial_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        rand = trial_dir / "randomisation"
        files = JournalFiles(
            trial_id=trial_dir.name,
            lists={p.name.removesuffix(".list.json"): doc(p)
                   for p in sorted(rand.glob("*.list.json"))},
            logs={p.name.removesuffix(".log.json"): doc(p) for p in sorted(rand.glob("*.log.json"))},
            journeys={p.name: doc(p) for p in sorted((trial_dir / "journeys").glob("*.json"))})
        plans.append((trial_dir, check_journal(ctx, who, files, records)))
    for trial_dir, plan in plans:  # every trial checked before anything is written
        report = import_journal(ctx, who, plan, records, site=site, source=str(trial_dir))
        typer.echo(f"{report.trial_id}: lists imported {len(report.lists_imported)}, already "
                   f"present {len(report.lists_present)}; patients imported "
                   f"{len(report.patients_imported)}, already present "
                   f"{len(report.patients_present)}")
        for old, new in report.patients_imported:
            typer.echo(f"  {old} → {new}")
        for old in report.not_enrolled:
            typer.echo(f"  {old}: not enrolled in the file; register it with `trialdesk patients "
                       "import`")


@db_app.command("deactivate-user")
@domain_errors
def db_deactivate_user(
    username: Annotated[str, typer.Argument(help="Log-in name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")],
    data_dir: DataDirOpt = Path("data"),
    database_url: DatabaseOpt = None,
) -> None:
    """Deactivate a user: they can no longer log in or act on the command line."""
    store = _open_store(data_dir, database_url)
    store.set_active(username, False, actor="cli", reason=reason)
    typer.echo(f"{username} deactivated")

"""The command line's way into the trial record: the database that `trialdesk serve` uses,
and the user who acts.

The database is ``--database URL``, else ``TRIALDESK_DATABASE_URL``, else the SQLite file in
the data directory (``--data-dir``, ``TRIALDESK_DATA_DIR``, default ``./data``). Who acts is
``--by USER`` (or ``TRIALDESK_USER``): an existing, active user whose role and trial
membership allow the action — the same checks as the web application. An e-signature asks
for that user's password again (``--password``, ``TRIALDESK_PASSWORD``, else a prompt).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from trialdesk.services.accounts import Principal
    from trialdesk.services.context import Services

DataDirOpt = Annotated[Path, typer.Option(
    "--data-dir", envvar="TRIALDESK_DATA_DIR",
    help="Data directory: the SQLite database and the secret key (default ./data).")]
DatabaseOpt = Annotated[str | None, typer.Option(
    "--database", "--database-url", envvar="TRIALDESK_DATABASE_URL",
    help="Database URL, e.g. postgresql://user@host/db (default: SQLite in the data directory).")]
UserOpt = Annotated[str, typer.Option(
    "--by", envvar="TRIALDESK_USER", help="Your user name (a user of the database).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")]
PasswordOpt = Annotated[str, typer.Option(
    "--password", envvar="TRIALDESK_PASSWORD", prompt="Password (e-signature)", hide_input=True,
    help="Your password again: this action is an e-signature.")]
DEFAULT_DATA_DIR = Path("data")


def database_url(data_dir: Path, database: str | None) -> str:
    if database:
        return database
    from trialdesk.store.db import sqlite_url

    data_dir.mkdir(parents=True, exist_ok=True)
    return sqlite_url(data_dir)


def open_services(data_dir: Path, database: str | None) -> Services:
    """The services on the database (created or migrated to the newest schema)."""
    from trialdesk.services.context import Services
    from trialdesk.store import Store

    return Services.open(Store.open(database_url(data_dir, database)))


def acting(services: Services, username: str) -> Principal:
    """The user who acts: exists and is active (their permissions are checked per action)."""
    from trialdesk.services.accounts import principal_for

    return principal_for(services.store, username)


def reason_given(reason: str, option: str = "--reason") -> str:
    text = reason.strip()
    if not text:
        raise typer.BadParameter("say why (it is kept in the audit trail)", param_hint=option)
    return text

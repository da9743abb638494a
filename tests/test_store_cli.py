"""The command line of the web application and its database: serve, db, audit verify."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from trialdesk.cli import app
from trialdesk.store import Store, sqlite_url
from trialdesk.store.db import head_revision

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_serve_check_prepares_the_demo_and_prints_the_address_and_log_ins(tmp_path: Path) -> None:
    code, out, err = run("serve", "--demo", "--check", "--data-dir", str(tmp_path), "--port",
                         "8123")
    assert code == 0, err
    assert "trialdesk web application: http://127.0.0.1:8123/" in out
    for login in ("investigator", "investigator-demo", "monitor-demo", "statistician-demo"):
        assert login in out
    store = Store.open(sqlite_url(tmp_path))
    assert {t.id for t in store.trials()} == {"NB-NK-2026", "REFNOT-R2", "RuMCeSS", "DB-POSTCONS"}
    assert store.patients([("NB-NK-2026", None)]).total == 3
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    code, out, _ = run("serve", "--demo", "--check", "--data-dir", str(tmp_path))
    assert code == 0 and store.patients([("NB-NK-2026", None)]).total == 3  # seeded once


def test_audit_verify_passes_then_finds_an_edited_entry(tmp_path: Path) -> None:
    run("serve", "--demo", "--check", "--data-dir", str(tmp_path))
    code, out, _ = run("audit", "verify", "--data-dir", str(tmp_path))
    assert code == 0 and out.startswith("audit trail intact: ")
    store = Store.open(sqlite_url(tmp_path))
    with store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET username = 'someone else' WHERE seq = 5"))
    code, out, err = run("audit", "verify", "--data-dir", str(tmp_path))
    assert code == 1
    assert "entry 5: its content does not match its hash (edited)" in err
    assert "audit trail BROKEN" in out


def test_db_upgrade_import_and_add_user(tmp_path: Path) -> None:
    code, out, _ = run("db", "upgrade", "--data-dir", str(tmp_path))
    assert code == 0 and f"revision {head_revision()} (sqlite)" in out
    code, out, _ = run("db", "import-protocols", "--data-dir", str(tmp_path))
    assert code == 0 and "NB-NK-2026: version 1 (1.0)" in out
    code, out, err = run("db", "add-user", "dr.p", "--name", "Dr P", "--trial", "NB-NK-2026",
                         "--role", "investigator", "--data-dir", str(tmp_path),
                         env={"TRIALDESK_NEW_PASSWORD": "a long enough password"})
    assert code == 0, err
    store = Store.open(sqlite_url(tmp_path))
    user = store.user_by_name("dr.p")
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert [(m.trial_id, m.role) for m in store.memberships(user.id)] == [
        ("NB-NK-2026", "investigator")]


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "wizard"], "unknown role"),
    (["--role", "monitor", "--trial", "NO-SUCH"], "no trial 'NO-SUCH'"),
])
def test_db_add_user_refuses_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    run("db", "import-protocols", "--data-dir", str(tmp_path))
    base = ["db", "add-user", "x", "--name", "X", "--data-dir", str(tmp_path)]
    if "--trial" not in args:
        base += ["--trial", "NB-NK-2026"]
    code, _, err = run(*base, *args, env={"TRIALDESK_NEW_PASSWORD": "a long enough password"})
    assert code in (1, 2) and message in err


def test_a_bad_database_url_is_one_clear_line(tmp_path: Path) -> None:
    code, _, err = run("audit", "verify", "--database-url", "mysql://x@y/z")
    assert code == 1 and "unsupported database 'mysql'" in err

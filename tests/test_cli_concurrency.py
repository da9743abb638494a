"""Two command-line processes and the web application at once on the SQLite default: no
"database is locked", and every acknowledged change is in the record afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from conftest import WebApp

OPERATIONS = 50

# One command-line process: OPERATIONS screenings of one patient, each a full command
# (open the database, check the user, screen, store, audit), counted when acknowledged.
WORKER = """
import io, json, sys
from contextlib import redirect_stderr, redirect_stdout
from trialdesk.cli import app
patient, n = sys.argv[1], int(sys.argv[2])
done, failures = 0, []
for i in range(n):
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            app(["patients", "screen", patient, "--by", "coordinator", "--reason", f"run {i}",
                 "--on", "2026-11-21T12:00"], standalone_mode=False)
        done += 1
    except SystemExit as exc:
        if exc.code:
            failures.append(err.getvalue().strip())
        else:
            done += 1
    except Exception as exc:  # anything else is a failure to report
        failures.append(repr(exc))
print(json.dumps({"done": done, "failures": failures}))
"""


def test_two_command_lines_and_the_web_app_at_once(web: WebApp, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trialdesk.db'}"
    env = {"TRIALDESK_DATABASE_URL": url, "PATH": "/usr/bin:/bin",
           "TRIALDESK_DATA_DIR": str(tmp_path / "data")}
    before = {p: len(web.store.screenings(p)) for p in ("NBNK-0002", "NBNK-0003", "REFNOT-0001")}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, patient, str(OPERATIONS)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for patient in ("NBNK-0002", "NBNK-0003")]
    web_result: dict[str, Any] = {"done": 0, "failures": []}

    def web_worker() -> None:
        c: Any = web.client("coordinator")
        for i in range(OPERATIONS):
            r = c.post("/api/patients/REFNOT-0001/screenings", headers={"x-csrf-token": c.csrf},
                       json={"as_of": "2026-11-21T12:00:00", "reason": f"web run {i}"})
            if r.status_code == 201:
                web_result["done"] += 1
            else:
                web_result["failures"].append(r.text)

    thread = threading.Thread(target=web_worker)
    thread.start()
    results = []
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    thread.join(timeout=600)
    failures = [f for r in [*results, web_result] for f in r["failures"]]
    assert not any("locked" in f for f in failures), failures
    assert failures == []
    assert [r["done"] for r in results] == [OPERATIONS, OPERATIONS]
    assert web_result["done"] == OPERATIONS
    after = {p: len(web.store.screenings(p)) for p in before}
    assert {p: after[p] - before[p] for p in before} == dict.fromkeys(before, OPERATIONS)
    assert web.store.verify_audit().ok

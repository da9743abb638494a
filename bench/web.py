"""Web app under load: 20 coordinators on SQLite, over loopback, for at most 60 s.

Starts ``trialdesk serve --demo`` on a fresh data directory and a free loopback port, runs
locust headless (``bench/web_locustfile.py``: worklist, patient page, calendar, screening
form submitted with "Check without saving", adverse event recorded by form) and prints,
per page, the number of requests, failures and the 50th / 95th / 99th percentile response
times, with each page's p95 as a ratio of the log-in page's p95 measured in the same run
(the log-in page reads no database: the server's own floor on this machine, now).
Statistics start once every user has logged in (the locustfile resets them): the log-ins
(Argon2 by design, all at once) are not what a coordinator waits for page after page. The
run starts once every server process has said it is ready (each compiles the protocols,
templates and CTCAE term list first). Since the machine may be shared, it also prints the
load average before and after, and the CPU seconds the server processes spent from the
moment the statistics start, per request counted: a figure other work on the machine
changes much less than the response times.

    pip install -e '.[bench]'     # locust
    python bench/web.py [--users 20] [--seconds 30] [--target-p95 100] [--workers N]

Exit status 1 when a page has failures or a p95 above the target (100 ms, issue 11).

Measured on the 2-core machine with nothing else running (load average 0.1 at the start of
the first run, 3.8 at the end of the last: the bench's own server and client), 20 users,
60 s, 2 server processes, two runs each, alternating; "before" is the code before the
adverse-event page links each event to its own correction page (3a16d91), "after" is this
version; times in ms, p50 / p95 (the p99 vary most):

    page                      before (two runs)       after (two runs)
    log-in (baseline)          3 /  8,  4 / 11         3 /  9,  4 / 19
    worklist                  12 / 30, 14 / 33        12 / 27, 13 / 31
    patient page               8 / 19,  9 / 33         7 / 18,  8 / 24
    calendar                  10 / 34, 11 / 40        10 / 22, 12 / 29
    screening form (page)      8 / 17,  9 / 27         8 / 22,  8 / 22
    screening form, check      8 / 19,  9 / 24         8 / 20,  9 / 26
    adverse events (page)     16 / 34, 19 / 48        13 / 27, 18 / 33
    adverse event recorded     8 / 26, 10 / 41         7 / 20,  9 / 25
    server CPU per request    8.6, 10.2 ms            8.0, 9.4 ms
    client CPU per request    4.0, 4.4 ms             2.0, 2.6 ms
    requests                  1,386, 1,386            1,371, 1,403
    failures                  0                       0

Target met in all four runs: every page's p95 at most 48 ms, no failures. The code before
the adverse-event page change meets it too on a quiet machine; the change shows on that page
(p95 34-48 -> 27-33 ms) and in the server's CPU per request. On the same machine shared with
other work (load average 3-6), earlier runs of this bench gave p95 above 100 ms on some pages
(and on the log-in page, which reads no database): the figures hold for a machine the
server and the 20 users have to themselves.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from proctree import tree_cpu_seconds

from trialdesk.cli.web import default_workers

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, workers: int,
          seconds: float = 180) -> None:
    """Until every server process has started (each has compiled the protocols, templates
    and term list before saying so) and the server answers ``url``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            raise SystemExit(f"the server stopped (exit {process.returncode})")
        started = log.read_text(errors="replace").count("Application startup complete")
        if started >= workers:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
        time.sleep(0.5)
    raise SystemExit(f"the server's {workers} processes were not all ready within "
                     f"{seconds:.0f} s")


def _loadavg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=30, help="run time, at most 60")
    ap.add_argument("--target-p95", type=float, default=100.0, help="ms")
    ap.add_argument("--workers", type=int, default=None,
                    help="server processes (default: what `trialdesk serve` starts, one per CPU)")
    args = ap.parse_args()
    workers = args.workers or default_workers()
    seconds = max(5, min(args.seconds, 60))
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or shutil.which("locust")
    if locust is None:
        raise SystemExit("locust is not installed: pip install -e '.[bench]'")
    work = Path(tempfile.mkdtemp(prefix="trialdesk-bench-web-"))
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "trialdesk.cli", "serve", "--demo", "--data-dir", str(work / "data"),
         "--port", str(port), "--workers", str(workers)],
        stdout=(work / "server.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        _wait(host + "/login", server, work / "server.log", workers)
        load_before = _loadavg()
        started = time.monotonic()
        measuring = work / "measuring"
        locust_run = subprocess.Popen(
            [locust, "-f", str(HERE / "web_locustfile.py"), "--headless", "--only-summary",
             "-u", str(args.users), "-r", str(args.users), "-t", f"{seconds}s",
             "--host", host, "--csv", str(work / "stats"), "--stop-timeout", "5"],
            env={**os.environ, "BENCH_USER": "coordinator", "BENCH_PASSWORD": "coordinator-demo",
                 "BENCH_MEASURING": str(measuring)},
            stdout=(work / "locust.log").open("wb"), stderr=subprocess.STDOUT)
        cpu_start = client_start = None
        client_end, client_read = 0.0, 0.0
        while locust_run.poll() is None:  # the server's CPU from the moment counting starts
            if cpu_start is None and measuring.exists():
                cpu_start, measured_from = tree_cpu_seconds(server.pid), time.monotonic()
                client_start = tree_cpu_seconds(locust_run.pid)
            if cpu_start is not None and time.monotonic() - client_read >= 1:
                # the client's CPU so far (read while it runs: once it exits, it is gone)
                client_end = tree_cpu_seconds(locust_run.pid) or client_end
                client_read = time.monotonic()
            if time.monotonic() - started > seconds + 60:
                locust_run.kill()
            time.sleep(0.05)
        cpu_end, measured_to = tree_cpu_seconds(server.pid), time.monotonic()
        load_after = _loadavg()
        wall = measured_to - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    stats = work / "stats_stats.csv"
    if not stats.exists():
        print((work / "locust.log").read_text(errors="replace")[-3000:])
        raise SystemExit("locust wrote no statistics")
    rows = [r for r in csv.DictReader(stats.open())
            if r["Name"] != "Aggregated" and int(r["Request Count"]) > 0]
    base = next((float(r["95%"]) for r in rows if "baseline" in r["Name"]), None)
    requests = sum(int(r["Request Count"]) for r in rows if not r["Name"].startswith("setup"))
    print(f"{args.users} users, {seconds} s (wall {wall:.0f} s), SQLite, loopback, "
          f"{workers} server processes, {os.cpu_count()} CPUs")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    if cpu_start is not None and cpu_end is not None and requests:
        cpu = cpu_end - cpu_start
        print(f"server CPU: {cpu:.1f} s over {measured_to - measured_from:.0f} s for {requests} "
              f"requests = {1000 * cpu / requests:.1f} ms per request "
              f"({requests / (measured_to - measured_from):.1f} requests/s)")
        if client_start is not None:
            print(f"client (locust) CPU: {1000 * (client_end - client_start) / requests:.1f} ms "
                  "per request")
    print(f"{'page':48} {'requests':>8} {'fails':>5} {'p50':>6} {'p95':>6} {'p99':>6} "
          f"{'p95/base':>8}")
    bad = False
    for r in sorted(rows, key=lambda r: r["Name"]):
        p95 = float(r["95%"])
        ratio = f"{p95 / base:8.1f}" if base else "       -"
        fails = int(r["Failure Count"])
        over = not r["Name"].startswith(("setup", "GET /login")) and p95 > args.target_p95
        bad |= fails > 0 or over
        print(f"{r['Type'] + ' ' + r['Name']:48.48} {int(r['Request Count']):8d} {fails:5d} "
              f"{float(r['50%']):6.0f} {p95:6.0f} {float(r['99%']):6.0f} {ratio}"
              + ("  above target" if over else ""))
    failures = work / "stats_failures.csv"
    if failures.exists():
        for r in csv.DictReader(failures.open()):
            print(f"failure: {r['Method']} {r['Name']}: {r['Error']} ×{r['Occurrences']}")
    print(f"times in ms; target p95 ≤ {args.target_p95:.0f} ms per page, 0 failures: "
          + ("NOT met" if bad else "met"))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How fast the command line answers: `trialdesk --help` and one screening, beside a bare
Python start-up measured in the same run (median of N runs each, wall time).

    python bench/cli.py [--runs 15]

The first screening run fills the compiled-protocol cache (trialdesk.cli.protocol_cache); it
is run once before timing, and once more with the cache off to show what the cache saves.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRIALDESK = [sys.executable, "-m", "trialdesk.cli"]


def wall(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    screen = [*TRIALDESK, "screen", "examples/patients/nb-refractory.json", "--trial", "NB-NK-2026"]
    wall(screen, 1)  # fill the cache
    no_cache = {**os.environ, "TRIALDESK_CACHE": "off"}
    cases = {
        "python -c pass": wall([sys.executable, "-c", "pass"], runs),
        "trialdesk --help": wall([*TRIALDESK, "--help"], runs),
        "trialdesk screen (cached protocols)": wall(screen, runs),
        "trialdesk screen (cache off)": wall(screen, max(3, runs // 3), env=no_cache),
    }
    base = statistics.median(cases["python -c pass"])
    print(f"{'command':40} {'median s':>9} {'p90 s':>7} {'× python':>9}")
    for name, times in cases.items():
        med = statistics.median(times)
        p90 = sorted(times)[int(0.9 * (len(times) - 1))]
        print(f"{name:40} {med:9.3f} {p90:7.3f} {med / base:9.1f}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; runs: {runs}")


if __name__ == "__main__":
    main()

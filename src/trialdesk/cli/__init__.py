"""The trialdesk command line (typer + rich).

Exit codes: 0 success; 1 a domain error, printed as one clear line; 2 a usage error.
"""

from trialdesk.cli.common import app, main, parse_moment, read_patient_file, write_atomic

# Importing a module registers its commands on ``app``; this order is the order of --help.
# isort: off
from trialdesk.cli import registry, safety, outcomes, biomarkers, journey, web, population
# isort: on

__all__ = [
    "app",
    "biomarkers",
    "journey",
    "main",
    "outcomes",
    "parse_moment",
    "population",
    "read_patient_file",
    "registry",
    "safety",
    "web",
    "write_atomic",
]

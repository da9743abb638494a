"""The trialdesk command line (typer + rich).

Exit codes: 0 success; 1 a domain error, printed as one clear line; 2 a usage error.
"""

from trialdesk.cli.common import app, main, parse_moment, read_patient_file, write_atomic

# Importing a module registers its commands on ``app``; this order is the order of --help.
# isort: off
from trialdesk.cli import (registry, registry_import, patients, journey, safety, records, outcomes,
                           odm, biomarkers, product, web, population)
# isort: on

__all__ = [
    "app",
    "biomarkers",
    "journey",
    "main",
    "odm",
    "outcomes",
    "parse_moment",
    "patients",
    "population",
    "product",
    "read_patient_file",
    "records",
    "registry",
    "registry_import",
    "safety",
    "web",
    "write_atomic",
]

"""The NB-NK-2026 outcome examples (examples/outcomes/, synthetic) as validated inputs, for
the SDTM and ODM tests. Plain functions, imported from tests/ like seedkit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trialdesk.outcomes.events import EventTable, validate_event_table
from trialdesk.outcomes.inputs import (
    AdverseEvents,
    Exposure,
    Labs,
    Measurements,
    validate_adverse_events,
    validate_exposure,
    validate_labs,
    validate_measurements,
)
from trialdesk.protocol.load import CompiledProtocol, default_protocol_dir, load_protocol

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "outcomes"


@dataclass(frozen=True)
class Inputs:
    compiled: CompiledProtocol
    events: EventTable
    aes: AdverseEvents
    exposure: Exposure
    labs: Labs
    measurements: Measurements


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV as the command line reads it: every cell text, empty = missing."""
    return pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)


def nbnk() -> Inputs:
    compiled = load_protocol(default_protocol_dir() / "nb-nk-2026.yaml")
    events = validate_event_table(read_csv(EXAMPLES / "nb-nk-2026-events.csv"), arms=["A", "B"])
    return Inputs(
        compiled=compiled,
        events=events,
        aes=validate_adverse_events(json.loads((EXAMPLES / "nb-nk-2026-aes.json").read_text()), events),
        exposure=validate_exposure(read_csv(EXAMPLES / "nb-nk-2026-exposure.csv"), events),
        labs=validate_labs(read_csv(EXAMPLES / "nb-nk-2026-labs.csv"), events),
        measurements=validate_measurements(read_csv(EXAMPLES / "nb-nk-2026-tumour.csv"), events),
    )

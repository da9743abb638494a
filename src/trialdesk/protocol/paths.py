"""Where the protocol files are (kept apart from the loader so that finding the folder does
not import the protocol model)."""

from __future__ import annotations

import os
from pathlib import Path


def default_protocol_dir() -> Path:
    """Where the bundled protocols are: $TRIALDESK_PROTOCOLS, ./protocols, or the checkout's."""
    env = os.environ.get("TRIALDESK_PROTOCOLS")
    if env:
        return Path(env)
    here = Path.cwd() / "protocols"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "protocols"

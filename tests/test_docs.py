"""The README documents every command: a command nobody can find is a command nobody uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from trialdesk.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    root = typer.main.get_command(app)
    names: list[str] = []
    for name, command in sorted(getattr(root, "commands", {}).items()):
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            names += [f"{name} {sub}" for sub in sorted(subcommands)]
        else:
            names.append(name)
    return names


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_in_the_readme(command: str) -> None:
    pattern = r"trialdesk\s+" + r"\s+".join(map(re.escape, command.split())) + r"\b"
    assert re.search(pattern, README), f"README.md does not show `trialdesk {command}`"

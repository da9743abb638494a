"""Population screening on the terminal: the progress bar and the summary tables (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table


class RichProgress:
    """A progress bar per phase of a run (see :class:`trialdesk.screening.run.Progress`)."""

    def __init__(self, console: Console) -> None:
        # Only on a terminal: a log or a pipe gets the summary and errors, not a bar.
        self.shown = console.is_terminal
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                            disable=not self.shown)
        self.task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._finish()
        self.bar.stop()

    def _finish(self) -> None:
        if self.task is not None:
            task = self.bar.tasks[-1]
            self.bar.update(self.task, completed=task.total if task.total is not None else 1,
                            total=task.total if task.total is not None else 1)

    def phase(self, description: str, total: int | None = None) -> None:
        self._finish()
        self.task = self.bar.add_task(description, total=total)

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, steps)


def summary_tables(summary: dict[str, Any], manifest: dict[str, Any]) -> list[Table]:
    """The verdicts per trial and arm, and the facts whose absence leaves most pairs open."""
    verdicts = Table(title=f"Population screening as of {manifest['as_of']} — "
                           f"{manifest['persons']:,} patients × {len(manifest['trials'])} trials",
                     show_lines=False)
    for column, justify in (("Trial", "left"), ("Arm", "left"), ("Eligible", "right"),
                            ("Undetermined", "right"), ("Ineligible", "right")):
        verdicts.add_column(column, justify=justify)  # type: ignore[arg-type]
    for trial_id, entry in summary["trials"].items():
        v = entry["verdicts"]
        verdicts.add_row(f"[bold]{trial_id}[/] {entry['version']}", "all",
                         f"[green]{v['eligible']:,}[/]", f"[yellow]{v['undetermined']:,}[/]",
                         f"[red]{v['ineligible']:,}[/]")
        for arm, counts in sorted(entry["arms"].items()):
            if arm == "no arm" and not counts["eligible"] and not counts["undetermined"]:
                continue
            verdicts.add_row("", arm, f"{counts['eligible']:,}", f"{counts['undetermined']:,}",
                             f"{counts['ineligible']:,}")
    missing = Table(title="Missing facts that would resolve the most undetermined pairs")
    missing.add_column("Fact")
    missing.add_column("Undetermined pairs where it is missing", justify="right")
    missing.add_column("…and the only missing fact", justify="right")
    for row in summary["missing_facts"]:
        missing.add_row(row["fact"], f"{row['undetermined_pairs']:,}",
                        f"{row['only_missing_fact']:,}")
    return [verdicts, missing]


__all__ = ["RichProgress", "summary_tables"]

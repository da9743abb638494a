"""CPU time of a process and every process under it, from Linux's ``/proc``: what the
server processes of a run spent, whatever else the machine was doing meanwhile."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # the fields after the command name


def tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU seconds of ``root`` and its living descendants (None where there
    is no ``/proc``)."""
    if not Path("/proc/self/stat").exists():
        return None
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))  # ppid
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
        todo.extend(children.get(pid, []))
    return total

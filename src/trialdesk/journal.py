"""Journey and randomisation files for the command line (the imperative shell).

One directory holds a trial's files::

    <root>/<trial id>/journeys/<patient id>.json          the patient's journey
    <root>/<trial id>/randomisation/<id>.list.json        the sealed allocation list
    <root>/<trial id>/randomisation/<id>.log.json         every allocation made, in order

Every write goes to a temporary file in the same directory, is flushed to disk, and
replaces the old file in one rename, so a reader sees the old file or the new one, never
half of either. The allocation list is written once (never replaced) and readable by its
owner only: the command line never prints an entry before it is allocated, and the file
belongs where site staff cannot read it. Randomisation holds a lock file, so two
randomisations cannot take the same entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from trialdesk.enrolment.allocation import Allocation
from trialdesk.enrolment.journey import Journey
from trialdesk.enrolment.randomisation import AllocationList
from trialdesk.errors import EnrolmentError, NotFoundError

__all__ = ["AllocationLog", "JournalStore", "atomic_write"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file and one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class AllocationLog(BaseModel):
    """Every allocation made from one list, in the order made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: str = "trialdesk.allocation-log/1"
    list_digest: str
    allocations: tuple[Allocation, ...] = ()


def _safe(value: str, what: str) -> str:
    if not _SAFE_ID.match(value):
        raise EnrolmentError("use letters, digits, '.', '_' and '-' (it names a file)",
                             where=f"{what} {value!r}")
    return value


class JournalStore:
    """The files of all trials under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ------------------------------------------------------------------ journeys

    def journey_path(self, trial_id: str, patient_id: str) -> Path:
        return (self.root / _safe(trial_id, "trial id") / "journeys"
                / f"{_safe(patient_id, 'patient id')}.json")

    def load_journey(self, trial_id: str, patient_id: str) -> Journey | None:
        """The patient's journey, or None if nothing was recorded yet."""
        path = self.journey_path(trial_id, patient_id)
        if not path.exists():
            return None
        journey = _read_model(path, Journey)
        if (journey.trial_id, journey.patient_id) != (trial_id, patient_id):
            raise EnrolmentError(f"holds {journey.patient_id} in {journey.trial_id}",
                                 where=str(path))
        return journey

    def require_journey(self, trial_id: str, patient_id: str) -> Journey:
        journey = self.load_journey(trial_id, patient_id)
        if journey is None:
            raise NotFoundError(f"nothing recorded for patient {patient_id} in {trial_id} "
                                f"(no {self.journey_path(trial_id, patient_id)})")
        return journey

    def save_journey(self, journey: Journey) -> Path:
        path = self.journey_path(journey.trial_id, journey.patient_id)
        atomic_write(path, _dump(journey))
        return path

    # ------------------------------------------------------------------ randomisation

    def _rand_dir(self, trial_id: str) -> Path:
        return self.root / _safe(trial_id, "trial id") / "randomisation"

    def list_path(self, trial_id: str, randomisation_id: str) -> Path:
        return self._rand_dir(trial_id) / f"{_safe(randomisation_id, 'randomisation')}.list.json"

    def log_path(self, trial_id: str, randomisation_id: str) -> Path:
        return self._rand_dir(trial_id) / f"{_safe(randomisation_id, 'randomisation')}.log.json"

    def save_new_list(self, trial_id: str, allocation_list: AllocationList) -> Path:
        """Write a generated list once; an existing list is never replaced."""
        path = self.list_path(trial_id, allocation_list.scheme.id)
        if path.exists():
            raise EnrolmentError("a list already exists for this randomisation; a sealed list "
                                 "is never replaced", where=str(path))
        atomic_write(path, _dump(allocation_list), mode=0o600)
        return path

    def load_list(self, trial_id: str, randomisation_id: str) -> AllocationList:
        path = self.list_path(trial_id, randomisation_id)
        if not path.exists():
            raise NotFoundError(f"no allocation list for {trial_id} randomisation "
                                f"{randomisation_id}; generate one first (no {path})")
        return _read_model(path, AllocationList)

    def load_log(self, trial_id: str, randomisation_id: str, list_digest: str) -> AllocationLog:
        path = self.log_path(trial_id, randomisation_id)
        if not path.exists():
            return AllocationLog(list_digest=list_digest)
        return _read_model(path, AllocationLog)

    def save_log(self, trial_id: str, randomisation_id: str, log: AllocationLog) -> Path:
        path = self.log_path(trial_id, randomisation_id)
        atomic_write(path, _dump(log))
        return path

    @contextlib.contextmanager
    def locked(self, trial_id: str, randomisation_id: str) -> Iterator[None]:
        """Hold the randomisation's lock file (one randomisation at a time)."""
        directory = self._rand_dir(trial_id)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / f"{_safe(randomisation_id, 'randomisation')}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _dump(model: BaseModel) -> bytes:
    return (json.dumps(model.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n").encode()


def _read_model(path: Path, model: type[Any]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnrolmentError(f"cannot read file: {exc.strerror}", where=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EnrolmentError(f"malformed JSON: {exc.msg}",
                             where=f"{path}:{exc.lineno}:{exc.colno}") from None
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise EnrolmentError(f"{err['msg']} at {loc or 'top level'}", where=str(path)) from None

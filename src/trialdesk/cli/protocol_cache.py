"""Compiled protocols kept between runs of the command line, so that a command that reads
the protocols (``screen``, ``show``, ``trials``) does not parse and type-check every file
again.

A cached protocol is found by the SHA-256 of the file's bytes together with a fingerprint of
trialdesk itself (its version and the size and modification time of every module), so a
changed protocol file or a changed trialdesk never reuses an old compilation. The cache is a
folder of pickles readable by its owner only: ``$TRIALDESK_CACHE``, else
``$XDG_CACHE_HOME/trialdesk``, else ``~/.cache/trialdesk``; ``TRIALDESK_CACHE=off`` turns it
off. A file the cache cannot read or write is compiled as if there were no cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import trialdesk
from trialdesk.errors import ProtocolError

if TYPE_CHECKING:
    from trialdesk.protocol.load import CompiledProtocol

SUFFIXES = (".yaml", ".yml", ".json")


def cache_dir() -> Path | None:
    setting = os.environ.get("TRIALDESK_CACHE")
    if setting == "off":
        return None
    if setting:
        return Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trialdesk"


@cache
def code_fingerprint() -> str:
    """The installed trialdesk: its version and every module's size and modification time."""
    root = Path(trialdesk.__file__).resolve().parent
    h = hashlib.sha256(trialdesk.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _compile(path: Path) -> CompiledProtocol:
    from trialdesk.protocol.load import load_protocol

    return load_protocol(path)


def load_cached(path: Path) -> CompiledProtocol:
    """One protocol file, from the cache when its content and trialdesk are unchanged."""
    folder = cache_dir()
    if folder is None:
        return _compile(path)
    try:
        data = path.read_bytes()
    except OSError:
        return _compile(path)  # the loader names the file and the reason
    key = hashlib.sha256(code_fingerprint().encode() + b"\0" + str(path.resolve()).encode()
                         + b"\0" + data).hexdigest()
    entry = folder / "protocols" / f"{key}.pickle"
    with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError,
                             ImportError, ValueError, TypeError):
        with entry.open("rb") as handle:
            protocol, rules, arm_rules, where, kinds = pickle.load(handle)
        from trialdesk.protocol.load import CompiledProtocol

        return CompiledProtocol(protocol, rules, arm_rules, where, kinds)
    compiled = _compile(path)
    state = (compiled.protocol, dict(compiled.rules), dict(compiled.arm_rules), compiled.path,
             dict(compiled.kinds))
    with contextlib.suppress(OSError, pickle.PicklingError, TypeError, AttributeError):
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, entry)
        finally:
            Path(temporary).unlink(missing_ok=True)
    return compiled


def load_directory_cached(directory: Path) -> dict[str, CompiledProtocol]:
    """Every protocol file of a folder by trial id, as :func:`trialdesk.protocol.load.
    load_directory` gives them."""
    if not directory.is_dir():
        raise ProtocolError("not a directory", where=str(directory))
    found: dict[str, CompiledProtocol] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix not in SUFFIXES:
            continue
        compiled = load_cached(path)
        if compiled.id in found:
            raise ProtocolError(f"trial id {compiled.id} also defined in {found[compiled.id].path}",
                                where=str(path))
        found[compiled.id] = compiled
    return found

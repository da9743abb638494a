"""The command line's compiled-protocol cache: the same protocols as a fresh compilation,
never an old compilation of a changed file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trialdesk.cli.protocol_cache import load_directory_cached
from trialdesk.errors import ProtocolError
from trialdesk.protocol.load import default_protocol_dir, load_directory


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TRIALDESK_CACHE", str(folder))
    return folder


def test_cached_protocols_equal_fresh_ones(cache: Path) -> None:
    fresh = load_directory(default_protocol_dir())
    first = load_directory_cached(default_protocol_dir())  # compiles and stores
    stored = sorted((cache / "protocols").glob("*.pickle"))
    assert len(stored) == len(fresh)
    second = load_directory_cached(default_protocol_dir())  # from the cache
    for trial_id, compiled in fresh.items():
        for got in (first[trial_id], second[trial_id]):
            assert got.protocol == compiled.protocol
            assert dict(got.rules) == dict(compiled.rules)
            assert dict(got.arm_rules) == dict(compiled.arm_rules)
            assert got.protocol.dictionary.names() == compiled.protocol.dictionary.names()
    assert (cache / "protocols").stat().st_mode & 0o077 == 0


def test_a_changed_file_is_compiled_again(cache: Path, tmp_path: Path) -> None:
    folder = tmp_path / "protocols"
    folder.mkdir()
    source = default_protocol_dir() / "nb-nk-2026.yaml"
    target = folder / "nb-nk-2026.yaml"
    shutil.copyfile(source, target)
    before = load_directory_cached(folder)["NB-NK-2026"]
    text = target.read_text().replace("lvef >= 55 [%]", "lvef >= 50 [%]", 1)
    assert text != source.read_text()
    target.write_text(text)
    after = load_directory_cached(folder)["NB-NK-2026"]
    assert dict(after.rules) != dict(before.rules)
    assert len(list((cache / "protocols").glob("*.pickle"))) == 2


def test_an_unreadable_cache_entry_is_compiled_again(cache: Path) -> None:
    load_directory_cached(default_protocol_dir())
    for entry in (cache / "protocols").glob("*.pickle"):
        entry.write_bytes(b"not a pickle")
    again = load_directory_cached(default_protocol_dir())
    assert set(again) == set(load_directory(default_protocol_dir()))


def test_off_and_bad_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIALDESK_CACHE", "off")
    assert set(load_directory_cached(default_protocol_dir())) >= {"NB-NK-2026"}
    with pytest.raises(ProtocolError, match="not a directory"):
        load_directory_cached(tmp_path / "missing")

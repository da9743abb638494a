"""Cell products on the record (SQLite and the test PostgreSQL server): the whole NB-NK-2026
chain of arm A through the services, mix-ups refused and audited with nothing infused, two
hand-overs of one product at once, and the command line on the same database.

The NB-NK-2026 release limits, dose range and shelf life are not public (FACTS.md §1h): the
protocol stored here is the shipped one with TEST FIXTURE values filled in (marked so in
their ``source``) to exercise the logic; they are not clinical limits.
"""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import conftest
from test_cellproduct import _LIMITS as LIMITS  # the same TEST FIXTURE limits
from trialdesk.cellproduct.product import Counts, ProductError
from trialdesk.cli import app
from trialdesk.errors import ConflictError, ScheduleError, TrialdeskError
from trialdesk.protocol.load import default_protocol_dir
from trialdesk.services import cellproduct as cp
from trialdesk.services import journeys
from trialdesk.services.accounts import Principal, principal_for
from trialdesk.services.context import Services
from trialdesk.services.demo import seed_demo
from trialdesk.store import Store

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = "TEST FIXTURE, not a clinical limit"
FACILITY = "A9999"
START = "2026-11-23T07:00:00+00:00"  # the demo enrols with day 1 = the clock's date
PASSING: list[tuple[str, float | str, str | None]] = [
    ("viability", 92, "%"), ("nk_identity", 91, "% of viable cells"),
    ("t_cells_per_kg", 1.0e5, "cells"), ("sterility", "no growth", None),
    ("endotoxin", 0.5, "EU/mL"), ("mycoplasma", "negative", None)]


def _fixture_copy(directory: Path, name: str, lot: str, dose: str,
                  dose_changes: dict[str, dict[str, Any]]) -> None:
    """The shipped protocol file with TEST FIXTURE values: release limits on ``lot``, the
    given fields of ``dose`` (shelf life, dose range)."""
    doc = yaml.safe_load((default_protocol_dir() / name).read_text())
    for product in doc["products"]:
        if product["id"] == lot:
            for test in product["release_tests"]:
                test["limit"].update(LIMITS[test["id"]])
        if product["id"] == dose:
            for key, value in dose_changes.items():
                product[key].update(value)
    (directory / name).write_text(yaml.safe_dump(doc, sort_keys=False))


def _fixture_protocols(directory: Path, *, rumcess: bool = False) -> Path:
    directory.mkdir()
    shelf = {"maximum": 4, "source": FIXTURE}
    if rumcess:
        _fixture_copy(directory, "rumcess.yaml", "msc-lot", "msc-dose", {"shelf_life_hours": shelf})
    # Dose levels of the MSKCC phase I (FACTS.md §1h: 1 to 50 ×10⁶/kg) as a fixture range.
    _fixture_copy(directory, "nb-nk-2026.yaml", "nk-expansion", "nk-dose", {
        "dose_per_kg": {"minimum": 1e6, "maximum": 5e7, "source": FIXTURE},
        "shelf_life_hours": shelf})
    return directory


class Lab:
    """The demo database with the fixture protocol, and one principal per role."""

    def __init__(self, url: str, tmp: Path, *, start: str = START, rumcess: bool = False) -> None:
        self.clock = conftest.TestClock(start)
        self.store = Store.open(url, clock=self.clock)  # type: ignore[arg-type]
        seed_demo(self.store, _fixture_protocols(tmp / "protocols", rumcess=rumcess),
                  ROOT / "examples" / "patients")
        self.ctx = Services.open(self.store)
        self.patient = self.store.patients([("NB-NK-2026", None)]).items[0].study_number

    def who(self, username: str) -> Principal:
        return principal_for(self.store, username)

    def at(self, when: datetime) -> None:
        self.clock.at = when.replace(tzinfo=UTC)

    @property
    def nk_events(self) -> list[dict[str, Any]]:
        page = journeys.calendar_page(self.ctx, self.who("investigator"), self.patient)
        return [e for e in page["calendar"]["events"] if e["cell_product"]]

    def collect(self, patient: str | None = None) -> str:
        out = cp.record_collection(
            self.ctx, self.who("pharmacist"), trial_id="NB-NK-2026", spec_id="nk-collection",
            facility=FACILITY, code="S0001A", collected_at=datetime(2026, 11, 22, 9, 0),
            procedure="peripheral blood", patient=patient or self.patient, site="Moscow",
            volume_ml=40, counts=Counts(tnc=1.2e9, mnc=8.0e8, viability_percent=98),
            reason="collection recorded")
        return str(out["id"])

    def expand(self, collection: str, *, release: str | None = "normal") -> str:
        pharm = self.who("pharmacist")
        batch = cp.derive_product(self.ctx, pharm, collection, spec_id="nk-expansion",
                                  code="S0002A", prepared_at=datetime(2026, 11, 23, 8),
                                  counts=Counts(viable_cells=1.2e9), reason="expansion")["id"]
        for test_id, value, unit in PASSING:
            cp.record_test_result(self.ctx, pharm, batch, test_id=test_id, value=value, unit=unit,
                                  tested_at=datetime(2026, 11, 23, 9), reason="QC result")
        self.at(max(self.clock.at.replace(tzinfo=None), datetime(2026, 11, 23, 10)))
        if release == "normal":
            decision = cp.release_product(self.ctx, pharm, batch, password="pharmacist-demo",
                                          reason="release")
            assert decision["released"] and not decision["exceptional"], decision["tests"]
        elif release == "exceptional":
            decision = cp.exceptional_release(
                self.ctx, pharm, "pharmacist-demo", self.who("investigator"), "investigator-demo",
                batch, justification="no other treatment option; T-cell count unknown",
                reason="exceptional release")
            assert decision["exceptional"] and len(decision["e_signatures"]) == 2
        return str(batch)

    def aliquot(self, batch: str, index: int) -> str:
        return str(cp.derive_product(
            self.ctx, self.who("pharmacist"), batch, spec_id="nk-aliquot", code="S0003A",
            division=index, prepared_at=datetime(2026, 11, 23, 10),
            storage=f"LN2 tank 1 / box 4 / {index + 1}", reason="cryopreserved")["id"])

    def thaw(self, aliquot: str, at: datetime, cells: float) -> str:
        return str(cp.derive_product(
            self.ctx, self.who("pharmacist"), aliquot, spec_id="nk-dose", code="S0004A",
            prepared_at=at, counts=Counts(viable_cells=cells, viability_percent=90),
            reason="thawed for infusion")["id"])

    def verify(self, dose: str, event_id: str, *, second: str = "investigator",
               wristband: str | None = None, patient: str | None = None) -> dict[str, Any]:
        return cp.verify_at_bedside(
            self.ctx, self.who("coordinator"), patient or self.patient, event_id=event_id,
            entered=dose, wristband=wristband or patient or self.patient,
            second_verifier=second, second_password=f"{second}-demo")

    def weight(self, patient: str | None = None) -> float:
        found, _ = cp._weight(self.ctx, patient or self.patient, date(2026, 12, 31))
        assert found is not None
        return found

    def audit_count(self) -> int:
        return self.store.verify_audit().entries


@pytest.fixture
def lab(database_url: str, tmp_path: Path) -> Lab:
    return Lab(database_url, tmp_path)


def _day(text: str, hour: int) -> datetime:
    return datetime.combine(date.fromisoformat(text), datetime.min.time()) + timedelta(hours=hour)


def test_nbnk_arm_a_collection_to_four_infusions(lab: Lab) -> None:
    # seed 000: collection on day -1, autologous NK cells on day 7 of each DIT course (arm A: 4)
    events = lab.nk_events
    assert [e["course_day"] for e in events] == [7, 7, 7, 7]
    collection = lab.collect()
    # the demo recorded the facility's first DIN of 2026; this is the next one
    assert collection.startswith("A999926000002 00 ")
    batch = lab.expand(collection)
    aliquots = [lab.aliquot(batch, i) for i in range(4)]
    weight = lab.weight()
    for event, aliquot in zip(events, aliquots, strict=True):
        lab.at(_day(event["date"], 7))
        before = cp.released_product_for(lab.ctx, lab.who("coordinator"), lab.patient,
                                         event["id"])
        assert before["status"] == "no released product"
        with pytest.raises(ScheduleError, match="bedside verification"):
            journeys.record_event(lab.ctx, lab.who("coordinator"), lab.patient,
                                  event_id=event["id"], status="given", at=_day(event["date"], 8),
                                  amount=None, unit=None, by=None, reason=None, note="given")
        dose = lab.thaw(aliquot, _day(event["date"], 8), cells=1.0e7 * weight)
        after = cp.released_product_for(lab.ctx, lab.who("coordinator"), lab.patient, event["id"])
        assert [r["product"] for r in after["released"]] == [dose]
        row = lab.store.cell_product(dose)
        assert row is not None
        cp.hand_over(lab.ctx, lab.who("pharmacist"), dose, expected_version=row.version,
                     to="coordinator", location="ward 3", at=_day(event["date"], 8),
                     temperature_c=20.0, condition="intact", reason="to the ward")
        lab.at(_day(event["date"], 9))
        checked = lab.verify(dose, event["id"])
        assert checked["accepted"], checked["refusals"]
        assert checked["cells_per_kg"] == pytest.approx(1.0e7)
        cp.record_infusion(lab.ctx, lab.who("coordinator"), lab.patient,
                           verification=checked["id"], start=_day(event["date"], 9),
                           end=_day(event["date"], 10), volume_ml=50,
                           observations="no reaction", reason="infused")
    given = {e["id"]: e["status"] for e in lab.nk_events}
    assert set(given.values()) == {"given"}
    history = cp.product_history(lab.ctx, lab.who("monitor"), dose)
    assert [p["stage"] for p in history["line"]] == ["collection", "processing", "aliquot", "dose"]
    assert history["line"][0]["id"] == collection and history["donor"]["id"] == lab.patient
    assert history["releases"][0]["signatures"][0]["signer"] == "pharmacist"
    assert history["infusion"]["event"] == events[-1]["id"]
    assert history["current"]["holder"] == "coordinator"
    assert cp.product_history_pdf(lab.ctx, lab.who("monitor"), dose).startswith(b"%PDF")
    assert lab.store.verify_audit().ok
    # A reaction is linked to an adverse event already recorded, never to an unknown one.
    with pytest.raises(TrialdeskError, match="record the reaction as an adverse event"):
        cp.record_infusion(lab.ctx, lab.who("coordinator"), lab.patient,
                           verification=checked["id"], start=_day(events[-1]["date"], 11),
                           end=None, volume_ml=None, reactions=[999999], reason="again")
    # A dose is given once: the same verification cannot be infused again.
    with pytest.raises(TrialdeskError):
        cp.record_infusion(lab.ctx, lab.who("coordinator"), lab.patient,
                           verification=checked["id"], start=_day(events[-1]["date"], 11),
                           end=None, volume_ml=None, reason="again")


def _refused(lab: Lab, dose: str, event_id: str, code: str, **kw: Any) -> None:
    before = lab.audit_count()
    checked = lab.verify(dose, event_id, **kw)
    assert not checked["accepted"]
    assert code in {r["code"] for r in checked["refusals"]}, checked["refusals"]
    assert lab.audit_count() == before + 1  # the refusal is recorded and audited
    with pytest.raises(ProductError, match="refused"):
        cp.record_infusion(lab.ctx, lab.who("coordinator"), kw.get("patient") or lab.patient,
                           verification=checked["id"], start=lab.clock.at.replace(tzinfo=None),
                           end=None, volume_ml=None, reason="infused")


def test_mix_ups_are_refused_audited_and_nothing_is_infused(lab: Lab) -> None:
    event = lab.nk_events[0]
    weight = lab.weight()
    batch = lab.expand(lab.collect())
    dose = lab.thaw(lab.aliquot(batch, 0), _day(event["date"], 8), cells=1.0e7 * weight)
    unreleased = lab.thaw(lab.aliquot(lab.expand(lab.collect(), release=None), 0),
                          _day(event["date"], 8), cells=1.0e7 * weight)
    high = lab.thaw(lab.aliquot(batch, 1), _day(event["date"], 8), cells=1.0e8 * weight)
    other = lab.store.patients([("NB-NK-2026", None)]).items[1].study_number
    # not enrolled: no weight for the T-cell limit per kg, so released by exceptional release
    foreign = lab.thaw(lab.aliquot(lab.expand(lab.collect(other), release="exceptional"), 0),
                       _day(event["date"], 8),
                       cells=1.0e7 * weight)
    lab.at(_day(event["date"], 9))
    _refused(lab, foreign, event["id"], "wrong_patient")  # another patient's product
    _refused(lab, dose, event["id"], "wrong_patient", wristband=other)  # wrong wristband
    _refused(lab, unreleased, event["id"], "not_released")
    _refused(lab, high, event["id"], "dose_out_of_range")  # 1 ×10⁸/kg, above 5 ×10⁷/kg
    _refused(lab, dose, event["id"], "one_person", second="coordinator")
    lab.at(_day(lab.nk_events[1]["date"], 9))  # the right product on the wrong day
    _refused(lab, dose, event["id"], "wrong_day")
    lab.at(_day(event["date"], 13))  # 4 h fixture shelf life after the 08:00 thaw
    _refused(lab, dose, event["id"], "expired")
    assert lab.store.product_infusions([dose, unreleased, high, foreign]) == []
    assert {e["status"] for e in lab.nk_events} == {"planned"} or all(
        e["status"] != "given" for e in lab.nk_events)
    refusals = lab.store.product_verifications(study_number=lab.patient)
    assert len(refusals) == 7 and not any(v.document["accepted"] for v in refusals)


def test_two_hand_overs_of_one_product_at_once(lab: Lab) -> None:
    batch = lab.expand(lab.collect())
    row = lab.store.cell_product(batch)
    assert row is not None
    outcomes: list[object] = []

    def give(to: str) -> None:
        try:
            outcomes.append(cp.hand_over(
                lab.ctx, lab.who("pharmacist"), batch, expected_version=row.version, to=to,
                location="cryostore", at=datetime(2026, 11, 23, 12), temperature_c=-150.0,
                condition="intact", reason="to storage"))
        except ConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=give, args=(to,)) for to in ("coordinator", "investigator")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [o for o in outcomes if isinstance(o, dict)]
    lost = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert "changed by pharmacist" in str(lost[0])
    after = lab.store.cell_product(batch)
    assert after is not None and after.version == row.version + 1
    assert after.holder == won[0]["holder"]  # type: ignore[index]
    assert len(lab.store.product_handovers([batch])) == 1
    assert lab.store.verify_audit().ok


def test_release_needs_the_password_and_the_lab_role(lab: Lab) -> None:
    batch = lab.expand(lab.collect(), release=None)
    before = lab.audit_count()
    with pytest.raises(TrialdeskError, match="password is wrong"):
        cp.release_product(lab.ctx, lab.who("pharmacist"), batch, password="x", reason="r")
    with pytest.raises(TrialdeskError, match=r"does not allow product\.release"):
        cp.release_product(lab.ctx, lab.who("coordinator"), batch, password="coordinator-demo",
                           reason="r")
    assert lab.store.product_releases([batch]) == []
    assert lab.audit_count() >= before  # failed log-ins may be counted, nothing released


def test_command_line_on_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'td.db'}"
    lab = Lab(url, tmp_path)
    runner = CliRunner()
    env = {"TRIALDESK_DATABASE_URL": url, "TRIALDESK_FACILITY": FACILITY,
           "TRIALDESK_PASSWORD": "pharmacist-demo"}

    def run(*args: object) -> str:
        result = runner.invoke(app, [str(a) for a in args], env=env)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result.stdout

    out = json.loads(run("product", "collect", "--patient", lab.patient, "--trial", "NB-NK-2026", "--type",
                         "nk-collection", "--code", "S0001A", "--at", "2026-11-22T09:00",
                         "--procedure", "peripheral blood", "--volume", "40", "--by",
                         "pharmacist", "--json"))
    collection = out["id"]
    batch = json.loads(run("product", "derive", collection, "--type", "nk-expansion", "--code",
                           "S0002A", "--at", "2026-11-23T08:00", "--viable-cells", "1.2e9",
                           "--by", "pharmacist", "--json"))["id"]
    for test_id, value, unit in PASSING:
        run("product", "test", batch, "--test", test_id, "--value", value,
            *(["--unit", unit] if unit else []), "--at", "2026-11-23T09:00", "--by", "pharmacist")
    released = json.loads(run("product", "release", batch, "--by", "pharmacist", "--json"))
    assert released["released"]
    moved = json.loads(run("product", "transfer", batch, "--to", "coordinator", "--location",
                           "cryostore", "--version", "1", "--at", "2026-11-23T10:00",
                           "--temperature", "-150", "--by", "pharmacist", "--json"))
    assert moved["holder"] == "coordinator"
    result = runner.invoke(app, ["product", "transfer", batch, "--to", "investigator",
                                 "--location", "x", "--version", "1", "--at",
                                 "2026-11-23T11:00", "--by", "pharmacist"], env=env)
    assert result.exit_code == 1 and "changed by pharmacist" in result.stderr
    text = run("product", "history", batch, "--by", "pharmacist")
    assert "released" in text and collection in text
    assert lab.store.verify_audit().ok
    shutil.rmtree(tmp_path / "protocols")


# --------------------------------------------------------------------------- RuMCeSS


def _msc_patient(lab: Lab) -> str:
    """A second RuMCeSS patient, enrolled from the sealed list (the demo's list gives the
    first patient standard care and this one MSC)."""
    from trialdesk.criteria.verdict import screen_record
    from trialdesk.facts.patient import patient_from_data
    from trialdesk.protocol.load import protocol_from_data
    from trialdesk.services.demo import DEMO_MOMENT

    data = json.loads((ROOT / "examples" / "patients" / "rumcess-eligible.json").read_text())
    number = lab.store.next_study_number("RuMCeSS", "RUMCES")
    record = patient_from_data({**data, "patient_id": number}, today=date(2026, 11, 21),
                               source="rumcess-eligible.json")
    lab.store.add_patient(number, "RuMCeSS", "Moscow", record.model_dump(mode="json"), {},
                          actor="coordinator", reason="referred")
    consent = record.consents[0]
    journeys.record_consent(lab.ctx, lab.who("coordinator"), number, version=consent.version or "2.0",
                            signed_on=consent.date, signed_by=consent.signed_by,
                            assent=consent.assent, reason="consent")
    version = lab.store.protocol_version("RuMCeSS")
    result = screen_record(protocol_from_data(version.document, source="RuMCeSS"), record,
                           as_of=DEMO_MOMENT).to_json()
    screening = lab.store.add_screening(number, version.id, lab.store.patient(number).version,
                                        result, actor="investigator", reason="screening")
    journeys.enrol_patient(lab.ctx, lab.who("investigator"), number, screening_id=screening.id,
                           password="investigator-demo", reason="enrolment",
                           start=date(2026, 11, 21))
    return number


@pytest.mark.parametrize(("verified_at", "minutes_left", "met"), [
    (datetime(2026, 11, 21, 14, 0), 120, True),  # seed 004: MSC within 10 h of onset 06:00
    (datetime(2026, 11, 21, 16, 30), -30, False),  # after 16:00: a deviation, not a refusal
])
def test_rumcess_msc_infusion_and_the_10_hour_deadline(tmp_path: Path, verified_at: datetime,
                                                       minutes_left: int, met: bool) -> None:
    lab = Lab(f"sqlite:///{tmp_path / 'td.db'}", tmp_path, start="2026-11-21T12:30:00+00:00",
              rumcess=True)
    patient = _msc_patient(lab)
    pharm = lab.who("pharmacist")
    event = next(e for e in journeys.calendar_page(lab.ctx, lab.who("investigator"),
                                                   patient)["calendar"]["events"]
                 if e["cell_product"])
    assert event["deadline"] == "2026-11-21T16:00"
    donation = cp.record_collection(
        lab.ctx, pharm, trial_id="RuMCeSS", spec_id="msc-donation", facility=FACILITY,
        code="S0101A", collected_at=datetime(2026, 11, 1, 9), procedure="bone marrow",
        donor="MSC-BANK-17", reason="bank donation")["id"]
    assert donation.startswith("A999926000002 00 ")  # the demo's NB collection is the first
    lot = cp.derive_product(lab.ctx, pharm, donation, spec_id="msc-lot", code="S0102A",
                            prepared_at=datetime(2026, 11, 2, 9), reason="expanded")["id"]
    for test_id, value, unit in [("viability", 95, "%"), ("msc_identity", 97, "% of viable cells"),
                                 ("sterility", "no growth", None), ("endotoxin", 0.2, "EU/mL"),
                                 ("mycoplasma", "negative", None)]:
        cp.record_test_result(lab.ctx, pharm, lot, test_id=test_id, value=value, unit=unit,
                              tested_at=datetime(2026, 11, 3, 9), reason="QC")
    assert cp.release_product(lab.ctx, pharm, lot, password="pharmacist-demo",
                              reason="release")["released"]
    aliquot = cp.derive_product(lab.ctx, pharm, lot, spec_id="msc-aliquot", code="S0103A",
                                division=0, prepared_at=datetime(2026, 11, 4, 9),
                                reason="banked")["id"]
    weight = lab.weight(patient)
    dose = cp.derive_product(lab.ctx, pharm, aliquot, spec_id="msc-dose", code="S0104A",
                             recipient=patient, prepared_at=datetime(2026, 11, 21, 13),
                             counts=Counts(viable_cells=1.5e6 * weight), reason="thawed")["id"]
    lab.at(verified_at)
    waiting = cp.released_product_for(lab.ctx, lab.who("coordinator"), patient, event["id"])
    assert [r["product"] for r in waiting["released"]] == [dose]
    assert waiting["minutes_left"] == minutes_left
    checked = lab.verify(dose, event["id"], patient=patient)
    assert checked["accepted"], checked["refusals"]
    assert (checked["minutes_left"], checked["deadline_met"]) == (minutes_left, met)
    assert bool(checked["warnings"]) is not met
    infused = cp.record_infusion(lab.ctx, lab.who("coordinator"), patient,
                                 verification=checked["id"], start=verified_at, end=None,
                                 volume_ml=20, reason="infused")
    assert infused["deadline_met"] is met
    # The calendar's MSC dose is in cells (1-2 ×10⁶/kg worked out for the weight): the
    # record holds the cells infused, not the cells per kg.
    given = [r for r in lab.store.journey(patient).records  # type: ignore[union-attr]
             if r["event_id"] == event["id"]]
    assert [(r["status"], r["amount"], r["unit"]) for r in given] == [
        ("given", pytest.approx(1.5e6 * weight), "cells")]
    assert cp.product_history(lab.ctx, lab.who("monitor"), dose)["donor"] == {
        "id": "MSC-BANK-17", "kind": "third_party"}

"""Stratified randomisation by FCGR3A genotype: balanced within every genotype stratum.

Permuted blocks within strata (trialdesk.enrolment.randomisation): every stratum's list is
made of whole blocks each balanced to the ratio, so after n patients in a stratum the arms
differ by at most half the largest block. The example protocol is RuMCeSS with its
randomisation stratified by site and FCGR3A V158F genotype (a test fixture, not the seed
trial's design).
"""

from __future__ import annotations

import copy
import random
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from trialdesk.enrolment.allocation import Allocator, verify_allocations
from trialdesk.enrolment.enrol import factors_from_facts, scheme_of
from trialdesk.enrolment.randomisation import generate_list, stratum_keys
from trialdesk.errors import EnrolmentError
from trialdesk.facts.normalise import normalise
from trialdesk.facts.patient import patient_from_data
from trialdesk.protocol.load import protocol_from_data, read_document
from trialdesk.protocol.model import LookBack, Protocol

ROOT = Path(__file__).resolve().parents[1]
GENOTYPES = ("V/V", "V/F", "F/F")
SEED = 20261204
T0 = datetime.fromisoformat("2026-12-04T09:00:00+03:00")


def stratified_protocol() -> Protocol:
    data = copy.deepcopy(read_document(ROOT / "protocols" / "rumcess.yaml"))
    data["randomisations"][0]["strata"] = {"site": ["NRCH", "MSK"],
                                           "fcgr3a_genotype": list(GENOTYPES)}
    data["randomisations"][0]["block_sizes"] = [2, 4]
    return protocol_from_data(data, source="fcgr3a-stratified").protocol


def test_fcgr3a_strata_are_balanced_within_every_stratum() -> None:
    scheme = scheme_of(stratified_protocol())
    assert scheme.strata == {"site": ("NRCH", "MSK"), "fcgr3a_genotype": GENOTYPES}
    assert len(stratum_keys(scheme)) == 6
    lst = generate_list(scheme, SEED, size_per_stratum=40)
    # Genotype mix drawn with a fixed seed; F carriers are common (V/F, F/F).
    rng = random.Random(SEED)
    patients = [{"site": rng.choice(("NRCH", "MSK")),
                 "fcgr3a_genotype": rng.choices(GENOTYPES, weights=(2, 5, 3))[0]}
                for _ in range(120)]
    allocator = Allocator(lst)
    state = allocator.start()
    log = []
    counts: dict[str, Counter[str]] = {}
    for i, factors in enumerate(patients):
        allocation, state = allocator.next_allocation(state, f"P{i:03d}", factors, enrolled=True,
                                                      at=T0 + timedelta(hours=i))
        log.append(allocation)
        tally = counts.setdefault(allocation.stratum, Counter())
        tally[allocation.arm] += 1
        # At every step, within the patient's stratum: |MSC − SOC| ≤ 4 / 2.
        assert abs(tally["MSC"] - tally["SOC"]) <= 2, allocation.stratum
    by_genotype = Counter(p["fcgr3a_genotype"] for p in patients)
    assert set(by_genotype) == set(GENOTYPES)  # every stratum used
    for genotype in GENOTYPES:
        arms = Counter(a.arm for a, p in zip(log, patients, strict=True)
                       if p["fcgr3a_genotype"] == genotype)
        # Two sites per genotype, each within 2: the genotype within 4.
        assert abs(arms["MSC"] - arms["SOC"]) <= 4, genotype
    report = verify_allocations(lst, log)  # the log is the list's, entry by entry
    assert report.allocations_checked == 120 and report.discrepancies == ()


def test_the_genotype_stratum_comes_from_the_patient_facts() -> None:
    scheme = scheme_of(stratified_protocol())
    lookback = LookBack(default_days=30, source="test")
    record = patient_from_data({
        "patient_id": "p1", "birth_date": "1980-01-01",
        "findings": [{"name": "fcgr3a_genotype", "value": "F/F", "date": "2015-06-01"}]},
        today=date(2026, 12, 4))
    facts = normalise(record, trial_id="RuMCeSS", lookback=lookback, as_of=T0.replace(tzinfo=None))
    assert factors_from_facts(scheme, facts, {"site": "MSK"}) == {
        "site": "MSK", "fcgr3a_genotype": "F/F"}
    unknown = normalise(patient_from_data({"patient_id": "p2", "birth_date": "1980-01-01"},
                                          today=date(2026, 12, 4)),
                        trial_id="RuMCeSS", lookback=lookback, as_of=T0.replace(tzinfo=None))
    with pytest.raises(EnrolmentError) as err:
        factors_from_facts(scheme, unknown, {"site": "MSK"})
    assert err.value.where == "strata.fcgr3a_genotype" and "unknown" in err.value.reason

"""Outcomes early in a trial, with little follow-up: nothing shown as derived that is not,
numbers rounded for people, and a DSMB report whose contents list only what it holds."""

from __future__ import annotations

import io
import re
from datetime import date

import pandas as pd
from pypdf import PdfReader

from trialdesk.outcomes.endpoints import clopper_pearson, format_rate, objective_response_rate
from trialdesk.outcomes.events import EventTable, validate_event_table
from trialdesk.outcomes.inputs import validate_measurements
from trialdesk.outcomes.report import DsmbInputs, dsmb_pdf, proportion_table
from trialdesk.outcomes.summary import EndpointChoice, summarise


def two_patients(best: list[str | None]) -> EventTable:
    return validate_event_table(pd.DataFrame({
        "patient_id": ["P1", "P2"], "arm": ["A", "A"], "enrolment_date": ["2026-11-20"] * 2,
        "best_response": best, "response_criteria": ["RECIST" if b else None for b in best],
        "last_contact_date": ["2026-11-21"] * 2}), arms=["A", "B"])


def test_orr_is_not_derived_while_no_best_overall_response_is() -> None:
    # A PR recorded at a time point does not make a best overall response: with none
    # derived, the ORR is "not derived", never 0/2.
    orr = objective_response_rate(two_patients([None, None]))
    a = orr.summary.loc["A"]
    assert (a["patients"], a["derived"], a["denominator"]) == (2, 0, 0)
    assert pd.isna(a["rate"])
    assert a["shown"] == "not derived: no best overall response derived yet"
    assert set(orr.table["reason"]) == {"best overall response not derived"}
    rates = proportion_table(summarise(two_patients([None, None]), EndpointChoice(("ORR",)),
                                       trial="T", time_unit="days"))
    row = rates[rates["arm"] == "A"].iloc[0]
    assert row["count / denominator"] == "not derived" and row["rate"] == "—"


def test_orr_with_some_best_responses_says_how_many_are_missing() -> None:
    a = objective_response_rate(two_patients(["PR", None])).summary.loc["A"]
    assert (a["derived"], a["denominator"], a["count"]) == (1, 2, 1)  # intention to treat
    assert a["shown"] == ("1/2 = 0.500 (95% CI 0.013–0.987); best overall response not derived "
                          "for 1 of 2")


def test_rates_are_rounded_for_people_with_their_interval() -> None:
    # Clopper–Pearson 0/2: upper bound 1 − 0.025^(1/2) = 0.8419 (exact), shown as 0.842.
    low, high = clopper_pearson(0, 2)
    assert abs(high - (1 - 0.025 ** 0.5)) < 1e-12
    assert format_rate(0, 2, 0.0, (low, high)) == "0/2 = 0.000 (95% CI 0.000–0.842)"
    a = objective_response_rate(two_patients(["SD", "PD"])).summary.loc["A"]
    assert a["shown"] == "0/2 = 0.000 (95% CI 0.000–0.842)"
    assert not re.search(r"\d\.\d{4}", a["shown"])


def _report(events: EventTable, measurements: bool) -> list[str]:
    tumour = None if not measurements else validate_measurements(pd.DataFrame({
        "patient_id": ["P1", "P1"], "assessment_date": ["2026-11-20", "2026-11-21"],
        "sum_diameters_mm": ["40", "24"], "overall_response": [None, "PR"]}), events)
    summary = summarise(events, EndpointChoice(("ORR", "OS")), trial="T", time_unit="days")
    pdf = dsmb_pdf(DsmbInputs(trial="T", title="t", events=events, summary=summary,
                              measurements=tumour, cutoff=date(2026, 11, 21)))
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def test_dsmb_contents_list_only_what_the_report_holds() -> None:
    events = two_patients([None, None])
    without = _report(events, measurements=False)
    assert "waterfall" not in without[0]
    assert not any("Best change in tumour size" in page for page in without)
    # Every section and figure listed on the cover is in the report, one page each here.
    listed = without[0].split("Contents\n", 1)[1].splitlines()
    assert listed == [
        "1. Enrolment", "2. Exposure (no file given)", "3-5. Adverse events (no file given)",
        "6. Deaths", "7. Stopping rules (no file given)", "8. Best overall response (none recorded)",
        "9. Response and mortality rates", "10. Survival", "Figure: Kaplan–Meier, OS",
        "Figure: swimmer (time on study)"]
    assert len(without) == 1 + len(listed)
    assert "1. Enrolment" in without[1] and "No exposure file was given." in without[2]
    with_tumour = _report(events, measurements=True)
    assert "Figure: waterfall (best change in tumour size)" in with_tumour[0]
    assert any("Best change in tumour size — T" in page for page in with_tumour[1:])
    assert len(with_tumour) == len(without) + 1

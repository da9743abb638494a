"""Outcome summaries and plots: endpoints chosen from the protocols, Kaplan–Meier with
numbers at risk, swimmer, waterfall and AE heat-map, as PNG, SVG and PDF.

The small trial below is worked out by hand: in days from enrolment, arm A has deaths
on days 5 and 10 and one patient censored on day 20; arm B a death on day 30 and one
patient censored on day 40. At the weekly ticks 0, 7, 14, 21, 28, 35, 42 the numbers
still at risk are A: 3 2 1 0 0 0 0 and B: 2 2 2 2 2 1 0 (no time falls on a tick).
"""

from __future__ import annotations

import doctest
import io
import re
from datetime import date, timedelta

import pandas as pd
import pytest
from PIL import Image

from trialdesk.errors import OutcomeError
from trialdesk.outcomes import plots as plots_module
from trialdesk.outcomes import summary as summary_module
from trialdesk.outcomes.events import EventTable, validate_event_table
from trialdesk.outcomes.inputs import (
    validate_adverse_events,
    validate_exposure,
    validate_measurements,
)
from trialdesk.outcomes.plots import (
    ae_heatmap_figure,
    ae_heatmap_table,
    at_risk_text,
    km_figure,
    render,
    swimmer_figure,
    waterfall_figure,
)
from trialdesk.outcomes.summary import (
    EndpointChoice,
    choose_time_unit,
    endpoints_for,
    format_time,
    parse_endpoints,
    summarise,
)
from trialdesk.protocol.load import default_protocol_dir, load_directory

START = date(2026, 1, 1)
TICKS = [0, 7, 14, 21, 28, 35, 42]
HAND = [
    ("P1", "A", 5, True),
    ("P2", "A", 10, True),
    ("P3", "A", 20, False),
    ("P4", "B", 30, True),
    ("P5", "B", 40, False),
]


def _day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


@pytest.fixture
def hand() -> EventTable:
    return validate_event_table(
        pd.DataFrame(
            [
                {
                    "patient_id": p,
                    "arm": a,
                    "enrolment_date": _day(0),
                    "death_date": _day(t) if dead else None,
                    "last_contact_date": None if dead else _day(t),
                }
                for p, a, t, dead in HAND
            ]
        ),
        arms=["A", "B"],
    )


def svg_texts(data: bytes) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", data.decode("utf-8"))


def test_doctests() -> None:
    assert doctest.testmod(plots_module).failed == 0
    assert doctest.testmod(summary_module).failed == 0


# --- which endpoints, in which unit --------------------------------------------------------


def test_endpoints_come_from_the_protocols_outcome_measures() -> None:
    protocols = load_directory(default_protocol_dir())

    def choice(trial: str) -> tuple[tuple[str, ...], int | None]:
        outcomes = protocols[trial].protocol.registry.outcomes
        picked = endpoints_for([o.measure for o in (*outcomes.primary, *outcomes.secondary)])
        return picked.names, picked.mortality_window_days

    # NB-NK-2026 registry record (seed 000): ORR, OS, PFS and RFS.
    assert choice("NB-NK-2026") == (("ORR", "OS", "PFS", "RFS"), None)
    # RuMCeSS (seed 004): 28-day mortality; OS carries its Kaplan–Meier curve.
    assert choice("RuMCeSS") == (("OS", "MORTALITY"), 28)


def test_endpoint_option_is_checked() -> None:
    assert parse_endpoints("efs,OS").names == ("OS", "EFS")
    with pytest.raises(OutcomeError, match="unknown endpoint"):
        parse_endpoints("OS,DFS")
    with pytest.raises(OutcomeError, match="needs its window"):
        EndpointChoice(("MORTALITY",))


def test_time_unit_is_days_for_short_follow_up(hand: EventTable) -> None:
    assert choose_time_unit(hand) == "days"
    assert choose_time_unit(hand, "months") == "months"
    with pytest.raises(OutcomeError):
        choose_time_unit(hand, "weeks")
    assert format_time(float("nan"), "days") == "—"
    assert format_time(28.0, "days") == "28 d"


def test_summary_of_the_hand_built_trial(hand: EventTable) -> None:
    s = summarise(hand, EndpointChoice(("OS", "MORTALITY"), 28), trial="T", time_unit="days")
    os_ = s.time_to_event["OS"]
    assert os_.kaplan_meier is not None
    medians = os_.kaplan_meier.summary
    assert medians.loc["A", "median"] == 10.0  # S(5)=2/3, S(10)=1/3: first time S <= 0.5
    assert medians.loc["B", "median"] == 30.0
    # Landmark at the 28-day window: A has nobody left (last follow-up day 20, curve not 0).
    marks = os_.landmarks.set_index("group")
    assert pd.isna(marks.loc["A", "survival"])
    assert marks.loc["B", "survival"] == 1.0
    assert os_.logrank is not None and os_.logrank.degrees_of_freedom == 1
    mortality = s.proportions["MORTALITY"].summary
    # Deaths within 28 days: P1 and P2; P3 alive at day 20 only, not evaluable.
    assert (mortality.loc["A", "count"], mortality.loc["A", "denominator"]) == (2, 2)
    assert (mortality.loc["B", "count"], mortality.loc["B", "denominator"]) == (0, 2)
    doc = s.to_json()
    assert doc["schema"] == "trialdesk.outcomes/1"
    assert [e["key"] for e in doc["endpoints"]] == ["OS", "MORTALITY"]
    assert doc["endpoints"][0]["landmarks"][0]["survival"] is None  # NaN becomes null


def test_empty_population_and_single_arm_are_reported(hand: EventTable) -> None:
    s = summarise(hand, EndpointChoice(("RFS",)), trial="T", time_unit="days")
    assert s.time_to_event["RFS"].kaplan_meier is None
    assert s.time_to_event["RFS"].note == "no patient in the RFS population"
    one_arm = validate_event_table(
        pd.DataFrame(
            [
                {
                    "patient_id": p,
                    "arm": a,
                    "enrolment_date": _day(0),
                    "death_date": _day(t) if dead else None,
                    "last_contact_date": None if dead else _day(t),
                }
                for p, a, t, dead in HAND
                if a == "A"
            ]
        ),
        arms=["A", "B"],
    )
    single = summarise(one_arm, EndpointChoice(("OS",)), trial="T", time_unit="days")
    assert single.time_to_event["OS"].logrank is None
    assert single.time_to_event["OS"].note == "log-rank not computed: fewer than two arms with patients"


# --- Kaplan–Meier -------------------------------------------------------------------------


def test_km_svg_has_labels_and_numbers_at_risk(hand: EventTable) -> None:
    s = summarise(hand, EndpointChoice(("OS",)), trial="T", time_unit="days")
    tte = s.time_to_event["OS"]
    assert tte.kaplan_meier is not None
    svg = render(
        km_figure(tte.kaplan_meier, title="Overall survival", time_unit="days", logrank=tte.logrank), "svg"
    )
    texts = svg_texts(svg)
    for label in (
        "Overall survival",
        "Days since enrolment",
        "Survival probability",
        "Arm A (n=3)",
        "Arm B (n=2)",
        "At risk",
    ):
        assert label in texts, label
    assert any(t.startswith("log-rank p = ") for t in texts)
    # The at-risk table: per arm its label, then one number under each tick.
    start = texts.index("At risk")
    width = len(TICKS) + 1
    assert texts[start + 1] == "Arm A" and texts[start + 1 + width] == "Arm B"
    printed_a = [int(t) for t in texts[start + 2 : start + 1 + width]]
    printed_b = [int(t) for t in texts[start + 2 + width : start + 1 + 2 * width]]
    assert printed_a == [3, 2, 1, 0, 0, 0, 0]
    assert printed_b == [2, 2, 2, 2, 2, 1, 0]
    # Same as R's convention (time >= t) here, because no time falls on a tick.
    assert tte.kaplan_meier.at_risk(TICKS).loc["A"].tolist() == printed_a
    assert at_risk_text(tte.kaplan_meier, TICKS).loc["B"].tolist() == printed_b


def test_km_of_an_arm_of_two_without_follow_up_shows_two_at_risk_and_says_why_no_curve() -> None:
    # Two patients enrolled and last seen on the same day: both at risk at day 0 (everyone
    # enrolled is at risk at time 0, R survival's n.risk), none at day 7; no curve to draw.
    events = validate_event_table(pd.DataFrame({
        "patient_id": ["P1", "P2"], "arm": ["A", "A"], "enrolment_date": [_day(0)] * 2,
        "last_contact_date": [_day(0)] * 2}), arms=["A", "B"])
    tte = summarise(events, EndpointChoice(("OS",)), trial="T", time_unit="days").time_to_event["OS"]
    assert tte.kaplan_meier is not None
    assert at_risk_text(tte.kaplan_meier, [0, 7]).loc["A"].tolist() == [2, 0]
    assert tte.kaplan_meier.at_risk([0]).loc["A"].tolist() == [2]
    texts = svg_texts(render(km_figure(tte.kaplan_meier, title="OS", time_unit="days"), "svg"))
    start = texts.index("At risk")
    assert texts[start + 1 : start + 4] == ["Arm A", "2", "0"]
    assert "Arm A (n=2, no follow-up yet)" in texts
    assert any(t.startswith("No follow-up yet") for t in texts)


def test_png_is_a_real_image_and_rendering_is_reproducible(hand: EventTable) -> None:
    tte = summarise(hand, EndpointChoice(("OS",)), trial="T", time_unit="days").time_to_event["OS"]
    assert tte.kaplan_meier is not None
    png = render(km_figure(tte.kaplan_meier, title="OS", time_unit="days"), "png")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.width >= 1000 and image.height >= 700  # 8 in × 150 dpi, less the trimmed margin
    figure = km_figure(tte.kaplan_meier, title="OS", time_unit="days")
    assert render(figure, "svg") == render(figure, "svg")
    assert render(figure, "pdf").startswith(b"%PDF")
    with pytest.raises(OutcomeError, match="unknown format"):
        render(figure, "gif")


# --- swimmer, waterfall, heat-map ----------------------------------------------------------


def test_swimmer_shows_each_patient_and_only_the_events_present(hand: EventTable) -> None:
    exposure = validate_exposure(
        pd.DataFrame(
            {
                "patient_id": ["P1", "P4"],
                "course": ["1", "1"],
                "agent": ["x", "x"],
                "start_date": [_day(1), _day(1)],
            }
        ),
        hand,
    )
    texts = svg_texts(
        render(swimmer_figure(hand, exposure=exposure, time_unit="days", title="Time on study"), "svg")
    )
    for label in (
        "P1 (A)",
        "P3 (A)",
        "P5 (B)",
        "Days since enrolment",
        "Death",
        "Alive at last contact",
        "Course start",
        "Arm A",
        "Arm B",
    ):
        assert label in texts, label
    assert "Progression" not in texts and "First CR" not in texts


def test_waterfall_sorts_bars_and_marks_recist_lines(hand: EventTable) -> None:
    m = validate_measurements(
        pd.DataFrame(
            {
                "patient_id": ["P1", "P1", "P4", "P4", "P5"],
                "assessment_date": [_day(-2), _day(4), _day(-1), _day(25), _day(-1)],
                "sum_diameters_mm": ["50", "30", "40", "50", "20"],
            }
        ),
        hand,
    )
    texts = svg_texts(render(waterfall_figure(m, hand), "svg"))
    # P4 +25% first, P1 −40% second; P5 has no post-baseline measurement.
    bar_labels = [t for t in texts if re.fullmatch(r"-?\d+%", t)]
    assert bar_labels == ["25%", "-40%"]
    assert texts.index("P4 (B)") < texts.index("P1 (A)")
    assert "+20% (RECIST 1.1 PD)" in texts and "-30% (RECIST 1.1 PR)" in texts
    assert any("P5: no post-baseline assessment" in t for t in texts)


def test_ae_heatmap_counts_patients_at_their_worst_grade_per_course() -> None:
    aes = validate_adverse_events(
        [
            {"patient_id": "P1", "course": 1, "term": "Pain", "grade": 1, "onset": "2026-01-02"},
            {"patient_id": "P1", "course": 1, "term": "Pain", "grade": 3, "onset": "2026-01-03"},
            {"patient_id": "P2", "course": 1, "term": "Pain", "grade": 3, "onset": "2026-01-04"},
            {"patient_id": "P2", "course": 2, "term": "Pain", "grade": 2, "onset": "2026-01-25"},
            {"patient_id": "P2", "term": "Fever", "grade": 2, "onset": "2026-02-01"},
        ]
    )
    table = ae_heatmap_table(aes)
    assert list(table.index) == ["Pain", "Fever"]  # most patients first
    assert table.loc["Pain", ("1", 3)] == 2 and table.loc["Pain", ("1", 1)] == 0
    assert table.loc["Pain", ("2", 2)] == 1
    assert table.loc["Fever", ("n/a", 2)] == 1
    assert int(table.to_numpy().sum()) == 4
    texts = svg_texts(render(ae_heatmap_figure(aes), "svg"))
    for label in (
        "Course 1",
        "Course 2",
        "Course n/a",
        "Pain",
        "Fever",
        "G5",
        "Patients",
        "Worst grade in the course (CTCAE v5.0)",
    ):
        assert label in texts, label
    with pytest.raises(OutcomeError, match="no adverse events"):
        ae_heatmap_figure(validate_adverse_events([]))

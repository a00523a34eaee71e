"""The figures against hand-computed values (docs/metrics.md shows the same examples)."""

from __future__ import annotations

import math

import pytest

from gateway.reports.metrics import (
    ParameterSpec,
    ScoringSpec,
    Tally,
    csi_of,
    figures,
    nps_class,
    nps_of,
    score_session,
    spec_for,
    to_percent,
    wilson_interval,
)
from ivr_flows import load_flows
from tests.reports.factories import NPS_FLOW

POST_CALL = spec_for(load_flows()["post_call"])
WITH_IMPORTANCE = ScoringSpec(
    parameters=(
        ParameterSpec("cost", 1.0, False, "importance_cost"),
        ParameterSpec("speed", 1.0, True, "importance_speed"),
        ParameterSpec("politeness", 1.0, True, "importance_politeness"),
        ParameterSpec("quality", 1.0, True, "importance_quality"),
    ),
)
SATISFACTION = {"overall": 4, "cost": 1, "speed": 5, "politeness": 4, "quality": 3}


def test_the_shipped_flow_says_cost_is_not_the_operators_doing():
    by_key = {p.key: p for p in POST_CALL.parameters}
    assert set(by_key) == {"cost", "speed", "politeness", "quality"}
    assert by_key["cost"].operator_controlled is False
    assert all(by_key[k].operator_controlled for k in ("speed", "politeness", "quality"))
    assert by_key["quality"].importance_key == "importance_quality"
    assert spec_for(NPS_FLOW).nps_key == "nps"


def test_a_score_maps_to_the_csi_scale():
    assert [to_percent(s) for s in range(1, 6)] == [0, 25, 50, 75, 100]


def test_csi_with_configured_weights_and_without_cost_for_the_operator():
    # cost 1 -> 0, speed 5 -> 100, politeness 4 -> 75, quality 3 -> 50; equal weights
    assert csi_of(SATISFACTION, POST_CALL) == pytest.approx(56.25)
    assert csi_of(SATISFACTION, POST_CALL, operator_only=True) == pytest.approx(75.0)


def test_configured_weights_are_used_when_no_importance_was_asked():
    spec = spec_for(NPS_FLOW)  # cost 2, speed 1, politeness 3
    answers = {"cost": 3, "speed": 5, "politeness": 2}  # 50, 100, 25
    assert csi_of(answers, spec) == pytest.approx((2 * 50 + 100 + 3 * 25) / 6)
    assert csi_of(answers, spec, operator_only=True) == pytest.approx((100 + 3 * 25) / 4)


def test_csi_weights_come_from_the_customers_own_importance_answers():
    answers = {
        **SATISFACTION,
        "importance_cost": 5,
        "importance_speed": 1,
        "importance_politeness": 3,
        "importance_quality": 1,
    }
    # (5*0 + 1*100 + 3*75 + 1*50) / (5+1+3+1) = 375 / 10
    assert csi_of(answers, WITH_IMPORTANCE) == pytest.approx(37.5)
    # without cost: (100 + 225 + 50) / 5
    assert csi_of(answers, WITH_IMPORTANCE, operator_only=True) == pytest.approx(75.0)


def test_a_skipped_importance_takes_the_mean_of_the_customers_other_importance_answers():
    answers = {
        **SATISFACTION,
        "importance_cost": 5,
        "importance_speed": 1,
        "importance_politeness": 3,
        "importance_quality": None,
    }
    # quality's weight is (5+1+3)/3 = 3: (0 + 100 + 225 + 150) / (5+1+3+3)
    assert csi_of(answers, WITH_IMPORTANCE) == pytest.approx(475 / 12)


def test_the_operators_csi_never_borrows_the_importance_of_cost():
    answers = {
        **SATISFACTION,
        "importance_cost": 5,
        "importance_speed": 1,
        "importance_politeness": 3,
        "importance_quality": None,
    }
    # The operator's stand-in for quality is the mean of speed's and politeness's importance,
    # (1+3)/2 = 2, not (5+1+3)/3 = 3: (1*100 + 3*75 + 2*50) / (1+3+2)
    assert csi_of(answers, WITH_IMPORTANCE, operator_only=True) == pytest.approx(425 / 6)
    only_cost = {**SATISFACTION, "importance_cost": 5}
    # Nothing said about what the operator controls: the configured (equal) weights apply.
    assert csi_of(only_cost, WITH_IMPORTANCE, operator_only=True) == pytest.approx(75.0)
    # The company's CSI: cost's 5 stands in for every parameter, so weights are equal again.
    assert csi_of(only_cost, WITH_IMPORTANCE) == pytest.approx(56.25)


def test_a_partial_survey_counts_only_what_was_answered():
    partial = {"overall": 2, "cost": None, "speed": 4}
    score = score_session(partial, POST_CALL)
    assert score.responded
    assert score.parameters == {"speed": 4}
    assert score.csi == pytest.approx(75.0)  # speed alone; skipped is absent, not zero
    assert score.csi_operator == pytest.approx(75.0)

    no_overall = score_session({"overall": None, "cost": 5}, POST_CALL)
    assert not no_overall.responded
    assert no_overall.csi == pytest.approx(100.0)
    assert no_overall.csi_operator is None  # cost is all it has, and cost is not the operator's

    nothing = score_session({}, POST_CALL)
    assert (nothing.overall, nothing.csi, nothing.nps, nothing.parameters) == (None, None, None, {})


def test_wilson_interval_matches_the_published_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == 1.0
    assert wilson_interval(0, 0) is None


def test_a_small_perfect_sample_has_a_lower_bound_below_a_large_good_one():
    assert wilson_interval(3, 3)[0] < wilson_interval(85, 100)[0]


def test_nps_and_its_standard_error():
    answers = [9, 10, 9, 10, 9, 7, 8, 0, 6, 3]  # 5 promoters, 2 passives, 3 detractors
    tally = Tally.of(score_session({"nps": v}, spec_for(NPS_FLOW)) for v in answers)
    nps = figures(tally)["nps"]
    assert nps["score"] == pytest.approx(20.0)
    assert nps["se"] == pytest.approx(math.sqrt((0.5 + 0.3 - 0.2**2) / 10) * 100)
    assert round(nps["se"], 2) == 27.57
    assert (nps["promoters"], nps["passives"], nps["detractors"]) == (5, 2, 3)
    assert nps_of(0, 0, 0) is None
    assert [nps_class(v) for v in (0, 6, 7, 8, 9, 10, None)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
        None,
    ]


def test_csat_is_the_share_of_4_and_5_and_the_mean_stands_beside_it():
    sessions = [{"overall": v} for v in (5, 4, 4, 3, 1)] + [{"overall": None, "cost": 3}]
    result = figures(Tally.of(score_session(s, POST_CALL) for s in sessions))
    assert result["responses"] == 5
    assert result["csat"] == pytest.approx(0.6)
    assert result["overall_mean"] == pytest.approx(3.4)
    assert result["distribution"] == {"1": 1, "2": 0, "3": 1, "4": 2, "5": 1}
    assert result["csat_ci95"] == pytest.approx(list(wilson_interval(3, 5)))
    assert result["parameters"] == {"cost": 3.0}


def test_operator_csi_leaves_cost_out_unless_asked_to_count_everything():
    sessions = [SATISFACTION, {"overall": 5, "cost": 5, "speed": 5}]
    tally = Tally.of(score_session(s, POST_CALL) for s in sessions)
    # session CSI: 56.25 and 100 (company); 75 and 100 (operator)
    assert figures(tally)["csi"] == pytest.approx(87.5)
    assert figures(tally)["csi_all_parameters"] == pytest.approx(78.125)
    assert figures(tally, operator_view=False)["csi"] == pytest.approx(78.125)


def test_tallies_add_up_to_the_tally_of_all_sessions():
    a = [SATISFACTION, {"overall": 2, "speed": 1}]
    b = [{"overall": 5, "quality": 5}, {"cost": 4}]
    merged = Tally.of(score_session(s, POST_CALL) for s in a)
    merged.merge(Tally.of(score_session(s, POST_CALL) for s in b))
    whole = Tally.of(score_session(s, POST_CALL) for s in a + b)
    assert figures(merged) == figures(whole)


def test_the_shipped_nps_flow_is_scored_with_its_nps_question():
    spec = spec_for(load_flows()["post_call_nps"])
    assert spec.nps_key == "nps"
    score = score_session({"overall": 5, "cost": 1, "speed": 5, "nps": 10}, spec)
    assert (score.nps, nps_class(score.nps)) == (10, "promoter")
    assert (score.csi, score.csi_operator) == (50.0, 100.0)

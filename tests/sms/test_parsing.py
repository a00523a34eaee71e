"""Reading replies: the lenient score parser and the carrier keywords."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.parsing import Keyword, keyword_of, numbers_in, parse_answers

RATING = (1, 5)
NPS = (0, 10)
FIVE_RATINGS = [RATING] * 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", (5,)),
        (" 5 ", (5,)),
        ("5!", (5,)),
        ("5 - отлично", (5,)),
        ("оценка 4", (4,)),
        ("Ответ: 3.", (3,)),
        ("пять", (5,)),
        ("Five", (5,)),
        ("5 из 5", (5,)),
        ("4/5", (4,)),
        ("4 out of 5", (4,)),
        ("4 5 3 5 4", (4, 5, 3, 5, 4)),
        ("4,5,3,5,4", (4, 5, 3, 5, 4)),
        ("4, 5; 3", (4, 5, 3)),
    ],
)
def test_lenient_replies_are_read_as_scores(text: str, expected: tuple[int, ...]) -> None:
    assert parse_answers(text, FIVE_RATINGS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "отлично",
        "хорошо, спасибо",
        "6",
        "0",
        "4.5",
        "100",
        "+79161234567",
        "-",
        "5 5 5 5 5 5",
    ],
)
def test_replies_that_answer_nothing_are_refused(text: str) -> None:
    assert parse_answers(text, FIVE_RATINGS) == ()


def test_a_value_out_of_range_for_a_later_question_refuses_the_whole_reply() -> None:
    assert parse_answers("5 9", [RATING, NPS]) == (5, 9)
    assert parse_answers("9 5", [RATING, NPS]) == ()


def test_nps_takes_zero_to_ten_in_one_reply() -> None:
    assert parse_answers("10", [NPS]) == (10,)
    assert parse_answers("0 - never", [NPS]) == (0,)
    assert parse_answers("десять", [NPS]) == (10,)
    assert parse_answers("11", [NPS]) == ()


def test_more_answers_than_questions_left_are_refused() -> None:
    assert parse_answers("4 5", [RATING]) == ()


def test_digits_win_over_number_words() -> None:
    assert numbers_in("пять, нет, 4") == (4,)


@settings(max_examples=400, deadline=None)
@given(
    text=st.text(max_size=300),
    ranges=st.lists(st.sampled_from([RATING, NPS]), min_size=0, max_size=6),
)
def test_no_text_crashes_the_parser_or_yields_a_value_out_of_range(
    text: str, ranges: list[tuple[int, int]]
) -> None:
    values = parse_answers(text, ranges)
    assert len(values) <= len(ranges)
    for value, (low, high) in zip(values, ranges, strict=False):
        assert low <= value <= high


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=5), st.sampled_from([" ", ",", ", ", ";"]))
def test_any_list_of_valid_scores_reads_back(scores: list[int], separator: str) -> None:
    text = separator.join(str(s) for s in scores)
    assert parse_answers(text, FIVE_RATINGS) == tuple(scores)


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        (" Stop. ", Keyword.OPT_OUT),
        ("StopAll", Keyword.OPT_OUT),
        ("unsubscribe", Keyword.OPT_OUT),
        ("cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("quit", Keyword.OPT_OUT),
        ("revoke", Keyword.OPT_OUT),
        ("optout", Keyword.OPT_OUT),
        ("стоп", Keyword.OPT_OUT),
        ("Стоп!", Keyword.OPT_OUT),
        ("ОТПИСАТЬСЯ", Keyword.OPT_OUT),
        ("start", Keyword.OPT_IN),
        ("UNSTOP", Keyword.OPT_IN),
        ("старт", Keyword.OPT_IN),
        ("help", Keyword.HELP),
        ("Info", Keyword.HELP),
        ("помощь", Keyword.HELP),
        ("yes", Keyword.YES),
    ],
)
def test_keywords_count_case_insensitively_as_the_whole_reply(text: str, keyword: Keyword) -> None:
    found = keyword_of(text)
    assert found is not None and found[0] is keyword


@pytest.mark.parametrize("text", ["please stop", "stop it", "5 stop", "не надо стоп", "helpful"])
def test_a_keyword_inside_a_longer_reply_is_not_a_keyword(text: str) -> None:
    assert keyword_of(text) is None

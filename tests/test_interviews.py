"""The parser of the lectures' closing sections, on tiny hand-written sections."""

import pytest

from cnncourse.interviews import Answer, heading_anchor, normalise, parse_answers

SECTION = """## Interview questions

**What is pooling?**
**Why pool at all?**

Pooling summarises windows. See [pooling](#Pooling).

**What is stride?**

The step of the window, see [stride](#Stride) and [output size](#Output-size).
"""


def test_questions_in_a_row_share_one_answer():
    answers = parse_answers("t", ["# Pooling\ntext", SECTION])
    assert [a.questions for a in answers] == [("What is pooling?", "Why pool at all?"), ("What is stride?",)]
    assert answers[0].anchors == ["Pooling"]
    assert answers[1].anchors == ["Stride", "Output-size"]
    assert isinstance(answers[0], Answer) and answers[0].words == 5


def test_bold_inside_an_answer_is_not_a_question():
    answers = parse_answers("t", [SECTION.replace("Pooling summarises", "**Max** pooling summarises")])
    assert len(answers) == 2


def test_a_lecture_without_the_section_is_an_error():
    with pytest.raises(ValueError, match="Interview questions"):
        parse_answers("t", ["# Only a heading"])


def test_normalise_ignores_case_and_spacing():
    assert normalise("  What IS\n pooling? ") == "what is pooling?"


def test_heading_anchor_uses_the_rendered_text():
    assert heading_anchor("`source/`, `release/` and **mywork/**") == "source/,-release/-and-mywork/"
    assert heading_anchor("See [the map](x.md) now") == "See-the-map-now"

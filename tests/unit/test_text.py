"""Clause segmentation of streamed text."""

import pytest

from duplex_tts.text import ClauseSegmenter


def feed_words(text: str) -> tuple[list[str], list[str]]:
    seg = ClauseSegmenter()
    clauses: list[str] = []
    words = text.split(" ")
    for i, word in enumerate(words):
        clauses += seg.push(word if i == 0 else " " + word)
    return clauses, seg.finish()


def test_sentence_end_cuts_as_soon_as_the_token_arrives() -> None:
    seg = ClauseSegmenter()
    assert seg.push("Hello") == []
    assert seg.push(" there.") == ["Hello there."]
    assert seg.push(" How") == []
    assert seg.finish() == ["How"]


def test_comma_cuts_only_after_enough_text() -> None:
    seg = ClauseSegmenter(min_clause_chars=12)
    assert seg.push("Well, ") == []
    assert seg.push("I think that is right, ") == ["Well, I think that is right,"]


@pytest.mark.parametrize(
    ("text", "clauses", "rest"),
    [
        ("Dr. Smith is here. Yes", ["Dr. Smith is here."], ["Yes"]),
        ("Pi is 3.14 exactly! Ok", ["Pi is 3.14 exactly!"], ["Ok"]),
        ("Wait; no: stop? Go", ["Wait;", "no:", "stop?"], ["Go"]),
        ("The U.S. team won.", ["The U.S. team won."], []),
        ("no punctuation at all", [], ["no punctuation at all"]),
        ("...", [], ["..."]),
    ],
)
def test_boundaries_when_streamed_word_by_word(
    text: str, clauses: list[str], rest: list[str]
) -> None:
    assert feed_words(text) == (clauses, rest)


def test_same_clauses_whether_streamed_or_sent_whole() -> None:
    text = "First sentence here. Second one, which is longer, ends here! Third"
    seg = ClauseSegmenter()
    whole = seg.push(text) + seg.finish()
    streamed, rest = feed_words(text)
    assert whole == streamed + rest


def test_long_text_without_punctuation_is_cut_at_a_space() -> None:
    seg = ClauseSegmenter(max_clause_chars=40)
    clauses = seg.push("word " * 20)
    assert clauses
    assert all(len(c) <= 40 for c in clauses)
    assert all(not c.endswith("wor") for c in clauses)


def test_newline_ends_a_clause() -> None:
    seg = ClauseSegmenter()
    assert seg.push("A heading\nThen text") == ["A heading"]


def test_full_width_punctuation_cuts_without_a_following_space() -> None:
    segmenter = ClauseSegmenter()
    clauses = segmenter.push("こんにちは。今日はとてもいい天気ですね、散歩に行きましょうか？そう")
    assert clauses == ["こんにちは。", "今日はとてもいい天気ですね、", "散歩に行きましょうか？"]
    assert segmenter.finish() == ["そう"]

"""The words a continued turn adds, found in Whisper's transcript of the whole turn."""

from __future__ import annotations

import pytest

from duplex_livekit.continued import new_words


@pytest.mark.parametrize(
    ("before", "whole", "share", "added"),
    [
        ("", "What time is it?", 0.0, "What time is it?"),  # a new turn
        (
            "Can you tell me about?",
            "Can you tell me about the weather tomorrow?",
            0.5,
            "the weather tomorrow?",
        ),
        ("I would like to order.", "I would like to order a large pizza.", 0.4, "a large pizza."),
        # heard differently the second time: the split is after the first half's words
        ("I'd like to more.", "I'd like to book a table for two.", 0.5, "a table for two."),
        # the first half lost its first word when heard again
        ("So I'd like to book", "I'd like to book a table.", 0.5, "a table."),
        # a word of the first half said again later is not where the split is
        (
            "Could you remind me?",
            "Could you remind me to remind my mother?",
            0.4,
            "to remind my mother?",
        ),
        # no word found again: where the first half's audio ends
        ("Hmm.", "Okay, book it.", 0.34, "book it."),
        ("I need to pick up.", "I need to pick up.", 0.7, ""),  # a cough: nothing new
        ("I need to pick up.", "I need", 0.7, ""),  # less heard than before
    ],
)
def test_the_new_words_follow_the_ones_already_handed_on(
    before: str, whole: str, share: float, added: str
) -> None:
    assert new_words(before, whole, share) == added


def test_a_share_out_of_range_is_clamped() -> None:
    assert new_words("Hmm.", "Okay, book it.", 1.5) == ""
    assert new_words("Hmm.", "Okay, book it.", -1.0) == "Okay, book it."

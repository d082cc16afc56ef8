"""What a user heard of a reply they cut off: the words by the speaking rate, and the
seconds a client played by its schedule."""

from __future__ import annotations

import pytest

from duplex_orchestrator.heard import TYPICAL_CHARS_PER_S, SpeakingRate, heard_part
from duplex_orchestrator.reply import Reply

TEXT = "The museum opens at nine. It closes at five on weekdays."


@pytest.mark.parametrize(
    ("heard_s", "said"),
    [
        (0.0, ""),
        (0.2, ""),  # 2 characters: not one word said whole
        (0.3, "The…"),
        (1.0, "The museum…"),  # 10 characters: "museum" ends at the 10th
        (2.55, "The museum opens at nine.…"),
        (5.7, TEXT),  # its last character reached
        (60.0, TEXT),
    ],
)
def test_the_words_said_whole_within_the_seconds_heard(heard_s: float, said: str) -> None:
    assert heard_part(TEXT, heard_s, chars_per_s=10.0) == said


def test_trailing_space_is_not_a_word_left_unsaid() -> None:
    assert heard_part("Yes. ", 0.4, chars_per_s=10.0) == "Yes. "


def test_all_of_an_unfinished_text_heard_is_still_a_reply_cut_off() -> None:
    """The LLM was still writing: the words the worker had were all said, the rest never."""
    assert heard_part("The museum opens ", 5.0, 10.0, complete=False) == "The museum opens…"
    assert heard_part("", 5.0, 10.0, complete=False) == ""


def test_the_rate_is_the_median_of_the_latest_replies_heard_whole() -> None:
    rate = SpeakingRate(keep=3)
    assert rate.chars_per_s == TYPICAL_CHARS_PER_S
    rate.learn(30, 0.5)  # half a second: mostly silence around a word, not a rate
    rate.learn(0, 3.0)
    assert rate.chars_per_s == TYPICAL_CHARS_PER_S
    for chars in (100, 200, 120, 140):  # over 10 s each: 10, 20, 12, 14 chars/s
        rate.learn(chars, 10.0)
    assert rate.chars_per_s == 14.0  # the first one forgotten: median of 20, 12, 14


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


FRAME = b"\0" * 1920


async def test_a_reply_counts_what_the_client_played_not_what_it_was_sent() -> None:
    clock = Clock()
    reply = Reply(1, clock=clock)
    for _ in range(50):  # 1 s of audio sent at once: the client plays it over 1 s
        reply.frames_for_client(FRAME)
    assert reply.sent_s == pytest.approx(1.0)
    clock.now += 0.05 + 0.4  # the cushion, then 20 frames
    assert reply.heard_s() == pytest.approx(0.4)
    await reply.pause()  # a barge-in: the client drops the 30 frames it holds
    clock.now += 5.0
    assert reply.heard_s() == pytest.approx(0.4)
    await reply.resume()
    assert len(reply.frames_left()) == 30  # sent again, to be played
    clock.now += 0.05 + 0.2
    assert reply.heard_s() == pytest.approx(0.6)
    reply.flushed()  # an interrupt: dropped again
    clock.now += 1.0
    assert reply.heard_s() == pytest.approx(0.6)
